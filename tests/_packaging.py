"""Helpers for the packaging tests: build kvmprobe.pyz, find other Pythons, run both kvmprobes.

Importable as ``_packaging`` (tests/ is on the path). The scripts under ``scripts/`` are run as
the programs they are (a child process), the way a packager runs them.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"


def child_env() -> Dict[str, str]:
    """This environment without a forced backend or device, and without colour."""
    env = {key: value for key, value in os.environ.items() if key not in ("KVMPROBE_BACKEND", "KVMPROBE_DEVICE")}
    env["NO_COLOR"] = "1"
    return env


def run_script(name: str, *args: str) -> "subprocess.CompletedProcess[str]":
    """``python scripts/NAME ARGS`` with this interpreter; fails the test when it fails."""
    done = subprocess.run([sys.executable, str(SCRIPTS / name), *args], capture_output=True, text=True,
                          timeout=120, env=child_env())
    assert done.returncode == 0, done.stderr
    return done


def build_zipapp(directory: Path) -> Path:
    """Build kvmprobe.pyz into ``directory`` with scripts/build_zipapp.py; return its path."""
    target = directory / "kvmprobe.pyz"
    run_script("build_zipapp.py", "-o", str(target))
    return target


def run(argv: List[str], timeout: float = 120) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=child_env(),
                          stdin=subprocess.DEVNULL)


def installed(*args: str) -> "subprocess.CompletedProcess[str]":
    """The installed package's CLI: ``python -m kvmprobe ARGS``."""
    return run([sys.executable, "-m", "kvmprobe", *args])


def zipped(pyz: Path, *args: str, python: Optional[str] = None) -> "subprocess.CompletedProcess[str]":
    """``python -I -S kvmprobe.pyz ARGS``: isolated and without site-packages, so nothing but
    the archive and the standard library can be imported, as on a host without pip."""
    return run([python or sys.executable, "-I", "-S", str(pyz), *args])


def interpreter(version: str) -> Optional[str]:
    """A Python ``version`` ("3.9", "2.7") that runs here: ``pythonX.Y`` on PATH, else pyenv's.

    ``None`` when there is none (pyenv's shims are on PATH but refuse versions not selected,
    so its own version directories are tried too).
    """
    candidates = [shutil.which(f"python{version}")]
    pyenv = shutil.which("pyenv")
    if pyenv is not None:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=60).stdout.strip()
        candidates += sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")))
    for candidate in candidates:
        if candidate is None:
            continue
        try:
            done = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=60)
        except OSError:
            continue
        if done.returncode == 0 and done.stdout.strip() == version:
            return candidate
    return None


def without_backend_line(text: str) -> str:
    """``dump`` output without its ``backend`` header line (cffi installed, ctypes zipped)."""
    return re.sub(r"(?m)^  backend +\S+\n", "", text)
