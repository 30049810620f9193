"""Citations the package prints or keeps as evidence point at something a reader can open.

The research notes the code cites ("docs/research/pvm.md §1-2") are committed under
docs/research/; a citation of a note outside the repository cannot be checked, so none may remain.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "src" / "kvmprobe").rglob("*.py")) + sorted((ROOT / "docs").glob("*.md"))


def test_every_cited_research_note_is_committed_with_the_cited_section() -> None:
    cited = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for name, section in re.findall(r"docs/research/([\w.-]+\.md)(?:,? (?:section |§)([\d.]+))?", text):
            cited.append((path.name, name, section))
            note = ROOT / "docs" / "research" / name
            assert note.is_file(), f"{path.name} cites docs/research/{name}, which is not committed"
            if section:
                headings = [h.rstrip(".") for h in re.findall(r"^#+ ([\d.]+) ", note.read_text(encoding="utf-8"), re.M)]
                assert section.split("-")[0] in headings or section in headings, (path.name, name, section, headings)
    assert {name for _, name, _ in cited} >= {"pvm.md", "confidential.md"}


def test_no_citation_of_a_note_outside_the_repository() -> None:
    loose = re.compile(r"(?<![\w/])(?:research/)?(?:pvm|confidential)\.md")
    for path in SOURCES:
        for line in path.read_text(encoding="utf-8").splitlines():
            for found in loose.finditer(line):
                before = line[: found.start()]
                if path.suffix == ".md" and before.endswith(("](", "[")) and not found.group().startswith("research/"):
                    continue  # a docs page linking docs/confidential.md, the page beside it
                assert before.endswith("docs/research/") or before.endswith("docs/") or "docs/src/deployment/" in line \
                    or path.name == "confidential.md", f"{path.name}: {line.strip()}"
