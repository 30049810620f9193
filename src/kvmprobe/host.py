"""Read the host facts KVM depends on, from files under a ``root`` (default ``/``).

Imports ``errors`` and ``_files``. This is the one reader of the system for kvmprobe: procfs, sysfs,
``/dev`` and ``/etc/group``/``/etc/passwd``, every path taken relative to ``root`` so that a
test can hand it a directory tree that looks like another host (see
``kvmprobe.testing.FakeHost``). It never issues an ioctl: what the kernel *answers* is the
job of ``device``; here are only the facts that *explain* an answer.

A missing file is not an error: the fact is ``None`` (or empty) and the diagnosis reports
it as unknown. So is a path that is no regular file (a FIFO, a device) or is far larger than
such a file can be: nothing here blocks or reads without bound. ``OSError`` is mapped in exactly one place, :func:`_read`.

Device nodes cannot be created portably in a test tree (``mknod`` needs root), so under a
root other than ``/`` the reader also reads :data:`NODES_FILE`, a small JSON file that
describes nodes (type, major/minor, mode, owner). Under the real ``/`` that file is never
read: nodes are always ``os.stat``-ed.
"""

from __future__ import annotations

import errno as _errno
import json
import os
import re
import stat as _stat
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Tuple, TypeVar

from ._files import read_limited
from ._validate import Checker, key_path, parse_json
from .errors import SnapshotError

__all__ = [
    "DEVICE_PATHS",
    "NODES_FILE",
    "VIRT_FLAGS",
    "DeviceNode",
    "GroupEntry",
    "HostFacts",
    "read_host_facts",
]

#: The CPU flags kept in :attr:`HostFacts.cpu_flags`: hardware virtualization (``vmx`` Intel
#: VT-x, ``svm`` AMD-V, ``sie`` s390), its sub-features (``ept``/``vpid`` on Intel,
#: ``npt`` on AMD), AMD's memory encryption for guests (``sev``, ``sev_es``, ``sev_snp``)
#: and ``hypervisor`` (CPUID.1:ECX bit 31: this kernel runs inside a virtual machine).
#: Every other flag says nothing about KVM and is dropped, which keeps snapshots small.
VIRT_FLAGS = frozenset({"vmx", "svm", "sie", "ept", "vpid", "npt", "sev", "sev_es", "sev_snp", "hypervisor"})

#: The nodes read besides the KVM device: VMM networking and vsock.
DEVICE_PATHS = ("/dev/vhost-net", "/dev/vhost-vsock", "/dev/net/tun")

#: Under a root other than ``/``: a JSON object mapping absolute node paths to descriptions
#: ``{"type": "char", "major": 10, "minor": 232, "mode": "0660", "uid": 0, "gid": 36}``.
NODES_FILE = "kvmprobe-nodes.json"

# The KVM backends that register /dev/kvm, in the order kvm_backend prefers them.
# kvm_pvm: the paging-based backend (no VT-x/AMD-V needed), lkml "KVM: x86/PVM" series.
_VENDOR_MODULES = ("kvm_intel", "kvm_amd", "kvm_pvm", "kvm_hv", "kvm_pr")

# On these architectures KVM is one piece built into the kernel (arm64 cannot build it
# as a module since Linux 5.x; arch/arm64/kvm/Kconfig), its parameters under /sys/module/kvm.
_BUILTIN_ARCHES = ("aarch64", "arm64", "riscv64", "s390x", "loongarch64")

# MSRs that say whether the firmware left VT-x/AMD-V enabled (the test kvm-ok does):
# Intel IA32_FEATURE_CONTROL (bit 0 lock, bit 2 VMXON outside SMX), AMD VM_CR (bit 4 SVMDIS).
MSR_FEATURE_CONTROL = 0x3A
MSR_VM_CR = 0xC0010114

_T = TypeVar("_T")

_NODE_KINDS = ("char", "block", "directory", "file", "other")

# Every recorded number (ids, device numbers, the MSR) fits in 64 unsigned bits.
_FACT_INT_MAX = 2**64 - 1


@dataclass(frozen=True)
class DeviceNode:
    """What ``stat`` says about a node: its kind, device number, mode and owner.

    ``mode`` holds the permission bits only (``0o600``); ``owner``/``group`` are names from
    the host's ``/etc/passwd`` and ``/etc/group`` (``None`` when the id has no entry).

    Example:
        >>> node = DeviceNode("char", 10, 232, 0o660, 0, 36, "root", "kvm")
        >>> node.is_char, node.mode_text, node.number
        (True, 'crw-rw----', '10:232')
    """

    kind: str
    major: Optional[int]
    minor: Optional[int]
    mode: int
    uid: int
    gid: int
    owner: Optional[str] = None
    group: Optional[str] = None

    @property
    def is_char(self) -> bool:
        """Whether this is a character device."""
        return self.kind == "char"

    @property
    def number(self) -> str:
        """``"major:minor"``, or ``""`` for a node that is no device."""
        if self.major is None or self.minor is None:
            return ""
        return f"{self.major}:{self.minor}"

    @property
    def mode_text(self) -> str:
        """The mode as ``ls -l`` prints it (``crw-------``)."""
        kinds = {"char": _stat.S_IFCHR, "block": _stat.S_IFBLK, "directory": _stat.S_IFDIR, "file": _stat.S_IFREG}
        return _stat.filemode(kinds.get(self.kind, 0) | self.mode)

    @property
    def owner_text(self) -> str:
        """``owner:group`` with names where known, else the numeric ids."""
        return f"{self.owner or self.uid}:{self.group or self.gid}"

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready, fixed key order.

        Example:
            >>> DeviceNode("char", 10, 232, 0o600, 0, 0, "root", "root").to_dict()["mode"]
            '0600'
        """
        return {
            "type": self.kind,
            "major": self.major,
            "minor": self.minor,
            "mode": f"{self.mode:04o}",
            "uid": self.uid,
            "gid": self.gid,
            "owner": self.owner,
            "group": self.group,
        }


@dataclass(frozen=True)
class GroupEntry:
    """One line of ``/etc/group``: the name, the gid and the listed members.

    Example:
        >>> GroupEntry("kvm", 36, ("alice",)).to_dict()
        {'name': 'kvm', 'gid': 36, 'members': ['alice']}
    """

    name: str
    gid: int
    members: Tuple[str, ...] = ()

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready, fixed key order.

        Example:
            >>> GroupEntry("kvm", 36).to_dict()["members"]
            []
        """
        return {"name": self.name, "gid": self.gid, "members": list(self.members)}


def _frozen_modules(modules: Mapping[str, Mapping[str, str]]) -> Mapping[str, Mapping[str, str]]:
    return MappingProxyType(
        {name: MappingProxyType(dict(sorted(params.items()))) for name, params in sorted(modules.items())}
    )


@dataclass(frozen=True)
class HostFacts:
    """The facts of one host that explain what its KVM does, as files under ``root`` say.

    Fields are ``None`` (or empty) when the file that would tell is missing.

    * ``system``, ``machine``, ``kernel_release``: as ``uname`` (from ``/proc/sys/kernel``).
    * ``cpu_vendor`` (``GenuineIntel``, ``AuthenticAMD``; ``None`` where cpuinfo has none,
      as on arm64) and ``cpu_flags``: the :data:`VIRT_FLAGS` the first CPU lists.
    * ``kvm_modules``: each ``/sys/module/kvm*`` directory and its parameters as raw strings
      (a module built into the kernel appears there too when it has parameters).
    * ``proc_modules``: whether ``/proc/modules`` exists (``False``: a kernel without
      loadable modules, where ``modprobe`` cannot help and options go on the command line).
    * ``kvm_misc_dev``: ``"10:232"`` from ``/sys/devices/virtual/misc/kvm/dev``: KVM registered
      its misc device, whether or not a ``/dev`` node exists for it.
    * ``kvm_device`` and ``devices``: the device path looked at, and for it and each of
      :data:`DEVICE_PATHS` a :class:`DeviceNode` (``None``: no such node).
    * ``uid``, ``gid``, ``groups``, ``user_name``: this process's credentials (from
      ``/proc/self/status``; ``groups`` are the supplementary groups *in effect*, which a
      new ``/etc/group`` line only changes at the next login).
    * ``group_db``: the ``/etc/group`` entries that matter here (the ``kvm`` group, the groups
      owning the nodes above, and the process's groups).
    * ``container``: ``"docker"``, ``"podman"``, ``"lxc"`` or ``"kubernetes"`` when this
      process runs in one (from ``/.dockerenv``, ``/run/.containerenv``, ``/proc/1/cgroup``).
    * ``msr_vt``/``msr_error``: the firmware VT MSR (:data:`MSR_FEATURE_CONTROL` on Intel,
      :data:`MSR_VM_CR` on AMD) through ``/dev/cpu/0/msr``, read only when ``vmx``/``svm`` is
      listed; reading it needs root, so ``msr_error`` says why it is unknown otherwise.

    Example:
        >>> facts = HostFacts(system="Linux", machine="x86_64", kernel_release="3.10.0-1160.el7.x86_64",
        ...                   cpu_vendor="GenuineIntel", cpu_flags=frozenset({"vmx"}),
        ...                   kvm_modules={"kvm": {}, "kvm_intel": {"nested": "N"}})
        >>> facts.kvm_backend, facts.nested_enabled
        ('kvm_intel', False)
        >>> HostFacts.from_dict(facts.to_dict()) == facts
        True
    """

    system: str
    machine: str
    kernel_release: str
    cpu_vendor: Optional[str] = None
    cpu_flags: FrozenSet[str] = frozenset()
    kvm_modules: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    proc_modules: Optional[bool] = None
    kvm_misc_dev: Optional[str] = None
    kvm_device: str = "/dev/kvm"
    devices: Mapping[str, Optional[DeviceNode]] = field(default_factory=dict)
    uid: Optional[int] = None
    gid: Optional[int] = None
    groups: Tuple[int, ...] = ()
    user_name: Optional[str] = None
    group_db: Tuple[GroupEntry, ...] = ()
    container: Optional[str] = None
    msr_vt: Optional[int] = None
    msr_error: Optional[str] = None

    def __post_init__(self) -> None:
        setter = object.__setattr__
        setter(self, "cpu_flags", frozenset(self.cpu_flags))
        setter(self, "kvm_modules", _frozen_modules(self.kvm_modules))
        setter(self, "devices", MappingProxyType(dict(sorted(self.devices.items()))))
        setter(self, "groups", tuple(self.groups))
        setter(self, "group_db", tuple(self.group_db))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HostFacts):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    @property
    def kvm_backend(self) -> Optional[str]:
        """The module behind ``/dev/kvm``: ``kvm_intel``, ``kvm_amd``, ``kvm_pvm`` (also
        ``kvm_hv``/``kvm_pr`` on POWER), ``"built-in"`` for the one-piece KVM of arm64,
        riscv64 and s390x, or ``None`` when none is loaded.

        Example:
            >>> HostFacts("Linux", "aarch64", "6.8.0", kvm_modules={"kvm": {}}).kvm_backend
            'built-in'
            >>> HostFacts("Linux", "x86_64", "6.8.0", kvm_modules={"kvm": {}}).kvm_backend is None
            True
        """
        for name in _VENDOR_MODULES:
            if name in self.kvm_modules:
                return name
        if "kvm" in self.kvm_modules and self.machine in _BUILTIN_ARCHES:
            return "built-in"
        return None

    @property
    def nested_enabled(self) -> Optional[bool]:
        """The backend's ``nested`` parameter: ``Y``/``y``/``1`` is on (kvm_amd prints ``1``,
        kvm_intel ``Y``), ``N``/``n``/``0`` off, ``None`` when the backend has no such file.

        Example:
            >>> HostFacts("Linux", "x86_64", "6.8", kvm_modules={"kvm_amd": {"nested": "0"}}).nested_enabled
            False
        """
        backend = self.kvm_backend
        module = "kvm" if backend == "built-in" else backend
        if module is None:
            return None
        raw = self.kvm_modules.get(module, {}).get("nested")
        if raw is None:
            return None
        text = raw.strip()
        if text in ("Y", "y", "1"):
            return True
        if text in ("N", "n", "0"):
            return False
        return None

    @property
    def in_vm(self) -> bool:
        """Whether the CPU says this kernel runs in a virtual machine (the ``hypervisor`` flag).

        Example:
            >>> HostFacts("Linux", "x86_64", "6.18.0", cpu_flags=frozenset({"hypervisor"})).in_vm
            True
        """
        return "hypervisor" in self.cpu_flags

    @property
    def kvm_node(self) -> Optional[DeviceNode]:
        """The :class:`DeviceNode` of :attr:`kvm_device`, or ``None`` when there is none.

        Example:
            >>> node = DeviceNode("char", 10, 232, 0o600, 0, 0)
            >>> HostFacts("Linux", "x86_64", "6.18.0", devices={"/dev/kvm": node}).kvm_node is node
            True
        """
        return self.devices.get(self.kvm_device)

    def group(self, gid: int) -> Optional[GroupEntry]:
        """The ``/etc/group`` entry of ``gid`` among :attr:`group_db`, if read.

        Example:
            >>> HostFacts("Linux", "x86_64", "6.8", group_db=(GroupEntry("kvm", 36, ("alice",)),)).group(36).name
            'kvm'
        """
        for entry in self.group_db:
            if entry.gid == gid:
                return entry
        return None

    def group_named(self, name: str) -> Optional[GroupEntry]:
        """The ``/etc/group`` entry named ``name`` among :attr:`group_db`, if read.

        Example:
            >>> HostFacts("Linux", "x86_64", "6.8", group_db=(GroupEntry("kvm", 36),)).group_named("kvm").gid
            36
        """
        for entry in self.group_db:
            if entry.name == name:
                return entry
        return None

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict with a fixed key order (what snapshots store under ``host``).

        Example:
            >>> list(HostFacts("Linux", "x86_64", "6.18.0").to_dict())[:4]
            ['system', 'machine', 'kernel_release', 'cpu_vendor']
        """
        return {
            "system": self.system,
            "machine": self.machine,
            "kernel_release": self.kernel_release,
            "cpu_vendor": self.cpu_vendor,
            "cpu_flags": sorted(self.cpu_flags),
            "kvm_modules": {name: dict(params) for name, params in self.kvm_modules.items()},
            "proc_modules": self.proc_modules,
            "kvm_misc_dev": self.kvm_misc_dev,
            "kvm_device": self.kvm_device,
            "devices": {path: (node.to_dict() if node else None) for path, node in self.devices.items()},
            "uid": self.uid,
            "gid": self.gid,
            "groups": list(self.groups),
            "user_name": self.user_name,
            "group_db": [entry.to_dict() for entry in self.group_db],
            "container": self.container,
            "msr_vt": self.msr_vt,
            "msr_error": self.msr_error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: Optional[str] = None, field: str = "$.host") -> HostFacts:
        """Rebuild facts from :meth:`to_dict` output, checking every field.

        Unknown keys are refused (a typo must not pass silently); optional keys may be absent.

        Raises:
            SnapshotError: a field is missing or has the wrong type; names ``path`` and the field.

        Example:
            >>> HostFacts.from_dict({"system": "Linux", "machine": "x86_64", "kernel_release": "3.10.0",
            ...                      "cpu_flags": ["vmx"]}).cpu_flags
            frozenset({'vmx'})
            >>> HostFacts.from_dict({"system": "Linux", "machine": "x86_64", "kernel_release": 3})
            Traceback (most recent call last):
            ...
            kvmprobe.errors.SnapshotError: $.host.kernel_release: expected a string, got an integer (3) (hint: record the host again with 'python -m kvmprobe snapshot -o FILE')
        """
        return _FactsLoader(path, field).load(data)


class _FactsLoader(Checker):
    """Strict validation of a ``to_dict`` document; each error names the JSON path."""

    _KEYS = (
        "system", "machine", "kernel_release", "cpu_vendor", "cpu_flags", "kvm_modules", "proc_modules",
        "kvm_misc_dev", "kvm_device", "devices", "uid", "gid", "groups", "user_name", "group_db",
        "container", "msr_vt", "msr_error",
    )  # fmt: skip

    def __init__(self, path: Optional[str], field: str) -> None:
        super().__init__(lambda where, message, hint: SnapshotError(message, path=path, field=where, hint=hint))
        self.field = field

    def number(self, item: Any, where: str) -> int:
        return self.integer(item, where, 0, _FACT_INT_MAX)

    def number_or_null(self, item: Any, where: str) -> Optional[int]:
        return self.integer_or_null(item, where, 0, _FACT_INT_MAX)

    def load(self, data: Any) -> HostFacts:
        top = self.field
        self.mapping(data, top)
        self.keys(data, top, self._KEYS, required=("system", "machine", "kernel_release"))

        def at(key: str) -> str:
            return f"{top}.{key}"

        modules: Dict[str, Dict[str, str]] = {}
        for name, params in self.mapping(data.get("kvm_modules", {}), at("kvm_modules")).items():
            where = key_path(at("kvm_modules"), name)
            self.mapping(params, where)
            modules[name] = {k: self.text(v, key_path(where, k), empty=True) for k, v in params.items()}
        devices = {
            node_path: (None if node is None else self.node(node, key_path(at("devices"), node_path)))
            for node_path, node in self.mapping(data.get("devices", {}), at("devices")).items()
        }
        flags = self.array(data.get("cpu_flags", []), at("cpu_flags"))
        groups = self.array(data.get("groups", []), at("groups"))
        db = self.array(data.get("group_db", []), at("group_db"))
        return HostFacts(
            system=self.text(data["system"], at("system"), empty=True),
            machine=self.text(data["machine"], at("machine"), empty=True),
            kernel_release=self.text(data["kernel_release"], at("kernel_release"), empty=True),
            cpu_vendor=self.text_or_null(data.get("cpu_vendor"), at("cpu_vendor")),
            cpu_flags=frozenset(self.text(f, f"{at('cpu_flags')}[{i}]") for i, f in enumerate(flags)),
            kvm_modules=modules,
            proc_modules=self.boolean_or_null(data.get("proc_modules"), at("proc_modules")),
            kvm_misc_dev=self.text_or_null(data.get("kvm_misc_dev"), at("kvm_misc_dev")),
            kvm_device=self.text(data.get("kvm_device", "/dev/kvm"), at("kvm_device")),
            devices=devices,
            uid=self.number_or_null(data.get("uid"), at("uid")),
            gid=self.number_or_null(data.get("gid"), at("gid")),
            groups=tuple(self.number(g, f"{at('groups')}[{i}]") for i, g in enumerate(groups)),
            user_name=self.text_or_null(data.get("user_name"), at("user_name")),
            group_db=tuple(self.group(entry, f"{at('group_db')}[{i}]") for i, entry in enumerate(db)),
            container=self.text_or_null(data.get("container"), at("container")),
            msr_vt=self.number_or_null(data.get("msr_vt"), at("msr_vt")),
            msr_error=self.text_or_null(data.get("msr_error"), at("msr_error")),
        )

    def node(self, node: Any, where: str) -> DeviceNode:
        self.mapping(node, where)
        kind = self.text(node.get("type"), f"{where}.type")
        if kind not in _NODE_KINDS:
            self.fail(f"{where}.type", f"expected one of {', '.join(_NODE_KINDS)}, got {kind!r}")
        mode_text = self.text(node.get("mode"), f"{where}.mode")
        if not re.fullmatch("[0-7]{1,6}", mode_text):
            self.fail(f"{where}.mode", f"expected an octal string like '0660', got {mode_text!r}")
        return DeviceNode(
            kind=kind,
            major=self.number_or_null(node.get("major"), f"{where}.major"),
            minor=self.number_or_null(node.get("minor"), f"{where}.minor"),
            mode=int(mode_text, 8) & 0o7777,
            uid=self.number(node.get("uid"), f"{where}.uid"),
            gid=self.number(node.get("gid"), f"{where}.gid"),
            owner=self.text_or_null(node.get("owner"), f"{where}.owner"),
            group=self.text_or_null(node.get("group"), f"{where}.group"),
        )

    def group(self, entry: Any, where: str) -> GroupEntry:
        self.mapping(entry, where)
        members = self.array(entry.get("members", []), f"{where}.members")
        return GroupEntry(
            name=self.text(entry.get("name"), f"{where}.name"),
            gid=self.number(entry.get("gid"), f"{where}.gid"),
            members=tuple(self.text(m, f"{where}.members[{i}]") for i, m in enumerate(members)),
        )


# --- the reader ---------------------------------------------------------------------------


# The procfs/sysfs/etc files read are small: a sysfs attribute is at most a page. More than
# this is no such file (a fake root may hold anything) and reads as unknown.
_TEXT_LIMIT = 1024 * 1024
# /etc/passwd and /etc/group may list many users; still bounded, so memory is.
_DB_LIMIT = 16 * 1024 * 1024
# Only the first CPU's block of /proc/cpuinfo is used; a machine with thousands of CPUs has
# a longer file, of which the head is enough.
_CPUINFO_LIMIT = 4 * 1024 * 1024


class _Reader:
    """Files under one root. The only place ``OSError`` from reading the host is handled."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.real = self.root == "/"

    def path(self, absolute: str) -> str:
        return os.path.join(self.root, absolute.lstrip("/"))

    def text(self, absolute: str, limit: int = _TEXT_LIMIT, *, truncate: bool = False) -> Optional[str]:
        """The file's text, or ``None`` when it is missing, unreadable, not a regular file or
        over ``limit`` bytes (with ``truncate``: its first ``limit`` bytes)."""
        return _read(lambda: _read_text(self.path(absolute), limit, truncate))

    def exists(self, absolute: str) -> bool:
        return os.path.lexists(self.path(absolute))

    def listdir(self, absolute: str) -> List[str]:
        return _read(lambda: sorted(os.listdir(self.path(absolute)))) or []

    def stat(self, absolute: str) -> Optional[os.stat_result]:
        return _read(lambda: os.stat(self.path(absolute)))

    def pread(self, absolute: str, size: int, offset: int) -> Tuple[Optional[bytes], Optional[str]]:
        """Bytes at ``offset``, or ``None`` and the errno name (``EACCES``, ``ENOENT``)."""

        def read() -> bytes:
            # O_NONBLOCK: under a fake root the path may be a FIFO; the msr driver ignores the flag.
            fd = os.open(self.path(absolute), os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # ownership: closed below
            try:
                return os.pread(fd, size, offset)
            finally:
                os.close(fd)

        return _attempt(read)


def _read_text(path: str, limit: int, truncate: bool) -> str:
    # read_limited opens regular files only (a FIFO would block, /dev/zero never end).
    return read_limited(path, limit, truncate=truncate).decode("utf-8", errors="replace")


def _attempt(action: Callable[[], _T]) -> Tuple[Optional[_T], Optional[str]]:
    # The one mapping of OSError for host facts: missing or unreadable means unknown (None,
    # with the errno's name for the diagnosis to show), never an error. A file that vanished
    # between listdir and open is just as unknown.
    try:
        return action(), None
    except OSError as err:
        return None, _errno.errorcode.get(err.errno or 0, "EIO")
    except ValueError:  # a path with a NUL or an unencodable surrogate names no file
        return None, "EINVAL"


def _read(action: Callable[[], _T]) -> Optional[_T]:
    return _attempt(action)[0]


def _parse_cpuinfo(text: Optional[str]) -> Tuple[Optional[str], FrozenSet[str]]:
    vendor: Optional[str] = None
    flags: FrozenSet[str] = frozenset()
    features_seen = False
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        # x86 lists "flags", s390x "features", arm64 "Features"; only the first CPU counts.
        if key in ("flags", "features", "Features") and not features_seen:
            flags = frozenset(value.split()) & VIRT_FLAGS
            features_seen = True
        elif key in ("vendor_id", "vendor") and vendor is None:
            vendor = value.strip() or None
    return vendor, flags


def _parse_db(text: Optional[str]) -> List[Tuple[str, int, Tuple[str, ...]]]:
    """``name:x:id:...`` lines of /etc/group or /etc/passwd (id is field 3, members field 4)."""
    rows: List[Tuple[str, int, Tuple[str, ...]]] = []
    for line in (text or "").splitlines():
        parts = line.split(":")
        if len(parts) < 3 or line.startswith("#"):
            continue
        try:
            number = int(parts[2])
        except ValueError:
            continue
        extra = parts[3] if len(parts) > 3 else ""
        rows.append((parts[0], number, tuple(m for m in extra.split(",") if m)))
    return rows


def _parse_status(text: Optional[str]) -> Tuple[Optional[int], Optional[int], Tuple[int, ...]]:
    uid: Optional[int] = None
    gid: Optional[int] = None
    groups: Tuple[int, ...] = ()
    for line in (text or "").splitlines():
        key, _, value = line.partition(":")
        fields = value.split()
        try:
            # "Uid: real effective saved fs": access checks use the effective (fs) id.
            if key == "Uid" and len(fields) >= 2:
                uid = int(fields[1])
            elif key == "Gid" and len(fields) >= 2:
                gid = int(fields[1])
            elif key == "Groups":
                groups = tuple(int(g) for g in fields)
        except ValueError:
            continue
    return uid, gid, groups


def _nodes_sidecar(reader: _Reader) -> Dict[str, Any]:
    if reader.real:
        return {}
    text = reader.text("/" + NODES_FILE)
    if text is None:
        return {}
    where = reader.path(NODES_FILE)
    data = parse_json(text, lambda message: SnapshotError(message, path=where, field="$", hint="fix or rewrite the fake host"))
    if not isinstance(data, dict):
        raise SnapshotError("expected an object of node paths", path=where, field="$", hint="fix the fake host")
    return data


def _node(
    reader: _Reader, sidecar: Mapping[str, Any], path: str, names: Tuple[Dict[int, str], Dict[int, str]]
) -> Optional[DeviceNode]:
    users, groups = names
    if path in sidecar:
        loader = _FactsLoader(reader.path(NODES_FILE), "$")
        node = loader.node(sidecar[path], f"$.{path}")
        return DeviceNode(node.kind, node.major, node.minor, node.mode, node.uid, node.gid,
                          users.get(node.uid), groups.get(node.gid))  # fmt: skip
    st = reader.stat(path)
    if st is None:
        return None
    if _stat.S_ISCHR(st.st_mode):
        kind = "char"
    elif _stat.S_ISBLK(st.st_mode):
        kind = "block"
    elif _stat.S_ISDIR(st.st_mode):
        kind = "directory"
    elif _stat.S_ISREG(st.st_mode):
        kind = "file"
    else:
        kind = "other"
    is_dev = kind in ("char", "block")
    return DeviceNode(
        kind=kind,
        major=os.major(st.st_rdev) if is_dev else None,
        minor=os.minor(st.st_rdev) if is_dev else None,
        mode=_stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        owner=users.get(st.st_uid),
        group=groups.get(st.st_gid),
    )


def _container(reader: _Reader) -> Optional[str]:
    if reader.exists("/.dockerenv"):
        return "docker"
    if reader.exists("/run/.containerenv"):
        return "podman"
    cgroup = reader.text("/proc/1/cgroup") or ""
    for marker, name in (("kubepods", "kubernetes"), ("docker", "docker"), ("libpod", "podman"), ("lxc", "lxc")):
        if marker in cgroup:
            return name
    return None


def read_host_facts(root: str = "/", *, device: str = "/dev/kvm") -> HostFacts:
    """Read the facts of the host whose files live under ``root``.

    Nothing here needs root or issues an ioctl; a fact whose file is missing or unreadable
    is ``None``. Under ``root="/"`` the facts are this machine's (``uname`` fills in
    what ``/proc/sys/kernel`` lacks).

    Args:
        root: the directory standing for ``/`` (a fake host in tests).
        device: the KVM device path (as the host sees it) whose node to describe.

    Raises:
        SnapshotError: only for a fake host whose :data:`NODES_FILE` is malformed.

    Example:
        >>> import tempfile
        >>> from kvmprobe.testing import FakeHost
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     facts = read_host_facts(FakeHost.centos7().write(tmp))
        >>> facts.kernel_release, facts.kvm_backend, facts.nested_enabled, facts.kvm_node.mode_text
        ('3.10.0-1160.el7.x86_64', 'kvm_intel', False, 'crw-rw----')
    """
    reader = _Reader(root)
    uname = os.uname() if reader.real else None

    def kernel(name: str, fallback: str) -> str:
        text = reader.text(f"/proc/sys/kernel/{name}")
        return text.strip() if text is not None else fallback

    system = kernel("ostype", uname.sysname if uname else "")
    release = kernel("osrelease", uname.release if uname else "")
    # /proc/sys/kernel/arch exists since Linux 5.19; older kernels leave uname as the source.
    machine = kernel("arch", uname.machine if uname else "")
    vendor, flags = _parse_cpuinfo(reader.text("/proc/cpuinfo", _CPUINFO_LIMIT, truncate=True))

    modules: Dict[str, Dict[str, str]] = {}
    for name in reader.listdir("/sys/module"):
        if name == "kvm" or name.startswith("kvm_") or name.startswith("kvm-"):
            params: Dict[str, str] = {}
            for param in reader.listdir(f"/sys/module/{name}/parameters"):
                value = reader.text(f"/sys/module/{name}/parameters/{param}")
                if value is not None:
                    params[param] = value.strip()
            modules[name] = params
    misc = reader.text("/sys/devices/virtual/misc/kvm/dev")

    users = {number: name for name, number, _ in _parse_db(reader.text("/etc/passwd", _DB_LIMIT))}
    db = _parse_db(reader.text("/etc/group", _DB_LIMIT))
    group_names = {number: name for name, number, _ in db}
    sidecar = _nodes_sidecar(reader)
    devices = {path: _node(reader, sidecar, path, (users, group_names)) for path in (device,) + DEVICE_PATHS}

    uid, gid, groups = _parse_status(reader.text("/proc/self/status"))
    wanted = {gid, *groups} | {node.gid for node in devices.values() if node is not None}
    group_db = tuple(
        GroupEntry(name, number, members) for name, number, members in db if number in wanted or name == "kvm"
    )

    msr_vt: Optional[int] = None
    msr_error: Optional[str] = None
    if "vmx" in flags or "svm" in flags:
        offset = MSR_FEATURE_CONTROL if "vmx" in flags else MSR_VM_CR
        raw, msr_error = reader.pread("/dev/cpu/0/msr", 8, offset)
        if raw is not None and len(raw) == 8:
            msr_vt = int.from_bytes(raw, "little")
        elif raw is not None:
            msr_error = "short read"

    return HostFacts(
        system=system,
        machine=machine,
        kernel_release=release,
        cpu_vendor=vendor,
        cpu_flags=flags,
        kvm_modules=modules,
        proc_modules=reader.exists("/proc/modules") if reader.exists("/proc") else None,
        kvm_misc_dev=misc.strip() if misc is not None else None,
        kvm_device=device,
        devices=devices,
        uid=uid,
        gid=gid,
        groups=groups,
        user_name=users.get(uid) if uid is not None else None,
        group_db=group_db,
        container=_container(reader),
        msr_vt=msr_vt,
        msr_error=msr_error,
    )
