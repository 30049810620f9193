"""``check --installed`` and ``check qemu@VERSION`` against the QEMU installed here, really started.

The test reads QEMU's release itself (``qemu-system-<arch> --version``) and starts QEMU the way
an operator would, ``-accel kvm -machine q35 -display none -nodefaults -S -qmp stdio``, asking
``query-kvm`` over QMP: kvmprobe's verdict must be what QEMU does. With capabilities hidden
(``kvmprobe emulate --mask``, which answers 0 to QEMU's KVM_CHECK_EXTENSION and nothing else),
a recorded copy of this host with the same capabilities at 0 must get the same verdict as
QEMU's start. Skipped where QEMU is not installed (CI installs Debian's qemu-system-x86).
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from kvmprobe import _seccomp

pytestmark = pytest.mark.kvm

QEMU = f"qemu-system-{platform.machine()}"
ARGS = ["-accel", "kvm", "-machine", "q35", "-display", "none", "-nodefaults", "-S", "-qmp", "stdio"]
QMP = '{"execute":"qmp_capabilities"}\n{"execute":"query-kvm"}\n{"execute":"quit"}\n'

# QEMU's releases, grouped as its source groups what it refuses (test-local, from the trees:
# v7.2.0's lists are 3+3 plus IRQ_ROUTING apart; 8.0 drops the userspace APIC; 8.2.0 grows the
# lists to 18 (126e7f780367 and siblings)): the range kvmprobe must pick for a version.
QEMU_RANGES = [((7, 2), "7.2.0 to 7.x"), ((8, 0), "8.0.0 to 8.1.x"), ((8, 2), "8.2.0 to 9.1.x"),
               ((9, 2), "9.2.0 to 9.x"), ((10, 0), "10.0.0 to 10.0.x"), ((10, 1), "10.1.0 to 10.2.x")]


def installed_qemu() -> Tuple[str, str]:
    """The QEMU binary on PATH and the release it reports, read here; skip where there is none."""
    if platform.machine() != "x86_64":
        pytest.skip(f"the machine q35 is x86_64's; this is {platform.machine()}")
    path = shutil.which(QEMU)
    if path is None:
        pytest.skip(f"{QEMU} is not installed here (Debian: apt-get install qemu-system-x86)")
    first = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60).stdout.splitlines()[0]
    match = re.match(r"QEMU emulator version (\d+)\.(\d+)\.(\d+)", first)
    assert match, first
    return path, ".".join(match.groups())


def expected_range(version: str) -> str:
    major_minor = tuple(int(part) for part in version.split(".")[:2])
    found = [label for start, label in QEMU_RANGES if start <= major_minor]
    if not found or major_minor > (10, 2):
        pytest.skip(f"QEMU {version} is outside the releases this test knows")
    return found[-1]


def kvmprobe(*args: str, timeout: float = 120) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "kvmprobe", *args], capture_output=True, text=True, timeout=timeout)


def qemu_starts(path: str, mask: Optional[str] = None) -> bool:
    """Whether QEMU starts with KVM (query-kvm says enabled) and exits 0 after 'quit'."""
    argv = [path, *ARGS]
    if mask is not None:
        argv = [sys.executable, "-m", "kvmprobe", "emulate", "--mask", mask, "--", *argv]
    done = subprocess.run(argv, input=QMP, capture_output=True, text=True, timeout=120)
    replies = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    kvm = [r["return"] for r in replies if isinstance(r.get("return"), dict) and "enabled" in r["return"]]
    return done.returncode == 0 and kvm == [{"enabled": True, "present": True}]


def test_check_installed_finds_qemu_reads_its_release_and_uses_that_range() -> None:
    path, version = installed_qemu()
    done = kvmprobe("check", "--installed", "--json")
    assert done.returncode in (0, 1), done.stderr
    doc = json.loads(done.stdout)
    found = [item for item in doc["installed"] if item["vmm"] == "qemu"]
    assert found and found[0]["binary"] == path and found[0]["version"] == version
    assert found[0]["range"] == expected_range(version) and found[0]["problem"] is None
    verdict = next(v for v in doc["vmms"] if v["vmm"] == "qemu")
    assert verdict["installed"]["binary"] == path
    assert (verdict["profile"]["version"], verdict["profile"]["versions"]) == (version, expected_range(version))
    text = kvmprobe("check", "--installed").stdout
    assert f"QEMU {version} [qemu {expected_range(version)}, x86_64]" in text
    assert f"  installed: {path}: QEMU emulator version {version}" in text


def test_the_verdict_is_what_qemu_does_here() -> None:
    path, version = installed_qemu()
    verdict = json.loads(kvmprobe("check", f"qemu@{version}", "--json").stdout)["vmms"][0]
    assert verdict["ready"] is qemu_starts(path), verdict["summary"]


# Capabilities the installed release refuses without, and ones it does without, by its source.
# For QEMU 7.2: MP_STATE is listed (kvm.c:83-88), IRQ_ROUTING refused apart (kvm.c:2484-2487),
# MCE needed by the default CPU model's MSRs; IRQCHIP and IOEVENTFD_ANY_LENGTH it falls back from.
MASKED = ["MP_STATE", "IRQ_ROUTING", "MCE", "IRQCHIP", "IOEVENTFD_ANY_LENGTH"]


@pytest.mark.parametrize("cap", MASKED)
def test_with_a_capability_hidden_the_verdict_is_still_what_qemu_does(tmp_path: Path, cap: str) -> None:
    path, version = installed_qemu()
    if "errno" not in _seccomp.actions_available().split():
        pytest.skip("this kernel has no seccomp filters, so 'kvmprobe emulate' cannot hide a capability")
    recorded = kvmprobe("snapshot", "--vm", "-o", str(tmp_path / "here.json"))
    assert recorded.returncode == 0, recorded.stderr
    doc: Dict[str, Any] = json.loads((tmp_path / "here.json").read_text())
    rows: List[Dict[str, Any]] = [r for r in doc["capabilities"] if r["name"] == f"KVM_CAP_{cap}"]
    assert len(rows) == 1
    rows[0].update({"value": 0, "vm_value": 0})
    (tmp_path / "masked.json").write_text(json.dumps(doc))
    verdict = json.loads(kvmprobe("check", f"qemu@{version}", "--snapshot", str(tmp_path / "masked.json"), "--json")
                         .stdout)["vmms"][0]
    assert verdict["ready"] is qemu_starts(path, mask=cap), (cap, verdict["summary"])
