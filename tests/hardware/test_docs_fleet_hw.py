"""Every block of docs/fleet.md runs, in order, in one scratch directory, and prints what the page shows.

The blocks share the scratch directory (``tests/_docs.py``: ``examples/`` and ``benches/`` are
the repository's): the first writes ``a.json`` and ``b.json``, the later ones read them. The
block marked ``<!-- this machine -->`` records this host live: it is compared only where the
machine is the one the ``pvm-6.18`` preset recorded, and skipped with the reason elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import _docs

pytestmark = pytest.mark.kvm

PAGE = _docs.ROOT / "docs" / "fleet.md"


def test_every_block_prints_what_the_page_shows(tmp_path: Path) -> None:
    found = _docs.blocks(PAGE.read_text())
    assert len(found) >= 8 and sum(block.live for block in found) == 1
    compared, skip = _docs.run_blocks(PAGE.read_text(), tmp_path, _docs.scratch(tmp_path))
    assert compared >= 18
    if skip is not None:
        pytest.skip(f"{compared} commands compared; this machine's own block not: {skip}")
