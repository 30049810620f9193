"""Linux ``_IOC`` encoding per architecture, and the KVM ioctl numbers kvmprobe issues.

Imports only ``errors``. Numbers are computed, never copied, so that they are right on
every architecture: x86_64, aarch64, riscv64, s390x and loongarch64 use the generic layout of
``include/uapi/asm-generic/ioctl.h``; powerpc, mips, sparc and alpha use their own
(``arch/<arch>/include/uapi/asm/ioctl.h``: 13 size bits, 3 direction bits, ``_IOC_NONE`` = 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict

from ._arch import supported_text
from .errors import UnsupportedPlatform

#: ``KVMIO`` in ``include/uapi/linux/kvm.h``.
KVMIO = 0xAE

#: ``KVM_API_VERSION``: the only version the kernel has answered since Linux 2.6.22.
KVM_API_VERSION = 12


@dataclass(frozen=True)
class IocLayout:
    """Bit layout of an ioctl number: the sizes of its fields and the direction values."""

    sizebits: int
    dirbits: int
    none: int
    read: int
    write: int

    def ioc(self, direction: int, type_: int, nr: int, size: int) -> int:
        """``_IOC(dir, type, nr, size)`` for this layout.

        Example:
            >>> hex(GENERIC.ioc(GENERIC.none, 0xAE, 0x03, 0))
            '0xae03'
        """
        nrshift = 0
        typeshift = nrshift + 8
        sizeshift = typeshift + 8
        dirshift = sizeshift + self.sizebits
        if not 0 <= size < (1 << self.sizebits):
            raise ValueError(f"ioctl size {size} does not fit {self.sizebits} bits")
        return (direction << dirshift) | (type_ << typeshift) | (nr << nrshift) | (size << sizeshift)

    def io(self, type_: int, nr: int) -> int:
        """``_IO(type, nr)``: an ioctl with no argument struct.

        Example:
            >>> hex(POWERPC.io(0xAE, 0x03))
            '0x2000ae03'
        """
        return self.ioc(self.none, type_, nr, 0)


GENERIC = IocLayout(sizebits=14, dirbits=2, none=0, read=2, write=1)
POWERPC = IocLayout(sizebits=13, dirbits=3, none=1, read=2, write=4)  # also mips, sparc, alpha
PARISC = IocLayout(sizebits=14, dirbits=2, none=0, read=1, write=2)

# ``uname -m`` prefixes -> layout. Order matters: the first prefix that matches wins.
_LAYOUTS: tuple[tuple[str, IocLayout], ...] = (
    ("x86_64", GENERIC),
    ("amd64", GENERIC),
    ("i386", GENERIC),
    ("i686", GENERIC),
    ("aarch64", GENERIC),
    ("arm64", GENERIC),
    ("arm", GENERIC),
    ("riscv", GENERIC),
    ("s390", GENERIC),
    ("loongarch", GENERIC),
    ("ppc", POWERPC),
    ("powerpc", POWERPC),
    ("mips", POWERPC),
    ("sparc", POWERPC),
    ("alpha", POWERPC),
    ("parisc", PARISC),
)


@dataclass(frozen=True)
class KvmIoctls:
    """The KVM ioctl numbers for one architecture (names as in ``kvm.h``).

    Example:
        >>> numbers = KvmIoctls.for_machine("x86_64")
        >>> hex(numbers.KVM_GET_API_VERSION), hex(numbers.KVM_CREATE_VM), hex(numbers.KVM_CHECK_EXTENSION)
        ('0xae00', '0xae01', '0xae03')
    """

    machine: str
    KVM_GET_API_VERSION: int
    KVM_CREATE_VM: int
    KVM_CHECK_EXTENSION: int

    @classmethod
    def for_machine(cls, machine: str | None = None) -> KvmIoctls:
        """The numbers for ``machine`` (default: this one, ``uname -m``).

        Raises:
            UnsupportedPlatform: no known ioctl layout for that architecture.

        Example:
            >>> hex(KvmIoctls.for_machine("ppc64le").KVM_CHECK_EXTENSION)
            '0x2000ae03'
        """
        name = (machine if machine is not None else os.uname().machine).lower()
        numbers = _BY_MACHINE.get(name)
        if numbers is None:
            layout = layout_for(name)
            numbers = _BY_MACHINE[name] = cls(
                machine=name,
                KVM_GET_API_VERSION=layout.io(KVMIO, 0x00),
                KVM_CREATE_VM=layout.io(KVMIO, 0x01),
                KVM_CHECK_EXTENSION=layout.io(KVMIO, 0x03),
            )
        return numbers


_BY_MACHINE: Dict[str, KvmIoctls] = {}


def layout_for(machine: str) -> IocLayout:
    """The ioctl layout of a ``uname -m`` name.

    Example:
        >>> layout_for("s390x") is GENERIC, layout_for("mips64") is POWERPC
        (True, True)
    """
    name = machine.lower()
    for prefix, layout in _LAYOUTS:
        if name.startswith(prefix):
            return layout
    raise UnsupportedPlatform(
        f"no ioctl encoding known for CPU architecture {machine!r}",
        hint=f"kvmprobe supports {supported_text()} (and encodes the other Linux KVM architectures' "
        "ioctls); please report this architecture",
    )
