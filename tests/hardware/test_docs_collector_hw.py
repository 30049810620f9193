"""Every command in docs/collector.md runs, and prints what the page shows.

The ``console`` blocks run line by line (``$ COMMAND``, then its output: stdout and stderr
together, as a terminal shows them) with bash, in ``tests/_docs.py``'s scratch directory, where ``kvmprobe`` is this
interpreter's kvmprobe and ``python2.7``/``python3.6`` are the old Pythons the page runs the
collector with (skipped, with the reason, where one is missing). Loosened: the kernel release,
the capability counts and the Pythons' patch levels (they differ between machines of this kind),
and the recording times. A command that reads a recorded host prints what that host is; where
this machine is not the page's, the same command on kvmprobe's own snapshot of this host must
print the same, and the test says so as a skip once the rest has passed.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

import pytest

import _docs
from _docs import console_steps
from _packaging import ROOT, interpreter

pytestmark = pytest.mark.kvm

PAGE = ROOT / "docs" / "collector.md"


# What differs from the recording besides _docs.VARIES (the recording times): the kernel release,
# the capability counts and the Pythons' patch levels (they differ between machines of this kind).
LOOSE = [(r"\b\d+\.\d+\.\d+-[\w.+-]*\w", "RELEASE"), (r"\b\d+ of \d+ (capabilities|in kvm-ioctls)", r"N of M \1"),
         (r"Python (\d+\.\d+)\.\d+", r"Python \1.N")]


def normal(lines: List[str]) -> List[str]:
    return _docs.normal(lines, LOOSE)


def test_every_console_command_prints_what_the_page_shows(tmp_path: Path) -> None:
    for version in ("2.7", "3.6"):
        if interpreter(version) is None:
            pytest.skip(f"the page runs the collector with Python {version}; there is none here")
    steps = console_steps(PAGE.read_text())
    assert len(steps) >= 10
    env = _docs.scratch(tmp_path)
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
