"""Run a piece of work in a forked child under a time limit: the micro-guest's watchdog.

Imports ``_stop`` (killing a child at its time limit). :func:`run_forked` forks; the child runs the work and sends
records (``marshal``-encoded tuples) up a pipe as they happen; the parent collects them until
the child closes the pipe or the time limit passes, then kills the child with ``SIGKILL`` and
reaps it. A ``KVM_RUN`` that never returns (a guest in ``jmp $``, a vCPU the kernel emulates
forever) is therefore stopped by the kernel tearing the child down: every fd, mapping, VM and
vCPU the child made dies with it, and the parent, which made none of them, is left exactly as
it was (its fds, its signal handlers, its threads).

Why a child and not a watchdog thread: a thread can only stop ``KVM_RUN`` by setting
``kvm_run.immediate_exit`` and sending the vCPU thread a signal whose handler is not
``SIG_IGN``; Python lets only the main thread install handlers, a process-wide handler is not a
library's to take, and a signal does not help a vCPU that never checks for one. ``SIGKILL``
cannot be caught or ignored and ends any ``KVM_RUN`` (the kernel checks fatal signals on its
way back from the guest). The price is one ``fork(2)``: about a millisecond.

The child runs only the work it was given and leaves with ``os._exit``: it never returns into
the caller's stack, runs no ``atexit`` handler and flushes none of the parent's buffers. On
Python 3.12+ ``os.fork()`` warns (``DeprecationWarning``) when the process has other threads;
the child here takes no lock another thread could hold (it allocates under the GIL it forked
with and issues system calls), so the warning is about code this module does not run.
"""

from __future__ import annotations

import marshal
import os
import select
import struct
import time

from ._stop import kill, wait_for_exit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, Tuple

    #: A record the child sends: a tuple of ints, floats, strings and bytes (``marshal`` types).
    Record = Tuple[Any, ...]

__all__ = ["Forked", "run_forked"]

# Each record travels as a 4-byte little-endian length, then its marshal bytes.
_LENGTH = struct.Struct("<I")
# The child's exit status when its work raised: the parent reports the record it sent.
_FAILED = 70
# How long the parent waits for a killed child to be reaped. SIGKILL ends KVM_RUN at once; a
# child stuck in an uninterruptible kernel wait is reported, not waited for without end.
_REAP_SECONDS = 5.0
# Records larger than this are not sent (a bug in the work, not a guest's doing).
_RECORD_LIMIT = 1 << 20


class Forked:
    """What came back from the child: its records, and how it ended.

    ``timed_out`` is true when the time limit passed before the child finished (it was killed);
    ``status`` is the child's wait status (``None`` when it could not be reaped); ``elapsed``
    the seconds from fork to the end of collection.
    """

    __slots__ = ("elapsed", "records", "status", "time_limit", "timed_out")

    def __init__(
        self, records: List[Record], timed_out: bool, status: Optional[int], elapsed: float, time_limit: float
    ) -> None:
        self.records = records
        self.timed_out = timed_out
        self.status = status
        self.elapsed = elapsed
        self.time_limit = time_limit

    @property
    def exit_code(self) -> Optional[int]:
        """The child's exit code (``None``: killed by a signal, or not reaped)."""
        if self.status is None or not os.WIFEXITED(self.status):
            return None
        return os.WEXITSTATUS(self.status)

    @property
    def signal(self) -> Optional[int]:
        """The signal that ended the child, if one did."""
        if self.status is None or not os.WIFSIGNALED(self.status):
            return None
        return os.WTERMSIG(self.status)


def run_forked(work: Callable[[Callable[[Record], None]], None], time_limit: float) -> Forked:
    """Run ``work(send)`` in a forked child for at most ``time_limit`` seconds.

    ``send(record)`` writes one record to the parent at once, so what the child learned before
    a hang is not lost. When ``work`` raises, the child sends ``("crash", type name, message)``
    and exits 70.

    Example:
        >>> result = run_forked(lambda send: send(("hello", os.getpid())), 5.0)
        >>> result.records[0][0], result.records[0][1] != os.getpid(), result.timed_out, result.exit_code
        ('hello', True, False, 0)
        >>> run_forked(lambda send: time.sleep(60), 0.2).timed_out
        True
    """
    read_end, write_end = os.pipe()  # both close-on-exec (PEP 446); the parent closes both below
    started = time.monotonic()
    try:
        pid = os.fork()
    except BaseException:
        os.close(read_end)
        os.close(write_end)
        raise
    if pid == 0:  # the child: never returns
        _child(work, read_end, write_end)
    os.close(write_end)  # the child holds the only write end now: EOF means it is gone
    chunks: List[bytes] = []
    finished = False
    status: Optional[int] = None
    try:
        finished = _collect(read_end, started + time_limit, chunks)
    finally:
        os.close(read_end)
        if not finished:  # the time limit passed, or the caller was interrupted (Ctrl-C)
            status = _reaped_now(pid)  # it may have ended at the last moment
            if status is None:
                kill(pid)  # our own unreaped child: its pid cannot have been reused
            else:
                finished = True
        if status is None:
            status = _reap(pid)
    timed_out = not finished
    return Forked(_records(b"".join(chunks)), timed_out, status, time.monotonic() - started, time_limit)


def _child(work: Callable[[Callable[[Record], None]], None], read_end: int, write_end: int) -> None:
    code = 0
    try:
        os.close(read_end)

        def send(record: Record) -> None:
            data = marshal.dumps(record)
            if len(data) > _RECORD_LIMIT:
                raise ValueError(f"record of {len(data)} bytes is over the limit")
            _write_all(write_end, _LENGTH.pack(len(data)) + data)

        try:
            work(send)
        except BaseException as err:  # the parent reports it; nothing may escape the child
            code = _FAILED
            send(("crash", type(err).__name__, str(err)[:2000]))
    except BaseException:
        code = _FAILED
    finally:
        os._exit(code)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]  # os.write retries EINTR (PEP 475)


def _collect(fd: int, deadline: float, chunks: List[bytes]) -> bool:
    """Read until EOF (True: the child is done) or the deadline (False)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        if not poller.poll(max(1, int(remaining * 1000))):  # poll retries EINTR (PEP 475)
            continue
        data = os.read(fd, 1 << 16)
        if not data:
            return True
        chunks.append(data)


def _records(data: bytes) -> List[Record]:
    """The complete records in ``data`` (a record cut short by the kill is dropped)."""
    records: List[Record] = []
    offset = 0
    while offset + _LENGTH.size <= len(data):
        (size,) = _LENGTH.unpack_from(data, offset)
        start = offset + _LENGTH.size
        if start + size > len(data):
            break
        record = marshal.loads(data[start:start + size])  # our own child wrote it
        if isinstance(record, tuple) and record:
            records.append(record)
        offset = start + size
    return records


def _reaped_now(pid: int) -> Optional[int]:
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # SIGCHLD is SIG_IGN in this process: the kernel reaped it
        return 0
    return status if reaped == pid else None


def _reap(pid: int) -> Optional[int]:
    """Wait for ``pid`` at most :data:`_REAP_SECONDS`; its status, or ``None``."""
    status = _reaped_now(pid)
    if status is not None:
        return status
    wait_for_exit(pid, _REAP_SECONDS)  # without a pidfd it returns at once: poll below
    deadline = time.monotonic() + _REAP_SECONDS
    pause = 0.0005
    while True:
        status = _reaped_now(pid)
        if status is not None:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
