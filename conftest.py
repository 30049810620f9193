"""Suite-wide hooks, for every test path (tests/, the doctests under src/, benches/).

A skip names the place in this repository it belongs to: pytest reports a doctest whose
examples are all ``+SKIP`` (hardware-only examples) at its own doctest.py inside site-packages,
so such a skip is re-located to the docstring's module and line.
"""

from __future__ import annotations

import os
from typing import Generator

import pytest

_ROOT = os.path.dirname(os.path.abspath(__file__))


def _inside(path: str) -> bool:
    full = os.path.abspath(os.path.join(_ROOT, path))
    return full.startswith(_ROOT + os.sep) and f"{os.sep}site-packages{os.sep}" not in full


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and isinstance(report.longrepr, tuple) and not _inside(str(report.longrepr[0])):
        path, lineno, _ = item.location
        report.longrepr = (path, (lineno or 0) + 1, report.longrepr[2])
