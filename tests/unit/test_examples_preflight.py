"""examples/preflight.py, run as a launcher would: in-process over fakes, and as a script."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from types import ModuleType

import pytest

from kvmprobe.testing import fake_kvm, fake_probe_result

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "preflight.py")


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("preflight", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_refuses_on_the_story_host_naming_the_capability(capsys: pytest.CaptureFixture[str]) -> None:
    preflight = _load()
    everything_but = {name: 1 for name in preflight.REQUIRED if name != "IMMEDIATE_EXIT"}
    with fake_kvm(fake_probe_result(everything_but, kernel="3.10.0-1160.el7.x86_64")):
        assert preflight.main([]) == 1
    err = capsys.readouterr().err
    assert "KVM_CAP_IMMEDIATE_EXIT is missing (needs Linux >= 4.11; you have 3.10.0-1160.el7.x86_64)" in err
    assert "refusing to start" in err


def test_starts_when_everything_is_there(capsys: pytest.CaptureFixture[str]) -> None:
    preflight = _load()
    with fake_kvm({name: 1 for name in preflight.REQUIRED}):
        assert preflight.main([]) == 0
    assert "all 11 required" in capsys.readouterr().out


def test_unknown_name_and_missing_device_are_clear() -> None:
    bad = subprocess.run([sys.executable, EXAMPLE, "IMEDIATE_EXIT"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "did you mean KVM_CAP_IMMEDIATE_EXIT" in bad.stderr
    gone = subprocess.run([sys.executable, EXAMPLE], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "KVMPROBE_DEVICE": "/nonexistent/kvm"})
    assert gone.returncode == 3 and "does not exist" in gone.stderr and "Traceback" not in gone.stderr
