"""Faults at the file layer: unreadable, truncated, binary, huge, vanishing, FIFO and /dev/zero.

Every file kvmprobe reads (the host facts under a fake root, snapshots, profiles) is replaced
in turn by each hostile variant. Reading must finish (a FIFO must not block, /dev/zero must
not be read forever), memory must stay bounded (a 100 MB file is refused from its size), a
fact whose file is unusable must be unknown (None), never made up, and the error, where
there is one, must be the documented one, on one line, naming the file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

import pytest

from hardening._faultlib import recorded_host_backend, tally
from kvmprobe import HostFacts, ProfileError, SnapshotError, read_host_facts
from kvmprobe._cli import main
from kvmprobe.diagnosis import diagnose
from kvmprobe.presets import load_preset
from kvmprobe.profiles import load_profile
from kvmprobe.snapshot import load_snapshot, snapshot_document
from kvmprobe.testing import FakeHost

HUGE = 100 * 1024 * 1024
# A hostile file must not cost more than this much Python memory to refuse or to read past.
MEMORY_BOUND = 32 * 1024 * 1024
# Generous: a hang is what this catches, not slowness (no timing is asserted otherwise).
HANG = 30.0

_T = TypeVar("_T")


def finishes(action: Callable[[], _T]) -> Tuple[Optional[_T], Optional[BaseException], int]:
    """Run ``action`` in a thread; fail the test if it has not finished after HANG seconds.

    Returns the result or the exception, and the peak of Python memory allocated meanwhile.
    """
    outcome: Dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = action()
        except BaseException as err:  # noqa: BLE001 - handed to the caller to judge
            outcome["error"] = err

    tracemalloc.start()
    try:
        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        worker.join(HANG)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not worker.is_alive(), f"still running after {HANG} s: it blocks (a FIFO?) or reads without end"
    return outcome.get("result"), outcome.get("error"), peak


def make_hostile(path: Path, variant: str, original: bytes) -> None:
    """Replace ``path`` (a file) by the hostile ``variant``."""
    if path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if variant == "missing":
        return
    if variant == "vanishing":  # listed by the directory, gone when opened
        path.symlink_to(path.parent / ".gone")
    elif variant == "loop":  # unreadable: open fails (ELOOP); as root, mode 000 would not stop a read
        path.symlink_to(path)
    elif variant == "directory":
        path.mkdir()
    elif variant == "fifo":
        os.mkfifo(path)
    elif variant == "dev-zero":
        path.symlink_to("/dev/zero")
    elif variant == "huge":
        with open(path, "wb") as handle:
            handle.truncate(HUGE)  # sparse: 100 MB by its size, no disk used
    elif variant == "empty":
        path.write_bytes(b"")
    elif variant == "truncated":
        path.write_bytes(original[: max(1, len(original) // 2)])
    elif variant == "binary":
        path.write_bytes(b"\x00\xff\xfe\x1b[2J\x80" + bytes(range(256)) + original[:8])
    else:
        raise AssertionError(variant)


UNUSABLE = ("missing", "vanishing", "loop", "directory", "fifo", "dev-zero", "huge")
GARBLED = ("empty", "truncated", "binary")
VARIANTS = UNUSABLE + GARBLED

# Each file of the host facts, and the fact it feeds, which must be unknown when the file is unusable.
HOST_FILES: Dict[str, Callable[[HostFacts], object]] = {
    "proc/sys/kernel/osrelease": lambda f: f.kernel_release or None,
    "proc/sys/kernel/ostype": lambda f: f.system or None,
    "proc/cpuinfo": lambda f: f.cpu_vendor,
    "proc/self/status": lambda f: f.uid,
    "proc/1/cgroup": lambda f: None,  # feeds only the container guess, which has other sources
    "sys/module/kvm_intel/parameters/nested": lambda f: f.nested_enabled,
    "sys/devices/virtual/misc/kvm/dev": lambda f: f.kvm_misc_dev,
    "etc/group": lambda f: f.group_db or None,
    "etc/passwd": lambda f: f.user_name,
    "kvmprobe-nodes.json": lambda f: f.kvm_node,
}


@pytest.mark.parametrize("relative", sorted(HOST_FILES))
def test_host_facts_survive_every_hostile_file(relative: str, tmp_path: Path) -> None:
    problems: List[str] = []
    for variant in VARIANTS:
        root = tmp_path / variant
        root.mkdir()
        FakeHost().write(str(root))
        target = root / relative
        make_hostile(target, variant, target.read_bytes())
        facts, error, peak = finishes(lambda: read_host_facts(str(root)))
        where = f"{relative} as {variant}"
        if error is not None:
            # Only the fake host's own node description may be malformed, and then it says so.
            if not (relative == "kvmprobe-nodes.json" and variant in GARBLED and isinstance(error, SnapshotError)):
                problems.append(f"{where}: raised {type(error).__name__}: {error}")
            elif "\n" in str(error) or "kvmprobe-nodes.json" not in str(error):
                problems.append(f"{where}: unclear {str(error)!r}")
        else:
            assert facts is not None
            if variant in UNUSABLE and HOST_FILES[relative](facts) is not None:
                problems.append(f"{where}: the fact is {HOST_FILES[relative](facts)!r}, not unknown")
            report, error, _ = finishes(lambda: diagnose(root=str(root), backend=recorded_host_backend()))
            if error is not None or report is None:
                problems.append(f"{where}: diagnose raised {error!r}")
            else:
                json.dumps(report.to_dict())
        if peak > MEMORY_BOUND:
            problems.append(f"{where}: {peak} bytes of memory")
    tally("file faults: host facts", len(VARIANTS), len(problems))
    assert not problems, "\n".join(problems)


def test_a_garbled_fact_is_read_as_it_is_not_invented(tmp_path: Path) -> None:
    FakeHost().write(str(tmp_path))
    (tmp_path / "sys/module/kvm_intel/parameters/nested").write_bytes(b"\xff\x00maybe\n")
    (tmp_path / "proc/cpuinfo").write_bytes(b"processor\t: 0\nvendor_id\t: GenuineIntel\nfla")  # cut mid-line
    facts = read_host_facts(str(tmp_path))
    tally("file faults: host facts", 2)
    assert facts.nested_enabled is None  # neither Y/N nor 1/0: unknown, not "off"
    assert facts.cpu_vendor == "GenuineIntel" and facts.cpu_flags == frozenset()


def _snapshot_text() -> bytes:
    return json.dumps(snapshot_document(load_preset("pvm-6.18")), indent=2).encode("utf-8")


PROFILE_TEXT = json.dumps({"name": "my-vmm", "required": ["USER_MEMORY", "IMMEDIATE_EXIT"]}).encode("utf-8")

LOADERS: Dict[str, Tuple[Callable[[str], object], type, bytes, str]] = {
    "snapshot": (load_snapshot, SnapshotError, _snapshot_text(), "host.json"),
    "profile": (load_profile, ProfileError, PROFILE_TEXT, "vmm.json"),
}


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_snapshot_and_profile_loaders_refuse_every_hostile_file(loader: str, tmp_path: Path) -> None:
    load, expected, text, name = LOADERS[loader]
    problems: List[str] = []
    for variant in VARIANTS:
        path = tmp_path / variant / name
        make_hostile(path, variant, text)
        result, error, peak = finishes(lambda: load(str(path)))
        where = f"{loader} as {variant}"
        if variant == "truncated" or variant in UNUSABLE or variant in ("empty", "binary"):
            if not isinstance(error, expected):
                problems.append(f"{where}: {'returned ' + repr(result)[:60] if error is None else repr(error)}")
            elif "\n" in str(error) or str(path) not in str(error):
                problems.append(f"{where}: message {str(error)!r} is not one line naming the file")
            elif variant == "huge" and "bytes" not in str(error):
                problems.append(f"{where}: {str(error)!r} does not say it is too large")
        if peak > MEMORY_BOUND:
            problems.append(f"{where}: {peak} bytes of memory")
    tally(f"file faults: {loader} loader", len(VARIANTS), len(problems))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_a_file_exactly_as_written_still_loads(loader: str, tmp_path: Path) -> None:
    # The control case: the same loaders accept the untouched file.
    load, _, text, name = LOADERS[loader]
    path = tmp_path / name
    path.write_bytes(text)
    assert load(str(path)) is not None


def run_cli(argv: List[str]) -> Tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv, backend=recorded_host_backend())
    return code, out.getvalue(), err.getvalue()


def cli_forms(path: str) -> List[List[str]]:
    return [
        ["dump", "--snapshot", path],
        ["has", "HLT", "--snapshot", path],
        ["check", "firecracker", "--snapshot", path],
        ["check", "--profile", path, "firecracker"],
        ["doctor", "--snapshot", path],
        ["snapshot", "--snapshot", path],
        ["export", "--format", "nfd", "--snapshot", path],
        ["diff", path, "preset:linux-6.1"],
        ["diff", "preset:linux-6.1", path],
    ]


def test_every_command_given_a_hostile_file_exits_2_in_one_line(tmp_path: Path) -> None:
    problems: List[str] = []
    cases = 0
    for variant in VARIANTS:
        if variant == "fifo":
            continue  # in a separate process below: a blocked open could not be interrupted here
        path = tmp_path / variant / "input.json"
        make_hostile(path, variant, _snapshot_text())
        for argv in cli_forms(str(path)):
            cases += 1
            outcome, error, peak = finishes(lambda: run_cli(argv))
            where = f"{' '.join(argv)} ({variant})"
            if error is not None or outcome is None:
                problems.append(f"{where}: raised {error!r}")
                continue
            code, _, err = outcome
            lines = [line for line in err.splitlines() if line.strip()]
            if code != 2 or len(lines) != 1 or not lines[0].startswith("kvmprobe: error: ") or "Traceback" in err:
                problems.append(f"{where}: exit {code}, stderr {err!r}")
            if peak > MEMORY_BOUND:
                problems.append(f"{where}: {peak} bytes of memory")
    tally("file faults: CLI commands", cases, len(problems))
    assert not problems, "\n".join(problems)


def test_a_fifo_given_as_any_file_neither_blocks_nor_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "input.json"
    os.mkfifo(fifo)
    problems: List[str] = []
    for argv in cli_forms(str(fifo)):
        # A separate process: should the open block, the timeout kills it instead of the suite.
        try:
            done = subprocess.run(
                [sys.executable, "-m", "kvmprobe", *argv], capture_output=True, text=True, timeout=HANG
            )
        except subprocess.TimeoutExpired:
            problems.append(f"{' '.join(argv)}: still blocked after {HANG} s")
            continue
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        if done.returncode != 2 or len(lines) != 1 or "FIFO" not in lines[0]:
            problems.append(f"{' '.join(argv)}: exit {done.returncode}, stderr {done.stderr!r}")
    tally("file faults: CLI commands", len(cli_forms(str(fifo))), len(problems))
    assert not problems, "\n".join(problems)
