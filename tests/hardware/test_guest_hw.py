"""The micro-guest on the real /dev/kvm, against paths this test writes itself.

The real-mode guest is also run through raw ``fcntl.ioctl`` calls with this file's own structure
layouts; the guest's CPUID is compared with ``KVM_GET_SUPPORTED_CPUID`` read the same raw way and
with the host's CPUID from the C program of ``hardware._raw_x86``; the fd table is read from /proc/self/fd.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import platform
import signal
import struct
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from _helpers import RAW_KVM_CREATE_VM, open_fds
from hardware import _raw_x86 as raw
from kvmprobe import guest

pytestmark = [
    pytest.mark.kvm,
    pytest.mark.skipif(platform.machine() != "x86_64", reason="the micro-guest runs x86 code"),
]

# _IO/_IOW/_IOR/_IOWR(0xAE, nr, size) on x86_64, written out (include/uapi/linux/kvm.h).
RAW_KVM_GET_VCPU_MMAP_SIZE = 0xAE04
RAW_KVM_SET_USER_MEMORY_REGION = 0x4020AE46
RAW_KVM_RUN = 0xAE80
RAW_KVM_GET_SREGS = 0x8138AE83
RAW_KVM_SET_SREGS = 0x4138AE84
RAW_KVM_SET_REGS = 0x4090AE82

FIVE_BYTES = bytes([0xB0, 0x42, 0xE6, 0x10, 0xF4])  # mov al,0x42; out 0x10,al; hlt


def raw_real_mode_run(code: bytes) -> List[Tuple[int, int, int, int]]:
    """The five-byte guest through fcntl.ioctl: (exit_reason, port, size, first byte) per exit."""
    exits: List[Tuple[int, int, int, int]] = []

    def alarm(signum: int, frame: object) -> None:
        raise TimeoutError("KVM_RUN did not return in 5 s")

    previous = signal.signal(signal.SIGALRM, alarm)
    kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    memory = mmap.mmap(-1, 0x100000)
    try:
        vm = fcntl.ioctl(kvm, RAW_KVM_CREATE_VM, 0)
        try:
            import ctypes

            view = ctypes.c_char.from_buffer(memory)
            address = ctypes.addressof(view)
            del view
            memory[0x1000:0x1000 + len(code)] = code
            # struct kvm_userspace_memory_region { u32 slot, flags; u64 guest_phys_addr, memory_size, userspace_addr; }
            fcntl.ioctl(vm, RAW_KVM_SET_USER_MEMORY_REGION, struct.pack("<IIQQQ", 0, 0, 0, 0x100000, address))
            vcpu = fcntl.ioctl(vm, raw.KVM_CREATE_VCPU, 0)
            try:
                size = fcntl.ioctl(kvm, RAW_KVM_GET_VCPU_MMAP_SIZE, 0)
                run = mmap.mmap(vcpu, size)
                try:
                    sregs = bytearray(312)
                    fcntl.ioctl(vcpu, RAW_KVM_GET_SREGS, sregs, True)
                    struct.pack_into("<QIH", sregs, 0, 0, 0xFFFF, 0)  # cs: base 0, limit, selector 0
                    fcntl.ioctl(vcpu, RAW_KVM_SET_SREGS, bytes(sregs))
                    regs = struct.pack("<18Q", *([0] * 16), 0x1000, 2)  # rip 0x1000, rflags 2
                    fcntl.ioctl(vcpu, RAW_KVM_SET_REGS, regs)
                    for _ in range(4):
                        signal.alarm(5)
                        fcntl.ioctl(vcpu, RAW_KVM_RUN, 0)
                        signal.alarm(0)
                        (reason,) = struct.unpack_from("<I", run, 8)
                        if reason == 2:  # KVM_EXIT_IO: direction, size, port, count, data_offset at 32
                            _, io_size, port, _, offset = struct.unpack_from("<BBHIQ", run, 32)
                            exits.append((reason, port, io_size, run[offset]))
                            continue
                        exits.append((reason, 0, 0, 0))
                        break
                finally:
                    run.close()
            finally:
                os.close(vcpu)
        finally:
            os.close(vm)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        memory.close()
        os.close(kvm)
    return exits


def test_the_real_mode_guest_exits_exactly_as_issue_14_says_and_as_raw_ioctls_see_it() -> None:
    run = guest.run_guest(FIVE_BYTES, time_limit=5)
    assert [e.describe() for e in run.exits] == ["KVM_EXIT_IO out port 0x10 size 1 value 0x42", "KVM_EXIT_HLT"]
    assert run.outcome == "halted" and run.error == ""
    assert raw_real_mode_run(FIVE_BYTES) == [(2, 0x10, 1, 0x42), (5, 0, 0, 0)]


@pytest.mark.parametrize("mode", ["protected", "long"])
def test_the_same_bytes_run_in_protected_and_long_mode(mode: str) -> None:
    run = guest.run_guest(FIVE_BYTES, mode=mode, time_limit=5)
    assert [e.describe() for e in run.exits] == ["KVM_EXIT_IO out port 0x10 size 1 value 0x42", "KVM_EXIT_HLT"]


def test_a_guest_that_never_exits_is_stopped_by_its_watchdog() -> None:
    before = open_fds()
    run = guest.run_guest(bytes([0xEB, 0xFE]), time_limit=1.0)  # jmp $
    assert run.outcome == "timeout" and not run.finished
    assert "did not finish in 1 s" in run.describe()
    assert open_fds() == before
    # The process is still usable: the next guest runs.
    assert guest.run_guest(FIVE_BYTES, time_limit=5).halted


def test_a_thousand_runs_leave_the_fd_table_as_it_was() -> None:
    guest.run_guest(FIVE_BYTES, time_limit=5)  # first-use imports and caches open nothing later
    before = open_fds()
    maps_before = Path("/proc/self/maps").read_text().count("\n")
    outcomes = {guest.run_guest(FIVE_BYTES, time_limit=5).outcome for _ in range(1000)}
    assert outcomes == {"halted"}
    assert open_fds() == before
    assert Path("/proc/self/maps").read_text().count("\n") < maps_before + 16  # nothing mapped per run


def test_a_failing_guest_is_named_by_its_exit() -> None:
    # A triple fault: long mode with no IDT, then ud2 (#UD cannot be delivered) ends in KVM_EXIT_SHUTDOWN
    # on VT-x, AMD-V and PVM alike (Intel SDM vol. 3A 6.15; docs/research/pvm.md §1).
    run = guest.run_guest(bytes([0x0F, 0x0B]), mode="long", time_limit=5)
    assert run.outcome == "exit"
    assert run.exits[-1].name in ("KVM_EXIT_SHUTDOWN", "KVM_EXIT_INTERNAL_ERROR")


def test_exit_cost_is_measured_and_positive() -> None:
    report = guest.run_checks()
    assert report.ok
    assert report.exit_cost is not None
    assert report.exit_cost.exits == guest.DEFAULT_EXITS - 1
    assert 0 < report.exit_cost.min_ns <= report.exit_cost.median_ns <= report.exit_cost.max_ns
    assert report.compute is not None and report.compute.native_ns > 0 and report.compute.guest_ns > 0


# --- the guest's CPUID against KVM_GET_SUPPORTED_CPUID and the host's CPUID ---------------------------

Registers = raw.Registers
# Bits a guest sees from its own run-time state on every backend (Intel SDM vol. 2A, CPUID):
# leaf 1 EBX[31:24] initial APIC ID and EBX[23:16] logical processor count, leaf 1 ECX bit 27
# OSXSAVE, leaf 7 ECX bit 4 OSPKE. Written out here, not taken from kvmprobe.
DYNAMIC = {(1, 1): 0xFFFF0000, (1, 2): 1 << 27, (7, 2): 1 << 4}


@pytest.fixture(scope="module")
def host_cpuid(cpuid_program: Path) -> Dict[Tuple[int, int], Registers]:
    """The host's CPUID of every leaf the guest reads, by the C program of ``hardware._raw_x86``."""
    cpu = min(os.sched_getaffinity(0))
    return {(e[0], e[1]): (e[3], e[4], e[5], e[6]) for e in raw.run_cpuid(cpuid_program, cpu, guest.CPUID_LEAVES)}


def backend() -> str:
    for module in ("kvm_pvm", "kvm_intel", "kvm_amd"):
        if os.path.isdir(f"/sys/module/{module}"):
            return module
    return "unknown"


def test_the_long_mode_guest_reads_the_supported_cpuid_or_on_pvm_the_host_cpu(
    host_cpuid: Dict[Tuple[int, int], Registers], pinned_cpu: int
) -> None:
    # Pinned: the supported table carries the APIC ID of the CPU that read it (leaf 1 EBX[31:24]),
    # and the guest's forked child inherits the pinning, so both read it on one CPU.
    report = guest.run_checks()
    supported = raw.supported_cpuid_by_leaf()
    assert [(r.leaf, r.subleaf) for r in report.cpuid] == list(guest.CPUID_LEAVES)
    pvm = backend() == "kvm_pvm"
    for row in report.cpuid:
        listed = supported.get((row.leaf, row.subleaf))
        assert row.supported == listed  # kvmprobe's own reading agrees with the raw one
        if listed is None:
            continue
        host = host_cpuid[(row.leaf, row.subleaf)]
        for index in range(4):
            mask = ~DYNAMIC.get((row.leaf, index), 0) & 0xFFFFFFFF
            seen, table, native = row.guest[index] & mask, listed[index] & mask, host[index] & mask
            if pvm:
                # PVM: CPUID is not trapped for a guest, so a bit comes from the host CPU or, for the few
                # bits KVM manages itself, from the table the vCPU was given (docs/research/pvm.md §3) — never from neither.
                assert (seen ^ table) & (seen ^ native) == 0, (hex(row.leaf), index, hex(seen), hex(table), hex(native))
            else:
                # VT-x/AMD-V: CPUID exits to KVM, which answers from the table.
                assert seen == table, (hex(row.leaf), index, hex(seen), hex(table))
