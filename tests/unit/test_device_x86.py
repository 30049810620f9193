"""KvmDevice's x86 CPU queries over FakeBackend: buffer growth, recorded failures, no leaks."""

from __future__ import annotations

import errno
import os
from typing import List, Tuple

import pytest

from kvmprobe import _kvm_structs as structs
from kvmprobe._backend import Pointers
from kvmprobe._backend_ctypes import CtypesBackend
from kvmprobe.device import KvmDevice
from kvmprobe.errors import IoctlFailed, KvmIoctlError
from kvmprobe.testing import FakeBackend

Entry = Tuple[int, int, int, int, int, int, int]


def entries(count: int) -> List[Entry]:
    return [(0x80000000 + i, i % 3, i % 2, i, i * 2, i * 3, i * 4) for i in range(count)]


def test_supported_cpuid_returns_entries_in_the_kernels_order() -> None:
    answer = entries(75)
    with KvmDevice.open("/dev/kvm", backend=FakeBackend(cpuid=answer)) as kvm:
        assert kvm.supported_cpuid() == answer


def test_a_buffer_too_small_grows_until_every_entry_fits() -> None:
    backend = FakeBackend(cpuid=entries(600), emulated_cpuid=entries(3))
    with KvmDevice.open("/dev/kvm", backend=backend) as kvm:
        assert kvm.supported_cpuid() == entries(600)
        assert kvm.emulated_cpuid() == entries(3)
    asked = [name for name, _ in backend.calls if name == "KVM_GET_SUPPORTED_CPUID"]
    assert len(asked) == 3  # 256, 512, then 1024 entries


def test_e2big_past_the_bound_is_recorded_not_looped_forever() -> None:
    backend = FakeBackend(cpuid=entries(1), fail={"KVM_GET_SUPPORTED_CPUID": errno.E2BIG})
    with KvmDevice.open("/dev/kvm", backend=backend) as kvm:
        with pytest.raises(IoctlFailed) as info:
            kvm.supported_cpuid()
    assert (info.value.ioctl, info.value.errno) == ("KVM_GET_SUPPORTED_CPUID", errno.E2BIG)
    assert len([c for c in backend.calls if c[0] == "KVM_GET_SUPPORTED_CPUID"]) == 9  # 256 .. 65536


@pytest.mark.parametrize("code", [errno.ENOTTY, errno.EINVAL, errno.EPERM, errno.EFAULT])
def test_a_failing_query_names_its_ioctl_and_errno_and_leaves_the_device_usable(code: int) -> None:
    backend = FakeBackend({"HLT": 1}, cpuid=entries(2), fail={"KVM_GET_MSR_INDEX_LIST": code})
    with KvmDevice.open("/dev/kvm", backend=backend) as kvm:
        with pytest.raises(IoctlFailed) as info:
            kvm.msr_index_list()
        assert (info.value.ioctl, info.value.errno, info.value.path) == ("KVM_GET_MSR_INDEX_LIST", code, "/dev/kvm")
        assert kvm.has("HLT") and kvm.supported_cpuid() == entries(2)


def test_a_kernel_without_the_ioctls_answers_enotty_for_each() -> None:
    with KvmDevice.open("/dev/kvm", backend=FakeBackend()) as kvm:
        for query in (kvm.supported_cpuid, kvm.emulated_cpuid, kvm.msr_index_list, kvm.msr_feature_index_list):
            with pytest.raises(IoctlFailed) as info:
                query()
            assert info.value.errno == errno.ENOTTY
        with pytest.raises(IoctlFailed):
            kvm.has_device_attr(0, 0)
        with kvm.create_vm() as vm, pytest.raises(IoctlFailed) as info:
            vm.tsc_khz()
        assert info.value.ioctl == "KVM_GET_TSC_KHZ"


def test_interrupted_queries_are_asked_again() -> None:
    backend = FakeBackend(cpuid=entries(4), eintr=0)
    with KvmDevice.open("/dev/kvm", backend=backend) as kvm:
        backend.eintr = 5
        assert kvm.supported_cpuid() == entries(4)


def test_msr_lists_grow_to_the_count_the_kernel_wrote() -> None:
    indices = list(range(0x4B564D00, 0x4B564D00 + 700))
    backend = FakeBackend(msrs=indices, feature_msrs={0x8B: 1, 0x10A: 2})
    with KvmDevice.open("/dev/kvm", backend=backend) as kvm:
        assert kvm.msr_index_list() == indices
        assert kvm.msr_feature_index_list() == [0x8B, 0x10A]
    assert len([c for c in backend.calls if c[0] == "KVM_GET_MSR_INDEX_LIST"]) == 2  # 256, then 700


def test_get_msrs_reads_past_an_msr_kvm_cannot_read() -> None:
    backend = FakeBackend(feature_msrs={0x8B: 0x1000065, 0x10A: 0x400000000C000069, 0xCE: 0})
    with KvmDevice.open("/dev/kvm", backend=backend) as kvm:
        got = kvm.get_msrs([0x8B, 0x999, 0x10A, 0x998, 0xCE])
        assert got == {0x8B: 0x1000065, 0x10A: 0x400000000C000069, 0xCE: 0}
        assert kvm.get_msrs([]) == {} and kvm.get_msrs([0x999]) == {}


def test_device_attributes_answer_enxio_for_unknown_ones() -> None:
    backend = FakeBackend(device_attrs={(0, 0): 0x2E7, (1, 0): 1})
    with KvmDevice.open("/dev/kvm", backend=backend) as kvm:
        assert kvm.has_device_attr(0, 0) and kvm.has_device_attr(1, 0) and not kvm.has_device_attr(1, 1)
        assert kvm.get_device_attr(0, 0) == 0x2E7
        with pytest.raises(IoctlFailed) as info:
            kvm.get_device_attr(2, 0)
        assert info.value.errno == errno.ENXIO


def test_get_device_attr_passes_where_addr_points() -> None:
    seen: List[Tuple[Tuple[int, int], ...]] = []

    class Recording(FakeBackend):
        def ioctl_buffer(self, fd: int, request: int, buffer: bytearray, pointers: Pointers = ()) -> int:
            seen.append(tuple(pointers))
            return super().ioctl_buffer(fd, request, buffer, pointers)

    with KvmDevice.open("/dev/kvm", backend=Recording(device_attrs={(0, 0): 7})) as kvm:
        assert kvm.get_device_attr(0, 0) == 7
    assert seen == [structs.DEVICE_ATTR_POINTERS]


@pytest.mark.parametrize("failing", [None, "KVM_CREATE_VCPU", "KVM_GET_TSC_KHZ"])
def test_tsc_khz_closes_the_scratch_vcpu_on_every_path(failing: str) -> None:
    backend = FakeBackend(tsc_khz=2596122, fail={failing: errno.ENOMEM} if failing else {})
    with KvmDevice.open("/dev/kvm", backend=backend) as kvm, kvm.create_vm() as vm:
        before = list(backend.open_fds)
        if failing is None:
            assert vm.tsc_khz() == 2596122
        elif failing == "KVM_CREATE_VCPU":  # the vCPU step of create_vcpu, with its errno policy
            with pytest.raises(KvmIoctlError) as refused:
                vm.tsc_khz()
            assert refused.value.errno == errno.ENOMEM and "KVM_CREATE_VCPU" in refused.value.message
        else:
            with pytest.raises(IoctlFailed) as info:
                vm.tsc_khz()
            assert (info.value.ioctl, info.value.errno) == (failing, errno.ENOMEM)
        assert backend.open_fds == before
    assert backend.open_fds == []


def test_a_refused_scratch_vcpu_is_a_recorded_failure_of_the_cpu_record() -> None:
    from kvmprobe._cpu_record import read_kvm_cpu

    backend = FakeBackend(tsc_khz=1, fail={"KVM_CREATE_VCPU": errno.EPERM})
    with KvmDevice.open("/dev/kvm", backend=backend) as kvm, kvm.create_vm() as vm:
        record = read_kvm_cpu(kvm, vm=vm)
    assert record.tsc_khz is None and record.failure("KVM_CREATE_VCPU") == ("KVM_CREATE_VCPU", errno.EPERM)


def test_structure_readers_refuse_a_count_that_overruns_the_buffer() -> None:
    buffer = structs.cpuid2_buffer(1)
    buffer[0:4] = (5).to_bytes(4, "little")
    with pytest.raises(ValueError):
        structs.cpuid2_entries(buffer)
    short = structs.msr_list_buffer(1)
    short[0:4] = (9).to_bytes(4, "little")
    with pytest.raises(ValueError):
        structs.msr_list_indices(short)


def test_the_real_backend_restores_pointer_slots_and_checks_them() -> None:
    backend = CtypesBackend()
    fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        buffer = structs.device_attr_buffer(3, 4)
        before = bytes(buffer)
        with pytest.raises(OSError) as info:  # /dev/null knows no KVM ioctl: ENOTTY
            backend.ioctl_buffer(fd, 0xC018AEE2, buffer, structs.DEVICE_ATTR_POINTERS)
        assert info.value.errno == errno.ENOTTY
        assert bytes(buffer) == before  # no address left behind in the caller's bytearray
        buffer.extend(b"x")  # and the export is released: the bytearray may be resized again
        with pytest.raises(ValueError):
            backend.ioctl_buffer(fd, 0xC018AEE2, bytearray(8), ((4, 0),))
    finally:
        os.close(fd)
