"""What differs between the CPUs two hosts' KVMs offer a guest, by name, after volatile filtering.

Imports ``_cpu_decode``, ``_cpuid`` and ``_cpuid_table``. Pure: two
:class:`~kvmprobe._cpu_decode.CpuInfo` in, :class:`CpuChange` values out, for ``diff``.
Every comparison is a set or dict operation over the two hosts' items (linear time); CPUID
entries are compared after :func:`~kvmprobe._cpuid.filter_volatile`, so two identical hosts
(or one host asked on two CPUs) are equal.
"""

from __future__ import annotations

from ._cpu_decode import CpuInfo, FeatureMsr
from ._cpuid import arch_capabilities
from ._cpuid_table import FEATURES, MSR_IA32_ARCH_CAPABILITIES, REGISTERS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, NamedTuple, Optional, Tuple
else:
    from ._value import NamedTuple

__all__ = ["CpuChange", "TSC_TOLERANCE_PPM", "diff_cpus"]

#: The TSC rate difference every VMM and KVM itself absorb without scaling: 250 ppm (Linux
#: arch/x86/kvm/x86.c ``tsc_tolerance_ppm``; QEMU target/i386/kvm/kvm.c ``freq_within_bounds``;
#: Firecracker vcpu.rs ``TSC_KHZ_TOL_NUMERATOR``/``DENOMINATOR``).
TSC_TOLERANCE_PPM = 250

# Feature bits by (leaf, subleaf, register): the part of a register the feature table names.
_NAMED: Dict[Tuple[int, int, str], int] = {}
for _row in FEATURES:
    _key = (_row.leaf, _row.subleaf or 0, _row.register)
    _NAMED[_key] = _NAMED.get(_key, 0) | 1 << _row.bit
_ORDER = {row.name: i for i, row in enumerate(FEATURES)}


class CpuChange(NamedTuple):
    """One CPU difference between host A and host B.

    ``kind`` is one of ``model``, ``feature``, ``xsave``, ``feature_msr``, ``msr``, ``tsc``,
    ``cpuid``; ``a``/``b`` the values on each side (``None``: absent there).

    Example:
        >>> CpuChange("feature", "avx512f", True, False).describe()
        'avx512f: offered on A, not on B'
    """

    kind: str
    name: str
    a: Any
    b: Any
    detail: str = ""

    def describe(self) -> str:
        """One line naming the difference.

        Example:
            >>> CpuChange("xsave", "amx_tiledata", False, True).describe()
            'XSAVE component amx_tiledata: usable on B, not on A'
        """
        if self.kind in ("feature", "xsave", "msr"):
            what = {"feature": "{}", "xsave": "XSAVE component {}", "msr": "MSR {} (KVM_GET_MSR_INDEX_LIST)"}
            verb = {"feature": "offered", "xsave": "usable", "msr": "listed"}[self.kind]
            where, other = ("A", "B") if self.a else ("B", "A")
            return f"{what[self.kind].format(self.name)}: {verb} on {where}, not on {other}"
        text = f"{self.name}: {_shown(self.a)} -> {_shown(self.b)}"
        return f"{text} ({self.detail})" if self.detail else text

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: kind, name, a, b, detail, and the one-line description."""
        return {"kind": self.kind, "name": self.name, "a": self.a, "b": self.b, "detail": self.detail,
                "describe": self.describe()}  # fmt: skip


def _shown(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, int) and not isinstance(value, bool):
        return hex(value)
    return str(value)


def _model(info: CpuInfo) -> Optional[str]:
    if info.vendor is None:
        return None
    return f"{info.vendor} family {info.family} model {info.model} stepping {info.stepping}"


def _msr_detail(index: int, a: Optional[int], b: Optional[int]) -> str:
    if index != MSR_IA32_ARCH_CAPABILITIES or a is None or b is None:
        return ""
    gained = [n for n in arch_capabilities(b & ~a)]
    lost = [n for n in arch_capabilities(a & ~b)]
    return " ".join([f"+{n}" for n in gained] + [f"-{n}" for n in lost])


def _tsc(a: Optional[int], b: Optional[int], changes: List[CpuChange], notes: List[str]) -> None:
    if a is None or b is None:
        if a is not None or b is not None:
            notes.append(f"TSC rate: only {'A' if a is not None else 'B'} recorded it; not compared")
        return
    if a == b:
        return
    ppm = abs(b - a) * 1_000_000 / a if a else float("inf")
    if ppm <= TSC_TOLERANCE_PPM:
        notes.append(f"TSC rate: {a} kHz -> {b} kHz, {ppm:.0f} ppm: within the {TSC_TOLERANCE_PPM} ppm "
                     "KVM and VMMs absorb without scaling")  # fmt: skip
        return
    changes.append(CpuChange("tsc", "TSC rate (kHz)", a, b,
                             f"{ppm:.0f} ppm; above {TSC_TOLERANCE_PPM} ppm a restored guest needs TSC scaling "
                             "(KVM_CAP_TSC_CONTROL)"))  # fmt: skip


def _cpuid_rest(a: CpuInfo, b: CpuInfo, changes: List[CpuChange]) -> None:
    """Differences the named features do not explain: whole leaves, and unnamed bits."""
    left = {(e.leaf, e.subleaf): e for e in a.normalized}
    right = {(e.leaf, e.subleaf): e for e in b.normalized}
    for key in sorted(left.keys() | right.keys()):
        name = f"CPUID {key[0]:#x}.{key[1]}"
        x, y = left.get(key), right.get(key)
        if x is None or y is None:
            changes.append(CpuChange("cpuid", name, None if x is None else "present", None if y is None else "present"))
            continue
        for register in REGISTERS:
            mask = ~_NAMED.get((key[0], key[1], register), 0)
            u, v = getattr(x, register) & mask, getattr(y, register) & mask
            if u != v:
                changes.append(CpuChange("cpuid", f"{name} {register} (bits no feature name covers)", u, v))


def diff_cpus(a: Optional[CpuInfo], b: Optional[CpuInfo]) -> Tuple[List[CpuChange], List[str]]:
    """The CPU differences between host A and host B, and notes on what could not be compared.

    Example:
        >>> from kvmprobe._cpu_decode import decode
        >>> from kvmprobe._fake_cpu import fake_cpu_record
        >>> a = decode(fake_cpu_record(["avx512f", "avx2"], xsave=0xE7, tsc_khz=2600000), arch="x86_64", source="A")
        >>> b = decode(fake_cpu_record(["avx2"], xsave=0x7, tsc_khz=2600100), arch="x86_64", source="B")
        >>> changes, notes = diff_cpus(a, b)
        >>> [c.describe() for c in changes if c.kind != "cpuid"]
        ['avx512f: offered on A, not on B', 'XSAVE component opmask: usable on A, not on B', 'XSAVE component zmm_hi256: usable on A, not on B', 'XSAVE component hi16_zmm: usable on A, not on B']
        >>> notes
        ['TSC rate: 2600000 kHz -> 2600100 kHz, 38 ppm: within the 250 ppm KVM and VMMs absorb without scaling']
    """
    notes: List[str] = []
    if a is None or b is None or not a.readable or not b.readable:
        recorded = [side for side, info in (("A", a), ("B", b)) if info is not None and info.readable]
        if len(recorded) == 1:
            notes.append(f"CPU data: only {recorded[0]} recorded it; not compared")
        return [], notes
    changes: List[CpuChange] = []
    if _model(a) != _model(b):
        changes.append(CpuChange("model", "CPU model", _model(a), _model(b)))
    for name in sorted(a.features ^ b.features, key=_ORDER.__getitem__):
        changes.append(CpuChange("feature", name, name in a.features, name in b.features))
    xa, xb = set(a.xsave), set(b.xsave)
    for component in [c for c in a.xsave if c not in xb] + [c for c in b.xsave if c not in xa]:
        changes.append(CpuChange("xsave", component, component in xa, component in xb))
    ma: Dict[int, FeatureMsr] = {m.msr: m for m in a.feature_msrs}
    mb: Dict[int, FeatureMsr] = {m.msr: m for m in b.feature_msrs}
    for index in sorted(ma.keys() | mb.keys()):
        va = ma[index].value if index in ma else None
        vb = mb[index].value if index in mb else None
        if va != vb:
            name = (ma.get(index) or mb[index]).name
            changes.append(CpuChange("feature_msr", f"{name} ({index:#x})", va, vb, _msr_detail(index, va, vb)))
    if a.msrs is not None and b.msrs is not None:
        la, lb = set(a.msrs), set(b.msrs)
        for index in sorted(la ^ lb):
            changes.append(CpuChange("msr", f"{index:#x}", index in la, index in lb))
    _tsc(a.tsc_khz, b.tsc_khz, changes, notes)
    _cpuid_rest(a, b, changes)
    return changes, notes
