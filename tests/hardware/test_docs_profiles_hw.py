"""Every block of docs/profiles.md runs and prints what the page shows.

The commands on recorded hosts (presets) print the same anywhere; ``check --installed`` shows
this host, so it runs where the page's setup is: x86_64 with Debian's QEMU 7.2 and runsc and
no other VMM found, and the kernel release and Debian package strings are compared loosely.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from kvmprobe._installed import find_installed

import _docs

pytestmark = pytest.mark.kvm

PAGE = _docs.ROOT / "docs" / "profiles.md"
LOOSE = [(r"host: Linux \S+ \(", "host: Linux RELEASE ("), (r"7\.2\.\d+", "7.2.N"), (r"\(Debian [^)]*\)", "(Debian ...)")]


def page_setup_here() -> bool:
    if platform.machine() != "x86_64":
        return False
    found = {(item.vmm, (item.version or "")[:4]) for item in find_installed("x86_64")}
    return found == {("qemu", "7.2."), ("gvisor-kvm", "rele")}


def test_every_console_command_prints_what_the_page_shows(tmp_path: Path) -> None:
    env = _docs.scratch(tmp_path)
    steps = _docs.console_steps(PAGE.read_text())
    assert len(steps) >= 6
    live = [step for step in steps if "--installed" in step[0]]
    if not page_setup_here():
        steps = [step for step in steps if step not in live]
    for command, shown in steps:
        assert _docs.normal(_docs.run_console(command, tmp_path, env), LOOSE) == _docs.normal(shown, LOOSE), command
    if not page_setup_here():
        pytest.skip("check --installed shows a host with Debian's QEMU 7.2 and runsc only; the other blocks passed")


def test_the_python_examples_print_what_the_page_shows() -> None:
    examples = _docs.python_examples(PAGE.read_text())
    assert len(examples) == 3
    for code, output in examples:
        done = subprocess.run([sys.executable, "-c", code], cwd=_docs.ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout == output, code
