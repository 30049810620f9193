"""Helpers shared by the test modules (importable as ``_helpers``: tests/ is on the path)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from typing import Dict, List, Tuple


def open_fds() -> Dict[int, str]:
    """This process's open fds and what they point at (from /proc/self/fd)."""
    fds: Dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the fd listdir itself used, closed by now
            pass
    return fds


# The kernel's numbers on the asm-generic ioctl layout (x86_64, aarch64, riscv64, s390x), written
# out here rather than taken from kvmprobe._ioctl, so that hardware tests do not share the code
# path they check: _IO(0xAE, 0x00), _IO(0xAE, 0x01) and _IO(0xAE, 0x03).
RAW_KVM_GET_API_VERSION = 0xAE00
RAW_KVM_CREATE_VM = 0xAE01
RAW_KVM_CHECK_EXTENSION = 0xAE03
GENERIC_ARCHES = ("x86_64", "aarch64", "riscv64", "s390x")


def raw_check_extension(fd: int, number: int) -> int:
    """KVM_CHECK_EXTENSION through fcntl.ioctl: the independent path."""
    import fcntl

    return fcntl.ioctl(fd, RAW_KVM_CHECK_EXTENSION, number)


NOBODY = 65534
SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "src"))


def kvmprobe_as_nobody(*args: str, device: str = "/dev/kvm", timeout: float = 120) -> "subprocess.CompletedProcess[str]":
    """``python -m kvmprobe ARGS`` run as uid 65534 (setpriv) on this host's real device.

    Skips, with the reason, where that cannot show a permission problem: not root, no setpriv,
    no interpreter outside /root (pyenv's lives there, 0700), a world-read-write device, or a
    source tree that uid cannot read. The system interpreter runs the checkout's ``src``.
    """
    import pytest

    if os.geteuid() != 0:
        pytest.skip("needs root to drop to an unprivileged user")
    setpriv = shutil.which("setpriv")
    python = "/usr/bin/python3"
    if setpriv is None or not os.access(python, os.X_OK):
        pytest.skip(f"needs setpriv (util-linux) and the system python3, an interpreter uid {NOBODY} can execute")
    mode = os.stat(device).st_mode
    if mode & stat.S_IROTH and mode & stat.S_IWOTH:
        pytest.skip(f"{device} is world read-write here: every user may open it")
    drop = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", python]
    env = {"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin", "NO_COLOR": "1"}
    check = subprocess.run([*drop, "-c", "import kvmprobe._cli"], capture_output=True, text=True, timeout=60, env=env)
    if check.returncode != 0:
        pytest.skip(f"the source tree is not readable by uid {NOBODY} (kvmprobe does not import as that user)")
    return subprocess.run([*drop, "-m", "kvmprobe", *args], capture_output=True, text=True, timeout=timeout, env=env)


# What doctor measures anew at every run (the micro-guest's exit cost and slowdown): the same
# code prints different figures twice in a row, so comparisons see them as placeholders.
_MEASURED = re.compile(r"\d[\d,]*(?:\.\d+)?(?= (?:µs|\\u00b5s)\b)|\d[\d,]*(?:\.\d+)?(?=x slower)")


def measured_as_placeholders(text: str) -> str:
    """``text`` with every measured figure (an exit's µs, a slowdown) replaced by ``N``."""
    return _MEASURED.sub("N", text)
