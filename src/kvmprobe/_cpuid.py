"""Decoding x86 CPUID entries with the tables of ``_cpuid_table``: feature names, XSAVE
components, IA32_ARCH_CAPABILITIES bits, and the volatile-field filter.

Imports ``_cpuid_table``, ``_kvm_structs`` (for :class:`CpuidEntry`, the layout of an entry) and
``errors``. Pure functions over plain integers: no ioctl, no
files. An entry is a 7-tuple laid out like ``struct kvm_cpuid_entry2`` (function, index,
flags, eax, ebx, ecx, edx), which is what KVM_GET_SUPPORTED_CPUID returns per entry.
"""

from __future__ import annotations

from ._cpuid_table import (
    ARCH_CAPABILITIES,
    FEATURES,
    KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
    QEMU_NAMES,
    REGISTERS,
    VOLATILE,
    XSAVE_COMPONENTS,
    Feature,
)
from ._kvm_structs import CpuidEntry
from .errors import UnknownCpuFeature

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Iterable, List, Optional, Sequence, Tuple

__all__ = [
    "CpuidEntry",
    "arch_capabilities",
    "features_of",
    "find_entry",
    "filter_volatile",
    "lookup",
    "signature_fields",
    "vendor_of",
    "xsave_components",
]


# The highest leaf of a CPUID range is EAX of its first leaf: 0, 0x40000000 (hypervisor; KVM's
# KVM_CPUID_SIGNATURE), 0x80000000. Intel CPUs answer a basic leaf above the maximum with the
# data of the highest basic leaf (SDM Vol. 2A, CPUID), so such a leaf must not be decoded.
_RANGE_BASES = (0x00000000, 0x40000000, 0x80000000)


def find_entry(entries: Iterable[Sequence[int]], leaf: int, subleaf: int = 0) -> Optional[CpuidEntry]:
    """The entry for (leaf, subleaf), matching as KVM does (arch/x86/kvm/cpuid.c,
    ``cpuid_entry2_find``): the subleaf counts only where the entry's flags carry
    ``KVM_CPUID_FLAG_SIGNIFCANT_INDEX``. The one CPUID-entry lookup of the package.

    Args:
        entries: ``(function, index, flags, eax, ebx, ecx, edx)`` rows, e.g. KVM's answer.

    Example:
        >>> find_entry([(7, 0, 1, 0, 0x20, 0, 0), (0xD, 0, 0, 7, 0, 0, 0)], 0xD, 5).eax
        7
        >>> find_entry([(7, 0, 1, 0, 0x20, 0, 0)], 7, 1) is None
        True
    """
    for entry in entries:
        if entry[0] == leaf and (not entry[2] & KVM_CPUID_FLAG_SIGNIFCANT_INDEX or entry[1] == subleaf):
            return entry if entry.__class__ is CpuidEntry else CpuidEntry(*entry)
    return None


def _by_leaf(entries: Sequence[CpuidEntry]) -> Dict[int, List[CpuidEntry]]:
    """The entries of each leaf, in their order: :func:`find_entry` among a leaf's own entries only
    (a table of 100 entries asked for 700 features was a quadratic search, issue #19)."""
    index: Dict[int, List[CpuidEntry]] = {}
    for entry in entries:
        index.setdefault(entry.leaf, []).append(entry)
    return index


def features_of(entries: Iterable[Sequence[int]]) -> frozenset[str]:
    """The names of the feature bits set in ``entries`` (hidden ones included).

    Only bits the table knows are named; a leaf above the highest leaf its range announces
    (EAX of leaf 0, 0x40000000 or 0x80000000, when that entry is present) is ignored.

    Args:
        entries: ``(function, index, flags, eax, ebx, ecx, edx)`` tuples, e.g. from
            KVM_GET_SUPPORTED_CPUID or from the CPUID instruction (flags 1 where the
            index is a subleaf, as ``KVM_CPUID_FLAG_SIGNIFCANT_INDEX``).

    Returns:
        The set of names, as in ``_cpuid_table.FEATURES``.

    Example:
        >>> sorted(features_of([(1, 0, 0, 0, 0, 1 << 0, 1 << 25), (7, 0, 1, 0, 1 << 5, 0, 0)]))
        ['avx2', 'pni', 'sse']
    """
    index = _by_leaf([CpuidEntry(*entry) for entry in entries])
    heads = {base: find_entry(index.get(base, ()), base, 0) for base in _RANGE_BASES}
    found = set()
    for leaf, subleaf, register, bit, name, base in _feature_rows():
        entry = find_entry(index.get(leaf, ()), leaf, subleaf)
        if entry is None:
            continue
        head = heads[base]
        if head is not None and leaf > head.eax:  # above the highest leaf of its range
            continue
        if entry[register] >> bit & 1:
            found.add(name)
    return frozenset(found)


_MASKS: Dict[int, List[Tuple[Optional[int], str, int]]] = {}


def _volatile_masks() -> Dict[int, List[Tuple[Optional[int], str, int]]]:
    """:data:`VOLATILE` by leaf (built once: a fleet filters thousands of hosts)."""
    if not _MASKS:
        masks: Dict[int, List[Tuple[Optional[int], str, int]]] = {}
        for field in VOLATILE:
            masks.setdefault(field.leaf, []).append((field.subleaf, field.register, field.mask))
        _MASKS.update(masks)
    return _MASKS


_FEATURE_ROWS: List[Tuple[int, int, int, int, str, int]] = []


def _feature_rows() -> List[Tuple[int, int, int, int, str, int]]:
    """``FEATURES`` as plain tuples: leaf, subleaf, the register's place in a :class:`CpuidEntry`,
    bit, name, and the base of the leaf's range (worked out once, not per feature per host)."""
    if not _FEATURE_ROWS:
        _FEATURE_ROWS.extend(
            (row.leaf, row.subleaf or 0, CpuidEntry._fields.index(row.register), row.bit, row.name,
             max(base for base in _RANGE_BASES if base <= row.leaf))
            for row in FEATURES
        )  # fmt: skip
    return _FEATURE_ROWS


def filter_volatile(entries: Iterable[Sequence[int]]) -> List[CpuidEntry]:
    """The entries with the fields of ``_cpuid_table.VOLATILE`` cleared (APIC IDs and the like).

    Apply it before comparing or hashing CPUID data: two identical hosts, or two CPUs of one
    host, then give equal entries. The order of the entries is kept.

    Args:
        entries: ``(function, index, flags, eax, ebx, ecx, edx)`` tuples.

    Returns:
        New entries; the input is not changed.

    Example:
        >>> filter_volatile([(1, 0, 0, 0x00A60F11, 0x07200800, 0, 0)])
        [CpuidEntry(leaf=1, subleaf=0, flags=0, eax=10882833, ebx=2099200, ecx=0, edx=0)]
    """
    masks = _volatile_masks()
    out = []
    for raw in entries:
        entry = CpuidEntry(*raw)
        for subleaf, register, mask in masks.get(entry.leaf, ()):
            if subleaf is None or subleaf == entry.subleaf:
                entry = entry._replace(**{register: getattr(entry, register) & ~mask})
        out.append(entry)
    return out


def signature_fields(eax: int) -> Tuple[int, int, int]:
    """``(family, model, stepping)`` of CPUID.1:EAX, by the kernel's rule (arch/x86/lib/cpu.c
    ``x86_family``/``x86_model``, the numbers /proc/cpuinfo shows): the extended family is added
    when the family is 0xF, the extended model when the family is 6 or more.

    Example:
        >>> signature_fields(0x00B00F21), signature_fields(0x000806EC), signature_fields(0x00000F41)
        ((26, 2, 1), (6, 142, 12), (15, 4, 1))
    """
    family = eax >> 8 & 0xF
    if family == 0xF:
        family += eax >> 20 & 0xFF
    model = eax >> 4 & 0xF
    if family >= 6:
        model += (eax >> 16 & 0xF) << 4
    return family, model, eax & 0xF


def vendor_of(entry: Optional[Sequence[int]]) -> Optional[str]:
    """The vendor string of a CPUID leaf 0 entry (EBX, EDX, ECX as 12 ASCII bytes), or ``None``.

    Example:
        >>> vendor_of((0, 0, 0, 0x10, 0x68747541, 0x444D4163, 0x69746E65))
        'AuthenticAMD'
    """
    if entry is None:
        return None
    ebx, ecx, edx = entry[4], entry[5], entry[6]
    raw = b"".join(r.to_bytes(4, "little") for r in (ebx, edx, ecx))
    text = raw.decode("ascii", errors="replace").rstrip("\0")
    return text if text.isprintable() and text else None


def _bits(value: int, names: Dict[int, str]) -> Tuple[str, ...]:
    if value < 0:
        raise ValueError(f"a register or MSR value is not negative: {value}")
    return tuple(names.get(bit, f"bit{bit}") for bit in range(value.bit_length()) if value >> bit & 1)


def xsave_components(mask: int) -> Tuple[str, ...]:
    """The XSAVE state components in ``mask`` (XCR0, IA32_XSS, CPUID 0xD.0 EDX:EAX), low bit first.

    A bit the table does not know is named ``bit<n>``, so that nothing set goes unseen.

    Raises:
        ValueError: ``mask`` is negative.

    Example:
        >>> xsave_components(0x2E7)
        ('x87', 'sse', 'avx', 'opmask', 'zmm_hi256', 'hi16_zmm', 'pkru')
        >>> xsave_components(1 << 40 | 1)
        ('x87', 'bit40')
    """
    return _bits(mask, XSAVE_COMPONENTS)


def arch_capabilities(value: int) -> Tuple[str, ...]:
    """The IA32_ARCH_CAPABILITIES (MSR 0x10a) bits set in ``value``, low bit first.

    Names are the kernel's ``ARCH_CAP_*`` lowercased; an unknown bit is ``bit<n>``.

    Raises:
        ValueError: ``value`` is negative.

    Example:
        >>> arch_capabilities(0x0C000069)
        ('rdcl_no', 'skip_vmentry_l1dflush', 'mds_no', 'pschange_mc_no', 'gds_no', 'rfds_no')
    """
    return _bits(value, ARCH_CAPABILITIES)


_PREFIXES = ("x86_feature_", "kvm_feature_", "kvm_hints_", "pt_cap_")
_INDEX: Dict[str, Feature] = {}


def _fold(text: str) -> str:
    return text.strip().lower().replace("-", "_").replace(".", "_")


def _index() -> Dict[str, Feature]:
    if not _INDEX:
        index: Dict[str, Feature] = {row.name: row for row in FEATURES}
        for row in FEATURES:  # the source's identifier, with and without its prefix
            c_name = row.c_name.lower()
            if c_name:
                index.setdefault(c_name, row)
            for prefix in _PREFIXES:
                if c_name.startswith(prefix):
                    index.setdefault(c_name[len(prefix):], row)
        for alias, name in QEMU_NAMES.items():
            index.setdefault(alias, index[name])
        _INDEX.update(index)
    return _INDEX


def lookup(name: str) -> Feature:
    """The table row for a feature, by its /proc/cpuinfo name or its source's identifier.

    Case and '-' or '.' versus '_' do not matter, and QEMU's own names and aliases
    (``_cpuid_table.QEMU_NAMES``) are known, so QEMU's spellings work too (``kvm-pv-eoi``,
    ``sse4.1``, ``sse3``, ``tsc-deadline``). The kernel macro works with or without its prefix
    (``X86_FEATURE_XMM3``, ``xmm3``).

    Raises:
        UnknownCpuFeature: no row has that name; ``suggestions`` holds the closest names.

    Example:
        >>> lookup("pni") == lookup("X86_FEATURE_XMM3") == lookup("xmm3") == lookup("sse3")
        True
        >>> lookup("sse4.1").name, lookup("tsc-deadline").name
        ('sse4_1', 'tsc_deadline_timer')
        >>> row = lookup("avx512f")
        >>> hex(row.leaf), row.subleaf, row.register, row.bit
        ('0x7', 0, 'ebx', 16)
        >>> lookup("avx513f")
        Traceback (most recent call last):
        ...
        kvmprobe.errors.UnknownCpuFeature: unknown CPU feature 'avx513f' (hint: did you mean avx512f, avx512pf?)
    """
    if not isinstance(name, str):
        raise UnknownCpuFeature(repr(name), hint="give a feature name as a string")
    found = _index().get(_fold(name))
    if found is None:
        raise UnknownCpuFeature(name, _suggest(name))
    return found


def _suggest(text: str) -> List[str]:
    import difflib  # only on the error path: it costs milliseconds to import

    folded = _fold(text)
    names = [row.name for row in FEATURES]
    close = difflib.get_close_matches(folded, names, n=3, cutoff=0.75)
    substring = [n for n in names if len(folded) >= 4 and folded in n]
    return list(dict.fromkeys(close + substring))[:5]
