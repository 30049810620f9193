"""The structures the x86 CPU ioctls carry, laid out in bytes and read back: nothing more.

Imports nothing from the package. Each layout is the kernel's uapi structure, native byte
order, as ``arch/x86/include/uapi/asm/kvm.h`` (``kvm_cpuid2``, ``kvm_cpuid_entry2``,
``kvm_msr_list``, ``kvm_msrs``, ``kvm_msr_entry``) and ``include/uapi/linux/kvm.h``
(``kvm_device_attr``) declare it. A ``*_buffer`` function builds the ``bytearray`` a backend's
``ioctl_buffer`` passes to the kernel; the matching reader takes the numbers out of it.
Meaning (feature names, MSR names) lives higher up, in ``_cpuid`` and ``_cpuid_table``.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Iterable, List, NamedTuple, Sequence, Tuple, Union

    #: What the readers accept: the ``bytearray`` the ioctl filled, or any bytes.
    Buffer = Union[bytes, bytearray]

    # A CPUID entry as seven integers: function, index, flags, eax, ebx, ecx, edx.
    Entry = Tuple[int, int, int, int, int, int, int]
else:
    from ._value import NamedTuple

__all__ = [
    "CPUID_ENTRY",
    "DEVICE_ATTR_POINTERS",
    "CpuidEntry",
    "IoctlFailure",
    "cpuid2_buffer",
    "cpuid2_entries",
    "cpuid2_pack",
    "device_attr_buffer",
    "device_attr_fields",
    "device_attr_set",
    "device_attr_value",
    "msr_list_buffer",
    "msr_list_count",
    "msr_list_indices",
    "msrs_buffer",
    "msrs_indices",
    "msrs_set",
    "msrs_values",
]

# struct kvm_cpuid2 { __u32 nent; __u32 padding; struct kvm_cpuid_entry2 entries[]; }
_CPUID2 = struct.Struct("=II")
#: struct kvm_cpuid_entry2 { __u32 function, index, flags, eax, ebx, ecx, edx; __u32 padding[3]; }
CPUID_ENTRY = struct.Struct("=7I12x")
# struct kvm_msr_list { __u32 nmsrs; __u32 indices[]; }
_U32 = struct.Struct("=I")
# struct kvm_msrs { __u32 nmsrs; __u32 pad; struct kvm_msr_entry entries[]; }
_MSRS = struct.Struct("=II")
# struct kvm_msr_entry { __u32 index; __u32 reserved; __u64 data; }
_MSR_ENTRY = struct.Struct("=IIQ")
# struct kvm_device_attr { __u32 flags; __u32 group; __u64 attr; __u64 addr; }, then the u64
# that ``addr`` points to, in the same buffer.
_DEVICE_ATTR = struct.Struct("=IIQQ")
_U64 = struct.Struct("=Q")

#: For ``ioctl_buffer(..., pointers=...)`` with a :func:`device_attr_buffer`: the backend writes
#: the address of the value slot (byte 24) into ``addr`` (byte 16), as KVM_GET_DEVICE_ATTR wants.
DEVICE_ATTR_POINTERS: Tuple[Tuple[int, int], ...] = ((16, _DEVICE_ATTR.size),)



class CpuidEntry(NamedTuple):
    """One CPUID leaf/subleaf and its four output registers (``struct kvm_cpuid_entry2``).

    ``leaf`` and ``subleaf`` are the struct's ``function`` and ``index`` (``index`` would hide
    ``tuple.index``).

    Example:
        >>> CpuidEntry(7, 0, 1, 0, 1 << 5, 0, 0).ebx
        32
    """

    leaf: int
    subleaf: int
    flags: int
    eax: int
    ebx: int
    ecx: int
    edx: int


class IoctlFailure(NamedTuple):
    """An ioctl that failed, and its errno: a recorded fact, never "unsupported".

    Example:
        >>> IoctlFailure("KVM_GET_EMULATED_CPUID", 25).describe()
        'KVM_GET_EMULATED_CPUID: ENOTTY (Inappropriate ioctl for device)'
    """

    ioctl: str
    errno: int

    def describe(self) -> str:
        """``NAME: ERRNO (text)``."""
        import errno as errno_names
        import os

        name = errno_names.errorcode.get(self.errno, f"errno {self.errno}")
        return f"{self.ioctl}: {name} ({os.strerror(self.errno)})"


def cpuid2_buffer(nent: int) -> bytearray:
    """A ``kvm_cpuid2`` with room for ``nent`` entries (KVM_GET_SUPPORTED/EMULATED_CPUID).

    Example:
        >>> len(cpuid2_buffer(2)), cpuid2_buffer(2)[:4]
        (88, bytearray(b'\\x02\\x00\\x00\\x00'))
    """
    buffer = bytearray(_CPUID2.size + CPUID_ENTRY.size * nent)
    _CPUID2.pack_into(buffer, 0, nent, 0)
    return buffer


def cpuid2_entries(buffer: Buffer) -> List[Entry]:
    """The entries the kernel wrote: ``nent`` of them, as 7-tuples, in the kernel's order.

    Raises:
        ValueError: ``nent`` claims more entries than the buffer holds.

    Example:
        >>> buffer = cpuid2_buffer(1)
        >>> CPUID_ENTRY.pack_into(buffer, 8, 7, 0, 1, 1, 0x20, 0, 0)
        >>> cpuid2_entries(buffer)
        [(7, 0, 1, 1, 32, 0, 0)]
    """
    (nent, _) = _CPUID2.unpack_from(buffer, 0)
    if _CPUID2.size + CPUID_ENTRY.size * nent > len(buffer):
        raise ValueError(f"kvm_cpuid2.nent {nent} overruns a buffer of {len(buffer)} bytes")
    return [_entry(buffer, _CPUID2.size + CPUID_ENTRY.size * i) for i in range(nent)]


def _entry(buffer: Buffer, offset: int) -> Entry:
    function, index, flags, eax, ebx, ecx, edx = CPUID_ENTRY.unpack_from(buffer, offset)
    return (function, index, flags, eax, ebx, ecx, edx)


def cpuid2_pack(entries: Iterable[Sequence[int]], room: int) -> bytearray:
    """A ``kvm_cpuid2`` holding ``entries`` in a buffer of ``room`` entries (what a kernel writes).

    Example:
        >>> cpuid2_entries(cpuid2_pack([(1, 0, 0, 2, 3, 4, 5)], 4))
        [(1, 0, 0, 2, 3, 4, 5)]
    """
    rows = list(entries)
    buffer = cpuid2_buffer(max(room, len(rows)))
    _CPUID2.pack_into(buffer, 0, len(rows), 0)
    for i, row in enumerate(rows):
        CPUID_ENTRY.pack_into(buffer, _CPUID2.size + CPUID_ENTRY.size * i, *row)
    return buffer


def msr_list_buffer(nmsrs: int) -> bytearray:
    """A ``kvm_msr_list`` with room for ``nmsrs`` indices (KVM_GET_MSR_(FEATURE_)INDEX_LIST).

    Example:
        >>> msr_list_buffer(3)
        bytearray(b'\\x03\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00')
    """
    buffer = bytearray(_U32.size * (1 + nmsrs))
    _U32.pack_into(buffer, 0, nmsrs)
    return buffer


def msr_list_count(buffer: Buffer) -> int:
    """``nmsrs`` as the kernel left it: on E2BIG, the number of indices it has.

    Example:
        >>> msr_list_count(msr_list_buffer(5))
        5
    """
    count: int = _U32.unpack_from(buffer, 0)[0]
    return count


def msr_list_indices(buffer: Buffer) -> List[int]:
    """The MSR indices the kernel wrote, in its order.

    Raises:
        ValueError: ``nmsrs`` claims more indices than the buffer holds.

    Example:
        >>> buffer = msr_list_buffer(2)
        >>> buffer[4:] = bytes.fromhex("8b0000000a010000")
        >>> [hex(i) for i in msr_list_indices(buffer)]
        ['0x8b', '0x10a']
    """
    count = msr_list_count(buffer)
    if _U32.size * (1 + count) > len(buffer):
        raise ValueError(f"kvm_msr_list.nmsrs {count} overruns a buffer of {len(buffer)} bytes")
    return list(struct.unpack_from(f"={count}I", buffer, _U32.size))


def msrs_buffer(indices: Sequence[int]) -> bytearray:
    """A ``kvm_msrs`` asking for ``indices`` (KVM_GET_MSRS), the data fields zeroed.

    Example:
        >>> len(msrs_buffer([0x10a, 0x8b]))
        40
    """
    buffer = bytearray(_MSRS.size + _MSR_ENTRY.size * len(indices))
    _MSRS.pack_into(buffer, 0, len(indices), 0)
    for i, index in enumerate(indices):
        _MSR_ENTRY.pack_into(buffer, _MSRS.size + _MSR_ENTRY.size * i, index, 0, 0)
    return buffer


def msrs_values(buffer: Buffer, count: int) -> Dict[int, int]:
    """The first ``count`` entries of a ``kvm_msrs`` (KVM_GET_MSRS returns how many it read).

    Example:
        >>> buffer = msrs_buffer([0x8b])
        >>> buffer[16:] = (0x1000065).to_bytes(8, "little")
        >>> {hex(k): hex(v) for k, v in msrs_values(buffer, 1).items()}
        {'0x8b': '0x1000065'}
    """
    values: Dict[int, int] = {}
    for i in range(count):
        index, _, data = _MSR_ENTRY.unpack_from(buffer, _MSRS.size + _MSR_ENTRY.size * i)
        values[index] = data
    return values


def msrs_set(buffer: bytearray, position: int, value: int) -> None:
    """Write ``value`` into entry ``position`` of a ``kvm_msrs`` (what the kernel does; for fakes).

    Example:
        >>> buffer = msrs_buffer([0x10a])
        >>> msrs_set(buffer, 0, 5); msrs_values(buffer, 1)
        {266: 5}
    """
    offset = _MSRS.size + _MSR_ENTRY.size * position
    _U64.pack_into(buffer, offset + 8, value)


def msrs_indices(buffer: Buffer) -> List[int]:
    """The indices a ``kvm_msrs`` asks for (for fakes answering KVM_GET_MSRS).

    Example:
        >>> msrs_indices(msrs_buffer([0x8b, 0xce]))
        [139, 206]
    """
    (count, _) = _MSRS.unpack_from(buffer, 0)
    count = min(count, (len(buffer) - _MSRS.size) // _MSR_ENTRY.size)
    return [_MSR_ENTRY.unpack_from(buffer, _MSRS.size + _MSR_ENTRY.size * i)[0] for i in range(count)]


def device_attr_buffer(group: int, attr: int, flags: int = 0) -> bytearray:
    """A ``kvm_device_attr`` followed by the u64 its ``addr`` points to (zeroed).

    Pass it with ``pointers=DEVICE_ATTR_POINTERS`` for KVM_GET/SET_DEVICE_ATTR, whose ``addr``
    is the address of that u64; KVM_HAS_DEVICE_ATTR reads no ``addr``.

    Example:
        >>> len(device_attr_buffer(0, 0)), device_attr_fields(device_attr_buffer(1, 2))
        (32, (0, 1, 2))
    """
    buffer = bytearray(_DEVICE_ATTR.size + _U64.size)
    _DEVICE_ATTR.pack_into(buffer, 0, flags, group, attr, 0)
    return buffer


def device_attr_fields(buffer: Buffer) -> Tuple[int, int, int]:
    """``(flags, group, attr)`` of a :func:`device_attr_buffer` (for fakes answering it)."""
    flags, group, attr, _ = _DEVICE_ATTR.unpack_from(buffer, 0)
    return flags, group, attr


def device_attr_value(buffer: Buffer) -> int:
    """The u64 the kernel wrote through ``addr`` (KVM_GET_DEVICE_ATTR).

    Example:
        >>> buffer = device_attr_buffer(0, 0)
        >>> device_attr_set(buffer, 0xE7); hex(device_attr_value(buffer))
        '0xe7'
    """
    value: int = _U64.unpack_from(buffer, _DEVICE_ATTR.size)[0]
    return value


def device_attr_set(buffer: bytearray, value: int) -> None:
    """Write the u64 ``addr`` points to (what the kernel does; for fakes)."""
    _U64.pack_into(buffer, _DEVICE_ATTR.size, value)
