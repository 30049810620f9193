"""The x86 CPUID knowledge tables: feature bits, XSAVE components, IA32_ARCH_CAPABILITIES bits,
KVM's feature MSRs and the fields that differ from one CPU of a host to the next.

Imports nothing from the package. Pure data: the decoding built on it is in ``_cpuid``. Each
table is the one source of truth for its facts; ``tests/unit/test_cpuid_table.py`` checks the
numbers against GCC's ``<cpuid.h>`` and the installed ``<asm/kvm_para.h>``, and
``tests/hardware/test_cpuid_table_hw.py`` against the CPUID instruction and /proc/cpuinfo.

Sources (``Feature.source`` names one of :data:`SOURCES`):

* ``cpufeatures.h``: the kernel's ``arch/x86/include/asm/cpufeatures.h`` as read at
  ColinIanKing/linux-next 0fb0f9c9983c79bb71970eda5688ff3f7f5a7068 (NCAPINTS 22; newer than
  the torvalds/linux copy in the reference index, baf8361e, NCAPINTS 21). Only its words that
  are one CPUID register each; the Linux-defined words (3, 7, 8, 11, 21: synthetic flags and
  bits the kernel scatters from other leaves) are left out. A feature is shown in
  /proc/cpuinfo under its quoted name; one without a quoted name is not shown at all (the
  header's rule since the 2024 flip): those rows carry the lowercased macro name and
  ``hidden=True``.
* ``pt.c``: Intel PT capabilities, CPUID 0x14.0 EBX/ECX, named as the kernel's
  ``arch/x86/events/intel/pt.c`` ``pt_caps[]`` names them (the files in
  /sys/bus/event_source/devices/intel_pt/caps/). Intel SDM Vol. 2A, CPUID leaf 14H.
* ``sdm``: Key Locker, CPUID 0x19 EBX: Intel SDM Vol. 2A, CPUID leaf 19H (AESKLE bit 0,
  WIDE_KL bit 2, Key Locker MSRs / IWKey backup bit 4; GCC's cpuid.h has the first two).
* ``kvm_para.h``: KVM's own leaf 0x40000001, bits from the uapi ``asm/kvm_para.h``
  (``KVM_FEATURE_*`` in EAX, ``KVM_HINTS_*`` in EDX), named as QEMU v10.2.2
  ``target/i386/cpu.c`` ``feature_word_info[FEAT_KVM]`` / ``[FEAT_KVM_HINTS]`` does with
  '-' as '_'. QEMU names bits 0 and 3 both "kvmclock" (one property sets both); here bit 3 is
  "kvmclock2" after ``KVM_FEATURE_CLOCKSOURCE2``. Bits QEMU leaves unnamed (16, 17) are
  "kvm_" plus the uapi name.

Linux has no /proc/cpuinfo flag for any row outside ``cpufeatures.h``: all are ``hidden``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, NamedTuple, Optional, Tuple

    # One tuple per bit: (bit, macro without X86_FEATURE_, /proc/cpuinfo name). The third column
    # is None when the header's quoted name is the lowercased macro, "" when it has no quoted
    # name (not shown in /proc/cpuinfo), else the quoted name.
    _Bits = Tuple[Tuple[int, str, Optional[str]], ...]
else:
    from ._value import NamedTuple

__all__ = [
    "ARCH_CAPABILITIES",
    "FEATURES",
    "FEATURE_MSRS",
    "KVM_CPUID_FEATURES",
    "KVM_CPUID_FLAG_SIGNIFCANT_INDEX",
    "KVM_CPUID_SIGNATURE",
    "KVM_SIGNATURE",
    "MSR_IA32_ARCH_CAPABILITIES",
    "QEMU_NAMES",
    "REGISTERS",
    "RUNTIME_FEATURES",
    "SOURCES",
    "VOLATILE",
    "XSAVE_COMPONENTS",
    "Feature",
    "Volatile",
]

#: The registers of a ``struct kvm_cpuid_entry2``, in its order (after function, index, flags).
REGISTERS = ("eax", "ebx", "ecx", "edx")

#: ``struct kvm_cpuid_entry2.flags`` bit 0: the entry is for one ``index`` (subleaf) only.
#: The kernel's spelling (include/uapi/asm/kvm.h), misspelt there.
KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1 << 0

#: KVM's hypervisor leaves (uapi asm/kvm_para.h): 0x40000000 returns the highest KVM leaf in
#: EAX and the signature "KVMKVMKVM\0\0\0" in EBX, ECX, EDX (little-endian, 4 bytes each).
KVM_CPUID_SIGNATURE = 0x40000000
KVM_CPUID_FEATURES = 0x40000001
KVM_SIGNATURE = b"KVMKVMKVM\0\0\0"

SOURCES: Dict[str, str] = {
    "cpufeatures.h": "Linux arch/x86/include/asm/cpufeatures.h, ColinIanKing/linux-next 0fb0f9c9983c",
    "pt.c": "Linux arch/x86/events/intel/pt.c pt_caps[]; Intel SDM Vol. 2A CPUID leaf 14H",
    "sdm": "Intel SDM Vol. 2A, CPUID leaf 19H (Key Locker)",
    "kvm_para.h": "Linux include/uapi asm/kvm_para.h; names from QEMU v10.2.2 target/i386/cpu.c FEAT_KVM",
}


class Feature(NamedTuple):
    """One CPUID feature bit.

    ``subleaf`` is None for a leaf whose ECX input is not an index. ``name`` is the
    /proc/cpuinfo flag (or, for ``hidden`` rows, the name used here); ``c_name`` the
    identifier in the source (``X86_FEATURE_XMM3``).

    Example:
        >>> FEATURES[0]
        Feature(leaf=1, subleaf=None, register='edx', bit=0, name='fpu', hidden=False, c_name='X86_FEATURE_FPU', source='cpufeatures.h')
    """

    leaf: int
    subleaf: Optional[int]
    register: str
    bit: int
    name: str
    hidden: bool
    c_name: str
    source: str


_CPUFEATURES: Tuple[Tuple[int, Optional[int], str, _Bits], ...] = (
    # word 0: CPUID 0x00000001 EDX (Intel-defined)
    (0x00000001, None, "edx", (
        (0, "FPU", None),
        (1, "VME", None),
        (2, "DE", None),
        (3, "PSE", None),
        (4, "TSC", None),
        (5, "MSR", None),
        (6, "PAE", None),
        (7, "MCE", None),
        (8, "CX8", None),
        (9, "APIC", None),
        (11, "SEP", None),
        (12, "MTRR", None),
        (13, "PGE", None),
        (14, "MCA", None),
        (15, "CMOV", None),
        (16, "PAT", None),
        (17, "PSE36", None),
        (18, "PN", None),
        (19, "CLFLUSH", None),
        (21, "DS", "dts"),
        (22, "ACPI", None),
        (23, "MMX", None),
        (24, "FXSR", None),
        (25, "XMM", "sse"),
        (26, "XMM2", "sse2"),
        (27, "SELFSNOOP", "ss"),
        (28, "HT", None),
        (29, "ACC", "tm"),
        (30, "IA64", None),
        (31, "PBE", None),
    )),
    # word 4: CPUID 0x00000001 ECX (Intel-defined)
    (0x00000001, None, "ecx", (
        (0, "XMM3", "pni"),
        (1, "PCLMULQDQ", None),
        (2, "DTES64", None),
        (3, "MWAIT", "monitor"),
        (4, "DSCPL", "ds_cpl"),
        (5, "VMX", None),
        (6, "SMX", None),
        (7, "EST", None),
        (8, "TM2", None),
        (9, "SSSE3", None),
        (10, "CID", None),
        (11, "SDBG", None),
        (12, "FMA", None),
        (13, "CX16", None),
        (14, "XTPR", None),
        (15, "PDCM", None),
        (17, "PCID", None),
        (18, "DCA", None),
        (19, "XMM4_1", "sse4_1"),
        (20, "XMM4_2", "sse4_2"),
        (21, "X2APIC", None),
        (22, "MOVBE", None),
        (23, "POPCNT", None),
        (24, "TSC_DEADLINE_TIMER", None),
        (25, "AES", None),
        (26, "XSAVE", None),
        (27, "OSXSAVE", ""),
        (28, "AVX", None),
        (29, "F16C", None),
        (30, "RDRAND", None),
        (31, "HYPERVISOR", None),
    )),
    # word 14: CPUID 0x00000006 EAX (thermal and power management)
    (0x00000006, None, "eax", (
        (0, "DTHERM", None),
        (1, "IDA", None),
        (2, "ARAT", None),
        (4, "PLN", None),
        (6, "PTS", None),
        (7, "HWP", None),
        (8, "HWP_NOTIFY", None),
        (9, "HWP_ACT_WINDOW", None),
        (10, "HWP_EPP", None),
        (11, "HWP_PKG_REQ", None),
        (15, "HWP_HIGHEST_PERF_CHANGE", ""),
        (19, "HFI", None),
    )),
    # word 9: CPUID 0x00000007:0 EBX
    (0x00000007, 0, "ebx", (
        (0, "FSGSBASE", None),
        (1, "TSC_ADJUST", None),
        (2, "SGX", None),
        (3, "BMI1", None),
        (4, "HLE", None),
        (5, "AVX2", None),
        (6, "FDP_EXCPTN_ONLY", ""),
        (7, "SMEP", None),
        (8, "BMI2", None),
        (9, "ERMS", None),
        (10, "INVPCID", None),
        (11, "RTM", None),
        (12, "CQM", None),
        (13, "ZERO_FCS_FDS", ""),
        (14, "MPX", None),
        (15, "RDT_A", None),
        (16, "AVX512F", None),
        (17, "AVX512DQ", None),
        (18, "RDSEED", None),
        (19, "ADX", None),
        (20, "SMAP", None),
        (21, "AVX512IFMA", None),
        (23, "CLFLUSHOPT", None),
        (24, "CLWB", None),
        (25, "INTEL_PT", None),
        (26, "AVX512PF", None),
        (27, "AVX512ER", None),
        (28, "AVX512CD", None),
        (29, "SHA_NI", None),
        (30, "AVX512BW", None),
        (31, "AVX512VL", None),
    )),
    # word 16: CPUID 0x00000007:0 ECX
    (0x00000007, 0, "ecx", (
        (1, "AVX512VBMI", None),
        (2, "UMIP", None),
        (3, "PKU", None),
        (4, "OSPKE", None),
        (5, "WAITPKG", None),
        (6, "AVX512_VBMI2", None),
        (7, "SHSTK", ""),
        (8, "GFNI", None),
        (9, "VAES", None),
        (10, "VPCLMULQDQ", None),
        (11, "AVX512_VNNI", None),
        (12, "AVX512_BITALG", None),
        (13, "TME", None),
        (14, "AVX512_VPOPCNTDQ", None),
        (16, "LA57", None),
        (22, "RDPID", None),
        (24, "BUS_LOCK_DETECT", None),
        (25, "CLDEMOTE", None),
        (27, "MOVDIRI", None),
        (28, "MOVDIR64B", None),
        (29, "ENQCMD", None),
        (30, "SGX_LC", None),
    )),
    # word 18: CPUID 0x00000007:0 EDX
    (0x00000007, 0, "edx", (
        (2, "AVX512_4VNNIW", None),
        (3, "AVX512_4FMAPS", None),
        (4, "FSRM", None),
        (8, "AVX512_VP2INTERSECT", None),
        (9, "SRBDS_CTRL", ""),
        (10, "MD_CLEAR", None),
        (11, "RTM_ALWAYS_ABORT", ""),
        (13, "TSX_FORCE_ABORT", ""),
        (14, "SERIALIZE", None),
        (15, "HYBRID_CPU", ""),
        (16, "TSXLDTRK", None),
        (18, "PCONFIG", None),
        (19, "ARCH_LBR", None),
        (20, "IBT", None),
        (22, "AMX_BF16", None),
        (23, "AVX512_FP16", None),
        (24, "AMX_TILE", None),
        (25, "AMX_INT8", None),
        (26, "SPEC_CTRL", ""),
        (27, "INTEL_STIBP", ""),
        (28, "FLUSH_L1D", None),
        (29, "ARCH_CAPABILITIES", None),
        (30, "CORE_CAPABILITIES", ""),
        (31, "SPEC_CTRL_SSBD", ""),
    )),
    # word 12: CPUID 0x00000007:1 EAX
    (0x00000007, 1, "eax", (
        (0, "SHA512", ""),
        (1, "SM3", ""),
        (2, "SM4", ""),
        (4, "AVX_VNNI", None),
        (5, "AVX512_BF16", None),
        (7, "CMPCCXADD", ""),
        (8, "ARCH_PERFMON_EXT", ""),
        (10, "FZRM", ""),
        (11, "FSRS", ""),
        (12, "FSRC", ""),
        (17, "FRED", None),
        (18, "LKGS", ""),
        (19, "WRMSRNS", ""),
        (21, "AMX_FP16", ""),
        (23, "AVX_IFMA", ""),
        (26, "LAM", None),
    )),
    # word 10: CPUID 0x0000000d:1 EAX (XSAVE extended features)
    (0x0000000D, 1, "eax", (
        (0, "XSAVEOPT", None),
        (1, "XSAVEC", None),
        (2, "XGETBV1", None),
        (3, "XSAVES", None),
        (4, "XFD", ""),
    )),
    # word 1: CPUID 0x80000001 EDX (AMD-defined; bits duplicating leaf 1 EDX are not listed)
    (0x80000001, None, "edx", (
        (11, "SYSCALL", None),
        (19, "MP", None),
        (20, "NX", None),
        (22, "MMXEXT", None),
        (25, "FXSR_OPT", None),
        (26, "GBPAGES", "pdpe1gb"),
        (27, "RDTSCP", None),
        (29, "LM", None),
        (30, "3DNOWEXT", None),
        (31, "3DNOW", None),
    )),
    # word 6: CPUID 0x80000001 ECX
    (0x80000001, None, "ecx", (
        (0, "LAHF_LM", None),
        (1, "CMP_LEGACY", None),
        (2, "SVM", None),
        (3, "EXTAPIC", None),
        (4, "CR8_LEGACY", None),
        (5, "ABM", None),
        (6, "SSE4A", None),
        (7, "MISALIGNSSE", None),
        (8, "3DNOWPREFETCH", None),
        (9, "OSVW", None),
        (10, "IBS", None),
        (11, "XOP", None),
        (12, "SKINIT", None),
        (13, "WDT", None),
        (15, "LWP", None),
        (16, "FMA4", None),
        (17, "TCE", None),
        (19, "NODEID_MSR", None),
        (21, "TBM", None),
        (22, "TOPOEXT", None),
        (23, "PERFCTR_CORE", None),
        (24, "PERFCTR_NB", None),
        (26, "BPEXT", None),
        (27, "PTSC", None),
        (28, "PERFCTR_LLC", None),
        (29, "MWAITX", None),
    )),
    # word 17: CPUID 0x80000007 EBX (RAS capabilities)
    (0x80000007, None, "ebx", (
        (0, "OVERFLOW_RECOV", None),
        (1, "SUCCOR", None),
        (3, "SMCA", None),
    )),
    # word 13: CPUID 0x80000008 EBX
    (0x80000008, None, "ebx", (
        (0, "CLZERO", None),
        (1, "IRPERF", None),
        (2, "XSAVEERPTR", None),
        (4, "RDPRU", None),
        (9, "WBNOINVD", None),
        (12, "AMD_IBPB", ""),
        (14, "AMD_IBRS", ""),
        (15, "AMD_STIBP", ""),
        (17, "AMD_STIBP_ALWAYS_ON", ""),
        (23, "AMD_PPIN", None),
        (24, "AMD_SSBD", ""),
        (25, "VIRT_SSBD", None),
        (26, "AMD_SSB_NO", ""),
        (27, "CPPC", None),
        (28, "AMD_PSFD", ""),
        (29, "BTC_NO", ""),
        (30, "AMD_IBPB_RET", ""),
        (31, "BRS", None),
    )),
    # word 15: CPUID 0x8000000a EDX (SVM features)
    (0x8000000A, None, "edx", (
        (0, "NPT", None),
        (1, "LBRV", None),
        (2, "SVML", "svm_lock"),
        (3, "NRIPS", "nrip_save"),
        (4, "TSCRATEMSR", "tsc_scale"),
        (5, "VMCBCLEAN", "vmcb_clean"),
        (6, "FLUSHBYASID", None),
        (7, "DECODEASSISTS", None),
        (10, "PAUSEFILTER", None),
        (12, "PFTHRESHOLD", None),
        (13, "AVIC", None),
        (15, "V_VMSAVE_VMLOAD", None),
        (16, "VGIF", None),
        (18, "X2AVIC", None),
        (20, "V_SPEC_CTRL", None),
        (25, "VNMI", None),
        (28, "SVME_ADDR_CHK", ""),
    )),
    # word 19: CPUID 0x8000001f EAX (AMD memory encryption)
    (0x8000001F, None, "eax", (
        (0, "SME", None),
        (1, "SEV", None),
        (2, "VM_PAGE_FLUSH", ""),
        (3, "SEV_ES", None),
        (4, "SEV_SNP", None),
        (9, "V_TSC_AUX", ""),
        (10, "SME_COHERENT", ""),
        (14, "DEBUG_SWAP", None),
        (21, "RMPREAD", ""),
        (23, "SEGMENTED_RMP", ""),
        (28, "SVSM", None),
        (30, "HV_INUSE_WR_ALLOWED", ""),
    )),
    # word 20: CPUID 0x80000021 EAX (AMD extended features 2); none is shown in /proc/cpuinfo
    (0x80000021, None, "eax", (
        (0, "NO_NESTED_DATA_BP", ""),
        (1, "WRMSR_XX_BASE_NS", ""),
        (2, "LFENCE_RDTSC", ""),
        (6, "NULL_SEL_CLR_BASE", ""),
        (8, "AUTOIBRS", ""),
        (9, "NO_SMM_CTL_MSR", ""),
        (27, "SBPB", ""),
        (28, "IBPB_BRTYPE", ""),
        (29, "SRSO_NO", ""),
        (30, "SRSO_USER_KERNEL_NO", ""),
        (31, "SRSO_BP_SPEC_REDUCE", ""),
    )),
    # word 5: CPUID 0xc0000001 EDX (VIA/Centaur)
    (0xC0000001, None, "edx", (
        (2, "XSTORE", "rng"),
        (3, "XSTORE_EN", "rng_en"),
        (6, "XCRYPT", "ace"),
        (7, "XCRYPT_EN", "ace_en"),
        (8, "ACE2", None),
        (9, "ACE2_EN", None),
        (10, "PHE", None),
        (11, "PHE_EN", None),
        (12, "PMM", None),
        (13, "PMM_EN", None),
    )),
    # word 2: CPUID 0x80860001 EDX (Transmeta)
    (0x80860001, None, "edx", (
        (0, "RECOVERY", None),
        (1, "LONGRUN", None),
        (3, "LRTI", None),
    )),
)

# Rows from the other sources: (leaf, subleaf, register, bit, name, c_name, source); all hidden.
_OTHER: Tuple[Tuple[int, Optional[int], str, int, str, str, str], ...] = (
    # Intel PT, CPUID 0x14:0 (pt.c names; bit 6 of EBX has no name there and is left out)
    (0x14, 0, "ebx", 0, "cr3_filtering", "PT_CAP_cr3_filtering", "pt.c"),
    (0x14, 0, "ebx", 1, "psb_cyc", "PT_CAP_psb_cyc", "pt.c"),
    (0x14, 0, "ebx", 2, "ip_filtering", "PT_CAP_ip_filtering", "pt.c"),
    (0x14, 0, "ebx", 3, "mtc", "PT_CAP_mtc", "pt.c"),
    (0x14, 0, "ebx", 4, "ptwrite", "PT_CAP_ptwrite", "pt.c"),
    (0x14, 0, "ebx", 5, "power_event_trace", "PT_CAP_power_event_trace", "pt.c"),
    (0x14, 0, "ebx", 7, "event_trace", "PT_CAP_event_trace", "pt.c"),
    (0x14, 0, "ebx", 8, "tnt_disable", "PT_CAP_tnt_disable", "pt.c"),
    (0x14, 0, "ecx", 0, "topa_output", "PT_CAP_topa_output", "pt.c"),
    (0x14, 0, "ecx", 1, "topa_multiple_entries", "PT_CAP_topa_multiple_entries", "pt.c"),
    (0x14, 0, "ecx", 2, "single_range_output", "PT_CAP_single_range_output", "pt.c"),
    (0x14, 0, "ecx", 3, "output_subsys", "PT_CAP_output_subsys", "pt.c"),
    (0x14, 0, "ecx", 31, "payloads_lip", "PT_CAP_payloads_lip", "pt.c"),
    # Key Locker, CPUID 0x19 (SDM names where it has one)
    (0x19, None, "ebx", 0, "aeskle", "AESKLE", "sdm"),
    (0x19, None, "ebx", 2, "wide_kl", "WIDE_KL", "sdm"),
    (0x19, None, "ebx", 4, "iwkey_backup", "", "sdm"),
    # KVM, CPUID 0x40000001
    (0x40000001, None, "eax", 0, "kvmclock", "KVM_FEATURE_CLOCKSOURCE", "kvm_para.h"),
    (0x40000001, None, "eax", 1, "kvm_nopiodelay", "KVM_FEATURE_NOP_IO_DELAY", "kvm_para.h"),
    (0x40000001, None, "eax", 2, "kvm_mmu", "KVM_FEATURE_MMU_OP", "kvm_para.h"),
    (0x40000001, None, "eax", 3, "kvmclock2", "KVM_FEATURE_CLOCKSOURCE2", "kvm_para.h"),
    (0x40000001, None, "eax", 4, "kvm_asyncpf", "KVM_FEATURE_ASYNC_PF", "kvm_para.h"),
    (0x40000001, None, "eax", 5, "kvm_steal_time", "KVM_FEATURE_STEAL_TIME", "kvm_para.h"),
    (0x40000001, None, "eax", 6, "kvm_pv_eoi", "KVM_FEATURE_PV_EOI", "kvm_para.h"),
    (0x40000001, None, "eax", 7, "kvm_pv_unhalt", "KVM_FEATURE_PV_UNHALT", "kvm_para.h"),
    (0x40000001, None, "eax", 9, "kvm_pv_tlb_flush", "KVM_FEATURE_PV_TLB_FLUSH", "kvm_para.h"),
    (0x40000001, None, "eax", 10, "kvm_asyncpf_vmexit", "KVM_FEATURE_ASYNC_PF_VMEXIT", "kvm_para.h"),
    (0x40000001, None, "eax", 11, "kvm_pv_ipi", "KVM_FEATURE_PV_SEND_IPI", "kvm_para.h"),
    (0x40000001, None, "eax", 12, "kvm_poll_control", "KVM_FEATURE_POLL_CONTROL", "kvm_para.h"),
    (0x40000001, None, "eax", 13, "kvm_pv_sched_yield", "KVM_FEATURE_PV_SCHED_YIELD", "kvm_para.h"),
    (0x40000001, None, "eax", 14, "kvm_asyncpf_int", "KVM_FEATURE_ASYNC_PF_INT", "kvm_para.h"),
    (0x40000001, None, "eax", 15, "kvm_msi_ext_dest_id", "KVM_FEATURE_MSI_EXT_DEST_ID", "kvm_para.h"),
    (0x40000001, None, "eax", 16, "kvm_hc_map_gpa_range", "KVM_FEATURE_HC_MAP_GPA_RANGE", "kvm_para.h"),
    (0x40000001, None, "eax", 17, "kvm_migration_control", "KVM_FEATURE_MIGRATION_CONTROL", "kvm_para.h"),
    (0x40000001, None, "eax", 24, "kvmclock_stable_bit", "KVM_FEATURE_CLOCKSOURCE_STABLE_BIT", "kvm_para.h"),
    (0x40000001, None, "edx", 0, "kvm_hint_dedicated", "KVM_HINTS_REALTIME", "kvm_para.h"),
)


def _build() -> Tuple[Feature, ...]:
    rows = []
    for leaf, subleaf, register, bits in _CPUFEATURES:
        for bit, macro, shown in bits:
            name = shown or macro.lower()
            rows.append(Feature(leaf, subleaf, register, bit, name, shown == "", "X86_FEATURE_" + macro,
                                "cpufeatures.h"))
    for leaf, subleaf, register, bit, name, c_name, source in _OTHER:
        rows.append(Feature(leaf, subleaf, register, bit, name, True, c_name, source))
    return tuple(rows)


#: Every feature bit kvmprobe can name, in leaf order as listed above.
FEATURES: Tuple[Feature, ...] = _build()

#: QEMU's names (and ``-cpu`` property aliases) for bits whose /proc/cpuinfo name differs
#: other than by '-'/'.' versus '_': qemu/qemu v10.2.2 target/i386/cpu.c ``feature_word_info``
#: (lines 1063-1838) and ``property_aliases`` (lines 9725-9759), matched by CPUID location.
QEMU_NAMES: Dict[str, str] = {
    "sse3": "pni",  # property alias
    "pclmuldq": "pclmulqdq",  # property alias
    "xd": "nx",  # property alias
    "i64": "lm",  # property alias
    "ffxsr": "fxsr_opt",  # property alias
    "ds": "dts",
    "tsc_deadline": "tsc_deadline_timer",
    "cr8legacy": "cr8_legacy",
    "pause_filter": "pausefilter",
    "avx512vbmi2": "avx512_vbmi2",
    "avx512vnni": "avx512_vnni",
    "avx512bitalg": "avx512_bitalg",
    "sgxlc": "sgx_lc",
    "tsx_ldtrk": "tsxldtrk",
    "xstore": "rng",
    "xstore_en": "rng_en",
    "xcrypt": "ace",
    "xcrypt_en": "ace_en",
}

#: Bits the CPU computes from the running OS's control registers, not fixed features:
#: OSXSAVE mirrors CR4.OSXSAVE and OSPKE mirrors CR4.PKE (SDM Vol. 2A, CPUID leaf 01H ECX[27]
#: and leaf 07H ECX[4]); KVM sets them in a guest from the guest's own CR4 (arch/x86/kvm/cpuid.c,
#: kvm_update_cpuid_runtime), so KVM_GET_SUPPORTED_CPUID never has them. A comparison of
#: host and KVM leaves them out.
RUNTIME_FEATURES = frozenset({"osxsave", "ospke"})

#: XSAVE state components (the bits of XCR0 / IA32_XSS and of CPUID 0xD.0 EAX:EDX, 0xD.1
#: ECX:EDX): the kernel's arch/x86/include/asm/fpu/types.h ``enum xfeature`` (named in the
#: comments) and Intel SDM Vol. 1 chapter 13 "Managing State Using the XSAVE Feature Set"
#: for the components the kernel leaves as RSRVD_COMP (13 HDC, 14 UINTR, 16 HWP).
XSAVE_COMPONENTS: Dict[int, str] = {
    0: "x87",  # XFEATURE_FP
    1: "sse",  # XFEATURE_SSE
    2: "avx",  # XFEATURE_YMM
    3: "bndregs",  # XFEATURE_BNDREGS (MPX)
    4: "bndcsr",  # XFEATURE_BNDCSR (MPX)
    5: "opmask",  # XFEATURE_OPMASK (AVX-512 k0-k7)
    6: "zmm_hi256",  # XFEATURE_ZMM_Hi256
    7: "hi16_zmm",  # XFEATURE_Hi16_ZMM
    8: "pt",  # XFEATURE_PT_UNIMPLEMENTED_SO_FAR (Intel PT, supervisor)
    9: "pkru",  # XFEATURE_PKRU
    10: "pasid",  # XFEATURE_PASID (supervisor)
    11: "cet_u",  # XFEATURE_CET_USER (supervisor)
    12: "cet_s",  # XFEATURE_CET_KERNEL, XFEATURE_CET_KERNEL_UNUSED before (supervisor)
    13: "hdc",  # XFEATURE_RSRVD_COMP_13; SDM: HDC state (supervisor)
    14: "uintr",  # XFEATURE_RSRVD_COMP_14; SDM: UINTR state (supervisor)
    15: "lbr",  # XFEATURE_LBR (architectural LBRs, supervisor)
    16: "hwp",  # XFEATURE_RSRVD_COMP_16; SDM: HWP state (supervisor)
    17: "amx_tilecfg",  # XFEATURE_XTILE_CFG
    18: "amx_tiledata",  # XFEATURE_XTILE_DATA
    19: "apx",  # XFEATURE_APX (Linux 6.16); Intel APX specification: the extended GPRs
}

#: IA32_ARCH_CAPABILITIES (MSR 0x10a) bits: ``ARCH_CAP_<NAME>`` in the kernel's
#: arch/x86/include/asm/msr-index.h at ColinIanKing/linux-next 0d139fdeab63, lowercased. Bit
#: 62 (ITS_NO) is never set by hardware: VMMs synthesize it for guests.
ARCH_CAPABILITIES: Dict[int, str] = {
    0: "rdcl_no",
    1: "ibrs_all",
    2: "rsba",
    3: "skip_vmentry_l1dflush",
    4: "ssb_no",
    5: "mds_no",
    6: "pschange_mc_no",
    7: "tsx_ctrl_msr",
    8: "taa_no",
    13: "sbdr_ssdp_no",
    14: "fbsdp_no",
    15: "psdp_no",
    16: "mcu_enum",
    17: "fb_clear",
    18: "fb_clear_ctrl",
    19: "rrsba",
    20: "bhi_no",
    21: "xapic_disable",
    24: "pbrsb_no",
    25: "gds_ctrl",
    26: "gds_no",
    27: "rfds_no",
    28: "rfds_clear",
    62: "its_no",
}

MSR_IA32_ARCH_CAPABILITIES = 0x10A

#: The MSRs KVM may list in KVM_GET_MSR_FEATURE_INDEX_LIST, index -> msr-index.h name: the
#: kernel's arch/x86/kvm/x86.c ``msr_based_features_all_except_vmx[]`` (MSR_PLATFORM_INFO joined
#: it in 2024) plus the VMX capability MSRs KVM_FIRST_EMULATED_VMX_MSR (0x480) to
#: KVM_LAST_EMULATED_VMX_MSR (0x491). KVM lists only those it can answer on this host.
FEATURE_MSRS: Dict[int, str] = {
    0x0000008B: "MSR_IA32_UCODE_REV",
    0x000000CE: "MSR_PLATFORM_INFO",
    0x0000010A: "MSR_IA32_ARCH_CAPABILITIES",
    0x00000345: "MSR_IA32_PERF_CAPABILITIES",
    0x00000480: "MSR_IA32_VMX_BASIC",
    0x00000481: "MSR_IA32_VMX_PINBASED_CTLS",
    0x00000482: "MSR_IA32_VMX_PROCBASED_CTLS",
    0x00000483: "MSR_IA32_VMX_EXIT_CTLS",
    0x00000484: "MSR_IA32_VMX_ENTRY_CTLS",
    0x00000485: "MSR_IA32_VMX_MISC",
    0x00000486: "MSR_IA32_VMX_CR0_FIXED0",
    0x00000487: "MSR_IA32_VMX_CR0_FIXED1",
    0x00000488: "MSR_IA32_VMX_CR4_FIXED0",
    0x00000489: "MSR_IA32_VMX_CR4_FIXED1",
    0x0000048A: "MSR_IA32_VMX_VMCS_ENUM",
    0x0000048B: "MSR_IA32_VMX_PROCBASED_CTLS2",
    0x0000048C: "MSR_IA32_VMX_EPT_VPID_CAP",
    0x0000048D: "MSR_IA32_VMX_TRUE_PINBASED_CTLS",
    0x0000048E: "MSR_IA32_VMX_TRUE_PROCBASED_CTLS",
    0x0000048F: "MSR_IA32_VMX_TRUE_EXIT_CTLS",
    0x00000490: "MSR_IA32_VMX_TRUE_ENTRY_CTLS",
    0x00000491: "MSR_IA32_VMX_VMFUNC",
    0xC0011029: "MSR_AMD64_DE_CFG",
}


class Volatile(NamedTuple):
    """Bits of one CPUID register that name the CPU that ran CPUID, not what the host can do.

    ``subleaf`` None: every subleaf. ``mask``: the bits to clear before comparing or hashing.

    Example:
        >>> VOLATILE[0].leaf, hex(VOLATILE[0].mask)
        (1, '0xff000000')
    """

    leaf: int
    subleaf: Optional[int]
    register: str
    mask: int
    why: str


#: The fields cleared before CPUID data is compared or hashed, so that two identical hosts (or
#: two CPUs of one host) compare equal. Leaves 1, 0xB and 0x8000001E follow libvirt's
#: src/util/virhostcpu.c ``virHostCPUGetCPUIDFilterVolatile`` (leaf 1 EBX[31:24], leaf 0xB EDX
#: [7:0], all of 0x8000001E on AMD); the differences are in each ``why``. 0x8000001E is cleared
#: whatever the vendor: Intel reserves the leaf (it reads as zeros), so no vendor test is needed
#: and the filter stays a pure function of the entries. Not cleared, on
#: purpose: leaf 1 EBX[23:16] and leaf 4 EAX[31:14] (logical processors and cores per
#: package) and the shape of 0xB/0x1F (EAX, EBX, ECX): the same on every CPU of a host, and a
#: real difference between two hosts or two guest topologies.
VOLATILE: Tuple[Volatile, ...] = (
    Volatile(0x00000001, None, "ebx", 0xFF000000,
             "initial APIC ID of the CPU that ran CPUID (SDM leaf 01H EBX[31:24]); as libvirt"),
    Volatile(0x0000000B, None, "edx", 0xFFFFFFFF,
             "x2APIC ID of the CPU that ran CPUID (SDM leaf 0BH EDX); libvirt clears [7:0] only, "
             "but the ID is 32 bits wide and above 255 on large hosts"),
    Volatile(0x0000001A, None, "eax", 0xFFFFFFFF,
             "core type and native model ID of the core that ran CPUID: P-core and E-core differ "
             "on hybrid parts (SDM leaf 1AH)"),
    Volatile(0x0000001F, None, "edx", 0xFFFFFFFF,
             "x2APIC ID in the V2 extended topology leaf (SDM leaf 1FH EDX), as for 0BH"),
    Volatile(0x8000001E, None, "eax", 0xFFFFFFFF, "AMD extended APIC ID (APM Fn8000_001E EAX); as libvirt"),
    Volatile(0x8000001E, None, "ebx", 0xFFFFFFFF, "AMD compute unit (core) ID (APM Fn8000_001E EBX); as libvirt"),
    Volatile(0x8000001E, None, "ecx", 0xFFFFFFFF, "AMD node ID (APM Fn8000_001E ECX); as libvirt"),
    Volatile(0x8000001E, None, "edx", 0xFFFFFFFF, "reserved (APM Fn8000_001E EDX); as libvirt"),
    Volatile(0x80000026, None, "ebx", 0xFFFF0000,
             "AMD core type, native model ID and efficiency ranking of the core that ran CPUID "
             "(APM Fn8000_0026 EBX[31:16]); they differ on heterogeneous parts"),
    Volatile(0x80000026, None, "edx", 0xFFFFFFFF,
             "AMD extended APIC ID in the extended CPU topology leaf (APM Fn8000_0026 EDX)"),
)
