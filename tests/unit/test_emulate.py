"""kvmprobe.emulate without /dev/kvm: what each capability is answered, the strace reader, the
learned profile's file, and every kind of bad input (one line, exit 2, the command not run)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

from kvmprobe import Cap
from kvmprobe._cli import main
from kvmprobe._ioctl import KvmIoctls
from kvmprobe._profile_text import profile_text, toml_string
from kvmprobe._supervisor import FILTER, SUPERVISOR, Policy, Tally, parse_strace_line, program_for
from kvmprobe import _seccomp
from kvmprobe.emulate import Learned, Trace, TraceEntry, policy_for, supervisor_available
from kvmprobe.errors import EmulationError, UnknownCapability
from kvmprobe.profiles import Profile, Requirement, load_profile
from kvmprobe.snapshot import snapshot_document
from kvmprobe.testing import fake_probe_result

from _bpf import AUDIT_X86_64, CHECK_EXTENSION, ERRNO, run_bpf, seccomp_data

X86 = _seccomp.arch_for("x86_64", "linux")
IOCTLS = KvmIoctls.for_machine("x86_64")


def run(argv: List[str], capsys: pytest.CaptureFixture[str]) -> Tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# --- What is answered ---------------------------------------------------------------------------


def test_mask_alone_answers_zero_for_those_and_leaves_the_rest_to_the_kernel() -> None:
    policy = policy_for(None, ["IOEVENTFD,irqfd", 36])
    assert policy.system == policy.vm == {36: 0, 32: 0}
    assert policy.answer("system", 3) is None and policy.answer("vm", 3) is None
    assert policy.filter_only()


def test_a_recorded_host_without_exact_values_hides_what_it_lacks_only() -> None:
    host = fake_probe_result({"HLT": 1, "NR_MEMSLOTS": 32}, errors={"IRQFD": 5})
    policy = policy_for(host)
    assert policy.answer("system", int(Cap.HLT)) is None  # the kernel's own answer
    assert policy.answer("system", int(Cap.IMMEDIATE_EXIT)) == 0  # the host lacks it
    assert policy.answer("vm", int(Cap.IRQFD)) == -5  # its query failed there
    assert policy.answer("system", 9999) == 0  # beyond the table: the old host lacks it too
    assert policy.filter_only() and policy.api_version is None


def test_exact_values_answer_the_recording_on_both_fds() -> None:
    host = fake_probe_result({"NR_MEMSLOTS": 32, "X2APIC_API": 15, "HLT": 1},
                             vm_values={"NR_MEMSLOTS": 32, "X2APIC_API": 11})
    policy = policy_for(host, ["HLT"], exact=True)
    assert policy.answer("system", int(Cap.NR_MEMSLOTS)) == 32
    assert (policy.answer("system", int(Cap.X2APIC_API)), policy.answer("vm", int(Cap.X2APIC_API))) == (15, 11)
    assert policy.answer("system", int(Cap.HLT)) == 0 == policy.answer("vm", int(Cap.HLT))
    assert policy.api_version == 12 and not policy.filter_only()
    # Without recorded VM-fd values, a capability the host has is the kernel's to answer on a VM fd.
    no_vm = policy_for(fake_probe_result({"NR_MEMSLOTS": 32}), exact=True)
    assert no_vm.answer("vm", int(Cap.NR_MEMSLOTS)) is None and no_vm.answer("vm", int(Cap.HLT)) == 0


def test_capabilities_a_newer_kvmprobe_recorded_are_answered_as_recorded() -> None:
    doc = snapshot_document(fake_probe_result({"HLT": 1}))
    doc["capabilities"].append({"name": "KVM_CAP_FROM_THE_FUTURE", "number": 4000, "value": 7})
    from kvmprobe.snapshot import load_snapshot

    host = load_snapshot(doc)
    assert policy_for(host).answer("system", 4000) is None
    assert policy_for(host, exact=True).answer("system", 4000) == 7


def test_unknown_mask_names_fail_with_suggestions() -> None:
    with pytest.raises(UnknownCapability, match="IMMEDIATE_EXIT"):
        policy_for(None, ["IMEDIATE_EXIT"])
    with pytest.raises(EmulationError, match="empty"):
        policy_for(None, ["IOEVENTFD,,IRQFD"])


def test_filter_program_of_a_policy_answers_as_the_policy_says() -> None:
    host = fake_probe_result({"HLT": 1}, errors={"IRQFD": 5})
    prog = program_for(policy_for(host, ["HLT"]), FILTER, notify_all=False, arch=X86, ioctls=IOCTLS)
    for number, expected in ((int(Cap.HLT), ERRNO), (int(Cap.IRQFD), ERRNO | 5), (int(Cap.IMMEDIATE_EXIT), ERRNO),
                             (5000, ERRNO)):
        assert run_bpf(prog, seccomp_data(16, AUDIT_X86_64, (3, CHECK_EXTENSION, number))) == expected
    allowed = program_for(policy_for(host), FILTER, notify_all=False, arch=X86, ioctls=IOCTLS)
    assert run_bpf(allowed, seccomp_data(16, AUDIT_X86_64, (3, CHECK_EXTENSION, int(Cap.HLT)))) == 0x7FFF0000


def test_supervisor_program_notifies_only_what_the_filter_cannot_answer_unless_tracing() -> None:
    policy = policy_for(fake_probe_result({"NR_MEMSLOTS": 32}), ["HLT"], exact=True)
    quiet = program_for(policy, SUPERVISOR, notify_all=False, arch=X86, ioctls=IOCTLS)
    traced = program_for(policy, SUPERVISOR, notify_all=True, arch=X86, ioctls=IOCTLS)
    ask = [seccomp_data(16, AUDIT_X86_64, (3, CHECK_EXTENSION, int(c))) for c in (Cap.HLT, Cap.NR_MEMSLOTS)]
    assert [run_bpf(quiet, d) for d in ask] == [ERRNO, 0x7FC00000]
    assert [run_bpf(traced, d) for d in ask] == [0x7FC00000, 0x7FC00000]
    with pytest.raises(AssertionError):
        program_for(policy, FILTER, notify_all=False, arch=X86, ioctls=IOCTLS)


def test_supervisor_needs_user_notification_and_linux_5_5() -> None:
    assert supervisor_available("5.5.0", "errno user_notif")
    assert not supervisor_available("5.4.210", "errno user_notif")
    assert not supervisor_available("6.18.0", "kill_process errno trace")


# --- Tracing -------------------------------------------------------------------------------------


def test_strace_lines_become_the_tally() -> None:
    tally = Tally()
    for line in (
        "ioctl(3</dev/kvm<char 10:232>>, 0xae03, 0x3) = 1",
        "ioctl(3</dev/kvm<char 10:232>>, 0xae03, 0x3) = 1",
        "ioctl(7<anon_inode:kvm-vm>, 0xae03, 0x24) = 0",
        "ioctl(3</dev/kvm<char 10:232>>, 0xae03, 0xa) = -1 EIO (Input/output error)",
        "ioctl(3</dev/kvm<char 10:232>>, 0xae00, 0) = 12",
        "ioctl(5</dev/null<char 1:3>>, 0xae03, 0x3) = -1 ENOTTY (Inappropriate ioctl for device)",
        "ioctl(1</dev/pts/0<char 136:0>>, 0x5401, 0x7ffd) = 0",
        "+++ exited with 0 +++",
        "ioctl(3</dev/kvm<char 10:232>>, 0xae03, 0x3",
    ):
        parse_strace_line(line, IOCTLS, tally)
    assert tally.calls == {(3, "system"): {1: 2}, (36, "vm"): {0: 1}, (10, "system"): {-5: 1}}
    assert tally.api_version_calls == 1


def test_tally_memory_is_bounded_by_distinct_numbers() -> None:
    tally = Tally()
    for number in range(Tally.MAX_KEYS + 10):
        tally.add(number, "system", 0)
    assert len(tally.calls) == Tally.MAX_KEYS and tally.dropped == 10


def test_trace_text_and_json() -> None:
    entries = (TraceEntry(3, "KVM_CAP_USER_MEMORY", "system", 2, (1,), False, False, None),
               TraceEntry(36, "KVM_CAP_IOEVENTFD", "vm", 1, (0,), True, True, None),
               TraceEntry(10, "KVM_CAP_NR_MEMSLOTS", "system", 1, (32,), True, False, 32764),
               TraceEntry(129, "KVM_CAP_X2APIC_API", "vm", 1, (), False, False, None))
    trace = Trace("supervisor", "because", entries, 1, 0)
    text = trace.render()
    assert "KVM_CAP_IOEVENTFD" in text and "masked" in text and "recorded (kernel: 32764)" in text
    assert text.splitlines()[-1] == "4 capabilities asked in 5 calls (1 masked); KVM_GET_API_VERSION asked 1 time"
    doc = json.loads(json.dumps(trace.to_dict()))
    assert doc["schema"] == "kvmprobe.trace/1" and doc["calls"][1]["masked"] is True and doc["calls"][3]["answers"] == []


# --- The learned profile's file -------------------------------------------------------------------


def learned(required: List[Tuple[Cap, str]], optional: List[Cap]) -> Learned:
    reqs = tuple(Requirement(c, "required", t) for c, t in required) + tuple(
        Requirement(c, "optional", "learned") for c in optional)
    profile = Profile("my-vmm", "my-vmm", "x86_64", reqs, source="kvmprobe learn: my-vmm --run")
    asked = tuple(c for c, _ in required) + tuple(optional)
    return Learned(profile, ("my-vmm",), asked, tuple(required), tuple(optional), (), (250,), 3, 1.0, "exit status 0")


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_the_learned_profile_is_what_check_profile_reads(tmp_path: Path, suffix: str) -> None:
    pytest.importorskip("tomllib") if suffix == ".toml" else None
    found = learned([(Cap.USER_MEMORY, 'kvm does not support "KVM_CAP_USER_MEMORY" \\ \U0001F600')], [Cap.IRQFD])
    path = tmp_path / f"my-vmm{suffix}"
    path.write_text(found.text(suffix[1:]))
    profile = load_profile(path)
    assert [(r.cap, r.kind, r.text) for r in profile.requirements] == [(r.cap, r.kind, r.text) for r in found.profile.requirements]
    assert profile.arch == "x86_64" and profile.source == "kvmprobe learn: my-vmm --run"


def test_a_profile_without_optional_capabilities_still_has_its_required_table(tmp_path: Path) -> None:
    pytest.importorskip("tomllib")
    path = tmp_path / "none.toml"
    path.write_text(learned([], []).text())
    assert load_profile(path).requirements == ()


def test_toml_strings_escape_what_toml_forbids() -> None:
    import tomllib  # type: ignore[import-not-found,unused-ignore]

    for text in ('a "b" \\ c', "tab\there", "\x00\x1f\x7f", "\U0001F600 é", ""):
        assert tomllib.loads(f"k = {toml_string(text)}")["k"] == text
    with pytest.raises(TypeError):
        profile_text({"name": ["a"]}, "toml")


# --- Bad input: one line, exit 2, nothing run --------------------------------------------------


@pytest.mark.parametrize(
    "argv, words",
    [
        (["emulate"], "no command"),
        (["emulate", "--mask", "IOEVENTFD", "--"], "no command"),
        (["emulate", "--mask", "IMEDIATE_EXIT", "--", "true"], "did you mean KVM_CAP_IMMEDIATE_EXIT"),
        (["emulate", "--mask", "IOEVENTFD,,IRQFD", "--", "true"], "empty capability"),
        (["emulate", "--host", "/nonexistent/host.json", "--", "true"], "/nonexistent/host.json"),
        (["emulate", "--host", "preset:linux-3.1", "--", "true"], "did you mean linux-3.10"),
        (["emulate", "--", "/nonexistent/vmm"], "no such program"),
        (["emulate", "--", "no-such-vmm-anywhere"], "no such program"),
        (["emulate", "--timeout", "0", "--", "true"], "--timeout"),
        (["emulate", "--values", "exact", "--", "true"], "invalid choice"),
        (["learn"], "no command"),
        (["learn", "--ok-output", "(", "--", "true"], "no regular expression"),
        (["learn", "--ok-exit", "0", "--ok-output", "x", "--", "true"], "not allowed with"),
        (["learn", "--stdin", "/nonexistent/in", "--", "true"], "/nonexistent/in"),
        (["learn", "--name", "bad name", "--", "true"], "--name"),
        (["learn", "--timeout", "-1", "--", "true"], "positive"),
        (["learn", "--", "/nonexistent/vmm"], "no such program"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv: List[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(argv, capsys)
    assert code == 2, err
    assert out == "" and err.startswith("kvmprobe: error: ") and err.count("\n") == 1, err
    assert words in err


def test_a_snapshot_that_does_not_load_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "host.json"
    bad.write_text('{"schema": "kvmprobe-snapshot", "schema_version": 1}')
    marker = tmp_path / "ran"
    code, _, err = run(["emulate", "--host", str(bad), "--", "touch", str(marker)], capsys)
    assert code == 2 and "host.json" in err and err.count("\n") == 1
    assert not marker.exists()


def test_learn_refuses_a_command_that_fails_with_nothing_masked(capsys: pytest.CaptureFixture[str]) -> None:
    if not sys.platform.startswith("linux") or os.uname().machine not in _seccomp.ARCHES:
        pytest.skip("needs a seccomp filter: x86_64 or aarch64 Linux")
    if not (supervisor_available() or __import__("shutil").which("strace")):
        pytest.skip("learn needs the seccomp supervisor (Linux 5.5) or strace to trace")
    code, out, err = run(["learn", "--timeout", "20", "--", sys.executable, "-c", "import sys; sys.exit('no VMM here')"],
                         capsys)
    assert code == 2 and out == ""
    assert "does not succeed even with nothing masked (exit status 1): no VMM here" in err


def test_output_into_a_fifo_is_refused_and_a_regular_file_replaced(tmp_path: Path) -> None:
    # Like every command's -o: only a regular file or nothing (tests/unit/test_output_files.py has
    # every kind of node); the trace goes to stderr with a bare --trace.
    import stat

    from kvmprobe._cli._common import UsageError
    from kvmprobe._cli._common import write_output

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="it is a FIFO, not a regular file"):
        write_output(str(fifo), "trace\n")  # never blocks waiting for a reader
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    regular = tmp_path / "trace.txt"
    write_output(str(regular), "a\n")
    write_output(str(regular), "b\n")
    assert regular.read_text() == "b\n" and sorted(os.listdir(tmp_path)) == ["pipe", "trace.txt"]
