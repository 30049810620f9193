"""Hardware tests: they run against the real /dev/kvm (or CPU) and compare with the kernel's own answers.

Tests that need the device carry ``pytest.mark.kvm`` (most modules set it as ``pytestmark``); the
kvmprobe pytest plugin skips those tests, with the reason, where no usable /dev/kvm exists.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Iterator

import pytest

from _helpers import GENERIC_ARCHES


@pytest.fixture(scope="session")
def cpuid_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The C CPUID program of ``hardware._raw_x86``, compiled once (skips where gcc is missing)."""
    from hardware import _raw_x86

    if platform.machine() != "x86_64":
        pytest.skip("CPUID is an x86 instruction")
    return _raw_x86.build_cpuid_program(tmp_path_factory.mktemp("cpuid"))


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


@pytest.fixture
def pinned_cpu() -> Iterator[int]:
    """This thread pinned to one CPU for the test: KVM_GET_SUPPORTED_CPUID passes some fields of
    the CPU it runs on through (leaf 1 EBX[31:24], the APIC ID), so two reads compare exactly only
    from the same CPU."""
    before = os.sched_getaffinity(0)
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)
