"""Run any program as if the kernel were a recorded host, trace what it asks, learn what it needs.

Imports ``_supervisor`` (and through it ``_seccomp``), ``_learning``, ``presets``, ``probing``,
``caps`` and ``errors``. :func:`emulate` runs a command, static or
dynamic, unchanged, under a seccomp filter that answers its ``KVM_CHECK_EXTENSION`` queries for
the host it should see: every capability the recorded host lacks (or ``mask`` names) answers 0,
and with the seccomp supervisor every other one answers the recorded value.
:func:`learn` runs a VMM once to see which capabilities it asks, then once per capability with
that one answering 0, and writes the VMM's requirement profile from which runs still succeed.

What it cannot emulate, so an emulated old kernel is optimistic: ioctls used without asking
first (``KVM_ENABLE_CAP``, ``KVM_SET_TSS_ADDR``, ... the profiles' "implicit" entries) still
reach this kernel and succeed here; CPUID, MSR lists and every other answer are this kernel's;
``uname`` still names this kernel. Nothing is done to ``/dev/kvm`` but what the command does
(the supervisor repeats a system-fd query the command made, on the command's own fd, to see the
kernel's answer). The command runs with the caller's privileges and ``no_new_privs``.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from . import _supervisor
from ._learning import Learned, learn
from ._seccomp import SYSTEM, arch_for
from ._supervisor import FILTER, SUPERVISOR, Answer, Policy, Stream, Tally, choose_tracer, resolve_command, supervisor_available
from .caps import Cap, CapLike
from .errors import EmulationError, describe_errno
from .probing import ProbeResult

__all__ = [
    "EmulationResult",
    "Learned",
    "Trace",
    "TraceEntry",
    "emulate",
    "learn",
    "policy_for",
    "supervisor_available",
]

#: The caveat every emulation carries (``--help``, docs, trace output).
CAVEAT = (
    "only the answers to KVM_CHECK_EXTENSION (and KVM_GET_API_VERSION) change; ioctls used without "
    "asking first (KVM_ENABLE_CAP, the profiles' 'implicit' entries), CPUID and uname stay this kernel's, "
    "so an emulated old kernel is optimistic"
)

HostLike = Union[str, ProbeResult]


def _load_host(host: HostLike) -> ProbeResult:
    if isinstance(host, ProbeResult):
        return host
    from .presets import load_recorded

    return load_recorded(host)


def _masked(mask: Iterable[CapLike]) -> Tuple[Cap, ...]:
    """``mask`` as capabilities; names may be comma lists (``"IOEVENTFD,IRQFD"``)."""
    found: List[Cap] = []
    for item in mask:
        parts = [p.strip() for p in item.split(",")] if isinstance(item, str) else [item]
        for part in parts:
            if part == "":
                raise EmulationError("an empty capability name in --mask", hint="separate names with single commas")
            cap = Cap.lookup(part)
            if cap not in found:
                found.append(cap)
    return tuple(found)


def policy_for(host: Optional[ProbeResult], mask: Iterable[CapLike] = (), *, exact: bool = False) -> Policy:
    """What the command is answered, per capability number and kind of fd.

    Without ``host``: each masked capability answers 0, everything else is the kernel's. With
    ``host``: a capability it lacks (answered 0, or not listed, or beyond the table) answers 0,
    one whose query failed there fails with that errno; one it has answers the kernel's value,
    or with ``exact`` the recorded one (then on a VM fd the recorded VM-fd value where the
    snapshot has them, else the kernel's), and ``KVM_GET_API_VERSION`` the recorded version.

    Raises:
        UnknownCapability: a name in ``mask`` is no capability.

    Example:
        >>> from kvmprobe.testing import fake_probe_result
        >>> old = fake_probe_result({"NR_MEMSLOTS": 32, "HLT": 1})
        >>> p = policy_for(old, ["HLT"], exact=True)
        >>> p.system[int(Cap.NR_MEMSLOTS)], p.system[int(Cap.HLT)], p.system[int(Cap.IRQFD)], p.default_system
        (32, 0, 0, 0)
        >>> policy_for(old).system[int(Cap.NR_MEMSLOTS)] is None  # without exact: the kernel's answer
        True
    """
    masked = set(_masked(mask))
    if host is None:
        zero = {int(cap): 0 for cap in masked}
        return Policy(zero, dict(zero))
    system: Dict[int, Answer] = {}
    vm: Dict[int, Answer] = {}
    for cap in Cap:
        number = int(cap)
        if cap in masked:
            system[number] = vm[number] = 0
            continue
        if cap in host.errors:
            system[number] = -host.errors[cap]
        else:
            value = host.values.get(cap, 0)
            system[number] = value if exact else (None if value > 0 else 0)
        if exact and host.vm_values is not None:
            vm[number] = -host.vm_errors[cap] if cap in host.vm_errors else host.vm_values.get(cap, 0)
        else:
            answer = system[number]
            vm[number] = None if answer is None or answer > 0 else answer
    for row in host.unknown:  # capabilities a newer kvmprobe recorded: as recorded
        number = int(row["number"])
        if "error" in row:
            system[number] = vm[number] = -int(row["error"])
        elif int(row["value"] or 0) > 0:
            system[number] = int(row["value"]) if exact else None
            vm[number] = None
        else:
            system[number] = vm[number] = 0
    return Policy(system, vm, 0, 0, host.api_version if exact else None)


# --- Results -------------------------------------------------------------------------------------


class TraceEntry(NamedTuple):
    """The calls of one capability on one kind of fd (``"system"`` or ``"vm"``).

    ``answers`` are what the command got, in the order first given (a negative one is -errno);
    empty when the calls went to the kernel and the tracer could not see the result.
    ``emulated``: kvmprobe answered, not the kernel; ``masked``: kvmprobe answered 0 because
    ``mask`` named it. ``kernel`` is the kernel's own answer where seen. ``how`` says who
    answered and why: ``masked``, ``absent on that host`` (the emulated host lacks it: 0),
    ``not recorded`` (the recording has no answer for it: 0, and a note says kvmprobe cannot
    know that host's), ``recorded`` or ``kernel``.

    Example:
        >>> e = TraceEntry(36, "KVM_CAP_IOEVENTFD", "system", 2, (0,), True, True, 1)
        >>> e.answer_text, e.to_dict()["masked"], e.how
        ('0', True, 'masked')
    """

    number: int
    name: str
    fd: str
    calls: int
    answers: Tuple[int, ...]
    emulated: bool
    masked: bool
    kernel: Optional[int]
    reason: str = ""

    @property
    def how(self) -> str:
        """``masked``, ``absent on that host``, ``not recorded``, ``recorded`` or ``kernel``.

        Example:
            >>> TraceEntry(3, "KVM_CAP_USER_MEMORY", "system", 1, (0,), True, False, None, "not recorded").how
            'not recorded'
        """
        if self.reason:
            return self.reason
        return "masked" if self.masked else "recorded" if self.emulated else "kernel"

    @property
    def answer_text(self) -> str:
        """The answers as the trace prints them: ``1``, ``0``, ``EIO``, ``?`` (not seen)."""
        if not self.answers:
            return "?"
        return ",".join(str(a) if a >= 0 else describe_errno(-a).split(" ")[0] for a in self.answers)

    def to_dict(self) -> Dict[str, object]:
        """A JSON-ready object."""
        return {"name": self.name, "number": self.number, "fd": self.fd, "calls": self.calls,
                "answers": list(self.answers), "emulated": self.emulated, "masked": self.masked,
                "how": self.how, "kernel": self.kernel}


class Trace(NamedTuple):
    """Every ``KVM_CHECK_EXTENSION`` a command made, and who traced it (``"strace"`` or
    ``"supervisor"``) with why that one and what it cannot see.

    Example:
        >>> t = Trace("supervisor", "why", (TraceEntry(36, "KVM_CAP_IOEVENTFD", "vm", 1, (0,), True, True, None),), 0, 0)
        >>> print(t.render().splitlines()[-1])
        1 capability asked in 1 call (1 masked); KVM_GET_API_VERSION asked 0 times
        >>> doc = t.to_dict()
        >>> doc["schema"], doc["calls"][0]["name"], doc["calls"][0]["answers"]
        ('kvmprobe.trace/1', 'KVM_CAP_IOEVENTFD', [0])
    """

    tracer: str
    why: str
    entries: Tuple[TraceEntry, ...]
    api_version_calls: int
    dropped: int

    def to_dict(self) -> Dict[str, object]:
        """The ``--trace FILE.json`` document (schema ``kvmprobe.trace/1``)."""
        return {"schema": "kvmprobe.trace/1", "tracer": self.tracer, "why": self.why,
                "api_version_calls": self.api_version_calls, "dropped": self.dropped,
                "calls": [e.to_dict() for e in self.entries]}

    def render(self) -> str:
        """The text trace: one line per capability and fd, then a summary."""
        lines = [f"# traced by {self.tracer}: {self.why}",
                 f"{'CAPABILITY':<40} {'NUMBER':>6}  {'FD':<6} {'CALLS':>5}  {'ANSWER':<7} HOW"]
        for e in self.entries:
            how = e.how
            if e.kernel is not None and e.emulated:
                how += f" (kernel: {e.kernel})"
            lines.append(f"{e.name:<40} {e.number:>6}  {e.fd:<6} {e.calls:>5}  {e.answer_text:<7} {how}")
        caps = len({e.number for e in self.entries})
        calls = sum(e.calls for e in self.entries)
        counts = [f"{len({e.number for e in self.entries if e.masked})} masked"]
        for reason in ("absent on that host", "not recorded"):
            count = len({e.number for e in self.entries if e.how == reason})
            if count:
                counts.append(f"{count} {reason}")
        lines.append(
            f"{caps} {_plural(caps, 'capability', 'capabilities')} asked in {calls} {_plural(calls, 'call', 'calls')} "
            f"({', '.join(counts)}); KVM_GET_API_VERSION asked {self.api_version_calls} "
            f"{_plural(self.api_version_calls, 'time', 'times')}"
            + (f"; {self.dropped} calls of further numbers not kept" if self.dropped else "")
        )
        return "\n".join(lines) + "\n"


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def _name(number: int) -> str:
    try:
        return Cap(number).c_name
    except ValueError:
        return f"capability {number}"


def _trace(tally: Tally, policy: Policy, tracer: str, why: str, masked: Sequence[Cap] = (),
           host: Optional[ProbeResult] = None) -> Trace:  # fmt: skip
    named = {int(cap) for cap in masked}
    unrecorded = {int(cap) for cap in host.not_recorded} if host is not None else set()
    entries = []
    for (number, kind), answers in tally.calls.items():
        given = policy.answer(kind, number)
        reason = ""
        if given == 0:  # kvmprobe answered 0: say why, as only --mask "masks"
            reason = "masked" if number in named else "not recorded" if number in unrecorded else "absent on that host"
        entries.append(TraceEntry(
            number=number,
            name=_name(number),
            fd=kind,
            calls=sum(answers.values()),
            answers=tuple(a for a in answers if a is not None),
            emulated=given is not None,
            masked=number in named,
            kernel=tally.kernel.get((number, kind)),
            reason=reason,
        ))
    return Trace(tracer, why, tuple(entries), tally.api_version_calls, tally.dropped)


class EmulationResult(NamedTuple):
    """How an emulated run ended.

    ``returncode`` is the command's exit status as a shell reports it (128 + N when signal N
    ended it); ``timed_out`` says the time limit killed it. ``mode`` is ``"filter"`` (answers
    of 0 given by the BPF filter in the kernel, the rest the kernel's) or ``"supervisor"``
    (recorded values given by kvmprobe). ``trace`` is set when asked for. ``notes`` name what
    the run showed to be unfaithful (a recorded capability this kernel lacks, a supervisor that
    could not see an answer).

    Example:
        >>> EmulationResult(0, False, "filter", "preset:linux-3.10", (Cap.IMMEDIATE_EXIT,), None, ()).returncode
        0
    """

    returncode: int
    timed_out: bool
    mode: str
    host: Optional[str]
    masked: Tuple[Cap, ...]
    trace: Optional[Trace]
    notes: Tuple[str, ...]


def emulate(
    command: Sequence[str],
    *,
    host: Optional[HostLike] = None,
    mask: Iterable[CapLike] = (),
    values: Optional[str] = None,
    trace: bool = False,
    tracer: str = "auto",
    stdin: Stream = None,
    stdout: Stream = None,
    stderr: Stream = None,
    timeout: Optional[float] = None,
) -> EmulationResult:
    """Run ``command`` as if the kernel's KVM were ``host``, with the capabilities in ``mask``
    missing too; wait for it and return its exit status (and the trace).

    Every ``KVM_CHECK_EXTENSION`` the command (or a thread, child or re-exec of it) makes, on
    the system fd or a VM fd, is answered for the emulated host: see :func:`policy_for`.
    ``values="recorded"`` answers recorded values (the seccomp supervisor, Linux 5.5);
    ``values="real"`` answers 0 for what the host lacks and lets the kernel answer the rest (a
    BPF filter alone, Linux 3.5). Default: recorded when a host is given and the kernel has
    the supervisor. See this module's docstring for what is not emulated.

    Args:
        command: the program and its arguments (looked up on ``PATH``).
        host: a snapshot path, ``"preset:NAME"``, or a :class:`~kvmprobe.ProbeResult`.
        mask: capabilities (any spelling, or comma lists) that answer 0 whatever the host.
        values: ``"recorded"``, ``"real"`` or ``None`` (see above).
        trace: record every ``KVM_CHECK_EXTENSION`` (``result.trace``).
        tracer: ``"auto"`` (strace where installed, else the supervisor), ``"strace"``, ``"supervisor"``.
        stdin, stdout, stderr: the command's streams, as :class:`subprocess.Popen` takes them
            (default: this process's).
        timeout: seconds until the command's process group is killed (``None``: no limit;
            with a limit the command runs in a session of its own).

    Returns:
        An :class:`EmulationResult`.

    Raises:
        EmulationError: no command, a program that does not exist, or no seccomp filter here
            (not Linux, not x86_64 or aarch64, no kernel support); the command is not run.
        UnknownCapability: a name in ``mask``. SnapshotError: ``host`` does not load.

    Example (hardware):
        >>> import sys
        >>> code = "import fcntl, os; print(fcntl.ioctl(os.open('/dev/kvm', os.O_RDWR), 0xAE03, 36))"
        >>> emulate([sys.executable, "-c", code], mask=["IOEVENTFD"]).returncode  # doctest: +SKIP
        0
        0
    """
    words = resolve_command(command)
    masked = _masked(mask)
    result = _load_host(host) if host is not None else None
    arch_for()  # a clear error before anything starts, where no filter can be written
    supervised = supervisor_available()
    if values not in (None, "recorded", "real"):
        raise EmulationError(f"unknown --values {values!r}", hint="choose recorded or real")
    exact = result is not None and values != "real" and (values == "recorded" or supervised)
    if exact and not supervised:
        raise EmulationError("recorded values need the seccomp supervisor (Linux 5.5+ with user notification)",
                             hint="use --values real: what the host lacks answers 0, the rest is this kernel's")
    policy = policy_for(result, masked, exact=exact)
    which, why, strace = choose_tracer(tracer, supervised) if trace else (None, "", None)
    mode = SUPERVISOR if exact or which == SUPERVISOR or not policy.filter_only() else FILTER
    outcome = _supervisor.run_command(words, policy, mode=mode, tracer=which, strace=strace, stdin=stdin,
                                      stdout=stdout, stderr=stderr, timeout=timeout, new_session=timeout is not None)
    notes = _notes(outcome.tally, policy, masked, result) if outcome.tally is not None else ()
    traced = (_trace(outcome.tally, policy, which, why, masked, result)
              if which is not None and outcome.tally is not None else None)  # fmt: skip
    hidden = tuple(cap for cap in Cap if policy.answer(SYSTEM, int(cap)) == 0) if result is not None else masked
    return EmulationResult(outcome.returncode, outcome.timed_out, mode, result.source if result else None,
                           hidden, traced, notes)


def _notes(tally: Tally, policy: Policy, masked: Sequence[Cap] = (), host: Optional[ProbeResult] = None) -> Tuple[str, ...]:
    """Where the recording claimed more than this kernel has (the command was told a capability
    is there whose ioctls will fail here), and where it has no answer at all (told 0, unknown)."""
    notes = []
    beyond = sorted({number for (number, kind), real in tally.kernel.items()
                     if real == 0 and (policy.answer(kind, number) or 0) > 0})
    if beyond:
        names = ", ".join(_name(n) for n in beyond)
        notes.append(f"the emulated host offers {names}, which this kernel lacks: the command was told "
                     f"{'it is' if len(beyond) == 1 else 'they are'} there, and using {'it' if len(beyond) == 1 else 'them'} fails here")
    named = {int(cap) for cap in masked}
    asked = {number for number, _ in tally.calls}
    unknown = sorted(int(cap) for cap in host.not_recorded if int(cap) in asked and int(cap) not in named) if host else []
    if unknown:
        names = ", ".join(_name(n) for n in unknown)
        one = len(unknown) == 1
        notes.append(f"{names} {'is' if one else 'are'} not recorded for the emulated host: the command was told 0, "
                     f"but that host's answer is not known")
    return tuple(notes)

