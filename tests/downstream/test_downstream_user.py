"""Written as a downstream project would: VMM tooling tested on CI runners without /dev/kvm.

It knows nothing of kvmprobe's internals: it imports ``kvmprobe`` (the public API) and uses
the fixtures and the ``kvm`` marker of kvmprobe's pytest plugin, which pytest loads by itself
once kvmprobe is installed. ``tests/unit/test_pytest_plugin.py`` also runs this module in a
fresh project with the device pointed at a missing path; here it runs with whatever this
machine has.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import List

import pytest

import kvmprobe
from kvmprobe.pytest_plugin import FakeKvm  # for the type annotations only


def choose_vmm() -> str:
    """The downstream code under test: which VMM to launch on this host. It has no test hooks."""
    if kvmprobe.has("IMMEDIATE_EXIT") and kvmprobe.has("SPLIT_IRQCHIP"):
        return "cloud-hypervisor"
    if kvmprobe.has("IRQCHIP") and kvmprobe.has("USER_MEMORY"):
        return "qemu"
    return "none"


def memslots() -> int:
    return kvmprobe.value("NR_MEMSLOTS")


def test_a_centos7_era_kernel_gets_qemu(fake_kvm: FakeKvm) -> None:
    fake_kvm("linux-3.10")
    assert choose_vmm() == "qemu"
    assert kvmprobe.probe().kernel.startswith("3.10.")


def test_a_4_14_kernel_gets_cloud_hypervisor(fake_kvm: FakeKvm) -> None:
    host = fake_kvm("linux-4.14")
    assert choose_vmm() == "cloud-hypervisor"
    assert host.synthesized and fake_kvm.host is host


@pytest.mark.parametrize("fake_kvm", ["linux-4.14", "linux-5.4", "linux-5.10", "linux-6.1", "pvm-6.18"], indirect=True)
def test_every_newer_kernel_gets_cloud_hypervisor(fake_kvm: FakeKvm) -> None:
    assert choose_vmm() == "cloud-hypervisor"
    assert memslots() > 0


@pytest.mark.parametrize("fake_kvm", [("linux-6.1", {"SPLIT_IRQCHIP": 0})], indirect=True)
def test_a_parameter_with_overrides(fake_kvm: FakeKvm) -> None:
    assert choose_vmm() == "qemu"


def test_overrides_on_a_preset(fake_kvm: FakeKvm) -> None:
    fake_kvm("linux-6.1", IMMEDIATE_EXIT=0, NR_MEMSLOTS=509)
    assert choose_vmm() == "qemu" and memslots() == 509


def test_a_bare_dict_of_capabilities(fake_kvm: FakeKvm) -> None:
    fake_kvm({"IRQCHIP": 1})
    assert choose_vmm() == "none"
    fake_kvm({"IRQCHIP": 1, "USER_MEMORY": 1})  # a later call wins
    assert choose_vmm() == "qemu"


def test_a_snapshot_file_recorded_with_the_cli(fake_kvm: FakeKvm, tmp_path: Path) -> None:
    # In a real project the file is recorded once on a KVM host ('python -m kvmprobe snapshot
    # -o host.json') and committed; here the CLI records a preset instead.
    target = tmp_path / "host.json"
    subprocess.run([sys.executable, "-m", "kvmprobe", "snapshot", "--snapshot", "preset:linux-5.4", "-o", str(target)],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    fake_kvm(str(target))
    assert choose_vmm() == "cloud-hypervisor"
    assert kvmprobe.probe().kernel == "5.4.0-synthesized"
    assert kvmprobe.load_snapshot(target).value("NR_MEMSLOTS") == memslots()


def test_other_threads_see_the_fake_too(fake_kvm: FakeKvm) -> None:
    fake_kvm("linux-3.10")
    seen: List[str] = []
    worker = threading.Thread(target=lambda: seen.append(choose_vmm()))
    worker.start()
    worker.join()
    assert seen == ["qemu"]


def test_a_typo_in_a_preset_name_says_which_exist(fake_kvm: FakeKvm) -> None:
    with pytest.raises(kvmprobe.SnapshotError, match="did you mean linux-5.10"):
        fake_kvm("linux-5.01")


@pytest.mark.kvm
def test_on_a_real_kvm_host() -> None:
    result = kvmprobe.probe(refresh=True)
    assert result.source == "live" and result.api_version == 12


def test_with_the_real_kvm_fixture(real_kvm: kvmprobe.ProbeResult) -> None:
    assert real_kvm.source == "live" and real_kvm.api_version == 12
    assert kvmprobe.has("USER_MEMORY") == real_kvm.has("USER_MEMORY")
