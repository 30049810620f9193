"""VMM readiness on the real /dev/kvm, held against raw KVM_CHECK_EXTENSION answers (fcntl.ioctl)."""

from __future__ import annotations

import fcntl
import json
import os
import platform
import subprocess
import sys

import pytest

import kvmprobe
from kvmprobe._release import parse_release
from kvmprobe.profiles import Profile, builtin_profile, builtin_profiles

from _helpers import RAW_KVM_GET_API_VERSION, raw_check_extension

pytestmark = pytest.mark.kvm

HERE = [p for p in builtin_profiles(releases=True) if p.arch == platform.machine()]
# The three VMMs this machine is expected to run (the project's development host).
MAIN = ("qemu", "firecracker", "cloud-hypervisor")


@pytest.mark.parametrize("profile", HERE, ids=lambda p: f"{p.name}-{(p.versions or '').split()[0]}")
def test_verdict_equals_the_raw_answers(raw_kvm_fd: int, profile: Profile) -> None:
    verdict = kvmprobe.check_vmm(profile, kvmprobe.probe(refresh=True))
    raw = {r.cap: raw_check_extension(raw_kvm_fd, int(r.cap)) for r in profile.requirements}
    assert [m.cap for m in verdict.missing_required] == [r.cap for r in profile.required if raw[r.cap] <= 0]
    assert [m.cap for m in verdict.missing_optional] == [r.cap for r in profile.optional if raw[r.cap] <= 0]
    api = fcntl.ioctl(raw_kvm_fd, RAW_KVM_GET_API_VERSION, 0)
    api_ok = profile.api_version is None or api == profile.api_version
    unwanted = any(raw[r.cap] > 0 for r in profile.of_kind("incompatible"))
    assert verdict.ready is (api_ok and all(raw[r.cap] > 0 for r in profile.required) and not unwanted)
    assert verdict.kernel == os.uname().release


def _expect_main_ready() -> None:
    if platform.machine() != "x86_64":
        pytest.skip(f"the expectation is for x86_64 hosts; this is {platform.machine()}")
    floor = max(parse_release(builtin_profile(n, "x86_64").min_kernel or "0.0") or (0, 0) for n in MAIN)
    release = parse_release(os.uname().release)
    if release is None or release < floor:
        pytest.skip(f"kernel {os.uname().release} is below the documented minimum of one of {MAIN}")


@pytest.mark.parametrize("name", MAIN)
def test_qemu_firecracker_cloud_hypervisor_are_ready_here(raw_kvm_fd: int, name: str) -> None:
    _expect_main_ready()
    verdict = kvmprobe.check_vmm(name)
    assert verdict.ready, verdict.summary()
    for req in verdict.profile.required:
        assert raw_check_extension(raw_kvm_fd, int(req.cap)) > 0, req.cap.c_name


def test_check_command_on_the_live_device(raw_kvm_fd: int) -> None:
    _expect_main_ready()
    proc = subprocess.run(
        [sys.executable, "-m", "kvmprobe", "check", "--json", *MAIN], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ready"] is True and [v["vmm"] for v in doc["vmms"]] == list(MAIN)
    assert doc["host"]["kernel"] == os.uname().release
    assert doc["host"]["api_version"] == fcntl.ioctl(raw_kvm_fd, RAW_KVM_GET_API_VERSION, 0)
