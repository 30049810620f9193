"""Parse Linux kernel release strings (``uname -r``) into comparable version tuples.

Imports nothing from the package. The one release parser: recorded snapshots, custom profiles
and the ``Cap`` table's first releases all come through it. Releases come from untrusted files,
so each number is at most nine ASCII digits (``int()`` of a 5,000-digit string raises, and
``\\d`` would also match other scripts' digits, which ``int()`` then reads as numbers).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Tuple

# Nine digits: far beyond any release, and always an int without surprises.
_MAX_DIGITS = 9
_DIGITS = frozenset("0123456789")


def _digits(text: str, start: int) -> int:
    """Where the run of ASCII digits that starts at ``start`` ends."""
    end = start
    while end < len(text) and text[end] in _DIGITS:
        end += 1
    return end


def parse_release(release: str, *, exact: bool = False) -> Optional[Tuple[int, int]]:
    """``(major, minor)`` of a kernel release, or ``None`` when it has no ``N.N`` at its start.

    Vendor suffixes are ignored: RHEL's ``3.10.0-1160.el7.x86_64`` is ``(3, 10)`` (and carries
    many backports, so a capability's first release is advice, the kernel's answer the truth).
    With ``exact=True`` nothing may follow (``"5.10"``, as profiles give a minimum kernel).

    Example:
        >>> parse_release("3.10.0-1160.el7.x86_64"), parse_release("6.18.44-fc-v769"), parse_release("junk")
        ((3, 10), (6, 18), None)
        >>> parse_release("5" * 5000 + ".1"), parse_release("5.10-rc1", exact=True)
        (None, None)
    """
    # By hand rather than with a regular expression: ``re`` costs milliseconds to import, and
    # this runs on every readiness check. What it accepts: 1-9 digits, '.', 1-9 digits, then no
    # further digit (and, with ``exact``, nothing at all).
    text = release.strip()
    dot = _digits(text, 0)
    if not 1 <= dot <= _MAX_DIGITS or text[dot:dot + 1] != ".":
        return None
    end = _digits(text, dot + 1)
    if not 1 <= end - dot - 1 <= _MAX_DIGITS or (exact and end != len(text)):
        return None
    return int(text[:dot]), int(text[dot + 1:end])


def format_version(version: Tuple[int, ...]) -> str:
    """``"4.11"`` for ``(4, 11)``.

    Example:
        >>> format_version((4, 11))
        '4.11'
    """
    return ".".join(str(part) for part in version)
