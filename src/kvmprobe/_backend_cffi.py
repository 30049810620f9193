"""The fast ioctl backend: the compiled cffi module ``kvmprobe._kvmbatch`` (optional).

Imports ``_backend``, ``_kvmbatch`` (the compiled module), ``_version`` and ``errors``. ``pip
install .`` builds the module (``src/_kvmprobe_cffi/build_batch.py``) when cffi and a C compiler are
there; using it needs the ``cffi`` package at run time too (the ``fast`` extra). When it cannot be
used, :func:`unavailable_reason` says why and kvmprobe runs on ctypes. The batch loop
``check_many`` runs in C: one Python call for the whole capability table.
"""

from __future__ import annotations

import os
import sys

from ._backend import BackendBase
from ._version import __version__
from .errors import BackendUnavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Sequence, Tuple

    from ._backend import CheckResults
    from ._kvmbatch import Lib

#: The compiled module's import name (``set_source`` in ``build_batch.py``).
MODULE = "kvmprobe._kvmbatch"

# kvmprobe is installed from its source tree (there is no package index entry to reinstall
# from): this is the command that rebuilds the module there.
_REBUILD = (
    "reinstall kvmprobe from its source tree with cffi and a C compiler present "
    "(in the checkout: pip install --force-reinstall '.[fast]')"
)


def load(module: str = MODULE, version: str = __version__) -> Tuple[Any, Lib]:
    """Import the compiled module and return its ``(ffi, lib)``, checking the embedded version.

    Raises:
        BackendUnavailable: not built, cffi missing at run time, or built for another version.

    Example:
        >>> load("kvmprobe._no_such_module")
        Traceback (most recent call last):
        ...
        kvmprobe.errors.BackendUnavailable: the compiled module kvmprobe._no_such_module was not built (no C compiler or no cffi when kvmprobe was installed) (hint: reinstall kvmprobe from its source tree with cffi and a C compiler present (in the checkout: pip install --force-reinstall '.[fast]'), or set KVMPROBE_BACKEND=ctypes)
    """
    hint = _REBUILD + ", or set KVMPROBE_BACKEND=ctypes"
    try:
        __import__(module)  # not importlib.import_module: importing importlib costs about 0.3 ms
        compiled = sys.modules[module]
    except ModuleNotFoundError as err:
        if err.name == "_cffi_backend":
            raise BackendUnavailable(
                f"the compiled module {module} needs the cffi package, which is not installed",
                hint="pip install cffi (what the 'fast' extra adds), or set KVMPROBE_BACKEND=ctypes",
            ) from err
        if err.name != module:
            raise
        if _from_zip_archive():
            raise BackendUnavailable(
                f"the compiled module {module} cannot be in a zip archive: this kvmprobe runs from one "
                f"({os.path.dirname(os.path.dirname(__file__))}), built by scripts/build_zipapp.py",
                hint="unset KVMPROBE_BACKEND or set it to ctypes; install kvmprobe with pip for the cffi backend",
            ) from err
        raise BackendUnavailable(
            f"the compiled module {module} was not built (no C compiler or no cffi when kvmprobe was installed)",
            hint=hint,
        ) from err
    except ImportError as err:  # e.g. built for another Python, or a broken .so
        raise BackendUnavailable(f"the compiled module {module} does not load: {err}", hint=hint) from err
    ffi = compiled.ffi
    lib: Lib = compiled.lib
    built_for = ffi.string(lib.kvmbatch_version()).decode("ascii", "replace")
    if built_for != version:
        raise BackendUnavailable(
            f"the compiled module {module} was built for kvmprobe {built_for}, this is kvmprobe {version}",
            hint=hint,
        )
    return ffi, lib


def _from_zip_archive() -> bool:
    """Whether this package is imported from a zip archive (``kvmprobe.pyz``): its parent is a file."""
    return os.path.isfile(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def unavailable_reason(module: str = MODULE, version: str = __version__) -> str:
    """Why the compiled module cannot be used, or ``""`` when it can.

    Example:
        >>> unavailable_reason("kvmprobe._no_such_module")
        'the compiled module kvmprobe._no_such_module was not built (no C compiler or no cffi when kvmprobe was installed)'
    """
    try:
        load(module, version)
    except BackendUnavailable as err:
        return err.message
    return ""


class CffiBackend(BackendBase):
    """KVM ioctls through the compiled cffi module; ``check_many`` loops in C.

    The capability numbers arrive from Python at each call (C keeps no table). The C array
    built from them is cached for the last few distinct number lists (``BackendBase``), since a
    probe sends the same list every time; output arrays are new per call, so threads never
    share one.

    Raises:
        BackendUnavailable: as :func:`load`, when constructed where the module cannot be used.

    Example (hardware):
        >>> backend = CffiBackend()  # doctest: +SKIP
        >>> fd = backend.open("/dev/kvm")  # doctest: +SKIP
        >>> backend.ioctl(fd, 0xAE00), backend.check_many(fd, 0xAE03, [0, 3])  # doctest: +SKIP
        (12, ([1, 1], [0, 0]))
        >>> backend.close(fd)  # doctest: +SKIP
    """

    name = "cffi"

    def __init__(self, module: str = MODULE, version: str = __version__) -> None:
        super().__init__()
        self._ffi, self._lib = load(module, version)

    def ioctl(self, fd: int, request: int, arg: int = 0) -> int:
        # Ownership: fd is borrowed from the caller, who keeps and closes it.
        result: int = self._lib.kvmbatch_ioctl(fd, request, arg)
        if result < 0:
            code: int = self._ffi.errno
            raise OSError(code, os.strerror(code))
        return result

    def _convert(self, numbers: Tuple[int, ...]) -> Any:
        return self._ffi.new("long[]", numbers)

    def check_many(self, fd: int, request: int, numbers: Sequence[int]) -> CheckResults:
        numbers_c = self._array(numbers)
        count = len(numbers)
        ffi = self._ffi
        values = ffi.new("int[]", count)
        errnos = ffi.new("int[]", count)
        # Ownership: fd is borrowed from the caller; the three arrays are owned by this frame
        # (cffi frees them with their Python objects) and C keeps no pointer to any of them.
        failed = self._lib.kvmbatch_check_many(fd, request, numbers_c, values, errnos, count)
        errno_list: List[int] = ffi.unpack(errnos, count) if failed else [0] * count
        return ffi.unpack(values, count), errno_list
