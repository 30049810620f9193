"""Stopping a child at its time limit: SIGKILL it (or its whole process group) and wait for it.

Imports nothing from the package (plumbing). The one room for this, used by ``_installed`` (a
VMM's version query), ``_supervisor`` (a command run under the seccomp supervisor) and
``_forked`` (the micro-guest's child): only the caller knows whether the child is a group
leader (``start_new_session=True``) and who reaps it.
"""

from __future__ import annotations

import os
import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from typing import Optional

__all__ = ["kill", "stop", "wait_for_exit"]


def kill(pid: int, *, group: bool = False) -> None:
    """SIGKILL ``pid`` (with ``group``, its whole process group: the children it started go too).

    Call it only on a child not reaped yet: until then its pid, which is also its group's id
    when it leads one, cannot have been reused (waitpid(2)). One already gone is not an error.

    Example:
        >>> import subprocess, sys
        >>> child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
        >>> kill(child.pid, group=True); child.wait()
        -9
    """
    try:
        if group:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # gone already (a zombie group may answer EPERM)
        pass


def stop(process: subprocess.Popen[bytes], *, group: bool = False) -> None:
    """:func:`kill` a ``Popen`` child (its group with ``group``) and reap it.

    Example:
        >>> import subprocess, sys
        >>> child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        >>> stop(child); child.returncode
        -9
    """
    if process.returncode is None:  # reaped already: its pid may belong to another process now
        kill(process.pid, group=group)
    process.wait()


def wait_for_exit(pid: int, seconds: Optional[float]) -> Optional[bool]:
    """Block until ``pid`` (a child) exits, at most ``seconds`` (``None``: no limit), through a
    pidfd (Linux 5.3+), without reaping it. Returns whether it exited, or ``None`` when no pidfd
    can be had (the caller then waits its own way).

    Example:
        >>> import subprocess, sys
        >>> child = subprocess.Popen([sys.executable, "-c", "pass"])
        >>> wait_for_exit(child.pid, 30) in (True, None); child.wait()
        True
        0
    """
    import select

    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        fd = pidfd_open(pid)  # O_CLOEXEC always; closed in the finally below
    except OSError:
        return None
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)  # readable once the process has exited
        return bool(poller.poll(None if seconds is None else max(0, int(seconds * 1000))))
    finally:
        os.close(fd)
