"""The decoded CPU view of a host: what a guest gets, what KVM hides, XSAVE, feature MSRs, TSC.

Imports ``_cpu_record``, ``_cpuid``, ``_cpuid_table``, ``_kvm_structs``, ``_kvm_backends``, ``_arch``
and ``errors``. Pure: :func:`decode` turns a :class:`~kvmprobe._cpu_record.CpuRecord` into a
:class:`CpuInfo`; it reads no file and asks no kernel. Every name comes from the tables of
``_cpuid_table``; nothing here knows a bit the table does not.
"""

from __future__ import annotations


from ._arch import is_x86
from ._kvm_backends import PVM
from ._cpu_record import CpuRecord
from ._cpuid import CpuidEntry, arch_capabilities, features_of, find_entry, lookup, signature_fields, vendor_of, xsave_components
from ._cpuid_table import (
    FEATURE_MSRS,
    FEATURES,
    MSR_IA32_ARCH_CAPABILITIES,
    RUNTIME_FEATURES,
    Feature,
)
from ._kvm_structs import IoctlFailure
from .errors import NotRecorded

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass
    from typing import Any, Dict, FrozenSet, Iterable, List, NamedTuple, Optional, Tuple
else:
    from ._value import NamedTuple
    from ._value import dataclass

__all__ = ["CPU_SCHEMA", "CPU_SCHEMA_VERSION", "CpuInfo", "FeatureMsr", "decode"]

#: The ``schema`` of :meth:`CpuInfo.to_dict` (``kvmprobe cpu --json``).
CPU_SCHEMA = "kvmprobe-cpu"
CPU_SCHEMA_VERSION = 1

#: What ``kvmprobe cpu`` does not read yet on the other architectures, and where it would.
NOT_READ_YET: Dict[str, str] = {
    "aarch64": "the guest's ID registers (ID_AA64PFR0_EL1, ID_AA64ISAR0_EL1, ... read with "
    "KVM_GET_ONE_REG on a vCPU)",
    "riscv64": "the guest's ISA extensions (the KVM_REG_RISCV_ISA_EXT registers of a vCPU, KVM_GET_ONE_REG)",
    "s390x": "the guest CPU model (the KVM_S390_VM_CPU_MODEL device attributes of a VM)",
}

# MSR_IA32_UCODE_REV (0x8b): Intel keeps the microcode revision in bits 63:32 of
# IA32_BIOS_SIGN_ID (SDM Vol. 3A 10.11.7), AMD in bits 31:0 of PATCH_LEVEL (the kernel's
# arch/x86/kernel/cpu/microcode/amd.c reads the low half, intel.c the high one).
_MSR_UCODE_REV = 0x8B
# MSR_PLATFORM_INFO (0xce) bit 31: CPUID faulting is available (msr-index.h
# MSR_PLATFORM_INFO_CPUID_FAULT_BIT); the one bit KVM answers for it (x86.c kvm_get_feature_msr).
_MSR_PLATFORM_INFO = 0xCE
_CPUID_FAULT_BIT = 31
#: What that bit set means, as the decoded view says it.
CPUID_FAULT_MEANING = "cpuid_fault (KVM can give a guest CPUID faulting)"

_PVM_NOTE = (
    f"this /dev/kvm is PVM ({PVM}): its KVM_GET_SUPPORTED_CPUID leaves out features the host CPU "
    "has, and a PVM guest's CPUID instruction runs natively on the host CPU unless CPUID faulting "
    "is on (PVM spec, 'X86 Instructions with changed behavior'; TencentCloud/CubeSandbox#1696), so "
    "a guest may see the host-only features anyway, whatever CPUID table its VMM sets"
)

# Display groups, first match wins: by leaf, then by name, then by name prefix; the rest is
# "other". Purpose only: which bit a name is stays the table's business.
_GROUP_LEAVES: Tuple[Tuple[str, FrozenSet[int]], ...] = (
    ("KVM paravirtual", frozenset({0x40000001})),
    ("AMD memory encryption", frozenset({0x8000001F})),
    ("AMD SVM", frozenset({0x8000000A})),
    ("Intel PT", frozenset({0x14})),
    ("power and thermal", frozenset({0x6})),
    ("XSAVE", frozenset({0xD})),
    ("VIA/Centaur", frozenset({0xC0000001})),
    ("security and speculation", frozenset({0x80000021})),
)
_GROUP_NAMES: Tuple[Tuple[str, FrozenSet[str]], ...] = (
    ("SIMD", frozenset({"pni", "f16c", "xop", "misalignsse", "fma", "fma4"})),
    ("crypto and random numbers", frozenset({
        "aes", "pclmulqdq", "vpclmulqdq", "vaes", "gfni", "sha_ni", "sha512", "sm3", "sm4", "rdrand", "rdseed",
        "aeskle", "wide_kl", "iwkey_backup"})),
    ("XSAVE", frozenset({"xsave", "osxsave", "xsaveerptr"})),
    ("virtualization", frozenset({"vmx", "svm", "hypervisor", "x2apic", "apic", "extapic", "tsc_deadline_timer",
                                  "tsc_adjust", "skinit", "cr8_legacy"})),
    ("security and speculation", frozenset({
        "spec_ctrl", "intel_stibp", "spec_ctrl_ssbd", "md_clear", "flush_l1d", "arch_capabilities",
        "core_capabilities", "srbds_ctrl", "rtm_always_abort", "tsx_force_abort", "amd_ibpb", "amd_ibrs",
        "amd_stibp", "amd_stibp_always_on", "amd_ssbd", "virt_ssbd", "amd_ssb_no", "amd_psfd", "btc_no",
        "amd_ibpb_ret", "smep", "smap", "umip", "pku", "ospke", "ibt", "shstk", "sgx", "sgx_lc", "tme",
        "pconfig", "lam", "nx", "fred"})),
    ("memory and paging", frozenset({"pae", "pse", "pse36", "pge", "pat", "mtrr", "pcid", "invpcid", "la57",
                                     "pdpe1gb", "lm", "fsgsbase", "clflush", "clflushopt", "clwb", "cldemote",
                                     "wbnoinvd", "ss", "cqm", "rdt_a"})),
    ("monitoring and debug", frozenset({
        "pdcm", "perfctr_core", "perfctr_nb", "perfctr_llc", "ibs", "lwp", "arch_lbr", "arch_perfmon_ext",
        "bpext", "ptsc", "irperf", "ds_cpl", "dtes64", "dts", "brs", "amd_ppin", "intel_pt", "de", "sdbg",
        "mce", "mca", "overflow_recov", "succor", "smca", "xtpr", "wdt", "rdpru"})),
)  # fmt: skip
_SIMD_PREFIXES = ("avx", "amx", "sse", "ssse", "mmx", "3dnow")
_GROUP_ORDER = (
    "SIMD", "crypto and random numbers", "instructions", "XSAVE", "memory and paging", "virtualization",
    "KVM paravirtual", "security and speculation", "monitoring and debug", "power and thermal", "Intel PT",
    "AMD SVM", "AMD memory encryption", "VIA/Centaur", "other",
)  # fmt: skip
_INSTRUCTIONS = frozenset({
    "popcnt", "abm", "bmi1", "bmi2", "adx", "tbm", "movbe", "erms", "fsrm", "fzrm", "fsrs", "fsrc", "movdiri",
    "movdir64b", "enqcmd", "serialize", "cmpccxadd", "clzero", "cx8", "cx16", "cmov", "lahf_lm", "rdtscp", "rdpid",
    "waitpkg", "monitor", "mwaitx", "fxsr", "fxsr_opt", "syscall", "sep", "wrmsrns", "lkgs", "hle", "rtm",
    "tsxldtrk", "fpu", "tsc", "msr", "vme",
})  # fmt: skip


def group_of(row: Feature) -> str:
    """The display group of a feature bit (``"SIMD"``, ``"KVM paravirtual"``, ...).

    Example:
        >>> group_of(lookup("avx512f")), group_of(lookup("kvm_pv_eoi")), group_of(lookup("bmi2"))
        ('SIMD', 'KVM paravirtual', 'instructions')
    """
    for group, leaves in _GROUP_LEAVES:
        if row.leaf in leaves:
            return group
    for group, names in _GROUP_NAMES:
        if row.name in names:
            return group
    if row.name.startswith(_SIMD_PREFIXES):
        return "SIMD"
    if row.name in _INSTRUCTIONS:
        return "instructions"
    return "other"


class FeatureMsr(NamedTuple):
    """One feature MSR KVM lists, the value KVM_GET_MSRS read on the system fd and what it says.

    ``msr`` is its index (``kvm_msr_entry.index``); ``value`` is ``None`` when KVM listed the
    MSR but could not read it.

    Example:
        >>> FeatureMsr(0x10A, "MSR_IA32_ARCH_CAPABILITIES", 0x21, "rdcl_no mds_no").describe()
        '0x10a MSR_IA32_ARCH_CAPABILITIES = 0x21: rdcl_no mds_no'
        >>> FeatureMsr(0x10A, "MSR_IA32_ARCH_CAPABILITIES", None, "").to_dict()
        {'index': 266, 'name': 'MSR_IA32_ARCH_CAPABILITIES', 'value': None, 'hex': None, 'meaning': ''}
    """

    msr: int
    name: str
    value: Optional[int]
    meaning: str

    def describe(self) -> str:
        """``0x10a NAME = 0x...: meaning``."""
        shown = "not readable" if self.value is None else hex(self.value)
        return f"{self.msr:#x} {self.name} = {shown}" + (f": {self.meaning}" if self.meaning else "")

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: index, name, value (an integer, or null), hex, meaning."""
        return {"index": self.msr, "name": self.name, "value": self.value,
                "hex": None if self.value is None else f"{self.value:#x}", "meaning": self.meaning}  # fmt: skip


@dataclass(frozen=True)
class CpuInfo:
    """What CPU a guest can get from KVM on one host, decoded from what the kernel answered.

    ``features``: the feature names KVM_GET_SUPPORTED_CPUID offers a guest. ``emulated``: those
    KVM_GET_EMULATED_CPUID adds (KVM emulates them; not offered by default). ``host``: what the
    host CPU has (its CPUID and ``/proc/cpuinfo``; ``None`` when not recorded); ``host_only``:
    the host has them, KVM does not offer them; ``kvm_only``: KVM offers them, the host lacks
    them. ``xsave``: the XSAVE components a guest may enable (``KVM_X86_XCOMP_GUEST_SUPP``,
    else CPUID 0xD.0). ``record``: the raw answers, exactly as given. Not readable
    (``readable`` false) on architectures kvmprobe does not decode yet: ``notes`` says what.

    Example:
        >>> from kvmprobe._cpu_record import CpuRecord
        >>> record = CpuRecord(cpuid=((0, 0, 0, 7, 0x756E6547, 0x6C65746E, 0x49656E69),
        ...                           (1, 0, 0, 0x000806EC, 0, 1 << 0, 1 << 25), (7, 0, 1, 0, 1 << 5, 0, 0)),
        ...                    host_flags=("sse", "pni", "avx2", "avx512f"))
        >>> info = decode(record, arch="x86_64", source="example")
        >>> info.vendor, info.family, info.model, info.stepping
        ('GenuineIntel', 6, 142, 12)
        >>> info.has("avx2"), info.has("avx512f"), sorted(info.host_only)
        (True, False, ['avx512f'])
        >>> info.tsc_khz, info.msrs, info.failed  # not asked in this record
        (None, None, ())
        >>> [entry.leaf for entry in info.normalized]
        [0, 1, 7]
        >>> CpuInfo("x", "x86_64", True, xsave_mask=0x7).xsave
        ('x87', 'sse', 'avx')
    """

    source: str
    arch: str
    readable: bool
    record: Optional[CpuRecord] = None
    kvm_backend: Optional[str] = None
    vendor: Optional[str] = None
    signature: Optional[int] = None
    family: Optional[int] = None
    model: Optional[int] = None
    stepping: Optional[int] = None
    features: FrozenSet[str] = frozenset()
    emulated: FrozenSet[str] = frozenset()
    host: Optional[FrozenSet[str]] = None
    host_only: FrozenSet[str] = frozenset()
    kvm_only: FrozenSet[str] = frozenset()
    xsave_mask: Optional[int] = None
    xsave_cpuid_mask: Optional[int] = None
    xsave_host_mask: Optional[int] = None
    feature_msrs: Tuple[FeatureMsr, ...] = ()
    microcode: Optional[int] = None
    arch_capabilities: Optional[Tuple[str, ...]] = None
    notes: Tuple[str, ...] = ()

    @property
    def xsave(self) -> Tuple[str, ...]:
        """The XSAVE components a guest may enable, low bit first (empty when not known)."""
        return xsave_components(self.xsave_mask or 0)

    @property
    def xsave_lost(self) -> Tuple[str, ...]:
        """XSAVE components the host CPU has that a guest may not enable.

        Example:
            >>> CpuInfo("x", "x86_64", True, xsave_mask=0x7, xsave_host_mask=0x207).xsave_lost
            ('pkru',)
        """
        if self.xsave_mask is None or self.xsave_host_mask is None:
            return ()
        return xsave_components(self.xsave_host_mask & ~self.xsave_mask)

    @property
    def tsc_khz(self) -> Optional[int]:
        """A scratch vCPU's TSC rate in kHz (``None``: not asked or not answered)."""
        return None if self.record is None else self.record.tsc_khz

    @property
    def msrs(self) -> Optional[Tuple[int, ...]]:
        """KVM_GET_MSR_INDEX_LIST: the MSRs a VMM can save and restore."""
        return None if self.record is None else self.record.msrs

    @property
    def failed(self) -> Tuple[IoctlFailure, ...]:
        """The CPU queries that failed, each with its errno."""
        return () if self.record is None else self.record.failed

    @property
    def normalized(self) -> Tuple[CpuidEntry, ...]:
        """KVM's CPUID with the volatile fields cleared, sorted: the view to compare or hash."""
        return () if self.record is None else self.record.normalized()

    def digest(self) -> str:
        """``sha256:<hex>`` of :attr:`normalized`: equal for hosts whose guests get the same CPU.

        Example:
            >>> from kvmprobe._cpu_record import CpuRecord
            >>> a = decode(CpuRecord(cpuid=((1, 0, 0, 0, 0x01000800, 0, 0),)), arch="x86_64", source="a")
            >>> b = decode(CpuRecord(cpuid=((1, 0, 0, 0, 0x07000800, 0, 0),)), arch="x86_64", source="b")
            >>> a.digest() == b.digest(), a.digest()[:7]
            (True, 'sha256:')
        """
        text = "".join(" ".join(f"{n:x}" for n in entry) + "\n" for entry in self.normalized)
        import hashlib  # only for a digest: it costs milliseconds to import

        return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()

    def has(self, name: str) -> bool:
        """Whether a guest gets feature ``name`` (any spelling :func:`kvmprobe._cpuid.lookup` takes).

        Raises:
            UnknownCpuFeature: no feature has that name (with close ones).
            NotRecorded: KVM's supported CPUID is not known here (not x86, or its query failed).

        Example:
            >>> from kvmprobe._cpu_record import CpuRecord
            >>> info = decode(CpuRecord(cpuid=((1, 0, 0, 0, 0, 1 << 13, 0),)), arch="x86_64", source="x")
            >>> info.has("cx16"), info.has("X86_FEATURE_CX16"), info.has("sse3")
            (True, True, False)
        """
        row = lookup(name)
        if self.record is None or self.record.cpuid is None:
            failure = None if self.record is None else self.record.failure("KVM_GET_SUPPORTED_CPUID")
            why = f" ({failure.describe()})" if failure is not None else ""
            raise NotRecorded(f"KVM's supported CPUID{why}", self.source)
        return row.name in self.features

    def groups(self) -> List[Tuple[str, List[str], List[str]]]:
        """``(group, offered, host_only)`` per display group that has either, in table order.

        Example:
            >>> from kvmprobe._cpu_record import CpuRecord
            >>> info = decode(CpuRecord(cpuid=((1, 0, 0, 0, 0, 0, 1 << 25),), host_flags=("sse", "sse2")),
            ...               arch="x86_64", source="x")
            >>> info.groups()
            [('SIMD', ['sse'], ['sse2'])]
        """
        found: Dict[str, Tuple[List[str], List[str]]] = {}
        for row in FEATURES:
            if row.name in self.features:
                found.setdefault(group_of(row), ([], []))[0].append(row.name)
            elif row.name in self.host_only:
                found.setdefault(group_of(row), ([], []))[1].append(row.name)
        return [(group, *found[group]) for group in _GROUP_ORDER if group in found]

    def decoded_dict(self) -> Dict[str, Any]:
        """The decoded view (a snapshot keeps it beside the raw answers): names, not bits.

        Example:
            >>> CpuInfo("x", "x86_64", True, features=frozenset({"sse2", "sse"})).decoded_dict()["features"]
            ['sse', 'sse2']
        """
        return {
            "readable": self.readable,
            "vendor": self.vendor,
            "signature": self.signature,
            "family": self.family,
            "model": self.model,
            "stepping": self.stepping,
            "features": _ordered(self.features),
            "emulated": _ordered(self.emulated),
            "host_only": None if self.host is None else _ordered(self.host_only),
            "kvm_only": None if self.host is None else _ordered(self.kvm_only),
            "xsave": {
                "mask": self.xsave_mask,
                "components": list(self.xsave),
                "cpuid_mask": self.xsave_cpuid_mask,
                "host_mask": self.xsave_host_mask,
                "lost": list(self.xsave_lost),
            },
            "feature_msrs": [msr.to_dict() for msr in self.feature_msrs],
            "microcode": self.microcode,
            "arch_capabilities": None if self.arch_capabilities is None else list(self.arch_capabilities),
            "tsc_khz": self.tsc_khz,
            "cpuid_digest": self.digest() if self.normalized else None,
            "notes": list(self.notes),
        }

    def to_dict(self) -> Dict[str, Any]:
        """The ``kvmprobe cpu --json`` document (``schema``: ``kvmprobe-cpu``, version 1).

        ``cpuid`` and ``emulated_cpuid`` are the entries exactly as the kernel answered them;
        ``features`` the names a guest gets; ``host_only`` what the host has and KVM does not
        offer; ``msrs`` KVM_GET_MSR_INDEX_LIST; ``feature_msrs`` every feature MSR with its value
        and meaning; ``failed`` the queries that failed.

        Example:
            >>> doc = CpuInfo("preset:x", "aarch64", False, notes=("not read yet",)).to_dict()
            >>> doc["schema"], doc["schema_version"], doc["readable"], doc["cpuid"], doc["notes"]
            ('kvmprobe-cpu', 1, False, None, ['not read yet'])
        """
        record = self.record or CpuRecord()
        raw = record.to_dict()
        decoded = self.decoded_dict()
        return {
            "schema": CPU_SCHEMA,
            "schema_version": CPU_SCHEMA_VERSION,
            "source": self.source,
            "arch": self.arch,
            "kvm_backend": self.kvm_backend,
            **{key: decoded.pop(key) for key in ("readable", "vendor", "signature", "family", "model", "stepping")},
            "cpuid": raw["cpuid"],
            "emulated_cpuid": raw["emulated_cpuid"],
            "host_cpuid": raw["host_cpuid"],
            "host_cpuid_source": raw["host_cpuid_source"],
            "host_flags": raw["host_flags"],
            **{key: decoded.pop(key) for key in ("features", "emulated", "host_only", "kvm_only", "xsave")},
            "msrs": raw["msrs"],
            **decoded,
            "failed": [{**row, "error": f.describe()} for row, f in zip(raw["failed"], record.failed)],
        }


def _ordered(names: Iterable[str]) -> List[str]:
    """Names in the table's order (sse before sse2 before pni), as a reader expects them."""
    wanted = set(names)
    return [row.name for row in FEATURES if row.name in wanted]


def _xsave_mask(entries: Optional[Iterable[CpuidEntry]]) -> Optional[int]:
    entry = find_entry(entries or (), 0xD, 0)
    return None if entry is None else entry.edx << 32 | entry.eax


def _feature_msrs(record: CpuRecord, vendor: Optional[str]) -> Tuple[FeatureMsr, ...]:
    values = dict(record.feature_msrs or ())
    out = []
    for index in record.feature_msr_indices or ():
        value = values.get(index)
        meaning = ""
        if value is not None and index == MSR_IA32_ARCH_CAPABILITIES:
            meaning = " ".join(arch_capabilities(value)) or "(no bit set)"
        elif value is not None and index == _MSR_UCODE_REV:
            revision = _microcode(value, vendor)
            meaning = "" if revision is None else f"microcode {revision:#x}"
        elif value is not None and index == _MSR_PLATFORM_INFO:
            meaning = CPUID_FAULT_MEANING if value >> _CPUID_FAULT_BIT & 1 else ""
        out.append(FeatureMsr(index, FEATURE_MSRS.get(index, f"MSR {index:#x}"), value, meaning))
    return tuple(out)


def _microcode(value: int, vendor: Optional[str]) -> Optional[int]:
    if vendor == "GenuineIntel":
        return value >> 32
    if vendor in ("AuthenticAMD", "HygonGenuine"):
        return value & 0xFFFFFFFF
    return None


def decode(
    record: Optional[CpuRecord],
    *,
    arch: str,
    source: str,
    kvm_backend: Optional[str] = None,
) -> CpuInfo:
    """Decode ``record`` (what KVM and the host answered) into a :class:`CpuInfo`.

    Args:
        record: the raw answers (``None`` on an architecture kvmprobe does not read yet).
        arch: the host's machine (``uname -m``).
        source: where the answers come from (``live``, ``snapshot:FILE``, ``preset:NAME``).
        kvm_backend: the KVM module behind /dev/kvm (``kvm_pvm`` adds the PVM note).

    Raises:
        NotRecorded: an x86 host without a record (a snapshot that did not record its CPU).

    Example:
        >>> decode(None, arch="s390x", source="live").notes[0].startswith("kvmprobe does not read s390x CPU data yet")
        True
    """
    if not is_x86(arch):
        what = NOT_READ_YET.get(arch, "its CPU registers")
        return CpuInfo(source, arch, False, record, kvm_backend,
                       notes=(f"kvmprobe does not read {arch} CPU data yet: {what}; the other commands work",))  # fmt: skip
    if record is None:
        raise NotRecorded("CPU data", source)
    kvm = _entries(record.cpuid)
    host_cpuid = _entries(record.host_cpuid)
    vendor = vendor_of(find_entry(kvm or (), 0) or find_entry(host_cpuid or (), 0))
    leaf1 = find_entry(kvm or (), 1) or find_entry(host_cpuid or (), 1)
    family, model, stepping = signature_fields(leaf1.eax) if leaf1 is not None else (None, None, None)
    features = features_of(kvm or ())
    emulated = features_of(record.emulated_cpuid or ()) - features
    host: Optional[FrozenSet[str]] = None
    if record.host_cpuid is not None or record.host_flags is not None:
        named = {row.name for row in FEATURES if not row.hidden}
        host = features_of(host_cpuid or ()) | (frozenset(record.host_flags or ()) & named)
    notes = []
    if kvm_backend == PVM:
        notes.append(_PVM_NOTE)
    if kvm is None:
        notes.append("KVM's supported CPUID is not known: " + _why(record, "KVM_GET_SUPPORTED_CPUID"))
    if record.host_cpuid_source is not None and record.host_cpuid is None:
        notes.append(f"host CPUID {record.host_cpuid_source}; host features are from /proc/cpuinfo only")
    arch_caps = record.feature_msr(MSR_IA32_ARCH_CAPABILITIES)
    ucode = record.feature_msr(_MSR_UCODE_REV)
    comparable = features - RUNTIME_FEATURES
    return CpuInfo(
        source=source,
        arch=arch,
        readable=kvm is not None,
        record=record,
        kvm_backend=kvm_backend,
        vendor=vendor,
        signature=None if leaf1 is None else leaf1.eax,
        family=family,
        model=model,
        stepping=stepping,
        features=features,
        emulated=emulated,
        host=host,
        host_only=frozenset() if host is None else host - features - RUNTIME_FEATURES,
        kvm_only=frozenset() if host is None else comparable - host,
        xsave_mask=record.xcomp_guest_supp if record.xcomp_guest_supp is not None else _xsave_mask(kvm),
        xsave_cpuid_mask=_xsave_mask(kvm),
        xsave_host_mask=_xsave_mask(host_cpuid),
        feature_msrs=_feature_msrs(record, vendor),
        microcode=None if ucode is None else _microcode(ucode, vendor),
        arch_capabilities=None if arch_caps is None else arch_capabilities(arch_caps),
        notes=tuple(notes),
    )


def _entries(rows: Optional[Iterable[Iterable[int]]]) -> Optional[Tuple[CpuidEntry, ...]]:
    """Entries as :class:`CpuidEntry` (a record made by hand may hold plain tuples)."""
    return None if rows is None else tuple(CpuidEntry(*row) for row in rows)


def _why(record: CpuRecord, ioctl: str) -> str:
    failure = record.failure(ioctl)
    return failure.describe() if failure is not None else "not recorded"
