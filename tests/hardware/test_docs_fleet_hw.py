"""Every block of docs/fleet.md runs, in order, in one scratch directory, and prints what the page shows.

``console`` blocks are ``$ COMMAND`` lines, each followed by its output (stdout and stderr
together); a ``python`` block is followed by a plain block with its output. The blocks share the
scratch directory, where ``examples/`` and ``benches/`` are the repository's: the first writes
``a.json`` and ``b.json``, the later ones read them. The block marked ``<!-- this machine -->``
records this host live: it is compared only where the machine is the one the ``pvm-6.18``
preset recorded, and skipped with the reason elsewhere.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

from _docs import ROOT, console_steps, normal, run_console, scratch, why_not_the_recorded_machine

pytestmark = pytest.mark.kvm

PAGE = ROOT / "docs" / "fleet.md"
MARK = "<!-- this machine -->"
# (kind, body, live, expected output of a python block)
Block = Tuple[str, str, bool, str]


def blocks(text: str) -> List[Block]:
    found: List[Block] = []
    for match in re.finditer(r"```(console|python)\n(.*?)```(?:\n\n```\n(.*?)```)?", text, re.S):
        before = text[: match.start()].rstrip().splitlines()[-1:]
        found.append((match.group(1), match.group(2), before == [MARK], match.group(3) or ""))
    return found


def test_every_block_prints_what_the_page_shows(tmp_path: Path) -> None:
    env = scratch(tmp_path)
    (tmp_path / "benches").symlink_to(ROOT / "benches")
    found = blocks(PAGE.read_text())
    assert len(found) >= 8 and sum(live for _, _, live, _ in found) == 1
    skip = why_not_the_recorded_machine()
    compared = 0
    for kind, body, live, expected in found:
        if live and skip is not None:
            continue
        if kind == "python":
            done = subprocess.run([sys.executable, "-c", body], cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=300)  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert done.stdout == expected
            compared += 1
            continue
        for command, shown in console_steps(f"```console\n{body}```"):
            assert normal(run_console(command, tmp_path, env)) == normal(shown), command
            compared += 1
    assert compared >= 18
    if skip is not None:
        pytest.skip(f"{compared} commands compared; this machine's own block not: {skip}")
