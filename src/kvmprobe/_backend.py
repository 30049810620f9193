"""The ioctl backend seam: what any binding must offer, and the base the real ones share.

Imports nothing from the package. A backend knows paths, file descriptors, ioctl numbers,
byte buffers and errno values; it knows nothing of capabilities, profiles or the CLI. Its
calls raise ``OSError`` carrying the errno, except ``check_many``, which reports an errno per
entry. A backend never retries: ``EINTR`` is reported like any errno, and ``device`` (the one
place errno values become kvmprobe errors) asks again, a bounded number of times, so that a
call interrupted forever ends in an error instead of a hang. Which backend runs is decided in
``_backend_select``.
"""

from __future__ import annotations

import _thread  # threading's Lock, without importing threading (about 0.5 ms at start-up)
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple

    #: Per entry of ``check_many``: the ioctl's return value (``-1`` on failure) and its errno (0: none).
    CheckResults = Tuple[List[int], List[int]]

    #: For ``ioctl_buffer``: ``(offset, target)`` pairs. Before the call the backend writes, as a
    #: native-endian u64 at ``buffer[offset:offset + 8]``, the address of ``buffer[target]``; after
    #: it, those 8 bytes are restored. A structure whose field points at memory (``kvm_device_attr
    #: .addr``) can so point into the same buffer, and a fake sees the target as an offset.
    Pointers = Sequence[Tuple[int, int]]
else:
    Protocol = object  # the seam is a typing.Protocol for the type checker; at run time a plain class

    def __getattr__(name: str) -> Any:
        # The two aliases above, for code that imports them at run time: made on first use, so
        # that the ioctl seam costs no ``typing`` import to the commands.
        if name not in ("CheckResults", "Pointers"):
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from typing import List, Sequence, Tuple

        globals().update(CheckResults=Tuple[List[int], List[int]], Pointers=Sequence[Tuple[int, int]])
        return globals()[name]

#: ``open(2)`` flags for every KVM fd: read-write (the ioctls need it) and close-on-exec, so no
#: child process ever inherits a KVM fd.
OPEN_FLAGS = os.O_RDWR | os.O_CLOEXEC


class Backend(Protocol):
    """What an ioctl binding offers. The fd belongs to the caller, who must ``close`` it."""

    name: str

    def open(self, path: str) -> int:
        """Open ``path`` with ``O_RDWR | O_CLOEXEC`` and return the fd; raise ``OSError``."""

    def close(self, fd: int) -> None:
        """Close ``fd``."""

    def ioctl(self, fd: int, request: int, arg: int = 0) -> int:
        """Issue one integer-argument ioctl once; return its non-negative result; raise ``OSError``."""

    def check_many(self, fd: int, request: int, numbers: Sequence[int]) -> CheckResults:
        """Issue ``request`` once per number; return the values and the errnos (0: it worked)."""

    def ioctl_buffer(self, fd: int, request: int, buffer: bytearray, pointers: Pointers = ()) -> int:
        """Issue one ioctl whose argument points at ``buffer`` (read and written in place).

        The caller lays the structure out in ``buffer`` and reads the kernel's answer from it;
        the backend only passes the pointer, after writing the addresses ``pointers`` asks
        for (see :data:`Pointers`). Returns the result; raises ``OSError``.
        """


# A probe sends the same number list every time; a few spare slots serve other callers.
_ARRAY_SLOTS = 8


class BackendBase:
    """``open``/``close``, buffer ioctls and the number-array cache, shared by the real backends.

    A subclass sets ``name``, implements ``ioctl`` and ``check_many``, and says how a list of
    numbers becomes its native array (:meth:`_convert`): :meth:`_array` converts each distinct
    list once. Buffer ioctls are rare and never on a hot path, so both backends issue them
    through one ctypes function.
    """

    name = "base"

    def __init__(self) -> None:
        self._last: Tuple[Any, Any] = (None, None)  # (the number list last converted, its array)
        self._arrays: Dict[Tuple[int, ...], Any] = {}
        self._arrays_lock = _thread.allocate_lock()
        self._buffer_ioctl: Optional[Callable[..., int]] = None

    def open(self, path: str) -> int:
        # Ownership: the caller (device.KvmDevice) closes this fd. os.open retries EINTR (PEP 475).
        return os.open(path, OPEN_FLAGS)

    def close(self, fd: int) -> None:
        os.close(fd)

    def _convert(self, numbers: Tuple[int, ...]) -> Any:
        raise NotImplementedError

    def _array(self, numbers: Sequence[int]) -> Any:
        last, array = self._last
        if numbers is last:  # a probe sends the same tuple each time: no copy, no hash of 244 numbers
            return array
        key = tuple(numbers)
        array = self._arrays.get(key)
        if array is None:
            array = self._convert(key)
            with self._arrays_lock:
                if len(self._arrays) >= _ARRAY_SLOTS:
                    self._arrays.clear()
                self._arrays[key] = array
        if numbers.__class__ is tuple:  # immutable: the same object always holds the same numbers
            self._last = (numbers, array)
        return array

    def ioctl_buffer(self, fd: int, request: int, buffer: bytearray, pointers: Pointers = ()) -> int:
        import ctypes
        import struct

        call = self._buffer_ioctl
        if call is None:
            # dlopen(NULL): libc's ioctl among the process's own symbols; use_errno keeps errno.
            call = ctypes.CDLL(None, use_errno=True).ioctl
            call.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)
            call.restype = ctypes.c_int
            self._buffer_ioctl = call
        if not buffer:
            raise ValueError("an ioctl buffer must not be empty")
        for offset, target in pointers:
            if not (0 <= offset <= len(buffer) - 8 and 0 <= target < len(buffer)):
                raise ValueError(f"pointer ({offset}, {target}) lies outside a buffer of {len(buffer)} bytes")
        # Ownership: fd is borrowed from the caller; the ctypes view borrows the caller's
        # bytearray, which outlives the call, and the kernel keeps no pointer to it (nor to the
        # addresses written below, which point into the same bytearray and are wiped after).
        view = (ctypes.c_char * len(buffer)).from_buffer(buffer)
        try:
            saved = [bytes(buffer[offset:offset + 8]) for offset, _ in pointers]
            for offset, target in pointers:
                struct.pack_into("=Q", buffer, offset, ctypes.addressof(view) + target)
            result: int = call(fd, request, ctypes.addressof(view))
            code = ctypes.get_errno() if result < 0 else 0
            for (offset, _), old in zip(pointers, saved):
                buffer[offset:offset + 8] = old
        finally:
            del view  # releases the export, so the caller may resize its bytearray again
        if result < 0:
            raise OSError(code, os.strerror(code))
        return result


class ForwardingBackend:
    """A backend that hands every call to another (``inner``): subclass it and override the
    calls to watch, delay or fail; the rest reach ``inner`` unchanged. Its name is ``inner``'s.
    Public as :class:`kvmprobe.testing.ForwardingBackend`.

    Example:
        >>> from kvmprobe.testing import FakeBackend
        >>> from kvmprobe.device import KvmDevice
        >>> class Counting(ForwardingBackend):
        ...     opens = 0
        ...     def open(self, path):
        ...         self.opens += 1
        ...         return super().open(path)
        >>> counting = Counting(FakeBackend({1: 1}))
        >>> with KvmDevice.open("/dev/kvm", backend=counting) as kvm:
        ...     kvm.check_extension_raw(1), counting.opens, counting.name
        (1, 1, 'fake')

        Every call reaches ``inner`` (the fd is the fake's; 0xAE00 is KVM_GET_API_VERSION, 0xAE03
        KVM_CHECK_EXTENSION, and a fake answers ENOTTY to a structure it does not know):

        >>> fd = counting.open("/dev/kvm")
        >>> counting.ioctl(fd, 0xAE00), counting.check_many(fd, 0xAE03, [1, 2])
        (12, ([1, 0], [0, 0]))
        >>> try:
        ...     counting.ioctl_buffer(fd, 0xC008AE05, bytearray(8))
        ... except OSError as error:
        ...     error.errno == 25  # ENOTTY
        True
        >>> counting.close(fd)
    """

    __slots__ = ("inner", "name")  # a subclass without __slots__ gets __dict__ and __weakref__

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name

    def open(self, path: str) -> int:
        return self.inner.open(path)  # ownership: the caller closes it, through close()

    def close(self, fd: int) -> None:
        self.inner.close(fd)

    def ioctl(self, fd: int, request: int, arg: int = 0) -> int:
        return self.inner.ioctl(fd, request, arg)

    def check_many(self, fd: int, request: int, numbers: Sequence[int]) -> CheckResults:
        return self.inner.check_many(fd, request, numbers)

    def ioctl_buffer(self, fd: int, request: int, buffer: bytearray, pointers: Pointers = ()) -> int:
        return self.inner.ioctl_buffer(fd, request, buffer, pointers)
