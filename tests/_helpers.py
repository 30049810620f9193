"""Helpers shared by the test modules (importable as ``_helpers``: tests/ is on the path)."""

from __future__ import annotations

import os
from typing import Dict


def open_fds() -> Dict[int, str]:
    """This process's open fds and what they point at (from /proc/self/fd)."""
    fds: Dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the fd listdir itself used, closed by now
            pass
    return fds


# The kernel's numbers on the asm-generic ioctl layout (x86_64, aarch64, riscv64, s390x), written
# out here rather than taken from kvmprobe._ioctl, so that hardware tests do not share the code
# path they check: _IO(0xAE, 0x00), _IO(0xAE, 0x01) and _IO(0xAE, 0x03).
RAW_KVM_GET_API_VERSION = 0xAE00
RAW_KVM_CREATE_VM = 0xAE01
RAW_KVM_CHECK_EXTENSION = 0xAE03
GENERIC_ARCHES = ("x86_64", "aarch64", "riscv64", "s390x")


def raw_check_extension(fd: int, number: int) -> int:
    """KVM_CHECK_EXTENSION through fcntl.ioctl: the independent path."""
    import fcntl

    return fcntl.ioctl(fd, RAW_KVM_CHECK_EXTENSION, number)
