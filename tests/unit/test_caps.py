"""The capability table: its invariants, its lookups, and the kernel header cross-check."""

from __future__ import annotations

import csv
import os
import re
from typing import Dict

import pytest

from kvmprobe import Cap, UnknownCapability
from kvmprobe.caps import ARCHES, _fold

KVM_H = "/usr/include/linux/kvm.h"


# kvm-ioctls 0.25.0 added CounterOffset after the monorepo snapshot the reference TSV was
# gathered from (3ffc9b62: 0.24.0 plus DirtyLogRing); its release notes name it.
NEWER_THAN_THE_TSV = {"CounterOffset"}


def test_cap_rs_mirror_has_129_variants_first_in_order() -> None:
    in_rs = [cap for cap in Cap if cap.in_cap_rs]
    assert len(in_rs) == 129
    # cap.rs members come first, then only the kernel's other constants.
    assert list(Cap)[:129] == in_rs
    assert [c.rust_name for c in in_rs[:3]] == ["Irqchip", "Hlt", "MmuShadowCacheControl"]
    # cap.rs is not in numeric order; its tail is NestedState, X2ApicApi, DirtyLogRing, CounterOffset.
    assert [c.name for c in in_rs[-4:]] == ["NESTED_STATE", "X2APIC_API", "DIRTY_LOG_RING", "COUNTER_OFFSET"]


def test_a_former_name_finds_the_number_it_named() -> None:
    from kvmprobe.caps import FORMER_NAMES

    # Linux 4.12-4.16 called 143 KVM_CAP_X86_GUEST_MWAIT (torvalds/linux 668fffa3f838; 4d5422cea3b6 renamed it).
    assert int(Cap.lookup("KVM_CAP_X86_GUEST_MWAIT")) == 143 and Cap.lookup("x86_guest_mwait") is Cap.X86_DISABLE_EXITS
    for former, (cap, releases, why) in FORMER_NAMES.items():
        assert former not in Cap.__members__ and releases and why


def test_numbers_and_names_are_unique_and_retired_numbers_absent() -> None:
    numbers = [int(c) for c in Cap]
    assert len(numbers) == len(set(numbers))
    assert not {5, 17, 19, 20, 27, 28} & set(numbers)  # retired in the kernel
    folded = [_fold(c.name) for c in Cap] + [_fold(c.rust_name) for c in Cap if c.rust_name]
    owners: Dict[str, Cap] = {}
    for cap in Cap:
        for spelling in (cap.name, cap.rust_name):
            if spelling:
                assert owners.setdefault(_fold(spelling), cap) is cap, f"{spelling} is ambiguous"
    assert folded


def test_metadata_is_well_formed() -> None:
    for cap in Cap:
        assert cap.c_name == "KVM_CAP_" + cap.name
        assert cap.arches <= set(ARCHES), cap
        assert (3, 0) <= cap.since <= (8, 0), cap
        assert cap.since_text in (f"{cap.since[0]}.{cap.since[1]}", f"<={cap.since[0]}.{cap.since[1]}")


@pytest.mark.parametrize(
    "cap, since, rust, arches",
    [
        (Cap.IMMEDIATE_EXIT, (4, 11), "ImmediateExit", set()),
        (Cap.SPLIT_IRQCHIP, (4, 4), "SplitIrqchip", {"x86_64"}),
        (Cap.SET_GUEST_DEBUG, (3, 0), "SetGuestDebug", {"x86_64", "aarch64", "s390x"}),
        (Cap.GUEST_MEMFD, (6, 8), "GuestMemfd", set()),
        (Cap.ARM_SVE, (5, 2), "ArmSve", {"aarch64"}),
        (Cap.VM_TYPES, (6, 8), None, set()),
    ],
)
def test_known_rows(cap: Cap, since: tuple[int, int], rust: str, arches: set[str]) -> None:
    assert cap.since == since
    assert cap.rust_name == rust
    assert cap.arches == arches


@pytest.mark.parametrize(
    "spelling",
    ["KVM_CAP_IMMEDIATE_EXIT", "IMMEDIATE_EXIT", "immediate_exit", "Immediate_Exit", "ImmediateExit",
     "immediateexit", "136", 136, Cap.IMMEDIATE_EXIT, " kvm_cap_immediate_exit "],
)
def test_lookup_spellings(spelling: object) -> None:
    assert Cap.lookup(spelling) is Cap.IMMEDIATE_EXIT  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "rust, cap",
    [("DebugHwBps", Cap.GUEST_DEBUG_HW_BPS), ("Pci23", Cap.PCI_2_3), ("ArmEl132bit", Cap.ARM_EL1_32BIT),
     ("ArmPsci02", Cap.ARM_PSCI_0_2), ("ArmVmIPASize", Cap.ARM_VM_IPA_SIZE), ("X2ApicApi", Cap.X2APIC_API)],
)
def test_rust_names_that_do_not_map_mechanically(rust: str, cap: Cap) -> None:
    assert Cap.lookup(rust) is cap


def test_every_spelling_of_every_member_resolves() -> None:
    for cap in Cap:
        assert Cap.lookup(cap.c_name) is cap
        assert Cap.lookup(cap.name.lower()) is cap
        assert Cap.lookup(int(cap)) is cap
        if cap.rust_name:
            assert Cap.lookup(cap.rust_name) is cap


@pytest.mark.parametrize(
    "bad, suggestion",
    [("IMEDIATE_EXIT", "KVM_CAP_IMMEDIATE_EXIT"), ("memslots", "KVM_CAP_NR_MEMSLOTS"),
     ("KVM_CAP_X2APIC", "KVM_CAP_X2APIC_API"), ("ImmediatExit", "KVM_CAP_IMMEDIATE_EXIT")],
)
def test_unknown_names_suggest_the_closest(bad: str, suggestion: str) -> None:
    with pytest.raises(UnknownCapability) as info:
        Cap.lookup(bad)
    assert suggestion in info.value.suggestions
    assert suggestion in str(info.value)
    assert isinstance(info.value, LookupError)


@pytest.mark.parametrize("bad", [5, 9999, -1, "", "   ", "zzzzzz", 1.5, None, True])
def test_unknown_values_raise_unknown_capability(bad: object) -> None:
    with pytest.raises(UnknownCapability):
        Cap.lookup(bad)  # type: ignore[arg-type]


def _header_caps(path: str) -> Dict[str, int]:
    with open(path, encoding="utf-8") as header:
        text = header.read()
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^#define\s+(KVM_CAP_\w+)\s+(\d+)\s*$", text, re.M)}


@pytest.mark.skipif(not os.path.exists(KVM_H), reason="<linux/kvm.h> is not installed (linux-libc-dev)")
def test_numbers_equal_the_system_kvm_header() -> None:
    header = _header_caps(KVM_H)
    assert len(header) > 100, "the header parse found too little"
    ours = {cap.c_name: int(cap) for cap in Cap}
    common = set(header) & set(ours)
    assert {name: header[name] for name in common} == {name: ours[name] for name in common}
    # Every constant of the (older) system header is in the table: nothing is missing from it.
    assert set(header) <= set(ours), sorted(set(header) - set(ours))


def test_table_matches_the_reference_tsv_when_available() -> None:
    """Guard against a hand edit: the table equals the gathered reference (where shared/ is beside the repo)."""
    here = os.path.dirname(os.path.abspath(__file__))
    tsv = os.path.normpath(os.path.join(here, "..", "..", "..", "shared", "reference", "kvm-caps.tsv"))
    if not os.path.exists(tsv):
        pytest.skip("the gathered reference table (kvm-caps.tsv, beside the repository) is not on this machine")
    with open(tsv, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    in_rs = [cap for cap in Cap if cap.in_cap_rs and cap.rust_name not in NEWER_THAN_THE_TSV]
    assert [(r["rust_variant"], r["c_name"], int(r["number"])) for r in rows] == [
        (c.rust_name, c.c_name, int(c)) for c in in_rs
    ]
    for row, cap in zip(rows, in_rs):
        expected = set() if row["cfg_arches"] == "all" else set(row["cfg_arches"].split(","))
        assert cap.arches == expected, cap


def test_a_name_as_written_finds_what_the_spelling_index_finds() -> None:
    # Cap.lookup answers C and short names without building its index of every spelling; the
    # index (which folds case, '-' and '_', and knows cap.rs and former names) must agree.
    from kvmprobe.caps import _fold, _index

    index = _index()
    for cap in Cap:
        for spelling in (cap.name, cap.c_name, cap.name.lower(), cap.c_name.lower()):
            assert Cap.lookup(spelling) is index[_fold(spelling)] is cap


def test_every_default_need_text_cites_its_api_rst_section() -> None:
    """NEEDED_FOR and IF_MISSING cite Documentation/virt/kvm/api.rst by section; each title is a
    name the kernel defines (an ioctl, the capability itself) or the kvm_run section."""
    import re

    from kvmprobe._vmm_requirements import API_SECTIONS, IF_MISSING, NEEDED_FOR

    undocumented = {Cap.DESTROY_MEMORY_REGION_WORKS, Cap.JOIN_MEMORY_REGIONS_WORKS, Cap.X86_ROBUST_SINGLESTEP}
    assert set(NEEDED_FOR) | set(IF_MISSING) == set(API_SECTIONS) | undocumented
    for cap, section in API_SECTIONS.items():
        number, _, title = section.partition(" ")
        assert all(part.isdigit() for part in number.rstrip(".").split(".")), section
        if number == "5.":
            assert title.startswith("The kvm_run structure"), section
        else:
            assert re.fullmatch(r"KVM_[A-Z0-9_]+", title), section
            text = NEEDED_FOR.get(cap, "") + IF_MISSING.get(cap, "")
            named = set(re.findall(r"KVM_(?!CAP_)[A-Z0-9_]+", text.replace("GET/SET_", "GET_")))
            assert not named or title in named or title == cap.c_name or title.startswith("KVM_ARM_"), section
