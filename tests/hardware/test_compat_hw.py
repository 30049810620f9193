"""``compat``, ``baseline`` and ``fleet`` on this host's own snapshots, through the installed CLI.

The host is recorded twice (``kvmprobe snapshot --vm``, run on whichever CPUs the scheduler
picks, so the APIC IDs KVM passes through may differ); a third file is a copy of the first with
one feature KVM offers cleared, the bit written out here from the SDM (not from kvmprobe's
table). Expected: the two recordings are one class and compatible both ways; a guest that saw
the feature cannot move to the copy (exit 1, the feature named) and one from the copy can move
back (exit 0); the baseline lacks the feature, and the fleet has two classes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

pytestmark = pytest.mark.kvm

# Features every x86-64 KVM offers on real hardware, by (leaf, subleaf, register, bit) from the
# Intel SDM Vol. 2A CPUID tables; the first the live host offers is cleared in the copy.
CANDIDATES: List[Tuple[str, int, int, str, int]] = [
    ("cx16", 0x1, 0, "ecx", 13),
    ("sse2", 0x1, 0, "edx", 26),
    ("clflush", 0x1, 0, "edx", 19),
    ("nx", 0x80000001, 0, "edx", 20),
]


def kvmprobe(*argv: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "kvmprobe", *argv], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    where = tmp_path_factory.mktemp("fleet")
    paths = {name: where / f"{name}.json" for name in ("first", "second", "less")}
    for name in ("first", "second"):
        done = kvmprobe("snapshot", "--vm", "-o", str(paths[name]))
        assert done.returncode == 0, done.stderr
    document = json.loads(paths["first"].read_text())
    if document["arch"] != "x86_64" or not document.get("cpu") or not document["cpu"].get("cpuid"):
        pytest.skip("this host records no x86 CPUID")
    entries = {(e["function"], e["index"]): e for e in document["cpu"]["cpuid"]}
    for name, leaf, subleaf, register, bit in CANDIDATES:
        entry = entries.get((leaf, subleaf))
        if entry is not None and entry[register] >> bit & 1:
            entry[register] &= ~(1 << bit)
            break
    else:
        pytest.skip("KVM here offers none of " + ", ".join(c[0] for c in CANDIDATES))
    paths["less"].write_text(json.dumps(document))
    return {"paths": {k: str(v) for k, v in paths.items()}, "feature": name, "dir": where}


def test_two_recordings_of_this_host_are_one_class_and_compatible(recorded: Dict[str, Any]) -> None:
    first, second = recorded["paths"]["first"], recorded["paths"]["second"]
    for a, b in ((first, second), (second, first)):
        done = kvmprobe("compat", a, b)
        assert done.returncode == 0, done.stdout + done.stderr
    classes = [json.loads(kvmprobe("cpu", "--json", "--snapshot", p).stdout)["cpu_class"] for p in (first, second)]
    assert classes[0] == classes[1] and len(classes[0]) == 12


def test_a_guest_that_saw_the_feature_cannot_move_to_the_copy(recorded: Dict[str, Any]) -> None:
    paths, feature = recorded["paths"], recorded["feature"]
    done = kvmprobe("compat", paths["first"], paths["less"])
    assert done.returncode == 1 and done.stderr == ""
    assert f"CPUID features DEST lacks: {feature} (" in done.stdout
    done = kvmprobe("compat", paths["less"], paths["first"])
    assert done.returncode == 0 and "yes: a guest started on SOURCE can migrate to DEST" in done.stdout
    done = kvmprobe("compat", paths["first"], paths["less"], "--json")
    assert done.returncode == 1 and json.loads(done.stdout)["reasons"][0]["names"] == [feature]


def test_the_baseline_and_the_fleet(recorded: Dict[str, Any]) -> None:
    paths, feature = recorded["paths"], recorded["feature"]
    done = kvmprobe("baseline", "--format", "json", paths["first"], paths["second"], paths["less"])
    assert done.returncode == 0 and json.loads(done.stdout)["lost"] == [feature]
    done = kvmprobe("fleet", str(recorded["dir"]))
    assert done.returncode == 0 and done.stdout.startswith("3 hosts (x86_64), 2 CPU classes:"), done.stdout
