"""Every command in docs/collector.md runs, and prints what the page shows.

The ``console`` blocks run line by line (``$ COMMAND``, then its output: stdout and stderr
together, as a terminal shows them) with bash, in a scratch directory where ``kvmprobe`` is this
interpreter's kvmprobe and ``python2.7``/``python3.6`` are the old Pythons the page runs the
collector with (skipped, with the reason, where one is missing). Loosened: the kernel release,
the capability counts and the Pythons' patch levels (they differ between machines of this kind),
and the recording times. A command that reads a recorded host prints what that host is; where
this machine is not the page's, the same command on kvmprobe's own snapshot of this host must
print the same, and the test says so as a skip once the rest has passed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from _docs import console_steps
from _packaging import ROOT, interpreter

pytestmark = pytest.mark.kvm

PAGE = ROOT / "docs" / "collector.md"


def normal(lines: List[str]) -> List[str]:
    out = []
    for line in lines:
        line = re.sub(r"\b\d+\.\d+\.\d+-[\w.+-]*\w", "RELEASE", line)
        line = re.sub(r"\b\d+ of \d+ (capabilities|in kvm-ioctls)", r"N of M \1", line)
        line = re.sub(r"Python (\d+\.\d+)\.\d+", r"Python \1.N", line)
        line = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "TIME", line)
        out.append(line.rstrip())
    return out


def scratch(where: Path, pythons: Dict[str, str]) -> Dict[str, str]:
    bin_dir = where / "bin"
    bin_dir.mkdir()
    scripts = {"python": f'exec {sys.executable} "$@"', "kvmprobe": f'exec {sys.executable} -m kvmprobe "$@"'}
    scripts.update({name: f'exec {path} "$@"' for name, path in pythons.items()})
    for name, body in scripts.items():
        script = bin_dir / name  # a script, not a symlink: a venv is found from the interpreter's own path
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key not in ("KVMPROBE_BACKEND", "KVMPROBE_DEVICE")}
    env.update(NO_COLOR="1", PATH=f"{bin_dir}:{os.environ.get('PATH', '')}")
    return env


def test_every_console_command_prints_what_the_page_shows(tmp_path: Path) -> None:
    pythons: Dict[str, str] = {}
    for version in ("2.7", "3.6"):
        found = interpreter(version)
        if found is None:
            pytest.skip(f"the page runs the collector with Python {version}; there is none here")
        pythons[f"python{version}"] = found
    steps = console_steps(PAGE.read_text())
    assert len(steps) >= 10
    env = scratch(tmp_path, pythons)
    differs: List[str] = []
    for command, shown in steps:
        got = _run(command, tmp_path, env)
        if normal(got) == normal(shown):
            continue
        reason = _host_reason(command, got, tmp_path, env)
        assert reason is not None, (command, normal(got), normal(shown))
        differs.append(reason)
    if differs:
        pytest.skip("this host is not the one the page was recorded on: " + "; ".join(differs))


def _run(command: str, cwd: Path, env: Dict[str, str]) -> List[str]:
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300, stdin=subprocess.DEVNULL)
    return done.stdout.splitlines()


def _host_reason(command: str, got: List[str], cwd: Path, env: Dict[str, str]) -> Optional[str]:
    """Why a command reading a recorded host may print something else here, or ``None``."""
    found = re.search(r"--snapshot (host-py\d+\.json)", command)
    if found is None:
        return None
    # kvmprobe's own snapshot of this host (the page makes it) must be read the same way.
    theirs = _run(command.replace(found[1], "snapshot.json"), cwd, env)
    if normal([line.replace("snapshot.json", found[1]) for line in theirs]) != normal(got):
        return None
    return f"'{command}' answers differently here (kvmprobe's own snapshot of this host agrees with the collector's)"
