"""Whether a guest started on one host can move to another (live migration or snapshot restore).

Imports ``profiles``, ``probing``, ``caps``, ``_arch``, ``_baseline``, ``_cpu_view``, ``_cpuid``,
``_cpuid_rules``, ``_cpuid_table``, ``_cpu_diff`` and ``errors``. Pure: two recorded (or live)
hosts in, a :class:`Compat` verdict out, never printed. Every reason names what is lost and
the rule it breaks, cited:

* the CPU (``_cpuid_rules``): each judged register, Cloud Hypervisor's rules where they apply
  (subset, equal, not greater), the vendor, the XSAVE components (``KVM_X86_XCOMP_GUEST_SUPP``),
  the judged feature MSRs (IA32_ARCH_CAPABILITIES by Cloud Hypervisor's rule);
* the TSC rate: outside the VMM's tolerance (250 ppm, of the destination's rate for KVM, QEMU
  and Cloud Hypervisor, of the saved rate for Firecracker) the destination must scale it
  (``KVM_CAP_TSC_CONTROL``);
* with a VMM: that it can run on the destination at all (``profiles.check_vmm``), and the
  capabilities its own requirements say a restore or a migration needs (the
  ``conditional``/``optional`` requirements of ``_vmm_requirements`` whose text is about
  snapshots, restore or migration: nothing about a VMM is written down here).

The guest is everything the source offers, or a baseline (then it must also fit the source).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from ._arch import is_x86
from ._baseline import Baseline, bit_names
from ._cpu_diff import TSC_TOLERANCE_PPM
from ._cpu_view import CpuView, view_of
from ._cpuid import arch_capabilities, xsave_components
from ._cpuid_rules import ARCH_CAP_FB_CLEAR, ARCH_CAP_FB_CLEAR_IF, ARCH_CAP_NOT_ON_DEST, MSR_RULES, RULES, MsrRule, Rule
from ._cpuid_table import FEATURE_MSRS
from .caps import Cap
from .errors import IncomparableHosts, NotRecorded
from .probing import ProbeResult

__all__ = ["COMPAT_SCHEMA", "PURPOSES", "Compat", "Reason", "compare"]

COMPAT_SCHEMA = "kvmprobe-compat"
#: What the guest does: a live migration, or a snapshot restored elsewhere.
PURPOSES = ("migrate", "restore")
# The requirement texts of _vmm_requirements that are about moving a guest, per purpose.
_ABOUT = {"migrate": re.compile(r"migrat", re.I), "restore": re.compile(r"restor|snapshot", re.I)}
# Whose rate a VMM's 250 ppm are counted from: QEMU's freq_within_bounds(cur_freq, tsc_khz)
# (target/i386/kvm/kvm.c:867-881) and KVM's kvm_set_tsc_khz (arch/x86/kvm/x86.c tsc_tolerance_ppm)
# from the destination's; Firecracker's is_tsc_scaling_required from the snapshot's
# (src/vmm/src/arch/x86_64/vcpu.rs:660-676). Cloud Hypervisor has none of its own: KVM's.
_TSC_BASE = {"firecracker": "source"}
_TSC_SOURCE = {
    "qemu": "qemu/qemu@v10.2.2 target/i386/kvm/kvm.c:867-942 (freq_within_bounds, kvm_arch_set_tsc_khz)",
    "firecracker": "firecracker-microvm/firecracker@v1.16.1 src/vmm/src/arch/x86_64/vcpu.rs:32-37, 660-676",
    "cloud-hypervisor": "cloud-hypervisor/cloud-hypervisor@v53.0 hypervisor/src/kvm/mod.rs:3324-3326, 3571-3582 "
    "(KVM_SET_TSC_KHZ on restore; KVM's own tolerance)",
}
_KVM_TSC = "Linux arch/x86/kvm/x86.c kvm_set_tsc_khz (tsc_tolerance_ppm = 250)"


class Reason(NamedTuple):
    """One reason a guest cannot move: ``kind`` (``vendor``, ``cpuid``, ``xsave``, ``msr``,
    ``tsc``, ``vmm``, ``baseline``), ``what`` it concerns, ``names`` lost (features, components,
    bits), ``detail`` and the ``source`` of the rule.

    Example:
        >>> Reason("cpuid", "CPUID 0x7.0 ebx", ("avx2",), "", "cloud-hypervisor@v53.0 mod.rs:405-410").describe()
        'CPUID features DEST lacks: avx2 (CPUID 0x7.0 ebx; cloud-hypervisor@v53.0 mod.rs:405-410)'
        >>> Reason("tsc", "TSC", (), "2500000 kHz -> 2100000 kHz", "x86.c").to_dict()["describe"]
        '2500000 kHz -> 2100000 kHz (x86.c)'
    """

    kind: str
    what: str
    names: Tuple[str, ...]
    detail: str
    source: str

    def describe(self) -> str:
        """One line."""
        lead = {
            "cpuid": "CPUID features DEST lacks: ",
            "xsave": "XSAVE components DEST lacks: ",
            "baseline": "the baseline offers what SOURCE lacks, so no such guest starts there: ",
        }.get(self.kind, "")
        body = " ".join(self.names) if self.names else self.detail
        extra = f"{self.what}; " if self.names else ""
        if self.names and self.detail:
            extra += f"{self.detail}; "
        return f"{lead}{body} ({extra}{self.source})"

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready."""
        return {"kind": self.kind, "what": self.what, "names": list(self.names), "detail": self.detail,
                "source": self.source, "describe": self.describe()}  # fmt: skip


class Compat(NamedTuple):
    """The verdict: ``ok`` when there is no reason; ``notes`` on what could not be judged.

    Example:
        >>> from kvmprobe.compat import compare
        >>> from kvmprobe.testing import fake_cpu_record, fake_probe_result
        >>> big = fake_probe_result({}, source="big", cpu=fake_cpu_record(["sse2", "avx2"]))
        >>> small = fake_probe_result({}, source="small", cpu=fake_cpu_record(["sse2"]))
        >>> verdict = compare(big, small)
        >>> verdict.ok, [r.names for r in verdict.reasons], compare(small, big).ok
        (False, [('avx2',)], True)
        >>> doc = verdict.to_dict()
        >>> doc["schema"], doc["source"], doc["dest"], doc["ok"]
        ('kvmprobe-compat', 'big', 'small', False)
    """

    source: str
    dest: str
    purpose: str
    vmm: Optional[str]
    guest: str
    reasons: Tuple[Reason, ...]
    notes: Tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when the guest can move (no reason against it)."""
        return not self.reasons

    def to_dict(self) -> Dict[str, Any]:
        """The ``kvmprobe compat --json`` document (``schema`` ``kvmprobe-compat``, version 1)."""
        return {"schema": COMPAT_SCHEMA, "schema_version": 1, "source": self.source, "dest": self.dest,
                "purpose": self.purpose, "vmm": self.vmm, "guest": self.guest, "ok": self.ok,
                "reasons": [r.to_dict() for r in self.reasons], "notes": list(self.notes)}  # fmt: skip


class _Guest(NamedTuple):
    vendor: Optional[str]
    registers: Tuple[Optional[int], ...]  # per RULES
    xsave: Optional[int]
    msrs: Dict[int, Optional[int]]


def _guest_of(view: CpuView) -> _Guest:
    return _Guest(view.vendor, tuple(view.register(rule) for rule in RULES), view.xsave, dict(view.msrs))


def _guest_of_baseline(base: Baseline) -> _Guest:
    return _Guest(base.vendor, tuple(value for _, value in base.rules), base.xsave, dict(base.msrs))


def _cpu_reasons(guest: _Guest, dest: CpuView, kind: str = "cpuid") -> Tuple[List[Reason], List[str]]:
    reasons: List[Reason] = []
    notes: List[str] = []
    if guest.vendor != dest.vendor:
        reasons.append(Reason("vendor", "CPUID 0x0", (), f"the CPU vendor changes: {guest.vendor} -> {dest.vendor}; "
                              "a guest keeps the vendor it started with", "CPUID leaf 0 (Intel SDM Vol. 2A, AMD APM Vol. 3)"))  # fmt: skip
    for rule, have in zip(RULES, guest.registers):
        if have is None:
            continue
        there = dest.register(rule)
        reason = _judge(rule, have, there, kind)
        if reason is not None:
            reasons.append(reason)
    if guest.xsave is None or dest.xsave is None:
        notes.append("XSAVE components: not recorded on " + ("both" if guest.xsave is None and dest.xsave is None
                     else "SOURCE" if guest.xsave is None else "DEST") + "; not compared")  # fmt: skip
    elif guest.xsave & ~dest.xsave:
        reasons.append(Reason("xsave" if kind == "cpuid" else kind, "KVM_X86_XCOMP_GUEST_SUPP (CPUID 0xD.0)",
                              xsave_components(guest.xsave & ~dest.xsave), "",
                              "kvmprobe: a component the guest enabled must be restorable (XCR0; Intel SDM Vol. 1 13.3)"))  # fmt: skip
    for msr_rule in MSR_RULES:
        reason = _judge_msr(msr_rule, guest.msrs.get(msr_rule.msr), dest.msrs.get(msr_rule.msr), kind)
        if reason is not None:
            reasons.append(reason)
    return reasons, notes


def _judge(rule: Rule, have: int, there: int, kind: str) -> Optional[Reason]:
    what = rule.where() + (f" ({rule.what})" if rule.what else "")
    if rule.kind == "subset" and have & ~there:
        return Reason(kind, what, tuple(bit_names(rule, have & ~there)), "", rule.source)
    if rule.kind == "not_greater" and have > there:
        shift = (rule.mask & -rule.mask).bit_length() - 1
        return Reason(kind, what, (), f"{what}: {have >> shift} on SOURCE, {there >> shift} on DEST", rule.source)
    if rule.kind == "equal" and have != there:
        return Reason(kind, what, (), f"{what}: {have:#x} on SOURCE, {there:#x} on DEST", rule.source)
    return None


def _judge_msr(rule: MsrRule, have: Optional[int], there: Optional[int], kind: str) -> Optional[Reason]:
    if have is None:
        return None
    there = there or 0
    lost = have & ~there & rule.mask
    what = f"{rule.name} ({rule.msr:#x})"
    if rule.kind == "arch_capabilities":
        lost &= ~ARCH_CAP_NOT_ON_DEST
        if lost & ARCH_CAP_FB_CLEAR and there & ARCH_CAP_FB_CLEAR_IF == ARCH_CAP_FB_CLEAR_IF:
            lost &= ~ARCH_CAP_FB_CLEAR  # QEMU sets FB_CLEAR itself then (kvm.c:658-671)
        appear = there & ARCH_CAP_NOT_ON_DEST & ~have
        names = arch_capabilities(lost) + tuple(f"+{name} (appears on DEST)" for name in arch_capabilities(appear))
        if names:
            return Reason("msr" if kind == "cpuid" else kind, what, names, "", rule.source)
        return None
    if lost:
        named = ("cpuid_fault",) if rule.msr == 0xCE else tuple(f"bit {b}" for b in range(64) if lost >> b & 1)
        return Reason("msr" if kind == "cpuid" else kind, what, named, "", rule.source)
    return None


def _tsc(source: CpuView, dest: CpuView, dest_host: ProbeResult, vmm: Optional[str]) -> Tuple[List[Reason], List[str]]:
    a, b = source.tsc_khz, dest.tsc_khz
    if a is None or b is None:
        return [], [f"TSC rate: not recorded on {'SOURCE' if a is None else 'DEST'} (record with 'snapshot --vm'); not compared"]
    base = a if _TSC_BASE.get(vmm or "") == "source" else b
    ppm = abs(a - b) * 1_000_000 / base if base else float("inf")
    cite = _TSC_SOURCE.get(vmm or "", _KVM_TSC)
    if ppm <= TSC_TOLERANCE_PPM:
        return [], [f"TSC rate: {a} kHz -> {b} kHz ({ppm:.0f} ppm): within the {TSC_TOLERANCE_PPM} ppm tolerance"]
    if Cap.TSC_CONTROL in dest_host.not_recorded:
        return [], [f"TSC rate: {a} kHz -> {b} kHz ({ppm:.0f} ppm) needs TSC scaling, and DEST's KVM_CAP_TSC_CONTROL "
                    "is not recorded; not judged"]  # fmt: skip
    if Cap.TSC_CONTROL not in dest_host.errors and dest_host.values.get(Cap.TSC_CONTROL, 0) > 0:
        return [], [f"TSC rate: {a} kHz -> {b} kHz ({ppm:.0f} ppm): DEST scales the guest's TSC (KVM_CAP_TSC_CONTROL)"]
    detail = (f"TSC rate {a} kHz on SOURCE, {b} kHz on DEST: {ppm:.0f} ppm, over the {TSC_TOLERANCE_PPM} ppm tolerance, "
              "and DEST cannot scale a guest's TSC (no KVM_CAP_TSC_CONTROL)")  # fmt: skip
    if vmm == "qemu":
        detail += "; QEMU then migrates anyway unless tsc-frequency= is set, and the guest's clock runs at DEST's rate"
    return [Reason("tsc", "KVM_CAP_TSC_CONTROL", (), detail, cite)], []


def _vmm(spec: str, purpose: str, source_view: CpuView, dest: ProbeResult) -> Tuple[List[Reason], List[str]]:
    from .profiles import check_vmm

    readiness = check_vmm(spec, dest, arch=dest.arch)
    reasons: List[Reason] = []
    notes: List[str] = []
    if readiness.state == "unknown":
        notes.append(f"on DEST, {readiness.summary()}")
    elif not readiness.ready:
        reasons.append(Reason("vmm", readiness.display_name, (), readiness.summary(), readiness.profile.source))
    about = _ABOUT[purpose]
    for req in readiness.profile.of_kind("conditional", "optional"):
        if req.cap is Cap.TSC_CONTROL or not about.search(req.text):
            continue  # TSC scaling is judged from the two rates
        if req.cap is Cap.GET_TSC_KHZ and source_view.tsc_khz is None:
            continue  # only a saved TSC rate is asked for again
        if req.cap in dest.not_recorded:
            notes.append(f"{req.cap.c_name} is not recorded on DEST: {readiness.display_name} needs it for {req.text}")
            continue
        if req.cap not in dest.errors and dest.values.get(req.cap, 0) > 0:
            continue
        if req.kind == "conditional":
            reasons.append(Reason("vmm", req.cap.c_name, (), f"{readiness.display_name} needs {req.cap.c_name} for "
                                  f"{req.text}; DEST lacks it", readiness.profile.source))  # fmt: skip
        else:
            notes.append(f"{req.cap.c_name} is missing on DEST: {readiness.display_name}: {req.text}")
    return reasons, notes


def _other_msrs(source: CpuView, dest: CpuView) -> List[str]:
    judged = {rule.msr for rule in MSR_RULES} | {0x8B}
    differ = [index for index in sorted(source.msrs.keys() & dest.msrs.keys())
              if index not in judged and source.msrs[index] != dest.msrs[index]]  # fmt: skip
    if not differ:
        return []
    names = ", ".join(FEATURE_MSRS.get(index, f"{index:#x}") for index in differ)
    return [f"feature MSRs that differ and are not judged (they matter only to nested guests): {names}"]


def compare(
    source: ProbeResult,
    dest: ProbeResult,
    *,
    guest: Optional[Baseline] = None,
    purpose: str = "migrate",
    vmm: Optional[str] = None,
    source_name: str = "SOURCE",
    dest_name: str = "DEST",
) -> Compat:
    """Whether a guest started on ``source`` can move to ``dest``. See :func:`kvmprobe.compat.compare`."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, not {purpose!r}")
    if source.arch != dest.arch:
        raise IncomparableHosts(f"hosts of different architectures: {source_name} is {source.arch}, {dest_name} is "
                                f"{dest.arch}; no guest moves between them", hint="compare hosts of one architecture")  # fmt: skip
    if not is_x86(source.arch):
        raise NotRecorded(f"{source.arch} CPU data (kvmprobe reads x86 CPUs only so far)", source_name,
                          hint="compare x86_64 hosts; 'kvmprobe diff' compares the capabilities of any two")  # fmt: skip
    if vmm is not None and vmm.split("@")[0] in ("firecracker", "fc") and purpose == "migrate":
        raise IncomparableHosts("Firecracker has no live migration: its guests move as snapshots",
                                hint="use --for restore with --vmm firecracker")  # fmt: skip
    src = view_of(source.cpu, source_name)
    dst = view_of(dest.cpu, dest_name)
    reasons: List[Reason] = []
    notes: List[str] = []
    if guest is not None:
        own, _ = _cpu_reasons(_guest_of_baseline(guest), src, kind="baseline")
        reasons += own
        found, more = _cpu_reasons(_guest_of_baseline(guest), dst)
        what = f"the baseline of {guest.hosts} host{'s' if guest.hosts != 1 else ''}"
    else:
        found, more = _cpu_reasons(_guest_of(src), dst)
        what = "everything SOURCE offers"
    reasons += found
    notes += more
    if src.signature != dst.signature and src.model() and dst.model():
        notes.append(f"CPU model: {src.model()} -> {dst.model()}; the guest keeps the CPUID it started with")
    notes += _other_msrs(src, dst)
    name = vmm.split("@")[0] if vmm else None
    more_reasons, more_notes = _tsc(src, dst, dest, _normal_vmm(name))
    reasons += more_reasons
    notes += more_notes
    if vmm is not None:
        more_reasons, more_notes = _vmm(vmm, purpose, src, dest)
        reasons += more_reasons
        notes += more_notes
    return Compat(source_name, dest_name, purpose, vmm, what, tuple(reasons), tuple(notes))


def _normal_vmm(name: Optional[str]) -> Optional[str]:
    aliases = {"fc": "firecracker", "ch": "cloud-hypervisor", "clh": "cloud-hypervisor"}
    return aliases.get(name or "", name)
