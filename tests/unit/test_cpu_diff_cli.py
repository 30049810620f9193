"""``diff`` on CPU data, and the ``kvmprobe cpu`` command: output, JSON, --has, bad input."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import List, Tuple


from kvmprobe import diff_hosts
from kvmprobe._cli import main
from kvmprobe._cpuid import CpuidEntry
from kvmprobe._cpu_diff import CpuChange
from kvmprobe.presets import load_preset
from kvmprobe.snapshot import snapshot_document, write_snapshot
from kvmprobe.testing import FakeBackend, fake_cpu_record, fake_probe_result, host_result


def run(*argv: str, backend: object = None) -> Tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv), backend=backend)  # type: ignore[arg-type]
    return code, out.getvalue(), err.getvalue()


def described(changes: Tuple[CpuChange, ...], kind: str) -> List[str]:
    return [c.describe() for c in changes if c.kind == kind]


# --- diff ----------------------------------------------------------------------------------------


def test_diff_names_features_xsave_msrs_and_tsc() -> None:
    a = fake_cpu_record(["avx512f", "avx2", "sse"], xsave=0x2E7, tsc_khz=2_600_000, msrs=[0x10, 0x174],
                        feature_msrs={0x10A: 0x0C000069, 0x8B: 0xF4_00000000})  # fmt: skip
    b = fake_cpu_record(["avx2", "sse", "amx_tile"], xsave=0x7, tsc_khz=3_000_000, msrs=[0x10],
                        feature_msrs={0x10A: 0x0C000061, 0x8B: 0xF6_00000000})  # fmt: skip
    d = diff_hosts(fake_probe_result({}, cpu=a), fake_probe_result({}, cpu=b))
    assert not d.equal
    assert described(d.cpu, "feature") == ["avx512f: offered on A, not on B", "amx_tile: offered on B, not on A"]
    assert described(d.cpu, "xsave") == [f"XSAVE component {c}: usable on A, not on B"
                                         for c in ("opmask", "zmm_hi256", "hi16_zmm", "pkru")]  # fmt: skip
    assert described(d.cpu, "feature_msr") == [
        "MSR_IA32_UCODE_REV (0x8b): 0xf400000000 -> 0xf600000000",
        "MSR_IA32_ARCH_CAPABILITIES (0x10a): 0xc000069 -> 0xc000061 (-skip_vmentry_l1dflush)",
    ]
    assert described(d.cpu, "msr") == ["MSR 0x174 (KVM_GET_MSR_INDEX_LIST): listed on A, not on B"]
    assert described(d.cpu, "tsc")[0].startswith("TSC rate (kHz): 0x27ac40 -> 0x2dc6c0 (153846 ppm")
    doc = d.to_dict()
    assert doc["schema_version"] == 2 and {c["kind"] for c in doc["cpu"]} >= {"feature", "xsave", "tsc"}


def test_diff_of_hosts_that_differ_only_in_volatile_fields_is_equal() -> None:
    base = fake_cpu_record(["sse", "x2apic"], tsc_khz=2_600_000)
    def moved(apic: int) -> object:
        rows = [e._replace(ebx=e.ebx | apic << 24) if e.leaf == 1 else e for e in base.cpuid or ()]
        rows.append(CpuidEntry(0xB, 0, 1, 1, 2, 0x100, apic))
        return fake_probe_result({}, cpu=base._replace(cpuid=tuple(rows), tsc_khz=2_600_000 + apic))

    d = diff_hosts(moved(3), moved(200))  # type: ignore[arg-type]
    assert d.equal, [c.describe() for c in d.cpu]
    assert any("within the 250 ppm" in note for note in d.notes)


def test_diff_names_cpuid_bits_no_feature_covers_and_the_model() -> None:
    def host(signature: int, phys_bits: int) -> object:
        record = fake_cpu_record(["sse", "lm"], signature=signature)
        extra = CpuidEntry(0x80000008, 0, 0, 0x3000 | phys_bits, 0, 0, 0)  # EAX[7:0]: physical address bits
        return fake_probe_result({}, cpu=record._replace(cpuid=(record.cpuid or ()) + (extra,)))

    d = diff_hosts(host(0x000806EC, 0x30), host(0x00050657, 0x2E))  # type: ignore[arg-type]
    assert described(d.cpu, "model") == [
        "CPU model: GenuineIntel family 6 model 142 stepping 12 -> GenuineIntel family 6 model 85 stepping 7"]
    assert "CPUID 0x80000008.0 eax (bits no feature name covers): 0x3030 -> 0x302e" in described(d.cpu, "cpuid")


def test_diff_with_cpu_data_on_one_side_notes_it() -> None:
    d = diff_hosts(load_preset("pvm-6.18"), load_preset("linux-6.1"))
    assert d.cpu == () and "CPU data: only A recorded it; not compared" in d.notes


def test_diff_cli_prints_the_cpu_section(tmp_path: Path) -> None:
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    pvm = load_preset("pvm-6.18")
    write_snapshot(snapshot_document(pvm), str(a))
    more = fake_cpu_record(base=pvm.cpu, add=["avx512f"])
    write_snapshot(snapshot_document(host_result(pvm, cpu=more)), str(b))
    code, out, _ = run("diff", str(a), str(b))
    assert code == 1
    assert "CPU a guest gets changed (after the volatile fields are cleared): 1" in out
    assert "  ~ avx512f: offered on B, not on A" in out


# --- kvmprobe cpu ------------------------------------------------------------------------------------


def test_cpu_on_the_recorded_preset_is_grouped_and_short() -> None:
    code, out, err = run("cpu", "--snapshot", "preset:pvm-6.18")
    assert code == 0 and err == ""
    assert out.startswith("CPU a guest gets from KVM: preset:pvm-6.18 (Linux 6.18")
    assert "\n  SIMD" in out and "\n  KVM paravirtual" in out and "Feature MSRs" in out
    assert "TSC rate of a new vCPU (KVM_GET_TSC_KHZ): " in out and "note: this /dev/kvm is PVM" in out
    assert max(len(line) for line in out.splitlines()) <= 110


def test_cpu_json_is_the_documented_shape() -> None:
    code, out, _ = run("cpu", "--json", "--snapshot", "preset:pvm-6.18")
    doc = json.loads(out)
    assert code == 0 and doc["schema"] == "kvmprobe-cpu" and doc["schema_version"] == 1
    for key in ("cpuid", "features", "host_only", "msrs", "feature_msrs", "emulated", "xsave", "tsc_khz", "failed"):
        assert key in doc
    preset = load_preset("pvm-6.18").cpu
    assert preset is not None and preset.cpuid is not None
    assert [tuple(row.values()) for row in doc["cpuid"]] == [tuple(e) for e in preset.cpuid]
    assert list(doc["cpuid"][0]) == ["function", "index", "flags", "eax", "ebx", "ecx", "edx"]
    assert all(isinstance(m["value"], int) and m["hex"] == hex(m["value"]) for m in doc["feature_msrs"])


def test_cpu_has_exits_by_the_convention() -> None:
    backend = FakeBackend.recorded(host_result("linux-6.1", cpu=fake_cpu_record(["avx2", "clwb"], host_features=["avx512f"])))
    code, out, _ = run("cpu", "--has", "avx2", "clwb", backend=backend)
    assert (code, out) == (0, "avx2: yes\nclwb: yes\n")
    code, out, err = run("cpu", "--has", "avx2", "avx512f", backend=backend)
    assert code == 1 and "avx512f: missing" in out and "a guest does not get: avx512f" in err
    fresh = FakeBackend()
    code, out, err = run("cpu", "--has", "avx2", "avx513f", backend=fresh)
    assert code == 2 and out == "" and err.startswith("kvmprobe: error: unknown CPU feature 'avx513f'")
    assert "did you mean avx512f" in err and len(err.splitlines()) == 1
    assert fresh.opened == []  # the bad name failed before KVM was opened
    code, out, _ = run("cpu", "--has", "sse3", "-q", backend=backend)
    assert (code, out) == (1, "")


def test_cpu_on_a_snapshot_without_cpu_data_is_not_recorded_exit_2(tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    write_snapshot(snapshot_document(fake_probe_result({"HLT": 1})), str(old))
    for spec in (str(old), "preset:linux-4.14"):
        code, out, err = run("cpu", "--snapshot", spec)
        assert code == 2 and out == "" and "CPU data not recorded" in err and "unsupported" not in err
        assert len(err.splitlines()) == 1


def test_cpu_on_another_architecture_says_what_it_does_not_read(tmp_path: Path) -> None:
    arm = tmp_path / "arm.json"
    write_snapshot(snapshot_document(fake_probe_result({"ARM_SVE": 1}, arch="aarch64")), str(arm))
    code, out, err = run("cpu", "--snapshot", str(arm))
    assert code == 0 and err == ""
    assert "kvmprobe does not read aarch64 CPU data yet: the guest's ID registers" in out
    code, out, err = run("cpu", "--has", "avx2", "--snapshot", str(arm))
    assert code == 2 and "does not read aarch64" in err


def test_cpu_on_a_kernel_without_the_cpu_ioctls_records_each_failure() -> None:
    code, out, err = run("cpu", backend=FakeBackend({"HLT": 1}))
    assert code == 0
    assert "not answered: KVM_GET_SUPPORTED_CPUID: ENOTTY" in out and "not answered: KVM_GET_TSC_KHZ: ENOTTY" in out
    code, _, err = run("cpu", "--has", "sse", backend=FakeBackend({"HLT": 1}))
    assert code == 2 and "KVM_GET_SUPPORTED_CPUID: ENOTTY" in err
