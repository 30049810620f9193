"""A VMM launcher's tests with kvmprobe's pytest plugin: each test picks the host KVM answers as."""

import pytest

import kvmprobe
from kvmprobe.pytest_plugin import FakeKvm  # the fixture's type, for type checkers


def pick_vmm() -> str:
    """The code under test, unchanged: it just asks kvmprobe."""
    if kvmprobe.has("IMMEDIATE_EXIT") and kvmprobe.has("SPLIT_IRQCHIP"):
        return "cloud-hypervisor"
    return "qemu"


def test_centos7_kernel_falls_back_to_qemu(fake_kvm: FakeKvm) -> None:
    fake_kvm("rhel-7.9")
    assert pick_vmm() == "qemu"


@pytest.mark.parametrize("fake_kvm", ["linux-4.14", "linux-5.4", "linux-6.1"], indirect=True)
def test_newer_kernels_get_cloud_hypervisor(fake_kvm: FakeKvm) -> None:
    assert pick_vmm() == "cloud-hypervisor"


def test_a_kernel_built_without_split_irqchip(fake_kvm: FakeKvm) -> None:
    fake_kvm("linux-6.1", SPLIT_IRQCHIP=0)
    assert pick_vmm() == "qemu"


@pytest.mark.kvm
def test_on_the_real_host(real_kvm: kvmprobe.ProbeResult) -> None:
    assert real_kvm.api_version == 12
