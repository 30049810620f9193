"""The CPU architectures kvmprobe knows, and the spellings ``uname -m`` gives them: one list.

Imports nothing from the package. :data:`ARCHES` are the architectures kvmprobe supports (the
ones rust-vmm kvm-ioctls gates ``Cap`` on, and the ones VMM profiles are written for); every
other module asks here instead of keeping a list of its own. How ioctl numbers are encoded per
architecture family is ``_ioctl``'s business (it knows more families than are supported).
"""

from __future__ import annotations

__all__ = ["ARCHES", "KVM_BUILT_IN", "canonical", "is_x86", "supported_text"]

#: The supported architectures, in ``uname -m`` spelling.
ARCHES = ("x86_64", "aarch64", "riscv64", "s390x")

# Other spellings of the same architectures (the BSD and Debian names).
_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}

# Every x86 spelling, 32-bit included: where VT-x/AMD-V, CPUID and MSRs apply.
_X86 = ("x86_64", "i386", "i486", "i586", "i686")

#: Where KVM is one piece of the kernel (no vendor module; its parameters under
#: /sys/module/kvm): arm64 cannot build it as a module since Linux 5.x (arch/arm64/kvm/Kconfig).
KVM_BUILT_IN = ("aarch64", "riscv64", "s390x", "loongarch64")


def canonical(machine: str) -> str:
    """The kvmprobe name of a ``uname -m`` spelling (``arm64`` is ``aarch64``); others as given.

    Example:
        >>> canonical("arm64"), canonical("amd64"), canonical("s390x"), canonical("ppc64le")
        ('aarch64', 'x86_64', 's390x', 'ppc64le')
    """
    name = machine.strip().lower()
    return _ALIASES.get(name, name)


def is_x86(machine: str) -> bool:
    """Whether ``machine`` is an x86 spelling (where VT-x/AMD-V, CPUID and MSRs apply).

    Example:
        >>> is_x86("x86_64"), is_x86("i686"), is_x86("aarch64")
        (True, True, False)
    """
    return canonical(machine) in _X86


def supported_text() -> str:
    """``"x86_64, aarch64, riscv64 and s390x"``, for messages.

    Example:
        >>> supported_text()
        'x86_64, aarch64, riscv64 and s390x'
    """
    return ", ".join(ARCHES[:-1]) + " and " + ARCHES[-1]
