"""Helpers for the collector tests: serve kvmprobe-collect.py, run it, load it, compare documents.

Importable as ``_collect`` (tests/ is on the path). The collector is served the way a user gets
it (``python -m kvmprobe collector``) and run as the program it is, in a child process; the
in-process tests load the served file as a module (it runs on this Python too) to reach the
parts a command line cannot fake: another platform, another architecture, made-up CPU records.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from _packaging import child_env


def serve(directory: Path) -> Path:
    """``python -m kvmprobe collector > DIRECTORY/kvmprobe-collect.py``; the file's path."""
    target = directory / "kvmprobe-collect.py"
    with open(target, "w", encoding="ascii") as out:
        done = subprocess.run([sys.executable, "-m", "kvmprobe", "collector"], stdout=out, stderr=subprocess.PIPE,
                              text=True, timeout=120, env=child_env())
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return target


def load(script: Path) -> ModuleType:
    """The served collector as a module of this interpreter (its ``__main__`` part does not run)."""
    spec = importlib.util.spec_from_file_location("kvmprobe_collect", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(python: str, script: Path, *args: str, env: Optional[Dict[str, str]] = None,
        prefix: Sequence[str] = (), cwd: Optional[Path] = None) -> "subprocess.CompletedProcess[str]":
    """``python kvmprobe-collect.py ARGS`` (after ``prefix``, e.g. taskset or setpriv)."""
    return subprocess.run([*prefix, python, str(script), *args], capture_output=True, text=True, timeout=120,
                          env=env if env is not None else child_env(), stdin=subprocess.DEVNULL,
                          cwd=cwd or script.parent)


def differences(ours: Any, theirs: Any, at: str = "$") -> List[str]:
    """Every JSON path where two documents differ (keys, their order, types, values)."""
    if type(ours) is not type(theirs):
        return [f"{at}: {type(ours).__name__} {ours!r:.80} != {type(theirs).__name__} {theirs!r:.80}"]
    if isinstance(ours, dict):
        out = [] if list(ours) == list(theirs) else [f"{at}: keys {list(ours)} != {list(theirs)}"]
        for key in ours:
            if key in theirs:
                out += differences(ours[key], theirs[key], f"{at}.{key}")
        return out
    if isinstance(ours, list):
        out = [] if len(ours) == len(theirs) else [f"{at}: {len(ours)} items != {len(theirs)}"]
        for index, (a, b) in enumerate(zip(ours, theirs)):
            out += differences(a, b, f"{at}[{index}]")
        return out
    return [] if ours == theirs else [f"{at}: {ours!r:.80} != {theirs!r:.80}"]


def document(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def as_json(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples become lists, OrderedDicts dicts)."""
    return json.loads(json.dumps(value))


def cpu_record_dict(record: Any) -> Dict[str, Any]:
    """kvmprobe's :class:`CpuRecord` in the collector's shape (entries as tuples, failures as pairs)."""

    def entries(rows: Any) -> Optional[List[Any]]:
        return None if rows is None else [tuple(row) for row in rows]

    return {
        "cpuid": entries(record.cpuid),
        "emulated_cpuid": entries(record.emulated_cpuid),
        "msrs": None if record.msrs is None else list(record.msrs),
        "feature_msr_indices": None if record.feature_msr_indices is None else list(record.feature_msr_indices),
        "feature_msrs": None if record.feature_msrs is None else [tuple(pair) for pair in record.feature_msrs],
        "xcomp_guest_supp": record.xcomp_guest_supp,
        "tsc_khz": record.tsc_khz,
        "host_cpuid": entries(record.host_cpuid),
        "host_cpuid_source": record.host_cpuid_source,
        "host_flags": None if record.host_flags is None else list(record.host_flags),
        "failed": [(failure.ioctl, failure.errno) for failure in record.failed],
    }


NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"  # pyenv's interpreters live under /root (0700): uid 65534 cannot run them


@contextmanager
def nobody_scratch(script: Path) -> Iterator[Tuple[Path, Callable[..., "subprocess.CompletedProcess[str]"]]]:
    """A directory in /tmp that uid 65534 can reach, holding a copy of ``script``, and a function
    running that copy as uid 65534 (setpriv) with the system interpreter. Skips, with the reason,
    where privileges cannot be dropped."""
    import pytest

    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None or not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"needs root, setpriv and {SYSTEM_PYTHON} (an interpreter uid {NOBODY} can run) to drop privileges")
    drop = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    with tempfile.TemporaryDirectory(prefix="kvmprobe-collect-") as scratch:
        where = Path(scratch)
        where.chmod(0o755)
        copy = where / script.name
        shutil.copy(script, copy)
        copy.chmod(0o644)

        def as_nobody(*args: str) -> "subprocess.CompletedProcess[str]":
            return run(SYSTEM_PYTHON, copy, *args, prefix=drop, env={"PATH": "/usr/bin:/bin"})

        yield where, as_nobody
