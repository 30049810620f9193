"""The probe against the real /dev/kvm, checked through an independent path (fcntl.ioctl)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys

import pytest

import kvmprobe
from kvmprobe import Cap, KvmDevice

from _helpers import open_fds  # noqa: I001
from _helpers import RAW_KVM_CREATE_VM, RAW_KVM_GET_API_VERSION, raw_check_extension

pytestmark = pytest.mark.kvm



def test_api_version_is_what_the_kernel_says(raw_kvm_fd: int) -> None:
    assert kvmprobe.probe(refresh=True).api_version == fcntl.ioctl(raw_kvm_fd, RAW_KVM_GET_API_VERSION, 0) == 12


def test_every_capability_equals_the_raw_ioctl(raw_kvm_fd: int) -> None:
    result = kvmprobe.probe(refresh=True)
    assert result.errors == {}
    mismatches = {
        cap.c_name: (result.value(cap), raw)
        for cap in Cap
        if result.value(cap) != (raw := raw_check_extension(raw_kvm_fd, int(cap)))
    }
    assert mismatches == {}
    # The table is not all zeros here: KVM really answers (a count for NR_MEMSLOTS, not just 1).
    assert result.value(Cap.NR_MEMSLOTS) == raw_check_extension(raw_kvm_fd, 10) > 1


def test_vm_fd_values_equal_a_raw_vm_fd(raw_kvm_fd: int) -> None:
    result = kvmprobe.probe(vm=True, refresh=True)
    if not raw_check_extension(raw_kvm_fd, int(Cap.CHECK_EXTENSION_VM)):
        assert result.vm_values is None
        pytest.skip("this kernel has no KVM_CAP_CHECK_EXTENSION_VM")
    vm_fd = fcntl.ioctl(raw_kvm_fd, RAW_KVM_CREATE_VM, 0)
    try:
        raw_vm = {cap: raw_check_extension(vm_fd, int(cap)) for cap in Cap}
    finally:
        os.close(vm_fd)
    assert result.vm_values == raw_vm
    # Where the two fds differ (X2APIC_API: 15 vs 11 on the PVM host), both values are kept.
    for cap in Cap:
        assert result.value(cap) == raw_check_extension(raw_kvm_fd, int(cap))


def test_probing_leaves_no_fd_open() -> None:
    before = open_fds()
    for _ in range(50):
        kvmprobe.probe(refresh=True)
        kvmprobe.probe(vm=True, refresh=True)
    assert open_fds() == before


def test_device_fd_is_close_on_exec() -> None:
    with KvmDevice.open() as kvm:
        assert fcntl.fcntl(kvm.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        with kvm.create_vm() as vm:
            assert fcntl.fcntl(vm.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC


def test_cli_json_lists_every_cap_rs_capability_with_the_kernels_value(raw_kvm_fd: int) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kvmprobe", "--json"], capture_output=True, text=True, check=True, timeout=60
    )
    doc = json.loads(out.stdout)
    assert doc["api_version"] == 12 and doc["device"] == "/dev/kvm"
    rows = {row["name"]: row for row in doc["capabilities"]}
    cap_rs = [cap for cap in Cap if cap.in_cap_rs]
    assert len(cap_rs) == 129 and all(cap.c_name in rows for cap in cap_rs)
    for cap in Cap:
        row = rows[cap.c_name]
        assert (row["number"], row["value"]) == (int(cap), raw_check_extension(raw_kvm_fd, int(cap))), cap.c_name


def test_cli_has_matches_the_kernel(raw_kvm_fd: int) -> None:
    supported = [c for c in Cap if raw_check_extension(raw_kvm_fd, int(c)) > 0][:3]
    unsupported = [c for c in Cap if raw_check_extension(raw_kvm_fd, int(c)) == 0][:1]
    ok = subprocess.run([sys.executable, "-m", "kvmprobe", "has", *[c.c_name for c in supported]],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run([sys.executable, "-m", "kvmprobe", "has", supported[0].name, unsupported[0].name],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1
    assert unsupported[0].c_name in missing.stderr and "Traceback" not in missing.stderr
