"""``kvmprobe baseline``, ``compat`` and ``fleet`` through the CLI, on a real recording.

The hosts are the ``pvm-6.18`` preset (this development machine, recorded) written out as a
snapshot file, and copies of it changed in one known way; the expected verdicts and exit codes
follow from the change. Bad input gives one line on stderr, exit 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest

from kvmprobe import compat
from kvmprobe._cli import main
from kvmprobe._cpuid import lookup
from kvmprobe._fc_template import parse_template
from kvmprobe.presets import load_preset
from kvmprobe.snapshot import snapshot_document
from kvmprobe.testing import fake_probe_result


def run(*argv: str) -> Tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def drop(document: Dict[str, Any], name: str) -> Dict[str, Any]:
    """A copy of a snapshot document whose KVM CPUID lacks feature ``name``."""
    row = lookup(name)
    copy: Dict[str, Any] = json.loads(json.dumps(document))
    for entry in copy["cpu"]["cpuid"]:
        if entry["function"] == row.leaf and entry["index"] == (row.subleaf or 0):
            assert entry[row.register] >> row.bit & 1, f"{name} is offered in the recording"
            entry[row.register] &= ~(1 << row.bit)
    return copy


@pytest.fixture
def hosts(tmp_path: Path) -> Dict[str, str]:
    document = snapshot_document(load_preset("pvm-6.18"))
    paths = {"full": tmp_path / "full.json", "less": tmp_path / "less.json"}
    paths["full"].write_text(json.dumps(document))
    paths["less"].write_text(json.dumps(drop(document, "clflushopt")))
    return {key: str(path) for key, path in paths.items()}


def test_compat_one_way_no_the_other_yes(hosts: Dict[str, str]) -> None:
    code, out, err = run("compat", hosts["full"], hosts["less"])
    assert code == 1 and err == ""
    assert "no: a guest started on SOURCE cannot migrate to DEST (1 reason):" in out
    assert re.search(r"^  - CPUID features DEST lacks: clflushopt \(CPUID 0x7\.0 ebx; cloud-hypervisor/cloud-hypervisor@v53\.0 "
                     r"arch/src/x86_64/mod\.rs:405-410\)$", out, re.M), out  # fmt: skip
    code, out, _ = run("compat", hosts["less"], hosts["full"])
    assert code == 0 and "yes: a guest started on SOURCE can migrate to DEST" in out
    code, out, _ = run("compat", hosts["full"], hosts["less"], "--json")
    doc = json.loads(out)
    assert (code, doc["schema"], doc["ok"], doc["reasons"][0]["names"]) == (1, "kvmprobe-compat", False, ["clflushopt"])


def test_compat_with_each_vmm(hosts: Dict[str, str]) -> None:
    for vmm, purpose in (("qemu", "migrate"), ("firecracker", "restore")):
        code, out, _ = run("compat", hosts["full"], hosts["less"], "--vmm", vmm, "--for", purpose)
        assert code == 1 and f"{purpose}, with {vmm}" in out
        code, out, _ = run("compat", hosts["less"], hosts["full"], "--vmm", vmm)
        assert code == 0, out
    # This PVM host answers 0 to KVM_CAP_NESTED_STATE, and Cloud Hypervisor (v49.0 on) saves and
    # restores the nested state of every vCPU without asking: no snapshot or migration either way.
    for a, b in (("full", "less"), ("less", "full")):
        code, out, _ = run("compat", hosts[a], hosts[b], "--vmm", "cloud-hypervisor")
        assert code == 1 and "Cloud Hypervisor needs KVM_CAP_NESTED_STATE for a snapshot or live migration" in out
    code, out, err = run("compat", hosts["full"], hosts["less"], "--vmm", "firecracker", "--for", "migrate")
    assert (code, out) == (2, "") and err.count("\n") == 1 and "Firecracker has no live migration" in err


def test_baseline_formats(hosts: Dict[str, str], tmp_path: Path) -> None:
    code, out, _ = run("baseline", hosts["full"], hosts["less"])
    assert code == 0 and "Lost (some hosts offer):  clflushopt" in out
    assert re.search(rf"^  {re.escape(hosts['less'])}: +clflushopt$", out, re.M), out
    code, out, _ = run("baseline", "--format", "firecracker", hosts["full"], hosts["less"])
    template = parse_template(json.loads(out))
    assert code == 0 and [(m.leaf, m.subleaf) for m in template.cpuid_modifiers] == [(7, 0)]
    assert re.findall(r'"bitmap": "(0b[01x]+)"', out) == ["0bxxxxxxxx0xxxxxxxxxxxxxxxxxxxxxxx"]
    code, out, err = run("baseline", "--format", "qemu", hosts["full"], hosts["less"])
    assert code == 0 and out.startswith("-cpu host,migratable=on,-clflushopt") and "closest named model" in err
    target = tmp_path / "base.json"
    code, out, _ = run("baseline", "--format", "json", "-o", str(target), hosts["full"], hosts["less"])
    assert (code, out) == (0, "") and json.loads(target.read_text())["lost"] == ["clflushopt"]
    code, out, _ = run("compat", hosts["full"], hosts["less"], "--baseline", str(target))
    assert code == 0 and "guest:  the baseline of 2 hosts" in out
    code, _, err = run("baseline", "--format", "json", "--qemu-version", "7.2", hosts["full"])
    assert code == 2 and "applies to --format qemu only" in err


def test_fleet_summary(hosts: Dict[str, str], tmp_path: Path) -> None:
    fleet_dir = tmp_path / "fleet"
    fleet_dir.mkdir()
    for i in range(3):
        (fleet_dir / f"h{i}.json").write_text(Path(hosts["full" if i else "less"]).read_text())
    code, out, _ = run("fleet", str(fleet_dir))
    assert code == 0 and out.startswith("3 hosts (x86_64), 2 CPU classes:")
    classes = re.findall(r"^  ([0-9a-f]{12})  (\d) host", out, re.M)
    assert [n for _, n in classes] == ["2", "1"]
    assert classes[0][0] == compat.cpu_class(hosts["full"]) and classes[1][0] == compat.cpu_class(hosts["less"])
    assert re.search(r"^  firecracker +3 of 3$", out, re.M)
    code, out, _ = run("fleet", "--json", str(fleet_dir))
    assert json.loads(out)["classes"][0]["hosts"] == 2


def test_cpu_json_carries_the_class(hosts: Dict[str, str]) -> None:
    code, out, _ = run("cpu", "--json", "--snapshot", hosts["full"])
    assert code == 0 and json.loads(out)["cpu_class"] == compat.cpu_class(hosts["full"])


def test_export_labels_the_class_and_the_features(hosts: Dict[str, str]) -> None:
    code, out, _ = run("export", "--format", "nfd", "--snapshot", hosts["full"])
    assert code == 0 and f"kvmprobe.io/kvm.cpu-class={compat.cpu_class(hosts['full'])}" in out.splitlines()
    lines = out.splitlines()
    assert "kvmprobe.io/kvm.cpu.sse2=true" in lines and "kvmprobe.io/kvm.cpu-vendor=AuthenticAMD" in lines
    hidden = lines.index("kvmprobe.io/kvm.cpu.kvm_pv_eoi=true")
    assert lines[hidden - 1] == "# +no-label" and lines[lines.index("kvmprobe.io/kvm.cpu.sse2=true") - 1] != "# +no-label"
    assert len(out.encode()) < 65536
    code, out, _ = run("export", "--format", "prometheus", "--snapshot", hosts["full"])
    assert f'kvm_cpu_info{{class="{compat.cpu_class(hosts["full"])}",vendor="AuthenticAMD",signature="0x00b00f21"}} 1' in out
    code, out, _ = run("export", "--format", "nfd", "--cpu", "class", "--snapshot", hosts["full"])
    assert [line.split("=")[0] for line in out.splitlines() if "kvm.cpu" in line] == [
        "kvmprobe.io/kvm.cpu-class", "kvmprobe.io/kvm.cpu-vendor"]
    for fmt in ("nfd", "prometheus"):
        code, out, _ = run("export", "--format", fmt, "--cpu", "none", "--snapshot", hosts["full"])
        assert code == 0 and "kvm.cpu" not in out and "kvm_cpu_info" not in out, out


# --- bad input: one line, exit 2 -----------------------------------------------------------------


def one_error_line(code: int, out: str, err: str) -> str:
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("kvmprobe: error: "), (code, out, err)
    assert "Traceback" not in err
    return err


def test_a_single_snapshot_is_its_own_baseline(hosts: Dict[str, str]) -> None:
    code, out, _ = run("baseline", hosts["full"])
    assert code == 0 and out.startswith("Baseline of 1 host (x86_64, AuthenticAMD): 66 features")


def test_a_snapshot_without_cpu_data(hosts: Dict[str, str], tmp_path: Path) -> None:
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(snapshot_document(fake_probe_result({"IRQCHIP": 1}))))
    for argv in (("baseline", hosts["full"], str(bare)), ("compat", hosts["full"], str(bare)), ("fleet", str(bare))):
        err = one_error_line(*run(*argv))
        assert f"{bare}: CPU data not recorded" in err


def test_hosts_of_different_architectures(hosts: Dict[str, str], tmp_path: Path) -> None:
    arm = tmp_path / "arm.json"
    arm.write_text(json.dumps(snapshot_document(fake_probe_result({"IRQCHIP": 1}, arch="aarch64"))))
    for argv in (("baseline", hosts["full"], str(arm)), ("compat", str(arm), hosts["full"]), ("fleet", hosts["full"], str(arm))):
        err = one_error_line(*run(*argv))
        assert "hosts of different architectures" in err and "aarch64" in err and "x86_64" in err


def test_other_bad_input(hosts: Dict[str, str], tmp_path: Path) -> None:
    one_error_line(*run("compat", hosts["full"], str(tmp_path / "missing.json")))
    err = one_error_line(*run("compat", hosts["full"], hosts["less"], "--vmm", "crosvm"))
    assert "firecracker, cloud-hypervisor, qemu" in err
    one_error_line(*run("compat", hosts["full"], hosts["less"], "--vmm", "nosuch"))
    one_error_line(*run("baseline", "--format", "qemu", "--qemu-version", "6.0", hosts["full"]))
    one_error_line(*run("compat", hosts["full"], hosts["less"], "--baseline", hosts["full"]))
    (tmp_path / "empty").mkdir()
    assert "no snapshot" in one_error_line(*run("fleet", str(tmp_path / "empty")))
    bad = tmp_path / "bad.json"
    bad.write_text(Path(hosts["full"]).read_text().replace('"cpuid": [', '"cpuid": [7, ', 1))
    assert "$.cpu.cpuid[0]" in one_error_line(*run("baseline", str(bad)))


def test_vendors_that_differ_exit_1_and_say_so(hosts: Dict[str, str], tmp_path: Path) -> None:
    intel = json.loads(Path(hosts["full"]).read_text())
    leaf0 = next(e for e in intel["cpu"]["cpuid"] if e["function"] == 0)
    leaf0.update(ebx=0x756E6547, edx=0x49656E69, ecx=0x6C65746E)  # "GenuineIntel"
    path = tmp_path / "intel.json"
    path.write_text(json.dumps(intel))
    code, out, err = run("baseline", hosts["full"], str(path))
    assert code == 1 and "the hosts' CPU vendors differ (AuthenticAMD: 1 host, GenuineIntel: 1 host)" in err
    code, out, _ = run("compat", hosts["full"], str(path))
    assert code == 1 and "the CPU vendor changes: AuthenticAMD -> GenuineIntel" in out
