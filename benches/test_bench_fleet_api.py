"""A fleet through the API: load each host's snapshot, check the seven built-in VMMs, diff it
against the previous host; what a held snapshot costs in memory; whether diff stays linear.

The hosts are made from the recorded preset ``pvm-6.18`` (a real ``kvmprobe snapshot --vm`` of a
PVM host: 244 capability rows, host facts, the CPU section), each a little different (kernel,
a few answers, a module parameter, the TSC rate), written to files as a fleet keeps them.
Two fleets: the documents as ``kvmprobe snapshot`` writes them today, and the same without the
CPU section (``"cpu": null``), which is what issue #19 measured before schema 2 added it.

* ``fleet``: milliseconds per host for the loop, against ``json.loads`` of the same files (a
  floor no loader can go under: the row shows it for scale). No KVM device is needed.
* memory: ``tracemalloc``'s count of the bytes held by ``HOSTS`` loaded results, per result.
* ``diff``: :func:`kvmprobe.diff_hosts` on two hosts whose every list (CPU flags, module
  parameters, unknown capability rows, CPUID entries, MSR lists) is 10 times, then 100 times,
  the realistic length: linear work grows tenfold, a quadratic search a hundredfold.
"""

from __future__ import annotations

import gc
import json
import pathlib
import statistics
import time
import tracemalloc
from typing import Any, Callable, Dict, List

import pytest

import kvmprobe
from kvmprobe import check_vmm, diff_hosts, load_snapshot, vmm_names

HOSTS = 200
TARGET_MS = 0.5
TARGET_KIB = 8.0
SCALING_TARGET = 15.0
PRESET = pathlib.Path(kvmprobe.__file__).parent / "preset_data" / "pvm-6.18.json"


def _document(index: int, cpu: bool) -> Dict[str, Any]:
    """Host ``index`` of the fleet: the preset with a kernel, answers, a parameter and a TSC of its own."""
    doc: Dict[str, Any] = json.loads(PRESET.read_text(encoding="utf-8"))
    doc["kernel"] = doc["host"]["kernel_release"] = f"6.18.{index % 40}-fleet{index}"
    for row in doc["capabilities"]:
        if row["name"] == "KVM_CAP_NR_VCPUS":
            row["value"] = 200 + index % 50
        elif row["name"] == "KVM_CAP_IMMEDIATE_EXIT" and index % 10 == 9:
            row["value"] = 0  # a host every VMM that needs it is not ready on
    doc["host"]["kvm_modules"]["kvm"]["halt_poll_ns"] = str(200000 + index)
    if cpu:
        doc["cpu"]["tsc_khz"] += index % 7
    else:
        doc["cpu"] = None
    return doc


@pytest.fixture(scope="module")
def fleets(tmp_path_factory: pytest.TempPathFactory, timing: bool) -> Dict[str, List[str]]:
    """Snapshot files of ``HOSTS`` hosts (3 in the short mode), with and without the CPU section."""
    count = HOSTS if timing else 3
    where = tmp_path_factory.mktemp("fleet")
    found: Dict[str, List[str]] = {"cpu": [], "nocpu": []}
    for kind in found:
        for index in range(count):
            path = where / f"{kind}-{index}.json"
            path.write_text(json.dumps(_document(index, kind == "cpu"), indent=2), encoding="utf-8")
            found[kind].append(str(path))
    return found


def _fleet(paths: List[str]) -> int:
    """The loop a fleet tool runs: load, seven readiness checks, a diff with the previous host."""
    names = vmm_names("x86_64")
    previous = None
    differences = 0
    for path in paths:
        host = load_snapshot(path)
        ready = [check_vmm(name, host).ready for name in names]
        if previous is not None:
            differences += not diff_hosts(previous, host).equal
        previous = host
        assert len(ready) == 7
    return differences


def _json_only(paths: List[str]) -> int:
    total = 0
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            total += len(json.loads(handle.read()))
    return total


GROUPS = {"cpu": "fleet", "nocpu": "fleet-nocpu"}
KINDS = {"cpu": "snapshots as written today (CPU section)", "nocpu": "snapshots without the CPU section"}


@pytest.mark.parametrize("kind", ["cpu", "nocpu"])
def test_json_loads(benchmark: Any, tag: Callable[..., None], fleets: Dict[str, List[str]], kind: str) -> None:
    paths = fleets[kind]
    tag(benchmark, group=GROUPS[kind], role="baseline", label="json.loads of each file", passes=len(paths))
    assert benchmark.pedantic(_json_only, args=(paths,), rounds=5, iterations=1) > 0


@pytest.mark.parametrize("kind", ["cpu", "nocpu"])
def test_fleet_per_host(benchmark: Any, tag: Callable[..., None], fleets: Dict[str, List[str]], kind: str) -> None:
    paths = fleets[kind]
    tag(benchmark, group=GROUPS[kind], role="subject", unit="abs_ms", target=TARGET_MS, passes=len(paths),
        label=f"load + 7 checks + diff, per host: {KINDS[kind]}")  # fmt: skip
    _fleet(paths[:2])  # the first use loads the modules and builds the profiles: not per host
    differences = benchmark.pedantic(_fleet, args=(paths,), rounds=5, iterations=1)
    assert differences == len(paths) - 1  # every host differs from the one before it


@pytest.mark.parametrize("kind", ["cpu", "nocpu"])
def test_memory_per_held_snapshot(benchmark: Any, tag: Callable[..., None], fleets: Dict[str, List[str]], kind: str) -> None:
    paths = fleets[kind]
    tag(benchmark, group=GROUPS[kind], role="measure", unit="KiB", target=TARGET_KIB,
        label=f"memory per held snapshot: {KINDS[kind]}")  # fmt: skip
    load_snapshot(paths[0])  # module-level caches are not a held snapshot's
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [load_snapshot(path) for path in paths]
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    per_host = (after - before) / len(held) / 1024
    benchmark.extra_info.update(value=per_host, baseline=f"{len(held)} loaded results held")
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert per_host > 0


def _scaled(factor: int, index: int) -> Dict[str, Any]:
    """Host ``index`` with every list the diff compares ``factor`` times its recorded length."""
    doc = _document(index, cpu=True)
    host, cpu = doc["host"], doc["cpu"]
    host["cpu_flags"] = sorted(f"flag{n}-{index if n % 7 == 0 else 0}" for n in range(100 * factor))
    host["kvm_modules"]["kvm"].update({f"param{n}": str(n + index * (n % 5 == 0)) for n in range(40 * factor)})
    next_number = 1000
    for n in range(8 * factor):
        doc["capabilities"].append({"name": f"KVM_CAP_FUTURE_{n}", "number": next_number + n, "value": (n + index) % 3,
                                    "vm_value": n % 2})
    leaves = [dict(entry) for entry in cpu["cpuid"]]
    for n in range(75 * (factor - 1)):  # leaves past the hypervisor range's top: compared, not named
        leaves.append({"function": 0x40001000 + n, "index": 0, "flags": 0, "eax": n, "ebx": n * index % 3, "ecx": 0,
                       "edx": 0})  # fmt: skip
    cpu["cpuid"] = leaves
    cpu["msrs"] = sorted(set(cpu["msrs"]) | {0x7000_0000 + n * (1 + index % 2) for n in range(40 * factor)})
    cpu["host_flags"] = [f"hf{n}" for n in range(106 * factor)]
    return doc


def _diff_seconds(factor: int, rounds: int) -> float:
    """The median time of diff_hosts on two hosts whose lists are ``factor`` times the realistic
    length, each round on hosts loaded afresh (what diff works out once per host counts too).

    The cyclic garbage collector is off while timing: when it runs it scans every live object,
    so the large hosts would add time that grows with the heap, not with diff's work.
    """
    documents = _scaled(factor, 1), _scaled(factor, 2)
    times = []
    for _ in range(rounds):
        a, b = (load_snapshot(document) for document in documents)
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            found = diff_hosts(a, b)
            times.append(time.perf_counter() - start)
        finally:
            gc.enable()
        assert not found.equal
    return statistics.median(times)


def test_diff_is_linear_in_every_list(benchmark: Any, tag: Callable[..., None], timing: bool) -> None:
    rounds = 7 if timing else 1
    tag(benchmark, group="fleet", role="measure", unit="ratio", target=SCALING_TARGET,
        label="diff_hosts: time at 100x the realistic list lengths / at 10x (linear: about 10)")  # fmt: skip
    _diff_seconds(1, 1)  # modules and tables loaded
    ten, hundred = _diff_seconds(10, rounds), _diff_seconds(100, rounds)
    benchmark.extra_info.update(value=hundred / ten, baseline=f"at 10x: {ten * 1e3:.1f} ms",
                                median_text=f"{hundred * 1e3:.1f} ms")  # fmt: skip
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert hundred > 0 and ten > 0
