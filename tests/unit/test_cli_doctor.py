"""``kvmprobe doctor``: rendering, colour, JSON, exit codes and bad input.

The command is a thin shell over :func:`kvmprobe.diagnose`; its output is checked here on
diagnoses of fake hosts, and end to end on devices that fail the same way everywhere (a
missing path, ``/dev/null``) and on recorded hosts.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from kvmprobe import Cap, read_host_facts
from kvmprobe._cli import _common, _doctor, main
from kvmprobe.diagnosis import CHECK_IDS, Diagnosis, Verdict, diagnose
from kvmprobe.testing import FakeBackend, FakeHost, fake_probe_result

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(argv: List[str], capsys: pytest.CaptureFixture[str]) -> Tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def fake_report(host: FakeHost, tmp_path: Path, backend: FakeBackend) -> Diagnosis:
    return diagnose(root=host.write(str(tmp_path)), backend=backend)


# --- rendering --------------------------------------------------------------------------------


def test_render_aligns_checks_and_puts_the_remedy_under_the_failure(tmp_path: Path) -> None:
    report = fake_report(FakeHost.outside_kvm_group(), tmp_path, FakeBackend(open_errno=errno.EACCES))
    text = _doctor.render(report)
    lines = text.splitlines()
    assert lines[0] == "kvmprobe doctor: /dev/kvm"
    rows = [line for line in lines if re.match(r"  (PASS|WARN|FAIL|SKIP|INFO)  ", line)]
    assert [row.split()[1] for row in rows] == [i for i in CHECK_IDS if i != "capability-queries"]
    columns = {row.index(row.split()[2], 8 + len(row.split()[1])) for row in rows}
    assert len(columns) == 1, "summaries do not start in one column"
    access = next(i for i, line in enumerate(lines) if line.split()[1:2] == ["device-access"])
    assert lines[access].startswith("  FAIL  device-access")
    fix = lines[access + 1]
    assert fix.strip() == "fix: sudo usermod -aG kvm $USER, then log out and in again"
    assert fix.index("fix:") == columns.pop()
    assert lines[-1] == f"verdict: {report.summary}"
    assert lines[-1].startswith("verdict: KVM not usable: /dev/kvm: permission denied for bob")
    assert not ANSI.search(text)


def test_render_info_with_a_recipe_says_to_change(tmp_path: Path) -> None:
    report = fake_report(FakeHost.amd_nested0(), tmp_path, FakeBackend({Cap.IMMEDIATE_EXIT: 1}))
    text = _doctor.render(report)
    assert "to change: read-only while kvm_amd is loaded" in text
    assert "fix:" not in text and text.splitlines()[-1].startswith("verdict: KVM usable: ")


def test_render_colour(tmp_path: Path) -> None:
    report = fake_report(FakeHost.centos7(), tmp_path, FakeBackend({}))
    coloured = _doctor.render(report, color=True)
    assert "\x1b[32mPASS" in coloured and "\x1b[33mWARN" in coloured
    assert "verdict: \x1b[33mKVM usable, with warnings\x1b[0m" in coloured
    assert ANSI.sub("", coloured) == _doctor.render(report, color=False)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_tty_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert _common.use_color(_Tty()) and not _common.use_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not _common.use_color(_Tty())


@pytest.mark.parametrize(
    "verdict, strict, code",
    [
        (Verdict.USABLE, False, 0),
        (Verdict.USABLE, True, 0),
        (Verdict.USABLE_WITH_WARNINGS, False, 0),
        (Verdict.USABLE_WITH_WARNINGS, True, 1),
        (Verdict.NOT_USABLE, False, 1),
        (Verdict.NOT_USABLE, True, 1),
    ],
)
def test_exit_code(verdict: Verdict, strict: bool, code: int, tmp_path: Path) -> None:
    report = dataclasses.replace(fake_report(FakeHost(), tmp_path, FakeBackend()), verdict=verdict)
    assert _doctor.exit_code(report, strict=strict) == code


# --- end to end, live --------------------------------------------------------------------------


def test_missing_device_is_the_verdict_not_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "kvm")
    code, out, err = run(["doctor", "--device", missing], capsys)
    assert code == 1 and err == ""
    assert f"  FAIL  device-access  {missing} does not exist" in out
    assert out.splitlines()[-1] == f"verdict: KVM not usable: {missing} does not exist"


def test_not_a_kvm_device(capsys: pytest.CaptureFixture[str]) -> None:
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    code, out, _ = run(["doctor", "--device", "/dev/null", "--json"], capsys)
    doc = json.loads(out)
    checks = {c["id"]: c for c in doc["checks"]}
    assert code == 1 and doc["verdict"] == "not_usable" and doc["usable"] is False
    assert checks["device-access"]["status"] == "PASS"
    assert checks["api-version"]["status"] == "FAIL" and "not a KVM device" in checks["api-version"]["summary"]
    assert checks["create-vm"]["status"] == "SKIP"


def test_json_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["doctor", "--json", "--device", str(tmp_path / "none")], capsys)
    doc = json.loads(out)
    assert code == 1
    assert list(doc) == ["schema", "schema_version", "verdict", "usable", "summary", "source", "device", "as_user",
                         "checks", "host", "confidential"]  # fmt: skip
    assert doc["confidential"] is None  # KVM is not usable: no confidential-VM section
    assert doc["schema"] == "kvmprobe-doctor" and doc["schema_version"] == 1 and doc["device"] == str(tmp_path / "none")
    assert doc["as_user"] is None
    assert [c["id"] for c in doc["checks"]] == [i for i in CHECK_IDS if i != "capability-queries"]
    assert all(set(c) == {"id", "status", "decisive", "summary", "remedy"} for c in doc["checks"])
    assert doc["host"]["kernel_release"] == os.uname().release


def test_process_output_is_plain_when_piped(tmp_path: Path) -> None:
    env = {**os.environ, "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    result = subprocess.run([sys.executable, "-m", "kvmprobe", "doctor", "--device", str(tmp_path / "kvm")],
                            capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert result.returncode == 1 and result.stderr == ""
    assert not ANSI.search(result.stdout) and "verdict: KVM not usable" in result.stdout


# --- the tool could not run: exit 2 ------------------------------------------------------------------


def test_bad_argument(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["doctor", "--bogus"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("kvmprobe: error: ")


def test_forced_backend_missing(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KVMPROBE_BACKEND", "nonesuch")
    code, out, err = run(["doctor"], capsys)
    assert code == 2 and out == "" and "unknown ioctl backend 'nonesuch'" in err and "Traceback" not in err


def test_unreadable_snapshot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["doctor", "--snapshot", str(tmp_path / "absent.json")], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err


# --- recorded hosts ----------------------------------------------------------------------------------


def _snapshot(tmp_path: Path, host: FakeHost, values: Dict[Any, int], vm: bool) -> str:
    snapshot = pytest.importorskip("kvmprobe.snapshot", reason="the snapshot module is not in this tree yet")
    facts = read_host_facts(host.write(str(tmp_path / "root")))
    result = fake_probe_result(values, vm_values=values if vm else None, kernel=facts.kernel_release)
    path = str(tmp_path / "host.json")
    snapshot.write_snapshot(snapshot.snapshot_document(result, host=facts), path)
    return path


def test_snapshot_with_warnings_and_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _snapshot(tmp_path, FakeHost.centos7(), {}, vm=False)
    code, out, _ = run(["doctor", "--snapshot", path], capsys)
    assert code == 0 and f"kvmprobe doctor: /dev/kvm (snapshot:{path})" in out
    assert "  WARN  kernel" in out and "KVM_CAP_IMMEDIATE_EXIT" in out
    assert "  SKIP  create-vm" in out
    assert run(["doctor", "--snapshot", path, "--strict"], capsys)[0] == 1


def test_snapshot_usable_is_strict_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _snapshot(tmp_path, FakeHost.amd_nested0(), {Cap.IMMEDIATE_EXIT: 1}, vm=True)
    code, out, _ = run(["doctor", "--snapshot", path, "--strict", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["verdict"] == "usable" and doc["host"]["cpu_vendor"] == "AuthenticAMD"


def test_snapshot_and_device_exclude_each_other(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _snapshot(tmp_path, FakeHost.pvm(), {}, vm=False)
    code, _, err = run(["doctor", "--snapshot", path, "--device", "/dev/kvm"], capsys)
    assert code == 2 and err.count("\n") == 1


def test_synthesized_preset_judges_only_the_answers(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("kvmprobe.presets", reason="the presets module is not in this tree yet")
    code, out, _ = run(["doctor", "--snapshot", "preset:linux-3.10", "--json"], capsys)
    doc = json.loads(out)
    checks = {c["id"]: c for c in doc["checks"]}
    assert code == 0 and doc["verdict"] == "usable_with_warnings"
    assert checks["kernel"]["status"] == "WARN" and "KVM_CAP_IMMEDIATE_EXIT" in checks["kernel"]["summary"]
    assert checks["kvm-module"]["status"] == "SKIP" and checks["vhost-net"]["status"] == "SKIP"
