"""VMM release numbers as the VMMs spell them: parsing, comparing, and release ranges.

Imports nothing from the package. A release is a tuple of integers (``v45.0`` is ``(45, 0)``,
``7.2.22`` is ``(7, 2, 22)``, gVisor's ``release-20260817.0`` is ``(20260817, 0)``). A range of
releases (:class:`Span`) has an inclusive first release and an inclusive last one; a last
release ending in ``.x`` covers every release that starts with the numbers before it
(``v52.x`` is every ``v52.*``, ``8.1.x`` every ``8.1.*``). A release given with fewer numbers
than a bound means its first point release (``v45`` is ``v45.0``, ``7.2`` is ``7.2.0``).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple, Optional, Sequence, Tuple

    Version = Tuple[int, ...]
else:
    from ._value import NamedTuple

__all__ = ["Span", "parse_bound", "parse_version", "spelled"]

# Digits and dots, at most 6 numbers of at most 9 digits each (gVisor's dates have 8).
_MAX_NUMBERS, _MAX_DIGITS = 6, 9


def _numbers(body: str) -> bool:
    """Whether ``body`` is 1 to 6 dot-separated runs of 1 to 9 ASCII digits (no ``re``: it costs
    milliseconds to import, and a check of a recorded host never needs it otherwise)."""
    parts = body.split(".")
    return len(parts) <= _MAX_NUMBERS and all(
        1 <= len(part) <= _MAX_DIGITS and part.isascii() and part.isdigit() for part in parts
    )


def parse_version(text: str, prefixes: Sequence[str] = ("v",)) -> Optional[Version]:
    """The release ``text`` names (one of ``prefixes`` may lead, in any case), or ``None``.

    Example:
        >>> parse_version("v45.0"), parse_version("45"), parse_version("7.2.22", ("",))
        ((45, 0), (45,), (7, 2, 22))
        >>> parse_version("release-20260817.0", ("release-",)), parse_version("v45.x"), parse_version("")
        ((20260817, 0), None, None)
    """
    body = text.strip()
    for prefix in sorted(prefixes, key=len, reverse=True):
        if prefix and body.lower().startswith(prefix.lower()):
            body = body[len(prefix):]
            break
    if not _numbers(body):
        return None
    return tuple(int(part) for part in body.split("."))


def parse_bound(text: str, prefixes: Sequence[str] = ("v",)) -> Tuple[Version, bool]:
    """A range bound: the release and whether it ends in ``.x`` (every release it starts).

    Raises:
        ValueError: not a release (the data tables are checked when they load).

    Example:
        >>> parse_bound("v52.x"), parse_bound("v28.2")
        (((52,), True), ((28, 2), False))
    """
    wild = text.endswith(".x")
    found = parse_version(text[:-2] if wild else text, prefixes)
    if found is None:
        raise ValueError(f"not a release bound: {text!r}")
    return found, wild


def _padded(version: Version, width: int) -> Version:
    return version + (0,) * (width - len(version))


class Span(NamedTuple):
    """An inclusive range of releases, as the data tables write it (``"v40.0"`` to ``"v48.x"``).

    Example:
        >>> span = Span("v40.0", "v48.x")
        >>> span.contains((45,)), span.contains((48, 3, 1)), span.contains((49, 0)), span.label
        (True, True, False, 'v40.0 to v48.x')
    """

    first: str
    last: str
    prefixes: Tuple[str, ...] = ("v",)

    @property
    def label(self) -> str:
        """``v40.0 to v48.x``, or one release where first and last are the same."""
        return self.first if self.first == self.last else f"{self.first} to {self.last}"

    def contains(self, version: Version) -> bool:
        """Whether ``version`` falls in this range (see the module docstring)."""
        first, _ = parse_bound(self.first, self.prefixes)
        last, wild = parse_bound(self.last, self.prefixes)
        width = max(len(first), len(version), len(last))
        if _padded(version, width) < _padded(first, width):
            return False
        if wild:
            return version[: len(last)] <= last
        return _padded(version, width)[: len(last)] <= last

    def follows(self, before: Span) -> bool:
        """Whether this range starts right after ``before`` ends (no gap, no overlap).

        After ``v28.2`` comes ``v28.3``; after ``v29.x`` comes ``v30.0``.

        Example:
            >>> Span("v30.0", "v39.x").follows(Span("v29.0", "v29.x")), Span("v30.0", "v39.x").follows(Span("v21.0", "v28.x"))
            (True, False)
        """
        last, wild = parse_bound(before.last, before.prefixes)
        first, _ = parse_bound(self.first, self.prefixes)
        step = last[:-1] + (last[-1] + 1,)
        width = max(len(step) + (1 if wild else 0), len(first))
        return _padded(step, width) == _padded(first, width)


def spelled(version: Version, prefix: str) -> str:
    """A release as the VMM writes it.

    Example:
        >>> spelled((45, 0), "v"), spelled((20260817, 0), "release-")
        ('v45.0', 'release-20260817.0')
    """
    return prefix + ".".join(str(part) for part in version)
