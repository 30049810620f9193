"""ioctl numbers per architecture: the generic layout and the powerpc/mips/sparc one."""

from __future__ import annotations

import pytest

from kvmprobe import UnsupportedPlatform
from kvmprobe._ioctl import GENERIC, POWERPC, KvmIoctls, layout_for


@pytest.mark.parametrize("machine", ["x86_64", "aarch64", "riscv64", "s390x", "loongarch64", "arm64", "i686"])
def test_generic_arches(machine: str) -> None:
    numbers = KvmIoctls.for_machine(machine)
    assert (numbers.KVM_GET_API_VERSION, numbers.KVM_CREATE_VM, numbers.KVM_CHECK_EXTENSION) == (
        0xAE00, 0xAE01, 0xAE03)


@pytest.mark.parametrize("machine", ["ppc64", "ppc64le", "mips64", "mips", "sparc64", "alpha"])
def test_powerpc_style_arches(machine: str) -> None:
    numbers = KvmIoctls.for_machine(machine)
    assert (numbers.KVM_GET_API_VERSION, numbers.KVM_CREATE_VM, numbers.KVM_CHECK_EXTENSION) == (
        0x2000AE00, 0x2000AE01, 0x2000AE03)


def test_ioc_with_size_and_direction() -> None:
    # _IOR(KVMIO, 0x05, struct kvm_msr_list) style: direction and size land in the high bits.
    assert GENERIC.ioc(GENERIC.read, 0xAE, 0x02, 4) == 0x8004AE02
    assert POWERPC.ioc(POWERPC.read, 0xAE, 0x02, 4) == 0x4004AE02
    assert GENERIC.ioc(GENERIC.write | GENERIC.read, 0xAE, 0x05, 8) == 0xC008AE05
    with pytest.raises(ValueError):
        POWERPC.ioc(POWERPC.read, 0xAE, 0, 1 << 13)


def test_unknown_arch_is_a_clear_error() -> None:
    with pytest.raises(UnsupportedPlatform, match="'vax'"):
        layout_for("vax")
