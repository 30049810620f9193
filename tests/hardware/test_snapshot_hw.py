"""Recorded hosts on the real /dev/kvm: snapshot this machine, load it, every value equal to the kernel's.

The reference is the kernel itself through fcntl.ioctl on fds opened here with os.open, never
kvmprobe's own code path.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple

import jsonschema
import pytest

import kvmprobe
from kvmprobe import Cap
from kvmprobe.presets import load_preset
from kvmprobe.snapshot import load_snapshot, record

from _helpers import RAW_KVM_CREATE_VM, RAW_KVM_GET_API_VERSION, open_fds, raw_check_extension

pytestmark = pytest.mark.kvm

SRC = Path(__file__).resolve().parents[2] / "src"
SCHEMA = Path(kvmprobe.__file__).parent / "schema" / "snapshot-2.schema.json"
DOWNSTREAM = Path(__file__).resolve().parents[1] / "downstream" / "test_downstream_user.py"


def raw_answers(fd: int) -> Dict[Cap, Tuple[Optional[int], Optional[int]]]:
    """(value, errno) of KVM_CHECK_EXTENSION for every capability, asked with fcntl.ioctl."""
    answers: Dict[Cap, Tuple[Optional[int], Optional[int]]] = {}
    for cap in Cap:
        try:
            answers[cap] = (raw_check_extension(fd, int(cap)), None)
        except OSError as err:
            answers[cap] = (None, err.errno)
    return answers


@pytest.fixture
def raw_vm_fd(raw_kvm_fd: int) -> Iterator[int]:
    """A VM made with a raw KVM_CREATE_VM (type 0); closed afterwards."""
    vm = fcntl.ioctl(raw_kvm_fd, RAW_KVM_CREATE_VM, 0)
    try:
        yield vm
    finally:
        os.close(vm)


def assert_matches_the_kernel(host: kvmprobe.ProbeResult, raw_kvm_fd: int, raw_vm_fd: int) -> None:
    assert host.api_version == fcntl.ioctl(raw_kvm_fd, RAW_KVM_GET_API_VERSION, 0) == 12
    system = raw_answers(raw_kvm_fd)
    loaded = {cap: (host.values.get(cap), host.errors.get(cap)) for cap in Cap}
    assert loaded == system
    assert host.vm_values is not None, "recorded with --vm on a kernel with KVM_CAP_CHECK_EXTENSION_VM"
    vm = raw_answers(raw_vm_fd)
    assert {cap: (host.vm_values.get(cap), host.vm_errors.get(cap)) for cap in Cap} == vm
    # Not a table of zeros: the kernel answers counts (NR_MEMSLOTS) and the VM fd is really asked.
    assert host.value(Cap.NR_MEMSLOTS) > 1 and host.vm_value(Cap.NR_MEMSLOTS) == vm[Cap.NR_MEMSLOTS][0]


def test_snapshot_load_round_trip_equals_the_kernel(raw_kvm_fd: int, raw_vm_fd: int) -> None:
    before = set(open_fds())
    document = record(vm=True, refresh=True)
    assert set(open_fds()) - before == set()  # the device and VM fds were closed
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(document)
    host = load_snapshot(json.loads(json.dumps(document)))
    assert_matches_the_kernel(host, raw_kvm_fd, raw_vm_fd)
    fresh = kvmprobe.probe(refresh=True, vm=True)
    assert dict(host.values) == dict(fresh.values) and dict(host.errors) == dict(fresh.errors)
    assert host.vm_values is not None and fresh.vm_values is not None
    assert dict(host.vm_values) == dict(fresh.vm_values)
    assert host.kernel == os.uname().release and host.arch == os.uname().machine
    assert host.host is not None and host.host.kernel_release == os.uname().release


def test_the_cli_records_a_file_the_kernel_agrees_with(tmp_path: Path, raw_kvm_fd: int, raw_vm_fd: int) -> None:
    target = tmp_path / "this-host.json"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    done = subprocess.run([sys.executable, "-m", "kvmprobe", "snapshot", "--vm", "-o", str(target)],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{target}: recorded: Linux {os.uname().release}")
    assert_matches_the_kernel(load_snapshot(target), raw_kvm_fd, raw_vm_fd)
    # The same host, asked again: diff against the live host finds nothing (VM fd included).
    for extra in ([], ["--vm"]):
        diff = subprocess.run([sys.executable, "-m", "kvmprobe", "diff", str(target), *extra],
                              capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
        assert diff.returncode == 0, diff.stdout + diff.stderr
        assert diff.stdout.rstrip().endswith("equal: no differences")


def test_the_shipped_recording_is_this_kernel_when_it_runs_here(raw_kvm_fd: int) -> None:
    preset = load_preset("pvm-6.18")
    if preset.kernel != os.uname().release:
        pytest.skip(f"pvm-6.18 was recorded on another kernel build; this is {os.uname().release}")
    loaded = {cap: (preset.values.get(cap), preset.errors.get(cap)) for cap in Cap}
    assert loaded == raw_answers(raw_kvm_fd)


def test_downstream_module_with_the_real_device(tmp_path: Path) -> None:
    # The same downstream module the unit tests run with /dev/kvm hidden: here nothing skips.
    project = tmp_path / "project"
    project.mkdir()
    (project / DOWNSTREAM.name).write_text(DOWNSTREAM.read_text())
    (project / "test_mixing.py").write_text(
        "def test_real_and_fake_do_not_mix(fake_kvm, request):\n"
        "    fake_kvm('linux-6.1')\n"
        "    request.getfixturevalue('real_kvm')\n"
    )
    (project / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers -p no:cacheprovider\nfilterwarnings = error\n")
    report = tmp_path / "report.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KVMPROBE_", "PYTEST_"))}
    done = subprocess.run([sys.executable, "-m", "pytest", f"--junitxml={report}"], cwd=project,
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("skipped", "failure", "error")]
        outcomes[case.get("name")] = (kinds[0] if kinds else "passed", [c.get("message", "") for c in case])
    mixing = outcomes.pop("test_real_and_fake_do_not_mix")
    assert mixing[0] in ("failure", "error") and "do not use it together with fake_kvm" in " ".join(mixing[1])
    assert {name: kind for name, (kind, _) in outcomes.items() if kind != "passed"} == {}, done.stdout
    assert "test_on_a_real_kvm_host" in outcomes and "test_with_the_real_kvm_fixture" in outcomes
