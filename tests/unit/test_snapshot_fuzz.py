"""Fuzzing the snapshot loader: any input gives a host or the documented SnapshotError, nothing else.

Bounded (a few hundred examples per property, no example database) so the suite stays fast.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, List, Optional, Tuple, Union

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvmprobe
from kvmprobe import Cap, ProbeResult, SnapshotError
from kvmprobe.snapshot import load_snapshot, snapshot_document

import _fuzz  # noqa: I001 (the strategies shared with hardening/test_hostile_input.py)
from _fuzz import BASE

# FUZZ_EXAMPLES=5000 for a deeper run by hand; the suite's default keeps this file near two seconds.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

BASE_TEXT = json.dumps(BASE, indent=2).encode("utf-8")
SCHEMA_PATH = os.path.join(os.path.dirname(kvmprobe.__file__), "schema", "snapshot-2.schema.json")
with open(SCHEMA_PATH, encoding="utf-8") as _schema_file:
    SCHEMA = jsonschema.Draft202012Validator(json.load(_schema_file))

# Plain values (the schema's agreement is the point here; hostile ones are the hardening file's).
json_values = _fuzz.json_values(_fuzz.plain_scalars, st.text(max_size=8), max_leaves=12)


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
@given(_fuzz.mutated(json_values, st.text(max_size=8)))
def test_mutated_documents(case: Tuple[Dict[str, Any], List[_fuzz.Location]]) -> None:
    doc, edited = case
    answer = load_or_error(doc)
    if isinstance(answer, ProbeResult):
        check_result(answer)
        # Host facts are validated by HostFacts.from_dict, whose rules the schema mirrors less tightly.
        if all(at[0] != "host" for at in edited):
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
