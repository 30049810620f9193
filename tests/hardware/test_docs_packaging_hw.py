"""Every command in docs/packaging.md runs, and prints what the page shows.

The ``console`` blocks run line by line (``$ COMMAND``, then its output: stdout and stderr
together, as a terminal shows them) with bash, in ``tests/_docs.py``'s scratch directory
(``scripts/`` is the repository's, ``python3`` this interpreter, ``$HOME`` a scratch home whose
``.local/bin`` is on PATH). Loosened: the archive's file count and size (they grow with the
package) and the kernel release (it differs between machines of this kind). What depends on
the host (``doctor``, ``dump``, ``has`` on the live device; an old Python) must print the same as
the installed kvmprobe here; where this host is not the recorded one, the page cannot be
compared and the test says so as a skip once the rest has passed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import List, Optional

import pytest

import _docs
from _docs import console_steps
from _helpers import measured_as_placeholders
from _packaging import ROOT, interpreter, run

pytestmark = pytest.mark.kvm

PAGE = ROOT / "docs" / "packaging.md"
HOST_DEPENDENT = re.compile(r"kvmprobe\.pyz (doctor|dump|has)\b|^python3\.6 ")


# What differs from the recording besides _docs.VARIES: the archive's file count and size (they grow
# with the package), the kernel release (it differs between machines of this kind), and groff's
# justification (it spreads spaces differently as the page grows: the words count).
LOOSE = [(r"\b\d+ files, \d+ KiB\b", "N files, N KiB"), (r"\b\d+\.\d+\.\d+-[\w.+-]*\w", "RELEASE"),
         (r"(?<=\S)  +(?=\S)", " ")]


def normal(lines: List[str]) -> List[str]:
    return _docs.normal(lines, LOOSE)


def test_every_console_command_prints_what_the_page_shows(tmp_path: Path) -> None:
    import subprocess

    steps = console_steps(PAGE.read_text())
    assert len(steps) >= 12
    env = _docs.scratch(tmp_path)
    differs: List[str] = []
    for command, shown in steps:
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=300, stdin=subprocess.DEVNULL)
        got = done.stdout.splitlines()
        if normal(got) == normal(shown):
            continue
        if not HOST_DEPENDENT.search(command):
            assert normal(got) == normal(shown), command
        reason = _host_reason(command, got, tmp_path)
        assert reason is not None, (command, normal(got), normal(shown))
        differs.append(reason)
    if differs:
        pytest.skip("this host is not the one the page was recorded on: " + "; ".join(differs))


def _host_reason(command: str, got: List[str], cwd: Path) -> Optional[str]:
    """Why a host-dependent command may print something else here, or ``None`` if it may not."""
    if command.startswith("python3.6 "):
        return "no Python 3.6 here" if interpreter("3.6") is None else None
    # The archive must still print what the installed kvmprobe prints on this host.
    installed = command.replace("python3 kvmprobe.pyz", f"{sys.executable} -m kvmprobe")
    theirs = run(["bash", "-c", f"cd {cwd} && {{ {installed}; }} 2>&1"])
    if measured_as_placeholders(theirs.stdout).splitlines() != [measured_as_placeholders(line) for line in got]:
        return None
    return f"'{command}' answers differently here (the installed kvmprobe agrees with the archive)"
