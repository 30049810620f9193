"""Run the benchmarks and print their ratios to the baselines of the same run, with the targets.

Usage (from the repository root, with the ``test`` extra installed)::

    python benches/report.py                 # run everything (about a minute), print the table
    python benches/report.py --quick         # shorter timing (noisier)
    python benches/report.py --from FILE     # re-print a saved pytest-benchmark JSON
    python benches/report.py --save FILE     # keep the raw pytest-benchmark JSON

The table is Markdown (docs/performance.md shows it as it is). Each row divides the subject's
median time per pass by its group's baseline median per pass; ``unit="ms"`` rows give the
milliseconds added to the baseline instead, and ``unit="abs_ms"`` rows the milliseconds per
pass themselves (the baseline is shown for scale). ``role="measure"`` rows report a value the
benchmark worked out itself (``value``, in its ``unit``: ``ms``, ``ratio``, ``KiB``), e.g. a
ratio of CPU-time medians of child processes run in alternation with their baseline.
Exit status: pytest's when the run failed, else 0 (missed targets are shown, not enforced).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
GROUP_ORDER = ("startup", "importtime", "probe", "batch", "lookup", "fleet")

# How each unit is shown, and its target.
_UNITS = {"ms": ("{:.2f} ms", "<= {:g} ms"), "ratio": ("{:.2f}x", "<= {:g}x"), "KiB": ("{:.1f} KiB", "<= {:g} KiB")}


def run_benchmarks(json_path: str, quick: bool, extra: Sequence[str] = ()) -> int:
    """Run pytest-benchmark over ``benches/`` with timing on; return pytest's exit status."""
    argv = [
        sys.executable,
        "-m",
        "pytest",
        HERE,
        "-q",
        "-p",
        "no:cacheprovider",
        "--benchmark-enable",
        f"--benchmark-json={json_path}",
        "--benchmark-columns=min,median,rounds",
        "--benchmark-sort=name",
    ]
    if quick:
        argv += ["--benchmark-max-time=0.2", "--benchmark-min-rounds=3"]
    return subprocess.call([*argv, *extra], cwd=os.path.dirname(HERE))


def _per_pass(bench: Dict[str, Any]) -> float:
    passes = int(bench["extra_info"].get("passes") or 1)
    return float(bench["stats"]["median"]) / passes


def _time(seconds: float) -> str:
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.1f} ms"


def rows(document: Dict[str, Any]) -> List[Dict[str, str]]:
    """One row per subject: what, its median, the baseline, the result, the target, met/missed."""
    benches = [b for b in document["benchmarks"] if b.get("extra_info", {}).get("role")]
    baselines = {b["extra_info"]["group"]: b for b in benches if b["extra_info"]["role"] == "baseline"}
    table: List[Dict[str, str]] = []
    for bench in benches:
        info = bench["extra_info"]
        if info["role"] == "baseline":
            continue
        target: Optional[float] = info.get("target")
        base = baselines.get(info["group"])
        row = {"group": info["group"], "what": info["label"], "median": _time(_per_pass(bench))}
        if info["role"] == "measure":
            unit = info.get("unit", "ms")
            value = float(info["value"] if "value" in info else info["value_ms"])
            shown, wanted = _UNITS.get(unit, ("{:g} " + unit, "<= {:g} " + unit))
            row.update(
                median=info.get("median_text", "-"),
                baseline=info.get("baseline", "-"),
                result=shown.format(value),
                target=wanted.format(target) if target else "-",
            )
        elif info.get("unit") == "abs_ms":
            value = _per_pass(bench) * 1e3
            row.update(
                baseline=f"{base['extra_info']['label']}: {_time(_per_pass(base))}" if base else "-",
                result=f"{value:.3f} ms",
                target=f"<= {target:g} ms" if target else "-",
            )
        elif base is None:
            row.update(baseline="(no baseline in this run)", result="-", target="-")
            value = float("nan")
        elif info.get("unit") == "ms":
            value = (_per_pass(bench) - _per_pass(base)) * 1e3
            row.update(
                baseline=f"{base['extra_info']['label']}: {_time(_per_pass(base))}",
                result=f"+{value:.2f} ms",
                target=f"<= +{target:g} ms" if target else "-",
            )
        else:
            value = _per_pass(bench) / _per_pass(base)
            row.update(
                baseline=f"{base['extra_info']['label']}: {_time(_per_pass(base))}",
                result=f"{value:.2f}x",
                target=f"<= {target:g}x" if target else "-",
            )
        row["verdict"] = "-" if target is None or value != value else ("met" if value <= target else "MISSED")
        table.append(row)
    order = {group: index for index, group in enumerate(GROUP_ORDER)}
    table.sort(key=lambda row: order.get(row["group"], len(order)))  # stable: file order within a group
    return table


def render(document: Dict[str, Any]) -> str:
    """The Markdown report: a header with the run's facts, the table, and the tally."""
    machine = document.get("machine_info", {})
    when = document.get("datetime", "")[:10] or datetime.date.today().isoformat()
    lines = [
        f"kvmprobe benchmarks, {when}: Linux {machine.get('release', platform.release())}, "
        f"{machine.get('cpu', {}).get('brand_raw', platform.processor() or '?')}, "
        f"Python {machine.get('python_version', platform.python_version())}",
        "",
        "| group | what | median | baseline (same run) | result | target | |",
        "|---|---|---|---|---|---|---|",
    ]
    table = rows(document)
    for row in table:
        lines.append(
            f"| {row['group']} | {row['what']} | {row['median']} | {row['baseline']} | {row['result']} "
            f"| {row['target']} | {row['verdict']} |"
        )
    judged = [row for row in table if row["verdict"] in ("met", "MISSED")]
    met = sum(row["verdict"] == "met" for row in judged)
    lines += ["", f"{met} of {len(judged)} targets met."]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run (or re-read) the benchmarks and print the ratio table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shorter timing (noisier)")
    parser.add_argument("--from", dest="source", metavar="FILE", help="print a saved pytest-benchmark JSON")
    parser.add_argument("--save", metavar="FILE", help="keep the raw pytest-benchmark JSON here")
    parser.add_argument("pytest_args", nargs="*", help="passed on to pytest (after --)")
    args = parser.parse_args(argv)
    if args.source:
        with open(args.source, encoding="utf-8") as handle:
            document = json.load(handle)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = args.save or os.path.join(tmp, "benchmarks.json")
            status = run_benchmarks(path, args.quick, args.pytest_args)
            if status != 0:
                print(f"report: the benchmark run failed (pytest exit {status})", file=sys.stderr)
                return status
            with open(path, encoding="utf-8") as handle:
                document = json.load(handle)
    try:
        print(render(document))
    except BrokenPipeError:  # report.py | head
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
