#!/usr/bin/env python3
"""Build ``kvmprobe.pyz``: kvmprobe in one file for hosts without pip (standard library ``zipapp``).

Usage: ``python3 scripts/build_zipapp.py [-o kvmprobe.pyz]``; then, on any Linux host with
Python 3.9 or later, ``python3 kvmprobe.pyz doctor`` (or ``./kvmprobe.pyz doctor``).

The archive holds the package's Python source and its package data (the files
``[tool.setuptools.package-data]`` in pyproject.toml ships, read with ``importlib.resources``,
which reads inside a zip), and nothing else: no tests, no ``__pycache__``, no typing stubs, and
no compiled module, since a ``.so`` cannot be imported from a zip and is built per Python and
per machine. Backend selection falls back to ctypes, as it does wherever cffi was not built.
Its ``__main__`` is written for any Python, so an interpreter older than 3.9 (Python 2.7,
3.6: the platform Pythons of CentOS 7 and RHEL 8) prints one line saying what to run instead
of a traceback: a newer Python, or the collector for old hosts (``kvmprobe collector``,
docs/collector.md), which the archive serves too.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import sys
import tempfile
import zipapp
from pathlib import Path
from typing import List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "kvmprobe"

#: The interpreter line: ``./kvmprobe.pyz`` runs with the first ``python3`` on PATH.
INTERPRETER = "/usr/bin/env python3"

#: Package data that matters only to type checkers, left out of the archive.
TYPING_ONLY = ("py.typed", "*.pyi")

#: The archive's entry point. Python 2 and 3.0-3.8 parse this file (nothing in the package), so it
#: uses no syntax newer than Python 2.6 and says what to do instead of failing on the package's.
MAIN = '''\
# kvmprobe.pyz entry point (scripts/build_zipapp.py); kept parseable by any Python.
import sys

if sys.version_info < (3, 9):
    sys.stderr.write(
        "kvmprobe: error: kvmprobe needs Python 3.9 or later, this is Python %d.%d.%d "
        "(hint: run it with Python 3.9 or later: 'python3.9 %s %s'; or record this host with the collector, "
        "which runs on Python 2.7 and 3.6: 'python3.9 %s collector > kvmprobe-collect.py' where Python 3.9 runs, "
        "then 'python kvmprobe-collect.py -o host.json' here and 'python3.9 %s doctor --snapshot host.json' there)\\n"
        % (sys.version_info[0], sys.version_info[1], sys.version_info[2], sys.argv[0], " ".join(sys.argv[1:]),
           sys.argv[0], sys.argv[0])
    )
    sys.exit(2)

from kvmprobe._cli import run

run()
'''


def package_data_patterns(pyproject: Path = ROOT / "pyproject.toml") -> List[str]:
    """The glob patterns of ``[tool.setuptools.package-data] kvmprobe`` in ``pyproject``."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11: the table is a list of plain strings, a Python literal too
        import ast
        import re

        text = pyproject.read_text(encoding="utf-8")
        found = re.search(r"^\[tool\.setuptools\.package-data\]\s*^kvmprobe\s*=\s*(\[[^\]]*\])", text, re.M)
        if found is None:
            raise SystemExit(f"build_zipapp: no [tool.setuptools.package-data] kvmprobe = [...] in {pyproject}")
        patterns: List[str] = ast.literal_eval(found.group(1))
        return patterns
    with pyproject.open("rb") as handle:
        table = tomllib.load(handle)
    return list(table["tool"]["setuptools"]["package-data"]["kvmprobe"])


def archive_members(package: Path = PACKAGE, patterns: Optional[Sequence[str]] = None) -> List[str]:
    """The package's files that go into the archive, as paths relative to ``package``'s parent.

    Python source everywhere in the package, plus the package-data files that are not for
    type checkers only; never anything under ``__pycache__``.
    """
    wanted = [p for p in (package_data_patterns() if patterns is None else patterns) if p not in TYPING_ONLY]
    members = []
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package)
        if not path.is_file() or "__pycache__" in relative.parts:
            continue
        if path.suffix == ".py" or any(fnmatch.fnmatch(relative.as_posix(), p) for p in wanted):
            members.append(path.relative_to(package.parent).as_posix())
    return members


def build(target: Path, package: Path = PACKAGE) -> List[str]:
    """Write the archive to ``target`` (replaced if it is a regular file); return its members."""
    if target.exists() and not target.is_file():
        raise SystemExit(f"build_zipapp: {target} exists and is not a regular file; not replacing it")
    members = archive_members(package)
    with tempfile.TemporaryDirectory(prefix="kvmprobe-zipapp-") as staging:
        for member in members:
            destination = Path(staging, member)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(package.parent / member, destination)
        Path(staging, "__main__.py").write_text(MAIN, encoding="utf-8")
        # Written beside the target, then renamed over it: a reader never sees half an archive.
        partial = target.with_name(f".{target.name}.partial")
        zipapp.create_archive(staging, partial, interpreter=INTERPRETER, compressed=True)
        os.replace(partial, target)
    return ["__main__.py", *members]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Build kvmprobe.pyz, kvmprobe as one file (Python 3.9+, ctypes).")
    parser.add_argument("-o", "--output", default="kvmprobe.pyz", help="where to write it (default: %(default)s)")
    args = parser.parse_args(argv)
    target = Path(args.output)
    members = build(target)
    sys.path.insert(0, str(PACKAGE.parent))
    from kvmprobe._version import __version__

    print(f"{target}: kvmprobe {__version__}, {len(members)} files, {target.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
