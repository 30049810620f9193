"""Run any program as if the kernel were a recorded host, trace what it asks, learn what it needs.

Imports ``_supervisor`` (and through it ``_seccomp``), ``presets``, ``snapshot``, ``profiles``,
``probing``, ``caps``, ``_release`` and ``errors``. :func:`emulate` runs a command, static or
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

import os
import shutil
import sys
import time
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple, Union

from . import _supervisor
from ._seccomp import SYSTEM, VM, actions_available, arch_for
from ._supervisor import FILTER, STRACE, SUPERVISOR, Answer, Policy, Stream, Tally
from .caps import Cap, CapLike
from .errors import EmulationError, describe_errno
from .probing import ProbeResult
from .profiles import Profile, Requirement

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
    "only KVM_CHECK_EXTENSION (and KVM_GET_API_VERSION) answers are emulated; ioctls used without "
    "asking first (KVM_ENABLE_CAP, the profiles' 'implicit' entries), CPUID and uname are this kernel's, "
    "so an emulated old kernel is optimistic"
)

HostLike = Union[str, ProbeResult]


def supervisor_available(release: Optional[str] = None, actions: Optional[str] = None) -> bool:
    """Whether this kernel has what the supervisor needs: ``SECCOMP_RET_USER_NOTIF`` (Linux 5.0)
    and ``SECCOMP_USER_NOTIF_FLAG_CONTINUE`` (Linux 5.5; known only from the release).

    Example:
        >>> supervisor_available("6.1.0", "kill_process errno user_notif allow")
        True
        >>> supervisor_available("5.4.0", "kill_process errno user_notif allow"), supervisor_available("6.1.0", "errno")
        (False, False)
    """
    from ._release import parse_release

    actions = actions_available() if actions is None else actions
    version = parse_release(os.uname().release if release is None else release)
    return "user_notif" in actions.split() and (version is None or version >= (5, 5))


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
    ``emulated``: kvmprobe answered, not the kernel; ``masked``: kvmprobe answered 0 (``mask``
    named it, or the emulated host lacks it). ``kernel`` is the kernel's own answer where seen.

    Example:
        >>> e = TraceEntry(36, "KVM_CAP_IOEVENTFD", "system", 2, (0,), True, True, 1)
        >>> e.answer_text, e.to_dict()["masked"]
        ('0', True)
    """

    number: int
    name: str
    fd: str
    calls: int
    answers: Tuple[int, ...]
    emulated: bool
    masked: bool
    kernel: Optional[int]

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
                "kernel": self.kernel}


class Trace(NamedTuple):
    """Every ``KVM_CHECK_EXTENSION`` a command made, and who traced it (``"strace"`` or
    ``"supervisor"``) with why that one and what it cannot see.

    Example:
        >>> t = Trace("supervisor", "why", (TraceEntry(36, "KVM_CAP_IOEVENTFD", "vm", 1, (0,), True, True, None),), 0, 0)
        >>> print(t.render().splitlines()[-1])
        1 capability asked in 1 call (1 masked); KVM_GET_API_VERSION asked 0 times
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
            how = "masked" if e.masked else "recorded" if e.emulated else "kernel"
            if e.kernel is not None and e.emulated:
                how += f" (kernel: {e.kernel})"
            lines.append(f"{e.name:<40} {e.number:>6}  {e.fd:<6} {e.calls:>5}  {e.answer_text:<7} {how}")
        caps = len({e.number for e in self.entries})
        calls = sum(e.calls for e in self.entries)
        masked = len({e.number for e in self.entries if e.masked})
        lines.append(
            f"{caps} {_plural(caps, 'capability', 'capabilities')} asked in {calls} {_plural(calls, 'call', 'calls')} "
            f"({masked} masked); KVM_GET_API_VERSION asked {self.api_version_calls} "
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


def _trace(tally: Tally, policy: Policy, tracer: str, why: str) -> Trace:
    entries = []
    for (number, kind), answers in tally.calls.items():
        given = policy.answer(kind, number)
        entries.append(TraceEntry(
            number=number,
            name=_name(number),
            fd=kind,
            calls=sum(answers.values()),
            answers=tuple(a for a in answers if a is not None),
            emulated=given is not None,
            masked=given == 0,
            kernel=tally.kernel.get((number, kind)),
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


def _resolve(command: Sequence[str]) -> List[str]:
    if not command:
        raise EmulationError("no command to run", hint="put the command after '--': kvmprobe emulate -- CMD ARGS")
    words = [str(word) for word in command]
    if "\0" in words[0] or (os.sep not in words[0] and shutil.which(words[0]) is None) or (
        os.sep in words[0] and not os.path.isfile(words[0])
    ):
        raise EmulationError(f"cannot run {words[0]!r}: no such program",
                             hint="give a program on PATH or its path, after '--'")
    return words


def _tracer_for(requested: str, supervised: bool) -> Tuple[str, str, Optional[str]]:
    """``(tracer, why, strace path)`` for ``--tracer auto|strace|supervisor``."""
    strace = _supervisor.strace_path() if requested in ("auto", STRACE) else None
    if requested == STRACE and strace is None:
        raise EmulationError("strace is not installed here, or may not trace (ptrace is forbidden)",
                             hint="install strace, or use --tracer supervisor")
    if strace is not None:
        return STRACE, f"{strace} reads the result of every call, on VM fds too (it slows the command: every ioctl stops it)", strace
    if requested not in ("auto", SUPERVISOR):
        raise EmulationError(f"unknown tracer {requested!r}", hint="choose auto, strace or supervisor")
    if not supervised:
        raise EmulationError("tracing needs strace or the seccomp supervisor (Linux 5.5), and this host has neither",
                             hint="install strace")
    why = ("the seccomp supervisor sees every call; what the kernel answered on a VM fd is not seen "
           "(KVM serves a VM's ioctls only to its own process)")
    if requested == "auto":
        why = "strace is not installed or may not trace; " + why
    return SUPERVISOR, why, None


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
    words = _resolve(command)
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
    which, why, strace = _tracer_for(tracer, supervised) if trace else (None, "", None)
    mode = SUPERVISOR if exact or which == SUPERVISOR or not policy.filter_only() else FILTER
    outcome = _supervisor.run_command(words, policy, mode=mode, tracer=which, strace=strace, stdin=stdin,
                                      stdout=stdout, stderr=stderr, timeout=timeout, new_session=timeout is not None)
    notes = _notes(outcome.tally, policy) if outcome.tally is not None else ()
    traced = _trace(outcome.tally, policy, which, why) if which is not None and outcome.tally is not None else None
    hidden = tuple(cap for cap in Cap if policy.answer(SYSTEM, int(cap)) == 0) if result is not None else masked
    return EmulationResult(outcome.returncode, outcome.timed_out, mode, result.source if result else None,
                           hidden, traced, notes)


def _notes(tally: Tally, policy: Policy) -> Tuple[str, ...]:
    """Where the recording claimed more than this kernel has: the command was told a
    capability is there whose ioctls will fail here."""
    beyond = sorted({number for (number, kind), real in tally.kernel.items()
                     if real == 0 and (policy.answer(kind, number) or 0) > 0})
    if not beyond:
        return ()
    names = ", ".join(_name(n) for n in beyond)
    return (f"the emulated host offers {names}, which this kernel lacks: the command was told "
            f"{'it is' if len(beyond) == 1 else 'they are'} there, and using {'it' if len(beyond) == 1 else 'them'} fails here",)


# --- learn ----------------------------------------------------------------------------------------

#: Output kept per stream of a learn run (the refusal line is near the start).
_OUTPUT_LIMIT = 256 * 1024


class Learned(NamedTuple):
    """What :func:`learn` found: the profile, and how it was found.

    ``asked`` lists the capabilities the command asked for, in the order first asked;
    ``required`` those without which it failed, each with how (its own error line, else the
    exit status); ``optional`` those it succeeded without; ``untried`` those the total time
    limit left out. ``other_numbers`` are numbers it asked that are no capability in the table.

    Example:
        >>> refusal = "kvm does not support KVM_CAP_USER_MEMORY"
        >>> profile = Profile("vmm", "vmm", "x86_64", (Requirement(Cap.USER_MEMORY, "required", refusal),))
        >>> found = Learned(profile, ("vmm",), (Cap.USER_MEMORY,), ((Cap.USER_MEMORY, refusal),), (), (), (), 2, 0.5, "exit 0")
        >>> found.complete, found.text().splitlines()[-1]
        (True, 'KVM_CAP_USER_MEMORY = "kvm does not support KVM_CAP_USER_MEMORY"')
    """

    profile: Profile
    command: Tuple[str, ...]
    asked: Tuple[Cap, ...]
    required: Tuple[Tuple[Cap, str], ...]
    optional: Tuple[Cap, ...]
    untried: Tuple[Cap, ...]
    other_numbers: Tuple[int, ...]
    runs: int
    seconds: float
    success: str

    @property
    def complete(self) -> bool:
        """Whether every capability asked was tried."""
        return not self.untried

    def document(self) -> Dict[str, object]:
        """The profile as the document ``load_profile`` reads (keys of the file format only)."""
        profile = self.profile
        document: Dict[str, object] = {
            "name": profile.name,
            "display_name": profile.display_name,
            "arch": profile.arch,
            "api_version": profile.api_version,
            "source": profile.source,
            "required": {r.cap.c_name: r.text for r in profile.of_kind("required")},  # the format needs it, even empty
        }
        if profile.optional:
            document["optional"] = {r.cap.c_name: r.text for r in profile.optional}
        return document

    def text(self, fmt: str = "toml") -> str:
        """The profile file: ``"toml"`` (with comments on how it was learned) or ``"json"``."""
        from ._profile_text import profile_text

        comments = [
            f"Learned by 'kvmprobe learn' on Linux {os.uname().release} ({os.uname().machine}), "
            f"{time.strftime('%Y-%m-%d', time.gmtime())}: {len(self.asked)} capabilities asked, each answered 0 in turn",
            f"({self.runs} runs, {self.seconds:.0f} s; success: {self.success}).",
            "Only what the command asks through KVM_CHECK_EXTENSION on the paths this run took is here;",
            "ioctls it uses without asking (KVM_ENABLE_CAP, ...) are not.",
        ]
        if self.untried:
            comments.append("INCOMPLETE: the total time limit left out " + ", ".join(c.c_name for c in self.untried))
        if self.other_numbers:
            comments.append("Also asked, not in kvmprobe's table: " + ", ".join(str(n) for n in self.other_numbers))
        return profile_text(self.document(), fmt, comments)


def _printable(text: str, limit: int = 300) -> str:
    """One line a profile may hold: controls and undecodable bytes escaped, at most ``limit`` long."""
    text = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in " ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _profile_name(word: str) -> str:
    import re

    name = re.sub(r"[^A-Za-z0-9._+-]+", "-", os.path.basename(word)).strip("-._+") or "vmm"
    return name[:64]


class _Run(NamedTuple):
    outcome: _supervisor.Outcome
    output: str
    lines: Tuple[str, ...]


def learn(
    command: Sequence[str],
    *,
    ok_exit: int = 0,
    ok_output: Optional[str] = None,
    stdin: Optional[bytes] = None,
    timeout: float = 30.0,
    total_timeout: float = 600.0,
    name: Optional[str] = None,
    progress: Optional[Callable[[int, int, str], None]] = None,
) -> Learned:
    """Derive a VMM's requirement profile from real runs of ``command``.

    The command runs once as it is, traced, to see which capabilities it asks (that run must
    succeed); then once per capability asked, with that one answering 0 (on every fd). A
    capability without which it still succeeds is ``optional``; one without which it fails is
    ``required``, with the command's own error line (the first line of its output that the
    first run did not print) as how it fails. Every run gets ``stdin`` (default: nothing)
    and at most ``timeout`` seconds, after which its process group is killed; once
    ``total_timeout`` is spent, the capabilities left are reported ``untried``.

    Args:
        command: the VMM and its arguments; it should start, ask, and exit by itself (give it
            ``stdin`` to drive it: QEMU's ``-qmp stdio`` with ``quit``).
        ok_exit: success is this exit status (default 0) ...
        ok_output: ... or, when given, this regular expression found in the output.
        stdin: the bytes every run reads on standard input.
        timeout, total_timeout: seconds per run, and for everything.
        name: the profile's name (default: the program's file name).
        progress: called with (runs done, runs in all, what happened) after each run.

    Returns:
        A :class:`Learned`; ``.text()`` is the profile file ``check --profile`` reads.

    Raises:
        EmulationError: no such program, no seccomp filter here, no way to trace (strace or
            the supervisor), a bad ``ok_output``, or the first run did not succeed.

    Example (hardware):
        >>> qemu = ["qemu-system-x86_64", "-accel", "kvm", "-machine", "q35", "-display", "none",
        ...         "-nodefaults", "-S", "-qmp", "stdio"]
        >>> qmp = b'{"execute":"qmp_capabilities"}\\n{"execute":"quit"}\\n'
        >>> found = learn(qemu, stdin=qmp, timeout=20)  # doctest: +SKIP
        >>> [cap.name for cap, _ in found.required]  # doctest: +SKIP
        ['USER_MEMORY', 'DESTROY_MEMORY_REGION_WORKS', 'JOIN_MEMORY_REGIONS_WORKS', 'SET_TSS_ADDR', 'EXT_CPUID', 'MP_STATE']
    """
    import re

    words = _resolve(command)
    arch_for()
    try:
        pattern = re.compile(ok_output, re.MULTILINE) if ok_output is not None else None
    except re.error as err:
        raise EmulationError(f"--ok-output {ok_output!r} is no regular expression: {err}",
                             hint="give a Python regular expression, e.g. 'enabled\\W+true'") from None
    if timeout <= 0 or total_timeout <= 0:
        raise EmulationError("time limits must be positive", hint="give seconds, e.g. --timeout 30")
    success = f"output matches {ok_output!r}" if pattern is not None else f"exit status {ok_exit}"
    supervised = supervisor_available()
    which, _, strace = _tracer_for(SUPERVISOR if supervised else STRACE, supervised)
    started = time.monotonic()

    def run(policy: Policy, mode: str, tracer: Optional[str], limit: float) -> _Run:
        import subprocess
        import tempfile

        # Ownership: the three temporary files are closed (and so removed) when the block ends.
        with tempfile.TemporaryFile() as given, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            given.write(stdin or b"")
            given.seek(0)
            outcome = _supervisor.run_command(
                words, policy, mode=mode, tracer=tracer, strace=strace,
                stdin=given if stdin else subprocess.DEVNULL, stdout=out, stderr=err,
                timeout=limit, new_session=True,
            )
            texts = []
            for stream in (err, out):
                stream.seek(0)
                texts.append(stream.read(_OUTPUT_LIMIT).decode("utf-8", "replace"))
        lines = tuple(line.strip() for text in texts for line in text.splitlines() if line.strip())
        return _Run(outcome, "\n".join(texts), lines)

    def succeeded(done: _Run) -> bool:
        if pattern is not None:
            return pattern.search(done.output) is not None
        return not done.outcome.timed_out and done.outcome.returncode == ok_exit

    first = run(Policy({}, {}), SUPERVISOR if which == SUPERVISOR else FILTER, which, min(timeout, total_timeout))
    if not succeeded(first):
        if first.outcome.timed_out:
            why = f"did not finish within {min(timeout, total_timeout):g} s"
        elif pattern is not None:
            why = f"exit status {first.outcome.returncode}, output not matching {ok_output!r}"
        else:
            why = f"exit status {first.outcome.returncode}"
        said = f": {_printable(first.lines[0], 200)}" if first.lines else ""
        raise EmulationError(f"{words[0]} does not succeed even with nothing masked ({why}){said}",
                             hint="check the command and its input (--stdin), or say what success is with "
                                  "--ok-exit N or --ok-output REGEX")
    tally = first.outcome.tally or Tally()
    numbers = list(dict.fromkeys(number for number, _ in tally.calls))
    known = {int(cap) for cap in Cap}
    asked = tuple(Cap(n) for n in numbers if n in known)
    others = tuple(n for n in numbers if n not in known)
    seen = set(first.lines)
    required: List[Tuple[Cap, str]] = []
    optional: List[Cap] = []
    untried: List[Cap] = []
    if progress is not None:
        progress(1, len(asked) + 1, f"{len(asked)} capabilities asked")
    for index, cap in enumerate(asked):
        left = total_timeout - (time.monotonic() - started)
        if left <= 0:
            untried.extend(asked[index:])
            break
        zero = {int(cap): 0}
        done = run(Policy(zero, dict(zero)), FILTER, None, min(timeout, left))
        if done.outcome.timed_out and left < timeout:
            untried.extend(asked[index:])
            break
        if succeeded(done):
            optional.append(cap)
            verdict = "optional"
        else:
            required.append((cap, _how_it_fails(done, seen, min(timeout, left))))
            verdict = "required"
        if progress is not None:
            progress(index + 2, len(asked) + 1, f"{cap.c_name}: {verdict}")
    arch = arch_for().machine
    requirements = tuple(Requirement(cap, "required", how) for cap, how in required) + tuple(
        Requirement(cap, "optional", "learned: the command still succeeds without it") for cap in optional
    )
    profile_name = name or _profile_name(words[0])
    source = _printable(f"kvmprobe learn: {' '.join(words)}", 500)
    profile = Profile(profile_name, profile_name, arch, requirements, source=source)
    return Learned(profile, tuple(words), asked, tuple(required), tuple(optional), tuple(untried), others,
                   1 + len(required) + len(optional), time.monotonic() - started, success)


def _how_it_fails(done: _Run, seen: Set[str], limit: float) -> str:
    """The command's own error line: the first line of its output the first run did not print
    (with the next one, where it ends in a colon: a Rust panic's "panicked at FILE:" comes before
    its message)."""
    import signal

    new = [line for line in done.lines if line not in seen]
    if new:
        return _printable(" ".join(new[:2]) if new[0].endswith(":") and len(new) > 1 else new[0])
    if done.outcome.timed_out:
        return f"does not finish within {limit:g} s"
    code = done.outcome.returncode
    if code > 128:
        try:
            return f"killed by {signal.Signals(code - 128).name}"
        except ValueError:
            pass
    return f"exit status {code}"
