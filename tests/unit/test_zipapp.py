"""kvmprobe.pyz (scripts/build_zipapp.py): what it holds, and that it answers as the installed package.

The archive is built into a temporary directory and run with ``python -I -S``: no
site-packages, so only the archive and the standard library can be imported (a host without
pip). Every run is compared with ``python -m kvmprobe`` (the installed package) on the same
recorded host: same exit code, same stdout, same stderr. The live device is compared in
tests/hardware/test_zipapp_hw.py.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Tuple

import pytest

from _packaging import ROOT, build_zipapp, child_env, installed, interpreter, run, without_backend_line, zipped


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_zipapp(tmp_path_factory.mktemp("zipapp"))


def test_the_archive_holds_the_source_and_the_package_data_and_nothing_else(pyz: Path) -> None:
    with zipfile.ZipFile(pyz) as archive:
        names = set(archive.namelist())
        assert archive.testzip() is None
    files = {name for name in names if not name.endswith("/")}
    package = ROOT / "src" / "kvmprobe"
    source = {f"kvmprobe/{p.relative_to(package).as_posix()}" for p in package.rglob("*.py") if "__pycache__" not in p.parts}
    data = {f"kvmprobe/{p.relative_to(package).as_posix()}" for p in package.rglob("*.json")}
    data.add("kvmprobe/collector/kvmprobe-collect.py.in")  # the collector's template: 'collector' serves it
    assert "kvmprobe/preset_data/pvm-6.18.json" in data
    assert any(name.startswith("kvmprobe/schema/snapshot-") for name in data)
    assert files == {"__main__.py"} | source | data
    # No tests, caches, compiled modules or typing stubs; the interpreter line runs python3.
    assert not any("__pycache__" in name or name.endswith((".pyc", ".so", ".pyi")) or "test" in name.split("/")[0]
                   for name in names)
    assert pyz.read_bytes().startswith(b"#!/usr/bin/env python3\n")


def test_version_is_the_installed_one(pyz: Path) -> None:
    ours, theirs = zipped(pyz, "--version"), installed("--version")
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout) == (0, theirs.stdout)
    assert ours.stdout.startswith("kvmprobe ")


@pytest.mark.parametrize(
    "args, code",
    [
        # The recorded host is read from inside the archive (importlib.resources, not a path).
        (("has", "IMMEDIATE_EXIT", "--snapshot", "preset:pvm-6.18"), 0),
        (("has", "IMMEDIATE_EXIT", "--snapshot", "preset:linux-3.10"), 1),
        # The recorded host's KVM is kvm_pvm, where gVisor's KVM platform does not run.
        (("check", "--all", "--snapshot", "preset:pvm-6.18"), 1),
        (("check", "firecracker", "cloud-hypervisor", "--snapshot", "preset:pvm-6.18"), 0),
        (("check", "cloud-hypervisor", "--snapshot", "preset:linux-3.10"), 1),
        (("doctor", "--snapshot", "preset:pvm-6.18"), 0),
        (("doctor", "--json", "--snapshot", "preset:linux-4.14"), 0),
        (("snapshot", "--list-presets"), 0),
        (("has", "NO_SUCH_CAPABILITY", "--snapshot", "preset:pvm-6.18"), 2),
        (("check", "no-such-vmm", "--snapshot", "preset:pvm-6.18"), 2),
        (("doctor", "--device", "/nonexistent/kvm"), 1),
        (("has", "HLT", "--device", "/nonexistent/kvm"), 3),
        # The collector for old hosts, its template read from inside the archive.
        (("collector",), 0),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else str(value),
)
def test_commands_answer_as_the_installed_package(pyz: Path, args: Tuple[str, ...], code: int) -> None:
    ours, theirs = zipped(pyz, *args), installed(*args)
    assert ours.returncode == theirs.returncode == code, ours.stderr
    assert ours.stdout == theirs.stdout
    assert ours.stdout.strip() != "" or code >= 2
    assert ours.stderr == theirs.stderr
    assert "Traceback" not in ours.stderr


def test_dump_runs_on_ctypes_and_otherwise_prints_the_same(pyz: Path) -> None:
    args = ("dump", "--snapshot", "preset:pvm-6.18")
    ours, theirs = zipped(pyz, *args), installed(*args)
    assert ours.returncode == theirs.returncode == 0
    assert without_backend_line(ours.stdout) == without_backend_line(theirs.stdout)


def test_a_forced_cffi_backend_says_the_archive_has_none(pyz: Path) -> None:
    done = subprocess.run([sys.executable, "-I", "-S", str(pyz), "has", "HLT"], capture_output=True, text=True,
                          timeout=120, env=dict(child_env(), KVMPROBE_BACKEND="cffi"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("kvmprobe: error: the cffi backend is not available: ")
    assert "zip archive" in done.stderr and "set it to ctypes" in done.stderr and len(done.stderr.splitlines()) == 1


def test_runs_on_python_3_9(pyz: Path) -> None:
    python = interpreter("3.9")
    if python is None:
        pytest.skip("no Python 3.9 here (python3.9 on PATH or a pyenv 3.9.x)")
    for args in (("has", "IMMEDIATE_EXIT", "--snapshot", "preset:linux-3.10"), ("check", "--all", "--snapshot", "preset:pvm-6.18")):
        ours, theirs = zipped(pyz, *args, python=python), installed(*args)
        assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


@pytest.mark.parametrize("version", ["2.7", "3.6"])
def test_an_older_python_gets_one_line_saying_what_to_run(pyz: Path, version: str) -> None:
    python = interpreter(version)
    if python is None:
        pytest.skip(f"no Python {version} here (python{version} on PATH or a pyenv {version}.x)")
    done = run([python, str(pyz), "doctor"])  # no -I: Python 2 refuses it
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"kvmprobe: error: kvmprobe needs Python 3.9 or later, this is Python {version}.")
    assert f"'python3.9 {pyz} doctor'" in done.stderr and len(done.stderr.splitlines()) == 1
    # The way for a host that has only this Python: the collector, served by the archive elsewhere.
    assert f"'python3.9 {pyz} collector > kvmprobe-collect.py'" in done.stderr
    assert "'python kvmprobe-collect.py -o host.json' here" in done.stderr
