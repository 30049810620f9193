"""Every command and program in docs/cpu.md runs, and prints what the page shows.

The blocks run in order in one scratch directory (``tests/_docs.py``). Blocks marked
``<!-- this machine -->`` show this development machine's live answers: they are compared only
where the machine is the one the ``pvm-6.18`` preset recorded (same kernel, same KVM CPUID once
volatile fields are cleared, same TSC rate and feature MSRs), and skipped with the reason
elsewhere. The others run anywhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import _docs

pytestmark = pytest.mark.kvm

PAGE = _docs.ROOT / "docs" / "cpu.md"


def test_every_block_prints_what_the_page_shows(tmp_path: Path) -> None:
    found = _docs.blocks(PAGE.read_text())
    assert len(found) >= 4 and sum(block.live for block in found) >= 2
    compared, skip = _docs.run_blocks(PAGE.read_text(), tmp_path, _docs.scratch(tmp_path))
    assert compared >= 3
    if skip is not None:
        pytest.skip(f"{compared} blocks and commands compared; this machine's own ones not: {skip}")
