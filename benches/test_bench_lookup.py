"""Cached ``kvmprobe.has()`` / ``value()`` against a plain dict lookup.

After the first probe, ``has()`` and ``value()`` read the cached result. The baseline is the
least any function-shaped query can cost: a Python function whose body is one dict lookup
(``lookup(key)``), called the same way. The string spellings are measured too: they are what
most callers write.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

import pytest

import kvmprobe
from kvmprobe.caps import Cap

TARGET = 1.5

# A call takes tens of nanoseconds, near this machine's timer resolution: each round times many
# calls (the same number for the baseline and the subjects), after warm-up rounds.
_ITERATIONS, _ROUNDS, _WARMUP = 2000, 200, 5


def _timed(benchmark: Any, function: Callable[[Any], Any], key: Any) -> Any:
    return benchmark.pedantic(function, args=(key,), iterations=_ITERATIONS, rounds=_ROUNDS, warmup_rounds=_WARMUP)


@pytest.fixture
def probed(kvm_path: str) -> kvmprobe.ProbeResult:
    """The cached probe of the real device (the bench measures reads of it)."""
    return kvmprobe.probe()


def test_dict_lookup(benchmark: Any, tag: Callable[..., None], probed: kvmprobe.ProbeResult) -> None:
    tag(benchmark, group="lookup", role="baseline", label="lookup(cap): a function returning table[cap]")
    table: Dict[Cap, bool] = {cap: value > 0 for cap, value in probed.values.items()}

    def lookup(key: Cap) -> bool:
        return table[key]

    assert _timed(benchmark, lookup, Cap.IMMEDIATE_EXIT) is (probed.values[Cap.IMMEDIATE_EXIT] > 0)


@pytest.mark.parametrize(
    ("function", "key"),
    [
        ("has", Cap.IMMEDIATE_EXIT),
        ("value", Cap.NR_MEMSLOTS),
        ("has", 136),
        ("has", "IMMEDIATE_EXIT"),
        ("value", "KVM_CAP_NR_MEMSLOTS"),
    ],
    ids=["has(Cap)", "value(Cap)", "has(int)", "has(str)", "value(str)"],
)
def test_cached_query(
    benchmark: Any, tag: Callable[..., None], probed: kvmprobe.ProbeResult, function: str, key: Any
) -> None:
    shown = f"Cap.{key.name}" if isinstance(key, Cap) else repr(key)
    tag(benchmark, group="lookup", role="subject", label=f"kvmprobe.{function}({shown})", target=TARGET)
    query = getattr(kvmprobe, function)
    answer = _timed(benchmark, query, key)
    member = Cap.lookup(key)
    expected = probed.values[member]
    assert answer == (expected > 0 if function == "has" else expected)
    assert kvmprobe.probe() is probed  # answered from the cache: no second probe
