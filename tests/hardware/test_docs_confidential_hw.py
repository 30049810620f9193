"""Every command in docs/confidential.md runs and prints what the page shows; so does its Python block.

The made-up hosts' output must match anywhere. The live host's output depends on the machine:
where it is not the recorded kind (AuthenticAMD with kvm_pvm), those steps are run and must
succeed, and the comparison is skipped, saying so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

import _docs

PAGE = _docs.ROOT / "docs" / "confidential.md"
# The kernel release differs between machines of the recorded kind.
LOOSE = [(r"Linux \d+\.\d+\.\d+-[\w.+-]*\w \(", "Linux RELEASE (")]


def recorded_kind() -> bool:
    """Whether this host is the kind the page's live output comes from."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "AuthenticAMD" in cpuinfo and os.path.isdir("/sys/module/kvm_pvm") and not os.path.isdir("/sys/module/kvm_amd")


@pytest.mark.kvm
def test_every_console_command_prints_what_the_page_shows(tmp_path: Path) -> None:
    env = _docs.scratch(tmp_path)
    env.pop("KVMPROBE_DEVICE", None)
    steps = _docs.console_steps(PAGE.read_text())
    assert len(steps) == 8
    skipped: List[str] = []
    for command, shown in steps:
        got = _docs.run_console(command, tmp_path, env)
        live = "--snapshot" not in command and "examples/" not in command
        if live and not recorded_kind():
            assert got, command  # it ran and printed; what it prints is this host's
            skipped.append(command)
            continue
        assert _docs.normal(got, LOOSE) == _docs.normal(shown, LOOSE), command
    if skipped:
        pytest.skip(f"this host is not the kind the page records (AuthenticAMD with kvm_pvm): not compared: {skipped}")


def test_the_python_block_prints_what_the_page_shows() -> None:
    (code, output), = _docs.python_examples(PAGE.read_text())
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == output
