"""Builds the optional compiled fast path, ``kvmprobe._kvmbatch``; metadata is in pyproject.toml.

The extension is built when cffi and a C compiler are there. When either is missing, or
compiling fails for any reason, the install still succeeds without it (python-evdev does
the same) and kvmprobe uses its ctypes backend: ``kvmprobe.backend()`` says which one runs.
Set ``KVMPROBE_NO_EXTENSION=1`` to skip the extension on purpose.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, List

from setuptools import setup
from setuptools.command.build_ext import build_ext

_BUILD_SCRIPT = "src/_kvmprobe_cffi/build_batch.py:ffibuilder"


def _skip(reason: str) -> None:
    sys.stderr.write(
        "kvmprobe: not building the compiled fast path (kvmprobe._kvmbatch): "
        f"{reason}; kvmprobe will use its ctypes backend\n"
    )


class optional_build_ext(build_ext):
    """``build_ext`` whose failures skip the fast path instead of failing the install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as err:  # no compiler, no headers, ...: any of them only skips the extension
            _skip(f"{type(err).__name__}: {err}")

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except Exception as err:
            _skip(f"compiling {ext.name} failed ({type(err).__name__}: {err})")

    def get_outputs(self) -> List[str]:
        # Only what was really built, so a skipped extension is not listed as an installed file.
        return [path for path in super().get_outputs() if os.path.exists(path)]


def _options() -> Dict[str, Any]:
    options: Dict[str, Any] = {"cmdclass": {"build_ext": optional_build_ext}}
    if os.environ.get("KVMPROBE_NO_EXTENSION"):
        _skip("KVMPROBE_NO_EXTENSION is set")
        return options
    try:
        import cffi  # noqa: F401  (listed in build-system.requires; absent with --no-build-isolation)
    except ImportError:
        _skip("cffi is not installed in the build environment")
        return options
    options["cffi_modules"] = [_BUILD_SCRIPT]
    return options


setup(**_options())
