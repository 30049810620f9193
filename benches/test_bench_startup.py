"""Start-up cost: each command's whole process against ``python -c pass``, in CPU time.

Every row is a ratio of medians (issue #19): the child processes of all rows run in
alternation, round after round (``ROUNDS``), so a busy machine slows baseline and subjects
alike; each child's CPU time (user + system, its own children included: what ``wait4`` reports)
is taken, and each subject's median is divided by the median of ``python -c pass``.

``doctor`` does work no import explains: it runs the micro-guest (``kvmprobe.guest.run_checks``:
two guests under ``KVM_RUN`` in forked children). Its target is met or missed by the doctor
*less the run check's own cost*, measured in the same rounds as the CPU time of
``run_checks()`` less that of importing ``kvmprobe.guest``; the whole doctor is shown too.
``check --all`` reads the host's files and ``cpu`` creates a scratch VM and vCPU for the TSC
rate: those are part of their rows.

``import kvmprobe`` is also reported as the milliseconds it adds to ``python -c pass`` and, as
``python -X importtime`` gives it, cumulatively. The children run as an installed kvmprobe does,
with bytecode caches (a temporary ``PYTHONPYCACHEPREFIX``, whatever ``PYTHONDONTWRITEBYTECODE``
says in the calling shell: compiling every module at every start would measure the compiler).
In the suite's short mode every command runs once and its output is checked.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import pytest

ROUNDS = 30
IMPORT_TARGET_MS = 5.0

_IMPORTTIME = re.compile(r"^import time:\s+\d+\s+\|\s+(\d+)\s+\|\s*kvmprobe\s*$", re.MULTILINE)
_PROBE = "import kvmprobe; r = kvmprobe.probe(); print(r.api_version, r.backend)"
_RUN = "from kvmprobe.guest import run_checks; print(run_checks().ok)"

# key: (label, argv after the interpreter, target ratio to `python -c pass`)
SUBJECTS: Dict[str, Tuple[str, List[str], Optional[float]]] = {
    "pass": ("python -c pass", ["-c", "pass"], None),
    "has": ("kvmprobe has IMMEDIATE_EXIT", ["-m", "kvmprobe", "has", "IMMEDIATE_EXIT"], 2.0),
    "json": ("kvmprobe --json", ["-m", "kvmprobe", "--json"], 2.5),
    "dump": ("kvmprobe (the plain dump)", ["-m", "kvmprobe"], 2.5),
    "doctor": ("kvmprobe doctor", ["-m", "kvmprobe", "doctor"], None),
    "check": ("kvmprobe check --all", ["-m", "kvmprobe", "check", "--all"], 2.5),
    "cpu": ("kvmprobe cpu", ["-m", "kvmprobe", "cpu"], 2.5),
    "probe": ("import kvmprobe; kvmprobe.probe()", ["-c", _PROBE], 1.6),
    "import": ("import kvmprobe", ["-c", "import kvmprobe; print(kvmprobe.__version__)"], None),
    "guest": ("kvmprobe.guest.run_checks()", ["-c", _RUN], None),
    "guest_import": ("import kvmprobe.guest", ["-c", "import kvmprobe.guest"], None),
}


class Ran(NamedTuple):
    cpu: float  # seconds of CPU, user + system, the child's own children included
    returncode: int
    stdout: str
    stderr: str


def _run(argv: List[str], env: Dict[str, str]) -> Ran:
    """Run ``argv`` to its end; its CPU time from wait4 (a pipe's reader would reap it first)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except BaseException:
            child.kill()
            child.wait()
            raise
        child.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8
        out.seek(0)
        err.seek(0)
        return Ran(usage.ru_utime + usage.ru_stime, child.returncode, out.read(), err.read())


@pytest.fixture(scope="module")
def child_env(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """The children's environment: bytecode cached in a temporary prefix; no forced backend or device."""
    env = dict(os.environ)
    for name in ("KVMPROBE_BACKEND", "KVMPROBE_DEVICE", "PYTHONDONTWRITEBYTECODE", "NO_COLOR"):
        env.pop(name, None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    return env


@pytest.fixture(scope="module")
def runs(timing: bool, kvm_path: str, child_env: Dict[str, str]) -> Dict[str, List[Ran]]:
    """Every subject run ``ROUNDS`` times in alternation (once each in the short mode), after a
    round that writes the bytecode caches."""
    rounds = ROUNDS if timing else 1
    found: Dict[str, List[Ran]] = {key: [] for key in SUBJECTS}
    for round_ in range(rounds + (1 if timing else 0)):
        for key, (_, argv, _) in SUBJECTS.items():
            ran = _run([sys.executable, *argv], child_env)
            if timing and round_ == 0:
                continue  # the warm-up round: caches written, not counted
            found[key].append(ran)
    return found


def _median(runs: Dict[str, List[Ran]], key: str) -> float:
    return statistics.median(ran.cpu for ran in runs[key])


def _report(benchmark: Any, tag: Callable[..., None], runs: Dict[str, List[Ran]], key: str, **extra: Any) -> None:
    label, _, target = SUBJECTS[key]
    value = extra.pop("value", None)
    if value is None:
        value = _median(runs, key) / _median(runs, "pass")
    tag(benchmark, group="startup", role="measure", label=extra.pop("label", label), target=extra.pop("target", target),
        unit="ratio")  # fmt: skip
    benchmark.extra_info.update(
        value=value,
        baseline=f"python -c pass: {_median(runs, 'pass') * 1e3:.1f} ms",
        median_text=f"{extra.pop('median_s', _median(runs, key)) * 1e3:.1f} ms",
        rounds=len(runs[key]),
        **extra,
    )
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


def test_has(benchmark: Any, tag: Callable[..., None], runs: Dict[str, List[Ran]]) -> None:
    _report(benchmark, tag, runs, "has")
    last = runs["has"][-1]
    assert (last.returncode, last.stdout) == (0, "KVM_CAP_IMMEDIATE_EXIT: yes (1)\n"), last.stderr


def test_json(benchmark: Any, tag: Callable[..., None], runs: Dict[str, List[Ran]], kvm_path: str) -> None:
    _report(benchmark, tag, runs, "json")
    document = json.loads(runs["json"][-1].stdout)
    assert (document["schema"], document["device"], document["api_version"]) == ("kvmprobe-snapshot", kvm_path, 12)


def test_plain_dump(benchmark: Any, tag: Callable[..., None], runs: Dict[str, List[Ran]]) -> None:
    _report(benchmark, tag, runs, "dump")
    last = runs["dump"][-1]
    assert last.returncode == 0 and last.stdout.startswith("kvmprobe ") and "VMM READINESS" in last.stdout


def test_doctor_less_the_micro_guest(benchmark: Any, tag: Callable[..., None], runs: Dict[str, List[Ran]]) -> None:
    guest = _median(runs, "guest") - _median(runs, "guest_import")
    doctor = _median(runs, "doctor")
    _report(benchmark, tag, runs, "doctor", label="kvmprobe doctor, less the micro-guest's own cost", target=2.5,
            value=(doctor - guest) / _median(runs, "pass"), median_s=doctor - guest, micro_guest_ms=guest * 1e3)  # fmt: skip
    for key in ("doctor", "guest"):
        assert runs[key][-1].returncode in (0, 1), runs[key][-1].stderr  # a verdict, not an error
    assert "verdict:" in runs["doctor"][-1].stdout and "run" in runs["doctor"][-1].stdout


def test_doctor_whole(benchmark: Any, tag: Callable[..., None], runs: Dict[str, List[Ran]]) -> None:
    guest = _median(runs, "guest") - _median(runs, "guest_import")
    _report(benchmark, tag, runs, "doctor", label="kvmprobe doctor, the micro-guest's run included", target=None,
            micro_guest_ms=guest * 1e3)  # fmt: skip


def test_check_all(benchmark: Any, tag: Callable[..., None], runs: Dict[str, List[Ran]]) -> None:
    _report(benchmark, tag, runs, "check")
    last = runs["check"][-1]
    assert last.returncode in (0, 1) and "firecracker" in last.stdout.lower(), last.stderr


def test_cpu(benchmark: Any, tag: Callable[..., None], runs: Dict[str, List[Ran]]) -> None:
    _report(benchmark, tag, runs, "cpu")
    last = runs["cpu"][-1]
    assert last.returncode == 0 and last.stdout.startswith("CPU a guest gets from KVM"), last.stderr


def test_import_and_probe(benchmark: Any, tag: Callable[..., None], runs: Dict[str, List[Ran]]) -> None:
    _report(benchmark, tag, runs, "probe")
    assert runs["probe"][-1].stdout.split()[0] == "12"


def test_import_kvmprobe(benchmark: Any, tag: Callable[..., None], runs: Dict[str, List[Ran]]) -> None:
    added = (_median(runs, "import") - _median(runs, "pass")) * 1e3
    tag(benchmark, group="startup", role="measure", label="python -c 'import kvmprobe' (ms added)",
        target=IMPORT_TARGET_MS, unit="ms")  # fmt: skip
    benchmark.extra_info.update(value=added, baseline=f"python -c pass: {_median(runs, 'pass') * 1e3:.1f} ms",
                                median_text=f"{_median(runs, 'import') * 1e3:.1f} ms")  # fmt: skip
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*\n", runs["import"][-1].stdout)


def test_import_kvmprobe_importtime(
    benchmark: Any, tag: Callable[..., None], child_env: Dict[str, str], timing: bool
) -> None:
    tag(benchmark, group="importtime", role="measure", label="python -X importtime: kvmprobe cumulative",
        target=IMPORT_TARGET_MS, unit="ms")  # fmt: skip
    cumulative_us: List[int] = []
    rounds = ROUNDS // 2 if timing else 1
    for _ in range(rounds):
        stderr = _run([sys.executable, "-X", "importtime", "-c", "import kvmprobe"], child_env).stderr
        found = _IMPORTTIME.search(stderr)
        assert found is not None, stderr[-2000:]
        cumulative_us.append(int(found.group(1)))
    benchmark.extra_info["value"] = statistics.median(cumulative_us) / 1000
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert min(cumulative_us) > 0


@pytest.mark.parametrize("forced", ["ctypes"])
def test_cli_json_forced_backend_is_reported(forced: str, kvm_path: str, child_env: Dict[str, str]) -> None:
    # Not a timing: the backend the CLI reports is the one forced (the smoke run checks it).
    done = _run([sys.executable, "-m", "kvmprobe", "--json"], dict(child_env, KVMPROBE_BACKEND=forced))
    assert json.loads(done.stdout)["backend"] == forced
