"""``kvmprobe.cpu()`` and the recorded CPU section against this machine, through independent paths.

KVM's side against ``hardware._raw_x86`` (fcntl.ioctl, the test's own layouts); the host's CPUID
against the C program of ``hardware._raw_x86`` (inline asm, pinned to a CPU) and against
``/dev/cpu/0/cpuid`` read here; vendor, family/model/stepping, microcode and flags against
/proc/cpuinfo. Nothing is hard-coded: every answer is compared with this machine's, now.
"""

from __future__ import annotations

import os
import platform
import struct
from pathlib import Path
from typing import Dict

import pytest

import kvmprobe
from hardware import _raw_x86 as raw
from kvmprobe.cpuinfo import cpu_of
from kvmprobe.presets import load_preset
from kvmprobe.snapshot import load_snapshot, record

pytestmark = [
    pytest.mark.kvm,
    pytest.mark.skipif(platform.machine() != "x86_64", reason="the CPU view is x86's (CPUID, MSRs)"),
]


def proc_cpuinfo_first() -> Dict[str, str]:
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        block = handle.read().split("\n\n")[0]
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in block.splitlines() if ":" in line)}


@pytest.fixture(scope="module")
def info() -> kvmprobe.CpuInfo:
    return kvmprobe.cpu(refresh=True)


def test_every_raw_answer_equals_the_kernels(raw_kvm_fd: int, pinned_cpu: int) -> None:
    record = kvmprobe.cpu(refresh=True).record
    assert record is not None and record.failure("KVM_GET_SUPPORTED_CPUID") is None
    assert [tuple(e) for e in record.cpuid or ()] == raw.cpuid(raw_kvm_fd, raw.KVM_GET_SUPPORTED_CPUID)
    assert [tuple(e) for e in record.emulated_cpuid or ()] == raw.cpuid(raw_kvm_fd, raw.KVM_GET_EMULATED_CPUID)
    assert list(record.msrs or ()) == raw.msr_list(raw_kvm_fd, raw.KVM_GET_MSR_INDEX_LIST)
    assert list(record.feature_msr_indices or ()) == raw.msr_list(raw_kvm_fd, raw.KVM_GET_MSR_FEATURE_INDEX_LIST)
    assert dict(record.feature_msrs or ()) == raw.feature_msrs(raw_kvm_fd)
    if raw.has_device_attr(raw_kvm_fd, 0, 0):
        assert record.xcomp_guest_supp == raw.device_attr(raw_kvm_fd, 0, 0)
    assert record.tsc_khz is not None and abs(record.tsc_khz - raw.tsc_khz(raw_kvm_fd)) <= 1


def test_the_host_cpuid_equals_the_instruction_run_by_a_c_program(info: kvmprobe.CpuInfo, cpuid_program: Path) -> None:
    record = info.record
    assert record is not None
    assert record.host_cpuid, record.host_cpuid_source
    queries = [(e.leaf, e.subleaf) for e in record.host_cpuid]
    cpu = min(os.sched_getaffinity(0))
    # Either read may run on another CPU: the fields naming that CPU are cleared (the test's own list).
    theirs = {(e[0], e[1]): e[3:] for e in raw.without_per_cpu_fields(raw.run_cpuid(cpuid_program, cpu, queries))}
    ours = {(e[0], e[1]): e[3:] for e in raw.without_per_cpu_fields(record.host_cpuid)}
    assert ours == theirs


def test_dev_cpu_cpuid_agrees_with_the_instruction_on_cpu_0(cpuid_program: Path) -> None:
    path = "/dev/cpu/0/cpuid"
    if not os.access(path, os.R_OK):
        pytest.skip(f"{path} is not readable here (no cpuid driver, or not root)")
    if 0 not in os.sched_getaffinity(0):
        pytest.skip("CPU 0 is not in this process's affinity mask")
    queries = [(0, 0), (1, 0), (7, 0), (0xD, 1), (0x80000001, 0)]
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        by_file = [struct.unpack("<4I", os.pread(fd, 16, sub << 32 | leaf)) for leaf, sub in queries]
    finally:
        os.close(fd)
    by_program = [e[3:] for e in raw.run_cpuid(cpuid_program, 0, queries)]
    from kvmprobe import _cpuid_insn

    with _cpuid_insn._device_file(path) as (function, why):
        assert function is not None, why
        by_kvmprobe = [function(leaf, sub) for leaf, sub in queries]
    assert by_kvmprobe == by_file == [tuple(e) for e in by_program]


def test_vendor_signature_microcode_and_flags_agree_with_proc_cpuinfo(info: kvmprobe.CpuInfo) -> None:
    proc = proc_cpuinfo_first()
    assert info.vendor == proc["vendor_id"]
    assert (info.family, info.model, info.stepping) == (int(proc["cpu family"]), int(proc["model"]), int(proc["stepping"]))
    record = info.record
    assert record is not None and list(record.host_flags or ()) == proc["flags"].split()
    if info.microcode is None or "microcode" not in proc:
        pytest.skip("KVM reads no MSR_IA32_UCODE_REV here, or /proc/cpuinfo shows no microcode")
    assert info.microcode == int(proc["microcode"], 16)


def test_a_recorded_snapshot_carries_the_same_answers(raw_kvm_fd: int, pinned_cpu: int) -> None:
    document = record(vm=True, refresh=True)
    host = load_snapshot(document)
    assert host.cpu is not None and host.cpu.cpuid is not None
    assert [tuple(e) for e in host.cpu.cpuid] == raw.cpuid(raw_kvm_fd, raw.KVM_GET_SUPPORTED_CPUID)
    assert document["cpu"]["decoded"]["features"] == cpu_of(host).decoded_dict()["features"]
    assert host.cpu.host_flags == tuple(proc_cpuinfo_first()["flags"].split())


def test_the_shipped_recording_is_this_cpu_when_it_runs_here(raw_kvm_fd: int) -> None:
    preset = load_preset("pvm-6.18")
    assert preset.cpu is not None and preset.cpu.cpuid is not None
    theirs = {(e.leaf, e.subleaf): e for e in preset.cpu.cpuid}
    live = raw.cpuid(raw_kvm_fd, raw.KVM_GET_SUPPORTED_CPUID)
    mine = {(e[0], e[1]): e for e in live}
    if preset.kernel != os.uname().release or theirs.get((1, 0), (0,) * 4)[3] != mine.get((1, 0), (0,) * 4)[3]:
        pytest.skip(f"pvm-6.18 was recorded on another kernel build or CPU; this is {os.uname().release}, "
                    f"CPUID.1:EAX {mine[(1, 0)][3]:#x}")  # fmt: skip
    # The recording and its normalized view keep every field but those naming a CPU (the test's list).
    assert sorted(raw.without_per_cpu_fields(preset.cpu.cpuid)) == sorted(raw.without_per_cpu_fields(live))
    assert raw.without_per_cpu_fields(preset.cpu.normalized()) == sorted(raw.without_per_cpu_fields(live))
    assert list(preset.cpu.msrs or ()) == raw.msr_list(raw_kvm_fd, raw.KVM_GET_MSR_INDEX_LIST)
    assert dict(preset.cpu.feature_msrs or ()) == raw.feature_msrs(raw_kvm_fd)
    khz = raw.tsc_khz(raw_kvm_fd)
    assert preset.cpu.tsc_khz is not None and abs(preset.cpu.tsc_khz - khz) * 1_000_000 <= 250 * khz
