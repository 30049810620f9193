"""_stop: a child past its time limit is killed with its whole process group, and reaped."""

from __future__ import annotations

import subprocess
import sys
import time

from kvmprobe._stop import stop

_PARENT = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(120)\n"
)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie left for its reaper
    except FileNotFoundError:
        return True


def test_a_group_stop_takes_the_grandchildren_too() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, start_new_session=True)
    assert parent.stdout is not None
    grandchild = int(parent.stdout.readline())
    parent.stdout.close()
    assert not _gone(grandchild)
    stop(parent, group=True)
    assert parent.returncode == -9
    for _ in range(1000):  # bounded: SIGKILL is delivered at once, the reaper may lag
        if _gone(grandchild):
            break
        time.sleep(0.01)
    assert _gone(grandchild)

