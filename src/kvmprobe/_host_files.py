"""Files under a root, read bounded and without trusting them: the host reader's plumbing.

Imports ``_files`` (the bounded reader) and ``_access`` (what a container looks like). The one
place ``OSError`` from reading host files is mapped (:func:`attempt`: missing or unreadable is
unknown, never an error), and the one reader of each file more than one room needs:
``/proc/cpuinfo``'s first CPU (:func:`first_cpu`: the host facts and the CPU record) and the
container signs (:func:`container`: the host facts and the device's permission hint). Every
path is taken relative to ``root``, so a test can hand it a tree that looks like another host.
"""

from __future__ import annotations

import errno as _errno
import os

from ._access import container_kind
from ._files import read_limited

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, List, Optional, Tuple, TypeVar

    _T = TypeVar("_T")

__all__ = ["CPUINFO_LIMIT", "TEXT_LIMIT", "Reader", "attempt", "container", "first_cpu"]

# The procfs/sysfs/etc files read are small: a sysfs attribute is at most a page. More than
# this is no such file (a fake root may hold anything) and reads as unknown.
TEXT_LIMIT = 1024 * 1024
# Only the first CPU's block of /proc/cpuinfo is used; a machine with thousands of CPUs has
# a longer file, of which the head is enough.
CPUINFO_LIMIT = 4 * 1024 * 1024


class Reader:
    """Files under one root. The only place ``OSError`` from reading the host is handled."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.real = self.root == "/"

    def path(self, absolute: str) -> str:
        return os.path.join(self.root, absolute.lstrip("/"))

    def text(self, absolute: str, limit: int = TEXT_LIMIT, *, truncate: bool = False) -> Optional[str]:
        """The file's text, or ``None`` when it is missing, unreadable, not a regular file or
        over ``limit`` bytes (with ``truncate``: its first ``limit`` bytes)."""
        return _read(lambda: _read_text(self.path(absolute), limit, truncate))

    def exists(self, absolute: str) -> bool:
        return os.path.lexists(self.path(absolute))

    def listdir(self, absolute: str) -> List[str]:
        return _read(lambda: sorted(os.listdir(self.path(absolute)))) or []

    def stat(self, absolute: str) -> Optional[os.stat_result]:
        return _read(lambda: os.stat(self.path(absolute)))

    def pread(self, absolute: str, size: int, offset: int) -> Tuple[Optional[bytes], Optional[str]]:
        """Bytes at ``offset``, or ``None`` and the errno name (``EACCES``, ``ENOENT``)."""

        def read() -> bytes:
            # O_NONBLOCK: under a fake root the path may be a FIFO; the msr driver ignores the flag.
            fd = os.open(self.path(absolute), os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # ownership: closed below
            try:
                return os.pread(fd, size, offset)
            finally:
                os.close(fd)

        return attempt(read)


def _read_text(path: str, limit: int, truncate: bool) -> str:
    # read_limited opens regular files only (a FIFO would block, /dev/zero never end).
    return read_limited(path, limit, truncate=truncate).decode("utf-8", errors="replace")


def attempt(action: Callable[[], _T]) -> Tuple[Optional[_T], Optional[str]]:
    # The one mapping of OSError for host facts: missing or unreadable means unknown (None,
    # with the errno's name for the diagnosis to show), never an error. A file that vanished
    # between listdir and open is just as unknown.
    try:
        return action(), None
    except OSError as err:
        return None, _errno.errorcode.get(err.errno or 0, "EIO")
    except ValueError:  # a path with a NUL or an unencodable surrogate names no file
        return None, "EINVAL"


def _read(action: Callable[[], _T]) -> Optional[_T]:
    return attempt(action)[0]


def first_cpu(reader: Reader) -> Tuple[Optional[str], Optional[Tuple[str, ...]]]:
    """The vendor and the feature flags of the first CPU in ``/proc/cpuinfo`` (``None``: not
    there or unreadable). x86 lists ``flags``, s390x ``features``, arm64 ``Features``.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     os.mkdir(os.path.join(tmp, "proc"))
        ...     with open(os.path.join(tmp, "proc/cpuinfo"), "w") as f:
        ...         _ = f.write("vendor_id\\t: AuthenticAMD\\nflags\\t: fpu svm\\n\\nflags\\t: fpu\\n")
        ...     first_cpu(Reader(tmp))
        ('AuthenticAMD', ('fpu', 'svm'))
    """
    vendor: Optional[str] = None
    flags: Optional[Tuple[str, ...]] = None
    for line in (reader.text("/proc/cpuinfo", CPUINFO_LIMIT, truncate=True) or "").splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key in ("flags", "features", "Features") and flags is None:  # only the first CPU counts
            flags = tuple(value.split())
        elif key in ("vendor_id", "vendor") and vendor is None:
            vendor = value.strip() or None
    return vendor, flags


def container(reader: Reader) -> Optional[str]:
    """The container this root's processes run in (``_access.container_kind``), or ``None``.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     open(os.path.join(tmp, ".dockerenv"), "w").close()
        ...     container(Reader(tmp))
        'docker'
    """
    return container_kind(reader.exists("/.dockerenv"), reader.exists("/run/.containerenv"),
                          reader.text("/proc/1/cgroup") or "")  # fmt: skip
