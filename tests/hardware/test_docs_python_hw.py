"""Every ``python`` code block of README.md and docs/*.md runs, as a reader would run it.

Each block runs as its own program (``python -c BLOCK``) in a scratch directory that holds the
repository's ``examples/`` and ``host.json``, a snapshot of this host made the way the README
makes one (``python -m kvmprobe snapshot --vm -o host.json``), with this checkout's ``src`` on
the path. Blocks ask the live device, so the module needs a usable ``/dev/kvm`` (the kvm
marker skips it, with the reason, elsewhere). A block passes when it exits 0: a call with a
missing argument (``kvmprobe.nfd_features()`` once) or a file the page never made fails it.
Blocks that also show their output are compared with it by their page's own test
(``test_docs_emulate_hw.py``); this test only requires that every block runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

pytestmark = pytest.mark.kvm

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks() -> List[Tuple[str, int, str]]:
    blocks = []
    for page in PAGES:
        for index, block in enumerate(re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), re.S | re.M)):
            blocks.append((page.relative_to(ROOT).as_posix(), index, block))
    return blocks


BLOCKS = python_blocks()


def _env() -> dict:  # type: ignore[type-arg]
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    where = tmp_path_factory.mktemp("docs-python")
    os.symlink(ROOT / "examples", where / "examples")
    made = subprocess.run([sys.executable, "-m", "kvmprobe", "snapshot", "--vm", "-o", "host.json"], cwd=where,
                          capture_output=True, text=True, timeout=120, env=_env())  # fmt: skip
    assert made.returncode == 0, made.stderr
    yield where


def test_the_pages_have_python_blocks() -> None:
    assert any(page == "README.md" for page, _, _ in BLOCKS)


@pytest.mark.parametrize("page, index, block", BLOCKS, ids=[f"{page}#{index}" for page, index, _ in BLOCKS])
def test_every_python_block_runs(page: str, index: int, block: str, scratch: Path) -> None:
    done = subprocess.run([sys.executable, "-c", block], cwd=scratch, capture_output=True, text=True, timeout=300,
                          env=_env())  # fmt: skip
    assert done.returncode == 0, f"{page}, python block {index} failed:\n{done.stderr[-3000:]}"
