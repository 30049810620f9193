"""Fuzzing the snapshot loader: any input gives a host or the documented SnapshotError, nothing else.

Bounded (a few hundred examples per property, no example database) so the suite stays fast.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvmprobe
from kvmprobe import Cap, ProbeResult, SnapshotError
from kvmprobe.presets import load_preset
from kvmprobe.snapshot import load_snapshot, snapshot_document

# FUZZ_EXAMPLES=5000 for a deeper run by hand; the suite's default keeps this file near two seconds.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# The richest real document there is: the recorded host, with VM-fd values and every host fact.
BASE: Dict[str, Any] = snapshot_document(load_preset("pvm-6.18"))
BASE_TEXT = json.dumps(BASE, indent=2).encode("utf-8")
SCHEMA_PATH = os.path.join(os.path.dirname(kvmprobe.__file__), "schema", "snapshot-2.schema.json")
with open(SCHEMA_PATH, encoding="utf-8") as _schema_file:
    SCHEMA = jsonschema.Draft202012Validator(json.load(_schema_file))

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, 4095, 4096, 12])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "KVM_CAP_HLT", "KVM_CAP_NEW_ONE", "kvm-snapshot", "2026-11-25T09:30:00Z", "\x1b[2J"])
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)

Path = Tuple[Union[str, int], ...]


def paths(node: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every location in a JSON document (object keys and array indexes), parents first."""
    if isinstance(node, dict):
        for key, child in node.items():
            yield prefix + (key,)
            yield from paths(child, prefix + (key,))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield prefix + (index,)
            yield from paths(child, prefix + (index,))


ALL_PATHS: List[Path] = list(paths(BASE))


def parent_of(doc: Any, path: Path) -> Any:
    node = doc
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def mutated_documents(draw: st.DrawFn) -> Tuple[Dict[str, Any], bool]:
    """The real document with 1-3 edits: a value replaced, a key or item deleted, a key added.

    Also says whether every edit stayed outside ``$.host`` (host facts are validated by
    ``HostFacts.from_dict``, whose rules the schema mirrors less tightly).
    """
    doc = copy.deepcopy(BASE)
    outside_host = True
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(ALL_PATHS))
        try:
            parent = parent_of(doc, path)
            key = path[-1]
            parent[key]  # noqa: B018  the path may be gone after an earlier edit
        except (KeyError, IndexError, TypeError):
            continue
        outside_host = outside_host and path[0] != "host"
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[key] = draw(json_values)
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_values)
        else:
            parent.insert(int(key), draw(json_values))
    return doc, outside_host


def load_or_error(source: Union[str, Dict[str, Any]]) -> Union[ProbeResult, SnapshotError]:
    """The loader's answer; anything other than a result or SnapshotError propagates and fails the test."""
    try:
        return load_snapshot(source)
    except SnapshotError as err:
        text = str(err)
        assert text and "\n" not in text and (err.field.startswith("$") or err.field == ""), text
        return err


def load_bytes(data: bytes) -> Union[ProbeResult, SnapshotError]:
    fd, path = tempfile.mkstemp(suffix=".json")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        answer = load_or_error(path)
        if isinstance(answer, SnapshotError):
            assert str(answer).startswith(f"{path}: ") and answer.path == path
        return answer
    finally:
        os.unlink(path)


def answers(result: ProbeResult) -> Dict[Cap, Tuple[Optional[int], Optional[int], bool]]:
    """(value, errno, not recorded) per capability; one a document did not list is not recorded."""
    return {
        cap: (None if cap in result.errors else result.values.get(cap, 0), result.errors.get(cap), cap in result.not_recorded)
        for cap in Cap
    }


def check_result(result: ProbeResult) -> None:
    """An accepted document writes back a valid document that loads to the same host."""
    again = snapshot_document(result)
    SCHEMA.validate(again)
    reloaded = load_snapshot(again)
    assert answers(reloaded) == answers(result)
    assert reloaded.unknown == result.unknown or [dict(r) for r in reloaded.unknown] == sorted(
        (dict(r) for r in result.unknown), key=lambda r: int(r["number"])
    )


@FUZZ
@given(mutated_documents())
def test_mutated_documents(case: Tuple[Dict[str, Any], bool]) -> None:
    doc, outside_host = case
    answer = load_or_error(doc)
    if isinstance(answer, ProbeResult):
        check_result(answer)
        if outside_host:
            # What the loader accepts, the published schema accepts too.
            SCHEMA.validate(doc)


@FUZZ
@given(json_values)
def test_any_json_value(value: Any) -> None:
    answer = load_bytes(json.dumps(value).encode("utf-8"))
    assert isinstance(answer, SnapshotError)  # nothing random is a whole snapshot
    if isinstance(value, dict):
        assert isinstance(load_or_error(value), SnapshotError)


@FUZZ
@given(st.binary(max_size=512))
def test_any_bytes(data: bytes) -> None:
    assert isinstance(load_bytes(data), SnapshotError)


@FUZZ
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=len(BASE_TEXT) - 1), st.integers(0, 255)), min_size=1, max_size=4))
def test_flipped_bytes_of_a_real_file(flips: List[Tuple[int, int]]) -> None:
    data = bytearray(BASE_TEXT)
    for offset, byte in flips:
        data[offset] = byte
    answer = load_bytes(bytes(data))
    if isinstance(answer, ProbeResult):
        check_result(answer)


def test_the_unmutated_document_loads() -> None:
    # The fuzz above starts from this document: it must itself be accepted.
    answer = load_bytes(BASE_TEXT)
    assert isinstance(answer, ProbeResult) and answer.value("NR_MEMSLOTS") > 1
    SCHEMA.validate(BASE)
