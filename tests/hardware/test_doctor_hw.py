"""``kvmprobe doctor`` on this machine's real /dev/kvm, checked against the kernel's own answers.

Ground truth comes from raw ``os.open`` + ``fcntl.ioctl`` and from reading ``/sys`` and
``/proc/cpuinfo`` directly, never from kvmprobe's code path.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
from typing import FrozenSet

import pytest

from _helpers import GENERIC_ARCHES, NOBODY, RAW_KVM_CREATE_VM, RAW_KVM_GET_API_VERSION, kvmprobe_as_nobody, open_fds
from kvmprobe import Status, Verdict, diagnose

pytestmark = pytest.mark.kvm

DEVICE = "/dev/kvm"
SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "src"))


@pytest.fixture(autouse=True)
def _needs_kvm() -> None:
    if not os.path.exists(DEVICE):
        pytest.skip(f"{DEVICE} does not exist on this machine")
    if os.uname().machine not in GENERIC_ARCHES:
        pytest.skip(f"raw ioctl numbers are written out for {GENERIC_ARCHES} only")


def _cpu_flags() -> FrozenSet[str]:
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return frozenset(value.split())
    return frozenset()


def _kernel_says_usable() -> bool:
    """Open, KVM_GET_API_VERSION == 12, KVM_CREATE_VM: the three answers, asked directly."""
    try:
        fd = os.open(DEVICE, os.O_RDWR | os.O_CLOEXEC)
    except PermissionError:
        pytest.skip(f"{DEVICE} is not read-write for this user; the unprivileged test covers that case")
    try:
        if fcntl.ioctl(fd, RAW_KVM_GET_API_VERSION) != 12:
            return False
        try:
            vm = fcntl.ioctl(fd, RAW_KVM_CREATE_VM, 0)
        except OSError:
            return False
        os.close(vm)
        return True
    finally:
        os.close(fd)


def test_verdict_matches_the_kernel() -> None:
    usable = _kernel_says_usable()
    before = open_fds()
    report = diagnose(device=DEVICE)
    assert open_fds() == before, "diagnose leaked an fd"
    assert report.usable is usable
    if usable:
        for check_id in ("device-access", "api-version", "create-vm"):
            assert report.check(check_id).status is Status.PASS, report.check(check_id)
        assert report.check("api-version").summary == "KVM API version 12"


def test_backend_and_hypervisor_flag_are_named() -> None:
    report = diagnose(device=DEVICE)
    loaded = [name for name in ("kvm_intel", "kvm_amd", "kvm_pvm") if os.path.isdir(f"/sys/module/{name}")]
    module = report.check("kvm-module")
    assert module.status is Status.PASS
    assert loaded and loaded[0] in module.summary
    hyper = report.check("hypervisor")
    if "hypervisor" in _cpu_flags():
        assert "hypervisor flag" in hyper.summary and "virtual machine" in hyper.summary
    else:
        assert hyper.summary == "no hypervisor flag: bare metal"


def test_pvm_host_is_usable_without_vmx_or_svm() -> None:
    # The case kvm-ok and virt-host-validate get wrong: KVM through kvm_pvm, no vmx/svm flag.
    flags = _cpu_flags()
    if not os.path.isdir("/sys/module/kvm_pvm") or flags & {"vmx", "svm"}:
        pytest.skip("not a PVM host without vmx/svm")
    assert _kernel_says_usable()
    report = diagnose(device=DEVICE)
    assert report.verdict in (Verdict.USABLE, Verdict.USABLE_WITH_WARNINGS)
    assert report.check("kvm-module").summary.startswith("kvm_pvm loaded")
    assert report.check("cpu-flags").status is Status.INFO
    assert "kvm_pvm" in report.check("hypervisor").summary
    assert all(c.status is not Status.FAIL for c in report.checks)


def test_node_and_vhost_checks_match_the_filesystem() -> None:
    report = diagnose(device=DEVICE)
    st = os.stat(DEVICE)
    node = report.check("device-node")
    assert f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}" in node.summary
    assert stat.filemode(st.st_mode) in node.summary
    for check_id, path in (("vhost-net", "/dev/vhost-net"), ("vhost-vsock", "/dev/vhost-vsock"),
                           ("tun", "/dev/net/tun")):  # fmt: skip
        present = os.path.exists(path) and stat.S_ISCHR(os.stat(path).st_mode)
        assert report.check(check_id).status is (Status.PASS if present else Status.WARN)


def _cli(*args: str) -> "subprocess.CompletedProcess[str]":
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-m", "kvmprobe", "doctor", *args],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip


def test_cli_exit_codes_follow_the_verdict() -> None:
    usable = _kernel_says_usable()
    plain = _cli()
    assert plain.stderr == "" and "\x1b[" not in plain.stdout
    assert plain.returncode == (0 if usable else 1)
    doc = json.loads(_cli("--json").stdout)
    warned = doc["verdict"] == "usable_with_warnings"
    assert _cli("--strict").returncode == (0 if usable and not warned else 1)


# --- as an unprivileged user -------------------------------------------------------------------------


def test_unprivileged_user_gets_the_permission_fail_and_its_remedy() -> None:
    result = kvmprobe_as_nobody("doctor", "--json", device=DEVICE)
    assert result.returncode == 1 and result.stderr == ""
    doc = json.loads(result.stdout)
    access = next(c for c in doc["checks"] if c["id"] == "device-access")
    st = os.stat(DEVICE)
    assert doc["verdict"] == "not_usable" and access["status"] == "FAIL"
    if _kernel_says_usable():  # KVM works for root: the permission is the one thing wrong for nobody
        assert [c["id"] for c in doc["checks"] if c["status"] == "FAIL"] == ["device-access"]
    assert access["summary"].startswith(f"{DEVICE}: permission denied for nobody (uid {NOBODY}) "
                                        f"({stat.filemode(st.st_mode)}")  # fmt: skip
    if st.st_mode & stat.S_IRWXG == stat.S_IRGRP | stat.S_IWGRP and st.st_gid != 0:
        assert "sudo usermod -aG" in access["remedy"] and "log out and in again" in access["remedy"]
    else:  # 0600 root:root, as on the PVM hosts: the node needs a group first
        assert "only its owner may open it" in access["summary"]
        assert 'KERNEL=="kvm", GROUP="kvm", MODE="0660"' in access["remedy"]
        if doc["host"]["container"]:  # the node comes from the host: the fix is there, or in the runtime
            assert "--group-add" in access["remedy"] and "on the host" in access["remedy"]
        else:
            assert "sudo usermod -aG kvm $USER" in access["remedy"]
    # Check what really happens for that user, independently: open(2) as nobody fails with EACCES.
    raw = subprocess.run(
        [shutil.which("setpriv") or "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         "/usr/bin/python3", "-c", f"import os\ntry:\n os.open('{DEVICE}', os.O_RDWR)\nexcept OSError as e:\n"
         " print(e.errno)"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert raw.stdout.strip() == str(errno.EACCES)


def test_unprivileged_text_output_shows_the_fix() -> None:
    result = kvmprobe_as_nobody("doctor", device=DEVICE)
    lines = result.stdout.splitlines()
    assert result.returncode == 1
    access = next(i for i, line in enumerate(lines) if line.startswith("  FAIL  device-access"))
    assert lines[access + 1].lstrip().startswith("fix: ")
    assert lines[-1].startswith("verdict: KVM not usable: /dev/kvm: permission denied for nobody")


# --- --as-user: access for another account, computed; the kernel's open as that account decides ---------


def _opens_as(path: str, uid: int, gid: int) -> bool:
    """open(O_RDWR) of ``path`` as uid/gid with no supplementary groups, through setpriv: the kernel's answer."""
    done = subprocess.run(
        [shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
         "/bin/sh", "-c", 'exec 3<>"$1"', "sh", path],
        capture_output=True, timeout=60,
    )  # fmt: skip
    return done.returncode == 0


@pytest.mark.parametrize("account, uid", [("nobody", NOBODY), ("root", 0)])
def test_as_user_agrees_with_the_kernel_opening_as_that_account(account: str, uid: int) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv: the account's own open is the independent answer")
    import pwd

    try:
        entry = pwd.getpwnam(account)
    except KeyError:
        pytest.skip(f"no account {account} here")
    if entry.pw_uid != uid:
        pytest.skip(f"{account} is uid {entry.pw_uid} here")
    _kernel_says_usable()  # skips unless this process (root) can use the device
    result = subprocess.run([sys.executable, "-m", "kvmprobe", "doctor", "--json", "--as-user", account],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": SRC})  # fmt: skip
    doc = json.loads(result.stdout)
    assert doc["as_user"]["uid"] == uid and result.stderr == ""
    checks = {c["id"]: c for c in doc["checks"]}
    # /dev/kvm: decisive; nobody has no supplementary groups in a standard group file either.
    assert (checks["device-access"]["status"] == "PASS") == _opens_as(DEVICE, uid, entry.pw_gid)
    assert (result.returncode == 0) == _opens_as(DEVICE, uid, entry.pw_gid)
    tun = "/dev/net/tun"
    if checks["tun"]["status"] in ("PASS", "WARN") and os.path.exists(tun) and stat.S_ISCHR(os.stat(tun).st_mode):
        assert (checks["tun"]["status"] == "PASS") == _opens_as(tun, uid, entry.pw_gid), checks["tun"]
