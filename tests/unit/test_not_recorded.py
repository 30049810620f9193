"""A snapshot whose capability rows are cut out says so, and "not recorded" never reads as
"unsupported": not in has(), check, doctor, diff, dump or the exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from kvmprobe import Cap, CapabilityNotRecorded, check_vmm, diagnose, diff_hosts, load_snapshot, prometheus_text
from kvmprobe._cli import main
from kvmprobe._version import __version__
from kvmprobe.presets import load_preset
from kvmprobe.snapshot import snapshot_document

CUT = [Cap.IMMEDIATE_EXIT, Cap.IRQCHIP, Cap.USER_MEMORY, Cap.IOEVENTFD]


def cut(document: Dict[str, Any], caps: List[Cap]) -> Dict[str, Any]:
    names = {cap.c_name for cap in caps}
    document["capabilities"] = [row for row in document["capabilities"] if row["name"] not in names]
    return document


@pytest.fixture
def incomplete(tmp_path: Path) -> Path:
    path = tmp_path / "cut.json"
    path.write_text(json.dumps(cut(snapshot_document(load_preset("pvm-6.18")), CUT)))
    return path


def test_the_rows_cut_out_are_not_recorded_and_no_answer_is_made_up(incomplete: Path) -> None:
    host = load_snapshot(incomplete)
    assert host.not_recorded == frozenset(CUT)
    for cap in CUT:
        with pytest.raises(CapabilityNotRecorded, match=f"records no answer for {cap.c_name}"):
            host.has(cap)
        assert cap not in host.supported()
    assert host.has("NR_MEMSLOTS")  # the rows kept still answer
    again = snapshot_document(host)  # writing it back does not turn them into zeros
    assert not {cap.c_name for cap in CUT} & {row["name"] for row in again["capabilities"]}


def test_check_says_not_recorded_never_that_the_kernel_does_not_offer_them(incomplete: Path) -> None:
    host = load_snapshot(incomplete)
    verdict = check_vmm("cloud-hypervisor", host)
    summary = verdict.summary()
    assert not verdict.ready
    assert "does not offer" not in summary and "not recorded" in summary, summary
    assert verdict.needs_kernel is None  # no upgrade brings what the file merely lacks
    assert all(m.not_recorded for m in verdict.missing_required)
    assert "not recorded" in verdict.missing_required[0].describe()


def test_doctor_does_not_call_a_row_not_recorded_missing(incomplete: Path) -> None:
    report = diagnose(load_snapshot(incomplete))
    kernel = report.check("kernel")
    assert "lacks" not in kernel.summary and "not recorded" in kernel.summary, kernel.summary


def test_diff_does_not_count_them_as_lost(incomplete: Path) -> None:
    full = load_preset("pvm-6.18")
    difference = diff_hosts(full, load_snapshot(incomplete))
    compared = {c.name for c in difference.lost + difference.gained + difference.changed}
    assert not compared & {cap.c_name for cap in CUT}
    assert any("not recorded" in note and "KVM_CAP_IMMEDIATE_EXIT" in note for note in difference.notes), difference.notes


def test_the_prometheus_export_has_no_value_for_them(incomplete: Path) -> None:
    text = prometheus_text(load_snapshot(incomplete))
    assert 'name="KVM_CAP_IMMEDIATE_EXIT"' not in text and 'name="KVM_CAP_NR_MEMSLOTS"' in text


def test_the_cli_says_which_rows_are_missing(incomplete: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "cloud-hypervisor", "--snapshot", str(incomplete)]) == 1
    out, err = capsys.readouterr()
    note = err.splitlines()[0]
    assert note.startswith(f"kvmprobe: note: {incomplete} is incomplete: it lacks 4 capability rows"), note
    assert "KVM_CAP_IMMEDIATE_EXIT" in note and "not recorded" in note
    assert "does not offer" not in out
    assert main(["has", "IMMEDIATE_EXIT", "--snapshot", str(incomplete)]) == 2
    err = capsys.readouterr().err
    assert "records no answer for KVM_CAP_IMMEDIATE_EXIT" in err.splitlines()[-1]
    assert main(["dump", "--all", "--snapshot", str(incomplete)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("KVM_CAP_IMMEDIATE_EXIT "))
    assert "not recorded" in row, row


def test_an_older_writer_is_named_as_such(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = cut(snapshot_document(load_preset("pvm-6.18")), [Cap.GUEST_MEMFD_FLAGS])
    document["kvmprobe_version"] = "0.0.1"
    path = tmp_path / "older.json"
    path.write_text(json.dumps(document))
    assert main(["has", "HLT", "--snapshot", str(path)]) == 0
    err = capsys.readouterr().err
    assert "kvmprobe 0.0.1 wrote it" in err and "KVM_CAP_GUEST_MEMFD_FLAGS" in err and "not recorded" in err, err
    assert __version__ != "0.0.1"
