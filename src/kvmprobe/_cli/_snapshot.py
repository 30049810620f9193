"""``kvmprobe snapshot [-o FILE]``: record this host as a snapshot document (JSON)."""

from __future__ import annotations

import argparse

from ..caps import Cap
from ..presets import load_preset, preset_names
from ..probing import ProbeResult
from ..snapshot import document_for, load_snapshot, write_snapshot
from . import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "snapshot",
        help="record this host (capabilities, host facts and the CPU a guest gets) as a JSON snapshot",
        description="Record what this host's KVM answers, with the host facts that explain it, as one JSON "
        "document. Any command reads it back with --snapshot FILE; 'kvmprobe diff' compares two. "
        "Without -o the document goes to standard output.",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write the snapshot to FILE atomically ('-': stdout)")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the document on standard output even with -o ('kvmprobe --json' prints the same schema "
        "without the CPU record)",
    )
    parser.add_argument(
        "--vm", action="store_true", help="also create a VM: record each capability's VM-fd value and a vCPU's TSC rate"
    )
    parser.add_argument(
        "--run",
        action="store_true",
        help="also run the micro-guest checks (KVM_RUN, exit cost, slowdown; 'kvmprobe run') and record them",
    )
    parser.add_argument(
        "--confidential",
        action="store_true",
        help="also ask KVM the confidential-VM questions (the SEV attributes of /dev/kvm; with --vm, create a VM "
        "of each SEV/SNP/TDX type and close it at once)",
    )
    parser.add_argument("--list-presets", action="store_true", help="list the bundled preset hosts and exit")
    _common.add_source_arguments(parser)
    parser.set_defaults(func=run)


#: What --list-presets would ignore: (spelling, dest).
_NOT_WITH_LIST = (("-o", "output"), ("--json", "json"), ("--vm", "vm"), ("--run", "run"), ("--confidential", "confidential"),
                  ("--device", "device"), ("--snapshot", "snapshot"))


def run(args: argparse.Namespace) -> int:
    if args.list_presets:
        given = [flag for flag, dest in _NOT_WITH_LIST if getattr(args, dest, None) not in (None, False)]
        if given:
            raise _common.UsageError(f"--list-presets lists the presets and does nothing else: {', '.join(given)} "
                                     "would be ignored (hint: give --list-presets alone)")
        from ..presets import _ALIASES  # the other names each preset answers to

        for name in preset_names():
            aliases = sorted(alias for alias, target in _ALIASES.items() if target == name)
            also = f" (also: {', '.join(aliases)})" if aliases else ""
            print(f"{name:<12} {describe(load_preset(name))}{also}")
        return _common.EXIT_OK
    _common.check_output(args.output)
    if args.confidential and getattr(args, "snapshot", None) is not None:
        raise _common.UsageError("--confidential asks the live KVM; a recorded host (--snapshot) keeps what it recorded "
                                 "(hint: leave out --confidential, or leave out --snapshot to ask the live host)")
    result = _common.load_result(args, vm=args.vm, cpu=True)
    if args.run:
        result = with_run(args, result)
    document = document_for(result, backend=_common.backend_of(args), ask_kvm=args.confidential)
    if args.output is None or args.output == "-":
        _common.write_json(document)
        return _common.EXIT_OK
    write_snapshot(document, args.output)
    if args.json:
        _common.write_json(document)
    else:
        print(f"{args.output}: {describe(load_snapshot(document))}")
    return _common.EXIT_OK


def with_run(args: argparse.Namespace, result: ProbeResult) -> ProbeResult:
    """``result`` with the micro-guest checks run on its (live) device."""

    from ..guest import with_run as attach_run

    if getattr(args, "snapshot", None) is not None:
        raise _common.UsageError("--run runs guests on this host; a recorded host (--snapshot) keeps what it recorded "
                                 "(hint: leave out --run, or leave out --snapshot to run on this host)")
    attached: ProbeResult = attach_run(result, backend=_common.backend_of(args))
    return attached


def describe(result: ProbeResult) -> str:
    """One line about a host: kernel, arch, how many capabilities, where from."""
    supported = len(result.supported())
    vm = ", VM fd asked" if result.vm_values is not None else ""
    kind = result.origin  # recorded, synthesized, or derived from source
    extra = f", {len(result.unknown)} unknown to this kvmprobe" if result.unknown else ""
    if result.run is not None:
        vm += ", KVM_RUN " + ("works" if result.run.ok else "FAILED")
    return (
        f"{kind}: Linux {result.kernel} ({result.arch}), {supported} of {len(Cap)} capabilities supported"
        f"{extra}{vm}"
    )
