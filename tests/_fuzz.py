"""The snapshot fuzzers' strategies, shared by unit/test_snapshot_fuzz.py and hardening/test_hostile_input.py.

A real document (the recorded pvm-6.18 host, the richest there is) and its locations; JSON values
made of plain or hostile scalars; the document with one to three edits at those locations; JSON
text of a document, maybe corrupted. The two files differ in what they feed these (plain values
for the schema's agreement, hostile ones for the reports) and in their settings.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Dict, Iterator, List, Sequence, Tuple, Union

from hypothesis import strategies as st

from kvmprobe.presets import load_preset
from kvmprobe.snapshot import snapshot_document

Location = Tuple[Union[str, int], ...]

#: The recorded host as a snapshot document: VM-fd values, every host fact, the CPU section.
BASE: Dict[str, Any] = snapshot_document(load_preset("pvm-6.18"))


def locations(node: Any, prefix: Location = ()) -> Iterator[Location]:
    """Every location in a JSON document (object keys and array indexes), parents first."""
    if isinstance(node, dict):
        for key, child in node.items():
            yield prefix + (key,)
            yield from locations(child, prefix + (key,))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield prefix + (index,)
            yield from locations(child, prefix + (index,))


ALL_LOCATIONS: List[Location] = list(locations(BASE))


def value_at(document: Any, at: Location) -> Any:
    node = document
    for step in at:
        node = node[step]
    return node


# Values a well-meaning writer might put anywhere: JSON's types, edge numbers, near-miss names.
plain_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, 4095, 4096, 12])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "KVM_CAP_HLT", "KVM_CAP_NEW_ONE", "kvm-snapshot", "2026-11-25T09:30:00Z", "\x1b[2J"])
)

# Any character, surrogates and controls included, and terminal escapes.
hostile_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=16),
    st.sampled_from(["", "\x1b[2J", "\x1b]0;owned\x07", "\udc80", "\ud800x", "\u2028", "²", "١٣٦", "\x00", "KVM_CAP_HLT"]),
)
hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([-1, 2**31, 2**32, 2**63, 2**64, -(2**63) - 1, 10**100, 10**4000]),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
)


def json_values(
    scalars: st.SearchStrategy[Any], keys: st.SearchStrategy[str], max_leaves: int
) -> st.SearchStrategy[Any]:
    """JSON values: ``scalars``, and lists and objects (keys from ``keys``) of them."""
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
        max_leaves=max_leaves,
    )


@st.composite
def mutated(draw: st.DrawFn, values: st.SearchStrategy[Any], keys: st.SearchStrategy[str],
            base: Dict[str, Any] = BASE, where: Sequence[Location] = ALL_LOCATIONS) -> Tuple[Any, List[Location]]:
    """``base`` with one to three edits at locations of ``where``: a value replaced, a key or item
    deleted, a key (or item) added. Returns the document and the locations edited (an edit whose
    way an earlier one removed or retyped is left out)."""
    document = copy.deepcopy(base)
    edited: List[Location] = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        at = draw(st.sampled_from(list(where)))
        try:
            parent = value_at(document, at[:-1])
            parent[at[-1]]  # noqa: B018  the location may be gone after an earlier edit
        except (KeyError, IndexError, TypeError):
            continue
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            parent[at[-1]] = draw(values)
        elif action == "delete":
            del parent[at[-1]]
        elif isinstance(parent, dict):
            parent[draw(keys)] = draw(values)
        else:
            parent.insert(int(at[-1]), draw(values))
        edited.append(at)
    return document, edited


@st.composite
def encoded(draw: st.DrawFn, document: Any) -> bytes:
    """JSON text (sometimes with NaN, non-ASCII, lone surrogates as raw bytes), maybe corrupted."""
    text = json.dumps(document, ensure_ascii=draw(st.booleans()), allow_nan=True)
    data = text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes invalid UTF-8
    corruption = draw(st.sampled_from(["none", "none", "truncate", "insert"]))
    if corruption == "truncate" and data:
        data = data[: draw(st.integers(min_value=0, max_value=len(data) - 1))]
    elif corruption == "insert":
        at = draw(st.integers(min_value=0, max_value=len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    return data
