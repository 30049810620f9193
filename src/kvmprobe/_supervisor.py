"""Run one command under the ``KVM_CHECK_EXTENSION`` filter: start it, answer its queries, trace
them, bound its time, and return its exit status.

Imports ``_seccomp``, ``_ioctl``, ``_release``, ``_stop`` and ``errors``. Numbers only: a :class:`Policy` says, per
capability number and kind of fd, what the command is answered (a value, an errno, or the
kernel's own answer); ``kvmprobe.emulate`` builds it from a recorded host. Two ways to apply it:

* ``filter``: answers of 0 and errnos are returned by the BPF filter itself, in the kernel, and
  everything else goes to the kernel. No process of ours takes part after the exec.
* ``supervisor``: the filter hands every ``KVM_CHECK_EXTENSION`` (and ``KVM_GET_API_VERSION``)
  to a thread here, which answers any value, and can count and record what was asked.

Two ways to trace: the supervisor records each call it sees; ``strace`` (where installed)
records the result of every call as the command received it, on VM fds too. The supervisor
cannot see what the kernel answers on a VM fd: it lets such a call go on to the kernel, since
KVM serves a VM's ioctls only to the process that created the VM (``virt/kvm/kvm_main.c``
``kvm_vm_ioctl``: ``kvm->mm != current->mm`` is EIO). On the system fd it asks the kernel itself,
on a duplicate of the command's own fd (``pidfd_getfd``), and answers with that.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
from typing import IO, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from . import _seccomp
from ._ioctl import KvmIoctls
from ._seccomp import OTHER, SYSTEM, VM
from ._stop import stop, wait_for_exit
from .errors import EmulationError

#: An answer: a value (>= 0), a failure with errno ``-answer`` (< 0), or ``None``: the kernel's.
Answer = Optional[int]
#: How a run applies its policy.
FILTER, SUPERVISOR = "filter", "supervisor"
STRACE = "strace"
#: The longest a command may be given (a day): poll(2) takes at most 2**31-1 ms (about 24.8 days),
#: and a limit past that is a mistake, not a wish.
MAX_TIMEOUT = 86400.0
#: stdin/stdout/stderr as subprocess takes them: None (inherit), a fd, a file, DEVNULL, PIPE.
Stream = Union[None, int, IO[bytes], IO[str]]


class Policy(NamedTuple):
    """What each ``KVM_CHECK_EXTENSION`` is answered: ``system`` and ``vm`` map capability
    numbers to an :data:`Answer` on that kind of fd, the defaults cover every other number;
    ``api_version`` answers ``KVM_GET_API_VERSION`` (``None``: the kernel does)."""

    system: Mapping[int, Answer]
    vm: Mapping[int, Answer]
    default_system: Answer = None
    default_vm: Answer = None
    api_version: Optional[int] = None

    def answer(self, kind: str, number: int) -> Answer:
        if kind == VM:
            return self.vm.get(number, self.default_vm)
        return self.system.get(number, self.default_system)

    def filter_only(self) -> bool:
        """Whether the BPF filter alone can give every answer: only 0, errnos and the kernel's,
        the same on both kinds of fd, and the kernel's API version.

        Example:
            >>> Policy({36: 0}, {36: 0}).filter_only(), Policy({10: 32}, {10: 32}).filter_only()
            (True, False)
        """
        if self.api_version is not None or self.default_system != self.default_vm:
            return False
        if self.default_system is not None and self.default_system > 0:
            return False
        numbers = set(self.system) | set(self.vm)
        return all(
            self.answer(SYSTEM, n) == self.answer(VM, n) and (self.answer(SYSTEM, n) or 0) <= 0 for n in numbers
        )


def _action(answer: Answer) -> int:
    return _seccomp.RET_ALLOW if answer is None else _seccomp.ret_errno(-answer if answer < 0 else 0)


def program_for(policy: Policy, mode: str, *, notify_all: bool, arch: _seccomp.Arch, ioctls: KvmIoctls) -> bytes:
    """The BPF program applying ``policy`` in ``mode``; with ``notify_all`` (tracing) every
    ``KVM_CHECK_EXTENSION`` reaches the supervisor, else only those the filter cannot answer."""
    numbers = sorted(set(policy.system) | set(policy.vm))
    if mode == FILTER:
        if not policy.filter_only():
            raise AssertionError("this policy needs the supervisor")
        return _seccomp.filter_program(
            arch, ioctls, {n: _action(policy.answer(SYSTEM, n)) for n in numbers}, _action(policy.default_system)
        )
    notify = _seccomp.RET_USER_NOTIF
    caps: Dict[int, int] = {}
    if not notify_all:
        for n in numbers:
            same = policy.answer(SYSTEM, n) == policy.answer(VM, n)
            if same and policy.answer(SYSTEM, n) is None:
                caps[n] = _seccomp.RET_ALLOW
            elif same and (policy.answer(SYSTEM, n) or 0) <= 0:
                caps[n] = _action(policy.answer(SYSTEM, n))
            else:
                caps[n] = notify
    api = notify if policy.api_version is not None or notify_all else _seccomp.RET_ALLOW
    return _seccomp.filter_program(arch, ioctls, caps, notify, api_version=api)


# --- What was asked ----------------------------------------------------------------------------


class Tally:
    """Every ``KVM_CHECK_EXTENSION`` seen: per (number, fd kind) in the order first asked, how
    often each answer was given (``None``: passed to the kernel, answer not seen), and what the
    kernel answered where that was seen. Memory is bounded by :data:`MAX_KEYS`, not the calls:
    a command asking more distinct numbers than that has the rest counted in ``dropped``."""

    MAX_KEYS = 4096

    def __init__(self) -> None:
        self.calls: Dict[Tuple[int, str], Dict[Answer, int]] = {}
        self.kernel: Dict[Tuple[int, str], Answer] = {}
        self.api_version_calls = 0
        self.dropped = 0
        self._lock = threading.Lock()

    def add(self, number: int, kind: str, answer: Answer, *, kernel: Answer = None) -> None:
        key = (number, kind)
        with self._lock:
            answers = self.calls.get(key)
            if answers is None:
                if len(self.calls) >= self.MAX_KEYS:
                    self.dropped += 1
                    return
                answers = self.calls[key] = {}
            answers[answer] = answers.get(answer, 0) + 1
            if kernel is not None:
                self.kernel[key] = kernel

    def saw_kernel(self, number: int, kind: str, kernel: Answer) -> None:
        """Only the kernel's answer (another tracer counts the calls)."""
        if kernel is not None:
            with self._lock:
                if (number, kind) in self.kernel or len(self.kernel) < self.MAX_KEYS:
                    self.kernel[(number, kind)] = kernel

    def count_api_version(self) -> None:
        with self._lock:
            self.api_version_calls += 1


# --- The supervisor ----------------------------------------------------------------------------


class _Supervisor(threading.Thread):
    """Answers the listener's notifications until the command's tasks are gone or ``stop()``."""

    def __init__(self, listener: _seccomp.Listener, policy: Policy, tally: Tally, count: bool,
                 arch: _seccomp.Arch, ioctls: KvmIoctls) -> None:
        super().__init__(name="kvmprobe-supervisor", daemon=True)
        self.listener, self.policy, self.tally, self.count = listener, policy, tally, count
        self.arch, self.ioctls = arch, ioctls
        self._done = threading.Event()
        self.error: Optional[BaseException] = None

    def stop(self) -> None:
        self._done.set()

    def run(self) -> None:
        try:
            while not self._done.is_set():
                try:
                    notification = self.listener.receive(0.05)
                except EOFError:
                    return
                if notification is not None:
                    self.handle(notification)
        except BaseException as err:  # reported by run_command; the command then gets ENOSYS
            self.error = err

    def handle(self, n: _seccomp.Notification) -> None:
        if n.request == self.ioctls.KVM_GET_API_VERSION:
            if self.count:
                self.tally.count_api_version()
            if self.policy.api_version is None:
                self.listener.pass_on(n.id)
            else:
                self.listener.answer(n.id, self.policy.api_version)
            return
        kind = _seccomp.fd_kind(n.pid, n.fd)
        # /proc/<pid> was read: if the task died meanwhile, that PID may be another task's.
        if not self.listener.valid(n.id):
            return
        if kind == OTHER:  # the same request number on a file that is no KVM fd
            self.listener.pass_on(n.id)
            return
        answer = self.policy.answer(kind, n.arg)
        kernel = self.ask_kernel(n) if kind == SYSTEM else None
        given = answer if answer is not None else kernel
        if given is None:
            self.listener.pass_on(n.id)
        elif given < 0:
            self.listener.fail(n.id, -given)
        else:
            self.listener.answer(n.id, given)
        if self.count:
            self.tally.add(n.arg, kind, given, kernel=kernel)
        else:
            self.tally.saw_kernel(n.arg, kind, kernel)

    def ask_kernel(self, n: _seccomp.Notification) -> Answer:
        """The command's own query on a duplicate of its system fd; ``None`` where not possible."""
        dup = _seccomp.borrow_fd(n.pid, n.fd, self.arch)  # ownership: closed below
        if dup is None:
            return None
        try:
            if _seccomp.fd_kind(os.getpid(), dup) != SYSTEM:  # the fd number was reused meanwhile
                return None
            return _seccomp.ioctl_value(dup, self.ioctls.KVM_CHECK_EXTENSION, n.arg)
        finally:
            os.close(dup)


# --- strace --------------------------------------------------------------------------------------

# With -X raw -yy: ioctl(3</dev/kvm<char 10:232>>, 0xae03, 0x24) = 1   (or "= -1 EIO (...)")
_STRACE_LINE = re.compile(
    r"^ioctl\((\d+)<(?P<path>.*)>, (?P<request>0x[0-9a-f]+|\d+), (?P<arg>0x[0-9a-f]+|\d+)\)\s+= "
    r"(?P<ret>-?(?:0x[0-9a-f]+|\d+))(?: (?P<errno>E[A-Z0-9]+|\(errno (?P<errnum>\d+)\)))?"
)


def strace_path() -> Optional[str]:
    """strace's path where it is installed and may trace here (ptrace can be forbidden)."""
    found = shutil.which("strace")
    if found is None:
        return None
    try:
        done = subprocess.run([found, "-qq", "-e", "trace=none", "true"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return found if done.returncode == 0 else None


def parse_strace_line(line: str, ioctls: KvmIoctls, tally: Tally) -> None:
    """Add one line of ``strace -X raw -yy -e trace=ioctl`` output to ``tally``.

    Example:
        >>> t = Tally()
        >>> io = KvmIoctls.for_machine("x86_64")
        >>> parse_strace_line("ioctl(4<anon_inode:kvm-vm>, 0xae03, 0x24) = 0", io, t)
        >>> parse_strace_line("ioctl(3</dev/kvm<char 10:232>>, 0xae03, 0xa) = -1 EIO (Input/output error)", io, t)
        >>> t.calls
        {(36, 'vm'): {0: 1}, (10, 'system'): {-5: 1}}
    """
    import errno as errno_names

    found = _STRACE_LINE.match(line)
    if found is None:
        return
    request = int(found["request"], 0)
    if request == ioctls.KVM_GET_API_VERSION:
        tally.count_api_version()
        return
    if request != ioctls.KVM_CHECK_EXTENSION:
        return
    path = found["path"]
    kind = VM if path.startswith("anon_inode:kvm-vm") else SYSTEM if path.endswith("<char 10:232>") else OTHER
    if kind == OTHER:
        return
    result = int(found["ret"], 0)
    if result < 0:
        code = int(found["errnum"]) if found["errnum"] else getattr(errno_names, found["errno"] or "", 0)
        result = -int(code or 1)
    tally.add(int(found["arg"], 0), kind, result)


class _StraceReader(threading.Thread):
    """Reads strace's output from a FIFO as it is written (memory stays bounded by the tally).

    With ``-f`` each line starts with the PID; a call another thread's line interrupted is
    split into ``... <unfinished ...>`` and ``<... ioctl resumed>...``, joined again here.
    """

    def __init__(self, fifo: str, ioctls: KvmIoctls, tally: Tally) -> None:
        super().__init__(name="kvmprobe-strace-reader", daemon=True)
        # Ownership: this reader closes the read end; stop() closes the write end it holds so
        # that end of file comes once strace has closed its own.
        self.read_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self.write_fd: Optional[int] = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.set_blocking(self.read_fd, True)
        self.ioctls, self.tally = ioctls, tally
        self.unfinished: Dict[str, str] = {}

    def run(self) -> None:
        pending = b""
        try:
            while True:
                chunk = os.read(self.read_fd, 65536)
                if not chunk:
                    break
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()[-4096:]  # a line longer than that is no ioctl line
                for raw in lines:
                    self.line(raw.decode("utf-8", "replace"))
        finally:
            os.close(self.read_fd)

    def line(self, text: str) -> None:
        pid, _, call = text.partition(" ")
        if not pid.isdigit():
            pid, call = "", text
        call = call.lstrip()
        if call.endswith(" <unfinished ...>"):
            if len(self.unfinished) < 4096:
                self.unfinished[pid] = call[: -len(" <unfinished ...>")]
            return
        if call.startswith("<... ioctl resumed>"):
            call = self.unfinished.pop(pid, "") + call[len("<... ioctl resumed>"):]
        parse_strace_line(call, self.ioctls, self.tally)

    def stop(self) -> None:
        fd, self.write_fd = self.write_fd, None
        if fd is not None:
            os.close(fd)


# --- What this host allows --------------------------------------------------------------------


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

    actions = _seccomp.actions_available() if actions is None else actions
    version = parse_release(os.uname().release if release is None else release)
    return "user_notif" in actions.split() and (version is None or version >= (5, 5))


def resolve_command(command: Sequence[str]) -> List[str]:
    """``command`` as strings, its program checked to exist; ``EmulationError`` otherwise."""
    if not command:
        raise EmulationError("no command to run", hint="put the command after '--': kvmprobe emulate -- CMD ARGS")
    words = [str(word) for word in command]
    name = words[0]
    why = ""
    if "\0" in name:
        why = "not a program name (a NUL byte)"
    elif os.sep in name:
        why = "it is a directory" if os.path.isdir(name) else "" if os.path.isfile(name) else "no such program"
    elif shutil.which(name) is None:
        if os.path.isdir(name):
            why = "it is a directory here, and no program of that name is on PATH"
        elif os.path.exists(name):
            why = f"not on PATH (to run the file here, give ./{name})"
        else:
            why = "no such program on PATH"
    if why:
        raise EmulationError(f"cannot run {name!r}: {why}", hint="give a program on PATH or its path, after '--'")
    return words


def choose_tracer(requested: str, supervised: bool) -> Tuple[str, str, Optional[str]]:
    """``(tracer, why, strace path)`` for ``--tracer auto|strace|supervisor``."""
    strace = strace_path() if requested in ("auto", STRACE) else None
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


# --- One run -------------------------------------------------------------------------------------


class Outcome(NamedTuple):
    """How a run ended: the exit status as a shell reports it (128 + N for signal N), whether
    the time limit killed it, and the tally (``None`` when nothing was traced)."""

    returncode: int
    timed_out: bool
    tally: Optional[Tally]


def run_command(
    command: Sequence[str],
    policy: Policy,
    *,
    mode: str,
    tracer: Optional[str] = None,
    strace: Optional[str] = None,
    stdin: Stream = None,
    stdout: Stream = None,
    stderr: Stream = None,
    timeout: Optional[float] = None,
    new_session: bool = False,
) -> Outcome:
    """Run ``command`` under ``policy`` and wait for it (at most ``timeout`` seconds, then its
    process group is killed: give ``new_session`` for that). ``tracer`` is ``None``,
    :data:`SUPERVISOR` or :data:`STRACE` (then ``strace`` is its path).

    Raises:
        EmulationError: the filter cannot be installed, or the command cannot be started; the
            command did not run.
    """
    if timeout is not None and not 0 <= timeout <= MAX_TIMEOUT:  # nan too: before anything starts
        raise EmulationError(f"a time limit of {timeout!r} s: expected a number of seconds from 0 to {MAX_TIMEOUT:g}",
                             hint="give a finite number of seconds, e.g. 30")
    arch = _seccomp.arch_for()
    ioctls = KvmIoctls.for_machine(arch.machine)
    # The supervisor always keeps a tally: what the kernel answered where the recording said
    # otherwise is worth a note even untraced.
    tally = Tally() if tracer is not None or mode == SUPERVISOR else None
    if tracer == SUPERVISOR and mode != SUPERVISOR:
        raise AssertionError("tracing by the supervisor needs the supervisor mode")
    program = program_for(policy, mode, notify_all=tracer == SUPERVISOR, arch=arch, ioctls=ioctls)
    parent_end, child_end = _seccomp.status_socketpair()  # ownership: both closed below
    scratch = tempfile.TemporaryDirectory(prefix="kvmprobe-emulate-") if tracer == STRACE else None
    reader: Optional[_StraceReader] = None
    listener: Optional[_seccomp.Listener] = None
    supervisor: Optional[_Supervisor] = None
    try:
        argv = _seccomp.trampoline_argv(program, mode == SUPERVISOR, child_end.fileno(), command)
        if scratch is not None and tally is not None and strace is not None:
            fifo = os.path.join(scratch.name, "trace")
            os.mkfifo(fifo, 0o600)
            reader = _StraceReader(fifo, ioctls, tally)
            reader.start()
            # -f: children and threads too; -qq: no attach/exit lines; -yy -X raw: fd paths with
            # their device numbers, and numbers, not names, for the request and argument.
            argv = [strace, "-f", "-qq", "-yy", "-X", "raw", "-e", "trace=ioctl", "-e", "signal=none",
                    "-o", fifo, *argv]
        try:
            process = subprocess.Popen(argv, pass_fds=(child_end.fileno(),), stdin=stdin, stdout=stdout,
                                       stderr=stderr, start_new_session=new_session)
        except OSError as err:
            raise EmulationError(f"cannot start {argv[0]}: {os.strerror(err.errno or 0)}",
                                 hint="check that the Python interpreter and strace can be executed") from err
        child_end.close()
        try:
            listener_fd = _seccomp.wait_installed(parent_end, command[0])
        except BaseException:
            stop(process, group=new_session)
            raise
        if listener_fd is not None:
            listener = _seccomp.Listener(listener_fd)
            supervisor = _Supervisor(listener, policy, tally or Tally(), tracer != STRACE, arch, ioctls)
            supervisor.start()
        try:
            timed_out = _wait(process, timeout, new_session)
        except BaseException:  # KeyboardInterrupt while waiting: the command does not outlive us
            stop(process, group=new_session)
            raise
        _seccomp.raise_exec_error(parent_end, command[0])
        status = process.returncode
        return Outcome(128 - status if status < 0 else status, timed_out, tally)
    finally:
        if supervisor is not None:
            supervisor.stop()
            supervisor.join()
        if listener is not None:
            listener.close()
        if reader is not None:
            reader.stop()
            reader.join()
        parent_end.close()
        child_end.close()
        if scratch is not None:
            scratch.cleanup()
        if supervisor is not None and supervisor.error is not None:
            raise EmulationError(f"the seccomp supervisor failed: {supervisor.error}",
                                 hint="run again with --values real, which needs no supervisor")


def _wait(process: "subprocess.Popen[bytes]", timeout: Optional[float], group: bool) -> bool:
    """Wait for the command, at most ``timeout`` seconds; return whether that ran out. With
    ``group``, whatever is left of its process group is killed once it has exited or timed
    out, before it is reaped: until then its PID, which is the group's ID, cannot be reused."""
    exited = wait_for_exit(process.pid, timeout) if group else None  # a pidfd: it is not reaped
    if exited is None:
        try:
            process.wait(timeout)
            exited = True
        except subprocess.TimeoutExpired:
            exited = False
    timed_out = not exited
    if timed_out or group:
        stop(process, group=group)
    process.wait()
    return timed_out
