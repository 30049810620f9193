"""The CPUID table against this CPU: the CPUID instruction (run by a C program compiled here)
decoded with the table, compared with the flags the kernel shows in /proc/cpuinfo.

The CPUID path is the test's own (``hardware._raw_x86``): a few lines of C with inline asm,
pinned to one CPU, and /proc/cpuinfo read for that same CPU. These tests need no /dev/kvm (only
the feature-MSR one does); they skip where the machine is not x86_64 or gcc is missing.
"""

from __future__ import annotations

import os
import platform
import re
import struct
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Set, Tuple

import pytest

from _helpers import raw_check_extension
from hardware import _raw_x86 as raw
from kvmprobe import _cpuid_table as table
from kvmprobe._cpuid import features_of, filter_volatile

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="CPUID is an x86 instruction")

Entry = raw.Entry


def host_entries(program: Path, cpu: int, wanted: Sequence[Tuple[int, int]]) -> List[Entry]:
    """The range heads, then every wanted (leaf, subleaf) its range announces (never past the maximum,
    where Intel parts repeat the highest basic leaf); the KVM range only when leaf 1 says there
    is a hypervisor and 0x40000000 carries KVM's signature."""
    heads = {e[0]: e for e in raw.run_cpuid(program, cpu, [(0, 0), (1, 0), (0x80000000, 0)])}
    ranges = [(0, heads[0][3]), (0x80000000, heads[0x80000000][3])]
    if heads[1][5] >> 31 & 1:
        (kvm,) = raw.run_cpuid(program, cpu, [(table.KVM_CPUID_SIGNATURE, 0)])
        if struct.pack("<3I", *kvm[4:7]) == table.KVM_SIGNATURE:
            ranges.append((table.KVM_CPUID_SIGNATURE, kvm[3]))
    ok = sorted({q for q in wanted if any(base <= q[0] <= top for base, top in ranges)})
    return [heads[0], heads[0x80000000]] + raw.run_cpuid(program, cpu, ok)


def table_leaves() -> List[Tuple[int, int]]:
    return sorted({(row.leaf, row.subleaf or 0) for row in table.FEATURES})


def proc_cpuinfo_flags(cpu: int) -> Set[str]:
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        blocks = handle.read().split("\n\n")
    for block in blocks:
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        if fields.get("processor") == str(cpu):
            return set(fields["flags"].split())
    raise AssertionError(f"/proc/cpuinfo has no processor {cpu}")


@pytest.fixture(scope="module")
def cpu() -> int:
    return min(os.sched_getaffinity(0))


# CPUID sets these but the kernel may clear them, so /proc/cpuinfo need not show them.
CLEARED_BY_KERNEL = {
    "rdseed": "cleared on AMD Zen 5 for its RDSEED erratum (arch/x86/kernel/cpu/amd.c, 2025)",
    "x2apic": "cleared when x2APIC mode is off (nox2apic, firmware)",
    "la57": "cleared unless 5-level paging is in use (no5lvl)",
    "pku": "cleared without protection keys (nopku, CONFIG_X86_INTEL_MEMORY_PROTECTION_KEYS=n)",
    "hle": "cleared when TSX is off (tsx=off, the default on parts affected by TAA)",
    "rtm": "cleared when TSX is off (tsx=off, the default on parts affected by TAA)",
    "sgx": "cleared when firmware leaves SGX off, or CONFIG_X86_SGX=n",
    "sgx_lc": "cleared when firmware leaves SGX launch control off",
    "vmx": "cleared when firmware disables VMX in IA32_FEAT_CTL",
    "fred": "cleared unless FRED is enabled (fred=on)",
    "ibt": "cleared without kernel IBT (ibt=off, CONFIG_X86_KERNEL_IBT=n)",
    "lam": "cleared with CONFIG_ADDRESS_MASKING=n",
    "umip": "cleared with CONFIG_X86_UMIP=n",
    "tsc_deadline_timer": "cleared on parts with the TSC-deadline erratum (arch/x86/kernel/apic/apic.c)",
    "sme": "cleared unless memory encryption is enabled in MSR_AMD64_SYSCFG (arch/x86/kernel/cpu/amd.c)",
    "sev": "cleared unless memory encryption is enabled in MSR_AMD64_SYSCFG (arch/x86/kernel/cpu/amd.c)",
    "sev_es": "cleared unless memory encryption is enabled in MSR_AMD64_SYSCFG (arch/x86/kernel/cpu/amd.c)",
    "sev_snp": "cleared unless SNP is enabled by firmware and the kernel (arch/x86/kernel/cpu/amd.c)",
    "amd_ppin": "cleared when firmware left PPIN disabled or locked (ppin_init)",
}

# The kernel shows these even where CPUID does not set them.
SET_BY_KERNEL = {
    "arat": "forced on for AMD family > 0x11 (arch/x86/kernel/cpu/amd.c)",
}

# The cpufeatures.h the table follows is from the 6.14/6.15 development cycle: an older kernel
# names fewer bits, so it may leave out a flag the table expects.
TABLE_KERNEL = (6, 15)


def running_kernel() -> Tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", os.uname().release)
    assert match, os.uname().release
    return int(match.group(1)), int(match.group(2))


def test_every_shown_feature_cpuid_sets_is_in_proc_cpuinfo(cpuid_program: Path, cpu: int) -> None:
    if running_kernel() < TABLE_KERNEL:
        pytest.skip(f"kernel {os.uname().release} predates the table's cpufeatures.h {TABLE_KERNEL}")
    shown = {row.name for row in table.FEATURES if not row.hidden}
    set_by_cpuid = features_of(host_entries(cpuid_program, cpu, table_leaves())) & shown
    missing = sorted(set_by_cpuid - proc_cpuinfo_flags(cpu) - set(CLEARED_BY_KERNEL))
    assert missing == [], "CPUID sets these, /proc/cpuinfo does not show them: a wrong bit or name?"
    assert len(set_by_cpuid) >= 40  # a real comparison, not an empty one


def test_every_proc_cpuinfo_flag_the_table_knows_is_set_by_cpuid(cpuid_program: Path, cpu: int) -> None:
    known = {row.name for row in table.FEATURES}
    flags = proc_cpuinfo_flags(cpu) & known
    set_by_cpuid = features_of(host_entries(cpuid_program, cpu, table_leaves()))
    assert sorted(flags - set_by_cpuid - set(SET_BY_KERNEL)) == []
    assert len(flags) >= 40


def test_hidden_rows_are_not_proc_cpuinfo_flags(cpu: int) -> None:
    hidden = {row.name for row in table.FEATURES if row.hidden}
    assert sorted(hidden & proc_cpuinfo_flags(cpu)) == []


def all_leaves(program: Path, cpu: int) -> List[Entry]:
    """Every leaf this CPU announces, with the first subleaves of the indexed ones."""
    wanted = [(leaf, sub) for leaf in range(0, 0x30) for sub in (range(4) if leaf in raw.INDEXED else (0,))]
    wanted += [(leaf, sub) for leaf in range(0x80000000, 0x80000030)
               for sub in (range(4) if leaf in raw.INDEXED else (0,))]
    wanted += [(0x40000000, 0), (0x40000001, 0)]
    return host_entries(program, cpu, wanted)


def test_filter_volatile_makes_every_cpu_of_this_host_equal(cpuid_program: Path) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("one CPU to run on: nothing to compare")
    cpus = cpus[:2] + cpus[-2:] if len(cpus) > 4 else cpus
    dumps: Dict[int, List[Entry]] = {c: all_leaves(cpuid_program, c) for c in cpus}
    first = dumps[cpus[0]]
    leaf7 = next(e for e in first if e[:2] == (7, 0))
    if leaf7[6] >> 15 & 1:
        pytest.skip("a hybrid CPU (CPUID 7.0 EDX[15]): its core types differ in caches and more")
    filtered = {c: filter_volatile(d) for c, d in dumps.items()}
    for c in cpus[1:]:
        differ = [(a, b) for a, b in zip(filtered[cpus[0]], filtered[c]) if a != b]
        assert differ == [], f"CPU {cpus[0]} and CPU {c} differ after filtering"


KVM_CAP_GET_MSR_FEATURES = 153


@pytest.fixture
def kvm_fd() -> Iterator[int]:
    fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


@pytest.mark.kvm
def test_every_feature_msr_kvm_lists_is_in_the_table(kvm_fd: int) -> None:
    if not raw_check_extension(kvm_fd, KVM_CAP_GET_MSR_FEATURES):
        pytest.skip("KVM_CAP_GET_MSR_FEATURES is 0 here")
    indices = raw.msr_list(kvm_fd, raw.KVM_GET_MSR_FEATURE_INDEX_LIST)
    count = len(indices)
    assert count > 0
    assert sorted(hex(i) for i in indices if i not in table.FEATURE_MSRS) == []
