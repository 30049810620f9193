"""Numbers that mean one thing in mainline Linux and another in an out-of-tree kernel series.

Imports ``caps`` and ``_bitmasks``. A tool built against a series' header (Kata's runtime, a
QEMU fork, crosvm) asks the kernel with that series' number; on a mainline kernel the same
number answers for a different capability or VM type, and the answer looks plausible. Each
:class:`Collision` names the number, the out-of-tree meaning, who uses it, the architectures it
matters on, and the source; the mainline meaning always comes from the ``Cap`` table or
:data:`~kvmprobe._bitmasks.VM_TYPES`, never repeated here. :func:`collisions` finds the entries
for a number, and :meth:`Collision.warning` is the sentence every command shows next to it.
"""

from __future__ import annotations

from ._bitmasks import vm_type
from .caps import Cap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple, Optional, Tuple
else:
    from ._value import NamedTuple

__all__ = ["COLLISIONS", "KINDS", "Collision", "collisions"]

#: What a number numbers: a capability or an x86 VM type. (Android pKVM's arm64 VM type bit 31
#: agrees with mainline's KVM_VM_TYPE_ARM_PROTECTED of 7.1, so it is no collision.)
KINDS = ("cap", "x86-vm-type")

_CROSVM = "google/crosvm@f1e797a68dad kvm_sys/bindgen.sh"


class Collision(NamedTuple):
    """One out-of-tree meaning of a number that mainline uses (or may soon use) differently.

    ``arches`` lists the architectures whose kernels carry the other meaning (``""``: any).

    Example:
        >>> found = collisions("cap", 240)[0]
        >>> found.other, found.mainline, found.mainline_since
        ('KVM_CAP_ARM_RME', 'KVM_CAP_ARM_EL2', '6.16')
    """

    kind: str
    number: int
    other: str
    who: str
    arches: str
    source: str

    @property
    def mainline(self) -> str:
        """The mainline name of the number, ``""`` when mainline has none (yet).

        Example:
            >>> collisions("cap", 240)[0].mainline
            'KVM_CAP_ARM_EL2'
        """
        if self.kind == "cap":
            try:
                return Cap(self.number).c_name
            except ValueError:
                return ""
        found = vm_type(self.number)
        return found.name if found is not None else ""

    @property
    def mainline_since(self) -> str:
        """The release that gave the number its mainline meaning (``""``: none)."""
        if self.kind == "cap" and self.mainline:
            return Cap(self.number).since_text
        found = vm_type(self.number) if self.kind == "x86-vm-type" else None
        return found.since if found is not None else ""

    def warning(self) -> str:
        """The one sentence shown next to the number.

        Example:
            >>> print(collisions("cap", 240, "aarch64")[0].warning())
            240 is KVM_CAP_ARM_EL2 in mainline Linux (since 6.16), but KVM_CAP_ARM_RME in the Arm CCA host series v8, which Kata Containers' runtime builds against
        """
        what = "x86 VM type " if self.kind == "x86-vm-type" else ""
        if self.mainline:
            head = f"{what}{self.number} is {self.mainline} in mainline Linux (since {self.mainline_since})"
        else:
            head = f"{what}{self.number} has no meaning in mainline Linux yet"
        return f"{head}, but {self.other} in {self.who}"


#: The table (docs/research/confidential.md, section 4, with its sources).
COLLISIONS: Tuple[Collision, ...] = (
    Collision("cap", 236, "KVM_CAP_USER_CONFIGURE_NONCOHERENT_DMA", "ChromeOS kernels 5.15-6.6 (crosvm)", "",
              f"{_CROSVM}:19-24; hypervisor/src/kvm/mod.rs:362-368 ('Capability ID 236 is overloaded')"),
    Collision("cap", 239, "KVM_CAP_USER_CONFIGURE_NONCOHERENT_DMA", "ChromeOS kernel 6.12 (crosvm)", "",
              f"{_CROSVM}:24"),
    Collision("cap", 240, "KVM_CAP_ARM_RME",
              "the Arm CCA host series v8, which Kata Containers' runtime builds against", "aarch64",
              "kata-containers/kata-containers@7c6ba40c54ea src/runtime/virtcontainers/hypervisor_linux_arm64.go:29-32"),
    Collision("cap", 243, "KVM_CAP_ARM_RME", "NVIDIA's Arm CCA kernels on 6.16 and the NVIDIA QEMU built for them",
              "aarch64", "https://github.com/NVIDIA/QEMU/pull/10"),
    Collision("cap", 243, "KVM_CAP_GUEST_MEMFD_MMAP", "an early revision of the guest_memfd mmap series", "",
              "strace/strace@3e4d70a5e497 src/xlat/kvm_cap.in:241"),
    Collision("cap", 244, "KVM_CAP_GUEST_MEMFD_MMAP (a yes/no answer, not flags)",
              "Linux 6.18-rc1 and the guest_memfd mmap series (renamed in 6.18-rc2)", "",
              "strace commit e4831c6ed (v6.18-rc2~13^2^2~12)"),
    Collision("cap", 244, "KVM_CAP_ARM_RME", "NVIDIA's Arm CCA kernels on 6.17 (CCA v10) and NVIDIA QEMU", "aarch64",
              "https://github.com/NVIDIA/QEMU/pull/6"),
    Collision("cap", 245, "KVM_CAP_GUEST_MEMFD_NO_DIRECT_MAP", "the guest_memfd direct-map removal series (2025)", "",
              "strace/strace@3e4d70a5e497 src/xlat/kvm_cap.in:243"),
    Collision("cap", 247, "KVM_CAP_ARM_RMI", "the Arm CCA host series v12 (2025-12-17)", "aarch64",
              "lore 20251217101125.91098-7-steven.price@arm.com ([PATCH v12 06/46] arm64: RMI: Define the user ABI)"),
    Collision("cap", 248, "KVM_CAP_ARM_RMI", "an Arm CCA host revision based on 7.0", "aarch64",
              "series diff '+#define KVM_CAP_ARM_RMI 248' (docs/research/confidential.md, section 4)"),
    Collision("cap", 249, "KVM_CAP_ARM_RMI", "the Arm CCA host series v14 (2026-05-13, on 7.1-rc1)", "aarch64",
              "cover letter cca-host/v14; strace commit 262367494"),
    Collision("cap", 250, "KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES or KVM_CAP_PPC_COMPAT_CAPS",
              "two pending series that both claim it", "",
              "series diffs on the 7.2 kvm.h (docs/research/confidential.md, section 4)"),
    Collision("cap", 300, "KVM_CAP_ARM_RME", "early Arm CCA series and kvmtool-cca (a 'FIXME' placeholder)", "aarch64",
              "series diffs '+#define KVM_CAP_ARM_RME 300' (docs/research/confidential.md, section 4)"),
    Collision("x86-vm-type", 1, "KVM_X86_TDX_VM",
              "the TDX series of 2022, and Cloud Hypervisor, whose TDX path still creates type 1", "x86_64",
              "cloud-hypervisor/cloud-hypervisor@ae44c2971c83 hypervisor/src/kvm/mod.rs:1737-1740"),
    Collision("x86-vm-type", 2, "KVM_X86_TDX_VM", "the TDX RFC of 2021, QEMU's TDX linux-headers and early Cloud "
              "Hypervisor (62abc117a)", "x86_64", "series diffs; cloud-hypervisor commit 62abc117a"),
    Collision("x86-vm-type", 3, "KVM_X86_SNP_VM", "the SEV-SNP host series while TDX was type 2 (QEMU linux-headers)",
              "x86_64", "series diffs '+#define KVM_X86_SNP_VM 3' (docs/research/confidential.md, section 4)"),
    Collision("x86-vm-type", 28, "KVM_X86_PKVM_PROTECTED_VM", "ChromeOS pKVM on x86 (crosvm)", "x86_64",
              f"{_CROSVM}:33; hypervisor/src/kvm/x86_64.rs:164-170"),
)  # fmt: skip


def collisions(kind: str, number: int, arch: Optional[str] = None) -> Tuple[Collision, ...]:
    """The out-of-tree meanings of ``number`` (a ``kind`` of :data:`KINDS`) that matter on
    ``arch`` (``None``: on any architecture).

    Example:
        >>> [c.other for c in collisions("cap", 244, "x86_64")]
        ['KVM_CAP_GUEST_MEMFD_MMAP (a yes/no answer, not flags)']
        >>> collisions("cap", 240, "x86_64"), len(collisions("cap", 240))
        ((), 1)
    """
    return tuple(
        entry
        for entry in COLLISIONS
        if entry.kind == kind and entry.number == number and (arch is None or not entry.arches or entry.arches == arch)
    )
