"""write_atomic: readers never see a partial file, planted symlinks are not followed, nothing is left over."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import List

import pytest

from _helpers import open_fds
from kvmprobe import write_atomic


def leftovers(directory: Path, keep: str) -> List[str]:
    return sorted(name for name in os.listdir(directory) if name != keep)


def test_creates_then_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "kvm.prom"
    write_atomic(target, "x" * 100_000)
    write_atomic(str(target), "short\n")
    assert target.read_text() == "short\n"  # not "short\n" + the rest of the old content
    assert leftovers(tmp_path, "kvm.prom") == []


def test_mode_is_0644_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        write_atomic(tmp_path / "f", "a")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o644
    write_atomic(tmp_path / "g", "a", mode=0o600)
    assert (tmp_path / "g").stat().st_mode & 0o777 == 0o600


def test_a_concurrent_reader_sees_only_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "features"
    # Big enough that a plain open("w") + write would be caught half-way (several write calls).
    versions = [(letter * 65_536 + "\n") * 4 for letter in "ABCD"]
    write_atomic(target, versions[0])
    done = threading.Event()
    seen: List[str] = []
    torn: List[int] = []

    def reader() -> None:
        while not done.is_set():
            with open(target) as handle:
                content = handle.read()
            if content not in versions:
                torn.append(len(content))
            seen.append(content[:1])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for round_ in range(300):
            write_atomic(target, versions[round_ % len(versions)])
    finally:
        done.set()
        thread.join()
    assert torn == [], f"a reader saw partial files of sizes {torn[:5]}"
    assert len(seen) > 0
    assert leftovers(tmp_path, "features") == []


def test_a_symlink_planted_at_the_temporary_name_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / ".planted").symlink_to(victim)
    target = tmp_path / "kvm.prom"
    write_atomic(target, "kvm_usable 1\n", temp_names=[".planted", ".fresh"])
    assert victim.read_text() == "precious\n"
    assert (tmp_path / ".planted").is_symlink()  # left alone, not removed
    assert target.read_text() == "kvm_usable 1\n" and not target.is_symlink()
    assert not (tmp_path / ".fresh").exists()  # renamed onto the target


def test_only_planted_names_means_refusal(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / ".planted").symlink_to(victim)
    (tmp_path / ".dangling").symlink_to(tmp_path / "nowhere")
    target = tmp_path / "kvm.prom"
    target.write_text("old\n")
    with pytest.raises(FileExistsError, match="taken"):
        write_atomic(target, "new\n", temp_names=[".planted", ".dangling"])
    assert victim.read_text() == "precious\n" and target.read_text() == "old\n"
    assert not (tmp_path / "nowhere").exists()  # the dangling link was not created through


def test_a_symlinked_target_is_neither_replaced_nor_written_through(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("keep\n")
    target = tmp_path / "kvm.prom"
    target.symlink_to(elsewhere)
    with pytest.raises(OSError, match="symbolic link"):
        write_atomic(target, "new\n")
    assert target.is_symlink() and elsewhere.read_text() == "keep\n"


def test_failed_rename_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "a-directory"
    target.mkdir()
    (target / "inside").write_text("x")
    with pytest.raises(OSError) as caught:
        write_atomic(target, "text")
    assert caught.value.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST)
    assert leftovers(tmp_path, "a-directory") == [] and (target / "inside").read_text() == "x"


def test_missing_directory_is_a_clear_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "no" / "such" / "file", "x")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    # A file-size limit makes write(2) fail with EFBIG half-way, as a full disk would (ENOSPC).
    target = tmp_path / "kvm.prom"
    target.write_text("old\n")
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))\n"
        "from kvmprobe import write_atomic\n"
        "try:\n"
        "    write_atomic(sys.argv[1], 'y' * 100000)\n"
        "except OSError as err:\n"
        "    print(err.errno)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(errno.EFBIG)
    assert target.read_text() == "old\n" and leftovers(tmp_path, "kvm.prom") == []


def test_no_fd_leaks_on_success_or_failure(tmp_path: Path) -> None:
    before = open_fds()
    write_atomic(tmp_path / "f", "x")
    with pytest.raises(FileExistsError):
        (tmp_path / ".taken").write_text("")
        write_atomic(tmp_path / "f", "x", temp_names=[".taken"])
    with pytest.raises(OSError):
        write_atomic(tmp_path, "x")
    assert open_fds().keys() == before.keys()
