"""kvmprobe run as an unprivileged user on this host: the permission error and its fix, no traceback."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

pytestmark = pytest.mark.kvm

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")
NOBODY = 65534


def _as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to an unprivileged user")
    setpriv = shutil.which("setpriv")
    python = "/usr/bin/python3"
    if setpriv is None or not os.access(python, os.X_OK):
        pytest.skip("needs setpriv (util-linux) and /usr/bin/python3")
    mode = os.stat("/dev/kvm").st_mode
    if mode & stat.S_IROTH and mode & stat.S_IWOTH:
        pytest.skip("/dev/kvm is world read-write here: every user may open it")
    probe = subprocess.run([setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                            python, "-c", "import kvmprobe"], capture_output=True, text=True, timeout=60,
                           env={"PYTHONPATH": os.path.abspath(SRC), "PATH": "/usr/bin:/bin"})
    if probe.returncode != 0:
        pytest.skip(f"the source tree is not readable by uid {NOBODY}: {probe.stderr.strip()[-200:]}")
    return subprocess.run([setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           python, "-m", "kvmprobe", *args], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": os.path.abspath(SRC), "PATH": "/usr/bin:/bin"})


def test_permission_denied_names_mode_owner_and_remedy() -> None:
    result = _as_nobody("has", "IMMEDIATE_EXIT")
    st = os.stat("/dev/kvm")
    assert result.returncode == 3
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert "cannot open /dev/kvm read-write: permission denied" in result.stderr
    assert stat.filemode(st.st_mode) in result.stderr
    if st.st_mode & stat.S_IRWXG == stat.S_IRGRP | stat.S_IWGRP and st.st_gid != 0:
        assert "usermod -aG" in result.stderr
    else:  # 0600 root:root, as on the PVM hosts: a group must be given to the node first
        assert "udev rule" in result.stderr and "usermod -aG kvm" in result.stderr
