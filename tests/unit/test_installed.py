"""Finding installed VMMs: fake binaries (shell scripts) that print what each real one prints.

Each script writes the arguments it was run with to a log, so the tests see that nothing but the
version query ever ran. The outputs are the formats the VMMs' sources print (cited in
``_vmm_requirements.VMMS``) and the ones seen on real machines (Debian's QEMU and runsc).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Dict, List

import pytest

from kvmprobe import Cap
from kvmprobe._installed import OUTPUT_LIMIT, Installed, find_installed, version_of
from kvmprobe.profiles import check_document, installed_profiles

# What each binary prints for its version query (the first line is what counts).
OUTPUTS: Dict[str, str] = {
    "qemu-system-x86_64": "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\\n"
                          "Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers",
    "cloud-hypervisor": "cloud-hypervisor v45.0-12-g0123abcd-dirty",
    "firecracker": "Firecracker v1.7.0\\n",
    "runsc": "runsc version 0.0~20221219.0\\nspec: 1.0.2-dev",
}  # fmt: skip


def script(folder: Path, name: str, body: str, log: Path) -> Path:
    path = folder / name
    path.write_text(f'#!/bin/sh\necho "$0 $*" >> {log}\n{body}\n')
    path.chmod(0o755)
    return path


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "ran.log"


@pytest.fixture
def bin_dir(tmp_path: Path, log: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, text in OUTPUTS.items():
        script(folder, name, f'[ "$1" = --version ] || exit 9\nprintf "{text}\\n"', log)
    # crosvm has no --version: only 'crosvm version' answers (src/main.rs:679-690).
    script(folder, "crosvm", '[ "$1" = version ] || exit 9\necho "crosvm 0.1.0"', log)
    return folder


def ran(log: Path) -> List[str]:
    return sorted(line.split(" ", 1)[1] if " " in line else "" for line in log.read_text().splitlines())


def test_each_vmm_is_found_and_asked_for_its_version_only(tmp_path: Path, bin_dir: Path, log: Path) -> None:
    libs = tmp_path / "lib"
    libs.mkdir()
    (libs / "libkrun.so.1.19.0").write_bytes(b"\x7fELF")  # a library: found by name, never run
    (libs / "libkrun.so.1").symlink_to("libkrun.so.1.19.0")
    found = find_installed("x86_64", path=str(bin_dir), dirs=[], library_dirs=[str(libs)])
    versions = {item.vmm: (item.version, item.problem) for item in found}
    assert versions == {
        "qemu": ("7.2.22", ""),
        "cloud-hypervisor": ("v45.0", ""),
        "firecracker": ("v1.7.0", ""),
        "crosvm": ("0.1.0", ""),
        "gvisor-kvm": ("release-20221219.0", ""),
        "libkrun": ("v1.19.0", ""),
    }
    by_vmm = {item.vmm: item for item in found}
    assert by_vmm["qemu"].output == "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"
    assert by_vmm["qemu"].path == str(bin_dir / "qemu-system-x86_64")
    assert by_vmm["libkrun"].path == str(libs / "libkrun.so.1.19.0")
    assert ran(log) == ["--version"] * 4 + ["version"]


def test_only_the_machines_qemu_is_asked(tmp_path: Path, log: Path) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    script(folder, "qemu-system-aarch64", 'echo "QEMU emulator version 9.2.4"', log)
    assert find_installed("x86_64", path=str(folder), dirs=[], library_dirs=[]) == []
    found = find_installed("aarch64", path=str(folder), dirs=[], library_dirs=[])
    assert [(i.vmm, i.version) for i in found] == [("qemu", "9.2.4")]


def test_a_binary_reached_twice_is_asked_once(tmp_path: Path, bin_dir: Path, log: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "qemu-kvm").symlink_to(bin_dir / "qemu-system-x86_64")  # RHEL's name for it
    found = find_installed("x86_64", path=f"{bin_dir}:{bin_dir}", dirs=[str(other)], library_dirs=[])
    assert [i.vmm for i in found].count("qemu") == 1
    assert ran(log).count("--version") == 4


def test_what_is_not_run(tmp_path: Path, log: Path) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    setuid = script(folder, "firecracker", 'echo "Firecracker v1.7.0"', log)
    setuid.chmod(0o4755)
    assert os.stat(setuid).st_mode & 0o4000  # the file system keeps the set-user-ID bit
    writable = script(folder, "cloud-hypervisor", 'echo "cloud-hypervisor v45.0"', log)
    writable.chmod(0o757)
    plain = script(folder, "runsc", 'echo "runsc version release-20260817.0"', log)
    plain.chmod(0o644)
    (folder / "crosvm").mkdir()  # a directory by that name
    found = {i.vmm: i for i in find_installed("x86_64", path=str(folder), dirs=[], library_dirs=[])}
    assert found["firecracker"].problem == "not run: it is set-user-ID or set-group-ID"
    assert found["cloud-hypervisor"].problem == "not run: anyone may write to it"
    assert found["gvisor-kvm"].problem == "not executable by this user"  # no x bit: not even root runs it
    assert "crosvm" not in found  # not a file
    assert not log.exists()  # none of them ran
    assert all(i.version is None for i in found.values())


def test_output_that_is_not_the_vmms_is_not_believed(tmp_path: Path, log: Path) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    script(folder, "cloud-hypervisor", 'echo "hello"', log)
    script(folder, "firecracker", "exit 1", log)
    found = {i.vmm: i for i in find_installed("x86_64", path=str(folder), dirs=[], library_dirs=[])}
    assert found["cloud-hypervisor"] == Installed(
        "cloud-hypervisor", str(folder / "cloud-hypervisor"), "hello", None,
        "this is not how Cloud Hypervisor reports its release")  # fmt: skip
    assert found["firecracker"].problem == "printed nothing for '--version'"


def test_a_binary_that_hangs_is_stopped_with_everything_it_started(tmp_path: Path, log: Path) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    child = tmp_path / "child.pid"
    hang = script(folder, "firecracker", f"sleep 300 &\necho $! > {child}\nsleep 300", log)
    found = version_of("firecracker", str(hang), limit=0.5)
    assert found.version is None and found.problem == "no answer within 0.5 s: stopped"
    pid = int(child.read_text())
    for _ in range(100):  # SIGKILL of the session; the child is reaped by init soon after
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            break
        time.sleep(0.05)
    else:
        pytest.fail("the version query's child outlived the time limit")


def test_endless_output_is_read_only_up_to_the_limit(tmp_path: Path, log: Path) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    flood = script(folder, "cloud-hypervisor", "yes cloud-hypervisor v45.0", log)
    found = version_of("cloud-hypervisor", str(flood), limit=1.0)
    # It printed more than OUTPUT_LIMIT and never exited: stopped, its first line unused.
    assert found.version is None and "stopped" in found.problem
    assert OUTPUT_LIMIT < 1 << 16



def test_a_directory_anyone_may_write_to_is_not_trusted(tmp_path: Path, log: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    script(folder, "firecracker", 'echo "Firecracker v1.7.0"', log)
    (found,) = find_installed("x86_64", path=str(folder), dirs=[], library_dirs=[])
    assert found.problem == "not run: anyone may write to its directory" and not log.exists()


def test_a_relative_path_entry_is_never_searched(tmp_path: Path, log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script(tmp_path, "firecracker", 'echo "Firecracker v1.7.0"', log)
    monkeypatch.chdir(tmp_path)  # an empty or "." entry would mean this directory
    assert find_installed("x86_64", path=":.:bin", dirs=[], library_dirs=[]) == []
    assert not log.exists()


def test_check_installed_judges_what_it_can_and_says_why_not_for_the_rest() -> None:
    from kvmprobe._cli import _check
    from kvmprobe.profiles import check_vmm
    from kvmprobe.testing import fake_probe_result

    def finder(arch: str) -> List[Installed]:
        assert arch == "x86_64"
        return [
            Installed("qemu", "/usr/bin/qemu-system-x86_64", "QEMU emulator version 7.2.22", "7.2.22"),
            Installed("qemu", "/opt/qemu/bin/qemu-system-x86_64", "QEMU emulator version 11.0.0", "11.0.0"),
            Installed("cloud-hypervisor", "/usr/local/bin/cloud-hypervisor", "hello", None,
                      "this is not how Cloud Hypervisor reports its release"),
        ]

    found = installed_profiles("x86_64", finder)
    assert [(p.version if p else None, item["range"]) for p, item in found] == [
        ("7.2.22", "7.2.0 to 7.x"), (None, None), (None, None)]  # fmt: skip
    assert found[1][1]["problem"].startswith("no QEMU release 11.0.0 in kvmprobe's profiles for x86_64")
    host = fake_probe_result({c: 1 for c in Cap if c is not Cap.MSI_DEVID})
    judged = found[0][0]
    assert judged is not None
    verdicts = [check_vmm(judged, host)]
    items = [item for _, item in found]
    text = _check.render(host, verdicts, found={id(judged): items[0]}, unjudged=items[1:], searched=True)
    assert "QEMU 7.2.22 [qemu 7.2.0 to 7.x, x86_64]: ready" in text
    assert "  installed: /usr/bin/qemu-system-x86_64: QEMU emulator version 7.2.22" in text
    assert "/opt/qemu/bin/qemu-system-x86_64: NOT CHECKED" in text and "  it printed: hello" in text
    doc = check_document(host, verdicts, installed=items, found={id(judged): items[0]})
    assert doc["ready"] is False and doc["vmms"][0]["installed"]["version"] == "7.2.22"
    assert [i["range"] for i in doc["installed"]] == ["7.2.0 to 7.x", None, None]
    # Nothing found: not ready, and the report says where it looked.
    assert check_document(host, [], installed=[])["ready"] is False
    assert "no VMM found on PATH or in /usr/local/bin" in _check.render(host, [], searched=True)
