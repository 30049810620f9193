"""Hostile input under hypothesis: the snapshot loader, the profile loader and the CLI's arguments.

Inputs: real documents with parts replaced by wrong types, huge numbers (past 64 bits, past
4300 digits), NaN/Infinity, unknown keys, control characters, lone surrogates, nesting
hundreds of thousands deep; raw bytes that are not UTF-8 or are cut short; TOML as well as
JSON; argument lists mixing real options with any text (non-ASCII digits, escape sequences,
file names that are not UTF-8). Properties:

* a loader returns a result or raises its documented error (``SnapshotError``,
  ``ProfileError``), one line naming the file, never anything else;
* whatever loads renders (dump, doctor, check, diff, both exports) to text that encodes as
  UTF-8 and holds no control character but newline, so nothing recorded can act on a terminal;
* ``main(argv)`` returns 0-3 (or exits 0 for --help/--version), never raises, and an exit of 2
  or 3 comes with exactly one ``kvmprobe:`` line on stderr, escaped.

Examples are bounded and derandomized (a fixed seed per test), so runs are repeatable and the
whole file takes seconds.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from hardening._faultlib import recorded_host_backend, tally
from kvmprobe import ProbeResult, ProfileError, SnapshotError
from kvmprobe._cli import _check, _diff, _doctor, _dump, main
from kvmprobe.diagnosis import diagnose
from kvmprobe.diff import diff_hosts
from kvmprobe.export import nfd_features, prometheus_text
from kvmprobe.presets import load_preset
from kvmprobe.profiles import Profile, check_vmm, load_profile, vmm_names
from kvmprobe.snapshot import load_snapshot

import _fuzz  # noqa: I001 (the strategies shared with unit/test_snapshot_fuzz.py)
from _fuzz import ALL_LOCATIONS, BASE, Location, encoded, hostile_scalars, hostile_text, locations, value_at


def bounded(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


WORK = Path(tempfile.mkdtemp(prefix="kvmprobe-hostile-"))  # thousands of small files; removed at exit
atexit.register(shutil.rmtree, WORK, True)
BASE_HOST = load_preset("pvm-6.18")
json_values = _fuzz.json_values(hostile_scalars, hostile_text, max_leaves=10)


def nested(depth: int, opener: str) -> str:
    closer = {"[": "]", "{\"a\":": "}"}[opener]
    return opener * depth + "1" + closer * depth


def mutated_documents(base: Dict[str, Any], where: List[Location]) -> Any:
    """``base`` with one to three locations replaced, deleted, or given an unknown key (hostile values)."""
    return _fuzz.mutated(json_values, hostile_text, base, where).map(lambda case: case[0])


_counter = [0]


def write(data: bytes, suffix: str = ".json") -> str:
    _counter[0] += 1
    path = WORK / f"input-{_counter[0]}{suffix}"
    path.write_bytes(data)
    return str(path)


_BAD_OUTPUT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def assert_printable(text: str, what: str) -> None:
    """Encodable as UTF-8 (no lone surrogate) and no control character but tab and newline."""
    text.encode("utf-8")
    bad = _BAD_OUTPUT.search(text)
    assert bad is None, f"{what} carries {bad.group()!r}"


def render_everything(host: ProbeResult) -> None:
    """Every report a command prints about ``host``: all must be printable."""
    assert_printable(_dump.render(host, show_all=True), "dump")
    report = diagnose(host)
    assert_printable(_doctor.render(report), "doctor")
    assert_printable(json.dumps(report.to_dict()), "doctor --json")
    verdicts = [check_vmm(name, host) for name in vmm_names(host.arch)]
    assert_printable(_check.render(host, verdicts), "check")
    assert_printable(nfd_features(host), "export nfd")
    assert_printable(prometheus_text(host), "export prometheus")
    difference = diff_hosts(BASE_HOST, host)
    assert_printable(_diff.render(difference, BASE_HOST, host), "diff")


def check_error(err: BaseException, path: str) -> None:
    text = str(err)
    assert "\n" not in text and path in text, text


@bounded(700)
@given(mutated_documents(BASE, ALL_LOCATIONS).flatmap(encoded))
def test_snapshot_loader_on_mutated_documents(data: bytes) -> None:
    path = write(data)
    tally("hostile input: snapshot loader", 1)
    try:
        host = load_snapshot(path)
    except SnapshotError as err:
        event("refused")
        check_error(err, path)
        return
    event("loaded, and every report rendered")
    render_everything(host)


# Text a loader accepts (no controls, no surrogates) but that no real host would have.
odd_text = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=24)
cap_rows = [at for at in ALL_LOCATIONS if len(at) == 3 and at[0] == "capabilities" and at[2] in ("value", "vm_value")]
# Free-text fields: not the schema, times, capability names or a node's type/mode, which have a syntax.
text_fields = [
    at for at in ALL_LOCATIONS
    if isinstance(value_at(BASE, at), str)
    and at[0] not in ("schema", "recorded_at", "capabilities")
    and at[-1] not in ("type", "mode")
]


@st.composite
def typed_documents(draw: Any) -> Any:
    """The recorded host with values changed within their types: odd but well-formed hosts."""
    document = json.loads(json.dumps(BASE))
    for at in draw(st.lists(st.sampled_from(cap_rows), max_size=12)):
        document["capabilities"][at[1]][at[2]] = draw(st.sampled_from([0, 1, 2**31 - 1]) | st.integers(0, 2**31 - 1))
    for at in draw(st.lists(st.sampled_from(text_fields), max_size=4)):
        parent: Any = document
        for step in at[:-1]:
            parent = parent[step]
        parent[at[-1]] = draw(odd_text)
    for at in draw(st.lists(st.sampled_from(cap_rows), max_size=3)):  # failed queries
        row = document["capabilities"][at[1]]
        row["value" if at[2] == "value" else "vm_value"] = None
        row["error" if at[2] == "value" else "vm_error"] = draw(st.integers(1, 4095))
    document["arch"] = draw(st.sampled_from(["x86_64", "aarch64", "riscv64", "s390x", "ppc64le", "mips"]))
    return document


@bounded(400)
@given(typed_documents())
def test_snapshot_loader_and_every_report_on_odd_but_well_formed_hosts(document: Any) -> None:
    path = write(json.dumps(document, ensure_ascii=False).encode("utf-8"))
    tally("hostile input: snapshot loader", 1)
    try:
        host = load_snapshot(path)
    except SnapshotError as err:
        event("refused")
        check_error(err, path)
        return
    event("loaded, and every report rendered")
    render_everything(host)


@bounded(200)
@given(st.integers(min_value=1, max_value=300_000), st.sampled_from(["[", "{\"a\":"]), st.sampled_from(["snapshot", "profile"]))
def test_deeply_nested_json_is_refused_in_one_line(depth: int, opener: str, loader: str) -> None:
    path = write(nested(depth, opener).encode("ascii"))
    tally(f"hostile input: {loader} loader", 1)
    expected = SnapshotError if loader == "snapshot" else ProfileError
    try:
        (load_snapshot if loader == "snapshot" else load_profile)(path)
    except expected as err:
        check_error(err, path)
    else:
        raise AssertionError(f"a document nested {depth} deep loaded as a {loader}")


@bounded(300)
@given(st.binary(max_size=300), st.sampled_from(["snapshot", "profile-json", "profile-toml"]))
def test_loaders_on_arbitrary_bytes(data: bytes, loader: str) -> None:
    path = write(data, ".toml" if loader == "profile-toml" else ".json")
    tally(f"hostile input: {loader.split('-')[0]} loader", 1)
    expected = SnapshotError if loader == "snapshot" else ProfileError
    try:
        (load_snapshot if loader == "snapshot" else load_profile)(path)
    except expected as err:
        check_error(err, path)


PROFILE_BASE: Dict[str, Any] = {
    "name": "my-vmm",
    "display_name": "My VMM",
    "arch": "x86_64",
    "api_version": 12,
    "min_kernel": "5.10",
    "source": "https://example.com/my-vmm",
    "required": ["USER_MEMORY", "ImmediateExit", "KVM_CAP_IRQFD"],
    "optional": {"X2APIC_API": "x2apic"},
    "conditional": {"SPLIT_IRQCHIP": "with --split-irqchip"},
}
PROFILE_LOCATIONS = list(locations(PROFILE_BASE))


def toml_text(document: Any) -> Optional[str]:
    """A TOML rendering of a flat profile document (JSON scalars and arrays are TOML's too)."""
    if not isinstance(document, dict):
        return None
    lines: List[str] = []
    tables: List[str] = []
    for key, item in document.items():
        if isinstance(item, dict):
            tables.append(f"[{json.dumps(key)}]")
            tables += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in item.items() if not isinstance(v, (dict, list))]
        else:
            lines.append(f"{json.dumps(key)} = {json.dumps(item)}")
    return "\n".join(lines + tables) + "\n"


def render_profile(profile: Profile) -> None:
    host = BASE_HOST
    verdict = check_vmm(profile, host)
    assert_printable(_check.render(host, [verdict]), "check --profile")
    assert_printable(json.dumps(verdict.to_dict()), "check --profile --json")


@bounded(600)
@given(mutated_documents(PROFILE_BASE, PROFILE_LOCATIONS), st.booleans(), st.booleans())
def test_profile_loader_on_mutated_documents(document: Any, as_toml: bool, ascii_only: bool) -> None:
    if as_toml:
        text = toml_text(document)
        assume(text is not None)
        assert text is not None
        path = write(text.encode("utf-8", "surrogatepass"), ".toml")
    else:
        path = write(json.dumps(document, ensure_ascii=ascii_only, allow_nan=True).encode("utf-8", "surrogatepass"))
    tally("hostile input: profile loader", 1)
    try:
        profile = load_profile(path)
    except ProfileError as err:
        event("refused")
        check_error(err, path)
        return
    event("loaded, and checked against the recorded host")
    render_profile(profile)


# --- the command line ------------------------------------------------------------------------

GOOD_SNAPSHOT = write(json.dumps(BASE).encode("utf-8"))
GOOD_PROFILE = write(json.dumps(PROFILE_BASE).encode("utf-8"))
GARBAGE = write(b"\xff\xfe{\x00")
FIFO = str(WORK / "fifo")
os.mkfifo(FIFO)
OUT_DIR = WORK / "out"
OUT_DIR.mkdir()

VOCABULARY = [
    "dump", "has", "check", "doctor", "snapshot", "diff", "export",
    "--json", "--all", "--vm", "--strict", "-q", "--quiet", "--list-presets", "--help", "--version",
    "--device", "--snapshot", "--profile", "--format", "nfd", "prometheus", "xml", "--prefix", "--caps",
    "--expiry-time", "3h", "2026-11-26T10:00:00Z", "-o", "--output",
    "HLT", "IMMEDIATE_EXIT", "ImmediateExit", "kvm_cap_nr_memslots", "136", "0136", "-1", "99999999999",
    "0x88", "0XFA", "250", "0x", "0x7fffffff", "0x" + "f" * 5000, "--as-user", "root", "nobody", "0", "no-such-user",
    "1" * 5000, "²", "١٣٦", "firecracker", "cloud-hypervisor", "qemu", "all", "none", "HLT,NR_MEMSLOTS", ",",
    "preset:pvm-6.18", "preset:linux-3.10", "preset:nope", GOOD_SNAPSHOT, GOOD_PROFILE, GARBAGE, FIFO,
    "/dev/zero", "/dev/null", str(WORK), "/nonexistent/x", "-", "--", "=", "--device=/dev/null",
]
# What argv can hold: no NUL, and a byte that is not UTF-8 arrives as a surrogate in
# U+DC80..U+DCFF (os.fsdecode), never as another one.
argv_text = hostile_text.map(lambda t: os.fsdecode(t.replace("\x00", "").encode("utf-8", "surrogatepass")))
token = st.one_of(st.sampled_from(VOCABULARY), st.sampled_from(VOCABULARY), argv_text)


@st.composite
def argument_lists(draw: Any) -> List[str]:
    argv = draw(st.lists(token, max_size=7))
    # Only the vocabulary's own options: a random "-oX", "--out=X" or "-qoX" would make a
    # command write X into the working directory.
    argv = [item for item in argv if item in VOCABULARY or not item.startswith("-")]
    for index, item in enumerate(argv[:-1]):
        if item in ("-o", "--output"):  # outputs only ever go to the scratch directory
            argv[index + 1] = str(OUT_DIR / draw(st.sampled_from(["a.json", "b.prom", "c.features", "missing/x"])))
    if argv and argv[-1] in ("-o", "--output"):
        argv.pop()
    return argv


SOURCES = st.sampled_from([GOOD_SNAPSHOT, "preset:pvm-6.18", "preset:linux-4.14", GARBAGE, FIFO, "/dev/zero", "preset:x"])
CAPS = st.sampled_from(["HLT", "IMMEDIATE_EXIT", "X2ApicApi", "136", "²", "1" * 5000, "-1", "NOPE",
                        "0x88", "0xfa", "250", "0x", "0xg", "0x" + "f" * 5000, "2147483648"]) | argv_text.filter(
    lambda t: not t.startswith("-"))  # fmt: skip
USERS = st.sampled_from(["root", "nobody", "0", "65534", "no-such-user", "", "١", "x" * 300, "root:x", "4294967296"])


@st.composite
def command_lines(draw: Any) -> List[str]:
    """One command with its own options, mostly well-formed, now and then with a bad value."""
    command = draw(st.sampled_from(["dump", "has", "check", "doctor", "snapshot", "diff", "export"]))
    argv = [command]

    def maybe(*options: str) -> None:
        for option in options:
            if draw(st.booleans()):
                argv.append(option)

    if draw(st.booleans()):
        argv += ["--snapshot", draw(SOURCES)]
    if command == "dump":
        maybe("--json", "--all", "--vm")
    elif command == "has":
        argv += draw(st.lists(CAPS, min_size=1, max_size=3))
        maybe("-q")
    elif command == "check":
        argv += draw(st.lists(st.sampled_from(["firecracker", "qemu", "cloud-hypervisor", "crosvm", "nope"]), max_size=2))
        maybe("--all", "--json")
        if draw(st.booleans()):
            argv += ["--profile", draw(st.sampled_from([GOOD_PROFILE, GARBAGE, FIFO, "/dev/zero", str(WORK)]))]
    elif command == "doctor":
        maybe("--json", "--strict")
        if draw(st.booleans()):
            argv += ["--as-user", draw(USERS | argv_text)]
    elif command == "snapshot":
        maybe("--json", "--vm", "--list-presets")
        if draw(st.booleans()):
            argv += ["-o", str(OUT_DIR / draw(st.sampled_from(["h.json", "missing/h.json"])))]
    elif command == "diff":
        argv = [command, draw(SOURCES)] + ([draw(SOURCES)] if draw(st.booleans()) else [])
        maybe("--json", "--vm")
    else:
        argv += ["--format", draw(st.sampled_from(["nfd", "prometheus", "xml"]))]
        if draw(st.booleans()):
            argv += ["--caps", draw(CAPS | st.sampled_from(["all", "none", "HLT,NR_MEMSLOTS", ",", ""]))]
        if draw(st.booleans()):
            argv += ["--prefix", draw(st.sampled_from(["kvm.example.com", "kubernetes.io", "UPPER", "a" * 300]) | argv_text)]
        if draw(st.booleans()):
            argv += ["--expiry-time", draw(st.sampled_from(["3h", "90m", "2026-11-26T10:00:00Z", "2026-11-26", "-1h", "9" * 30 + "d"]) | argv_text)]
        if draw(st.booleans()):
            argv += ["-o", str(OUT_DIR / draw(st.sampled_from(["kvm.prom", "kvm.features", "missing/x"])))]
    return argv


@bounded(800)
@given(command_lines())
def test_well_formed_command_lines_with_bad_values_exit_by_the_convention(argv: List[str]) -> None:
    check_command_line(argv)


@bounded(900)
@given(argument_lists())
def test_any_argument_list_exits_by_the_convention_without_a_traceback(argv: List[str]) -> None:
    check_command_line(argv)


def check_command_line(argv: List[str]) -> None:
    """main(argv) exits 0-3 (or 0 for --help), never raises; 2 and 3 come with one escaped line."""
    tally("hostile input: CLI arguments", 1)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv, backend=recorded_host_backend())
    except SystemExit as done:  # --help and --version, printed by argparse
        event("--help/--version")
        assert done.code in (0, None), (argv, done.code)
        return
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    event(f"exit {code}")
    assert code in (0, 1, 2, 3), (argv, code)
    assert "Traceback" not in err.getvalue()
    if code in (2, 3):
        assert len(lines) == 1 and lines[0].startswith("kvmprobe: "), (argv, err.getvalue())
    else:
        assert len(lines) <= 2, (argv, err.getvalue())
    for line in lines:
        assert _BAD_OUTPUT.search(line) is None, (argv, line)


# --- what the properties above found, kept as plain cases ------------------------------------

FOUND = [
    (["has", "²"], 2),  # str.isdigit() is true for it; int() is not
    (["has", "1" * 5000], 2),  # int() refuses more than 4300 digits
    (["export", "--format", "nfd", "--expiry-time", "9" * 30 + "d"], 2),  # timedelta overflow
    (["export", "--format", "nfd", "--expiry-time", "9" * 5000 + "d"], 2),
    (["--device", "/dev/null", "has", "HLT"], 2),  # the option was silently dropped, /dev/kvm asked
    (["dump", "\x1b[2J"], 2),  # the escape sequence reached the terminal
    (["has", "0x" + "f" * 5000], 2),  # hex numbers: bounded like decimal ones
    (["has", "-q", "250", "--snapshot", "preset:pvm-6.18"], 2),  # outside the table, not recorded
    (["doctor", "--as-user", "no-such-user"], 2),
    (["doctor", "--as-user", "x" * 5000], 2),
    (["doctor", "--as-user", "root", "--snapshot", "preset:linux-3.10"], 2),
    (["has", "HLT", "--device", ""], 2),  # an empty device path is no /dev/kvm
]


def test_the_cases_found_stay_fixed() -> None:
    for argv, expected in FOUND:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv, backend=recorded_host_backend())
        lines = err.getvalue().splitlines()
        assert code == expected and len(lines) == 1 and "\x1b" not in err.getvalue(), (argv, code, err.getvalue())
    tally("hostile input: CLI arguments", len(FOUND))


def test_paths_no_file_system_can_hold_raise_the_documented_errors() -> None:
    from kvmprobe import KvmNotFound, probe, read_host_facts
    from kvmprobe.snapshot import write_snapshot

    for path in ("\x00", "a\x00b", "\ud800"):
        for call, expected in (
            (lambda: load_snapshot(path), SnapshotError),
            (lambda: load_profile(path), ProfileError),
            (lambda: probe(path, refresh=True), KvmNotFound),
            (lambda: write_snapshot(BASE, path), SnapshotError),
        ):
            try:
                call()
            except expected as err:
                assert "\n" not in str(err) and "not a file name" in str(err) or "cannot name" in str(err)
            else:
                raise AssertionError(f"{path!r}: no error")
        assert read_host_facts(device=path).kvm_node is None
        assert diagnose(device=path).verdict.value == "not_usable"
    tally("hostile input: library paths", 3 * 6)
