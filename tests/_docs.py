"""Running the code blocks of a page under docs/ the way a reader would, for the tests that hold
the page's output against a real run.

``console`` blocks are ``$ COMMAND`` lines, each followed by what it prints (stdout and stderr
together, as a terminal shows them); they run in bash in a scratch directory where
``examples/`` is the repository's and ``python`` is this interpreter. A ``python`` block is
followed by a plain block with its output.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]


def console_steps(text: str) -> List[Tuple[str, List[str]]]:
    """``(command, shown output lines)`` for every ``$`` line of the page's console blocks."""
    steps: List[Tuple[str, List[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
    return steps


def python_examples(text: str) -> List[Tuple[str, str]]:
    """``(code, shown output)`` for every python block followed by its output block."""
    return re.findall(r"```python\n(.*?)```\n\n```\n(.*?)```", text, re.S)


def scratch(where: Path) -> Dict[str, str]:
    """Make ``where`` a reader's directory; return the environment to run commands in."""
    (where / "examples").symlink_to(ROOT / "examples")
    bin_dir = where / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python"  # a script, not a symlink: a venv is found from the interpreter's own path
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}


def run_console(command: str, where: Path, env: Dict[str, str], timeout: float = 300) -> List[str]:
    done = subprocess.run(["bash", "-c", command], cwd=where, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return done.stdout.splitlines()


def normal(lines: Sequence[str], rules: Sequence[Tuple[str, str]] = ()) -> List[str]:
    """The lines with trailing blanks dropped and each ``(pattern, replacement)`` applied."""
    out = []
    for line in lines:
        for pattern, replacement in rules:
            line = re.sub(pattern, replacement, line)
        out.append(line.rstrip())
    return out


Check = Callable[[str, List[str], List[str]], None]


def why_not_the_recorded_machine() -> Optional[str]:
    """Why this machine is not the one the ``pvm-6.18`` preset recorded (the one a page's
    ``<!-- this machine -->`` blocks show), or ``None`` when it is: the same kernel, the same KVM
    CPUID once volatile fields are cleared, the same TSC rate and feature MSRs."""
    import kvmprobe
    from kvmprobe.presets import load_preset

    if platform.machine() != "x86_64":
        return f"the page shows an x86_64 host; this is {platform.machine()}"
    preset = load_preset("pvm-6.18").cpu
    live = kvmprobe.cpu(refresh=True).record
    if preset is None or live is None:
        return "no CPU data to compare"
    if load_preset("pvm-6.18").kernel != os.uname().release:
        return f"the page shows Linux {load_preset('pvm-6.18').kernel}; this is {os.uname().release}"
    same = (preset.normalized(), preset.tsc_khz, preset.feature_msrs) == (live.normalized(), live.tsc_khz, live.feature_msrs)
    return None if same else "this machine's KVM answers differ from the recording the page shows"
