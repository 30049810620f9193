"""The man page (scripts/build_manpage.py): valid roff, and every command and option in it.

groff checks the page with every warning on (``-ww``: a warning fails the test); ``man -l``
renders it, and the rendered text is read section by section: each command of
``_cli._COMMANDS`` has its own subsection holding each of its options.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict

import pytest

import _cli_model
import build_manpage
from _packaging import run_script
from kvmprobe._cli import _COMMANDS

GROFF = shutil.which("groff")
MAN = shutil.which("man")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("manpage") / "kvmprobe.1"
    run_script("build_manpage.py", "-o", str(target))
    return target


def rendered(page: Path) -> str:
    if MAN is None:
        pytest.skip("man (man-db) is not installed")
    done = subprocess.run([MAN, "-l", str(page)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, MANWIDTH="1000", MANPAGER="cat", PAGER="cat", LANG="C.UTF-8"))
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout


def sections(text: str) -> Dict[str, str]:
    """Rendered man text by section (``NAME``, ``COMMANDS``, ...) and by subsection of COMMANDS."""
    parts: Dict[str, str] = {}
    name = sub = ""
    for line in text.splitlines():
        if re.fullmatch(r"[A-Z][A-Z ]+", line):
            name, sub = line, ""
        elif name == "COMMANDS" and re.fullmatch(r"   \S+", line):
            sub = line.strip()
        key = f"COMMANDS {sub}" if name == "COMMANDS" and sub else name
        parts[key] = parts.get(key, "") + line + "\n"
    return parts


def test_groff_finds_nothing_to_warn_about(page: Path) -> None:
    if GROFF is None:
        pytest.skip("groff is not installed")
    done = subprocess.run([GROFF, "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stderr == ""


def test_every_command_and_option_is_in_its_section(page: Path) -> None:
    parts = sections(rendered(page))
    commands = _cli_model.commands()
    assert [c.name for c in commands] == list(_COMMANDS)
    assert sorted(k.split()[1] for k in parts if k.startswith("COMMANDS ")) == sorted(_COMMANDS)
    for command in commands:
        text = parts[f"COMMANDS {command.name}"]
        assert f"kvmprobe {command.name} " in text
        for action in _cli_model.own_actions(command.parser):
            for name in action.option_strings:
                assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), (command.name, name)
            if not action.option_strings:
                assert str(action.metavar or action.dest) in text
    assert "--version" in parts["OPTIONS"] and "--help" in parts["OPTIONS"]


def test_exit_codes_environment_and_files(page: Path) -> None:
    parts = sections(rendered(page))
    codes = re.findall(r"(?m)^       (\d+) ", parts["EXIT STATUS"])
    assert codes == ["0", "1", "2", "3", "130"]
    for name in ("KVMPROBE_DEVICE", "KVMPROBE_BACKEND", "NO_COLOR"):
        assert re.search(rf"(?m)^       {name}$", parts["ENVIRONMENT"]), name
    assert "/dev/kvm" in parts["FILES"] and "/dev/vhost-net" in parts["FILES"]
    assert parts["NAME"].split("\n")[1].strip().startswith("kvmprobe - ")


def test_the_environment_list_is_the_one_the_source_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    found = build_manpage.environment_reads()
    assert {"KVMPROBE_DEVICE", "KVMPROBE_BACKEND", "NO_COLOR", "TERM"} <= found
    # A variable the package reads but the page does not describe stops the build.
    monkeypatch.delitem(build_manpage.ENVIRONMENT, "KVMPROBE_BACKEND")
    with pytest.raises(SystemExit, match="KVMPROBE_BACKEND"):
        build_manpage.environment()


def test_a_new_command_is_picked_up_without_an_edit(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = _cli_model.top_parser()
    sub = _cli_model.subparsers_action(parser).add_parser("frobnicate", help="compare the fleet",
                                                           description="A command added later.")
    sub.add_argument("--baseline-file", metavar="FILE", help="where the baseline is")
    monkeypatch.setattr(_cli_model, "top_parser", lambda: parser)
    source = build_manpage.page()
    assert ".SS frobnicate" in source and "\\fB\\-\\-baseline\\-file\\fR \\fIFILE\\fR" in source
    assert "Compare the fleet." in source and "A command added later." in source


def test_source_date_epoch_sets_the_date(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert '.TH KVMPROBE 1 "2023-11-14"' in build_manpage.page()
