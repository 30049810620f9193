"""Every command in docs/emulate.md runs, and prints what the page shows.

The ``console`` blocks are run line by line (``$ COMMAND`` then its output, stdout and stderr
together as a terminal shows them) in a scratch directory where ``examples/`` is the
repository's and ``python`` is this interpreter; the ``python`` block runs with its output
block below it. Times and the strace path may differ between runs and are compared loosely.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from kvmprobe.emulate import supervisor_available

import _docs

pytestmark = pytest.mark.kvm

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "emulate.md"


def normal(lines: List[str]) -> List[str]:
    return _docs.normal(lines, [(r"/\S*/strace\b", "strace")])  # strace's path differs between hosts


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


def test_every_console_command_prints_what_the_page_shows(tmp_path: Path) -> None:
    needs_the_development_setup()
    scratch = tmp_path
    env = _docs.scratch(scratch)
    steps = _docs.console_steps(PAGE.read_text())
    assert len(steps) >= 8
    for command, shown in steps:
        assert normal(_docs.run_console(command, scratch, env)) == normal(shown), command


def test_the_python_example_prints_what_the_page_shows() -> None:
    needs_the_development_setup()
    code, output = _docs.python_examples(PAGE.read_text())[0]
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == output
