"""kvmprobe's readers of the x86 CPU structures against layouts written here, from the kernel's uapi.

FakeBackend answers with ``_kvm_structs`` itself, so a test over it checks the layout against
itself. Here a backend of this file answers as the kernel would, packing ``struct kvm_cpuid2``,
``struct kvm_msr_list`` and ``struct kvm_msrs`` with this file's own ``struct`` formats
(arch/x86/include/uapi/asm/kvm.h) and numbers (include/uapi/linux/kvm.h on the asm-generic ioctl
layout), and ``KvmDevice`` must read back exactly what was packed.
"""

from __future__ import annotations

import errno
import platform
import struct
from typing import Dict, List, Sequence, Tuple

import pytest

from kvmprobe.device import KvmDevice

pytestmark = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "aarch64", "riscv64", "s390x", "i686", "armv7l"),
    reason="the ioctl numbers here follow the asm-generic layout",
)


def _iowr(nr: int, size: int) -> int:
    # asm-generic/ioctl.h: (_IOC_READ|_IOC_WRITE) << 30 | size << 16 | KVMIO (0xAE) << 8 | nr
    return 3 << 30 | size << 16 | 0xAE << 8 | nr


KVM_GET_API_VERSION = 0xAE00
KVM_GET_MSR_INDEX_LIST = _iowr(0x02, 4)  # struct kvm_msr_list { __u32 nmsrs; __u32 indices[0]; }
KVM_GET_SUPPORTED_CPUID = _iowr(0x05, 8)  # struct kvm_cpuid2 { __u32 nent; __u32 padding; entries[0]; }
KVM_GET_EMULATED_CPUID = _iowr(0x09, 8)
KVM_GET_MSR_FEATURE_INDEX_LIST = _iowr(0x0A, 4)
KVM_GET_MSRS = _iowr(0x88, 8)  # struct kvm_msrs { __u32 nmsrs; __u32 pad; entries[0]; }

# struct kvm_cpuid_entry2 { __u32 function, index, flags, eax, ebx, ecx, edx; __u32 padding[3]; }: 40 bytes
CPUID_HEAD, CPUID_ENTRY = "<II", "<7I3I"
# struct kvm_msr_entry { __u32 index; __u32 reserved; __u64 data; }: 16 bytes
MSRS_HEAD, MSR_ENTRY = "<II", "<IIQ"

Entry = Tuple[int, int, int, int, int, int, int]
# Every field distinct and wide, so a field read from the wrong offset cannot pass.
SUPPORTED: List[Entry] = [(0x80000000 + i, 0x100 + i, i & 1, 0x11111111 * (i % 15 + 1), 0xA0000000 + i,
                           0x0B000000 + i, 0x00C00000 + i) for i in range(300)]  # fmt: skip
EMULATED: List[Entry] = [(0x7, 0, 1, 0, 0xDEAD0001, 0xBEEF0002, 0xF00D0003), (0x1, 0, 0, 0, 0, 0x00400000, 0)]
MSR_INDICES = [0x10A + 7 * i for i in range(70)] + [0xC0000080, 0x4B564D00]
FEATURE_MSRS = {0x10A: 0x0123456789ABCDEF, 0x345: 0xFEDCBA9876543210, 0x48B: 0x0000FFFF00000001}


class KernelLike:
    """A backend answering the CPU structure ioctls as the kernel does (E2BIG and the count when
    the buffer is too small), packed with this file's layouts."""

    name = "layout-test"

    def open(self, path: str) -> int:
        return 7

    def close(self, fd: int) -> None:
        pass

    def ioctl(self, fd: int, request: int, arg: int = 0) -> int:
        if request == KVM_GET_API_VERSION:
            return 12
        raise OSError(errno.ENOTTY, "not asked here")

    def check_many(self, fd: int, request: int, numbers: Sequence[int]) -> Tuple[List[int], List[int]]:
        return [0] * len(numbers), [0] * len(numbers)

    def ioctl_buffer(self, fd: int, request: int, buffer: bytearray, pointers: Sequence[Tuple[int, int]] = ()) -> int:
        if request in (KVM_GET_SUPPORTED_CPUID, KVM_GET_EMULATED_CPUID):
            entries = SUPPORTED if request == KVM_GET_SUPPORTED_CPUID else EMULATED
            (room, _) = struct.unpack_from(CPUID_HEAD, buffer)
            if room < len(entries):
                raise OSError(errno.E2BIG, "too small")
            struct.pack_into(CPUID_HEAD, buffer, 0, len(entries), 0)
            for i, entry in enumerate(entries):
                struct.pack_into(CPUID_ENTRY, buffer, 8 + 40 * i, *entry, 0, 0, 0)
            return 0
        if request in (KVM_GET_MSR_INDEX_LIST, KVM_GET_MSR_FEATURE_INDEX_LIST):
            indices = MSR_INDICES if request == KVM_GET_MSR_INDEX_LIST else sorted(FEATURE_MSRS)
            (room,) = struct.unpack_from("<I", buffer)
            struct.pack_into("<I", buffer, 0, len(indices))
            if room < len(indices):
                raise OSError(errno.E2BIG, "too small")
            struct.pack_into(f"<{len(indices)}I", buffer, 4, *indices)
            return 0
        if request == KVM_GET_MSRS:
            (count, _) = struct.unpack_from(MSRS_HEAD, buffer)
            for i in range(count):
                index, reserved, _ = struct.unpack_from(MSR_ENTRY, buffer, 8 + 16 * i)
                if index not in FEATURE_MSRS:
                    return i  # the kernel stops at the first MSR it cannot read
                struct.pack_into(MSR_ENTRY, buffer, 8 + 16 * i, index, reserved, FEATURE_MSRS[index])
            return int(count)
        raise OSError(errno.ENOTTY, "not asked here")


def test_kvmprobe_reads_exactly_what_the_kernels_layout_holds() -> None:
    with KvmDevice.open("/dev/kvm", backend=KernelLike()) as kvm:
        assert [tuple(e) for e in kvm.supported_cpuid()] == SUPPORTED
        assert [tuple(e) for e in kvm.emulated_cpuid()] == EMULATED
        assert kvm.msr_index_list() == MSR_INDICES
        assert kvm.msr_feature_index_list() == sorted(FEATURE_MSRS)
        values: Dict[int, int] = kvm.get_msrs(sorted(FEATURE_MSRS))
        assert values == FEATURE_MSRS
        # An unreadable MSR in the middle: the kernel's count stops there, the rest is asked again.
        assert kvm.get_msrs([0x10A, 0x999, 0x345]) == {0x10A: FEATURE_MSRS[0x10A], 0x345: FEATURE_MSRS[0x345]}
