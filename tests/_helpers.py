"""Helpers shared by the test modules (importable as ``_helpers``: tests/ is on the path)."""

from __future__ import annotations

import os
from typing import Dict


def open_fds() -> Dict[int, str]:
    """This process's open fds and what they point at (from /proc/self/fd)."""
    fds: Dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the fd listdir itself used, closed by now
            pass
    return fds
