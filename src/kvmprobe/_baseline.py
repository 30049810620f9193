"""The largest guest CPU every host of a set offers, built one host at a time in flat memory.

Imports ``_cpu_view``, ``_cpuid``, ``_cpuid_rules``, ``_cpuid_table`` and ``_validate``. Pure: a
:class:`BaselineBuilder` takes :class:`~kvmprobe._cpu_view.CpuView` values one by one (a
fleet streams them from files) and keeps only running values per rule, never the hosts: its
memory does not grow with their number. The rules of ``_cpuid_rules`` say how each register
combines: ``subset`` registers by AND (what every host offers), ``not_greater`` fields by their
minimum, ``equal`` registers must agree. Registers no rule judges keep the bits every host
agrees on. XSAVE components combine by AND, IA32_ARCH_CAPABILITIES by AND except RSBA and
RRSBA by OR (a guest must be told of them if any host has them), the other judged feature MSRs
by AND.

Which host alone keeps a bit out of the baseline is tracked too, in memory bounded by the
number of bits: for each bit, whether no host, one host or several lacked it, and the first
one that did.
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from ._cpu_view import CpuView
from ._cpuid import CpuidEntry, arch_capabilities, features_of, xsave_components
from ._cpuid_rules import ARCH_CAP_NOT_ON_DEST, MSR_RULES, RULES, Rule
from ._cpuid_table import FEATURE_MSRS, FEATURES, MSR_IA32_ARCH_CAPABILITIES, REGISTERS
from ._validate import Checker

__all__ = ["BASELINE_SCHEMA", "RANGE_HEADS", "Baseline", "BaselineBuilder", "BaselineEntry", "baseline_from_dict", "bit_names"]

#: The ``schema`` of a baseline document (``kvmprobe baseline --format json``).
BASELINE_SCHEMA = "kvmprobe-baseline"
BASELINE_SCHEMA_VERSION = 1
_U32 = 0xFFFFFFFF
_U64 = 2**64 - 1
#: The leaves whose EAX is the highest leaf of their range (SDM Vol. 2A CPUID): a baseline
#: lowers them to every host's minimum, so that a guest does not read a leaf some host lacks.
RANGE_HEADS = (0x0, 0x80000000)
_NAMED_BIT: Dict[Tuple[int, int, str, int], str] = {(r.leaf, r.subleaf or 0, r.register, r.bit): r.name for r in FEATURES}


class BaselineEntry(NamedTuple):
    """One CPUID leaf every host lists: ``values`` per register (eax..edx) and ``known``, the
    bits the baseline fixes (the rest differ between hosts and no rule judges them)."""

    leaf: int
    subleaf: int
    flags: int
    values: Tuple[int, int, int, int]
    known: Tuple[int, int, int, int]


class Baseline(NamedTuple):
    """What every host of a set offers a guest. See :func:`kvmprobe.compat.baseline`.

    ``rules``: ``(rule, value)`` for each judged register (``None``: an ``equal`` register the
    hosts disagree on); ``lost``: ``(rule, bits)`` offered by some host, not all; ``entries``:
    the leaves every host lists; ``partial``: leaves only some list (a Firecracker template
    cannot remove them); ``alone``: ``(host, [what only it lacks])`` for the hosts that alone
    keep something out; ``msrs``: the judged feature MSRs every host reads (``None`` for one
    some host lacks); ``msr_everywhere``: the feature MSRs every host's KVM_GET_MSR_INDEX_LIST has.

    Example:
        >>> from kvmprobe.compat import baseline
        >>> from kvmprobe.testing import fake_cpu_record, fake_probe_result
        >>> base = baseline([fake_probe_result({}, cpu=fake_cpu_record(["sse2", "avx2", "avx512f"])),
        ...                  fake_probe_result({}, cpu=fake_cpu_record(["sse2", "avx2"]))])
        >>> base.vendor, base.features(), base.lost_features(), base.xsave_components()
        ('GenuineIntel', ('sse2', 'avx2'), ('avx512f',), ())
        >>> [(hex(e.leaf), hex(e.ecx), hex(e.edx)) for e in base.cpuid()][0]
        ('0x1', '0x0', '0x4000000')
        >>> doc = base.to_dict()
        >>> doc["schema"], doc["hosts"], doc["lost"]
        ('kvmprobe-baseline', 2, ['avx512f'])
    """

    hosts: int
    arch: str
    vendors: Dict[str, int]
    models: Dict[str, int]
    rules: Tuple[Tuple[Rule, Optional[int]], ...]
    lost: Tuple[Tuple[Rule, int], ...]
    entries: Tuple[BaselineEntry, ...]
    partial: Tuple[Tuple[int, int, int], ...]
    heads: Dict[int, int]
    xsave: Optional[int]
    xsave_lost: int
    msrs: Dict[int, Optional[int]]
    msr_union: Dict[int, int]
    msr_common: Dict[int, int]
    msr_everywhere: Tuple[int, ...]
    tsc_khz: Tuple[Optional[int], Optional[int], int]
    alone: Tuple[Tuple[str, Tuple[str, ...]], ...]

    @property
    def vendor(self) -> Optional[str]:
        """The one vendor of every host, or ``None`` when they differ."""
        return next(iter(self.vendors)) if len(self.vendors) == 1 else None

    def cpuid(self) -> List[CpuidEntry]:
        """The judged registers as CPUID entries (the rest read as 0), for decoding by name:
        every register the feature table names bits of is judged, so no feature is left out."""
        regs: Dict[Tuple[int, int], List[int]] = {}
        for rule, value in self.rules:
            if value is not None:
                regs.setdefault(rule.key, [0, 0, 0, 0])[REGISTERS.index(rule.register)] |= value & rule.mask
        # Flag 1 (the subleaf is significant): each entry stands for its own subleaf only.
        return [CpuidEntry(leaf, subleaf, 1, *r) for (leaf, subleaf), r in sorted(regs.items())]

    def features(self) -> Tuple[str, ...]:
        """The feature names every host offers, in the table's order."""
        found = features_of(self.cpuid())
        return tuple(row.name for row in FEATURES if row.name in found)

    def lost_features(self) -> Tuple[str, ...]:
        """Features some host offers and the baseline does not, in the table's order."""
        names = {name for rule, bits in self.lost for name in bit_names(rule, bits)}
        return tuple(row.name for row in FEATURES if row.name in names)

    def xsave_components(self) -> Tuple[str, ...]:
        """The XSAVE components every host lets a guest enable."""
        return () if self.xsave is None else xsave_components(self.xsave)

    def to_dict(self) -> Dict[str, Any]:
        """The ``kvmprobe baseline --format json`` document (``schema`` ``kvmprobe-baseline``, 1);
        :func:`baseline_from_dict` reads it back (``kvmprobe compat --baseline FILE``)."""
        lost = dict(self.lost)
        low, high, recorded = self.tsc_khz
        return {
            "schema": BASELINE_SCHEMA,
            "schema_version": BASELINE_SCHEMA_VERSION,
            "hosts": self.hosts,
            "arch": self.arch,
            "vendors": dict(self.vendors),
            "models": dict(self.models),
            "features": list(self.features()),
            "lost": list(self.lost_features()),
            "xsave": {"mask": self.xsave, "components": list(self.xsave_components()),
                      "lost": list(xsave_components(self.xsave_lost))},
            "feature_msrs": [
                {"index": msr, "name": FEATURE_MSRS.get(msr, f"MSR {msr:#x}"), "value": value,
                 "meaning": " ".join(arch_capabilities(value)) if msr == MSR_IA32_ARCH_CAPABILITIES and value else ""}
                for msr, value in self.msrs.items()
            ],
            "rules": [
                {"where": rule.where(), "leaf": rule.leaf, "subleaf": rule.subleaf, "register": rule.register,
                 "mask": rule.mask, "kind": rule.kind, "value": value, "lost": lost.get(rule, 0), "source": rule.source}
                for rule, value in self.rules
            ],
            "cpuid": [
                {"function": e.leaf, "index": e.subleaf, "flags": e.flags,
                 **dict(zip(REGISTERS, e.values)), "known": dict(zip(REGISTERS, e.known))}
                for e in self.entries
            ],
            "partial": [{"function": leaf, "index": subleaf, "hosts": count} for leaf, subleaf, count in self.partial],
            "highest_leaves": {f"{head:#x}": value for head, value in self.heads.items()},
            "msr_everywhere": list(self.msr_everywhere),
            "tsc_khz": {"min": low, "max": high, "recorded": recorded},
            "alone": [{"host": host, "lacks": list(what)} for host, what in self.alone],
        }  # fmt: skip


def baseline_from_dict(document: Any, check: Checker) -> Baseline:
    """The :class:`Baseline` of a :meth:`Baseline.to_dict` document, checked strictly: what a
    verdict uses (the hosts, the architecture, the vendors, each rule's value, the XSAVE
    components, the feature MSRs) must be there and well-formed; the rules must be this
    kvmprobe's (a document written with other rules is refused, not half-read).

    Example:
        >>> from kvmprobe._cpu_record import CpuRecord
        >>> from kvmprobe._cpu_view import view_of
        >>> b = BaselineBuilder()
        >>> b.add(view_of(CpuRecord(cpuid=((1, 0, 0, 0, 0, 0b11, 0),)), "a"), "x86_64")
        >>> check = Checker(lambda field, message, hint: ValueError(f"{field}: {message}"))
        >>> baseline_from_dict(b.result().to_dict(), check).features()
        ('pni', 'pclmulqdq')
    """
    doc = check.mapping(document, "$")
    if doc.get("schema") != BASELINE_SCHEMA:
        check.fail("$.schema", f"not a kvmprobe baseline (expected \"schema\": \"{BASELINE_SCHEMA}\")",
                   "write one with 'kvmprobe baseline --format json SNAPSHOT...'")  # fmt: skip
    check.integer(doc.get("schema_version"), "$.schema_version", 1, BASELINE_SCHEMA_VERSION)
    hosts = check.integer(doc.get("hosts"), "$.hosts", 1, 2**62)
    arch = check.text(doc.get("arch"), "$.arch")
    vendors = {check.text(k, "$.vendors"): check.integer(v, f"$.vendors.{k}", 1, 2**62)
               for k, v in check.mapping(doc.get("vendors"), "$.vendors").items()}  # fmt: skip
    rows = check.array(doc.get("rules"), "$.rules")
    if len(rows) != len(RULES):
        check.fail("$.rules", f"{len(rows)} rules; this kvmprobe judges {len(RULES)}: write the baseline again with it")
    values: List[Tuple[Rule, Optional[int]]] = []
    for i, (rule, row) in enumerate(zip(RULES, rows)):
        at = f"$.rules[{i}]"
        row = check.mapping(row, at)
        if (row.get("leaf"), row.get("subleaf"), row.get("register"), row.get("mask")) != (
                rule.leaf, rule.subleaf, rule.register, rule.mask):  # fmt: skip
            check.fail(at, f"is not this kvmprobe's rule {i} ({rule.where()}): write the baseline again with it")
        values.append((rule, check.integer_or_null(row.get("value"), f"{at}.value", 0, _U32)))
    xsave = check.mapping(doc.get("xsave"), "$.xsave")
    msrs: Dict[int, Optional[int]] = {}
    for i, row in enumerate(check.array(doc.get("feature_msrs"), "$.feature_msrs")):
        row = check.mapping(row, f"$.feature_msrs[{i}]")
        index = check.integer(row.get("index"), f"$.feature_msrs[{i}].index", 0, _U32)
        msrs[index] = check.integer_or_null(row.get("value"), f"$.feature_msrs[{i}].value", 0, _U64)
    return Baseline(
        hosts=hosts, arch=arch, vendors=vendors, models={}, rules=tuple(values), lost=(), entries=(), partial=(),
        heads={}, xsave=check.integer_or_null(xsave.get("mask"), "$.xsave.mask", 0, _U64), xsave_lost=0, msrs=msrs,
        msr_union={}, msr_common={}, msr_everywhere=(), tsc_khz=(None, None, 0), alone=(),
    )  # fmt: skip


def bit_names(rule: Rule, bits: int) -> List[str]:
    """Names of ``bits`` of ``rule``'s register (``CPUID 0x7.0 ebx bit 22`` for unnamed ones)."""
    out = []
    for bit in range(32):
        if bits >> bit & 1:
            out.append(_NAMED_BIT.get((rule.leaf, rule.subleaf, rule.register, bit)) or f"{rule.where()} bit {bit}")
    return out


class _Lack:
    """Which hosts lack which bits of one register: none, exactly one (remembered), or several."""

    __slots__ = ("once", "more", "who")

    def __init__(self) -> None:
        self.once = 0
        self.more = 0
        self.who: Dict[int, int] = {}

    def add(self, missing: int, host: int) -> bool:
        """Count ``host`` as lacking ``missing``; true when it is the first to lack one of them."""
        fresh = missing & ~self.once & ~self.more
        self.more |= self.once & missing
        self.once = (self.once & ~missing) | fresh
        first = bool(fresh)
        while fresh:
            low = fresh & -fresh
            self.who[low.bit_length() - 1] = host
            fresh ^= low
        return first


class BaselineBuilder:
    """Add hosts with :meth:`add`, then take the :class:`Baseline` with :meth:`result`.

    Example:
        >>> from kvmprobe._cpu_record import CpuRecord
        >>> from kvmprobe._cpu_view import view_of
        >>> builder = BaselineBuilder()
        >>> builder.add(view_of(CpuRecord(cpuid=((1, 0, 0, 0, 0, 0b11, 0),)), "a"), "x86_64")
        >>> builder.add(view_of(CpuRecord(cpuid=((1, 0, 0, 0, 0, 0b01, 0),)), "b"), "x86_64")
        >>> base = builder.result()
        >>> base.features(), base.lost_features(), base.alone
        (('pni',), ('pclmulqdq',), (('b', ('pclmulqdq',)),))
    """

    def __init__(self) -> None:
        self.hosts = 0
        self.arch = ""
        self.vendors: Dict[str, int] = {}
        self.models: Dict[Tuple[Optional[str], Optional[int]], int] = {}
        self.judged: List[Optional[int]] = [None] * len(RULES)
        self.union = [0] * len(RULES)
        self.conflict = [False] * len(RULES)
        self.lack = [_Lack() for _ in RULES]
        self.entries: Dict[Tuple[int, int], List[int]] = {}  # and(4), or(4), flags: leaves every host lists
        self.partial: Dict[Tuple[int, int], int] = {}  # leaves some host lacks: how many list them
        self.heads: Dict[int, int] = {}
        self.xsave: Optional[int] = None
        self.xsave_union = 0
        self.xsave_lack = _Lack()
        self.xsave_missing = False
        self.msrs: Dict[int, Optional[int]] = {rule.msr: None for rule in MSR_RULES}
        self.msr_union: Dict[int, int] = {rule.msr: 0 for rule in MSR_RULES}
        self.msr_common: Dict[int, int] = {rule.msr: _U64 for rule in MSR_RULES}
        self.msr_seen: Dict[int, int] = {rule.msr: 0 for rule in MSR_RULES}
        self.listed: Optional[frozenset[int]] = None
        self.tsc: List[Any] = [None, None, 0]
        self.names: Dict[int, str] = {}

    def add(self, view: CpuView, arch: str) -> None:
        """Fold one host in (``arch``: its machine; the caller refuses mixed architectures).
        Its ``view.source`` is kept only if it is the first host to lack some bit."""
        host = self.hosts
        fresh = False
        first = host == 0
        self.hosts += 1
        self.arch = self.arch or arch
        vendor = view.vendor or "unknown"
        self.vendors[vendor] = self.vendors.get(vendor, 0) + 1
        model = (view.vendor, view.signature)  # named once per model, in result()
        self.models[model] = self.models.get(model, 0) + 1
        for i, rule in enumerate(RULES):
            value = view.register(rule)
            old = self.judged[i]
            if rule.kind == "subset":
                self.judged[i] = value if first else (old or 0) & value
                self.union[i] |= value
                fresh |= self.lack[i].add(rule.mask & ~value, host)
            elif rule.kind == "not_greater":
                self.judged[i] = value if first else min(old or 0, value)
            elif first:
                self.judged[i] = value
            elif old != value:
                self.conflict[i] = True
        self._leaves(view, first)
        fresh |= self._xsave(view, host)
        self._msrs(view, first)
        if fresh:
            self.names[host] = view.source
        if view.tsc_khz is not None:
            low, high, count = self.tsc
            self.tsc = [min(low, view.tsc_khz) if count else view.tsc_khz, max(high or 0, view.tsc_khz), count + 1]

    def _leaves(self, view: CpuView, first: bool) -> None:
        entries = view.entries
        for key in list(self.entries):
            if key not in entries:
                del self.entries[key]
                self.partial[key] = self.hosts - 1
        for key, entry in entries.items():
            regs = (entry.eax, entry.ebx, entry.ecx, entry.edx)
            kept = self.entries.get(key)
            if kept is not None:
                for r in range(4):
                    kept[r] &= regs[r]
                    kept[4 + r] |= regs[r]
            elif first:
                self.entries[key] = [*regs, *regs, entry.flags]
            else:
                self.partial[key] = self.partial.get(key, 0) + 1
        for head in RANGE_HEADS:
            found = entries.get((head, 0))
            value = 0 if found is None else found.eax
            self.heads[head] = value if first else min(self.heads.get(head, value), value)

    def _xsave(self, view: CpuView, host: int) -> bool:
        if view.xsave is None:
            self.xsave_missing = True
            return False
        self.xsave = view.xsave if self.xsave is None else self.xsave & view.xsave
        self.xsave_union |= view.xsave
        return self.xsave_lack.add(_U64 & ~view.xsave, host)

    def _msrs(self, view: CpuView, first: bool) -> None:
        for rule in MSR_RULES:
            value = view.msrs.get(rule.msr)
            if value is None:
                continue
            self.msr_seen[rule.msr] += 1
            self.msr_union[rule.msr] |= value
            self.msr_common[rule.msr] &= value
            old = self.msrs[rule.msr]
            if old is None:
                self.msrs[rule.msr] = value
            elif rule.kind == "arch_capabilities":
                self.msrs[rule.msr] = (old & value & ~ARCH_CAP_NOT_ON_DEST) | ((old | value) & ARCH_CAP_NOT_ON_DEST)
            else:
                self.msrs[rule.msr] = old & value
        listed = view.msr_list if view.msr_list is not None else frozenset()
        self.listed = listed if first else (self.listed or frozenset()) & listed

    def result(self) -> Baseline:
        """The baseline of the hosts added so far."""
        rules = tuple((rule, None if self.conflict[i] else self.judged[i]) for i, rule in enumerate(RULES))
        lost = tuple((rule, self.union[i] & ~(self.judged[i] or 0)) for i, rule in enumerate(RULES)
                     if rule.kind == "subset" and self.union[i] & ~(self.judged[i] or 0))  # fmt: skip
        entries = []
        for (leaf, subleaf), kept in sorted(self.entries.items()):
            values = list(kept[:4])
            known = [~(kept[r] ^ kept[4 + r]) & _U32 for r in range(4)]
            for rule, value in rules:
                if rule.key == (leaf, subleaf) and value is not None:
                    r = REGISTERS.index(rule.register)
                    values[r] = (values[r] & ~rule.mask) | value
                    known[r] |= rule.mask
            entries.append(BaselineEntry(leaf, subleaf, kept[8], (values[0], values[1], values[2], values[3]),
                                         (known[0], known[1], known[2], known[3])))  # fmt: skip
        partial = tuple((leaf, subleaf, count) for (leaf, subleaf), count in sorted(self.partial.items()))
        msrs = {msr: (value if self.msr_seen[msr] == self.hosts else None) for msr, value in self.msrs.items()}
        xsave = None if self.xsave_missing else self.xsave
        return Baseline(
            hosts=self.hosts,
            arch=self.arch,
            vendors=dict(sorted(self.vendors.items(), key=lambda kv: (-kv[1], kv[0]))),
            models=self._named_models(),
            rules=rules,
            lost=lost,
            entries=tuple(entries),
            partial=partial,
            heads=dict(self.heads),
            xsave=xsave,
            xsave_lost=0 if xsave is None else self.xsave_union & ~xsave,
            msrs=msrs,
            msr_union=dict(self.msr_union),
            msr_common={msr: value for msr, value in self.msr_common.items() if self.msr_seen[msr] == self.hosts},
            msr_everywhere=tuple(sorted((self.listed or frozenset()) & {r.msr for r in MSR_RULES})),
            tsc_khz=(self.tsc[0], self.tsc[1], self.tsc[2]),
            alone=self._alone(lost),
        )

    def _named_models(self) -> Dict[str, int]:
        named: Dict[str, int] = {}
        for (vendor, signature), count in self.models.items():
            model = CpuView("", vendor, signature, {}, None, {}, None, None, {}).model() or "unknown"
            named[model] = named.get(model, 0) + count
        return dict(sorted(named.items(), key=lambda kv: (-kv[1], kv[0])))

    def _alone(self, lost: Tuple[Tuple[Rule, int], ...]) -> Tuple[Tuple[str, Tuple[str, ...]], ...]:
        """Each host that alone lacks something the others all offer, most first (only with 2+ hosts)."""
        if self.hosts < 2:
            return ()
        per: Dict[int, List[str]] = {}
        index = {rule: i for i, rule in enumerate(RULES)}
        for rule, bits in lost:
            lack = self.lack[index[rule]]
            for bit in range(32):
                if bits >> bit & 1 and lack.once >> bit & 1:
                    per.setdefault(lack.who[bit], []).extend(bit_names(rule, 1 << bit))
        xlost = (self.xsave_union & ~(self.xsave or 0)) if not self.xsave_missing else 0
        for bit in range(64):
            if xlost >> bit & 1 and self.xsave_lack.once >> bit & 1:
                per.setdefault(self.xsave_lack.who[bit], []).append("XSAVE " + xsave_components(1 << bit)[0])
        ranked = sorted(per.items(), key=lambda kv: (-len(kv[1]), self.names.get(kv[0], "")))
        return tuple((self.names.get(host, f"host #{host + 1}"), tuple(what)) for host, what in ranked)
