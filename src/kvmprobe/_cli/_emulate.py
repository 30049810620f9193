"""``kvmprobe emulate [--host SNAPSHOT|preset:NAME] [--mask CAP,...] [--trace[=FILE]] -- CMD ARGS``.

Runs CMD as if the kernel's KVM were the recorded host; the exit status is CMD's (124 when
``--timeout`` killed it, as timeout(1) has it). kvmprobe's own errors are one line, exit 2, and
CMD is not run.
"""

from __future__ import annotations

import argparse
import signal
import sys

from ..emulate import CAVEAT, EmulationResult, emulate
from . import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional

EXIT_TIMEOUT = 124  # coreutils timeout(1)
#: How a --trace=FILE error names the option, and what '-' means there (stderr, not stdout).
TRACE_OUTPUT = {"option": "--trace=", "dash": "standard error (or a bare --trace)"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "emulate",
        help="run a command as if the kernel were a recorded host (its KVM capability answers)",
        description="Run CMD (any program, unchanged) under a seccomp filter that answers its "
        "KVM_CHECK_EXTENSION queries as the recorded host would: every capability the host lacks, or "
        "--mask names, answers 0 (on /dev/kvm and on VM fds, in threads, children and re-execs too). "
        "With the seccomp supervisor (Linux 5.5+) every other capability answers the recorded value. "
        f"Limits: {CAVEAT}.",
        epilog="exit status: CMD's (124 when --timeout killed it); 2 when kvmprobe cannot run it "
        "(no command, an unknown capability, a snapshot that does not load, no seccomp here): then CMD "
        "is not run at all, never unfiltered.",
    )
    add_host_arguments(parser)
    parser.add_argument(
        "--values",
        choices=("recorded", "real"),
        help="recorded: capabilities the host has answer the recorded values (needs the seccomp supervisor, "
        "Linux 5.5+); real: they answer what this kernel answers (a BPF filter alone). "
        "Default: recorded with --host where the kernel allows it",
    )
    parser.add_argument(
        "--trace",
        nargs="?",
        const="-",
        metavar="FILE",
        help="record every KVM_CHECK_EXTENSION CMD makes: the capability, system or VM fd, the answer, "
        "how often, masked or not; as text on stderr (a bare --trace, or --trace=-), or to FILE (JSON when "
        "it ends in .json). Give the file as --trace=FILE",
    )
    parser.add_argument(
        "--tracer",
        choices=("auto", "strace", "supervisor"),
        default="auto",
        help="who traces: strace sees every answer, VM fds included; the seccomp supervisor needs no "
        "other program but does not see what the kernel answers on a VM fd (default: strace where installed)",
    )
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help="kill CMD (and its process group) after this long")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but CMD's own output")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS", help="the command to run")
    parser.set_defaults(func=run)


def add_host_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        metavar="SNAPSHOT",
        help="the host to emulate: a file written by 'kvmprobe snapshot', or preset:NAME "
        "(see 'kvmprobe snapshot --list-presets')",
    )
    parser.add_argument(
        "--mask",
        action="append",
        default=[],
        metavar="CAP[,CAP...]",
        help="capabilities that answer 0 whatever the host (repeatable; a name in any spelling 'has' takes, "
        "or a number in kvmprobe's table)",
    )


def command_of(args: argparse.Namespace, example: str = "emulate --mask IOEVENTFD") -> List[str]:
    """The command after ``--`` (argparse keeps the separator in a REMAINDER); ``example``: the
    kvmprobe command line the error shows, up to the ``--``."""
    words = list(args.command)
    if words and words[0] == "--":
        words = words[1:]
    if not words:
        raise _common.UsageError(f"no command to run (hint: put it after '--', as in 'kvmprobe {example} -- CMD ARGS')")
    return words


def run(args: argparse.Namespace) -> int:
    words = command_of(args)
    _common.check_output(args.trace, **TRACE_OUTPUT)  # refused before CMD runs, not after
    _common.seconds("--timeout", args.timeout)
    # While CMD runs, a ^C from the terminal reaches CMD (same process group), which decides;
    # kvmprobe waits for its exit status. A handler, not SIG_IGN: exec resets handlers, but an
    # ignored SIGINT would be inherited by CMD.
    previous = [(sig, signal.signal(sig, _ignore)) for sig in (signal.SIGINT, signal.SIGQUIT)]
    try:
        result = emulate(words, host=args.host, mask=args.mask, values=args.values, trace=args.trace is not None,
                         tracer=args.tracer, timeout=args.timeout)
    finally:
        for sig, handler in previous:
            signal.signal(sig, handler)
    report(result, args.trace, quiet=args.quiet)
    if result.timed_out:
        return EXIT_TIMEOUT
    return result.returncode


def _ignore(signum: int, frame: Optional[Any]) -> None:
    pass




def report(result: EmulationResult, trace: Optional[str], *, quiet: bool) -> None:
    """The trace (stderr or a file) and the notes, after CMD has exited."""
    if result.trace is not None and trace is not None:
        if trace == "-":
            sys.stderr.write(result.trace.render())
        else:
            import json

            text = json.dumps(result.trace.to_dict(), indent=2) + "\n" if trace.endswith(".json") else result.trace.render()
            try:
                _common.write_output(trace, text, **TRACE_OUTPUT)
            except _common.UsageError as err:  # CMD has run: its exit status stays the answer
                _common.fail(str(err), _common.EXIT_USAGE)
    if quiet:
        return
    for note in result.notes:
        print(f"kvmprobe: note: {note}", file=sys.stderr)
    if result.timed_out:
        print("kvmprobe: the command did not finish within --timeout and was killed", file=sys.stderr)
