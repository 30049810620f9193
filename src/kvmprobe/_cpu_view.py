"""One host's CPU as a fleet compares it: the judged registers, the compatibility class, the labels.

Imports ``_cpu_record``, ``_cpuid``, ``_cpuid_rules``, ``_cpuid_table`` and ``errors``. Pure:
a :class:`CpuView` is made from a raw :class:`~kvmprobe._cpu_record.CpuRecord` (its volatile
fields cleared, ``_cpuid.filter_volatile``) and read through the rules of ``_cpuid_rules``;
no decoding by name is needed, so a fleet of thousands of hosts is read quickly.

The compatibility class (:func:`cpu_class`) hashes exactly what a verdict judges: the vendor,
each register or field of :data:`~kvmprobe._cpuid_rules.RULES`, the XSAVE components and the
judged feature MSRs. Two hosts of one class pass every CPU check both ways, so a guest moves
between them freely; what is left out (the family, model and stepping, caches, topology, the
brand string, the TSC rate, the microcode) is what VMMs set for the guest or what a verdict
judges with a tolerance.
"""

from __future__ import annotations

import hashlib
from typing import Dict, FrozenSet, List, NamedTuple, Optional, Tuple

from ._cpu_record import CpuRecord
from ._cpuid import CpuidEntry, features_of, filter_volatile, signature_fields, vendor_of
from ._cpuid_rules import MSR_RULES, RULES, Rule
from ._cpuid_table import FEATURES
from .errors import NotRecorded

__all__ = ["CLASS_DIGITS", "CpuView", "cpu_class", "cpu_info", "cpu_labels", "labelled_view", "view_of"]

#: Hex digits of a class (48 bits: a collision among even a million classes is unlikely, and
#: the whole class fits a Kubernetes label value).
CLASS_DIGITS = 12
# Bumped when what a class hashes changes, so that old and new classes never look alike.
_CLASS_FORMAT = "kvmprobe-cpu-class 1"


class CpuView(NamedTuple):
    """What a fleet needs of one host's CPU record.

    ``entries``: KVM_GET_SUPPORTED_CPUID by ``(leaf, subleaf)``, volatile fields cleared.
    ``xsave``: the XSAVE components a guest may enable (``KVM_X86_XCOMP_GUEST_SUPP``, else
    CPUID 0xD.0); ``msrs``: the feature MSRs read; ``msr_list``: KVM_GET_MSR_INDEX_LIST
    (``None``: not answered); ``tsc_khz``: a new vCPU's TSC rate (``None``: not recorded).

    Example:
        >>> view = view_of(CpuRecord(cpuid=((1, 0, 0, 0x00B00F21, 0x05000800, 1, 0),)), "a.json")
        >>> view.entries[(1, 0)].ebx == 0x800, view.register(RULES[0])
        (True, 1)
    """

    source: str
    vendor: Optional[str]
    signature: Optional[int]
    entries: Dict[Tuple[int, int], CpuidEntry]
    xsave: Optional[int]
    msrs: Dict[int, int]
    msr_list: Optional[FrozenSet[int]]
    tsc_khz: Optional[int]
    flags: Dict[Tuple[int, int], int]

    def register(self, rule: Rule) -> int:
        """The bits of ``rule``'s register this host offers (an absent leaf counts as 0, as in
        Cloud Hypervisor's check)."""
        entry = self.entries.get(rule.key)
        return 0 if entry is None else getattr(entry, rule.register) & rule.mask

    def features(self) -> FrozenSet[str]:
        """The feature names a guest gets (``_cpuid_table`` names)."""
        return features_of(self.entries.values())

    def model(self) -> Optional[str]:
        """``GenuineIntel family 6 model 106 stepping 6``, or ``None``."""
        if self.vendor is None or self.signature is None:
            return None
        family, model, stepping = signature_fields(self.signature)
        return f"{self.vendor} family {family} model {model} stepping {stepping}"


def view_of(record: Optional[CpuRecord], source: str) -> CpuView:
    """The fleet view of ``record``.

    Raises:
        NotRecorded: no CPU data, or KVM_GET_SUPPORTED_CPUID was not answered when recorded.

    Example:
        >>> view_of(None, "old.json")
        Traceback (most recent call last):
        ...
        kvmprobe.errors.NotRecorded: old.json: CPU data not recorded (hint: record the host with 'python -m kvmprobe snapshot --vm -o FILE' and read that file)
    """
    if record is None:
        raise NotRecorded("CPU data", source)
    if record.cpuid is None:
        failure = record.failure("KVM_GET_SUPPORTED_CPUID")
        why = f" ({failure.describe()} when it was recorded)" if failure is not None else ""
        raise NotRecorded(f"KVM's supported CPUID{why}", source)
    entries = {(e.leaf, e.subleaf): e for e in filter_volatile(record.cpuid)}
    flags = {key: entry.flags for key, entry in entries.items()}
    leaf0, leaf1 = entries.get((0, 0)), entries.get((1, 0))
    xsave = record.xcomp_guest_supp
    if xsave is None and (0xD, 0) in entries:
        xsave = entries[(0xD, 0)].edx << 32 | entries[(0xD, 0)].eax
    return CpuView(
        source=source,
        vendor=vendor_of(leaf0),
        signature=None if leaf1 is None else leaf1.eax,
        entries=entries,
        xsave=xsave,
        msrs=dict(record.feature_msrs or ()),
        msr_list=None if record.msrs is None else frozenset(record.msrs),
        tsc_khz=record.tsc_khz,
        flags=flags,
    )


def _class_text(view: CpuView) -> str:
    lines = [_CLASS_FORMAT, f"vendor {view.vendor}"]
    lines += [f"{rule.where()} {view.register(rule):x}" for rule in RULES]
    lines.append("xsave " + ("-" if view.xsave is None else f"{view.xsave:x}"))
    for rule in MSR_RULES:
        value = view.msrs.get(rule.msr)
        lines.append(f"msr {rule.msr:x} " + ("-" if value is None else f"{value & rule.mask:x}"))
    return "\n".join(lines) + "\n"


def cpu_class(view: CpuView) -> str:
    """The compatibility class of a host: 12 hex digits of the SHA-256 of what a verdict judges.

    Hosts of one class are interchangeable for migration and restore as far as the CPU goes
    (the TSC rate and the VMM's capabilities are judged apart, per pair of hosts).

    Example:
        >>> a = view_of(CpuRecord(cpuid=((1, 0, 0, 0, 0x01000800, 1, 0), (0xB, 0, 1, 1, 2, 0x100, 3))), "a")
        >>> b = view_of(CpuRecord(cpuid=((1, 0, 0, 0, 0x07000800, 1, 0), (0xB, 0, 1, 1, 2, 0x100, 9))), "b")
        >>> c = view_of(CpuRecord(cpuid=((1, 0, 0, 0, 0x07000800, 3, 0),)), "c")
        >>> cpu_class(a) == cpu_class(b), cpu_class(a) == cpu_class(c), len(cpu_class(a))
        (True, False, 12)
    """
    return hashlib.sha256(_class_text(view).encode("ascii")).hexdigest()[:CLASS_DIGITS]


def cpu_labels(view: CpuView) -> List[Tuple[str, str, bool]]:
    """What a fleet's labels say of a host's CPU: ``(name, value, is_label)``.

    ``kvm.cpu-class`` and ``kvm.cpu-vendor``, then ``kvm.cpu.<feature>=true`` for each feature
    a guest gets: the ones ``/proc/cpuinfo`` names as labels (as NFD's own cpuid source labels
    CPU flags), the rest (KVM's paravirtual bits, speculation controls, Intel PT capabilities:
    names no scheduler selects on) as plain features only (``is_label`` false).

    Example:
        >>> view = view_of(CpuRecord(cpuid=((1, 0, 0, 0, 0, 1 << 0, 0), (0x40000001, 0, 0, 1 << 6, 0, 0, 0))), "x")
        >>> [(n, v, l) for n, v, l in cpu_labels(view) if n.startswith("kvm.cpu.")]
        [('kvm.cpu.pni', 'true', True), ('kvm.cpu.kvm_pv_eoi', 'true', False)]
    """
    pairs: List[Tuple[str, str, bool]] = [("kvm.cpu-class", cpu_class(view), True)]
    if view.vendor is not None:
        pairs.append(("kvm.cpu-vendor", view.vendor, True))
    offered = view.features()
    pairs += [(f"kvm.cpu.{row.name}", "true", not row.hidden) for row in FEATURES if row.name in offered]
    return pairs


def labelled_view(record: Optional[CpuRecord], source: str) -> Optional[CpuView]:
    """The view of ``record`` for a host's labels, or ``None`` when there is nothing to label
    (no CPU data, or KVM's CPUID was not answered): a host without CPU data simply has no CPU labels.

    Example:
        >>> labelled_view(None, "x") is None, labelled_view(CpuRecord(cpuid=()), "x") is not None
        (True, True)
    """
    if record is None or record.cpuid is None:
        return None
    return view_of(record, source)


def cpu_info(view: CpuView) -> Dict[str, str]:
    """The labels of the ``kvm_cpu_info`` metric: class, vendor, CPUID.1:EAX signature.

    Example:
        >>> sorted(cpu_info(view_of(CpuRecord(cpuid=((1, 0, 0, 0x00B00F21, 0, 0, 0),)), "x")))
        ['class', 'signature', 'vendor']
    """
    signature = "" if view.signature is None else f"{view.signature:#010x}"
    return {"class": cpu_class(view), "vendor": view.vendor or "", "signature": signature}
