"""The device path: resolved once (a relative one against the working directory) and used by
every check; an empty one (``--device ''``, ``KVMPROBE_DEVICE=`` set but empty) is bad input,
never a silent ``/dev/kvm``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

import pytest

from kvmprobe import BadDevicePath, Cap, KvmDevice, diagnose, probe
from kvmprobe._cli import main
from kvmprobe.device import device_path
from kvmprobe.testing import FakeBackend


def test_a_relative_device_is_one_path_for_every_doctor_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "regular.txt").write_text("not a device\n")
    monkeypatch.chdir(tmp_path)
    report = diagnose(device="regular.txt", backend=FakeBackend({Cap.IMMEDIATE_EXIT: 1}))
    absolute = str(tmp_path / "regular.txt")
    assert report.device == absolute
    node = report.check("device-node").summary
    assert "does not exist" not in node and "is a file, not a character device" in node and absolute in node, node
    assert report.check("device-access").summary.startswith(f"{absolute} opens read-write")


def test_a_device_named_from_its_own_directory_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 'cd /dev && kvmprobe doctor --device kvm' said "kvm does not exist under the root read, yet it opened".
    (tmp_path / "kvm").write_text("")
    monkeypatch.chdir(tmp_path)
    report = diagnose(device="kvm", backend=FakeBackend({Cap.IMMEDIATE_EXIT: 1}))
    assert "does not exist" not in report.check("device-node").summary
    assert report.facts.kvm_device == str(tmp_path / "kvm") and report.facts.kvm_node is not None


def test_the_probe_records_the_resolved_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    backend = FakeBackend({Cap.HLT: 1})
    assert probe("kvm", backend=backend, refresh=True).device == str(tmp_path / "kvm")
    assert backend.opened == [str(tmp_path / "kvm")]
    assert device_path("/dev/kvm") == "/dev/kvm"


def test_an_empty_device_path_is_refused_by_the_library() -> None:
    for call in (lambda: device_path(""), lambda: probe("", backend=FakeBackend({}), refresh=True),
                 lambda: KvmDevice.open("", backend=FakeBackend({})), lambda: diagnose(device="", backend=FakeBackend({}))):
        with pytest.raises(BadDevicePath, match="empty"):
            call()


COMMANDS: List[List[str]] = [["has", "HLT"], ["dump"], ["doctor"], ["check", "qemu"], ["snapshot"],
                             ["export", "--format", "nfd"], ["diff", "preset:linux-4.14"]]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: argv[0])
def test_an_empty_device_option_is_exit_2(argv: List[str], capsys: pytest.CaptureFixture[str]) -> None:
    backend = FakeBackend({Cap.HLT: 1})
    assert main([*argv, "--device", ""], backend=backend) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "empty" in err and "--device" in err, err
    assert backend.opened == []  # nothing was asked in its place


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: argv[0])
def test_an_empty_kvmprobe_device_variable_is_exit_2(
    argv: List[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KVMPROBE_DEVICE", "")
    backend = FakeBackend({Cap.HLT: 1})
    assert main(argv, backend=backend) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "KVMPROBE_DEVICE" in err and "empty" in err, err
    assert backend.opened == []


def test_an_unset_variable_still_means_dev_kvm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KVMPROBE_DEVICE", raising=False)
    assert device_path() == "/dev/kvm"
    monkeypatch.setenv("KVMPROBE_DEVICE", "/dev/other-kvm")
    assert device_path() == "/dev/other-kvm"
    assert os.environ["KVMPROBE_DEVICE"] == "/dev/other-kvm"
