"""Every command in docs/guest.md runs, and prints what the page shows (timings compared loosely).

The page shows a kvm_pvm host with an AMD CPU (the development machine): elsewhere the figures,
the CPUID differences and the verdicts are other ones, and the test skips with the reason.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

import _docs

pytestmark = pytest.mark.kvm

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "guest.md"

# What differs from run to run besides _docs.VARIES (times, ratios): the exit cost's "far off"
# clause (the median moves around 20 µs on a loaded machine), the CPUID bits a PVM guest sees
# changed, the floating-point gauges, and the kernel release.
LOOSE = [
    (r", normal on VT-x/AMD-V is about [\d.,]+ ?(?:ns|µs|ms|s)\b", ""),
    (r"(differs from KVM_GET_SUPPORTED_CPUID in).*", r"\1 <bits>"),
    (r"^(kvm_run_\w+) \S+$", r"\1 <v>"),
    (r"Linux \S+ \(x86_64\)", "Linux <release> (x86_64)"),
]


def loose(lines: List[str]) -> List[str]:
    return _docs.normal(lines, LOOSE)


def needs_the_pages_host() -> None:
    if platform.machine() != "x86_64":
        pytest.skip(f"the page shows an x86_64 host; this is {platform.machine()}")
    if not os.path.isdir("/sys/module/kvm_pvm"):
        pytest.skip("the page shows a kvm_pvm (PVM) host; this host's KVM is another backend")
    vendor = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("vendor_id")), "")  # fmt: skip
    if vendor != "AuthenticAMD":
        pytest.skip(f"the page shows an AuthenticAMD CPU (its CPUID differences are that CPU's); this is {vendor}")


def test_every_console_command_prints_what_the_page_shows(tmp_path: Path) -> None:
    needs_the_pages_host()
    env = _docs.scratch(tmp_path)
    steps = _docs.console_steps(PAGE.read_text())
    assert len(steps) >= 8
    for command, shown in steps:
        assert loose(_docs.run_console(command, tmp_path, env)) == loose(shown), command


def test_the_python_example_prints_what_the_page_shows() -> None:
    if platform.machine() != "x86_64":
        pytest.skip(f"the micro-guest runs x86 code; this is {platform.machine()}")
    code, output = _docs.python_examples(PAGE.read_text())[0]
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == output
