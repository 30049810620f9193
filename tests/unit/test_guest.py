"""The micro-guest without KVM: bad input, the watchdog's plumbing, and recorded reports.

What needs /dev/kvm is in tests/hardware/test_guest_hw.py.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import time
from typing import Any, Dict

import pytest

from _helpers import open_fds
from kvmprobe import guest
from kvmprobe._arch import canonical
from kvmprobe._forked import run_forked
from kvmprobe._guest_code import MEMORY_SIZE, REAL_MODE_CODE_LIMIT
from kvmprobe._guest_report import Compute, CpuidRow, ExitCost, GuestExit, RunReport
from kvmprobe.errors import GuestError, KvmProbeError, SnapshotError

FIVE_BYTES = bytes([0xB0, 0x42, 0xE6, 0x10, 0xF4])


# --- bad input: one clear error, before any device is touched ---------------------------------------


@pytest.mark.parametrize(
    "code, mode, match",
    [
        (b"\x90" * (MEMORY_SIZE - 0x10000 + 1), "long", "do not fit the guest's memory slot"),
        (b"\x90" * (REAL_MODE_CODE_LIMIT + 1), "real", "do not fit one real-mode segment"),
        (b"", "real", "no guest code"),
        (FIVE_BYTES, "virtual-8086", "unknown CPU mode"),
    ],
)
def test_bad_code_or_mode_is_a_guest_error(code: bytes, mode: str, match: str) -> None:
    with pytest.raises(GuestError, match=match) as caught:
        guest.run_guest(code, mode=mode, device="/nonexistent/kvm")
    assert caught.value.hint
    assert isinstance(caught.value, KvmProbeError)


@pytest.mark.parametrize("limit", [0, -1, -0.5, float("nan"), float("inf"), True, "2"])
def test_a_time_limit_that_is_not_a_positive_number_is_a_guest_error(limit: Any) -> None:
    with pytest.raises(GuestError, match="time limit") as caught:
        guest.run_guest(FIVE_BYTES, time_limit=limit, device="/nonexistent/kvm")
    assert "hint" in str(caught.value)


@pytest.mark.parametrize("machine", ["aarch64", "arm64", "riscv64", "s390x", "ppc64le"])
def test_other_architectures_say_not_available_yet(machine: str) -> None:
    with pytest.raises(GuestError, match=f"not available on {canonical(machine)} yet"):
        guest._check_machine(machine)
    guest._check_machine("x86_64")
    guest._check_machine("amd64")


def test_max_exits_must_be_a_count() -> None:
    with pytest.raises(GuestError, match="max_exits"):
        guest.run_guest(FIVE_BYTES, max_exits=0, device="/nonexistent/kvm")


# --- the watchdog ------------------------------------------------------------------------------------


def test_records_arrive_in_order_and_the_child_is_another_process() -> None:
    def work(send: Any) -> None:
        for i in range(500):
            send(("n", i, os.getpid()))

    result = run_forked(work, 10)
    assert [r[1] for r in result.records] == list(range(500))
    assert {r[2] for r in result.records} != {os.getpid()}
    assert result.exit_code == 0 and not result.timed_out


def test_a_child_that_never_ends_is_killed_at_the_limit_and_what_it_sent_is_kept() -> None:
    before = open_fds()

    def work(send: Any) -> None:
        send(("before", 1))
        while True:
            time.sleep(1)

    result = run_forked(work, 0.3)
    assert result.timed_out and result.signal == signal.SIGKILL
    assert result.records == [("before", 1)]
    assert open_fds() == before


def test_a_child_that_raises_reports_it_and_never_returns_into_the_caller() -> None:
    parent = os.getpid()

    def work(send: Any) -> None:
        raise RuntimeError("boom")

    result = run_forked(work, 10)
    assert os.getpid() == parent
    assert result.records == [("crash", "RuntimeError", "boom")]
    assert result.exit_code == 70


def test_a_child_killed_by_a_signal_is_no_result() -> None:
    run = guest._collect(guest._Spec(FIVE_BYTES, "real", 8, 0, ()), run_forked(lambda send: os.kill(os.getpid(), signal.SIGTERM), 10))[0]
    assert run.outcome == "error" and "signal 15" in run.error


# --- recorded reports --------------------------------------------------------------------------------


def sample() -> RunReport:
    return RunReport(
        measured_at="2026-12-01T22:00:00Z",
        arch="x86_64",
        time_limit=2.0,
        outcome="halted",
        real_mode=(GuestExit(2, ns=50000, port=0x10, direction="out", size=1, repeat=1, value=0x42), GuestExit(5, ns=17000)),
        long_mode_outcome="halted",
        exit_cost=ExitCost(199, 14000, 13000, 50000),
        compute=Compute(50000, 130_000_000, 25_000),
        cpuid=(CpuidRow(1, 0, (1, 2, 0xF7F83203, 4), (1, 2, 0x81202000, 4)), CpuidRow(0, 0, (1, 2, 3, 4), None)),
    )


def test_a_report_reads_back_as_it_was_written() -> None:
    report = sample()
    document = json.loads(json.dumps(report.to_dict()))
    again = RunReport.from_dict(document, lambda field, message, hint: SnapshotError(message, field=field))
    assert again == report
    assert again.ok and again.cpuid_follows_table is False
    assert round(again.compute.slowdown) == 5200 if again.compute else False


def make_error(field: str, message: str, hint: str) -> Exception:
    return SnapshotError(message, field=field, hint=hint)


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda d: d.update(ok=False), "$.run.ok"),
        (lambda d: d.update(cpuid_follows_table=True), "$.run.cpuid_follows_table"),
        (lambda d: d.update(outcome="exploded"), "$.run.outcome"),
        (lambda d: d.update(time_limit=0), "$.run.time_limit"),
        (lambda d: d.update(measured_at="yesterday"), "$.run.measured_at"),
        (lambda d: d["real_mode"][0].update(name="KVM_EXIT_HLT"), "$.run.real_mode[0].name"),
        (lambda d: d["real_mode"][0].update(port=70000), "$.run.real_mode[0].port"),
        (lambda d: d["exit_cost"].update(median_ns=-1), "$.run.exit_cost.median_ns"),
        (lambda d: d["cpuid"][0].update(guest=[1, 2, 3]), "$.run.cpuid[0].guest"),
        (lambda d: d.update(extra=1), "$.run.extra"),
        (lambda d: d.update(schema_version=2), "$.run.schema_version"),
    ],
)
def test_a_tampered_report_is_refused_naming_the_field(change: Any, field: str) -> None:
    document: Dict[str, Any] = copy.deepcopy(sample().to_dict())
    change(document)
    with pytest.raises(SnapshotError) as caught:
        RunReport.from_dict(document, make_error)
    assert caught.value.field == field


def test_the_failure_names_what_the_guest_did() -> None:
    shutdown = sample()._replace(outcome="exit", real_mode=(GuestExit(8, ns=1),))
    assert not shutdown.ok
    assert shutdown.failure().startswith("the real-mode guest gave KVM_EXIT_SHUTDOWN (expected KVM_EXIT_IO")
    hung = sample()._replace(outcome="timeout", real_mode=())
    assert hung.failure() == "the real-mode guest did not finish in 2 s"


def test_exit_descriptions_use_the_kernels_names() -> None:
    assert GuestExit(9, hardware_reason=0x80000021).describe() == "KVM_EXIT_FAIL_ENTRY hardware reason 0x80000021"
    assert GuestExit(17, suberror=1, data=(0x10, 0x3)).describe() == (
        "KVM_EXIT_INTERNAL_ERROR KVM_INTERNAL_ERROR_EMULATION data 0x10 0x3"
    )
    assert GuestExit(6, address=0xFEE00000, direction="write", size=4, value=1).describe() == (
        "KVM_EXIT_MMIO write 0xfee00000 size 4 value 0x1"
    )
    assert GuestExit(8).describe() == "KVM_EXIT_SHUTDOWN"
