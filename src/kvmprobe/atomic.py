"""Replace a file atomically, so that a reader sees the old content or the new, never a part.

Public (``kvmprobe.atomic``, and ``kvmprobe.write_atomic``); imports nothing from the package. The fleet exports (``export --format nfd|prometheus -o``)
write here, and so can anything else that produces a file another program polls.

The recipe: create a fresh dot-file with a random name in the target's own directory
(``O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC``, so a name somebody planted, a symlink included,
is refused rather than followed), write everything, ``fsync``, then ``rename`` over the target
(atomic within one filesystem, rename(2)) and ``fsync`` the directory so the rename itself is
durable. On any failure the temporary file is removed and the target is left as it was.

Only a regular file (or nothing) is ever replaced: a path naming a device node, a FIFO, a
socket, a directory or a symbolic link (to anything, ``/proc/self/fd/1`` or a regular file, or
dangling) is refused with an ``OSError`` and left as it was. Renaming over ``/dev/null`` would
replace the system's node; writing into a FIFO would block until a reader comes; renaming over
a link would silently turn somebody's link into a file, and writing through it would change a
file the caller did not name.

The temporary name starts with a dot and ends in ``.tmp``: NFD skips dot-files in
``features.d`` (source/local/local.go) and node_exporter reads only ``*.prom``, so neither
ever parses a file still being written.
"""

from __future__ import annotations

import errno
import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, Iterator, Optional, Union

__all__ = ["NotARegularFile", "check_target", "write_atomic"]

#: Candidate temporary names tried before giving up (each is random; a clash means a planted file).
_ATTEMPTS = 16

# Keep the temporary name under NAME_MAX (255 on Linux filesystems) for any target name.
_STEM_MAX = 200


def _random_names(target: str) -> Iterator[str]:
    stem = os.path.basename(target)[:_STEM_MAX]
    for _ in range(_ATTEMPTS):
        yield f".{stem}.{os.urandom(8).hex()}.tmp"  # the secrets module would import hashlib


class NotARegularFile(OSError):
    """Something other than a regular file stands at the path to write (``errno`` EEXIST).

    Example:
        >>> err = NotARegularFile(errno.EEXIST, "a FIFO, not a regular file", "out.json")
        >>> err.errno == errno.EEXIST, err.strerror
        (True, 'a FIFO, not a regular file')
    """


# What stat(2) can find at a path, for the message (S_IFREG is the one written over).
_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def check_target(path: Union[str, "os.PathLike[str]"]) -> None:
    """Refuse a path where something other than a regular file (or nothing) stands.

    A symbolic link is refused whatever it leads to (the message says what: ``/dev/null``, a pipe
    behind ``/proc/self/fd/1``, a regular file, nothing). A path where nothing stands (or whose
    directory is missing) passes: writing there then says why it fails.

    Raises:
        IsADirectoryError: ``path`` is a directory (``EISDIR``).
        NotARegularFile: a device node, FIFO, socket or symbolic link (``EEXIST``).

    Example:
        >>> check_target("/nonexistent/out.json")
        >>> check_target("/dev/null")
        Traceback (most recent call last):
        ...
        kvmprobe.atomic.NotARegularFile: [Errno 17] a character device, not a regular file: '/dev/null'
    """
    target = os.fspath(path)
    try:
        mode = os.lstat(target).st_mode
    except OSError:
        return
    if stat.S_ISLNK(mode):
        try:
            pointed = _kind(os.stat(target).st_mode)
        except OSError:
            pointed = "nothing"
        raise NotARegularFile(errno.EEXIST, f"a symbolic link (to {pointed})", target)
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "a directory", target)
    raise NotARegularFile(errno.EEXIST, f"{_kind(mode)}, not a regular file", target)


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    return next((name for test, name in _KINDS if test(mode)), "not a file")


def write_atomic(
    path: Union[str, "os.PathLike[str]"],
    text: str,
    *,
    mode: int = 0o644,
    temp_names: Optional[Iterable[str]] = None,
) -> None:
    """Write ``text`` (UTF-8) to ``path`` so that no reader ever sees a partial file.

    An existing regular file at ``path`` is replaced whole; anything else, a symbolic link
    included, is refused (see :func:`check_target`). The new file gets ``mode`` whatever the umask.

    Args:
        path: the file to create or replace; its directory must exist.
        text: the complete new content.
        mode: the permission bits of the new file (default ``0o644``: world-readable, as
            node_exporter and nfd-worker need).
        temp_names: the temporary basenames to try, in order (default: random dot-names);
            tests pass fixed names to plant a symlink where the writer will look.

    Raises:
        IsADirectoryError, NotARegularFile: a directory, device node, FIFO, socket or symbolic
            link stands at ``path``; it is left untouched.
        FileExistsError: every temporary name tried was already taken (something was
            planted there; it is neither followed nor removed).
        OSError: the directory is missing or not writable, the disk is full, ``path`` is a
            directory, ...; the target is unchanged and no temporary file is left.

    Example:
        >>> import tempfile, os, pathlib
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     target = pathlib.Path(tmp, "kvm.prom")
        ...     write_atomic(target, "kvm_usable 1\\n")
        ...     write_atomic(target, "kvm_usable 0\\n")
        ...     target.read_text(), oct(target.stat().st_mode & 0o777), os.listdir(tmp)
        ('kvm_usable 0\\n', '0o644', ['kvm.prom'])
    """
    target = os.fspath(path)
    check_target(target)
    directory = os.path.dirname(os.path.abspath(target))
    data = text.encode("utf-8")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    names = _random_names(target) if temp_names is None else iter(temp_names)
    temp = ""
    fd = -1
    refused: Optional[OSError] = None
    for name in names:
        candidate = os.path.join(directory, name)
        try:
            fd = os.open(candidate, flags, mode)  # closed below, on every path
        except FileExistsError as err:
            refused = err  # taken (perhaps a planted symlink): never follow it, try another name
            continue
        temp = candidate
        break
    if fd < 0:
        if refused is not None:
            raise FileExistsError(
                refused.errno, f"every temporary name for {target} was taken (last: {refused.filename})"
            ) from refused
        raise ValueError("temp_names gave no name to try")
    try:
        try:
            os.fchmod(fd, mode)  # os.open's mode is filtered by the umask; the result must not be
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        check_target(target)  # again, just before the rename: nothing special appeared meanwhile
        os.rename(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    _sync_directory(directory)


def _sync_directory(directory: str) -> None:
    """Make the rename durable; some filesystems cannot fsync a directory, which is no error here."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # closed just below
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
