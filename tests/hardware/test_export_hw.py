"""``kvmprobe export`` on this machine's real KVM, checked against raw ioctls and sysfs read here."""

from __future__ import annotations

import fcntl
import os
import platform
from pathlib import Path
from typing import Dict, Optional, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kvmprobe import Cap
from kvmprobe._cli import main
from kvmprobe.export import DEFAULT_PREFIX

from _helpers import kvmprobe_as_nobody, open_fds  # noqa: I001
from _k8s import k8s_key_ok, k8s_value_ok
from _helpers import RAW_KVM_CREATE_VM, RAW_KVM_GET_API_VERSION, raw_check_extension

pytestmark = pytest.mark.kvm


Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


def samples_of(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def raw_nested() -> Optional[bool]:
    """The nested parameter as sysfs says, read here without kvmprobe (None: no such file)."""
    # The vendor module holds it; where KVM is one built-in piece (arm64, s390x), the kvm module.
    modules = ["kvm_intel", "kvm_amd", "kvm_hv"] + ([] if platform.machine() == "x86_64" else ["kvm"])
    for module in modules:
        path = f"/sys/module/{module}/parameters/nested"
        if os.path.exists(path):
            with open(path) as handle:
                return handle.read().strip() in ("Y", "y", "1")
    return None


def export(fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    target = tmp_path / ("kvmprobe.prom" if fmt == "prometheus" else "kvmprobe")
    code = main(["export", "--format", fmt, "-o", str(target)])
    assert code == 0, capsys.readouterr().err
    return target.read_text()


def test_prometheus_values_equal_the_raw_ioctls(raw_kvm_fd: int, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    samples = samples_of(export("prometheus", tmp_path, capsys))
    assert samples[("kvm_api_version", ())] == fcntl.ioctl(raw_kvm_fd, RAW_KVM_GET_API_VERSION, 0)
    for cap in Cap:
        key = ("kvm_capability", (("name", cap.c_name), ("number", str(int(cap)))))
        assert samples[key] == raw_check_extension(raw_kvm_fd, int(cap)), cap.c_name
    # kvm_usable 1 claims a VM can be created: create one here, without kvmprobe.
    vm_fd = fcntl.ioctl(raw_kvm_fd, RAW_KVM_CREATE_VM, 0)
    os.close(vm_fd)
    assert samples[("kvm_usable", ())] == 1
    nested = raw_nested()
    if nested is None:
        assert not any(name == "kvm_nested_enabled" for name, _ in samples)
    else:
        assert samples[("kvm_nested_enabled", ())] == int(nested)
    info = [dict(labels) for name, labels in samples if name == "kvm_probe_info"]
    assert info[0]["kernel"] == os.uname().release and info[0]["source"] == "live"


def test_nfd_labels_equal_the_raw_ioctls(raw_kvm_fd: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = export("nfd", tmp_path, capsys)
    labels: Dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            assert k8s_key_ok(key) and k8s_value_ok(value), line
            labels[key] = value
    assert labels[f"{DEFAULT_PREFIX}/kvm.usable"] == "true"
    for cap in Cap:
        raw = raw_check_extension(raw_kvm_fd, int(cap))
        label = labels.get(f"{DEFAULT_PREFIX}/kvm.cap.{cap.name.lower()}")
        assert label == (str(raw) if raw > 0 else None), cap.c_name
    assert (tmp_path / "kvmprobe").stat().st_mode & 0o777 == 0o644


def test_exporting_leaves_no_fd_open(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = open_fds()
    for _ in range(5):
        export("prometheus", tmp_path, capsys)
        export("nfd", tmp_path, capsys)
    assert open_fds().keys() == before.keys()


def test_as_an_unprivileged_user_the_export_says_not_usable(tmp_path: Path) -> None:
    proc = kvmprobe_as_nobody("export", "--format", "prometheus")
    assert proc.returncode == 3 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    samples = samples_of(proc.stdout)
    assert samples[("kvm_usable", ())] == 0
    assert samples[("kvm_unavailable", (("reason", "permission-denied"),))] == 1
    assert all(v == 0 for (name, _), v in samples.items() if name == "kvm_vmm_ready")
