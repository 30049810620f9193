"""The exit code is the verdict, whatever happens to stdout: a reader that closes its end of a
pipe early (``kvmprobe has X | head -0``, ``set -o pipefail``) must not turn a "no" into a "yes".

Each command runs as a real process (``python -m kvmprobe``) three ways: into a file (the
unpiped verdict), into a pipe whose read end is closed before the command writes a byte, with
Python's buffered stdout and with ``PYTHONUNBUFFERED=1`` (the write fails at once or at the
final flush). The exit code and stderr must be the unpiped ones. No device is needed: the
hosts are presets, and the live cases name a device that does not exist.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import IO, Dict, List, Optional, Tuple

import pytest

from _helpers import SRC

MISSING = "/nonexistent/kvm"
COMMANDS: Dict[str, List[str]] = {
    "has": ["has", "IMMEDIATE_EXIT", "HLT", "--snapshot", "preset:linux-3.10"],
    "has-live": ["has", "HLT", "--device", MISSING],
    "check": ["check", "qemu", "cloud-hypervisor", "--snapshot", "preset:linux-3.10"],
    "doctor": ["doctor", "--device", MISSING],
    "dump": ["dump", "--all", "--snapshot", "preset:linux-3.10"],
    "diff": ["diff", "preset:linux-3.10", "preset:linux-4.14"],
    "export": ["export", "--format", "prometheus", "--device", MISSING],
}


def _env(unbuffered: bool) -> Dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "KVMPROBE"))}
    env["PYTHONPATH"] = SRC
    env["NO_COLOR"] = "1"
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    return env


def _start(argv: List[str], *, piped: bool, unbuffered: bool) -> Tuple["subprocess.Popen[bytes]", Optional[IO[bytes]]]:
    """Start the command with stdout into a file, or into a pipe nobody will ever read."""
    into_file: Optional[IO[bytes]] = None
    if piped:
        read_end, out = os.pipe()
        os.close(read_end)  # the reader is gone before the command writes anything: EPIPE on every write
    else:
        into_file = tempfile.TemporaryFile()
        out = into_file.fileno()
    proc = subprocess.Popen([sys.executable, "-m", "kvmprobe", *argv], stdout=out, stderr=subprocess.PIPE,
                            env=_env(unbuffered))  # fmt: skip
    if piped:
        os.close(out)
    return proc, into_file


def test_a_reader_that_closes_early_changes_neither_the_exit_code_nor_stderr() -> None:
    runs = {}
    # All at once: each is a separate interpreter start, so together they cost about one.
    for name, argv in COMMANDS.items():
        for piped, unbuffered in ((False, False), (True, False), (True, True)):
            runs[(name, piped, unbuffered)] = _start(argv, piped=piped, unbuffered=unbuffered)
    results: Dict[Tuple[str, bool, bool], Tuple[int, str]] = {}
    for key, (proc, into_file) in runs.items():
        _, err = proc.communicate(timeout=120)
        results[key] = (proc.returncode, err.decode("utf-8", "replace"))
        if into_file is not None:
            into_file.close()
    seen = set()
    for name in COMMANDS:
        code, text = results[(name, False, False)]
        seen.add(code)
        for unbuffered in (False, True):
            piped_code, piped_text = results[(name, True, unbuffered)]
            mode = "unbuffered" if unbuffered else "buffered"
            assert piped_code == code, f"{name} ({mode}): exit {piped_code} through a closed pipe, {code} into a file"
            assert piped_text == text, f"{name} ({mode}): stderr changed through a closed pipe:\n{piped_text}"
    assert seen == {0, 1, 3}, f"the commands should cover yes, no and unavailable verdicts: {results}"


@pytest.mark.parametrize("unbuffered", [False, True])
def test_stderr_closed_too_still_gives_the_verdict(unbuffered: bool) -> None:
    """``kvmprobe has X 2>&1 | head -0``: the error line cannot be written either."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "kvmprobe", *COMMANDS["has"]],
            stdout=write_end,
            stderr=write_end,
            env=_env(unbuffered),
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 1
