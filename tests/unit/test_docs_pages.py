"""The pages agree with the package: README.md links every page under docs/, and docs/cli.md
has a section for every command with every one of its options, as the parser defines them."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Dict, List

from kvmprobe._cli import _COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[2]


def test_readme_links_every_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)(?:#[\w-]*)?\)", readme))
    pages = {path.relative_to(ROOT).as_posix() for path in (ROOT / "docs").glob("*.md")}
    assert pages - linked == set()
    assert linked - pages == set()


def test_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 260


def _sections() -> Dict[str, str]:
    """docs/cli.md's sections by the commands their heading names."""
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    sections: Dict[str, str] = {}
    for heading, body in re.findall(r"^## ([^\n]*)\n(.*?)(?=^## |\Z)", text, re.S | re.M):
        for name in re.findall(r"`([a-z]+)`", heading):
            sections[name] = body
    return sections


def _options(command: str) -> List[str]:
    parser = build_parser([command])
    sub = next(action for action in parser._actions if action.dest == "command")
    choices: Dict[str, argparse.ArgumentParser] = sub.choices  # type: ignore[assignment]
    options: List[str] = []
    for action in choices[command]._actions:
        options.extend(flag for flag in action.option_strings if flag.startswith("--") and flag != "--help")
    return options


def test_cli_md_has_every_command_and_its_options() -> None:
    sections = _sections()
    assert set(_COMMANDS) - set(sections) == set()
    missing = {command: [flag for flag in _options(command) if flag not in sections[command]] for command in _COMMANDS}
    assert {command: flags for command, flags in missing.items() if flags} == {}


def _anchors(page: Path) -> set:  # type: ignore[type-arg]
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.*)$", page.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_every_relative_link_finds_its_file_and_heading() -> None:
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target, anchor in re.findall(r"\]\(([^):#\s]*)(?:#([\w-]+))?\)", page.read_text(encoding="utf-8")):
            if target.startswith(("http", "mailto")):
                continue
            linked = (page.parent / target).resolve() if target else page
            if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in _anchors(linked)):
                broken.append(f"{page.name}: {target}#{anchor}")
    assert broken == []
