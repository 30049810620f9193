"""``kvmprobe check`` in-process over fake hosts, plus the readiness lines of the dump."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, List, Tuple

import pytest

from kvmprobe import Cap
from kvmprobe._cli import main
from kvmprobe.profiles import builtin_profile, vmm_names
from kvmprobe.testing import fake_kvm, fake_probe_result

STORY_KERNEL = "3.10.0-1160.el7.x86_64"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "my-vmm-profile.toml"


def story_host() -> Any:
    """Every capability mainline 3.10 has (from the Cap table), on CentOS 7's kernel release."""
    return fake_probe_result({c: 1 for c in Cap if c.since <= (3, 10)}, kernel=STORY_KERNEL)


def full_host() -> Any:
    return fake_probe_result({c: 1 for c in Cap}, kernel="6.18.44")


def run(argv: List[str], capsys: pytest.CaptureFixture[str]) -> Tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_story_host_names_the_capability_and_releases(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_kvm(story_host()):
        code, out, err = run(["check", "cloud-hypervisor", "firecracker"], capsys)
    assert code == 1 and err == ""
    assert "Cloud Hypervisor [cloud-hypervisor, x86_64]: NOT READY" in out
    assert "Cloud Hypervisor cannot run here: KVM_CAP_IMMEDIATE_EXIT" in out
    assert "(needs Linux >= 4.11; you have 3.10)" in out
    assert "missing (required): KVM_CAP_IMMEDIATE_EXIT (136, Linux 4.11)" in out
    assert "fix: a Linux 4.11 or newer kernel" in out
    assert "Firecracker [firecracker, x86_64]: ready" in out
    assert "Vendor kernels backport" in out  # the caveat, once
    assert out.index("Cloud Hypervisor") < out.index("Firecracker")  # in the order asked


def test_all_ready_is_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_kvm(full_host()):
        code, out, _ = run(["check", "--all"], capsys)
    assert code == 0
    for name in vmm_names("x86_64"):
        assert f"[{name}, x86_64]: ready" in out
    assert "NOT READY" not in out and "Vendor kernels" not in out


def test_one_not_ready_among_ready_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    host = fake_probe_result({c: 1 for c in Cap if c is not Cap.IMMEDIATE_EXIT}, kernel=STORY_KERNEL)
    with fake_kvm(host):
        assert run(["check", "firecracker", "qemu"], capsys)[0] == 0
        assert run(["check", "firecracker", "qemu", "crosvm"], capsys)[0] == 1


def test_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_kvm(story_host()):
        code, out, _ = run(["check", "--json", "cloud-hypervisor", "fc"], capsys)
    doc = json.loads(out)
    assert code == 1
    assert doc["schema"] == "kvmprobe-check" and doc["schema_version"] == 1 and doc["ready"] is False
    assert doc["host"]["kernel"] == STORY_KERNEL and doc["host"]["arch"] == "x86_64"
    ch, fc = doc["vmms"]
    assert (ch["vmm"], ch["ready"], fc["vmm"], fc["ready"]) == ("cloud-hypervisor", False, "firecracker", True)
    assert ch["needs_kernel"] == "4.11"
    assert [m["name"] for m in ch["missing_required"]] == [
        r.cap.c_name for r in builtin_profile("cloud-hypervisor", "x86_64").required if r.cap.since > (3, 10)
    ]


def test_custom_profile(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_kvm(full_host()):
        code, out, _ = run(["check", "--profile", str(EXAMPLE)], capsys)
    assert code == 0 and "My VMM [my-vmm, x86_64]: ready" in out and f"[profile {EXAMPLE}]" in out
    with fake_kvm(story_host()):
        code, out, _ = run(["check", "--profile", str(EXAMPLE), "--profile", str(EXAMPLE.with_suffix(".json"))], capsys)
    assert code == 1
    assert out.count("My VMM cannot run here: KVM_CAP_IMMEDIATE_EXIT is missing (needs Linux >= 4.11; you have 3.10)") == 2


def test_the_same_vmm_twice_is_checked_once(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_kvm(full_host()):
        code, out, _ = run(["check", "ch", "cloud-hypervisor", "--all"], capsys)
    assert code == 0 and out.count("[cloud-hypervisor, x86_64]") == 1


@pytest.mark.parametrize(
    "content, key",
    [
        ('{"name": "x", "required": ["IMEDIATE_EXIT"]}', "required[0]"),
        ('{"name": "x"}', "required"),
        ('{"name": "x", "required": [], "arch": "arm"}', "arch"),
        ("{not json", ""),
    ],
)
def test_bad_profile_is_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, key: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with fake_kvm(full_host()):
        code, out, err = run(["check", "--profile", str(path)], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"kvmprobe: error: {path}: {key}") and err.count("\n") == 1
    assert "Traceback" not in err


def test_bad_input_fails_before_kvm_is_touched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing_device = str(tmp_path / "no-kvm")
    code, _, err = run(["check", "firecraker", "--device", missing_device], capsys)
    assert code == 2 and "did you mean firecracker?" in err and err.count("\n") == 1
    code, _, err = run(["check", "--profile", str(tmp_path / "nope.toml"), "--device", missing_device], capsys)
    assert code == 2 and "nope.toml: cannot open: ENOENT" in err
    code, _, err = run(["check", "--device", missing_device], capsys)
    assert code == 2 and "name at least one VMM" in err


def test_kvm_unreachable_is_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["check", "qemu", "--device", str(tmp_path / "no-kvm")], capsys)
    assert code == 3 and out == "" and err.count("\n") == 1 and "does not exist" in err


def test_no_profile_for_the_host_arch_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_kvm(fake_probe_result({c: 1 for c in Cap}, arch="riscv64")):
        code, _, err = run(["check", "firecracker"], capsys)
        assert code == 2 and "no built-in VMM profile 'firecracker' for riscv64" in err
        code, out, _ = run(["check", "--all"], capsys)
    assert code == 0 and "[cloud-hypervisor, riscv64]: ready" in out and "firecracker" not in out


def test_check_a_recorded_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Record the story host the way a person would ('kvmprobe --json > host.json'), then check
    # it elsewhere: the verdict comes from the recording, kernel release included.
    with fake_kvm(story_host()):
        code, out, _ = run(["--json"], capsys)
    assert code == 0
    recording = tmp_path / "centos7.json"
    recording.write_text(out)
    code, out, err = run(["check", "cloud-hypervisor", "--snapshot", str(recording)], capsys)
    assert (code, err) == (1, "")
    assert "Linux 3.10.0-1160.el7.x86_64" in out and "needs Linux >= 4.11; you have 3.10" in out
    code, out, _ = run(["check", "firecracker", "--snapshot", str(recording), "--json"], capsys)
    assert code == 0 and json.loads(out)["host"]["kernel"] == STORY_KERNEL


def test_dump_shows_a_readiness_line_per_vmm(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_kvm(story_host()):
        code, out, _ = run([], capsys)
    assert code == 0
    lines = out.splitlines()
    start = lines.index("VMM READINESS ('kvmprobe check VMM' says why)")
    block = lines[start + 1 : start + 1 + len(vmm_names("x86_64"))]
    assert [line.split()[0] for line in block] == vmm_names("x86_64")
    ch = next(line for line in block if line.split()[0] == "cloud-hypervisor")
    assert "NOT READY  Cloud Hypervisor cannot run here: KVM_CAP_IMMEDIATE_EXIT" in ch and "you have 3.10" in ch
    fc = next(line for line in block if line.split()[0] == "firecracker")
    assert fc.split()[1] == "ready"
    # The since-release column stays in the table below.
    assert any(line.startswith("KVM_CAP_IRQCHIP ") and line.rstrip().endswith("<=3.0") for line in lines)


def test_subprocess_errors_have_no_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kvmprobe", "check", "no-such-vmm"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("kvmprobe: error: no built-in VMM profile 'no-such-vmm'")
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
