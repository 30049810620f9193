#!/usr/bin/env python3
"""Write ``src/kvmprobe/_qemu_models.py``, QEMU's named x86 CPU models as cited data.

Usage: ``python3 scripts/build_qemu_models.py NEWEST.json QEMU-7.2.json [-o PATH]`` (``-o -``:
standard output). The inputs are the extraction of QEMU's ``target/i386/cpu.c``
(``builtin_x86_defs`` and ``feature_word_info``, every model version resolved the way
``x86_cpu_apply_version_props`` does) made by the research tool ``extract_qemu_models.py``: one
for the newest QEMU release read (10.2.2) and one for 7.2.0, the oldest kept. Only facts go
into the module: names, CPUID bit positions, the features of each model version, and whether
QEMU 7.2 has it. Nothing is written by hand there; regenerate it when a newer QEMU is read.

``tests/unit/test_qemu_models.py`` checks the module against the inputs when they are at hand,
and ``tests/hardware/test_qemu_models_hw.py`` against the installed QEMU itself (``-cpu help``
and QMP ``query-cpu-model-expansion``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional, Sequence

HEADER = '''"""QEMU's named x86 CPU models and feature names, as data (generated: do not edit).

Imports nothing. Written by ``scripts/build_qemu_models.py`` from the extraction of
{source}
(``builtin_x86_defs`` and ``feature_word_info``; every model version resolved cumulatively, as
``x86_cpu_apply_version_props`` does) and of {source_7_2}.

* :data:`FEATURE_BITS`: QEMU's CPUID feature names (the ``-cpu`` property names, '-' spelled)
  with their ``(leaf, subleaf, register, bit)``; subleaf 0 for a leaf QEMU does not index.
  ``kvmclock`` also sets bit 3 of the same register (:data:`MULTI_BITS`).
* :data:`MSR_FEATURE_BITS`: the names QEMU gives bits of feature MSRs, ``(msr, bit)``; the VMX
  control features (``vmx-*``) are left out: they take effect only with ``vmx``, which no
  named model switches on.
* :data:`MODELS`: one row per model version, ``(name, alias, vendor, family, model,
  stepping, in QEMU 7.2, CPUID features, MSR features)``; the features are space-separated
  QEMU names. Versions of one model keep their features in every later release (QEMU's
  rule; 7.2 and {release} agree on every version both have).
* :data:`NAMES_AFTER_7_2`: the feature names QEMU 7.2 does not know yet (``-cpu`` refuses them
  there: "Property ... not found").
* :data:`ALWAYS_AVAILABLE`: what QEMU counts as supported under KVM whatever
  KVM_GET_SUPPORTED_CPUID says ({fixups}).
* :data:`KVM_DEFAULT_ON` / :data:`KVM_DEFAULT_OFF`: the properties QEMU switches on and off
  for every named model under KVM ({kvm_props}); ``hypervisor`` is always on
  ({hypervisor}).
"""

from __future__ import annotations

from typing import Dict, Tuple

__all__ = [
    "ALWAYS_AVAILABLE",
    "FEATURE_BITS",
    "KVM_DEFAULT_OFF",
    "KVM_DEFAULT_ON",
    "MODELS",
    "MSR_FEATURE_BITS",
    "MULTI_BITS",
    "NAMES_AFTER_7_2",
    "OLDEST",
    "RELEASE",
    "SOURCE",
    "SOURCE_7_2",
]

#: The QEMU release whose table this is, and the oldest one whose model list is known.
RELEASE = {release_q}
OLDEST = "7.2.0"
SOURCE = {source_q}
SOURCE_7_2 = {source_7_2_q}
'''

# Always added by kvm_arch_get_supported_cpuid (the research file's "kvm_supported_cpuid_fixups"
# items that say "always"); tsc-deadline is added with the in-kernel irqchip, which every VMM uses.
_ALWAYS = ("mtrr", "pat", "mce", "mca", "ht", "hypervisor", "arat", "topoext", "overflow-recov", "succor",
           "kvm-hint-dedicated", "tsc-deadline")  # fmt: skip


def _q(item: Any) -> str:
    """A string (or list of strings) as Python source, in double quotes like the rest of the package."""
    return json.dumps(item)


def _location(raw: Sequence[Any]) -> str:
    leaf, subleaf, register, bit = raw
    return f"({int(leaf):#x}, {int(subleaf)}, {_q(register)}, {int(bit)})"


def render(newest: Dict[str, Any], old: Dict[str, Any]) -> str:
    """The module's text from the two extractions."""
    notes = newest["model_load_notes"]
    kvm_props = notes["kvm_default_props"]
    fixups = newest["kvm_supported_cpuid_fixups"]
    for name in _ALWAYS:
        if name not in newest["feature_bits"]:
            raise SystemExit(f"{name} is not a QEMU feature name in the input")
    in_7_2 = {model["name"] for model in old["models"]}
    out = [HEADER.format(
        source=newest["source"],
        source_7_2=old["source"],
        release=newest["qemu_release"],
        fixups=fixups["source"].split(" kvm_arch_get_supported_cpuid")[0],
        kvm_props=kvm_props["source"].split(" (")[0],
        hypervisor="cpu.c:7743",
        release_q=_q(newest["qemu_release"]),
        source_q=_q(newest["source"]),
        source_7_2_q=_q(old["source"]),
    )]
    out.append("#: QEMU feature name -> (leaf, subleaf, register, bit).")
    out.append("FEATURE_BITS: Dict[str, Tuple[int, int, str, int]] = {")
    for name in sorted(newest["feature_bits"]):
        out.append(f"    {_q(name)}: {_location(newest['feature_bits'][name])},")
    out.append("}")
    out.append("")
    out.append("#: Names that set more than one bit: every location they set.")
    out.append("MULTI_BITS: Dict[str, Tuple[Tuple[int, int, str, int], ...]] = {")
    for name, places in sorted(newest["feature_bits_multi"].items()):
        if all(place[0] != "msr" for place in places):
            out.append(f"    {_q(name)}: ({', '.join(_location(p) for p in places)},),")
    out.append("}")
    out.append("")
    out.append("#: QEMU MSR feature name -> (MSR index, bit); vmx-* left out (see above).")
    out.append("MSR_FEATURE_BITS: Dict[str, Tuple[int, int]] = {")
    for name, (_, msr, bit) in sorted(newest["msr_feature_bits"].items()):
        if not name.startswith("vmx-"):
            out.append(f"    {_q(name)}: ({int(msr, 16):#x}, {int(bit)}),")
    out.append("}")
    out.append("")
    after = newest["qemu_7_2_differences"]
    names_after = sorted(set(after["feature_names_added_since_7_2"]) | set(after["msr_feature_names_added_since_7_2"]))
    old_names = set(old["feature_bits"]) | set(old["msr_feature_bits"])
    if set(names_after) & old_names or (set(newest["feature_bits"]) - old_names) - set(names_after):
        raise SystemExit("the 7.2 name differences in the input do not match its two feature tables")
    out.append(f"NAMES_AFTER_7_2 = frozenset({_q([n for n in names_after if not n.startswith('vmx-')])})")
    out.append(f"ALWAYS_AVAILABLE = frozenset({_q(sorted(_ALWAYS))})")
    out.append(f"KVM_DEFAULT_ON = frozenset({_q(sorted(kvm_props['on']))})")
    out.append(f"KVM_DEFAULT_OFF = frozenset({_q(sorted(kvm_props['off']))})")
    out.append("")
    out.append("#: (name, alias, vendor, family, model, stepping, in QEMU 7.2, features, MSR features),")
    out.append("#: in QEMU's table order (builtin_x86_defs, versions ascending).")
    out.append("MODELS: Tuple[Tuple[str, str, str, int, int, int, bool, str, str], ...] = (")
    for model in newest["models"]:
        msr = " ".join(f for f in model["msr_features"] if not f.startswith("vmx-"))
        out.append(
            f"    ({_q(model['name'])}, {_q(model.get('alias') or '')}, {_q(model['vendor'])}, {model['family']}, "
            f"{model['model']}, {model['stepping']}, {model['name'] in in_7_2},"
        )
        out.append(f"     {_q(' '.join(model['features']))},")
        out.append(f"     {_q(msr)}),")
    out.append(")  # fmt: skip")
    return "\n".join(out) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("newest", help="the extraction of the newest QEMU read (qemu-cpu-models.json)")
    parser.add_argument("old", help="the extraction of QEMU 7.2 (qemu-cpu-models-7.2.json)")
    parser.add_argument("-o", "--output", default="src/kvmprobe/_qemu_models.py", help="where to write ('-': stdout)")
    args = parser.parse_args(argv)
    with open(args.newest, encoding="utf-8") as handle:
        newest = json.load(handle)
    with open(args.old, encoding="utf-8") as handle:
        old = json.load(handle)
    text = render(newest, old)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
