"""The error tree: classes, messages with hints, and pickling (xdist, multiprocessing)."""

from __future__ import annotations

import pickle

import pytest

import kvmprobe
from kvmprobe import errors


ALL_ERRORS = [getattr(errors, name) for name in errors.__all__ if name != "KvmError"]


def test_every_error_derives_from_the_base() -> None:
    for cls in ALL_ERRORS:
        assert issubclass(cls, kvmprobe.KvmProbeError)
    assert kvmprobe.KvmError is kvmprobe.KvmProbeError


def test_error_line_carries_message_and_hint() -> None:
    err = errors.KvmNotFound("/dev/kvm does not exist", hint="modprobe kvm_intel", path="/dev/kvm", errno=2)
    assert str(err) == "/dev/kvm does not exist (hint: modprobe kvm_intel)"
    assert (err.path, err.errno) == ("/dev/kvm", 2)


@pytest.mark.parametrize(
    "err",
    [
        errors.KvmPermissionDenied("denied", hint="usermod", path="/dev/kvm", errno=13),
        errors.UnknownCapability("FOO", ["KVM_CAP_FOO_BAR"]),
        errors.UnknownCpuFeature("avx513f", ["avx512f"]),
        errors.CapabilityQueryFailed("KVM_CAP_HLT", 5),
        errors.SnapshotError("expected an integer", path="a.json", field="$.api_version"),
        errors.ProfileError("expected a list", path="p.toml", key="required"),
        errors.BackendUnavailable("cffi missing", hint="pip install kvmprobe[fast]"),
    ],
)
def test_pickle_round_trip(err: errors.KvmProbeError) -> None:
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert str(back) == str(err)
    assert back.__dict__ == err.__dict__


def test_snapshot_and_profile_errors_name_file_and_field() -> None:
    assert str(errors.SnapshotError("bad", path="h.json", field="$.capabilities[3].value")).startswith(
        "h.json: $.capabilities[3].value: bad")
    assert str(errors.ProfileError("bad", path="p.toml", key="required[2]")).startswith("p.toml: required[2]: bad")
    assert isinstance(errors.SnapshotError("x"), ValueError)
