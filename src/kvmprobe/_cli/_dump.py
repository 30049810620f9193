"""``kvmprobe [dump]``: the capability table for a person, or JSON for a program."""

from __future__ import annotations

import sys

from .._version import __version__
from .._bitmasks import decode_mask
from ..caps import Cap
from ..probing import ProbeResult
from . import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any, List, Optional


def register(subparsers: Any) -> None:
    # The default command: 'kvmprobe --json' reaches here as 'kvmprobe dump --json' (_cli._with_command).
    parser = subparsers.add_parser("dump", help="print every capability and its value (the default)")
    parser.add_argument("--json", action="store_true", help="print the JSON document for programs")
    parser.add_argument("--all", action="store_true", help="list unsupported capabilities too")
    parser.add_argument("--vm", action="store_true", help="also create a VM and ask each capability on its fd")
    _common.add_source_arguments(parser)
    parser.set_defaults(func=run)


def quick_args(words: List[str]) -> Optional[argparse.Namespace]:
    """``dump`` (and ``kvmprobe --json``) read without argparse when the words are plain."""
    return _common.quick_args("dump", words, run, flags={"--json": "json", "--all": "all", "--vm": "vm"})


def run(args: argparse.Namespace) -> int:
    result = _common.load_result(args, vm=args.vm)
    if args.json:
        from ..snapshot import document_for  # the snapshot document: one schema for every JSON host

        _common.write_json(document_for(result, backend=_common.backend_of(args)))
    else:
        sys.stdout.write(render(result, show_all=args.all))
    return _common.EXIT_OK


def render(result: ProbeResult, *, show_all: bool = False) -> str:
    """The human table: header facts, then one row per (supported) capability."""
    supported = result.supported()
    in_rs = sum(1 for cap in supported if cap.in_cap_rs)
    lines: List[str] = [
        f"kvmprobe {__version__}",
        f"  device       {result.device}" + ("" if result.source == "live" else f"  ({result.source})")
        if not result.synthesized else f"  device       none: {result.source}",
        f"  API version  {result.api_version}",
        f"  kernel       {result.kernel} ({result.arch})",
        f"  backend      {result.backend}",
        f"  supported    {len(supported)} of {len(Cap)} capabilities "
        f"({in_rs} of {sum(1 for c in Cap if c.in_cap_rs)} in kvm-ioctls cap.rs)",
    ]
    if result.errors:
        lines.append(f"  failed       {len(result.errors)} queries failed (shown as ERROR below)")
    types = result.values.get(Cap.VM_TYPES, 0)
    decoded = decode_mask(Cap.VM_TYPES, types, result.arch) if types > 0 else None
    if decoded is not None:
        from .._collisions import collisions

        lines.append(f"  VM types     {types:#x} = {decoded.text()} ('kvmprobe check sev-snp' and tdx say why not more)")
        for number in range(32):
            if types >> number & 1:
                lines += [f"    ! {entry.warning()}" for entry in collisions("x86-vm-type", number, result.arch)]
    if result.not_recorded:
        lines.append(f"  not recorded {len(result.not_recorded)} capabilities have no row in the recording (--all shows them)")
    lines += ["", "VMM READINESS ('kvmprobe check VMM' says why)"] + _readiness_lines(result)
    vm = result.vm_values is not None
    header = f"{'CAPABILITY':<40} {'NUMBER':>6} {'VALUE':>10}" + (f" {'VM FD':>10}" if vm else "") + "  SINCE"
    lines += ["", header]
    for cap in Cap:
        if not show_all and cap not in supported and cap not in result.errors:
            continue
        if cap in result.not_recorded:
            lines.append(f"{cap.c_name:<40} {int(cap):>6} {'-':>10}  {cap.since_text}  (not recorded)")
            continue
        shown = "ERROR" if cap in result.errors else str(result.values.get(cap, 0))
        row = f"{cap.c_name:<40} {int(cap):>6} {shown:>10}"
        if vm:
            assert result.vm_values is not None
            vm_shown = "ERROR" if cap in result.vm_errors else str(result.vm_values.get(cap, "-"))
            row += f" {vm_shown:>10}"
        note = "" if cap.in_cap_rs else "  (not in cap.rs)"
        if not cap.applies_to(result.arch):
            note += f"  ({'/'.join(sorted(cap.arches))} only)"
        lines.append(f"{row}  {cap.since_text}{note}")
        lines += _explained(result, cap)
    if not show_all:
        hidden = len(Cap) - len(supported) - len(result.not_recorded)
        lines += ["", f"{hidden} unsupported capabilities hidden; --all shows them."]
    return "\n".join(lines) + "\n"


def _readiness_lines(result: ProbeResult) -> List[str]:
    """One line per built-in VMM profile for the host's arch: ready, or not and why."""
    from ..profiles import check_vmm, vmm_names

    names = vmm_names(result.arch)
    if not names:
        return [f"  no built-in VMM profiles for {result.arch}"]
    lines = []
    for name in names:
        verdict = check_vmm(name, result)
        if verdict.ready:
            optional = len(verdict.missing_optional)
            notes = [f"{optional} optional {'capability' if optional == 1 else 'capabilities'} missing"] if optional else []
            if verdict.conditions:
                notes.append(f"on {verdict.kvm_backend}: {verdict.conditions[0].short}")
            detail = f"({'; '.join(notes)})" if notes else ""
            lines.append(f"  {name:<18} ready      {detail}".rstrip())
        else:
            lines.append(f"  {name:<18} {verdict.state_text:<10} {verdict.summary()}")
    return lines


def _explained(result: ProbeResult, cap: Cap) -> List[str]:
    """Under a row: a bit mask's answer by name, and what the number means out of tree."""
    from .._collisions import collisions

    lines = []
    if cap not in result.errors:
        decoded = decode_mask(cap, result.values.get(cap, 0), result.arch)
        if decoded is not None and decoded.value > 0:
            lines.append(f"    = {decoded.text()}")
    lines += [f"    ! {entry.warning()}" for entry in collisions("cap", int(cap), result.arch)]
    return lines
