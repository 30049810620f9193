"""A recording of a device that never answered KVM_GET_API_VERSION (API version 0, every query
failed with the one errno that stopped it, or none asked: what kvmprobe-collect.py writes where
KVM cannot be asked) is judged as the live doctor judges that device: not opened, or no KVM
device; never "opened read-write when the host was recorded"."""

from __future__ import annotations

import errno
import tempfile
from typing import Any, Dict

import pytest

from kvmprobe.diagnosis import diagnose
from kvmprobe.snapshot import load_snapshot, snapshot_document
from kvmprobe.host import read_host_facts
from kvmprobe.testing import FakeBackend, FakeHost, fake_probe_result


def _recording(host: FakeHost, code: Any, device: str = "/dev/kvm") -> Dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        facts = read_host_facts(host.write(tmp), device=device)
    doc = snapshot_document(fake_probe_result({}), facts, recorded_at="2026-12-02T00:00:00Z")
    doc.update(synthesized=False, api_version=0, device=device, cpu=None)
    if code is None:
        doc["capabilities"] = []
    else:
        for row in doc["capabilities"]:
            row.update(value=None, error=code)
    return doc


@pytest.mark.parametrize("host, code", [
    (FakeHost.no_kvm_module(), errno.ENOENT),
    (FakeHost.outside_kvm_group(), errno.EACCES),
    (FakeHost(), errno.ENOTTY),
    (FakeHost(), None),
], ids=["missing", "denied", "not-kvm", "not-asked"])
def test_judged_as_the_live_doctor_judges_the_device(host: FakeHost, code: Any) -> None:
    recorded = diagnose(load_snapshot(_recording(host, code)))
    open_fails = code in (errno.ENOENT, errno.EACCES)
    with tempfile.TemporaryDirectory() as tmp:
        backend = FakeBackend(open_errno=code if open_fails else None, fail={} if open_fails else {"KVM_GET_API_VERSION": code})
        live = diagnose(root=host.write(tmp), backend=backend, create_vm=False, run=False)
    assert recorded.verdict.value == "not_usable"
    if code is None:
        assert recorded.check("device-access").summary == "/dev/kvm was not asked when the host was recorded (see the platform check)"
        return
    for check in ("device-access", "api-version"):
        assert recorded.check(check).status == live.check(check).status, check
    failed = "device-access" if open_fails else "api-version"  # the check that fails says the same
    assert recorded.check(failed).status.name == "FAIL"
    assert (recorded.check(failed).summary, recorded.check(failed).remedy) == \
        (live.check(failed).summary, live.check(failed).remedy)


def test_a_recording_where_some_queries_answered_is_an_opened_device() -> None:
    doc = _recording(FakeHost(), errno.EIO)
    doc["capabilities"][0].update(value=1)
    del doc["capabilities"][0]["error"]
    recorded = diagnose(load_snapshot(doc))
    assert recorded.check("device-access").summary.endswith("when the host was recorded")
