"""Real CPUs for the fleet tests and the fleet benchmark: Firecracker's fingerprints as CPU records.

tests/data/firecracker/fingerprints/ holds Firecracker's ``cpu-template-helper`` fingerprints of
five real hosts (Cascade Lake, Ice Lake, Sapphire Rapids, Milan, Genoa; Linux 6.1 hosts): the
guest CPUID and MSRs Firecracker gives there, every register written out in full (32 or 64
characters of 0 and 1) in its template syntax (see MANIFEST.md there). They are guest views, not
raw KVM_GET_SUPPORTED_CPUID, which is what a baseline of several CPU generations needs to be
tested against: real feature sets of real CPUs. Read here with ``int(bits, 2)``, not with
kvmprobe's template reader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

from kvmprobe._cpu_record import CpuRecord
from kvmprobe._kvm_structs import CpuidEntry

DATA = Path(__file__).resolve().parent / "data" / "firecracker"
FINGERPRINTS = sorted((DATA / "fingerprints").glob("fingerprint_*.json"))
_REGISTERS = ("eax", "ebx", "ecx", "edx")
_ARCH_CAPABILITIES = 0x10A


def _bits(text: str, width: int) -> int:
    digits = text[2:] if text.startswith("0b") else text
    digits = digits.replace("_", "")
    if len(digits) != width or set(digits) - {"0", "1"}:
        raise ValueError(f"a fingerprint register is written out in full: {text!r}")
    return int(digits, 2)


def fingerprint_record(path: Path) -> CpuRecord:
    """The CPU record of one fingerprint (its CPUID as KVM would list it, and IA32_ARCH_CAPABILITIES)."""
    config = json.loads(path.read_text())["guest_cpu_config"]
    entries: List[CpuidEntry] = []
    for leaf in config["cpuid_modifiers"]:
        regs: Dict[str, int] = dict.fromkeys(_REGISTERS, 0)
        for mod in leaf["modifiers"]:
            regs[mod["register"]] = _bits(mod["bitmap"], 32)
        entries.append(CpuidEntry(int(leaf["leaf"], 16), int(leaf["subleaf"], 16), leaf["flags"],
                                  *(regs[r] for r in _REGISTERS)))  # fmt: skip
    msrs = {int(m["addr"], 16): _bits(m["bitmap"], 64) for m in config["msr_modifiers"]}
    feature: Tuple[Tuple[int, int], ...] = ()
    if _ARCH_CAPABILITIES in msrs:
        feature = ((_ARCH_CAPABILITIES, msrs[_ARCH_CAPABILITIES]),)
    return CpuRecord(
        cpuid=tuple(entries),
        msrs=tuple(sorted(msrs)),
        feature_msr_indices=tuple(index for index, _ in feature),
        feature_msrs=feature,
    )


def name_of(path: Path) -> str:
    """``INTEL_CASCADELAKE`` for its fingerprint file."""
    return path.stem[len("fingerprint_"):].rsplit("_", 1)[0]
