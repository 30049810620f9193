"""Fakes for testing code that uses kvmprobe on machines without KVM (public; no pytest import).

Imports the public API and ``_backend``. ``FakeBackend`` answers ioctls from a dict, as a
kernel would (it can also fail chosen calls with chosen errno values); ``fake_probe_result``
builds a :class:`~kvmprobe.ProbeResult`; ``fake_kvm`` makes every ``kvmprobe.probe()``,
``has()`` and ``value()`` in the process see a given host until the ``with`` block ends.
"""

from __future__ import annotations

import errno as _errno
import itertools
import os as _os
import threading
from contextlib import contextmanager
from dataclasses import dataclass as _dataclass, field as _field, replace as _replace
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

from . import probing as _probe
from ._backend import Backend, CheckResults, Pointers
from ._cpu_record import CpuRecord
from ._fake_cpu import fake_cpu_record
from ._ioctl import KVM_API_VERSION, KvmIoctls
from .caps import Cap, CapLike
from .host import NODES_FILE as _NODES_FILE, DeviceNode as _DeviceNode
from .probing import ProbeResult

__all__ = ["CpuRecord", "FakeBackend", "FakeHost", "HostSpec", "default_backend", "fake_cpu_record", "fake_kvm",
           "fake_probe_result", "host_result"]  # fmt: skip

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
) -> ProbeResult:
    """A :class:`ProbeResult` for a made-up host: every capability not in ``values`` is 0.

    ``cpu`` is its CPU data (see :func:`fake_cpu_record`); ``None``: not recorded.

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
        synthesized=True,
        cpu=cpu,
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


# --- FakeHost: a miniature /proc, /sys, /dev and /etc for kvmprobe.host ----------------------

#: The gid RHEL and Fedora give the ``kvm`` group (Debian/Ubuntu pick a dynamic one).
KVM_GID = 36


def _char(major: int, minor: int, mode: int = 0o660, uid: int = 0, gid: int = KVM_GID) -> _DeviceNode:
    return _DeviceNode("char", major, minor, mode, uid, gid)


def _standard_nodes(kvm: Optional[_DeviceNode], *, vhost: bool = True, tun: bool = True) -> Dict[str, Optional[_DeviceNode]]:
    # Device numbers from a mainline kernel: misc 10:232 kvm, 10:238 vhost-net, 10:241
    # vhost-vsock, 10:200 tun (include/linux/miscdevice.h). Modes as systemd's udev rules set
    # them (rules.d/50-udev-default.rules.in): kvm, vhost-net and vhost-vsock to group kvm with
    # DEV_KVM_MODE (0660 here), tun 0666.
    return {
        "/dev/kvm": kvm,
        "/dev/vhost-net": _char(10, 238) if vhost else None,
        "/dev/vhost-vsock": _char(10, 241) if vhost else None,
        "/dev/net/tun": _char(10, 200, 0o666, 0, 0) if tun else None,
    }


@_dataclass
class FakeHost:
    """A made-up host, written as a directory tree that :func:`kvmprobe.read_host_facts` reads.

    :meth:`write` lays out ``proc/`` (``sys/kernel/{ostype,osrelease,arch}``, ``cpuinfo``,
    ``self/status``, ``1/cgroup``, ``modules``), ``sys/module/<module>/parameters/*``,
    ``sys/devices/virtual/misc/kvm/dev``, ``etc/passwd``, ``etc/group``, a ``/.dockerenv``
    for a container, ``dev/cpu/0/msr`` when ``msr`` is given, and the nodes of ``nodes`` in
    ``kvmprobe-nodes.json`` (device nodes cannot be made without root; the reader reads that
    file only under a root other than ``/``), with the access ACL of ``acls`` (path to the
    ``system.posix_acl_access`` bytes) for those that have one. Presets model the hosts of the doctor tests;
    tweak one with :func:`dataclasses.replace`.

    Example:
        >>> import tempfile, kvmprobe
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     facts = kvmprobe.read_host_facts(FakeHost.amd_nested0().write(tmp))
        >>> facts.cpu_vendor, facts.kvm_backend, facts.nested_enabled, facts.kvm_node.owner_text
        ('AuthenticAMD', 'kvm_amd', False, 'root:kvm')
    """

    kernel_release: str = "6.8.0-45-generic"
    machine: str = "x86_64"
    system: str = "Linux"
    cpu_vendor: Optional[str] = "GenuineIntel"
    cpu_flags: Tuple[str, ...] = ("fpu", "vme", "msr", "vmx", "ept", "vpid", "lm")
    modules: Mapping[str, Mapping[str, str]] = _field(
        default_factory=lambda: {"kvm": {"halt_poll_ns": "200000"}, "kvm_intel": {"nested": "Y", "ept": "Y"}}
    )
    proc_modules: bool = True
    kvm_misc_dev: Optional[str] = "10:232"
    nodes: Mapping[str, Optional[_DeviceNode]] = _field(default_factory=lambda: _standard_nodes(_char(10, 232)))
    uid: int = 1000
    gid: int = 1000
    groups: Tuple[int, ...] = (1000, KVM_GID)
    users: Mapping[str, int] = _field(default_factory=lambda: {"root": 0, "alice": 1000, "nobody": 65534})
    group_db: Tuple[Tuple[str, int, Tuple[str, ...]], ...] = (
        ("root", 0, ()),
        ("kvm", KVM_GID, ("alice",)),
        ("alice", 1000, ()),
        ("nogroup", 65534, ()),
    )
    container: Optional[str] = None
    msr: Optional[Tuple[int, int]] = None
    cpuid: Mapping[int, Tuple[int, int, int, int]] = _field(default_factory=dict)
    cmdline: Optional[str] = None
    misc_capacity: Optional[Mapping[str, int]] = None
    memlock: Optional[Tuple[int, int]] = None
    cap_eff: Optional[int] = None
    kernel_log: Optional[Tuple[str, ...]] = None
    acls: Mapping[str, bytes] = _field(default_factory=dict)

    def write(self, root: str) -> str:
        """Write the tree under ``root`` (an existing, preferably empty directory); return ``root``."""
        import json
        import os

        def put(relative: str, text: str) -> None:
            path = os.path.join(root, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)

        put("proc/sys/kernel/ostype", self.system + "\n")
        put("proc/sys/kernel/osrelease", self.kernel_release + "\n")
        put("proc/sys/kernel/arch", self.machine + "\n")
        cpu = "".join(
            f"processor\t: {n}\n"
            + (f"vendor_id\t: {self.cpu_vendor}\n" if self.cpu_vendor else "")
            + ("flags" if self.machine in ("x86_64", "i686") else "Features")
            + f"\t\t: {' '.join(self.cpu_flags)}\n\n"
            for n in range(2)
        )
        put("proc/cpuinfo", cpu)
        groups = " ".join(str(g) for g in self.groups)
        caps = f"CapEff:\t{self.cap_eff:016x}\n" if self.cap_eff is not None else ""
        put("proc/self/status", f"Name:\tpython3\nUid:\t{self.uid}\t{self.uid}\t{self.uid}\t{self.uid}\n"
            f"Gid:\t{self.gid}\t{self.gid}\t{self.gid}\t{self.gid}\nGroups:\t{groups} \n{caps}")  # fmt: skip
        put("proc/1/cgroup", "0::/\n" if self.container != "kubernetes" else "0::/kubepods/burstable/pod1\n")
        if self.proc_modules:
            put("proc/modules", "".join(f"{name} 1 0 - Live 0x0\n" for name in self.modules))
        os.makedirs(os.path.join(root, "sys/module"), exist_ok=True)
        for name, params in self.modules.items():
            os.makedirs(os.path.join(root, f"sys/module/{name}/parameters"), exist_ok=True)
            for param, value in params.items():
                put(f"sys/module/{name}/parameters/{param}", value + "\n")
        if self.kvm_misc_dev is not None:
            put("sys/devices/virtual/misc/kvm/dev", self.kvm_misc_dev + "\n")
        put("etc/passwd", "".join(f"{name}:x:{uid}:{uid}::/home/{name}:/bin/sh\n" for name, uid in self.users.items()))
        put("etc/group", "".join(f"{name}:x:{gid}:{','.join(members)}\n" for name, gid, members in self.group_db))
        nodes = {path: node.to_dict() for path, node in self.nodes.items() if node is not None}
        for path, raw in self.acls.items():  # the system.posix_acl_access bytes of a node, as hex
            nodes[path]["acl"] = raw.hex()
        put(_NODES_FILE, json.dumps(nodes, indent=1, sort_keys=True) + "\n")
        os.makedirs(os.path.join(root, "dev"), exist_ok=True)
        if self.container == "docker":
            put(".dockerenv", "")
        elif self.container == "podman":
            put("run/.containerenv", "")
        self._write_confidential(root, put)
        if self.msr is not None:
            offset, msr_value = self.msr
            path = os.path.join(root, "dev/cpu/0/msr")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.seek(offset)
                handle.write(msr_value.to_bytes(8, "little"))
        return root

    def _write_confidential(self, root: str, put: Callable[[str, str], None]) -> None:
        """The confidential-VM layers' files: CPUID through the cpuid driver (a sparse file, each
        leaf's 16 bytes at offset ``leaf``), the command line, misc.capacity, the memlock limit
        and the kernel log (``dev/kmsg`` records, ``prio,seq,usec,flags;text``)."""
        import os

        if self.cpuid:
            path = os.path.join(root, "dev/cpu/0/cpuid")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                for leaf, registers in sorted(self.cpuid.items()):
                    handle.seek(leaf)
                    handle.write(b"".join(r.to_bytes(4, "little") for r in registers))
        if self.cmdline is not None:
            put("proc/cmdline", self.cmdline + "\n")
        if self.misc_capacity is not None:
            put("sys/fs/cgroup/misc.capacity", "".join(f"{k} {v}\n" for k, v in self.misc_capacity.items()))
        if self.memlock is not None:
            soft, hard = ("unlimited" if n < 0 else str(n) for n in self.memlock)
            put("proc/self/limits", f"Limit                     Soft Limit           Hard Limit           Units\n"
                f"Max locked memory         {soft:<20} {hard:<20} bytes\n")  # fmt: skip
        if self.kernel_log is not None:
            put("dev/kmsg", "".join(f"6,{n},{n * 1000},-;{line}\n" for n, line in enumerate(self.kernel_log)))

    @staticmethod
    def char(major: int, minor: int, mode: int = 0o660, uid: int = 0, gid: int = KVM_GID) -> _DeviceNode:
        """A character-device node description (default: 0660 root:kvm).

        Example:
            >>> FakeHost.char(10, 232).mode_text
            'crw-rw----'
        """
        return _char(major, minor, mode, uid, gid)

    def with_node(self, path: str, node: Optional[_DeviceNode]) -> FakeHost:
        """A copy with ``path`` described as ``node`` (``None``: absent).

        Example:
            >>> FakeHost().with_node("/dev/kvm", None).nodes["/dev/kvm"] is None
            True
        """
        return _replace(self, nodes={**self.nodes, path: node})

    @classmethod
    def centos7(cls) -> FakeHost:
        """The CentOS 7 host of DEVELOPERS.md: bare-metal Intel, kernel 3.10, kvm_intel nested=N,
        ``/dev/kvm`` 0660 root:kvm with the user in ``kvm``; no vhost-vsock (Linux 4.8 added it).

        Example:
            >>> FakeHost.centos7().kernel_release
            '3.10.0-1160.el7.x86_64'
        """
        nodes = _standard_nodes(_char(10, 232))
        nodes["/dev/vhost-vsock"] = None
        return cls(
            kernel_release="3.10.0-1160.el7.x86_64",
            modules={"kvm": {"halt_poll_ns": "400000"}, "kvm_intel": {"nested": "N", "ept": "Y"}},
            nodes=nodes,
        )

    @classmethod
    def no_kvm_module(cls) -> FakeHost:
        """Bare-metal Intel with VT-x, but no KVM module loaded: no ``/dev/kvm``, nothing registered.

        Example:
            >>> FakeHost.no_kvm_module().modules
            {}
        """
        return cls(modules={}, kvm_misc_dev=None, nodes=_standard_nodes(None, vhost=False))

    @classmethod
    def outside_kvm_group(cls) -> FakeHost:
        """Ubuntu-like host: ``/dev/kvm`` 0660 root:kvm, and the user (bob) is not in ``kvm``.

        Example:
            >>> FakeHost.outside_kvm_group().groups
            (1001,)
        """
        return cls(
            uid=1001,
            gid=1001,
            groups=(1001,),
            users={"root": 0, "alice": 1000, "bob": 1001, "nobody": 65534},
            group_db=(("root", 0, ()), ("kvm", KVM_GID, ("alice",)), ("bob", 1001, ()), ("nogroup", 65534, ())),
        )

    @classmethod
    def amd_nested0(cls) -> FakeHost:
        """Bare-metal AMD: kvm_amd with ``nested`` = 0 (kvm_amd prints an int, not Y/N).

        Example:
            >>> FakeHost.amd_nested0().modules["kvm_amd"]["nested"]
            '0'
        """
        return cls(
            cpu_vendor="AuthenticAMD",
            cpu_flags=("fpu", "msr", "svm", "npt", "lm"),
            modules={"kvm": {"halt_poll_ns": "200000"}, "kvm_amd": {"nested": "0", "npt": "1"}},
        )

    @classmethod
    def pvm(cls) -> FakeHost:
        """A guest like the machine kvmprobe is developed on: kernel 6.18, the ``hypervisor``
        flag and no vmx/svm, KVM from ``kvm_pvm``, no ``/proc/modules``, ``/dev/kvm`` 0600
        root:root, no vhost nodes, root in a docker container, and no ``kvm`` group.

        Example:
            >>> FakeHost.pvm().modules["kvm_pvm"]["pvm_native"]
            'Y'
        """
        return cls(
            kernel_release="6.18.44-fc-v769",
            cpu_flags=("fpu", "msr", "hypervisor", "lm"),
            modules={"kvm": {"enable_virt_at_load": "Y", "halt_poll_ns": "200000"},
                     "kvm_pvm": {"pvm_native": "Y", "force": "N"}},  # fmt: skip
            proc_modules=False,
            nodes=_standard_nodes(_char(10, 232, 0o600, 0, 0), vhost=False, tun=True),
            uid=0,
            gid=0,
            groups=(),
            users={"root": 0, "nobody": 65534},
            group_db=(("root", 0, ()), ("nogroup", 65534, ())),
            container="docker",
        )

    @classmethod
    def container_no_kvm(cls) -> FakeHost:
        """A docker container on a KVM host, started without ``--device /dev/kvm``: the host's
        modules and misc registration show through ``/sys``, the node does not exist.

        Example:
            >>> FakeHost.container_no_kvm().nodes["/dev/kvm"] is None
            True
        """
        return cls(
            nodes=_standard_nodes(None, vhost=False, tun=False),
            uid=0,
            gid=0,
            groups=(),
            container="docker",
        )

    @classmethod
    def amd_snp(cls) -> FakeHost:
        """A made-up bare-metal AMD EPYC host ready for SEV, SEV-ES and SEV-SNP guests: Linux 6.18,
        the sev/sev_es/sev_snp flags, CPUID 0x8000001F with SEV, SEV-ES and SNP (C-bit 51, 1006
        ASIDs, the first 99 for SEV-ES/SNP), kvm_amd with sev/sev_es/sev_snp=Y, ``/dev/sev`` 0660
        root:sev with the user (alice) in ``sev``, misc.capacity ``sev 907``/``sev_es 99``, an 8 MiB
        memlock limit, and the SNP firmware's API line in the kernel log. Pair it with
        :meth:`FakeBackend.amd_snp` for KVM's answers.

        Example:
            >>> FakeHost.amd_snp().modules["kvm_amd"]["sev_snp"]
            'Y'
        """
        sev_gid = 970
        return cls(
            kernel_release="6.18.0",
            cpu_vendor="AuthenticAMD",
            cpu_flags=("fpu", "msr", "svm", "npt", "lm", "sme", "sev", "sev_es", "sev_snp"),
            modules={"kvm": {"halt_poll_ns": "200000"},
                     "kvm_amd": {"nested": "1", "npt": "1", "sev": "Y", "sev_es": "Y", "sev_snp": "Y"}},  # fmt: skip
            nodes={**_standard_nodes(_char(10, 232)), "/dev/sev": _char(10, 122, 0o660, 0, sev_gid)},
            groups=(1000, KVM_GID, sev_gid),
            group_db=(("root", 0, ()), ("kvm", KVM_GID, ("alice",)), ("sev", sev_gid, ("alice",)), ("alice", 1000, ())),
            # EAX: SME, SEV, VM_PAGE_FLUSH, SEV_ES, SEV_SNP, VMPL, V_TSC_AUX, SME_COHERENT, DEBUG_SWAP;
            # EBX: C-bit 51, 1 address bit lost, 4 VMPLs; ECX: 1006 ASIDs; EDX: SEV-only from ASID 100.
            cpuid={0x80000000: (0x80000028, 0, 0, 0), 0x8000001F: (0x463F, 0x4073, 1006, 100)},
            cmdline="BOOT_IMAGE=/vmlinuz-6.18.0 root=/dev/sda1 ro",
            misc_capacity={"sev": 907, "sev_es": 99},
            memlock=(8 << 20, 8 << 20),
            cap_eff=0,
            kernel_log=("ccp 0000:22:00.1: sev enabled", "ccp 0000:22:00.1: SEV-SNP API:1.55 build:21"),
        )

    @classmethod
    def amd_sev_firmware_off(cls) -> FakeHost:
        """A made-up AMD host like :meth:`amd_snp` whose SEV firmware did not initialize SNP:
        kvm_amd still says ``sev_snp=Y`` while KVM offers no SNP VM type (as on Linux 6.11-6.15,
        where the parameter does not fold in the firmware, or on a kernel that drops the type
        after the parameters are set), and no SNP API line in the kernel log. Pair it with
        :meth:`FakeBackend.amd_sev_firmware_off`.

        Example:
            >>> FakeHost.amd_sev_firmware_off().kernel_log
            ('ccp 0000:22:00.1: sev enabled',)
        """
        return _replace(cls.amd_snp(), kernel_release="6.12.0", kernel_log=("ccp 0000:22:00.1: sev enabled",))

    @classmethod
    def intel_tdx_off(cls) -> FakeHost:
        """A made-up bare-metal Intel host whose BIOS enabled TDX (the kernel's tdx_host_platform
        flag) but whose kvm_intel runs with ``tdx=N`` (its default): Linux 6.18, no ``tdx`` in
        misc.capacity, nothing about TDX in the kernel log. Pair it with a :class:`FakeBackend`
        answering ``VM_TYPES`` 1.

        Example:
            >>> FakeHost.intel_tdx_off().modules["kvm_intel"]["tdx"]
            'N'
        """
        return cls(
            kernel_release="6.18.0",
            cpu_flags=("fpu", "msr", "vmx", "ept", "vpid", "lm", "tdx_host_platform"),
            modules={"kvm": {"halt_poll_ns": "200000"}, "kvm_intel": {"nested": "Y", "ept": "Y", "tdx": "N"}},
            cpuid={0x80000000: (0x80000008, 0, 0, 0)},
            cmdline="BOOT_IMAGE=/vmlinuz-6.18.0 root=/dev/sda1 ro",
            misc_capacity={},
            memlock=(8 << 20, 8 << 20),
            cap_eff=0,
            kernel_log=(),
        )
