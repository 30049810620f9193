"""``kvmprobe learn [--ok-exit N | --ok-output REGEX] [--stdin FILE] [-o FILE] -- CMD ARGS``.

Derives a VMM's requirement profile from real runs (see ``kvmprobe.emulate.learn``) and writes
it as the TOML (or JSON) file ``check --profile`` reads. Exit 0 when every capability asked was
tried, 1 when the total time limit left some out (the profile is still written, marked
incomplete), 2 on bad input or when the command fails even with nothing masked.
"""

from __future__ import annotations

import argparse
import sys

from ..emulate import CAVEAT, learn
from . import _common
from ._emulate import command_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: The most --stdin may hold: it is kept in memory and given to every run.
MAX_STDIN = 1024 * 1024


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "learn",
        help="derive a VMM's requirement profile from real runs, one capability masked at a time",
        description="Run CMD once, traced, to see which KVM capabilities it asks for; then once per "
        "capability with that one answering 0. Those without which CMD still succeeds are optional, "
        "the others required, with CMD's own error line as how it fails. Writes a profile that "
        f"'kvmprobe check --profile FILE' reads. Limits: {CAVEAT}.",
        epilog="exit codes: 0 done, 1 the total time limit left capabilities untried (the profile says "
        "which), 2 bad input or CMD fails even with nothing masked.",
    )
    success = parser.add_mutually_exclusive_group()
    success.add_argument("--ok-exit", type=int, metavar="N", help="CMD succeeded if it exits with N (default 0)")
    success.add_argument("--ok-output", metavar="REGEX", help="CMD succeeded if its output matches REGEX (Python syntax)")
    parser.add_argument(
        "--stdin",
        metavar="FILE",
        help="what every run of CMD reads on standard input ('-': kvmprobe's own, read once; "
        f"at most {MAX_STDIN} bytes). Default: nothing (/dev/null)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="per run (default 30)")
    parser.add_argument("--total-timeout", type=float, default=600.0, metavar="SECONDS",
                        help="for all runs (default 600)")
    parser.add_argument("--name", help="the profile's name (default: CMD's file name)")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the profile to FILE (JSON when it ends in .json, else TOML); default stdout")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS", help="the VMM to run")
    parser.set_defaults(func=run)


_STDIN_HINT = "give a readable file, or '-' for kvmprobe's own standard input"


def _stdin(spec: str) -> bytes:
    from .._files import read_limited

    if spec == "-":
        if sys.stdin is None:  # started with stdin closed ('<&-')
            raise _common.UsageError("--stdin -: standard input is closed (hint: give --stdin FILE, or redirect "
                                     "standard input from the file every run should read)")
        try:
            data = sys.stdin.buffer.read(MAX_STDIN + 1)
        except OSError as err:  # a directory, a closed terminal
            raise _common.UsageError(f"--stdin -: cannot read standard input: {err.strerror or err} "
                                     f"(hint: {_STDIN_HINT})") from None
        where = "standard input"
    else:
        try:
            data = read_limited(spec, MAX_STDIN)
        except OSError as err:
            raise _common.UsageError(f"--stdin {spec}: {err.strerror or err} (hint: {_STDIN_HINT})") from None
        except ValueError as err:
            raise _common.UsageError(f"--stdin {ascii(spec)}: not a file name ({err}) (hint: {_STDIN_HINT})") from None
        where = spec
    if len(data) > MAX_STDIN:
        raise _common.UsageError(f"{where} holds more than {MAX_STDIN} bytes, too much to give every run "
                                 "(hint: give a smaller file, or let the command read its input itself)")
    return data


def run(args: argparse.Namespace) -> int:
    words = command_of(args, "learn -o qemu.toml")
    if args.name is not None:
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", args.name):
            raise _common.UsageError(f"--name {args.name!r}: use letters, digits, '.', '_', '+', '-'")
    _common.check_output(args.output)  # before minutes of runs, not after
    _common.seconds("--timeout", args.timeout)
    _common.seconds("--total-timeout", args.total_timeout)
    data = _stdin(args.stdin) if args.stdin is not None else None
    fmt = "json" if (args.output or "").endswith(".json") else "toml"
    on_terminal = sys.stderr.isatty()

    def progress(done: int, total: int, what: str) -> None:
        if on_terminal:
            sys.stderr.write(f"\r\x1b[K[{done}/{total}] {what}")
            sys.stderr.flush()

    try:
        found = learn(words, ok_exit=0 if args.ok_exit is None else args.ok_exit, ok_output=args.ok_output, stdin=data, timeout=args.timeout,
                      total_timeout=args.total_timeout, name=args.name, progress=progress)
    finally:
        if on_terminal:
            sys.stderr.write("\r\x1b[K")
    text = found.text(fmt)
    if args.output is None or args.output == "-":
        sys.stdout.write(text)
    else:
        _common.write_output(args.output, text)
    print(
        f"kvmprobe: learned {len(found.required)} required and {len(found.optional)} optional of "
        f"{len(found.asked)} capabilities asked ({found.runs} runs, {found.seconds:.0f} s)"
        + (f"; {len(found.untried)} untried: the total time limit ran out" if found.untried else ""),
        file=sys.stderr,
    )
    return _common.EXIT_OK if found.complete else _common.EXIT_NO
