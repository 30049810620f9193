"""Hardware tests: they run against the real /dev/kvm and compare with the kernel's own answers.

Every module here sets ``pytestmark = pytest.mark.kvm``; the kvmprobe pytest plugin skips those
tests, with the reason, where no usable /dev/kvm exists.
"""

from __future__ import annotations

import fcntl
import os
import platform
from typing import Iterator

import pytest

# The kernel's numbers on the asm-generic ioctl layout (x86_64, aarch64, riscv64, s390x), written
# out here rather than taken from kvmprobe._ioctl, so that the hardware tests do not share the code
# path they check: _IO(0xAE, 0x00) and _IO(0xAE, 0x03).
RAW_KVM_GET_API_VERSION = 0xAE00
RAW_KVM_CHECK_EXTENSION = 0xAE03
GENERIC_ARCHES = ("x86_64", "aarch64", "riscv64", "s390x")


@pytest.fixture
def raw_kvm_fd() -> Iterator[int]:
    """A /dev/kvm fd opened directly with os.open (not through kvmprobe); closed afterwards."""
    if platform.machine() not in GENERIC_ARCHES:
        pytest.skip(f"raw ioctl numbers are written out for {GENERIC_ARCHES} only, this is {platform.machine()}")
    fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def raw_check_extension(fd: int, number: int) -> int:
    """KVM_CHECK_EXTENSION through fcntl.ioctl: the independent path."""
    return fcntl.ioctl(fd, RAW_KVM_CHECK_EXTENSION, number)
