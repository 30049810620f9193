"""The command line: ``python -m kvmprobe [COMMAND] ...``, a thin shell over the public API.

Each command lives in its own module (``_<command>.py``) with ``register(subparsers)``; this
module builds the parser, runs the command, and turns kvmprobe errors into one line on
stderr and an exit code (see ``_common``). Anything else escaping is a bug.
"""

from __future__ import annotations

import sys

from ..errors import KvmProbeError
from . import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Sequence, Tuple

    import argparse

    from .._backend import Backend
    from ._parser import Parser

# The commands, in the order ``--help`` lists them. ``dump`` runs when none is named.
_COMMANDS = (
    "dump", "has", "check", "doctor", "cpu", "run", "snapshot", "diff", "baseline", "compat", "fleet", "export", "emulate",
    "learn", "collector",
)


_DEFAULT = "dump"
_TOP_LEVEL = ("-h", "--help", "--version")


def _version() -> int:
    """``kvmprobe --version``: a constant, printed without building the parser (which imports
    every command's module: about 100 ms, issue #19 and cli-review item 17). The same line
    argparse's ``version`` action prints, which ``build_parser`` keeps for ``--help``."""
    from .._version import __version__

    print(f"kvmprobe {__version__}")
    return _common.EXIT_OK


def build_parser(commands: Sequence[str] = _COMMANDS) -> Parser:
    """The argparse parser with ``commands`` registered (all of them by default)."""
    from .._version import __version__
    from ._parser import Parser

    parser = Parser(
        prog="kvmprobe",
        description="What KVM on this host can do, and why a VMM will or won't run here.",
        epilog="exit codes: 0 yes/ready, 1 no/not ready, 2 bad input, 3 KVM unavailable. "
        "Without a command, prints the capability table (the 'dump' command): "
        "'kvmprobe --json' is 'kvmprobe dump --json'.",
    )
    parser.add_argument("--version", action="version", version=f"kvmprobe {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in commands:
        __import__(f"{__name__}._{name}")  # the command's module, only when its parser is needed
        sys.modules[f"{__name__}._{name}"].register(subparsers)
    return parser


def _with_command(argv: List[str]) -> Tuple[List[str], Sequence[str]]:
    """``argv`` with the command named first (the default one when none is), and the commands
    whose modules the parser needs: only that one, unless the top-level help is asked for."""
    first = argv[0] if argv else None
    if first in _COMMANDS:
        return argv, (first,)
    if first in _TOP_LEVEL:
        return argv, _COMMANDS
    named = next((word for word in argv if word in _COMMANDS), None)
    if named is not None:
        # 'kvmprobe --device X has HLT': the options would go to the default command and
        # 'has' would see none of them. Refused rather than silently asking /dev/kvm.
        before = " ".join(argv[: argv.index(named)])
        raise _common.UsageError(f"put options after the command name: 'kvmprobe {named} {before} ...'")
    if first is not None and not first.startswith("-"):
        raise _common.UsageError(f"unknown command {first!r} (choose from {', '.join(_COMMANDS)})")
    return [_DEFAULT, *argv], (_DEFAULT,)


def _quick(words: List[str]) -> Optional[argparse.Namespace]:
    """The command line read without argparse (which, with what it imports, costs as much as the
    rest of a short command) by the command's own ``quick_args`` where it has one and the words
    are plain (:func:`_common.quick_args`); ``None``: argparse reads it."""
    if words[0] not in _COMMANDS:
        return None
    __import__(f"{__name__}._{words[0]}")  # the command's module, which runs it in any case
    quick = getattr(sys.modules[f"{__name__}._{words[0]}"], "quick_args", None)
    return quick(words[1:]) if quick is not None else None


def main(argv: Optional[List[str]] = None, *, backend: Optional[Backend] = None) -> int:
    """Run the CLI; return the exit code. ``python -m kvmprobe`` and ``kvmprobe`` call this.

    ``backend`` replaces the ioctl backend for every live probe of the command (tests pass a
    :class:`kvmprobe.testing.FakeBackend`, e.g. one that fails chosen calls).
    """
    _common.tolerant_streams()
    # A reader that goes away (kvmprobe ... | head) ends the output, never the command: the
    # exit code stays the verdict.
    saved = _common.guard_streams()
    try:
        return _dispatch(argv, backend)
    finally:
        _common.restore_streams(saved)


def _dispatch(argv: Optional[List[str]], backend: Optional[Backend]) -> int:
    words: List[str] = []
    try:
        words, commands = _with_command(list(sys.argv[1:] if argv is None else argv))
        if words == ["--version"]:
            return _version()
        args = _quick(words) or build_parser(commands).parse_args(words)
        args.backend = backend
        return int(args.func(args))
    except _common.UsageError as err:
        return _common.fail(_common.with_hint(str(err), words), _common.EXIT_USAGE)
    except KvmProbeError as err:
        return _common.fail(str(err), _common.exit_code_for(err))
    except KeyboardInterrupt:
        return 130


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
