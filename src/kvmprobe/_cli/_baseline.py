"""``kvmprobe baseline SNAPSHOT... [--format list|firecracker|qemu|json]``: what every host offers a guest.

Exit 0 with the baseline; 1 when the hosts' CPU vendors differ (no guest moves between them:
the baseline is still printed, and the vendors said plainly); 2 for bad input.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, List

from . import _common

FORMATS = ("list", "firecracker", "qemu", "json")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "baseline",
        help="the largest guest CPU every recorded host offers (a Firecracker template, a QEMU -cpu)",
        description="Read recorded hosts ('kvmprobe snapshot --vm -o FILE' on each) one at a time and print the "
        "largest guest CPU feature set every one of them offers, APIC IDs and other per-CPU fields cleared. "
        "SNAPSHOT is a file, a directory of them (each *.json) or preset:NAME. --format firecracker writes a "
        "Firecracker custom CPU template; qemu a -cpu argument (a named model and +/- features).",
        epilog="exit codes: 0 the baseline; 1 the hosts' CPU vendors differ (no guest moves between them); "
        "2 bad input (a file without CPU data, hosts of different architectures).",
    )
    parser.add_argument("hosts", nargs="+", metavar="SNAPSHOT", help="snapshot files, directories of them, preset:NAME")
    parser.add_argument("--format", choices=FORMATS, default="list", help="what to print (default: list)")
    parser.add_argument("--qemu-version", metavar="VERSION", default="10.2.2",
                        help="with --format qemu: the QEMU release the models must exist in (7.2 to 10.2.2; default 10.2.2)")  # fmt: skip
    parser.add_argument("-o", "--output", metavar="FILE", help="replace FILE atomically (default: standard output)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import compat

    _common.check_output(args.output)
    if args.format != "qemu" and args.qemu_version != "10.2.2":
        raise _common.UsageError("--qemu-version applies to --format qemu only")
    base = compat.baseline(args.hosts)
    notes: List[str] = []
    if base.vendor is None and args.format != "qemu":  # qemu's own notes say it
        notes.append("the hosts' CPU vendors differ (" + ", ".join(f"{v}: {n} host{'s' if n != 1 else ''}"
                     for v, n in base.vendors.items()) + "): no guest moves between them")  # fmt: skip
    if args.format == "firecracker":
        template = compat.firecracker_template(base)
        text = _json(template.document)
        notes += template.notes
    elif args.format == "qemu":
        try:
            cpu = compat.qemu_cpu(base, args.qemu_version)
        except ValueError as err:
            raise _common.UsageError(str(err)) from None
        text = f"-cpu {cpu.arg}\n"
        notes += list(cpu.notes)
        if cpu.closest is not None:
            notes.append(f"the closest named model, with what it must drop: -cpu {cpu.closest[1]}")
    elif args.format == "json":
        text = _json(base.to_dict())
    else:
        text = render(base)
    if args.output is None or args.output == "-":
        sys.stdout.write(text)
    else:
        _common.write_output(args.output, text)
    for note in notes:
        print(f"kvmprobe: note: {note}", file=sys.stderr)
    return _common.EXIT_OK if base.vendor is not None else _common.EXIT_NO


def _json(document: Any) -> str:
    import json

    return json.dumps(document, indent=2) + "\n"


def render_alone(base: Any, most: int = 10) -> List[str]:
    """The hosts that alone keep features out of the baseline (the first ``most``), and what."""
    from ._cpu import _wrap

    if not base.alone:
        return []
    out = ["Hosts that alone keep features out of the baseline:"]
    for host, what in base.alone[:most]:
        out += _wrap(f"  {host}:", list(what), len(host) + 4)
    if len(base.alone) > most:
        out.append(f"  ... and {len(base.alone) - most} more hosts")
    return out


def render(base: Any) -> str:
    """The human report: the features by group, XSAVE, the MSRs, what some hosts lose."""
    from .._cpu_decode import CpuInfo
    from .._cpuid import arch_capabilities, xsave_components
    from .._cpuid_table import MSR_IA32_ARCH_CAPABILITIES
    from ._cpu import _wrap

    features = base.features()
    vendors = ", ".join(f"{v} ({n})" if len(base.vendors) > 1 else v for v, n in base.vendors.items())
    out = [f"Baseline of {base.hosts} host{'s' if base.hosts != 1 else ''} ({base.arch}, {vendors}): "
           f"{len(features)} features a guest gets on every host"]  # fmt: skip
    info = CpuInfo("baseline", base.arch, True, features=frozenset(features))
    for group, offered, _ in info.groups():
        out += _wrap(f"  {group}", offered, 30)
    out.append("XSAVE components: " + (" ".join(base.xsave_components()) if base.xsave is not None else "not recorded on every host"))
    arch = base.msrs.get(MSR_IA32_ARCH_CAPABILITIES)
    if arch is not None:
        out += _wrap("IA32_ARCH_CAPABILITIES:", list(arch_capabilities(arch)) or ["(no bit)"], 24)
    lost = base.lost_features()
    if lost or base.xsave_lost:
        out.append("")
        out += _wrap("Lost (some hosts offer):", list(lost) + [f"XSAVE:{c}" for c in xsave_components(base.xsave_lost)], 26)
    out += render_alone(base)
    low, high, recorded = base.tsc_khz
    if recorded:
        rate = f"{low} kHz" if low == high else f"{low} to {high} kHz"
        out.append(f"TSC rate: {rate} on {recorded} of {base.hosts} hosts (judged per pair: 'kvmprobe compat')")
    return "\n".join(out) + "\n"
