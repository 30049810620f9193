"""VMM profiles per release, checked against what each VMM's own source says at each release.

The expectations here are written from the cited files, not taken from kvmprobe's tables:
each list below is what the named tag's file probes (``KVM_CHECK_EXTENSION``, refusing to
start at 0). The verdicts the issue asks for follow: Cloud Hypervisor v45 refuses a host
without XCRS and v53 does not; QEMU 7.2 runs on a mainline 3.10 kernel and the newest QEMU
does not; gVisor's sentry panics on an NR_MEMSLOTS answer of 0.
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet, Iterable, List

import pytest

from kvmprobe import Cap, UnknownRelease, UnknownVmm, load_preset
from kvmprobe._vmm_requirements import ENTRIES, VMMS
from kvmprobe._vmm_versions import Span, parse_version
from kvmprobe.profiles import builtin_profile, builtin_profiles, check_vmm, resolve_vmm_spec, vmm_releases
from kvmprobe.testing import fake_probe_result


def caps(names: str) -> FrozenSet[Cap]:
    return frozenset(Cap[name] for name in names.split())


def required(vmm: str, arch: str, version: str) -> FrozenSet[Cap]:
    """What the profile for that release says the VMM probes and refuses without."""
    return frozenset(r.cap for r in builtin_profile(vmm, arch, version).of_kind("required"))


def kinds(vmm: str, arch: str, version: str) -> Dict[Cap, str]:
    return {r.cap: r.kind for r in builtin_profile(vmm, arch, version).requirements}


def host(without: Iterable[Cap] = (), arch: str = "x86_64", **kw: Any) -> Any:
    """Every capability (but MSI_DEVID, which x86 kernels answer 0) except ``without``."""
    gone = set(without) | {Cap.MSI_DEVID}
    return fake_probe_result({c: 1 for c in Cap if c not in gone}, arch=arch, **kw)


# --- Cloud Hypervisor, x86_64: check_required_kvm_extensions in hypervisor/src/kvm/x86_64/mod.rs ---

CH_V21_0 = caps("SIGNAL_MSI TSC_DEADLINE_TIMER SPLIT_IRQCHIP SET_IDENTITY_MAP_ADDR SET_TSS_ADDR")  # @v21.0 :117-134
CH_V21_1 = CH_V21_0 | caps("IMMEDIATE_EXIT")  # @v21.1 :117-137 (507912385 backported as 366223c9f)
CH_V30 = CH_V21_1 | caps("GET_TSC_KHZ")  # @v30.0 :34-57 (c22c4675b; in v28.3 as 39a81c596)
CH_V40 = caps(  # @v40.0 :34-64 (PR #6449: SIGNAL_MSI dropped, twelve added)
    "ADJUST_CLOCK EXT_CPUID GET_TSC_KHZ IMMEDIATE_EXIT IOEVENTFD IRQCHIP IRQFD IRQ_ROUTING MP_STATE "
    "SET_IDENTITY_MAP_ADDR SET_TSS_ADDR SPLIT_IRQCHIP TSC_DEADLINE_TIMER USER_MEMORY USER_NMI VCPU_EVENTS XCRS XSAVE"
)
CH_V53 = CH_V40 - caps("XCRS")  # @v53.0 :41-70 (4b671954a: XCRS probed per VM instead)

CH_X86 = {
    "v21.0": CH_V21_0, "v21.1": CH_V21_1, "v25.0": CH_V21_1, "v28.2": CH_V21_1, "v28.3": CH_V30, "v28.4": CH_V30,
    "v29.0": CH_V21_1, "v30.0": CH_V30, "v39.0": CH_V30, "v40.0": CH_V40, "v45.0": CH_V40, "v48.0": CH_V40,
    "v49.0": CH_V40, "v51.2": CH_V40, "v52.0": CH_V40, "v53.0": CH_V53,
}  # fmt: skip


@pytest.mark.parametrize("tag", CH_X86)
def test_cloud_hypervisor_x86_lists_per_release(tag: str) -> None:
    assert required("cloud-hypervisor", "x86_64", tag) == CH_X86[tag]


def test_cloud_hypervisor_v45_refuses_a_host_without_xcrs_and_v53_does_not() -> None:
    no_xcrs = host([Cap.XCRS], kernel="6.8.0")
    v45 = check_vmm("cloud-hypervisor", no_xcrs, version="v45")
    assert not v45.ready and [m.cap for m in v45.missing_required] == [Cap.XCRS]
    assert v45.summary() == (
        "Cloud Hypervisor v45 cannot run here: KVM_CAP_XCRS is missing "
        "(in Linux since 3.0 or earlier, yet this 6.8 kernel does not offer it)"
    )
    v53 = check_vmm("cloud-hypervisor", no_xcrs, version="v53.0")
    assert v53.ready and Cap.XCRS in {m.cap for m in v53.missing_optional}
    assert check_vmm("cloud-hypervisor", no_xcrs).ready  # the newest is v53


def test_cloud_hypervisor_get_tsc_khz_arrived_in_v30_and_the_v28_stable_branch() -> None:
    old_tsc = host([Cap.GET_TSC_KHZ])
    assert [check_vmm("ch", old_tsc, version=v).ready for v in ("v28.2", "v28.3", "v29.0", "v30.0")] == [
        True, False, True, False]  # fmt: skip


def test_cloud_hypervisor_nested_state_only_for_snapshots_from_v49() -> None:
    # @v49.0 hypervisor/src/kvm/mod.rs:2347: KvmVcpu::state() calls nested_state() unprobed.
    assert Cap.NESTED_STATE not in kinds("cloud-hypervisor", "x86_64", "v48.0")
    assert kinds("cloud-hypervisor", "x86_64", "v49.0")[Cap.NESTED_STATE] == "conditional"
    verdict = check_vmm("cloud-hypervisor", host([Cap.NESTED_STATE]))
    assert verdict.ready and [m.cap for m in verdict.missing_conditional] == [Cap.NESTED_STATE]
    assert "snapshot or live migration" in verdict.missing_conditional[0].why


def test_cloud_hypervisor_never_probes_nr_memslots() -> None:
    for profile in builtin_profiles(releases=True):
        if profile.name == "cloud-hypervisor":
            assert Cap.NR_MEMSLOTS not in {r.cap for r in profile.requirements}, profile.versions


def test_cloud_hypervisor_aarch64_and_riscv64() -> None:
    # @v21.0..v39.0 aarch64/mod.rs: SIGNAL_MSI and ONE_REG only; @v40.0 :108-127 eight, IMMEDIATE_EXIT among them.
    assert required("cloud-hypervisor", "aarch64", "v39.0") == caps("SIGNAL_MSI ONE_REG")
    arm40 = caps("IMMEDIATE_EXIT IOEVENTFD IRQCHIP IRQFD IRQ_ROUTING MP_STATE ONE_REG USER_MEMORY")
    assert required("cloud-hypervisor", "aarch64", "v40.0") == required("cloud-hypervisor", "aarch64", "v53.0") == arm40
    # COUNTER_OFFSET is probed from v53.0, in restore_clock: without it each vCPU is written.
    assert Cap.COUNTER_OFFSET not in kinds("cloud-hypervisor", "aarch64", "v52.0")
    offset = next(r for r in builtin_profile("ch", "aarch64", "v53").requirements if r.cap is Cap.COUNTER_OFFSET)
    assert offset.kind == "optional" and "every vCPU" in offset.text and "still works" in offset.text
    # riscv64 from v43.0 (@v43.0 riscv64/mod.rs:137-156); set_guest_debug is compiled out there.
    assert vmm_releases("cloud-hypervisor", "riscv64") == ["v43.0 to v53.x"]
    assert required("cloud-hypervisor", "riscv64", "v43.0") == arm40
    assert Cap.SET_GUEST_DEBUG not in kinds("cloud-hypervisor", "riscv64", "v53.0")
    with pytest.raises(UnknownRelease):
        builtin_profile("cloud-hypervisor", "riscv64", "v42.0")


# --- QEMU: kvm_required_capabilites (accel/kvm/kvm-all.c) + kvm_arch_required_capabilities ---

QEMU_7_2 = caps("USER_MEMORY DESTROY_MEMORY_REGION_WORKS JOIN_MEMORY_REGIONS_WORKS SET_TSS_ADDR EXT_CPUID MP_STATE")
QEMU_8_2 = QEMU_7_2 | caps(  # v10.2.2 kvm-all.c:113-121 + target/i386/kvm/kvm.c:116-130
    "INTERNAL_ERROR_DATA IOEVENTFD IOEVENTFD_ANY_LENGTH SIGNAL_MSI IRQ_ROUTING DEBUGREGS XSAVE VCPU_EVENTS "
    "X86_ROBUST_SINGLESTEP MCE ADJUST_CLOCK SET_IDENTITY_MAP_ADDR"
)


def test_qemu_7_2_refuses_six_listed_and_irq_routing() -> None:
    # v7.2.0 kvm-all.c:108-113 + kvm.c:83-88; kvm_arch_init refuses IRQ_ROUTING apart (kvm.c:2484-2487).
    assert required("qemu", "x86_64", "7.2") == QEMU_7_2 | caps("IRQ_ROUTING")
    assert required("qemu", "x86_64", "8.1.5") == QEMU_7_2 | caps("IRQ_ROUTING")
    for version in ("8.2.0", "9.2.4", "10.0.2", "10.2.2"):
        assert required("qemu", "x86_64", version) == QEMU_8_2, version


def test_qemu_7_2_runs_on_mainline_3_10_and_the_newest_does_not() -> None:
    old = load_preset("linux-3.10")
    assert check_vmm("qemu", old, version="7.2").ready
    newest = check_vmm("qemu", old)
    assert not newest.ready and [m.cap for m in newest.missing_required] == [Cap.IOEVENTFD_ANY_LENGTH]


def test_qemu_default_machine_needs_the_kernel_irqchip_irqfd_and_pit_from_8_x() -> None:
    # 7.2 falls back (userspace APIC, KVM_CREATE_PIT, no irqfd); 8.0 removed the userspace APIC
    # with KVM; 8.2 exits without IRQFD or the in-kernel PIT (v10.2.2 kvm-all.c:2435-2438, i8254.c:249-252).
    fallbacks = (Cap.IRQCHIP, Cap.IRQFD, Cap.PIT2, Cap.PIT_STATE2)
    assert [kinds("qemu", "x86_64", "7.2.22")[c] for c in fallbacks] == ["optional"] * 4
    assert [kinds("qemu", "x86_64", "8.1.0")[c] for c in fallbacks] == ["implicit"] + ["optional"] * 3
    assert [kinds("qemu", "x86_64", "10.2")[c] for c in fallbacks] == ["implicit"] * 4
    for cap in fallbacks:
        lacking = host([cap])
        assert check_vmm("qemu", lacking, version="7.2").ready
        assert not check_vmm("qemu", lacking).ready


def test_qemu_options_that_need_a_capability_are_conditions_not_defaults() -> None:
    newest = kinds("qemu", "x86_64", "10.2")
    for cap in (Cap.SET_GUEST_DEBUG, Cap.HYPERV, Cap.HYPERV_SYNIC, Cap.HYPERV_SYNIC2, Cap.HYPERV_ENLIGHTENED_VMCS,
                Cap.HYPERV_ENFORCE_CPUID, Cap.ENFORCE_PV_FEATURE_CPUID, Cap.VM_TYPES, Cap.HYPERV_VP_INDEX):
        assert newest[cap] == "conditional", cap
    assert newest[Cap.DIRTY_LOG_RING] == "optional"  # not fatal even with dirty-ring-size
    assert Cap.VM_TYPES not in kinds("qemu", "x86_64", "7.2")  # 7.2 creates type-0 VMs only
    assert kinds("qemu", "aarch64", "10.2")[Cap.ARM_IRQ_LINE_LAYOUT_2] == "conditional"  # -smp above 256


def test_qemu_aarch64_lists_per_release() -> None:
    generic = caps("USER_MEMORY DESTROY_MEMORY_REGION_WORKS JOIN_MEMORY_REGIONS_WORKS")
    newer = generic | caps("INTERNAL_ERROR_DATA IOEVENTFD IOEVENTFD_ANY_LENGTH")
    assert required("qemu", "aarch64", "7.2") == generic  # target/arm/kvm.c:35-37 is empty
    assert required("qemu", "aarch64", "9.1.0") == newer
    assert required("qemu", "aarch64", "9.2") == required("qemu", "aarch64", "10.2") == newer | caps("DEVICE_CTRL")


# --- Firecracker, crosvm, libkrun, Dragonball, gVisor -------------------------------------------

FC_X86 = caps(  # every tag v1.0.0..v1.16.1 (@v1.16.1 src/vmm/src/arch/x86_64/kvm.rs:31-46)
    "IRQCHIP IOEVENTFD IRQFD USER_MEMORY SET_TSS_ADDR PIT2 PIT_STATE2 ADJUST_CLOCK DEBUGREGS MP_STATE "
    "VCPU_EVENTS XCRS XSAVE EXT_CPUID"
)


def test_firecracker_lists_and_get_tsc_khz() -> None:
    for version in ("v1.0.0", "v1.4.1", "v1.7.0", "v1.11.0", "v1.14.2", "v1.16.1"):
        assert required("firecracker", "x86_64", version) == FC_X86, version
    arm = caps("IOEVENTFD IRQFD USER_MEMORY ARM_PSCI_0_2 DEVICE_CTRL MP_STATE ONE_REG")
    assert required("firecracker", "aarch64", "v1.0.2") == arm | caps("IRQCHIP")  # until 89a15b9f0
    assert required("firecracker", "aarch64", "v1.16") == arm
    # KVM_GET_TSC_KHZ is issued with .ok() and never probed (vcpu.rs:587-590): no optional probe.
    assert kinds("firecracker", "x86_64", "v1.16")[Cap.GET_TSC_KHZ] == "conditional"


def test_crosvm_236_is_no_requirement_and_msi_devid_1_is_fatal_on_x86() -> None:
    profile = builtin_profile("crosvm", "x86_64")
    assert Cap.PRE_FAULT_MEMORY not in {r.cap for r in profile.requirements}
    assert any("236" in line and "never issues KVM_PRE_FAULT_MEMORY" in line for line in profile.other)
    # hypervisor/src/kvm/mod.rs:1337-1339 panics when the VM-fd answer is exactly 1.
    fine = fake_probe_result({c: 1 for c in Cap}, vm_values={c: 1 for c in Cap if c is not Cap.MSI_DEVID})
    assert check_vmm("crosvm", fine).ready  # the system fd's 1 is not what crosvm asks
    bad = check_vmm("crosvm", host(vm_values={c: 1 for c in Cap}))
    assert not bad.ready and bad.missing_required == ()
    assert bad.problems[0].startswith("KVM_CAP_MSI_DEVID answers 1 on the VM fd, and crosvm fails with it")
    assert check_vmm("crosvm", fake_probe_result({c: 1 for c in Cap}, arch="aarch64")).ready  # arm64 handles it


def test_libkrun_and_dragonball_implicit_devices() -> None:
    assert {c: k for c, k in kinds("libkrun", "x86_64", "v1.19").items() if k == "implicit"} == {
        Cap.PIT2: "implicit", Cap.EXT_CPUID: "implicit"}  # fmt: skip
    assert kinds("libkrun", "aarch64", "v1.0.0")[Cap.DEVICE_CTRL] == "implicit"
    assert vmm_releases("libkrun", "riscv64") == ["v1.15.0 to v1.19.x"]  # the riscv64 build came in v1.15.0
    assert required("libkrun", "riscv64", "v1.15") == caps("IRQCHIP IOEVENTFD IRQFD USER_MEMORY")
    assert kinds("libkrun", "riscv64", "v1.19")[Cap.DEVICE_CTRL] == "implicit"  # the AIA, unwrap()
    assert kinds("dragonball", "x86_64", "4.1")[Cap.PIT2] == "implicit"
    assert kinds("dragonball", "aarch64", "4.1")[Cap.DEVICE_CTRL] == "implicit"
    assert kinds("dragonball", "x86_64", "3.2.0")[Cap.IOEVENTFD_NO_LENGTH] == "optional"
    assert Cap.IOEVENTFD_NO_LENGTH not in kinds("dragonball", "x86_64", "3.0.0")  # mmio_v2 came in 3.2.0


def test_gvisor_uses_nr_memslots_and_max_vcpus_as_they_come() -> None:
    # machine.go:298-306: the fallback is taken only when the query fails; 0 panics the sentry.
    for cap in (Cap.NR_MEMSLOTS, Cap.MAX_VCPUS):
        for arch in ("x86_64", "aarch64"):
            verdict = check_vmm("gvisor-kvm", host([cap], arch=arch))
            assert not verdict.ready and [m.cap for m in verdict.missing_required] == [cap], (cap, arch)
    assert check_vmm("gvisor-kvm", host()).ready


# --- Versions as the VMMs spell them ---------------------------------------------------------


@pytest.mark.parametrize(
    "vmm, spellings, expected",
    [
        ("cloud-hypervisor", ["v45.0", "v45", "45", "45.0", "V45.0.0", "cloud-hypervisor@v45"], "v40.0 to v48.x"),
        ("qemu", ["7.2", "7.2.22", "v7.2.0", "7.2.0"], "7.2.0 to 7.x"),
        ("firecracker", ["1.7", "v1.7.0", "1.10.1"], "v1.5.0 to v1.10.x"),
        ("gvisor-kvm", ["release-20221219.0", "20221219.0", "20260817"], "release-20221219.0 to release-20260817.0"),
        ("crosvm", ["0.1.0"], "0.1.0 to 0.1.x"),
    ],
)
def test_versions_resolve_however_spelled(vmm: str, spellings: List[str], expected: str) -> None:
    for spelling in spellings:
        profile = builtin_profile(spelling if "@" in spelling else vmm, "x86_64", None if "@" in spelling else spelling)
        assert profile.versions == expected, spelling


@pytest.mark.parametrize("spec", ["cloud-hypervisor@v20", "cloud-hypervisor@v54.0", "qemu@6.2", "qemu@11.0", "fc@2.0"])
def test_unknown_releases_name_the_known_ranges(spec: str) -> None:
    vmm, _, version = spec.partition("@")
    with pytest.raises(UnknownRelease) as caught:
        builtin_profile(vmm, "x86_64", version)
    err = caught.value
    assert isinstance(err, UnknownVmm) and err.known == vmm_releases(vmm, "x86_64")
    assert err.known[0] in err.hint and err.known[-1] in err.hint and "or none for the newest" in err.hint


def test_a_version_that_is_no_release_says_how_releases_are_written() -> None:
    with pytest.raises(UnknownRelease, match=r"'latest' is not a Cloud Hypervisor release \(it writes them like v53.0\)"):
        resolve_vmm_spec("ch@latest")
    with pytest.raises(UnknownVmm, match="did you mean qemu"):
        resolve_vmm_spec("qemmu@7.2")
    assert resolve_vmm_spec("QEMU@7.2") == ("qemu", "7.2")


def test_no_version_is_the_newest_range() -> None:
    for entry in ENTRIES:
        assert builtin_profile(entry.vmm, entry.arch).versions == vmm_releases(entry.vmm, entry.arch)[-1]
        assert builtin_profile(entry.vmm, entry.arch).version is None


# --- The release data itself ------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"{e.vmm}-{e.arch}")
def test_ranges_are_contiguous_and_each_bound_is_a_release(entry: Any) -> None:
    prefixes = VMMS[entry.vmm].prefixes
    spans = [Span(r.first, r.last, prefixes) for r in entry.releases]
    for before, after in zip(spans, spans[1:]):
        assert after.follows(before), (entry.vmm, entry.arch, before.label, after.label)
    for span in spans:
        first = parse_version(span.first, prefixes)
        assert first is not None and span.contains(first)
        # Every version falls in exactly one range.
        assert [s.label for s in spans if s.contains(first)] == [span.label]
    # Each need's bounds are range bounds (the profiles could not be built otherwise).
    bounded = [n for kind in ("texts", "implicit", "unchecked", "conditional", "optional", "incompatible")
               for n in getattr(entry, kind) if n.since or n.until]
    for need in bounded:
        assert not need.since or need.since in [r.first for r in entry.releases], need
        assert not need.until or need.until in [r.last for r in entry.releases], need
