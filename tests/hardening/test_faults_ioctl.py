"""Faults at the ioctl layer: every errno at every call, through the library and every command.

A :class:`FaultBackend` fails one call (open, close, KVM_GET_API_VERSION, KVM_CHECK_EXTENSION
for one capability, KVM_CREATE_VM, KVM_CHECK_EXTENSION on the VM fd) with one errno. The
library must return the right result or raise the documented ``KvmError`` subclass (the
expected class for each pair is written out below, not taken from ``device.py``); every
command must exit with the project's code, print at most one line on stderr and never a
traceback; EINTR must be retried; a failed capability query must be reported as failed in
every output, never as 0; and no fd may be left open.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple, Type

import pytest

from hardening._faultlib import (
    ERRNOS,
    PROBED_CAP,
    Fault,
    FaultBackend,
    errno_value,
    recorded_host_backend,
    tally,
)
from kvmprobe import (
    CapabilityQueryFailed,
    KvmBusy,
    KvmError,
    KvmIoctlError,
    KvmNotFound,
    KvmPermissionDenied,
    NotAKvmDevice,
    ProbeResult,
    probe,
)
from kvmprobe._cli import main
from kvmprobe.caps import Cap
from kvmprobe.diagnosis import Status, diagnose

# What each (call, errno) must raise, written from the errno semantics (open(2), ioctl(2) and
# Documentation/virt/kvm/api.rst), independently of device.py's mapping.
OPEN_RAISES: Dict[str, Type[KvmError]] = {
    "EBADF": KvmIoctlError,
    "ENOTTY": KvmIoctlError,
    "EINVAL": KvmIoctlError,
    "EFAULT": KvmIoctlError,
    "ENOMEM": KvmIoctlError,
    "EIO": KvmIoctlError,
    "EPERM": KvmPermissionDenied,  # e.g. a device cgroup refusing the node
    "EACCES": KvmPermissionDenied,
    "ENOENT": KvmNotFound,
    "ENODEV": KvmNotFound,
    "ENXIO": KvmNotFound,
}
API_VERSION_RAISES: Dict[str, Type[KvmError]] = {
    "EBADF": KvmIoctlError,
    "ENOTTY": NotAKvmDevice,  # the fd is no KVM device
    "EINVAL": NotAKvmDevice,
    "EFAULT": KvmIoctlError,
    "ENOMEM": KvmIoctlError,
    "EIO": KvmIoctlError,
    "EPERM": KvmPermissionDenied,  # seccomp/SELinux refusing KVM ioctls
}
CREATE_VM_RAISES: Dict[str, Type[KvmError]] = {
    "EBADF": KvmIoctlError,
    "ENOTTY": KvmIoctlError,
    "EINVAL": KvmIoctlError,  # e.g. a VM type this kernel does not know
    "EFAULT": KvmIoctlError,
    "ENOMEM": KvmIoctlError,
    "EIO": KvmIoctlError,
    "EPERM": KvmPermissionDenied,
    "EBUSY": KvmBusy,  # another hypervisor holds VT-x/AMD-V
}
FAILING = [name for name in ERRNOS if name != "EINTR"]


def _baseline(vm: bool) -> ProbeResult:
    return probe(backend=recorded_host_backend(), vm=vm, refresh=True)


def _same_answers(a: ProbeResult, b: ProbeResult) -> bool:
    return (
        dict(a.values) == dict(b.values)
        and dict(a.errors) == dict(b.errors)
        and (None if a.vm_values is None else dict(a.vm_values)) == (None if b.vm_values is None else dict(b.vm_values))
        and dict(a.vm_errors) == dict(b.vm_errors)
        and a.api_version == b.api_version
    )


# How a message may name an errno besides its symbol: in words.
_IN_WORDS = {"EPERM": "permission denied", "EACCES": "permission denied", "ENOENT": "does not exist"}


def _says(text: str, name: str) -> bool:
    """Whether ``text`` names the errno ``name``: its symbol, its strerror, or plain words."""
    lowered = text.lower()
    words = _IN_WORDS.get(name)
    return name in text or os.strerror(errno_value(name)).lower() in lowered or (words is not None and words in lowered)


def _one_line(err: BaseException) -> bool:
    text = str(err)
    return bool(text) and "\n" not in text


# --- the library ---------------------------------------------------------------------------


@pytest.mark.parametrize("vm", [False, True], ids=["system-fd", "vm"])
def test_every_errno_at_open_and_api_version_raises_its_documented_error(vm: bool) -> None:
    problems: List[str] = []
    cases = 0
    for op, table in (("open", OPEN_RAISES), ("KVM_GET_API_VERSION", API_VERSION_RAISES)):
        for name, expected in table.items():
            cases += 1
            backend = FaultBackend(recorded_host_backend(), [Fault(op, errno_value(name))])
            try:
                result = probe(backend=backend, vm=vm, refresh=True)
                problems.append(f"{op} {name}: returned {result!r} instead of raising")
            except KvmError as err:
                if type(err) is not expected:
                    problems.append(f"{op} {name}: {type(err).__name__}, expected {expected.__name__}")
                if err.errno != errno_value(name) or not _says(str(err), name) or not _one_line(err):
                    problems.append(f"{op} {name}: unclear message {str(err)!r} (errno {err.errno})")
            if backend.open_fds:
                problems.append(f"{op} {name}: fds left open {backend.open_fds}")
    tally("ioctl faults: library", cases, len(problems))
    assert not problems, "\n".join(problems)


def test_every_errno_at_create_vm_raises_only_when_a_vm_was_asked_for() -> None:
    problems: List[str] = []
    cases = 0
    plain = _baseline(vm=False)
    for name, expected in CREATE_VM_RAISES.items():
        cases += 2
        backend = FaultBackend(recorded_host_backend(), [Fault("KVM_CREATE_VM", errno_value(name))])
        result = probe(backend=backend, refresh=True)  # vm=False: KVM_CREATE_VM is never issued
        if not _same_answers(result, plain) or any(op == "KVM_CREATE_VM" for op, _ in backend.calls):
            problems.append(f"KVM_CREATE_VM {name}: a probe without vm=True was affected")
        try:
            probe(backend=backend, vm=True, refresh=True)
            problems.append(f"KVM_CREATE_VM {name}: vm=True returned a result")
        except KvmError as err:
            if type(err) is not expected or not _says(str(err), name) or not _one_line(err):
                problems.append(f"KVM_CREATE_VM {name}: {type(err).__name__} {str(err)!r}, expected {expected.__name__}")
        if backend.open_fds:
            problems.append(f"KVM_CREATE_VM {name}: fds left open {backend.open_fds}")
    tally("ioctl faults: library", cases, len(problems))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("op", ["KVM_CHECK_EXTENSION", "VM_CHECK_EXTENSION"])
def test_a_failed_capability_query_is_reported_as_failed_never_as_zero(op: str) -> None:
    problems: List[str] = []
    reference = _baseline(vm=True)
    for name in FAILING:
        code = errno_value(name)
        backend = FaultBackend(recorded_host_backend(), [Fault(op, code, arg=int(PROBED_CAP))])
        result = probe(backend=backend, vm=True, refresh=True)
        errors, values = (result.errors, result.values) if op == "KVM_CHECK_EXTENSION" else (result.vm_errors, result.vm_values)
        assert values is not None
        if errors.get(PROBED_CAP) != code or PROBED_CAP in values:
            problems.append(f"{op} {name}: errors={dict(errors)} value={values.get(PROBED_CAP)}")
        try:
            shown = result.has(PROBED_CAP) if op == "KVM_CHECK_EXTENSION" else result.vm_value(PROBED_CAP)
            problems.append(f"{op} {name}: answered {shown!r} for a query that failed")
        except CapabilityQueryFailed as err:
            if name not in str(err) or PROBED_CAP.c_name not in str(err):
                problems.append(f"{op} {name}: unclear {str(err)!r}")
        others = {cap: v for cap, v in values.items() if cap is not PROBED_CAP}
        expected = reference.values if op == "KVM_CHECK_EXTENSION" else reference.vm_values
        assert expected is not None
        if others != {cap: v for cap, v in expected.items() if cap is not PROBED_CAP}:
            problems.append(f"{op} {name}: the other capabilities changed")
        if backend.open_fds:
            problems.append(f"{op} {name}: fds left open {backend.open_fds}")
    tally("ioctl faults: library", len(FAILING), len(problems))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("op", ["open", "KVM_GET_API_VERSION", "KVM_CHECK_EXTENSION", "KVM_CREATE_VM", "VM_CHECK_EXTENSION"])
def test_eintr_is_retried_and_changes_nothing(op: str) -> None:
    reference = _baseline(vm=True)
    arg = int(PROBED_CAP) if op.endswith("CHECK_EXTENSION") else None
    backend = FaultBackend(recorded_host_backend(), [Fault(op, errno.EINTR, arg=arg, times=3)])
    result = probe(backend=backend, vm=True, refresh=True)
    tally("ioctl faults: library", 1)
    assert sum(backend.fired.values()) == 3  # the fault did fire, three times
    assert _same_answers(result, reference)
    assert backend.open_fds == []


@pytest.mark.parametrize("op", ["open", "KVM_GET_API_VERSION", "KVM_CHECK_EXTENSION"])
def test_an_endless_eintr_ends_in_an_error_not_a_hang(op: str) -> None:
    arg = int(PROBED_CAP) if op == "KVM_CHECK_EXTENSION" else None
    backend = FaultBackend(recorded_host_backend(), [Fault(op, errno.EINTR, arg=arg)])
    tally("ioctl faults: library", 1)
    if op == "KVM_CHECK_EXTENSION":
        result = probe(backend=backend, refresh=True)
        assert result.errors == {PROBED_CAP: errno.EINTR}
    else:
        with pytest.raises(KvmIoctlError, match="EINTR"):
            probe(backend=backend, refresh=True)
    assert backend.open_fds == []


@pytest.mark.parametrize("name", ERRNOS)
def test_a_failing_close_neither_fails_the_probe_nor_leaks(name: str) -> None:
    reference = _baseline(vm=True)
    backend = FaultBackend(recorded_host_backend(), [Fault("close", errno_value(name))])
    result = probe(backend=backend, vm=True, refresh=True)
    tally("ioctl faults: library", 1)
    assert backend.fired[Fault("close", errno_value(name))] == 2  # the VM fd and the system fd
    assert _same_answers(result, reference)
    assert backend.open_fds == [] and backend.inner.open_fds == []  # type: ignore[attr-defined]


def test_diagnose_reports_a_failed_capability_query_and_still_judges_the_device() -> None:
    for name in FAILING:
        backend = FaultBackend(recorded_host_backend(), [Fault("KVM_CHECK_EXTENSION", errno_value(name))])
        report = diagnose(backend=backend)
        kernel = report.check("kernel")
        assert kernel.status is Status.WARN and "failed" in kernel.summary and name in kernel.summary
        assert report.check("capability-queries").status is Status.WARN
        assert report.usable  # open, API 12 and KVM_CREATE_VM worked: KVM itself is usable
        assert backend.open_fds == []
    tally("ioctl faults: library", len(FAILING))


# --- every command ---------------------------------------------------------------------------

COMMANDS: Tuple[Tuple[str, ...], ...] = (
    ("dump",),
    ("dump", "--json"),
    ("dump", "--vm"),
    ("has", "HLT"),
    ("has", PROBED_CAP.name),
    ("check", "firecracker"),
    ("check", "cloud-hypervisor"),
    ("doctor",),
    ("doctor", "--strict"),
    ("snapshot",),
    ("snapshot", "--vm"),
    ("export", "--format", "nfd"),
    ("export", "--format", "prometheus"),
    ("diff", "preset:pvm-6.18"),
)


def run_cli(argv: Sequence[str], backend: Optional[FaultBackend]) -> Tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv), backend=backend)
    return code, out.getvalue(), err.getvalue()


def _healthy() -> Dict[Tuple[str, ...], Tuple[int, str]]:
    results = {}
    for argv in COMMANDS:
        code, out, _ = run_cli(argv, FaultBackend(recorded_host_backend()))
        results[argv] = (code, out)
    return results


def expected_code(argv: Tuple[str, ...], fault: Fault, healthy: int) -> int:
    """The exit code of ``argv`` under ``fault``, from the project's convention."""
    command = argv[0]
    vm_asked = "--vm" in argv or command in ("doctor", "export")  # doctor and export create a VM
    unreachable = fault.op in ("open", "KVM_GET_API_VERSION") or (fault.op == "KVM_CREATE_VM" and vm_asked)
    if fault.code == errno.EINTR and fault.times is not None or fault.op == "close":
        return healthy
    if unreachable:
        return 1 if command == "doctor" else 3  # doctor: not usable is its verdict
    if fault.op == "KVM_CHECK_EXTENSION" and fault.arg == int(PROBED_CAP):
        if argv == ("has", PROBED_CAP.name):
            return 2  # it cannot answer yes or no: the tool could not do its job
        if argv == ("check", "cloud-hypervisor"):
            return 1  # a required capability whose query failed: not ready (and it says why)
        if argv == ("doctor", "--strict"):
            return 1  # a WARN under --strict
        if command == "diff":
            return 1  # the live host differs from the recording: that query now failed
    return healthy


def failed_query_shown(argv: Tuple[str, ...], code: int, out: str, err: str, errno_name: str) -> bool:
    """Whether this command's output says that PROBED_CAP's query failed (with its errno)."""
    name = PROBED_CAP.c_name
    command = argv[0]
    if argv == ("dump", "--json") or command == "snapshot":
        row = next(r for r in json.loads(out)["capabilities"] if r["name"] == name)
        return row["value"] is None and row["error"] == errno_value(errno_name)
    if command == "dump":
        return any(line.startswith(name) and "ERROR" in line.split() for line in out.splitlines())
    if argv == ("has", PROBED_CAP.name):
        return name in err and errno_name in err
    if argv == ("check", "cloud-hypervisor"):
        return "query failed" in out and errno_name in out
    if command == "doctor":
        return "failed" in out and errno_name in out
    if argv == ("export", "--format", "prometheus"):
        return f'kvm_capability_query_errno{{name="{name}",number="{int(PROBED_CAP)}"}} {errno_value(errno_name)}' in out
    if argv == ("export", "--format", "nfd"):
        return "kvm.capability-query-errors=1" in out and "kvm.cap.immediate_exit=" not in out
    if command == "diff":
        return "query failed" in out and errno_name in out
    return True  # has HLT and check firecracker do not ask about the capability


def _comparable(argv: Tuple[str, ...], out: str) -> object:
    """The output, without the time a JSON document was written at."""
    if "--json" not in argv:
        return out
    document = json.loads(out)
    document.pop("recorded_at", None)
    return document


def faults() -> List[Fault]:
    found = []
    for name in ERRNOS:
        code = errno_value(name)
        times = 3 if name == "EINTR" else None
        found += [
            Fault("open", code, times=times),
            Fault("close", code),
            Fault("KVM_GET_API_VERSION", code, times=times),
            Fault("KVM_CHECK_EXTENSION", code, arg=int(PROBED_CAP), times=times),
            Fault("KVM_CREATE_VM", code, times=times),
            Fault("VM_CHECK_EXTENSION", code, arg=int(PROBED_CAP), times=times),
        ]
    return found


def test_every_command_under_every_fault_exits_by_the_convention_in_one_line() -> None:
    healthy = _healthy()
    problems: List[str] = []
    cases = 0
    for fault in faults():
        errno_name = errno.errorcode[fault.code]
        for argv in COMMANDS:
            cases += 1
            backend = FaultBackend(recorded_host_backend(), [fault])
            where = f"{' '.join(argv)} under {fault.op}={errno_name}"
            try:
                code, out, err = run_cli(argv, backend)
            except BaseException as exc:  # noqa: BLE001 - any escape is the bug being looked for
                problems.append(f"{where}: raised {type(exc).__name__}: {exc}")
                continue
            want = expected_code(argv, fault, healthy[argv][0])
            if code != want:
                problems.append(f"{where}: exit {code}, expected {want}; stderr {err!r}")
            lines = [line for line in err.splitlines() if line.strip()]
            if "Traceback" in err or len(lines) > 1:
                problems.append(f"{where}: stderr is not one line: {err!r}")
            if code in (2, 3) and not (len(lines) == 1 and lines[0].startswith("kvmprobe: ")):
                problems.append(f"{where}: exit {code} without its one-line reason: {err!r}")
            if backend.open_fds:
                problems.append(f"{where}: fds left open {backend.open_fds}")
            if fault.op == "KVM_CHECK_EXTENSION" and fault.times is None:
                if not failed_query_shown(argv, code, out, err, errno_name):
                    problems.append(f"{where}: the failed query of {PROBED_CAP.c_name} is not shown as failed")
            if (fault.times is not None or fault.op == "close") and argv[0] in ("dump", "has", "check"):
                if _comparable(argv, out) != _comparable(argv, healthy[argv][1]):
                    problems.append(f"{where}: output differs from the fault-free run")
    tally("ioctl faults: CLI commands", cases, len(problems))
    assert not problems, f"{len(problems)} of {cases} cases:\n" + "\n".join(problems[:40])


def test_a_recorded_failed_query_stays_a_failed_query_in_every_command(tmp_path: object) -> None:
    """Recorded with a failing query, read back by every command: still failed, never 0."""
    import os.path

    backend = FaultBackend(recorded_host_backend(), [Fault("KVM_CHECK_EXTENSION", errno.EIO, arg=int(PROBED_CAP))])
    code, out, err = run_cli(("snapshot",), backend)
    assert code == 0, err
    path = os.path.join(str(tmp_path), "failed-query.json")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(out)
    forms: Tuple[Tuple[Tuple[str, ...], int], ...] = (
        (("dump", "--snapshot", path), 0),
        (("dump", "--json", "--snapshot", path), 0),
        (("has", PROBED_CAP.name, "--snapshot", path), 2),
        (("check", "cloud-hypervisor", "--snapshot", path), 1),
        (("doctor", "--snapshot", path), 0),
        (("doctor", "--strict", "--snapshot", path), 1),
        (("snapshot", "--snapshot", path), 0),
        (("export", "--format", "nfd", "--snapshot", path), 0),
        (("export", "--format", "prometheus", "--snapshot", path), 0),
        (("diff", "preset:pvm-6.18", path), 1),
    )
    problems: List[str] = []
    for argv, expected in forms:
        code, out, err = run_cli(argv, None)
        shown_as = tuple(a for a in argv if a not in ("--snapshot", path) and a != "preset:pvm-6.18")
        if code != expected or not failed_query_shown(shown_as, code, out, err, "EIO"):
            problems.append(f"{' '.join(argv)}: exit {code} (expected {expected}); failure shown: "
                            f"{failed_query_shown(shown_as, code, out, err, 'EIO')}; stderr {err!r}")
    tally("ioctl faults: CLI commands", len(forms), len(problems))
    assert not problems, "\n".join(problems)
