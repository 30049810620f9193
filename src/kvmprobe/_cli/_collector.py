"""``kvmprobe collector [-o FILE]``: print the collector for old hosts (``kvmprobe-collect.py``).

The collector is one file for Python 2.7 and 3.6+ that writes the snapshot ``kvmprobe snapshot``
writes, for hosts whose Python is too old for kvmprobe; this command serves it with this
kvmprobe's tables put in (``kvmprobe._collector``). No device is opened here.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import _common


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "collector",
        help="print kvmprobe-collect.py: records a host with Python 2.7 or 3.6+, for --snapshot",
        description="Print the collector for hosts whose Python is older than kvmprobe needs (CentOS 7: 2.7, "
        "RHEL 8 and Ubuntu 18.04: 3.6): one file, no dependencies, that writes the snapshot 'kvmprobe snapshot' "
        "would write there. Copy it to the host, run 'python kvmprobe-collect.py -o HOST.json', bring HOST.json "
        "back and read it with --snapshot HOST.json (doctor, check, cpu, diff). It carries this kvmprobe's "
        "capability table.",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write it to FILE atomically ('-': stdout)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._collector import script

    _common.check_output(args.output)
    text = script()
    if args.output is None or args.output == "-":
        sys.stdout.write(text)
    else:
        _common.write_output(args.output, text)
    return _common.EXIT_OK
