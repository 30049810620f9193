"""Every block of README.md and of each docs/ page without a test of its own runs, in order, and
prints what the page shows; every python block of every page runs.

The blocks of a page share one scratch directory (``tests/_docs.py``: ``examples/``,
``benches/`` and ``scripts/`` are the repository's, ``python`` is this interpreter), so a later
command may read what an earlier one wrote. What may differ between runs is ``_docs.VARIES``;
blocks marked ``<!-- this machine -->`` are compared only on the machine the ``pvm-6.18`` preset
recorded, and the test says so as a skip once the rest has passed. A page with a test of its
own (``test_docs_<page>*.py``) is held by that test, which knows where its page runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

import _docs

pytestmark = pytest.mark.kvm

ROOT = _docs.ROOT
OWN_TESTS = {path.name.split(".")[0][len("test_docs_"):].removesuffix("_hw")
             for path in (ROOT / "tests").rglob("test_docs_*.py")} - {"pages"}  # fmt: skip
ALL_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PAGES = [page for page in ALL_PAGES if page.parent.name != "docs" or page.stem not in OWN_TESTS]


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def test_the_readme_and_the_new_pages_are_held_here() -> None:
    names = {_name(page) for page in PAGES}
    assert {"README.md", "docs/cli.md", "docs/python.md", "docs/testing.md", "docs/security.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_block_prints_what_the_page_shows(page: Path, tmp_path: Path) -> None:
    text = page.read_text(encoding="utf-8")
    compared, skip = _docs.run_blocks(text, tmp_path, _docs.scratch(tmp_path))
    if skip is not None:
        pytest.skip(f"{_name(page)}: {compared} blocks and commands compared; the ones of this machine not: {skip}")
    assert compared == sum(1 for block in _docs.blocks(text) if block.kind == "python") + len(_docs.console_steps(text))


# --- every python block of every page runs (those of pages with their own test too) ----------

def _python_blocks() -> List[Tuple[str, int, str]]:
    found: List[Tuple[str, int, str]] = []
    for page in ALL_PAGES:
        python = [block for block in _docs.blocks(page.read_text(encoding="utf-8")) if block.kind == "python"]
        found.extend((_name(page), index, block.body) for index, block in enumerate(python))
    return found


BLOCKS = _python_blocks()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Path, Dict[str, str]]]:
    """A reader's directory with ``host.json``, a snapshot of this host, which blocks may read."""
    where = tmp_path_factory.mktemp("docs-python")
    env = _docs.scratch(where)
    made = subprocess.run([sys.executable, "-m", "kvmprobe", "snapshot", "--vm", "-o", "host.json"], cwd=where,
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    yield where, env


@pytest.mark.parametrize("page, index, block", BLOCKS, ids=[f"{page}#{index}" for page, index, _ in BLOCKS])
def test_every_python_block_runs(page: str, index: int, block: str, scratch: Tuple[Path, Dict[str, str]]) -> None:
    where, env = scratch
    done = subprocess.run([sys.executable, "-c", block], cwd=where, capture_output=True, text=True, timeout=300,
                          env=env)  # fmt: skip
    assert done.returncode == 0, f"{page}, python block {index} failed:\n{done.stderr[-3000:]}"
