"""Hardening tests: faults, concurrency, descriptors, hostile input, least privilege.

At the end of the session the cases each test tried and the problems it found are written as
JSON to ``$KVMPROBE_HARDENING_TALLY`` when that variable is set (README's figures table).
"""

from __future__ import annotations

import json
import os

import pytest

from hardening._faultlib import TALLY


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("KVMPROBE_HARDENING_TALLY")
    if target and TALLY:
        with open(target, "w", encoding="utf-8") as handle:
            json.dump({name: {"cases": c, "failures": f} for name, (c, f) in sorted(TALLY.items())}, handle, indent=1)
