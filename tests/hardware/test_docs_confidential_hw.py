"""Every command in docs/confidential.md runs and prints what the page shows; so does its Python block.

The ``console`` blocks run line by line with bash (``$ COMMAND``, then its output, stdout and stderr
together) in a scratch directory where ``examples/`` is the repository's and ``python`` is this
interpreter. The made-up hosts' output must match anywhere. The live host's output depends on the
machine: where it is not the recorded kind (x86_64, AuthenticAMD, kvm_pvm), those steps are run
and must exit as the page says, and the comparison is skipped, saying so.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from _helpers import console_steps, examples_scratch

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "confidential.md"


def recorded_kind() -> bool:
    """Whether this host is the kind the page's live output comes from."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "AuthenticAMD" in cpuinfo and os.path.isdir("/sys/module/kvm_pvm") and not os.path.isdir("/sys/module/kvm_amd")


def normal(lines: List[str]) -> List[str]:
    return [re.sub(r"Linux \d+\.\d+\.\d+-[\w.+-]*\w \(", "Linux RELEASE (", line).rstrip() for line in lines]


@pytest.mark.kvm
def test_every_console_command_prints_what_the_page_shows(tmp_path: Path) -> None:
    scratch = examples_scratch(tmp_path)
    env = {**os.environ, "PATH": f"{scratch}/bin:{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    env.pop("KVMPROBE_DEVICE", None)
    steps = console_steps(PAGE.read_text())
    assert len(steps) == 8
    skipped: List[str] = []
    for command, shown in steps:
        done = subprocess.run(["bash", "-c", command], cwd=scratch, env=env, capture_output=True, text=True, timeout=300)
        got = normal((done.stdout + done.stderr).splitlines())
        live = "--snapshot" not in command and "examples/" not in command
        if live and not recorded_kind():
            assert done.returncode == 0, (command, done.stderr)  # 'echo exit $?' or a pipe: it ran
            skipped.append(command)
            continue
        assert got == normal(shown), command
    if skipped:
        pytest.skip(f"this host is not the kind the page records (AuthenticAMD with kvm_pvm): not compared: {skipped}")


def test_the_python_block_prints_what_the_page_shows() -> None:
    code, output = re.findall(r"```python\n(.*?)```\n\n```\n(.*?)```", PAGE.read_text(), re.S)[0]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == output
