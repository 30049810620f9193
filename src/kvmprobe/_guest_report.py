"""What a micro-guest run found, as values a snapshot can carry: exits, exit cost, slowdown, CPUID.

Imports ``_kvm_exits``, ``_validate`` and, where used, ``_cpuid_table``. :class:`RunReport` is what
``kvmprobe.guest.run_checks`` measures, what ``doctor``'s ``run`` check judges, what a snapshot
records under ``"run"`` and ``diff`` compares; :meth:`RunReport.from_dict` reads one back
strictly (every error names the field). The figures of "normal" the judgement compares with are
here too, each with its source. Public through :mod:`kvmprobe.guest`.
"""

from __future__ import annotations


from ._kvm_exits import exit_name, suberror_name
from ._validate import Checker

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple
else:
    from ._value import NamedTuple

__all__ = [
    "NORMAL_EXIT_NS",
    "NORMAL_SLOWDOWN",
    "RUN_SCHEMA",
    "RUN_SCHEMA_VERSION",
    "Compute",
    "CpuidRow",
    "ExitCost",
    "GuestExit",
    "RunReport",
    "cpuid_dynamic_mask",
]

RUN_SCHEMA = "kvmprobe-run"
RUN_SCHEMA_VERSION = 1

#: What one exit to user space normally costs, seen from user space: ``KVM_RUN`` in, a guest ``OUT``,
#: ``KVM_RUN`` back. Measured on AMD SVM bare metal at 2,528 cycles from ioctl entry to ioctl exit
#: (about 1 µs; Michael Roth, "KVM: SVM: use vmsave/vmload for saving/restoring additional host
#: state", LKML 2020-12, https://lkml.iu.edu/hypermail/linux/kernel/2012.2/00527.html); Intel VT-x
#: is of the same order (the VM exit itself is a few hundred ns, issue #14). kvmprobe's Python
#: call adds about a microsecond. Ten times that is "far off normal".
NORMAL_EXIT_NS = 2_000
#: Hardware virtualization "executes guest instructions at native speed" (Agesen, Mattson, Rugina,
#: Sheldon, "Software Techniques for Avoiding Hardware Virtualization Exits", USENIX ATC 2012): a
#: loop without exits runs as fast in the guest as natively. Ten times slower is "far off normal".
NORMAL_SLOWDOWN = 1.0
#: How many times "normal" a figure may be before it is far off it.
FAR_OFF = 10

# The CPUID bits a guest reads differently from KVM_GET_SUPPORTED_CPUID on every backend: those
# KVM updates at run time (the features of _cpuid_table.RUNTIME_FEATURES, OSXSAVE and OSPKE:
# arch/x86/kvm/cpuid.c, kvm_update_cpuid_runtime) and those that name the CPU that ran CPUID
# (_cpuid_table.VOLATILE, e.g. leaf 1 EBX[31:24], the initial APIC ID). Derived from those
# tables on first use, keyed (leaf, subleaf or None for every subleaf, register index 0-3).
_DYNAMIC: Dict[Tuple[int, Optional[int], int], int] = {}


def cpuid_dynamic_mask(leaf: int, subleaf: int, index: int) -> int:
    """The bits of register ``index`` (0-3 = EAX-EDX) of CPUID ``leaf``/``subleaf`` that reflect
    the vCPU's run-time state or the CPU that ran CPUID, not the table the VMM set.

    Example:
        >>> hex(cpuid_dynamic_mask(1, 0, 1)), hex(cpuid_dynamic_mask(1, 0, 2)), cpuid_dynamic_mask(1, 0, 3)
        ('0xff000000', '0x8000000', 0)
    """
    if not _DYNAMIC:
        from ._cpuid_table import FEATURES, REGISTERS, RUNTIME_FEATURES, VOLATILE

        found: Dict[Tuple[int, Optional[int], int], int] = {}
        for row in FEATURES:
            if row.name in RUNTIME_FEATURES:
                key = (row.leaf, row.subleaf, REGISTERS.index(row.register))
                found[key] = found.get(key, 0) | 1 << row.bit
        for volatile in VOLATILE:
            key = (volatile.leaf, volatile.subleaf, REGISTERS.index(volatile.register))
            found[key] = found.get(key, 0) | volatile.mask
        _DYNAMIC.update(found)
    return _DYNAMIC.get((leaf, subleaf, index), 0) | _DYNAMIC.get((leaf, None, index), 0)


_REGISTERS = ("eax", "ebx", "ecx", "edx")
_U64 = 2**64 - 1
_U32 = 2**32 - 1
#: How a run ended (``GuestRun.outcome``).
OUTCOMES = ("halted", "exit", "exit-limit", "timeout", "error")


class GuestExit(NamedTuple):
    """One exit of ``KVM_RUN``: the reason, what came with it, and how long that run took.

    Only the fields of the reason are set: IO (``port``, ``direction`` "in"/"out", ``size``,
    ``repeat``: the elements a string instruction moved, ``kvm_run.io.count``; ``value`` of the
    first element), MMIO (``address``, ``size``, ``value``,
    ``direction`` "read"/"write"), FAIL_ENTRY and UNKNOWN (``hardware_reason``), INTERNAL_ERROR
    (``suberror``, ``data``), EXCEPTION (``vector``, ``error_code``). ``ns`` is the time from
    entering ``KVM_RUN`` to its return, seen from user space.

    Example:
        >>> GuestExit(2, ns=9000, port=0x10, direction="out", size=1, repeat=1, value=0x42).describe()
        'KVM_EXIT_IO out port 0x10 size 1 value 0x42'
        >>> GuestExit(17, suberror=1).describe()
        'KVM_EXIT_INTERNAL_ERROR KVM_INTERNAL_ERROR_EMULATION'
        >>> hlt = GuestExit(5, ns=700)
        >>> hlt.name, hlt.to_dict()
        ('KVM_EXIT_HLT', {'reason': 5, 'name': 'KVM_EXIT_HLT', 'ns': 700})
        >>> from kvmprobe._validate import Checker
        >>> GuestExit.from_dict(Checker(lambda field, message, hint: ValueError(message)), hlt.to_dict(), "$.exit") == hlt
        True
    """

    reason: int
    ns: int = 0
    port: Optional[int] = None
    direction: Optional[str] = None
    size: Optional[int] = None
    repeat: Optional[int] = None
    value: Optional[int] = None
    address: Optional[int] = None
    hardware_reason: Optional[int] = None
    suberror: Optional[int] = None
    data: Tuple[int, ...] = ()
    vector: Optional[int] = None
    error_code: Optional[int] = None

    @property
    def name(self) -> str:
        """``KVM_EXIT_IO``, ...: the kernel's name of the reason."""
        return exit_name(self.reason)

    def describe(self) -> str:
        """One line, in the kernel's terms."""
        text = self.name
        if self.port is not None:
            text += f" {self.direction} port {self.port:#x} size {self.size}"
            if self.repeat not in (None, 1):
                text += f" repeat {self.repeat}"
            if self.value is not None:
                text += f" value {self.value:#x}"
        if self.address is not None:
            text += f" {self.direction} {self.address:#x} size {self.size}"
            if self.value is not None:
                text += f" value {self.value:#x}"
        if self.hardware_reason is not None:
            text += f" hardware reason {self.hardware_reason:#x}"
        if self.suberror is not None:
            text += f" {suberror_name(self.suberror)}"
            if self.data:
                text += " data " + " ".join(f"{word:#x}" for word in self.data)
        if self.vector is not None:
            text += f" vector {self.vector} error code {self.error_code:#x}" if self.error_code else f" vector {self.vector}"
        return text

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: ``reason``, ``name``, ``ns`` and the fields that are set."""
        doc: Dict[str, Any] = {"reason": self.reason, "name": self.name, "ns": self.ns}
        for key in ("port", "direction", "size", "repeat", "value", "address", "hardware_reason", "suberror",
                    "vector", "error_code"):  # fmt: skip
            item = getattr(self, key)
            if item is not None:
                doc[key] = item
        if self.data:
            doc["data"] = list(self.data)
        return doc

    @classmethod
    def from_dict(cls, check: Checker, item: Any, field: str) -> GuestExit:
        """Read one back (``name`` is derived, so it is checked, not trusted)."""
        doc = check.mapping(item, field)
        check.keys(doc, field, ("reason", "name", "ns", "port", "direction", "size", "repeat", "value", "address",
                                "hardware_reason", "suberror", "data", "vector", "error_code"),
                   ("reason", "ns"))  # fmt: skip
        reason = check.integer(doc["reason"], f"{field}.reason", 0, _U32)
        if "name" in doc and check.text(doc["name"], f"{field}.name") != exit_name(reason):
            check.fail(f"{field}.name", f"{doc['name']!r} is not the name of exit reason {reason} ({exit_name(reason)})")
        values: Dict[str, Any] = {"reason": reason, "ns": check.integer(doc["ns"], f"{field}.ns", 0, _U64)}
        for key, high in (("port", 0xFFFF), ("size", 8), ("repeat", _U32), ("value", _U64), ("address", _U64),
                          ("hardware_reason", _U64), ("suberror", _U32), ("vector", 255), ("error_code", _U32)):  # fmt: skip
            if key in doc:
                values[key] = check.integer(doc[key], f"{field}.{key}", 0, high)
        if "direction" in doc:
            direction = check.text(doc["direction"], f"{field}.direction")
            if direction not in ("in", "out", "read", "write"):
                check.fail(f"{field}.direction", f"{direction!r} is not in, out, read or write")
            values["direction"] = direction
        if "data" in doc:
            words = check.array(doc["data"], f"{field}.data")
            if len(words) > 16:
                check.fail(f"{field}.data", f"{len(words)} words; an internal error carries at most 16")
            values["data"] = tuple(check.integer(w, f"{field}.data[{i}]", 0, _U64) for i, w in enumerate(words))
        return cls(**values)


class ExitCost(NamedTuple):
    """``exits`` round trips of a guest ``OUT`` to user space: the median, fastest and slowest.

    Example:
        >>> cost = ExitCost(exits=999, median_ns=9_000, min_ns=7_500, max_ns=80_000)
        >>> cost.far_off, ExitCost(999, 50 * NORMAL_EXIT_NS, 1, 10**9).far_off
        (False, True)
        >>> cost.to_dict()
        {'exits': 999, 'median_ns': 9000, 'min_ns': 7500, 'max_ns': 80000}
    """

    exits: int
    median_ns: int
    min_ns: int
    max_ns: int

    @property
    def far_off(self) -> bool:
        """Whether the median is more than ten times :data:`NORMAL_EXIT_NS`."""
        return self.median_ns > FAR_OFF * NORMAL_EXIT_NS

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready."""
        return self._asdict()


class Compute(NamedTuple):
    """A loop of ``iterations`` (two instructions each) in the guest and natively, in ns.

    Example:
        >>> loop = Compute(iterations=1_000_000, guest_ns=2_100_000, native_ns=700_000)
        >>> loop.slowdown, loop.far_off
        (3.0, False)
        >>> Compute(1_000_000, 5_200 * 700_000, 700_000).to_dict()
        {'iterations': 1000000, 'guest_ns': 3640000000, 'native_ns': 700000, 'slowdown': 5200.0}
    """

    iterations: int
    guest_ns: int
    native_ns: int

    @property
    def slowdown(self) -> float:
        """How many times slower the guest ran the loop (1.0: as fast as natively)."""
        return self.guest_ns / max(self.native_ns, 1)

    @property
    def far_off(self) -> bool:
        """Whether the guest is more than ten times slower than natively."""
        return self.slowdown > FAR_OFF * NORMAL_SLOWDOWN

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready (``slowdown`` is derived and written for readers; it is not read back)."""
        return {**self._asdict(), "slowdown": round(self.slowdown, 1)}


class CpuidRow(NamedTuple):
    """One CPUID leaf as the guest read it, and as ``KVM_GET_SUPPORTED_CPUID`` lists it (``None``:
    not listed). Registers are (EAX, EBX, ECX, EDX).

    Example:
        >>> row = CpuidRow(7, 0, (0, 0x209, 0, 0), (0, 0x209, 0, 0))
        >>> row.differences(), row.to_dict()
        ([], {'leaf': 7, 'subleaf': 0, 'guest': [0, 521, 0, 0], 'supported': [0, 521, 0, 0]})
    """

    leaf: int
    subleaf: int
    guest: Tuple[int, int, int, int]
    supported: Optional[Tuple[int, int, int, int]]

    def differences(self) -> List[Tuple[str, int]]:
        """(register, bits that differ), leaving out the bits of :func:`cpuid_dynamic_mask`.

        Example:
            >>> CpuidRow(1, 0, (0, 0x05000000, 0x08000001, 0), (0, 0, 1, 1)).differences()
            [('edx', 1)]
        """
        if self.supported is None:
            return [(name, value) for name, value in zip(_REGISTERS, self.guest) if value]
        out = []
        for index, (name, seen, listed) in enumerate(zip(_REGISTERS, self.guest, self.supported)):
            differ = (seen ^ listed) & ~cpuid_dynamic_mask(self.leaf, self.subleaf, index)
            if differ:
                out.append((name, differ))
        return out

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready."""
        return {
            "leaf": self.leaf,
            "subleaf": self.subleaf,
            "guest": list(self.guest),
            "supported": None if self.supported is None else list(self.supported),
        }


class RunReport(NamedTuple):
    """The standard micro-guest checks of one host, at one time (``kvmprobe.guest.run_checks``).

    ``real_mode`` holds the exits of the five-byte real-mode guest and ``outcome`` how it ended;
    ``ok`` is true when they are exactly ``KVM_EXIT_IO`` out on port 0x10 with 0x42, then
    ``KVM_EXIT_HLT``. ``exit_cost``, ``compute`` and ``cpuid`` come from the long-mode guest
    (``None``/empty when it did not get that far; ``long_mode_outcome`` and ``long_mode_error``
    say why). ``error`` is the first ioctl that failed, if one did.

    Example:
        >>> sequence = (GuestExit(2, port=0x10, direction="out", size=1, repeat=1, value=0x42), GuestExit(5))
        >>> report = RunReport("2026-12-01T22:00:00Z", "x86_64", 2.0, "halted", sequence)
        >>> report.ok, RunReport("2026-12-01T22:00:00Z", "x86_64", 2.0, "timeout", ()).failure()
        (True, 'the real-mode guest did not finish in 2 s')
        >>> report.cpuid_follows_table is None  # the long-mode guest's CPUID was not measured
        True
        >>> doc = report.to_dict()
        >>> doc["ok"], doc["real_mode"][1]
        (True, {'reason': 5, 'name': 'KVM_EXIT_HLT', 'ns': 0})
        >>> RunReport.from_dict(doc, lambda field, message, hint: ValueError(f"{field}: {message}")) == report
        True
    """

    measured_at: str
    arch: str
    time_limit: float
    outcome: str
    real_mode: Tuple[GuestExit, ...]
    error: str = ""
    long_mode_outcome: str = ""
    long_mode_error: str = ""
    exit_cost: Optional[ExitCost] = None
    compute: Optional[Compute] = None
    cpuid: Tuple[CpuidRow, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether ``KVM_RUN`` ran the real-mode guest exactly as hardware would."""
        return (
            self.outcome == "halted"
            and len(self.real_mode) == 2
            and self.real_mode[0].describe() == "KVM_EXIT_IO out port 0x10 size 1 value 0x42"
            and self.real_mode[1].reason == 5
        )

    @property
    def cpuid_follows_table(self) -> Optional[bool]:
        """Whether the guest read the CPUID the VMM set (``None``: not measured)."""
        if not self.cpuid:
            return None
        return not any(row.differences() for row in self.cpuid)

    def failure(self) -> str:
        """What went wrong, in one phrase (empty when :attr:`ok`)."""
        if self.ok:
            return ""
        if self.error:
            return self.error
        if self.outcome == "timeout":
            return f"the real-mode guest did not finish in {self.time_limit:g} s"
        seen = ", then ".join(e.describe() for e in self.real_mode) or "no exit"
        return f"the real-mode guest gave {seen} (expected KVM_EXIT_IO out port 0x10 size 1 value 0x42, then KVM_EXIT_HLT)"

    def to_dict(self) -> Dict[str, Any]:
        """The JSON document (a snapshot's ``"run"``)."""
        return {
            "schema": RUN_SCHEMA,
            "schema_version": RUN_SCHEMA_VERSION,
            "measured_at": self.measured_at,
            "arch": self.arch,
            "time_limit": self.time_limit,
            "ok": self.ok,
            "outcome": self.outcome,
            "error": self.error or None,
            "real_mode": [e.to_dict() for e in self.real_mode],
            "long_mode_outcome": self.long_mode_outcome or None,
            "long_mode_error": self.long_mode_error or None,
            "exit_cost": None if self.exit_cost is None else self.exit_cost.to_dict(),
            "compute": None if self.compute is None else self.compute.to_dict(),
            "cpuid": [row.to_dict() for row in self.cpuid],
            "cpuid_follows_table": self.cpuid_follows_table,
        }

    @classmethod
    def from_dict(cls, item: Any, make_error: Callable[[str, str, str], Exception], field: str = "$.run") -> RunReport:
        """Read a run document strictly; ``make_error(field, message, hint)`` makes the caller's error.

        Derived keys (``ok``, ``cpuid_follows_table``, ``slowdown``) must agree with the data.
        """
        check = Checker(make_error)
        doc = check.mapping(item, field)
        known = ("schema", "schema_version", "measured_at", "arch", "time_limit", "ok", "outcome",
                 "error", "real_mode", "long_mode_outcome", "long_mode_error", "exit_cost", "compute", "cpuid",
                 "cpuid_follows_table")  # fmt: skip
        check.keys(doc, field, known, known)
        if doc["schema"] != RUN_SCHEMA:
            check.fail(f"{field}.schema", f"expected {RUN_SCHEMA!r}")
        version = check.integer(doc["schema_version"], f"{field}.schema_version", 1, 2**31 - 1)
        if version > RUN_SCHEMA_VERSION:
            check.fail(f"{field}.schema_version", f"run schema {version} is newer than this kvmprobe reads "
                       f"({RUN_SCHEMA_VERSION})", "upgrade kvmprobe (pip install -U kvmprobe)")  # fmt: skip
        measured_at = check.text(doc["measured_at"], f"{field}.measured_at")
        if not _is_utc_time(measured_at):
            check.fail(f"{field}.measured_at", f"{measured_at!r} is not a UTC time like 2026-12-01T22:00:00Z")
        limit = doc["time_limit"]
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not 0 < limit <= 86400:
            check.fail(f"{field}.time_limit", "expected a number of seconds above 0 and at most 86400")
        outcome = _outcome(check, doc["outcome"], f"{field}.outcome")
        long_outcome = doc["long_mode_outcome"]
        report = cls(
            measured_at=measured_at,
            arch=check.text(doc["arch"], f"{field}.arch"),
            time_limit=float(limit),
            outcome=outcome,
            real_mode=tuple(GuestExit.from_dict(check, e, f"{field}.real_mode[{i}]")
                            for i, e in enumerate(_bounded(check, doc["real_mode"], f"{field}.real_mode"))),  # fmt: skip
            error=check.text_or_null(doc["error"], f"{field}.error") or "",
            long_mode_outcome="" if long_outcome is None else _outcome(check, long_outcome, f"{field}.long_mode_outcome"),
            long_mode_error=check.text_or_null(doc["long_mode_error"], f"{field}.long_mode_error") or "",
            exit_cost=_exit_cost(check, doc["exit_cost"], f"{field}.exit_cost"),
            compute=_compute(check, doc["compute"], f"{field}.compute"),
            cpuid=tuple(_cpuid_row(check, r, f"{field}.cpuid[{i}]")
                        for i, r in enumerate(_bounded(check, doc["cpuid"], f"{field}.cpuid"))),  # fmt: skip
        )
        if check.boolean(doc["ok"], f"{field}.ok") != report.ok:
            check.fail(f"{field}.ok", f"says {doc['ok']}, but the exits recorded say {report.ok}")
        follows = check.boolean_or_null(doc["cpuid_follows_table"], f"{field}.cpuid_follows_table")
        if follows != report.cpuid_follows_table:
            check.fail(f"{field}.cpuid_follows_table", f"says {follows}, but the rows say {report.cpuid_follows_table}")
        return report


# A recorded run is small; more entries than this is no run kvmprobe wrote.
_MAX_ROWS = 64


def _bounded(check: Checker, item: Any, field: str) -> Sequence[Any]:
    rows = check.array(item, field)
    if len(rows) > _MAX_ROWS:
        check.fail(field, f"{len(rows)} entries; a run records at most {_MAX_ROWS}")
    return rows


def _outcome(check: Checker, item: Any, field: str) -> str:
    text = check.text(item, field)
    if text not in OUTCOMES:
        check.fail(field, f"{text!r} is not one of {', '.join(OUTCOMES)}")
    return text


def _exit_cost(check: Checker, item: Any, field: str) -> Optional[ExitCost]:
    if item is None:
        return None
    doc = check.mapping(item, field)
    check.keys(doc, field, ExitCost._fields, ExitCost._fields)
    return ExitCost(*(check.integer(doc[k], f"{field}.{k}", 1 if k == "exits" else 0, _U64) for k in ExitCost._fields))


def _compute(check: Checker, item: Any, field: str) -> Optional[Compute]:
    if item is None:
        return None
    doc = check.mapping(item, field)
    check.keys(doc, field, Compute._fields + ("slowdown",), Compute._fields)
    slowdown = doc.get("slowdown", 0)
    if isinstance(slowdown, bool) or not isinstance(slowdown, (int, float)):
        check.fail(f"{field}.slowdown", "expected a number (it is derived from guest_ns and native_ns)")
    return Compute(*(check.integer(doc[k], f"{field}.{k}", 0, _U64) for k in Compute._fields))


def _cpuid_row(check: Checker, item: Any, field: str) -> CpuidRow:
    doc = check.mapping(item, field)
    check.keys(doc, field, CpuidRow._fields, CpuidRow._fields)

    def registers(value: Any, where: str) -> Tuple[int, int, int, int]:
        words = check.array(value, where)
        if len(words) != 4:
            check.fail(where, f"expected 4 registers (EAX, EBX, ECX, EDX), got {len(words)}")
        a, b, c, d = (check.integer(w, f"{where}[{i}]", 0, _U32) for i, w in enumerate(words))
        return a, b, c, d

    supported = doc["supported"]
    return CpuidRow(
        check.integer(doc["leaf"], f"{field}.leaf", 0, _U32),
        check.integer(doc["subleaf"], f"{field}.subleaf", 0, _U32),
        registers(doc["guest"], f"{field}.guest"),
        None if supported is None else registers(supported, f"{field}.supported"),
    )


def describe_ns(ns: float) -> str:
    """A duration for a person: ``850 ns``, ``8.1 µs``, ``12.3 ms``, ``1.52 s``.

    Example:
        >>> describe_ns(850), describe_ns(8123), describe_ns(12_345_678), describe_ns(1_520_000_000)
        ('850 ns', '8.1 µs', '12.3 ms', '1.52 s')
    """
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.1f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.1f} ms"
    return f"{ns / 1_000_000_000:.2f} s"


def _is_utc_time(text: str) -> bool:
    """Whether ``text`` looks like ``2026-12-01T22:00:00Z`` (decimal digits, as ``\\d``, where the
    digits go), checked by hand: ``re`` costs milliseconds to import, and reading a recorded run
    needs nothing else of it."""
    return len(text) == 20 and all(
        char.isdecimal() if shape == "9" else char == shape for char, shape in zip(text, "9999-99-99T99:99:99Z")
    )
