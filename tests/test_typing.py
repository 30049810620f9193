"""The type check is part of the suite: mypy --strict, for the newest Python and for 3.9."""

from __future__ import annotations

import os
from typing import List

import pytest

api = pytest.importorskip("mypy.api", reason="mypy is in the 'test' extra: pip install -e '.[test]'")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("extra", [[], ["--python-version", "3.9"]], ids=["default", "py39"])
def test_mypy_strict(extra: List[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # The configuration (strict, files, mypy_path) is in pyproject.toml, relative to the repo.
    monkeypatch.chdir(ROOT)
    stdout, stderr, status = api.run(
        ["--config-file", os.path.join(ROOT, "pyproject.toml"), "--no-incremental", *extra]
    )
    assert status == 0, stdout + stderr
