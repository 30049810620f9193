"""What the micro-guest's results become, without KVM: doctor's run check, readiness on a PVM host,
snapshots, diff, export and the ``run`` command, all on recorded or fake hosts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import List, Tuple

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

import kvmprobe
from kvmprobe import Status, diagnose, diff_hosts, load_preset, load_snapshot, nfd_features, prometheus_text
from kvmprobe._cli import main
from kvmprobe._guest_report import Compute, CpuidRow, ExitCost, GuestExit, RunReport
from kvmprobe.profiles import check_vmm
from kvmprobe.snapshot import snapshot_document, write_snapshot
from kvmprobe.testing import FakeBackend, FakeHost

SCHEMA = json.loads((Path(kvmprobe.__file__).parent / "schema" / "snapshot-2.schema.json").read_text())
SEQUENCE = (GuestExit(2, ns=50_000, port=0x10, direction="out", size=1, repeat=1, value=0x42), GuestExit(5, ns=17_000))


def report(**changes: object) -> RunReport:
    base = RunReport(
        measured_at="2026-12-01T22:00:00Z", arch="x86_64", time_limit=2.0, outcome="halted", real_mode=SEQUENCE,
        long_mode_outcome="halted", exit_cost=ExitCost(199, 1_200, 1_000, 9_000), compute=Compute(50_000, 26_000, 25_000),
        cpuid=(CpuidRow(1, 0, (1, 2, 3, 4), (1, 2, 3, 4)),),
    )  # fmt: skip
    return base._replace(**changes)  # type: ignore[arg-type]


NORMAL = report()
SLOW = report(exit_cost=ExitCost(199, 14_000, 13_000, 50_000), compute=Compute(50_000, 130_000_000, 25_000),
              cpuid=(CpuidRow(1, 0, (1, 2, 0xF7F83203, 4), (1, 2, 0x81202000, 4)),))  # fmt: skip
SHUTDOWN = report(outcome="exit", real_mode=(GuestExit(8, ns=3_000),), long_mode_outcome="", exit_cost=None,
                  compute=None, cpuid=())  # fmt: skip
HUNG = report(outcome="timeout", real_mode=(), long_mode_outcome="", exit_cost=None, compute=None, cpuid=())


def pvm_with(run: RunReport) -> kvmprobe.ProbeResult:
    return dataclasses.replace(load_preset("pvm-6.18"), run=run)


def run_cli(argv: List[str], capsys: pytest.CaptureFixture[str]) -> Tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# --- doctor's run check -------------------------------------------------------------------------------


def test_a_fake_host_reports_the_run_check_as_not_run_never_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = FakeHost.pvm().write(str(tmp_path))
    check = diagnose(root=root, backend=FakeBackend({kvmprobe.Cap.IMMEDIATE_EXIT: 1})).check("run")
    assert check.status is Status.SKIP and check.summary.startswith("not run")
    # Through the CLI with a fake backend: the same SKIP in the JSON document.
    code = main(["doctor", "--json"], backend=FakeBackend({kvmprobe.Cap.IMMEDIATE_EXIT: 1}))
    doc = json.loads(capsys.readouterr().out)
    run = next(c for c in doc["checks"] if c["id"] == "run")
    assert run["status"] == "SKIP" and run["decisive"] is True and code in (0, 1)


def test_recorded_normal_figures_pass_with_the_figures() -> None:
    check = diagnose(pvm_with(NORMAL)).check("run")
    assert check.status is Status.PASS
    assert "KVM_EXIT_IO out on port 0x10 with 0x42, then KVM_EXIT_HLT" in check.summary
    assert "1.2 µs (median of 199)" in check.summary and "1x slower" in check.summary
    assert "(measured 2026-12-01T22:00:00Z)" in check.summary


def test_far_off_normal_is_a_warning_with_the_pvm_remedy() -> None:
    diagnosis = diagnose(pvm_with(SLOW))
    check = diagnosis.check("run")
    assert check.status is Status.WARN and diagnosis.usable
    assert "far off normal" in check.summary and "5,200x slower than natively, normal is native speed" in check.summary
    assert "the guest's CPUID is not the table its vCPU was given" in check.summary
    assert "CONFIG_PVM_GUEST" in check.remedy


@pytest.mark.parametrize("run, words", [(SHUTDOWN, "KVM_EXIT_SHUTDOWN"), (HUNG, "did not finish in 2 s")])
def test_a_guest_that_does_not_run_fails_the_check_and_the_verdict(run: RunReport, words: str) -> None:
    diagnosis = diagnose(pvm_with(run))
    check = diagnosis.check("run")
    assert check.status is Status.FAIL and check.decisive and words in check.summary and check.remedy
    assert not diagnosis.usable and words in diagnosis.summary


def test_a_recording_without_run_results_says_not_recorded() -> None:
    check = diagnose(load_preset("pvm-6.18")).check("run")
    assert check.status is Status.SKIP and check.summary.startswith("not recorded")


# --- readiness on a PVM host ----------------------------------------------------------------------


def test_on_kvm_pvm_gvisor_is_not_ready_and_the_rest_are_ready_on_conditions(capsys: pytest.CaptureFixture[str]) -> None:
    pvm = load_preset("pvm-6.18")
    assert pvm.host is not None and pvm.host.kvm_backend == "kvm_pvm"
    gvisor = check_vmm("gvisor-kvm", pvm)
    assert not gvisor.ready and gvisor.blocked_by and not gvisor.missing_required
    assert "does not run on kvm_pvm" in gvisor.summary() and "systrap" in gvisor.summary()
    assert any("entry_amd64.s" in source for source in gvisor.blocked_by[0].sources)
    firecracker = check_vmm("firecracker", pvm)
    assert firecracker.ready and firecracker.conditions
    assert "CONFIG_PVM_GUEST" in firecracker.summary()
    assert all(c.sources for c in firecracker.conditions)

    code, out, _ = run_cli(["check", "--snapshot", "preset:pvm-6.18", "firecracker"], capsys)
    assert code == 0 and "ready, on conditions" in out and "source: virt-pvm/misc@" in out
    assert run_cli(["check", "--strict", "--snapshot", "preset:pvm-6.18", "firecracker"], capsys)[0] == 1
    code, out, _ = run_cli(["check", "--json", "--snapshot", "preset:pvm-6.18", "gvisor-kvm"], capsys)
    doc = json.loads(out)
    assert code == 1 and doc["vmms"][0]["blocked_by"][0]["backend"] == "kvm_pvm"


def test_a_host_on_kvm_intel_or_without_facts_gets_no_pvm_constraint() -> None:
    pvm = load_preset("pvm-6.18")
    assert pvm.host is not None
    intel = dataclasses.replace(pvm, host=dataclasses.replace(pvm.host, kvm_modules={"kvm": {}, "kvm_intel": {"nested": "Y"}}))
    unknown = dataclasses.replace(pvm, host=None, source="fake")
    for host in (intel, unknown):
        assert check_vmm("gvisor-kvm", host).ready
        assert not check_vmm("firecracker", host).conditions


# --- recorded, compared, exported ---------------------------------------------------------------------


def test_a_snapshot_carries_the_run_and_the_schema_describes_it(tmp_path: Path) -> None:
    document = snapshot_document(pvm_with(SLOW))
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    assert document["run"]["ok"] is True and document["run"]["compute"]["slowdown"] == 5200.0
    path = tmp_path / "host.json"
    write_snapshot(document, str(path))
    assert load_snapshot(str(path)).run == SLOW
    assert "run" not in snapshot_document(load_preset("pvm-6.18"))  # not run: not written


def test_diff_compares_the_verdicts_and_shows_the_timings() -> None:
    changed = diff_hosts(pvm_with(NORMAL), pvm_with(SHUTDOWN))
    assert "run.ok: True -> False" in [f.describe() for f in changed.facts] and not changed.equal
    timings = diff_hosts(pvm_with(NORMAL), pvm_with(SLOW))
    assert [f.key for f in timings.facts] == ["run.cpuid_follows_table", "run.compute.far_off"]  # 14 µs is not 10x off
    assert any("exit cost 1.2 µs -> 14.0 µs" in note for note in timings.notes)
    assert diff_hosts(pvm_with(NORMAL), pvm_with(NORMAL._replace(measured_at="2026-12-02T00:00:00Z"))).equal


def test_export_carries_the_run_label_and_gauges() -> None:
    labels = nfd_features(pvm_with(SLOW), caps="none")
    assert "kvmprobe.io/kvm.run=ok\n" in labels
    assert "kvmprobe.io/kvm.run=failed\n" in nfd_features(pvm_with(SHUTDOWN), caps="none")
    assert "kvm.run=" not in nfd_features(load_preset("pvm-6.18"), caps="none")
    text = prometheus_text(pvm_with(SLOW), caps="none")
    samples = {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples["kvm_run_ok"] == 1 and samples["kvm_run_exit_seconds"] == pytest.approx(14e-6)
    assert samples["kvm_run_slowdown_ratio"] == pytest.approx(5200)


def test_the_run_command_shows_a_recorded_run_and_refuses_one_without(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "host.json"
    write_snapshot(snapshot_document(pvm_with(SLOW)), str(path))
    code, out, _ = run_cli(["run", "--snapshot", str(path)], capsys)
    assert code == 0
    assert "  exit cost   14.0 µs per exit to user space (median of 199" in out
    assert out.splitlines()[-1].startswith("verdict: KVM_RUN works here, 14.0 µs per exit")
    failed = tmp_path / "failed.json"
    write_snapshot(snapshot_document(pvm_with(HUNG)), str(failed))
    code, out, _ = run_cli(["run", "--snapshot", str(failed), "--json"], capsys)
    assert code == 1 and json.loads(out)["outcome"] == "timeout"
    code, _, err = run_cli(["run", "--snapshot", "preset:pvm-6.18"], capsys)
    assert code == 2 and err.startswith("kvmprobe: error: preset:pvm-6.18 carries no run results")
    code, _, err = run_cli(["run", "--time-limit", "-1"], capsys)
    assert code == 2 and "time limit" in err and err.count("\n") == 1
