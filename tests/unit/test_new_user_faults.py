"""The smaller faults found by trying kvmprobe as a new user would, and by reading the code
(issue #12, items 9 and 10 and "also found"): one test each, each failing before its fix."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, List, Tuple

import pytest

from _helpers import SRC
from kvmprobe import (
    Cap,
    KvmBusy,
    KvmDevice,
    KvmNotFound,
    KvmPermissionDenied,
    NotAKvmDevice,
    ProfileError,
    SnapshotError,
    UnknownCapability,
    check_vmm,
    diagnose,
    load_profile,
    load_snapshot,
    probe,
)
from kvmprobe._cli import main
from kvmprobe.presets import load_preset
from kvmprobe.profiles import Profile, Requirement
from kvmprobe.snapshot import snapshot_document
from kvmprobe.testing import KVM_GID, FakeBackend, FakeHost, fake_probe_result


def cli(argv: List[str], capsys: pytest.CaptureFixture[str], backend: Any = None) -> Tuple[int, str, str]:
    code = main(argv, backend=backend)
    out, err = capsys.readouterr()
    return code, out, err


# --- has -q prints nothing ---------------------------------------------------------------------


def test_has_quiet_prints_nothing_at_all(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["has", "-q", "IMMEDIATE_EXIT", "--snapshot", "preset:linux-3.10"], capsys) == (1, "", "")
    code, out, err = cli(["has", "-q", "NOPE_NOPE", "--snapshot", "preset:linux-3.10"], capsys)
    assert code == 2 and out == "" and err.startswith("kvmprobe: error: ")  # bad input is still said


# --- one wording for unparseable files; no Python advice ------------------------------------------


BAD_JSON = ['{"a": "unterminated', '{"a": }', '{"a": "\x01"}', "[" * 5 + "1", '{"a": 1, "a": 2}', '{"n": ' + "9" * 5000 + "}"]


@pytest.mark.parametrize("text", BAD_JSON, ids=["unterminated", "no-value", "control", "unclosed", "twice", "digits"])
def test_json_errors_read_the_same_for_snapshots_and_profiles(text: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    reasons = []
    for loader, error in ((load_snapshot, SnapshotError), (load_profile, ProfileError)):
        with pytest.raises(error) as raised:
            loader(str(path))
        message = raised.value.message
        assert " at at " not in message and "set_int_max_str_digits" not in message, message
        reasons.append(message.split("not valid JSON: ", 1)[1])
    assert reasons[0] == reasons[1]


def test_toml_errors_are_worded_like_json_ones(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("a = = 1\n")
    with pytest.raises(ProfileError) as raised:
        load_profile(str(path))
    assert raised.value.message.endswith("not valid TOML: Invalid value at line 1, column 5"), raised.value.message
    path.write_text('name = "x"\napi_version = ' + "9" * 5000 + "\n")
    with pytest.raises(ProfileError) as too_long:
        load_profile(str(path))
    assert too_long.value.message.endswith("not valid TOML: a number has too many digits"), too_long.value.message


# --- capability numbers: hex, and numbers outside the table -------------------------------------


def test_cap_lookup_takes_hex() -> None:
    assert Cap.lookup("0x88") is Cap.IMMEDIATE_EXIT and Cap.lookup("0X88") is Cap.IMMEDIATE_EXIT
    for bad in ("0x", "0xg1", "0x" + "f" * 5000):
        with pytest.raises(UnknownCapability):
            Cap.lookup(bad)


def test_has_hex_and_a_number_outside_the_table_asks_the_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    outside = 999  # outside the table, and no out-of-tree series claims it (kvmprobe._collisions)
    assert outside not in {int(cap) for cap in Cap}
    code, out, err = cli(["has", "0x88", str(outside)], capsys, FakeBackend({Cap.IMMEDIATE_EXIT: 1, outside: 3}))
    assert code == 0 and err == ""
    assert out.splitlines() == ["KVM_CAP_IMMEDIATE_EXIT: yes (1)", "number 999 (not in kvmprobe's table): yes (3)"]
    code, out, err = cli(["has", "0x3e7"], capsys, FakeBackend({}))
    assert code == 1 and out == "number 999 (not in kvmprobe's table): missing\n"
    assert err.count("\n") == 1 and "number 999" in err
    code, _, err = cli(["has", "999"], capsys, FakeBackend({}, fail={("KVM_CHECK_EXTENSION", 999): errno.EIO}))
    assert code == 2 and "EIO" in err


def test_has_a_number_outside_the_table_on_a_recorded_host_is_not_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(["has", "250", "--snapshot", "preset:pvm-6.18"], capsys)
    assert code == 2 and out == "number 250 (not in kvmprobe's table): not recorded\n"
    assert err.count("\n") == 1 and "records no answer for capability number 250" in err
    doc = snapshot_document(load_preset("linux-6.1"))
    doc["capabilities"].append({"name": "KVM_CAP_FROM_THE_FUTURE", "number": 250, "value": 7})
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(doc))
    code, out, _ = cli(["has", "-q", "250", "--snapshot", str(newer)], capsys)
    assert code == 0 and out == ""


# --- a synthesized host has no device -------------------------------------------------------------


def test_a_synthesized_host_names_no_device(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["check", "qemu"], ["dump"], ["doctor"], ["export", "--format", "nfd"]):
        _, out, _ = cli([*argv, "--snapshot", "preset:linux-3.10"], capsys)
        head = "\n".join(out.splitlines()[:3])
        assert "/dev/kvm" not in head and "synthesized" in head, (argv, head)
    _, out, _ = cli(["check", "qemu", "--snapshot", "preset:pvm-6.18"], capsys)
    assert "/dev/kvm" in out.splitlines()[0]  # a recorded host keeps its device


# --- one naming scheme for every JSON document ----------------------------------------------------


def test_every_json_document_names_its_schema_alike(capsys: pytest.CaptureFixture[str]) -> None:
    for kind, argv in (
        ("snapshot", ["snapshot", "--snapshot", "preset:linux-4.14"]),
        ("check", ["check", "qemu", "--json", "--snapshot", "preset:linux-4.14"]),
        ("doctor", ["doctor", "--json", "--snapshot", "preset:linux-4.14"]),
        ("diff", ["diff", "preset:linux-4.14", "preset:linux-3.10", "--json"]),
    ):
        doc = json.loads(cli(argv, capsys)[1])
        assert doc["schema"] == f"kvmprobe-{kind}", doc["schema"]
        assert isinstance(doc["schema_version"], int) and doc["schema_version"] >= 1
        assert list(doc)[:2] == ["schema", "schema_version"]


# --- ProbeResult: a one-line repr; has() refuses what Cap.lookup refuses ---------------------------


def test_probe_result_repr_is_one_short_line() -> None:
    text = repr(load_preset("pvm-6.18"))
    assert "\n" not in text and len(text) < 300, text
    assert text.startswith("ProbeResult(") and "kernel='6.18" in text


@pytest.mark.parametrize("key", [True, False, 1.0, 136.0])
def test_has_and_value_refuse_what_lookup_refuses(key: Any) -> None:
    result = fake_probe_result({Cap.HLT: 1, Cap.IMMEDIATE_EXIT: 1, Cap.IRQCHIP: 1})
    with pytest.raises(UnknownCapability):
        Cap.lookup(key)
    with pytest.raises(UnknownCapability):
        result.has(key)
    with pytest.raises(UnknownCapability):
        result.value(key)


# --- snapshot times: one rule on every Python -------------------------------------------------------


def _python39() -> str:
    found = shutil.which("python3.9") or ""
    pyenv = os.path.expanduser("~/.pyenv/versions")
    if os.path.isdir(pyenv):
        for name in sorted(os.listdir(pyenv)):
            if name.startswith("3.9.") or name.startswith("3.10."):
                return os.path.join(pyenv, name, "bin", "python")
    return found


def test_a_one_digit_fraction_of_a_second_loads_on_every_python() -> None:
    doc = snapshot_document(load_preset("pvm-6.18"))
    doc["recorded_at"] = "2026-11-25T09:30:00.5Z"
    assert load_snapshot(doc).recorded_at == "2026-11-25T09:30:00.5Z"
    doc["recorded_at"] = "2026-02-30T09:30:00Z"
    with pytest.raises(SnapshotError, match="not a valid date"):
        load_snapshot(doc)
    python = _python39()
    if not python or not os.access(python, os.X_OK):
        pytest.skip("no Python 3.9 or 3.10 here, whose datetime.fromisoformat refused it")
    code = ("import json, sys; from kvmprobe import load_snapshot; "
            "d = json.load(sys.stdin); print(load_snapshot(d).recorded_at)")  # fmt: skip
    doc["recorded_at"] = "2026-11-25T09:30:00.5+01:00"
    done = subprocess.run([python, "-c", code], input=json.dumps(doc), capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "2026-11-25T09:30:00.5+01:00", done.stderr[-500:]


# --- check --all where no profile exists ---------------------------------------------------------


def test_check_all_with_nothing_to_check_is_not_ready(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = snapshot_document(load_preset("linux-6.1"))
    doc["arch"] = "s390x"
    path = tmp_path / "s390x.json"
    path.write_text(json.dumps(doc))
    code, out, err = cli(["check", "--all", "--snapshot", str(path)], capsys)
    assert code == 2 and out == "" and "no built-in VMM profile for s390x" in err and err.count("\n") == 1


# --- behaviour no test held ---------------------------------------------------------------------


def test_api_version_13_is_refused() -> None:
    with pytest.raises(NotAKvmDevice, match="API version 13"):
        KvmDevice.open("/dev/kvm", backend=FakeBackend(api_version=13))


def test_a_host_exactly_at_a_first_release_is_never_told_to_upgrade_to_it(tmp_path: Path) -> None:
    host = fake_probe_result({cap: 1 for cap in Cap if cap is not Cap.IMMEDIATE_EXIT}, kernel="4.11.0")
    verdict = check_vmm("cloud-hypervisor", host)
    assert not verdict.ready and verdict.needs_kernel is None
    assert "needs Linux >= 4.11" not in verdict.summary() and "this 4.11 kernel does not offer it" in verdict.summary()
    report = diagnose(root=FakeHost(kernel_release="4.11.0").write(str(tmp_path)), backend=FakeBackend({}))
    kernel = report.check("kernel")
    assert kernel.status.value == "WARN" and "upgrade to Linux 4.11" not in kernel.remedy, kernel


def test_a_host_exactly_at_a_vmms_minimum_gets_no_note() -> None:
    profile = Profile(name="v", display_name="V", arch=None, requirements=(Requirement(Cap.HLT, "required", ""),),
                      min_kernel="5.10")  # fmt: skip
    at = check_vmm(profile, fake_probe_result({Cap.HLT: 1}, kernel="5.10.0"))
    below = check_vmm(profile, fake_probe_result({Cap.HLT: 1}, kernel="5.4.0"))
    assert at.notes == () and any("below" in note for note in below.notes)


def _access(host: FakeHost, tmp_path: Path) -> Any:
    return diagnose(root=host.write(str(tmp_path)), backend=FakeBackend(open_errno=errno.EACCES)).check("device-access")


def test_permission_diagnosis_for_root_group_0_and_the_primary_group(tmp_path: Path) -> None:
    root = FakeHost(uid=0, gid=0, groups=())
    assert "even root is refused" in _access(root, tmp_path / "a").summary
    group0 = FakeHost().with_node("/dev/kvm", FakeHost.char(10, 232, 0o660, 0, 0))
    assert "only its owner may open it (mode 0660)" in _access(group0, tmp_path / "b").summary
    primary = FakeHost(gid=KVM_GID, groups=(1000,))  # kvm is the primary group, not a supplementary one
    summary = _access(primary, tmp_path / "c").summary
    assert "this process is in group 'kvm'" in summary, summary


@pytest.mark.parametrize("code, expected", [(errno.EROFS, KvmPermissionDenied), (errno.ENOTDIR, KvmNotFound),
                                            (errno.EACCES, KvmPermissionDenied)])  # fmt: skip
def test_open_errnos_become_their_errors(code: int, expected: type) -> None:
    with pytest.raises(expected) as raised:
        KvmDevice.open("/dev/kvm", backend=FakeBackend(open_errno=code))
    assert raised.value.errno == code  # type: ignore[attr-defined]


def test_ioctl_eacces_and_create_vm_ebusy() -> None:
    with pytest.raises(KvmPermissionDenied, match="a security policy"):
        KvmDevice.open("/dev/kvm", backend=FakeBackend(fail={"KVM_GET_API_VERSION": errno.EACCES}))
    backend = FakeBackend({}, fail={"KVM_CREATE_VM": errno.EBUSY})
    with KvmDevice.open("/dev/kvm", backend=backend) as kvm:
        with pytest.raises(KvmBusy, match="another hypervisor"):
            with kvm.create_vm():
                pass
    assert backend.open_fds == []


def test_the_probe_cache_refreshes_and_keeps_backends_apart() -> None:
    from kvmprobe import probing
    from kvmprobe.testing import default_backend

    one, two = FakeBackend({Cap.HLT: 1}), FakeBackend({Cap.HLT: 0})
    assert probe(backend=one).has("HLT") and not probe(backend=two).has("HLT")
    assert probe(backend=one) is probe(backend=one) and len(one.opened) == 1
    assert probe(backend=one, refresh=True).has("HLT") and len(one.opened) == 2
    fake = FakeBackend({Cap.IRQCHIP: 1})
    with default_backend(fake):
        before = probing._cache.probes
        assert probe().has("IRQCHIP") and probe() is probe()
        assert probing._cache.probes == before + 1 and len(fake.opened) == 1
        probe(refresh=True)
        assert len(fake.opened) == 2


# --- hints true for a package installed from its source tree --------------------------------------


def test_hints_name_what_works_for_a_source_install() -> None:
    from kvmprobe._backend_cffi import load

    doc = snapshot_document(load_preset("linux-4.14"))
    doc["schema_version"] = 99
    hints = []
    with pytest.raises(SnapshotError) as newer:
        load_snapshot(doc)
    hints.append(newer.value.hint)
    with pytest.raises(Exception) as unbuilt:
        load("kvmprobe._no_such_module")
    hints.append(str(unbuilt.value))
    for hint in hints:
        assert "pip install -U kvmprobe" not in hint and "'kvmprobe[fast]'" not in hint, hint
    assert "source tree" in hints[1] and "pip install --force-reinstall '.[fast]'" in hints[1]


def test_module_level_has_refuses_booleans_too() -> None:
    from kvmprobe.testing import fake_kvm

    import kvmprobe

    with fake_kvm({Cap.HLT: 1}):
        assert kvmprobe.has(Cap.HLT)
        keys: List[Any] = [True, 1.0]
        for key in keys:
            with pytest.raises(UnknownCapability):
                kvmprobe.has(key)
            with pytest.raises(UnknownCapability):
                kvmprobe.value(key)


def test_a_5000_digit_kernel_release_is_no_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Releases are read as at most nine ASCII digits per number (kvmprobe._release), everywhere.
    doc = snapshot_document(load_preset("pvm-6.18"))
    doc["kernel"] = "5" * 5000 + ".1"
    doc["host"]["kernel_release"] = "6." + "1" * 5000
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(doc))
    # check --all: 1, because the recorded host's KVM is kvm_pvm, where gVisor's KVM platform does not run.
    for argv, expected in ((["check", "--all", "--snapshot", str(path)], 1), (["dump", "--snapshot", str(path)], 0),
                           (["diff", str(path), "preset:pvm-6.18"], 1), (["doctor", "--snapshot", str(path)], 0),
                           (["export", "--format", "nfd", "--snapshot", str(path)], 0)):  # fmt: skip
        code, _, err = cli(argv, capsys)
        assert code == expected and "Traceback" not in err, (argv, code, err[-300:])
