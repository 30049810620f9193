#!/usr/bin/env python3
"""Write ``kvmprobe.1``, the man page, generated from the CLI's argparse parser.

Usage: ``python3 scripts/build_manpage.py [-o kvmprobe.1]`` (``-o -``: standard output).
Install it as ``$PREFIX/share/man/man1/kvmprobe.1`` (docs/packaging.md).

Nothing in the page is written by hand that the package already knows: the commands, their
usage, descriptions and options come from ``kvmprobe._cli.build_parser()``; the exit codes from
``_cli._common``'s ``EXIT_*`` constants; the environment variables from the package's own
reads of ``os.environ`` (found in its source); the device paths from ``device`` and
``_host_facts``. What only prose can say (what an exit code or a variable means) is in the
tables below, and the build fails when the package has one they do not describe.
``SOURCE_DATE_EPOCH`` sets the page's date (reproducible builds), else today.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import os
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

import _cli_model

#: What each exit code means (by constant name in ``kvmprobe._cli._common``).
EXIT_MEANINGS: Dict[str, str] = {
    "EXIT_OK": "yes: supported, ready, usable, equal.",
    "EXIT_NO": "no: a capability is missing, a VMM is not ready, KVM is not usable, the hosts differ.",
    "EXIT_USAGE": "bad input: an unknown option, capability, VMM or preset; an unreadable or invalid file; "
    "a backend that cannot be loaded.",
    "EXIT_UNAVAILABLE": "the live KVM device was needed and could not be used (missing, permission denied, "
    "not a KVM device).",
}

#: Interrupted by Ctrl-C (SIGINT), as shells report it: 128 + 2. Set by ``_cli.main``.
EXIT_INTERRUPTED = (130, "interrupted (SIGINT).")

#: What each environment variable the package reads does.
ENVIRONMENT: Dict[str, str] = {
    "KVMPROBE_DEVICE": "The KVM device to open when \\-\\-device is not given (default: /dev/kvm).",
    "KVMPROBE_BACKEND": "The ioctl backend: cffi (the compiled fast path, when it was built), ctypes, or "
    "auto (the default: cffi when built, else ctypes).",
    "COLUMNS": "The width \\-\\-help text is wrapped to (default: the terminal's, else 80), as argparse reads it.",
    "NO_COLOR": "When set and not empty, output has no colour even on a terminal (https://no\\-color.org).",
    "TERM": "When dumb, output has no colour.",
    "PATH": "Where check \\-\\-installed looks for VMM binaries (only absolute entries, in directories "
    "others cannot write), besides the usual install locations.",
    "KVMPROBE_REQUIRE_KVM": "For the pytest plugin: when set and not 0, tests that need a usable /dev/kvm "
    "fail instead of being skipped where there is none.",
}

#: Files, beyond the device paths the package names (what reads them).
FILES: Tuple[Tuple[str, str], ...] = (
    ("/proc/cpuinfo", "CPU vendor and flags (vmx, svm, hypervisor)."),
    ("/sys/module/*/parameters/*", "the loaded KVM backend module and its parameters (nested)."),
    ("/proc/self/status, /etc/passwd, /etc/group", "who may open the device, for doctor's remedies."),
)

SEE_ALSO = ("qemu-system-x86_64(1)", "kvm-ok(1)", "virt-host-validate(1)", "strace(1)")


def roff(text: str) -> str:
    """``text`` as roff source: backslashes and hyphens escaped, no line read as a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.splitlines())


def roff_keep(text: str) -> str:
    """Like :func:`roff` for text that already holds roff escapes (the tables above)."""
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.splitlines())


def exit_codes() -> List[Tuple[int, str]]:
    """Every ``EXIT_*`` constant of ``_cli._common`` with its meaning, then 130."""
    from kvmprobe._cli import _common

    constants = {name: getattr(_common, name) for name in dir(_common) if name.startswith("EXIT_")}
    undescribed = sorted(set(constants) - set(EXIT_MEANINGS))
    if undescribed:
        raise SystemExit(f"build_manpage: describe {', '.join(undescribed)} in EXIT_MEANINGS")
    codes = sorted((int(value), EXIT_MEANINGS[name]) for name, value in constants.items())
    return [*codes, EXIT_INTERRUPTED]


def environment_reads(package: Path = _cli_model.ROOT / "src" / "kvmprobe") -> Set[str]:
    """The names of the environment variables the package's source reads."""
    names: Set[str] = set()
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            argument: Optional[ast.expr] = None
            if isinstance(node, ast.Call) and node.args:
                function = ast.unparse(node.func)
                if function.endswith(("environ.get", "getenv", "environ.pop", "environ.setdefault")):
                    argument = node.args[0]
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("environ"):
                argument = node.slice
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                names.add(argument.value)
    return names


def environment() -> List[Tuple[str, str]]:
    found = environment_reads()
    undescribed = sorted(found - set(ENVIRONMENT))
    if undescribed:
        raise SystemExit(f"build_manpage: describe {', '.join(undescribed)} in ENVIRONMENT")
    return [(name, ENVIRONMENT[name]) for name in ENVIRONMENT if name in found]


def files() -> List[Tuple[str, str]]:
    from kvmprobe._host_facts import DEVICE_PATHS
    from kvmprobe.device import DEFAULT_DEVICE

    rows = [(DEFAULT_DEVICE, "the KVM device (\\-\\-device, $KVMPROBE_DEVICE).")]
    rows += [(path, "checked by doctor: VMMs use it for guest devices.") for path in DEVICE_PATHS]
    return rows + list(FILES)


def option_tag(action: argparse.Action) -> str:
    """``\\fB\\-o\\fR, \\fB\\-\\-output\\fR \\fIFILE\\fR``: an option as a ``.TP`` tag."""
    names = ", ".join(f"\\fB{roff(name)}\\fR" for name in action.option_strings)
    if not _cli_model.takes_value(action):
        return names
    metavar = action.metavar if isinstance(action.metavar, str) else (
        "{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper())
    value = f"\\fI{roff(metavar)}\\fR"
    return f"{names} [{value}]" if action.nargs == "?" else f"{names} {value}"


def positional_tag(action: argparse.Action) -> str:
    metavar = action.metavar if isinstance(action.metavar, str) else action.dest
    return f"\\fI{roff(metavar)}\\fR"


def arguments(parser: argparse.ArgumentParser) -> Iterator[str]:
    """``.TP`` paragraphs for the parser's positionals, then its options."""
    actions = _cli_model.own_actions(parser)
    for action in [a for a in actions if not a.option_strings] + [a for a in actions if a.option_strings]:
        tag = option_tag(action) if action.option_strings else positional_tag(action)
        yield f".TP\n{tag}\n{roff(_cli_model.help_text(parser, action)) or '(no description)'}"


def page(date: Optional[datetime.date] = None) -> str:
    """The man page's roff source."""
    from kvmprobe._version import __version__

    parser = _cli_model.top_parser()
    day = date or _build_date()
    out: List[str] = [
        f'.\\" Generated by scripts/build_manpage.py from kvmprobe {__version__}: do not edit.',
        f'.TH KVMPROBE 1 "{day.isoformat()}" "kvmprobe {__version__}" "User Commands"',
        ".SH NAME",
        "kvmprobe \\- " + roff(_cli_model.text_of(parser, parser.description).rstrip(".")),
        ".SH SYNOPSIS",
        ".B kvmprobe",
        "[\\fB\\-h\\fR] [\\fB\\-\\-version\\fR] \\fICOMMAND\\fR [\\fIARGUMENTS\\fR]",
    ]
    commands = _cli_model.commands(parser)
    for command in commands:
        out += [".br", f".B kvmprobe {roff(command.name)}", _synopsis_rest(command)]
    out += [
        ".SH DESCRIPTION",
        roff(_cli_model.text_of(parser, parser.description)),
        ".PP",
        roff(_cli_model.text_of(parser, parser.epilog)),
        ".SH OPTIONS",
        *arguments(parser),
        ".SH COMMANDS",
    ]
    for command in commands:
        sub = command.parser
        out += [f".SS {roff(command.name)}", f".B kvmprobe {roff(command.name)}", _synopsis_rest(command), ".PP",
                roff(command.help[:1].upper() + command.help[1:]) + "."]
        for text in (sub.description, sub.epilog):
            if text:
                out += [".PP", roff(_cli_model.text_of(sub, text))]
        out += list(arguments(sub))
    out.append(".SH EXIT STATUS")
    for code, meaning in exit_codes():
        out += [".TP", f"\\fB{code}\\fR", roff(meaning)]
    out.append(".SH ENVIRONMENT")
    for name, meaning in environment():
        out += [".TP", f"\\fB{name}\\fR", roff_keep(meaning)]
    out.append(".SH FILES")
    for path, meaning in files():
        out += [".TP", f"\\fI{roff(path)}\\fR", roff_keep(meaning)]
    out += [".SH SEE ALSO", ",\n".join(f"\\fB{roff(name.split('(')[0])}\\fR({name.split('(')[1]}" for name in SEE_ALSO)]
    return "\n".join(out) + "\n"


def _synopsis_rest(command: _cli_model.Command) -> str:
    prefix = f"kvmprobe {command.name}"
    usage = _cli_model.usage(command.parser)
    return roff(usage[len(prefix):].strip() if usage.startswith(prefix) else usage)


def _build_date() -> datetime.date:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return datetime.datetime.fromtimestamp(int(epoch), tz=datetime.timezone.utc).date()
    return datetime.date.today()


def main(argv: Optional[Sequence[str]] = None) -> int:
    return _cli_model.generate("kvmprobe's man page (roff)", "kvmprobe.1", page, argv)


if __name__ == "__main__":
    sys.exit(main())
