"""The CLI's recorded hosts: 'snapshot', 'diff', '--snapshot FILE' on other commands, and '--json'."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from kvmprobe import Cap
from kvmprobe._cli import main
from kvmprobe.presets import load_preset
from kvmprobe.snapshot import load_snapshot, snapshot_document
from kvmprobe.testing import fake_kvm, fake_probe_result

SRC = Path(__file__).resolve().parents[2] / "src"


def run(argv: List[str], capsys: pytest.CaptureFixture[str]) -> Tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    assert err.startswith("kvmprobe: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def old_host(tmp_path: Path) -> Path:
    target = tmp_path / "centos7.json"
    target.write_text(json.dumps(snapshot_document(load_preset("linux-3.10"))))
    return target


# --- snapshot ---------------------------------------------------------------------------------------


def test_snapshot_to_stdout_is_the_document(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["snapshot", "--snapshot", "preset:linux-5.4"], capsys)
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc == snapshot_document(load_preset("linux-5.4"))
    assert list(doc)[:2] == ["schema", "schema_version"]


def test_snapshot_of_the_fake_live_host(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_kvm(fake_probe_result({"IMMEDIATE_EXIT": 1, "NR_MEMSLOTS": 32764}, vm_values={"NR_MEMSLOTS": 509})):
        code, out, _ = run(["snapshot", "--vm"], capsys)
    doc = json.loads(out)
    rows = {row["name"]: row for row in doc["capabilities"]}
    assert code == 0 and rows["KVM_CAP_NR_MEMSLOTS"] == {
        "name": "KVM_CAP_NR_MEMSLOTS", "number": 10, "value": 32764, "vm_value": 509,
    }  # fmt: skip
    assert load_snapshot(doc).value("IMMEDIATE_EXIT") == 1


def test_snapshot_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "host.json"
    code, out, err = run(["snapshot", "--snapshot", "preset:linux-4.14", "-o", str(target)], capsys)
    assert code == 0 and err == ""
    assert out == f"{target}: synthesized: Linux 4.14.0-synthesized (x86_64), 80 of {len(Cap)} capabilities supported\n"
    assert load_snapshot(target).has("IMMEDIATE_EXIT")
    code, out, _ = run(["snapshot", "--snapshot", str(target), "-o", str(tmp_path / "copy.json"), "--json"], capsys)
    assert code == 0 and json.loads(out) == json.loads(target.read_text()) == json.loads((tmp_path / "copy.json").read_text())


def test_dump_json_is_the_snapshot_document(capsys: pytest.CaptureFixture[str]) -> None:
    _, dumped, _ = run(["--json", "--snapshot", "preset:pvm-6.18"], capsys)
    _, recorded, _ = run(["snapshot", "--snapshot", "preset:pvm-6.18"], capsys)
    assert json.loads(dumped) == json.loads(recorded)
    assert json.loads(dumped)["host"]["kernel_release"].startswith("6.18.")


def test_list_presets(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["snapshot", "--list-presets"], capsys)
    lines = out.splitlines()
    assert code == 0 and [line.split()[0] for line in lines] == [
        "pvm-6.18", "rhel-7.9", "rhel-8.10", "linux-3.10", "linux-4.14", "linux-5.4", "linux-5.10", "linux-6.1",
    ]  # fmt: skip
    assert "recorded: Linux 6.18." in lines[0] and "VM fd asked" in lines[0]
    assert "derived from source: Linux 3.10.0-1160.el7.x86_64" in lines[1]
    assert "derived from source: Linux 4.18.0-553" in lines[2]
    assert all("synthesized: Linux " in line for line in lines[3:])


def test_snapshot_into_a_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["snapshot", "--snapshot", "preset:linux-5.4", "-o", str(tmp_path / "no" / "x.json")], capsys)
    assert code == 2 and "x.json: the directory" in one_error_line(err) and "does not exist (hint: " in err


# --- --snapshot on the other commands ----------------------------------------------------------------


def test_has_reads_a_recorded_host(old_host: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["has", "--snapshot", str(old_host), "IMMEDIATE_EXIT"], capsys)
    assert code == 1 and "KVM_CAP_IMMEDIATE_EXIT: missing" in out and "3.10.0-synthesized" in err
    assert run(["has", "--snapshot", str(old_host), "IRQFD"], capsys)[0] == 0
    assert run(["has", "--snapshot", "preset:linux-4.14", "IMMEDIATE_EXIT"], capsys)[0] == 0


def test_device_and_snapshot_exclude_each_other(old_host: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["has", "--device", "/dev/kvm", "--snapshot", str(old_host), "HLT"], capsys)
    assert code == 2 and "exclude each other" in one_error_line(err)


def test_a_bad_snapshot_is_exit_2_naming_file_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = snapshot_document(load_preset("linux-5.4"))
    doc["capabilities"][3]["value"] = "yes"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    for argv in (["has", "--snapshot", str(bad), "HLT"], ["--snapshot", str(bad)], ["diff", str(bad)]):
        code, out, err = run(argv, capsys)
        assert code == 2 and out == ""
        assert f"{bad}: $.capabilities[3].value: expected an integer or null" in one_error_line(err)


@pytest.mark.parametrize("spec, fragment", [("/nonexistent/host.json", "ENOENT"), ("/dev/zero", "character device"),
                                            ("preset:linux-9.9", "no preset named 'linux-9.9'")])  # fmt: skip
def test_unreadable_snapshots(spec: str, fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["has", "--snapshot", spec, "HLT"], capsys)
    assert code == 2 and fragment in one_error_line(err)


def test_unknown_capabilities_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = snapshot_document(load_preset("linux-6.1"))
    doc["capabilities"].append({"name": "KVM_CAP_FROM_THE_FUTURE", "number": 300, "value": 1})
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(doc))
    code, _, err = run(["has", "--snapshot", str(newer), "IMMEDIATE_EXIT"], capsys)
    assert code == 0
    assert err.startswith(f"kvmprobe: note: {newer} has 1 capability this kvmprobe does not know: KVM_CAP_FROM_THE_FUTURE (300)")
    assert err.count("\n") == 1
    code, out, _ = run(["snapshot", "--snapshot", str(newer)], capsys)
    assert json.loads(out)["capabilities"][-1]["name"] == "KVM_CAP_FROM_THE_FUTURE"


# --- diff ---------------------------------------------------------------------------------------------


def test_diff_equal_is_exit_0(old_host: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["diff", str(old_host), "preset:linux-3.10"], capsys)
    assert code == 0 and err == "" and out.rstrip().endswith("equal: no differences")


def test_diff_different_is_exit_1(old_host: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["diff", "preset:linux-4.14", str(old_host)], capsys)
    assert code == 1
    assert "capabilities lost (supported on A, unsupported on B): 21" in out
    assert "  - KVM_CAP_IMMEDIATE_EXIT (136): 1 -> 0  (Linux 4.11)" in out
    assert "  ! Cloud Hypervisor: ready -> NOT READY (Cloud Hypervisor cannot run here: KVM_CAP_IMMEDIATE_EXIT" in out
    assert "  ~ kernel: '4.14.0-synthesized' -> '3.10.0-synthesized'" in out
    assert out.rstrip().endswith("different: 26 differences")


def test_diff_json(old_host: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["diff", "--json", str(old_host), "preset:linux-4.14"], capsys)
    doc = json.loads(out)
    assert code == 1 and doc["equal"] is False and doc["lost"] == []
    assert {"name": "KVM_CAP_IMMEDIATE_EXIT", "number": 136, "a": 0, "b": 1} in doc["gained"]
    assert {v["vmm"] for v in doc["verdicts"]} >= {"cloud-hypervisor"}
    code, out, _ = run(["diff", "--json", str(old_host), str(old_host)], capsys)
    assert code == 0 and json.loads(out)["equal"] is True


def test_diff_against_an_unreachable_live_host_is_exit_3(old_host: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    code, out, err = run(["diff", str(old_host), "--device", str(tmp_path / "missing-kvm")], capsys)
    assert code == 3 and out == "" and "does not exist" in one_error_line(err)


def test_diff_options_for_the_live_host_need_it(old_host: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["diff", str(old_host), str(old_host), "--vm"], capsys)
    assert code == 2 and "only when B is omitted" in one_error_line(err)
    code, _, err = run(["diff"], capsys)
    assert code == 2 and "the following arguments are required: A" in one_error_line(err)


def test_diff_in_a_real_process(old_host: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    done = subprocess.run([sys.executable, "-m", "kvmprobe", "diff", "preset:linux-4.14", str(old_host)],
                          capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert done.returncode == 1 and "KVM_CAP_IMMEDIATE_EXIT" in done.stdout and done.stderr == ""
    done = subprocess.run([sys.executable, "-m", "kvmprobe", "diff", str(old_host) + ".missing"],
                          capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1


# --- a snapshot a user may not read -------------------------------------------------------------------


@pytest.fixture
def world_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="kvmprobe-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_unreadable_file_as_an_unprivileged_user(world_dir: Path) -> None:
    secret = world_dir / "secret.json"
    secret.write_text(json.dumps(snapshot_document(load_preset("linux-5.4"))))
    secret.chmod(0)
    command = [sys.executable, "-m", "kvmprobe", "has", "--snapshot", str(secret), "HLT"]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("as root, needs setpriv (util-linux) to drop to uid 65534")
        command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})  # fmt: skip
    if "No module named" in done.stderr:
        pytest.skip("the source tree is not readable by uid 65534 (kvmprobe does not import as that user)")
    assert done.returncode == 2, done.stderr
    assert f"{secret}: cannot open: EACCES (Permission denied)" in one_error_line(done.stderr)
    assert stat.S_IMODE(secret.stat().st_mode) == 0
