"""Least privilege: what kvmprobe opens, with which flags, what it asks, and what it never does.

* A recording backend counts, per command, the device opens and the KVM_CREATE_VM calls: a VM
  is created only by ``--vm``, ``doctor`` and ``export`` (whose verdict needs one), every fd
  is closed.
* Python's audit hook (``sys.addaudithook``, the ``open`` event carries the flags) records
  every file the process opens during a command: nothing is opened for writing except the
  ``-o`` target's fresh temporary file, created with ``O_CREAT|O_EXCL|O_NOFOLLOW``; the real
  /dev/kvm is opened ``O_RDWR|O_CLOEXEC`` and nothing else.
* A symlink planted at the temporary name, or at the target, is never followed.
* On the real device: no KVM fd is held after any command, the node's mode, owner and
  times are unchanged, and (with strace, where ptrace is allowed) the only syscalls on a KVM
  fd are KVM_GET_API_VERSION, KVM_CHECK_EXTENSION, KVM_CREATE_VM and the read-only CPU queries
  (KVM_GET_SUPPORTED/EMULATED_CPUID, the MSR lists, KVM_GET_MSRS, KVM_HAS/GET_DEVICE_ATTR) on
  the system fd, KVM_CHECK_EXTENSION and KVM_CREATE_VCPU on a VM fd, KVM_GET_TSC_KHZ on a vCPU
  fd, and close: kvmprobe asks and never sets anything.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import pytest

from hardening._faultlib import FaultBackend, recorded_host_backend, tally
from kvmprobe import probe, probing, write_atomic
from kvmprobe._backend_select import select_backend
from kvmprobe._backend_cffi import unavailable_reason
from kvmprobe._cli import main
from kvmprobe.diagnosis import diagnose

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

# --- one audit hook for the whole process, recording only while a test asks it to ----------

_recording: List[Optional[List[Tuple[str, Any, int]]]] = [None]


def _audit(event: str, args: Tuple[Any, ...]) -> None:
    sink = _recording[0]
    if event == "open" and sink is not None and len(args) == 3 and isinstance(args[2], int):
        path = args[0]
        sink.append((os.fsdecode(path) if isinstance(path, (str, bytes)) else repr(path), args[1], args[2]))


_hooked: List[bool] = []


@contextlib.contextmanager
def opens() -> Any:
    """Record (path, mode, flags) of every open in this process inside the block."""
    if not _hooked:
        sys.addaudithook(_audit)  # cannot be removed; records only while _recording is set
        _hooked.append(True)
    found: List[Tuple[str, Any, int]] = []
    _recording[0] = found
    try:
        yield found
    finally:
        _recording[0] = None


def writes(found: Sequence[Tuple[str, Any, int]]) -> List[Tuple[str, Any, int]]:
    """The opens that could write (by flags, or an io.open mode with w/a/x/+); bytecode caches aside."""
    return [
        (path, mode, flags)
        for path, mode, flags in found
        if (flags & _WRITE_FLAGS or (isinstance(mode, str) and set(mode) & set("wax+"))) and "__pycache__" not in path
    ]


def run_cli(argv: Sequence[str], backend: Any = None) -> Tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv), backend=backend)
    return code, out.getvalue(), err.getvalue()


# --- what each command asks of the device ----------------------------------------------------

# (argv, device opens, KVM_CREATE_VM calls): a VM only where asked for or where the verdict needs one.
COMMANDS: Tuple[Tuple[Tuple[str, ...], int, int], ...] = (
    (("dump",), 1, 0),
    (("dump", "--json"), 1, 0),
    (("dump", "--vm"), 1, 1),
    (("cpu",), 1, 1),  # the TSC rate is a scratch vCPU's, on the one VM
    (("cpu", "--has", "cx16"), 1, 1),
    (("has", "HLT", "IMMEDIATE_EXIT"), 1, 0),
    (("check", "--all"), 1, 0),
    (("snapshot",), 1, 0),
    (("snapshot", "--vm"), 1, 1),
    (("diff", "preset:pvm-6.18"), 1, 0),
    (("doctor",), 1, 1),  # "can a VM be created here" is the decisive check
    (("export", "--format", "nfd"), 1, 1),  # usable=true is claimed only after creating one
    (("export", "--format", "prometheus"), 1, 1),
    (("dump", "--snapshot", "preset:pvm-6.18"), 0, 0),
    (("check", "--all", "--snapshot", "preset:linux-4.14"), 0, 0),
    (("doctor", "--snapshot", "preset:pvm-6.18"), 0, 0),
    (("export", "--format", "nfd", "--snapshot", "preset:pvm-6.18"), 0, 0),
    (("diff", "preset:linux-5.4", "preset:linux-6.1"), 0, 0),
)


@pytest.mark.parametrize("argv,opens_expected,vms_expected", COMMANDS, ids=[" ".join(c[0]) for c in COMMANDS])
def test_each_command_opens_the_device_once_and_creates_a_vm_only_where_documented(
    argv: Tuple[str, ...], opens_expected: int, vms_expected: int
) -> None:
    backend = FaultBackend(recorded_host_backend())
    code, _, err = run_cli(argv, backend)
    tally("least privilege: commands", 1)
    assert code in (0, 1), err
    assert backend.opens == opens_expected
    assert sum(1 for op, _ in backend.calls if op == "KVM_CREATE_VM") == vms_expected
    assert backend.open_fds == [] and backend.inner.open_fds == []  # type: ignore[attr-defined]


def test_the_library_creates_a_vm_only_when_asked() -> None:
    cases: Dict[str, Tuple[Callable[[FaultBackend], object], int]] = {
        "probe()": (lambda b: probe(backend=b, refresh=True), 0),
        "probe(vm=True)": (lambda b: probe(backend=b, vm=True, refresh=True), 1),
        "diagnose(create_vm=False)": (lambda b: diagnose(backend=b, create_vm=False), 0),
        "diagnose()": (lambda b: diagnose(backend=b), 1),
    }
    for name, (call, expected) in cases.items():
        backend = FaultBackend(recorded_host_backend())
        call(backend)
        assert sum(1 for op, _ in backend.calls if op == "KVM_CREATE_VM") == expected, name
        assert backend.open_fds == [], name
    tally("least privilege: library", len(cases))


@pytest.mark.parametrize("name", ["cffi", "ctypes"])
def test_the_backends_open_read_write_close_on_exec_and_nothing_more(name: str, tmp_path: Path) -> None:
    if name == "cffi" and unavailable_reason():
        pytest.skip(f"the cffi backend is not built here: {unavailable_reason()}")
    import fcntl

    target = tmp_path / "device"
    target.write_bytes(b"")
    backend = select_backend(name)
    with opens() as found:
        fd = backend.open(str(target))
    try:
        access = fcntl.fcntl(fd, fcntl.F_GETFL)
        assert access & os.O_ACCMODE == os.O_RDWR  # KVM ioctls need a read-write fd
        assert not access & (os.O_APPEND | os.O_NONBLOCK)
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    finally:
        backend.close(fd)
    flags = [f for path, _, f in found if path == str(target)]
    assert flags and all(f & ~os.O_CLOEXEC == os.O_RDWR for f in flags)  # no O_CREAT, O_TRUNC, ...
    assert target.read_bytes() == b""
    tally("least privilege: library", 1)


def test_no_file_is_opened_for_writing_but_the_outputs_fresh_temporary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    forms = [argv for argv, _, _ in COMMANDS] + [
        ("snapshot", "-o", str(out / "host.json")),
        ("export", "--format", "nfd", "-o", str(out / "kvm.features")),
        ("export", "--format", "prometheus", "-o", str(out / "kvm.prom")),
    ]
    problems: List[str] = []
    for argv in forms:
        with opens() as found:
            code, _, err = run_cli(argv, FaultBackend(recorded_host_backend()))
        assert code in (0, 1), err
        for path, mode, flags in writes(found):
            fresh = flags & (os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW) == os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            if os.path.dirname(path) != str(out) or not os.path.basename(path).startswith(".") or not fresh:
                problems.append(f"{' '.join(argv)}: opened {path} for writing (mode {mode}, flags {flags:#o})")
        if "-o" in argv and not any(os.path.dirname(path) == str(out) for path, _, _ in writes(found)):
            problems.append(f"{' '.join(argv)}: the output was not written through a fresh temporary file")
    tally("least privilege: audited opens", len(forms), len(problems))
    assert not problems, "\n".join(problems)


def test_a_symlink_planted_at_the_temporary_name_or_the_target_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    target = tmp_path / "kvm.prom"
    planted = tmp_path / ".kvm.prom.planted.tmp"
    planted.symlink_to(victim)
    write_atomic(target, "kvm_usable 1\n", temp_names=[planted.name, ".kvm.prom.fresh.tmp"])
    assert victim.read_text() == "precious\n" and planted.is_symlink()
    assert target.read_text() == "kvm_usable 1\n"
    # The target itself a symlink: refused (exit 2), the link kept, what it points at not written.
    link = tmp_path / "kvm.features"
    link.symlink_to(victim)
    code, _, err = run_cli(["export", "--format", "nfd", "-o", str(link)], FaultBackend(recorded_host_backend()))
    assert code == 2 and "symbolic link" in err, err
    assert victim.read_text() == "precious\n" and link.is_symlink()
    code, _, err = run_cli(["snapshot", "-o", str(planted)], FaultBackend(recorded_host_backend()))
    assert code == 2 and "symbolic link" in err, err
    assert victim.read_text() == "precious\n" and planted.is_symlink()
    tally("least privilege: symlinks", 3)


# --- the real device -------------------------------------------------------------------------

DEVICE_COMMANDS = [argv for argv, opened, _ in COMMANDS if opened]


@pytest.mark.kvm
def test_real_device_no_command_keeps_it_open_writes_it_or_opens_it_but_read_write_cloexec(tmp_path: Path) -> None:
    from _helpers import open_fds

    node = os.stat("/dev/kvm")
    problems: List[str] = []
    for argv in DEVICE_COMMANDS + [("snapshot", "--vm", "-o", str(tmp_path / "h.json"))]:
        probing._clear_cache()  # as in a fresh process: each command asks the device itself
        before = open_fds()
        with opens() as found:
            code, _, err = run_cli(argv)
        if code not in (0, 1):
            problems.append(f"{' '.join(argv)}: exit {code}: {err}")
        held = [t for t in open_fds().values() if t == "/dev/kvm" or "kvm-vm" in t]
        if held or open_fds() != before:
            problems.append(f"{' '.join(argv)}: fds changed, KVM ones held: {held}")
        device = [flags for path, _, flags in found if path == "/dev/kvm"]
        if not device or any(flags != os.O_RDWR | os.O_CLOEXEC for flags in device):
            problems.append(f"{' '.join(argv)}: /dev/kvm opened with flags {[oct(f) for f in device]}")
        others = [w for w in writes(found) if w[0] != "/dev/kvm" and os.path.dirname(w[0]) != str(tmp_path)]
        if others:
            problems.append(f"{' '.join(argv)}: opened for writing: {others}")
    after = os.stat("/dev/kvm")
    same = (node.st_mode, node.st_uid, node.st_gid, node.st_rdev, node.st_mtime_ns, node.st_ctime_ns)
    if same != (after.st_mode, after.st_uid, after.st_gid, after.st_rdev, after.st_mtime_ns, after.st_ctime_ns):
        problems.append("/dev/kvm's mode, owner or times changed")
    tally("least privilege: real device", len(DEVICE_COMMANDS) + 1, len(problems))
    assert not problems, "\n".join(problems)


_SYSCALL = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+|\?)")
_UNFINISHED = re.compile(r"^(\d+)\s+(.*) <unfinished \.\.\.>$")
_RESUMED = re.compile(r"^(\d+)\s+<\.\.\. \w+ resumed>(.*)$")


def _whole_calls(text: str) -> List[str]:
    """strace -f splits a call another process interrupts into "<unfinished ...>" and "<... resumed>";
    join each pair back into one line, in the order the calls finished."""
    pending: Dict[str, str] = {}
    lines = []
    for line in text.splitlines():
        start, end = _UNFINISHED.match(line), _RESUMED.match(line)
        if start:
            pending[start.group(1)] = f"{start.group(1)}  {start.group(2)}"
        elif end and end.group(1) in pending:
            lines.append(pending.pop(end.group(1)) + end.group(2))
        else:
            lines.append(line)
    return lines
# (argv, KVM_CREATE_VM calls expected, whether it runs micro-guests: doctor's run check, issue #14)
_STRACE_FORMS = [
    (("dump", "--vm"), 1, False), (("doctor",), 3, True), (("export", "--format", "prometheus"), 3, True),
    (("has", "HLT"), 0, False), (("check", "--all"), 0, False), (("snapshot",), 0, False),
    (("snapshot", "--vm"), 1, False), (("cpu",), 1, False),
]
# What the commands ask of the system fd: the probe's three ioctls, and the read-only CPU queries.
_SYSTEM_QUERIES = (
    "KVM_GET_API_VERSION", "KVM_CHECK_EXTENSION", "KVM_CREATE_VM", "KVM_GET_SUPPORTED_CPUID", "KVM_GET_EMULATED_CPUID",
    "KVM_GET_MSR_INDEX_LIST", "KVM_GET_MSR_FEATURE_INDEX_LIST", "KVM_GET_MSRS", "KVM_HAS_DEVICE_ATTR",
    "KVM_GET_DEVICE_ATTR",
)
# What a micro-guest adds, per kind of fd (each guest runs in a forked child): the memory slot, one
# vCPU and its kvm_run mapping (Python's mmap fstats and dups the fd), its registers and KVM_RUN.
_GUEST_IOCTLS = {
    "system": ("KVM_GET_VCPU_MMAP_SIZE", "KVM_GET_SUPPORTED_CPUID"),
    "vm": ("KVM_SET_TSS_ADDR", "KVM_SET_USER_MEMORY_REGION", "KVM_CREATE_VCPU"),
    "vcpu": ("KVM_SET_CPUID2", "KVM_GET_SREGS", "KVM_SET_SREGS", "KVM_SET_REGS", "KVM_RUN"),
}


def _strace(argv: Sequence[str], log: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        ["strace", "-f", "-qq", "-o", str(log), sys.executable, "-m", "kvmprobe", *argv],
        capture_output=True, text=True, timeout=120, env=env,
    )


@pytest.mark.kvm
def test_real_device_syscalls_on_kvm_fds_are_only_the_three_ioctls_and_close(tmp_path: Path) -> None:
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (apt-get install strace)")
    probe_run = _strace(["--version"], tmp_path / "probe.log")
    if probe_run.returncode != 0:
        pytest.skip("strace cannot trace here (ptrace not permitted?)")
    problems: List[str] = []
    for argv, vms, guests in _STRACE_FORMS:
        log = tmp_path / "trace.log"
        done = _strace(argv, log)
        if done.returncode not in (0, 1):
            problems.append(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr[-300:]}")
            continue
        tables: Dict[str, Dict[str, str]] = {}  # per process: live fd -> "system", "vm" or "vcpu"
        main = ""
        created = 0
        for line in _whole_calls(log.read_text()):
            match = _SYSCALL.match(line)
            if match is None:
                continue
            pid, call, args, result = match.groups()
            main = main or pid
            kvm = tables.setdefault(pid, {})
            if call in ("clone", "clone3", "fork", "vfork") and result.isdigit() and result != "0":
                tables[result] = dict(kvm)  # a forked child starts with a copy of the fd table
                continue
            if call in ("openat", "open") and '"/dev/kvm"' in args:
                if args.split(", ")[2] != "O_RDWR|O_CLOEXEC":
                    problems.append(f"{' '.join(argv)}: {line}")
                kvm[result] = "system"
                continue
            first = args.split(",")[0].strip()
            if first not in kvm:
                continue
            kind = kvm[first]
            named = re.search(r", (KVM_\w+)\b", args)
            request = named.group(1) if named else ""
            if call == "close":
                del kvm[first]
            elif call == "ioctl" and kind == "system" and request in _SYSTEM_QUERIES:
                if request == "KVM_CREATE_VM":
                    created += 1
                    kvm[result] = "vm"
            elif call == "ioctl" and kind == "vm" and request == "KVM_CHECK_EXTENSION":
                pass
            elif call == "ioctl" and kind == "vm" and request == "KVM_CREATE_VCPU":
                kvm[result] = "vcpu"  # a scratch vCPU for KVM_GET_TSC_KHZ, or a guest's
            elif call == "ioctl" and kind == "vcpu" and request == "KVM_GET_TSC_KHZ":
                pass
            elif guests and call == "ioctl" and request in _GUEST_IOCTLS[kind]:
                pass
            elif guests and kind == "vcpu" and call in ("newfstatat", "fstat"):
                pass
            elif guests and kind == "vcpu" and call == "fcntl" and "F_DUPFD_CLOEXEC" in args:
                kvm[result] = "vcpu"  # the dup Python's mmap keeps of the fd it maps
            else:
                problems.append(f"{' '.join(argv)}: on a {kind} KVM fd: {line}")
        if tables.get(main):  # a forked child's fds close with it; the command's own must be closed
            problems.append(f"{' '.join(argv)}: KVM fds never closed: {tables[main]}")
        if created != vms:
            problems.append(f"{' '.join(argv)}: {created} KVM_CREATE_VM calls, expected {vms}")
    tally("least privilege: real device", len(_STRACE_FORMS), len(problems))
    assert not problems, "\n".join(problems)
