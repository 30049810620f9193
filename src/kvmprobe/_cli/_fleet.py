"""``kvmprobe fleet DIR|FILE...``: a fleet of recorded hosts at a glance (read one host at a time)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, List

from . import _common


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "fleet",
        help="a fleet of recorded hosts: CPU classes with counts, the baseline, readiness per VMM",
        description="Read recorded hosts one at a time (memory stays flat) and summarize them: how many, their "
        "CPU compatibility classes (hosts of one class are interchangeable for migration) with counts, the "
        "baseline every host offers, the hosts that alone keep features out of it, and on how many hosts each "
        "VMM can run. DIR is a directory of snapshots (each *.json); FILE a snapshot or preset:NAME.",
        epilog="exit codes: 0 the summary; 2 bad input (a file without CPU data, hosts of different architectures).",
    )
    parser.add_argument("hosts", nargs="+", metavar="DIR|FILE", help="directories of snapshots, snapshot files, preset:NAME")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import compat

    summary = compat.fleet(args.hosts)
    if args.json:
        _common.write_json(summary.to_dict())
    else:
        sys.stdout.write(render(summary))
    return _common.EXIT_OK


def render(summary: Any) -> str:
    """The human summary."""
    from ._baseline import render_alone
    from ._cpu import _wrap

    base = summary.baseline
    count = len(summary.classes)
    out: List[str] = [f"{summary.hosts} host{'s' if summary.hosts != 1 else ''} ({summary.arch}), "
                      f"{count} CPU class{'es' if count != 1 else ''}:"]  # fmt: skip
    if base.vendor is None:
        out.append("  CPU vendors differ: " + ", ".join(f"{v} ({n})" for v, n in base.vendors.items())
                   + "; no guest moves between them")  # fmt: skip
    width = max(len(str(c.hosts)) for c in summary.classes)
    for cls in summary.classes[:20]:
        out.append(f"  {cls.cpu_class}  {cls.hosts:>{width}} host{'s' if cls.hosts != 1 else ' '}  "
                   f"{cls.model or 'CPU model not recorded'}  (e.g. {cls.example})")  # fmt: skip
    if count > 20:
        out.append(f"  ... and {count - 20} more classes")
    features = base.features()
    out += ["", f"Baseline: {len(features)} features on every host; XSAVE: "
            + (" ".join(base.xsave_components()) or "not recorded")]  # fmt: skip
    lost = base.lost_features()
    if lost:
        out += _wrap(f"  {len(lost)} on some hosts only:", list(lost), 30)
    out += render_alone(base)
    out += ["", "Readiness (the hosts each VMM can run on, newest release profiled):"]
    name_width = max(len(name) for name, _ in summary.readiness)
    unknown = dict(summary.unknown)
    for name, ready in summary.readiness:
        tell = f" ({unknown[name]} cannot tell: not recorded)" if unknown.get(name) else ""
        out.append(f"  {name:<{name_width}}  {ready} of {summary.hosts}{tell}")
    return "\n".join(out) + "\n"
