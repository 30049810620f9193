"""The public API: ``__all__`` is sorted and complete, and every public callable shows an example."""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any, Iterator, Tuple

import pytest

import kvmprobe
from kvmprobe import emulate, pytest_plugin, testing


def test_all_is_sorted_and_every_name_resolves() -> None:
    names = kvmprobe.__all__
    assert list(names) == sorted(names)
    for name in names:
        assert getattr(kvmprobe, name) is not None, name


def _public(module: ModuleType) -> Iterator[Tuple[str, Any]]:
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        item = getattr(module, name)
        if (inspect.isfunction(item) or inspect.isclass(item)) and getattr(item, "__module__", "").startswith(
            "kvmprobe"
        ):
            yield f"{module.__name__}.{name}", item


def _documented() -> Iterator[Tuple[str, Any]]:
    for module in (kvmprobe, testing, emulate):
        yield from _public(module)
    for name, item in _public(pytest_plugin):
        if not name.split(".")[-1].startswith("pytest_"):  # pytest hooks are called by pytest, not users
            yield name, item


@pytest.mark.parametrize("name, item", sorted(dict(_documented()).items()))
def test_public_callable_has_a_docstring_with_an_example(name: str, item: Any) -> None:
    doc = inspect.getdoc(item) or ""
    assert doc.strip(), f"{name} has no docstring"
    if inspect.isclass(item) and issubclass(item, BaseException):
        assert ">>>" in doc, f"{name}: no example"
        return
    assert "Example" in doc and ">>>" in doc, f"{name}: no 'Example:' with '>>>' lines"


def test_package_ships_type_information() -> None:
    import os

    assert os.path.exists(os.path.join(os.path.dirname(kvmprobe.__file__), "py.typed"))
