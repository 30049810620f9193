"""The fast ioctl backend: the compiled cffi module ``kvmprobe._kvmbatch`` (optional).

Imports ``_backend`` and ``_version``. The extension is built by ``pip install .`` when cffi
and a C compiler are there; when it is missing, ``unavailable_reason()`` says why and
kvmprobe uses ctypes.
"""

from __future__ import annotations

from typing import Sequence

from ._backend import CheckResults


def unavailable_reason() -> str:
    """Why the compiled module cannot be used, or ``""`` when it can."""
    return "the compiled module kvmprobe._kvmbatch was not built"


class CffiBackend:
    """KVM ioctls through the compiled cffi module."""

    name = "cffi"

    def open(self, path: str) -> int:
        raise NotImplementedError

    def close(self, fd: int) -> None:
        raise NotImplementedError

    def ioctl(self, fd: int, request: int, arg: int = 0) -> int:
        raise NotImplementedError

    def check_many(self, fd: int, request: int, numbers: Sequence[int]) -> CheckResults:
        raise NotImplementedError
