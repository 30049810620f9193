"""``kvmprobe has CAP...``: exit 0 when every named capability is supported, 1 when not.

A number outside kvmprobe's table (``has 250``, ``has 0xfa``) is asked of the kernel as it is
(``KvmDevice.check_extension_raw``) and marked so in the output; a recorded host answers it
only when its snapshot carries that row (else it is not recorded: exit 2).
"""

from __future__ import annotations

import sys

from ..caps import Cap, parse_number
from ..errors import CapabilityNotRecorded
from ..probing import ProbeResult
from . import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any, Dict, List, Optional, Union

    Wanted = Union[Cap, int]  # a member of the table, or a number outside it


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "has",
        help="exit 0 if every named capability is supported, 1 if one is not",
        description="Names may be C names (KVM_CAP_IMMEDIATE_EXIT), short names (immediate_exit), "
        "kvm-ioctls names (ImmediateExit) or numbers (136, 0x88); a number outside kvmprobe's table is "
        "asked of the kernel as it is.",
    )
    parser.add_argument("caps", nargs="+", metavar="CAP", help="capability names or numbers")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing, only set the exit code")
    _common.add_source_arguments(parser)
    parser.set_defaults(func=run)


def quick_args(words: List[str]) -> Optional[argparse.Namespace]:
    """``has`` read without argparse when its words are plain (:func:`_common.quick_args`).

    Example:
        >>> args = quick_args(["-q", "IMMEDIATE_EXIT", "--device=/dev/kvm"])
        >>> args.caps, args.quiet, args.device, args.snapshot
        (['IMMEDIATE_EXIT'], True, '/dev/kvm', None)
        >>> quick_args(["--dev", "/dev/kvm", "HLT"]) is None, quick_args(["-h"]) is None
        (True, True)
    """
    return _common.quick_args(
        "has", words, run, flags={"-q": "quiet", "--quiet": "quiet"}, positional="caps", required=True
    )


def _wanted(name: str) -> Wanted:
    number = parse_number(name)
    if number is not None and number not in _TABLE:
        return number
    return Cap.lookup(name)  # bad names fail before KVM is touched


_TABLE = frozenset(int(cap) for cap in Cap)


def _applies(cap: Cap, arch: str) -> bool:
    """Whether ``cap`` can be offered on ``arch``: cap.rs's gating (``Cap.applies_to``), and on
    x86_64 no other architecture's capability (``ARM_PSCI``, ``S390_PSW``: cap.rs does not gate
    them, the kernel's x86 KVM never answers them; ``presets.offered_on_x86_64``)."""
    if not cap.applies_to(arch):
        return False
    if arch != "x86_64":
        return True
    from ..presets import offered_on_x86_64  # only on the path of a capability that is missing

    return offered_on_x86_64(cap)


def _label(item: Wanted) -> str:
    return item.c_name if isinstance(item, Cap) else f"number {item} (not in kvmprobe's table)"


def _raw_answers(numbers: List[int], result: ProbeResult, args: argparse.Namespace) -> Dict[int, int]:
    """Each number outside the table: the live kernel's answer, or a recorded row's."""
    if not numbers:
        return {}
    if result.source == "live":
        from ..device import KvmDevice

        with KvmDevice.open(result.device, backend=_common.backend_of(args)) as kvm:  # closed on leaving the block
            return {number: kvm.check_extension_raw(number) for number in numbers}
    rows = {int(row["number"]): row for row in result.unknown}
    answers: Dict[int, int] = {}
    for number in numbers:
        row = rows.get(number)
        if row is None or row.get("value") is None:
            if not args.quiet:
                print(f"{_label(number)}: not recorded")
            raise CapabilityNotRecorded(f"capability number {number}", result.source)
        answers[number] = int(row["value"])
    return answers


def run(args: argparse.Namespace) -> int:
    wanted = [_wanted(name) for name in args.caps]
    result = _common.load_result(args)
    raw = _raw_answers([item for item in wanted if not isinstance(item, Cap)], result, args)

    def value(item: Wanted) -> int:
        return result.value(item) if isinstance(item, Cap) else raw[item]

    missing = [item for item in wanted if value(item) <= 0]
    if args.quiet:
        return _common.EXIT_NO if missing else _common.EXIT_OK
    from .._bitmasks import decode_mask
    from .._collisions import collisions

    for item in wanted:
        decoded = decode_mask(item, value(item), result.arch) if isinstance(item, Cap) and item not in missing else None
        named = f" = {decoded.text()}" if decoded is not None else ""
        print(f"{_label(item)}: {'missing' if item in missing else f'yes ({value(item)}{named})'}")
        for entry in collisions("cap", int(item), result.arch):
            print(f"kvmprobe: note: {entry.warning()}", file=sys.stderr)
    if missing:
        # A capability of another architecture is not "first in Linux N" here: it never comes.
        foreign = [item for item in missing if isinstance(item, Cap) and not _applies(item, result.arch)]
        native = [item for item in missing if item not in foreign]
        if native:
            names = ", ".join(_label(item) for item in native)
            since = ", ".join(item.since_text for item in native if isinstance(item, Cap))  # the table's only
            first = f"first in Linux {since}; " if since else ""
            print(f"kvmprobe: not supported: {names} ({first}this kernel is {result.kernel})", file=sys.stderr)
        if foreign:
            names = ", ".join(_label(item) for item in foreign)
            print(f"kvmprobe: not supported: {names}: {'a capability' if len(foreign) == 1 else 'capabilities'} of "
                  f"another architecture's KVM, which {result.arch} never offers, whatever the kernel", file=sys.stderr)
        return _common.EXIT_NO
    return _common.EXIT_OK
