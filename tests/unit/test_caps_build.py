"""Cap's fast build (``caps._TableEnumType``) against ``enum``'s own build of the same members.

The metaclass skips ``enum``'s per-member machinery for speed (issue #19); this compares what
it builds with what ``enum.IntEnum`` builds from the same lines, on every observable: the
members, their attributes, the class tables, lookups, printing, pickling and errors.
"""

from __future__ import annotations

import enum
import pickle
import sys
from typing import Any, Dict, List

import pytest

from kvmprobe.caps import Cap


def _standard() -> Any:
    """``Cap``'s members built by ``enum`` itself, with the same metadata on each."""

    def __new__(cls: Any, number: int, since: Any, since_text: str, rust: Any, arches: Any) -> Any:
        member = int.__new__(cls, number)
        member._value_ = number
        member.since, member.since_text, member.rust_name, member.arches = since, since_text, rust, arches
        return member

    namespace = enum.EnumMeta.__prepare__("Cap", (enum.IntEnum,))
    namespace["__module__"] = Cap.__module__
    namespace["__qualname__"] = Cap.__qualname__
    namespace["__new__"] = __new__
    for name in ("c_name", "in_cap_rs", "applies_to", "lookup", "__doc__", "__annotations__"):  # the class body's own
        namespace[name] = vars(Cap)[name]
    for cap in Cap:
        namespace[cap.name] = (int(cap), cap.since, cap.since_text, cap.rust_name, cap.arches)
    return enum.EnumMeta("Cap", (enum.IntEnum,), namespace)


@pytest.fixture(scope="module")
def standard() -> Any:
    return _standard()


def _attributes(member: Any) -> Dict[str, Any]:
    found = dict(vars(member))
    found["__objclass__"] = found["__objclass__"].__name__
    return found


def test_members_and_their_attributes_are_enums_own(standard: Any) -> None:
    assert [(m.name, m.value) for m in Cap] == [(m.name, m.value) for m in standard]
    for fast, slow in zip(Cap, standard):
        assert _attributes(fast) == _attributes(slow)
        assert (repr(fast), str(fast), format(fast), f"{fast:>5}", hash(fast)) == (
            repr(slow),
            str(slow),
            format(slow),
            f"{slow:>5}",
            hash(slow),
        )
        # Apart from the member maker, and enum's copy of the __new__ the standard build was given.
        assert set(dir(fast)) - {"_build_member"} == set(dir(slow)) - {"__new_member__"}
        assert fast.__objclass__ is Cap and isinstance(fast, (enum.IntEnum, int))  # type: ignore[attr-defined]


def test_class_tables_lookups_and_errors_are_enums_own(standard: Any) -> None:
    assert len(Cap) == len(standard)
    assert list(Cap.__members__) == list(standard.__members__)
    assert [m.name for m in reversed(Cap)] == [m.name for m in reversed(standard)]
    assert sorted(dir(Cap)) == sorted(dir(standard))
    assert list(Cap._value2member_map_) == list(standard._value2member_map_)
    assert Cap(136) is Cap.IMMEDIATE_EXIT and Cap["HLT"] is Cap.HLT and Cap.HLT in Cap
    messages: List[str] = []
    for cls in (Cap, standard):
        with pytest.raises(ValueError) as bad_value:
            cls(9999)
        with pytest.raises(KeyError) as bad_name:
            cls["NOPE"]
        with pytest.raises(AttributeError) as reassigned:
            cls.HLT = 3  # type: ignore[misc]
        messages += [str(bad_value.value).replace(cls.__qualname__, "C"), str(bad_name.value), str(reassigned.value)]
    assert messages[:3] == messages[3:]
    if sys.version_info >= (3, 12):  # values are members' containers from 3.12 on
        assert (136 in Cap, 9999 in Cap) == (136 in standard, 9999 in standard) == (True, False)


def test_members_pickle_and_copy_to_themselves() -> None:
    import copy

    for cap in (Cap.HLT, Cap.S390_HPAGE_2G):
        assert pickle.loads(pickle.dumps(cap)) is cap
        assert copy.copy(cap) is cap and copy.deepcopy(cap) is cap


def test_bad_table_lines_are_refused() -> None:
    from kvmprobe.caps import _TableEnumType

    with pytest.raises(ValueError, match="bad 'since'"):
        _TableEnumType("Bad", (Cap.__mro__[1],), {"_build_member": vars(Cap)["_build_member"], "X": (1, "4")})
