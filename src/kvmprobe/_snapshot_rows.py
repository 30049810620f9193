"""A snapshot's capability rows, read strictly: the answers in table order, fast for a fleet.

Imports ``caps``, ``_validate`` and ``_value``. :func:`read_rows` turns the ``capabilities`` array
of a snapshot document into rows the length of the ``Cap`` table (``None``: no answer there),
the errno of each failed query, the rows this kvmprobe's table lacks (kept as read) and the
capabilities the document has no row for. A well-formed array is read in one tight pass (a
fleet loads thousands of them: issue #19); anything else is read again field by field, so that
the error names the field exactly as it always did. Identical rows are shared between the
documents read (a fleet's hosts of one kernel answer alike), up to :data:`SHARED_ROWS` of them.
"""

from __future__ import annotations

from types import MappingProxyType

from ._validate import Checker, key_path, type_word
from ._value import Shared
from .caps import Cap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, FrozenSet, List, Mapping, NamedTuple, Optional, Set, Tuple

    Row = Tuple[Optional[int], ...]
else:
    from ._value import NamedTuple

__all__ = ["ROW_KEYS", "Rows", "SHARED_ROWS", "read_rows"]

#: The keys a capability row may have.
ROW_KEYS = ("name", "number", "value", "error", "vm_value", "vm_error")
#: How many distinct rows are kept to be shared (each about 2 kB).
SHARED_ROWS = 256

# KVM_CHECK_EXTENSION returns a C int; a negative return is an error (errno), never a value.
_INT_MAX = 2**31 - 1
# errno values are small positive numbers (Linux: below 4096, the -MAX_ERRNO window).
_ERRNO_MAX = 4095
_CAPS: Tuple[Cap, ...] = tuple(Cap)
_POSITION: Dict[str, Tuple[int, Cap]] = {cap.c_name: (index, cap) for index, cap in enumerate(_CAPS)}
_PLAIN = frozenset(("name", "number", "value"))
_WITH_VM = frozenset(("name", "number", "value", "vm_value"))
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_shared = Shared(SHARED_ROWS)


class Rows(NamedTuple):
    """What a ``capabilities`` array says, in table order."""

    values: Row
    errors: Dict[Cap, int]
    vm_values: Optional[Row]
    vm_errors: Dict[Cap, int]
    unknown: Tuple[Mapping[str, Any], ...]
    not_recorded: FrozenSet[Cap]


def read_rows(check: Checker, rows: Any) -> Rows:
    """The rows of a snapshot's ``capabilities`` array; ``check`` raises the caller's error.

    Example:
        >>> check = Checker(lambda field, message, hint: ValueError(f"{field}: {message}"))
        >>> read = read_rows(check, [{"name": "KVM_CAP_HLT", "number": 1, "value": 1}])
        >>> read.values[1], read.values[0], Cap.IRQCHIP in read.not_recorded, read.vm_values
        (1, None, True, None)
        >>> read_rows(check, [{"name": "KVM_CAP_HLT", "number": 2, "value": 1}])
        Traceback (most recent call last):
        ...
        ValueError: $.capabilities[0].number: KVM_CAP_HLT is number 1, not 2
    """
    if not isinstance(rows, list):
        check.fail("$.capabilities", f"expected an array, got {type_word(rows)}")
    read = _quick(rows)
    return read if read is not None else _checked(check, rows)


def _quick(rows: List[Any]) -> Optional[Rows]:
    """The common document in one pass: every row a known capability, in its number, with a
    value (and, in every row or none, a VM-fd value) and no error; ``None`` for anything else."""
    if not rows or rows[0].__class__ is not dict:
        return None
    keys = _WITH_VM if "vm_value" in rows[0] else _PLAIN
    values: List[Optional[int]] = [None] * len(_CAPS)
    vm_values: Optional[List[Optional[int]]] = [None] * len(_CAPS) if keys is _WITH_VM else None
    seen = 0
    for row in rows:
        if row.__class__ is not dict or row.keys() != keys:
            return None
        name = row["name"]
        found = _POSITION.get(name) if name.__class__ is str else None
        if found is None:
            return None
        index, cap = found
        number, value = row["number"], row["value"]
        if number.__class__ is not int or number != cap or value.__class__ is not int or not 0 <= value <= _INT_MAX:
            return None
        if values[index] is not None:
            return None  # listed twice: the field-by-field reading says where
        values[index] = value
        if vm_values is not None:
            vm_value = row["vm_value"]
            if vm_value.__class__ is not int or not 0 <= vm_value <= _INT_MAX:
                return None
            vm_values[index] = vm_value
        seen += 1
    listed = frozenset() if seen == len(_CAPS) else frozenset(cap for cap, v in zip(_CAPS, values) if v is None)
    return Rows(
        _shared(tuple(values)),
        {},
        None if vm_values is None else _shared(tuple(vm_values)),
        {},
        (),
        listed,
    )


def _checked(check: Checker, rows: List[Any]) -> Rows:
    """Every row checked field by field: what :func:`_quick` leaves, with the exact error."""
    values: List[Optional[int]] = [None] * len(_CAPS)
    vm_values: List[Optional[int]] = [None] * len(_CAPS)
    errors: Dict[Cap, int] = {}
    vm_errors: Dict[Cap, int] = {}
    unknown: List[Mapping[str, Any]] = []
    names: Set[str] = set()
    numbers: Dict[int, str] = {}
    with_vm: Optional[bool] = None
    for index, row in enumerate(rows):
        at = f"$.capabilities[{index}]"
        row = check.mapping(row, at)
        for key in row:
            if key not in ROW_KEYS:
                check.fail(key_path(at, str(key)), "unknown key", hint=f"a row has: {', '.join(ROW_KEYS)}")
        for key in ("name", "number", "value"):
            if key not in row:
                check.fail(f"{at}.{key}", "missing")
        name = check.text(row["name"], f"{at}.name")
        if not (name.startswith("KVM_CAP_") and len(name) > 8 and _NAME_CHARS.issuperset(name)):
            check.fail(f"{at}.name", f"{name!r} is not a capability name like KVM_CAP_IMMEDIATE_EXIT")
        if name in names:
            check.fail(f"{at}.name", f"{name} is listed twice")
        names.add(name)
        number = check.integer(row["number"], f"{at}.number", 0, _INT_MAX)
        if number in numbers:
            check.fail(f"{at}.number", f"{number} is listed twice ({numbers[number]} and {name})")
        numbers[number] = name
        value, error = _answer(check, row, at, "value", "error")
        has_vm = "vm_value" in row
        if with_vm is None:
            with_vm = has_vm
        elif has_vm != with_vm:
            check.fail(f"{at}.vm_value", "missing (other rows have one)" if with_vm else "present (other rows have none)")
        if not has_vm and "vm_error" in row:
            check.fail(f"{at}.vm_error", "present without vm_value")
        vm_value, vm_error = _answer(check, row, at, "vm_value", "vm_error") if has_vm else (None, None)
        found = _POSITION.get(name)
        if found is None:
            try:
                known: Optional[Cap] = Cap(number)
            except ValueError:
                known = None
            if known is not None:
                check.fail(f"{at}.number", f"{number} is {known.c_name} in this kvmprobe's table, not {name}")
            unknown.append(MappingProxyType({key: row[key] for key in ROW_KEYS if key in row}))
            continue
        position, cap = found
        if number != int(cap):
            check.fail(f"{at}.number", f"{name} is number {int(cap)}, not {number}")
        if error is not None:
            errors[cap] = error
        elif value is not None:
            values[position] = value
        if vm_error is not None:
            vm_errors[cap] = vm_error
        elif vm_value is not None:
            vm_values[position] = vm_value
    # A row the document lacks is not recorded, never 0 (unsupported): cut out, or written by a
    # kvmprobe that did not know the capability.
    not_recorded = frozenset(cap for cap in _CAPS if cap.c_name not in names)
    return Rows(
        _shared(tuple(values)),
        errors,
        _shared(tuple(vm_values)) if with_vm else None,
        vm_errors,
        tuple(unknown),
        not_recorded,
    )


def _answer(check: Checker, row: Mapping[str, Any], at: str, value_key: str, error_key: str) -> Tuple[Optional[int], Optional[int]]:
    """A value and its errno: exactly one of the two is set (null value iff an error)."""
    value = check.integer_or_null(row[value_key], f"{at}.{value_key}", 0, _INT_MAX)
    if error_key in row:
        error = check.integer(row[error_key], f"{at}.{error_key}", 1, _ERRNO_MAX)
        if value is not None:
            check.fail(f"{at}.{value_key}", f"must be null when the query failed ({error_key} is set)")
        return None, error
    if value is None:
        check.fail(f"{at}.{value_key}", f"is null, but no {error_key} says why")
    return value, None
