"""VMM readiness over fake hosts: the CentOS 7 story, golden verdicts, the profile data, custom profiles."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import pytest

import kvmprobe
from kvmprobe import Cap, ProfileError, UnknownVmm
from kvmprobe._release import parse_release
from kvmprobe._vmm_requirements import ENTRIES
from kvmprobe.caps import ARCHES
from kvmprobe.profiles import (
    KINDS,
    Profile,
    Requirement,
    builtin_profile,
    builtin_profiles,
    check_vmm,
    load_profile,
    resolve_vmm,
    vmm_names,
)
from kvmprobe.testing import fake_probe_result

STORY_KERNEL = "3.10.0-1160.el7.x86_64"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REFERENCE = Path("/work/shared/reference/vmm-requirements.json")


def mainline(release: Tuple[int, int], arch: str = "x86_64", kernel: Optional[str] = None, **kw: Any) -> Any:
    """A host offering every capability whose first release (the Cap table) is at most ``release``."""
    return fake_probe_result(
        {cap: 1 for cap in Cap if cap.since <= release}, arch=arch, kernel=kernel or f"{release[0]}.{release[1]}.0", **kw
    )


def everything(arch: str = "x86_64", **kw: Any) -> Any:
    return fake_probe_result({cap: 1 for cap in Cap}, arch=arch, **kw)


def everything_it_wants(profile: Profile, **kw: Any) -> Any:
    """Every capability but those whose presence the profile says its VMM cannot cope with."""
    assert profile.arch is not None
    bad = {r.cap for r in profile.of_kind("incompatible")}
    return fake_probe_result({cap: 1 for cap in Cap if cap not in bad}, arch=profile.arch, **kw)


# --- The story: Cloud Hypervisor on CentOS 7 ------------------------------------------------------


def test_story_host_cloud_hypervisor_is_not_ready_naming_immediate_exit() -> None:
    host = mainline((3, 10), kernel=STORY_KERNEL)
    verdict = check_vmm("cloud-hypervisor", host)
    assert verdict.ready is False
    assert host.has(Cap.IMMEDIATE_EXIT) is False
    names = [m.name for m in verdict.missing_required]
    assert "KVM_CAP_IMMEDIATE_EXIT" in names
    # Every required capability newer than 3.10 (derived from the table), and nothing else.
    profile = builtin_profile("cloud-hypervisor", "x86_64")
    assert names == [r.cap.c_name for r in profile.required if r.cap.since > (3, 10)]
    assert verdict.needs_kernel == max(Cap[n[len("KVM_CAP_"):]].since for n in names) == (4, 11)
    assert verdict.kernel == STORY_KERNEL
    summary = verdict.summary()
    assert summary.startswith("Cloud Hypervisor cannot run here: ")
    assert "KVM_CAP_IMMEDIATE_EXIT" in summary and "needs Linux >= 4.11; you have 3.10" in summary
    immediate = next(m for m in verdict.missing_required if m.cap is Cap.IMMEDIATE_EXIT)
    assert immediate.since == Cap.IMMEDIATE_EXIT.since and immediate.since_text == "4.11"
    assert "immediate_exit" in immediate.why


def test_story_sentence_exactly_when_only_immediate_exit_is_missing() -> None:
    # RHEL 7's 3.10 backports a lot; the panic in the story named ImmediateExit alone.
    host = fake_probe_result({c: 1 for c in Cap if c is not Cap.IMMEDIATE_EXIT}, kernel=STORY_KERNEL)
    assert check_vmm("cloud-hypervisor", host).summary() == (
        "Cloud Hypervisor cannot run here: KVM_CAP_IMMEDIATE_EXIT is missing (needs Linux >= 4.11; you have 3.10)"
    )


def test_several_missing_name_the_one_upgrade_that_fixes_all() -> None:
    lacking = {Cap.IMMEDIATE_EXIT, Cap.SPLIT_IRQCHIP}
    host = fake_probe_result({c: 1 for c in Cap if c not in lacking}, kernel=STORY_KERNEL)
    verdict = check_vmm("cloud-hypervisor", host)
    assert {m.cap for m in verdict.missing_required} == lacking
    assert verdict.needs_kernel == max(c.since for c in lacking) == (4, 11)
    assert verdict.summary() == (
        "Cloud Hypervisor cannot run here: KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_SPLIT_IRQCHIP "
        "are missing (needs Linux >= 4.11; you have 3.10)"
    )
    # A custom profile over three releases: the newest first release is the upgrade.
    custom = Profile("x", "X", None, tuple(Requirement(c, "required") for c in (Cap.IMMEDIATE_EXIT, Cap.X86_DISABLE_EXITS, Cap.SPLIT_IRQCHIP)))
    old = fake_probe_result({c: 1 for c in Cap if c.since <= (4, 9)}, kernel="4.9.337")
    assert check_vmm(custom, old).summary() == (
        "X cannot run here: KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_X86_DISABLE_EXITS are missing (needs Linux >= 4.17; you have 4.9)"
    )


def test_story_host_other_vmms() -> None:
    host = mainline((3, 10), kernel=STORY_KERNEL)
    # Firecracker's list is all <=3.0 capabilities: it passes the check (and is below its policy).
    firecracker = check_vmm("firecracker", host)
    assert firecracker.ready and any("5.10" in note for note in firecracker.notes)
    assert [m.cap for m in check_vmm("crosvm", host).missing_required] == [Cap.IMMEDIATE_EXIT]
    qemu = check_vmm("qemu", host)
    assert [m.cap for m in qemu.missing_required] == [Cap.IOEVENTFD_ANY_LENGTH]
    assert qemu.needs_kernel == Cap.IOEVENTFD_ANY_LENGTH.since
    # QEMU only degrades without IMMEDIATE_EXIT (signals instead).
    assert Cap.IMMEDIATE_EXIT in {m.cap for m in qemu.missing_optional}


# --- Golden cases ---------------------------------------------------------------------------------


RELEASES = builtin_profiles(releases=True)


def release_id(profile: Profile) -> str:
    return f"{profile.name}-{profile.arch}-{(profile.versions or '').split()[0]}"


@pytest.mark.parametrize("profile", RELEASES, ids=release_id)
def test_a_host_with_everything_is_ready_for_every_profile(profile: Profile) -> None:
    assert profile.arch is not None
    verdict = check_vmm(profile, everything_it_wants(profile))
    assert verdict.ready and verdict.missing_required == () and verdict.missing_optional == ()
    assert verdict.problems == () and verdict.needs_kernel is None
    assert verdict.summary().startswith(f"{profile.display_name} can run here")


@pytest.mark.parametrize("profile", RELEASES, ids=release_id)
def test_a_host_with_nothing_misses_exactly_the_required(profile: Profile) -> None:
    assert profile.arch is not None
    verdict = check_vmm(profile, fake_probe_result({}, arch=profile.arch, kernel="6.18.0"))
    assert [m.cap for m in verdict.missing_required] == [r.cap for r in profile.required]
    assert [m.cap for m in verdict.missing_optional] == [r.cap for r in profile.optional]
    assert verdict.ready is (not profile.required)
    # A 6.18 kernel has them all in mainline: no upgrade helps, so no needs_kernel.
    assert verdict.needs_kernel is None


def test_a_new_kernel_lacking_a_capability_is_not_told_to_upgrade() -> None:
    host = fake_probe_result({c: 1 for c in Cap if c is not Cap.SPLIT_IRQCHIP}, kernel="6.1.0-13-amd64")
    verdict = check_vmm("cloud-hypervisor", host)
    assert not verdict.ready and verdict.needs_kernel is None
    assert verdict.summary() == (
        "Cloud Hypervisor cannot run here: KVM_CAP_SPLIT_IRQCHIP is missing "
        "(in Linux since 4.4, yet this 6.1 kernel does not offer it)"
    )


def test_mixed_old_and_new_missing_capabilities() -> None:
    host = fake_probe_result({c: 1 for c in Cap if c not in (Cap.IMMEDIATE_EXIT, Cap.IRQCHIP)}, kernel="4.4.0")
    verdict = check_vmm("cloud-hypervisor", host)
    assert verdict.needs_kernel == (4, 11)
    assert verdict.summary() == (
        "Cloud Hypervisor cannot run here: KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_IRQCHIP are missing "
        "(needs Linux >= 4.11; you have 4.4; KVM_CAP_IRQCHIP is in Linux since 3.0 or earlier, "
        "yet this kernel does not offer it)"
    )


def test_an_unparseable_kernel_release_is_quoted() -> None:
    host = fake_probe_result({c: 1 for c in Cap if c not in (Cap.IMMEDIATE_EXIT, Cap.MSI_DEVID)}, kernel="custom")
    verdict = check_vmm("crosvm", host)
    assert verdict.needs_kernel == (4, 11)
    assert verdict.summary().endswith("(needs Linux >= 4.11; you have 'custom')")


def test_a_failed_query_counts_as_missing_and_says_so() -> None:
    host = fake_probe_result({c: 1 for c in Cap if c is not Cap.MSI_DEVID}, errors={Cap.IMMEDIATE_EXIT: 5})
    verdict = check_vmm("crosvm", host)
    assert not verdict.ready
    (missing,) = verdict.missing_required
    assert missing.cap is Cap.IMMEDIATE_EXIT and missing.errno == 5
    assert "the query failed: EIO" in missing.describe()


def test_api_version_other_than_12_is_not_ready() -> None:
    verdict = check_vmm("firecracker", everything(api_version=11))
    assert not verdict.ready and verdict.missing_required == ()
    assert verdict.problems == ("the KVM API version is 11, it needs 12",)
    assert verdict.summary() == "Firecracker cannot run here: the KVM API version is 11, it needs 12"
    # gVisor does not check the API version, so it does not mind.
    assert check_vmm("gvisor-kvm", everything(api_version=11)).ready


def test_a_profile_for_another_arch_is_not_ready() -> None:
    verdict = check_vmm("firecracker", everything("x86_64"), arch="aarch64")
    assert verdict.profile.arch == "aarch64" and not verdict.ready
    assert "this profile is for aarch64, the host is x86_64" in verdict.problems
    custom = Profile("arm-only", "Arm Only", "aarch64", (Requirement(Cap.USER_MEMORY, "required"),))
    assert not check_vmm(custom, everything("x86_64")).ready
    assert check_vmm(custom, everything("aarch64")).ready


def test_the_host_arch_picks_the_builtin_profile() -> None:
    arm = check_vmm("firecracker", everything("aarch64"))
    assert arm.profile.arch == "aarch64" and arm.ready
    assert {r.cap for r in arm.profile.required} != {r.cap for r in builtin_profile("firecracker", "x86_64").required}


def test_unknown_vmm_suggests_and_fails_before_touching_kvm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KVMPROBE_DEVICE", str(tmp_path / "no-kvm-here"))  # a probe would fail with KvmNotFound
    with pytest.raises(UnknownVmm) as caught:
        check_vmm("cloud-hypervsor")
    assert caught.value.suggestions == ["cloud-hypervisor"]
    assert "did you mean cloud-hypervisor?" in str(caught.value)
    with pytest.raises(UnknownVmm) as nothing_close:
        check_vmm("virtualbox", fake_probe_result({}))
    assert "firecracker" in nothing_close.value.hint and isinstance(nothing_close.value, LookupError)


def test_no_builtin_profile_for_the_arch() -> None:
    with pytest.raises(UnknownVmm) as caught:
        check_vmm("firecracker", everything("s390x"))
    assert caught.value.arch == "s390x"
    assert "for s390x" in caught.value.message and "x86_64, aarch64" in caught.value.hint


def test_optional_conditional_and_unchecked_do_not_decide_readiness() -> None:
    lacking = {Cap.MSI_DEVID, Cap.X2APIC_API, Cap.ENABLE_CAP}
    verdict = check_vmm("cloud-hypervisor", fake_probe_result({c: 1 for c in Cap if c not in lacking}))
    assert verdict.ready
    assert [m.cap for m in verdict.missing_optional] == [Cap.MSI_DEVID]
    assert "device ID" in verdict.missing_optional[0].why
    assert [m.cap for m in verdict.missing_conditional] == [Cap.X2APIC_API]
    assert "APIC ID" in verdict.missing_conditional[0].why
    assert any("KVM_CAP_ENABLE_CAP" in note for note in verdict.notes)
    assert "1 optional missing: KVM_CAP_MSI_DEVID" in verdict.summary()


def test_implicit_requirements_decide_readiness() -> None:
    # crosvm never probes IRQCHIP, but creates the kernel irqchip unconditionally.
    verdict = check_vmm("crosvm", fake_probe_result({c: 1 for c in Cap if c is not Cap.IRQCHIP}, kernel="6.6.0"))
    assert not verdict.ready
    assert [(m.cap, m.kind) for m in verdict.missing_required] == [(Cap.IRQCHIP, "implicit")]


def test_readiness_to_dict_is_json() -> None:
    verdict = check_vmm("cloud-hypervisor", mainline((3, 10), kernel=STORY_KERNEL))
    doc = json.loads(json.dumps(verdict.to_dict()))
    assert doc["ready"] is False and doc["needs_kernel"] == "4.11" and doc["kernel"] == STORY_KERNEL
    assert doc["summary"] == verdict.summary()
    assert {"name": "KVM_CAP_IMMEDIATE_EXIT", "number": 136, "since": "4.11"}.items() <= doc["missing_required"][0].items()
    assert doc["profile"]["source"].startswith("cloud-hypervisor/cloud-hypervisor@")


def test_default_probe_is_the_cached_one() -> None:
    from kvmprobe.testing import fake_kvm

    with fake_kvm(mainline((3, 10), kernel=STORY_KERNEL)):
        assert not kvmprobe.check_vmm("cloud-hypervisor").ready
        assert kvmprobe.check_vmm("firecracker").ready


# --- The data: every profile is real and cited ----------------------------------------------------


def test_names_and_aliases() -> None:
    assert vmm_names("x86_64")[:4] == ["firecracker", "cloud-hypervisor", "qemu", "crosvm"]
    assert set(vmm_names()) >= {"firecracker", "cloud-hypervisor", "qemu", "crosvm", "libkrun", "dragonball"}
    assert vmm_names("s390x") == []
    for spelling in ("cloud-hypervisor", "Cloud Hypervisor", "CLOUD_HYPERVISOR", "ch", "clh"):
        assert resolve_vmm(spelling) == "cloud-hypervisor"


_REF = re.compile(r"v?[0-9][\w.~-]*|release-[0-9.]+|[0-9a-f]{9}|[0-9a-f]{40}")  # a tag, or a commit


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"{e.vmm}-{e.arch}")
def test_every_profile_cites_its_source(entry: Any) -> None:
    assert entry.vmm == entry.vmm.lower() and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", entry.vmm)
    assert entry.arch in ARCHES and entry.display_name
    assert entry.releases, "at least one release range"
    for release in entry.releases:
        source = release.source
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", source.repo) and _REF.fullmatch(source.ref), source
        assert source.files and all(re.fullmatch(r"[\w./-]+\.\w+:\d+(-\d+)?", f) for f in source.files), "cite the lines"
    for profile in builtin_profiles(releases=True):
        if (profile.name, profile.arch) == (entry.vmm, entry.arch):
            assert re.match(r"[\w.-]+/[\w.-]+@\S+ \S+:\d+", profile.source)
    if entry.min_kernel is not None:
        assert parse_release(entry.min_kernel) is not None and entry.min_kernel_source


@pytest.mark.parametrize("profile", RELEASES, ids=release_id)
def test_every_profile_capability_exists_on_its_arch_once_with_a_reason(profile: Profile) -> None:
    caps = [r.cap for r in profile.requirements]
    assert len(caps) == len(set(caps)), "a capability listed twice"
    assert profile.arch is not None
    for req in profile.requirements:
        assert Cap.lookup(req.cap.c_name) is req.cap and req.kind in KINDS
        assert req.cap.applies_to(profile.arch), f"{req.cap.c_name} does not exist on {profile.arch}"
        assert req.text, f"{req.cap.c_name} ({req.kind}) says neither what it is for nor what degrades"
    assert profile.api_version in (12, None)


def _reference_caps(section: Dict[str, Any]) -> Dict[str, Set[str]]:
    def names(items: List[Any]) -> Set[str]:
        return {item if isinstance(item, str) else item["cap"] for item in items}

    return {
        "required": names(section.get("required", [])),
        "implicit": names(section.get("implicitly_required", [])),
        "unchecked": names(section.get("required_but_not_checked", [])),
        "conditional": names(section.get("conditionally_required", [])),
        "optional": names(section.get("optional", [])),
    }


# Deliberate differences from the reference data (its newest lists), each a correction made
# after reading the VMM's own source (issue #15): (vmm, arch, capability) -> (the kind the
# reference gives, the kind here; None: not listed). The citations are in _vmm_requirements.
_NOT_A_CAP = {"<any KVM_CAP_*>", "KVM_CAP_X86_PROTECTED_VM", "KVM_CAP_ARM_PROTECTED_VM"}  # ChromeOS-only or a wildcard
_CORRECTED = {
    # KVM_GET_TSC_KHZ is issued unprobed (.ok() on save); a restore with a saved frequency needs it.
    ("firecracker", "x86_64", "KVM_CAP_GET_TSC_KHZ"): ("optional", "conditional"),
    # v49+: KVM_GET_NESTED_STATE on every vCPU state save (snapshot, migration).
    ("cloud-hypervisor", "x86_64", "KVM_CAP_NESTED_STATE"): (None, "conditional"),
    # Cloud Hypervisor never probes it, in any release.
    ("cloud-hypervisor", "x86_64", "KVM_CAP_NR_MEMSLOTS"): ("optional", None),
    # QEMU >= 8.0 has no userspace local APIC with KVM; >= 8.2 exits without IRQFD, PIT2, PIT_STATE2.
    ("qemu", "x86_64", "KVM_CAP_IRQCHIP"): ("optional", "implicit"),
    ("qemu", "x86_64", "KVM_CAP_IRQFD"): ("conditional", "implicit"),
    ("qemu", "x86_64", "KVM_CAP_PIT2"): ("conditional", "implicit"),
    ("qemu", "x86_64", "KVM_CAP_PIT_STATE2"): ("conditional", "implicit"),
    ("qemu", "aarch64", "KVM_CAP_IRQFD"): ("conditional", "implicit"),
    # -gdb refuses to start without it; hv-vpindex too; the rest are asked only for their option.
    ("qemu", "x86_64", "KVM_CAP_SET_GUEST_DEBUG"): ("optional", "conditional"),
    ("qemu", "x86_64", "KVM_CAP_HYPERV_VP_INDEX"): ("optional", "conditional"),
    ("qemu", "x86_64", "KVM_CAP_ENFORCE_PV_FEATURE_CPUID"): (None, "conditional"),
    ("qemu", "x86_64", "KVM_CAP_HYPERV_ENFORCE_CPUID"): (None, "conditional"),
    ("qemu", "x86_64", "KVM_CAP_HYPERV_ENLIGHTENED_VMCS"): (None, "conditional"),
    ("qemu", "x86_64", "KVM_CAP_HYPERV_SYNIC"): (None, "conditional"),
    ("qemu", "x86_64", "KVM_CAP_HYPERV_SYNIC2"): (None, "conditional"),
    ("qemu", "x86_64", "KVM_CAP_VM_TYPES"): (None, "conditional"),
    ("qemu", "aarch64", "KVM_CAP_ARM_IRQ_LINE_LAYOUT_2"): (None, "conditional"),
    ("qemu", "aarch64", "KVM_CAP_SET_GUEST_DEBUG"): (None, "conditional"),
    # Probed (KVM_GUESTDBG_BLOCKIRQ for single-stepping); not in QEMU 10.2.2 at all: PMU_CAPABILITY.
    ("qemu", "x86_64", "KVM_CAP_SET_GUEST_DEBUG2"): (None, "optional"),
    ("qemu", "x86_64", "KVM_CAP_PMU_CAPABILITY"): ("optional", None),
    # crosvm: 236 is probed as ChromeOS's non-coherent-DMA alias (a note, no requirement);
    # MSI_DEVID answered 1 on the VM fd makes it panic on x86; SVE fails only if asked for.
    ("crosvm", "x86_64", "KVM_CAP_PRE_FAULT_MEMORY"): ("optional", None),
    ("crosvm", "x86_64", "KVM_CAP_MSI_DEVID"): ("optional", "incompatible"),
    ("crosvm", "aarch64", "KVM_CAP_ARM_SVE"): ("conditional", "optional"),
    # libkrun and Dragonball create the PIT or the GIC unconditionally, and libkrun sets CPUID.
    ("libkrun", "x86_64", "KVM_CAP_PIT2"): (None, "implicit"),
    ("libkrun", "x86_64", "KVM_CAP_EXT_CPUID"): (None, "implicit"),
    ("libkrun", "aarch64", "KVM_CAP_DEVICE_CTRL"): (None, "implicit"),
    ("dragonball", "x86_64", "KVM_CAP_PIT2"): (None, "implicit"),
    ("dragonball", "aarch64", "KVM_CAP_DEVICE_CTRL"): (None, "implicit"),
    ("dragonball", "x86_64", "KVM_CAP_IOEVENTFD_NO_LENGTH"): (None, "optional"),
    ("dragonball", "aarch64", "KVM_CAP_IOEVENTFD_NO_LENGTH"): (None, "optional"),
    # gVisor uses both answers as they come: 0 panics the sentry (or, arm64 vCPUs, hangs it).
    ("gvisor-kvm", "x86_64", "KVM_CAP_NR_MEMSLOTS"): ("optional", "implicit"),
    ("gvisor-kvm", "x86_64", "KVM_CAP_MAX_VCPUS"): ("optional", "implicit"),
    ("gvisor-kvm", "aarch64", "KVM_CAP_NR_MEMSLOTS"): ("optional", "implicit"),
    ("gvisor-kvm", "aarch64", "KVM_CAP_MAX_VCPUS"): ("optional", "implicit"),
}
_REFERENCE_KIND = {"required": "required", "implicit": "implicitly_required", "unchecked": "required_but_not_checked",
                   "conditional": "conditionally_required", "optional": "optional"}


@pytest.mark.skipif(not REFERENCE.exists(), reason=f"the gathered reference data ({REFERENCE.name}) is not on this machine")
def test_newest_profiles_match_the_reference_data_but_for_the_corrections() -> None:
    reference = json.loads(REFERENCE.read_text())
    checked = 0
    for profile in builtin_profiles():
        assert profile.arch is not None
        section = reference[profile.name]["arch"].get(profile.arch)
        if section is None:  # riscv64: only in the reference's notes
            assert profile.arch == "riscv64"
            continue
        theirs: Dict[str, str] = {}
        for kind, key in _REFERENCE_KIND.items():
            for item in section.get(key, []):
                name = item if isinstance(item, str) else item["cap"]
                if name not in _NOT_A_CAP:
                    theirs.setdefault(name, kind)  # listed twice (crosvm ARM_SVE): the stronger
        ours = {r.cap.c_name: r.kind for r in profile.requirements}
        for name in set(theirs) | set(ours):
            expected = _CORRECTED.get((profile.name, profile.arch, name), (theirs.get(name), theirs.get(name)))
            assert (theirs.get(name), ours.get(name)) == expected, (profile.name, profile.arch, name)
        assert reference[profile.name]["min_kernel"] == profile.min_kernel
        checked += 1
    assert checked >= 14


# --- Custom profiles ------------------------------------------------------------------------------


def test_example_profiles_toml_and_json_agree_and_check() -> None:
    toml = load_profile(EXAMPLES / "my-vmm-profile.toml")
    as_json = load_profile(EXAMPLES / "my-vmm-profile.json")
    assert toml.path == str(EXAMPLES / "my-vmm-profile.toml")
    assert toml.to_dict() | {"path": None} == as_json.to_dict() | {"path": None}
    assert (toml.name, toml.display_name, toml.arch, toml.min_kernel) == ("my-vmm", "My VMM", "x86_64", "5.10")
    assert Cap.IMMEDIATE_EXIT in {r.cap for r in toml.required}
    assert check_vmm(toml, everything()).ready
    story = check_vmm(toml, mainline((3, 10), kernel=STORY_KERNEL))
    assert story.summary() == "My VMM cannot run here: KVM_CAP_IMMEDIATE_EXIT is missing (needs Linux >= 4.11; you have 3.10)"


@pytest.mark.parametrize("suffix", [".json", ".toml", ".profile"])
def test_round_trip_of_a_builtin_profile_through_a_file(tmp_path: Path, suffix: str) -> None:
    original = builtin_profile("cloud-hypervisor", "x86_64")
    doc: Dict[str, Any] = {"name": "ch-copy", "arch": original.arch, "min_kernel": original.min_kernel}
    doc["required"] = {r.cap.rust_name or r.cap.name: r.text for r in original.of_kind("required")}
    doc["optional"] = [r.cap.c_name.lower() for r in original.optional]
    doc["conditional"] = {r.cap.name: r.text for r in original.of_kind("conditional")}
    path = tmp_path / f"ch{suffix}"
    path.write_text(_toml(doc) if suffix == ".toml" else json.dumps(doc))
    loaded = load_profile(path)
    for kind in ("required", "optional", "conditional"):
        assert [r.cap for r in loaded.of_kind(kind)] == [r.cap for r in original.of_kind(kind)]
    assert [r.text for r in loaded.of_kind("required")] == [r.text for r in original.of_kind("required")]
    host = mainline((3, 10), kernel=STORY_KERNEL)
    assert [m.cap for m in check_vmm(loaded, host).missing_required] == [
        m.cap for m in check_vmm(original, host).missing_required
    ]


def _toml(doc: Dict[str, Any]) -> str:
    """Just enough TOML writing for the round trip (strings, arrays of strings, flat tables)."""
    lines: List[str] = []
    tables: List[str] = []
    for key, value in doc.items():
        if isinstance(value, dict):
            tables += ["", f"[{key}]"] + [f"{k} = {json.dumps(v)}" for k, v in value.items()]
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines + tables) + "\n"


def test_a_minimal_profile_fits_any_arch(tmp_path: Path) -> None:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"name": "tiny", "required": ["KVM_CAP_IRQFD", 136]}))
    profile = load_profile(str(path))
    assert profile.arch is None and profile.api_version == 12 and profile.display_name == "tiny"
    assert check_vmm(profile, everything("aarch64")).ready and check_vmm(profile, everything("x86_64")).ready
    assert [r.text for r in profile.required] == ["", ""]


BAD_PROFILES = [
    # (id, file name, content, key, part of the message or hint)
    ("not-json", "p.json", '{"name": "x", "required": [', "", "not valid JSON"),
    ("not-toml", "p.toml", 'name = "x"\nrequired = [\n', "", "not valid TOML"),
    ("neither", "p.txt", "name: x\nrequired: [IRQCHIP]\n", "", "neither JSON"),
    ("top-level-array", "p.json", "[1, 2]", "", "expected a table (JSON object) at the top level"),
    ("missing-name", "p.json", {"required": []}, "name", "missing"),
    ("missing-required", "p.toml", 'name = "x"\n', "required", "missing"),
    ("unknown-key", "p.json", {"name": "x", "required": [], "requird": []}, "requird", "did you mean 'required'?"),
    ("name-not-string", "p.json", {"name": 5, "required": []}, "name", "expected a string, got an integer (5)"),
    ("name-not-an-id", "p.json", {"name": "my vmm!", "required": []}, "name", "short id"),
    ("empty-display-name", "p.json", {"name": "x", "display_name": "", "required": []}, "display_name", "non-empty"),
    ("required-a-string", "p.json", {"name": "x", "required": "IRQCHIP"}, "required", "expected an array"),
    ("required-a-bool-entry", "p.json", {"name": "x", "required": [True]}, "required[0]", "expected a capability name"),
    ("optional-text-a-number", "p.json", {"name": "x", "required": [], "optional": {"XSAVE2": 5}}, "optional.XSAVE2", "expected a string"),
    ("conditional-a-list", "p.json", {"name": "x", "required": [], "conditional": ["X2APIC_API"]}, "conditional", "condition"),
    ("conditional-empty", "p.json", {"name": "x", "required": [], "conditional": {"X2APIC_API": ""}}, "conditional.X2APIC_API", "condition"),
    ("unknown-cap", "p.json", {"name": "x", "required": ["USER_MEMORY", "IMEDIATE_EXIT"]}, "required[1]", "did you mean KVM_CAP_IMMEDIATE_EXIT?"),
    ("unknown-cap-in-table", "p.toml", 'name = "x"\n[required]\nKVM_CAP_IRQFDD = "irqs"\n', "required.KVM_CAP_IRQFDD", "did you mean KVM_CAP_IRQFD"),
    ("unknown-number", "p.json", {"name": "x", "required": [9999]}, "required[0]", "no KVM_CAP_* constant has this number"),
    ("wrong-arch", "p.json", {"name": "x", "arch": "x86", "required": []}, "arch", "did you mean 'x86_64'?"),
    ("arch-not-string", "p.json", {"name": "x", "arch": 64, "required": []}, "arch", "expected a string, got an integer (64)"),
    ("cap-of-another-arch", "p.json", {"name": "x", "arch": "aarch64", "required": ["XSAVE"]}, "required[0]", "x86_64 only, not on aarch64"),
    ("listed-twice", "p.json", {"name": "x", "required": ["IRQCHIP"], "optional": ["KVM_CAP_IRQCHIP"]}, "optional[0]", "listed twice"),
    ("api-13", "p.json", {"name": "x", "api_version": 13, "required": []}, "api_version", "expected 12"),
    ("api-string", "p.json", {"name": "x", "api_version": "12", "required": []}, "api_version", "expected 12"),
    ("api-bool", "p.json", {"name": "x", "api_version": True, "required": []}, "api_version", "a boolean"),
    ("min-kernel-float", "p.toml", 'name = "x"\nmin_kernel = 5.10\nrequired = []\n', "min_kernel", "turn 5.10 into 5.1"),
    ("min-kernel-word", "p.json", {"name": "x", "min_kernel": "five", "required": []}, "min_kernel", "release string"),
]


@pytest.mark.parametrize("case", BAD_PROFILES, ids=[c[0] for c in BAD_PROFILES])
def test_bad_profile_files_name_the_file_and_key(tmp_path: Path, case: Tuple[str, str, Any, str, str]) -> None:
    _, name, content, key, expected = case
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    err = caught.value
    assert err.path == str(path) and err.key == key
    text = str(err)
    assert text.startswith(f"{path}: {key + ': ' if key else ''}")
    assert expected in text
    assert "\n" not in text


def test_unreadable_profile_files(tmp_path: Path) -> None:
    for path, expected in (
        (tmp_path / "missing.toml", "No such file or directory"),
        (tmp_path, "not a regular file (a directory)"),
    ):
        with pytest.raises(ProfileError) as caught:
            load_profile(path)
        assert caught.value.path == str(path) and expected in str(caught.value)
    binary = tmp_path / "p.json"
    binary.write_bytes(b'{"name": "\xff"}')
    with pytest.raises(ProfileError, match="not UTF-8"):
        load_profile(binary)


def test_without_a_toml_parser_toml_profiles_say_what_to_do() -> None:
    # A separate interpreter in which neither tomllib nor tomli can be imported (as on 3.9/3.10
    # without tomli); the test process itself is left alone.
    code = (
        "import sys; sys.modules['tomllib'] = None; sys.modules['tomli'] = None\n"
        "from kvmprobe import load_profile, ProfileError\n"
        f"print(load_profile({str(EXAMPLES / 'my-vmm-profile.json')!r}).name)\n"
        "try:\n"
        f"    load_profile({str(EXAMPLES / 'my-vmm-profile.toml')!r})\n"
        "except ProfileError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}).stdout
    first, second = out.splitlines()
    assert first == "my-vmm"
    assert "my-vmm-profile.toml: reading TOML needs Python 3.11+ or the 'tomli' package" in second
    assert "write the profile as JSON, or pip install tomli" in second
