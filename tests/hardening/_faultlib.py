"""What the hardening tests share: a fault-injecting ioctl backend, and the tally of cases tried.

``FaultBackend`` wraps any backend (a ``FakeBackend``, or the real ctypes/cffi one) and fails
chosen calls with chosen errno values, as a kernel, a seccomp filter or a flaky driver would.
It is injected through the ``backend=`` parameters (``probe``, ``diagnose``, the CLI's
``main``), never patched in.

``TALLY`` counts the cases each test tried and the problems it found; ``conftest.py`` writes it
to ``$KVMPROBE_HARDENING_TALLY`` at the end of the session (the README's figures come from it).
"""

from __future__ import annotations

import errno
import os
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Set, Tuple

from kvmprobe._backend import Backend, CheckResults, Pointers
from kvmprobe._ioctl import KvmIoctls
from kvmprobe.caps import Cap
from kvmprobe.presets import load_preset
from kvmprobe.testing import FakeBackend, ForwardingBackend

#: The errno values item 1 of the hardening issue names.
ERRNOS = ("EINTR", "EBADF", "ENOTTY", "EINVAL", "EFAULT", "ENOMEM", "EIO", "EPERM")

#: Where a fault can be injected. VM_CHECK_EXTENSION is KVM_CHECK_EXTENSION on a VM fd.
POINTS = ("open", "close", "KVM_GET_API_VERSION", "KVM_CHECK_EXTENSION", "KVM_CREATE_VM", "VM_CHECK_EXTENSION")


@dataclass(frozen=True)
class Fault:
    """Fail ``op`` (for one capability number ``arg``, or every call) with ``code``,
    the first ``times`` matching calls (``None``: every one)."""

    op: str
    code: int
    arg: Optional[int] = None
    times: Optional[int] = None


class FaultBackend(ForwardingBackend):
    """A Backend that forwards to ``inner`` and fails the calls its faults name.

    A failed ``close`` still closes (as Linux does: the fd is released whatever close(2)
    reports). ``open_fds`` lists the fds (system and VM) it handed out and that are not closed.
    """

    def __init__(self, inner: Backend, faults: Sequence[Fault] = ()) -> None:
        super().__init__(inner)
        self.name = f"faulty-{inner.name}"
        self.faults = tuple(faults)
        self.fired: Counter[Fault] = Counter()
        self.calls: List[Tuple[str, int]] = []
        self.opens = 0
        self._vm_fds: Set[int] = set()
        self._open: Set[int] = set()
        self._ioctls = KvmIoctls.for_machine()
        self._lock = threading.Lock()

    @property
    def open_fds(self) -> List[int]:
        return sorted(self._open)

    def _fault(self, op: str, arg: Optional[int] = None) -> int:
        with self._lock:
            self.calls.append((op, -1 if arg is None else arg))
            for fault in self.faults:
                if fault.op != op or (fault.arg is not None and fault.arg != arg):
                    continue
                if fault.times is not None and self.fired[fault] >= fault.times:
                    continue
                self.fired[fault] += 1
                return fault.code
        return 0

    def _op(self, fd: int, request: int) -> str:
        if request == self._ioctls.KVM_GET_API_VERSION:
            return "KVM_GET_API_VERSION"
        if request == self._ioctls.KVM_CREATE_VM:
            return "KVM_CREATE_VM"
        if request == self._ioctls.KVM_CHECK_EXTENSION:
            return "VM_CHECK_EXTENSION" if fd in self._vm_fds else "KVM_CHECK_EXTENSION"
        return hex(request)

    def open(self, path: str) -> int:
        code = self._fault("open")
        if code:
            raise OSError(code, os.strerror(code), path)
        fd = self.inner.open(path)  # ownership: returned to the caller, who closes it through close()
        with self._lock:
            self.opens += 1
            self._open.add(fd)
        return fd

    def close(self, fd: int) -> None:
        with self._lock:
            self._open.discard(fd)
            self._vm_fds.discard(fd)
        self.inner.close(fd)
        code = self._fault("close")
        if code:
            raise OSError(code, os.strerror(code))

    def ioctl(self, fd: int, request: int, arg: int = 0) -> int:
        op = self._op(fd, request)
        code = self._fault(op, arg if op.endswith("CHECK_EXTENSION") else None)
        if code:
            raise OSError(code, os.strerror(code))
        result = self.inner.ioctl(fd, request, arg)
        if op == "KVM_CREATE_VM":
            with self._lock:
                self._vm_fds.add(result)
                self._open.add(result)
        return result

    def check_many(self, fd: int, request: int, numbers: Sequence[int]) -> CheckResults:
        op = self._op(fd, request)
        values, errnos = self.inner.check_many(fd, request, numbers)
        values, errnos = list(values), list(errnos)
        for index, number in enumerate(numbers):
            code = self._fault(op, number)
            if code:
                values[index], errnos[index] = -1, code
        return values, errnos

    def ioctl_buffer(self, fd: int, request: int, buffer: bytearray, pointers: Pointers = ()) -> int:
        code = self._fault(self._op(fd, request))
        if code:
            raise OSError(code, os.strerror(code))
        return self.inner.ioctl_buffer(fd, request, buffer, pointers)


def recorded_host_backend() -> FakeBackend:
    """A FakeBackend answering what the recorded PVM host answered (system and VM fd, CPU data)."""
    return FakeBackend.recorded(load_preset("pvm-6.18"))


def errno_value(name: str) -> int:
    value: int = getattr(errno, name)
    return value


#: Cases tried and problems found, per category (see conftest.py).
TALLY: Dict[str, List[int]] = {}
_tally_lock = threading.Lock()


def tally(category: str, cases: int, failures: int = 0) -> None:
    with _tally_lock:
        entry = TALLY.setdefault(category, [0, 0])
        entry[0] += cases
        entry[1] += failures


#: A capability every recorded host answers positively, used to place a fault on one query.
PROBED_CAP = Cap.IMMEDIATE_EXIT
