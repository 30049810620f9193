"""The ioctl backend seam: what any binding must offer, and how one is chosen.

Imports ``errors`` (and, lazily, the concrete backends). A backend knows paths, file
descriptors, ioctl numbers and errno values; it knows nothing of capabilities, profiles
or the CLI. Its calls raise ``OSError`` carrying the errno, except ``check_many``, which
reports an errno per entry; ``device`` is where errno values become kvmprobe errors.
"""

from __future__ import annotations

import os
import threading
from typing import List, Optional, Sequence, Tuple

from typing import Protocol

from .errors import BackendUnavailable

#: Per entry of ``check_many``: the ioctl's return value (``-1`` on failure) and its errno (0: none).
CheckResults = Tuple[List[int], List[int]]

BACKEND_NAMES = ("cffi", "ctypes")


class Backend(Protocol):
    """What an ioctl binding offers. The fd belongs to the caller, who must ``close`` it."""

    name: str

    def open(self, path: str) -> int:
        """Open ``path`` with ``O_RDWR | O_CLOEXEC`` and return the fd; raise ``OSError``."""

    def close(self, fd: int) -> None:
        """Close ``fd``."""

    def ioctl(self, fd: int, request: int, arg: int = 0) -> int:
        """Issue one integer-argument ioctl; return its non-negative result; raise ``OSError``.

        ``EINTR`` is retried, never reported.
        """

    def check_many(self, fd: int, request: int, numbers: Sequence[int]) -> CheckResults:
        """Issue ``request`` once per number (``EINTR`` retried); return values and errnos."""


_lock = threading.Lock()
_instances: dict[str, Backend] = {}
_failures: dict[str, BackendUnavailable] = {}


def select_backend(name: Optional[str] = None, *, compiled_module: Optional[str] = None) -> Backend:
    """The backend named ``name``, else ``$KVMPROBE_BACKEND``, else cffi when built, else ctypes.

    Args:
        name: ``"cffi"``, ``"ctypes"`` or ``"auto"`` (default: ``$KVMPROBE_BACKEND``, else auto).
        compiled_module: import name of the compiled cffi module (default ``kvmprobe._kvmbatch``;
            tests name a missing one to see the fallback and the error).

    Raises:
        BackendUnavailable: the backend asked for is unknown or cannot be loaded here.
    """
    wanted = (name or os.environ.get("KVMPROBE_BACKEND") or "auto").strip().lower()
    if wanted not in ("auto",) + BACKEND_NAMES:
        raise BackendUnavailable(
            f"unknown ioctl backend {wanted!r}",
            hint="set KVMPROBE_BACKEND to 'cffi' or 'ctypes', or unset it",
        )
    with _lock:
        if wanted == "auto":
            for candidate in BACKEND_NAMES:
                backend = _load(candidate, required=False, module=compiled_module)
                if backend is not None:
                    return backend
            raise BackendUnavailable("no ioctl backend could be loaded")  # ctypes always loads
        backend = _load(wanted, required=True, module=compiled_module)
        assert backend is not None  # required=True raises instead
        return backend


def _load(name: str, *, required: bool, module: Optional[str]) -> Optional[Backend]:
    key = name if module is None else f"{name}:{module}"
    if key in _instances:
        return _instances[key]
    backend: Backend
    if name == "ctypes":
        from ._backend_ctypes import CtypesBackend

        backend = CtypesBackend()
    else:
        from . import _backend_cffi

        failure = _failures.get(key)
        if failure is None:
            try:
                backend = _backend_cffi.CffiBackend(module or _backend_cffi.MODULE)
            except BackendUnavailable as err:
                # Remembered: the automatic choice runs on every uncached probe, and a failed
                # import is not free.
                failure = _failures[key] = err
        if failure is not None:
            if required:
                raise BackendUnavailable(
                    f"the cffi backend is not available: {failure.message}", hint=failure.hint
                ) from failure
            return None
    _instances[key] = backend
    return backend
