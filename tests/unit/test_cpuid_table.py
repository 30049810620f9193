"""The CPUID tables against independent sources readable here, and the decode helpers.

Independent sources: GCC's ``<cpuid.h>`` (``bit_*`` constants under leaf/register comments)
and the installed uapi ``<asm/kvm_para.h>`` (``KVM_FEATURE_*``, ``KVM_HINTS_*``). Each test
skips, with the reason, where its header is absent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Dict, List, Optional, Set, Tuple

import pytest

from kvmprobe import _cpuid_table as table
from kvmprobe._cpuid import CpuidEntry, arch_capabilities, features_of, filter_volatile, lookup, xsave_components
from kvmprobe.errors import UnknownCpuFeature

Where = Tuple[int, int, str, int]  # leaf, subleaf (0 when not indexed), register, bit


def _table_positions() -> Dict[str, Where]:
    return {row.name: (row.leaf, row.subleaf or 0, row.register, row.bit) for row in table.FEATURES}


# --- GCC's <cpuid.h> -----------------------------------------------------------------------

# GCC's name -> the Linux /proc/cpuinfo name, where they differ beyond case.
GCC_TO_LINUX = {
    "SSE3": "pni", "PCLMUL": "pclmulqdq", "LZCNT": "abm", "CMPXCHG16B": "cx16", "RDRND": "rdrand",
    "CMPXCHG8B": "cx8", "FXSAVE": "fxsr", "PRFCHW": "3dnowprefetch", "3DNOWP": "3dnowext",
    "BMI": "bmi1", "SHA": "sha_ni", "AVX512VBMI2": "avx512_vbmi2", "AVX512VNNI": "avx512_vnni",
    "AVX512BITALG": "avx512_bitalg", "AVX512VPOPCNTDQ": "avx512_vpopcntdq",
    "AVX5124VNNIW": "avx512_4vnniw", "AVX5124FMAPS": "avx512_4fmaps",
    "AVX512VP2INTERSECT": "avx512_vp2intersect", "AVX512FP16": "avx512_fp16", "AVXVNNI": "avx_vnni",
    "AVX512BF16": "avx512_bf16", "AVXIFMA": "avx_ifma", "WIDEKL": "wide_kl",
}

# Where GCC's comments do not say the leaf, or say a wrong one (checked against the SDM/APM):
# LZCNT is filed under leaf 1 %ecx, but is CPUID 0x80000001 ECX bit 5 (ABM), not VMX.
GCC_MISFILED = {"LZCNT": (0x80000001, 0, "ecx")}

_DEFINE = re.compile(r"#define\s+bit_(\w+)\s+\(\s*1u?\s*<<\s*(\d+)\s*\)")
_LEAF = re.compile(r"%eax\s*==\s*(0x[0-9a-fA-F]+|\d+)(?:\s*,\s*%ecx\s*==\s*(0x[0-9a-fA-F]+|\d+))?")
_REGISTER = re.compile(r"/\*\s*%(eax|ebx|ecx|edx)\s*\*/")


def parse_gcc_cpuid_h(text: str) -> Dict[str, Where]:
    """GCC name -> (leaf, subleaf, register, bit), following the file's section comments.

    The file's layout rules, read off the header itself: before any "(%eax == N)" heading,
    "%eax" bits are CPUID.(7,1):EAX (leaf 1 EAX holds the signature, no feature bits) and
    "%ecx"/"%edx" bits are leaf 1; "%ebx" under the 0x80000001 heading is 0x80000008 EBX
    (0x80000001 EBX has no feature bits); a heading with no register comment lists EAX bits.
    """
    leaf: Optional[int] = None
    subleaf = 0
    register: Optional[str] = None
    found: Dict[str, Where] = {}
    for line in text.splitlines():
        heading = _LEAF.search(line) if line.lstrip().startswith("/*") else None
        if heading:
            leaf, subleaf, register = int(heading.group(1), 0), int(heading.group(2) or "0", 0), None
            continue
        reg = _REGISTER.search(line)
        if reg:
            register = reg.group(1)
            continue
        define = _DEFINE.search(line)
        if not define:
            continue
        name, bit = define.group(1), int(define.group(2))
        where_reg = register or "eax"
        if leaf is None:
            where_leaf, where_sub = (7, 1) if where_reg == "eax" else (1, 0)
        else:
            where_leaf, where_sub = (0x80000008 if (leaf, where_reg) == (0x80000001, "ebx") else leaf), subleaf
        if name in GCC_MISFILED:
            where_leaf, where_sub, where_reg = GCC_MISFILED[name]
        found[name] = (where_leaf, where_sub, where_reg, bit)
    return found


def _gcc_cpuid_h() -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: no <cpuid.h> to compare with")
    include = subprocess.run([gcc, "-print-file-name=include"], capture_output=True, text=True,
                             check=True, timeout=60).stdout.strip()
    path = os.path.join(include, "cpuid.h")
    if not os.path.exists(path):
        pytest.skip("gcc has no <cpuid.h> in its include directory")
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def test_feature_bits_agree_with_gcc_cpuid_h() -> None:
    gcc = parse_gcc_cpuid_h(_gcc_cpuid_h())
    mine = _table_positions()
    compared: List[str] = []
    wrong = []
    for gcc_name, where in sorted(gcc.items()):
        name = GCC_TO_LINUX.get(gcc_name, gcc_name.lower())
        if name not in mine:
            continue  # a feature the kernel's tables (and so ours) do not name
        compared.append(name)
        if mine[name] != where:
            wrong.append((gcc_name, name, where, mine[name]))
    assert wrong == [], "table and GCC <cpuid.h> disagree: (gcc, ours, gcc's place, our place)"
    assert len(set(compared)) >= 80, sorted(compared)


def test_the_gcc_parser_reads_a_known_layout() -> None:
    text = """
/* %eax */
#define bit_AVXVNNI	(1 << 4)
/* %ecx */
#define bit_SSE3	(1 << 0)
#define bit_LZCNT	(1 << 5)
/* Extended Features (%eax == 0x80000001) */
/* %edx */
#define bit_3DNOW	(1u << 31)
/* %ebx  */
#define bit_CLZERO	(1 << 0)
/* Extended State Enumeration Sub-leaf (%eax == 0xd, %ecx == 1) */
#define bit_XSAVES	(1 << 3)
/* Keylocker leaf (%eax == 0x19) */
/* %ebx */
#define bit_AESKLE	( 1<<0 )
"""
    assert parse_gcc_cpuid_h(text) == {
        "AVXVNNI": (7, 1, "eax", 4), "SSE3": (1, 0, "ecx", 0), "LZCNT": (0x80000001, 0, "ecx", 5),
        "3DNOW": (0x80000001, 0, "edx", 31), "CLZERO": (0x80000008, 0, "ebx", 0),
        "XSAVES": (0xD, 1, "eax", 3), "AESKLE": (0x19, 0, "ebx", 0),
    }


# --- the uapi <asm/kvm_para.h> ----------------------------------------------------------------

KVM_PARA_H = ("/usr/include/x86_64-linux-gnu/asm/kvm_para.h", "/usr/include/asm/kvm_para.h")


def test_kvm_leaf_agrees_with_the_installed_kvm_para_h() -> None:
    path = next((p for p in KVM_PARA_H if os.path.exists(p)), None)
    if path is None:
        pytest.skip("no uapi <asm/kvm_para.h> is installed (linux-libc-dev)")
    with open(path, encoding="utf-8") as handle:
        header = dict(
            (m.group(1), int(m.group(2), 0))
            for m in re.finditer(r"#define\s+(KVM_(?:FEATURE|HINTS)_\w+)\s+(\d+)\b", handle.read())
        )
    rows = {row.c_name: row for row in table.FEATURES if row.source == "kvm_para.h"}
    both = sorted(set(rows) & set(header))
    assert [(c, rows[c].bit) for c in both] == [(c, header[c]) for c in both]
    assert all(rows[c].leaf == table.KVM_CPUID_FEATURES for c in both)
    assert {rows[c].register for c in both if c.startswith("KVM_HINTS_")} <= {"edx"}
    assert len(both) >= 16, both


# --- the table itself ---------------------------------------------------------------------------

NAME = re.compile(r"[a-z0-9_]+")


def test_rows_are_well_formed_and_unique() -> None:
    names: Set[str] = set()
    places: Set[Where] = set()
    for row in table.FEATURES:
        assert NAME.fullmatch(row.name), row
        assert row.register in table.REGISTERS and 0 <= row.bit < 32, row
        assert row.source in table.SOURCES, row
        assert row.name not in names, f"two rows named {row.name}"
        place = (row.leaf, row.subleaf or 0, row.register, row.bit)
        assert place not in places, f"two rows for {place}"
        names.add(row.name)
        places.add(place)
        if row.source != "cpufeatures.h":
            assert row.hidden, f"{row.name}: only cpufeatures.h names appear in /proc/cpuinfo"


def test_every_leaf_the_issue_asks_for_is_covered() -> None:
    covered = {(row.leaf, row.subleaf) for row in table.FEATURES}
    for leaf, subleaf in [(0x1, None), (0x6, None), (0x7, 0), (0x7, 1), (0xD, 1), (0x14, 0), (0x19, None),
                          (0x80000001, None), (0x80000007, None), (0x80000008, None), (0x8000001F, None),
                          (0x40000001, None)]:
        assert (leaf, subleaf) in covered, hex(leaf)


def test_side_tables_are_well_formed() -> None:
    assert sorted(table.XSAVE_COMPONENTS) == list(range(20))
    assert all(0 <= bit < 64 and NAME.fullmatch(n) for bit, n in table.ARCH_CAPABILITIES.items())
    assert len(set(table.XSAVE_COMPONENTS.values())) == 20
    assert len(set(table.ARCH_CAPABILITIES.values())) == len(table.ARCH_CAPABILITIES)
    assert table.FEATURE_MSRS[table.MSR_IA32_ARCH_CAPABILITIES] == "MSR_IA32_ARCH_CAPABILITIES"
    for field in table.VOLATILE:
        assert field.register in table.REGISTERS and 0 < field.mask <= 0xFFFFFFFF and field.why


# --- decoding -------------------------------------------------------------------------------

def test_features_of_names_set_bits_of_known_leaves() -> None:
    entries = [
        (0x0, 0, 0, 0xD, 0, 0, 0),
        (0x1, 0, 0, 0, 0, 1 << 0 | 1 << 27, 1 << 26),  # pni, osxsave (hidden), sse2
        (0x7, 0, 1, 1, 1 << 5, 0, 0),  # avx2
        (0x7, 1, 1, 0, 0, 0, 0),
        (0xD, 1, 1, 1 << 3, 0, 0, 0),  # xsaves
        (0x40000000, 0, 0, 0x40000001, 0x4B4D564B, 0x564B4D56, 0x4D),
        (0x40000001, 0, 0, 1 << 3, 0, 0, 1),  # kvmclock2, kvm_hint_dedicated
    ]
    assert features_of(entries) == {"pni", "osxsave", "sse2", "avx2", "xsaves", "kvmclock2", "kvm_hint_dedicated"}


def test_features_of_matches_the_index_only_where_it_is_significant() -> None:
    # 7.1 with the significant-index flag is not 7.0; leaf 1 without it answers any index.
    assert features_of([(0x7, 1, 1, 0, 1 << 5, 0, 0)]) == frozenset()
    assert features_of([(0x7, 1, 1, 1 << 4, 0, 0, 0)]) == {"avx_vnni"}
    assert features_of([(0x1, 3, 0, 0, 0, 1 << 28, 0)]) == {"avx"}


def test_features_of_ignores_leaves_above_the_announced_maximum() -> None:
    # An Intel CPU with maximum basic leaf 0xD answers CPUID 0x14 with leaf 0xD's data.
    stale = (0x14, 0, 1, 0, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    assert "ptwrite" not in features_of([(0x0, 0, 0, 0xD, 0, 0, 0), stale])
    assert "ptwrite" in features_of([(0x0, 0, 0, 0x14, 0, 0, 0), stale])


# Two CPUs of one dual-socket host, as CPUID reports them on each (a Zen 3 EPYC, trimmed):
# same features and topology shape, different APIC IDs, core and node IDs.
CPU_0 = [
    (0x1, 0, 0, 0x00A00F11, 0x00400800, 0x7EF8320B, 0x178BFBFF),
    (0xB, 0, 1, 0x1, 0x2, 0x100, 0x00),
    (0xB, 1, 1, 0x7, 0x80, 0x201, 0x00),
    (0x1F, 0, 1, 0x1, 0x2, 0x100, 0x00),
    (0x8000001E, 0, 0, 0x00, 0x100, 0x000, 0),
]
CPU_93 = [
    (0x1, 0, 0, 0x00A00F11, 0xBA400800, 0x7EF8320B, 0x178BFBFF),
    (0xB, 0, 1, 0x1, 0x2, 0x100, 0xBA),
    (0xB, 1, 1, 0x7, 0x80, 0x201, 0xBA),
    (0x1F, 0, 1, 0x1, 0x2, 0x100, 0xBA),
    (0x8000001E, 0, 0, 0xBA, 0x15D, 0x001, 0),
]


def test_filter_volatile_makes_two_cpus_of_one_host_equal() -> None:
    assert CPU_0 != CPU_93
    assert filter_volatile(CPU_0) == filter_volatile(CPU_93)
    assert hash(tuple(filter_volatile(CPU_0))) == hash(tuple(filter_volatile(CPU_93)))
    assert [tuple(e) for e in CPU_0] == CPU_0  # the input is untouched


def test_filter_volatile_keeps_what_differs_between_hosts() -> None:
    smaller = [list(e) for e in CPU_0]
    smaller[0][4] = 0x00200800  # 32 logical processors per package instead of 64
    fewer_features = [list(e) for e in CPU_0]
    fewer_features[0][5] &= ~(1 << 28)  # no AVX
    for other in (smaller, fewer_features):
        assert filter_volatile(CPU_0) != filter_volatile(other)
    assert features_of(filter_volatile(CPU_0)) == features_of(CPU_0)


def test_filter_volatile_returns_entries_in_order() -> None:
    out = filter_volatile(CPU_93)
    assert [type(e) for e in out] == [CpuidEntry] * len(CPU_93)
    assert [(e.leaf, e.subleaf) for e in out] == [(e[0], e[1]) for e in CPU_93]


def test_xsave_components_and_arch_capabilities() -> None:
    assert xsave_components(0) == ()
    assert xsave_components(0x602E7) == ("x87", "sse", "avx", "opmask", "zmm_hi256", "hi16_zmm", "pkru",
                                         "amx_tilecfg", "amx_tiledata")
    assert xsave_components(1 << 63) == ("bit63",)
    assert arch_capabilities(1 << 62 | 1 << 9) == ("bit9", "its_no")
    with pytest.raises(ValueError):
        arch_capabilities(-1)


@pytest.mark.parametrize("spelling", ["sse4_1", "SSE4_1", "X86_FEATURE_XMM4_1", "xmm4_1", " sse4-1 "])
def test_lookup_takes_every_spelling(spelling: str) -> None:
    assert lookup(spelling).name == "sse4_1"


def test_lookup_takes_qemu_and_uapi_names_of_kvm_bits() -> None:
    assert lookup("kvm-pv-eoi") is lookup("KVM_FEATURE_PV_EOI") is lookup("pv_eoi")
    assert lookup("kvmclock-stable-bit").bit == 24


def test_lookup_suggests_close_names() -> None:
    with pytest.raises(UnknownCpuFeature) as caught:
        lookup("avx512_vnni_")
    assert caught.value.suggestions[0] == "avx512_vnni"
    assert isinstance(caught.value, LookupError)
    with pytest.raises(UnknownCpuFeature) as nothing:
        lookup("qqqqqqqq")
    assert nothing.value.suggestions == [] and "/proc/cpuinfo" in nothing.value.hint
    with pytest.raises(UnknownCpuFeature):
        lookup(7)  # type: ignore[arg-type]

