"""``kvmprobe diff A [B]``: what differs between two hosts (exit 0 equal, 1 different)."""

from __future__ import annotations

import argparse
import sys

from .._collisions import collisions
from ..diff import CapChange, HostDiff, diff_hosts
from ..probing import ProbeResult, probe
from . import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional, Sequence, Tuple

    from .._backend import Backend


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "diff",
        help="compare two recorded hosts, or one with this host (exit 0 equal, 1 different)",
        description="Compare host A with host B: capabilities gained, lost and changed in value, host facts "
        "changed, and which VMMs can run on one and not the other. A and B are snapshot files "
        "('kvmprobe snapshot -o FILE') or preset:NAME; without B, A is compared with this host.",
    )
    parser.add_argument("a", metavar="A", help="a snapshot file or preset:NAME (the host you have)")
    parser.add_argument("b", metavar="B", nargs="?", help="a snapshot file or preset:NAME (default: this host)")
    parser.add_argument("--json", action="store_true", help="print the differences as JSON")
    parser.add_argument(
        "--vm", action="store_true", help="for this host, also create a VM and compare VM-fd values"
    )
    parser.add_argument("--device", metavar="PATH", help="this host's KVM device when B is omitted")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    a = _common.load_host(args.a)
    if args.b is not None:
        if args.device is not None or args.vm:
            raise _common.UsageError("--device and --vm apply to this host, which is compared only when B is omitted")
        b = _common.load_host(args.b)
    else:
        b = _live(args.device, args.vm, _common.backend_of(args))
    result = diff_hosts(a, b)
    if args.json:
        _common.write_json(result.to_dict())
    else:
        sys.stdout.write(render(result, a, b))
    return _common.EXIT_OK if result.equal else _common.EXIT_NO


def _live(device: Any, vm: bool, backend: Optional[Backend] = None) -> ProbeResult:
    """This host as a plain snapshot records it (the device is not asked again)."""
    from ..snapshot import gather_live

    return gather_live(probe(device, vm=vm, backend=backend, cpu=True), backend=backend)


def _label(host: ProbeResult) -> str:
    when = f", recorded {host.recorded_at}" if host.recorded_at else ""
    made = host.origin in ("synthesized", "derived from source")
    kind = f", {host.origin}" if made and host.origin not in host.source else ""
    return f"{host.source} (Linux {host.kernel}, {host.arch}{when}{kind})"


def render(diff: HostDiff, a: ProbeResult, b: ProbeResult) -> str:
    """The human report: both hosts, then each kind of difference, then the verdict line."""
    lines: List[str] = [f"A: {_label(a)}", f"B: {_label(b)}"]
    sections: Sequence[Tuple[str, str, Sequence[Any]]] = (
        ("capabilities gained (unsupported on A, supported on B)", "+", diff.gained),
        ("capabilities lost (supported on A, unsupported on B)", "-", diff.lost),
        ("capability values changed", "~", diff.changed),
        ("VM-fd values changed", "~", diff.vm_changed),
        ("host facts changed", "~", diff.facts),
        ("VMM verdicts changed", "!", diff.verdicts),
        ("CPU a guest gets changed (after the volatile fields are cleared)", "~", diff.cpu),
    )
    total = 0
    for title, mark, items in sections:
        if not items:
            continue
        total += len(items)
        lines += ["", f"{title}: {len(items)}"]
        for item in items:
            lines.append(f"  {mark} {item.describe()}" + (_since(item) if isinstance(item, CapChange) else ""))
            if isinstance(item, CapChange):
                lines += [f"      ! {entry.warning()}" for entry in collisions("cap", item.number, b.arch)]
    if diff.notes:
        lines += ["", "not compared:"] + [f"  {note}" for note in diff.notes]
    lines += ["", "equal: no differences" if diff.equal else f"different: {total} differences"]
    return "\n".join(lines) + "\n"


def _since(change: CapChange) -> str:
    from ..caps import Cap

    try:
        return f"  (Linux {Cap(change.number).since_text})"
    except ValueError:
        return "  (not in this kvmprobe's table)"
