"""How each CPUID register and feature MSR must compare between a guest's source and destination.

Imports ``_cpuid_table``. Pure data, cited: which registers a migration or restore must keep
(every bit the guest saw must still be there: "subset"), which must not grow ("not greater":
a maximum sub-leaf, a field of address bits) and which must be equal (KVM's signature). The
baseline (``_baseline``), the compatibility classes (``_cpu_view``) and the verdicts
(``_compat_judge``) all derive from :data:`RULES` and :data:`MSR_RULES`; nothing else decides
which register counts.

Sources:

* Cloud Hypervisor's CPUID compatibility check, the one VMM that documents its rules in code:
  ``CpuidCompatibleCheck`` (``BitwiseSubset``: ``(src ^ dst) & src == 0``; ``Equal``;
  ``NumNotGreater``: ``src <= dst``) and ``checked_feature_entry_list``,
  cloud-hypervisor/cloud-hypervisor@v53.0 arch/src/x86_64/mod.rs:366-371, 381-495, 546-596
  (run on live-migration receive and snapshot restore, vmm/src/lib.rs:1186-1189, 1916-1918);
  the entries added on main after v53.0 (@ae44c2971c83, list at :413-564) are marked so.
  A leaf absent from a list counts as 0 there (``get_features_from_cpuid`` :497-528), and here.
* kvmprobe's own additions, each with its reason: every other register the feature table
  (``_cpuid_table.FEATURES``) names bits of is a subset register too (a feature a guest saw must
  stay); invariant TSC; address sizes; the supervisor XSAVE components (IA32_XSS).
* IA32_ARCH_CAPABILITIES: Cloud Hypervisor main's ``arch_capabilities_checks.rs:57-137``
  (commit faa94bdde): RSBA and RRSBA may not appear on the destination unless the source had
  them, a missing FB_CLEAR is tolerated when MDS_NO, TAA_NO, SBDR_SSDP_NO, FBSDP_NO and PSDP_NO
  are all set (QEMU forces FB_CLEAR then, target/i386/kvm/kvm.c:658-671), every other bit is a
  subset.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Tuple

from ._cpuid_table import FEATURES, MSR_IA32_ARCH_CAPABILITIES

__all__ = [
    "ARCH_CAP_FB_CLEAR",
    "ARCH_CAP_FB_CLEAR_IF",
    "ARCH_CAP_NOT_ON_DEST",
    "CH_MAIN",
    "CH_V53",
    "MSR_RULES",
    "RULES",
    "MsrRule",
    "Rule",
    "rules_by_key",
]

CH_V53 = "cloud-hypervisor/cloud-hypervisor@v53.0 arch/src/x86_64/mod.rs"
CH_MAIN = "cloud-hypervisor/cloud-hypervisor@ae44c2971c83 arch/src/x86_64/mod.rs"
_ALL = 0xFFFFFFFF


class Rule(NamedTuple):
    """How one CPUID register (the bits of ``mask``) must compare: ``kind`` is ``subset``
    (every bit the source has, the destination has), ``not_greater`` (the source's number is
    at most the destination's) or ``equal``. ``what`` names it for a reader; ``source`` cites it.

    Example:
        >>> RULES[0].describe()
        'CPUID 0x1.0 ecx: subset (cloud-hypervisor/cloud-hypervisor@v53.0 arch/src/x86_64/mod.rs:386-391)'
    """

    leaf: int
    subleaf: int
    register: str
    kind: str
    source: str
    mask: int = _ALL
    what: str = ""

    @property
    def key(self) -> Tuple[int, int]:
        """``(leaf, subleaf)``."""
        return (self.leaf, self.subleaf)

    def where(self) -> str:
        """``CPUID 0x7.0 ebx`` (with the field's bits when the rule covers part of the register)."""
        text = f"CPUID {self.leaf:#x}.{self.subleaf} {self.register}"
        if self.mask != _ALL:
            low = (self.mask & -self.mask).bit_length() - 1
            text += f"[{self.mask.bit_length() - 1}:{low}]"
        return text

    def describe(self) -> str:
        """Where, the kind, the source."""
        what = f" ({self.what})" if self.what else ""
        return f"{self.where()}{what}: {self.kind.replace('_', ' ')} ({self.source})"


def _ch(leaf: int, subleaf: int, register: str, kind: str, lines: str, *, main: bool = False, what: str = "") -> Rule:
    return Rule(leaf, subleaf, register, kind, f"{CH_MAIN if main else CH_V53}:{lines}", what=what)


# cloud-hypervisor@v53.0 arch/src/x86_64/mod.rs checked_feature_entry_list, in its order.
_CLOUD_HYPERVISOR = (
    _ch(0x1, 0, "ecx", "subset", "386-391"),
    _ch(0x1, 0, "edx", "subset", "392-397"),
    _ch(0x7, 0, "eax", "not_greater", "399-404", what="highest sub-leaf of leaf 7"),
    _ch(0x7, 0, "ebx", "subset", "405-410"),
    _ch(0x7, 0, "ecx", "subset", "411-416"),
    _ch(0x7, 0, "edx", "subset", "417-422"),
    _ch(0x7, 1, "eax", "subset", "424-429"),
    _ch(0x80000001, 0, "ecx", "subset", "431-436"),
    _ch(0x80000001, 0, "edx", "subset", "437-442"),
    _ch(0x40000000, 0, "eax", "not_greater", "445-450", what="highest KVM leaf"),
    _ch(0x40000000, 0, "ebx", "equal", "451-456", what="KVM signature"),
    _ch(0x40000000, 0, "ecx", "equal", "457-462", what="KVM signature"),
    _ch(0x40000000, 0, "edx", "equal", "463-468", what="KVM signature"),
    _ch(0x40000001, 0, "eax", "subset", "470-475"),
    _ch(0x40000001, 0, "ebx", "subset", "476-481"),
    _ch(0x40000001, 0, "ecx", "subset", "482-487"),
    _ch(0x40000001, 0, "edx", "subset", "488-493"),
    # Added on main after v53.0 (commits c22b42d2d, 193e99c23, 579f0c11a, cf5d9e6d8, bfbcbd2a3, f2d5f8229).
    _ch(0x7, 1, "ecx", "subset", "413-564", main=True),
    _ch(0x7, 1, "edx", "subset", "413-564", main=True),
    _ch(0x7, 2, "edx", "subset", "413-564", main=True),
    _ch(0x1D, 0, "eax", "not_greater", "413-564", main=True, what="highest AMX palette"),
    _ch(0x1E, 0, "eax", "not_greater", "413-564", main=True, what="highest TMUL sub-leaf"),
    _ch(0x1E, 1, "eax", "subset", "413-564", main=True),
)

_TABLE = "kvmprobe: a register the feature table (_cpuid_table.FEATURES) names bits of; a feature a guest saw must stay"

# kvmprobe's own rules beyond the feature table's registers.
_KVMPROBE = (
    Rule(0x80000007, 0, "edx", "subset",
         "kvmprobe: invariant TSC (bit 8, QEMU's 'invtsc', qemu/qemu@v10.2.2 target/i386/cpu.c FEAT_8000_0007_EDX; "
         "Intel SDM Vol. 2A CPUID 80000007H)"),
    Rule(0x80000008, 0, "eax", "not_greater",
         "kvmprobe: a guest's physical address width may not exceed the destination's (Intel SDM Vol. 2A "
         "CPUID 80000008H EAX[7:0]; AMD APM Fn8000_0008 PhysAddrSize)", mask=0xFF, what="physical address bits"),
    Rule(0x80000008, 0, "eax", "not_greater",
         "kvmprobe: a guest's linear address width may not exceed the destination's (Intel SDM Vol. 2A "
         "CPUID 80000008H EAX[15:8])", mask=0xFF00, what="linear address bits"),
    Rule(0xD, 1, "ecx", "subset",
         "kvmprobe: the supervisor XSAVE components (IA32_XSS bits 31:0, Intel SDM Vol. 1 13.3) a guest may "
         "enable must stay", what="IA32_XSS components"),
    Rule(0xD, 1, "edx", "subset", "kvmprobe: the supervisor XSAVE components (IA32_XSS bits 63:32)",
         what="IA32_XSS components"),
)  # fmt: skip


def _build() -> Tuple[Rule, ...]:
    rules: List[Rule] = list(_CLOUD_HYPERVISOR)
    covered = {(r.leaf, r.subleaf, r.register) for r in rules} | {(r.leaf, r.subleaf, r.register) for r in _KVMPROBE}
    for row in FEATURES:
        key = (row.leaf, row.subleaf or 0, row.register)
        if key not in covered:
            covered.add(key)
            rules.append(Rule(row.leaf, row.subleaf or 0, row.register, "subset", _TABLE))
    return tuple(rules) + _KVMPROBE


#: Every judged CPUID register (or field), Cloud Hypervisor's first, in a fixed order (the order
#: the compatibility class hashes them in).
RULES: Tuple[Rule, ...] = _build()


def rules_by_key() -> Dict[Tuple[int, int], Tuple[Rule, ...]]:
    """:data:`RULES` grouped by ``(leaf, subleaf)``.

    Example:
        >>> [r.register for r in rules_by_key()[(0x40000000, 0)]]
        ['eax', 'ebx', 'ecx', 'edx']
    """
    out: Dict[Tuple[int, int], List[Rule]] = {}
    for rule in RULES:
        out.setdefault(rule.key, []).append(rule)
    return {key: tuple(rules) for key, rules in out.items()}


class MsrRule(NamedTuple):
    """How one feature MSR must compare: ``subset`` of ``mask``, or ``arch_capabilities`` (the
    rule of IA32_ARCH_CAPABILITIES, see the module's sources).

    Example:
        >>> MSR_RULES[0].name
        'MSR_IA32_ARCH_CAPABILITIES'
    """

    msr: int
    name: str
    kind: str
    source: str
    mask: int = 2**64 - 1


#: IA32_ARCH_CAPABILITIES bits that may not appear on the destination unless the source had
#: them: RSBA (2) and RRSBA (19), "RSB alternate" behaviours a guest must be told of.
ARCH_CAP_NOT_ON_DEST = (1 << 2) | (1 << 19)
#: FB_CLEAR (bit 17), and the bits that make its absence harmless: MDS_NO (5), TAA_NO (8),
#: SBDR_SSDP_NO (13), FBSDP_NO (14), PSDP_NO (15).
ARCH_CAP_FB_CLEAR = 1 << 17
ARCH_CAP_FB_CLEAR_IF = (1 << 5) | (1 << 8) | (1 << 13) | (1 << 14) | (1 << 15)

#: The judged feature MSRs. MSR_IA32_UCODE_REV is a revision, not a feature, and the VMX
#: capability MSRs matter to nested guests only: neither is judged (a difference is noted).
MSR_RULES: Tuple[MsrRule, ...] = (
    MsrRule(MSR_IA32_ARCH_CAPABILITIES, "MSR_IA32_ARCH_CAPABILITIES", "arch_capabilities",
            "cloud-hypervisor/cloud-hypervisor@ae44c2971c83 arch/src/x86_64/arch_capabilities_checks.rs:57-137"),
    MsrRule(0x345, "MSR_IA32_PERF_CAPABILITIES", "subset",
            "Linux arch/x86/kvm/x86.c kvm_set_msr_common, MSR_IA32_PERF_CAPABILITIES: a value with a bit the "
            "destination's KVM does not support is refused ('data & ~kvm_caps.supported_perf_cap')"),
    MsrRule(0xCE, "MSR_PLATFORM_INFO", "subset",
            "kvmprobe: CPUID faulting (bit 31, the only bit KVM answers: arch/x86/kvm/x86.c kvm_get_feature_msr) "
            "a guest was given must stay", mask=1 << 31),
)  # fmt: skip
