"""Read a small input file without trusting it: only a regular file, never blocking, bounded.

Imports nothing from the package. Profiles (``--profile FILE``) and the host facts under a
``root`` come from paths anyone can name, so the path may be a FIFO (``open`` would wait for a
writer forever), ``/dev/zero`` (a read that never ends), a device whose ``open`` has side
effects (``/dev/watchdog`` arms a timer), or a 100 MB file. :func:`read_limited` ``stat``\\ s
first and opens only a regular file, checks after opening that it is still the same file,
and reads at most ``limit`` bytes. Refusals are :class:`FileRefused`, an ``OSError``, so
callers that already map ``OSError`` treat them like any unreadable file.
"""

from __future__ import annotations

import errno
import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__all__ = ["FileRefused", "file_kind", "read_limited"]

_CHUNK = 65536


class FileRefused(OSError):
    """The path names something other than a regular file, or a file over the size limit.

    ``strerror`` says which; ``size`` is the file's size where a size refused it and stat knew it.
    """

    size: Optional[int] = None


def file_kind(mode: int) -> str:
    """``a FIFO``, ``a directory``, ... for an ``st_mode``."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_limited(path: str, limit: int, *, truncate: bool = False) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    With ``truncate`` a longer file gives its first ``limit`` bytes (for files whose head
    is all that is used, such as ``/proc/cpuinfo``); otherwise it is refused. procfs and
    sysfs files are regular files whose size ``stat`` does not know, so the limit is
    enforced while reading, not only from ``st_size``.

    Raises:
        FileRefused: not a regular file (checked before opening, so no device or FIFO is
            ever opened), replaced while being opened, or larger than ``limit``.
        OSError: it cannot be opened or read.
    """
    before = os.stat(path)
    if stat.S_ISDIR(before.st_mode):
        raise FileRefused(errno.EISDIR, "not a regular file (a directory)", path)
    if not stat.S_ISREG(before.st_mode):
        raise FileRefused(errno.EINVAL, f"not a regular file ({file_kind(before.st_mode)})", path)
    if before.st_size > limit and not truncate:
        refused = FileRefused(errno.EFBIG, f"{before.st_size} bytes, more than the {limit} read", path)
        refused.size = before.st_size
        raise refused
    # O_NONBLOCK: should the path become a FIFO after the stat, open must not wait for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)  # closed below
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != (before.st_dev, before.st_ino):
            raise FileRefused(errno.EINVAL, "replaced by another file while being opened", path)
        chunks = []
        size = 0
        while size <= limit:  # one byte past the limit tells "longer" from "exactly limit"
            chunk = os.read(fd, min(_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if size > limit:
        if truncate:
            return data[:limit]
        raise FileRefused(errno.EFBIG, f"more than the {limit} bytes read", path)
    return data
