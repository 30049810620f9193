"""diff_hosts: capabilities gained, lost and changed, VM-fd values, host facts, VMM verdicts."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, List

import pytest

from kvmprobe import Cap, ProbeResult
from kvmprobe.diff import CapChange, FactChange, HostDiff, diff_hosts
from kvmprobe.host import HostFacts, read_host_facts
from kvmprobe.presets import load_preset
from kvmprobe.snapshot import load_snapshot, snapshot_document
from kvmprobe.testing import FakeHost, fake_probe_result


def names(changes: Any) -> List[str]:
    return [c.name for c in changes]


def test_a_host_equals_itself_and_its_recording() -> None:
    for name in ("pvm-6.18", "linux-3.10"):
        host = load_preset(name)
        assert diff_hosts(host, host).equal
        again = load_snapshot(snapshot_document(host))
        result = diff_hosts(host, again)
        assert result.equal and result.notes == (), result.to_dict()


def test_gained_lost_changed() -> None:
    a = fake_probe_result({"IMMEDIATE_EXIT": 1, "NR_VCPUS": 2, "X2APIC_API": 15, "HLT": 1})
    b = fake_probe_result({"NR_VCPUS": 8, "X2APIC_API": 15, "HLT": 1, "SPLIT_IRQCHIP": 1})
    d = diff_hosts(a, b)
    assert names(d.gained) == ["KVM_CAP_SPLIT_IRQCHIP"]
    assert names(d.lost) == ["KVM_CAP_IMMEDIATE_EXIT"]
    assert d.changed == (CapChange("KVM_CAP_NR_VCPUS", 9, 2, 8),)
    assert not d.equal
    reverse = diff_hosts(b, a)
    assert names(reverse.gained) == names(d.lost) and names(reverse.lost) == names(d.gained)


def test_failed_queries() -> None:
    a = fake_probe_result({"HLT": 1, "IRQCHIP": 0})
    b = fake_probe_result({}, errors={"HLT": 5, "IRQCHIP": 22})
    d = diff_hosts(a, b)
    # A supported value against a failed query is lost; 0 against a failed query is a change.
    assert d.lost == (CapChange("KVM_CAP_HLT", 1, 1, None, None, 5),)
    assert d.changed == (CapChange("KVM_CAP_IRQCHIP", 0, 0, None, None, 22),)
    assert "query failed: EIO" in d.lost[0].describe()
    assert d.lost[0].to_dict() == {"name": "KVM_CAP_HLT", "number": 1, "a": 1, "b": None, "b_error": 5}


def test_vm_fd_values_compared_only_when_both_have_them() -> None:
    a = fake_probe_result({"X2APIC_API": 15}, vm_values={"X2APIC_API": 15})
    b = fake_probe_result({"X2APIC_API": 15}, vm_values={"X2APIC_API": 11})
    d = diff_hosts(a, b)
    assert d.gained == d.lost == d.changed == ()
    assert d.vm_changed == (CapChange("KVM_CAP_X2APIC_API", 129, 15, 11),) and not d.equal
    one_sided = diff_hosts(a, fake_probe_result({"X2APIC_API": 15}))
    assert one_sided.equal and one_sided.notes == ("VM-fd values: only A recorded them; not compared",)


@pytest.fixture
def centos(tmp_path: Path) -> HostFacts:
    return read_host_facts(FakeHost.centos7().write(str(tmp_path / "centos")))


@pytest.fixture
def amd(tmp_path: Path) -> HostFacts:
    return read_host_facts(FakeHost.amd_nested0().write(str(tmp_path / "amd")))


def with_facts(result: ProbeResult, facts: HostFacts) -> ProbeResult:
    return dataclasses.replace(result, host=facts)


def test_host_facts(centos: HostFacts, amd: HostFacts) -> None:
    base = fake_probe_result({"HLT": 1})
    d = diff_hosts(with_facts(base, centos), with_facts(base, amd))
    by_key: Dict[str, FactChange] = {f.key: f for f in d.facts}
    assert by_key["host.cpu_vendor"].a == "GenuineIntel" and by_key["host.cpu_vendor"].b == "AuthenticAMD"
    flags = by_key["host.cpu_flags"]
    assert "svm" in flags.added and "vmx" in flags.removed
    assert flags.describe().startswith("host.cpu_flags: +")
    # A module loaded on one host only is one change, shown as absent on the other.
    assert by_key["host.kvm_modules.kvm_intel"].describe().endswith("-> (absent)")
    assert by_key["host.kvm_modules.kvm_intel"].to_dict()["b"] is None
    assert by_key["host.kvm_modules.kvm_amd"].a is not None  # the sentinel, not a value
    assert not d.equal and d.gained == d.lost == ()


def test_a_module_parameter_change_is_one_line(centos: HostFacts, tmp_path: Path) -> None:
    fake = FakeHost.centos7()
    modules = {name: dict(params) for name, params in fake.modules.items()}
    assert modules["kvm_intel"]["nested"] == "N"
    modules["kvm_intel"]["nested"] = "Y"
    nested_on = read_host_facts(dataclasses.replace(fake, modules=modules).write(str(tmp_path / "on")))
    base = fake_probe_result({"HLT": 1})
    d = diff_hosts(with_facts(base, centos), with_facts(base, nested_on))
    changed = [f for f in d.facts if f.key.startswith("host.kvm_modules")]
    assert [f.key for f in changed] == ["host.kvm_modules.kvm_intel.nested"]
    assert changed[0].describe() == "host.kvm_modules.kvm_intel.nested: 'N' -> 'Y'"


def test_facts_recorded_on_one_side_only_are_noted(centos: HostFacts) -> None:
    base = fake_probe_result({"HLT": 1})
    d = diff_hosts(base, with_facts(base, centos))
    assert d.equal and d.notes == ("host facts: only B recorded them; not compared",)


def test_kernel_and_arch_are_facts() -> None:
    d = diff_hosts(fake_probe_result({}, kernel="5.10.0"), fake_probe_result({}, kernel="6.1.0", arch="aarch64"))
    assert [f.key for f in d.facts] == ["kernel", "arch"]


def test_unknown_capabilities_are_compared_or_noted() -> None:
    row = {"name": "KVM_CAP_FROM_THE_FUTURE", "number": 300, "value": 1}
    a = dataclasses.replace(fake_probe_result({}), unknown=(row,))
    b = dataclasses.replace(fake_probe_result({}), unknown=({**row, "value": 0},))
    d = diff_hosts(a, b)
    assert d.lost == (CapChange("KVM_CAP_FROM_THE_FUTURE", 300, 1, 0),)
    only_a = diff_hosts(a, fake_probe_result({}))
    assert only_a.equal and only_a.notes == ("KVM_CAP_FROM_THE_FUTURE (300): only one host's kvmprobe knew it; not compared",)


def test_vmm_verdicts_that_change() -> None:
    d = diff_hosts(load_preset("linux-4.14"), load_preset("linux-3.10"))
    flipped = {v.vmm: v for v in d.verdicts}
    assert "cloud-hypervisor" in flipped and "firecracker" not in flipped
    ch = flipped["cloud-hypervisor"]
    assert ch.a_ready and not ch.b_ready and "KVM_CAP_IMMEDIATE_EXIT" in ch.b_summary
    assert ch.describe().startswith("Cloud Hypervisor: ready -> NOT READY (")
    assert "KVM_CAP_IMMEDIATE_EXIT" in names(d.lost)
    back = diff_hosts(load_preset("linux-3.10"), load_preset("linux-4.14"))
    assert {v.vmm for v in back.verdicts} == set(flipped)
    assert all(not v.a_ready and v.b_ready for v in back.verdicts)


def test_to_dict_shape() -> None:
    doc = diff_hosts(load_preset("linux-5.10"), load_preset("linux-5.4")).to_dict()
    assert list(doc) == [
        "schema", "schema_version", "a", "b", "equal", "gained", "lost", "changed", "vm_changed", "facts",
        "verdicts", "cpu", "notes",
    ]  # fmt: skip
    assert doc["schema"] == "kvmprobe-diff" and doc["equal"] is False
    assert {"name": "KVM_CAP_X86_USER_SPACE_MSR", "number": 188, "a": 1, "b": 0} in doc["lost"]
    assert {"key": "kernel", "a": "5.10.0-synthesized", "b": "5.4.0-synthesized"} in doc["facts"]
    assert HostDiff("x", "y").to_dict()["equal"] is True
