"""Compare two hosts: capabilities gained, lost and changed, host facts, VMM verdicts and CPUs.

Imports ``probing``, ``profiles``, ``_cc_judge`` and ``_cc_verdict`` (confidential-guest verdicts),
``_bitmasks``, ``caps``, ``errors``, ``_arch``, ``_cpu_decode``, ``_cpu_diff`` and ``_guest_report``.
:func:`diff_hosts` takes two :class:`~kvmprobe.ProbeResult` (recorded, preset or live) and returns a
:class:`HostDiff`: what an operator needs to know before moving VMs from host A to host B (or from
one kernel to the next). Pure: it never probes; the CLI (``kvmprobe diff A [B]``) gathers the hosts.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._arch import is_x86
from .caps import Cap
from .errors import describe_errno
from .probing import CapValues, ProbeResult
from .profiles import check_vmm, vmm_names

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass
    from typing import Any, Dict, FrozenSet, List, Optional, Tuple

    from ._cc_verdict import ConfidentialReport
    from ._cpu_decode import CpuInfo
    from ._cpu_diff import CpuChange
else:
    from ._value import dataclass

__all__ = ["CapChange", "FactChange", "HostDiff", "VerdictChange", "diff_hosts"]

#: The ``schema`` of :meth:`HostDiff.to_dict`.
DIFF_SCHEMA = "kvmprobe-diff"
DIFF_SCHEMA_VERSION = 2  # 2: the "cpu" changes


@dataclass(frozen=True)
class CapChange:
    """One capability whose answer differs: ``a`` on host A, ``b`` on host B.

    ``None`` is no value: the query failed (``a_error``/``b_error`` holds the errno).

    Example:
        >>> change = CapChange("KVM_CAP_NR_VCPUS", 9, 2, 8)
        >>> change.describe()
        'KVM_CAP_NR_VCPUS (9): 2 -> 8'
    """

    name: str
    number: int
    a: Optional[int]
    b: Optional[int]
    a_error: Optional[int] = None
    b_error: Optional[int] = None

    def describe(self) -> str:
        """``NAME (number): a -> b``, a failed query shown with its errno name.

        Example:
            >>> CapChange("KVM_CAP_HLT", 1, 1, None, b_error=5).describe()
            'KVM_CAP_HLT (1): 1 -> query failed: EIO (Input/output error)'
        """
        line = f"{self.name} ({self.number}): {_shown(self.a, self.a_error)} -> {_shown(self.b, self.b_error)}"
        return line + _named(self.number, self.a, self.b)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: name, number, a, b (and a_error/b_error when a query failed).

        Example:
            >>> CapChange("KVM_CAP_HLT", 1, 1, None, b_error=5).to_dict()
            {'name': 'KVM_CAP_HLT', 'number': 1, 'a': 1, 'b': None, 'b_error': 5}
        """
        doc: Dict[str, Any] = {"name": self.name, "number": self.number, "a": self.a, "b": self.b}
        if self.a_error is not None:
            doc["a_error"] = self.a_error
        if self.b_error is not None:
            doc["b_error"] = self.b_error
        return doc


def _named(number: int, a: Optional[int], b: Optional[int]) -> str:
    """`` [A: NAME|NAME; B: NAME]`` for a bit-mask capability's two answers, else ``""``."""
    from ._bitmasks import MASKS, decode_mask

    cap = next((c for c in MASKS if int(c) == number), None)
    if cap is None:
        return ""
    parts = []
    for side, value in (("A", a), ("B", b)):
        decoded = decode_mask(cap, value) if value else None
        if decoded is not None:
            parts.append(f"{side}: {decoded.text()}")
    return f" [{'; '.join(parts)}]" if parts else ""


def _shown(value: Optional[int], error: Optional[int]) -> str:
    if error is not None:
        return f"query failed: {describe_errno(error)}"
    return "-" if value is None else str(value)


@dataclass(frozen=True)
class FactChange:
    """One host fact that differs, by its dotted key (``host.kvm_modules.kvm_pvm.nested``).

    For a list of strings (``host.cpu_flags``) ``added``/``removed`` say what changed. A fact
    one host has no entry for at all (a module not loaded there) shows as ``(absent)``.

    Example:
        >>> FactChange("host.cpu_flags", ["svm"], ["vmx"], added=("vmx",), removed=("svm",)).describe()
        'host.cpu_flags: +vmx -svm'
    """

    key: str
    a: Any
    b: Any
    added: Tuple[str, ...] = ()
    removed: Tuple[str, ...] = ()

    def describe(self) -> str:
        """``key: a -> b`` (or ``+added -removed`` for a list).

        Example:
            >>> FactChange("kernel", "5.10.0", "6.1.0").describe()
            "kernel: '5.10.0' -> '6.1.0'"
        """
        if self.added or self.removed:
            return f"{self.key}: " + " ".join([f"+{x}" for x in self.added] + [f"-{x}" for x in self.removed])
        return f"{self.key}: {_fact(self.a)} -> {_fact(self.b)}"

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: key, a, b (``null`` where a host has no such fact), added/removed for a list.

        Example:
            >>> FactChange("host.cpu_flags", ["svm"], ["vmx"], added=("vmx",), removed=("svm",)).to_dict()
            {'key': 'host.cpu_flags', 'a': ['svm'], 'b': ['vmx'], 'added': ['vmx'], 'removed': ['svm']}
        """
        doc: Dict[str, Any] = {
            "key": self.key,
            "a": None if self.a is _ABSENT else self.a,
            "b": None if self.b is _ABSENT else self.b,
        }
        if self.added or self.removed:
            doc["added"] = list(self.added)
            doc["removed"] = list(self.removed)
        return doc


def _fact(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    if isinstance(value, Mapping):
        return f"{{{len(value)} entries}}" if value else "{}"
    return repr(value)


class _Absent:
    """A fact one host's record does not have at all (unlike ``None``: recorded as unknown)."""

    def __repr__(self) -> str:
        return "(absent)"


_ABSENT: Any = _Absent()


@dataclass(frozen=True)
class VerdictChange:
    """A VMM that can run on one host and not on the other, with both one-line verdicts.

    Example:
        >>> VerdictChange("cloud-hypervisor", "Cloud Hypervisor", True, False, "ok", "no").describe()
        'Cloud Hypervisor: ready -> NOT READY (no)'
    """

    vmm: str
    display_name: str
    a_ready: bool
    b_ready: bool
    a_summary: str
    b_summary: str

    def describe(self) -> str:
        """``Name: ready -> NOT READY (B's reason)``, or the other way round.

        Example:
            >>> VerdictChange("qemu", "QEMU", False, True, "QEMU cannot run", "QEMU can run").describe()
            'QEMU: NOT READY -> ready (A: QEMU cannot run)'
        """
        if self.a_ready:
            return f"{self.display_name}: ready -> NOT READY ({self.b_summary})"
        return f"{self.display_name}: NOT READY -> ready (A: {self.a_summary})"

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready.

        Example:
            >>> VerdictChange("qemu", "QEMU", False, True, "QEMU cannot run", "QEMU can run").to_dict()["b_ready"]
            True
        """
        return {
            "vmm": self.vmm,
            "display_name": self.display_name,
            "a_ready": self.a_ready,
            "b_ready": self.b_ready,
            "a_summary": self.a_summary,
            "b_summary": self.b_summary,
        }


@dataclass(frozen=True)
class HostDiff:
    """What differs between host A and host B.

    * ``gained``: unsupported (0, or a failed query) on A, positive on B; ``lost`` the reverse;
      ``changed``: any other difference (a count or bit mask, or 0 against a failed query).
    * ``vm_changed``: VM-fd answers that differ, when both hosts recorded them.
    * ``facts``: ``kernel``, ``arch``, ``api_version``, every host fact (``host.*``) and, when both
      hosts recorded the micro-guest checks, their verdicts (``run.ok``, ``run.exit_cost.far_off``, ...).
    * ``verdicts``: built-in VMMs ready on one host and not on the other.
    * ``cpu``: the CPU a guest gets, where both hosts recorded it: features offered on one
      host and not the other, XSAVE components, feature MSR values, the MSR list, the TSC
      rate beyond 250 ppm, the CPU model and CPUID bits no feature name covers (after the
      volatile fields are cleared).
    * ``notes``: what could not be compared (facts or VM-fd values recorded on one side only,
      capabilities only one side's kvmprobe knew), and the micro-guest timings of both hosts.

    ``equal`` is true when nothing differs (notes do not count).

    Example:
        >>> from kvmprobe.testing import fake_probe_result
        >>> a = fake_probe_result({"IMMEDIATE_EXIT": 0, "NR_VCPUS": 2}, kernel="4.9.0")
        >>> b = fake_probe_result({"IMMEDIATE_EXIT": 1, "NR_VCPUS": 8}, kernel="4.14.0")
        >>> d = diff_hosts(a, b)
        >>> d.equal, [c.name for c in d.gained], [c.describe() for c in d.changed], d.facts[0].describe()
        (False, ['KVM_CAP_IMMEDIATE_EXIT'], ['KVM_CAP_NR_VCPUS (9): 2 -> 8'], "kernel: '4.9.0' -> '4.14.0'")
        >>> diff_hosts(a, a).equal
        True
    """

    a_source: str
    b_source: str
    gained: Tuple[CapChange, ...] = ()
    lost: Tuple[CapChange, ...] = ()
    changed: Tuple[CapChange, ...] = ()
    vm_changed: Tuple[CapChange, ...] = ()
    facts: Tuple[FactChange, ...] = ()
    verdicts: Tuple[VerdictChange, ...] = ()
    notes: Tuple[str, ...] = ()
    cpu: Tuple[CpuChange, ...] = ()

    @property
    def equal(self) -> bool:
        """Whether nothing differs (notes aside).

        Example:
            >>> HostDiff("a.json", "b.json").equal
            True
        """
        return not (
            self.gained or self.lost or self.changed or self.vm_changed or self.facts or self.verdicts or self.cpu
        )

    def to_dict(self) -> Dict[str, Any]:
        """The JSON document of ``kvmprobe diff --json`` (``schema``: ``kvmprobe-diff``, version 2).

        Example:
            >>> doc = HostDiff("a.json", "b.json").to_dict()
            >>> doc["schema"], doc["equal"], doc["gained"]
            ('kvmprobe-diff', True, [])
        """
        return {
            "schema": DIFF_SCHEMA,
            "schema_version": DIFF_SCHEMA_VERSION,
            "a": self.a_source,
            "b": self.b_source,
            "equal": self.equal,
            "gained": [c.to_dict() for c in self.gained],
            "lost": [c.to_dict() for c in self.lost],
            "changed": [c.to_dict() for c in self.changed],
            "vm_changed": [c.to_dict() for c in self.vm_changed],
            "facts": [f.to_dict() for f in self.facts],
            "verdicts": [v.to_dict() for v in self.verdicts],
            "cpu": [c.to_dict() for c in self.cpu],
            "notes": list(self.notes),
        }


# One capability's answer on one fd: (value, errno); exactly one is not None.
if TYPE_CHECKING:
    _Answer = Tuple[Optional[int], Optional[int]]


# The table in its order, and each member's (number, name) key: iterating the enum is slow.
_CAPS: Tuple[Cap, ...] = tuple(Cap)
_KEYS: Tuple[Tuple[int, str], ...] = tuple((int(cap), cap.c_name) for cap in _CAPS)


def _rows_compared(
    a: Optional[Mapping[Cap, int]], b: Optional[Mapping[Cap, int]]
) -> Optional[Tuple[List[CapChange], List[CapChange], List[CapChange], List[Tuple[int, str]]]]:
    """:func:`_compare` of two hosts' answers on one fd when both are plain rows (no errors, no
    rows unknown to the table, the same ones not recorded: the caller checks): the positions
    that differ, found at C speed, instead of a 244-key dict per host; ``None`` otherwise."""
    if a.__class__ is not CapValues or b.__class__ is not CapValues:
        return None
    left, right = a._row, b._row
    gained: List[CapChange] = []
    lost: List[CapChange] = []
    changed: List[CapChange] = []
    if left is right or left == right:
        return gained, lost, changed, []
    for key, x, y in zip(_KEYS, left, right):
        x, y = x or 0, y or 0  # None: not recorded on both sides (skipped: equal), or no answer, as 0
        if x == y:
            continue
        change = CapChange(key[1], key[0], x, y, None, None)
        if x <= 0 < y:
            gained.append(change)
        elif y <= 0 < x:
            lost.append(change)
        else:
            changed.append(change)
    return gained, lost, changed, []


def _answers(
    values: Optional[Mapping[Cap, int]],
    errors: Mapping[Cap, int],
    unknown: Tuple[Mapping[str, Any], ...],
    vm: bool,
    not_recorded: FrozenSet[Cap] = frozenset(),
) -> Dict[Tuple[int, str], _Answer]:
    """Every answer of one host on one fd, keyed (number, name); a capability not recorded has none."""
    found: Dict[Tuple[int, str], _Answer] = {}
    if values is not None:
        for key, cap in zip(_KEYS, _CAPS):
            if cap in not_recorded:
                continue
            found[key] = (None, errors[cap]) if cap in errors else (values.get(cap, 0), None)
    value_key, error_key = ("vm_value", "vm_error") if vm else ("value", "error")
    for row in unknown:
        if value_key in row:
            found[(int(row["number"]), str(row["name"]))] = (row[value_key], row.get(error_key))
    return found


def _supported(answer: _Answer) -> bool:
    return answer[0] is not None and answer[0] > 0


def _compare(
    a: Dict[Tuple[int, str], _Answer], b: Dict[Tuple[int, str], _Answer]
) -> Tuple[List[CapChange], List[CapChange], List[CapChange], List[Tuple[int, str]]]:
    gained: List[CapChange] = []
    lost: List[CapChange] = []
    changed: List[CapChange] = []
    one_sided: List[Tuple[int, str]] = []
    for key in list(a) + [k for k in b if k not in a]:
        if key not in a or key not in b:
            one_sided.append(key)
            continue
        left, right = a[key], b[key]
        if left == right:
            continue
        change = CapChange(key[1], key[0], left[0], right[0], left[1], right[1])
        if not _supported(left) and _supported(right):
            gained.append(change)
        elif _supported(left) and not _supported(right):
            lost.append(change)
        else:
            changed.append(change)
    return gained, lost, changed, one_sided


# Fact maps whose keys are what was recorded (a device path with its node, or null when it is
# missing): a key one recording lacks is not recorded there, not a change. (In other maps a
# missing key is itself the fact: a module not loaded.)
_RECORDED_KEYS = frozenset({"host.devices"})


def _diff_facts(key: str, x: Any, y: Any, out: List[FactChange], notes: Optional[List[str]] = None) -> None:
    """Append what differs under ``key``: objects key by key, lists of strings as sets; a fact
    one recording lacks where absence is no fact goes to ``notes`` (not compared)."""
    if x == y:
        return
    if isinstance(x, Mapping) and isinstance(y, Mapping):
        recorded = key in _RECORDED_KEYS
        for sub in list(x) + [k for k in y if k not in x]:
            left, right = x.get(sub, _ABSENT), y.get(sub, _ABSENT)
            if (left is _ABSENT or right is _ABSENT) and notes is not None and (recorded or None in (left, right)):
                notes.append(f"{key}.{sub}: only {'B' if left is _ABSENT else 'A'} recorded it; not compared")
                continue
            _diff_facts(f"{key}.{sub}", left, right, out, notes)
    elif isinstance(x, list) and isinstance(y, list) and all(isinstance(i, str) for i in x + y):
        # Sets for membership: a list searched per item made this quadratic (issue #19: 12,800
        # CPU flags took 1.9 s); the order shown is each list's own.
        xs, ys = set(x), set(y)
        out.append(FactChange(key, x, y, tuple(i for i in y if i not in xs), tuple(i for i in x if i not in ys)))
    else:
        out.append(FactChange(key, x, y))


def _fact_changes(a: ProbeResult, b: ProbeResult, notes: List[str]) -> List[FactChange]:
    changes: List[FactChange] = []
    for key in ("kernel", "arch", "api_version"):
        _diff_facts(key, getattr(a, key), getattr(b, key), changes)
    if a.host is not None and b.host is not None:
        _diff_facts("host", a.host.to_dict(), b.host.to_dict(), changes, notes)
    elif a.host is not None or b.host is not None:
        notes.append(f"host facts: only {'A' if a.host is not None else 'B'} recorded them; not compared")
    _run_changes(a, b, changes, notes)
    if a.confidential is not None and b.confidential is not None:
        _diff_facts("confidential", a.confidential.to_dict(), b.confidential.to_dict(), changes, notes)
    elif a.confidential is not None or b.confidential is not None:
        notes.append(f"confidential-VM facts: only {'A' if a.confidential is not None else 'B'} recorded them; not compared")
    return changes


def _run_changes(a: ProbeResult, b: ProbeResult, changes: List[FactChange], notes: List[str]) -> None:
    """The micro-guest checks: their verdicts compared, their timings shown (a measurement differs
    every time, so only whether it is far off normal counts as a change)."""
    if a.run is None or b.run is None:
        if a.run is not None or b.run is not None:
            notes.append(f"run: only {'A' if a.run is not None else 'B'} recorded the micro-guest checks; not compared")
        return
    from ._guest_report import describe_ns

    left, right = a.run, b.run
    _diff_facts("run.ok", left.ok, right.ok, changes)
    _diff_facts("run.cpuid_follows_table", left.cpuid_follows_table, right.cpuid_follows_table, changes)
    for key, x, y in (("exit_cost", left.exit_cost, right.exit_cost), ("compute", left.compute, right.compute)):
        if x is not None and y is not None:
            _diff_facts(f"run.{key}.far_off", x.far_off, y.far_off, changes)
    figures = []
    if left.exit_cost is not None and right.exit_cost is not None:
        figures.append(f"exit cost {describe_ns(left.exit_cost.median_ns)} -> {describe_ns(right.exit_cost.median_ns)}")
    if left.compute is not None and right.compute is not None:
        figures.append(f"slowdown {left.compute.slowdown:,.0f}x -> {right.compute.slowdown:,.0f}x")
    if figures:
        notes.append(f"run, measured {left.measured_at} and {right.measured_at}: " + ", ".join(figures)
                     + " (timings are shown, not compared)")  # fmt: skip


def _verdicts(a: ProbeResult, b: ProbeResult, notes: List[str]) -> List[VerdictChange]:
    """The verdicts that changed between ready and not ready; one that cannot be told on a host
    (``unknown``: its recording lacks an answer) is noted, never a change."""
    changes: List[VerdictChange] = []
    theirs = set(vmm_names(b.arch))
    pairs: List[Tuple[str, Any, Any]] = []
    for name in vmm_names(a.arch):
        if name in theirs:
            pairs.append((name, check_vmm(name, a), check_vmm(name, b)))
    if is_x86(a.arch) and is_x86(b.arch):
        # Recorded facts (or, for a live host, what was gathered for it): the device is not asked.
        # Judged once per result, as the CPU is decoded once.
        pairs += [(was.kind, was, now) for was, now in zip(_judged(a).verdicts, _judged(b).verdicts)]
    for name, left, right in pairs:
        unknown = [side for side, verdict in (("A", left), ("B", right)) if verdict.state == "unknown"]
        if unknown:
            if left.state != right.state:
                notes.append(f"{left.display_name}: cannot tell on {' and '.join(unknown)} (not recorded); not compared")
            continue
        if left.ready != right.ready:
            changes.append(VerdictChange(name, left.display_name, left.ready, right.ready, left.summary(), right.summary()))
    return changes


def diff_hosts(a: ProbeResult, b: ProbeResult) -> HostDiff:
    """Compare host ``a`` with host ``b`` (two probe results: recorded, preset or live).

    Capabilities are compared by number and name, the table's first, then any a snapshot
    carried that this kvmprobe does not know (compared when both hosts recorded them, noted
    otherwise). VM-fd answers are compared when both hosts recorded them. Host facts are
    compared when both have them. The VMM verdicts are those of :func:`kvmprobe.profiles.check_vmm`
    for every built-in VMM with a profile for both hosts' architectures. The CPUs are compared
    when both hosts recorded their CPU data (``ProbeResult.cpu``).

    Args:
        a: the host you have (or had).
        b: the host you compare it with (or move to).

    Returns:
        A :class:`HostDiff`; ``.equal`` is true when nothing differs.

    Example:
        >>> from kvmprobe.presets import load_preset
        >>> d = diff_hosts(load_preset("linux-4.14"), load_preset("linux-3.10"))
        >>> "KVM_CAP_IMMEDIATE_EXIT" in [c.name for c in d.lost]
        True
        >>> [v.describe() for v in d.verdicts if v.vmm == "cloud-hypervisor"]  # doctest: +ELLIPSIS
        ['Cloud Hypervisor: ready -> NOT READY (Cloud Hypervisor cannot run here: KVM_CAP_IMMEDIATE_EXIT...)']
    """
    notes: List[str] = []
    plain = not (a.errors or b.errors or a.unknown or b.unknown) and a.not_recorded == b.not_recorded
    gained, lost, changed, one_sided = (plain and _rows_compared(a.values, b.values)) or _compare(
        _answers(a.values, a.errors, a.unknown, False, a.not_recorded),
        _answers(b.values, b.errors, b.unknown, False, b.not_recorded),
    )
    for side, host in (("A", a), ("B", b)):
        if host.not_recorded:
            missing = [cap.c_name for cap in _CAPS if cap in host.not_recorded]
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            notes.append(f"{len(missing)} capabilities not recorded on {side} ({shown}); not compared")
    lacking = {int(cap) for cap in a.not_recorded | b.not_recorded}
    for number, name in one_sided:
        if number not in lacking:
            notes.append(f"{name} ({number}): only one host's kvmprobe knew it; not compared")
    vm_changes: List[CapChange] = []
    if a.vm_values is not None and b.vm_values is not None:
        vm_plain = plain and not (a.vm_errors or b.vm_errors)
        vm_gained, vm_lost, vm_other, _ = (vm_plain and _rows_compared(a.vm_values, b.vm_values)) or _compare(
            _answers(a.vm_values, a.vm_errors, a.unknown, True, a.not_recorded),
            _answers(b.vm_values, b.vm_errors, b.unknown, True, b.not_recorded),
        )
        vm_changes = sorted(vm_gained + vm_lost + vm_other, key=_table_order)
    elif a.vm_values is not None or b.vm_values is not None:
        notes.append(f"VM-fd values: only {'A' if a.vm_values is not None else 'B'} recorded them; not compared")
    facts = _fact_changes(a, b, notes)
    cpu_changes: List[CpuChange] = []
    if _cpu(a) is not None or _cpu(b) is not None:  # the CPU tables load only when there is CPU data
        from ._cpu_diff import diff_cpus

        cpu_changes, cpu_notes = diff_cpus(_cpu(a), _cpu(b))
        notes += cpu_notes
    return HostDiff(
        a_source=a.source,
        b_source=b.source,
        gained=tuple(gained),
        lost=tuple(lost),
        changed=tuple(changed),
        vm_changed=tuple(vm_changes),
        facts=tuple(facts),
        verdicts=tuple(_verdicts(a, b, notes)),
        notes=tuple(notes),
        cpu=tuple(cpu_changes),
    )


def _judged(result: ProbeResult) -> ConfidentialReport:
    """The confidential-VM verdicts of a host (x86), judged once per result."""
    from ._cc_judge import assess

    return result._remembered("diff:confidential", lambda: assess(result, ask_kvm=False))


def _cpu(result: ProbeResult) -> Optional[CpuInfo]:
    """The decoded CPU of a host (KVM's side only: nothing is read), or None when not recorded."""
    if result.cpu is None or not is_x86(result.arch):
        return None
    from ._cpu_decode import decode

    cpu = result.cpu
    # Once per result: a host of a fleet is diffed twice (with the one before it and the one after).
    return result._remembered("diff:cpu", lambda: decode(cpu, arch=result.arch, source=result.source))


_ORDER = {int(cap): index for index, cap in enumerate(Cap)}


def _table_order(change: CapChange) -> Tuple[int, int]:
    return (_ORDER.get(change.number, len(_ORDER)), change.number)
