"""``kvmprobe compat SOURCE DEST``: can a guest started on SOURCE move to DEST (exit 0), or not (1)?"""

from __future__ import annotations

import argparse
import sys
from typing import Any, List, Optional

from . import _common

_VMMS = ("firecracker", "cloud-hypervisor", "qemu")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compat",
        help="can a guest started on one recorded host move to another (exit 0 yes, 1 no, every reason)",
        description="Judge whether a guest started on SOURCE (with everything SOURCE offers, or with a baseline) "
        "can be live-migrated or restored on DEST: the CPUID features DEST lacks (Cloud Hypervisor's per-register "
        "rules where they apply), XSAVE components, a vendor change, feature MSRs, the TSC rate outside the VMM's "
        "tolerance without TSC scaling on DEST, and with --vmm what that VMM needs on DEST to run and to restore. "
        "SOURCE and DEST are snapshot files ('kvmprobe snapshot --vm -o FILE') or preset:NAME.",
        epilog="exit codes: 0 the guest can move; 1 it cannot (every reason is printed); 2 bad input (a file "
        "without CPU data, hosts of different architectures).",
    )
    parser.add_argument("source", metavar="SOURCE", help="the host the guest started on")
    parser.add_argument("dest", metavar="DEST", help="the host it moves to")
    parser.add_argument("--for", dest="purpose", choices=("migrate", "restore"),
                        help="live migration or snapshot restore (default: migrate; restore for Firecracker)")  # fmt: skip
    parser.add_argument("--vmm", metavar="VMM[@VERSION]",
                        help=f"the VMM that moves the guest ({', '.join(_VMMS)}): also judge what it needs on DEST")  # fmt: skip
    parser.add_argument("--baseline", metavar="FILE",
                        help="the guest's CPU is this baseline ('kvmprobe baseline --format json -o FILE'), "
                        "not everything SOURCE offers")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import compat
    from ..profiles import resolve_vmm_spec

    vmm: Optional[str] = None
    if args.vmm is not None:
        name, version = resolve_vmm_spec(args.vmm)  # an unknown VMM fails before any file is read
        if name not in _VMMS:
            raise _common.UsageError(f"--vmm {args.vmm}: compat knows how {', '.join(_VMMS)} move guests, not {name}")
        vmm = name + (f"@{version}" if version else "")
    purpose = args.purpose or ("restore" if vmm is not None and vmm.startswith("firecracker") else "migrate")
    guest = compat.load_baseline(args.baseline) if args.baseline is not None else None
    verdict = compat.compare(args.source, args.dest, guest=guest, purpose=purpose, vmm=vmm)
    if args.json:
        _common.write_json(verdict.to_dict())
    else:
        sys.stdout.write(render(verdict))
    return _common.EXIT_OK if verdict.ok else _common.EXIT_NO


def render(verdict: Any) -> str:
    """The human report: the two hosts, what is judged, the verdict, every reason, the notes."""
    verb = {"migrate": "migrate to", "restore": "be restored on"}[verdict.purpose]
    how = f"with {verdict.vmm}" if verdict.vmm else "under KVM's own rules (no --vmm)"
    out: List[str] = [
        f"SOURCE: {verdict.source}",
        f"DEST:   {verdict.dest}",
        f"guest:  {verdict.guest}; {verdict.purpose}, {how}",
        "",
    ]
    if verdict.ok:
        out.append(f"yes: a guest started on SOURCE can {verb} DEST")
    else:
        count = len(verdict.reasons)
        out.append(f"no: a guest started on SOURCE cannot {verb} DEST ({count} reason{'s' if count != 1 else ''}):")
        out += [f"  - {reason.describe()}" for reason in verdict.reasons]
    if verdict.notes:
        out += ["", "notes:"] + [f"  - {note}" for note in verdict.notes]
    return "\n".join(out) + "\n"
