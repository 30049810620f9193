"""The answers of one fd as a read-only mapping over one row: :class:`CapValues`.

Imports ``caps`` only. What :attr:`kvmprobe.ProbeResult.values` and ``vm_values`` are: a
``Cap -> int`` mapping whose answers are one tuple in table order (``None``: no answer), a fifth
of what a dict of the same answers holds, so that a fleet's thousands of loaded hosts stay small
(issue #19). Public through ``kvmprobe.probing``.
"""

from __future__ import annotations

from collections.abc import Mapping

from .caps import Cap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional, Tuple

__all__ = ["CapValues"]

_CAPS: Tuple[Cap, ...] = tuple(Cap)
# Each member's place in the table (a plain int finds its member: Cap hashes as its number).
_POSITION: Dict[Cap, int] = {cap: index for index, cap in enumerate(_CAPS)}
# Keys a dict hit would wrongly answer: True == 1 == 1.0 find KVM_CAP_HLT.
_NOT_KEYS = frozenset({bool, float, complex})
_EMPTY: Mapping[Cap, int] = {}


class CapValues(Mapping):  # type: ignore[type-arg]
    """The answers of one fd, ``Cap -> int``, read-only: one slot per row of the table.

    What :attr:`ProbeResult.values` and ``vm_values`` are. A capability without an answer (its
    query failed, or a recording has no row for it) has no key. Holding it costs one tuple the
    length of the table (a dict of the same answers costs about five times more), so a fleet's
    thousands of loaded hosts stay small. Keys are members; a plain number finds its member.

    Example:
        >>> values = CapValues({Cap.HLT: 1, Cap.NR_MEMSLOTS: 32764})
        >>> values[Cap.HLT], values.get(10), Cap.IRQCHIP in values, len(values), dict(values) == {Cap.HLT: 1, Cap.NR_MEMSLOTS: 32764}
        (1, 32764, False, 2, True)
    """

    __slots__ = ("_row", "_count")

    _row: Tuple[Optional[int], ...]
    _count: int

    def __init__(self, answers: Mapping[Cap, int] = _EMPTY) -> None:
        if answers.__class__ is CapValues:
            row: Tuple[Optional[int], ...] = answers._row  # it is a CapValues
        else:
            cells: List[Optional[int]] = [None] * len(_CAPS)
            for cap, answer in answers.items():
                position = _POSITION.get(cap)
                if position is None:
                    raise KeyError(f"{cap!r} is not a capability of kvmprobe's table")
                cells[position] = answer
            row = tuple(cells)
        object.__setattr__(self, "_row", row)
        object.__setattr__(self, "_count", -1)

    @classmethod
    def _of(cls, row: Tuple[Optional[int], ...]) -> CapValues:
        """A view over ``row`` (table order, ``None``: no answer), taken as it is."""
        made = cls.__new__(cls)
        object.__setattr__(made, "_row", row)
        object.__setattr__(made, "_count", -1)
        return made

    def __getitem__(self, cap: Any) -> int:
        position = _POSITION.get(cap) if cap.__class__ not in _NOT_KEYS else None
        answer = self._row[position] if position is not None else None
        if answer is None:
            raise KeyError(cap)
        return answer

    def get(self, cap: Any, default: Any = None) -> Any:
        position = _POSITION.get(cap) if cap.__class__ not in _NOT_KEYS else None
        if position is None:
            return default
        answer = self._row[position]
        return default if answer is None else answer

    def __contains__(self, cap: object) -> bool:
        found: Optional[int] = self.get(cap)
        return found is not None

    def __iter__(self) -> Iterator[Cap]:
        return (cap for cap, answer in zip(_CAPS, self._row) if answer is not None)

    def __len__(self) -> int:
        if self._count < 0:
            object.__setattr__(self, "_count", len(self._row) - self._row.count(None))
        return self._count

    def __eq__(self, other: object) -> bool:
        if other.__class__ is CapValues:
            return self._row == other._row
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"CapValues is read-only (cannot set {name!r})")

    def __repr__(self) -> str:
        return f"CapValues({dict(self)!r})"

    def __reduce__(self) -> Any:
        return (CapValues._of, (self._row,))
