"""Confidential VMs on made-up hosts: the layer that blocks, its fix, and facts that are missing or bad.

Each positive path is a :class:`FakeHost` tree (the files) with a :class:`FakeBackend` (KVM's
answers), read through the same code as a live host; the expected fixes come from the same table
(``_cc_data.REMEDIES``) the checks use, so a reworded fix cannot make a test pass or fail by itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from kvmprobe import Cap, SnapshotError, load_snapshot
from kvmprobe._cc_data import REMEDIES
from kvmprobe._cli import main
from kvmprobe.confidential import (
    KINDS,
    LAYER_IDS,
    ConfidentialFacts,
    ConfidentialReport,
    assess,
    check_confidential,
    read_confidential,
    resolve_kind,
)
from kvmprobe.diagnosis import diagnose
from kvmprobe.host import read_host_facts
from kvmprobe.probing import probe
from kvmprobe.snapshot import snapshot_document
from kvmprobe.testing import FakeBackend, FakeHost, fake_probe_result


def judge(host: FakeHost, backend: FakeBackend, tmp_path: Path, **kwargs: Any) -> ConfidentialReport:
    root = host.write(str(tmp_path / "root"))
    report = assess(root=root, backend=backend, **kwargs)
    assert backend.open_fds == []  # every system and VM fd closed
    return report


def blocking(report: ConfidentialReport) -> Dict[str, Any]:
    return {v.kind: v.blocking for v in report.verdicts}


def test_an_snp_ready_host_is_ready_for_the_amd_kinds(tmp_path: Path) -> None:
    backend = FakeBackend.amd_snp()
    report = judge(FakeHost.amd_snp(), backend, tmp_path, create_vms=True)
    assert blocking(report) == {"sev": None, "sev-es": None, "sev-snp": None, "tdx": "cpu"}
    snp = report.verdict("snp")
    assert snp.ready and snp.fix == ""
    assert {layer.id: layer.status for layer in snp.layers} == {
        "cpu": "ok", "bios": "ok", "firmware": "ok", "kernel": "ok", "module": "ok", "kvm": "ok",
        "capabilities": "ok", "device": "ok", "cgroup": "ok", "memlock": "n/a",
    }  # fmt: skip
    assert "KVM_CREATE_VM(4) made one, closed at once" in snp.layer("kvm").summary
    assert "SECURE_TSC" in snp.layer("kvm").summary and "SNP firmware API 1.55" in snp.layer("firmware").summary
    assert snp.layer("capabilities").summary.startswith("asked on the fd of a KVM_X86_SNP_VM (4) VM")
    assert "C-bit 51" in snp.layer("cpu").summary and "sev_snp" in snp.layer("cpu").summary
    # SEV pins guest RAM: 8 MiB warns, and blocks once the guest's size is known.
    assert report.verdict("sev").layer("memlock").status == "warn"
    big = judge(FakeHost.amd_snp(), FakeBackend.amd_snp(), tmp_path / "2", guest_memory=4 << 30).verdict("sev")
    assert (big.ready, big.blocking, big.fix) == (False, "memlock", REMEDIES["memlock"].text)
    created = [arg for name, arg in backend.calls if name == "KVM_CREATE_VM"]
    assert created == [2, 3, 4, 5]


def test_sev_firmware_not_initialised_blocks_snp_at_the_firmware(tmp_path: Path) -> None:
    report = judge(FakeHost.amd_sev_firmware_off(), FakeBackend.amd_sev_firmware_off(), tmp_path)
    assert blocking(report) == {"sev": None, "sev-es": None, "sev-snp": "firmware", "tdx": "cpu"}
    snp = report.verdict("sev-snp")
    assert snp.layer("module").summary == "kvm_amd.sev_snp=Y" and snp.layer("module").status == "ok"
    assert snp.layer("kvm").summary.startswith("KVM_CAP_VM_TYPES = 0xd (KVM_X86_DEFAULT_VM|KVM_X86_SEV_VM|KVM_X86_SEV_ES_VM)")
    assert snp.fix == REMEDIES["amd_firmware"].text
    assert snp.summary().startswith("AMD SEV-SNP cannot run here: blocked at the firmware layer: kvm_amd.sev_snp=Y, yet KVM")


def test_a_tdx_host_with_kvm_intel_tdx_n_is_blocked_at_the_module_parameter(tmp_path: Path) -> None:
    report = judge(FakeHost.intel_tdx_off(), FakeBackend.intel_tdx_off(), tmp_path)
    assert blocking(report) == {"sev": "cpu", "sev-es": "cpu", "sev-snp": "cpu", "tdx": "module"}
    tdx = report.verdict("tdx")
    assert tdx.layer("module").summary == "kvm_intel.tdx=N" and tdx.fix == REMEDIES["intel_cmdline_tdx"].text
    assert tdx.layer("bios").status == "ok" and tdx.layer("cgroup").status == "blocked"
    assert any("Cloud Hypervisor" in note for note in tdx.notes)  # VM type 1 is not TDX in mainline
    # Asked on the command line, yet N: KVM turned TDX off while loading, the TDX module's fault.
    asked = dataclasses.replace(FakeHost.intel_tdx_off(), cmdline="ro nohibernate kvm_intel.tdx=1")
    tdx = judge(asked, FakeBackend.intel_tdx_off(), tmp_path / "2").verdict("tdx")
    assert tdx.blocking == "module" and tdx.fix == REMEDIES["intel_tdx_module"].text
    assert "although the kernel command line asks kvm_intel.tdx=1" in tdx.layer("module").summary
    failed = dataclasses.replace(FakeHost.intel_tdx_off(), kernel_log=("virt/tdx: module not loaded",))
    tdx = judge(failed, FakeBackend.intel_tdx_off(), tmp_path / "3").verdict("tdx")
    assert tdx.blocking == "firmware" and tdx.layer("firmware").summary == "the kernel log says: virt/tdx: module not loaded"


def test_a_pvm_host_is_blocked_at_the_kvm_layer_for_every_kind(tmp_path: Path) -> None:
    report = judge(FakeHost.pvm(), FakeBackend({"VM_TYPES": 1, "SYS_ATTRIBUTES": 1}, device_attrs={(0, 0): 0xE7}),
                   tmp_path, create_vms=True)  # fmt: skip
    assert blocking(report) == dict.fromkeys(KINDS, "kvm")
    for verdict in report.verdicts:
        kvm = verdict.layer("kvm")
        assert "this KVM is kvm_pvm, which creates no confidential guest" in kvm.summary
        assert f"KVM_CREATE_VM({verdict.vm_type}) fails with EINVAL" in kvm.summary
    assert "KVM_X86_GRP_SEV attributes: ENXIO" in report.verdict("sev").layer("kvm").summary
    assert report.vm_type_names == ("KVM_X86_DEFAULT_VM",)


@pytest.mark.parametrize(
    "change, kind, layer, remedy",
    [
        ({"cpu_flags": ("fpu", "svm", "npt", "sev", "sev_es")}, "sev-snp", "bios", "amd_bios_snp"),
        ({"cpuid": {0x80000000: (0x80000028, 0, 0, 0), 0x8000001F: (0x463F, 0x4073, 1006, 1)}}, "sev-es", "bios",
         "amd_bios_asids"),
        ({"cpuid": {0x80000000: (0x80000028, 0, 0, 0), 0x8000001F: (0x0B, 0x4073, 1006, 100)}}, "sev-snp", "cpu",
         "amd_cpu"),
        ({"cmdline": "ro sev=nosnp"}, "sev-snp", "kernel", "amd_cmdline"),
        ({"kernel_release": "6.10.0"}, "sev-snp", "kernel", "kernel_version"),
        ({"kernel_log": ("SEV-SNP: Memory for the RMP table has not been reserved by BIOS",)}, "sev-snp", "bios",
         "amd_bios_snp"),
        ({"kernel_log": ("ccp 0000:22:00.1: SEV-SNP API:1.49 build:3",)}, "sev-snp", "firmware", "amd_firmware"),
    ],
)  # fmt: skip
def test_each_lower_layer_is_named_with_its_fix(
    change: Dict[str, Any], kind: str, layer: str, remedy: str, tmp_path: Path
) -> None:
    host = dataclasses.replace(FakeHost.amd_snp(), **change)
    backend = FakeBackend.amd_snp()
    backend.values[int(Cap.VM_TYPES)] = 0x1  # KVM offers none of them: the layers below say why
    verdict = judge(host, backend, tmp_path).verdict(kind)
    assert (verdict.blocking, verdict.fix) == (layer, REMEDIES[remedy].text)


def test_above_kvm_the_device_and_the_cgroup_block_an_offered_type(tmp_path: Path) -> None:
    locked = FakeHost.amd_snp().with_node("/dev/sev", FakeHost.char(10, 122, 0o600, 0, 0))
    verdict = judge(locked, FakeBackend.amd_snp(), tmp_path).verdict("sev-snp")
    assert (verdict.blocking, verdict.fix) == ("device", REMEDIES["dev_sev"].text)
    assert verdict.layer("device").summary == "/dev/sev crw------- root:root: uid 1000 may not open it read-write"
    empty = dataclasses.replace(FakeHost.amd_snp(), misc_capacity={"sev": 907})
    verdict = judge(empty, FakeBackend.amd_snp(), tmp_path / "2").verdict("sev-snp")
    assert (verdict.blocking, verdict.fix) == ("cgroup", REMEDIES["misc_cgroup"].text)
    no_gmem = FakeBackend.amd_snp()
    no_gmem.values[int(Cap.MEMORY_ATTRIBUTES)] = 0
    no_gmem.vm_values[int(Cap.MEMORY_ATTRIBUTES)] = 0
    verdict = judge(FakeHost.amd_snp(), no_gmem, tmp_path / "3").verdict("sev-snp")
    assert verdict.blocking == "capabilities" and "KVM_MEMORY_ATTRIBUTE_PRIVATE" in verdict.layer("capabilities").summary


def test_missing_and_bad_files_are_facts_never_a_crash(tmp_path: Path) -> None:
    bare = dataclasses.replace(
        FakeHost.amd_snp(), cpuid={}, misc_capacity=None, memlock=None, kernel_log=None, cmdline=None
    ).with_node("/dev/sev", None)
    root = bare.write(str(tmp_path / "root"))
    # Garbage where numbers belong: the fact is unknown, or the line ignored.
    (Path(root) / "proc/self/limits").write_text("Max locked memory  lots  more  bytes\n")
    (Path(root) / "sys/fs/cgroup").mkdir(parents=True)
    (Path(root) / "sys/fs/cgroup/misc.capacity").write_text("sev -3\nsev_es\n\x00\xff junk 12 13\nsev_es 99\n")
    (Path(root) / "dev/cpu/0").mkdir(parents=True)
    (Path(root) / "dev/cpu/0/cpuid").write_bytes(b"\x01\x02")  # shorter than one leaf
    os.mkfifo(str(Path(root) / "dev/kmsg"))  # a FIFO where the log should be: never opened, never blocks
    facts = read_confidential(root=root, backend=FakeBackend.amd_snp())
    assert facts.cpuid is None and facts.cpuid_note == "/dev/cpu/0/cpuid: short read"
    assert facts.memlock is None and dict(facts.misc_capacity or {}) == {"sev_es": 99}
    assert facts.kernel_log is None and facts.cmdline is None
    report = assess(root=root, backend=FakeBackend.amd_snp())
    snp = report.verdict("sev-snp")
    assert snp.layer("cpu").status == "unknown" and snp.layer("device").summary.startswith("no /dev/sev")
    assert snp.blocking == "device"  # KVM offers SNP, but no VMM can reach the secure processor
    assert report.verdict("sev").layer("cgroup").summary.endswith("lists no 'sev': capacity 0")
    assert report.verdict("sev").layer("memlock").status == "unknown"
    nothing = FakeHost.pvm()  # no misc cgroup, no /dev/sev, no cpuid driver, no kernel log
    pvm = assess(root=nothing.write(str(tmp_path / "pvm")), backend=FakeBackend({"VM_TYPES": 1}))
    assert pvm.verdict("sev").layer("cgroup").status == "unknown" and pvm.facts is not None
    assert pvm.facts.cpuid_note == "no /dev/cpu/0/cpuid (the cpuid driver: modprobe cpuid)"


def test_a_recorded_host_is_judged_from_its_record_and_round_trips(tmp_path: Path) -> None:
    root = FakeHost.amd_snp().write(str(tmp_path / "root"))
    backend = FakeBackend.amd_snp()
    live = probe(backend=backend, refresh=True)
    facts = read_confidential(root=root, backend=backend, create_vms=True)
    document = snapshot_document(live, read_host_facts(root), confidential=facts)
    path = tmp_path / "snp.json"
    path.write_text(json.dumps(document))
    recorded = load_snapshot(str(path))
    assert recorded.confidential == facts
    assert [v.to_dict() for v in assess(recorded).verdicts] == [v.to_dict() for v in assess(root=root, backend=backend,
                                                                                           create_vms=True).verdicts]
    # Without the key (a version-1 document): nothing is unknown that was not recorded as such.
    del document["confidential"]
    old = load_snapshot(document)
    assert old.confidential is None
    snp = assess(old).verdict("sev-snp")
    assert snp.ready is True and snp.layer("cgroup").summary == "not recorded"  # unknown is not "no"
    assert snp.layer("cgroup").status == "unknown" and snp.layer("cpu").status == "unknown"
    # A fake result with no facts at all: KVM's answer alone, nothing read from this machine.
    bare = assess(fake_probe_result({"VM_TYPES": 0x1D}))
    assert [v.blocking for v in bare.verdicts] == [None, None, "capabilities", "kvm"]  # no guest_memfd asked
    assert bare.verdict("sev").layer("cpu").summary == "the CPU vendor is not recorded"


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("misc_capacity", {"sev": "many"}, "$.confidential.misc_capacity.sev: expected an integer"),
        ("cpuid_8000001f", {"eax": 1}, "$.confidential.cpuid_8000001f.ebx: missing"),
        ("vm_types_created", {"99": 0}, "$.confidential.vm_types_created[\"99\"]: '99' is no VM type"),
        ("sev_attrs", {"X": {"value": 1, "errno": 6}}, "$.confidential.sev_attrs.X: exactly one of value and errno"),
        ("kernel_log", ["ok", "\x1b[2J"], "$.confidential.kernel_log[1]: contains the unprintable character"),
        ("bogus", 1, "$.confidential.bogus: unknown key"),
    ],
)
def test_a_malformed_confidential_section_names_the_field(field: str, value: Any, message: str) -> None:
    document = snapshot_document(fake_probe_result({}), confidential=ConfidentialFacts())
    document["confidential"][field] = value
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(document)
    assert str(caught.value).startswith(message), str(caught.value)


def run(argv: List[str], backend: Any = None) -> Tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv, backend=backend)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def snp_snapshot(tmp_path: Path) -> str:
    root = FakeHost.amd_snp().write(str(tmp_path / "root"))
    backend = FakeBackend.amd_snp()
    document = snapshot_document(probe(backend=backend, refresh=True), read_host_facts(root),
                                 confidential=read_confidential(root=root, backend=backend))  # fmt: skip
    document["kernel"] = document["host"]["kernel_release"]  # one kernel: the fake root's (else a note says two)
    path = tmp_path / "snp.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_check_exit_codes_and_output(snp_snapshot: str) -> None:
    code, out, err = run(["check", "sev-snp", "SEV_ES", "--snapshot", snp_snapshot])
    assert (code, err) == (0, "") and "AMD SEV-SNP [sev-snp, KVM_X86_SNP_VM (4)]: ready" in out
    code, out, _ = run(["check", "sev", "tdx", "--snapshot", snp_snapshot, "--json"])
    doc = json.loads(out)
    assert code == 1 and doc["ready"] is False and doc["vmms"] == []
    assert [(c["kind"], c["ready"], c["blocking"]) for c in doc["confidential"]] == [("sev", True, None), ("tdx", False, "cpu")]
    assert [layer["id"] for layer in doc["confidential"][1]["layers"]] == list(LAYER_IDS)
    code, out, _ = run(["check", "firecracker", "tdx", "--snapshot", snp_snapshot])
    assert code == 1 and "Intel TDX [tdx, KVM_X86_TDX_VM (5)]: NOT READY" in out and "<- blocks" in out
    for argv, wanted in (
        (["check", "sev-snpp"], "did you mean sev-snp"),
        (["check", "sev", "--guest-memory", "lots"], "--guest-memory 'lots' is no size"),
        (["check", "qemu", "--create-vm"], "apply to sev, sev-es, sev-snp and tdx only"),
        (["snapshot", "--confidential", "--snapshot", snp_snapshot], "--confidential asks the live KVM"),
    ):
        code, out, err = run(argv, FakeBackend({}))
        assert code == 2 and out == "" and wanted in err, (argv, err)


def test_check_live_through_a_fake_backend_closes_every_vm(tmp_path: Path) -> None:
    backend = FakeBackend({"VM_TYPES": 1, "SYS_ATTRIBUTES": 1}, device_attrs={})
    code, out, _ = run(["check", "sev", "sev-es", "sev-snp", "tdx", "--create-vm", "--json"], backend)
    doc = json.loads(out)
    assert code == 1 and all(c["layers"][5]["id"] == "kvm" for c in doc["confidential"])
    assert [arg for name, arg in backend.calls if name == "KVM_CREATE_VM"] == [2, 3, 4, 5]
    assert backend.open_fds == []


def test_resolve_kind_spellings() -> None:
    assert [resolve_kind(n) for n in ("SEV", "sev_es", "SNP", "sev-snp", "Intel TDX", "qemu")] == [
        "sev", "sev-es", "sev-snp", "sev-snp", "tdx", None]  # fmt: skip
    with pytest.raises(LookupError):
        check_confidential("snap", fake_probe_result({}))


def test_the_doctor_shows_a_confidential_section_on_x86_only(tmp_path: Path) -> None:
    from kvmprobe._cli._doctor import render

    backend = FakeBackend.amd_snp()
    report = diagnose(root=FakeHost.amd_snp().write(str(tmp_path / "amd")), backend=backend)
    assert report.confidential is not None and [v.ready for v in report.confidential.verdicts] == [True, True, True, False]
    assert backend.opened == ["/dev/kvm"]  # the section reads the answers the checks asked
    text = render(report)
    assert "confidential VMs: KVM_CAP_VM_TYPES 0x1d (KVM_X86_DEFAULT_VM|KVM_X86_SEV_VM|KVM_X86_SEV_ES_VM|KVM_X86_SNP_VM)" in text
    assert "  PASS  sev-snp" in text and "  INFO  tdx" in text and report.to_dict()["confidential"]["vm_types"] == 0x1D
    arm = dataclasses.replace(FakeHost(), machine="aarch64", cpu_vendor=None, cpu_flags=())
    report = diagnose(root=arm.write(str(tmp_path / "arm")), backend=FakeBackend({"IMMEDIATE_EXIT": 1}))
    assert report.confidential is None and "confidential VMs" not in render(report)
