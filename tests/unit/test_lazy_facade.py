"""The lazy facade (PEP 562): 'import kvmprobe' loads nothing heavy; every public name still works.

What ``import kvmprobe`` loads is checked in fresh child processes (this test process has long
imported everything), by module names rather than by time.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys
from typing import Dict, List

import kvmprobe

INIT = pathlib.Path(kvmprobe.__file__)

#: Stdlib modules that 'import kvmprobe' must leave to the code that needs them.
HEAVY = ["argparse", "ctypes", "dataclasses", "enum", "json", "platform", "re", "subprocess", "threading", "typing"]


def _child(code: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)


def _type_checking_imports() -> Dict[str, str]:
    """Public name -> submodule, as imported under ``if TYPE_CHECKING:`` in __init__.py."""
    tree = ast.parse(INIT.read_text())
    (block,) = [node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"]
    names: Dict[str, str] = {}
    for node in block.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = node.module
    return names


def test_type_checkers_runtime_and_all_agree() -> None:
    seen_by_mypy = _type_checking_imports()
    assert seen_by_mypy == kvmprobe._EXPORTS
    assert set(kvmprobe.__all__) == set(kvmprobe._EXPORTS) | {"__version__", "backend"}
    assert kvmprobe.__all__ == sorted(kvmprobe.__all__)


def test_import_loads_only_the_facade() -> None:
    done = _child(
        "import sys; before = set(sys.modules); import kvmprobe; loaded = sorted(set(sys.modules) - before); "
        "print(' '.join(loaded))"
    )
    assert done.returncode == 0, done.stderr
    loaded: List[str] = done.stdout.split()
    assert [name for name in loaded if name.startswith("kvmprobe")] == ["kvmprobe", "kvmprobe._version"]
    assert not set(HEAVY) & set(loaded), loaded


def test_every_public_name_resolves_in_a_fresh_process() -> None:
    done = _child(
        "import importlib, kvmprobe\n"
        "for name, where in kvmprobe._EXPORTS.items():\n"
        "    value = getattr(kvmprobe, name)\n"
        "    assert value is getattr(importlib.import_module('kvmprobe.' + where), name), name\n"
        "namespace = {}\n"
        "exec('from kvmprobe import *', namespace)\n"
        "assert set(kvmprobe.__all__) <= set(namespace), set(kvmprobe.__all__) - set(namespace)\n"
        "print('ok')\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


def test_one_name_loads_only_what_it_needs() -> None:
    done = _child("import sys, kvmprobe; kvmprobe.Cap; print('\\n'.join(sorted(sys.modules)))")
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert "kvmprobe.caps" in loaded
    assert not {"kvmprobe.diagnosis", "kvmprobe.profiles", "kvmprobe.probing", "argparse", "json"} & loaded


def test_no_public_name_is_also_a_submodule_name() -> None:
    # The import system binds a submodule on its package when it loads; a public function of
    # the same name (kvmprobe.probe and a module probe.py) would then depend on import order.
    import os

    import kvmprobe

    package = os.path.dirname(kvmprobe.__file__)
    clashes = [name for name in kvmprobe.__all__
               if os.path.exists(os.path.join(package, name + ".py")) or os.path.isdir(os.path.join(package, name))]
    assert clashes == []


def test_submodules_are_reachable_as_attributes() -> None:
    done = _child("import kvmprobe; print(kvmprobe.caps.Cap.IMMEDIATE_EXIT.c_name)")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "KVM_CAP_IMMEDIATE_EXIT\n"


def test_unknown_attribute() -> None:
    assert not hasattr(kvmprobe, "no_such_name")
    done = _child("import kvmprobe; kvmprobe.no_such_name")
    assert "AttributeError: module 'kvmprobe' has no attribute 'no_such_name'" in done.stderr


def test_dir_lists_the_public_names() -> None:
    assert set(kvmprobe.__all__) <= set(dir(kvmprobe))
