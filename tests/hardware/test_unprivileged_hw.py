"""kvmprobe run as an unprivileged user on this host: the permission error and its fix, no traceback."""

from __future__ import annotations

import os
import stat

import pytest

from _helpers import kvmprobe_as_nobody

pytestmark = pytest.mark.kvm


def test_permission_denied_names_mode_owner_and_remedy() -> None:
    result = kvmprobe_as_nobody("has", "IMMEDIATE_EXIT")
    st = os.stat("/dev/kvm")
    assert result.returncode == 3
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert "cannot open /dev/kvm read-write: permission denied" in result.stderr
    assert stat.filemode(st.st_mode) in result.stderr
    if st.st_mode & stat.S_IRWXG == stat.S_IRGRP | stat.S_IWGRP and st.st_gid != 0:
        assert "usermod -aG" in result.stderr
    else:  # 0600 root:root, as on the PVM hosts: a group must be given to the node first
        assert "udev rule" in result.stderr
        # In a container the node comes from the host: the group is added by the runtime there.
        assert "--group-add" in result.stderr if _in_container() else "usermod -aG kvm" in result.stderr


def _in_container() -> bool:
    with open("/proc/1/cgroup", encoding="utf-8", errors="replace") as cgroup:  # closed by the with block
        marks = cgroup.read()
    return os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv") or any(
        word in marks for word in ("docker", "kubepods", "libpod", "lxc")
    )
