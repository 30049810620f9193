"""The host facts KVM depends on, as values: :class:`HostFacts` and its parts (the model).

Imports ``_arch``, ``_kvm_backends`` (which modules are KVM backends), ``_validate`` and ``errors``. The facts are read from a live or fake host by
``_host_reader`` and recorded in snapshots; :meth:`HostFacts.from_dict` reads them back
strictly. Public through ``kvmprobe.host``.
"""

from __future__ import annotations

import stat as _stat
from types import MappingProxyType

from ._arch import KVM_BUILT_IN, canonical
from ._kvm_backends import MODULES
from ._validate import Checker, clip, key_path
from .errors import SnapshotError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass, field
    from typing import Any, Dict, FrozenSet, Mapping, Optional, Tuple
else:
    from ._value import dataclass, field

__all__ = [
    "DEVICE_PATHS",
    "MSR_FEATURE_CONTROL",
    "MSR_VM_CR",
    "NODES_FILE",
    "VIRT_FLAGS",
    "DeviceNode",
    "GroupEntry",
    "HostFacts",
]

#: The CPU flags kept in :attr:`HostFacts.cpu_flags`: hardware virtualization (``vmx`` Intel
#: VT-x, ``svm`` AMD-V, ``sie`` s390), its sub-features (``ept``/``vpid`` on Intel,
#: ``npt`` on AMD), AMD's memory encryption for guests (``sev``, ``sev_es``, ``sev_snp``, which
#: the kernel hides when the BIOS left it off), ``tdx_host_platform`` (the kernel found TDX
#: KeyIDs and can host TDX guests: arch/x86/include/asm/cpufeatures.h:191, set by tdx_init())
#: and ``hypervisor`` (CPUID.1:ECX bit 31: this kernel runs inside a virtual machine).
#: Every other flag says nothing about KVM and is dropped, which keeps snapshots small.
VIRT_FLAGS = frozenset(
    {"vmx", "svm", "sie", "ept", "vpid", "npt", "sev", "sev_es", "sev_snp", "tdx_host_platform", "hypervisor"}
)

#: The nodes read besides the KVM device: VMM networking and vsock, and the AMD secure
#: processor's ``/dev/sev`` (the ccp driver; VMMs open it for SEV guests).
DEVICE_PATHS = ("/dev/vhost-net", "/dev/vhost-vsock", "/dev/net/tun", "/dev/sev")

#: Under a root other than ``/``: a JSON object mapping absolute node paths to descriptions
#: ``{"type": "char", "major": 10, "minor": 232, "mode": "0660", "uid": 0, "gid": 36}``.
NODES_FILE = "kvmprobe-nodes.json"

# The KVM backends that register /dev/kvm, in the order kvm_backend prefers them (_kvm_backends).
_VENDOR_MODULES = MODULES


# MSRs that say whether the firmware left VT-x/AMD-V enabled (the test kvm-ok does):
# Intel IA32_FEATURE_CONTROL (bit 0 lock, bit 2 VMXON outside SMX), AMD VM_CR (bit 4 SVMDIS).
MSR_FEATURE_CONTROL = 0x3A
MSR_VM_CR = 0xC0010114

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
        >>> node.owner_text, DeviceNode("char", 10, 232, 0o660, 0, 36).owner_text  # names unknown: the ids
        ('root:kvm', '0:36')
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
        import json  # only to hash: the commands that never do need no JSON module

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
        if "kvm" in self.kvm_modules and canonical(self.machine) in KVM_BUILT_IN:
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
            modules[name] = {k: self.parameter(v, where, k) for k, v in params.items()}
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
            kvm_misc_dev=self.device_number(data.get("kvm_misc_dev"), at("kvm_misc_dev")),
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

    def device_number(self, item: Any, where: str) -> Optional[str]:
        """``"MAJOR:MINOR"`` in decimal, as ``/sys/devices/virtual/misc/kvm/dev`` gives it, or null."""
        text = self.text_or_null(item, where)
        if text is not None:
            major, colon, minor = text.partition(":")
            if not (colon and major.isascii() and major.isdigit() and minor.isascii() and minor.isdigit()):
                self.fail(where, f"expected a device number 'MAJOR:MINOR' such as '10:232', got {clip(text)!r}")
        return text

    def parameter(self, value: Any, where: str, key: str) -> str:
        """A module parameter's value: plain printable ASCII at once, anything else checked as text
        (and named, ``$.host.kvm_modules.kvm.halt_poll_ns``, only then: a fleet reads thousands)."""
        if value.__class__ is str and value.isascii() and value.isprintable() and len(value) <= 64:
            return self.text(value, where, empty=True)  # shared, never refused: the exact path is not needed
        return self.text(value, key_path(where, key), empty=True)

    def node(self, node: Any, where: str) -> DeviceNode:
        self.mapping(node, where)
        kind = self.text(node.get("type"), f"{where}.type")
        if kind not in _NODE_KINDS:
            self.fail(f"{where}.type", f"expected one of {', '.join(_NODE_KINDS)}, got {kind!r}")
        mode_text = self.text(node.get("mode"), f"{where}.mode")
        if not (1 <= len(mode_text) <= 6 and all(char in "01234567" for char in mode_text)):
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
