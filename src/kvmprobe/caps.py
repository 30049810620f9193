"""The capability table: every ``KVM_CAP_*`` constant kvmprobe knows, as the ``Cap`` enum.

Imports ``_arch`` and ``errors``. This enum *is* the single source of truth: the batch probe, the
JSON keys, the CLI listing, the VMM profiles and the snapshot presets all derive from it.

Each member is one line: ``NAME = number, since, rust_name, arches``.

* ``number``: the value of ``KVM_CAP_<NAME>`` in the kernel's ``include/uapi/linux/kvm.h``.
* ``since``: the first mainline Linux release whose header defines it (``"<=3.0"``: already
  in 3.0, earlier releases not examined). Stable and vendor kernels (RHEL's 3.10 and 4.18)
  backport many capabilities, so this is advice; the kernel's own answer is the truth.
* ``rust_name``: the variant of rust-vmm kvm-ioctls ``Cap`` in crate 0.25.0
  (``kvm-ioctls/src/cap.rs``: the rust-vmm/kvm monorepo at 3ffc9b62, 2025-12-11, which is
  0.24.0 plus ``DirtyLogRing``, then ``CounterOffset``, which the kvm-ioctls-v0.25.0 release
  notes add: "Plumb through KVM_CAP_COUNTER_OFFSET as Cap::CounterOffset"); ``""`` for the
  kernel's constants that cap.rs lacks.
* ``arches``: cap.rs's ``#[cfg(target_arch)]`` gating, ``""`` for every architecture.

The first 129 members mirror cap.rs in its order; the rest are the kernel's other
constants (Linux up to 7.2) in numeric order. A number that once had another name keeps
it in :data:`FORMER_NAMES`, dated, and ``Cap.lookup`` takes it.
"""

from __future__ import annotations

import enum
import sys

from ._arch import ARCHES
from .errors import UnknownCapability

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, FrozenSet, List, Optional, Tuple, Union

    #: Anything :meth:`Cap.lookup` resolves: a member, a number, or one of the three spellings.
    CapLike = Union["Cap", int, str]

__all__ = ["ARCHES", "FORMER_NAMES", "Cap", "CapLike", "parse_number"]


def __getattr__(name: str) -> Any:
    # CapLike is a typing alias: made on first use, so that importing caps costs no ``typing``.
    if name == "CapLike":
        from typing import Union

        alias = globals()["CapLike"] = Union["Cap", int, str]
        return alias
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _TableEnumType(enum.EnumMeta):
    """The metaclass that builds :class:`Cap` from its one-line members in a fraction of the time.

    ``enum`` spends about 15 µs on each member it creates (checks in its class dictionary, a
    search of the class's bases for descriptors of the same name, aliases): 3.5 to 5 ms for the
    244 members, the largest single cost of ``kvmprobe has`` (issue #19). This metaclass
    collects the member lines in a plain dictionary, lets ``enum`` create the class without
    them, then adds each member the way ``enum`` does for a class like this one (no aliases,
    no member name shadowing an attribute of a base): the same attributes on the member, the
    same three class tables. tests/unit/test_caps.py compares the result with ``enum``'s own
    build of the same lines, member by member.
    """

    @classmethod
    def __prepare__(metacls, cls: str, bases: Tuple[type, ...], **kwds: Any) -> Any:  # type: ignore[override]
        return _Lines()

    def __new__(metacls, cls: str, bases: Tuple[type, ...], classdict: Any, **kwds: Any) -> Any:
        namespace = super().__prepare__(cls, bases, **kwds)
        lines: List[Tuple[str, Any]] = []
        for key, item in classdict.items():
            if key[:1] == "_" or hasattr(item, "__get__") or hasattr(item, "__set__"):
                namespace[key] = item
            else:
                lines.append((key, item))
        made = super().__new__(metacls, cls, bases, namespace, **kwds)
        make = made.__dict__["_build_member"]
        names, by_name, by_value = made._member_names_, made._member_map_, made._value2member_map_
        shadowed = {key for base in made.__mro__[1:] for key in base.__dict__}
        for order, (name, args) in enumerate(lines):
            if name in shadowed:
                raise TypeError(f"{cls}.{name} would shadow an attribute of a base class")
            member = make.__func__(made, *(args if isinstance(args, tuple) else (args,)))
            if _SORT_ORDER:
                member.__dict__.update(_name_=name, __objclass__=made, _sort_order_=order)
            else:
                member.__dict__.update(_name_=name, __objclass__=made)
            if member._value_ in by_value:
                raise ValueError(f"duplicate values found in {made!r}: {name} -> {by_value[member._value_]._name_}")
            names.append(name)
            type.__setattr__(made, name, member)  # as enum does; EnumMeta.__setattr__ refuses members
            by_name[name] = member
            by_value[member._value_] = member
        return made


# enum gives each member its place in the definition order from Python 3.11 on.
_SORT_ORDER = sys.version_info >= (3, 11)


class _Lines(dict):  # type: ignore[type-arg]
    """The class body of :class:`Cap` as written, refusing a name given twice (as ``enum`` does)."""

    def __setitem__(self, key: str, item: Any) -> None:
        if key in self and key[:2] != "__":
            raise TypeError(f"{key!r} already defined as {self[key]!r}")
        super().__setitem__(key, item)


# Shared by the members that name the same architectures, or the same first release.
_ARCH_SETS: Dict[str, FrozenSet[str]] = {"": frozenset()}
_SINCE: Dict[str, Tuple[int, int]] = {}


def _since(text: str, number: int) -> Tuple[int, int]:
    """``(4, 11)`` for ``"4.11"`` and ``"<=4.11"``: the table's first releases, checked strictly."""
    major, dot, minor = text[2:].partition(".") if text[:2] == "<=" else text.partition(".")
    if not (dot and major.isdigit() and minor.isdigit() and major.isascii() and minor.isascii()):
        raise ValueError(f"bad 'since' {text!r} for capability {number}")
    return int(major), int(minor)


@enum.unique
class Cap(enum.IntEnum, metaclass=_TableEnumType):
    """A KVM capability: its number is the argument of ``KVM_CHECK_EXTENSION``.

    Members are named after the C constant without its ``KVM_CAP_`` prefix. Metadata:
    ``c_name`` (``"KVM_CAP_IMMEDIATE_EXIT"``), ``rust_name`` (``"ImmediateExit"`` or ``None``),
    ``arches`` (empty: every architecture), ``since`` (``(4, 11)``) and ``since_text``.

    Example:
        >>> Cap.IMMEDIATE_EXIT.c_name, int(Cap.IMMEDIATE_EXIT), Cap.IMMEDIATE_EXIT.since
        ('KVM_CAP_IMMEDIATE_EXIT', 136, (4, 11))
        >>> Cap.lookup("ImmediateExit") is Cap.lookup("immediate_exit") is Cap(136)
        True
    """

    rust_name: Optional[str]
    arches: FrozenSet[str]
    since: Tuple[int, int]
    since_text: str

    @classmethod
    def _build_member(cls, number: int, since: str = "", rust_name: str = "", arches: str = "") -> Cap:
        """One member from its line (the table's metaclass calls this; ``enum`` is not asked)."""
        member = int.__new__(cls, number)
        found = _ARCH_SETS.get(arches)
        if found is None:
            found = _ARCH_SETS[arches] = frozenset(arches.split(","))
        parsed = _SINCE.get(since)
        if parsed is None:
            parsed = _SINCE[since] = _since(since, number)
        member.__dict__.update(_value_=number, since=parsed, since_text=since, rust_name=rust_name or None, arches=found)
        return member

    IRQCHIP = 0, "<=3.0", "Irqchip", ""
    HLT = 1, "<=3.0", "Hlt", ""
    MMU_SHADOW_CACHE_CONTROL = 2, "<=3.0", "MmuShadowCacheControl", ""
    USER_MEMORY = 3, "<=3.0", "UserMemory", ""
    SET_TSS_ADDR = 4, "<=3.0", "SetTssAddr", ""
    VAPIC = 6, "<=3.0", "Vapic", ""
    EXT_CPUID = 7, "<=3.0", "ExtCpuid", ""
    CLOCKSOURCE = 8, "<=3.0", "Clocksource", ""
    NR_VCPUS = 9, "<=3.0", "NrVcpus", ""
    NR_MEMSLOTS = 10, "<=3.0", "NrMemslots", ""
    PIT = 11, "<=3.0", "Pit", ""
    NOP_IO_DELAY = 12, "<=3.0", "NopIoDelay", ""
    PV_MMU = 13, "<=3.0", "PvMmu", ""
    MP_STATE = 14, "<=3.0", "MpState", ""
    COALESCED_MMIO = 15, "<=3.0", "CoalescedMmio", ""
    SYNC_MMU = 16, "<=3.0", "SyncMmu", ""
    IOMMU = 18, "<=3.0", "Iommu", ""
    DESTROY_MEMORY_REGION_WORKS = 21, "<=3.0", "DestroyMemoryRegionWorks", ""
    USER_NMI = 22, "<=3.0", "UserNmi", ""
    SET_GUEST_DEBUG = 23, "<=3.0", "SetGuestDebug", "x86_64,aarch64,s390x"
    REINJECT_CONTROL = 24, "<=3.0", "ReinjectControl", "x86_64"
    IRQ_ROUTING = 25, "<=3.0", "IrqRouting", ""
    IRQ_INJECT_STATUS = 26, "<=3.0", "IrqInjectStatus", ""
    ASSIGN_DEV_IRQ = 29, "<=3.0", "AssignDevIrq", ""
    JOIN_MEMORY_REGIONS_WORKS = 30, "<=3.0", "JoinMemoryRegionsWorks", ""
    MCE = 31, "<=3.0", "Mce", "x86_64"
    IRQFD = 32, "<=3.0", "Irqfd", ""
    PIT2 = 33, "<=3.0", "Pit2", "x86_64"
    SET_BOOT_CPU_ID = 34, "<=3.0", "SetBootCpuId", ""
    PIT_STATE2 = 35, "<=3.0", "PitState2", "x86_64"
    IOEVENTFD = 36, "<=3.0", "Ioeventfd", ""
    SET_IDENTITY_MAP_ADDR = 37, "<=3.0", "SetIdentityMapAddr", ""
    XEN_HVM = 38, "<=3.0", "XenHvm", "x86_64"
    ADJUST_CLOCK = 39, "<=3.0", "AdjustClock", ""
    INTERNAL_ERROR_DATA = 40, "<=3.0", "InternalErrorData", ""
    VCPU_EVENTS = 41, "<=3.0", "VcpuEvents", "x86_64,aarch64"
    S390_PSW = 42, "<=3.0", "S390Psw", ""
    PPC_SEGSTATE = 43, "<=3.0", "PpcSegstate", ""
    HYPERV = 44, "<=3.0", "Hyperv", ""
    HYPERV_VAPIC = 45, "<=3.0", "HypervVapic", ""
    HYPERV_SPIN = 46, "<=3.0", "HypervSpin", ""
    PCI_SEGMENT = 47, "<=3.0", "PciSegment", ""
    PPC_PAIRED_SINGLES = 48, "<=3.0", "PpcPairedSingles", ""
    INTR_SHADOW = 49, "<=3.0", "IntrShadow", ""
    DEBUGREGS = 50, "<=3.0", "Debugregs", "x86_64"
    X86_ROBUST_SINGLESTEP = 51, "<=3.0", "X86RobustSinglestep", ""
    PPC_OSI = 52, "<=3.0", "PpcOsi", ""
    PPC_UNSET_IRQ = 53, "<=3.0", "PpcUnsetIrq", ""
    ENABLE_CAP = 54, "<=3.0", "EnableCap", ""
    XSAVE = 55, "<=3.0", "Xsave", "x86_64"
    XSAVE2 = 208, "5.17", "Xsave2", "x86_64"
    XCRS = 56, "<=3.0", "Xcrs", "x86_64"
    PPC_GET_PVINFO = 57, "<=3.0", "PpcGetPvinfo", ""
    PPC_IRQ_LEVEL = 58, "<=3.0", "PpcIrqLevel", ""
    ASYNC_PF = 59, "<=3.0", "AsyncPf", ""
    TSC_CONTROL = 60, "<=3.0", "TscControl", ""
    GET_TSC_KHZ = 61, "<=3.0", "GetTscKhz", ""
    PPC_BOOKE_SREGS = 62, "<=3.0", "PpcBookeSregs", ""
    SPAPR_TCE = 63, "3.1", "SpaprTce", ""
    PPC_SMT = 64, "3.1", "PpcSmt", ""
    PPC_RMA = 65, "3.1", "PpcRma", ""
    MAX_VCPUS = 66, "3.2", "MaxVcpus", ""
    MAX_VCPU_ID = 128, "4.7", "MaxVcpuId", ""
    PPC_HIOR = 67, "3.4", "PpcHior", ""
    PPC_PAPR = 68, "3.2", "PpcPapr", ""
    SW_TLB = 69, "3.4", "SwTlb", ""
    ONE_REG = 70, "3.4", "OneReg", ""
    S390_GMAP = 71, "3.1", "S390Gmap", ""
    TSC_DEADLINE_TIMER = 72, "3.2", "TscDeadlineTimer", ""
    S390_UCONTROL = 73, "3.4", "S390Ucontrol", ""
    SYNC_REGS = 74, "3.4", "SyncRegs", ""
    PCI_2_3 = 75, "3.4", "Pci23", ""
    KVMCLOCK_CTRL = 76, "3.5", "KvmclockCtrl", ""
    SIGNAL_MSI = 77, "3.5", "SignalMsi", ""
    PPC_GET_SMMU_INFO = 78, "3.5", "PpcGetSmmuInfo", ""
    S390_COW = 79, "3.5", "S390Cow", ""
    PPC_ALLOC_HTAB = 80, "3.6", "PpcAllocHtab", ""
    READONLY_MEM = 81, "3.7", "ReadonlyMem", ""
    IRQFD_RESAMPLE = 82, "3.7", "IrqfdResample", ""
    PPC_BOOKE_WATCHDOG = 83, "3.8", "PpcBookeWatchdog", ""
    PPC_HTAB_FD = 84, "3.8", "PpcHtabFd", ""
    S390_CSS_SUPPORT = 85, "3.9", "S390CssSupport", ""
    PPC_EPR = 86, "3.9", "PpcEpr", ""
    ARM_PSCI = 87, "3.9", "ArmPsci", ""
    ARM_SET_DEVICE_ADDR = 88, "3.9", "ArmSetDeviceAddr", ""
    DEVICE_CTRL = 89, "3.10", "DeviceCtrl", ""
    IRQ_MPIC = 90, "3.10", "IrqMpic", ""
    PPC_RTAS = 91, "3.10", "PpcRtas", ""
    IRQ_XICS = 92, "3.10", "IrqXics", ""
    ARM_EL1_32BIT = 93, "3.11", "ArmEl132bit", ""
    SPAPR_MULTITCE = 94, "3.12", "SpaprMultitce", ""
    EXT_EMUL_CPUID = 95, "3.13", "ExtEmulCpuid", ""
    HYPERV_TIME = 96, "3.14", "HypervTime", ""
    IOAPIC_POLARITY_IGNORED = 97, "3.15", "IoapicPolarityIgnored", ""
    ENABLE_CAP_VM = 98, "3.15", "EnableCapVm", ""
    S390_IRQCHIP = 99, "3.15", "S390Irqchip", ""
    IOEVENTFD_NO_LENGTH = 100, "3.16", "IoeventfdNoLength", ""
    VM_ATTRIBUTES = 101, "3.16", "VmAttributes", ""
    ARM_PSCI_0_2 = 102, "3.16", "ArmPsci02", ""
    PPC_FIXUP_HCALL = 103, "3.16", "PpcFixupHcall", ""
    PPC_ENABLE_HCALL = 104, "3.17", "PpcEnableHcall", ""
    CHECK_EXTENSION_VM = 105, "3.17", "CheckExtensionVm", ""
    S390_USER_SIGP = 106, "4.0", "S390UserSigp", ""
    X86_SMM = 117, "4.2", "X86Smm", "x86_64"
    SPLIT_IRQCHIP = 121, "4.4", "SplitIrqchip", "x86_64"
    ARM_PMU_V3 = 126, "4.6", "ArmPmuV3", ""
    IMMEDIATE_EXIT = 136, "4.11", "ImmediateExit", ""
    ARM_VM_IPA_SIZE = 165, "4.20", "ArmVmIPASize", ""
    MSI_DEVID = 131, "4.8", "MsiDevid", ""
    HYPERV_SYNIC = 123, "4.5", "HypervSynic", ""
    HYPERV_SYNIC2 = 148, "4.13", "HypervSynic2", ""
    GUEST_DEBUG_HW_BPS = 119, "4.3", "DebugHwBps", ""
    GUEST_DEBUG_HW_WPS = 120, "4.3", "DebugHwWps", ""
    GET_MSR_FEATURES = 153, "4.17", "GetMsrFeatures", ""
    COALESCED_PIO = 162, "4.20", "CoalescedPio", ""
    ARM_SVE = 170, "5.2", "ArmSve", "aarch64"
    ARM_PTRAUTH_ADDRESS = 171, "5.2", "ArmPtrAuthAddress", "aarch64"
    ARM_PTRAUTH_GENERIC = 172, "5.2", "ArmPtrAuthGeneric", "aarch64"
    X86_USER_SPACE_MSR = 188, "5.10", "X86UserSpaceMsr", "x86_64"
    X86_MSR_FILTER = 189, "5.10", "X86MsrFilter", "x86_64"
    EXIT_HYPERCALL = 201, "5.14", "ExitHypercall", "x86_64"
    MEMORY_FAULT_INFO = 232, "6.8", "MemoryFaultInfo", "x86_64"
    USER_MEMORY2 = 231, "6.8", "UserMemory2", ""
    GUEST_MEMFD = 234, "6.8", "GuestMemfd", ""
    MEMORY_ATTRIBUTES = 233, "6.8", "MemoryAttributes", ""
    NESTED_STATE = 157, "4.19", "NestedState", "x86_64"
    X2APIC_API = 129, "4.8", "X2ApicApi", "x86_64"
    DIRTY_LOG_RING = 192, "5.11", "DirtyLogRing", ""
    # Not gated: docs.rs's x86_64 page of kvm-ioctls 0.25.0 lists 126 variants, one more than
    # the 125 of the 128 above that an x86_64 build sees.
    COUNTER_OFFSET = 227, "6.4", "CounterOffset", ""
    # --- The kernel's other KVM_CAP_* constants, which cap.rs does not have (rust_name "") ---
    S390_VECTOR_REGISTERS = 107, "4.1"
    S390_MEM_OP = 108, "4.1"
    S390_USER_STSI = 109, "4.1"
    S390_SKEYS = 110, "4.1"
    MIPS_FPU = 111, "4.1"
    MIPS_MSA = 112, "4.1"
    S390_INJECT_IRQ = 113, "4.1"
    S390_IRQ_STATE = 114, "4.1"
    PPC_HWRNG = 115, "4.1"
    DISABLE_QUIRKS = 116, "4.2"
    MULTI_ADDRESS_SPACE = 118, "4.2"
    IOEVENTFD_ANY_LENGTH = 122, "4.4"
    S390_RI = 124, "4.5"
    SPAPR_TCE_64 = 125, "4.6"
    VCPU_ATTRIBUTES = 127, "4.6"
    S390_USER_INSTR0 = 130, "4.8"
    PPC_HTM = 132, "4.8"
    SPAPR_RESIZE_HPT = 133, "4.11"
    PPC_MMU_RADIX = 134, "4.11"
    PPC_MMU_HASH_V3 = 135, "4.11"
    MIPS_VZ = 137, "4.12"
    MIPS_TE = 138, "4.12"
    MIPS_64BIT = 139, "4.12"
    S390_GS = 140, "4.12"
    S390_AIS = 141, "4.12"
    SPAPR_TCE_VFIO = 142, "4.12"
    X86_DISABLE_EXITS = 143, "4.17"
    ARM_USER_IRQ = 144, "4.12"
    S390_CMMA_MIGRATION = 145, "4.13"
    PPC_FWNMI = 146, "4.13"
    PPC_SMT_POSSIBLE = 147, "4.13"
    HYPERV_VP_INDEX = 149, "4.13"
    S390_AIS_MIGRATION = 150, "4.15"
    PPC_GET_CPU_CHAR = 151, "4.15"
    S390_BPB = 152, "4.15"
    HYPERV_EVENTFD = 154, "4.17"
    HYPERV_TLBFLUSH = 155, "4.18"
    S390_HPAGE_1M = 156, "4.19"
    ARM_INJECT_SERROR_ESR = 158, "4.19"
    MSR_PLATFORM_INFO = 159, "4.19"
    PPC_NESTED_HV = 160, "4.20"
    HYPERV_SEND_IPI = 161, "4.20"
    HYPERV_ENLIGHTENED_VMCS = 163, "4.20"
    EXCEPTION_PAYLOAD = 164, "4.20"
    MANUAL_DIRTY_LOG_PROTECT = 166, "5.0"
    HYPERV_CPUID = 167, "5.0"
    MANUAL_DIRTY_LOG_PROTECT2 = 168, "5.2"
    PPC_IRQ_XIVE = 169, "5.2"
    PMU_EVENT_FILTER = 173, "5.3"
    ARM_IRQ_LINE_LAYOUT_2 = 174, "5.4"
    HYPERV_DIRECT_TLBFLUSH = 175, "5.4"
    PPC_GUEST_DEBUG_SSTEP = 176, "5.5"
    ARM_NISV_TO_USER = 177, "5.5"
    ARM_INJECT_EXT_DABT = 178, "5.5"
    S390_VCPU_RESETS = 179, "5.6"
    S390_PROTECTED = 180, "5.7"
    PPC_SECURE_GUEST = 181, "5.7"
    HALT_POLL = 182, "5.8"
    ASYNC_PF_INT = 183, "5.8"
    LAST_CPU = 184, "5.9"
    SMALLER_MAXPHYADDR = 185, "5.9"
    S390_DIAG318 = 186, "5.9"
    STEAL_TIME = 187, "5.9"
    ENFORCE_PV_FEATURE_CPUID = 190, "5.10"
    SYS_HYPERV_CPUID = 191, "5.11"
    X86_BUS_LOCK_EXIT = 193, "5.12"
    PPC_DAWR1 = 194, "5.12"
    SET_GUEST_DEBUG2 = 195, "5.13"
    SGX_ATTRIBUTE = 196, "5.13"
    VM_COPY_ENC_CONTEXT_FROM = 197, "5.13"
    PTP_KVM = 198, "5.13"
    HYPERV_ENFORCE_CPUID = 199, "5.14"
    SREGS2 = 200, "5.14"
    PPC_RPT_INVALIDATE = 202, "5.14"
    BINARY_STATS_FD = 203, "5.14"
    EXIT_ON_EMULATION_FAILURE = 204, "5.14"
    ARM_MTE = 205, "5.14"
    VM_MOVE_ENC_CONTEXT_FROM = 206, "5.16"
    VM_GPA_BITS = 207, "5.17"
    SYS_ATTRIBUTES = 209, "5.17"
    PPC_AIL_MODE_3 = 210, "5.17"
    S390_MEM_OP_EXTENSION = 211, "5.18"
    PMU_CAPABILITY = 212, "5.18"
    DISABLE_QUIRKS2 = 213, "5.18"
    VM_TSC_CONTROL = 214, "5.19"
    SYSTEM_EVENT_DATA = 215, "5.18"
    ARM_SYSTEM_SUSPEND = 216, "5.19"
    S390_PROTECTED_DUMP = 217, "6.0"
    X86_TRIPLE_FAULT_EVENT = 218, "6.0"
    X86_NOTIFY_VMEXIT = 219, "6.0"
    VM_DISABLE_NX_HUGE_PAGES = 220, "6.0"
    S390_ZPCI_OP = 221, "6.0"
    S390_CPU_TOPOLOGY = 222, "6.0"
    DIRTY_LOG_RING_ACQ_REL = 223, "6.1"
    S390_PROTECTED_ASYNC_DISABLE = 224, "6.2"
    DIRTY_LOG_RING_WITH_BITMAP = 225, "6.2"
    PMU_EVENT_MASKED_EVENTS = 226, "6.3"
    ARM_EAGER_SPLIT_CHUNK_SIZE = 228, "6.5"
    ARM_SUPPORTED_BLOCK_SIZES = 229, "6.5"
    ARM_SUPPORTED_REG_MASK_RANGES = 230, "6.7"
    VM_TYPES = 235, "6.8"
    PRE_FAULT_MEMORY = 236, "6.11"
    X86_APIC_BUS_CYCLES_NS = 237, "6.11"
    X86_GUEST_MODE = 238, "6.11"
    ARM_WRITABLE_IMP_ID_REGS = 239, "6.15"
    ARM_EL2 = 240, "6.16"
    ARM_EL2_E2H0 = 241, "6.16"
    RISCV_MP_STATE_RESET = 242, "6.16"
    ARM_CACHEABLE_PFNMAP_SUPPORTED = 243, "6.17"
    GUEST_MEMFD_FLAGS = 244, "6.18"
    ARM_SEA_TO_USER = 245, "6.19"
    S390_USER_OPEREXEC = 246, "6.19"
    S390_KEYOP = 247, "7.0"
    S390_VSIE_ESAMODE = 248, "7.1"
    S390_HPAGE_2G = 249, "7.2"

    @property
    def c_name(self) -> str:
        """The kernel's name, e.g. ``KVM_CAP_NR_MEMSLOTS``.

        Example:
            >>> Cap.NR_MEMSLOTS.c_name
            'KVM_CAP_NR_MEMSLOTS'
        """
        return "KVM_CAP_" + self._name_  # the member's own attribute: enum's .name is a slower descriptor

    @property
    def in_cap_rs(self) -> bool:
        """Whether rust-vmm kvm-ioctls ``Cap`` has this capability.

        Example:
            >>> Cap.IMMEDIATE_EXIT.in_cap_rs, Cap.VM_TYPES.in_cap_rs
            (True, False)
        """
        return self.rust_name is not None

    def applies_to(self, arch: str) -> bool:
        """Whether cap.rs offers this capability on ``arch`` (``platform.machine()`` spelling).

        Example:
            >>> Cap.XSAVE.applies_to("x86_64"), Cap.XSAVE.applies_to("aarch64")
            (True, False)
        """
        return not self.arches or arch in self.arches

    @classmethod
    def lookup(cls, key: CapLike) -> Cap:
        """Resolve a capability from a member, number, C name, short name or Rust name.

        Names ignore case; ``"136"`` and ``"0x88"`` work like ``136``; a former name
        (:data:`FORMER_NAMES`) gives the member that has its number now.

        Raises:
            UnknownCapability: nothing matches; ``suggestions`` holds the closest C names.

        Example:
            >>> Cap.lookup("KVM_CAP_NR_MEMSLOTS") is Cap.lookup("nr_memslots") is Cap.lookup(10)
            True
            >>> Cap.lookup("KVM_CAP_X86_GUEST_MWAIT").c_name, FORMER_NAMES["X86_GUEST_MWAIT"][1]
            ('KVM_CAP_X86_DISABLE_EXITS', '4.12-4.16')
            >>> Cap.lookup("IMEDIATE_EXIT")
            Traceback (most recent call last):
            ...
            kvmprobe.errors.UnknownCapability: unknown KVM capability 'IMEDIATE_EXIT' (hint: did you mean KVM_CAP_IMMEDIATE_EXIT?)
        """
        if isinstance(key, Cap):
            return key
        if isinstance(key, int) and not isinstance(key, bool):
            try:
                return cls(key)
            except ValueError:
                # str() of an int past sys.get_int_max_str_digits() digits raises: give its size.
                shown = str(key) if key.bit_length() <= 128 else f"an integer of {key.bit_length()} bits"
                raise UnknownCapability(shown, hint="no KVM_CAP_* constant has this number") from None
        if not isinstance(key, str):
            raise UnknownCapability(repr(key), hint="give a capability name or number")
        text = key.strip()
        # isdigit() also holds for '²' and other non-ASCII digits, which int() refuses; and a
        # capability number is a C int, so a longer digit string names none (int() would even
        # refuse one over 4300 digits).
        number = parse_number(text)
        if number is not None:
            return cls.lookup(number)
        if text.isascii() and (text.isdigit() or text[:2].lower() == "0x"):
            shown = text if len(text) <= 40 else f"{text[:12]}... ({len(text)} characters)"
            raise UnknownCapability(shown, hint="no KVM_CAP_* constant has this number")
        upper = text.upper()
        found = cls.__members__.get(upper[8:] if upper.startswith("KVM_CAP_") else upper)
        if found is not None:  # a C or short name as written: no need to build the spelling index
            return found
        found = _index().get(_fold(text))
        if found is None:
            raise UnknownCapability(key, _suggest(text))
        return found


#: Names a capability's number had before: the old name -> (the member, the releases that
#: used the old name, why). Number 143 meant something else before 4.17: whether guests may
#: execute MWAIT, where KVM_CAP_X86_DISABLE_EXITS now answers a mask of exits to disable.
FORMER_NAMES: Dict[str, Tuple[Cap, str, str]] = {
    "X86_GUEST_MWAIT": (
        Cap.X86_DISABLE_EXITS,
        "4.12-4.16",
        "torvalds/linux 668fffa3f838 (4.12) added KVM_CAP_X86_GUEST_MWAIT as 143; 4d5422cea3b6 (4.17) "
        "made 143 KVM_CAP_X86_DISABLE_EXITS",
    ),
}

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def parse_number(text: str) -> Optional[int]:
    """A capability number as a person writes one (``136``, ``0x88``), or ``None``.

    Only ASCII digits, at most a C int's worth (``int()`` would also read ``²``-like digits of
    other scripts, and refuse more than 4300 of them with advice meant for programmers):
    1 to 10 decimal digits, or ``0x`` and 1 to 8 hexadecimal ones.

    Example:
        >>> parse_number("0x88"), parse_number("250"), parse_number("²"), parse_number("9" * 11)
        (136, 250, None, None)
    """
    text = text.strip()
    if text[:2] in ("0x", "0X"):
        digits = text[2:]
        if not 1 <= len(digits) <= 8 or not _HEX_DIGITS.issuperset(digits):
            return None
        number = int(digits, 16)
    else:
        if not 1 <= len(text) <= 10 or not (text.isascii() and text.isdigit()):
            return None
        number = int(text, 10)
    return number if number <= 2**31 - 1 else None


def _fold(text: str) -> str:
    """Fold case and underscores: ``KVM_CAP_X2APIC_API``, ``x2apic_api`` and ``X2ApicApi`` meet."""
    folded = text.upper().replace("-", "_")
    if folded.startswith("KVM_CAP_"):
        folded = folded[len("KVM_CAP_"):]
    return folded.replace("_", "")


_INDEX: Dict[str, Cap] = {}


def _index() -> Dict[str, Cap]:
    if not _INDEX:
        index: Dict[str, Cap] = {}
        for cap in Cap:
            for spelling in (cap.name, cap.rust_name):
                if spelling:
                    index.setdefault(_fold(spelling), cap)
        for former, (cap, _, _) in FORMER_NAMES.items():
            index.setdefault(_fold(former), cap)
        _INDEX.update(index)
    return _INDEX


def _suggest(text: str) -> List[str]:
    import difflib  # only on the error path: it costs milliseconds to import

    folded = _fold(text)
    names = {_fold(cap.name): cap.c_name for cap in Cap}
    close = difflib.get_close_matches(folded, list(names), n=3, cutoff=0.6)
    substring = [c for f, c in names.items() if len(folded) >= 3 and folded in f]
    picked = [names[f] for f in close] + substring
    return list(dict.fromkeys(picked))[:5]
