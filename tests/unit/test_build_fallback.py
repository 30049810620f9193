"""The optional compiled fast path: built when a C compiler is there, skipped (not failed) when not.

Runs the project's real ``setup.py build_ext`` on a copy of the build inputs, once with a
compiler that always fails (``CC=/bin/false``) and once with the system compiler.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import kvmprobe

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytest.importorskip("cffi", reason="cffi (the build requirement of the fast path) is not installed")
pytest.importorskip("setuptools", reason="setuptools (the build backend) is not installed")


def _copy_build_inputs(where: pathlib.Path) -> pathlib.Path:
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, where / name)
    shutil.copytree(ROOT / "src" / "_kvmprobe_cffi", where / "src" / "_kvmprobe_cffi")
    (where / "src" / "kvmprobe").mkdir()
    shutil.copy(ROOT / "src" / "kvmprobe" / "_version.py", where / "src" / "kvmprobe" / "_version.py")
    return where


def _build_ext(where: pathlib.Path, **env: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", "out", "--build-temp", "tmp"],
        cwd=where,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_failing_compiler_skips_the_extension_and_the_build_succeeds(tmp_path: pathlib.Path) -> None:
    where = _copy_build_inputs(tmp_path)
    done = _build_ext(where, CC="/bin/false")
    assert done.returncode == 0, done.stderr
    assert "kvmprobe: not building the compiled fast path (kvmprobe._kvmbatch): compiling" in done.stderr
    assert "kvmprobe will use its ctypes backend" in done.stderr
    assert not list(where.rglob("_kvmbatch*.so"))


def test_no_extension_on_request(tmp_path: pathlib.Path) -> None:
    where = _copy_build_inputs(tmp_path)
    done = _build_ext(where, KVMPROBE_NO_EXTENSION="1")
    assert done.returncode == 0, done.stderr
    assert "KVMPROBE_NO_EXTENSION is set" in done.stderr
    assert not list(where.rglob("_kvmbatch*.so"))


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc) on this machine")
def test_with_a_compiler_the_extension_is_built_for_this_version(tmp_path: pathlib.Path) -> None:
    where = _copy_build_inputs(tmp_path)
    done = _build_ext(where)
    assert done.returncode == 0, done.stderr
    assert "not building" not in done.stderr
    (built,) = (where / "out" / "kvmprobe").glob("_kvmbatch*.so")
    spec = importlib.util.spec_from_file_location("_kvmbatch", built)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.ffi.string(module.lib.kvmbatch_version()).decode() == kvmprobe.__version__
