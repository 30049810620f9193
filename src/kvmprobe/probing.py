"""The batch probe: one pass over the whole capability table, cached, thread-safe.

Imports ``device``, ``caps``, ``_cap_values``, ``_backend``, ``_arch``, ``errors``, for the types a
result carries ``_host_facts``, ``_cpu_record``, ``_cc_facts`` and ``_guest_report``, and (for a live
probe through a real backend, the KVM module behind the device) ``_host_reader``.
``probe()`` opens the device once, asks ``KVM_GET_API_VERSION`` and ``KVM_CHECK_EXTENSION`` for
every ``Cap`` member, closes the fd and returns an immutable :class:`ProbeResult`. Later calls
return the cached result until ``probe(refresh=True)``; ``has()`` and ``value()`` then cost one dict
lookup.
"""

from __future__ import annotations

import _thread  # the lock threading.RLock is, without importing threading (about 0.5 ms)
import os
from collections.abc import Mapping
from types import MappingProxyType

from ._arch import is_x86
from ._backend import BackendBase
from ._cap_values import CapValues
from .caps import Cap
from .device import KvmDevice, device_path
from .errors import CapabilityNotRecorded, CapabilityQueryFailed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass
    from typing import Any, Callable, Dict, FrozenSet, List, Optional, Tuple, TypeVar

    import weakref

    from ._backend import Backend
    from ._cc_facts import ConfidentialFacts
    from ._cpu_record import CpuRecord
    from ._guest_report import RunReport
    from ._host_facts import HostFacts
    from .caps import CapLike

    _T = TypeVar("_T")
else:
    from ._value import dataclass

__all__ = ["CapValues", "Derivation", "ProbeResult", "has", "probe", "probe_device", "value"]

# The table in its order, and the numbers the batch pass asks: built once, not per probe.
_CAPS: Tuple[Cap, ...] = tuple(Cap)
_NUMBERS: Tuple[int, ...] = tuple(int(cap) for cap in _CAPS)

# Names resolved once are remembered per result, up to this many keys (callers choose them).
_MEMO_LIMIT = 4 * len(_CAPS)

# Keys a dict hit would wrongly answer: True == 1 == 1.0 find KVM_CAP_HLT. Cap.lookup refuses
# them, and so must the one-dict-hit paths (a class check costs about 20 ns).
_NOT_KEYS = frozenset({bool, float, complex})

_NO_ERRORS: Mapping[Cap, int] = MappingProxyType({})
_NONE: FrozenSet[Cap] = frozenset()
_UNAME: List[os.uname_result] = []


def _uname() -> os.uname_result:
    """``os.uname()``, asked once per process (the kernel does not change under a process)."""
    if not _UNAME:
        _UNAME.append(os.uname())
    return _UNAME[0]


def _frozen(mapping: Mapping[Cap, int]) -> Mapping[Cap, int]:
    return MappingProxyType(dict(mapping)) if mapping else _NO_ERRORS


@dataclass(frozen=True)
class Derivation:
    """How a host that no kernel was asked about was worked out from a kernel's source.

    The third kind of host besides recorded (asked of a kernel) and synthesized (made up from
    kvmprobe's table): every answer was read off the code that answers ``KVM_CHECK_EXTENSION``.
    ``sources`` cite that code (``repo@commit file:lines``); ``assumptions`` state the hardware
    and configuration the hardware-dependent answers assume (a real host may differ there).

    Example:
        >>> d = Derivation(("tremb1e/linux-3.10.0-1160.el7@de8b6b6f944c arch/x86/kvm/x86.c:2772-2881",), ("Intel VT-x",))
        >>> d.kind, d.to_dict()["assumptions"]
        ('derived from source', ['Intel VT-x'])
    """

    sources: Tuple[str, ...]
    assumptions: Tuple[str, ...] = ()

    #: The word snapshots and sources use for this kind of host.
    kind = "derived from source"

    def to_dict(self) -> Dict[str, Any]:
        """The snapshot document's ``derivation`` object."""
        return {"kind": self.kind, "sources": list(self.sources), "assumptions": list(self.assumptions)}


_FIELDS = (
    "device", "api_version", "values", "arch", "kernel", "backend", "errors", "vm_values", "vm_errors", "vm_created",
    "source", "host", "confidential", "unknown", "recorded_at", "recorded_by", "synthesized", "derivation", "run",
    "cpu", "not_recorded", "real_backend",
)  # fmt: skip


@dataclass(frozen=True, eq=False, repr=False)
class ProbeResult:
    """What the kernel answered, for every capability of the table, at one moment.

    ``values`` holds the raw ``KVM_CHECK_EXTENSION`` answer on the system fd (0: unsupported;
    many capabilities answer a count or a bit mask), as a read-only :class:`CapValues`. ``host`` carries the host facts of a
    recorded host (``None`` for a live probe: read them with ``kvmprobe.host``), and
    ``confidential`` its recorded :class:`~kvmprobe.confidential.ConfidentialFacts` (``None``: not
    recorded; ``kvmprobe.confidential`` reads them live). ``errors`` holds the errno of each query
    that failed (those have no value). ``vm_values`` is ``None`` unless probed with ``vm=True``
    and the kernel has ``KVM_CAP_CHECK_EXTENSION_VM``; then it holds the VM-fd answers.
    A recorded host (``kvmprobe.load_snapshot``) also carries ``recorded_at`` (ISO 8601 UTC),
    ``recorded_by`` (the kvmprobe version that wrote it), ``synthesized`` (made up from the
    table, not asked of a kernel), ``derivation`` (worked out from a kernel's source, not
    asked of one either: see :class:`Derivation`) and ``unknown``: the capability rows, as
    read, whose names this kvmprobe's table lacks (written by a newer kvmprobe; kept, never
    guessed at), and ``not_recorded``: the capabilities of the table the document has no row
    for (cut out, or written by an older kvmprobe), which answer neither yes nor no. ``origin``
    names which kind of host this is. ``run`` holds the micro-guest checks when they were
    recorded (:func:`kvmprobe.guest.run_checks`; ``None``: not recorded, which is not
    "failed"). ``cpu`` holds KVM's raw CPU answers (CPUID, MSRs, XSAVE, TSC) when probed with
    ``cpu=True`` or recorded; ``None``: not recorded (``kvmprobe.cpu()`` decodes it).
    ``real_backend`` says a real backend (cffi, ctypes) asked this machine's device, so this
    machine's host facts describe the answers (:attr:`kvm_backend` reads its KVM module once).
    The result is immutable (``dataclasses.replace`` makes a changed copy) and compared by
    identity.

    Example:
        >>> from kvmprobe.testing import fake_probe_result
        >>> result = fake_probe_result({Cap.NR_MEMSLOTS: 32764, Cap.HLT: 1})
        >>> result.api_version, result.value("NR_MEMSLOTS"), result.has(Cap.HLT), result.has("IRQCHIP")
        (12, 32764, True, False)
    """

    __slots__ = (*_FIELDS, "_lookup", "_memo", "__weakref__")

    device: str
    api_version: int
    values: Mapping[Cap, int]
    arch: str
    kernel: str
    backend: str
    errors: Mapping[Cap, int]
    vm_values: Optional[Mapping[Cap, int]]
    vm_errors: Mapping[Cap, int]
    vm_created: bool
    source: str
    host: Optional[HostFacts]
    confidential: Optional[ConfidentialFacts]
    unknown: Tuple[Mapping[str, Any], ...]
    recorded_at: Optional[str]
    recorded_by: Optional[str]
    synthesized: bool
    derivation: Optional[Derivation]
    run: Optional[RunReport]
    cpu: Optional[CpuRecord]
    not_recorded: FrozenSet[Cap]
    real_backend: bool
    if TYPE_CHECKING:
        # What has()/value() answer from with one dict hit: the answers by member (a plain int
        # finds its member too) and the names resolved once; made on the first such call.
        _lookup: Optional[Dict[Any, int]]
        # What was worked out once from this result (see _remembered).
        _memo: Optional[Dict[str, Any]]

    def __init__(
        self,
        device: str,
        api_version: int,
        values: Mapping[Cap, int],
        arch: Optional[str] = None,
        kernel: Optional[str] = None,
        backend: str = "",
        errors: Mapping[Cap, int] = _NO_ERRORS,
        vm_values: Optional[Mapping[Cap, int]] = None,
        vm_errors: Mapping[Cap, int] = _NO_ERRORS,
        vm_created: bool = False,
        source: str = "live",
        host: Optional[HostFacts] = None,
        confidential: Optional[ConfidentialFacts] = None,
        unknown: Tuple[Mapping[str, Any], ...] = (),
        recorded_at: Optional[str] = None,
        recorded_by: Optional[str] = None,
        synthesized: bool = False,
        derivation: Optional[Derivation] = None,
        run: Optional[RunReport] = None,
        cpu: Optional[CpuRecord] = None,
        not_recorded: FrozenSet[Cap] = _NONE,
        real_backend: bool = False,
    ) -> None:
        # One copy of each mapping, in a form nobody can change (none when given one already).
        setter = object.__setattr__
        setter(self, "device", device)
        setter(self, "api_version", api_version)
        setter(self, "values", values if values.__class__ is CapValues else CapValues(values))
        setter(self, "arch", arch if arch is not None else _uname().machine)
        setter(self, "kernel", kernel if kernel is not None else _uname().release)
        setter(self, "backend", backend)
        setter(self, "errors", errors if errors is _NO_ERRORS else _frozen(errors))
        setter(self, "vm_values", vm_values if vm_values is None or vm_values.__class__ is CapValues else CapValues(vm_values))
        setter(self, "vm_errors", vm_errors if vm_errors is _NO_ERRORS else _frozen(vm_errors))
        setter(self, "vm_created", vm_created)
        setter(self, "source", source)
        setter(self, "host", host)
        setter(self, "confidential", confidential)
        setter(self, "unknown", unknown)
        setter(self, "recorded_at", recorded_at)
        setter(self, "recorded_by", recorded_by)
        setter(self, "synthesized", synthesized)
        setter(self, "derivation", derivation)
        setter(self, "run", run)
        setter(self, "cpu", cpu)
        setter(self, "not_recorded", not_recorded if not_recorded.__class__ is frozenset else frozenset(not_recorded))
        setter(self, "real_backend", real_backend)
        setter(self, "_lookup", None)
        setter(self, "_memo", None)

    def _remembered(self, key: str, make: Callable[[], _T]) -> _T:
        """``make()``, worked out once per result: what a live result's host said at its moment
        (e.g. its KVM backend, which each of seven readiness checks asks) is read once."""
        memo = self._memo
        if memo is None:
            memo = {}
            object.__setattr__(self, "_memo", memo)
        if key not in memo:
            memo[key] = make()
        found: _T = memo[key]
        return found

    @property
    def kvm_backend(self) -> Optional[str]:
        """The KVM module behind the device (``kvm_intel``, ``kvm_amd``, ``kvm_pvm``, ``built-in``,
        as :attr:`kvmprobe.host.HostFacts.kvm_backend`): from the host facts the answers were
        recorded with, else, when a real backend probed this machine (``real_backend``), this
        machine's, read once per result on first use (a directory listing of ``/sys/module``,
        kept off the probe itself, which is timed against C); ``None``: not known (a fake
        backend's or a made-up host's answers say nothing of this machine's module).

        Example:
            >>> from kvmprobe.presets import load_preset
            >>> from kvmprobe.testing import fake_probe_result
            >>> load_preset("pvm-6.18").kvm_backend, fake_probe_result({}).kvm_backend
            ('kvm_pvm', None)
        """
        if self.host is not None:
            return self.host.kvm_backend
        if not self.real_backend:
            return None
        from ._host_reader import kvm_backend_of  # once per result, only when a verdict asks

        found: Optional[str] = self._remembered("kvm_backend", kvm_backend_of)
        return found

    @property
    def origin(self) -> str:
        """``live``, ``recorded``, ``synthesized`` or ``derived from source``.

        Example:
            >>> from kvmprobe.presets import load_preset
            >>> load_preset("pvm-6.18").origin, load_preset("linux-3.10").origin, load_preset("rhel-7.9").origin
            ('recorded', 'synthesized', 'derived from source')
        """
        if self.derivation is not None:
            return Derivation.kind
        if self.synthesized:
            return "synthesized"
        return "live" if self.source == "live" else "recorded"

    def __repr__(self) -> str:
        """One line: where the answers came from and how many there are (the values are in ``values``).

        Example:
            >>> from kvmprobe.testing import fake_probe_result
            >>> fake_probe_result({Cap.HLT: 1}, kernel="6.18.0")
            ProbeResult(device='/dev/kvm', source='fake', kernel='6.18.0', arch='x86_64', api_version=12, supported=1 of 244)
        """
        extra = "".join(
            f", {name}={count}"
            for name, count in (("errors", len(self.errors)), ("not_recorded", len(self.not_recorded)),
                                ("unknown", len(self.unknown)))  # fmt: skip
            if count
        )
        vm = ", vm_values" if self.vm_values is not None else ""
        return (
            f"ProbeResult(device={self.device!r}, source={self.source!r}, kernel={self.kernel!r}, arch={self.arch!r}, "
            f"api_version={self.api_version}, supported={len(self.supported())} of {len(_CAPS)}{extra}{vm})"
        )

    def value(self, cap: CapLike) -> int:
        """The raw system-fd answer for ``cap`` (0: unsupported).

        Raises:
            UnknownCapability: ``cap`` names no capability.
            CapabilityQueryFailed: the kernel's answer to this query was an error.
            CapabilityNotRecorded: a recorded host has no row for ``cap``.

        Example:
            >>> from kvmprobe.testing import fake_probe_result
            >>> fake_probe_result({Cap.X2APIC_API: 15}).value("X2ApicApi")
            15
        """
        lookup = self._lookup
        if lookup is None:
            lookup = self._index()
        if cap.__class__ not in _NOT_KEYS:
            try:
                return lookup[cap]
            except (KeyError, TypeError):
                pass
        member = Cap.lookup(cap)
        if member in self.errors:
            raise CapabilityQueryFailed(member.c_name, self.errors[member])
        if member in self.not_recorded:
            raise CapabilityNotRecorded(member.c_name, self.source)
        found = lookup.get(member, 0)
        if isinstance(cap, str) and len(lookup) < _MEMO_LIMIT:
            lookup[cap] = found  # the next has("IMMEDIATE_EXIT") is one dict hit
        return found

    def _index(self) -> Dict[Any, int]:
        """The one-dict-hit table of :meth:`value`, made on its first call (a result only held,
        as a fleet holds thousands, never pays for it)."""
        lookup: Dict[Any, int] = dict(self.values.items())
        object.__setattr__(self, "_lookup", lookup)
        return lookup

    def has(self, cap: CapLike) -> bool:
        """Whether ``cap`` answered a positive value on the system fd.

        Raises:
            UnknownCapability, CapabilityQueryFailed, CapabilityNotRecorded: as :meth:`value`.

        Example:
            >>> from kvmprobe.testing import fake_probe_result
            >>> fake_probe_result({Cap.IMMEDIATE_EXIT: 1}).has("KVM_CAP_IMMEDIATE_EXIT")
            True
        """
        return self.value(cap) > 0

    def vm_value(self, cap: CapLike) -> Optional[int]:
        """The VM-fd answer for ``cap``, or ``None`` when the VM fd was not asked.

        Example:
            >>> from kvmprobe.testing import fake_probe_result
            >>> fake_probe_result({Cap.X2APIC_API: 15}, vm_values={Cap.X2APIC_API: 11}).vm_value("X2APIC_API")
            11
        """
        member = Cap.lookup(cap)
        if self.vm_values is None:
            return None
        if member in self.vm_errors:
            raise CapabilityQueryFailed(member.c_name + " (VM fd)", self.vm_errors[member])
        return self.vm_values.get(member)

    def supported(self) -> List[Cap]:
        """The capabilities that answered a positive value, in table order.

        Example:
            >>> from kvmprobe.testing import fake_probe_result
            >>> [c.name for c in fake_probe_result({Cap.HLT: 1, Cap.IRQCHIP: 1}).supported()]
            ['IRQCHIP', 'HLT']
        """
        return [cap for cap, answer in zip(_CAPS, self.values._row) if answer is not None and answer > 0]  # type: ignore[attr-defined]

    def applies(self, cap: CapLike) -> bool:
        """Whether cap.rs offers ``cap`` on this result's architecture (its arch gating).

        Example:
            >>> from kvmprobe.testing import fake_probe_result
            >>> fake_probe_result({}, arch="aarch64").applies("XSAVE")
            False
        """
        return Cap.lookup(cap).applies_to(self.arch)


def _run_probe(path: str, backend: Optional[Backend], vm: bool, cpu: bool = False) -> ProbeResult:
    with KvmDevice.open(path, backend=backend) as kvm:  # closed on leaving the block
        return probe_device(kvm, vm=vm, cpu=cpu)


def probe_device(kvm: KvmDevice, *, vm: bool = False, cpu: bool = False) -> ProbeResult:
    """The batch pass of :func:`probe` over a device already open (the one batch probe: the
    doctor asks it on its own open of the device). Nothing is cached; the device stays open.

    Args:
        kvm: an open :class:`~kvmprobe.device.KvmDevice` (its caller closes it).
        vm: also create a VM (closed before returning) and ask on its fd, as ``probe(vm=True)``.
        cpu: also ask KVM's CPU questions on x86, as ``probe(cpu=True)``.

    Raises:
        KvmUnavailable: creating the VM failed (``vm=True``).

    Example:
        >>> from kvmprobe.testing import FakeBackend
        >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend({Cap.HLT: 1})) as kvm:
        ...     result = probe_device(kvm)
        >>> result.has("HLT"), result.api_version, result.backend
        (True, 12, 'fake')
    """
    vm_values: Optional[CapValues] = None
    vm_errors: Mapping[Cap, int] = _NO_ERRORS
    record: Optional[CpuRecord] = None
    api = kvm.version  # asked by KvmDevice.open, which refuses anything but 12
    values, errors = _split(kvm.check_many(_NUMBERS))
    cpu = cpu and is_x86(_uname().machine)
    if cpu:
        from ._cpu_record import read_kvm_cpu  # the CPU tables load only when asked
    if vm:
        with kvm.create_vm() as vm_fd:  # the VM fd is closed on leaving the block
            if values.get(Cap.CHECK_EXTENSION_VM, 0) > 0:
                vm_values, vm_errors = _split(vm_fd.check_many(_NUMBERS))
            if cpu:  # the TSC rate from a scratch vCPU of this VM: no second VM
                record = read_kvm_cpu(kvm, vm=vm_fd)
    elif cpu:
        record = read_kvm_cpu(kvm)
    return ProbeResult(
        device=kvm.path,
        api_version=api,
        values=values,
        backend=kvm.backend.name,
        errors=errors,
        vm_values=vm_values,
        vm_errors=vm_errors,
        vm_created=vm,
        cpu=record,
        real_backend=_is_real(kvm.backend),
    )


def _is_real(backend: Any) -> bool:
    """Whether ``backend`` is a real one (cffi, ctypes): its answers are this machine's kernel's."""
    return isinstance(backend, BackendBase)


def _split(answers: Tuple[List[int], List[int]]) -> Tuple[CapValues, Mapping[Cap, int]]:
    """Values of the queries that worked, errnos of those that failed (by table order)."""
    raw, errnos = answers
    if errnos.count(0) == len(errnos):  # none failed (a C-speed count: any() took 1 µs of a 45 µs probe)
        return CapValues._of(tuple(raw)), _NO_ERRORS
    values = CapValues._of(tuple(None if code else answer for answer, code in zip(raw, errnos)))
    return values, _frozen({cap: code for cap, code in zip(_CAPS, errnos) if code})


class _Cache:
    """The probe cache. One lock guards filling it; reads of ``current`` take no lock.

    The default backend's results are kept per device path (a handful at most). A result probed
    with an explicit backend is kept only while that backend lives, by the backend's identity
    (never its ``==``/hash: two fakes may compare equal and answer differently), so thousands of
    short-lived fakes cost nothing once gone, and a backend that cannot be hashed or weakly
    referenced simply is not cached.
    """

    def __init__(self) -> None:
        self.lock = _thread.RLock()
        self.by_device: Dict[str, ProbeResult] = {}
        self.by_backend: Dict[int, Tuple["weakref.ref[Backend]", Dict[str, ProbeResult]]] = {}
        self.current: Optional[ProbeResult] = None
        self.overrides: List[ProbeResult] = []
        self.default_backend: Optional[Backend] = None  # kvmprobe.testing.default_backend() sets it
        self.probes = 0  # batch passes run by this process: tests count them

    def results_for(self, backend: Optional[Backend], create: bool) -> Optional[Dict[str, ProbeResult]]:
        """The per-device results of ``backend`` (``None``: the default), if it can be cached."""
        if backend is None:
            return self.by_device
        entry = self.by_backend.get(id(backend))
        if entry is not None and entry[0]() is backend:
            return entry[1]
        if not create:
            return None
        key = id(backend)
        try:
            import weakref  # only for a result probed with an explicit backend

            ref = weakref.ref(backend, lambda _, key=key: self.by_backend.pop(key, None))  # type: ignore[misc]
        except TypeError:  # no weak references to this object: do not cache it
            return None
        results: Dict[str, ProbeResult] = {}
        self.by_backend[key] = (ref, results)
        return results

    def set_current(self, result: Optional[ProbeResult]) -> None:
        """Make ``result`` what has()/value() answer from (``None``: nothing yet), and hand them
        its lookup table, so that a cached query is one global read and one dict hit."""
        global _answers
        self.current = result
        _answers = None if result is None else result._lookup if result._lookup is not None else result._index()

    def after_fork(self) -> None:
        # A child forked while another thread held the lock would deadlock on it; the cached
        # results stay valid (same host, same kernel).
        self.lock = _thread.RLock()


# The lookup table of _cache.current (see _Cache.set_current), read by has() and value().
_answers: Optional[Dict[Any, int]] = None
_cache = _Cache()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_cache.after_fork)


def probe(
    path: Optional[str] = None,
    *,
    backend: Optional[Backend] = None,
    vm: bool = False,
    refresh: bool = False,
    cpu: bool = False,
) -> ProbeResult:
    """Ask the kernel about every capability in one pass, or return the cached answer.

    The device is opened once (``O_RDWR | O_CLOEXEC``) and closed before returning. With
    ``vm=True`` a VM is created (``KVM_CREATE_VM`` type 0), every capability is asked again on
    the VM fd when ``KVM_CAP_CHECK_EXTENSION_VM`` allows it, and the VM fd is closed.
    Concurrent first calls run one probe. The default device is resolved when the cache
    is filled; ``refresh=True`` probes again (and re-reads ``KVMPROBE_DEVICE``). A result
    probed with an explicit ``backend`` is cached only as long as that backend object lives.

    Args:
        path: the device (default: ``$KVMPROBE_DEVICE`` or ``/dev/kvm``).
        backend: an ioctl backend (default: cffi when built, else ctypes).
        vm: also create a VM and ask on its fd.
        refresh: ignore the cache.
        cpu: also ask KVM's CPU questions on x86 (supported and emulated CPUID, MSR lists,
            feature MSRs, XSAVE components; with ``vm``, a scratch vCPU's TSC rate) into
            ``ProbeResult.cpu``.

    Raises:
        KvmUnavailable: the device cannot be used (with the reason and the fix).

    Example:
        >>> from kvmprobe.testing import FakeBackend
        >>> result = probe("/dev/kvm", backend=FakeBackend({Cap.IMMEDIATE_EXIT: 1}), refresh=True)
        >>> result.api_version, result.has("IMMEDIATE_EXIT")
        (12, True)
    """
    cache = _cache
    if not refresh and path is None and backend is None:
        current = cache.current
        if current is not None and (not vm or current.vm_created) and (not cpu or _has_cpu(current)):
            return current
    with cache.lock:
        if cache.overrides:
            return cache.overrides[-1]
        where = device_path(path)
        results = cache.results_for(backend, create=True)
        cached = results.get(where) if results is not None else None
        if cached is None or refresh or (vm and not cached.vm_created) or (cpu and not _has_cpu(cached)):
            cached = _run_probe(where, backend if backend is not None else cache.default_backend, vm, cpu)
            cache.probes += 1
            if results is not None:
                results[where] = cached
        if path is None and backend is None:
            cache.set_current(cached)
        return cached


def _has_cpu(result: ProbeResult) -> bool:
    """Whether ``result`` answers CPU questions already (or never will: not x86)."""
    return result.cpu is not None or not is_x86(result.arch)


def has(cap: CapLike) -> bool:
    """Whether the host's KVM supports ``cap`` (the cached probe; probes on first use).

    Raises:
        UnknownCapability: ``cap`` names no capability.
        KvmUnavailable: the first probe could not reach KVM.
        CapabilityQueryFailed: the kernel's answer for ``cap`` was an error.

    Example:
        >>> from kvmprobe.testing import fake_kvm
        >>> with fake_kvm({Cap.IMMEDIATE_EXIT: 1}):
        ...     has("IMMEDIATE_EXIT"), has("ImmediateExit"), has(136), has("XEN_HVM")
        (True, True, True, False)
    """
    if cap.__class__ not in _NOT_KEYS:
        try:
            return _answers[cap] > 0  # type: ignore[index]
        except (KeyError, TypeError):  # TypeError: nothing probed yet (None), or a key that cannot be one
            pass
    current = _cache.current
    return (current if current is not None else probe()).has(cap)


def value(cap: CapLike) -> int:
    """The raw ``KVM_CHECK_EXTENSION`` answer for ``cap`` (cached probe), e.g. a slot count.

    Raises:
        UnknownCapability, KvmUnavailable, CapabilityQueryFailed: as :func:`has`.

    Example:
        >>> from kvmprobe.testing import fake_kvm
        >>> with fake_kvm({Cap.NR_MEMSLOTS: 32764}):
        ...     value("NR_MEMSLOTS")
        32764
    """
    if cap.__class__ not in _NOT_KEYS:
        try:
            return _answers[cap]  # type: ignore[index]
        except (KeyError, TypeError):  # TypeError: nothing probed yet (None), or a key that cannot be one
            pass
    current = _cache.current
    return (current if current is not None else probe()).value(cap)


def _push_override(result: ProbeResult) -> Tuple[Optional[ProbeResult], int]:
    """Make every probe()/has()/value() in this process see ``result`` (for kvmprobe.testing)."""
    with _cache.lock:
        token = (_cache.current, len(_cache.overrides))
        _cache.overrides.append(result)
        _cache.set_current(result)
        return token


def _pop_override(token: Tuple[Optional[ProbeResult], int]) -> None:
    """Undo :func:`_push_override`."""
    previous, depth = token
    with _cache.lock:
        del _cache.overrides[depth:]
        _cache.set_current(_cache.overrides[-1] if _cache.overrides else previous)


def _clear_cache() -> None:
    """Forget every cached result (for kvmprobe.testing and the CLI's --refresh)."""
    with _cache.lock:
        _cache.by_device.clear()
        _cache.by_backend.clear()
        _cache.set_current(_cache.overrides[-1] if _cache.overrides else None)


def _set_default_backend(backend: Optional[Backend]) -> Optional[Backend]:
    """Make the default path (``probe()`` without ``backend=``) use ``backend``; return the old one.

    For :func:`kvmprobe.testing.default_backend`: the cache is cleared both ways, so no result of
    one backend is ever served for the other.
    """
    with _cache.lock:
        previous, _cache.default_backend = _cache.default_backend, backend
        _cache.by_device.clear()
        _cache.set_current(_cache.overrides[-1] if _cache.overrides else None)
        return previous
