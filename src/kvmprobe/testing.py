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
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

from . import probing as _probe
from ._backend import Backend, CheckResults
from ._ioctl import KVM_API_VERSION, KvmIoctls
from .caps import Cap, CapLike
from .host import NODES_FILE as _NODES_FILE, DeviceNode as _DeviceNode
from .probing import ProbeResult

__all__ = ["FakeBackend", "FakeHost", "HostSpec", "default_backend", "fake_kvm", "fake_probe_result", "host_result"]

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
    does for a real backend).
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

    def ioctl_buffer(self, fd: int, request: int, buffer: bytearray) -> int:
        # No structure-argument ioctl is faked: ENOTTY, as a kernel answers a request it lacks.
        result, code = self._answer(fd, request, 0)
        if code:
            raise OSError(code, _errno.errorcode.get(code, "error"))
        return result


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
        synthesized=True,
    )


#: What :func:`fake_kvm` and :func:`host_result` accept as a host.
HostSpec = Union[ProbeResult, str, "_os.PathLike[str]", Values, None]


def host_result(host: HostSpec = None, overrides: Optional[Values] = None, /, **caps: int) -> ProbeResult:
    """The :class:`ProbeResult` a host spec names, with capability overrides applied.

    ``host`` is a :class:`ProbeResult`; a preset name (``"linux-3.10"``, see
    :func:`kvmprobe.preset_names`); a snapshot file (a path, or a string with a ``/`` or
    ending in ``.json``); a dict of capability values (every other capability 0, see
    :func:`fake_probe_result`); or ``None`` (every capability 0). ``overrides`` and keyword
    arguments (``IMMEDIATE_EXIT=0``, any spelling ``Cap.lookup`` takes) then set single
    capabilities, on the system fd and, where the host has them, on the VM fd; the result is
    marked ``synthesized`` and its ``source`` lists the overrides.

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
def fake_kvm(host: HostSpec = None, overrides: Optional[Values] = None, /, **caps: int) -> Iterator[ProbeResult]:
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
    result = host_result(host, overrides, **caps)
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
        put("proc/self/status", f"Name:\tpython3\nUid:\t{self.uid}\t{self.uid}\t{self.uid}\t{self.uid}\n"
            f"Gid:\t{self.gid}\t{self.gid}\t{self.gid}\t{self.gid}\nGroups:\t{groups} \n")  # fmt: skip
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
        if self.msr is not None:
            offset, msr_value = self.msr
            path = os.path.join(root, "dev/cpu/0/msr")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.seek(offset)
                handle.write(msr_value.to_bytes(8, "little"))
        return root

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
