"""KvmDevice: opening, the errno -> error mapping, and the VM fd, over fakes and real files."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from kvmprobe import (
    Cap,
    CapabilityQueryFailed,
    KvmBusy,
    KvmDevice,
    KvmIoctlError,
    KvmNotFound,
    KvmPermissionDenied,
    KvmUnavailable,
    NotAKvmDevice,
    UnsupportedPlatform,
)
from kvmprobe._backend_ctypes import CtypesBackend
from kvmprobe.device import device_path, ensure_linux, permission_hint
from kvmprobe.testing import FakeBackend

from _helpers import open_fds


def test_device_path_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KVMPROBE_DEVICE", raising=False)
    assert device_path() == "/dev/kvm"
    monkeypatch.setenv("KVMPROBE_DEVICE", "/tmp/other-kvm")
    assert device_path() == "/tmp/other-kvm"
    assert device_path("/explicit") == "/explicit"


def test_open_asks_api_version_and_closes() -> None:
    backend = FakeBackend({Cap.HLT: 1})
    with KvmDevice.open("/dev/kvm", backend=backend) as kvm:
        assert kvm.api_version() == 12
        assert kvm.has(Cap.HLT) and not kvm.has("IRQCHIP")
        assert backend.open_fds
    assert backend.open_fds == []
    assert backend.opened == ["/dev/kvm"]


@pytest.mark.parametrize("code", [errno.ENOENT, errno.ENODEV, errno.ENXIO])
def test_missing_device(code: int) -> None:
    with pytest.raises(KvmNotFound) as info:
        KvmDevice.open("/dev/kvm", backend=FakeBackend(open_errno=code))
    assert "modprobe kvm_intel, kvm_amd or kvm_pvm" in info.value.hint
    assert info.value.errno == code


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM])
def test_permission_denied_names_the_fix(code: int, tmp_path: Path) -> None:
    # The hint is the doctor's remedy for this process and this node (tests/unit/test_access.py
    # compares the two as another user); the fake refusal comes whoever runs the test.
    node = tmp_path / "kvm"
    node.write_text("")
    os.chmod(node, 0o600)
    with pytest.raises(KvmPermissionDenied) as info:
        KvmDevice.open(str(node), backend=FakeBackend(open_errno=code))
    assert "-rw-------" in info.value.message
    if os.geteuid() == 0:  # root refused: no group change can help, a policy denies it
        assert "getfacl" in info.value.hint and "ls -Z" in info.value.hint
    else:  # only root may open it: the node needs a group (here, or on the container's host)
        assert "udev rule" in info.value.hint or "KERNEL==" in info.value.hint


def test_permission_hint_for_a_group_device(tmp_path: Path) -> None:
    node = tmp_path / "kvm"
    node.write_text("")
    os.chmod(node, 0o660)
    os.chown(node, 0, 1) if os.geteuid() == 0 else None
    st = os.stat(node)
    if st.st_gid == 0 or os.geteuid() == 0 or st.st_gid in os.getgroups():
        pytest.skip("needs a node of a group this unprivileged user is not in (as root, test_access.py covers it)")
    hint = permission_hint(str(node), st)
    assert "--group-add" in hint or ("sudo usermod -aG" in hint and "log out and in again" in hint)


def test_wrong_api_version_is_not_kvm() -> None:
    backend = FakeBackend(api_version=11)
    with pytest.raises(NotAKvmDevice, match="API version 11"):
        KvmDevice.open("/dev/kvm", backend=backend)
    assert backend.open_fds == []


def test_enotty_on_api_version_is_not_kvm() -> None:
    backend = FakeBackend(fail={"KVM_GET_API_VERSION": errno.ENOTTY})
    with pytest.raises(NotAKvmDevice, match="not a KVM device"):
        KvmDevice.open("/dev/kvm", backend=backend)
    assert backend.open_fds == []


def test_regular_file_gives_enotty_for_real(tmp_path: Path) -> None:
    """A regular file opens fine; the real ioctl then fails with ENOTTY."""
    path = tmp_path / "not-kvm"
    path.write_text("hello")
    before = open_fds()
    with pytest.raises(NotAKvmDevice) as info:
        KvmDevice.open(str(path), backend=CtypesBackend())
    assert info.value.errno == errno.ENOTTY
    assert open_fds() == before


def test_missing_path_gives_enoent_for_real(tmp_path: Path) -> None:
    with pytest.raises(KvmNotFound) as info:
        KvmDevice.open(str(tmp_path / "nope"), backend=CtypesBackend())
    assert info.value.errno == errno.ENOENT


def test_directory_is_not_a_device(tmp_path: Path) -> None:
    with pytest.raises(NotAKvmDevice, match="directory"):
        KvmDevice.open(str(tmp_path), backend=CtypesBackend())


def test_dev_null_is_not_kvm() -> None:
    if not stat.S_ISCHR(os.stat("/dev/null").st_mode):
        pytest.skip("/dev/null is not a character device here")
    with pytest.raises(NotAKvmDevice):
        KvmDevice.open("/dev/null", backend=CtypesBackend())


def test_not_linux() -> None:
    with pytest.raises(UnsupportedPlatform, match="darwin"):
        ensure_linux("darwin")
    ensure_linux("linux")


def test_create_vm_closes_the_vm_fd_even_on_error() -> None:
    backend = FakeBackend({}, vm_values={Cap.X2APIC_API: 11})
    with KvmDevice.open("/dev/kvm", backend=backend) as kvm:
        with pytest.raises(RuntimeError):
            with kvm.create_vm() as vm:
                assert vm.check_extension_raw(int(Cap.X2APIC_API)) == 11
                assert len(backend.open_fds) == 2
                raise RuntimeError("boom")
        assert len(backend.open_fds) == 1
    assert backend.open_fds == []


def test_create_vm_ebusy_names_another_hypervisor() -> None:
    with KvmDevice.open("/dev/kvm", backend=FakeBackend(fail={"KVM_CREATE_VM": errno.EBUSY})) as kvm:
        with pytest.raises(KvmBusy, match="EBUSY") as info:
            with kvm.create_vm():
                pass  # pragma: no cover
    assert "VirtualBox" in info.value.hint


@pytest.mark.parametrize("code", [errno.EIO, errno.ENOMEM, errno.EFAULT, errno.EBADF])
def test_a_failed_query_is_that_query_failing_not_kvm_unavailable(code: int) -> None:
    with KvmDevice.open("/dev/kvm", backend=FakeBackend(fail={("KVM_CHECK_EXTENSION", 1): code})) as kvm:
        with pytest.raises(CapabilityQueryFailed) as info:
            kvm.check_extension(Cap.HLT)
        assert kvm.check_extension(Cap.IRQCHIP) == 0  # the device itself still answers
    err = info.value
    assert err.errno == code and not isinstance(err, KvmUnavailable)
    assert "KVM_CAP_HLT" in str(err) and errno.errorcode[code] in str(err)


def test_eintr_is_retried() -> None:
    backend = FakeBackend({Cap.HLT: 1}, eintr=3)
    with KvmDevice.open("/dev/kvm", backend=backend) as kvm:
        assert kvm.check_extension(Cap.HLT) == 1
    assert backend.eintr == 0


def test_closed_device_is_a_clear_error() -> None:
    """The kvm-ioctls 'faulty device' test: every method on a closed fd raises, none crashes."""
    kvm = KvmDevice.open("/dev/kvm", backend=FakeBackend({Cap.HLT: 1}))
    kvm.close()
    for call in (kvm.api_version, lambda: kvm.check_extension(Cap.HLT), lambda: kvm.check_many([1]), kvm.fileno):
        with pytest.raises(KvmIoctlError, match="closed"):
            call()
    with pytest.raises(KvmIoctlError):
        with kvm.create_vm():
            pass  # pragma: no cover
