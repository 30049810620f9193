"""A classic-BPF interpreter and the kernel's numbers, written out here, for tests of the seccomp
filter ``kvmprobe emulate`` installs (importable as ``_bpf``: tests/ is on the path). Nothing
is taken from kvmprobe._seccomp, so the tests do not share the code path they check."""

from __future__ import annotations

import struct
from typing import List, Tuple

# include/uapi/linux/audit.h: EM_X86_64 (62) and EM_AARCH64 (183) | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
AUDIT_X86_64 = 0xC000003E
AUDIT_AARCH64 = 0xC00000B7
AUDIT_I386 = 0x40000003
# arch/x86/entry/syscalls/syscall_64.tbl and asm-generic/unistd.h: ioctl is 16 and 29.
NR = {"x86_64": 16, "aarch64": 29}
X32_IOCTL = 0x40000000 | 514  # syscall_64.tbl: 514 x32 ioctl compat_sys_ioctl
CHECK_EXTENSION = 0xAE03  # _IO(KVMIO, 0x03)
GET_API_VERSION = 0xAE00
# include/uapi/linux/seccomp.h
KILL_PROCESS, ERRNO, USER_NOTIF, ALLOW = 0x80000000, 0x00050000, 0x7FC00000, 0x7FFF0000


def seccomp_data(nr: int, arch: int, args: Tuple[int, ...]) -> bytes:
    """struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]."""
    full = (list(args) + [0] * 6)[:6]
    return struct.pack("<iIQ6Q", nr, arch, 0x400000, *full)


def run_bpf(program: bytes, data: bytes) -> int:
    """A classic BPF interpreter for the instructions a seccomp filter may use here."""
    insns: List[Tuple[int, int, int, int]] = [struct.unpack_from("=HBBI", program, at) for at in range(0, len(program), 8)]
    assert 0 < len(insns) <= 4096
    pc, acc = 0, 0
    for _ in range(len(insns) + 1):  # classic BPF only jumps forward: it must end within len steps
        code, jt, jf, k = insns[pc]
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            assert k % 4 == 0 and k + 4 <= len(data)
            (acc,) = struct.unpack_from("<I", data, k)
            pc += 1
        elif code == 0x15:  # BPF_JMP | BPF_JEQ | BPF_K
            pc += 1 + (jt if acc == k else jf)
        elif code == 0x35:  # BPF_JMP | BPF_JGE | BPF_K
            pc += 1 + (jt if acc >= k else jf)
        elif code == 0x06:  # BPF_RET | BPF_K
            return k
        else:
            raise AssertionError(f"opcode {code:#x} not expected in this filter")
    raise AssertionError("the program did not return")
