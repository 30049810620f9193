"""The command line's argparse side: the parser class and the width its help is laid out in.

Imports ``_common`` only, and ``argparse``: loaded when a command's parser is built, which
``kvmprobe has`` with plain arguments never needs (``_has.quick_args``). argparse's own help
formatter asks ``shutil`` for the terminal's width, and ``shutil`` imports ``zlib``, ``bz2`` and
``lzma`` (about 2 ms at every start, issue #19); :func:`help_width` asks the same question
without it.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn, Optional


def help_width() -> int:
    """What ``shutil.get_terminal_size().columns - 2`` gives argparse's help: ``$COLUMNS``, else
    the terminal's width, else 80 (shutil's own rules and fallback, without importing it).

    Example:
        >>> import shutil
        >>> help_width() == shutil.get_terminal_size().columns - 2
        True
    """
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):  # no stdout, closed, detached, not a terminal
            columns = 0
        columns = columns or 80
    return columns - 2


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, given the width it would ask ``shutil`` for."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: Optional[int] = None):
        super().__init__(prog, indent_increment, max_help_position, help_width() if width is None else width)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit 2 (argparse prints usage too)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise _common.UsageError(f"{message} (hint: see '{self.prog} --help')")
