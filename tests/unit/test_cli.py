"""The CLI in-process (main(argv)) over fakes, and as a real process for the error paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

from kvmprobe import Cap
from kvmprobe._cli import main
from kvmprobe.testing import fake_kvm


def run(argv: List[str], capsys: pytest.CaptureFixture[str]) -> Tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_dump_lists_supported_and_hides_the_rest(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_kvm({"IMMEDIATE_EXIT": 1, "NR_MEMSLOTS": 32764}):
        code, out, err = run([], capsys)
    assert code == 0 and err == ""
    assert "API version  12" in out
    assert "KVM_CAP_NR_MEMSLOTS" in out and "32764" in out and "4.11" in out
    assert "KVM_CAP_XEN_HVM" not in out
    with fake_kvm({"IMMEDIATE_EXIT": 1}):
        code, out, _ = run(["--all"], capsys)
    assert "KVM_CAP_XEN_HVM" in out


def test_dump_json_is_the_documented_shape(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_kvm({"NR_MEMSLOTS": 32764}):
        code, out, _ = run(["--json"], capsys)
    doc = json.loads(out)
    assert code == 0
    assert doc["api_version"] == 12 and doc["device"] == "/dev/kvm"
    assert [row["name"] for row in doc["capabilities"]] == [cap.c_name for cap in Cap]
    assert [row["number"] for row in doc["capabilities"]] == [int(cap) for cap in Cap]
    values = {row["name"]: row["value"] for row in doc["capabilities"]}
    assert values.pop("KVM_CAP_NR_MEMSLOTS") == 32764  # the raw count the fake answered, not 1
    assert set(values.values()) == {0}  # every other capability: the fake's 0


def test_has_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_kvm({"IMMEDIATE_EXIT": 1, "NR_MEMSLOTS": 32764}):
        assert run(["has", "IMMEDIATE_EXIT", "NR_MEMSLOTS"], capsys)[0] == 0
        code, out, err = run(["has", "ImmediateExit", "KVM_CAP_XEN_HVM"], capsys)
        assert code == 1
        assert "KVM_CAP_XEN_HVM" in err and "Traceback" not in err
        code, _, err = run(["has", "IMEDIATE_EXIT"], capsys)
        assert code == 2
        assert err.count("\n") == 1 and "did you mean KVM_CAP_IMMEDIATE_EXIT" in err
        assert run(["has", "-q", "136"], capsys)[1] == ""


def test_kvm_unreachable_is_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["has", "--device", str(tmp_path / "missing"), "HLT"], capsys)
    assert code == 3 and out == ""
    assert err.startswith("kvmprobe: error: ") and err.count("\n") == 1
    # A path that is not /dev/kvm, missing: where /dev/kvm is there, the path is the mistake.
    assert ("give --device /dev/kvm" in err) if os.path.exists("/dev/kvm") else ("modprobe" in err), err


def test_usage_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--bogus"], ["has"], ["nosuchcommand"]):
        code, _, err = run(argv, capsys)
        assert code == 2, argv
        assert err.count("\n") == 1 and err.startswith("kvmprobe: error: "), err


def _cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "kvmprobe", *args], capture_output=True, text=True, env=env,
                          timeout=60)


@pytest.mark.parametrize(
    "args, device, code, words",
    [
        ((), "/nonexistent/kvm", 3, "does not exist"),
        ((), "/etc/hostname", 3, "not a KVM device"),
        ((), "/", 3, "is a directory"),
        (("has", "NOT_A_CAP"), None, 2, "unknown KVM capability"),
        (("--frobnicate",), None, 2, "unrecognized arguments"),
    ],
)
def test_process_errors_have_no_traceback(args: Tuple[str, ...], device: str | None, code: int, words: str) -> None:
    if device is not None and not os.path.exists(device) and "nonexistent" not in device:
        pytest.skip(f"{device} is not on this machine")
    result = _cli(*args, env_extra={"KVMPROBE_DEVICE": device} if device else None)
    assert result.returncode == code
    assert words in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_forced_unknown_backend_is_a_clear_error() -> None:
    result = _cli("has", "HLT", env_extra={"KVMPROBE_BACKEND": "nope"})
    assert result.returncode == 2
    assert "KVMPROBE_BACKEND" in result.stderr and "Traceback" not in result.stderr


# The commonest commands read plain arguments without argparse (_common.quick_args); what they
# read must be exactly what argparse makes of the same words, and everything else must be left
# to argparse (which refuses what it always refused).
QUICK = [
    ["has", "HLT"],
    ["has", "HLT", "IMMEDIATE_EXIT", "136", "0x88", ""],
    ["has", "-q", "HLT"],
    ["has", "HLT", "--quiet", "-q"],
    ["has", "--device", "/dev/kvm", "HLT"],
    ["has", "HLT", "--device=/tmp/x", "--device", "/dev/kvm"],
    ["has", "--device=", "HLT"],
    ["has", "--snapshot", "preset:pvm-6.18", "HLT", "--snapshot=x.json"],
    ["has", "HLT", "a=b", "c d"],
    ["dump"],
    ["dump", "--json", "--all", "--vm", "--device", "/dev/kvm"],
    ["dump", "--snapshot=preset:pvm-6.18", "--all"],
    ["doctor"],
    ["doctor", "--json", "--strict", "--as-user", "nobody", "--device=/dev/kvm"],
    ["check", "--all"],
    ["check", "qemu@7.2", "firecracker", "--json", "--strict"],
    ["check", "--profile", "a.toml", "--profile=b.json", "--installed", "--create-vm", "sev"],
    ["check", "--json", "sev-snp", "tdx", "--guest-memory", "4G", "--snapshot", "x.json"],
    ["cpu"],
    ["cpu", "--json", "-q", "--device", "/dev/kvm"],
]
ARGPARSE = [
    ["has"],
    ["has", "-q"],
    ["has", "-h", "HLT"],
    ["has", "--help"],
    ["has", "--dev", "/dev/kvm", "HLT"],
    ["has", "--quiet=1", "HLT"],
    ["has", "--device"],
    ["has", "HLT", "--device", "-q"],
    ["has", "HLT", "--device", "--snapshot", "x"],
    ["has", "--", "HLT"],
    ["has", "-1"],
    ["has", "HLT", "-"],
    ["has", "-qq", "HLT"],
    ["has", "--nope", "HLT"],
    ["has", "HLT", "-q", "IMMEDIATE_EXIT"],  # argparse refuses a second run of names
    ["has", "-q", "HLT", "--device", "x", "IMMEDIATE_EXIT"],
    ["dump", "extra"],
    ["dump", "--js"],
    ["dump", "--json=1"],
    ["doctor", "--as-user"],
    ["check", "qemu", "--json", "firecracker"],
    ["check", "--profile"],
    ["check", "--all", "--", "qemu"],
    ["cpu", "--has", "sse"],
    ["cpu", "sse"],
]


@pytest.mark.parametrize("words", QUICK, ids=" ".join)
def test_quick_arguments_are_what_argparse_makes_of_them(words: List[str]) -> None:
    from kvmprobe._cli import _quick, build_parser

    quick = _quick(list(words))
    assert quick is not None
    assert vars(quick) == vars(build_parser((words[0],)).parse_args(words))


@pytest.mark.parametrize("words", ARGPARSE, ids=" ".join)
def test_everything_else_is_left_to_argparse(words: List[str]) -> None:
    from kvmprobe._cli import _quick

    assert _quick(list(words)) is None
