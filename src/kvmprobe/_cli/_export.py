"""``kvmprobe export --format nfd|prometheus``: this host's KVM facts for a fleet's own tooling.

``kvmprobe.export.gather`` learns what the renderers in :mod:`kvmprobe.export` need (the probe,
the diagnosis's verdict and nested setting, each built-in VMM's readiness); the command prints
the text or replaces ``-o FILE`` atomically.

A live host whose KVM cannot be used is still exported: ``kvm.usable=false`` /
``kvm_usable 0``, with the reason (``kvm.unavailable=permission-denied``), every VMM not
ready, and the host facts that need no device (nested). The file is written first; then the
command exits 3, with the reason on stderr, so a person at a terminal sees it, while a
systemd unit (``SuccessExitStatus=3``) or a DaemonSet loop simply carries on. A recorded host
(``--snapshot``) exits 0 whatever it says: no live device was needed.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime, timedelta, timezone

from ..export import CPU_LABELS, DEFAULT_PREFIX, Gathered, check_prefix, nfd_features, prometheus_text, select_caps
from ..export import gather as gather_host
from . import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write this host's KVM facts for a fleet: NFD feature labels or Prometheus metrics",
        description="Render the host (or a recorded one) as a Node Feature Discovery feature file "
        "(features.d) or as a node_exporter textfile (*.prom). With -o the file is replaced "
        "atomically. A host where KVM is not usable is exported as such (usable=false).",
        epilog="exit codes: 0 written, 2 bad input or unwritable output, 3 written, but the live "
        "KVM device is not usable (the export says so).",
    )
    parser.add_argument("--format", required=True, choices=("nfd", "prometheus"), help="which format to write")
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="replace FILE atomically (default: standard output; '-' too)"
    )
    parser.add_argument(
        "--prefix", metavar="DOMAIN", help=f"nfd: the label namespace (default: {DEFAULT_PREFIX})"
    )
    parser.add_argument(
        "--caps",
        default="all",
        metavar="all|none|LIST",
        help="which capabilities to export: all (default), none, or a comma-separated list of names",
    )
    parser.add_argument(
        "--expiry-time",
        metavar="WHEN",
        help="nfd: labels expire at WHEN unless rewritten: an RFC 3339 time (2026-11-26T10:00:00Z) "
        "or a duration from now (90m, 3h, 7d)",
    )
    parser.add_argument(
        "--cpu",
        choices=CPU_LABELS,
        default="all",
        help="what of the guest CPU to export: its compatibility class, vendor and features (all, the default), "
        "the class and vendor only (class), nothing (none)",
    )
    _common.add_source_arguments(parser)
    parser.set_defaults(func=run)


def parse_expiry(text: str, now: datetime) -> datetime:
    """An RFC 3339 time with a zone, or ``now`` plus a duration like ``3h``."""
    spelled = text.strip()
    match = _DURATION.fullmatch(spelled)
    if match is not None:
        try:
            return now + timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
        except (OverflowError, ValueError):  # past year 9999, or more digits than int() reads
            raise _common.UsageError(f"--expiry-time {text[:40]!r} is too far in the future (dates end at year 9999) "
                                     "(hint: give a duration such as 7d)") from None
    iso = spelled[:-1] + "+00:00" if spelled[-1:] in ("Z", "z") else spelled
    try:
        when = datetime.fromisoformat(iso.replace("t", "T"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise _common.UsageError(
            f"--expiry-time {text!r} is neither an RFC 3339 time with a zone nor a duration "
            "(hint: give a time such as 2026-11-26T10:00:00Z, or a duration such as 90m, 3h or 7d)"
        )
    if when <= now:  # labels that have expired already: NFD would drop them at once
        raise _common.UsageError(
            f"--expiry-time {text!r} is in the past (it is {now.strftime('%Y-%m-%dT%H:%M:%SZ')} now): the labels "
            "would expire as they are written (hint: give a later time, or a duration such as 7d)"
        )
    return when


def _hinted(message: str, hint: str) -> str:
    """``message`` with ``hint``, unless it carries one (the API's errors with their own)."""
    return message if "(hint: " in message else f"{message} (hint: {hint})"


def run(args: argparse.Namespace) -> int:
    # Bad input fails before KVM is touched.
    if args.format != "nfd":
        for flag, given in (("--prefix", args.prefix), ("--expiry-time", args.expiry_time)):
            if given is not None:
                raise _common.UsageError(f"{flag} applies to --format nfd only (hint: leave it out, or give --format nfd)")
    expiry = parse_expiry(args.expiry_time, datetime.now(timezone.utc)) if args.expiry_time else None
    prefix = args.prefix if args.prefix is not None else DEFAULT_PREFIX
    try:
        caps = select_caps(args.caps)
    except ValueError as err:
        raise _common.UsageError(_hinted(str(err), "give --caps all, none, or names such as IMMEDIATE_EXIT,NR_MEMSLOTS")) from None
    try:
        check_prefix(prefix)
    except ValueError as err:
        raise _common.UsageError(_hinted(str(err), "give a prefix such as --prefix kvm.example.com")) from None

    _common.check_output(args.output)
    host = gather(args)
    try:
        if args.format == "nfd":
            text = nfd_features(
                host.result, usable=host.usable, nested=host.nested, vmm_ready=host.vmm,
                unavailable=host.unavailable, prefix=prefix, caps=caps, expiry_time=expiry, cc_ready=host.confidential,
                cpu=args.cpu,
            )
        else:
            text = prometheus_text(
                host.result, usable=host.usable, nested=host.nested, vmm_ready=host.vmm,
                unavailable=host.unavailable, caps=caps, cc_ready=host.confidential, cc_blocking=host.cc_blocking,
                cpu=args.cpu,
            )
    except ValueError as err:  # a feature file over NFD's size limit
        raise _common.UsageError(str(err)) from None
    _emit(text, args.output)

    if host.live and not host.usable:
        print(f"kvmprobe: KVM is not usable here, exported as such: {host.why}", file=sys.stderr)
        return _common.EXIT_UNAVAILABLE
    return _common.EXIT_OK


def gather(args: argparse.Namespace) -> Gathered:
    """The host the arguments name (``--snapshot``, or this one probed now), as the export sees it."""
    if getattr(args, "snapshot", None) is not None:
        return gather_host(_common.load_result(args))
    cpu = getattr(args, "cpu", "all") != "none"  # its CPU class, features
    return gather_host(device=getattr(args, "device", None), backend=_common.backend_of(args), cpu=cpu)


def _emit(text: str, output: Optional[str]) -> None:
    if output is None or output == "-":
        sys.stdout.write(text)
        return
    _common.write_output(output, text)
