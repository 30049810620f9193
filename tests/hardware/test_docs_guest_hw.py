"""Every command in docs/guest.md runs, and prints what the page shows (timings compared loosely).

The page shows a kvm_pvm host with an AMD CPU (the development machine): elsewhere the figures,
the CPUID differences and the verdicts are other ones, and the test skips with the reason.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from _docs import console_steps

pytestmark = pytest.mark.kvm

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "guest.md"

# What differs from run to run: durations, ratios, times, the exit cost's "far off" clause (the
# median moves around 20 µs on a loaded machine), CPUID bit values and floating-point gauges.
LOOSE = [
    (re.compile(r"\d[\d,]*(\.\d+)? (ns|µs|ms|s)\b"), "<t>"),
    (re.compile(r"\b\d[\d,]*x\b"), "<n>x"),
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"), "<time>"),
    (re.compile(r", normal on VT-x/AMD-V is about <t>"), ""),
    (re.compile(r"(differs from KVM_GET_SUPPORTED_CPUID in).*"), r"\1 <bits>"),
    (re.compile(r"\((\d+) registers differ\)"), "(<k> registers differ)"),
    (re.compile(r"^(kvm_run_\w+) \S+$"), r"\1 <v>"),
    (re.compile(r"Linux \S+ \(x86_64\)"), "Linux <release> (x86_64)"),
]


def loose(lines: List[str]) -> List[str]:
    out = []
    for line in lines:
        for pattern, replacement in LOOSE:
            line = pattern.sub(replacement, line)
        out.append(line.rstrip())
    return out


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
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python"  # a script, not a symlink: a venv is found from the interpreter's own path
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    steps = console_steps(PAGE.read_text())
    assert len(steps) >= 8
    for command, shown in steps:
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=300)  # fmt: skip
        assert loose(done.stdout.splitlines()) == loose(shown), command


def test_the_python_example_prints_what_the_page_shows() -> None:
    if platform.machine() != "x86_64":
        pytest.skip(f"the micro-guest runs x86 code; this is {platform.machine()}")
    code, output = re.findall(r"```python\n(.*?)```\n\n```\n(.*?)```", PAGE.read_text(), re.S)[0]
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == output
