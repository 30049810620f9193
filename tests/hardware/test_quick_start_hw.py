"""README's first quick-start command, verbatim, on a fresh install: a new virtual environment,
a copy of the repository, ``pip install ".[fast]" && python -m kvmprobe doctor``.

What it must show: the install succeeds with the compiled batch probe (the ``fast`` extra), and
the doctor it runs gives the same verdict line and exit code as the doctor of the kvmprobe under
test, on the same device. (The second quick-start command is the one CI runs: ``.ci/run``.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _first_command() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = text.split("## Quick start", 1)[1]
    found = re.search(r"```sh\n(.*?)\n```", quick, re.S)
    assert found is not None, "README's quick start has no sh block"
    return found.group(1).strip()


def _verdict(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("verdict:")]
    assert len(lines) == 1, output[-2000:]
    return lines[0]


@pytest.mark.kvm
def test_the_first_quick_start_command_installs_and_runs_doctor(tmp_path: Path) -> None:
    command = _first_command()
    assert command.startswith("pip install") and "python -m kvmprobe" in command, command
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler here: the fast extra's compiled probe cannot be built (docs/packaging.md)")
    repo = tmp_path / "kvmprobe"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "build", "*.egg-info", "*.so", ".pytest_cache", ".mypy_cache"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "KVMPROBE_DEVICE")}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode not in (0, 1) and re.search(r"No matching distribution|Could not find a version|"
                                                   r"Failed to establish a new connection", done.stderr):
        pytest.skip(f"pip cannot reach a package index here to install cffi: {done.stderr.strip().splitlines()[-1]}")
    # The doctor under test, on the same device, is the oracle for the verdict of the fresh one.
    ours = subprocess.run([sys.executable, "-m", "kvmprobe", "doctor"], capture_output=True, text=True, timeout=300)
    assert done.returncode == ours.returncode, (done.stdout[-2000:], done.stderr[-2000:])
    assert any(line.startswith("kvmprobe doctor: ") for line in done.stdout.splitlines())  # after pip's lines
    assert _verdict(done.stdout) == _verdict(ours.stdout)
    backend = subprocess.run([str(venv / "bin" / "python"), "-c", "import kvmprobe; print(kvmprobe.probe().backend)"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert backend.stdout.strip() == "cffi", backend.stderr
