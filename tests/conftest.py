"""Shared test fixtures. Unit tests never touch /dev/kvm; hardware tests are marked ``kvm``."""

from __future__ import annotations

from typing import Any, Dict, Iterator

import pytest

from kvmprobe import probing


@pytest.fixture(autouse=True)
def _fresh_probe_cache() -> Iterator[None]:
    """Every test starts and ends with an empty probe cache (no result leaks between tests)."""
    probing._clear_cache()
    yield
    probing._clear_cache()


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace: Dict[str, Any]) -> None:
    import kvmprobe
    from kvmprobe.caps import Cap

    doctest_namespace["kvmprobe"] = kvmprobe
    doctest_namespace["Cap"] = Cap
