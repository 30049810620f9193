"""The public API: ``__all__`` is sorted and complete, and every public function, class and method
of every public module (``kvmprobe`` and each ``kvmprobe.<name>`` without a leading underscore)
shows an example."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from types import ModuleType
from typing import Any, Dict, Iterator, Tuple

import pytest

import kvmprobe


def test_all_is_sorted_and_every_name_resolves() -> None:
    names = kvmprobe.__all__
    assert list(names) == sorted(names)
    for name in names:
        assert getattr(kvmprobe, name) is not None, name


def public_modules() -> Iterator[ModuleType]:
    """The facade and every module of the package without a leading underscore (what users import)."""
    yield kvmprobe
    for found in sorted(pkgutil.iter_modules(kvmprobe.__path__), key=lambda m: m.name):
        if not found.name.startswith("_"):
            yield importlib.import_module(f"kvmprobe.{found.name}")


def _public(module: ModuleType) -> Iterator[Tuple[str, Any]]:
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        item = getattr(module, name)
        if (inspect.isfunction(item) or inspect.isclass(item)) and getattr(item, "__module__", "").startswith(
            "kvmprobe"
        ):
            if name.startswith("pytest_"):  # pytest hooks are called by pytest, not users
                continue
            yield f"{module.__name__}.{name}", item


def _documented() -> Dict[str, Any]:
    """Each public function and class once (under the first public name it has)."""
    found: Dict[int, Tuple[str, Any]] = {}
    for module in public_modules():
        for name, item in _public(module):
            found.setdefault(id(item), (name, item))
    return dict(found.values())


def _members(cls: type) -> Iterator[Tuple[str, Any]]:
    """The public methods, properties, class and static methods a class defines itself."""
    for name, attr in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(attr, property):
            yield name, attr.fget
        elif isinstance(attr, (classmethod, staticmethod)):
            yield name, attr.__func__
        elif inspect.isfunction(attr):
            yield name, attr


def _methods() -> Dict[str, Tuple[Any, type]]:
    return {f"{name}.{member}": (function, item) for name, item in _documented().items()
            if inspect.isclass(item) and not issubclass(item, BaseException) for member, function in _members(item)}


DOCUMENTED = _documented()
METHODS = _methods()


def test_the_walk_sees_every_public_module() -> None:
    seen = {module.__name__ for module in public_modules()}
    assert {"kvmprobe.device", "kvmprobe.guest", "kvmprobe.confidential", "kvmprobe.profiles", "kvmprobe.compat",
            "kvmprobe.testing", "kvmprobe.pytest_plugin"} <= seen  # fmt: skip
    assert not any(name.split(".")[-1].startswith("_") for name in seen)
    assert "kvmprobe.device.VmFd.check_extension_raw" in METHODS and "kvmprobe.guest.Compute" in DOCUMENTED


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_public_callable_has_a_docstring_with_an_example(name: str) -> None:
    item = DOCUMENTED[name]
    doc = inspect.getdoc(item) or ""
    assert doc.strip(), f"{name} has no docstring"
    if inspect.isclass(item) and issubclass(item, BaseException):
        assert ">>>" in doc, f"{name}: no example"
        return
    assert "Example" in doc and ">>>" in doc, f"{name}: no 'Example:' with '>>>' lines"


@pytest.mark.parametrize("name", sorted(METHODS))
def test_public_method_has_an_example(name: str) -> None:
    """Its own ``>>>`` lines, or a line of its class's example that uses it (``.name``)."""
    function, cls = METHODS[name]
    if ">>>" in (inspect.getdoc(function) or ""):
        return
    shown = [line for line in (inspect.getdoc(cls) or "").splitlines() if line.strip().startswith((">>>", "..."))]
    member = name.rsplit(".", 1)[1]
    assert any(re.search(rf"\.{member}\b", line) for line in shown), f"{name}: no example, nor one in its class's"


def test_package_ships_type_information() -> None:
    import os

    assert os.path.exists(os.path.join(os.path.dirname(kvmprobe.__file__), "py.typed"))
