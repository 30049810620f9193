"""Fakes for testing code that uses kvmprobe on machines without KVM (public; no pytest import).

Imports ``probing``, ``presets``, ``snapshot``, ``caps``, ``_ioctl``, ``_backend``, ``_cpu_record``,
``_fake_cpu`` and ``_fake_host`` (:class:`FakeHost`). ``FakeBackend`` answers ioctls from a dict, as
a kernel would (it can also fail chosen calls with chosen errno values); ``fake_probe_result``
builds a :class:`~kvmprobe.ProbeResult`; ``fake_kvm`` makes every ``kvmprobe.probe()``,
``has()`` and ``value()`` in the process see a given host until the ``with`` block ends.
"""

from __future__ import annotations

import errno as _errno
import itertools
import os as _os
import threading
from contextlib import contextmanager
from dataclasses import replace as _replace
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

from . import probing as _probe
from ._backend import Backend, CheckResults, ForwardingBackend, Pointers
from ._cpu_record import CpuRecord
from ._fake_host import KVM_GID, FakeHost
from ._fake_cpu import fake_cpu_record
from ._ioctl import KVM_API_VERSION, KvmIoctls
from .caps import Cap, CapLike
from .probing import ProbeResult

__all__ = ["KVM_GID", "CpuRecord", "FakeBackend", "FakeHost", "ForwardingBackend", "HostSpec", "default_backend", "fake_cpu_record",
           "fake_kvm", "fake_probe_result", "host_result"]  # fmt: skip

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
    ``eintr`` makes the first that-many calls fail with EINTR (``KvmDevice`` asks again, as it
    does for a real backend). ``KVM_CREATE_VM`` of a type other than 0 fails with EINVAL unless
    ``values`` gives ``VM_TYPES`` with its bit, as x86 KVM does.
    ``open_fds`` lists the fake fds not yet closed, so tests can prove nothing leaks.

    The x86 CPU queries answer from recorded data, with the kernel's buffer rules (E2BIG and
    the needed count when a buffer is too small): ``cpuid`` and ``emulated_cpuid`` (entries
    as ``(function, index, flags, eax, ebx, ecx, edx)``), ``msrs`` (KVM_GET_MSR_INDEX_LIST),
    ``feature_msrs`` (index -> value: KVM_GET_MSR_FEATURE_INDEX_LIST and KVM_GET_MSRS on the
    system fd), ``device_attrs`` ((group, attr) -> value; others answer ENXIO) and
    ``tsc_khz`` (a vCPU's KVM_GET_TSC_KHZ). Each one left ``None`` answers ENOTTY, as a kernel
    without that ioctl does. :meth:`recorded` fills all of it from a recorded host.

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
        cpuid: Optional[Sequence[Sequence[int]]] = None,
        emulated_cpuid: Optional[Sequence[Sequence[int]]] = None,
        msrs: Optional[Sequence[int]] = None,
        feature_msrs: Optional[Mapping[int, int]] = None,
        device_attrs: Optional[Mapping[Tuple[int, int], int]] = None,
        tsc_khz: Optional[int] = None,
    ) -> None:
        self.values = _numbers(values)
        self.vm_values = _numbers(vm_values) if vm_values is not None else dict(self.values)
        self.api_version = api_version
        self.open_errno = open_errno
        self.fail = dict(fail or {})
        self.eintr = eintr
        self.cpuid = None if cpuid is None else [tuple(entry) for entry in cpuid]
        self.emulated_cpuid = None if emulated_cpuid is None else [tuple(entry) for entry in emulated_cpuid]
        self.msrs = None if msrs is None else list(msrs)
        self.feature_msrs = None if feature_msrs is None else dict(feature_msrs)
        self.device_attrs = None if device_attrs is None else dict(device_attrs)
        self.tsc_khz = tsc_khz
        self.calls: List[Tuple[str, int]] = []
        self.opened: List[str] = []
        self._ioctls = KvmIoctls.for_machine()
        self._fds = itertools.count(1000)
        self._open: Set[int] = set()
        self._vms: Set[int] = set()
        self._vcpus: Set[int] = set()
        self._lock = threading.Lock()
        numbers = self._ioctls
        self._names = {
            getattr(numbers, name): name
            for name in (
                "KVM_GET_API_VERSION", "KVM_CREATE_VM", "KVM_CHECK_EXTENSION", "KVM_GET_SUPPORTED_CPUID",
                "KVM_GET_EMULATED_CPUID", "KVM_GET_MSR_INDEX_LIST", "KVM_GET_MSR_FEATURE_INDEX_LIST",
                "KVM_GET_MSRS", "KVM_HAS_DEVICE_ATTR", "KVM_GET_DEVICE_ATTR", "KVM_CREATE_VCPU", "KVM_GET_TSC_KHZ",
            )
        }  # fmt: skip

    @classmethod
    def recorded(cls, host: HostSpec = None, **changes: object) -> FakeBackend:
        """A FakeBackend that answers as a recorded host did: its capabilities (system and VM
        fd), its failed queries (with their errno) and its CPU data. ``host`` is as for
        :func:`host_result`; ``changes`` override keyword arguments of the constructor.

        Example:
            >>> import kvmprobe
            >>> backend = FakeBackend.recorded("pvm-6.18")
            >>> info = kvmprobe.cpuinfo.cpu_of(kvmprobe.probe(backend=backend, vm=True, cpu=True))
            >>> info.features == kvmprobe.cpuinfo.cpu_of(kvmprobe.load_preset("pvm-6.18")).features
            True
        """
        from ._fake_cpu import backend_answers

        result = host_result(host)
        answers: Dict[str, object] = dict(backend_answers(result.cpu))
        fail: Dict[Union[str, Tuple[str, int]], int] = dict(answers.pop("fail", {}) or {})  # type: ignore[call-overload]
        fail.update({("KVM_CHECK_EXTENSION", int(cap)): code for cap, code in result.errors.items()})
        answers.update(changes)
        return cls(result.values, vm_values=result.vm_values, fail=fail, **answers)  # type: ignore[arg-type]

    @classmethod
    def amd_snp(cls) -> FakeBackend:
        """KVM's answers on a made-up AMD host ready for SEV, SEV-ES and SEV-SNP (see
        :meth:`FakeHost.amd_snp`): ``VM_TYPES`` 0x1d (default, SEV, SEV-ES, SNP), the
        private-memory capabilities, and the ``KVM_X86_GRP_SEV`` attributes (DEBUG_SWAP and
        SECURE_TSC, SNP policy bits, certificate requests).

        Example:
            >>> hex(FakeBackend.amd_snp().values[235])
            '0x1d'
        """
        return cls(_CONFIDENTIAL_CAPS | {Cap.VM_TYPES: 0x1D},
                   device_attrs={(0, 0): 0x2E7, (1, 0): 0x220, (1, 1): 0x1FFFFF, (1, 2): 1})  # fmt: skip

    @classmethod
    def amd_sev_firmware_off(cls) -> FakeBackend:
        """KVM's answers on the made-up AMD host of :meth:`FakeHost.amd_sev_firmware_off`: SEV and
        SEV-ES VM types but no SNP (``VM_TYPES`` 0xd), no SNP policy bits.

        Example:
            >>> hex(FakeBackend.amd_sev_firmware_off().values[235])
            '0xd'
        """
        return cls(_CONFIDENTIAL_CAPS | {Cap.VM_TYPES: 0xD},
                   device_attrs={(0, 0): 0x2E7, (1, 0): 0x20, (1, 1): 0, (1, 2): 0})  # fmt: skip

    @classmethod
    def intel_tdx_off(cls) -> FakeBackend:
        """KVM's answers on the made-up Intel host of :meth:`FakeHost.intel_tdx_off`: only the
        default VM type, and no ``KVM_X86_GRP_SEV`` (ENXIO, as kvm_intel answers).

        Example:
            >>> FakeBackend.intel_tdx_off().values[235]
            1
        """
        return cls(_CONFIDENTIAL_CAPS | {Cap.VM_TYPES: 0x1}, device_attrs={(0, 0): 0x2E7})

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
            self._vcpus.discard(fd)

    def _gate(self, fd: int, name: str, arg: int) -> Tuple[int, int]:
        """What every call meets first: the log, EINTR, a closed fd, a chosen fault (0, 0: none)."""
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
        return 0, 0

    def _answer(self, fd: int, request: int, arg: int) -> Tuple[int, int]:
        name = self._names.get(request, hex(request))
        result, code = self._gate(fd, name, arg)
        if code:
            return result, code
        if name == "KVM_GET_API_VERSION":
            return self.api_version, 0
        if name == "KVM_CHECK_EXTENSION":
            table = self.vm_values if fd in self._vms else self.values
            return table.get(arg, 0), 0
        if name == "KVM_CREATE_VM":
            # x86 KVM refuses a type whose bit KVM_CAP_VM_TYPES lacks (arch/x86/kvm/x86.c:4779-4782).
            if arg and not self.values.get(int(Cap.VM_TYPES), 0) >> arg & 1:
                return -1, _errno.EINVAL
            with self._lock:
                vm = next(self._fds)
                self._open.add(vm)
                self._vms.add(vm)
            return vm, 0
        if name == "KVM_CREATE_VCPU" and fd in self._vms:
            with self._lock:
                vcpu = next(self._fds)
                self._open.add(vcpu)
                self._vcpus.add(vcpu)
            return vcpu, 0
        if name == "KVM_GET_TSC_KHZ" and fd in self._vcpus and self.tsc_khz is not None:
            return self.tsc_khz, 0
        return -1, _errno.ENOTTY

    def ioctl(self, fd: int, request: int, arg: int = 0) -> int:
        """One integer-argument ioctl, answered as KVM would (``OSError`` with the errno on a fault).

        Example:
            >>> backend, numbers = FakeBackend({Cap.HLT: 1}), KvmIoctls.for_machine()
            >>> fd = backend.open("/dev/kvm")
            >>> backend.ioctl(fd, numbers.KVM_GET_API_VERSION), backend.ioctl(fd, numbers.KVM_CHECK_EXTENSION, Cap.HLT)
            (12, 1)
            >>> backend.close(fd)
        """
        result, code = self._answer(fd, request, arg)
        if code:
            raise OSError(code, _errno.errorcode.get(code, "error"))
        return result

    def check_many(self, fd: int, request: int, numbers: Sequence[int]) -> CheckResults:
        values: List[int] = []
        errnos: List[int] = []
        for number in numbers:
            result, code = self._answer(fd, request, number)
            values.append(result)
            errnos.append(code)
        return values, errnos

    def ioctl_buffer(self, fd: int, request: int, buffer: bytearray, pointers: Pointers = ()) -> int:
        """One structure ioctl on the system fd, answered from the recorded CPU data with the
        kernel's buffer rules (``E2BIG`` and the needed count when ``buffer`` is too small).

        Example:
            >>> import struct
            >>> backend, numbers = FakeBackend(msrs=[0x10, 0x174]), KvmIoctls.for_machine()
            >>> fd = backend.open("/dev/kvm")
            >>> msr_list = bytearray(struct.pack("=I", 8) + bytes(4 * 8))  # struct kvm_msr_list, room for 8
            >>> backend.ioctl_buffer(fd, numbers.KVM_GET_MSR_INDEX_LIST, msr_list), struct.unpack_from("=3I", msr_list)
            (0, (2, 16, 372))
            >>> backend.close(fd)
        """
        name = self._names.get(request, hex(request))
        result, code = self._gate(fd, name, 0)
        if not code:
            system_fd = fd not in self._vms and fd not in self._vcpus
            result, code = self._structure(name, buffer, tuple(pointers)) if system_fd else (-1, _errno.ENOTTY)
        if code:
            raise OSError(code, _errno.errorcode.get(code, "error"))
        return result

    def _structure(self, name: str, buffer: bytearray, pointers: Tuple[Tuple[int, int], ...]) -> Tuple[int, int]:
        """A system-fd structure ioctl, answered from the recorded CPU data as KVM would."""
        from ._fake_cpu import structure_answer

        return structure_answer(self, name, buffer, pointers)

# What a KVM built for confidential guests answers besides VM_TYPES (x86, Linux 6.18): the
# private-memory capabilities, device attributes, and what VMMs need anyway.
_CONFIDENTIAL_CAPS: Dict[CapLike, int] = {
    Cap.IMMEDIATE_EXIT: 1, Cap.USER_MEMORY: 1, Cap.USER_MEMORY2: 1, Cap.GUEST_MEMFD: 1,
    Cap.MEMORY_ATTRIBUTES: 0x8, Cap.GUEST_MEMFD_FLAGS: 0x3, Cap.EXIT_HYPERCALL: 0x1000,
    Cap.SYS_ATTRIBUTES: 1, Cap.SPLIT_IRQCHIP: 1, Cap.X86_APIC_BUS_CYCLES_NS: 1, Cap.CHECK_EXTENSION_VM: 1,
}  # fmt: skip


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
    cpu: Optional[CpuRecord] = None,
    not_recorded: Sequence[CapLike] = (),
) -> ProbeResult:
    """A :class:`ProbeResult` for a made-up host: every capability not in ``values`` is 0.

    ``cpu`` is its CPU data (see :func:`fake_cpu_record`); ``None``: not recorded.
    ``not_recorded`` names capabilities the made-up recording has no row for (neither 0 nor 1).

    Example:
        >>> fake_probe_result({"IMMEDIATE_EXIT": 1}, kernel="3.10.0").has("IMMEDIATE_EXIT")
        True
    """

    def caps(mapping: Optional[Mapping[CapLike, int]]) -> Dict[Cap, int]:
        return {Cap.lookup(k): int(v) for k, v in (mapping or {}).items()}

    given = caps(values)
    failed = caps(errors)
    absent = frozenset(Cap.lookup(cap) for cap in not_recorded)
    return ProbeResult(
        device=device,
        api_version=api_version,
        values={cap: given.get(cap, 0) for cap in Cap if cap not in failed and cap not in absent},
        arch=arch,
        kernel=kernel,
        backend="fake",
        errors=failed,
        vm_values=None if vm_values is None else {cap: caps(vm_values).get(cap, 0) for cap in Cap},
        vm_created=vm_values is not None,
        source=source,
        synthesized=True,
        cpu=cpu,
        not_recorded=absent,
    )


#: What :func:`fake_kvm` and :func:`host_result` accept as a host.
HostSpec = Union[ProbeResult, str, "_os.PathLike[str]", Values, None]


def host_result(
    host: HostSpec = None, overrides: Optional[Values] = None, /, *, cpu: Optional[CpuRecord] = None, **caps: int
) -> ProbeResult:
    """The :class:`ProbeResult` a host spec names, with capability overrides applied.

    ``host`` is a :class:`ProbeResult`; a preset name (``"linux-3.10"``, see
    :func:`kvmprobe.preset_names`); a snapshot file (a path, or a string with a ``/`` or
    ending in ``.json``); a dict of capability values (every other capability 0, see
    :func:`fake_probe_result`); or ``None`` (every capability 0). ``overrides`` and keyword
    arguments (``IMMEDIATE_EXIT=0``, any spelling ``Cap.lookup`` takes) then set single
    capabilities, on the system fd and, where the host has them, on the VM fd; the result is
    marked ``synthesized`` and its ``source`` lists the overrides. ``cpu`` replaces the host's
    CPU data (a record from :func:`fake_cpu_record`): a host whose guests get avx512f.

    Raises:
        SnapshotError: no such preset, or the snapshot file is unreadable or malformed.
        UnknownCapability: an override names no capability.
        ValueError: an override value is negative.

    Example:
        >>> host = host_result("linux-4.14", IMMEDIATE_EXIT=0)
        >>> host.has("IMMEDIATE_EXIT"), host.has("SPLIT_IRQCHIP"), host.source
        (False, True, 'preset:linux-4.14 (synthesized) with IMMEDIATE_EXIT=0')
    """
    if isinstance(host, ProbeResult):
        base = host
    elif isinstance(host, str) and not _looks_like_path(host):
        from .presets import load_preset

        base = load_preset(host)
    elif isinstance(host, (str, _os.PathLike)):
        from .snapshot import load_snapshot

        base = load_snapshot(host)
    else:
        base = fake_probe_result(host)
    if cpu is not None:
        base = _replace(base, cpu=cpu, source=base.source + " with fake CPU data", synthesized=True)
    changes: Dict[Cap, int] = {}
    for key, number in list((overrides or {}).items()) + list(caps.items()):
        cap = Cap.lookup(key)
        if int(number) < 0:
            raise ValueError(f"{cap.c_name}={number}: a capability value is 0 (unsupported) or more")
        changes[cap] = int(number)
    if not changes:
        return base
    vm_values = None if base.vm_values is None else {**base.vm_values, **changes}
    return _replace(
        base,
        values={**base.values, **changes},
        errors={cap: e for cap, e in base.errors.items() if cap not in changes},
        vm_values=vm_values,
        vm_errors={cap: e for cap, e in base.vm_errors.items() if cap not in changes or vm_values is None},
        source=base.source + " with " + ", ".join(f"{cap.name}={v}" for cap, v in changes.items()),
        synthesized=True,
    )


def _looks_like_path(text: str) -> bool:
    return _os.sep in text or text.endswith(".json") or _os.path.exists(text)


@contextmanager
def fake_kvm(
    host: HostSpec = None, overrides: Optional[Values] = None, /, *, cpu: Optional[CpuRecord] = None, **caps: int
) -> Iterator[ProbeResult]:
    """Make every kvmprobe probe in this process see ``host`` until the block ends.

    ``host``, ``overrides`` and keyword capabilities are as for :func:`host_result`: a
    :class:`ProbeResult`, a preset name, a snapshot file or a dict of capability values, then
    overrides on top (``fake_kvm("linux-3.10", IMMEDIATE_EXIT=1)``). Code under test needs no
    change: ``kvmprobe.has(...)`` and ``kvmprobe.probe()`` answer from the fake, in every
    thread. Blocks nest; the previous state comes back.

    Example:
        >>> import kvmprobe
        >>> with fake_kvm({"IMMEDIATE_EXIT": 0}) as host:
        ...     kvmprobe.has("IMMEDIATE_EXIT"), kvmprobe.probe() is host
        (False, True)
        >>> with fake_kvm("linux-3.10", {"IMMEDIATE_EXIT": 1}):
        ...     kvmprobe.has("IMMEDIATE_EXIT"), kvmprobe.has("SPLIT_IRQCHIP"), kvmprobe.probe().kernel
        (True, False, '3.10.0-synthesized')
    """
    result = host_result(host, overrides, cpu=cpu, **caps)
    token = _probe._push_override(result)
    try:
        yield result
    finally:
        _probe._pop_override(token)


@contextmanager
def default_backend(backend: Backend) -> Iterator[Backend]:
    """Make ``probe()`` without ``backend=`` (the cached default path) ask ``backend`` in this block.

    Unlike :func:`fake_kvm`, which serves a ready :class:`ProbeResult`, this runs the real
    probe code over ``backend`` (a :class:`FakeBackend`, or one that fails chosen calls), so the
    default path's caching, refresh and errors can be tested without /dev/kvm. The cache is
    cleared on entering and on leaving.

    Example:
        >>> import kvmprobe
        >>> fake = FakeBackend({"HLT": 1})
        >>> with default_backend(fake):
        ...     first = kvmprobe.probe()
        ...     first is kvmprobe.probe(), kvmprobe.probe(refresh=True) is first, len(fake.opened)
        (True, False, 2)
    """
    previous = _probe._set_default_backend(backend)
    try:
        yield backend
    finally:
        _probe._set_default_backend(previous)
