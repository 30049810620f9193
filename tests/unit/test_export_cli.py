"""``kvmprobe export``: in-process over fakes and recorded hosts, and as a process for the exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kvmprobe import Cap, HostFacts
from kvmprobe._cli import main
from kvmprobe.caps import CapLike
from kvmprobe.export import DEFAULT_PREFIX
from kvmprobe.presets import load_preset
from kvmprobe.profiles import check_vmm, vmm_names
from kvmprobe.snapshot import snapshot_document, write_snapshot
from kvmprobe.testing import fake_kvm, fake_probe_result

from _k8s import k8s_key_ok, k8s_value_ok  # noqa: I001 (the test's own label rules)

VALUES: Dict[CapLike, int] = {"IMMEDIATE_EXIT": 1, "NR_MEMSLOTS": 32764, "MAX_VCPUS": 1024, "XSAVE": 1}


def run(argv: List[str], capsys: pytest.CaptureFixture[str]) -> Tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def labels_of(text: str) -> Dict[str, str]:
    labels: Dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            assert k8s_key_ok(key) and k8s_value_ok(value), line
            labels[key] = value
    return labels


def samples_of(text: str) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def key(name: str) -> str:
    return f"{DEFAULT_PREFIX}/{name}"


def test_nfd_to_stdout_from_the_probe(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_kvm(VALUES) as host:
        code, out, err = run(["export", "--format", "nfd"], capsys)
    assert code == 0 and err == ""
    labels = labels_of(out)
    assert labels[key("kvm.usable")] == "true" and labels[key("kvm.api-version")] == "12"
    caps = {k: v for k, v in labels.items() if "/kvm.cap." in k}
    assert caps == {key(f"kvm.cap.{Cap.lookup(n).name.lower()}"): str(v) for n, v in VALUES.items()}
    for name in vmm_names(host.arch):
        assert labels[key(f"vmm.{name}.ready")] == ("true" if check_vmm(name, host).ready else "false")


def test_prometheus_to_a_file_replaces_it_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "kvmprobe.prom"
    target.write_text("x" * 100_000)
    with fake_kvm(VALUES):
        code, out, err = run(["export", "--format", "prometheus", "-o", str(target)], capsys)
    assert (code, out, err) == (0, "", "")
    samples = samples_of(target.read_text())
    for cap in Cap:
        expected = fake_probe_result(VALUES).values[cap]
        assert samples[("kvm_capability", (("name", cap.c_name), ("number", str(int(cap)))))] == expected
    assert samples[("kvm_usable", ())] == 1 and samples[("kvm_api_version", ())] == 12
    assert target.stat().st_mode & 0o777 == 0o644
    assert sorted(os.listdir(tmp_path)) == ["kvmprobe.prom"]


def test_dash_means_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_kvm(VALUES):
        code, out, _ = run(["export", "--format", "prometheus", "-o", "-", "--caps", "none"], capsys)
    assert code == 0 and "kvm_usable 1" in out and "kvm_capability{" not in out


def test_recorded_host_with_facts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    facts = HostFacts("Linux", "x86_64", "6.18.0", kvm_modules={"kvm": {}, "kvm_intel": {"nested": "Y"}})
    path = tmp_path / "host.json"
    write_snapshot(snapshot_document(fake_probe_result(VALUES, source="recorded"), host=facts), str(path))
    code, out, err = run(["export", "--format", "nfd", "--snapshot", str(path), "--prefix", "kvm.example.com"], capsys)
    assert code == 0 and err == ""
    labels = labels_of(out)
    assert labels["kvm.example.com/kvm.nested"] == "true"
    assert labels["kvm.example.com/kvm.cap.nr_memslots"] == "32764"
    code, out, _ = run(["export", "--format", "prometheus", "--snapshot", str(path)], capsys)
    assert code == 0 and samples_of(out)[("kvm_nested_enabled", ())] == 1


@pytest.mark.parametrize("preset", ["linux-3.10", "pvm-6.18"])
def test_presets_export_their_values(preset: str, capsys: pytest.CaptureFixture[str]) -> None:
    host = load_preset(preset)
    code, out, _ = run(["export", "--format", "prometheus", "--snapshot", f"preset:{preset}"], capsys)
    assert code == 0
    samples = samples_of(out)
    for cap in Cap:
        if cap not in host.errors:
            assert samples[("kvm_capability", (("name", cap.c_name), ("number", str(int(cap)))))] == host.values[cap]
    for name in vmm_names(host.arch):
        assert samples[("kvm_vmm_ready", (("vmm", name),))] == check_vmm(name, host).ready


@pytest.mark.parametrize(
    "device, reason",
    [("/nonexistent/kvm", "not-found"), ("/dev/null", "not-a-kvm-device")],
)
def test_an_unusable_live_device_is_exported_then_exit_3(
    device: str, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "kvmprobe"
    code, out, err = run(["export", "--format", "nfd", "--device", device, "-o", str(target)], capsys)
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and "not usable" in err and "Traceback" not in err
    labels = labels_of(target.read_text())
    assert labels[key("kvm.usable")] == "false" and labels[key("kvm.unavailable")] == reason
    assert not any("/kvm.cap." in k or "api-version" in k for k in labels)
    assert all(v == "false" for k, v in labels.items() if k.endswith(".ready"))
    code, out, _ = run(["export", "--format", "prometheus", "--device", device], capsys)
    samples = samples_of(out)
    assert code == 3 and samples[("kvm_usable", ())] == 0
    assert samples[("kvm_unavailable", (("reason", reason),))] == 1


def test_expiry_as_rfc3339_and_as_a_duration(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_kvm(VALUES):
        code, out, _ = run(["export", "--format", "nfd", "--expiry-time", "2099-11-26T11:00:00+01:00"], capsys)
        assert code == 0 and "# +expiry-time=2099-11-26T10:00:00Z\n" in out  # a time to come: a past one is refused
        before = datetime.now(timezone.utc).replace(microsecond=0)
        code, out, _ = run(["export", "--format", "nfd", "--expiry-time", "3h"], capsys)
        after = datetime.now(timezone.utc)
    line = next(x for x in out.splitlines() if x.startswith("# +expiry-time="))
    when = datetime.strptime(line.split("=", 1)[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert before + timedelta(hours=3) <= when <= after + timedelta(hours=3)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--format", "prometheus", "--prefix", "x.io"], "--prefix applies to --format nfd only"),
        (["--format", "prometheus", "--expiry-time", "3h"], "--expiry-time applies to --format nfd only"),
        (["--format", "nfd", "--prefix", "Kvm.io"], "DNS subdomain"),
        (["--format", "nfd", "--prefix", "node.kubernetes.io"], "nfd-master drops"),
        (["--format", "nfd", "--expiry-time", "tomorrow"], "RFC 3339"),
        (["--format", "nfd", "--expiry-time", "2026-11-26T10:00:00"], "with a zone"),
        (["--format", "nfd", "--caps", "IMEDIATE_EXIT"], "did you mean KVM_CAP_IMMEDIATE_EXIT"),
        (["--format", "prometheus", "--caps", " , "], "names nothing"),
        (["--format", "nfd", "-o", "/nonexistent/dir/kvmprobe"], "cannot write /nonexistent/dir/kvmprobe"),
        (["--format", "nfd", "--snapshot", "/nonexistent.json"], "nonexistent.json"),
        (["--format", "yaml"], "invalid choice"),
        ([], "--format"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: List[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    with fake_kvm(VALUES):
        code, out, err = run(["export", *argv], capsys)
    assert code == 2 and out == ""
    assert err.startswith("kvmprobe: error: ") and err.count("\n") == 1 and words in err


def test_too_big_for_nfd_is_refused_and_nothing_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    everything: Dict[CapLike, int] = {cap: 2**31 - 1 for cap in Cap}
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    target = tmp_path / "kvmprobe"
    with fake_kvm(everything):
        code, _, err = run(["export", "--format", "nfd", "--prefix", longest, "-o", str(target)], capsys)
    assert code == 2 and "65536" in err and not target.exists()


def test_as_a_process_without_a_device() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kvmprobe", "export", "--format", "prometheus", "--device", "/nonexistent/kvm"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 3 and "kvm_usable 0" in proc.stdout
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_a_host_derived_from_source_names_no_device_in_either_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--format", "nfd", "--snapshot", "preset:rhel-7.9"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.endswith("from no device: preset:rhel-7.9 (derived from source)"), header
    assert main(["export", "--format", "prometheus", "--snapshot", "preset:rhel-7.9"]) == 0
    info = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("kvm_probe_info{"))
    assert 'device=""' in info and 'source="preset:rhel-7.9 (derived from source)"' in info, info
    assert main(["export", "--format", "nfd", "--snapshot", "preset:pvm-6.18"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.endswith("from preset:pvm-6.18, recorded from that host's /dev/kvm"), header
