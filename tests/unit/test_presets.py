"""The bundled presets: the recorded PVM host, vendor kernels derived from source, and hosts
synthesized from the since-data."""

from __future__ import annotations

import json
from pathlib import Path
import re
from typing import Dict, List, Set, Tuple

import pytest

import kvmprobe
from kvmprobe import Cap, SnapshotError
from kvmprobe.presets import (
    OTHER_ARCH_NAMES,
    OTHER_ARCH_PREFIXES,
    RECORDED_PRESET,
    load_preset,
    offered_on_x86_64,
    preset_names,
)
from kvmprobe.profiles import check_vmm
from kvmprobe.snapshot import load_snapshot

DATA = Path(kvmprobe.__file__).parent / "preset_data"
SYNTHESIZED: List[Tuple[str, Tuple[int, int]]] = [
    ("linux-3.10", (3, 10)),
    ("linux-4.14", (4, 14)),
    ("linux-5.4", (5, 4)),
    ("linux-5.10", (5, 10)),
    ("linux-6.1", (6, 1)),
]


def test_the_names() -> None:
    assert preset_names() == [RECORDED_PRESET, "rhel-7.9", "rhel-8.10"] + [name for name, _ in SYNTHESIZED]


def test_only_the_recorded_and_derived_hosts_are_stored() -> None:
    # Synthesized presets are computed from Cap.since at load time, never stored copies.
    assert sorted(p.name for p in DATA.iterdir()) == ["pvm-6.18.json", "rhel-7.9.json", "rhel-8.10.json"]


def test_the_recorded_preset_is_the_shipped_file_unchanged() -> None:
    preset = load_preset("pvm-6.18")
    from_file = load_snapshot(DATA / "pvm-6.18.json")
    assert dict(preset.values) == dict(from_file.values) and preset.host == from_file.host
    assert preset.vm_values is not None and from_file.vm_values is not None
    assert dict(preset.vm_values) == dict(from_file.vm_values)
    assert preset.source == "preset:pvm-6.18" and not preset.synthesized
    raw = json.loads((DATA / "pvm-6.18.json").read_text())
    assert raw["synthesized"] is False and raw["recorded_at"] and raw["vm_created"] is True
    # What the machine it was recorded on is: PVM backend, no VT-x/AMD-V flag, API 12, Linux 6.18.
    assert preset.host is not None and preset.host.kvm_backend == "kvm_pvm"
    assert not {"vmx", "svm"} & preset.host.cpu_flags and "hypervisor" in preset.host.cpu_flags
    assert preset.api_version == 12 and preset.kernel.startswith("6.18.") and preset.arch == "x86_64"
    assert all(row["value"] is not None for row in raw["capabilities"])
    assert len(raw["capabilities"]) == len(Cap)


@pytest.mark.parametrize("name, release", SYNTHESIZED)
def test_synthesized_presets_say_so_everywhere(name: str, release: Tuple[int, int]) -> None:
    host = load_preset(name)
    kernel = f"{release[0]}.{release[1]}.0-synthesized"
    assert host.synthesized and host.source == f"preset:{name} (synthesized)"
    assert host.kernel == kernel and host.host is not None and host.host.kernel_release == kernel
    assert host.arch == "x86_64" and host.host.machine == "x86_64" and host.vm_values is None
    # Nothing else about such a host is known, so nothing else is claimed.
    assert host.host.kvm_modules == {} and host.host.cpu_flags == frozenset() and host.host.cpu_vendor is None


@pytest.mark.parametrize("name, release", SYNTHESIZED)
def test_synthesized_values_follow_the_documented_rule(name: str, release: Tuple[int, int]) -> None:
    host = load_preset(name)
    real = load_preset(RECORDED_PRESET)
    for cap in Cap:
        other_arch = cap.name.startswith(OTHER_ARCH_PREFIXES) or cap.name in OTHER_ARCH_NAMES or not cap.applies_to(
            "x86_64"
        )
        if cap.since > release or other_arch:
            assert host.value(cap) == 0, cap.name
        elif real.value(cap) > 1:
            assert host.value(cap) == real.value(cap), cap.name
        else:
            assert host.value(cap) == 1, cap.name


def test_golden_facts_of_old_kernels() -> None:
    old, lts414, lts54, lts510, lts61 = (load_preset(name) for name, _ in SYNTHESIZED)
    # The story: Cloud Hypervisor's KVM_CAP_IMMEDIATE_EXIT came in 4.11.
    assert not old.has("IMMEDIATE_EXIT") and lts414.has("IMMEDIATE_EXIT")
    assert old.has("IRQFD") and old.has("DEVICE_CTRL") and not old.has("EXT_EMUL_CPUID")  # 3.10 / 3.13
    assert not lts54.has("X86_USER_SPACE_MSR") and lts510.has("X86_USER_SPACE_MSR")  # 5.10
    assert not lts510.has("DIRTY_LOG_RING") and lts61.has("DIRTY_LOG_RING_ACQ_REL")  # 5.11 / 6.1
    assert not lts61.has("GUEST_MEMFD")  # 6.8
    # Other architectures' capabilities are never offered on these x86_64 hosts.
    assert not any(h.has(c) for h in (lts61,) for c in ("ARM_PSCI", "S390_PSW", "PPC_PAPR", "IRQ_XICS", "ARM_SVE"))
    # Values other than 0/1 are the recorded host's.
    assert lts414.value("NR_MEMSLOTS") == load_preset(RECORDED_PRESET).value("NR_MEMSLOTS") > 1


def test_each_release_offers_at_least_what_the_one_before_did() -> None:
    previous: Set[Cap] = set()
    for name, _ in SYNTHESIZED:
        supported = set(load_preset(name).supported())
        assert previous <= supported, name
        previous = supported


def test_offered_on_x86_64() -> None:
    assert offered_on_x86_64(Cap.IMMEDIATE_EXIT) and offered_on_x86_64(Cap.XSAVE)
    assert not offered_on_x86_64(Cap.ARM_SVE)  # cap.rs gates it to aarch64
    assert not offered_on_x86_64(Cap.S390_PSW) and not offered_on_x86_64(Cap.SPAPR_TCE)  # by prefix
    assert not offered_on_x86_64(Cap.SW_TLB)  # a PowerPC capability without the prefix


def test_the_story_cloud_hypervisor_on_3_10() -> None:
    verdict = check_vmm("cloud-hypervisor", load_preset("linux-3.10"))
    assert not verdict.ready
    assert "KVM_CAP_IMMEDIATE_EXIT" in verdict.summary() and "4.11" in verdict.summary()
    assert check_vmm("cloud-hypervisor", load_preset("linux-4.14")).ready


def test_unknown_preset_suggests_a_close_name() -> None:
    with pytest.raises(SnapshotError) as caught:
        load_preset("linux-3.1")
    assert "no preset named 'linux-3.1'" in str(caught.value) and "did you mean linux-3.10?" in str(caught.value)
    assert "pvm-6.18" in caught.value.hint


def test_presets_are_immutable_and_shared() -> None:
    assert load_preset("linux-5.4") is load_preset("linux-5.4")
    with pytest.raises(TypeError):
        load_preset("linux-5.4").values[Cap.HLT] = 0  # type: ignore[index]


# --- Vendor kernels derived from source -------------------------------------------------------

# Read in the vendor trees (tremb1e/linux-3.10.0-1160.el7@de8b6b6f944c, the unpacked GA source of
# RHEL 7.9; mkuron/almalinux-kernel@7622b1caa08e, the RHEL 8.10 SRPM rebuilt): a few answers
# each, from the case labels and constants of kvm_vm_ioctl_check_extension and its generic half.
RHEL_7_9 = {
    "IMMEDIATE_EXIT": 0,  # no #define in kvm.h; kvm_run has padding1[7] where 4.11 put the byte (:208-209)
    "SPLIT_IRQCHIP": 1,  # backported (x86.c case + KVM_ENABLE_CAP handler at :4085-4106)
    "X2APIC_API": 3,  # KVM_X2APIC_API_VALID_FLAGS (x86.c:95-96)
    "NR_VCPUS": 384, "MAX_VCPUS": 384, "MAX_VCPU_ID": 1023, "NR_MEMSLOTS": 509,  # kvm_host.h:38-44
    "IRQ_ROUTING": 1024,  # KVM_MAX_IRQ_ROUTES (include/linux/kvm_host.h:1058)
    "IOEVENTFD_ANY_LENGTH": 1, "SIGNAL_MSI": 1,  # kvm_main.c:2916-2947
    "X86_DISABLE_EXITS": 0, "NESTED_STATE": 0, "SET_GUEST_DEBUG": 0, "ENABLE_CAP": 0,
    "VAPIC": 0,  # !cpu_has_accelerated_tpr(): 0 on Intel with FlexPriority (an assumption)
    "IOMMU": 0,  # CONFIG_KVM_DEVICE_ASSIGNMENT unset in RHEL 7
}  # fmt: skip
RHEL_8_10 = {
    "IMMEDIATE_EXIT": 1, "NR_VCPUS": 2048, "MAX_VCPUS": 2048, "NR_MEMSLOTS": 32764, "IRQ_ROUTING": 4096,
    "NESTED_STATE": 8320,  # 128 + 2 * 4096 on VMX (nested.c:6245-6246)
    "XEN_HVM": 0,  # CONFIG_KVM_XEN unset (kernel-x86_64.config:922)
    "DIRTY_LOG_RING": 1048576, "XSAVE2": 4096, "VM_TYPES": 0, "X86_DISABLE_EXITS": 15,
}  # fmt: skip


@pytest.mark.parametrize("name, expected", [("rhel-7.9", RHEL_7_9), ("rhel-8.10", RHEL_8_10)])
def test_vendor_presets_answer_as_their_source_does(name: str, expected: Dict[str, int]) -> None:
    host = load_preset(name)
    assert {cap: host.value(cap) for cap in expected} == expected
    assert host.origin == "derived from source" and not host.synthesized and host.recorded_at is None
    assert host.source == f"preset:{name} (derived from source)" and host.api_version == 12
    assert host.derivation is not None and host.derivation.assumptions
    assert all(re.match(r"[\w.-]+/[\w.-]+@[0-9a-f]{12} \S+:\d+", s) for s in host.derivation.sources)
    assert host.host is not None and host.host.kernel_release == host.kernel and host.host.kvm_backend == "kvm_intel"


def test_rhel_7_9_is_not_mainline_3_10() -> None:
    vendor, mainline = load_preset("rhel-7.9"), load_preset("linux-3.10")
    assert vendor.kernel.startswith("3.10.0-1160.el7") and vendor.has("SPLIT_IRQCHIP") and not mainline.has("SPLIT_IRQCHIP")
    # The story: Cloud Hypervisor lacks exactly IMMEDIATE_EXIT on RHEL 7.9, two on mainline 3.10.
    assert [m.name for m in check_vmm("cloud-hypervisor", vendor).missing_required] == ["KVM_CAP_IMMEDIATE_EXIT"]
    assert len(check_vmm("cloud-hypervisor", mainline).missing_required) == 2
    assert check_vmm("cloud-hypervisor", load_preset("rhel-8")).ready


def test_derived_presets_round_trip_and_validate_against_the_schema(tmp_path: Path) -> None:
    import jsonschema

    from kvmprobe.snapshot import snapshot_document, write_snapshot

    schema = json.loads((Path(kvmprobe.__file__).parent / "schema" / "snapshot-2.schema.json").read_text())
    for name in ("rhel-7.9", "rhel-8.10"):
        shipped = json.loads((DATA / f"{name}.json").read_text())
        jsonschema.validate(shipped, schema)
        doc = snapshot_document(load_preset(name))
        assert doc["derivation"] == shipped["derivation"] and doc["recorded_at"] is None
        jsonschema.validate(doc, schema)
        write_snapshot(doc, str(tmp_path / f"{name}.json"))
        again = load_snapshot(tmp_path / f"{name}.json")
        assert again.derivation == load_preset(name).derivation and dict(again.values) == dict(load_preset(name).values)


def test_the_shipped_derived_files_are_marked() -> None:
    from kvmprobe.presets import _DERIVED

    assert set(_DERIVED) == {"rhel-7.9", "rhel-8.10"}
    for file in _DERIVED.values():
        doc = json.loads((DATA / file).read_text())
        assert doc["derivation"]["kind"] == "derived from source" and doc["synthesized"] is False
