"""report.py's arithmetic on a made-up pytest-benchmark document (no timing, runs anywhere)."""

from __future__ import annotations

import importlib.util
import pathlib
from types import ModuleType
from typing import Any, Dict, Optional

import pytest


@pytest.fixture(scope="module")
def report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kvmprobe_bench_report", pathlib.Path(__file__).with_name("report.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bench(
    group: str, role: str, label: str, median: float, passes: int = 1, target: Optional[float] = None, **extra: Any
) -> Dict[str, Any]:
    info = dict(group=group, role=role, label=label, passes=passes, target=target, unit="ratio")
    info.update(extra)
    return {"name": label, "stats": {"median": median}, "extra_info": info}


DOCUMENT: Dict[str, Any] = {
    "datetime": "2026-11-25T10:00:00",
    "machine_info": {"release": "6.1.0", "python_version": "3.11.7", "cpu": {"brand_raw": "Test CPU"}},
    "benchmarks": [
        _bench("batch", "baseline", "C loop", 200 * 20e-6, passes=200),
        _bench("batch", "subject", "cffi", 24e-6, target=1.25),
        _bench("batch", "subject", "ctypes", 120e-6, target=5.0),
        _bench("startup", "baseline", "python -c pass", 8e-3),
        _bench("startup", "subject", "import", 9.5e-3, target=5.0, unit="ms"),
        _bench("importtime", "measure", "importtime", 9e-3, target=5.0, unit="ms", value_ms=0.4),
        _bench("fleet", "measure", "peak memory", 1.0, target=1.25, unit="x", value=1.02),
        _bench("lonely", "subject", "no baseline", 1e-6, target=2.0),
        _bench("startup", "measure", "has", 0.0, target=2.0, unit="ratio", value=2.25, baseline="python -c pass: 12.0 ms",
               median_text="27.0 ms"),
        _bench("fleet", "baseline", "json.loads", 100 * 0.25e-3, passes=100),
        _bench("fleet", "subject", "per host", 100 * 0.4e-3, passes=100, target=0.5, unit="abs_ms"),
        _bench("fleet", "measure", "held", 0.0, target=8.0, unit="KiB", value=6.5),
        {"name": "untagged", "stats": {"median": 1.0}, "extra_info": {}},
    ],
}


def test_rows_divide_per_pass_medians(report: ModuleType) -> None:
    rows = {row["what"]: row for row in report.rows(DOCUMENT)}
    assert set(rows) == {"cffi", "ctypes", "import", "importtime", "no baseline", "peak memory", "has", "per host",
                         "held"}
    assert (rows["has"]["result"], rows["has"]["target"], rows["has"]["verdict"]) == ("2.25x", "<= 2x", "MISSED")
    assert (rows["has"]["baseline"], rows["has"]["median"]) == ("python -c pass: 12.0 ms", "27.0 ms")
    assert (rows["per host"]["result"], rows["per host"]["verdict"]) == ("0.400 ms", "met")
    assert rows["per host"]["baseline"] == "json.loads: 250.0 µs"
    assert (rows["held"]["result"], rows["held"]["target"], rows["held"]["verdict"]) == ("6.5 KiB", "<= 8 KiB", "met")
    assert (rows["cffi"]["result"], rows["cffi"]["verdict"]) == ("1.20x", "met")
    assert (rows["ctypes"]["result"], rows["ctypes"]["verdict"]) == ("6.00x", "MISSED")
    assert rows["cffi"]["baseline"] == "C loop: 20.0 µs"
    assert (rows["import"]["result"], rows["import"]["target"], rows["import"]["verdict"]) == (
        "+1.50 ms",
        "<= +5 ms",
        "met",
    )
    assert (rows["importtime"]["result"], rows["importtime"]["verdict"]) == ("0.40 ms", "met")
    assert (rows["peak memory"]["result"], rows["peak memory"]["target"], rows["peak memory"]["verdict"]) == (
        "1.02 x", "<= 1.25 x", "met")
    assert (rows["no baseline"]["result"], rows["no baseline"]["verdict"]) == ("-", "-")


def test_render_has_header_table_and_tally(report: ModuleType) -> None:
    text = report.render(DOCUMENT)
    assert text.splitlines()[0] == "kvmprobe benchmarks, 2026-11-25: Linux 6.1.0, Test CPU, Python 3.11.7"
    assert "| batch | cffi | 24.0 µs | C loop: 20.0 µs | 1.20x | <= 1.25x | met |" in text
    assert text.endswith("6 of 8 targets met.")
