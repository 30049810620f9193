"""The command line: ``python -m kvmprobe [COMMAND] ...``, a thin shell over the public API.

Each command lives in its own module (``_<command>.py``) with ``register(subparsers)``; this
module builds the parser, runs the command, and turns kvmprobe errors into one line on
stderr and an exit code (see ``_common``). Anything else escaping is a bug.
"""

from __future__ import annotations

import sys
from typing import List, Optional

from ..errors import KvmProbeError
from . import _common

# The commands, in the order ``--help`` lists them. ``dump`` runs when none is named.
_COMMANDS = ("dump", "has", "check", "doctor", "snapshot", "diff", "export")


def build_parser() -> _common.Parser:
    """The argparse parser with every command registered."""
    import importlib

    parser = _common.Parser(
        prog="kvmprobe",
        description="What KVM on this host can do, and why a VMM will or won't run here.",
        epilog="exit codes: 0 yes/ready, 1 no/not ready, 2 bad input, 3 KVM unavailable. "
        "Without a command, prints the capability table (the 'dump' command).",
    )
    from .._version import __version__

    parser.add_argument("--version", action="version", version=f"kvmprobe {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_common.Parser)
    modules = [importlib.import_module(f"{__name__}._{name}") for name in _COMMANDS]
    for module in modules:
        module.register(subparsers)
    # The default command's options also work without naming it: 'kvmprobe --json'.
    modules[0].add_arguments(parser)
    parser.set_defaults(func=modules[0].run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the CLI; return the exit code. ``python -m kvmprobe`` and ``kvmprobe`` call this."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.func(args))
    except _common.UsageError as err:
        return _common.fail(str(err), _common.EXIT_USAGE)
    except KvmProbeError as err:
        return _common.fail(str(err), _common.exit_code_for(err))
    except BrokenPipeError:
        # The reader went away (kvmprobe ... | head); not an error worth a message.
        sys.stderr.close()
        return _common.EXIT_OK
    except KeyboardInterrupt:
        return 130


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
