"""A vCPU fd with its ``kvm_run`` mapping, guest memory, and the x86 register structures.

Imports ``_ioctl`` (for its types). The ioctl floor: structures in, numbers out. A
:class:`VcpuFd` is made by ``device.VmFd.create_vcpu``, which hands it the function that issues
its ioctls (so that ``device`` stays the one place where errno becomes a kvmprobe error); it
owns the vCPU fd and the ``kvm_run`` mapping and releases both in :meth:`VcpuFd.close`.
:class:`GuestMemory` owns an anonymous mapping a memory slot points at.

Layouts (x86_64), from ``include/uapi/linux/kvm.h`` and ``arch/x86/include/uapi/asm/kvm.h``:
``struct kvm_regs`` is 18 ``__u64``; ``struct kvm_segment`` is 24 bytes, ``struct kvm_dtable``
16, ``struct kvm_sregs`` 312; ``struct kvm_run`` has ``immediate_exit`` at byte 1,
``exit_reason`` at 8 and the exit union at 32 (``psw_mask``/``psw_addr`` come first only on
s390, which this module is not used on). The sizes agree with ``_ioctl._SIZES``, which the
ioctl numbers encode and a test compiles against the system header.

Nothing here decodes what an exit means (``kvmprobe.guest`` and ``_kvm_exits`` do), and nothing
here stops a ``KVM_RUN`` that never returns: ``kvmprobe.guest`` runs vCPUs in a child process
under a watchdog (``_forked``).
"""

from __future__ import annotations

import mmap
import struct

from ._ioctl import KvmIoctls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, NamedTuple, Optional, Tuple, Union

    #: How a :class:`VcpuFd` issues an ioctl: ``call(name, fd, request, int_or_buffer) -> result``,
    #: raising a kvmprobe error (``device`` provides it).
    IoctlCaller = Callable[[str, int, int, Union[int, bytearray]], int]
else:
    from ._value import NamedTuple

__all__ = ["DTable", "GuestMemory", "Regs", "Segment", "Sregs", "VcpuFd"]

_SEGMENT = struct.Struct("<QIHBBBBBBBBBx")  # base, limit, selector, type, present, dpl, db, s, l, g, avl, unusable
_DTABLE = struct.Struct("<QH6x")  # base, limit, padding[3]
_CONTROL = struct.Struct("<7Q")  # cr0, cr2, cr3, cr4, cr8, efer, apic_base
_REGS = struct.Struct("<18Q")
_SREGS_SIZE = 312
_INTERRUPT_BITMAP = 32  # __u64 interrupt_bitmap[(KVM_NR_INTERRUPTS + 63) / 64], KVM_NR_INTERRUPTS = 256
_REGION = struct.Struct("<IIQQQ")  # struct kvm_userspace_memory_region

# struct kvm_run offsets (x86_64)
_IMMEDIATE_EXIT = 1
_EXIT_REASON = struct.Struct("<I")
_EXIT_REASON_AT = 8
_UNION_AT = 32
_IO = struct.Struct("<BBHIQ")  # direction, size, port, count, data_offset
_MMIO = struct.Struct("<Q8sIB")  # phys_addr, data[8], len, is_write
_FAIL_ENTRY = struct.Struct("<QI")  # hardware_entry_failure_reason, cpu
_EXCEPTION = struct.Struct("<II")  # exception, error_code
_INTERNAL = struct.Struct("<II")  # suberror, ndata; then __u64 data[16]
_U64 = struct.Struct("<Q")
_INTERNAL_DATA_MAX = 16


class Segment(NamedTuple):
    """``struct kvm_segment``: a segment register with its hidden part."""

    base: int = 0
    limit: int = 0
    selector: int = 0
    type: int = 0
    present: int = 0
    dpl: int = 0
    db: int = 0
    s: int = 0
    l: int = 0  # noqa: E741 (the kernel's name: the 64-bit code segment bit)
    g: int = 0
    avl: int = 0
    unusable: int = 0


class DTable(NamedTuple):
    """``struct kvm_dtable``: a descriptor-table register (GDTR, IDTR)."""

    base: int = 0
    limit: int = 0


_SEGMENT_NAMES = ("cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt")


class Sregs(NamedTuple):
    """``struct kvm_sregs`` (x86): segments, descriptor tables, control registers, EFER.

    Example:
        >>> plain = Sregs.unpack(bytes(312))
        >>> changed = plain._replace(cr0=1, cs=plain.cs._replace(selector=8))
        >>> Sregs.unpack(changed.pack()).cs.selector, len(changed.pack())
        (8, 312)
    """

    cs: Segment
    ds: Segment
    es: Segment
    fs: Segment
    gs: Segment
    ss: Segment
    tr: Segment
    ldt: Segment
    gdt: DTable
    idt: DTable
    cr0: int
    cr2: int
    cr3: int
    cr4: int
    cr8: int
    efer: int
    apic_base: int
    interrupt_bitmap: bytes

    @classmethod
    def unpack(cls, data: Union[bytes, bytearray]) -> Sregs:
        """Read the kernel's layout."""
        segments = [Segment(*_SEGMENT.unpack_from(data, i * _SEGMENT.size)) for i in range(len(_SEGMENT_NAMES))]
        at = len(_SEGMENT_NAMES) * _SEGMENT.size
        gdt = DTable(*_DTABLE.unpack_from(data, at))
        idt = DTable(*_DTABLE.unpack_from(data, at + _DTABLE.size))
        at += 2 * _DTABLE.size
        cr0, cr2, cr3, cr4, cr8, efer, apic_base = _CONTROL.unpack_from(data, at)
        at += _CONTROL.size
        cs, ds, es, fs, gs, ss, tr, ldt = segments
        return cls(cs, ds, es, fs, gs, ss, tr, ldt, gdt, idt, cr0, cr2, cr3, cr4, cr8, efer, apic_base,
                   bytes(data[at:at + _INTERRUPT_BITMAP]))  # fmt: skip

    def pack(self) -> bytearray:
        """The kernel's layout."""
        out = bytearray()
        for segment in (self.cs, self.ds, self.es, self.fs, self.gs, self.ss, self.tr, self.ldt):
            out += _SEGMENT.pack(*segment)
        out += _DTABLE.pack(*self.gdt) + _DTABLE.pack(*self.idt)
        out += _CONTROL.pack(self.cr0, self.cr2, self.cr3, self.cr4, self.cr8, self.efer, self.apic_base)
        out += self.interrupt_bitmap.ljust(_INTERRUPT_BITMAP, b"\0")
        return out


class Regs(NamedTuple):
    """``struct kvm_regs`` (x86): the general-purpose registers, RIP and RFLAGS.

    Example:
        >>> Regs.unpack(Regs(rip=0x1000, rflags=2).pack()).rip
        4096
    """

    rax: int = 0
    rbx: int = 0
    rcx: int = 0
    rdx: int = 0
    rsi: int = 0
    rdi: int = 0
    rsp: int = 0
    rbp: int = 0
    r8: int = 0
    r9: int = 0
    r10: int = 0
    r11: int = 0
    r12: int = 0
    r13: int = 0
    r14: int = 0
    r15: int = 0
    rip: int = 0
    rflags: int = 2  # bit 1 is reserved and always set

    @classmethod
    def unpack(cls, data: Union[bytes, bytearray]) -> Regs:
        """Read the kernel's layout."""
        return cls(*_REGS.unpack_from(data))

    def pack(self) -> bytearray:
        """The kernel's layout."""
        return bytearray(_REGS.pack(*self))


def memory_region(slot: int, flags: int, guest_phys: int, size: int, address: int) -> bytearray:
    """``struct kvm_userspace_memory_region``.

    Example:
        >>> len(memory_region(0, 0, 0, 4096, 0x7f0000000000))
        32
    """
    return bytearray(_REGION.pack(slot, flags, guest_phys, size, address))


class GuestMemory:
    """An anonymous, zero-filled mapping for guest RAM; :meth:`close` unmaps it (or use ``with``).

    A memory slot stores the mapping's address: the VM using it must be closed before the
    mapping is (``with GuestMemory(...) as memory, kvm.create_vm() as vm:`` closes in that order).

    Example:
        >>> with GuestMemory(8192) as memory:
        ...     memory.write(4096, b"\\xf4"); memory.read(4096, 1), memory.size, memory.address > 0
        (b'\\xf4', 8192, True)
    """

    def __init__(self, size: int) -> None:
        import ctypes

        # Ownership: this object unmaps it in close(). MAP_SHARED|MAP_ANONYMOUS, read-write.
        self._map: Optional[mmap.mmap] = mmap.mmap(-1, size)
        view = ctypes.c_char.from_buffer(self._map)
        self.address: int = ctypes.addressof(view)
        del view  # a live view would keep mmap.close() from unmapping
        self.size = size

    def _mapping(self) -> mmap.mmap:
        if self._map is None:
            raise ValueError("the guest memory is already unmapped")
        return self._map

    def write(self, offset: int, data: bytes) -> None:
        """Copy ``data`` to guest-physical ``offset`` (relative to the slot's start)."""
        if offset < 0 or offset + len(data) > self.size:
            raise ValueError(f"{len(data)} bytes at {offset:#x} do not fit {self.size:#x} bytes of guest memory")
        self._mapping()[offset:offset + len(data)] = data

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``."""
        return bytes(self._mapping()[offset:offset + length])

    def close(self) -> None:
        """Unmap (idempotent)."""
        mapping, self._map = self._map, None
        if mapping is not None:
            mapping.close()

    def __enter__(self) -> GuestMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VcpuFd:
    """A vCPU fd and its ``kvm_run`` mapping; made by ``VmFd.create_vcpu``, which closes it.

    :meth:`run` issues ``KVM_RUN`` once and returns ``kvm_run.exit_reason``; the accessors read
    the exit union for the reason that came back. ``KVM_RUN`` can block for ever in the kernel
    (a guest that never exits); run it under a watchdog (``kvmprobe.guest`` does).
    """

    def __init__(
        self, fd: int, mmap_size: int, call: IoctlCaller, close_fd: Callable[[int], None], ioctls: KvmIoctls
    ) -> None:
        self._fd: Optional[int] = fd
        self._call = call
        self._close_fd = close_fd
        self._ioctls = ioctls
        try:
            # Ownership: unmapped in close(). Python's mmap keeps a dup of the fd (O_CLOEXEC), which
            # it closes when unmapped.
            self._run: Optional[mmap.mmap] = mmap.mmap(fd, mmap_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            self._fd = None
            close_fd(fd)
            raise

    def fileno(self) -> int:
        """The raw vCPU fd."""
        if self._fd is None:
            raise ValueError("the vCPU fd is already closed")
        return self._fd

    def close(self) -> None:
        """Unmap ``kvm_run`` and close the fd (idempotent)."""
        mapping, self._run = self._run, None
        fd, self._fd = self._fd, None
        if mapping is not None:
            mapping.close()
        if fd is not None:
            self._close_fd(fd)

    def __enter__(self) -> VcpuFd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, name: str) -> int:
        request: int = getattr(self._ioctls, name)
        return request

    def _buffer(self, name: str, buffer: bytearray) -> bytearray:
        self._call(name, self.fileno(), self._request(name), buffer)
        return buffer

    def get_regs(self) -> Regs:
        """``KVM_GET_REGS``."""
        return Regs.unpack(self._buffer("KVM_GET_REGS", bytearray(_REGS.size)))

    def set_regs(self, regs: Regs) -> None:
        """``KVM_SET_REGS``."""
        self._buffer("KVM_SET_REGS", regs.pack())

    def get_sregs(self) -> Sregs:
        """``KVM_GET_SREGS``."""
        return Sregs.unpack(self._buffer("KVM_GET_SREGS", bytearray(_SREGS_SIZE)))

    def set_sregs(self, sregs: Sregs) -> None:
        """``KVM_SET_SREGS``."""
        self._buffer("KVM_SET_SREGS", sregs.pack())

    def set_cpuid2(self, cpuid2: bytearray) -> None:
        """``KVM_SET_CPUID2`` with a ``struct kvm_cpuid2`` laid out by the caller."""
        self._buffer("KVM_SET_CPUID2", cpuid2)

    def run(self) -> int:
        """``KVM_RUN`` once; the ``exit_reason`` the kernel wrote.

        An interrupted run (``EINTR``: a signal was pending) is not asked again: it returns
        ``KVM_EXIT_INTR`` (10), as the kernel records it, so a caller's kick is seen.
        """
        import errno

        try:
            self._call("KVM_RUN", self.fileno(), self._request("KVM_RUN"), 0)
        except InterruptedError:
            return 10
        except OSError as err:  # the caller maps errno; a bare OSError only comes from a raw caller
            if err.errno == errno.EINTR:
                return 10
            raise
        return self.exit_reason

    def _kvm_run(self) -> mmap.mmap:
        if self._run is None:
            raise ValueError("the vCPU's kvm_run is already unmapped")
        return self._run

    @property
    def exit_reason(self) -> int:
        """``kvm_run.exit_reason``."""
        value: int = _EXIT_REASON.unpack_from(self._kvm_run(), _EXIT_REASON_AT)[0]
        return value

    def set_immediate_exit(self, value: bool) -> None:
        """``kvm_run.immediate_exit``: the next ``KVM_RUN`` returns at once with ``EINTR``."""
        self._kvm_run()[_IMMEDIATE_EXIT] = 1 if value else 0

    def io(self) -> Tuple[int, int, int, int, bytes]:
        """For ``KVM_EXIT_IO``: direction (0 in, 1 out), size, port, count, and the data bytes."""
        run = self._kvm_run()
        direction, size, port, count, offset = _IO.unpack_from(run, _UNION_AT)
        length = size * count
        if offset + length > len(run):  # the kernel keeps the data inside the mapping
            length = max(0, len(run) - offset)
        return direction, size, port, count, bytes(run[offset:offset + length])

    def set_io_data(self, data: bytes) -> None:
        """For ``KVM_EXIT_IO`` in: the bytes the guest's ``IN`` reads on the next ``KVM_RUN``."""
        run = self._kvm_run()
        _, size, _, count, offset = _IO.unpack_from(run, _UNION_AT)
        data = data[: size * count].ljust(size * count, b"\0")
        run[offset:offset + len(data)] = data

    def mmio(self) -> Tuple[int, bytes, int, bool]:
        """For ``KVM_EXIT_MMIO``: guest-physical address, the data (8 bytes), length, is_write."""
        address, data, length, is_write = _MMIO.unpack_from(self._kvm_run(), _UNION_AT)
        return address, data, length, bool(is_write)

    def set_mmio_data(self, data: bytes) -> None:
        """For an ``KVM_EXIT_MMIO`` read: the bytes the guest's load sees on the next ``KVM_RUN``."""
        self._kvm_run()[_UNION_AT + 8:_UNION_AT + 16] = data[:8].ljust(8, b"\0")

    def fail_entry(self) -> Tuple[int, int]:
        """For ``KVM_EXIT_FAIL_ENTRY``: the hardware entry failure reason, and the CPU."""
        reason, cpu = _FAIL_ENTRY.unpack_from(self._kvm_run(), _UNION_AT)
        return reason, cpu

    def hardware_exit_reason(self) -> int:
        """For ``KVM_EXIT_UNKNOWN``: the hardware exit reason."""
        value: int = _U64.unpack_from(self._kvm_run(), _UNION_AT)[0]
        return value

    def exception(self) -> Tuple[int, int]:
        """For ``KVM_EXIT_EXCEPTION``: the vector and the error code."""
        vector, code = _EXCEPTION.unpack_from(self._kvm_run(), _UNION_AT)
        return vector, code

    def internal(self) -> Tuple[int, Tuple[int, ...]]:
        """For ``KVM_EXIT_INTERNAL_ERROR``: the suberror and its data words (``ndata`` of them)."""
        run = self._kvm_run()
        suberror, ndata = _INTERNAL.unpack_from(run, _UNION_AT)
        count = min(ndata, _INTERNAL_DATA_MAX)
        at = _UNION_AT + _INTERNAL.size
        return suberror, tuple(_U64.unpack_from(run, at + 8 * i)[0] for i in range(count))
