"""The type check is part of the suite: mypy --strict, for this Python and for 3.9.

The 3.9 check covers what users run (the package and the examples). It leaves out what is
checked against the installed pytest (the tests, the benches, kvmprobe.pytest_plugin and the
example test file examples/test_*.py): pytest 9 requires Python 3.10, and mypy cannot parse its
source for 3.9.
"""

from __future__ import annotations

import os
from typing import List

import pytest

api = pytest.importorskip("mypy.api", reason="mypy is in the 'test' extra: pip install -e '.[test]'")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    "extra",
    [[], ["--python-version", "3.9", "--exclude", r"pytest_plugin\.py$|examples/test_[^/]*\.py$", "src", "examples"]],
    ids=["default", "py39-package"],
)
def test_mypy_strict(extra: List[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # The configuration (strict, files, mypy_path) is in pyproject.toml, relative to the repo.
    monkeypatch.chdir(ROOT)
    stdout, stderr, status = api.run(
        ["--config-file", os.path.join(ROOT, "pyproject.toml"), "--no-incremental", *extra]
    )
    assert status == 0, stdout + stderr
