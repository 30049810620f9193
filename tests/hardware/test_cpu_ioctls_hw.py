"""KvmDevice's x86 CPU queries against the kernel, through the test's own fcntl.ioctl path.

Every raw CPUID entry, the MSR lists, the feature-MSR values, the XCOMP device attribute and a
scratch vCPU's TSC rate, from both backends, against ``hardware._raw_x86`` (its own numbers and
structure layouts). Nothing is hard-coded: each answer is compared with the kernel's, now.
"""

from __future__ import annotations

import platform
from typing import Iterator

import pytest

from hardware import _raw_x86 as raw
from kvmprobe._backend_cffi import unavailable_reason
from kvmprobe._backend_select import select_backend
from kvmprobe.device import KvmDevice
from kvmprobe.errors import IoctlFailed

from _helpers import open_fds

pytestmark = [
    pytest.mark.kvm,
    pytest.mark.skipif(platform.machine() != "x86_64", reason="the CPU queries are x86 ioctls"),
]


@pytest.fixture(params=["ctypes", "cffi"])
def kvm(request: pytest.FixtureRequest) -> Iterator[KvmDevice]:
    if request.param == "cffi" and unavailable_reason():
        pytest.skip(f"the cffi backend is not built here: {unavailable_reason()}")
    with KvmDevice.open("/dev/kvm", backend=select_backend(request.param)) as device:
        yield device


def test_supported_cpuid_is_every_entry_the_kernel_answers(kvm: KvmDevice, raw_kvm_fd: int, pinned_cpu: int) -> None:
    expected = raw.cpuid(raw_kvm_fd, raw.KVM_GET_SUPPORTED_CPUID)
    assert kvm.supported_cpuid() == expected
    assert len(expected) > 1


def test_emulated_cpuid_as_the_kernel_answers(kvm: KvmDevice, raw_kvm_fd: int, pinned_cpu: int) -> None:
    try:
        expected = raw.cpuid(raw_kvm_fd, raw.KVM_GET_EMULATED_CPUID)
    except OSError as err:
        with pytest.raises(IoctlFailed) as info:
            kvm.emulated_cpuid()
        assert info.value.errno == err.errno
        return
    assert kvm.emulated_cpuid() == expected


def test_msr_lists_as_the_kernel_answers(kvm: KvmDevice, raw_kvm_fd: int) -> None:
    assert kvm.msr_index_list() == raw.msr_list(raw_kvm_fd, raw.KVM_GET_MSR_INDEX_LIST)
    assert kvm.msr_feature_index_list() == raw.msr_list(raw_kvm_fd, raw.KVM_GET_MSR_FEATURE_INDEX_LIST)


def test_feature_msr_values_as_the_kernel_answers(kvm: KvmDevice, raw_kvm_fd: int) -> None:
    expected = raw.feature_msrs(raw_kvm_fd)
    assert kvm.get_msrs(kvm.msr_feature_index_list()) == expected
    assert expected, "KVM lists no readable feature MSR here"


def test_a_feature_msr_kvm_cannot_read_hides_no_other(kvm: KvmDevice, raw_kvm_fd: int) -> None:
    listed = raw.msr_list(raw_kvm_fd, raw.KVM_GET_MSR_FEATURE_INDEX_LIST)
    unreadable = 0x0BADC0DE  # no MSR has this index (SDM Vol. 4 lists none near it)
    assert kvm.get_msrs([unreadable] + listed + [unreadable]) == raw.feature_msrs(raw_kvm_fd)


def test_xcomp_guest_supp_attribute_as_the_kernel_answers(kvm: KvmDevice, raw_kvm_fd: int) -> None:
    present = raw.has_device_attr(raw_kvm_fd, 0, 0)
    assert kvm.has_device_attr(0, 0) is present
    if not present:
        pytest.skip("this kernel has no KVM_X86_XCOMP_GUEST_SUPP attribute on /dev/kvm")
    assert kvm.get_device_attr(0, 0) == raw.device_attr(raw_kvm_fd, 0, 0)


def test_an_unknown_device_attribute_is_enxio_on_both_paths(kvm: KvmDevice, raw_kvm_fd: int) -> None:
    group = 0x7FFF  # no KVM_X86_GRP_* is this high
    assert raw.has_device_attr(raw_kvm_fd, group, 0) is False
    assert kvm.has_device_attr(group, 0) is False
    with pytest.raises(IoctlFailed) as info:
        kvm.get_device_attr(group, 0)
    assert info.value.ioctl == "KVM_GET_DEVICE_ATTR" and info.value.errno == 6  # ENXIO


def test_tsc_khz_of_a_scratch_vcpu_and_nothing_left_open(kvm: KvmDevice, raw_kvm_fd: int) -> None:
    before = open_fds()
    with kvm.create_vm() as vm:
        answered = vm.tsc_khz()
    assert open_fds() == before
    assert abs(answered - raw.tsc_khz(raw_kvm_fd)) <= 1
