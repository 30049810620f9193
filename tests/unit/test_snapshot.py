"""Snapshot documents: the writer's shape, the JSON Schema, and the strict reader's errors."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator

import jsonschema
import pytest

import kvmprobe
from kvmprobe import Cap, CapabilityNotRecorded, SnapshotError
from kvmprobe.host import HostFacts, read_host_facts
from kvmprobe.presets import load_preset
from kvmprobe.snapshot import MAX_SNAPSHOT_BYTES, load_snapshot, snapshot_document, write_snapshot
from kvmprobe.testing import FakeHost, fake_probe_result

SCHEMA_PATH = Path(kvmprobe.__file__).parent / "schema" / "snapshot-2.schema.json"
SCHEMA_V1_PATH = Path(kvmprobe.__file__).parent / "schema" / "snapshot-1.schema.json"
Doc = Dict[str, Any]


@pytest.fixture(scope="module")
def schema() -> Dict[str, Any]:
    document: Dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(document)
    return document


def validate(schema: Dict[str, Any], doc: Doc) -> None:
    jsonschema.Draft202012Validator(schema).validate(doc)


@pytest.fixture
def facts(tmp_path: Path) -> HostFacts:
    return read_host_facts(FakeHost.centos7().write(str(tmp_path / "root")))


def rich_result(facts: HostFacts) -> kvmprobe.ProbeResult:
    """A recorded-looking host with counts, a failed query on each fd and VM-fd values: every row shape."""
    fake = fake_probe_result(
        {Cap.NR_MEMSLOTS: 509, Cap.IRQCHIP: 1, Cap.X2APIC_API: 15},
        vm_values={Cap.NR_MEMSLOTS: 509, Cap.X2APIC_API: 11},
        errors={Cap.HLT: 5},
        kernel="3.10.0-1160.el7.x86_64",
    )
    return dataclasses.replace(
        fake, vm_errors={Cap.IRQCHIP: 22}, host=facts, synthesized=False, recorded_at="2026-11-25T09:30:00Z"
    )


@pytest.fixture
def doc(facts: HostFacts) -> Doc:
    return snapshot_document(rich_result(facts))


# --- the writer ---------------------------------------------------------------------------------


def test_document_keys_come_in_the_documented_order(doc: Doc, schema: Dict[str, Any]) -> None:
    # The optional keys of schema 2 sit in their documented places: "derivation" right after
    # "synthesized" (absent here), "cpu" after "host" (null: not recorded), "run" (the micro-guest
    # checks, written only when run) and "confidential" (written only when recorded) last.
    properties = list(schema["properties"])
    optional = ("derivation", "run", "confidential")
    assert list(doc) == schema["required"] + ["cpu"] == [key for key in properties if key not in optional]
    assert properties.index("derivation") == properties.index("synthesized") + 1
    assert properties[-3:] == ["cpu", "run", "confidential"]
    assert doc["schema"] == "kvmprobe-snapshot" and doc["schema_version"] == 2 and doc["cpu"] is None
    assert doc["kvmprobe_version"] == kvmprobe.__version__
    assert [row["name"] for row in doc["capabilities"]] == [cap.c_name for cap in Cap]
    rows = {row["name"]: row for row in doc["capabilities"]}
    assert list(rows["KVM_CAP_HLT"]) == ["name", "number", "value", "error", "vm_value"]
    assert rows["KVM_CAP_HLT"]["value"] is None and rows["KVM_CAP_HLT"]["error"] == 5
    assert list(rows["KVM_CAP_IRQCHIP"]) == ["name", "number", "value", "vm_value", "vm_error"]
    assert rows["KVM_CAP_IRQCHIP"]["vm_value"] is None and rows["KVM_CAP_IRQCHIP"]["vm_error"] == 22
    assert rows["KVM_CAP_X2APIC_API"] == {"name": "KVM_CAP_X2APIC_API", "number": 129, "value": 15, "vm_value": 11}


def test_json_text_is_deterministic(facts: HostFacts) -> None:
    texts = {json.dumps(snapshot_document(rich_result(facts))) for _ in range(3)}
    assert len(texts) == 1


def test_without_vm_values_rows_have_no_vm_keys() -> None:
    doc = snapshot_document(fake_probe_result({"HLT": 1}))
    assert all(set(row) == {"name", "number", "value"} for row in doc["capabilities"])
    assert doc["host"] is None and doc["vm_created"] is False


def test_live_results_get_the_time_and_synthesized_ones_none() -> None:
    live = kvmprobe.ProbeResult(device="/dev/kvm", api_version=12, values={Cap.HLT: 1})
    when = snapshot_document(live)["recorded_at"]
    assert isinstance(when, str) and when.endswith("Z")
    load_snapshot(snapshot_document(live))  # the time it writes is one the reader accepts
    assert snapshot_document(load_preset("linux-5.4"))["recorded_at"] is None
    assert snapshot_document(live, recorded_at="2026-11-25T00:00:00Z")["recorded_at"] == "2026-11-25T00:00:00Z"


# --- round trips and the schema -------------------------------------------------------------------


def test_round_trip_keeps_every_value(doc: Doc, facts: HostFacts) -> None:
    original = rich_result(facts)
    loaded = load_snapshot(doc)
    assert dict(loaded.values) == dict(original.values)
    assert dict(loaded.errors) == {Cap.HLT: 5}
    assert loaded.vm_values is not None and original.vm_values is not None
    assert dict(loaded.vm_values) == {c: v for c, v in original.vm_values.items() if c is not Cap.IRQCHIP}
    assert dict(loaded.vm_errors) == {Cap.IRQCHIP: 22}
    assert (loaded.kernel, loaded.arch, loaded.api_version, loaded.device) == (
        "3.10.0-1160.el7.x86_64", "x86_64", 12, "/dev/kvm",
    )  # fmt: skip
    assert loaded.host == facts and loaded.recorded_at == "2026-11-25T09:30:00Z"
    assert loaded.source == "snapshot" and not loaded.synthesized
    assert snapshot_document(loaded) == doc


def test_file_round_trip(tmp_path: Path, doc: Doc) -> None:
    out = tmp_path / "out"
    out.mkdir()
    target = out / "host.json"
    write_snapshot(doc, str(target))
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in out.iterdir()] == ["host.json"]  # no temporary file left
    loaded = load_snapshot(target)
    assert loaded.source == f"snapshot:{target}"
    assert snapshot_document(loaded) == doc
    assert json.loads(target.read_text()) == doc


@pytest.mark.parametrize("name", ["pvm-6.18", "linux-3.10", "linux-6.1"])
def test_real_and_preset_documents_validate_against_the_schema(name: str, schema: Dict[str, Any]) -> None:
    validate(schema, snapshot_document(load_preset(name)))


def test_rich_document_validates(doc: Doc, schema: Dict[str, Any]) -> None:
    validate(schema, doc)


def test_the_schema_describes_every_host_fact(schema: Dict[str, Any], facts: HostFacts) -> None:
    assert list(schema["$defs"]["host"]["properties"]) == list(facts.to_dict())
    node = next(n for n in facts.devices.values() if n is not None)
    assert list(schema["$defs"]["device_node"]["properties"]) == list(node.to_dict())


def test_the_schema_ships_in_the_package() -> None:
    from importlib import resources

    for name in ("snapshot-1.schema.json", "snapshot-2.schema.json"):
        text = resources.files("kvmprobe").joinpath("schema").joinpath(name).read_text()
        assert json.loads(text)["properties"]["schema"] == {"const": "kvmprobe-snapshot"}


def test_a_version_1_document_still_loads_and_fits_its_schema(doc: Doc) -> None:
    old = {key: value for key, value in doc.items() if key != "cpu"}
    old["schema_version"] = 1
    jsonschema.Draft202012Validator(json.loads(SCHEMA_V1_PATH.read_text(encoding="utf-8"))).validate(old)
    host = load_snapshot(old)
    assert host.cpu is None and host.value("NR_MEMSLOTS") == 509
    with pytest.raises(SnapshotError, match=r"\$\.cpu: is a schema version 2 key"):
        load_snapshot({**old, "cpu": None})


# --- strict reading: each mistake names its field ---------------------------------------------------

Mutation = Callable[[Doc], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(doc: Doc) -> None:
        *parents, last = path.split("/")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(doc: Doc) -> None:
        *parents, last = path.split("/")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return mutate


def _future_row(doc: Doc) -> None:
    row = next(r for r in doc["capabilities"] if r["number"] == 136)
    row["name"] = "KVM_CAP_FROM_THE_FUTURE"


def _duplicate_row(doc: Doc) -> None:
    doc["capabilities"].append(dict(doc["capabilities"][0]))


def _renumber(doc: Doc) -> None:
    doc["capabilities"][5]["number"] = 4000


def _drop_one_vm_value(doc: Doc) -> None:
    del doc["capabilities"][7]["vm_value"]


def _vm_values_without_vm(doc: Doc) -> None:
    doc["vm_created"] = False


_DERIVED = {"kind": "derived from source", "sources": ["torvalds/linux@v3.10 arch/x86/kvm/x86.c:2500-2580"]}


def _derived_and_synthesized(doc: Doc) -> None:
    doc["derivation"] = dict(_DERIVED)
    doc["synthesized"] = True


def _derived_in_schema_1(doc: Doc) -> None:
    doc.pop("cpu", None)  # a version-1 document has no "cpu" (that is refused on its own)
    doc["derivation"] = dict(_DERIVED)
    doc["schema_version"] = 1


BAD = [
    ("value-string", _set("capabilities/3/value", "yes"), "$.capabilities[3].value", "expected an integer or null, got a string"),
    ("value-bool", _set("capabilities/3/value", True), "$.capabilities[3].value", "got a boolean"),
    ("value-float", _set("capabilities/3/value", 1.0), "$.capabilities[3].value", "got a number with a fraction"),
    ("value-negative", _set("capabilities/3/value", -1), "$.capabilities[3].value", "out of range"),
    ("value-too-big", _set("capabilities/3/value", 2**31), "$.capabilities[3].value", "out of range"),
    ("value-null", _set("capabilities/3/value", None), "$.capabilities[3].value", "no error says why"),
    ("error-with-value", _set("capabilities/3/error", 5), "$.capabilities[3].value", "must be null"),
    ("errno-zero", _set("capabilities/1/error", 0), "$.capabilities[1].error", "out of range"),
    ("row-key", _set("capabilities/2/since", "4.11"), "$.capabilities[2].since", "unknown key"),
    ("row-missing", _delete("capabilities/2/number"), "$.capabilities[2].number", "missing"),
    ("row-not-object", _set("capabilities/2", [1]), "$.capabilities[2]", "expected an object"),
    ("name-shape", _set("capabilities/2/name", "immediate_exit"), "$.capabilities[2].name", "not a capability name"),
    ("wrong-number", _renumber, "$.capabilities[5].number", "is number"),
    ("future-name-known-number", _future_row, "number", "KVM_CAP_IMMEDIATE_EXIT in this kvmprobe's table"),
    ("duplicate", _duplicate_row, "name", "listed twice"),
    ("vm-partial", _drop_one_vm_value, "$.capabilities[7].vm_value", "missing (other rows have one)"),
    ("vm-not-created", _vm_values_without_vm, "$.vm_created", "carry VM-fd values"),
    ("caps-not-list", _set("capabilities", {}), "$.capabilities", "expected an array, got an object"),
    ("top-key", _set("notes", "x"), "$.notes", "unknown key"),
    ("top-missing", _delete("kernel"), "$.kernel", "missing"),
    ("schema", _set("schema", "something-else"), "$.schema", "not a kvmprobe snapshot"),
    ("schema-version-newer", _set("schema_version", 3), "$.schema_version", "read it with the kvmprobe that wrote it"),
    ("schema-version-zero", _set("schema_version", 0), "$.schema_version", "out of range"),
    ("kernel-empty", _set("kernel", ""), "$.kernel", "non-empty"),
    ("kernel-escape", _set("kernel", "6.1\x1b[2J"), "$.kernel", "unprintable character '\\x1b'"),
    ("api-string", _set("api_version", "12"), "$.api_version", "expected an integer"),
    ("time-shape", _set("recorded_at", "yesterday"), "$.recorded_at", "ISO 8601"),
    ("time-invalid", _set("recorded_at", "2026-02-30T10:00:00Z"), "$.recorded_at", "not a valid date"),
    ("synthesized", _set("synthesized", "no"), "$.synthesized", "true or false"),
    ("host-field", _set("host/kernel_release", 3), "$.host.kernel_release", "expected a string"),
    ("host-type", _set("host", []), "$.host", "expected an object"),
    ("derivation-kind", _set("derivation", {**_DERIVED, "kind": "guessed"}), "$.derivation.kind", "derived from source"),
    ("derivation-no-source", _set("derivation", {**_DERIVED, "sources": []}), "$.derivation.sources", "cites its source"),
    ("derivation-key", _set("derivation", {**_DERIVED, "by": "me"}), "$.derivation.by", "unknown key"),
    ("derivation-text", _set("derivation", {**_DERIVED, "assumptions": [""]}), "$.derivation.assumptions[0]", "non-empty"),
    ("derivation-type", _set("derivation", "yes"), "$.derivation", "expected an object"),
    ("derived-and-synthesized", _derived_and_synthesized, "$.synthesized", "not synthesized"),
    ("derived-in-schema-1", _derived_in_schema_1, "$.derivation", "is a schema version 2 key"),
]


@pytest.mark.parametrize("mutate, field, fragment", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_documents_name_the_field(
    doc: Doc, schema: Dict[str, Any], mutate: Mutation, field: str, fragment: str, tmp_path: Path
) -> None:
    broken = copy.deepcopy(doc)
    mutate(broken)
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(broken)
    assert field in caught.value.field
    assert fragment in str(caught.value)
    # The same document in a file: the message names the file too, on one line.
    target = tmp_path / "bad.json"
    target.write_text(json.dumps(broken))
    with pytest.raises(SnapshotError) as in_file:
        load_snapshot(str(target))
    text = str(in_file.value)
    assert text.startswith(f"{target}: ") and field in text and "\n" not in text
    assert in_file.value.path == str(target)


@pytest.mark.parametrize(
    "case", [c for c in BAD if c[0] not in ("wrong-number", "future-name-known-number", "duplicate", "vm-partial",
                                                "vm-not-created", "time-invalid", "value-float")],
    ids=lambda c: c[0],
)  # fmt: skip
def test_the_schema_refuses_what_the_reader_refuses(doc: Doc, schema: Dict[str, Any], case: Any) -> None:
    broken = copy.deepcopy(doc)
    case[1](broken)
    with pytest.raises(jsonschema.ValidationError):
        validate(schema, broken)


def test_unknown_capabilities_are_kept_and_written_back(doc: Doc, schema: Dict[str, Any]) -> None:
    newer = copy.deepcopy(doc)
    future = {"name": "KVM_CAP_FROM_THE_FUTURE", "number": 300, "value": 7, "vm_value": 7}
    failed = {"name": "KVM_CAP_ALSO_NEW", "number": 299, "value": None, "error": 22, "vm_value": 0}
    newer["capabilities"] += [future, failed]
    validate(schema, newer)
    host = load_snapshot(newer)
    assert [dict(row) for row in host.unknown] == [future, failed]
    assert host.has("NR_MEMSLOTS") and host.value("NR_MEMSLOTS") == 509
    with pytest.raises(kvmprobe.UnknownCapability):
        host.has("KVM_CAP_FROM_THE_FUTURE")
    rows = snapshot_document(host)["capabilities"]
    assert rows[-2:] == [failed, future]  # by number, after the table


def test_capabilities_a_document_lacks_are_not_recorded_never_zero(doc: Doc) -> None:
    # An older kvmprobe did not know them, or the rows were cut out: unknown either way, and
    # reading them as 0 would call them unsupported (tests/unit/test_not_recorded.py: every command).
    older = copy.deepcopy(doc)
    older["capabilities"] = [r for r in older["capabilities"] if r["name"] != "KVM_CAP_X2APIC_API"]
    host = load_snapshot(older)
    with pytest.raises(CapabilityNotRecorded):
        host.value("X2APIC_API")
    assert Cap.X2APIC_API not in host.values and host.not_recorded == {Cap.X2APIC_API}


def test_null_host_is_allowed(doc: Doc) -> None:
    doc["host"] = None
    assert load_snapshot(doc).host is None


def test_wrong_argument_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        load_snapshot(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        load_snapshot(b"/tmp/x.json")  # type: ignore[arg-type]


def test_a_top_level_array_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "list.json"
    target.write_text("[1, 2]")
    with pytest.raises(SnapshotError, match=r"list\.json: \$: expected a JSON object, got an array"):
        load_snapshot(target)


# --- files that are not snapshots -----------------------------------------------------------------


def expect_file_error(path: str, fragment: str) -> SnapshotError:
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and fragment in text, text
    assert "\n" not in text
    return caught.value


def test_missing_file(tmp_path: Path) -> None:
    expect_file_error(str(tmp_path / "nope.json"), "cannot open: ENOENT")


def test_directory(tmp_path: Path) -> None:
    expect_file_error(str(tmp_path), "not a regular file (a directory)")


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    expect_file_error(str(fifo), "not a regular file (a FIFO)")  # would hang if it waited for a writer


def test_dev_zero_is_refused() -> None:
    expect_file_error("/dev/zero", "not a regular file (a character device)")


def test_oversized_file_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with open(big, "wb") as out:
        out.truncate(MAX_SNAPSHOT_BYTES + 1)  # sparse: the size alone must refuse it
    expect_file_error(str(big), "too large")


def test_invalid_utf8(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.json"
    bad.write_bytes(b'{"kernel": "caf\xe9"}')
    expect_file_error(str(bad), "not UTF-8 text (bad byte at offset 15)")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "not valid JSON: Expecting value at line 1, column 1"),
        ('{"schema": ', "not valid JSON"),
        ('{"a": NaN}', "NaN is no JSON number"),
        ('{"a": 1, "a": 2}', "key 'a' appears twice"),
        ("[" * 100000 + "]" * 100000, "nested too deeply"),
        # Python 3.11+ refuses integers of more than 4300 digits while parsing; 3.9 parses them.
        ('{"a": ' + "9" * 5000 + "}", "not valid JSON: a number has too many digits" if hasattr(sys, "get_int_max_str_digits") else "$.schema"),
        ("\ufeff{}", "not valid JSON"),
    ],
    ids=["empty", "truncated", "nan", "duplicate-key", "deep", "huge-int", "bom"],
)
def test_not_json(tmp_path: Path, text: str, fragment: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(text, encoding="utf-8")
    expect_file_error(str(bad), fragment)


# EACCES: see test_cli_snapshot_diff.test_unreadable_file_as_an_unprivileged_user (runs as uid 65534).


def test_write_into_a_missing_directory_is_a_snapshot_error(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="cannot write .*host.json: the directory .*missing does not exist") as err:
        write_snapshot({"schema": "kvmprobe-snapshot"}, str(tmp_path / "missing" / "host.json"))
    assert err.value.path == str(tmp_path / "missing" / "host.json") and "mkdir -p" in err.value.hint


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, doc: Doc) -> None:
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    target = tmp_path / "host.json"
    write_snapshot(doc, str(target))
    before = target.read_bytes()
    with pytest.raises(TypeError):
        write_snapshot({"x": object()}, str(target))  # not serializable: fails before any file is made
    with pytest.raises(SnapshotError, match="cannot write"):
        write_snapshot(doc, str(tmp_path))  # a directory cannot be replaced by a file
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host.json"]


@pytest.fixture
def no_fd_leak() -> Iterator[None]:
    from _helpers import open_fds

    before = set(open_fds())
    yield
    assert set(open_fds()) - before == set()


def test_reading_leaks_no_fd(no_fd_leak: None, tmp_path: Path, doc: Doc) -> None:
    target = tmp_path / "host.json"
    write_snapshot(doc, str(target))
    for path in (str(target), str(tmp_path), "/dev/zero", str(tmp_path / "missing")):
        try:
            load_snapshot(path)
        except SnapshotError:
            pass
