"""The CLI under faults a user meets from the shell: closed and full standard streams, numbers
that are not numbers, paths that are not the kind asked for (review: cli-review.md).

Each command runs as a real process (``python -m kvmprobe``) through ``sh`` so that the
redirections (``>&-``, ``>/dev/full``, ``<&-``) are the shell's own. No device is needed where
the host is a preset; live cases name a device that does not exist or one that is not KVM.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from _helpers import SRC

HOST = ["--snapshot", "preset:linux-3.10"]


def _env() -> Dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "KVMPROBE"))}
    env["PYTHONPATH"] = SRC
    env["NO_COLOR"] = "1"
    return env


def sh(argv: List[str], redirect: str = "", cwd: str = "/") -> Tuple[int, str, str]:
    """``python -m kvmprobe ARGV REDIRECT`` run by sh: exit code, stdout, stderr (text)."""
    line = " ".join(shlex.quote(word) for word in [sys.executable, "-m", "kvmprobe", *argv])
    done = subprocess.run(["sh", "-c", f"exec {line} {redirect}"], capture_output=True, timeout=120, env=_env(), cwd=cwd)
    return done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")


# -- item 1: closed and full standard streams ------------------------------------------------

VERDICTS = [(["has", "HLT", *HOST], 0), (["has", "IMMEDIATE_EXIT", *HOST], 1), (["dump", "--all", *HOST], 0)]


@pytest.mark.parametrize("argv,verdict", VERDICTS)
@pytest.mark.parametrize("redirect", [">&-", "2>&-", ">&- 2>&-", ">/dev/full 2>&-"])
def test_a_closed_stream_changes_nothing_but_what_is_seen(argv: List[str], verdict: int, redirect: str) -> None:
    code, _, err = sh(argv, redirect)
    assert code == verdict, err
    assert "Traceback" not in err and "Exception ignored" not in err


@pytest.mark.parametrize("argv,verdict", VERDICTS)
def test_a_full_stdout_is_one_line_on_stderr_and_the_verdict(argv: List[str], verdict: int) -> None:
    code, _, err = sh(argv, ">/dev/full")
    assert code == verdict, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "standard output" in line]
    assert len(lines) == 1 and "No space left on device" in lines[0], err


# -- items 2, 3: time limits and a closed stdin -------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["emulate", "--timeout", "3e6", "--"],
        ["emulate", "--timeout", "inf", "--"],
        ["emulate", "--timeout", "1e300", "--"],
        ["emulate", "--timeout", "nan", "--"],
        ["learn", "--timeout", "nan", "--"],
        ["learn", "--timeout", "inf", "--"],
        ["learn", "--total-timeout", "nan", "--"],
        ["learn", "--total-timeout", "-5", "--"],
    ],
)
def test_a_time_limit_that_is_not_a_sane_number_is_refused_before_the_command_starts(
    argv: List[str], tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    code, out, err = sh([*argv, "touch", str(marker)])
    assert code == 2, err
    assert err.startswith("kvmprobe: error: --") and "(hint: " in err and len(err.splitlines()) == 1, err
    assert not marker.exists(), "the command ran although its time limit was refused"


def test_the_library_refuses_a_time_limit_that_is_not_a_number_too(tmp_path: Path) -> None:
    from kvmprobe._supervisor import Policy, run_command
    from kvmprobe.errors import EmulationError

    marker = tmp_path / "ran"
    for bad in (float("nan"), float("inf"), 1e300, -1.0):
        with pytest.raises(EmulationError, match="time limit"):
            run_command(["touch", str(marker)], Policy({}, {}), mode="filter", timeout=bad)
    assert not marker.exists()


def test_learn_stdin_dash_with_stdin_closed_is_one_line() -> None:
    code, _, err = sh(["learn", "--stdin", "-", "--", "true"], "<&-")
    assert code == 2 and err.startswith("kvmprobe: error: --stdin -: standard input is closed"), err
    assert "(hint: " in err and len(err.splitlines()) == 1


def test_learn_stdin_a_missing_file_carries_a_hint(tmp_path: Path) -> None:
    code, _, err = sh(["learn", "--stdin", str(tmp_path / "nofile"), "--", "true"])
    assert code == 2 and "No such file" in err and "(hint: " in err, err


# -- items 4, 12: a device path that is not the KVM device --------------------------------------


@pytest.mark.parametrize("device", ["/dev/null", "/dev/tty", "/dev/net/tun", "/tmp", "snap.json"])
def test_doctor_never_tells_to_remove_a_node_that_is_not_kvms(device: str, tmp_path: Path) -> None:
    (tmp_path / "snap.json").write_text("{}")
    code, out, err = sh(["doctor", "--device", device], cwd=str(tmp_path))
    assert code in (1, 3) and "Traceback" not in err, err
    assert "sudo rm" not in out and "mknod" not in out, out
    assert "--device /dev/kvm" in out, out


def test_doctor_offers_to_recreate_only_the_kvm_path(tmp_path: Path) -> None:
    from kvmprobe._device_errors import is_kvm_node

    assert is_kvm_node("/dev/kvm") and is_kvm_node("/dev/../dev/kvm") and is_kvm_node("/x/k", (10, 232))
    assert not is_kvm_node("/dev/kvm/") and not is_kvm_node("/dev/kvmm") and not is_kvm_node("/dev/tty", (5, 0))


@pytest.mark.parametrize(
    "device,wanted,unwanted",
    [
        ("/dev/kvm/", "drop the trailing '/': --device /dev/kvm", "load the KVM module"),
        ("/dev/tty", "--device /dev/kvm", "load the KVM module"),
        ("/dev/net/tun", "--device /dev/kvm", "kvmprobe doctor"),
    ],
)
def test_a_wrong_device_is_worded_as_a_wrong_path(device: str, wanted: str, unwanted: str) -> None:
    if not os.path.exists(device.rstrip("/")):
        pytest.skip(f"{device} is absent here")
    code, _, err = sh(["has", "HLT", "--device", device])
    assert code == 3 and wanted in err and unwanted not in err, err
    code, out, _ = sh(["doctor", "--device", device])
    assert "start the container" not in out and "'python -m kvmprobe doctor'" not in out, out


def test_a_typo_while_dev_kvm_exists_names_dev_kvm() -> None:
    if not os.path.exists("/dev/kvm"):
        pytest.skip("no /dev/kvm here: the module remedy is the right one")
    code, _, err = sh(["has", "HLT", "--device", "/dev/kvmm"])
    assert code == 3 and "give --device /dev/kvm" in err and "container" not in err, err
    code, out, _ = sh(["doctor", "--device", "/dev/kvmm"])
    assert "--device /dev/kvm" in out and "start it with '--device /dev/kvmm'" not in out, out


# -- items 11, 19: output paths: empty, on procfs, a symbolic link ------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["snapshot", *HOST, "-o", ""],
        ["export", "--format", "nfd", *HOST, "-o", ""],
        ["learn", "-o", "", "--", "touch", "{marker}"],
        ["emulate", "--trace=", "--", "touch", "{marker}"],
    ],
)
def test_an_empty_output_path_is_refused_before_anything_runs(argv: List[str], tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code, _, err = sh([word.format(marker=marker) for word in argv], cwd=str(tmp_path))
    assert code == 2 and err.startswith("kvmprobe: error: cannot write to an empty path (hint: "), err
    assert "does not exist" not in err and not marker.exists()
    assert os.listdir(tmp_path) == []


def test_a_directory_that_takes_no_files_is_not_said_to_be_missing() -> None:
    code, _, err = sh(["snapshot", *HOST, "-o", "/proc/self/status"])
    assert code == 2 and "/proc/self takes no new files" in err and "does not exist" not in err, err
    code, _, err = sh(["snapshot", *HOST, "-o", "/nonexistent-dir/h.json"])
    assert code == 2 and "the directory /nonexistent-dir does not exist" in err, err


def test_trace_errors_name_the_trace_option_and_stderr(tmp_path: Path) -> None:
    from kvmprobe.errors import write_failure

    message, hint = write_failure("adir", IsADirectoryError(21, "a directory"), option="--trace=", dash="standard error")
    assert "--trace=adir/NAME" in hint and "standard error" in hint and "standard output" not in hint


@pytest.mark.parametrize("kind", ["to a file", "dangling"])
@pytest.mark.parametrize("argv", [["snapshot", *HOST], ["export", "--format", "prometheus", *HOST]])
def test_o_onto_a_symlink_is_refused_and_the_link_kept(kind: str, argv: List[str], tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    if kind == "to a file":
        kept.write_text("kept\n")
    link = tmp_path / "out"
    link.symlink_to(kept)
    code, _, err = sh([*argv, "-o", str(link)])
    assert code == 2 and "symbolic link" in err and "(hint: " in err and len(err.splitlines()) == 1, err
    assert link.is_symlink() and os.readlink(link) == str(kept)
    assert (kept.read_text() == "kept\n") if kind == "to a file" else not kept.exists()


# -- item 13: a capability of another architecture ----------------------------------------------


def test_has_a_capability_of_another_architecture_says_so_not_first_in_linux() -> None:
    code, out, err = sh(["has", "ARM_PSCI", "S390_PSW", "IMMEDIATE_EXIT", *HOST])
    assert code == 1 and "Traceback" not in err
    lines = err.splitlines()
    foreign = [line for line in lines if "KVM_CAP_ARM_PSCI" in line]
    assert len(foreign) == 1 and "another architecture" in foreign[0] and "first in Linux" not in foreign[0], err
    assert "KVM_CAP_S390_PSW" in foreign[0] and "x86_64" in foreign[0]
    native = [line for line in lines if "KVM_CAP_IMMEDIATE_EXIT" in line]
    assert len(native) == 1 and "first in Linux 4.11" in native[0] and "3.9" not in native[0], err


def test_cap_rs_gating_counts_as_another_architecture() -> None:
    from kvmprobe import Cap
    from kvmprobe._cli._has import _applies

    assert not _applies(Cap.XSAVE, "aarch64") and _applies(Cap.XSAVE, "x86_64")
    assert not _applies(Cap.ARM_PSCI, "x86_64") and _applies(Cap.ARM_PSCI, "aarch64")


# -- items 14, 15: messages and help that say what is true ---------------------------------------


def test_learn_without_a_command_shows_a_learn_example() -> None:
    code, _, err = sh(["learn"])
    assert code == 2 and "'kvmprobe learn " in err and "emulate" not in err and "(hint: " in err, err


def test_emulate_of_a_directory_says_it_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    code, _, err = sh(["emulate", "--", "adir"], cwd=str(tmp_path))
    assert code == 2 and "directory" in err and "no such program" not in err, err
    code, _, err = sh(["emulate", "--", str(tmp_path / "adir")])
    assert code == 2 and "it is a directory" in err, err


def _help(command: str) -> str:
    code, out, err = sh([command, "--help"], "", cwd="/")
    assert code == 0, err
    return " ".join(out.split())


def test_help_makes_no_promise_the_commands_break() -> None:
    # 'kvmprobe --json' carries "cpu": null, so it is not the snapshot document.
    assert "same as 'kvmprobe --json'" not in _help("snapshot")
    # --mask takes names in has's spellings and numbers of the table, not any number has takes.
    code, _, err = sh(["emulate", "--mask", "99999", "--", "true"])
    assert code == 2
    mask_help = _help("emulate")
    assert "any spelling 'has' takes)" not in mask_help and "number in kvmprobe's table" in mask_help
    assert "--trace=-" in mask_help


# -- item 16: snapshot fields that contradict themselves --------------------------------------------


_BASE: List[str] = []  # the snapshot document, made once


def _recorded(tmp_path: Path, **changes: object) -> Path:
    """A real snapshot of a preset (written by 'kvmprobe snapshot'), with ``changes`` applied:
    top-level keys, or ``host.KEY``."""
    import json

    path = tmp_path / "host.json"
    if not _BASE:
        code, out, err = sh(["snapshot", "--snapshot", "preset:pvm-6.18"])
        assert code == 0, err
        _BASE.append(out)
    doc = json.loads(_BASE[0])
    for key, value in changes.items():
        if key.startswith("host_"):
            doc["host"][key[len("host_"):]] = value
        else:
            doc[key] = value
    path.write_text(json.dumps(doc))
    return path


def test_an_architecture_kvmprobe_does_not_know_is_refused(tmp_path: Path) -> None:
    code, _, err = sh(["dump", "--snapshot", str(_recorded(tmp_path, arch="sparc"))])
    assert code == 2 and "$.arch: 'sparc' is not an architecture kvmprobe knows" in err and "(hint: " in err, err


def test_a_misc_device_number_that_is_no_number_is_refused(tmp_path: Path) -> None:
    for bad in ("abc", "10:", ":232", "10:232:1", "１０:232"):
        code, _, err = sh(["doctor", "--snapshot", str(_recorded(tmp_path, host_kvm_misc_dev=bad))])
        assert code == 2 and "$.host.kvm_misc_dev: expected a device number 'MAJOR:MINOR'" in err, (bad, err)
    code, _, err = sh(["doctor", "--snapshot", str(_recorded(tmp_path, host_kvm_misc_dev="10:232"))])
    assert "kvm_misc_dev" not in err


def test_two_kernels_in_one_recording_are_noted(tmp_path: Path) -> None:
    path = _recorded(tmp_path, host_kernel_release="3.10.0-1160.el7.x86_64")
    code, _, err = sh(["dump", "--snapshot", str(path)])
    assert code == 0 and "says two kernels" in err and "3.10.0-1160.el7.x86_64" in err, err
    code, _, err = sh(["dump", "--snapshot", str(_recorded(tmp_path))])
    assert "two kernels" not in err, err


# -- item 17: --version imports no command ---------------------------------------------------------


def test_version_imports_no_command_module() -> None:
    code = ("import sys; from kvmprobe._cli import main; rc = main(['--version']); "
            "print(rc, sorted(m for m in sys.modules if m.startswith('kvmprobe._cli._')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=_env())
    from kvmprobe import __version__

    assert done.stdout.splitlines() == [f"kvmprobe {__version__}", "0 ['kvmprobe._cli._common']"], done.stdout + done.stderr
    code_, out, _ = sh(["--version"])
    assert (code_, out) == (0, f"kvmprobe {__version__}\n")


# -- item 18: a hint on every error line, no flag silently ignored, verdicts that say all --------


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "tdx", "--guest-memory", "4Q", *HOST],
        ["run", *HOST],
        ["export", "--format", "nfd", "--prefix", "NOT A PREFIX", *HOST],
        ["export", "--format", "nfd", "--caps", "", *HOST],
        ["export", "--format", "nfd", "--expiry-time", "junk", *HOST],
        ["export", "--format", "prometheus", "--prefix", "kvm.example.com", *HOST],
        ["has", "--bogus", "HLT"],
    ],
)
def test_every_error_line_carries_a_hint(argv: List[str]) -> None:
    code, _, err = sh(argv)
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("kvmprobe: error: ") and "(hint: " in err, err


@pytest.mark.parametrize(
    "argv,flag",
    [
        (["snapshot", "--list-presets", "-o", "x.json"], "-o"),
        (["snapshot", *HOST, "--vm"], "--vm"),
        (["dump", "--vm", *HOST], "--vm"),
        (["check", "tdx", "--create-vm", "--snapshot", "preset:pvm-6.18"], "--create-vm"),
    ],
)
def test_a_flag_that_would_be_ignored_is_refused(argv: List[str], flag: str, tmp_path: Path) -> None:
    code, out, err = sh(argv, cwd=str(tmp_path))
    assert code == 2 and flag in err and "(hint: " in err and out == "", err
    assert os.listdir(tmp_path) == []


def test_export_refuses_an_expiry_time_in_the_past() -> None:
    code, out, err = sh(["export", "--format", "nfd", "--expiry-time", "2001-01-01T00:00:00Z", *HOST])
    assert code == 2 and "is in the past" in err and out == "", err
    code, out, err = sh(["export", "--format", "nfd", "--expiry-time", "7d", *HOST])
    assert code == 0 and "# +expiry-time=" in out, err


def test_list_presets_shows_the_aliases_and_they_load() -> None:
    code, out, _ = sh(["snapshot", "--list-presets"])
    line = next(line for line in out.splitlines() if line.startswith("rhel-7.9 "))
    assert code == 0 and "(also: " in line and "rhel-7" in line.split("(also: ")[1], out
    for alias in ("rhel-7", "rhel-8"):
        code, _, err = sh(["has", "HLT", "--snapshot", f"preset:{alias}"])
        assert code == 0, err


def test_a_run_whose_long_mode_guest_timed_out_says_so_in_the_verdict() -> None:
    from kvmprobe._cli._run import render
    from kvmprobe._guest_report import GuestExit, RunReport

    sequence = (GuestExit(2, port=0x10, direction="out", size=1, repeat=1, value=0x42), GuestExit(5))
    report = RunReport("2026-12-02T01:00:00Z", "x86_64", 0.05, "halted", sequence, long_mode_outcome="timeout",
                       long_mode_error="long mode, 157 bytes: did not finish in 0.05 s")  # fmt: skip
    verdict = render(report, "/dev/kvm", None).splitlines()[-1]
    assert verdict.startswith("verdict: KVM_RUN works here") and "long-mode guest did not finish in 0.05 s" in verdict
    whole = report._replace(long_mode_outcome="halted", long_mode_error="")
    assert "long-mode" not in render(whole, "/dev/kvm", None).splitlines()[-1]


def test_a_name_that_is_not_utf8_is_shown_by_its_bytes(tmp_path: Path) -> None:
    name = os.fsencode(str(tmp_path)) + b"/\xff.json"
    line = b" ".join(shlex.quote(word).encode() for word in [sys.executable, "-m", "kvmprobe", "snapshot", *HOST, "-o"])
    done = subprocess.run([b"sh", b"-c", line + b" \"$0\"", name], capture_output=True, timeout=60, env=_env())
    assert done.returncode == 0 and b"\\xff.json: " in done.stdout and b"udc" not in done.stdout, done
    done = subprocess.run([sys.executable, "-m", "kvmprobe", "has", "HLT", "--device", name, ], capture_output=True,
                          timeout=60, env=_env())  # fmt: skip
    assert done.returncode == 3 and b"\\xff" in done.stderr and b"udc" not in done.stderr, done
    done = subprocess.run([sys.executable, "-m", "kvmprobe", "has", b"\xc3\xa9\xff"], capture_output=True, timeout=60,
                          env=_env())  # fmt: skip
    assert done.returncode == 2 and b"\\xff" in done.stderr and b"udc" not in done.stderr, done
