"""Prove that ``KVM_RUN`` works: run x86 code in a micro-guest, under a watchdog, and measure it.

Imports ``device``, ``_vcpu``, ``_forked``, ``_guest_code``, ``_guest_report``, ``_backend``,
``_arch`` and ``errors`` (``_cpuid`` and ``_kvm_structs`` where CPUID rows are read).
:func:`run_guest` creates a VM with one memory slot
(``KVM_SET_USER_MEMORY_REGION`` over an anonymous mapping), one vCPU with its ``kvm_run``
mapped and KVM's supported CPUID set, puts the vCPU in real, protected or long mode (with page
tables), runs the given code and returns every exit in a :class:`GuestRun`. :func:`run_checks`
runs the standard checks a :class:`RunReport` records: the five-byte real-mode guest of issue
#14, then one long-mode guest that reads CPUID leaves, makes N ``OUT`` exits (the exit cost) and
runs a compute loop timed against the same machine code run natively (the slowdown).

Every guest runs in a forked child process that the parent kills when the time limit passes
(``_forked``): a guest that never exits, or a ``KVM_RUN`` that never returns, ends as a run
that "did not finish in N s", and the calling process keeps nothing of it (no fd, no mapping,
no VM). x86_64 only for now: elsewhere the calls raise :class:`~kvmprobe.errors.GuestError`.
"""

from __future__ import annotations

import math
import os
import time

from . import _guest_code as code_
from ._arch import canonical
from ._backend import Backend
from ._forked import Forked, run_forked
from ._guest_report import (
    NORMAL_EXIT_NS,
    NORMAL_SLOWDOWN,
    Compute,
    CpuidRow,
    ExitCost,
    GuestExit,
    RunReport,
    describe_ns,
)
from .device import KvmDevice
from .errors import GuestError, KvmProbeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

    from ._forked import Record
else:
    from ._value import NamedTuple

__all__ = [
    "CPUID_LEAVES",
    "DEFAULT_TIME_LIMIT",
    "MODES",
    "NORMAL_EXIT_NS",
    "NORMAL_SLOWDOWN",
    "Compute",
    "CpuidRow",
    "ExitCost",
    "GuestExit",
    "GuestRun",
    "RunReport",
    "describe_ns",
    "run_checks",
    "run_guest",
    "with_run",
]

#: The CPU modes a guest can start in.
MODES = ("real", "protected", "long")
#: Seconds a guest may run before the watchdog stops it. A working guest takes milliseconds; the
#: margin is for a loaded machine (a CI runner, strace, two CPUs shared by many), where a guest
#: stopped early would be a false "KVM_RUN does not work". Only a guest that hangs waits this long.
DEFAULT_TIME_LIMIT = 10.0
#: The most exits one run collects (each ``IN``/``OUT``/MMIO exit is answered and the guest resumed).
DEFAULT_MAX_EXITS = 1000
#: The largest time limit accepted (a day): beyond it a typo is likelier than a wish.
MAX_TIME_LIMIT = 86400.0

#: The CPUID leaves (leaf, subleaf) the standard check reads inside the guest: vendor and maximum
#: leaf, the feature leaves 1 and 7, the extended features, and the hypervisor leaf.
CPUID_LEAVES: Tuple[Tuple[int, int], ...] = ((0, 0), (1, 0), (7, 0), (0x80000001, 0), (0x40000000, 0))
#: The default check's ``OUT`` round trips and loop iterations: well under a second in total even
#: where KVM emulates every guest instruction (about 1 µs each under PVM, docs/research/pvm.md §1); ``thorough``
#: takes more of both.
DEFAULT_EXITS, DEFAULT_ITERATIONS = 200, 50_000
THOROUGH_EXITS, THOROUGH_ITERATIONS = 10_000, 1_000_000

# Control-register and EFER bits (Intel SDM vol. 3A, 2.5 and 2.2.1).
_CR0_PE, _CR0_MP, _CR0_ET, _CR0_NE, _CR0_WP, _CR0_AM, _CR0_PG = 1, 2, 0x10, 0x20, 1 << 16, 1 << 18, 1 << 31
_CR4_PAE = 0x20
_EFER_LME, _EFER_LMA = 1 << 8, 1 << 10
# Where Intel VMX keeps the real-mode TSS pages without unrestricted guest: the address QEMU
# uses (target/i386/kvm/kvm.c, kvm_arch_init: 0xfffbd000, three pages below the BIOS).
_TSS_ADDRESS = 0xFFFBD000
# The exit reasons the run loop answers and resumes (KVM_EXIT_IO, _MMIO, _INTR); any other ends it.
_IO, _HLT, _MMIO, _INTR = 2, 5, 6, 10


class GuestRun(NamedTuple):
    """One guest run: its exits in order, how it ended, and how long it took.

    ``outcome``: ``"halted"`` (``KVM_EXIT_HLT``), ``"exit"`` (another exit ended it, the last
    in ``exits``: ``KVM_EXIT_SHUTDOWN``, ``KVM_EXIT_FAIL_ENTRY``, ``KVM_EXIT_INTERNAL_ERROR``...),
    ``"exit-limit"`` (it was still running after ``max_exits``), ``"timeout"`` (the watchdog
    stopped it after ``time_limit`` seconds) or ``"error"`` (an ioctl failed: ``error`` says which).

    Example:
        >>> run = GuestRun("real", 5, (GuestExit(2, port=0x10, direction="out", size=1, repeat=1, value=0x42),),
        ...                "timeout", "", 1.0, 1.0)
        >>> run.finished, run.describe()
        (False, 'real mode, 5 bytes: KVM_EXIT_IO out port 0x10 size 1 value 0x42, then did not finish in 1 s')
        >>> run.halted, run.to_dict()["outcome"], run.to_dict()["exits"][0]["port"]
        (False, 'timeout', 16)
    """

    mode: str
    code_size: int
    exits: Tuple[GuestExit, ...]
    outcome: str
    error: str
    time_limit: float
    elapsed: float

    @property
    def finished(self) -> bool:
        """Whether it ended by itself (not stopped by the watchdog)."""
        return self.outcome != "timeout"

    @property
    def halted(self) -> bool:
        """Whether it ended in ``KVM_EXIT_HLT``."""
        return self.outcome == "halted"

    def describe(self) -> str:
        """The run in one line: mode, size, each exit, and how it ended."""
        parts = [e.describe() for e in self.exits[:8]]
        if len(self.exits) > 8:
            parts.append(f"... {len(self.exits) - 8} more exits")
        if self.outcome == "timeout":
            parts.append(f"did not finish in {self.time_limit:g} s")
        elif self.outcome == "exit-limit":
            parts.append(f"still running after {len(self.exits)} exits")
        elif self.outcome == "error":
            parts.append(self.error)
        return f"{self.mode} mode, {self.code_size} bytes: " + (", then ".join(parts) or "no exit")

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready."""
        return {
            "mode": self.mode,
            "code_size": self.code_size,
            "outcome": self.outcome,
            "finished": self.finished,
            "error": self.error or None,
            "time_limit": self.time_limit,
            "elapsed": round(self.elapsed, 6),
            "exits": [e.to_dict() for e in self.exits],
        }


def run_guest(
    code: bytes,
    *,
    mode: str = "real",
    time_limit: float = DEFAULT_TIME_LIMIT,
    max_exits: int = DEFAULT_MAX_EXITS,
    device: Optional[str] = None,
    backend: Optional[Backend] = None,
) -> GuestRun:
    """Run ``code`` in a fresh VM with one vCPU; return its exits, stopped after ``time_limit`` s.

    The VM has 2 MiB of RAM at guest-physical 0 (one memory slot) and KVM's supported CPUID
    (``KVM_SET_CPUID2``). ``code`` is placed at 0x10000 and run from its first byte:

    * ``"real"``: 16-bit real mode, CS = 0x1000, IP = 0 (at most 64 KiB of code);
    * ``"protected"``: 32-bit protected mode, flat 4 GiB segments, no paging;
    * ``"long"``: 64-bit mode at CPL 0 with 4-level page tables mapping the 2 MiB one to one.

    The stack pointer is 0xF000. ``OUT`` and MMIO writes are recorded and the guest resumed;
    ``IN`` and MMIO reads get zeros. Any other exit ends the run. The vCPU runs in a child
    process: the watchdog kills it when the time limit passes, and nothing of it stays open here.

    Args:
        code: the machine code (x86).
        mode: ``"real"``, ``"protected"`` or ``"long"``.
        time_limit: seconds before the watchdog stops the guest (VM creation included).
        max_exits: stop after this many exits (the outcome is then ``"exit-limit"``).
        device: the KVM device (default ``$KVMPROBE_DEVICE`` or ``/dev/kvm``).
        backend: the ioctl backend (default: the fastest available).

    Returns:
        A :class:`GuestRun`. A guest that fails (``KVM_EXIT_SHUTDOWN``, a failed ioctl, a
        timeout) is a result, not an exception.

    Raises:
        GuestError: empty code, code larger than the guest's memory (or a real-mode segment),
            an unknown mode, a time limit that is not a positive number of seconds, or a
            machine that is not x86_64.
        KvmUnavailable: the device cannot be opened.

    Example (hardware):
        >>> run = run_guest(bytes([0xB0, 0x42, 0xE6, 0x10, 0xF4]))  # doctest: +SKIP
        >>> [e.describe() for e in run.exits], run.outcome  # doctest: +SKIP
        (['KVM_EXIT_IO out port 0x10 size 1 value 0x42', 'KVM_EXIT_HLT'], 'halted')
        >>> run_guest(bytes([0xEB, 0xFE]), time_limit=0.5).describe()  # doctest: +SKIP
        'real mode, 2 bytes: did not finish in 0.5 s'
        >>> run_guest(b"\\xf4", time_limit=0)
        Traceback (most recent call last):
        ...
        kvmprobe.errors.GuestError: a time limit of 0 s: a guest needs a positive number of seconds to run (hint: give a time limit above 0, e.g. 2)
    """
    spec = _Spec(_checked_code(code, mode), mode, _checked_exits(max_exits), 0, ())
    limit = _checked_time_limit(time_limit)
    _check_machine()
    run, _ = _run(spec, limit, device, backend)
    return run


class _Spec(NamedTuple):
    code: bytes
    mode: str
    max_exits: int
    native_iterations: int  # > 0: time the native loop in the child first
    leaves: Tuple[Tuple[int, int], ...]  # send KVM_GET_SUPPORTED_CPUID's rows for these


# --- checking the caller's input ----------------------------------------------------------


def _checked_code(code: bytes, mode: str) -> bytes:
    if mode not in MODES:
        raise GuestError(f"unknown CPU mode {mode!r}", hint=f"choose one of {', '.join(MODES)}")
    if not isinstance(code, (bytes, bytearray, memoryview)):
        raise GuestError(f"guest code must be bytes, not {type(code).__name__}", hint="pass the machine code as bytes")
    data = bytes(code)
    if not data:
        raise GuestError("no guest code (0 bytes)", hint="pass at least one instruction, e.g. b'\\xf4' (hlt)")
    room = code_.REAL_MODE_CODE_LIMIT if mode == "real" else code_.MEMORY_SIZE - code_.CODE_ADDRESS
    if len(data) > room:
        where = "one real-mode segment" if mode == "real" else "the guest's memory slot"
        raise GuestError(
            f"{len(data)} bytes of guest code do not fit {where} ({room} bytes from {code_.CODE_ADDRESS:#x})",
            hint="pass less code" + (", or run it in protected or long mode" if mode == "real" else ""),
        )
    return data


def _checked_time_limit(time_limit: float) -> float:
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or math.isnan(time_limit):
        raise GuestError(f"a time limit of {time_limit!r}: expected a number of seconds",
                         hint="give a time limit above 0, e.g. 2")  # fmt: skip
    if time_limit <= 0:
        raise GuestError(f"a time limit of {time_limit:g} s: a guest needs a positive number of seconds to run",
                         hint="give a time limit above 0, e.g. 2")  # fmt: skip
    if time_limit > MAX_TIME_LIMIT:
        raise GuestError(f"a time limit of {time_limit:g} s is over a day",
                         hint=f"give at most {MAX_TIME_LIMIT:g} seconds")  # fmt: skip
    return float(time_limit)


def _checked_exits(max_exits: int) -> int:
    if isinstance(max_exits, bool) or not isinstance(max_exits, int) or not 1 <= max_exits <= 10_000_000:
        raise GuestError(f"max_exits {max_exits!r}: expected a count from 1 to 10000000", hint="e.g. max_exits=1000")
    return max_exits


def _check_machine(machine: Optional[str] = None) -> None:
    name = canonical(machine or os.uname().machine)
    if name != "x86_64":
        raise GuestError(
            f"the micro-guest runs x86 code; it is not available on {name} yet",
            hint="run the KVM checks that need no guest ('kvmprobe doctor' says SKIP for this one)",
        )


# --- the run, in the parent ----------------------------------------------------------------


def _run(spec: _Spec, time_limit: float, device: Optional[str], backend: Optional[Backend]) -> Tuple[GuestRun, Dict[str, Any]]:
    """Run ``spec`` in a child; the run, and the extras it sent (``native``, ``supported``)."""
    # What the child uses is imported here, once: an import in the child would be redone per run.
    import ctypes  # noqa: F401
    import struct  # noqa: F401

    from . import _vcpu  # noqa: F401

    with KvmDevice.open(device, backend=backend) as kvm:  # closed here; the child uses its inherited copy
        forked = run_forked(lambda send: _child(kvm, spec, send), time_limit)
    return _collect(spec, forked)


def _collect(spec: _Spec, forked: Forked) -> Tuple[GuestRun, Dict[str, Any]]:
    exits: List[GuestExit] = []
    extras: Dict[str, Any] = {}
    outcome, error = "", ""
    for record in forked.records:
        kind = record[0]
        if kind == "exit":
            exits.append(_exit_from(record))
        elif kind == "end":
            outcome = str(record[1])
        elif kind == "error":
            outcome, error = "error", str(record[1])
        elif kind == "crash":
            outcome, error = "error", f"the guest's process failed: {record[1]}: {record[2]}"
        else:
            extras[str(kind)] = record[1]
    if forked.timed_out:
        outcome = "timeout"
    elif not outcome:
        how = f"signal {forked.signal}" if forked.signal is not None else f"exit code {forked.exit_code}"
        outcome, error = "error", f"the guest's process ended ({how}) without a result"
    run = GuestRun(spec.mode, len(spec.code), tuple(exits), outcome, error, forked.time_limit, forked.elapsed)
    return run, extras


_EXIT_FIELDS = ("reason", "ns", "port", "direction", "size", "repeat", "value", "address", "hardware_reason",
                "suberror", "data", "vector", "error_code")  # fmt: skip


def _exit_from(record: Record) -> GuestExit:
    values = dict(zip(_EXIT_FIELDS, record[1:]))
    values["data"] = tuple(values.get("data") or ())
    return GuestExit(**{k: v for k, v in values.items() if v is not None})


# --- the run, in the child ------------------------------------------------------------------


def _child(kvm: KvmDevice, spec: _Spec, send: Callable[[Record], None]) -> None:
    """The whole VM lifecycle; every fd and mapping dies with this process at the latest."""
    from ._vcpu import GuestMemory

    if spec.native_iterations:
        try:
            send(("native", _native_ns(spec.native_iterations)))
        except OSError:  # no executable memory here (a W^X policy): no slowdown, the guest still runs
            pass
    try:
        # Ownership: the memory outlives the VM (closed in reverse order), the VM the vCPU.
        with GuestMemory(code_.MEMORY_SIZE) as memory, kvm.create_vm() as vm:
            _load(memory, spec)
            vm.set_tss_addr(_TSS_ADDRESS)
            vm.set_user_memory_region(0, 0, memory)
            with vm.create_vcpu(0) as vcpu:
                cpuid2 = _supported_cpuid(kvm)
                vcpu.set_cpuid2(cpuid2)
                if spec.leaves:
                    send(("supported", _rows(cpuid2, spec.leaves)))
                _enter(vcpu, spec.mode)
                send(("end", _loop(vcpu, spec.max_exits, send)))
    except KvmProbeError as err:
        send(("error", err.message))


def _loop(vcpu: Any, max_exits: int, send: Callable[[Record], None]) -> str:
    clock = time.perf_counter_ns
    for _ in range(max_exits):
        started = clock()
        reason = vcpu.run()
        ns = clock() - started
        port = direction = size = count = value = address = hardware = suberror = vector = code = None
        data: Tuple[int, ...] = ()
        if reason == _IO:
            out, size, port, count, raw = vcpu.io()
            direction = "out" if out else "in"
            if out:
                value = int.from_bytes(raw[:size], "little")
            else:
                vcpu.set_io_data(b"")
        elif reason == _MMIO:
            address, raw, size, write = vcpu.mmio()
            direction = "write" if write else "read"
            if write:
                value = int.from_bytes(raw[:size], "little")
            else:
                vcpu.set_mmio_data(b"")
        elif reason == 9:  # KVM_EXIT_FAIL_ENTRY
            hardware, _cpu = vcpu.fail_entry()
        elif reason == 0:  # KVM_EXIT_UNKNOWN
            hardware = vcpu.hardware_exit_reason()
        elif reason == 17:  # KVM_EXIT_INTERNAL_ERROR
            suberror, data = vcpu.internal()
        elif reason == 1:  # KVM_EXIT_EXCEPTION
            vector, code = vcpu.exception()
        send(("exit", reason, ns, port, direction, size, count, value, address, hardware, suberror, data, vector, code))
        if reason == _HLT:
            return "halted"
        if reason not in (_IO, _MMIO, _INTR):
            return "exit"
    return "exit-limit"


def _load(memory: Any, spec: _Spec) -> None:
    memory.write(code_.CODE_ADDRESS, spec.code)
    if spec.mode == "long":
        for address, table in code_.page_tables():
            memory.write(address, table)


def _flat(selector: int, type_: int, *, long: bool) -> Any:
    from ._vcpu import Segment

    # A flat 4 GiB segment (limit in bytes, 4 KiB granular); a 64-bit code segment has L=1, D/B=0.
    return Segment(base=0, limit=0xFFFFFFFF, selector=selector, type=type_, present=1, dpl=0,
                   db=0 if long else 1, s=1, l=1 if long else 0, g=1)  # fmt: skip


def _enter(vcpu: Any, mode: str) -> None:
    """Set the registers of ``mode`` over the vCPU's reset state."""
    from ._vcpu import Regs

    sregs = vcpu.get_sregs()
    if mode == "real":
        segment = code_.CODE_ADDRESS >> 4
        sregs = sregs._replace(cs=sregs.cs._replace(base=code_.CODE_ADDRESS, selector=segment))
        rip = 0
    else:
        long = mode == "long"
        code = _flat(0x08, 0xB, long=long)  # execute/read, accessed
        data = _flat(0x10, 0x3, long=False)  # read/write, accessed
        sregs = sregs._replace(cs=code, ds=data, es=data, fs=data, gs=data, ss=data)
        if long:
            sregs = sregs._replace(
                cr0=_CR0_PE | _CR0_MP | _CR0_ET | _CR0_NE | _CR0_WP | _CR0_AM | _CR0_PG,
                cr3=code_.PML4_ADDRESS,
                cr4=_CR4_PAE,
                efer=_EFER_LME | _EFER_LMA,
            )
        else:
            sregs = sregs._replace(cr0=(sregs.cr0 | _CR0_PE) & ~_CR0_PG)
        rip = code_.CODE_ADDRESS
    vcpu.set_sregs(sregs)
    vcpu.set_regs(Regs(rip=rip, rsp=code_.STACK_TOP, rflags=2))


def _supported_cpuid(kvm: KvmDevice) -> bytearray:
    """``KVM_GET_SUPPORTED_CPUID`` (:meth:`KvmDevice.supported_cpuid`, the one reading) packed
    as the ``struct kvm_cpuid2`` ``KVM_SET_CPUID2`` takes: the table every VMM gives its guest."""
    from ._kvm_structs import cpuid2_pack
    from .errors import IoctlFailed

    try:
        entries = kvm.supported_cpuid()
    except IoctlFailed as err:
        raise GuestError(err.message, hint="run 'kvmprobe doctor' for a diagnosis of this host") from err
    return cpuid2_pack(entries, len(entries))


def _rows(cpuid2: bytearray, leaves: Sequence[Tuple[int, int]]) -> List[Tuple[int, int, int, int, int, int]]:
    """KVM's entries for ``leaves``: (leaf, subleaf, eax, ebx, ecx, edx); a leaf KVM lists without
    a significant index answers every subleaf (the one lookup, ``_cpuid.find_entry``)."""
    from ._cpuid import find_entry
    from ._kvm_structs import cpuid2_entries

    entries = cpuid2_entries(cpuid2)
    out = []
    for leaf, subleaf in leaves:
        entry = find_entry(entries, leaf, subleaf)
        if entry is not None:
            out.append((leaf, subleaf, entry.eax, entry.ebx, entry.ecx, entry.edx))
    return out


def _native_ns(iterations: int) -> int:
    """The native time of :func:`_guest_code.native_loop`, best of five, less a bare call's."""
    import ctypes
    import mmap

    page = mmap.PAGESIZE
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    # Ownership: this child process's own mapping; it is unmapped with the process.
    area = mmap.mmap(-1, 2 * page, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    area[0:1] = b"\xc3"  # ret: the bare call
    loop = code_.native_loop(iterations)
    area[page:page + len(loop)] = loop
    base = ctypes.addressof(ctypes.c_char.from_buffer(area))
    if libc.mprotect(base, 2 * page, mmap.PROT_READ | mmap.PROT_EXEC) != 0:  # W^X: never both at once
        raise OSError(ctypes.get_errno(), "mprotect PROT_EXEC refused")
    bare = ctypes.CFUNCTYPE(None)(base)
    timed = ctypes.CFUNCTYPE(None)(base + page)
    clock = time.perf_counter_ns

    def best(function: Callable[[], None]) -> int:
        times = []
        for _ in range(5):
            started = clock()
            function()
            times.append(clock() - started)
        return min(times)

    return max(best(timed) - best(bare), 1)


# --- the standard checks -------------------------------------------------------------------


def run_checks(
    *,
    thorough: bool = False,
    time_limit: Optional[float] = None,
    device: Optional[str] = None,
    backend: Optional[Backend] = None,
) -> RunReport:
    """The standard micro-guest checks: does ``KVM_RUN`` work, and how fast.

    1. Real mode: ``mov al,0x42; out 0x10,al; hlt`` must give ``KVM_EXIT_IO`` out on port 0x10
       with 0x42, then ``KVM_EXIT_HLT`` (:attr:`RunReport.ok`).
    2. Long mode (page tables, CPL 0), one guest: ``CPUID`` for each of :data:`CPUID_LEAVES`, its
       registers sent out on ports 0x20-0x23 and compared with ``KVM_GET_SUPPORTED_CPUID`` (the
       table the vCPU was given); N ``OUT`` exits, whose median round trip is the exit cost; a
       loop of two-instruction iterations, timed against the same machine code run natively.

    The default takes well under a second, even where every guest instruction is emulated;
    ``thorough`` measures 10,000 exits and a 1,000,000-iteration loop. Each guest has
    ``time_limit`` seconds (default 10, thorough 30); the long-mode guest is not run when the
    real-mode one did not finish.

    Raises:
        GuestError: not x86_64, or a bad ``time_limit``.
        KvmUnavailable: the device cannot be opened.

    Example (hardware):
        >>> report = run_checks()  # doctest: +SKIP
        >>> report.ok, report.exit_cost.median_ns > 0, report.compute.slowdown > 0  # doctest: +SKIP
        (True, True, True)
    """
    limit = _checked_time_limit(time_limit if time_limit is not None else (30.0 if thorough else DEFAULT_TIME_LIMIT))
    _check_machine()
    exits, iterations = (THOROUGH_EXITS, THOROUGH_ITERATIONS) if thorough else (DEFAULT_EXITS, DEFAULT_ITERATIONS)
    measured_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # datetime's text, without datetime
    real, _ = _run(_Spec(code_.REAL_MODE_OUT_HLT, "real", 8, 0, ()), limit, device, backend)
    report = RunReport(
        measured_at=measured_at,
        arch="x86_64",
        time_limit=limit,
        outcome=real.outcome,
        real_mode=real.exits,
        error=real.error,
    )
    if not real.finished:
        return report
    program = (
        code_.cpuid_program(CPUID_LEAVES) + code_.out_loop(exits) + code_.compute_loop(iterations) + b"\xf4"
    )
    spec = _Spec(program, "long", 4 * len(CPUID_LEAVES) + exits + 8, iterations, CPUID_LEAVES)
    long, extras = _run(spec, limit, device, backend)
    return report._replace(
        long_mode_outcome=long.outcome,
        long_mode_error=long.error or (long.describe() if not long.halted else ""),
        cpuid=_cpuid_rows(long.exits, extras.get("supported") or ()),
        exit_cost=_exit_cost(long.exits),
        compute=_compute(long.exits, iterations, extras.get("native")),
    )


def with_run(result: Any, *, backend: Optional[Backend] = None) -> Any:
    """``result`` (a live :class:`~kvmprobe.ProbeResult`) with the standard micro-guest checks
    (:func:`run_checks`) run on its device through ``backend``, in ``result.run``. Where the
    micro-guest cannot run (not x86_64) the result comes back as it is: its run is not recorded,
    never "failed". ``snapshot --run`` and ``export`` both attach runs through here.

    Raises:
        GuestError: ``result`` is recorded (its guests cannot be run now).
        KvmUnavailable: the device stopped answering.

    Example:
        >>> from kvmprobe.testing import fake_probe_result
        >>> made = fake_probe_result({}, arch="aarch64")
        >>> with_run(made) is made
        True
    """
    if canonical(result.arch) != "x86_64":
        return result
    if result.source != "live":
        raise GuestError(f"{result.source} is a recorded host: its guests cannot be run now",
                         hint="run the checks on the host itself ('kvmprobe snapshot --run -o FILE')")  # fmt: skip
    from ._value import replace

    return replace(result, run=run_checks(device=result.device, backend=backend))


def _ported(exits: Sequence[GuestExit], low: int, high: int) -> List[GuestExit]:
    return [e for e in exits if e.reason == _IO and e.direction == "out" and e.port is not None and low <= e.port <= high]


def _cpuid_rows(exits: Sequence[GuestExit], supported: Sequence[Tuple[int, ...]]) -> Tuple[CpuidRow, ...]:
    values = [e.value or 0 for e in _ported(exits, code_.PORT_CPUID, code_.PORT_CPUID + 3)]
    listed = {(row[0], row[1]): (row[2], row[3], row[4], row[5]) for row in supported}
    rows = []
    for index, (leaf, subleaf) in enumerate(CPUID_LEAVES):
        four = values[4 * index:4 * index + 4]
        if len(four) < 4:
            break
        rows.append(CpuidRow(leaf, subleaf, (four[0], four[1], four[2], four[3]), listed.get((leaf, subleaf))))
    return tuple(rows)


def _exit_cost(exits: Sequence[GuestExit]) -> Optional[ExitCost]:
    # The first OUT of the loop also runs the instructions before it: left out.
    times = [e.ns for e in _ported(exits, code_.PORT_MARK, code_.PORT_MARK)][1:]
    if not times:
        return None
    return ExitCost(len(times), int(_median(times)), min(times), max(times))


def _median(values: Sequence[float]) -> float:
    """``statistics.median`` (the middle value, or the mean of the two middle ones), without
    ``statistics``: it imports ``fractions``, ``decimal`` and ``random`` (about 3 ms)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _compute(exits: Sequence[GuestExit], iterations: int, native: Any) -> Optional[Compute]:
    marks = _ported(exits, code_.PORT_MARK + 1, code_.PORT_MARK + 1)
    if len(marks) < 3 or not isinstance(native, int):
        return None
    return Compute(iterations, max(marks[2].ns - marks[1].ns, 0), native)

