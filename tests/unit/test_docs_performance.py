"""docs/performance.md: every console step prints what the page shows.

The page's table is ``benches/report.py``'s own rendering of one run, whose raw figures are kept
beside the page (``docs/performance-run.json``); the step re-renders them, so the table on the
page is that run's, unedited. Runs anywhere: nothing is timed here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from _docs import console_steps

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "performance.md"


def test_the_page_shows_the_saved_run_as_report_py_renders_it() -> None:
    steps = console_steps(PAGE.read_text(encoding="utf-8"))
    assert steps, "the page has no console step"
    for command, shown in steps:
        assert command.startswith("python benches/report.py --from docs/"), command
        done = subprocess.run([sys.executable, *command.split()[1:]], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert [line.rstrip() for line in done.stdout.splitlines()] == [line.rstrip() for line in shown]
