"""What KVM (and the host CPU) answered about the CPU, raw: the record, its reader and its JSON.

Imports ``_kvm_structs``, ``_validate``, ``errors`` and, where used, ``_cpuid``, ``_cpuid_table``, ``_cpuid_insn``
and ``_host_files`` (reading a snapshot's CPU section loads no feature table).
A :class:`CpuRecord` keeps the numbers exactly as the kernel gave them (so a newer kvmprobe can
decode an old recording), plus the host's own CPUID and ``/proc/cpuinfo`` flags for the
host-versus-KVM comparison, and every query that failed. Decoding is ``_cpu_decode``'s job.

:func:`read_kvm_cpu` asks an open device (anything with ``KvmDevice``'s CPU queries; ``device``
is not imported here); :func:`with_host` adds the host's side, read on this machine.
"""

from __future__ import annotations

from ._kvm_structs import CpuidEntry, IoctlFailure
from ._value import Shared
from .errors import IoctlFailed, KvmUnavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

    from typing import Protocol

    from ._validate import Checker

    class CpuQueries(Protocol):
        """The ``KvmDevice`` methods the reader uses."""

        def supported_cpuid(self) -> List[Tuple[int, int, int, int, int, int, int]]: ...
        def emulated_cpuid(self) -> List[Tuple[int, int, int, int, int, int, int]]: ...
        def msr_index_list(self) -> List[int]: ...
        def msr_feature_index_list(self) -> List[int]: ...
        def get_msrs(self, indices: Sequence[int]) -> Dict[int, int]: ...
        def get_device_attr(self, group: int, attr: int) -> int: ...

    class TscQuery(Protocol):
        """An open VM (``device.VmFd``): a scratch vCPU on it answers the TSC rate."""

        def tsc_khz(self) -> int: ...
else:
    from ._value import NamedTuple

__all__ = ["REAL_BACKENDS", "CpuRecord", "live_host_side", "read_kvm_cpu", "with_host"]

#: The ioctl backends that reach the real kernel: only their probes read this machine's CPU.
REAL_BACKENDS = ("cffi", "ctypes")

_U32 = 2**32 - 1
_U64 = 2**64 - 1
_MAX_ROWS = 1 << 16  # as many entries or MSRs as the ioctl layer ever asks for
_ENTRY_KEYS = ("function", "index", "flags", "eax", "ebx", "ecx", "edx")
_INT_ONLY = frozenset({int})  # exactly int: a bool or a float is no register value
_KEYS = (
    "cpuid",
    "emulated_cpuid",
    "msrs",
    "feature_msr_indices",
    "feature_msrs",
    "xcomp_guest_supp",
    "tsc_khz",
    "host_cpuid",
    "host_cpuid_source",
    "host_flags",
    "failed",
)


class CpuRecord(NamedTuple):
    """The raw CPU answers of one host. ``None``: not answered (see ``failed``) or not asked.

    * ``cpuid``, ``emulated_cpuid``: KVM_GET_SUPPORTED_CPUID and KVM_GET_EMULATED_CPUID,
      entries in the kernel's order.
    * ``msrs``, ``feature_msr_indices``: KVM_GET_MSR_INDEX_LIST and
      KVM_GET_MSR_FEATURE_INDEX_LIST; ``feature_msrs``: ``(index, value)`` pairs KVM_GET_MSRS
      read on the system fd (a listed MSR it could not read is left out).
    * ``xcomp_guest_supp``: device attribute ``KVM_X86_XCOMP_GUEST_SUPP``; ``tsc_khz``: a
      scratch vCPU's KVM_GET_TSC_KHZ (asked only when a VM may be created).
    * ``host_cpuid``: the host's own CPUID for the same leaves; ``host_cpuid_source``: how it
      was read, or why not (``None``: not asked, as for a fake); ``host_flags``: the flags of
      the first CPU in ``/proc/cpuinfo``.
    * ``failed``: each query that failed, with its errno.

    Example:
        >>> record = CpuRecord(cpuid=((1, 0, 0, 0x00B00F21, 0x01020800, 0, 0),))
        >>> record.normalized()
        (CpuidEntry(leaf=1, subleaf=0, flags=0, eax=11538209, ebx=133120, ecx=0, edx=0),)
    """

    cpuid: Optional[Tuple[CpuidEntry, ...]] = None
    emulated_cpuid: Optional[Tuple[CpuidEntry, ...]] = None
    msrs: Optional[Tuple[int, ...]] = None
    feature_msr_indices: Optional[Tuple[int, ...]] = None
    feature_msrs: Optional[Tuple[Tuple[int, int], ...]] = None
    xcomp_guest_supp: Optional[int] = None
    tsc_khz: Optional[int] = None
    host_cpuid: Optional[Tuple[CpuidEntry, ...]] = None
    host_cpuid_source: Optional[str] = None
    host_flags: Optional[Tuple[str, ...]] = None
    failed: Tuple[IoctlFailure, ...] = ()

    def normalized(self) -> Tuple[CpuidEntry, ...]:
        """KVM's supported CPUID with the volatile fields cleared, sorted by (leaf, subleaf):
        the view to compare or hash (two identical hosts give equal tuples). Empty when
        KVM_GET_SUPPORTED_CPUID was not answered.

        Example:
            >>> a = CpuRecord(cpuid=((0xB, 0, 1, 1, 2, 0x100, 7), (1, 0, 0, 0, 0x05000800, 0, 0)))
            >>> b = CpuRecord(cpuid=((1, 0, 0, 0, 0x0A000800, 0, 0), (0xB, 0, 1, 1, 2, 0x100, 3)))
            >>> a.normalized() == b.normalized()
            True
        """
        from ._cpuid import filter_volatile

        return tuple(sorted(filter_volatile(self.cpuid or ()), key=lambda e: (e.leaf, e.subleaf)))

    def entry(self, leaf: int, subleaf: int = 0) -> Optional[CpuidEntry]:
        """KVM's supported CPUID entry for ``leaf``/``subleaf`` as answered (``None``: not there),
        e.g. 0x8000001F for the AMD memory-encryption fields (C-bit position in EBX[5:0]).

        Example:
            >>> CpuRecord(cpuid=((0x8000001F, 0, 0, 0x1B, 0x4033, 0, 0),)).entry(0x8000001F).ebx & 0x3F
            51
        """
        from ._cpuid import find_entry  # the one lookup (KVM's significant-index rule)

        return find_entry(self.cpuid or (), leaf, subleaf)

    def feature_msr(self, index: int) -> Optional[int]:
        """The value KVM_GET_MSRS read for feature MSR ``index`` (``None``: not read).

        Example:
            >>> CpuRecord(feature_msrs=((0x10A, 0x69),)).feature_msr(0x10A)
            105
        """
        return dict(self.feature_msrs or ()).get(index)

    def failure(self, ioctl: str) -> Optional[IoctlFailure]:
        """The recorded failure of ``ioctl``, if it failed.

        Example:
            >>> CpuRecord(failed=(IoctlFailure("KVM_GET_EMULATED_CPUID", 25),)).failure("KVM_GET_EMULATED_CPUID").errno
            25
        """
        return next((f for f in self.failed if f.ioctl == ioctl), None)

    def to_dict(self) -> Dict[str, Any]:
        """The raw part of a snapshot's ``cpu`` section (keys in a fixed order; integers as answered).

        Example:
            >>> CpuRecord(cpuid=((0, 0, 0, 1, 2, 3, 4),), tsc_khz=1000).to_dict()["cpuid"]
            [{'function': 0, 'index': 0, 'flags': 0, 'eax': 1, 'ebx': 2, 'ecx': 3, 'edx': 4}]
        """
        return {
            "cpuid": _entries_out(self.cpuid),
            "emulated_cpuid": _entries_out(self.emulated_cpuid),
            "msrs": None if self.msrs is None else list(self.msrs),
            "feature_msr_indices": None if self.feature_msr_indices is None else list(self.feature_msr_indices),
            "feature_msrs": None if self.feature_msrs is None
            else [{"index": index, "value": value} for index, value in self.feature_msrs],
            "xcomp_guest_supp": self.xcomp_guest_supp,
            "tsc_khz": self.tsc_khz,
            "host_cpuid": _entries_out(self.host_cpuid),
            "host_cpuid_source": self.host_cpuid_source,
            "host_flags": None if self.host_flags is None else list(self.host_flags),
            "failed": [{"ioctl": f.ioctl, "errno": f.errno} for f in self.failed],
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Any, check: Checker, at: str, extra: Sequence[str] = ()) -> CpuRecord:
        """Read :meth:`to_dict`'s shape strictly; ``check`` raises the caller's error naming the field.

        ``extra`` keys are allowed and left to the caller (a snapshot's ``decoded``). Keys of
        this shape may be absent (read as not recorded), never unknown.

        Example:
            >>> from kvmprobe._validate import Checker
            >>> check = Checker(lambda field, message, hint: ValueError(f"{field}: {message}"))
            >>> record = CpuRecord(cpuid=((1, 0, 0, 0x806EC, 0, 1, 0),), tsc_khz=2_500_000)
            >>> CpuRecord.from_dict(record.to_dict(), check, "$.cpu") == record
            True
            >>> CpuRecord.from_dict({"tsc_khz": -1}, check, "$.cpu")
            Traceback (most recent call last):
            ...
            ValueError: $.cpu.tsc_khz: ...
        """
        section = check.mapping(data, at)
        check.keys(section, at, _KEYS + tuple(extra))

        def get(key: str) -> Any:
            return section.get(key)

        def integers(key: str, high: int) -> Optional[Tuple[int, ...]]:
            rows = get(key)
            if rows is None:
                return None
            rows = _bounded(check, rows, f"{at}.{key}")
            if not rows or (_INT_ONLY.issuperset(map(type, rows)) and 0 <= min(rows) and max(rows) <= high):
                return tuple(rows)  # the usual case, checked at C speed
            return tuple(check.integer(v, f"{at}.{key}[{i}]", 0, high) for i, v in enumerate(rows))

        msr_rows = get("feature_msrs")
        feature_msrs = None
        if msr_rows is not None:
            pairs = []
            for i, row in enumerate(_bounded(check, msr_rows, f"{at}.feature_msrs")):
                where = f"{at}.feature_msrs[{i}]"
                row = check.mapping(row, where)
                check.keys(row, where, ("index", "value"), ("index", "value"))
                pairs.append((check.integer(row["index"], f"{where}.index", 0, _U32),
                              check.integer(row["value"], f"{where}.value", 0, _U64)))  # fmt: skip
            feature_msrs = tuple(pairs)
        flags = get("host_flags")
        failed = []
        for i, row in enumerate(_bounded(check, get("failed") or [], f"{at}.failed")):
            where = f"{at}.failed[{i}]"
            row = check.mapping(row, where)
            check.keys(row, where, ("ioctl", "errno"), ("ioctl", "errno"))
            name = check.text(row["ioctl"], f"{where}.ioctl")
            if not name.startswith("KVM_") or not name.replace("_", "").isalnum() or not name.isupper():
                check.fail(f"{where}.ioctl", f"{name!r} is not an ioctl name like KVM_GET_SUPPORTED_CPUID")
            failed.append(IoctlFailure(name, check.integer(row["errno"], f"{where}.errno", 1, 4095)))
        source = get("host_cpuid_source")
        return cls(
            cpuid=_entries_in(check, get("cpuid"), f"{at}.cpuid"),
            emulated_cpuid=_entries_in(check, get("emulated_cpuid"), f"{at}.emulated_cpuid"),
            msrs=integers("msrs", _U32),
            feature_msr_indices=integers("feature_msr_indices", _U32),
            feature_msrs=feature_msrs,
            xcomp_guest_supp=check.integer_or_null(get("xcomp_guest_supp"), f"{at}.xcomp_guest_supp", 0, _U64),
            tsc_khz=check.integer_or_null(get("tsc_khz"), f"{at}.tsc_khz", 0, 2**31 - 1),
            host_cpuid=_entries_in(check, get("host_cpuid"), f"{at}.host_cpuid"),
            host_cpuid_source=None if source is None else check.text(source, f"{at}.host_cpuid_source"),
            host_flags=None if flags is None else tuple(
                check.text(f, f"{at}.host_flags[{i}]") for i, f in enumerate(_bounded(check, flags, f"{at}.host_flags"))),
            failed=tuple(failed),
        )  # fmt: skip


def _bounded(check: Checker, item: Any, at: str) -> List[Any]:
    rows = check.array(item, at)
    if len(rows) > _MAX_ROWS:
        check.fail(at, f"{len(rows)} items, more than the {_MAX_ROWS} any kernel answers")
    return rows


def _entries_out(entries: Optional[Iterable[CpuidEntry]]) -> Optional[List[Dict[str, int]]]:
    if entries is None:
        return None
    return [dict(zip(_ENTRY_KEYS, entry)) for entry in entries]


def _entries_in(check: Checker, rows: Any, at: str) -> Optional[Tuple[CpuidEntry, ...]]:
    if rows is None:
        return None
    rows = _bounded(check, rows, at)
    quick = _quick_entries(rows)
    if quick is not None:
        return quick
    out = []
    for i, row in enumerate(rows):
        # A row _quick_entries did not take, checked at once if it is the (key, value) pairs a
        # lazy parse leaves (_validate.parse_json_lazy) or a plain dict: exactly the seven keys,
        # each a 32-bit integer. Anything else goes through the checks that name it.
        if type(row) is dict:
            keys, values = tuple(row), tuple(row.values())
        elif type(row) is tuple and len(row) == len(_ENTRY_KEYS):
            keys, values = zip(*row)  # the keys, in the order to_dict writes them
        else:
            keys, values = (), ()
        if keys == _ENTRY_KEYS and _INT_ONLY.issuperset(map(type, values)) and 0 <= min(values) and max(values) <= _U32:
            out.append(CpuidEntry(*values))
            continue
        where = f"{at}[{i}]"
        row = check.plain(row, where) if type(row) is tuple else check.mapping(row, where)
        check.keys(row, where, _ENTRY_KEYS, _ENTRY_KEYS)
        out.append(CpuidEntry(*(check.integer(row[key], f"{where}.{key}", 0, _U32) for key in _ENTRY_KEYS)))
    return tuple(out)


# Equal entries are one object, shared by every record read (the CPUs of a fleet's hosts of one
# model answer alike), up to this many: a bounded table, never grown by hostile input past it.
SHARED_ENTRIES = 8192
_shared = Shared(SHARED_ENTRIES)


def _quick_entries(rows: List[Any]) -> Optional[Tuple[CpuidEntry, ...]]:
    """Well-formed entries in one tight pass (a fleet reads thousands); ``None`` for anything else,
    which :func:`_entries_in` then checks field by field to name the bad one."""
    out = []
    share, new = _shared, tuple.__new__
    for row in rows:
        if row.__class__ is not dict or len(row) != 7:
            return None
        try:
            fields = (row["function"], row["index"], row["flags"], row["eax"], row["ebx"], row["ecx"], row["edx"])
        except KeyError:
            return None
        for field in fields:
            if field.__class__ is not int or not 0 <= field <= _U32:
                return None
        out.append(share(new(CpuidEntry, fields)))
    return tuple(out)


def _entries(rows: Iterable[Sequence[int]]) -> Tuple[CpuidEntry, ...]:
    return tuple(CpuidEntry(*row) for row in rows)


def read_kvm_cpu(kvm: CpuQueries, *, vm: Optional[TscQuery] = None) -> CpuRecord:
    """Ask an open KVM device every CPU question; record each failure instead of raising.

    Args:
        kvm: an open ``KvmDevice`` (or anything with its CPU queries).
        vm: an open VM of it: a scratch vCPU on it answers KVM_GET_TSC_KHZ (``None``: the TSC
            rate is not asked, no VM being allowed).

    Example:
        >>> from kvmprobe.device import KvmDevice
        >>> from kvmprobe.testing import FakeBackend
        >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend(cpuid=[(0, 0, 0, 7, 0, 0, 0)], tsc_khz=3000000)) as kvm:
        ...     with kvm.create_vm() as vm:
        ...         record = read_kvm_cpu(kvm, vm=vm)
        >>> record.cpuid, record.tsc_khz, [f.ioctl for f in record.failed][:2]
        ((CpuidEntry(leaf=0, subleaf=0, flags=0, eax=7, ebx=0, ecx=0, edx=0),), 3000000, ['KVM_GET_EMULATED_CPUID', 'KVM_GET_MSR_INDEX_LIST'])
    """
    failed: List[IoctlFailure] = []

    def ask(query: Any, *args: Any) -> Any:
        try:
            return query(*args)
        except IoctlFailed as err:
            failed.append(IoctlFailure(err.ioctl, err.errno or 5))
            return None

    cpuid = ask(kvm.supported_cpuid)
    emulated = ask(kvm.emulated_cpuid)
    msrs = ask(kvm.msr_index_list)
    indices = ask(kvm.msr_feature_index_list)
    values = None if indices is None else ask(kvm.get_msrs, indices)
    xcomp = ask(kvm.get_device_attr, 0, 0)  # KVM_X86_GRP_SYSTEM, KVM_X86_XCOMP_GUEST_SUPP
    khz = None
    if vm is not None:
        try:
            khz = ask(vm.tsc_khz)
        except KvmUnavailable as err:  # the scratch vCPU was refused: that question only failed
            failed.append(IoctlFailure("KVM_CREATE_VCPU", err.errno or 5))
    return CpuRecord(
        cpuid=None if cpuid is None else _entries(cpuid),
        emulated_cpuid=None if emulated is None else _entries(emulated),
        msrs=None if msrs is None else tuple(msrs),
        feature_msr_indices=None if indices is None else tuple(indices),
        feature_msrs=None if values is None else tuple((i, values[i]) for i in indices if i in values),
        xcomp_guest_supp=xcomp,
        tsc_khz=khz,
        failed=tuple(failed),
    )


# Range heads (SDM Vol. 2A CPUID: EAX of 0 and 0x80000000 is the highest leaf of the range; of
# 0x40000000 the highest hypervisor leaf, present only when CPUID.1:ECX.hypervisor[bit 31] is set).
_HEADS = (0x00000000, 0x80000000)
_HYPERVISOR = 0x40000000


def _wanted(kvm_entries: Iterable[CpuidEntry]) -> Dict[Tuple[int, int], int]:
    """(leaf, subleaf) -> flags: KVM's leaves and every leaf the feature table reads."""
    from ._cpuid_table import FEATURES, KVM_CPUID_FLAG_SIGNIFCANT_INDEX

    wanted: Dict[Tuple[int, int], int] = {}
    for entry in kvm_entries:
        wanted.setdefault((entry.leaf, entry.subleaf), entry.flags)
    for row in FEATURES:
        flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX if row.subleaf is not None else 0
        wanted.setdefault((row.leaf, row.subleaf or 0), flags)
    return wanted


def host_entries(cpuid: Any, kvm_entries: Iterable[CpuidEntry]) -> Tuple[CpuidEntry, ...]:
    """The host's CPUID for the leaves KVM answered and those the table reads, never past the
    highest leaf of a range (Intel answers such a leaf with the highest basic leaf's data)."""
    limits = {base: cpuid(base, 0)[0] for base in _HEADS}
    if cpuid(1, 0)[2] >> 31 & 1:
        limits[_HYPERVISOR] = cpuid(_HYPERVISOR, 0)[0]
    out = []
    for (leaf, subleaf), flags in sorted(_wanted(kvm_entries).items()):
        base = max((b for b in limits if b <= leaf), default=None)
        if base is None or leaf > limits[base] or (base == _HYPERVISOR and leaf >= 0x40000100):
            continue
        if base != _HYPERVISOR and (leaf >> 28) != (base >> 28):
            continue  # 0xC0000000 (Centaur) and 0x8086xxxx (Transmeta) ranges are not read
        out.append(CpuidEntry(leaf, subleaf, flags, *cpuid(leaf, subleaf)))
    return tuple(out)


def with_host(record: CpuRecord, root: str = "/", *, machine: Optional[str] = None) -> CpuRecord:
    """``record`` with the host's side read on this machine: its CPUID for the leaves that
    matter (the instruction, else ``/dev/cpu/0/cpuid``) and ``/proc/cpuinfo``'s flags under
    ``root``. What cannot be read is ``None``, and ``host_cpuid_source`` says why.

    Example:
        >>> import tempfile
        >>> rec = with_host(CpuRecord(), tempfile.mkdtemp(), machine="aarch64")
        >>> rec.host_cpuid, rec.host_cpuid_source, rec.host_flags
        (None, 'not readable: CPUID is an x86 instruction and this is aarch64', None)
    """
    from ._cpuid_insn import open_host_cpuid

    entries: Optional[Tuple[CpuidEntry, ...]] = None
    with open_host_cpuid(machine) as (cpuid, source):
        if cpuid is not None:
            try:
                entries = host_entries(cpuid, record.cpuid or ())
            except OSError as err:
                source = f"not readable: {source}: {err.strerror}"
    return record._replace(host_cpuid=entries, host_cpuid_source=source, host_flags=_proc_flags(root))


def live_host_side(record: Optional[CpuRecord], *, source: str, backend: str, root: str = "/") -> Optional[CpuRecord]:
    """``record`` with the host's side added where this machine is that host: a live probe
    (``source`` ``"live"``) through a real backend (:data:`REAL_BACKENDS`) whose record has no
    host side yet. A recorded or fake host's record is returned as it is: a fake backend's host
    is made up, and this machine's CPU says nothing about it.

    Example:
        >>> live_host_side(CpuRecord(), source="live", backend="fake") == CpuRecord()
        True
    """
    if record is None or record.host_cpuid_source is not None:
        return record
    if source == "live" and backend in REAL_BACKENDS:
        return with_host(record, root)
    return record


def _proc_flags(root: str) -> Optional[Tuple[str, ...]]:
    """The flags of the first CPU in ``/proc/cpuinfo`` under ``root`` (``None``: unreadable), read
    by the host reader's one reader of that file."""
    from ._host_files import Reader, first_cpu

    return first_cpu(Reader(root))[1]
