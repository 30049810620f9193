"""The independent path of the x86 hardware tests: KVM's x86 CPU ioctls through ``fcntl.ioctl``,
and the CPUID instruction run by a C program compiled here.

Written from the kernel's uapi headers (arch/x86/include/uapi/asm/kvm.h, include/uapi/linux/
kvm.h) for the asm-generic ioctl layout of x86_64, with this file's own numbers and structure
layouts, and from the SDM/APM for CPUID: nothing here comes from kvmprobe, so a test that
compares the two compares two paths.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

Entry = Tuple[int, int, int, int, int, int, int]
Registers = Tuple[int, int, int, int]


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


def supported_cpuid_by_leaf() -> Dict[Tuple[int, int], Registers]:
    """KVM_GET_SUPPORTED_CPUID of /dev/kvm (opened and closed here) keyed by (leaf, subleaf):
    the subleaf is 0 for an entry without KVM_CPUID_FLAG_SIGNIFCANT_INDEX (flags bit 0)."""
    kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    try:
        entries = cpuid(kvm, KVM_GET_SUPPORTED_CPUID)
    finally:
        os.close(kvm)
    return {(e[0], e[1] if e[2] & 1 else 0): (e[3], e[4], e[5], e[6]) for e in entries}


# --- the CPUID instruction, run by a C program compiled here ------------------------------------

CPUID_C = r"""
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

/* usage: cpuid CPU LEAF SUBLEAF [LEAF SUBLEAF ...]; prints "leaf subleaf eax ebx ecx edx" */
int main(int argc, char **argv) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(atoi(argv[1]), &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) { perror("sched_setaffinity"); return 1; }
    for (int i = 2; i + 1 < argc; i += 2) {
        unsigned a = strtoul(argv[i], 0, 0), c = strtoul(argv[i + 1], 0, 0), ra, rb, rc, rd;
        __asm__ volatile("cpuid" : "=a"(ra), "=b"(rb), "=c"(rc), "=d"(rd) : "a"(a), "c"(c));
        printf("%u %u %u %u %u %u\n", a, c, ra, rb, rc, rd);
    }
    return 0;
}
"""

# Leaves whose ECX input is a subleaf (SDM Vol. 2A, CPUID; APM Vol. 3, E.3): the flag KVM
# would give them, KVM_CPUID_FLAG_SIGNIFCANT_INDEX.
INDEXED = {0x4, 0x7, 0xB, 0xD, 0xF, 0x10, 0x12, 0x14, 0x17, 0x18, 0x1D, 0x1F, 0x20, 0x23, 0x24,
           0x8000001D, 0x80000020, 0x80000026}


def build_cpuid_program(where: Path) -> Path:
    """The C CPUID program compiled into ``where``; skips the test where gcc is missing."""
    import pytest

    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: cannot build the CPUID program")
    (where / "cpuid.c").write_text(CPUID_C)
    subprocess.run([gcc, "-O1", "-o", str(where / "cpuid"), str(where / "cpuid.c")], check=True, timeout=120)
    return where / "cpuid"


def run_cpuid(program: Path, cpu: int, queries: Sequence[Tuple[int, int]]) -> List[Entry]:
    """CPUID for each (leaf, subleaf) on ``cpu``, as KVM lays entries out (flags: :data:`INDEXED`)."""
    args = [str(program), str(cpu)] + [str(n) for query in queries for n in query]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout
    entries: List[Entry] = []
    for line in out.splitlines():
        leaf, sub, eax, ebx, ecx, edx = (int(word) for word in line.split())
        entries.append((leaf, sub, 1 if leaf in INDEXED else 0, eax, ebx, ecx, edx))
    return entries


# The fields that name the CPU which ran CPUID, so differ between the CPUs of one host (cleared
# before comparing two reads that may run on different CPUs), per (leaf, register index 0-3 for
# EAX-EDX): SDM Vol. 2A CPUID leaf 01H EBX[31:24] initial APIC ID, 0BH and 1FH EDX x2APIC ID, 1AH
# EAX core type (hybrid parts); APM Vol. 3 Fn8000_001E EAX extended APIC ID, EBX compute unit, ECX
# node ID. Written here, not taken from kvmprobe's VOLATILE table.
PER_CPU: Dict[Tuple[int, int], int] = {
    (0x1, 1): 0xFF000000, (0xB, 3): 0xFFFFFFFF, (0x1F, 3): 0xFFFFFFFF, (0x1A, 0): 0xFFFFFFFF,
    (0x8000001E, 0): 0xFFFFFFFF, (0x8000001E, 1): 0xFFFFFFFF, (0x8000001E, 2): 0xFFFFFFFF,
}


def without_per_cpu_fields(entries: Iterable[Sequence[int]]) -> List[Entry]:
    """``entries`` (7-tuples) with the :data:`PER_CPU` fields cleared, in their order."""
    out: List[Entry] = []
    for e in entries:
        regs = [e[3 + i] & ~PER_CPU.get((e[0], i), 0) for i in range(4)]
        out.append((e[0], e[1], e[2], regs[0], regs[1], regs[2], regs[3]))
    return out
