"""Linux ``_IOC`` encoding per architecture, and the KVM ioctl numbers kvmprobe issues.

Imports only ``errors`` and ``_arch``. Numbers are computed, never copied, so that they are right on
every architecture: x86_64, aarch64, riscv64, s390x and loongarch64 use the generic layout of
``include/uapi/asm-generic/ioctl.h``; powerpc, mips, sparc and alpha use their own
(``arch/<arch>/include/uapi/asm/ioctl.h``: 13 size bits, 3 direction bits, ``_IOC_NONE`` = 1).
"""

from __future__ import annotations

import os

from ._arch import supported_text
from .errors import UnsupportedPlatform

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, NamedTuple, Optional
else:
    from ._value import NamedTuple

#: ``KVMIO`` in ``include/uapi/linux/kvm.h``.
KVMIO = 0xAE

#: ``KVM_API_VERSION``: the only version the kernel has answered since Linux 2.6.22.
KVM_API_VERSION = 12


class IocLayout(NamedTuple):
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


# The sizes of the structures the ioctls below carry, as ``_IOW``/``_IOR``/``_IOWR`` encode them
# (include/uapi/linux/kvm.h; the x86 ones arch/x86/include/uapi/asm/kvm.h, x86_64 layout). The
# numbers are computed for every architecture; those of x86-only structures mean nothing elsewhere.
_SIZES = {
    "kvm_msr_list": 4,  # __u32 nmsrs; then the indices
    "kvm_cpuid2": 8,  # __u32 nent, padding; then the entries
    "kvm_msrs": 8,  # __u32 nmsrs, pad; then the entries
    "kvm_userspace_memory_region": 32,  # slot, flags, guest_phys_addr, memory_size, userspace_addr
    "kvm_regs": 144,  # 18 x __u64 (x86)
    "kvm_sregs": 312,  # segments, dtables, control registers, interrupt bitmap (x86)
    "kvm_device_attr": 24,  # flags, group, attr, addr
    "unsigned long": 8,  # KVM_MEMORY_ENCRYPT_OP's argument type (LP64)
}


class KvmIoctls:
    """The KVM ioctl numbers for one architecture (names as in ``kvm.h``).

    System ioctls (on ``/dev/kvm``), VM ioctls and vCPU ioctls, each ``_IO``/``_IOR``/``_IOW``/
    ``_IOWR`` of ``KVMIO`` with its number and structure size, computed for the architecture's
    layout. Only the numbers are here; the structures are laid out where they are used.

    Example:
        >>> numbers = KvmIoctls.for_machine("x86_64")
        >>> hex(numbers.KVM_GET_API_VERSION), hex(numbers.KVM_CREATE_VM), hex(numbers.KVM_CHECK_EXTENSION)
        ('0xae00', '0xae01', '0xae03')
        >>> hex(numbers.KVM_GET_SUPPORTED_CPUID), hex(numbers.KVM_RUN)
        ('0xc008ae05', '0xae80')
    """

    __slots__ = (
        "machine", "KVM_GET_API_VERSION", "KVM_CREATE_VM", "KVM_GET_MSR_INDEX_LIST", "KVM_CHECK_EXTENSION",
        "KVM_GET_VCPU_MMAP_SIZE", "KVM_GET_SUPPORTED_CPUID", "KVM_GET_EMULATED_CPUID",
        "KVM_GET_MSR_FEATURE_INDEX_LIST", "KVM_CREATE_VCPU", "KVM_SET_USER_MEMORY_REGION", "KVM_SET_TSS_ADDR",
        "KVM_MEMORY_ENCRYPT_OP", "KVM_RUN", "KVM_GET_REGS", "KVM_SET_REGS", "KVM_GET_SREGS", "KVM_SET_SREGS",
        "KVM_GET_MSRS", "KVM_SET_CPUID2", "KVM_GET_TSC_KHZ", "KVM_SET_DEVICE_ATTR", "KVM_GET_DEVICE_ATTR",
        "KVM_HAS_DEVICE_ATTR",
    )  # fmt: skip

    machine: str
    # system ioctls
    KVM_GET_API_VERSION: int
    KVM_CREATE_VM: int
    KVM_GET_MSR_INDEX_LIST: int
    KVM_CHECK_EXTENSION: int
    KVM_GET_VCPU_MMAP_SIZE: int
    KVM_GET_SUPPORTED_CPUID: int
    KVM_GET_EMULATED_CPUID: int
    KVM_GET_MSR_FEATURE_INDEX_LIST: int
    # VM ioctls
    KVM_CREATE_VCPU: int
    KVM_SET_USER_MEMORY_REGION: int
    KVM_SET_TSS_ADDR: int
    KVM_MEMORY_ENCRYPT_OP: int
    # vCPU ioctls (KVM_GET_MSRS and the device attributes also work on the system fd)
    KVM_RUN: int
    KVM_GET_REGS: int
    KVM_SET_REGS: int
    KVM_GET_SREGS: int
    KVM_SET_SREGS: int
    KVM_GET_MSRS: int
    KVM_SET_CPUID2: int
    KVM_GET_TSC_KHZ: int
    KVM_SET_DEVICE_ATTR: int
    KVM_GET_DEVICE_ATTR: int
    KVM_HAS_DEVICE_ATTR: int

    @classmethod
    def for_machine(cls, machine: str | None = None) -> KvmIoctls:
        """The numbers for ``machine`` (default: this one, ``uname -m``).

        Raises:
            UnsupportedPlatform: no known ioctl layout for that architecture.

        Example:
            >>> hex(KvmIoctls.for_machine("ppc64le").KVM_CHECK_EXTENSION)
            '0x2000ae03'
        """
        if machine is None:
            numbers = _BY_MACHINE.get(None)
            if numbers is not None:  # this machine's, asked of os.uname() once (every probe asks)
                return numbers
        name = (machine if machine is not None else os.uname().machine).lower()
        numbers = _BY_MACHINE.get(name)
        if numbers is None:
            layout = layout_for(name)

            def io(nr: int) -> int:
                return layout.io(KVMIO, nr)

            def ior(nr: int, struct: str) -> int:
                return layout.ioc(layout.read, KVMIO, nr, _SIZES[struct])

            def iow(nr: int, struct: str) -> int:
                return layout.ioc(layout.write, KVMIO, nr, _SIZES[struct])

            def iowr(nr: int, struct: str) -> int:
                return layout.ioc(layout.read | layout.write, KVMIO, nr, _SIZES[struct])

            numbers = _BY_MACHINE[name] = cls()
            numbers._set(
                machine=name,
                KVM_GET_API_VERSION=io(0x00),
                KVM_CREATE_VM=io(0x01),
                KVM_GET_MSR_INDEX_LIST=iowr(0x02, "kvm_msr_list"),
                KVM_CHECK_EXTENSION=io(0x03),
                KVM_GET_VCPU_MMAP_SIZE=io(0x04),
                KVM_GET_SUPPORTED_CPUID=iowr(0x05, "kvm_cpuid2"),
                KVM_GET_EMULATED_CPUID=iowr(0x09, "kvm_cpuid2"),
                KVM_GET_MSR_FEATURE_INDEX_LIST=iowr(0x0A, "kvm_msr_list"),
                KVM_CREATE_VCPU=io(0x41),
                KVM_SET_USER_MEMORY_REGION=iow(0x46, "kvm_userspace_memory_region"),
                KVM_SET_TSS_ADDR=io(0x47),
                KVM_MEMORY_ENCRYPT_OP=iowr(0xBA, "unsigned long"),
                KVM_RUN=io(0x80),
                KVM_GET_REGS=ior(0x81, "kvm_regs"),
                KVM_SET_REGS=iow(0x82, "kvm_regs"),
                KVM_GET_SREGS=ior(0x83, "kvm_sregs"),
                KVM_SET_SREGS=iow(0x84, "kvm_sregs"),
                KVM_GET_MSRS=iowr(0x88, "kvm_msrs"),
                KVM_SET_CPUID2=iow(0x90, "kvm_cpuid2"),
                KVM_GET_TSC_KHZ=io(0xA3),
                KVM_SET_DEVICE_ATTR=iow(0xE1, "kvm_device_attr"),
                KVM_GET_DEVICE_ATTR=iow(0xE2, "kvm_device_attr"),
                KVM_HAS_DEVICE_ATTR=iow(0xE3, "kvm_device_attr"),
            )
        if machine is None:
            _BY_MACHINE[None] = numbers
        return numbers

    def _set(self, **numbers: Any) -> None:
        for name, number in numbers.items():
            setattr(self, name, number)

    def __repr__(self) -> str:
        return f"KvmIoctls(machine={self.machine!r})"


_BY_MACHINE: Dict[Optional[str], KvmIoctls] = {}


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
