"""A baseline as a VMM takes it: a Firecracker custom CPU template, a QEMU ``-cpu`` argument.

Imports ``_baseline``, ``_fc_template``, ``_qemu_models``, ``_cpuid_rules`` and ``_cpuid_table``.
Pure: a :class:`~kvmprobe._baseline.Baseline` in, a template or an argument
out, with notes on what the format cannot say.

* Firecracker (``_fc_template``): for each leaf every host lists, a bitmap per register that
  clears (``0``) what some host lacks and leaves the rest ``x``; fields that must not grow (the
  highest leaf 7 sub-leaf, the highest basic and extended leaves) are set to every host's
  minimum, so a guest does not read a leaf some host lacks (a template cannot remove one:
  Firecracker refuses a leaf KVM does not list). IA32_ARCH_CAPABILITIES gets a 64-bit bitmap
  when every host lists it. Leaf 0 (the vendor) is never written: Firecracker passes it through.
* QEMU (``_qemu_models``): the named model of the hosts' vendor that runs on every host as it is
  (its features, with what QEMU adds and removes under KVM, within the baseline) and needs the
  fewest ``+feature`` to reach the baseline, newest on a tie; where none runs as it is, ``host``
  with ``-feature`` for what some host lacks (the closest model, with its ``-feature`` list, is
  given alongside).
"""

from __future__ import annotations

from typing import Dict, FrozenSet, List, NamedTuple, Optional, Tuple

from ._baseline import RANGE_HEADS, Baseline
from ._cpuid_rules import ARCH_CAP_NOT_ON_DEST
from ._cpuid_table import MSR_IA32_ARCH_CAPABILITIES, REGISTERS
from ._fc_template import CpuidModifier, CpuTemplate, Filter, MsrModifier

__all__ = ["QemuCpu", "firecracker_template", "qemu_cpu", "qemu_names", "qemu_plans"]

_U32 = 0xFFFFFFFF
_U64 = 2**64 - 1
# CPUID 0x8000000A, the SVM features (QEMU's FEAT_SVM): QEMU does not check them against the host
# when its model has no svm, as under KVM by default (kvm_default_props switch svm off); seen with
# QEMU 7.2 and -cpu EPYC-Rome-v1,enforce on a host without SVM (tests/hardware/test_qemu_models_hw.py).
_SVM_LEAF = 0x8000000A


def firecracker_template(base: Baseline) -> Tuple[CpuTemplate, List[str]]:
    """The Firecracker custom CPU template that gives every host's guest the baseline, and notes.

    Example:
        >>> from kvmprobe._baseline import BaselineBuilder
        >>> from kvmprobe._cpu_record import CpuRecord
        >>> from kvmprobe._cpu_view import view_of
        >>> b = BaselineBuilder()
        >>> for bits in (0b11, 0b01):
        ...     b.add(view_of(CpuRecord(cpuid=((1, 0, 0, 0, 0, bits, 0),)), "h"), "x86_64")
        >>> template, notes = firecracker_template(b.result())
        >>> template.cpuid_modifiers
        (CpuidModifier(leaf=1, subleaf=0, flags=0, registers=(('ecx', Filter(filter=2, value=0)),)),)
    """
    filters: Dict[Tuple[int, int], List[Filter]] = {}
    listed = {(e.leaf, e.subleaf): e for e in base.entries}

    def force(key: Tuple[int, int], register: str, mask: int, value: int) -> None:
        regs = filters.setdefault(key, [Filter(0, 0)] * 4)
        r = REGISTERS.index(register)
        regs[r] = Filter(regs[r].filter | mask, (regs[r].value & ~mask) | (value & mask))

    lost = {rule: bits for rule, bits in base.lost}
    for rule, value in base.rules:
        if rule.key not in listed or value is None:
            continue
        if rule.kind == "subset" and lost.get(rule):
            force(rule.key, rule.register, lost[rule], 0)
        elif rule.kind == "not_greater":
            entry = listed[rule.key]
            r = REGISTERS.index(rule.register)
            if not entry.known[r] & rule.mask == rule.mask or entry.values[r] & rule.mask != value:
                force(rule.key, rule.register, rule.mask, value)  # the hosts differ: every host gets the minimum
    for head in RANGE_HEADS:
        found = listed.get((head, 0))
        if found is not None and not found.known[0] == _U32:  # EAX differs between hosts
            force((head, 0), "eax", _U32, base.heads[head])
    modifiers = []
    for key in sorted(filters):
        regs = tuple((REGISTERS[r], f) for r, f in enumerate(filters[key]) if f.filter)
        if regs:
            modifiers.append(CpuidModifier(key[0], key[1], listed[key].flags, regs))
    notes = [
        f"CPUID {leaf:#x}.{subleaf} is listed by {count} of {base.hosts} hosts: a template cannot remove it; the "
        "highest leaf fields are lowered so that a guest does not read it"
        for leaf, subleaf, count in base.partial
    ]
    msrs = []
    arch = base.msrs.get(MSR_IA32_ARCH_CAPABILITIES)
    union = base.msr_union.get(MSR_IA32_ARCH_CAPABILITIES, 0)
    common = base.msr_common.get(MSR_IA32_ARCH_CAPABILITIES)
    if arch is not None and common is not None and MSR_IA32_ARCH_CAPABILITIES in base.msr_everywhere:
        # The bits some hosts have and others lack: '0' (cleared everywhere), but '1' for RSBA
        # and RRSBA (a guest must be told of them on every host if any has them); 'x' the rest.
        change = union & ~common
        if change:
            msrs.append(MsrModifier(MSR_IA32_ARCH_CAPABILITIES, Filter(change, change & ARCH_CAP_NOT_ON_DEST)))
    elif union:
        notes.append("IA32_ARCH_CAPABILITIES is not listed or read on every host: the template leaves it alone")
    return CpuTemplate(cpuid_modifiers=tuple(modifiers), msr_modifiers=tuple(msrs)), notes


class QemuCpu(NamedTuple):
    """A QEMU ``-cpu`` value for a baseline.

    ``arg`` is what to pass; ``model`` the named model it starts from (``None``: ``host``);
    ``add``/``remove`` the ``+``/``-`` features; ``closest`` the nearest named model and its
    argument when none runs on every host as it is; ``notes`` what QEMU cannot be told.

    Example:
        >>> from kvmprobe.compat import baseline, qemu_cpu
        >>> from kvmprobe.testing import fake_cpu_record, fake_probe_result
        >>> cpu = qemu_cpu(baseline([fake_probe_result({}, cpu=fake_cpu_record(["sse2", "avx2"])),
        ...                          fake_probe_result({}, cpu=fake_cpu_record(["sse2"]))]))
        >>> cpu.arg.startswith("host,"), "avx2" in cpu.remove, cpu.model
        (True, True, None)
    """

    arg: str
    model: Optional[str]
    add: Tuple[str, ...]
    remove: Tuple[str, ...]
    closest: Optional[Tuple[str, str]]
    notes: Tuple[str, ...]


def qemu_names(base: Baseline) -> Tuple[FrozenSet[str], FrozenSet[str]]:
    """The QEMU feature names every host offers, and those only some offer."""
    from ._qemu_models import FEATURE_BITS, MSR_FEATURE_BITS, MULTI_BITS

    regs = {(e.leaf, e.subleaf): (e.values, e.known) for e in base.entries}
    lost = {(rule.leaf, rule.subleaf, rule.register): bits for rule, bits in base.lost}

    def state(leaf: int, subleaf: int, register: str, bit: int) -> Tuple[bool, bool]:
        found = regs.get((leaf, subleaf))
        r = REGISTERS.index(register)
        have = found is not None and bool(found[1][r] >> bit & 1) and bool(found[0][r] >> bit & 1)
        return have, bool(lost.get((leaf, subleaf, register), 0) >> bit & 1)

    every, some = set(), set()
    for name, place in FEATURE_BITS.items():
        places = MULTI_BITS.get(name, (place,))
        states = [state(*p) for p in places]
        if all(have for have, _ in states):
            every.add(name)
        elif any(lost_bit for _, lost_bit in states):
            some.add(name)
    arch = base.msrs.get(MSR_IA32_ARCH_CAPABILITIES)
    for name, (msr, bit) in MSR_FEATURE_BITS.items():
        if msr == MSR_IA32_ARCH_CAPABILITIES and arch is not None and arch >> bit & 1:
            every.add(name)
    return frozenset(every), frozenset(some)


def _models(vendor: str, qemu: Tuple[int, ...]) -> List[Tuple[str, FrozenSet[str], FrozenSet[str]]]:
    from ._qemu_models import MODELS

    newest_only = qemu < (10, 2, 2)
    return [(name, frozenset(features.split()), frozenset(msr.split()))
            for name, _alias, model_vendor, _f, _m, _s, in_7_2, features, msr in MODELS
            if model_vendor == vendor and (in_7_2 or not newest_only)]  # fmt: skip


def qemu_plans(base: Baseline, version: Tuple[int, ...], every: FrozenSet[str]) -> List[Tuple[str, Tuple[str, ...], Tuple[str, ...]]]:
    """``(model, +features, -features)`` for each named model of the hosts' vendor QEMU
    ``version`` has: what it takes for the model to give exactly ``every`` (the QEMU names every
    host offers), counting what QEMU adds and removes under KVM by itself.

    Example:
        >>> from kvmprobe.testing import fake_cpu_record, fake_probe_result
        >>> from kvmprobe.compat import baseline
        >>> plans = qemu_plans(baseline([fake_probe_result({}, cpu=fake_cpu_record(["sse2"]))]), (10, 2, 2),
        ...                    frozenset({"sse2"}))
        >>> plans[0][0], "-fpu" in ["-" + f for f in plans[0][2]]
        ('core2duo-v1', True)
    """
    from ._qemu_models import ALWAYS_AVAILABLE, FEATURE_BITS, KVM_DEFAULT_OFF, KVM_DEFAULT_ON

    svm_leaf = frozenset(name for name, place in FEATURE_BITS.items() if place[0] == _SVM_LEAF)
    plans = []
    for name, features, msr in _models(base.vendor or "", version):
        effective = (features - KVM_DEFAULT_OFF) | KVM_DEFAULT_ON | {"hypervisor"}
        remove = {f for f in effective | msr if f not in every and f not in ALWAYS_AVAILABLE}
        add = every - effective - msr - ALWAYS_AVAILABLE
        if "svm" not in effective | add:  # without svm QEMU leaves the SVM leaf's features out
            remove, add = remove - svm_leaf, add - svm_leaf
        plans.append((name, tuple(sorted(add)), tuple(sorted(remove))))
    return plans


def qemu_cpu(base: Baseline, version: Tuple[int, ...] = (10, 2, 2)) -> QemuCpu:
    """The ``-cpu`` value that gives a guest the baseline on every host, for QEMU ``version``.

    Models are those of the hosts' vendor that QEMU ``version`` has (7.2.0 up to 10.2.2: the
    7.2 list, which every later release keeps; from 10.2.2: all).

    Example:
        >>> from kvmprobe.presets import load_preset
        >>> from kvmprobe._baseline import BaselineBuilder
        >>> from kvmprobe._cpu_view import view_of
        >>> b = BaselineBuilder()
        >>> b.add(view_of(load_preset("pvm-6.18").cpu, "pvm"), "x86_64")
        >>> cpu = qemu_cpu(b.result())
        >>> cpu.model is None, cpu.closest[0]
        (True, 'Opteron_G2-v1')
    """
    from ._qemu_models import NAMES_AFTER_7_2

    every, some = qemu_names(base)
    notes: List[str] = []
    if version < (10, 2, 2):
        unnamed = sorted((every | some) & NAMES_AFTER_7_2)
        if unnamed:
            notes.append(f"QEMU {'.'.join(map(str, version))} has no name for {' '.join(unnamed)} (added after 7.2): "
                         "they are left as the model or the host has them")  # fmt: skip
        every, some = every - NAMES_AFTER_7_2, some - NAMES_AFTER_7_2
    vendor = base.vendor
    if vendor is None:
        notes.append("the hosts' vendors differ (" + ", ".join(base.vendors) + "): no named model fits them all")
    candidates = qemu_plans(base, version, every) if vendor is not None else []
    runnable = [c for c in candidates if not c[2]]
    order = {c[0]: i for i, c in enumerate(candidates)}
    closest = None
    if candidates:
        near = min(candidates, key=lambda c: (len(c[1]) + len(c[2]), -order[c[0]]))
        closest = (near[0], ",".join([near[0]] + [f"+{f}" for f in near[1]] + [f"-{f}" for f in near[2]]))
    if runnable:
        name, plus, _ = min(runnable, key=lambda c: (len(c[1]), -order[c[0]]))
        arg = ",".join([name] + [f"+{f}" for f in plus])
        return QemuCpu(arg, name, plus, (), None, tuple(notes))
    minus = tuple(sorted(some))
    if closest is not None:
        notes.append(f"no named {vendor} model runs on every host as it is; the closest is {closest[0]}")
    arg = ",".join(["host", "migratable=on"] + [f"-{f}" for f in minus])
    return QemuCpu(arg, None, (), minus, closest, tuple(notes))
