"""Baselines, verdicts and classes on hosts whose answers are known by construction (runs anywhere).

Each host is a snapshot made here: the real recording of the ``pvm-6.18`` preset, or a made-up
CPU (``fake_cpu_record``), changed in one known way (a feature cleared, APIC IDs moved, an
XSAVE component or an IA32_ARCH_CAPABILITIES bit dropped, the TSC rate moved); what the change
must do to the baseline, to the verdict each way and to the class is written in each test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

from kvmprobe import IncomparableHosts, NotRecorded, SnapshotError, compat
from kvmprobe._cpu_record import CpuRecord
from kvmprobe._cpuid import lookup
from kvmprobe.caps import Cap
from kvmprobe.presets import load_preset
from kvmprobe.probing import ProbeResult
from kvmprobe.snapshot import snapshot_document, write_snapshot
from kvmprobe.testing import fake_cpu_record, fake_probe_result, host_result

REAL = load_preset("pvm-6.18")


def record_of(result: ProbeResult) -> CpuRecord:
    assert result.cpu is not None
    return result.cpu


def without(record: CpuRecord, name: str) -> CpuRecord:
    """``record`` with feature ``name`` cleared in KVM's CPUID (written out here, bit by bit)."""
    row = lookup(name)
    entries = []
    for e in record.cpuid or ():
        if e.leaf == row.leaf and e.subleaf == (row.subleaf or 0):
            e = e._replace(**{row.register: getattr(e, row.register) & ~(1 << row.bit)})
        entries.append(e)
    return record._replace(cpuid=tuple(entries))


def offered(record: CpuRecord) -> List[str]:
    from kvmprobe._cpu_decode import decode

    return sorted(decode(record, arch="x86_64", source="x").features)


def write(tmp_path: Path, name: str, result: ProbeResult) -> str:
    path = str(tmp_path / name)
    write_snapshot(snapshot_document(result), path)
    return path


# --- a feature removed from one host -----------------------------------------------------------


@pytest.mark.parametrize("feature", ["clzero", "gfni", "umip", "cx16", "kvm_pv_eoi"])
def test_one_host_without_a_feature(tmp_path: Path, feature: str) -> None:
    full = record_of(REAL)
    assert feature in offered(full)
    less = without(full, feature)
    a = write(tmp_path, "a.json", host_result(REAL, cpu=full))
    b = write(tmp_path, "b.json", host_result(REAL, cpu=less))

    base = compat.baseline([a, b])
    assert feature not in base.features()
    assert set(base.features()) == set(offered(full)) - {feature}
    assert base.lost_features() == (feature,)
    assert base.alone == ((b, (feature,)),)

    out = compat.compare(a, b)
    assert not out.ok
    assert [(r.kind, r.names) for r in out.reasons] == [("cpuid", (feature,))]
    assert out.reasons[0].source  # every reason cites its rule
    back = compat.compare(b, a)
    assert back.ok, back.reasons
    assert compat.cpu_class(a) != compat.cpu_class(b)


def test_the_baseline_as_guest_moves_both_ways_and_must_fit_its_source(tmp_path: Path) -> None:
    full = record_of(REAL)
    less = without(full, "gfni")
    a = write(tmp_path, "a.json", host_result(REAL, cpu=full))
    b = write(tmp_path, "b.json", host_result(REAL, cpu=less))
    base = compat.baseline([a, b])
    assert compat.compare(a, b, guest=base).ok
    assert compat.compare(b, a, guest=base).ok
    wider = compat.baseline([a])  # offers gfni, which b lacks: no such guest starts on b
    out = compat.compare(b, a, guest=wider)
    assert [(r.kind, r.names) for r in out.reasons] == [("baseline", ("gfni",))]


def test_one_host_is_its_own_baseline(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", REAL)
    base = compat.baseline([a])
    assert set(base.features()) == set(offered(record_of(REAL)))
    assert base.lost_features() == () and base.alone == () and base.hosts == 1


# --- volatile fields: the same class ------------------------------------------------------------


def moved_apic(record: CpuRecord, apic: int) -> CpuRecord:
    """``record`` as seen from another CPU: other initial/x2APIC IDs, other AMD node and core IDs."""
    entries = []
    for e in record.cpuid or ():
        if e.leaf == 1:
            e = e._replace(ebx=(e.ebx & 0x00FFFFFF) | (apic & 0xFF) << 24)
        elif e.leaf in (0xB, 0x1F):
            e = e._replace(edx=apic)
        elif e.leaf == 0x8000001E:
            e = e._replace(eax=apic, ebx=apic >> 1 | 0x100, ecx=apic >> 4)
        entries.append(e)
    if not any(e.leaf == 0xB for e in entries):
        entries.append(entries[0]._replace(leaf=0xB, subleaf=0, flags=1, eax=1, ebx=2, ecx=0x100, edx=apic))
    return record._replace(cpuid=tuple(entries))


@pytest.mark.parametrize("apic", [1, 7, 255, 300])
def test_hosts_differing_only_in_apic_ids_are_one_class(tmp_path: Path, apic: int) -> None:
    full = record_of(REAL)
    here = moved_apic(full, 0)
    there = moved_apic(full, apic)
    assert here.cpuid != there.cpuid  # the raw answers do differ
    a = write(tmp_path, "a.json", host_result(REAL, cpu=here))
    b = write(tmp_path, "b.json", host_result(REAL, cpu=there))
    assert compat.cpu_class(a) == compat.cpu_class(b)
    assert compat.compare(a, b).ok and compat.compare(b, a).ok
    assert compat.baseline([a, b]).lost_features() == ()


def test_the_class_is_the_same_through_a_file_a_result_and_a_record(tmp_path: Path) -> None:
    path = write(tmp_path, "a.json", REAL)
    assert compat.cpu_class(path) == compat.cpu_class(REAL) == compat.cpu_class(record_of(REAL))


def test_same_class_means_no_cpu_reason_either_way() -> None:
    """Hosts built from a few feature sets, with APIC IDs moved: wherever two classes are equal
    the verdict finds no CPU reason either way, and where they differ at least one way does."""
    sets = [["sse2", "avx2"], ["sse2", "avx2", "avx512f"], ["sse2"], ["sse2", "avx2"]]
    hosts = [fake_probe_result({}, cpu=moved_apic(fake_cpu_record(f, xsave=0x7), i + 1)) for i, f in enumerate(sets)]
    for a in hosts:
        for b in hosts:
            same = compat.cpu_class(a) == compat.cpu_class(b)
            both = compat.compare(a, b).ok and compat.compare(b, a).ok
            assert same == both, (a.cpu, b.cpu)


# --- each kind of reason ------------------------------------------------------------------------


def verdict(a: CpuRecord, b: CpuRecord, **kwargs: Any) -> compat.Compat:
    return compat.compare(fake_probe_result({}, cpu=a), fake_probe_result({}, cpu=b), **kwargs)


def test_a_vendor_change_is_a_reason() -> None:
    out = verdict(fake_cpu_record(["sse2"]), fake_cpu_record(["sse2"], vendor="AuthenticAMD"))
    assert [r.kind for r in out.reasons] == ["vendor"]
    assert "GenuineIntel -> AuthenticAMD" in out.reasons[0].describe()


def test_lost_xsave_components_are_named() -> None:
    out = verdict(fake_cpu_record(["avx512f"], xsave=0xE7), fake_cpu_record(["avx512f"], xsave=0x7))
    assert [(r.kind, r.names) for r in out.reasons] == [("xsave", ("opmask", "zmm_hi256", "hi16_zmm"))]
    assert verdict(fake_cpu_record(["avx512f"], xsave=0x7), fake_cpu_record(["avx512f"], xsave=0xE7)).ok


def test_the_highest_leaf_7_subleaf_may_not_shrink() -> None:
    def leaf7(top: int) -> CpuRecord:
        record = fake_cpu_record(["avx2"])
        return record._replace(cpuid=tuple(e._replace(eax=top) if e.leaf == 7 else e for e in record.cpuid or ()))

    out = verdict(leaf7(2), leaf7(1))
    assert len(out.reasons) == 1 and "2 on SOURCE, 1 on DEST" in out.reasons[0].detail
    assert "cloud-hypervisor@v53.0 arch/src/x86_64/mod.rs:399-404" in out.reasons[0].source
    assert verdict(leaf7(1), leaf7(2)).ok


MDS_NO, RSBA, FB_CLEAR, NOT_AFFECTED = 1 << 5, 1 << 2, 1 << 17, (1 << 5) | (1 << 8) | (1 << 13) | (1 << 14) | (1 << 15)


@pytest.mark.parametrize(
    ("source", "dest", "names"),
    [
        (MDS_NO | 1, 1, ("mds_no",)),  # a mitigation-not-needed bit lost
        (1, 1 | RSBA, ("+rsba (appears on DEST)",)),  # RSBA appears: the guest was told otherwise
        (1 | RSBA, 1, ()),  # RSBA gone: fine
        (FB_CLEAR | NOT_AFFECTED, NOT_AFFECTED, ()),  # FB_CLEAR lost where it does not matter
        (FB_CLEAR | 1, 1, ("fb_clear",)),
    ],
)
def test_arch_capabilities_by_cloud_hypervisors_rule(source: int, dest: int, names: tuple) -> None:  # type: ignore[type-arg]
    out = verdict(fake_cpu_record(["sse2"], feature_msrs={0x10A: source}),
                  fake_cpu_record(["sse2"], feature_msrs={0x10A: dest}))  # fmt: skip
    assert [r.names for r in out.reasons] == ([names] if names else [])
    if names:
        assert out.reasons[0].source.endswith("arch_capabilities_checks.rs:57-137")


# --- TSC -----------------------------------------------------------------------------------------


def tsc_hosts(a: int, b: int, scaling: bool) -> Dict[str, ProbeResult]:
    caps: Dict[Any, int] = {Cap.TSC_CONTROL: 1 if scaling else 0, Cap.GET_TSC_KHZ: 1}
    return {"a": fake_probe_result(caps, cpu=fake_cpu_record(["sse2"], tsc_khz=a)),
            "b": fake_probe_result(caps, cpu=fake_cpu_record(["sse2"], tsc_khz=b))}  # fmt: skip


def test_a_tsc_rate_outside_the_tolerance_needs_tsc_scaling_on_dest() -> None:
    hosts = tsc_hosts(2_600_000, 2_000_000, scaling=False)
    out = compat.compare(hosts["a"], hosts["b"])
    assert [r.kind for r in out.reasons] == ["tsc"] and "KVM_CAP_TSC_CONTROL" in out.reasons[0].describe()
    scaled = tsc_hosts(2_600_000, 2_000_000, scaling=True)
    assert compat.compare(scaled["a"], scaled["b"]).ok
    near = tsc_hosts(2_600_000, 2_600_500, scaling=False)  # 192 ppm
    assert compat.compare(near["a"], near["b"]).ok


def test_the_tolerance_counts_from_the_rate_each_vmm_counts_from() -> None:
    # 250 kHz apart: 250 ppm of 1,000,000 kHz (within), 250.06 ppm of 999,750 kHz (not).
    hosts = tsc_hosts(1_000_000, 999_750, scaling=False)
    firecracker = compat.compare(hosts["a"], hosts["b"], vmm="firecracker", purpose="restore")
    qemu = compat.compare(hosts["a"], hosts["b"], vmm="qemu")
    assert not any(r.kind == "tsc" for r in firecracker.reasons)  # of the snapshot's (SOURCE's) rate
    assert [r.kind for r in qemu.reasons if r.kind == "tsc"] == ["tsc"]  # of DEST's
    assert "kvm.c:867-942" in next(r for r in qemu.reasons if r.kind == "tsc").source


def test_a_tsc_rate_not_recorded_is_a_note_not_a_reason() -> None:
    out = verdict(fake_cpu_record(["sse2"], tsc_khz=2_600_000), fake_cpu_record(["sse2"]))
    assert out.ok and any("not recorded on DEST" in note for note in out.notes)


# --- VMM restore and migration paths -------------------------------------------------------------


def everything(**off: int) -> Dict[Any, int]:
    caps: Dict[Any, int] = {cap: 1 for cap in Cap}
    caps.update(off)
    return caps


def test_cloud_hypervisor_needs_nested_state_on_dest_to_restore() -> None:
    cpu = fake_cpu_record(["sse2"])
    a = fake_probe_result(everything(), cpu=cpu)
    b = fake_probe_result(everything(NESTED_STATE=0), cpu=cpu)
    out = compat.compare(a, b, vmm="cloud-hypervisor", purpose="restore")
    assert [(r.kind, r.what) for r in out.reasons] == [("vmm", "KVM_CAP_NESTED_STATE")]
    assert "cloud-hypervisor/cloud-hypervisor@" in out.reasons[0].source
    assert compat.compare(a, b).ok  # without a VMM nothing asks for it


def test_firecracker_needs_get_tsc_khz_on_dest_when_the_snapshot_has_a_rate() -> None:
    a = fake_probe_result(everything(), cpu=fake_cpu_record(["sse2"], tsc_khz=2_600_000))
    b = fake_probe_result(everything(GET_TSC_KHZ=0), cpu=fake_cpu_record(["sse2"], tsc_khz=2_600_000))
    out = compat.compare(a, b, vmm="firecracker", purpose="restore")
    assert [r.what for r in out.reasons] == ["KVM_CAP_GET_TSC_KHZ"]
    no_rate = fake_probe_result(everything(), cpu=fake_cpu_record(["sse2"]))
    assert not any(r.what == "KVM_CAP_GET_TSC_KHZ" for r in compat.compare(no_rate, b, vmm="firecracker",
                                                                         purpose="restore").reasons)  # fmt: skip


def test_a_vmm_that_cannot_run_on_dest_is_a_reason() -> None:
    cpu = fake_cpu_record(["sse2"])
    out = compat.compare(fake_probe_result(everything(), cpu=cpu), fake_probe_result(everything(IMMEDIATE_EXIT=0), cpu=cpu),
                         vmm="cloud-hypervisor")  # fmt: skip
    assert [r.kind for r in out.reasons] == ["vmm"] and "KVM_CAP_IMMEDIATE_EXIT" in out.reasons[0].detail


def test_firecracker_does_not_migrate_live() -> None:
    cpu = fake_cpu_record(["sse2"])
    with pytest.raises(IncomparableHosts, match="no live migration"):
        compat.compare(fake_probe_result({}, cpu=cpu), fake_probe_result({}, cpu=cpu), vmm="firecracker")


# --- bad input ----------------------------------------------------------------------------------


def test_a_host_without_cpu_data_is_not_recorded_naming_the_file(tmp_path: Path) -> None:
    good = write(tmp_path, "good.json", REAL)
    bare = write(tmp_path, "bare.json", fake_probe_result({Cap.IRQCHIP: 1}))
    for call in (lambda: compat.baseline([good, bare]), lambda: compat.compare(good, bare), lambda: compat.fleet([bare])):
        with pytest.raises(NotRecorded) as caught:
            call()
        assert caught.value.source == bare and "CPU data not recorded" in str(caught.value)


def test_hosts_of_two_architectures_cannot_be_compared(tmp_path: Path) -> None:
    x86 = write(tmp_path, "x86.json", REAL)
    arm = write(tmp_path, "arm.json", fake_probe_result({}, arch="aarch64"))
    for call in (lambda: compat.baseline([x86, arm]), lambda: compat.compare(x86, arm)):
        with pytest.raises(IncomparableHosts, match="different architectures.*x86_64.*aarch64"):
            call()


def test_a_fleet_reads_directories_and_refuses_an_empty_one(tmp_path: Path) -> None:
    (tmp_path / "hosts").mkdir()
    with pytest.raises(SnapshotError, match="no snapshot"):
        compat.baseline([str(tmp_path / "hosts")])
    for i in range(3):
        write(tmp_path / "hosts", f"h{i}.json", REAL)
    (tmp_path / "hosts" / "README.txt").write_text("not a snapshot")
    assert compat.baseline([str(tmp_path / "hosts")]).hosts == 3


def test_the_fast_reader_is_as_strict_as_load_snapshot_on_what_it_reads(tmp_path: Path) -> None:
    document = snapshot_document(REAL)
    cases: List[Callable[[Dict[str, Any]], None]] = [
        lambda d: d["cpu"]["cpuid"][3].update(eax="7"),
        lambda d: d["cpu"]["cpuid"][3].update(eax=2**32),
        lambda d: d["cpu"].update(tsc_khz=-1),
        lambda d: d["cpu"].update(nonsense=1),
        lambda d: d.update(schema="other"),
    ]
    for i, change in enumerate(cases):
        bad = json.loads(json.dumps(document))
        change(bad)
        path = tmp_path / f"bad{i}.json"
        path.write_text(json.dumps(bad))
        with pytest.raises(SnapshotError) as fast:
            compat.baseline([str(path)])
        with pytest.raises(SnapshotError) as full:
            compat.compare(str(path), str(path))
        assert str(fast.value) == str(full.value)
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps(document).replace('"tsc_khz":', '"tsc_khz": 1, "tsc_khz":', 1))
    with pytest.raises(SnapshotError, match="appears twice"):
        compat.baseline([str(twice)])


# --- the baseline document ----------------------------------------------------------------------


def test_a_baseline_document_reads_back(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", REAL)
    b = write(tmp_path, "b.json", host_result(REAL, cpu=without(record_of(REAL), "clwb")))
    base = compat.baseline([a, b])
    path = tmp_path / "base.json"
    path.write_text(json.dumps(base.to_dict()))
    again = compat.load_baseline(str(path))
    assert again.features() == base.features() and again.rules == base.rules and again.xsave == base.xsave
    doc = base.to_dict()
    doc["rules"] = doc["rules"][:-1]
    path.write_text(json.dumps(doc))
    with pytest.raises(SnapshotError, match="rules"):
        compat.load_baseline(str(path))


def test_alone_names_only_the_hosts_that_alone_lack_something() -> None:
    sets = {"h1": ["sse2", "avx2", "bmi1"], "h2": ["sse2", "avx2"], "h3": ["sse2", "bmi1"], "h4": ["sse2", "bmi1"]}
    hosts = [fake_probe_result({}, source=name, cpu=fake_cpu_record(f)) for name, f in sets.items()]
    base = compat.baseline(hosts)
    # bmi1: only h2 lacks it; avx2: h3 and h4 lack it, so no one host keeps it out.
    assert base.alone == (("h2", ("bmi1",)),)
    assert set(base.lost_features()) == {"avx2", "bmi1"}

