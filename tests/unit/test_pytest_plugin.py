"""kvmprobe's pytest plugin, as a downstream project meets it: a fresh project, no /dev/kvm.

Each test here runs pytest in a subprocess, in a temporary project that has nothing of this
repository but the test modules it is given (no conftest, no kvmprobe configuration), so the
plugin must arrive through the ``pytest11`` entry point and register the ``kvm`` marker itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, Optional, Tuple

import pytest

import kvmprobe
from kvmprobe.pytest_plugin import FakeKvm, kvm_unavailable_reason

DOWNSTREAM = Path(__file__).resolve().parents[1] / "downstream" / "test_downstream_user.py"
HIDDEN = "/nonexistent/kvm"

RESTORE_CHECK = '''
import pytest
import kvmprobe


def test_1_installs_a_fake(fake_kvm):
    fake_kvm("linux-6.1")
    assert kvmprobe.has("IMMEDIATE_EXIT")


def test_2_the_fake_is_gone():
    # The device is hidden: with the fake removed, kvmprobe asks it again and cannot reach it.
    with pytest.raises(kvmprobe.KvmNotFound):
        kvmprobe.has("IMMEDIATE_EXIT")
'''

Outcomes = Dict[str, Tuple[str, str]]


def run_project(tmp_path: Path, modules: Dict[str, str], env: Optional[Dict[str, str]] = None) -> Tuple[int, str, Outcomes]:
    project = tmp_path / "downstream-project"
    project.mkdir()
    for name, text in modules.items():
        (project / name).write_text(text)
    # Strict, as careful projects configure pytest: an unregistered marker or any warning fails.
    (project / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers -p no:cacheprovider\nfilterwarnings = error\n")
    report = tmp_path / "report.xml"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("KVMPROBE_", "PYTEST_"))}
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "pytest", f"--junitxml={report}", "-rs", *modules],
        cwd=project, capture_output=True, text=True, env=environment, timeout=300,
    )  # fmt: skip
    outcomes: Outcomes = {}
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            kind, message = "passed", ""
            for child in case:
                if child.tag in ("skipped", "failure", "error"):
                    kind, message = child.tag, child.get("message", "")
            outcomes[case.get("name", "")] = (kind, message)
    return done.returncode, done.stdout + done.stderr, outcomes


def test_the_downstream_module_passes_with_kvm_hidden(tmp_path: Path) -> None:
    code, output, outcomes = run_project(tmp_path, {DOWNSTREAM.name: DOWNSTREAM.read_text()}, {"KVMPROBE_DEVICE": HIDDEN})
    assert code == 0, output
    plugins = next(line for line in output.splitlines() if line.startswith("plugins:"))
    assert f"kvmprobe-{kvmprobe.__version__}" in plugins  # loaded through the entry point
    skipped = {name: message for name, (kind, message) in outcomes.items() if kind == "skipped"}
    assert set(skipped) == {"test_on_a_real_kvm_host", "test_with_the_real_kvm_fixture"}, outcomes
    for message in skipped.values():
        assert message.startswith(f"no usable KVM device: {HIDDEN} does not exist"), message
        # The reason carries the fix: /dev/kvm where it is there (the path is the mistake), else load KVM.
        assert ("give --device /dev/kvm" if os.path.exists("/dev/kvm") else "hint: load the KVM module") in message
    passed = [name for name, (kind, _) in outcomes.items() if kind == "passed"]
    assert len(passed) == len(outcomes) - 2 >= 12


def test_kvmprobe_require_kvm_turns_the_skips_into_failures(tmp_path: Path) -> None:
    code, output, outcomes = run_project(
        tmp_path, {DOWNSTREAM.name: DOWNSTREAM.read_text()}, {"KVMPROBE_DEVICE": HIDDEN, "KVMPROBE_REQUIRE_KVM": "1"}
    )
    assert code == 1, output
    failed = {name for name, (kind, _) in outcomes.items() if kind in ("failure", "error")}
    assert failed == {"test_on_a_real_kvm_host", "test_with_the_real_kvm_fixture"}, outcomes
    assert "KVMPROBE_REQUIRE_KVM is set" in output


def test_fakes_are_removed_after_each_test(tmp_path: Path) -> None:
    code, output, outcomes = run_project(tmp_path, {"test_restore.py": RESTORE_CHECK}, {"KVMPROBE_DEVICE": HIDDEN})
    assert outcomes["test_1_installs_a_fake"][0] == "passed", output
    assert outcomes["test_2_the_fake_is_gone"][0] == "passed", output
    assert code == 0


def test_the_kvm_marker_is_registered_once_here(tmp_path: Path) -> None:
    # This repository registers 'kvm' in pyproject.toml; the plugin must then not add a second line.
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "pytest", "--markers", "-p", "no:cacheprovider"],
                          cwd=root, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len([line for line in done.stdout.splitlines() if line.startswith("@pytest.mark.kvm:")]) == 1


def test_importing_the_plugin_loads_nothing_else() -> None:
    # pytest imports the plugin in every run of every project that has kvmprobe installed.
    code = "import pytest, sys; import kvmprobe.pytest_plugin; print(sorted(m for m in sys.modules if 'kvmprobe' in m))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "['kvmprobe', 'kvmprobe._version', 'kvmprobe.pytest_plugin']"


def test_reason_for_a_path_that_is_no_kvm_device(tmp_path: Path) -> None:
    plain = tmp_path / "not-kvm"
    plain.write_text("")
    reason = kvm_unavailable_reason(str(plain))
    assert reason is not None and reason.startswith("no usable KVM device: ") and str(plain) in reason
    assert "\n" not in reason


def test_fake_kvm_controller_in_process() -> None:
    fake = FakeKvm()
    try:
        first = fake("linux-3.10")
        second = fake("linux-4.14", IMMEDIATE_EXIT=0)
        assert fake.host is second and kvmprobe.probe() is second
        assert not kvmprobe.has("IMMEDIATE_EXIT") and kvmprobe.has("SPLIT_IRQCHIP")
        assert first.kernel == "3.10.0-synthesized"
    finally:
        fake.close()
    assert fake.host is None
    with pytest.raises(kvmprobe.KvmUnavailable):
        kvmprobe.probe(os.path.join(os.sep, "nonexistent", "kvm"))
