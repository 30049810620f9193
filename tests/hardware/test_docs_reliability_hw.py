"""Every command in docs/reliability.md runs, and prints what the page shows.

The ``console`` blocks are run line by line (``$ COMMAND`` then its output, stdout and stderr
together as a terminal shows them) in ``tests/_docs.py``'s scratch directory. The running
kernel's release stands for the one the page shows. The ``doctor --as-user nobody`` step shows this machine's nodes (``/dev/kvm`` and ``/dev/net/tun``
``crw------- root:root``, run as root); on a machine whose nodes differ it is run but not
compared, with the reason printed.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

import _docs

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
    env = _docs.scratch(tmp_path)
    steps = _docs.console_steps(PAGE.read_text())
    assert len(steps) >= 9
    differs = nodes_as_on_the_page()
    release = [(re.escape(os.uname().release), PAGE_RELEASE)]
    for command, shown in steps:
        got = _docs.run_console(command, tmp_path, env)
        if "--as-user" in command and differs:
            print(f"not compared: {command!r}: {differs}")
            continue
        assert _docs.normal(got, release) == _docs.normal(shown), command
