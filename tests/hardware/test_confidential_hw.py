"""Confidential VMs on this machine, against the kernel's own answers through paths this test writes.

KVM_CAP_VM_TYPES, KVM_CREATE_VM(type) and KVM_GET_DEVICE_ATTR(KVM_X86_GRP_SEV) are issued with
``fcntl.ioctl`` and structures laid out here; CPUID 0x8000001F comes from the CPUID instruction
(a small C program), RLIMIT_MEMLOCK from ``getrlimit``, misc.capacity from the file itself. On a
machine whose KVM offers no confidential type (the PVM development host) the negative path must
come out exactly: the mask decoded as the default type only, every kind NOT READY at the KVM layer,
and no VM left open. A machine that offers one checks that KVM made it.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import platform
import resource
import struct
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple

import pytest

from _helpers import RAW_KVM_CREATE_VM, open_fds, raw_check_extension
from hardware import _raw_x86 as raw
from kvmprobe.confidential import ConfidentialFacts, ConfidentialReport, assess

pytestmark = pytest.mark.kvm

# include/uapi/linux/kvm.h: KVM_CAP_VM_TYPES 235, KVM_CAP_SYS_ATTRIBUTES 209; KVM_GET_DEVICE_ATTR is
# _IOW(0xAE, 0xe2, struct kvm_device_attr) with the 24-byte struct {u32 flags, group; u64 attr, addr}.
VM_TYPES_CAP = 235
SYS_ATTRIBUTES_CAP = 209
RAW_KVM_GET_DEVICE_ATTR = 0x4018AEE2
# arch/x86/include/uapi/asm/kvm.h, written out again here: KVM_X86_*_VM by number.
MAINLINE_TYPES = {0: "KVM_X86_DEFAULT_VM", 1: "KVM_X86_SW_PROTECTED_VM", 2: "KVM_X86_SEV_VM",
                  3: "KVM_X86_SEV_ES_VM", 4: "KVM_X86_SNP_VM", 5: "KVM_X86_TDX_VM"}  # fmt: skip
KIND_TYPES = {"sev": 2, "sev-es": 3, "sev-snp": 4, "tdx": 5}


@pytest.fixture(scope="module")
def x86() -> None:
    if platform.machine() != "x86_64":
        pytest.skip(f"SEV, SNP and TDX are x86_64 VM types; this is {platform.machine()}")


@pytest.fixture
def vm_types(x86: None, raw_kvm_fd: int) -> int:
    return raw_check_extension(raw_kvm_fd, VM_TYPES_CAP)


def raw_create(fd: int, vm_type: int) -> int:
    """KVM_CREATE_VM(type): 0 when it made a VM (closed at once), else the errno."""
    try:
        vm = fcntl.ioctl(fd, RAW_KVM_CREATE_VM, vm_type)
    except OSError as err:
        return err.errno or errno.EIO
    os.close(vm)
    return 0


def raw_device_attr(fd: int, group: int, attr: int) -> Tuple[Optional[int], Optional[int]]:
    value = ctypes.c_uint64(0)
    request = bytearray(struct.pack("=IIQQ", 0, group, attr, ctypes.addressof(value)))
    try:
        fcntl.ioctl(fd, RAW_KVM_GET_DEVICE_ATTR, request)
    except OSError as err:
        return None, err.errno
    return value.value, None


# The report, and this process's fds before and after it was made.
Gathered = Tuple[ConfidentialReport, Dict[int, str], Dict[int, str]]


@pytest.fixture
def report_and_fds(vm_types: int) -> Iterator[Gathered]:
    before = open_fds()
    report = assess(create_vms=True)
    yield report, before, open_fds()


def facts_of(gathered: Gathered) -> ConfidentialFacts:
    facts = gathered[0].facts
    assert facts is not None  # a live host: its facts were read
    return facts


def test_vm_types_are_the_kernels_answer_decoded(vm_types: int, report_and_fds: Gathered) -> None:
    report = report_and_fds[0]
    if vm_types == 0:
        assert report.vm_types is None  # no KVM_CAP_VM_TYPES: not "no types"
        return
    assert report.vm_types == vm_types
    known = [name for n, name in MAINLINE_TYPES.items() if vm_types >> n & 1]
    unknown = vm_types & ~sum(1 << n for n in MAINLINE_TYPES)
    assert list(report.vm_type_names) == known + ([hex(unknown)] if unknown else [])


def test_each_kind_is_confirmed_by_kvm_create_vm_and_no_vm_is_left_open(
    raw_kvm_fd: int, vm_types: int, report_and_fds: Gathered
) -> None:
    report, before, after = report_and_fds
    facts = facts_of(report_and_fds)
    for kind, vm_type in KIND_TYPES.items():
        assert facts.created[vm_type] == raw_create(raw_kvm_fd, vm_type), kind
        verdict = report.verdict(kind)
        if not vm_types >> vm_type & 1:
            assert facts.created[vm_type] == errno.EINVAL  # x86.c: an unsupported type is EINVAL
            assert verdict.ready is False and verdict.layer("kvm").status == "blocked"
    assert {fd: t for fd, t in after.items() if "kvm" in t} == {fd: t for fd, t in before.items() if "kvm" in t}
    assert after == before


def test_without_a_confidential_backend_every_kind_is_blocked_at_kvm(vm_types: int, report_and_fds: Gathered) -> None:
    modules = set(os.listdir("/sys/module"))
    if modules & {"kvm_amd", "kvm_intel"}:
        pytest.skip("kvm_amd or kvm_intel is loaded here: the layers below KVM decide which one blocks")
    report = report_and_fds[0]
    for kind, vm_type in KIND_TYPES.items():
        assert not vm_types >> vm_type & 1
        verdict = report.verdict(kind)
        assert (verdict.ready, verdict.blocking) == (False, "kvm"), kind
        assert "which creates no confidential guest" in verdict.layer("kvm").summary


def test_the_sev_attributes_are_the_kernels(raw_kvm_fd: int, vm_types: int, report_and_fds: Gathered) -> None:
    facts = facts_of(report_and_fds)
    if raw_check_extension(raw_kvm_fd, SYS_ATTRIBUTES_CAP) <= 0:
        assert dict(facts.sev_attrs) == {}  # not asked without KVM_CAP_SYS_ATTRIBUTES
        return
    for attr, name in enumerate(("KVM_X86_SEV_VMSA_FEATURES", "KVM_X86_SNP_POLICY_BITS", "KVM_X86_SEV_SNP_REQ_CERTS")):
        assert facts.sev_attrs[name] == raw_device_attr(raw_kvm_fd, 1, attr), name
    if "kvm_amd" not in os.listdir("/sys/module"):
        assert {code for _, code in facts.sev_attrs.values()} == {errno.ENXIO}  # no SEV hook: ENXIO


def test_cpuid_memlock_and_misc_capacity_are_the_machines(report_and_fds: Gathered, cpuid_program: Path) -> None:
    facts = facts_of(report_and_fds)
    if facts.cpuid is None:
        assert facts.cpuid_note  # says why: no cpuid driver, not root, no such leaf
    else:
        (top,) = raw.run_cpuid(cpuid_program, 0, [(0x80000000, 0)])
        assert top[3] >= 0x8000001F
        (leaf,) = raw.run_cpuid(cpuid_program, 0, [(0x8000001F, 0)])
        assert facts.cpuid == leaf[3:]
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    unlimited = resource.RLIM_INFINITY
    assert facts.memlock == (-1 if soft == unlimited else soft, -1 if hard == unlimited else hard)
    found = dict(facts.misc_capacity) if facts.misc_capacity is not None else None
    for path in ("/sys/fs/cgroup/misc.capacity", "/sys/fs/cgroup/misc/misc.capacity"):
        if os.path.exists(path):
            with open(path) as handle:
                assert found == {k: int(v) for k, v in (line.split() for line in handle)}
            break
    else:
        assert found is None  # no misc controller here: unknown, not zero


def test_check_names_the_layer_and_exits_1(x86: None) -> None:
    done = subprocess.run([sys.executable, "-m", "kvmprobe", "check", "sev", "sev-es", "sev-snp", "tdx", "--json"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    doc = json.loads(done.stdout)
    ready = [entry["ready"] for entry in doc["confidential"]]
    assert done.returncode == (0 if all(ready) else 1) and [e["kind"] for e in doc["confidential"]] == list(KIND_TYPES)
    for entry in doc["confidential"]:
        blocked = [layer for layer in entry["layers"] if layer["id"] == entry["blocking"]]
        assert entry["ready"] or (len(blocked) == 1 and blocked[0]["status"] == "blocked" and entry["fix"])
