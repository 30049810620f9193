"""ioctl numbers per architecture: the generic layout and the powerpc/mips/sparc one."""

from __future__ import annotations

import pathlib

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


# Every number KvmIoctls computes, asked of the system's own <linux/kvm.h> through a C compiler:
# an independent path (the kernel's _IOC macros and structure sizes as gcc sees them).
_HEADER_NAMES = [name for name in KvmIoctls.__slots__ if name.startswith("KVM_")]


def test_every_number_equals_the_system_kvm_header(tmp_path: pathlib.Path) -> None:
    import os
    import shutil
    import subprocess

    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not os.path.exists("/usr/include/linux/kvm.h"):
        pytest.skip("needs a C compiler and the kernel's uapi header (Debian: linux-libc-dev)")
    if os.uname().machine != "x86_64":
        pytest.skip(f"the x86 structure ioctls are compared on x86_64; this is {os.uname().machine}")
    lines = "\n".join(f'    printf("{name} %lu\\n", (unsigned long){name});' for name in _HEADER_NAMES)
    source = tmp_path / "numbers.c"
    source.write_text(f"#include <stdio.h>\n#include <linux/kvm.h>\nint main(void) {{\n{lines}\n    return 0;\n}}\n")
    binary = tmp_path / "numbers"
    subprocess.run([compiler, "-o", str(binary), str(source)], check=True, capture_output=True)
    printed = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout
    from_header = {name: int(value) for name, value in (line.split() for line in printed.splitlines())}
    ours = KvmIoctls.for_machine("x86_64")
    assert {name: getattr(ours, name) for name in _HEADER_NAMES} == from_header
