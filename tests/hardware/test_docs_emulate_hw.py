"""Every command in docs/emulate.md (and README's emulate example) runs, and prints what the page shows.

The ``console`` blocks are run line by line (``$ COMMAND`` then its output, stdout and stderr
together as a terminal shows them) in a scratch directory where ``examples/`` is the
repository's and ``python`` is this interpreter; the ``python`` block runs with its output
block below it. Times and the strace path may differ between runs and are compared loosely.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from _helpers import console_steps

from kvmprobe.emulate import supervisor_available

pytestmark = pytest.mark.kvm

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "emulate.md"


def normal(lines: List[str]) -> List[str]:
    out = []
    for line in lines:
        line = re.sub(r"(\d+ runs), \d+ s\b", r"\1, T s", line)
        line = re.sub(r"/\S*/strace\b", "strace", line)
        out.append(line.rstrip())
    return out


def needs_the_development_setup() -> None:
    if platform.machine() != "x86_64":
        pytest.skip(f"the page shows an x86_64 host; this is {platform.machine()}")
    if not supervisor_available():
        pytest.skip("the page's runs use the seccomp supervisor (Linux 5.5)")
    for program in ("qemu-system-x86_64", "strace"):
        if shutil.which(program) is None:
            pytest.skip(f"the page's runs use {program}, which is not installed here")
    version = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True, timeout=60).stdout
    if not version.startswith("QEMU emulator version 7.2."):
        pytest.skip(f"the page shows QEMU 7.2; this is {version.splitlines()[0] if version else 'unknown'}")


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python"  # a script, not a symlink: a venv is found from the interpreter's own path
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    return tmp_path


def test_every_console_command_prints_what_the_page_shows(scratch: Path) -> None:
    needs_the_development_setup()
    env = {**os.environ, "PATH": f"{scratch / 'bin'}:{os.environ.get('PATH', '')}", "PYTHONUNBUFFERED": "1",
           "NO_COLOR": "1"}
    steps = console_steps(PAGE.read_text())
    readme = [step for step in console_steps((ROOT / "README.md").read_text()) if " kvmprobe emulate " in step[0]]
    assert len(steps) >= 8 and len(readme) == 1
    steps += readme
    for command, shown in steps:
        done = subprocess.run(["bash", "-c", command], cwd=scratch, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=300)
        assert normal(done.stdout.splitlines()) == normal(shown), command


def test_the_python_example_prints_what_the_page_shows() -> None:
    needs_the_development_setup()
    code, output = re.findall(r"```python\n(.*?)```\n\n```\n(.*?)```", PAGE.read_text(), re.S)[0]
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == output
