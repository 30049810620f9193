"""Every command and program in docs/cpu.md runs, and prints what the page shows.

``console`` blocks run line by line (``$ COMMAND``, then its output); a ``python`` block runs with
the ``text`` block after it as its output. Blocks marked ``<!-- this machine -->`` show this
development machine's live answers: they are compared only where the machine is the one the
``pvm-6.18`` preset recorded (same kernel, same KVM CPUID once volatile fields are cleared, same
TSC rate and feature MSRs), and skipped with the reason elsewhere. The others run anywhere.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import pytest

from _docs import why_not_the_recorded_machine

pytestmark = pytest.mark.kvm

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "cpu.md"
MARK = "<!-- this machine -->"

Block = Tuple[str, str, bool, Optional[str]]  # kind, body, live, expected output (python blocks)


def blocks() -> List[Block]:
    text = PAGE.read_text()
    found: List[Block] = []
    for match in re.finditer(r"```(console|python)\n(.*?)```(?:\s*```text\n(.*?)```)?", text, re.S):
        before = text[: match.start()].rstrip().splitlines()[-1:]
        found.append((match.group(1), match.group(2), before == [MARK], match.group(3)))
    return found


def run(command: str, cwd: Path) -> str:
    env = {**os.environ, "NO_COLOR": "1", "PATH": f"{cwd}:{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, env=env, cwd=str(ROOT))
    return done.stdout


@pytest.fixture
def python_on_path(tmp_path: Path) -> Path:
    python = tmp_path / "python"  # a script, not a symlink: a venv is found from the interpreter's own path
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    return tmp_path


def test_every_block_prints_what_the_page_shows(python_on_path: Path) -> None:
    found = blocks()
    assert len(found) >= 4 and sum(live for _, _, live, _ in found) >= 2
    skip = why_not_the_recorded_machine()
    compared = 0
    for kind, body, live, expected in found:
        if live and skip is not None:
            continue
        if kind == "python":
            assert expected is not None, body
            done = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True, timeout=120, cwd=str(ROOT))
            assert done.returncode == 0, done.stderr
            assert done.stdout == expected
            compared += 1
            continue
        steps: List[Tuple[str, List[str]]] = []
        for line in body.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
        for command, lines in steps:
            assert run(command, python_on_path).splitlines() == lines, command
            compared += 1
    assert compared >= 3
    if skip is not None:
        pytest.skip(f"{compared} blocks and commands compared; this machine's own ones not: {skip}")
