"""The host's own CPUID: the instruction itself, or the kernel's ``/dev/cpu/N/cpuid``.

Imports nothing from the package. Plumbing, no meaning: :func:`open_host_cpuid` yields a
function ``(leaf, subleaf) -> (eax, ebx, ecx, edx)`` and says where the answers come from, or
why none can be had. Which leaves to ask and what the bits mean is ``_cpu_record``'s and
``_cpuid``'s business.

The instruction runs from a page holding 27 bytes of machine code (x86-64 System V: ``push rbx``,
the two inputs into EAX/ECX, ``cpuid``, the four outputs stored through the third argument,
``pop rbx``, ``ret``) mapped with ``mmap``, written while writable, then made read+execute
with ``mprotect`` (never writable and executable at once, so W^X policies allow it), and
unmapped when the ``with`` block ends. Where that is refused (SELinux ``execmem``, a seccomp
filter), ``/dev/cpu/0/cpuid`` (the ``cpuid`` driver, arch/x86/kernel/cpuid.c: a 16-byte
``pread`` at offset ``subleaf << 32 | leaf``) is tried; where neither works, there is no host
CPUID and the reason is given.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterator, Optional, Tuple

    #: ``(leaf, subleaf) -> (eax, ebx, ecx, edx)``.
    CpuidFunction = Callable[[int, int], Tuple[int, int, int, int]]

__all__ = ["open_host_cpuid"]

# void cpuid(uint32_t leaf /* edi */, uint32_t subleaf /* esi */, uint32_t out[4] /* rdx */)
_CODE = bytes.fromhex(
    "53"  # push rbx (callee-saved; CPUID writes it)
    "4989d0"  # mov r8, rdx
    "89f8"  # mov eax, edi
    "89f1"  # mov ecx, esi
    "0fa2"  # cpuid
    "418900"  # mov [r8], eax
    "41895804"  # mov [r8+4], ebx
    "41894808"  # mov [r8+8], ecx
    "4189500c"  # mov [r8+12], edx
    "5b"  # pop rbx
    "c3"  # ret
)

_PAGE = 4096
# <sys/mman.h> on Linux (asm-generic/mman-common.h; x86 uses these values).
_PROT_READ, _PROT_WRITE, _PROT_EXEC = 1, 2, 4
_MAP_PRIVATE, _MAP_ANONYMOUS = 0x02, 0x20


@contextmanager
def open_host_cpuid(machine: Optional[str] = None, device: str = "/dev/cpu/0/cpuid") -> Iterator[Tuple[Optional[CpuidFunction], str]]:
    """``(cpuid, source)`` for this host, valid inside the ``with`` block.

    ``cpuid`` is ``None`` when no path works, and ``source`` then says why; otherwise
    ``source`` names the path used (``"CPUID instruction"`` or the device file).

    Example:
        >>> with open_host_cpuid("aarch64") as (cpuid, source):
        ...     cpuid is None, source
        (True, 'not readable: CPUID is an x86 instruction and this is aarch64')
    """
    machine = machine if machine is not None else os.uname().machine
    if machine not in ("x86_64", "amd64"):
        yield None, f"not readable: CPUID is an x86 instruction and this is {machine}"
        return
    reasons = []
    with _instruction() as (function, why):
        if function is not None:
            yield function, "CPUID instruction"
            return
        reasons.append(why)
    with _device_file(device) as (function, why):
        if function is not None:
            yield function, device
            return
        reasons.append(why)
    yield None, "not readable: " + "; ".join(reasons)


@contextmanager
def _instruction() -> Iterator[Tuple[Optional[CpuidFunction], str]]:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    # Ownership: this page is unmapped in the finally below, on every path.
    page = libc.mmap(None, _PAGE, _PROT_READ | _PROT_WRITE, _MAP_PRIVATE | _MAP_ANONYMOUS, -1, 0)
    if page is None or page == ctypes.c_void_p(-1).value:
        yield None, f"mmap of a code page failed ({os.strerror(ctypes.get_errno())})"
        return
    try:
        ctypes.memmove(page, _CODE, len(_CODE))
        if libc.mprotect(page, _PAGE, _PROT_READ | _PROT_EXEC) != 0:
            yield None, f"mprotect to read+execute was refused ({os.strerror(ctypes.get_errno())})"
            return
        call = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32))(page)

        def cpuid(leaf: int, subleaf: int) -> Tuple[int, int, int, int]:
            out = (ctypes.c_uint32 * 4)()
            call(leaf, subleaf, out)
            return out[0], out[1], out[2], out[3]

        yield cpuid, ""
    finally:
        libc.munmap(page, _PAGE)


@contextmanager
def _device_file(path: str) -> Iterator[Tuple[Optional[CpuidFunction], str]]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # ownership: closed in the finally below
    except OSError as err:
        yield None, f"{path}: {os.strerror(err.errno or 0)}"
        return
    try:

        def cpuid(leaf: int, subleaf: int) -> Tuple[int, int, int, int]:
            data = os.pread(fd, 16, subleaf << 32 | leaf)
            if len(data) != 16:
                raise OSError(5, f"short read of {path}")
            return (
                int.from_bytes(data[0:4], "little"),
                int.from_bytes(data[4:8], "little"),
                int.from_bytes(data[8:12], "little"),
                int.from_bytes(data[12:16], "little"),
            )

        yield cpuid, ""
    finally:
        os.close(fd)
