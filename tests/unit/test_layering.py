"""The package is layered: a module imports only modules of lower layers (checked with ast).

The ioctl layer knows nothing of profiles, snapshots or the CLI; the CLI sits on top of the
public API. A new module must be given a layer here, which is the point: where it sits is
decided, not drifted into.
"""

from __future__ import annotations

import ast
import os
import re
from typing import Dict, Iterator, Optional, Set

import kvmprobe

PACKAGE = os.path.dirname(os.path.abspath(kvmprobe.__file__))

LAYERS: Dict[str, int] = {
    # 0: no package imports at all (the ioctl seam, the compiled loop, plumbing)
    "_version": 0, "errors": 0, "_release": 0, "atomic": 0, "_files": 0, "_backend": 0, "_kvmbatch": 0,
    "_arch": 0, "_profile_text": 0, "_vmm_versions": 0, "_cpuid_insn": 0, "_access": 0,
    # 0: stopping a child at its time limit (SIGKILL it or its process group, wait for it)
    "_stop": 0,
    # 1: running work in a forked child under a time limit (the micro-guest's watchdog)
    "_forked": 1,
    # -1: value classes (dataclass, NamedTuple) without the import cost of dataclasses and typing,
    # under every floor (it imports nothing from the package, and every floor makes value types)
    "_value": -1,
    # 0: Kubernetes label names and values (their rules; any text made into one)
    "_labels": 0,
    # 0: the doctor's verdict types (a check and its status)
    "_check_model": 0,
    # 1: pure data and encodings; the two ioctl backends over the seam
    "caps": 1, "_ioctl": 1, "_backend_ctypes": 1, "_backend_cffi": 1, "_validate": 1, "_cpuid_table": 1,
    "_kvm_structs": 1,
    # 1: the KVM backends (modules, what each needs and offers; cited data)
    "_kvm_backends": 1,
    # 1: the x86 VM types (data: _bitmasks names KVM_CAP_VM_TYPES's bits with them, _cc_data its kinds)
    "_vm_types": 1,
    # 1: QEMU's named CPU models (generated data); Firecracker's CPU template format
    "_qemu_models": 1, "_fc_template": 1,
    # 1: KVM exit-reason names; the micro-guest's machine code and memory layout
    "_kvm_exits": 1, "_guest_code": 1,
    # 2: data built on the table; choosing a backend; the host reader (files)
    "_vmm_requirements": 2, "_backend_select": 2, "_profile": 2, "_host_facts": 2, "_cpuid": 2,
    # 2: data on the Cap table: bit-mask capabilities, the confidential kinds and layers; the
    # confidential facts (the model)
    "_bitmasks": 2, "_cc_data": 2, "_cc_facts": 2,
    # 2: how each CPUID register and feature MSR compares between hosts (cited rules)
    "_cpuid_rules": 2,
    # 2: the x86 CPU queries KvmDevice inherits (structures in, numbers out)
    "_device_x86": 2,
    # 2: a vCPU fd, its kvm_run and guest memory (device hands it its ioctl caller); a run's findings
    "_vcpu": 2, "_guest_report": 2,
    # 2: the seccomp filter and listener (numbers only); 3: running a command under it
    "_seccomp": 2,
    # 3: what a readiness check says (its value types, below the check)
    "_readiness": 3,
    # 3: a made-up host as a directory tree (testing's FakeHost, on the host facts' model)
    "_fake_host": 3,
    # 3: readers of files (the profile loader, the host reader); the remedy sentences
    "_profile_file": 3, "_host_reader": 3, "_remedies": 3, "_supervisor": 3,
    # 3: number collisions (named from the bit-mask tables); the confidential verdicts (value types)
    "_collisions": 3, "_cc_verdict": 3,
    # 3: the VMM version queries of check --installed (programs are also run by _supervisor, for
    # emulate and learn, and children forked by _forked, for the micro-guest)
    "_installed": 3,
    # 3: the device, the one place errno becomes an error; the raw CPU record and its reader
    "device": 3, "_cpu_record": 3,
    # 2: what an errno of the device means, worded as the error device raises (errors, _access,
    # _host_files)
    "_device_errors": 2,
    # 1: files under a root, read bounded (the one OSError mapping of host files; cpuinfo's first
    # CPU and the container signs, which more than one room reads)
    "_host_files": 1,
    # 4: the host facts' public home
    "host": 4,
    # 4: the batch probe and its cache; the micro-guest under KVM_RUN; decoding CPU records;
    # made-up CPU records for fakes; the confidential-VM gathering (files and KVM's answers)
    "probing": 4, "guest": 4, "_cpu_decode": 4, "_fake_cpu": 4, "_cc_probe": 4,
    # 4: the doctor's checks of the host's facts (a part of _checks.Judge)
    "_host_checks": 4,
    # 4: the doctor's judgement of a micro-guest run (the remedies and the run's findings)
    "_run_verdict": 4,
    # 2: a snapshot's capability rows, read strictly and fast (the Cap table and _validate); the
    # answers of one fd as a mapping over one row (the probe's value type)
    "_snapshot_rows": 2, "_cap_values": 2,
    # 4: one host's CPU as a fleet compares it (judged registers, class, labels)
    "_cpu_view": 4,
    # 5: the baseline of many hosts, built host by host
    "_baseline": 5,
    # 5: what is made of a probe
    "profiles": 5, "snapshot": 5, "_checks": 5, "cpuinfo": 5, "_cpu_diff": 5, "_cc_judge": 5,
    # 6: built on those
    "diagnosis": 6, "presets": 6, "diff": 6, "_learning": 6, "confidential": 6,
    # 6: the collector for old hosts, served with the tables of this kvmprobe (snapshot's names)
    "_collector": 6,
    # 6: a baseline as VMMs take it; reading a fleet's files; the migration verdict
    "_baseline_formats": 6, "_fleet_read": 6, "_compat_judge": 6,
    # 7: the fleet summary; 8: compat, the public home of the fleet names
    "_fleet": 7, "compat": 8,
    # 7-10: the shells: fakes, the pytest plugin over them, the facade, the CLI
    "testing": 7, "emulate": 7, "export": 7, "pytest_plugin": 8, "__init__": 9, "_cli": 9, "__main__": 10,
}


def modules() -> Iterator[str]:
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                yield os.path.relpath(os.path.join(folder, name), PACKAGE)


def top(relpath: str) -> str:
    first = relpath.split(os.sep)[0]
    return first[:-3] if first.endswith(".py") else first


def imported(relpath: str) -> Set[str]:
    """The package's top-level modules that ``relpath`` imports (absolute or relative)."""
    with open(os.path.join(PACKAGE, relpath), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    depth = relpath.count(os.sep)  # 0 for a module of the package, 1 inside _cli/
    found: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                parts = (node.module or "").split(".")
                if parts[0] != "kvmprobe":
                    continue
                names = parts[1:2] or [alias.name for alias in node.names]
            else:
                up = node.level - 1 - depth  # >= 0 means above the package root: not possible
                if up > 0:
                    continue
                if node.level - 1 < depth:  # a relative import inside the same subpackage
                    continue
                names = (node.module or "").split(".")[:1] if node.module else [a.name for a in node.names]
            found.update(n for n in names if n)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "kvmprobe" and len(parts) > 1:
                    found.add(parts[1])
    return found


def test_every_module_has_a_layer() -> None:
    unknown = sorted({top(m) for m in modules()} - set(LAYERS))
    assert unknown == [], f"give these modules a layer in {__file__}: {unknown}"


def test_imports_point_downward() -> None:
    wrong = []
    for relpath in modules():
        mine = top(relpath)
        for other in imported(relpath) - {mine}:
            if other not in LAYERS:
                continue  # a name imported from the package facade's submodule list
            if LAYERS[other] >= LAYERS[mine]:
                wrong.append(f"{relpath} (layer {LAYERS[mine]}) imports {other} (layer {LAYERS[other]})")
    assert wrong == []


def test_the_core_needs_only_the_standard_library() -> None:
    import sys

    stdlib = set(sys.stdlib_module_names) if hasattr(sys, "stdlib_module_names") else None
    if stdlib is None:  # Python 3.9
        return
    outside: Dict[str, Set[str]] = {}
    for relpath in modules():
        if top(relpath) in ("pytest_plugin", "_backend_cffi"):
            continue  # pytest's plugin needs pytest; the compiled backend needs cffi, optionally
        with open(os.path.join(PACKAGE, relpath), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                if root not in stdlib and root != "kvmprobe":
                    outside.setdefault(relpath, set()).add(root)
    # tomli is the optional TOML reader on Python < 3.11 (profiles.py imports it guarded).
    assert {k: v - {"tomli"} for k, v in outside.items() if v - {"tomli"}} == {}


def docstring_imports(relpath: str) -> Optional[Set[str]]:
    """The package modules the module docstring's "Imports ..." sentence names (``None``: it has
    none). The sentence runs from "Imports" to its first full stop or colon; "nothing" names none."""
    with open(os.path.join(PACKAGE, relpath), encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    found = re.search(r"(?:^|\n\n)(Imports\b.*?)(?:[.:](?:\s|$)|$)", doc, re.S)
    if found is None:
        return None
    sentence = found.group(1)
    names = set(re.findall(r"``([A-Za-z_][A-Za-z0-9_]*)``", sentence))
    if not names and not re.match(r"Imports nothing\b", sentence):
        return {f"<no module named in {sentence!r}>"}
    folder = os.path.dirname(relpath)
    siblings = {top(m) for m in os.listdir(os.path.join(PACKAGE, folder))} if folder else set()
    return {n for n in names if n in LAYERS or n in siblings} - siblings


# _value (value classes without the import cost of dataclasses and typing) sits under every floor
# and any module may make value types with it: a docstring need not name it.
UNNAMED = {"_value"}


def test_each_imports_line_names_exactly_what_the_module_imports() -> None:
    wrong = []
    for relpath in sorted(modules()):
        said = docstring_imports(relpath)
        if said is None:
            continue
        actual = imported(relpath) - {top(relpath)} - UNNAMED
        if said - UNNAMED != actual:
            wrong.append(f"{relpath}: names {sorted(said - actual)} it does not import, "
                         f"leaves out {sorted(actual - said)}")
    assert wrong == []
