"""``kvmprobe has CAP...``: exit 0 when every named capability is supported, 1 when not."""

from __future__ import annotations

import argparse
import sys
from typing import Any, List

from ..caps import Cap
from . import _common


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "has",
        help="exit 0 if every named capability is supported, 1 if one is not",
        description="Names may be C names (KVM_CAP_IMMEDIATE_EXIT), short names (immediate_exit), "
        "kvm-ioctls names (ImmediateExit) or numbers.",
    )
    parser.add_argument("caps", nargs="+", metavar="CAP", help="capability names or numbers")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing, only set the exit code")
    _common.add_source_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    caps = [Cap.lookup(name) for name in args.caps]  # bad names fail before KVM is touched
    result = _common.load_result(args)
    missing: List[Cap] = [cap for cap in caps if not result.has(cap)]
    if not args.quiet:
        from .._bitmasks import decode_mask
        from .._collisions import collisions

        for cap in caps:
            decoded = None if cap in missing else decode_mask(cap, result.value(cap), result.arch)
            named = f" = {decoded.text()}" if decoded is not None else ""
            state = "missing" if cap in missing else f"yes ({result.value(cap)}{named})"
            print(f"{cap.c_name}: {state}")
            for entry in collisions("cap", int(cap), result.arch):
                print(f"kvmprobe: note: {entry.warning()}", file=sys.stderr)
    if missing:
        names = ", ".join(cap.c_name for cap in missing)
        print(
            f"kvmprobe: not supported: {names} (first in Linux "
            + ", ".join(f"{cap.since_text}" for cap in missing)
            + f"; this kernel is {result.kernel})",
            file=sys.stderr,
        )
        return _common.EXIT_NO
    return _common.EXIT_OK
