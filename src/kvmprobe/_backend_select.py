"""Which ioctl backend runs: the one asked for, else ``$KVMPROBE_BACKEND``, else cffi when built.

Imports ``_backend``, the two backends (``_backend_cffi``, ``_backend_ctypes``) and ``errors``. Kept
apart from the seam (``_backend``) so that the backends, which build on the seam, are imported by
this module and never import it back: the layers point one way.
"""

from __future__ import annotations

import _thread  # threading's Lock, without importing threading (about 0.5 ms at start-up)
import os

from ._backend import Backend
from .errors import BackendUnavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional

__all__ = ["BACKEND_NAMES", "select_backend"]

#: The backends, in the order the automatic choice tries them.
BACKEND_NAMES = ("cffi", "ctypes")

_lock = _thread.allocate_lock()
_instances: Dict[str, Backend] = {}
_failures: Dict[str, BackendUnavailable] = {}


def select_backend(name: Optional[str] = None, *, compiled_module: Optional[str] = None) -> Backend:
    """The backend named ``name``, else ``$KVMPROBE_BACKEND``, else cffi when built, else ctypes.

    Args:
        name: ``"cffi"``, ``"ctypes"`` or ``"auto"`` (default: ``$KVMPROBE_BACKEND``, else auto).
        compiled_module: import name of the compiled cffi module (default ``kvmprobe._kvmbatch``;
            tests name a missing one to see the fallback and the error).

    Raises:
        BackendUnavailable: the backend asked for is unknown or cannot be loaded here.

    Example:
        >>> select_backend("ctypes").name
        'ctypes'
    """
    wanted = (name or os.environ.get("KVMPROBE_BACKEND") or "auto").strip().lower()
    if wanted not in ("auto",) + BACKEND_NAMES:
        raise BackendUnavailable(
            f"unknown ioctl backend {wanted!r}",
            hint="set KVMPROBE_BACKEND to 'cffi' or 'ctypes', or unset it",
        )
    chosen = wanted if compiled_module is None else f"{wanted}:{compiled_module}"
    known = _instances.get(chosen)
    if known is not None:  # every probe after the first: no import to try, no lock to take
        return known
    with _lock:
        if wanted == "auto":
            for candidate in BACKEND_NAMES:
                backend = _load(candidate, required=False, module=compiled_module)
                if backend is not None:
                    _instances[chosen] = backend  # what "auto" chose, here, for good
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
