"""The BPF program ``kvmprobe emulate`` installs, run through a classic-BPF interpreter written here.

The interpreter and every number it is checked with (AUDIT_ARCH values, syscall numbers, the
ioctl request, the seccomp return actions) are written out in tests/_bpf.py from the kernel's
headers, not taken from kvmprobe._seccomp, so the test does not share the code path it checks.
Then the same program is installed for real, in a child (a seccomp filter needs no /dev/kvm):
an ioctl numbered KVM_CHECK_EXTENSION on /dev/null answers 0 for a masked capability and
ENOTTY (the kernel's answer) for any other.
"""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import sys
from typing import Dict, List, Tuple

import pytest
from hypothesis import given, settings, strategies as st

from kvmprobe import _seccomp
from kvmprobe._ioctl import KvmIoctls
from kvmprobe.errors import EmulationError

from _bpf import (ALLOW, AUDIT_AARCH64, AUDIT_I386, AUDIT_X86_64, CHECK_EXTENSION, ERRNO, GET_API_VERSION,
                  KILL_PROCESS, NR, USER_NOTIF, X32_IOCTL, run_bpf, seccomp_data)


def program(machine: str, caps: Dict[int, int], default: int, api: int = ALLOW) -> bytes:
    return _seccomp.filter_program(_seccomp.arch_for(machine, "linux"), KvmIoctls.for_machine(machine), caps,
                                   default, api_version=api)


@pytest.mark.parametrize("machine, audit", [("x86_64", AUDIT_X86_64), ("aarch64", AUDIT_AARCH64)])
def test_the_filter_answers_masked_capabilities_and_allows_everything_else(machine: str, audit: int) -> None:
    prog = program(machine, {36: ERRNO | 0, 10: ERRNO | errno.EIO}, ALLOW)
    nr = NR[machine]
    assert run_bpf(prog, seccomp_data(nr, audit, (3, CHECK_EXTENSION, 36))) == ERRNO | 0
    assert run_bpf(prog, seccomp_data(nr, audit, (4, CHECK_EXTENSION, 10))) == ERRNO | errno.EIO
    assert run_bpf(prog, seccomp_data(nr, audit, (3, CHECK_EXTENSION, 3))) == ALLOW
    # The request is an unsigned int: bits above 31 of the register do not count.
    assert run_bpf(prog, seccomp_data(nr, audit, (3, (0xDEAD << 32) | CHECK_EXTENSION, 36))) == ERRNO
    # A capability number with high bits is no capability (the kernel answers 0 itself).
    assert run_bpf(prog, seccomp_data(nr, audit, (3, CHECK_EXTENSION, (1 << 32) | 36))) == ALLOW
    assert run_bpf(prog, seccomp_data(nr, audit, (3, GET_API_VERSION, 0))) == ALLOW
    assert run_bpf(prog, seccomp_data(nr, audit, (3, 0x5401, 36))) == ALLOW  # TCGETS
    assert run_bpf(prog, seccomp_data(nr + 1, audit, (3, CHECK_EXTENSION, 36))) == ALLOW  # another syscall


@pytest.mark.parametrize("machine, foreign", [("x86_64", AUDIT_I386), ("aarch64", AUDIT_X86_64), ("x86_64", AUDIT_AARCH64)])
def test_a_call_of_another_architecture_kills_rather_than_runs_unfiltered(machine: str, foreign: int) -> None:
    prog = program(machine, {36: ERRNO}, ALLOW)
    assert run_bpf(prog, seccomp_data(54, foreign, (3, CHECK_EXTENSION, 36))) == KILL_PROCESS
    assert run_bpf(prog, seccomp_data(1, foreign, ())) == KILL_PROCESS


def test_an_x32_call_kills_on_x86_64() -> None:
    prog = program("x86_64", {36: ERRNO}, ALLOW)
    assert run_bpf(prog, seccomp_data(X32_IOCTL, AUDIT_X86_64, (3, CHECK_EXTENSION, 36))) == KILL_PROCESS
    # aarch64 has no such bit: a large number is just another system call.
    assert run_bpf(program("aarch64", {36: ERRNO}, ALLOW), seccomp_data(X32_IOCTL, AUDIT_AARCH64, ())) == ALLOW


def test_the_supervisor_program_notifies_checks_and_the_api_version() -> None:
    prog = program("x86_64", {}, USER_NOTIF, api=USER_NOTIF)
    assert run_bpf(prog, seccomp_data(16, AUDIT_X86_64, (3, CHECK_EXTENSION, 200))) == USER_NOTIF
    assert run_bpf(prog, seccomp_data(16, AUDIT_X86_64, (3, GET_API_VERSION, 0))) == USER_NOTIF
    assert run_bpf(prog, seccomp_data(16, AUDIT_X86_64, (3, 0xAE01, 0))) == ALLOW  # KVM_CREATE_VM


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    masked=st.dictionaries(st.integers(0, 300), st.sampled_from([ERRNO, ERRNO | errno.EIO, ALLOW, USER_NOTIF]),
                           max_size=40),
    default=st.sampled_from([ALLOW, ERRNO, USER_NOTIF]),
    asked=st.integers(0, 2**32 - 1),
    machine=st.sampled_from(["x86_64", "aarch64"]),
)
def test_every_capability_gets_its_action(masked: Dict[int, int], default: int, asked: int, machine: str) -> None:
    prog = program(machine, masked, default)
    audit = AUDIT_X86_64 if machine == "x86_64" else AUDIT_AARCH64
    assert run_bpf(prog, seccomp_data(NR[machine], audit, (5, CHECK_EXTENSION, asked))) == masked.get(asked, default)


def test_the_longest_filter_fits_the_kernel_limit() -> None:
    every = {n: ERRNO for n in range(2000)}  # far more than the table's ~250 capabilities
    assert len(program("x86_64", every, ALLOW)) // 8 <= 4096
    with pytest.raises(EmulationError, match="BPF instructions"):
        program("x86_64", {n: ERRNO for n in range(3000)}, ALLOW)


def test_only_linux_on_x86_64_or_aarch64() -> None:
    for machine, platform in (("riscv64", "linux"), ("s390x", "linux"), ("x86_64", "darwin")):
        with pytest.raises(EmulationError) as err:
            _seccomp.arch_for(machine, platform)
        assert "seccomp" in err.value.message and err.value.hint


def test_notification_ioctl_numbers() -> None:
    # include/uapi/linux/seccomp.h on the generic _IOC layout: SECCOMP_IOWR('!', 0, struct
    # seccomp_notif) (80 bytes), SECCOMP_IOWR('!', 1, struct seccomp_notif_resp) (24 bytes),
    # SECCOMP_IOW('!', 2, __u64); as strace decodes them.
    assert (_seccomp._NOTIF_RECV, _seccomp._NOTIF_SEND, _seccomp._NOTIF_ID_VALID) == (0xC0502100, 0xC0182101, 0x40082102)


# --- Installed for real (no /dev/kvm needed: the filter answers before any driver is asked) ---

CHILD = """
import fcntl, os, sys
fd = os.open("/dev/null", os.O_RDONLY)
for cap in map(int, sys.argv[1:]):
    try:
        print(cap, fcntl.ioctl(fd, 0xAE03, cap))
    except OSError as err:
        print(cap, "errno", err.errno)
"""


def seccomp_usable() -> None:
    if not sys.platform.startswith("linux") or os.uname().machine not in _seccomp.ARCHES:
        pytest.skip(f"the filter is written for x86_64 and aarch64 Linux, this is {os.uname().machine}")
    if "errno" not in _seccomp.actions_available().split():
        pytest.skip("this kernel has no seccomp filters (/proc/sys/kernel/seccomp/actions_avail)")


def run_filtered(prog: bytes, listener: bool, args: List[str]) -> Tuple[str, "int | None"]:
    parent, child = _seccomp.status_socketpair()
    argv = _seccomp.trampoline_argv(prog, listener, child.fileno(), [sys.executable, "-c", CHILD, *args])
    with parent, child:
        proc = subprocess.Popen(argv, pass_fds=(child.fileno(),), stdout=subprocess.PIPE, text=True)
        child.close()
        listener_fd = _seccomp.wait_installed(parent, "python")
        out, _ = proc.communicate(timeout=60)
    return out, listener_fd


def test_installed_filter_answers_zero_for_a_masked_number_on_any_fd() -> None:
    seccomp_usable()
    prog = _seccomp.filter_program(_seccomp.arch_for(), KvmIoctls.for_machine(), {36: ERRNO, 10: ERRNO | errno.EIO}, ALLOW)
    out, listener_fd = run_filtered(prog, False, ["36", "10", "3"])
    assert listener_fd is None
    assert out.splitlines() == ["36 0", f"10 errno {errno.EIO}", f"3 errno {errno.ENOTTY}"]


def test_trampoline_reports_a_filter_the_kernel_refuses() -> None:
    seccomp_usable()
    bad = struct.pack("=HBBI", 0xFFFF, 0, 0, 0)  # no such opcode: seccomp(2) says EINVAL
    parent, child = _seccomp.status_socketpair()
    argv = _seccomp.trampoline_argv(bad, False, child.fileno(), ["true"])
    with parent, child:
        proc = subprocess.Popen(argv, pass_fds=(child.fileno(),))
        child.close()
        with pytest.raises(EmulationError, match="cannot install the seccomp filter") as err:
            _seccomp.wait_installed(parent, "true")
        assert proc.wait(timeout=60) == 126  # and 'true' never ran
    assert err.value.errno == errno.EINVAL
