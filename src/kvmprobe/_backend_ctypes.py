"""The default ioctl backend: libc ``ioctl(2)`` through ctypes. No compiled code needed.

Imports ``_backend`` only. One ctypes call per ioctl; the loop of ``check_many`` runs in
Python (see ``_backend_cffi`` for the loop in C). That loop is the hot path of the ctypes
fallback, so it passes pre-built ``c_ulong`` arguments to a function without ``argtypes``
(converting through ``argtypes`` costs more than the ioctl itself) and reads errno only for
the entries that failed.
"""

from __future__ import annotations

import ctypes
import os
from ._backend import BackendBase

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence, Tuple

    from ._backend import CheckResults

_ULONG_MASK = (1 << (8 * ctypes.sizeof(ctypes.c_ulong))) - 1


def _load_ioctl() -> Callable[[int, int, int], int]:
    # dlopen(NULL): the process's own symbols, libc's ioctl among them. (ctypes.util.find_library
    # would spawn ldconfig or a compiler to find the same thing.)
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.ioctl
    # ioctl(int fd, unsigned long request, ...): the integer-argument KVM requests take an
    # unsigned long (as kvm-ioctls' ioctl_with_val does).
    fn.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong)
    fn.restype = ctypes.c_int
    return fn


class CtypesBackend(BackendBase):
    """libc ``ioctl`` through ctypes, with ``use_errno`` so errno survives the call."""

    name = "ctypes"

    def __init__(self) -> None:
        super().__init__()
        self._ioctl = _load_ioctl()
        # The batch loop's function: same libc ioctl, no argtypes, no errno saving. Its
        # arguments are exact C types (int fd, c_ulong request and number), as argtypes would make.
        fast = ctypes.CDLL(None).ioctl
        fast.restype = ctypes.c_int
        self._ioctl_fast: Callable[..., int] = fast

    def ioctl(self, fd: int, request: int, arg: int = 0) -> int:
        # Ownership: fd is borrowed from the caller, who closes it.
        result = self._ioctl(fd, request, arg)
        if result < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return result

    def _convert(self, numbers: Tuple[int, ...]) -> Tuple[Any, ...]:
        return tuple(ctypes.c_ulong(n & _ULONG_MASK) for n in numbers)

    def check_many(self, fd: int, request: int, numbers: Sequence[int]) -> CheckResults:
        # Ownership: fd is borrowed from the caller, who closes it.
        call = self._ioctl_fast
        c_request = ctypes.c_ulong(request)
        values = [call(fd, c_request, number) for number in self._array(numbers)]
        errnos = [0] * len(values)
        if -1 in values:
            # Ask each failed query again through the errno-saving function: that is where
            # its errno comes from. KVM_CHECK_EXTENSION only reads, so asking twice is harmless.
            for index, result in enumerate(values):
                if result < 0:
                    try:
                        values[index] = self.ioctl(fd, request, numbers[index])
                    except OSError as err:
                        values[index], errnos[index] = -1, err.errno or 0
        return values, errnos
