"""Cannot tell is not no, in a fleet too: a host whose recording lacks a row a VMM requires is
counted apart from the hosts where the VMM cannot run, and a migration check names it as a
note, not as a reason the guest cannot move."""

from __future__ import annotations

from typing import Dict, Tuple, Union

from kvmprobe import ProbeResult
from kvmprobe.caps import Cap
from kvmprobe.compat import compare, fleet
from kvmprobe.testing import fake_cpu_record, fake_probe_result


def _hosts() -> Tuple[ProbeResult, ProbeResult, ProbeResult]:
    every: Dict[Union[Cap, int, str], int] = {cap: 1 for cap in Cap}
    less: Dict[Union[Cap, int, str], int] = {cap: 1 for cap in Cap if cap is not Cap.IMMEDIATE_EXIT}
    cpu = fake_cpu_record(["sse2"])
    full = fake_probe_result(every, source="full", cpu=cpu)
    unrecorded = fake_probe_result(less, source="unrecorded", cpu=cpu, not_recorded=["IMMEDIATE_EXIT"])
    lacking = fake_probe_result(less, source="lacking", cpu=cpu)  # the row says 0: Cloud Hypervisor cannot run
    return full, unrecorded, lacking


def test_fleet_counts_cannot_tell_apart_from_ready_and_not_ready() -> None:
    summary = fleet(_hosts())
    ready, unknown = dict(summary.readiness), dict(summary.unknown)
    assert (ready["cloud-hypervisor"], unknown["cloud-hypervisor"], summary.hosts) == (1, 1, 3)
    row = next(r for r in summary.to_dict()["readiness"] if r["vmm"] == "cloud-hypervisor")
    assert (row["ready"], row["unknown"], row["hosts"]) == (1, 1, 3)


def test_compare_with_a_dest_that_cannot_be_told_gives_a_note_not_a_reason() -> None:
    full, unrecorded, lacking = _hosts()
    told = compare(full, unrecorded, vmm="cloud-hypervisor")
    assert told.ok and not told.reasons
    assert any("KVM_CAP_IMMEDIATE_EXIT" in note and "cannot tell" in note for note in told.notes), told.notes
    refused = compare(full, lacking, vmm="cloud-hypervisor")
    assert not refused.ok and [r.kind for r in refused.reasons] == ["vmm"]
