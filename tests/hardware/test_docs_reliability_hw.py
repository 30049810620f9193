"""Every command in docs/reliability.md runs, and prints what the page shows.

The ``console`` blocks are run line by line (``$ COMMAND`` then its output, stdout and stderr
together as a terminal shows them, ``bash -c`` in a fresh scratch directory, ``python`` being
this interpreter). The running kernel's release stands for the one the page shows. The
``doctor --as-user nobody`` step shows this machine's nodes (``/dev/kvm`` and ``/dev/net/tun``
``crw------- root:root``, run as root); on a machine whose nodes differ it is run but not
compared, with the reason printed.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from _docs import console_steps

pytestmark = pytest.mark.kvm

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reliability.md"
PAGE_RELEASE = "6.18.44-fc-v657"  # the development machine's kernel when the page was written


def nodes_as_on_the_page() -> str:
    """Why this machine's nodes differ from the page's, or ``""``."""
    if os.geteuid() != 0:
        return "the page runs as root"
    for path in ("/dev/kvm", "/dev/net/tun"):
        try:
            st = os.stat(path)
        except OSError:
            return f"{path} does not exist here"
        if stat.S_IMODE(st.st_mode) != 0o600 or st.st_uid != 0 or st.st_gid != 0:
            return f"{path} is {stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid} here, not crw------- root:root"
    return ""


def test_every_console_command_prints_what_the_page_shows(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python"  # a script, not a symlink: a venv is found from the interpreter's own path
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "PYTHONUNBUFFERED": "1", "NO_COLOR": "1",
           "PYTHONPATH": str(ROOT / "src")}  # fmt: skip
    env.pop("KVMPROBE_DEVICE", None)
    steps = console_steps(PAGE.read_text())
    assert len(steps) >= 9
    differs = nodes_as_on_the_page()
    for command, shown in steps:
        done = subprocess.run(["bash", "-c", command], cwd=work, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=300)  # fmt: skip
        if "--as-user" in command and differs:
            print(f"not compared: {command!r}: {differs}")
            continue
        got = [line.replace(os.uname().release, PAGE_RELEASE).rstrip() for line in done.stdout.splitlines()]
        assert got == [line.rstrip() for line in shown], command
