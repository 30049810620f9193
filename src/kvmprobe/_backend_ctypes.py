"""The default ioctl backend: libc ``ioctl(2)`` through ctypes. No compiled code needed.

Imports ``_backend`` only. One ctypes call per ioctl; the loop of ``check_many`` runs in
Python (see ``_backend_cffi`` for the loop in C).
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Callable, List, Sequence

from ._backend import CheckResults

_OPEN_FLAGS = os.O_RDWR | os.O_CLOEXEC


def _load_ioctl() -> Callable[[int, int, int], int]:
    # dlopen(NULL): the process's own symbols, libc's ioctl among them. (ctypes.util.find_library
    # would spawn ldconfig or a compiler to find the same thing.)
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.ioctl
    # ioctl(int fd, unsigned long request, ...): every KVM request kvmprobe issues takes an
    # integer argument, passed as unsigned long (as kvm-ioctls' ioctl_with_val does).
    fn.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong)
    fn.restype = ctypes.c_int
    return fn


class CtypesBackend:
    """libc ``ioctl`` through ctypes, with ``use_errno`` so errno survives the call."""

    name = "ctypes"

    def __init__(self) -> None:
        self._ioctl = _load_ioctl()

    def open(self, path: str) -> int:
        # Ownership: the caller (device.KvmDevice) closes this fd.
        return os.open(path, _OPEN_FLAGS)

    def close(self, fd: int) -> None:
        os.close(fd)

    def ioctl(self, fd: int, request: int, arg: int = 0) -> int:
        while True:
            result = self._ioctl(fd, request, arg)
            if result >= 0:
                return result
            code = ctypes.get_errno()
            if code != errno.EINTR:
                raise OSError(code, os.strerror(code))

    def check_many(self, fd: int, request: int, numbers: Sequence[int]) -> CheckResults:
        call = self._ioctl
        get_errno = ctypes.get_errno
        values: List[int] = []
        errnos: List[int] = []
        for number in numbers:
            result = call(fd, request, number)
            while result < 0 and get_errno() == errno.EINTR:
                result = call(fd, request, number)
            values.append(result)
            errnos.append(get_errno() if result < 0 else 0)
        return values, errnos
