"""The collector on this host's real /dev/kvm: its document is ``kvmprobe snapshot``'s, field for
field, with this Python and with Python 2.7 and 3.6 where installed; only the time and the writer
(``recorded_at``, ``backend``) differ. Its capability values are also held against the kernel
asked here through the test's own ``fcntl.ioctl``; as uid 65534 it records EACCES, and doctor
reads that recording as the live doctor judges the device for that user.

Both programs run on one CPU (the ``pinned_cpu`` fixture; children inherit it): the host's
CPUID and KVM's leaves 1 and 0xB carry the APIC ID of the CPU that answered.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import pytest

from _collect import differences, document, nobody_scratch, run, serve
from _helpers import kvmprobe_as_nobody, raw_check_extension
from _packaging import child_env, interpreter
from kvmprobe import load_snapshot

pytestmark = pytest.mark.kvm


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return serve(tmp_path_factory.mktemp("collector"))


def _python(version: Optional[str]) -> str:
    python = sys.executable if version is None else interpreter(version)
    if python is None:
        pytest.skip(f"no Python {version} here (python{version} on PATH or a pyenv {version}.x)")
    return python


@pytest.mark.parametrize("version", [None, "2.7", "3.6"], ids=["this-python", "python2.7", "python3.6"])
def test_the_document_is_kvmprobes_own_snapshot_of_this_host(served: Path, tmp_path: Path, version: Optional[str],
                                                             pinned_cpu: int) -> None:
    python = _python(version)
    ours_path, theirs_path = tmp_path / "collected.json", tmp_path / "snapshot.json"
    started = int(time.time())  # both on one CPU (pinned_cpu): children inherit the affinity
    theirs = subprocess.run([sys.executable, "-m", "kvmprobe", "snapshot", "-o", str(theirs_path)],
                            capture_output=True, text=True, timeout=120, env=child_env())
    ours = run(python, served, "-o", str(ours_path))
    ended = int(time.time())
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0 and ours.stderr == "", ours.stderr
    collected, snapshot = document(ours_path), document(theirs_path)
    assert ours.stdout == f"{ours_path}: Linux {snapshot['kernel']} ({snapshot['arch']}), " \
        f"{sum(1 for row in snapshot['capabilities'] if (row['value'] or 0) > 0)} of {len(snapshot['capabilities'])} " \
        "capabilities supported\n"
    # The writer: which program and which Python; kvmprobe names its ioctl backend there.
    assert snapshot["backend"] in ("cffi", "ctypes")
    assert re.fullmatch(r"collector \(fcntl, Python \d+\.\d+\.\d+\)", collected["backend"])
    if version is not None:
        assert collected["backend"].startswith(f"collector (fcntl, Python {version}.")
    for doc in (collected, snapshot):  # the time: UTC, to the second, while the test ran
        when = datetime.strptime(doc["recorded_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        assert started <= when.timestamp() <= ended
    for doc in (collected, snapshot):
        del doc["recorded_at"], doc["backend"]
    assert differences(collected, snapshot) == []
    # Every row against the kernel, asked here through the test's own ioctl.
    result = load_snapshot(ours_path)
    fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)  # closed in the finally below
    try:
        for row in collected["capabilities"]:
            assert row["value"] == raw_check_extension(fd, row["number"]), row["name"]
    finally:
        os.close(fd)
    assert result.api_version == 12 and result.cpu is not None and not result.errors


def test_as_a_user_who_may_not_open_the_device(served: Path) -> None:
    """uid 65534 (setpriv): every query records EACCES, and doctor reads that recording as the live
    doctor judges /dev/kvm for that user."""
    live = kvmprobe_as_nobody("doctor")  # skips, with the reason, where this cannot be shown
    with nobody_scratch(served) as (where, as_nobody):
        done = as_nobody()
        assert done.returncode == 0, done.stderr
        assert done.stderr == ("kvmprobe-collect: note: /dev/kvm could not be opened: EACCES (Permission denied); "
                               "every query records that errno\n")
        collected = json.loads(done.stdout)
        assert all(row["error"] == errno.EACCES for row in collected["capabilities"])
        assert collected["host"]["uid"] == 65534 and collected["api_version"] == 0
        (where / "host.json").write_text(done.stdout)
        recorded = subprocess.run([sys.executable, "-m", "kvmprobe", "doctor", "--snapshot", str(where / "host.json")],
                                  capture_output=True, text=True, timeout=120, env=child_env())

    def line(text: str, check: str) -> Any:
        return next((row for row in text.splitlines() if row.startswith(f"  FAIL  {check}")), None)

    assert live.returncode == recorded.returncode == 1
    assert line(recorded.stdout, "device-access") is not None
    assert line(recorded.stdout, "device-access") == line(live.stdout, "device-access")
    assert recorded.stdout.splitlines()[-1] == live.stdout.splitlines()[-1]  # the verdict
