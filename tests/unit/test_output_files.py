"""``-o FILE`` writes only where a regular file or nothing stands; anything else is left alone.

A character device node (a copy of /dev/null made with mknod, as root, in a temporary
directory: never the real one), a FIFO, a symlink to a special file and a symlink to
/proc/self/fd/N (N a pipe this process holds, as /proc/self/fd/1 is in a shell pipeline) are each given to ``snapshot -o`` and ``export -o``: exit 2, one line, and the
node is still exactly what it was. The one writer (``write_atomic``) refuses them for every
command that writes files (snapshot, export, ``emulate --trace=FILE``, ``learn -o``). A
directory is named as one; write errors read the same for every command.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

import pytest

from kvmprobe import write_atomic
from kvmprobe._cli import main
from kvmprobe.snapshot import write_snapshot

Identity = Tuple[int, int, int, int, str]


def identity(path: Path) -> Identity:
    """What must not change: the inode, its type and mode, its device number, a link's target."""
    st = os.lstat(path)
    target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
    return st.st_ino, st.st_mode, st.st_rdev, st.st_size, target


@pytest.fixture
def pipe() -> Iterator[int]:
    """The write end of a pipe this process holds while the test runs (its reader is closed)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    yield write_end
    os.close(write_end)


def special_files(tmp_path: Path, pipe: int) -> Dict[str, Path]:
    """Every kind of non-regular thing an output path can name, made in ``tmp_path``."""
    made: Dict[str, Path] = {}
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    made["a FIFO"] = fifo
    made["a symlink to a FIFO"] = tmp_path / "to-fifo"
    os.symlink(fifo, made["a symlink to a FIFO"])
    made["a symlink to /proc/self/fd/N, a pipe"] = tmp_path / "to-stdout"
    os.symlink(f"/proc/self/fd/{pipe}", made["a symlink to /proc/self/fd/N, a pipe"])
    made["a directory"] = tmp_path / "adir"
    made["a directory"].mkdir()
    if os.geteuid() == 0:
        null = tmp_path / "null"
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a copy of /dev/null (mem 1:3)
        made["a character device"] = null
        made["a symlink to a character device"] = tmp_path / "to-null"
        os.symlink(null, made["a symlink to a character device"])
    return made


def test_the_writer_refuses_every_non_regular_target_and_leaves_it_as_it_was(tmp_path: Path, pipe: int) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod of a character device needs root; the FIFO and symlink cases run below without")
    targets = special_files(tmp_path, pipe)
    for what, path in targets.items():
        before = identity(path)
        with pytest.raises(OSError) as refused:
            write_atomic(path, "x\n")
        assert identity(path) == before, what
        assert refused.value.errno in (errno.EISDIR, errno.EEXIST), (what, refused.value)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in targets.values())  # no temporary left


def test_the_writer_refuses_fifos_and_symlinks_to_them_without_root(tmp_path: Path, pipe: int) -> None:
    targets = special_files(tmp_path, pipe)
    for what in ("a FIFO", "a symlink to a FIFO", "a directory"):
        before = identity(targets[what])
        with pytest.raises(OSError, match="not a regular file|a directory|a symbolic link"):
            write_atomic(targets[what], "x\n")
        assert identity(targets[what]) == before, what


def test_regular_files_and_nothing_are_written_symlinks_never(tmp_path: Path) -> None:
    regular = tmp_path / "old.json"
    regular.write_text("old\n")
    write_atomic(regular, "new\n")
    assert regular.read_text() == "new\n"
    write_atomic(tmp_path / "fresh.json", "fresh\n")
    assert (tmp_path / "fresh.json").read_text() == "fresh\n"
    kept = tmp_path / "kept"
    kept.write_text("kept\n")
    link = tmp_path / "link"
    os.symlink(kept, link)
    with pytest.raises(OSError, match="symbolic link"):  # neither replaced nor written through
        write_atomic(link, "replaced\n")
    assert kept.read_text() == "kept\n" and link.is_symlink()
    dangling = tmp_path / "dangling"
    os.symlink(tmp_path / "nothing-here", dangling)
    with pytest.raises(OSError, match="symbolic link"):
        write_atomic(dangling, "d\n")
    assert dangling.is_symlink() and not (tmp_path / "nothing-here").exists()


COMMANDS: Dict[str, Callable[[str], List[str]]] = {
    "snapshot": lambda out: ["snapshot", "--snapshot", "preset:linux-4.14", "-o", out],
    "export nfd": lambda out: ["export", "--format", "nfd", "--snapshot", "preset:linux-4.14", "-o", out],
    "export prometheus": lambda out: ["export", "--format", "prometheus", "--snapshot", "preset:linux-4.14", "-o", out],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_snapshot_and_export_refuse_special_files_with_exit_2(
    command: str, tmp_path: Path, pipe: int, capsys: pytest.CaptureFixture[str]
) -> None:
    targets = special_files(tmp_path, pipe)
    if os.geteuid() == 0:
        assert "a character device" in targets
    for what, path in targets.items():
        before = identity(path)
        code = main(COMMANDS[command](str(path)))
        out, err = capsys.readouterr()
        assert code == 2, (what, code, err)
        assert identity(path) == before, what
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("kvmprobe: error: cannot write "), (what, err)
        assert "(hint: " in lines[0], (what, err)
        assert out == "", (what, out)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in targets.values())


def test_dash_is_still_standard_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["snapshot", "--snapshot", "preset:linux-4.14", "-o", "-"]) == 0
    assert '"schema": "kvmprobe-snapshot"' in capsys.readouterr().out
    assert main(["export", "--format", "nfd", "--snapshot", "preset:linux-4.14", "-o", "-"]) == 0
    assert "kvm.usable=true" in capsys.readouterr().out


@pytest.mark.parametrize("spelled", ["adir", "adir/"])
def test_a_directory_is_named_as_one_and_worded_alike_by_snapshot_and_export(
    spelled: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "adir").mkdir()
    monkeypatch.chdir(tmp_path)
    lines = {}
    for command in COMMANDS:
        assert main(COMMANDS[command](spelled)) == 2
        err = capsys.readouterr().err
        assert "Not a directory" not in err and "is a directory" in err, err
        lines[command] = err
    assert len(set(lines.values())) == 1, lines  # one wording, hint included


def test_a_missing_directory_is_worded_alike_by_snapshot_and_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "missing" / "host.json")
    lines = set()
    for command in COMMANDS:
        assert main(COMMANDS[command](out)) == 2
        err = capsys.readouterr().err
        assert "(hint: " in err and "does not exist" in err, err
        lines.add(err)
    assert len(lines) == 1, lines


def test_the_library_writer_of_snapshots_refuses_them_too(tmp_path: Path) -> None:
    from kvmprobe import SnapshotError
    from kvmprobe.presets import load_preset
    from kvmprobe.snapshot import snapshot_document

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(SnapshotError, match="a FIFO"):
        write_snapshot(snapshot_document(load_preset("linux-4.14")), str(fifo))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_emulate_trace_and_learn_output_refuse_special_files(tmp_path: Path, pipe: int) -> None:
    from kvmprobe._cli._common import UsageError, write_output

    targets = special_files(tmp_path, pipe)

    def hung(signum: int, frame: object) -> None:
        raise AssertionError("the writer blocked opening a FIFO for writing")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        for what, path in targets.items():
            before = identity(path)
            with pytest.raises(UsageError, match="cannot write"):
                write_output(str(path), "trace\n")
            assert identity(path) == before, what
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
