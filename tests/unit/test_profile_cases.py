"""Readiness by hand-made cases: each host and profile is written out, and so is the verdict.

No case recomputes the rule from the profile (that would restate ``check_vmm``): each names one
reason a VMM cannot run (a required capability absent, one it cannot cope with present, the KVM
API version, the architecture, the KVM backend) or one that does not matter, and says ready or not.
Every host carries recorded facts (its KVM module), so the backend is known in every case.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Tuple

import pytest

from kvmprobe import Cap
from kvmprobe.caps import CapLike
from kvmprobe.host import HostFacts
from kvmprobe.profiles import Profile, Requirement, check_vmm
from kvmprobe.testing import fake_probe_result

MODULES: Dict[str, Dict[str, Dict[str, str]]] = {
    "kvm_intel": {"kvm": {}, "kvm_intel": {"nested": "N"}},
    "kvm_pvm": {"kvm": {}, "kvm_pvm": {}},
}


def host(values: Mapping[CapLike, int], *, backend: str = "kvm_intel",
         vm_values: Optional[Mapping[CapLike, int]] = None, errors: Optional[Mapping[CapLike, int]] = None,
         api_version: int = 12, arch: str = "x86_64") -> Any:
    facts = HostFacts(system="Linux", machine=arch, kernel_release="6.18.0", kvm_modules=MODULES[backend])
    made = fake_probe_result(values, vm_values=vm_values, errors=errors, api_version=api_version, arch=arch,
                             kernel="6.18.0", source="snapshot")
    return dataclasses.replace(made, host=facts)


# A made-up VMM: it needs USER_MEMORY (and, without probing it, IRQCHIP), would like HLT, and fails
# when the kernel offers X86_DISABLE_EXITS. Its name is no built-in one, so no backend constraint.
TOY = Profile("toy-vmm", "Toy VMM", "x86_64", (
    Requirement(Cap.USER_MEMORY, "required", "maps guest memory"),
    Requirement(Cap.IRQCHIP, "implicit", "creates the kernel irqchip"),
    Requirement(Cap.HLT, "optional", "halts in the kernel"),
    Requirement(Cap.X86_DISABLE_EXITS, "incompatible", "its timer breaks"),
))
ALL: Dict[CapLike, int] = {Cap.USER_MEMORY: 1, Cap.IRQCHIP: 1, Cap.HLT: 1}

CASES: Dict[str, Tuple[Profile, Any, bool]] = {
    "everything-it-needs": (TOY, host(ALL), True),
    "an-optional-one-absent": (TOY, host({Cap.USER_MEMORY: 1, Cap.IRQCHIP: 1}), True),
    "a-required-one-absent": (TOY, host({Cap.IRQCHIP: 1, Cap.HLT: 1}), False),
    "a-required-one-answers-0": (TOY, host({**ALL, Cap.USER_MEMORY: 0}), False),
    "a-required-query-failed": (TOY, host({Cap.IRQCHIP: 1, Cap.HLT: 1}, errors={Cap.USER_MEMORY: 5}), False),
    "an-implicit-one-absent": (TOY, host({Cap.USER_MEMORY: 1, Cap.HLT: 1}), False),
    "an-incompatible-one-present": (TOY, host({**ALL, Cap.X86_DISABLE_EXITS: 1}), False),
    "an-incompatible-one-present-on-the-vm-fd": (
        TOY, host(ALL, vm_values={**ALL, Cap.X86_DISABLE_EXITS: 0x3}), False),
    "an-incompatible-one-answering-0": (TOY, host({**ALL, Cap.X86_DISABLE_EXITS: 0}), True),
    "an-incompatible-query-failed": (TOY, host(ALL, errors={Cap.X86_DISABLE_EXITS: 22}), True),
    "api-version-too-low": (TOY, host(ALL, api_version=11), False),
    "api-version-not-checked": (dataclasses.replace(TOY, api_version=None), host(ALL, api_version=11), True),
    "another-arch": (TOY, host(ALL, arch="aarch64"), False),
    "an-unused-capability-absent-or-present": (TOY, host({**ALL, Cap.XEN_HVM: 1}), True),
    # The backend constraints of the built-in data (gVisor's KVM platform does not run on kvm_pvm;
    # Firecracker runs there on conditions, which do not make it "not ready").
    "gvisor-on-kvm-pvm": (dataclasses.replace(TOY, name="gvisor-kvm"), host(ALL, backend="kvm_pvm"), False),
    "gvisor-on-kvm-intel": (dataclasses.replace(TOY, name="gvisor-kvm"), host(ALL, backend="kvm_intel"), True),
    "firecracker-on-kvm-pvm": (dataclasses.replace(TOY, name="firecracker"), host(ALL, backend="kvm_pvm"), True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_ready_or_not(case: str) -> None:
    profile, probe, ready = CASES[case]
    assert check_vmm(profile, probe).ready is ready


def test_what_each_not_ready_case_names() -> None:
    def verdict(case: str) -> Any:
        profile, probe, _ = CASES[case]
        return check_vmm(profile, probe)

    assert [m.cap for m in verdict("a-required-one-absent").missing_required] == [Cap.USER_MEMORY]
    assert [(m.cap, m.errno) for m in verdict("a-required-query-failed").missing_required] == [(Cap.USER_MEMORY, 5)]
    assert [(m.cap, m.kind) for m in verdict("an-implicit-one-absent").missing_required] == [(Cap.IRQCHIP, "implicit")]
    assert [m.cap for m in verdict("an-optional-one-absent").missing_optional] == [Cap.HLT]
    assert verdict("an-incompatible-one-present").problems == (
        "KVM_CAP_X86_DISABLE_EXITS answers 1, and Toy VMM fails with it: its timer breaks",)
    assert verdict("an-incompatible-one-present-on-the-vm-fd").problems == (
        "KVM_CAP_X86_DISABLE_EXITS answers 3 on the VM fd, and Toy VMM fails with it: its timer breaks",)
    assert verdict("api-version-too-low").problems == ("the KVM API version is 11, it needs 12",)
    assert verdict("another-arch").problems == ("this profile is for x86_64, the host is aarch64",)
    gvisor = verdict("gvisor-on-kvm-pvm")
    assert gvisor.missing_required == () and [c.backend for c in gvisor.blocked_by] == ["kvm_pvm"]
    firecracker = verdict("firecracker-on-kvm-pvm")
    assert firecracker.blocked_by == () and firecracker.conditions
