"""kvmprobe's QEMU model table and ``-cpu`` values against the installed QEMU (Debian's 7.2).

* ``qemu-system-x86_64 -cpu help`` lists exactly the model versions (and aliases) the table says
  QEMU 7.2 has;
* QMP ``query-cpu-model-expansion`` (type full, TCG, no machine) of every one of them turns on
  exactly the table's features, plus ``hypervisor`` (always on, cpu.c) and less ``vme`` (TCG's
  only default property, qemu/qemu@v7.2.0 target/i386/tcg/tcg-cpu.c ``tcg_default_props``);
* under KVM on this host, with ``enforce`` (QEMU refuses any feature the host cannot give): each
  named model of this host's vendor starts once kvmprobe's ``-feature`` list for this host is
  applied, and does not start with the first of them left out; the ``-cpu`` value
  ``kvmprobe baseline --format qemu`` gives (or its closest model) starts, and adding a feature
  the host lacks makes it refuse.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any, Dict, List, Tuple

import pytest

import kvmprobe
from kvmprobe import compat
from kvmprobe._baseline_formats import qemu_names, qemu_plans
from kvmprobe._qemu_models import FEATURE_BITS, MODELS, MSR_FEATURE_BITS

QEMU = "qemu-system-x86_64"
pytestmark = pytest.mark.skipif(shutil.which(QEMU) is None, reason=f"{QEMU} is not installed (Debian: qemu-system-x86)")


def qemu_version() -> Tuple[int, ...]:
    out = subprocess.run([QEMU, "--version"], capture_output=True, text=True, timeout=60, check=True).stdout
    match = re.search(r"QEMU emulator version (\d+)\.(\d+)\.(\d+)", out)
    assert match, out
    return tuple(int(part) for part in match.groups())


def require_7_2() -> None:
    version = qemu_version()
    if version[:2] != (7, 2):
        pytest.skip(f"the table's 7.2 list is compared with QEMU 7.2; this is {'.'.join(map(str, version))}")


def test_cpu_help_lists_the_models_of_qemu_7_2() -> None:
    require_7_2()
    out = subprocess.run([QEMU, "-cpu", "help"], capture_output=True, text=True, timeout=60, check=True).stdout
    listed = {line.split()[1] for line in out.splitlines() if line.startswith("x86 ")}
    versions = {name for name in listed if re.search(r"-v\d+$", name)}
    aliases = {re.search(r"\(alias of (\S+)\)", line).group(1) and line.split()[1]  # type: ignore[union-attr]
               for line in out.splitlines() if "(alias of " in line}  # fmt: skip
    assert versions == {m[0] for m in MODELS if m[6]}
    assert aliases == {m[1] for m in MODELS if m[6] and m[1]}


def qmp(argv: List[str], commands: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    script = [{"execute": "qmp_capabilities"}, *commands, {"execute": "quit"}]
    done = subprocess.run([QEMU, *argv, "-nodefaults", "-display", "none", "-qmp", "stdio"],
                          input="".join(json.dumps(c) + "\n" for c in script), capture_output=True, text=True,
                          timeout=180, check=False)  # fmt: skip
    replies = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return [r["return"] for r in replies if isinstance(r.get("return"), dict) and r["return"]]


def test_every_model_expands_to_the_tables_features() -> None:
    require_7_2()
    models = [m for m in MODELS if m[6]]
    asks = [{"execute": "query-cpu-model-expansion", "arguments": {"type": "full", "model": {"name": m[0]}}}
            for m in models]  # fmt: skip
    expanded = qmp(["-machine", "none", "-accel", "tcg"], asks)
    assert len(expanded) == len(models)
    for model, reply in zip(models, expanded):
        props = reply["model"]["props"]
        on = {name for name, value in props.items() if value is True and name in FEATURE_BITS}
        assert on == (set(model[7].split()) | {"hypervisor"}) - {"vme"}, model[0]
        msr = {name for name, value in props.items() if value is True and name in MSR_FEATURE_BITS}
        assert msr == set(model[8].split()), model[0]


# --- under KVM, on this host ---------------------------------------------------------------------


def starts(cpu: str) -> Tuple[bool, str]:
    """Whether QEMU starts (stopped, -S) with ``-cpu cpu,enforce`` under KVM on this host."""
    done = subprocess.run([QEMU, "-machine", "q35", "-accel", "kvm", "-m", "64", "-S", "-cpu", f"{cpu},enforce",
                           "-nodefaults", "-display", "none", "-qmp", "stdio"],
                          input='{"execute": "qmp_capabilities"}\n{"execute": "quit"}\n', capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    return done.returncode == 0, done.stderr.strip()[-400:]


def live_baseline() -> compat.Baseline:
    result = kvmprobe.probe(vm=True, cpu=True, refresh=True)
    if result.cpu is None or result.arch != "x86_64":
        pytest.skip("no x86 CPU data on this host")
    return compat.baseline([result])


# IA32_ARCH_CAPABILITIES (CPUID 7.0 EDX[29] and its MSR bits): QEMU 7.2 writes MSR 0x10a at vCPU
# creation, and on a PVM host (kvm_pvm) KVM_SET_MSRS refuses it whatever the model ('failed to set
# MSR 0x10a', an assertion; -cpu host fails the same way), so the CPUID flags are checked without it.
_MSR_NAMES = set(MSR_FEATURE_BITS) | {"arch-capabilities"}


@pytest.mark.kvm
def test_each_model_starts_with_the_features_kvmprobe_removes_and_not_without() -> None:
    base = live_baseline()
    version = qemu_version()
    every, _ = qemu_names(base)
    plans = qemu_plans(base, min(version, (10, 2, 2)), every)
    assert plans, f"no named model of {base.vendor}"
    for name, _add, remove in plans:
        minus = [f for f in remove if f not in _MSR_NAMES]
        ok, why = starts(",".join([name] + [f"-{f}" for f in minus]))
        assert ok, (name, minus, why)
        if minus:
            ok, why = starts(",".join([name] + [f"-{f}" for f in minus[1:]]))
            assert not ok and minus[0] in why, (name, minus[0], why)


@pytest.mark.kvm
def test_the_baseline_argument_starts_and_a_feature_more_does_not() -> None:
    base = live_baseline()
    cpu = compat.qemu_cpu(base, ".".join(map(str, min(qemu_version(), (10, 2, 2)))))
    arg = cpu.arg if cpu.model is not None else (cpu.closest[1] if cpu.closest else cpu.arg)
    words = [w for w in arg.split(",") if w.lstrip("+-") not in _MSR_NAMES]
    ok, why = starts(",".join(words))
    assert ok, (words, why)
    every, _ = qemu_names(base)
    lacking = next(name for name in ("avx512f", "avx2", "sse4.2", "pni", "vaes", "sha-ni") if name not in every)
    ok, why = starts(",".join(words + [f"+{lacking}"]))
    assert not ok and lacking in why, why
