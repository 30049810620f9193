"""``kvmprobe snapshot [-o FILE]``: record this host as a snapshot document (JSON)."""

from __future__ import annotations

import argparse
from typing import Any, Dict, Optional

from ..caps import Cap
from ..host import HostFacts, read_host_facts
from ..presets import load_preset, preset_names
from ..probing import ProbeResult
from ..snapshot import load_snapshot, snapshot_document, write_snapshot
from . import _common


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "snapshot",
        help="record this host (capabilities and host facts) as a JSON snapshot",
        description="Record what this host's KVM answers, with the host facts that explain it, as one JSON "
        "document. Any command reads it back with --snapshot FILE; 'kvmprobe diff' compares two. "
        "Without -o the document goes to standard output.",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write the snapshot to FILE atomically ('-': stdout)")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the document on standard output even with -o (it is the same as 'kvmprobe --json')",
    )
    parser.add_argument("--vm", action="store_true", help="also create a VM and record each capability's VM-fd value")
    parser.add_argument("--list-presets", action="store_true", help="list the bundled preset hosts and exit")
    _common.add_source_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.list_presets:
        for name in preset_names():
            print(f"{name:<12} {describe(load_preset(name))}")
        return _common.EXIT_OK
    _common.check_output(args.output)
    document = document_for(_common.load_result(args, vm=args.vm))
    if args.output is None or args.output == "-":
        _common.write_json(document)
        return _common.EXIT_OK
    write_snapshot(document, args.output)
    if args.json:
        _common.write_json(document)
    else:
        print(f"{args.output}: {describe(load_snapshot(document))}")
    return _common.EXIT_OK


def document_for(result: ProbeResult) -> Dict[str, Any]:
    """The snapshot document of a result: a live one gets this machine's host facts."""
    facts: Optional[HostFacts] = result.host
    if facts is None and result.source == "live":
        facts = read_host_facts(device=result.device)
    return snapshot_document(result, facts)


def describe(result: ProbeResult) -> str:
    """One line about a host: kernel, arch, how many capabilities, where from."""
    supported = len(result.supported())
    vm = ", VM fd asked" if result.vm_values is not None else ""
    kind = "synthesized" if result.synthesized else "recorded"
    extra = f", {len(result.unknown)} unknown to this kvmprobe" if result.unknown else ""
    return (
        f"{kind}: Linux {result.kernel} ({result.arch}), {supported} of {len(Cap)} capabilities supported"
        f"{extra}{vm}"
    )
