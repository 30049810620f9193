"""Parse Linux kernel release strings (``uname -r``) into comparable version tuples.

Imports nothing from the package.
"""

from __future__ import annotations

import re
from typing import Optional, Tuple

_RELEASE = re.compile(r"(\d+)\.(\d+)")


def parse_release(release: str) -> Optional[Tuple[int, int]]:
    """``(major, minor)`` of a kernel release, or ``None`` when it has no ``N.N`` at its start.

    Vendor suffixes are ignored: RHEL's ``3.10.0-1160.el7.x86_64`` is ``(3, 10)`` (and carries
    many backports, so a capability's first release is advice, the kernel's answer the truth).

    Example:
        >>> parse_release("3.10.0-1160.el7.x86_64"), parse_release("6.18.44-fc-v769"), parse_release("junk")
        ((3, 10), (6, 18), None)
    """
    match = _RELEASE.match(release.strip())
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def format_version(version: Tuple[int, ...]) -> str:
    """``"4.11"`` for ``(4, 11)``.

    Example:
        >>> format_version((4, 11))
        '4.11'
    """
    return ".".join(str(part) for part in version)
