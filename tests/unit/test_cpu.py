"""The CPU view without KVM: decoding recorded and made-up hosts, host versus KVM, XSAVE, feature
MSRs, volatile filtering, the record's JSON, presets, the fakes and the cache."""

from __future__ import annotations

import errno
import json
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import kvmprobe
from kvmprobe import NotRecorded, SnapshotError, UnknownCpuFeature
from kvmprobe._cpu_decode import decode
from kvmprobe._cpuid import signature_fields
from kvmprobe._cpu_record import CpuRecord, host_entries, read_kvm_cpu, with_host
from kvmprobe._cpuid import CpuidEntry
from kvmprobe._cpuid_insn import open_host_cpuid
from kvmprobe._kvm_structs import IoctlFailure
from kvmprobe.cpuinfo import cpu_of
from kvmprobe.device import KvmDevice
from kvmprobe.presets import load_preset, preset_names
from kvmprobe.snapshot import load_snapshot, snapshot_document
from kvmprobe.testing import FakeBackend, FakeHost, default_backend, fake_cpu_record, fake_kvm, fake_probe_result

INTEL = "GenuineIntel"


def intel(features: List[str], **kwargs: Any) -> kvmprobe.CpuInfo:
    return decode(fake_cpu_record(features, **kwargs), arch="x86_64", source="fake")


# --- decoding ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "eax,expected",
    [
        (0x000806EC, (6, 142, 12)),  # Kaby Lake (Intel SDM: family 6, extended model 8, model E)
        (0x00050657, (6, 85, 7)),  # Cascade Lake
        (0x00A60F12, (25, 97, 2)),  # AMD Zen 4 (family 0xF + 0xA)
        (0x00B00F21, (26, 2, 1)),  # AMD Zen 5, this machine's family in /proc/cpuinfo
        (0x00000F41, (15, 4, 1)),  # Pentium 4: family 0xF, extended family 0
        (0x00000543, (5, 4, 3)),  # Pentium MMX: family 5 ignores the extended model
    ],
)
def test_family_model_stepping_follow_the_kernels_rule(eax: int, expected: Tuple[int, int, int]) -> None:
    assert signature_fields(eax) == expected


def test_a_made_up_host_decodes_to_the_names_it_was_made_of() -> None:
    names = ["sse", "sse2", "pni", "avx2", "avx512f", "sha_ni", "kvm_pv_eoi", "lm", "amx_tile", "xsaves"]
    info = intel(names)
    assert info.features == frozenset(names)
    assert info.vendor == INTEL and (info.family, info.model, info.stepping) == (6, 142, 12)
    assert all(info.has(name) for name in names) and not info.has("avx512bw")
    assert info.has("X86_FEATURE_XMM3") and info.has("sse3") and info.has("SSE4.1") is False


def test_the_recorded_preset_decodes_as_its_raw_bits_say() -> None:
    info = cpu_of(load_preset("pvm-6.18"))
    record = info.record
    assert record is not None and record.cpuid is not None
    leaf1 = next(e for e in record.cpuid if e.leaf == 1)
    # Spot checks by hand against the SDM's leaf 1 bit positions, not through the table.
    assert info.has("cx16") is bool(leaf1.ecx >> 13 & 1)
    assert info.has("pni") is bool(leaf1.ecx & 1)
    assert info.has("sse2") is bool(leaf1.edx >> 26 & 1)
    assert info.readable and info.vendor in ("GenuineIntel", "AuthenticAMD")
    assert info.kvm_backend == "kvm_pvm" and any("PVM" in note for note in info.notes)
    assert info.tsc_khz is not None and info.tsc_khz > 0


def test_host_only_and_kvm_only_leave_out_bits_the_os_sets() -> None:
    info = intel(["sse", "x2apic", "hypervisor"], host_features=["sse", "avx2", "osxsave", "ospke", "constant_tsc"])
    assert info.host_only == {"avx2"}  # osxsave/ospke mirror CR4; constant_tsc is no CPUID bit
    assert info.kvm_only == {"x2apic", "hypervisor"}
    groups = dict((group, (offered, missing)) for group, offered, missing in info.groups())
    assert groups["SIMD"] == (["sse"], ["avx2"])


def test_the_host_side_not_recorded_is_none_not_empty() -> None:
    info = intel(["sse"])
    assert info.host is None and info.host_only == frozenset()
    assert info.decoded_dict()["host_only"] is None


def test_xsave_components_from_the_attribute_else_leaf_0xd() -> None:
    record = fake_cpu_record(["avx512f"], xsave=0x2E7)
    assert decode(record, arch="x86_64", source="x").xsave[-1] == "pkru"
    attr = record._replace(xcomp_guest_supp=0x7)
    info = decode(attr, arch="x86_64", source="x")
    assert info.xsave == ("x87", "sse", "avx") and info.xsave_cpuid_mask == 0x2E7
    host = attr._replace(host_cpuid=(CpuidEntry(0xD, 0, 1, 0x60207, 0, 0, 0),))
    assert decode(host, arch="x86_64", source="x").xsave_lost == ("pkru", "amx_tilecfg", "amx_tiledata")


@pytest.mark.parametrize("vendor,microcode", [("GenuineIntel", 0xF4), ("AuthenticAMD", 0x0A601209)])
def test_feature_msrs_by_name_and_microcode_by_vendor(vendor: str, microcode: int) -> None:
    ucode = 0x000000F4_0A601209  # Intel keeps the revision in the high half, AMD in the low one
    info = intel(["sse"], vendor=vendor, feature_msrs={0x8B: ucode, 0x10A: 0x0C000069, 0xCE: 1 << 31, 0x345: 0})
    assert info.microcode == microcode
    assert info.arch_capabilities == ("rdcl_no", "skip_vmentry_l1dflush", "mds_no", "pschange_mc_no", "gds_no", "rfds_no")
    by_index = {m.msr: m for m in info.feature_msrs}
    assert by_index[0x10A].name == "MSR_IA32_ARCH_CAPABILITIES" and "mds_no" in by_index[0x10A].meaning
    assert by_index[0xCE].meaning.startswith("cpuid_fault")
    assert by_index[0x8B].describe().endswith(f"microcode {microcode:#x}")


def test_a_listed_feature_msr_kvm_could_not_read_says_so() -> None:
    record = fake_cpu_record(["sse"])._replace(feature_msr_indices=(0x10A, 0x8B), feature_msrs=((0x8B, 5),))
    info = decode(record, arch="x86_64", source="x")
    assert [m.describe() for m in info.feature_msrs][0] == "0x10a MSR_IA32_ARCH_CAPABILITIES = not readable"
    assert info.arch_capabilities is None


def test_volatile_fields_do_not_change_the_digest_a_feature_does() -> None:
    def host(apic: int, x2apic: int, extra: Tuple[str, ...] = ()) -> kvmprobe.CpuInfo:
        record = fake_cpu_record(["sse", *extra])
        rows = [e._replace(ebx=e.ebx | apic << 24) if e.leaf == 1 else e for e in record.cpuid or ()]
        rows.append(CpuidEntry(0xB, 0, 1, 1, 2, 0x100, x2apic))
        rows.append(CpuidEntry(0x8000001E, 0, 0, apic, 0x100 + apic, 1, 0))
        return decode(record._replace(cpuid=tuple(reversed(rows))), arch="x86_64", source="x")

    assert host(0, 0).digest() == host(7, 300).digest()
    assert host(0, 0).normalized == host(7, 300).normalized
    assert host(0, 0).digest() != host(0, 0, ("sse2",)).digest()


def test_other_architectures_say_what_is_not_read_yet() -> None:
    for arch in ("aarch64", "riscv64", "s390x"):
        info = decode(None, arch=arch, source="live")
        assert not info.readable and info.notes[0].startswith(f"kvmprobe does not read {arch} CPU data yet")
        assert info.to_dict()["cpuid"] is None


def test_an_x86_host_without_cpu_data_is_not_recorded_never_unsupported() -> None:
    for name in preset_names()[1:]:
        with pytest.raises(NotRecorded, match="CPU data not recorded"):
            cpu_of(load_preset(name))


# --- the reader and the fakes ----------------------------------------------------------------------


def test_failed_queries_are_recorded_with_their_errno() -> None:
    backend = FakeBackend(cpuid=[(0, 0, 0, 1, 0, 0, 0)], fail={"KVM_GET_MSRS": errno.EPERM})
    with KvmDevice.open("/dev/kvm", backend=backend) as kvm:
        record = read_kvm_cpu(kvm)
    failed = {f.ioctl: f.errno for f in record.failed}
    assert failed == {
        "KVM_GET_EMULATED_CPUID": errno.ENOTTY,
        "KVM_GET_MSR_INDEX_LIST": errno.ENOTTY,
        "KVM_GET_MSR_FEATURE_INDEX_LIST": errno.ENOTTY,
        "KVM_GET_DEVICE_ATTR": errno.ENOTTY,
    }
    assert record.cpuid is not None and record.tsc_khz is None  # no VM: the TSC was not asked


def test_without_supported_cpuid_has_refuses_rather_than_saying_no() -> None:
    record = CpuRecord(failed=(IoctlFailure("KVM_GET_SUPPORTED_CPUID", errno.EINVAL),))
    info = decode(record, arch="x86_64", source="old-kernel")
    assert not info.readable and "EINVAL" in info.notes[-1]
    with pytest.raises(NotRecorded, match="EINVAL"):
        info.has("sse")
    with pytest.raises(UnknownCpuFeature, match="did you mean avx512f"):
        info.has("avx513f")


def test_a_recorded_backend_replays_the_preset_through_the_real_reader() -> None:
    preset = load_preset("pvm-6.18")
    assert preset.cpu is not None
    live = kvmprobe.probe(backend=FakeBackend.recorded(preset), vm=True, cpu=True, refresh=True)
    assert live.cpu is not None
    kvm_side = ("cpuid", "emulated_cpuid", "msrs", "feature_msr_indices", "feature_msrs", "xcomp_guest_supp", "tsc_khz",
                "failed")  # fmt: skip
    assert {k: getattr(live.cpu, k) for k in kvm_side} == {k: getattr(preset.cpu, k) for k in kvm_side}
    assert live.cpu.host_cpuid is None  # a fake's host is not this machine


def test_host_entries_stay_within_each_ranges_maximum() -> None:
    asked: List[Tuple[int, int]] = []

    def cpuid(leaf: int, subleaf: int) -> Tuple[int, int, int, int]:
        asked.append((leaf, subleaf))
        return {0: (7, 0, 0, 0), 0x80000000: (0x80000008, 0, 0, 0), 1: (0, 0, 0, 0)}.get(leaf, (leaf, subleaf, 0, 0))

    kvm = (CpuidEntry(0xD, 5, 1, 0, 0, 0, 0), CpuidEntry(0x40000001, 0, 0, 0, 0, 0, 0))
    entries = host_entries(cpuid, kvm)
    leaves = {e.leaf for e in entries}
    assert 7 in leaves and 0xD not in leaves and 0x14 not in leaves  # 0xD and 0x14 are past leaf 0's 7
    assert 0x80000008 in leaves and 0x8000001F not in leaves
    assert not any(leaf >> 28 == 4 for leaf, _ in asked)  # no hypervisor bit: 0x4000xxxx never asked
    assert next(e for e in entries if e.leaf == 7).flags == 1


def test_the_host_side_comes_from_proc_cpuinfo_under_root(tmp_path: Any) -> None:
    root = FakeHost(cpu_flags=("fpu", "sse", "avx2", "vmx")).write(str(tmp_path))
    record = with_host(CpuRecord(), root, machine="aarch64")
    assert record.host_flags == ("fpu", "sse", "avx2", "vmx") and record.host_cpuid is None
    with open_host_cpuid("riscv64") as (function, why):
        assert function is None and "x86 instruction" in why


def test_fake_kvm_gives_a_host_whose_guests_get_avx512f() -> None:
    with fake_kvm("linux-6.1", cpu=fake_cpu_record(["avx512f", "avx2"], host_features=["avx512f", "avx2", "amx_tile"])):
        info = kvmprobe.cpu()
        assert info.has("avx512f") and not info.has("amx_tile") and info.host_only == {"amx_tile"}
        assert kvmprobe.cpu() is info
    with fake_kvm("linux-6.1"), pytest.raises(NotRecorded):
        kvmprobe.cpu()


def test_the_pytest_fixture_takes_cpu_data(fake_kvm: Any) -> None:
    fake_kvm("pvm-6.18", cpu=fake_cpu_record(base=load_preset("pvm-6.18").cpu, add=["avx2"], remove=["cx16"]))
    info = kvmprobe.cpu()
    assert info.has("avx2") and not info.has("cx16") and info.has("sse2")


def test_cpu_is_cached_per_device_and_refreshed_on_demand() -> None:
    backend = FakeBackend(cpuid=[(0, 0, 0, 1, 0, 0, 0), (1, 0, 0, 0x806EC, 0, 0, 1)], tsc_khz=3000000)
    with default_backend(backend):
        first = kvmprobe.cpu()
        assert kvmprobe.cpu() is first and len(backend.opened) == 1
        assert first.tsc_khz == 3000000 and first.has("fpu")
        assert kvmprobe.cpu(refresh=True) is not first and len(backend.opened) == 2
        assert kvmprobe.has("HLT") is False and len(backend.opened) == 2  # probe() reuses the same pass
    assert backend.open_fds == []


# --- recorded: the snapshot's cpu section ---------------------------------------------------------


@pytest.fixture
def with_cpu() -> Iterator[Dict[str, Any]]:
    yield snapshot_document(load_preset("pvm-6.18"))


def test_the_cpu_section_round_trips_exactly(with_cpu: Dict[str, Any]) -> None:
    text = json.dumps(with_cpu)
    again = load_snapshot(json.loads(text))
    assert again.cpu == load_preset("pvm-6.18").cpu
    assert with_cpu["cpu"]["decoded"]["features"] == cpu_of(again).decoded_dict()["features"]
    assert json.dumps(snapshot_document(again)) == text


@pytest.mark.parametrize(
    "path,value,field,words",
    [
        (("cpuid", 0, "eax"), -1, "$.cpu.cpuid[0].eax", "out of range"),
        (("cpuid", 0, "eax"), 2**32, "$.cpu.cpuid[0].eax", "out of range"),
        (("cpuid", 0, "leaf"), 1, "$.cpu.cpuid[0].leaf", "unknown key"),
        (("feature_msrs", 0, "value"), "0x10", "$.cpu.feature_msrs[0].value", "expected an integer"),
        (("failed",), [{"ioctl": "rm -rf", "errno": 1}], "$.cpu.failed[0].ioctl", "not an ioctl name"),
        (("failed",), [{"ioctl": "KVM_X", "errno": 0}], "$.cpu.failed[0].errno", "out of range"),
        (("host_flags",), "sse avx", "$.cpu.host_flags", "expected an array"),
        (("decoded",), [], "$.cpu.decoded", "expected an object"),
        (("tsc",), 1, "$.cpu.tsc", "unknown key"),
    ],
)
def test_a_bad_cpu_section_names_its_field(
    with_cpu: Dict[str, Any], path: Tuple[Any, ...], value: Any, field: str, words: str
) -> None:
    node = with_cpu["cpu"]
    for step in path[:-1]:
        node = node[step]
    if path[-1] == "leaf":
        node["leaf"] = value
    else:
        node[path[-1]] = value
    with pytest.raises(SnapshotError) as info:
        load_snapshot(with_cpu)
    assert field in str(info.value) and words in str(info.value)


def test_a_snapshot_without_cpu_data_loads_as_not_recorded() -> None:
    doc = snapshot_document(fake_probe_result({"HLT": 1}))
    assert doc["cpu"] is None and load_snapshot(doc).cpu is None
    del doc["cpu"]
    assert load_snapshot(doc).cpu is None


def test_presets_carry_cpu_data_only_where_recorded() -> None:
    assert load_preset("pvm-6.18").cpu is not None
    assert all(load_preset(name).cpu is None for name in preset_names()[1:])


def test_failures_in_a_record_survive_the_round_trip() -> None:
    record = fake_cpu_record(["sse"])._replace(failed=(IoctlFailure("KVM_GET_EMULATED_CPUID", errno.ENOTTY),))
    again = load_snapshot(snapshot_document(fake_probe_result({}, cpu=record))).cpu
    assert again is not None and again.failure("KVM_GET_EMULATED_CPUID") == IoctlFailure("KVM_GET_EMULATED_CPUID", 25)


def test_concurrent_first_calls_ask_kvm_once_and_share_one_view() -> None:
    import threading

    backend = FakeBackend(cpuid=[(0, 0, 0, 1, 0, 0, 0), (1, 0, 0, 0x806EC, 0, 0, 1)], tsc_khz=1)
    seen: List[kvmprobe.CpuInfo] = []
    with default_backend(backend):
        threads = [threading.Thread(target=lambda: seen.append(kvmprobe.cpu())) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert len(seen) == 16 and all(info is seen[0] for info in seen)
    assert len(backend.opened) == 1 and backend.open_fds == []
