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
from kvmprobe.profiles import builtin_profile, vmm_names, vmm_releases
from kvmprobe.testing import fake_kvm, fake_probe_result

STORY_KERNEL = "3.10.0-1160.el7.x86_64"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "my-vmm-profile.toml"


def story_host() -> Any:
    """Every capability mainline 3.10 has (from the Cap table), on CentOS 7's kernel release."""
    return fake_probe_result({c: 1 for c in Cap if c.since <= (3, 10)}, kernel=STORY_KERNEL)


def full_host() -> Any:
    """Every capability, but MSI_DEVID, which x86 kernels answer 0 (1 makes crosvm panic)."""
    return fake_probe_result({c: 1 for c in Cap if c is not Cap.MSI_DEVID}, kernel="6.18.44")


def label(name: str, arch: str = "x86_64") -> str:
    """How the report labels a built-in VMM checked without a version: its newest range."""
    return f"[{name} {vmm_releases(name, arch)[-1]}, {arch}]"


def run(argv: List[str], capsys: pytest.CaptureFixture[str]) -> Tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_story_host_names_the_capability_and_releases(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_kvm(story_host()):
        code, out, err = run(["check", "cloud-hypervisor", "firecracker"], capsys)
    assert code == 1 and err == ""
    assert f"Cloud Hypervisor {label('cloud-hypervisor')}: NOT READY" in out
    assert "Cloud Hypervisor cannot run here: KVM_CAP_IMMEDIATE_EXIT" in out
    assert "(needs Linux >= 4.11; you have 3.10)" in out
    assert "missing (required): KVM_CAP_IMMEDIATE_EXIT (136, Linux 4.11)" in out
    assert "fix: a Linux 4.11 or newer kernel" in out
    assert f"Firecracker {label('firecracker')}: ready" in out
    assert "Vendor kernels backport" in out  # the caveat, once
    assert out.index("Cloud Hypervisor") < out.index("Firecracker")  # in the order asked


def test_all_ready_is_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_kvm(full_host()):
        code, out, _ = run(["check", "--all"], capsys)
    assert code == 0
    for name in vmm_names("x86_64"):
        assert f"{label(name)}: ready" in out
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
    assert doc["schema"] == "kvmprobe-check" and doc["schema_version"] == 2 and doc["ready"] is False
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
    assert code == 0 and out.count("[cloud-hypervisor ") == 1


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
    assert code == 0 and f"{label('cloud-hypervisor', 'riscv64')}: ready" in out and "firecracker" not in out


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


# --- Releases ----------------------------------------------------------------------------------


def test_a_release_is_checked_with_its_own_list(capsys: pytest.CaptureFixture[str]) -> None:
    # QEMU 7.2 refuses only USER_MEMORY..MP_STATE and IRQ_ROUTING (v7.2.0 kvm-all.c:108-113,
    # kvm.c:83-88, 2484-2487); the newest also IOEVENTFD_ANY_LENGTH (Linux 4.4).
    with fake_kvm(story_host()):
        code, out, err = run(["check", "qemu@7.2"], capsys)
        assert (code, err) == (0, "") and "QEMU 7.2 [qemu 7.2.0 to 7.x, x86_64]: ready" in out
        assert "requirements: qemu/qemu@v7.2.0 accel/kvm/kvm-all.c:108-113" in out
        code, out, _ = run(["check", "qemu"], capsys)
        assert code == 1 and "QEMU cannot run here: KVM_CAP_IOEVENTFD_ANY_LENGTH is missing" in out
    no_xcrs = fake_probe_result({c: 1 for c in Cap if c not in (Cap.XCRS, Cap.MSI_DEVID)})
    with fake_kvm(no_xcrs):
        code, out, _ = run(["check", "cloud-hypervisor@v45", "--json"], capsys)
        doc = json.loads(out)
        assert code == 1 and doc["vmms"][0]["profile"]["versions"] == "v40.0 to v48.x"
        assert doc["vmms"][0]["profile"]["version"] == "v45"
        assert [m["name"] for m in doc["vmms"][0]["missing_required"]] == ["KVM_CAP_XCRS"]
        assert run(["check", "cloud-hypervisor@v53.0"], capsys)[0] == 0


@pytest.mark.parametrize("spec, fragment", [
    ("qemu@6.2", "no QEMU release 6.2 in kvmprobe's profiles"),
    ("cloud-hypervisor@v99", "no Cloud Hypervisor release v99"),
    ("ch@newest", "'newest' is not a Cloud Hypervisor release (it writes them like v53.0)"),
])  # fmt: skip
def test_an_unknown_release_is_exit_2_before_kvm_is_touched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, fragment: str
) -> None:
    code, out, err = run(["check", spec, "--device", str(tmp_path / "no-kvm")], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and fragment in err
    vmm = spec.split("@")[0]
    for known in vmm_releases(vmm, "x86_64"):  # every range is named
        assert known in err


def test_the_centos7_story_on_the_rhel_7_9_preset(capsys: pytest.CaptureFixture[str]) -> None:
    # RHEL 7.9's 3.10.0-1160 backports SPLIT_IRQCHIP but has no IMMEDIATE_EXIT (read in its
    # kvm_vm_ioctl_check_extension): exactly one capability is missing, and 4.11 brings it.
    code, out, err = run(["check", "cloud-hypervisor", "--snapshot", "preset:rhel-7.9"], capsys)
    assert (code, err) == (1, "")
    assert "Cloud Hypervisor cannot run here: KVM_CAP_IMMEDIATE_EXIT is missing (needs Linux >= 4.11; you have 3.10)" in out
    assert [line for line in out.splitlines() if line.startswith("  missing (")] == [
        "  missing (required): KVM_CAP_IMMEDIATE_EXIT (136, Linux 4.11): completing PIO and MMIO exits before "
        "pausing vCPUs (kvm_run.immediate_exit)"]  # fmt: skip
    assert out.startswith("host: Linux 3.10.0-1160.el7.x86_64 (x86_64), KVM API 12, no device: "
                          "preset:rhel-7.9 (derived from source)\n")
    code, out, _ = run(["check", "cloud-hypervisor", "qemu", "--snapshot", "preset:rhel-8", "--json"], capsys)
    assert code == 0 and json.loads(out)["host"]["source"] == "preset:rhel-8.10 (derived from source)"


def test_installed_and_snapshot_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["check", "--installed", "--snapshot", "preset:rhel-7.9"], capsys)
    assert code == 2 and "leave out --snapshot" in err


def test_a_misspelt_confidential_kind_is_not_called_a_vmm_profile(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["check", "sevv"], capsys)
    assert code == 2 and out == ""
    assert "no VMM profile or confidential-VM kind 'sevv'" in err and "did you mean sev" in err


def test_doctor_on_a_recording_gives_no_remedy_for_this_machine(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["doctor", "--snapshot", "preset:rhel-7.9"], capsys)
    line = next(line for line in out.splitlines() if "firmware-vt" in line)
    assert "not recorded" in line and "modprobe" not in line, line
