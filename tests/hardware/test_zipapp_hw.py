"""kvmprobe.pyz on this host's real /dev/kvm: ``doctor``, ``check --all`` and ``has IMMEDIATE_EXIT``.

Each runs from a freshly built archive with ``python -I -S`` (nothing but the archive and the
standard library) and as the installed package; exit codes and stdout must be the same. The
exit code of ``has`` is also checked against KVM_CHECK_EXTENSION asked through ``fcntl.ioctl``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import pytest

from _helpers import raw_check_extension
from _packaging import build_zipapp, installed, interpreter, without_backend_line, zipped

pytestmark = pytest.mark.kvm

KVM_CAP_IMMEDIATE_EXIT = 136  # include/uapi/linux/kvm.h


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_zipapp(tmp_path_factory.mktemp("zipapp"))


@pytest.mark.parametrize("args", [("doctor",), ("check", "--all"), ("has", "IMMEDIATE_EXIT"), ("doctor", "--json")])
def test_live_commands_answer_as_the_installed_package(pyz: Path, args: Tuple[str, ...]) -> None:
    ours, theirs = zipped(pyz, *args), installed(*args)
    assert ours.returncode == theirs.returncode, ours.stderr
    assert ours.returncode in (0, 1) and ours.stdout.strip() != ""
    assert ours.stdout == theirs.stdout
    assert "Traceback" not in ours.stderr


def test_has_exits_as_the_kernel_answers(pyz: Path, raw_kvm_fd: int) -> None:
    expected = 0 if raw_check_extension(raw_kvm_fd, KVM_CAP_IMMEDIATE_EXIT) > 0 else 1
    assert zipped(pyz, "has", "IMMEDIATE_EXIT").returncode == expected
    python = interpreter("3.9")
    if python is None:
        pytest.skip("no Python 3.9 here (python3.9 on PATH or a pyenv 3.9.x)")
    assert zipped(pyz, "has", "IMMEDIATE_EXIT", python=python).returncode == expected


def test_dump_says_ctypes_and_shows_the_same_capabilities(pyz: Path) -> None:
    ours, theirs = zipped(pyz, "dump"), installed("dump")
    assert ours.returncode == theirs.returncode == 0
    assert "\n  backend      ctypes\n" in ours.stdout
    assert without_backend_line(ours.stdout) == without_backend_line(theirs.stdout)
