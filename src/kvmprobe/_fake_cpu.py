"""Made-up and replayed CPU data for the fakes: a host whose guests get avx512f, without KVM.

Imports ``_cpu_record``, ``_cpuid``, ``_cpuid_table`` and ``_kvm_structs``. The public names are
in ``kvmprobe.testing`` (:func:`fake_cpu_record`); ``FakeBackend`` replays a record through
:func:`backend_answers` and answers the CPU ioctls with :func:`structure_answer`.
"""

from __future__ import annotations

import errno
import sys

from . import _kvm_structs as structs

from ._cpu_record import CpuRecord
from ._cpuid import CpuidEntry, lookup
from ._cpuid_table import KVM_CPUID_SIGNATURE, KVM_SIGNATURE, REGISTERS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterable, List, Mapping, Optional, Protocol, Sequence, Tuple
else:
    Protocol = object

__all__ = ["backend_answers", "fake_cpu_record", "structure_answer"]

# Register order inside an entry: function, index, flags, then eax..edx.
_REGISTER_AT = {name: 3 + i for i, name in enumerate(REGISTERS)}


def _set_bits(entries: Dict[Tuple[int, int], List[int]], names: Iterable[str], on: bool) -> None:
    for name in names:
        row = lookup(name)
        key = (row.leaf, row.subleaf or 0)
        flags = 1 if row.subleaf is not None else 0
        entry = entries.setdefault(key, [row.leaf, row.subleaf or 0, flags, 0, 0, 0, 0])
        if on:
            entry[_REGISTER_AT[row.register]] |= 1 << row.bit
        else:
            entry[_REGISTER_AT[row.register]] &= ~(1 << row.bit)


def _registers(text: bytes, order: Tuple[int, int, int]) -> Tuple[int, int, int]:
    """EBX, ECX, EDX holding 12 bytes of text, the bytes of each register at ``order``."""
    raw = text[:12].ljust(12, b"\0")
    words = [int.from_bytes(raw[i:i + 4], "little") for i in (0, 4, 8)]
    return words[order[0]], words[order[1]], words[order[2]]


def _with_heads(entries: Dict[Tuple[int, int], List[int]], vendor: str) -> None:
    """Range heads announcing every leaf present (EAX = the highest), as a CPU does: the vendor
    string is EBX, EDX, ECX (SDM leaf 00H); KVM's signature EBX, ECX, EDX (uapi asm/kvm_para.h)."""
    named = _registers(vendor.encode("ascii"), (0, 2, 1))
    for base, registers in ((0, named), (0x80000000, named), (KVM_CPUID_SIGNATURE, _registers(KVM_SIGNATURE, (0, 1, 2)))):
        top = max((leaf for leaf, _ in entries if leaf >> 28 == base >> 28 and leaf >= base), default=None)
        if top is None:
            continue
        head = entries.setdefault((base, 0), [base, 0, 0, 0, 0, 0, 0])
        head[3] = max(head[3], top)
        head[4], head[5], head[6] = registers


def fake_cpu_record(
    features: Optional[Iterable[str]] = None,
    *,
    base: Optional[CpuRecord] = None,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
    vendor: str = "GenuineIntel",
    signature: int = 0x000806EC,
    host_features: Optional[Iterable[str]] = None,
    emulated: Iterable[str] = (),
    xsave: Optional[int] = None,
    feature_msrs: Optional[Mapping[int, int]] = None,
    msrs: Sequence[int] = (),
    tsc_khz: Optional[int] = None,
) -> CpuRecord:
    """A CPU record for a fake host: KVM offers exactly ``features`` (any spelling
    ``kvmprobe._cpuid.lookup`` takes), or ``base``'s CPUID with ``add`` set and ``remove``
    cleared. ``host_features`` become the host's ``/proc/cpuinfo`` flags (``None``: the host
    side not recorded); ``emulated`` what KVM_GET_EMULATED_CPUID offers. A record made from
    names has the range heads a CPU would answer, the vendor, and CPUID.1:EAX ``signature``
    (default: a Kaby Lake, family 6 model 142 stepping 12).

    Raises:
        UnknownCpuFeature: a name the table does not know.

    Example:
        >>> from kvmprobe._cpu_decode import decode
        >>> info = decode(fake_cpu_record(["avx512f", "kvm_pv_eoi"], host_features=["avx512f", "amx_tile"]),
        ...               arch="x86_64", source="fake")
        >>> sorted(info.features), sorted(info.host_only), info.vendor, info.model
        (['avx512f', 'kvm_pv_eoi'], ['amx_tile'], 'GenuineIntel', 142)
    """
    entries: Dict[Tuple[int, int], List[int]] = {}
    if base is not None and base.cpuid is not None:
        for entry in base.cpuid:
            entries[(entry.leaf, entry.subleaf)] = list(entry)
    else:
        entries[(1, 0)] = [1, 0, 0, signature, 0, 0, 0]
    _set_bits(entries, features or (), True)
    _set_bits(entries, add, True)
    _set_bits(entries, remove, False)
    if base is None or base.cpuid is None:
        _with_heads(entries, vendor)
        if xsave is not None:
            entries[(0xD, 0)] = [0xD, 0, 1, xsave & 0xFFFFFFFF, 0, 0, xsave >> 32]
            _with_heads(entries, vendor)
    emulated_entries: Dict[Tuple[int, int], List[int]] = {}
    _set_bits(emulated_entries, emulated, True)
    cpuid = tuple(CpuidEntry(*entry) for entry in entries.values())
    given = dict(feature_msrs or {})
    return (base or CpuRecord())._replace(
        cpuid=cpuid,
        emulated_cpuid=tuple(CpuidEntry(*e) for e in emulated_entries.values()) if emulated else (
            base.emulated_cpuid if base is not None else None),
        msrs=tuple(msrs) if msrs else (base.msrs if base is not None else None),
        feature_msr_indices=tuple(given) if given else (base.feature_msr_indices if base is not None else None),
        feature_msrs=tuple(given.items()) if given else (base.feature_msrs if base is not None else None),
        xcomp_guest_supp=xsave if xsave is not None else (base.xcomp_guest_supp if base is not None else None),
        tsc_khz=tsc_khz if tsc_khz is not None else (base.tsc_khz if base is not None else None),
        host_flags=tuple(host_features) if host_features is not None else (base.host_flags if base is not None else None),
    )  # fmt: skip


def backend_answers(record: Optional[CpuRecord]) -> Dict[str, Any]:
    """``FakeBackend`` keyword arguments that replay ``record``: each answer as recorded, and
    each recorded failure again with its errno (``fail``).

    Example:
        >>> from kvmprobe._kvm_structs import IoctlFailure
        >>> answers = backend_answers(CpuRecord(cpuid=((0, 0, 0, 1, 2, 3, 4),), tsc_khz=5,
        ...                                     failed=(IoctlFailure("KVM_GET_EMULATED_CPUID", 25),)))
        >>> answers["cpuid"], answers["tsc_khz"], answers["fail"]
        ([(0, 0, 0, 1, 2, 3, 4)], 5, {'KVM_GET_EMULATED_CPUID': 25})
    """
    if record is None:
        return {}
    attrs: Optional[Dict[Tuple[int, int], int]] = {}
    if record.xcomp_guest_supp is not None:
        attrs = {(0, 0): record.xcomp_guest_supp}
    failed = {f.ioctl: f.errno for f in record.failed}
    if failed.get("KVM_GET_DEVICE_ATTR") in (errno.ENOTTY, errno.EINVAL):
        attrs = None
    values = dict(record.feature_msrs or ())
    return {
        "cpuid": None if record.cpuid is None else [tuple(e) for e in record.cpuid],
        "emulated_cpuid": None if record.emulated_cpuid is None else [tuple(e) for e in record.emulated_cpuid],
        "msrs": None if record.msrs is None else list(record.msrs),
        "feature_msrs": None if record.feature_msr_indices is None else {
            i: values[i] for i in record.feature_msr_indices if i in values},
        "device_attrs": attrs,
        "tsc_khz": record.tsc_khz,
        "fail": failed,
    }  # fmt: skip


class _FakeCpuData(Protocol):
    """What :func:`structure_answer` reads of a ``FakeBackend``."""

    cpuid: Optional[List[Tuple[int, ...]]]
    emulated_cpuid: Optional[List[Tuple[int, ...]]]
    msrs: Optional[List[int]]
    feature_msrs: Optional[Dict[int, int]]
    device_attrs: Optional[Dict[Tuple[int, int], int]]


def structure_answer(fake: _FakeCpuData, name: str, buffer: bytearray, pointers: Tuple[Tuple[int, int], ...]) -> Tuple[int, int]:
    """``(result, errno)`` of a system-fd structure ioctl, answered from a ``FakeBackend``'s CPU
    data with the kernel's rules: E2BIG (and, for the MSR lists, the count needed) when the
    buffer is too small, ENXIO for an unknown device attribute, ENOTTY for data left ``None``.

    Example:
        >>> from kvmprobe.testing import FakeBackend
        >>> buffer = structs.msr_list_buffer(1)
        >>> structure_answer(FakeBackend(msrs=[1, 2]), "KVM_GET_MSR_INDEX_LIST", buffer, ())
        (-1, 7)
        >>> structs.msr_list_count(buffer)
        2
    """
    if name in ("KVM_GET_SUPPORTED_CPUID", "KVM_GET_EMULATED_CPUID"):
        entries = fake.cpuid if name == "KVM_GET_SUPPORTED_CPUID" else fake.emulated_cpuid
        if entries is None:
            return -1, errno.ENOTTY
        room = structs.msr_list_count(buffer)  # kvm_cpuid2.nent: the same leading u32
        if room < len(entries) or room < 1:
            return -1, errno.E2BIG
        buffer[:] = structs.cpuid2_pack(entries, room)
        return 0, 0
    if name in ("KVM_GET_MSR_INDEX_LIST", "KVM_GET_MSR_FEATURE_INDEX_LIST"):
        indices = fake.msrs if name == "KVM_GET_MSR_INDEX_LIST" else (
            None if fake.feature_msrs is None else list(fake.feature_msrs))
        if indices is None:
            return -1, errno.ENOTTY
        room = structs.msr_list_count(buffer)
        buffer[0:4] = len(indices).to_bytes(4, sys.byteorder)  # the kernel writes the count first
        if room < len(indices):
            return -1, errno.E2BIG
        buffer[4:4 + 4 * len(indices)] = b"".join(i.to_bytes(4, sys.byteorder) for i in indices)
        return 0, 0
    if name == "KVM_GET_MSRS":
        if fake.feature_msrs is None:
            return -1, errno.ENOTTY
        for position, index in enumerate(structs.msrs_indices(buffer)):
            if index not in fake.feature_msrs:
                return position, 0  # KVM stops at the first MSR it cannot read
            structs.msrs_set(buffer, position, fake.feature_msrs[index])
        return len(structs.msrs_indices(buffer)), 0
    if name in ("KVM_HAS_DEVICE_ATTR", "KVM_GET_DEVICE_ATTR"):
        if fake.device_attrs is None:
            return -1, errno.ENOTTY
        _, group, attr = structs.device_attr_fields(buffer)
        if (group, attr) not in fake.device_attrs:
            return -1, errno.ENXIO
        if name == "KVM_GET_DEVICE_ATTR":
            if pointers != structs.DEVICE_ATTR_POINTERS:
                return -1, errno.EFAULT  # addr points nowhere the kernel could write
            structs.device_attr_set(buffer, fake.device_attrs[(group, attr)])
        return 0, 0
    return -1, errno.ENOTTY
