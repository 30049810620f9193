"""What the man page and the completion are generated from: the checkout's argparse parser.

``kvmprobe._cli.build_parser()`` with every command of ``_cli._COMMANDS`` registered, read
through argparse's actions, so a command or an option added to the CLI appears in both
without an edit here. The checkout's ``src`` comes first on ``sys.path``: what is generated
describes this source tree, whatever kvmprobe is installed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))


class Command(NamedTuple):
    """One subcommand: its name, the one-line help ``kvmprobe --help`` shows, and its parser."""

    name: str
    help: str
    parser: argparse.ArgumentParser


def top_parser() -> argparse.ArgumentParser:
    """The CLI's parser with every command registered."""
    from kvmprobe._cli import build_parser

    return build_parser()


def subparsers_action(parser: argparse.ArgumentParser) -> "argparse._SubParsersAction[argparse.ArgumentParser]":
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise SystemExit("kvmprobe's parser has no subcommands")


def commands(parser: Optional[argparse.ArgumentParser] = None) -> List[Command]:
    """Every command, in the order ``kvmprobe --help`` lists them."""
    action = subparsers_action(parser or top_parser())
    helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
    return [Command(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]


def own_actions(parser: argparse.ArgumentParser) -> List[argparse.Action]:
    """The parser's arguments, without the subcommand dispatcher."""
    return [a for a in parser._actions if not isinstance(a, argparse._SubParsersAction)]


def takes_value(action: argparse.Action) -> bool:
    """Whether an option reads the next word as its value (``--device PATH``)."""
    return bool(action.option_strings) and action.nargs != 0


def help_text(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The action's help as ``--help`` prints it (``%(default)s`` and the like filled in)."""
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    return parser._get_formatter()._expand_help(action)


def text_of(parser: argparse.ArgumentParser, text: Optional[str]) -> str:
    """A description or epilog as argparse prints it (``%(prog)s`` filled in)."""
    if not text:
        return ""
    return text % {"prog": parser.prog} if "%(prog)" in text else text


def usage(parser: argparse.ArgumentParser) -> str:
    """The parser's usage on one line, without the ``usage:`` prefix."""
    formatter = argparse.HelpFormatter(parser.prog, width=1_000_000)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    text = " ".join(formatter.format_help().split())
    # argparse writes a REMAINDER positional ("-- CMD ARGS") as a bare "..."; name it.
    rest = [a for a in parser._actions if a.nargs == argparse.REMAINDER and isinstance(a.metavar, str)]
    if rest and text.endswith(" ..."):
        text = f"{text[:-4]} {rest[0].metavar}"
    return text


def generate(what: str, default: str, render: Callable[[], str], argv: Optional[Sequence[str]] = None) -> int:
    """The command line of a generator script: write ``render()`` to ``-o FILE`` (``-``: stdout).

    The file is written beside its target and renamed over it, so a reader never sees half of
    it; a target that exists and is not a regular file is refused.
    """
    tool = Path(sys.argv[0]).stem
    parser = argparse.ArgumentParser(description=f"Write {what}, generated from kvmprobe's parser.")
    parser.add_argument("-o", "--output", default=default,
                        help="where to write it, '-' for standard output (default: %(default)s)")
    args = parser.parse_args(argv)
    text = render()
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    target = Path(args.output)
    if target.exists() and not target.is_file():
        raise SystemExit(f"{tool}: {target} exists and is not a regular file; not replacing it")
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)
    return 0
