"""The command line: ``python -m kvmprobe [COMMAND] ...``, a thin shell over the public API.

Each command lives in its own module (``_<command>.py``) with ``register(subparsers)``; this
module builds the parser, runs the command, and turns kvmprobe errors into one line on
stderr and an exit code (see ``_common``). Anything else escaping is a bug.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

from ..errors import KvmProbeError
from . import _common

if TYPE_CHECKING:
    from .._backend import Backend

# The commands, in the order ``--help`` lists them. ``dump`` runs when none is named.
_COMMANDS = ("dump", "has", "check", "doctor", "snapshot", "diff", "export")


class _TopParser(_common.Parser):
    """The top-level parser. It also takes the default command's options (``kvmprobe --json``),
    but only without a command: argparse would let a command's own defaults silently replace
    them (``kvmprobe --device X has HLT`` would ask /dev/kvm), so there they are refused."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.recording = False  # set before argparse's own __init__ adds --help
        self.default_command_options: List[Tuple[argparse.Action, str, Any]] = []
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        if self.recording:
            # Parsed under a private name with no default, so that "given" is visible afterwards.
            self.default_command_options.append((action, action.dest, action.default))
            action.dest, action.default = f"_top_{action.dest}", argparse.SUPPRESS
        return action

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        parsed, extras = super().parse_known_args(args, namespace)
        command = getattr(parsed, "command", None)
        for action, dest, default in self.default_command_options:
            if not hasattr(parsed, action.dest):
                if command is None:
                    setattr(parsed, dest, default)
                continue
            if command is not None:
                option = action.option_strings[-1]
                raise _common.UsageError(
                    f"{option} before the command name belongs to the default command (dump); "
                    f"put it after the command: 'kvmprobe {command} {option} ...'"
                )
            setattr(parsed, dest, getattr(parsed, action.dest))
            delattr(parsed, action.dest)
        return parsed, extras


def build_parser() -> _common.Parser:
    """The argparse parser with every command registered."""
    import importlib

    parser = _TopParser(
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
    parser.recording = True
    modules[0].add_arguments(parser)
    parser.recording = False
    parser.set_defaults(func=modules[0].run)
    return parser


def main(argv: Optional[List[str]] = None, *, backend: Optional[Backend] = None) -> int:
    """Run the CLI; return the exit code. ``python -m kvmprobe`` and ``kvmprobe`` call this.

    ``backend`` replaces the ioctl backend for every live probe of the command (tests pass a
    :class:`kvmprobe.testing.FakeBackend`, e.g. one that fails chosen calls).
    """
    _common.tolerant_streams()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.backend = backend
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
