"""The learn loop behind ``kvmprobe.emulate.learn``: a VMM's requirement profile from real runs.

Imports ``_supervisor`` (running one command under the filter), ``_seccomp``, ``profiles``,
``caps``, ``errors`` and ``_profile_text``. One traced run shows which capabilities the command
asks; then one run per capability, with that one answering 0, shows which it cannot do without.
"""

from __future__ import annotations

import os
import time

from . import _supervisor
from ._seccomp import arch_for
from ._supervisor import FILTER, STRACE, SUPERVISOR, Policy, Tally, choose_tracer, resolve_command, supervisor_available
from .caps import Cap
from .errors import EmulationError
from .profiles import Profile, Requirement

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple
else:
    from ._value import NamedTuple

__all__ = ["Learned", "learn"]

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
        >>> found.document()["required"]
        {'KVM_CAP_USER_MEMORY': 'kvm does not support KVM_CAP_USER_MEMORY'}
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

    words = resolve_command(command)
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
    which, _, strace = choose_tracer(SUPERVISOR if supervised else STRACE, supervised)
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
