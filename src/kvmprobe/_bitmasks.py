"""The capabilities whose ``KVM_CHECK_EXTENSION`` answer is a bit mask, and the names of their bits.

Imports ``caps`` and ``_vm_types`` (the x86 VM types, re-exported here). Pure data, with one small decoder: :data:`MASKS` maps each such
capability to its bits (name, value, first release) and cites the kernel code that returns the
mask; :data:`VM_TYPES` names the x86 VM types (bit *n* of ``KVM_CAP_VM_TYPES`` is type *n*).
Only capabilities whose check answer really is the mask are here: ``KVM_CAP_X86_USER_SPACE_MSR``
and ``KVM_CAP_X86_NOTIFY_VMEXIT`` take flag bits in ``KVM_ENABLE_CAP`` but answer 0 or 1
(:data:`NOT_MASKS`), so decoding their answer would invent bits the kernel never reported.

Sources: Linux 7.1.5 as imported at danayer/linux-7.1.5@7d33d86d5512 (an unmodified stable
tarball; the uapi headers match a second import, rikudousennin22/linux-7.1.3), dates from the
uapi headers of earlier releases (docs/research/confidential.md, section 0). ``tests/unit/test_bitmasks.py``
checks every bit this machine's ``<linux/kvm.h>`` and ``<asm/kvm.h>`` define against the table.
"""

from __future__ import annotations

from ._vm_types import VM_TYPES, VmType, vm_type
from .caps import Cap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, NamedTuple, Optional, Tuple
else:
    from ._value import NamedTuple

__all__ = ["MASKS", "NOT_MASKS", "VM_TYPES", "Bit", "Decoded", "Mask", "VmType", "decode_mask", "vm_type"]

# The Linux tree the citations below point into.
_LINUX = "danayer/linux-7.1.5@7d33d86d5512"


class Bit(NamedTuple):
    """One bit of a mask: its value (``1 << n``), the kernel's name and the first release whose uapi
    header has it (``"<=6.8"``: in 6.8 already, earlier headers not examined; ``""``: not dated)."""

    value: int
    name: str
    since: str


class Mask(NamedTuple):
    """A capability whose check answer is a mask: its bits, the arch whose kernel returns it
    (``""``: every one), the prefix its bit names share (dropped for short label names), what the
    kernel answers, and where that is written."""

    cap: Cap
    bits: Tuple[Bit, ...]
    arch: str
    prefix: str
    answer: str
    source: str

    def short(self, bit: Bit) -> str:
        """The bit's name without the shared prefix, lowercased: ``use_32bit_ids``."""
        name = bit.name[len(self.prefix):] if bit.name.startswith(self.prefix) else bit.name
        return name.lower()




def _bits(*rows: Tuple[int, str, str]) -> Tuple[Bit, ...]:
    return tuple(Bit(value, name, since) for value, name, since in rows)


def _block_sizes() -> Tuple[Bit, ...]:
    # Bit N: blocks of 2**N bytes (arch/arm64/include/asm/kvm_pgtable.h:188-197); named as sizes.
    units = ((40, "T"), (30, "G"), (20, "M"), (10, "K"))
    rows = []
    for shift in range(12, 53):
        exponent, unit = next((e, u) for e, u in units if shift >= e)
        rows.append(Bit(1 << shift, f"BLOCK_{1 << (shift - exponent)}{unit}", "6.5"))
    return tuple(rows)


MASKS: Dict[Cap, Mask] = {
    mask.cap: mask
    for mask in (
        Mask(Cap.VM_TYPES, tuple(Bit(1 << vm.number, vm.name, vm.since) for vm in VM_TYPES), "x86_64",
             "KVM_X86_", "kvm_caps.supported_vm_types: bit n = VM type n",
             f"{_LINUX} arch/x86/include/uapi/asm/kvm.h:968-973; arch/x86/kvm/x86.c:4991-4993"),
        Mask(Cap.X2APIC_API, _bits(
            (0x1, "KVM_X2APIC_API_USE_32BIT_IDS", "4.8"),
            (0x2, "KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK", "4.8"),
            (0x4, "KVM_X2APIC_ENABLE_SUPPRESS_EOI_BROADCAST", "7.0"),
            (0x8, "KVM_X2APIC_DISABLE_SUPPRESS_EOI_BROADCAST", "7.0"),
        ), "x86_64", "KVM_X2APIC_", "KVM_X2APIC_API_VALID_FLAGS (on a VM fd without a split irqchip, without bit 2)",
             f"{_LINUX} arch/x86/include/uapi/asm/kvm.h:920-923; arch/x86/kvm/x86.c:4946-4950"),
        Mask(Cap.X86_DISABLE_EXITS, _bits(
            (0x1, "KVM_X86_DISABLE_EXITS_MWAIT", "4.12"),
            (0x2, "KVM_X86_DISABLE_EXITS_HLT", "4.17"),
            (0x4, "KVM_X86_DISABLE_EXITS_PAUSE", "4.17"),
            (0x8, "KVM_X86_DISABLE_EXITS_CSTATE", "<=6.8"),
            (0x10, "KVM_X86_DISABLE_EXITS_APERFMPERF", "6.17"),
        ), "x86_64", "KVM_X86_DISABLE_EXITS_",
             "the exits a VM may disable: PAUSE always, APERFMPERF with the CPU feature, HLT/CSTATE/MWAIT "
             "only when mitigate_smt_rsb is off",
             f"{_LINUX} include/uapi/linux/kvm.h:667-671; arch/x86/kvm/x86.c:4739-4754"),
        Mask(Cap.X86_BUS_LOCK_EXIT, _bits(
            (0x1, "KVM_BUS_LOCK_DETECTION_OFF", "5.12"),
            (0x2, "KVM_BUS_LOCK_DETECTION_EXIT", "5.12"),
        ), "x86_64", "KVM_BUS_LOCK_DETECTION_", "OFF|EXIT when the CPU has bus-lock exits, else 0",
             f"{_LINUX} include/uapi/linux/kvm.h:1543-1544; arch/x86/kvm/x86.c:4969-4975"),
        Mask(Cap.EXIT_HYPERCALL, _bits(
            (1 << 12, "KVM_HC_MAP_GPA_RANGE", "5.14"),
        ), "x86_64", "KVM_HC_", "KVM_EXIT_HYPERCALL_VALID_MASK: the hypercalls KVM can forward to userspace",
             f"{_LINUX} include/uapi/linux/kvm_para.h:32; arch/x86/kvm/x86.c:122, 4880-4882"),
        Mask(Cap.PMU_CAPABILITY, _bits(
            (0x1, "KVM_PMU_CAP_DISABLE", "5.18"),
        ), "x86_64", "KVM_PMU_CAP_", "KVM_PMU_CAP_DISABLE when enable_pmu, else 0",
             f"{_LINUX} include/uapi/linux/kvm.h:1546; arch/x86/kvm/x86.c:124, 4982-4984"),
        Mask(Cap.DISABLE_QUIRKS2, _bits(
            (0x1, "KVM_X86_QUIRK_LINT0_REENABLED", "<=6.8"),
            (0x2, "KVM_X86_QUIRK_CD_NW_CLEARED", "<=6.8"),
            (0x4, "KVM_X86_QUIRK_LAPIC_MMIO_HOLE", "<=6.8"),
            (0x8, "KVM_X86_QUIRK_OUT_7E_INC_RIP", "<=6.8"),
            (0x10, "KVM_X86_QUIRK_MISC_ENABLE_NO_MWAIT", "<=6.8"),
            (0x20, "KVM_X86_QUIRK_FIX_HYPERCALL_INSN", "<=6.8"),
            (0x40, "KVM_X86_QUIRK_MWAIT_NEVER_UD_FAULTS", "<=6.8"),
            (0x80, "KVM_X86_QUIRK_SLOT_ZAP_ALL", "6.12"),
            (0x100, "KVM_X86_QUIRK_STUFF_FEATURE_MSRS", "6.13"),
            (0x200, "KVM_X86_QUIRK_IGNORE_GUEST_PAT", "<=6.16"),
            (0x400, "KVM_X86_QUIRK_VMCS12_ALLOW_FREEZE_IN_SMM", "7.0"),
        ), "x86_64", "KVM_X86_QUIRK_",
             "kvm_caps.supported_quirks (IGNORE_GUEST_PAT dropped without TDP, or on VMX without self-snoop)",
             f"{_LINUX} arch/x86/include/uapi/asm/kvm.h:469-479; arch/x86/kvm/x86.c:10169; vmx/vmx.c:8805-8806"),
        Mask(Cap.MEMORY_ATTRIBUTES, _bits(
            (0x8, "KVM_MEMORY_ATTRIBUTE_PRIVATE", "6.8"),
        ), "", "KVM_MEMORY_ATTRIBUTE_",
             "on /dev/kvm PRIVATE whenever CONFIG_KVM_GENERIC_MEMORY_ATTRIBUTES is built; on a VM fd only for "
             "private-memory VM types",
             f"{_LINUX} include/uapi/linux/kvm.h:1651; virt/kvm/kvm_main.c:2421-2428, 4925-4928"),
        Mask(Cap.GUEST_MEMFD_FLAGS, _bits(
            (0x1, "GUEST_MEMFD_FLAG_MMAP", "6.18"),
            (0x2, "GUEST_MEMFD_FLAG_INIT_SHARED", "6.18"),
        ), "", "GUEST_MEMFD_FLAG_", "the KVM_CREATE_GUEST_MEMFD flags this VM (or /dev/kvm: any VM) may use",
             f"{_LINUX} include/uapi/linux/kvm.h:1653-1655; include/linux/kvm_host.h:735-743"),
        Mask(Cap.SYNC_REGS, _bits(
            (0x1, "KVM_SYNC_X86_REGS", ""),
            (0x2, "KVM_SYNC_X86_SREGS", ""),
            (0x4, "KVM_SYNC_X86_EVENTS", ""),
        ), "x86_64", "KVM_SYNC_X86_", "KVM_SYNC_X86_VALID_FIELDS, 0 for VMs with protected state",
             f"{_LINUX} arch/x86/include/uapi/asm/kvm.h:448-452; arch/x86/kvm/x86.c:4784-4787"),
        Mask(Cap.ADJUST_CLOCK, _bits(
            (0x2, "KVM_CLOCK_TSC_STABLE", ""),
            (0x4, "KVM_CLOCK_REALTIME", ""),
            (0x8, "KVM_CLOCK_HOST_TSC", ""),
        ), "x86_64", "KVM_CLOCK_", "KVM_CLOCK_VALID_FLAGS",
             f"{_LINUX} include/uapi/linux/kvm.h:1085-1087; arch/x86/include/asm/kvm_host.h:2516-2517"),
        Mask(Cap.XEN_HVM, _bits(
            (0x1, "KVM_XEN_HVM_CONFIG_HYPERCALL_MSR", ""),
            (0x2, "KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL", ""),
            (0x4, "KVM_XEN_HVM_CONFIG_SHARED_INFO", ""),
            (0x8, "KVM_XEN_HVM_CONFIG_RUNSTATE", ""),
            (0x10, "KVM_XEN_HVM_CONFIG_EVTCHN_2LEVEL", ""),
            (0x20, "KVM_XEN_HVM_CONFIG_EVTCHN_SEND", ""),
            (0x40, "KVM_XEN_HVM_CONFIG_RUNSTATE_UPDATE_FLAG", ""),
            (0x80, "KVM_XEN_HVM_CONFIG_PVCLOCK_TSC_UNSTABLE", ""),
            (0x100, "KVM_XEN_HVM_CONFIG_SHARED_INFO_HVA", ""),
        ), "x86_64", "KVM_XEN_HVM_CONFIG_", "the Xen emulation features KVM offers (RUNSTATE bits only with sched_info)",
             f"{_LINUX} arch/x86/include/uapi/asm/kvm.h:590-598"),
        Mask(Cap.ARM_SUPPORTED_BLOCK_SIZES, _block_sizes(), "aarch64", "",
             "bit N: blocks of 2**N bytes may be used for eager page splitting",
             f"{_LINUX} arch/arm64/include/asm/kvm_pgtable.h:188-197; arch/arm64/kvm/arm.c:475-477"),
        Mask(Cap.ARM_SUPPORTED_REG_MASK_RANGES, _bits(
            (0x1, "KVM_ARM_FEATURE_ID_RANGE", "6.7"),
        ), "aarch64", "KVM_ARM_", "BIT(0): the feature-ID-register range of KVM_ARM_GET_REG_WRITABLE_MASKS",
             f"{_LINUX} include/uapi/linux/kvm.h:980; arch/arm64/kvm/arm.c:478-479"),
    )
}  # fmt: skip

#: Capabilities with flag bits whose check answer is *not* the mask, and why.
NOT_MASKS: Dict[Cap, str] = {
    Cap.X86_USER_SPACE_MSR: "answers 1; its bits are KVM_ENABLE_CAP arguments (arch/x86/kvm/x86.c:4853)",
    Cap.X86_NOTIFY_VMEXIT: "answers 0 or 1 (has_notify_vmexit, VMX only); its bits are KVM_ENABLE_CAP "
    "arguments (arch/x86/kvm/x86.c:4988-4990)",
}


class Decoded(NamedTuple):
    """A mask as names: the bits the table knows, and the bits it does not (``unknown``).

    Example:
        >>> decode_mask(Cap.VM_TYPES, 0x41)
        Decoded(value=65, names=('KVM_X86_DEFAULT_VM',), unknown=64)
        >>> decode_mask(Cap.VM_TYPES, 0x41).text()
        'KVM_X86_DEFAULT_VM|0x40'
    """

    value: int
    names: Tuple[str, ...]
    unknown: int

    def text(self) -> str:
        """``NAME|NAME|0x40``; ``0`` for no bit at all."""
        parts = list(self.names) + ([hex(self.unknown)] if self.unknown else [])
        return "|".join(parts) if parts else "0"


def decode_mask(cap: Cap, value: int, arch: Optional[str] = None) -> Optional[Decoded]:
    """The bit names in ``value``, the answer of bit-mask capability ``cap``; ``None`` for a
    capability whose answer is no mask, or whose bits belong to another architecture than ``arch``.

    Example:
        >>> decode_mask(Cap.X2APIC_API, 3).names
        ('KVM_X2APIC_API_USE_32BIT_IDS', 'KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK')
        >>> decode_mask(Cap.NR_MEMSLOTS, 32764) is None, decode_mask(Cap.X2APIC_API, 3, "aarch64") is None
        (True, True)
    """
    mask = MASKS.get(cap)
    if mask is None or value < 0 or (arch is not None and mask.arch and mask.arch != arch):
        return None
    names = tuple(bit.name for bit in mask.bits if value & bit.value)
    known = sum(bit.value for bit in mask.bits)
    return Decoded(value, names, value & ~known)
