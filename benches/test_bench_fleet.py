"""A fleet of 10,000 recorded hosts: ``baseline`` and the classes per host, against ``json.load``.

``benches/make_fleet.py`` writes the fleet into a temporary directory (whole snapshots of six
real CPUs, varied: see there). Each benchmark reads every file once per round:

* the baseline: ``json.load`` of each file and nothing else, what reading the fleet costs at least;
* ``compat.baseline``, ``compat.classes`` (both read only each file's CPU section, strictly) and
  ``compat.fleet`` (whole snapshots, for readiness too), per host (``passes`` is the host count);
* memory: the peak ``tracemalloc`` sees while ``compat.baseline`` reads a fifth of the fleet and
  the whole of it; their ratio is reported (flat memory is about 1).

In the short mode (``--benchmark-disable``, the test suite) the fleet is 200 hosts and each body
runs once: a smoke test that also checks the answers (every host read, the classes add up).
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import tracemalloc
from types import ModuleType
from typing import Any, Callable, Dict, Iterator, List

import pytest

from kvmprobe import compat

HERE = pathlib.Path(__file__).resolve().parent
FULL, SMOKE = 10_000, 200
PER_HOST_TARGET = 3.0  # times json.load of the same file


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kvmprobe_make_fleet", HERE / "make_fleet.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    disabled = request.config.getoption("benchmark_disable") and not request.config.getoption("benchmark_enable")
    hosts = SMOKE if disabled else FULL
    where = tmp_path_factory.mktemp("fleet")
    paths = _generator().make_fleet(where / "hosts", hosts)
    yield {"dir": str(where / "hosts"), "paths": [str(p) for p in paths], "hosts": hosts}
    for path in paths:  # 600 MB at full size: not kept until the session ends
        path.unlink()


def _rounds(benchmark: Any, fn: Callable[[], Any]) -> Any:
    return benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=1)


def test_fleet_json_load(benchmark: Any, tag: Callable[..., None], fleet: Dict[str, Any]) -> None:
    tag(benchmark, group="fleet", role="baseline", label="json.load of each snapshot", passes=fleet["hosts"])

    def load_all() -> int:
        count = 0
        for path in fleet["paths"]:
            with open(path, encoding="utf-8") as handle:
                count += "cpu" in json.load(handle)
        return count

    assert _rounds(benchmark, load_all) == fleet["hosts"]


def test_fleet_baseline(benchmark: Any, tag: Callable[..., None], fleet: Dict[str, Any]) -> None:
    tag(benchmark, group="fleet", role="subject", label="compat.baseline, per host", passes=fleet["hosts"],
        target=PER_HOST_TARGET)  # fmt: skip
    base = _rounds(benchmark, lambda: compat.baseline([fleet["dir"]]))
    assert base.hosts == fleet["hosts"] and len(base.vendors) == 2 and base.features()


def test_fleet_classes(benchmark: Any, tag: Callable[..., None], fleet: Dict[str, Any]) -> None:
    tag(benchmark, group="fleet", role="subject", label="compat.classes, per host", passes=fleet["hosts"],
        target=PER_HOST_TARGET)  # fmt: skip
    found = _rounds(benchmark, lambda: compat.classes([fleet["dir"]]))
    assert sum(c.hosts for c in found) == fleet["hosts"] and 6 <= len(found) < fleet["hosts"]


def test_fleet_summary(benchmark: Any, tag: Callable[..., None], fleet: Dict[str, Any]) -> None:
    tag(benchmark, group="fleet", role="subject", label="compat.fleet (whole snapshots, readiness), per host",
        passes=fleet["hosts"])  # fmt: skip
    summary = _rounds(benchmark, lambda: compat.fleet([fleet["dir"]]))
    assert summary.hosts == fleet["hosts"] and dict(summary.readiness)["firecracker"] == fleet["hosts"]


def _peak(paths: List[str]) -> int:
    tracemalloc.start()
    try:
        compat.baseline(paths)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_fleet_memory_is_flat(benchmark: Any, tag: Callable[..., None], fleet: Dict[str, Any]) -> None:
    paths = fleet["paths"]
    small = _peak(paths[: len(paths) // 5])
    large = _peak(paths)
    ratio = large / small
    tag(benchmark, group="fleet", role="measure", label=f"peak memory of baseline, {len(paths)} hosts over "
        f"{len(paths) // 5} ({large // 1024} KiB, {small // 1024} KiB)", target=1.25, unit="x")  # fmt: skip
    benchmark.extra_info["value"] = round(ratio, 3)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    # The hosts' paths are held by this test, not by the baseline: it keeps running values only.
    assert ratio < 1.5, f"peak memory grew {ratio:.2f} times from {len(paths) // 5} to {len(paths)} hosts"
