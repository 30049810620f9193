"""``kvmprobe emulate`` and ``learn`` on the real /dev/kvm, checked by independent paths.

The command under emulation is a child written here that asks the kernel with fcntl.ioctl and
its own numbers (tests/_helpers.py), on /dev/kvm and on a VM fd it creates; what it reads is
compared with the same raw queries made by this test process, outside any filter. The real
VMMs are Debian's QEMU (skipped where it is not installed) and examples/mini_ch_vmm.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import pytest

from kvmprobe import Cap, load_preset
from kvmprobe import _seccomp
from kvmprobe.emulate import emulate, learn, supervisor_available
from kvmprobe.snapshot import snapshot_document
from kvmprobe.testing import fake_probe_result

from _helpers import GENERIC_ARCHES, RAW_KVM_CREATE_VM, open_fds, raw_check_extension

pytestmark = pytest.mark.kvm

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_VMM = ROOT / "examples" / "mini_ch_vmm.py"

# Asks /dev/kvm and a VM fd for each number on argv; prints {"system": {...}, "vm": {...}, "api": N}.
CHILD = """
import fcntl, json, os, sys
def ask(fd, request, arg):
    try:
        return fcntl.ioctl(fd, request, arg)
    except OSError as err:
        return -err.errno
kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
vm = fcntl.ioctl(kvm, 0xAE01, 0)
caps = [int(a) for a in sys.argv[1:]]
print(json.dumps({"system": {c: ask(kvm, 0xAE03, c) for c in caps}, "vm": {c: ask(vm, 0xAE03, c) for c in caps},
                  "api": ask(kvm, 0xAE00, 0)}))
"""

CAPS = (Cap.IOEVENTFD, Cap.USER_MEMORY, Cap.NR_MEMSLOTS, Cap.X2APIC_API, Cap.IRQFD, Cap.IMMEDIATE_EXIT)


@pytest.fixture(autouse=True)
def _seccomp_here() -> None:
    if platform.machine() not in _seccomp.ARCHES or platform.machine() not in GENERIC_ARCHES:
        pytest.skip(f"emulation is written for x86_64 and aarch64; this is {platform.machine()}")
    if "errno" not in _seccomp.actions_available().split():
        pytest.skip("this kernel has no seccomp filters (/proc/sys/kernel/seccomp/actions_avail)")


def needs_supervisor() -> None:
    if not supervisor_available():
        pytest.skip(f"the seccomp supervisor needs user notification and Linux 5.5; this is {os.uname().release}")


def kvmprobe_cli(*args: str, stdin: bytes = b"", timeout: float = 120) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "kvmprobe", *args], input=stdin.decode(), capture_output=True,
                          text=True, timeout=timeout)


def raw_answers(raw_kvm_fd: int, caps: Sequence[int]) -> Dict[str, Dict[int, int]]:
    vm = fcntl.ioctl(raw_kvm_fd, RAW_KVM_CREATE_VM, 0)
    try:
        return {"system": {c: raw_check_extension(raw_kvm_fd, c) for c in caps},
                "vm": {c: raw_check_extension(vm, c) for c in caps}}
    finally:
        os.close(vm)


def child_answers(*emulate_args: str, caps: Sequence[int] = tuple(map(int, CAPS))) -> Dict[str, Dict[int, int]]:
    done = kvmprobe_cli("emulate", *emulate_args, "--", sys.executable, "-c", CHILD, *map(str, caps))
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    return {"system": {int(k): v for k, v in doc["system"].items()}, "vm": {int(k): v for k, v in doc["vm"].items()},
            "api": {0: doc["api"]}}


@pytest.mark.parametrize("how", [[], ["--trace=TRACE", "--tracer", "supervisor"]], ids=["filter", "supervisor"])
def test_a_masked_capability_reads_0_on_the_system_and_a_vm_fd_and_the_rest_their_real_values(
        raw_kvm_fd: int, how: List[str], tmp_path: Path) -> None:
    if how:
        needs_supervisor()
        how = [arg.replace("TRACE", str(tmp_path / "trace.txt")) for arg in how]
    real = raw_answers(raw_kvm_fd, list(map(int, CAPS)))
    assert real["system"][36] > 0 and real["vm"][36] > 0, "this host must have IOEVENTFD for the test to mean anything"
    seen = child_answers("--mask", "IOEVENTFD", *how)
    assert seen["system"] == {**real["system"], 36: 0}
    assert seen["vm"] == {**real["vm"], 36: 0}
    assert seen["api"] == {0: 12}


def test_kvmprobe_itself_under_an_emulated_preset_reports_that_preset(raw_kvm_fd: int) -> None:
    needs_supervisor()
    preset = load_preset("linux-3.10")
    done = kvmprobe_cli("emulate", "--host", "preset:linux-3.10", "--", sys.executable, "-m", "kvmprobe", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["number"]: row["value"] for row in json.loads(done.stdout)["capabilities"]}
    assert rows == {int(cap): preset.values.get(cap, 0) for cap in Cap}
    # With --values real, the preset hides what it lacks and this kernel answers the rest.
    done = kvmprobe_cli("emulate", "--host", "preset:linux-3.10", "--values", "real", "--", sys.executable, "-m",
                        "kvmprobe", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["number"]: row["value"] for row in json.loads(done.stdout)["capabilities"]}
    assert rows == {int(cap): raw_check_extension(raw_kvm_fd, int(cap)) if preset.has(cap) else 0 for cap in Cap}


def test_recorded_values_and_api_version_are_answered_exactly(tmp_path: Path, raw_kvm_fd: int) -> None:
    needs_supervisor()
    host = fake_probe_result({"NR_MEMSLOTS": 32, "X2APIC_API": 3, "USER_MEMORY": 1, "IOEVENTFD": 1},
                             vm_values={"NR_MEMSLOTS": 32, "X2APIC_API": 1, "USER_MEMORY": 1}, api_version=11,
                             errors={"IRQFD": 5})
    path = tmp_path / "old.json"
    path.write_text(json.dumps(snapshot_document(host)))
    seen = child_answers("--host", str(path))
    assert seen["system"] == {36: 1, 3: 1, 10: 32, 129: 3, 32: -5, 136: 0}
    assert seen["vm"] == {36: 0, 3: 1, 10: 32, 129: 1, 32: 0, 136: 0}  # the recorded VM-fd answers
    assert seen["api"] == {0: 11}


@pytest.mark.parametrize("tracer", ["strace", "supervisor"])
def test_trace_records_each_capability_fd_answer_and_mask(tmp_path: Path, raw_kvm_fd: int, tracer: str) -> None:
    if tracer == "strace" and shutil.which("strace") is None:
        pytest.skip("strace is not installed here")
    if tracer == "supervisor":
        needs_supervisor()
    real = raw_answers(raw_kvm_fd, [3])
    out = tmp_path / "trace.json"
    done = kvmprobe_cli("emulate", "--mask", "IOEVENTFD", f"--trace={out}", "--tracer", tracer, "--",
                        sys.executable, "-c", CHILD, "36", "3", "36")
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["schema"] == "kvmprobe.trace/1" and doc["tracer"] == tracer
    calls = {(c["name"], c["fd"]): c for c in doc["calls"]}
    assert set(calls) == {("KVM_CAP_IOEVENTFD", "system"), ("KVM_CAP_IOEVENTFD", "vm"),
                          ("KVM_CAP_USER_MEMORY", "system"), ("KVM_CAP_USER_MEMORY", "vm")}
    for fd in ("system", "vm"):
        masked = calls[("KVM_CAP_IOEVENTFD", fd)]
        assert (masked["calls"], masked["answers"], masked["masked"]) == (2, [0], True)
        assert calls[("KVM_CAP_USER_MEMORY", fd)]["masked"] is False
    assert calls[("KVM_CAP_USER_MEMORY", "system")]["answers"] == [real["system"][3]]
    # strace sees the kernel's answer on a VM fd; the supervisor cannot (KVM refuses another mm).
    assert calls[("KVM_CAP_USER_MEMORY", "vm")]["answers"] == ([real["vm"][3]] if tracer == "strace" else [])
    assert doc["api_version_calls"] == 1
    text = kvmprobe_cli("emulate", "--mask", "IOEVENTFD", "--trace", "--tracer", tracer, "--", sys.executable, "-c",
                        CHILD, "36").stderr
    assert f"# traced by {tracer}" in text and "KVM_CAP_IOEVENTFD" in text and "masked" in text


def test_no_fd_of_kvmprobe_reaches_the_command_or_stays_open(tmp_path: Path) -> None:
    needs_supervisor()
    listing = "import os; print(sorted(int(n) for n in os.listdir('/proc/self/fd')))"
    for args in ([], ["--host", "preset:linux-3.10"], ["--mask", "HLT", f"--trace={tmp_path / 'trace.txt'}"]):
        done = kvmprobe_cli("emulate", *args, "--", sys.executable, "-c", listing)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "[0, 1, 2, 3]\n", args  # 3: the listing's own directory fd
    before = open_fds()
    with open(os.devnull, "wb") as quiet:
        for kwargs in ({"host": "preset:linux-3.10"}, {"mask": ["HLT"], "trace": True, "tracer": "supervisor"}):
            assert emulate([sys.executable, "-c", CHILD, "1"], stdout=quiet, **kwargs).returncode == 0
    assert open_fds() == before


def test_exit_status_is_the_commands_and_a_timeout_kills_the_process_group(tmp_path: Path) -> None:
    assert kvmprobe_cli("emulate", "--", "sh", "-c", "exit 7").returncode == 7
    assert kvmprobe_cli("emulate", "--", "sh", "-c", "kill -TERM $$").returncode == 128 + signal.SIGTERM
    pid_file = tmp_path / "grandchild"
    done = kvmprobe_cli("emulate", "--timeout", "1", "--", "sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait",
                        timeout=30)  # a limit on the test, not a measurement: 124 says --timeout fired
    assert done.returncode == 124
    assert "did not finish within --timeout" in done.stderr
    grandchild = int(pid_file.read_text())
    for _ in range(100):
        try:
            state = Path(f"/proc/{grandchild}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            break
        if state in ("Z", "X"):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the backgrounded sleep {grandchild} outlived the timeout")


def test_the_example_vmm_refuses_on_an_emulated_centos7_kernel_as_cloud_hypervisor_does() -> None:
    needs_supervisor()
    # RHEL 7.9's kernel as its source answers (it backports SPLIT_IRQCHIP, lacks IMMEDIATE_EXIT).
    done = kvmprobe_cli("emulate", "--host", "preset:rhel-7.9", "--", sys.executable, str(EXAMPLE_VMM))
    assert done.returncode == 101
    assert "called `Result::unwrap()` on an `Err` value: CheckExtensions(Capability missing: ImmediateExit)" in done.stderr
    assert kvmprobe_cli("emulate", "--", sys.executable, str(EXAMPLE_VMM)).returncode == 0


def test_learn_finds_every_capability_the_example_vmm_requires(tmp_path: Path) -> None:
    import runpy

    required = runpy.run_path(str(EXAMPLE_VMM), run_name="example")["REQUIRED"]  # the example's own list
    found = learn([sys.executable, str(EXAMPLE_VMM)], timeout=30, total_timeout=300, name="mini-ch-vmm")
    assert found.complete and found.optional == ()
    assert [(cap.rust_name, how.rsplit(": ", 1)[1]) for cap, how in found.required] == [
        (name, f"{name})") for name, _ in required]


# --- Debian's QEMU -------------------------------------------------------------------------------

QEMU = ["qemu-system-x86_64", "-accel", "kvm", "-machine", "q35", "-display", "none", "-nodefaults", "-S", "-qmp", "stdio"]
QMP = b'{"execute":"qmp_capabilities"}\n{"execute":"query-kvm"}\n{"execute":"quit"}\n'

# QEMU 7.2's own source (the Debian package's qemu_7.2+dfsg.orig.tar.xz, which is v7.2.0; none
# of Debian's patches v7.2.1..v7.2.22 touches these lines):
# - accel/kvm/kvm-all.c:108-113 kvm_required_capabilites: USER_MEMORY, DESTROY_MEMORY_REGION_WORKS,
#   JOIN_MEMORY_REGIONS_WORKS; target/i386/kvm/kvm.c:83-88 kvm_arch_required_capabilities:
#   SET_TSS_ADDR, EXT_CPUID, MP_STATE. kvm_init (kvm-all.c:2415-2424) checks them in that order
#   and refuses: fprintf(stderr, "kvm does not support %s\n%s", name, upgrade_note).
QEMU_7_2_REQUIRED_LISTS = {
    "USER_MEMORY": "kvm does not support KVM_CAP_USER_MEMORY",
    "DESTROY_MEMORY_REGION_WORKS": "kvm does not support KVM_CAP_DESTROY_MEMORY_REGION_WORKS",
    "JOIN_MEMORY_REGIONS_WORKS": "kvm does not support KVM_CAP_JOIN_MEMORY_REGIONS_WORKS",
    "SET_TSS_ADDR": "kvm does not support KVM_CAP_SET_TSS_ADDR",
    "EXT_CPUID": "kvm does not support KVM_CAP_EXT_CPUID",
    "MP_STATE": "kvm does not support KVM_CAP_MP_STATE",
}
# - target/i386/kvm/kvm.c:2484-2487 kvm_arch_init, outside those lists: without IRQ_ROUTING,
#   error_report("kvm: KVM_CAP_IRQ_ROUTING not supported by KVM") and -ENOTSUP.
QEMU_7_2_OTHER_REFUSALS = {"IRQ_ROUTING": "qemu-system-x86_64: -accel kvm: kvm: KVM_CAP_IRQ_ROUTING not supported by KVM"}
# - target/i386/kvm/kvm.c:2052-2055 skips KVM_X86_SETUP_MCE when KVM_CAP_MCE is 0, yet
#   kvm_put_msrs (kvm.c:3521-3525) still writes MSR_MCG_CTL (0x17b) for the default CPU model's
#   MCE/MCA; the kernel refuses that MSR and QEMU stops at kvm.c:3173 "error: failed to set MSR".
QEMU_7_2_FAILS_WITHOUT = {"MCE": "qemu-system-x86_64: error: failed to set MSR 0x17b to 0xffffffffffffffff"}


def qemu_7_2() -> None:
    if platform.machine() != "x86_64" or shutil.which(QEMU[0]) is None:
        pytest.skip(f"{QEMU[0]} is not installed here (Debian: apt-get install qemu-system-x86)")
    version = subprocess.run([QEMU[0], "--version"], capture_output=True, text=True, timeout=60).stdout
    if not version.startswith("QEMU emulator version 7.2."):
        pytest.skip(f"the expected lists are QEMU 7.2's; this is {version.splitlines()[0] if version else 'unknown'}")


def test_qemu_refuses_with_its_own_message_when_a_required_capability_is_masked() -> None:
    qemu_7_2()
    done = kvmprobe_cli("emulate", "--mask", "MP_STATE", "--", *QEMU, stdin=QMP, timeout=60)
    assert done.returncode != 0
    assert done.stderr.splitlines()[0] == "kvm does not support KVM_CAP_MP_STATE"
    assert kvmprobe_cli("emulate", "--mask", "NESTED_STATE", "--", *QEMU, stdin=QMP, timeout=60).returncode == 0


def test_learn_on_qemu_finds_what_its_source_requires(tmp_path: Path) -> None:
    qemu_7_2()
    (tmp_path / "qmp").write_bytes(QMP)
    out = tmp_path / "qemu.toml"
    done = kvmprobe_cli("learn", "--stdin", str(tmp_path / "qmp"), "--timeout", "20", "--total-timeout", "240",
                        "-o", str(out), "--", *QEMU, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "INCOMPLETE" not in out.read_text()  # every capability tried within --total-timeout
    from kvmprobe.profiles import load_profile

    profile = load_profile(out)
    required = {r.cap.name: r.text for r in profile.required}
    assert required == {**QEMU_7_2_REQUIRED_LISTS, **QEMU_7_2_OTHER_REFUSALS, **QEMU_7_2_FAILS_WITHOUT}
    # QEMU asks its lists first, in order, so they lead the profile.
    assert [r.cap.name for r in profile.required][:6] == list(QEMU_7_2_REQUIRED_LISTS)
    assert len(profile.optional) > 20 and all(r.cap.name not in required for r in profile.optional)
    check = kvmprobe_cli("check", "--profile", str(out))
    assert check.returncode == 0 and "ready" in check.stdout
    # The learned profile and 'check qemu@<this release>' agree on every capability both name (#16):
    # what QEMU could not start without is required or implicit there, what it could is neither.
    version = subprocess.run([QEMU[0], "--version"], capture_output=True, text=True, timeout=60).stdout.split()[3]
    from kvmprobe.profiles import builtin_profile

    ours = {r.cap: r.kind for r in builtin_profile("qemu", "x86_64", version).requirements}
    shared = [r for r in profile.requirements if r.cap in ours]
    assert len(shared) > 30
    disagree = [(r.cap.name, r.kind, ours[r.cap]) for r in shared
                if (r.kind == "required") != (ours[r.cap] in ("required", "implicit"))]
    assert disagree == []
    assert {r.cap for r in profile.required} <= {c for c, kind in ours.items() if kind in ("required", "implicit")}


# A VMM that hangs without IOEVENTFD and needs nothing else; it sleeps a little on every run.
HANGS_WITHOUT_IOEVENTFD = """
import fcntl, os, time
kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
time.sleep(float(os.environ.get("NAP", "0")))
if fcntl.ioctl(kvm, 0xAE03, 36) == 0:
    os.system("sleep 300.0271828")  # a child that must die with the run's process group (a duration no one else sleeps)
fcntl.ioctl(kvm, 0xAE03, 3)
"""


def test_learn_bounds_each_run_and_the_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: List[Tuple[int, int, str]] = []
    found = learn([sys.executable, "-c", HANGS_WITHOUT_IOEVENTFD], timeout=2, total_timeout=60,
                  progress=lambda done, total, what: seen.append((done, total, what)))
    assert [(cap.name, how) for cap, how in found.required] == [("IOEVENTFD", "does not finish within 2 s")]
    assert found.optional == (Cap.USER_MEMORY,) and found.complete and found.runs == 3
    assert seen == [(1, 3, "2 capabilities asked"), (2, 3, "KVM_CAP_IOEVENTFD: required"),
                    (3, 3, "KVM_CAP_USER_MEMORY: optional")]
    leftover = subprocess.run(["pgrep", "-f", "^sleep 300.0271828$"], capture_output=True, text=True)
    assert leftover.stdout == "", "the hung run's child outlived its process group"
    monkeypatch.setenv("NAP", "0.4")
    cut = learn([sys.executable, "-c", HANGS_WITHOUT_IOEVENTFD], timeout=30, total_timeout=1.0)
    # The total limit, not the 30 s per run, ended the hanging run: what it left is untried.
    assert cut.runs <= 2 and not cut.complete
    assert cut.untried and set(cut.untried) | {c for c, _ in cut.required} | set(cut.optional) \
        == {Cap.IOEVENTFD, Cap.USER_MEMORY}
    assert "INCOMPLETE" in cut.text()
    done = kvmprobe_cli("learn", "--total-timeout", "1", "--", sys.executable, "-c", HANGS_WITHOUT_IOEVENTFD)
    assert done.returncode == 1 and "untried: the total time limit ran out" in done.stderr
    assert "# INCOMPLETE: the total time limit left out" in done.stdout
