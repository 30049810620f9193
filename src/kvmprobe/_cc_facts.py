"""The facts a confidential-VM check needs beyond the capability table and the host facts.

Imports ``_validate`` and ``errors``. :class:`ConfidentialFacts` holds what ``_cc_reader`` reads
under a root (CPUID 0x8000001F, the kernel command line, the misc cgroup's capacity, this
process's memlock limit, the kernel-log lines about SEV and TDX) and what KVM answered beyond
``KVM_CHECK_EXTENSION`` (the ``KVM_X86_GRP_SEV`` attributes of /dev/kvm, ``KVM_CREATE_VM`` of
each VM type tried, capabilities asked on such a VM's fd). A snapshot records it under the
top-level key ``confidential``; :meth:`ConfidentialFacts.from_dict` reads it back strictly.
``None`` (or empty) is "not known", never "unsupported".
"""

from __future__ import annotations

from types import MappingProxyType

from ._validate import Checker, key_path
from .errors import SnapshotError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass, field
    from typing import Any, Dict, Mapping, Optional, Tuple

    # One answer of an ioctl: its value, or the errno it failed with (exactly one is set).
    Answer = Tuple[Optional[int], Optional[int]]
else:
    from ._value import dataclass, field

__all__ = ["MAX_LOG_LINES", "UNLIMITED", "ConfidentialFacts"]

#: ``memlock`` for RLIM_INFINITY.
UNLIMITED = -1
#: Kernel-log lines kept at most (the newest), and characters per line.
MAX_LOG_LINES = 32
MAX_LOG_CHARS = 240

_U32 = 2**32 - 1
_U64 = 2**64 - 1
_INT_MAX = 2**31 - 1
_ERRNO_MAX = 4095
_REGISTERS = ("eax", "ebx", "ecx", "edx")


def _frozen(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class ConfidentialFacts:
    """Facts about a host's confidential-VM layers that neither the capability table nor
    :class:`~kvmprobe.HostFacts` holds.

    * ``cpuid``: CPUID 0x8000001F (EAX, EBX, ECX, EDX) from ``/dev/cpu/0/cpuid``; ``cpuid_note``
      says why it is unknown (no cpuid driver, not root, a leaf the CPU does not have, not x86).
    * ``cmdline``: the kernel command-line words about SEV, TDX and hibernation (``None``: unread).
    * ``misc_capacity``: the root cgroup's ``misc.capacity`` (``{"sev": 509}``; a resource it
      does not list has capacity 0), read from ``misc_path``; ``None``: no such file.
    * ``memlock``: this process's RLIMIT_MEMLOCK (soft, hard) in bytes, :data:`UNLIMITED` for
      none; ``ipc_lock``: whether it has CAP_IPC_LOCK (which lifts the limit).
    * ``kernel_log``: the kernel-log lines about SEV, SNP and TDX, newest last; ``None`` with
      ``kernel_log_note`` when the log could not be read.
    * ``sev_attrs``: per ``KVM_X86_GRP_SEV`` attribute name, (value, errno) from
      ``KVM_GET_DEVICE_ATTR`` on /dev/kvm; ``created``: per VM type tried, 0 when
      ``KVM_CREATE_VM`` made it (closed at once), else the errno; ``vm_fd``: per VM type made,
      the capabilities asked on its fd. ``kvm_note`` says why KVM was not asked.

    Example:
        >>> facts = ConfidentialFacts(cpuid=(0x1000f, 0x3b, 509, 100), misc_capacity={"sev": 410})
        >>> ConfidentialFacts.from_dict(facts.to_dict()) == facts
        True
    """

    cpuid: Optional[Tuple[int, int, int, int]] = None
    cpuid_note: str = ""
    cmdline: Optional[Tuple[str, ...]] = None
    misc_capacity: Optional[Mapping[str, int]] = None
    misc_path: Optional[str] = None
    memlock: Optional[Tuple[int, int]] = None
    ipc_lock: Optional[bool] = None
    kernel_log: Optional[Tuple[str, ...]] = None
    kernel_log_note: str = ""
    sev_attrs: Mapping[str, Answer] = field(default_factory=dict)
    created: Mapping[int, int] = field(default_factory=dict)
    vm_fd: Mapping[int, Mapping[str, int]] = field(default_factory=dict)
    kvm_note: str = ""

    def __post_init__(self) -> None:
        setter = object.__setattr__
        if self.misc_capacity is not None:
            setter(self, "misc_capacity", _frozen(self.misc_capacity))
        setter(self, "sev_attrs", _frozen(self.sev_attrs))
        setter(self, "created", _frozen(dict(sorted(self.created.items()))))
        setter(self, "vm_fd", _frozen({t: _frozen(caps) for t, caps in sorted(self.vm_fd.items())}))
        for name in ("cpuid", "cmdline", "memlock", "kernel_log"):
            value = getattr(self, name)
            if value is not None:
                setter(self, name, tuple(value))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConfidentialFacts):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        import json

        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready, fixed key order (what a snapshot stores under ``confidential``).

        Example:
            >>> list(ConfidentialFacts().to_dict())[:3]
            ['cpuid_8000001f', 'cpuid_note', 'cmdline']
        """
        return {
            "cpuid_8000001f": None if self.cpuid is None else dict(zip(_REGISTERS, self.cpuid)),
            "cpuid_note": self.cpuid_note,
            "cmdline": None if self.cmdline is None else list(self.cmdline),
            "misc_capacity": None if self.misc_capacity is None else dict(self.misc_capacity),
            "misc_path": self.misc_path,
            "memlock": None if self.memlock is None else {"soft": self.memlock[0], "hard": self.memlock[1]},
            "ipc_lock": self.ipc_lock,
            "kernel_log": None if self.kernel_log is None else list(self.kernel_log),
            "kernel_log_note": self.kernel_log_note,
            "sev_attrs": {name: {"value": v, "errno": e} for name, (v, e) in self.sev_attrs.items()},
            "vm_types_created": {str(t): code for t, code in self.created.items()},
            "vm_fd": {str(t): dict(caps) for t, caps in self.vm_fd.items()},
            "kvm_note": self.kvm_note,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, path: Optional[str] = None, field: str = "$.confidential"
    ) -> ConfidentialFacts:
        """Rebuild facts from :meth:`to_dict` output, checking every field (unknown keys refused).

        Raises:
            SnapshotError: a field is wrong; names ``path`` and the field.

        Example:
            >>> ConfidentialFacts.from_dict({"misc_capacity": {"sev": -1}})
            Traceback (most recent call last):
            ...
            kvmprobe.errors.SnapshotError: $.confidential.misc_capacity.sev: -1 is out of range (0..18446744073709551615) (hint: record the host again with 'python -m kvmprobe snapshot -o FILE')
        """
        return _Loader(path, field).load(data)


class _Loader(Checker):
    _KEYS = (
        "cpuid_8000001f", "cpuid_note", "cmdline", "misc_capacity", "misc_path", "memlock", "ipc_lock",
        "kernel_log", "kernel_log_note", "sev_attrs", "vm_types_created", "vm_fd", "kvm_note",
    )  # fmt: skip

    def __init__(self, path: Optional[str], field: str) -> None:
        hint = "record the host again with 'python -m kvmprobe snapshot -o FILE'"
        super().__init__(lambda where, message, _: SnapshotError(message, path=path, field=where, hint=hint))
        self.top = field

    def at(self, *keys: str) -> str:
        where = self.top
        for key in keys:
            where = key_path(where, key)
        return where

    def vm_type(self, key: str, where: str) -> int:
        if not (key.isascii() and key.isdigit() and len(key) <= 2 and int(key) < 32):
            self.fail(where, f"{key!r} is no VM type (0..31)")
        return int(key)

    def strings(self, item: Any, where: str) -> Optional[Tuple[str, ...]]:
        if item is None:
            return None
        rows = self.array(item, where)
        return tuple(self.text(row, f"{where}[{i}]", empty=True) for i, row in enumerate(rows))

    def load(self, data: Any) -> ConfidentialFacts:
        self.mapping(data, self.top)
        self.keys(data, self.top, self._KEYS)
        cpuid = data.get("cpuid_8000001f")
        registers: Optional[Tuple[int, int, int, int]] = None
        if cpuid is not None:
            self.mapping(cpuid, self.at("cpuid_8000001f"))
            self.keys(cpuid, self.at("cpuid_8000001f"), _REGISTERS, required=_REGISTERS)
            eax, ebx, ecx, edx = (self.integer(cpuid[r], self.at("cpuid_8000001f", r), 0, _U32) for r in _REGISTERS)
            registers = (eax, ebx, ecx, edx)
        capacity: Optional[Dict[str, int]] = None
        if data.get("misc_capacity") is not None:
            raw = self.mapping(data["misc_capacity"], self.at("misc_capacity"))
            capacity = {name: self.integer(n, self.at("misc_capacity", name), 0, _U64) for name, n in raw.items()}
        memlock: Optional[Tuple[int, int]] = None
        if data.get("memlock") is not None:
            limits = self.mapping(data["memlock"], self.at("memlock"))
            self.keys(limits, self.at("memlock"), ("soft", "hard"), required=("soft", "hard"))
            memlock = (
                self.integer(limits["soft"], self.at("memlock", "soft"), UNLIMITED, _U64),
                self.integer(limits["hard"], self.at("memlock", "hard"), UNLIMITED, _U64),
            )
        attrs: Dict[str, Answer] = {}
        for name, answer in self.mapping(data.get("sev_attrs", {}), self.at("sev_attrs")).items():
            where = self.at("sev_attrs", name)
            self.mapping(answer, where)
            self.keys(answer, where, ("value", "errno"), required=("value", "errno"))
            value = self.integer_or_null(answer["value"], key_path(where, "value"), 0, _U64)
            code = self.integer_or_null(answer["errno"], key_path(where, "errno"), 1, _ERRNO_MAX)
            if (value is None) == (code is None):
                self.fail(where, "exactly one of value and errno must be set")
            attrs[name] = (value, code)
        created = {
            self.vm_type(key, self.at("vm_types_created", key)): self.integer(
                code, self.at("vm_types_created", key), 0, _ERRNO_MAX
            )
            for key, code in self.mapping(data.get("vm_types_created", {}), self.at("vm_types_created")).items()
        }
        vm_fd: Dict[int, Dict[str, int]] = {}
        for key, caps in self.mapping(data.get("vm_fd", {}), self.at("vm_fd")).items():
            where = self.at("vm_fd", key)
            vm_fd[self.vm_type(key, where)] = {
                name: self.integer(v, key_path(where, name), 0, _INT_MAX) for name, v in self.mapping(caps, where).items()
            }
        return ConfidentialFacts(
            cpuid=registers,
            cpuid_note=self.text(data.get("cpuid_note", ""), self.at("cpuid_note"), empty=True),
            cmdline=self.strings(data.get("cmdline"), self.at("cmdline")),
            misc_capacity=capacity,
            misc_path=self.text_or_null(data.get("misc_path"), self.at("misc_path")),
            memlock=memlock,
            ipc_lock=self.boolean_or_null(data.get("ipc_lock"), self.at("ipc_lock")),
            kernel_log=self.strings(data.get("kernel_log"), self.at("kernel_log")),
            kernel_log_note=self.text(data.get("kernel_log_note", ""), self.at("kernel_log_note"), empty=True),
            sev_attrs=attrs,
            created=created,
            vm_fd=vm_fd,
            kvm_note=self.text(data.get("kvm_note", ""), self.at("kvm_note"), empty=True),
        )
