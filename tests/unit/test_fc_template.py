"""Firecracker custom CPU templates: Firecracker's own examples, and the ones ``baseline`` writes.

The format is Firecracker's (firecracker-microvm/firecracker@81b38b9dad60, the same at v1.16.1):
``src/vmm/src/cpu_config/x86_64/custom_cpu_template.rs`` (the document, ``deny_unknown_fields``),
``cpu_config/templates_serde.rs:18-50`` (``leaf``/``subleaf``/``addr``: a lower-case ``0x`` or
``0b`` string), ``cpu_config/templates.rs:211-260`` (bitmaps: ``0``/``1``/``x``, ``_`` skipped,
read from the last character, at most 32 or 64, shorter allowed) and ``:173-178``
(``(old & !filter) | value``). ``fc_read`` below is a second reader written from those lines for
this test, sharing no code with ``kvmprobe._fc_template``; both must agree on every file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from _fingerprints import DATA, FINGERPRINTS, fingerprint_record, name_of
from kvmprobe import compat
from kvmprobe._fc_template import apply_cpuid, parse_template, template_document
from kvmprobe.testing import fake_probe_result

EXAMPLES = sorted(p for p in DATA.glob("*.json") if not p.name.startswith("TEST_INVALID"))
NUMBER = re.compile(r"0x\+?[0-9a-fA-F]+|0b\+?[01]+")
REGISTERS = ("eax", "ebx", "ecx", "edx")

Bitmap = Tuple[int, int]  # (filter, value)


def fc_bitmap(text: str, width: int) -> Bitmap:
    body = text[2:] if text.startswith("0b") else text
    mask = value = position = 0
    for char in body[::-1]:
        assert position < width, f"{text}: longer than {width}"
        if char == "_":
            continue
        assert char in "01x", f"{text}: {char!r}"
        if char != "x":
            mask |= 1 << position
            value |= int(char) << position
        position += 1
    return mask, value


def fc_number(text: Any) -> int:
    assert isinstance(text, str) and NUMBER.fullmatch(text), text
    return int(text[2:], 16 if text[1] == "x" else 2)


def fc_read(doc: Dict[str, Any]) -> Tuple[Dict[Tuple[int, int, str], Bitmap], Dict[Tuple[int, int], int], Dict[int, Bitmap]]:
    """(cpuid bitmaps by leaf/subleaf/register, flags by leaf/subleaf, msr bitmaps by address)."""
    assert set(doc) <= {"kvm_capabilities", "cpuid_modifiers", "msr_modifiers"}
    cpuid: Dict[Tuple[int, int, str], Bitmap] = {}
    flags: Dict[Tuple[int, int], int] = {}
    for leaf in doc.get("cpuid_modifiers", []):
        key = (fc_number(leaf["leaf"]), fc_number(leaf["subleaf"]))
        assert type(leaf["flags"]) is int
        flags[key] = leaf["flags"]
        for mod in leaf["modifiers"]:
            assert mod["register"] in REGISTERS
            cpuid[(*key, mod["register"])] = fc_bitmap(mod["bitmap"], 32)
    msrs = {fc_number(m["addr"]): fc_bitmap(m["bitmap"], 64) for m in doc.get("msr_modifiers", [])}
    return cpuid, flags, msrs


def as_read(doc: Dict[str, Any]) -> Tuple[Dict[Tuple[int, int, str], Bitmap], Dict[Tuple[int, int], int], Dict[int, Bitmap]]:
    """The same, through kvmprobe's reader."""
    template = parse_template(doc)
    cpuid = {(m.leaf, m.subleaf, r): (f.filter, f.value) for m in template.cpuid_modifiers for r, f in m.registers}
    return cpuid, {(m.leaf, m.subleaf): m.flags for m in template.cpuid_modifiers}, {
        m.addr: (m.bitmap.filter, m.bitmap.value) for m in template.msr_modifiers}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_firecrackers_examples_read_alike_and_round_trip(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert as_read(doc) == fc_read(doc)
    again = template_document(parse_template(doc))
    assert as_read(again) == fc_read(doc)
    if path.name != "TEST_TEMPLATE_JSON.valid.json":  # the shipped templates: written as Firecracker writes
        assert again == {"cpuid_modifiers": [], "msr_modifiers": [], **doc}


def test_firecrackers_parser_test_input_has_5_cpuid_and_4_msr_modifiers() -> None:
    # custom_cpu_template.rs test_deserialization_lifecycle asserts these counts.
    template = parse_template(json.loads((DATA / "TEST_TEMPLATE_JSON.valid.json").read_text()))
    assert (len(template.cpuid_modifiers), len(template.msr_modifiers)) == (5, 4)
    assert template.cpuid_modifiers[0].subleaf == 7 and template.msr_modifiers[2].addr == 3  # "0x0007", "0b11"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda d: d.update(reg_modifiers=[]), "aarch64 only"),
        (lambda d: d["cpuid_modifiers"][0].update(leaf="0X1"), "prefix"),
        (lambda d: d["cpuid_modifiers"][0].update(leaf="1"), "prefix"),
        (lambda d: d["cpuid_modifiers"][0].update(leaf=1), "string"),
        (lambda d: d["cpuid_modifiers"][0].update(flags="0"), "integer"),
        (lambda d: d["cpuid_modifiers"][0]["modifiers"][0].update(register="EAX"), "Must be one of"),
        (lambda d: d["cpuid_modifiers"][0]["modifiers"][0].update(bitmap="0b" + "X" * 32), "unknown character"),
        (lambda d: d["cpuid_modifiers"][0]["modifiers"][0].update(bitmap="0b" + "x" * 33), "longer than 32"),
        (lambda d: d["cpuid_modifiers"][0]["modifiers"][0].update(bitmap="0b_" + "x" * 32), "longer than 32"),
        (lambda d: d["cpuid_modifiers"][0].pop("flags"), "missing"),
        (lambda d: d["msr_modifiers"][0].update(bitmap="0b" + "0" * 65), "longer than 64"),
    ],
)
def test_what_firecracker_refuses_is_refused(change: Any, error: str) -> None:
    doc = json.loads((DATA / "T2S.json").read_text())
    change(doc)
    with pytest.raises(ValueError, match=error):
        parse_template(doc)


def test_firecrackers_aarch64_only_test_input_is_refused_on_x86() -> None:
    with pytest.raises(ValueError, match="aarch64 only"):
        parse_template(json.loads((DATA / "TEST_INVALID_TEMPLATE_JSON.reject-on-x86.json").read_text()))


# --- the templates baseline writes ---------------------------------------------------------------


def fleet() -> List[Any]:
    return [fake_probe_result({}, source=name_of(path), cpu=fingerprint_record(path)) for path in FINGERPRINTS]


def test_fingerprints_are_five_real_cpus() -> None:
    names = [name_of(p) for p in FINGERPRINTS]
    assert names == ["AMD_GENOA", "AMD_MILAN", "INTEL_CASCADELAKE", "INTEL_ICELAKE", "INTEL_SAPPHIRE_RAPIDS"]


@pytest.mark.parametrize("vendor", ["INTEL", "AMD"])
def test_a_generated_template_parses_and_gives_every_host_the_baseline(vendor: str) -> None:
    hosts = [h for h in fleet() if h.source.startswith(vendor)]
    base = compat.baseline(hosts)
    doc = compat.firecracker_template(base).document
    text = json.dumps(doc)
    assert json.loads(text) == doc
    bitmaps = re.findall(r'"bitmap": "([^"]*)"', text)
    assert bitmaps, "hosts of different generations differ: the template must clear something"
    for leaf in doc["cpuid_modifiers"]:
        for mod in leaf["modifiers"]:
            assert re.fullmatch(r"0b[01x]{32}", mod["bitmap"]), mod["bitmap"]
    for mod in doc["msr_modifiers"]:
        assert re.fullmatch(r"0b[01x]{64}", mod["bitmap"]), mod["bitmap"]
    cpuid, flags, _ = fc_read(doc)
    assert as_read(doc)[:2] == (cpuid, flags)
    wanted = set(base.features())
    for host in hosts:
        entries = host.cpu.cpuid
        listed = {(e.leaf, e.subleaf) for e in entries}
        assert {key[:2] for key in cpuid} <= listed  # Firecracker refuses a leaf KVM does not list
        # Applied as Firecracker applies it (this test's own arithmetic), then compared by name.
        applied = []
        for e in entries:
            regs = [e.eax, e.ebx, e.ecx, e.edx]
            for r, name in enumerate(REGISTERS):
                mask, value = cpuid.get((e.leaf, e.subleaf, name), (0, 0))
                regs[r] = (regs[r] & ~mask) | value
            applied.append((e.leaf, e.subleaf, e.flags, *regs))
        assert applied == apply_cpuid(parse_template(doc), entries)
        got = set(compat.baseline([fake_probe_result({}, cpu=host.cpu._replace(cpuid=tuple(applied)))]).features())
        assert got <= set().union(*(compat.baseline([h]).features() for h in hosts))
        assert got - wanted <= leaves_some_host_lacks(base), (host.source, sorted(got - wanted))
        assert wanted <= got


def leaves_some_host_lacks(base: compat.Baseline) -> set:  # type: ignore[type-arg]
    """Features in leaves only some hosts list: a template cannot remove a leaf (the highest-leaf
    fields are lowered instead, which a guest honours; the bits stay in the leaf)."""
    from kvmprobe._cpuid_table import FEATURES

    partial = {(leaf, subleaf) for leaf, subleaf, _ in base.partial}
    return {row.name for row in FEATURES if (row.leaf, row.subleaf or 0) in partial}
