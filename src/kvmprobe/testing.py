"""Fakes for testing code that uses kvmprobe on machines without KVM (public; no pytest import).

Imports the public API and ``_backend``. ``FakeBackend`` answers ioctls from a dict, as a
kernel would (it can also fail chosen calls with chosen errno values); ``fake_probe_result``
builds a :class:`~kvmprobe.ProbeResult`; ``fake_kvm`` makes every ``kvmprobe.probe()``,
``has()`` and ``value()`` in the process see a given host until the ``with`` block ends.
"""

from __future__ import annotations

import errno as _errno
import itertools
import threading
from contextlib import contextmanager
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

from . import probing as _probe
from ._backend import CheckResults
from ._ioctl import KVM_API_VERSION, KvmIoctls
from .caps import Cap, CapLike
from .probing import ProbeResult

__all__ = ["FakeBackend", "fake_kvm", "fake_probe_result"]

Values = Mapping[CapLike, int]


def _numbers(values: Optional[Values]) -> Dict[int, int]:
    return {int(Cap.lookup(k)) if not isinstance(k, int) else int(k): int(v) for k, v in (values or {}).items()}


class FakeBackend:
    """An ioctl backend that answers from a dict, with no device at all.

    ``values`` maps capabilities (or raw numbers) to what KVM_CHECK_EXTENSION answers on the
    system fd; numbers not listed answer 0, as a kernel does. ``vm_values`` are the VM-fd
    answers (default: the same as ``values``). Faults: ``open_errno`` fails ``open``,
    ``fail`` maps an ioctl name (``"KVM_GET_API_VERSION"``, ``"KVM_CREATE_VM"``,
    ``"KVM_CHECK_EXTENSION"``) or ``("KVM_CHECK_EXTENSION", number)`` to an errno, and
    ``eintr`` makes the first that-many calls fail with EINTR (a real backend retries).
    ``open_fds`` lists the fake fds not yet closed, so tests can prove nothing leaks.

    Example:
        >>> backend = FakeBackend({Cap.HLT: 1}, fail={("KVM_CHECK_EXTENSION", 0): 5})
        >>> fd = backend.open("/dev/kvm")
        >>> backend.check_many(fd, KvmIoctls.for_machine().KVM_CHECK_EXTENSION, [0, 1, 2])
        ([-1, 1, 0], [5, 0, 0])
        >>> backend.close(fd); backend.open_fds
        []
    """

    name = "fake"

    def __init__(
        self,
        values: Optional[Values] = None,
        *,
        vm_values: Optional[Values] = None,
        api_version: int = KVM_API_VERSION,
        open_errno: Optional[int] = None,
        fail: Optional[Mapping[Union[str, Tuple[str, int]], int]] = None,
        eintr: int = 0,
    ) -> None:
        self.values = _numbers(values)
        self.vm_values = _numbers(vm_values) if vm_values is not None else dict(self.values)
        self.api_version = api_version
        self.open_errno = open_errno
        self.fail = dict(fail or {})
        self.eintr = eintr
        self.calls: List[Tuple[str, int]] = []
        self.opened: List[str] = []
        self._ioctls = KvmIoctls.for_machine()
        self._fds = itertools.count(1000)
        self._open: Set[int] = set()
        self._vms: Set[int] = set()
        self._lock = threading.Lock()

    @property
    def open_fds(self) -> List[int]:
        """The fake fds opened and not yet closed (system and VM fds)."""
        return sorted(self._open)

    def open(self, path: str) -> int:
        self.opened.append(path)
        if self.open_errno is not None:
            raise OSError(self.open_errno, _errno.errorcode.get(self.open_errno, "error"))
        with self._lock:
            fd = next(self._fds)
            self._open.add(fd)
        return fd

    def close(self, fd: int) -> None:
        with self._lock:
            if fd not in self._open:
                raise OSError(_errno.EBADF, "Bad file descriptor")
            self._open.discard(fd)
            self._vms.discard(fd)

    def _answer(self, fd: int, request: int, arg: int) -> Tuple[int, int]:
        names = {
            self._ioctls.KVM_GET_API_VERSION: "KVM_GET_API_VERSION",
            self._ioctls.KVM_CREATE_VM: "KVM_CREATE_VM",
            self._ioctls.KVM_CHECK_EXTENSION: "KVM_CHECK_EXTENSION",
        }
        name = names.get(request, hex(request))
        with self._lock:
            self.calls.append((name, arg))
            if self.eintr > 0:
                self.eintr -= 1
                return -1, _errno.EINTR
            if fd not in self._open:
                return -1, _errno.EBADF
        for key in ((name, arg), name):
            if key in self.fail:
                return -1, self.fail[key]
        if name == "KVM_GET_API_VERSION":
            return self.api_version, 0
        if name == "KVM_CHECK_EXTENSION":
            table = self.vm_values if fd in self._vms else self.values
            return table.get(arg, 0), 0
        if name == "KVM_CREATE_VM":
            with self._lock:
                vm = next(self._fds)
                self._open.add(vm)
                self._vms.add(vm)
            return vm, 0
        return -1, _errno.ENOTTY

    def ioctl(self, fd: int, request: int, arg: int = 0) -> int:
        while True:
            result, code = self._answer(fd, request, arg)
            if code == _errno.EINTR:
                continue
            if code:
                raise OSError(code, _errno.errorcode.get(code, "error"))
            return result

    def check_many(self, fd: int, request: int, numbers: Sequence[int]) -> CheckResults:
        values: List[int] = []
        errnos: List[int] = []
        for number in numbers:
            result, code = self._answer(fd, request, number)
            while code == _errno.EINTR:
                result, code = self._answer(fd, request, number)
            values.append(result)
            errnos.append(code)
        return values, errnos


def fake_probe_result(
    values: Optional[Values] = None,
    *,
    vm_values: Optional[Values] = None,
    errors: Optional[Mapping[CapLike, int]] = None,
    device: str = "/dev/kvm",
    api_version: int = KVM_API_VERSION,
    arch: str = "x86_64",
    kernel: str = "6.18.0",
    source: str = "fake",
) -> ProbeResult:
    """A :class:`ProbeResult` for a made-up host: every capability not in ``values`` is 0.

    Example:
        >>> fake_probe_result({"IMMEDIATE_EXIT": 1}, kernel="3.10.0").has("IMMEDIATE_EXIT")
        True
    """

    def caps(mapping: Optional[Mapping[CapLike, int]]) -> Dict[Cap, int]:
        return {Cap.lookup(k): int(v) for k, v in (mapping or {}).items()}

    given = caps(values)
    failed = caps(errors)
    return ProbeResult(
        device=device,
        api_version=api_version,
        values={cap: given.get(cap, 0) for cap in Cap if cap not in failed},
        arch=arch,
        kernel=kernel,
        backend="fake",
        errors=failed,
        vm_values=None if vm_values is None else {cap: caps(vm_values).get(cap, 0) for cap in Cap},
        vm_created=vm_values is not None,
        source=source,
    )


@contextmanager
def fake_kvm(host: Union[ProbeResult, Values, None] = None) -> Iterator[ProbeResult]:
    """Make every kvmprobe probe in this process see ``host`` until the block ends.

    ``host`` is a :class:`ProbeResult` or a dict of capability values (see
    :func:`fake_probe_result`). Code under test needs no change: ``kvmprobe.has(...)`` and
    ``kvmprobe.probe()`` answer from the fake. Blocks nest; the previous state comes back.

    Example:
        >>> import kvmprobe
        >>> with fake_kvm({"IMMEDIATE_EXIT": 0}) as host:
        ...     kvmprobe.has("IMMEDIATE_EXIT"), kvmprobe.probe() is host
        (False, True)
    """
    result = host if isinstance(host, ProbeResult) else fake_probe_result(host)
    token = _probe._push_override(result)
    try:
        yield result
    finally:
        _probe._pop_override(token)
