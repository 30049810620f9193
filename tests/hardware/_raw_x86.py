"""The independent path of the CPU hardware tests: KVM's x86 CPU ioctls through ``fcntl.ioctl``.

Written from the kernel's uapi headers (arch/x86/include/uapi/asm/kvm.h, include/uapi/linux/
kvm.h) for the asm-generic ioctl layout of x86_64, with this file's own numbers and structure
layouts: nothing here comes from kvmprobe, so a test that compares the two compares two paths.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct
from typing import Dict, List, Tuple

Entry = Tuple[int, int, int, int, int, int, int]


def _ioc(direction: int, nr: int, size: int) -> int:
    # asm-generic/ioctl.h: dir << 30 | size << 16 | type << 8 | nr; _IOC_WRITE 1, _IOC_READ 2.
    return direction << 30 | size << 16 | 0xAE << 8 | nr


KVM_CREATE_VM = _ioc(0, 0x01, 0)
KVM_GET_MSR_INDEX_LIST = _ioc(3, 0x02, 4)  # struct kvm_msr_list: __u32 nmsrs
KVM_GET_SUPPORTED_CPUID = _ioc(3, 0x05, 8)  # struct kvm_cpuid2: __u32 nent, padding
KVM_GET_EMULATED_CPUID = _ioc(3, 0x09, 8)
KVM_GET_MSR_FEATURE_INDEX_LIST = _ioc(3, 0x0A, 4)
KVM_CREATE_VCPU = _ioc(0, 0x41, 0)
KVM_GET_MSRS = _ioc(3, 0x88, 8)  # struct kvm_msrs: __u32 nmsrs, pad
KVM_GET_TSC_KHZ = _ioc(0, 0xA3, 0)
KVM_GET_DEVICE_ATTR = _ioc(1, 0xE2, 24)  # struct kvm_device_attr: flags, group, attr, addr
KVM_HAS_DEVICE_ATTR = _ioc(1, 0xE3, 24)


def cpuid(fd: int, request: int) -> List[Entry]:
    """KVM_GET_SUPPORTED_CPUID or KVM_GET_EMULATED_CPUID, growing from 8 entries on E2BIG."""
    nent = 8
    while True:
        buf = bytearray(struct.pack("II", nent, 0) + bytes(40 * nent))
        try:
            fcntl.ioctl(fd, request, buf)
        except OSError as err:
            if err.errno == errno.E2BIG and nent < 4096:
                nent *= 2
                continue
            raise
        (count,) = struct.unpack_from("I", buf)
        return [struct.unpack_from("7I", buf, 8 + 40 * i) for i in range(count)]


def msr_list(fd: int, request: int) -> List[int]:
    """KVM_GET_MSR(_FEATURE)_INDEX_LIST: ask with 0, learn the count from E2BIG, ask again."""
    head = bytearray(struct.pack("I", 0))
    try:
        fcntl.ioctl(fd, request, head)
    except OSError as err:
        if err.errno != errno.E2BIG:
            raise
    (count,) = struct.unpack("I", head)
    buf = bytearray(struct.pack("I", count) + bytes(4 * count))
    fcntl.ioctl(fd, request, buf)
    return list(struct.unpack_from(f"{count}I", buf, 4))


def get_msr(fd: int, index: int) -> int:
    """One MSR through KVM_GET_MSRS on ``fd``; raises OSError(EIO) when it was not read."""
    buf = bytearray(struct.pack("II", 1, 0) + struct.pack("IIQ", index, 0, 0))
    if fcntl.ioctl(fd, KVM_GET_MSRS, buf) != 1:
        raise OSError(errno.EIO, f"MSR {index:#x} not read")
    value: int = struct.unpack_from("Q", buf, 16)[0]
    return value


def device_attr(fd: int, group: int, attr: int) -> int:
    """KVM_GET_DEVICE_ATTR, ``addr`` pointing at a ctypes u64 this function owns."""
    target = ctypes.c_uint64(0)
    buf = bytearray(struct.pack("IIQQ", 0, group, attr, ctypes.addressof(target)))
    fcntl.ioctl(fd, KVM_GET_DEVICE_ATTR, buf)
    return target.value


def has_device_attr(fd: int, group: int, attr: int) -> bool:
    try:
        fcntl.ioctl(fd, KVM_HAS_DEVICE_ATTR, bytearray(struct.pack("IIQQ", 0, group, attr, 0)))
    except OSError as err:
        if err.errno == errno.ENXIO:
            return False
        raise
    return True


def tsc_khz(fd: int) -> int:
    """KVM_GET_TSC_KHZ of a vCPU of a new VM; both closed before returning."""
    vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
    try:
        vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
        try:
            return fcntl.ioctl(vcpu, KVM_GET_TSC_KHZ, 0)
        finally:
            os.close(vcpu)
    finally:
        os.close(vm)


def feature_msrs(fd: int) -> Dict[int, int]:
    """Every feature MSR KVM lists, read one by one; unreadable ones left out."""
    values: Dict[int, int] = {}
    for index in msr_list(fd, KVM_GET_MSR_FEATURE_INDEX_LIST):
        try:
            values[index] = get_msr(fd, index)
        except OSError:
            pass
    return values
