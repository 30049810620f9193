"""Choosing the ioctl backend: automatic choice, KVMPROBE_BACKEND, and clear errors.

The compiled module is made "missing", "stale" or "broken" by naming another module through
the ``compiled_module=`` / ``module=`` parameters, never by patching the import system.
"""

from __future__ import annotations

import pathlib

import pytest

import kvmprobe
from kvmprobe import _backend_cffi
from kvmprobe._backend_select import select_backend
from kvmprobe.errors import BackendUnavailable

MISSING = "kvmprobe._kvmbatch_not_built"


def _built() -> bool:
    return _backend_cffi.unavailable_reason() == ""


needs_build = pytest.mark.skipif(
    not _built(), reason=f"kvmprobe._kvmbatch is not usable here: {_backend_cffi.unavailable_reason()}"
)


def test_ctypes_by_name() -> None:
    assert select_backend("ctypes").name == "ctypes"


def test_auto_falls_back_to_ctypes_when_the_compiled_module_is_missing() -> None:
    assert select_backend("auto", compiled_module=MISSING).name == "ctypes"
    assert select_backend(None, compiled_module=MISSING).name == "ctypes"


def test_forced_cffi_missing_says_what_and_what_to_do() -> None:
    with pytest.raises(BackendUnavailable) as info:
        select_backend("cffi", compiled_module=MISSING)
    err = info.value
    assert err.message == (
        f"the cffi backend is not available: the compiled module {MISSING} was not built "
        "(no C compiler or no cffi when kvmprobe was installed)"
    )
    assert "KVMPROBE_BACKEND=ctypes" in err.hint and "pip install --force-reinstall '.[fast]'" in err.hint
    assert "\n" not in str(err)


def test_environment_forces_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KVMPROBE_BACKEND", " CTypes ")
    assert select_backend(compiled_module=MISSING).name == "ctypes"
    assert kvmprobe.backend() == "ctypes"
    monkeypatch.setenv("KVMPROBE_BACKEND", "cffi")
    with pytest.raises(BackendUnavailable, match="was not built"):
        select_backend(compiled_module=MISSING)


def test_an_explicit_name_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KVMPROBE_BACKEND", "cffi")
    assert select_backend("ctypes", compiled_module=MISSING).name == "ctypes"


def test_unknown_backend_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KVMPROBE_BACKEND", "fast")
    with pytest.raises(BackendUnavailable) as info:
        select_backend()
    assert info.value.message == "unknown ioctl backend 'fast'"
    assert "'cffi' or 'ctypes'" in info.value.hint


def test_a_failed_load_is_remembered_and_reported_again() -> None:
    for _ in range(2):
        with pytest.raises(BackendUnavailable, match="was not built"):
            select_backend("cffi", compiled_module=MISSING)


def test_cffi_missing_at_run_time(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What a compiled module does on import when the cffi package is absent.
    (tmp_path / "kvmbatch_without_cffi.py").write_text(
        "raise ModuleNotFoundError(\"No module named '_cffi_backend'\", name='_cffi_backend')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reason = _backend_cffi.unavailable_reason("kvmbatch_without_cffi")
    assert reason == "the compiled module kvmbatch_without_cffi needs the cffi package, which is not installed"
    with pytest.raises(BackendUnavailable) as info:
        select_backend("cffi", compiled_module="kvmbatch_without_cffi")
    assert "pip install cffi" in info.value.hint


def test_a_module_that_does_not_load(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "kvmbatch_broken.py").write_text("raise ImportError('undefined symbol: kvmbatch_ioctl')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _backend_cffi.unavailable_reason("kvmbatch_broken") == (
        "the compiled module kvmbatch_broken does not load: undefined symbol: kvmbatch_ioctl"
    )
    assert select_backend(compiled_module="kvmbatch_broken").name == "ctypes"


@needs_build
def test_the_built_module_is_the_automatic_choice() -> None:
    assert select_backend("auto").name == "cffi"
    assert select_backend("cffi") is select_backend("auto")  # one instance per process


@needs_build
def test_kvmprobe_backend_reports_cffi_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KVMPROBE_BACKEND", raising=False)
    assert kvmprobe.backend() == "cffi"


@needs_build
def test_a_build_for_another_version_is_refused() -> None:
    with pytest.raises(BackendUnavailable) as info:
        _backend_cffi.load(version="0.0.0.other")
    assert info.value.message == (
        f"the compiled module kvmprobe._kvmbatch was built for kvmprobe {kvmprobe.__version__}, "
        "this is kvmprobe 0.0.0.other"
    )
    assert "--force-reinstall" in info.value.hint
    assert "0.0.0.other" in _backend_cffi.unavailable_reason(version="0.0.0.other")


@needs_build
def test_the_compiled_module_embeds_this_version() -> None:
    ffi, lib = _backend_cffi.load()
    assert ffi.string(lib.kvmbatch_version()).decode() == kvmprobe.__version__


@needs_build
def test_cffi_ioctl_on_a_bad_fd_raises_oserror_with_errno() -> None:
    backend = _backend_cffi.CffiBackend()
    with pytest.raises(OSError) as info:
        backend.ioctl(-1, 0xAE00)
    assert info.value.errno == 9  # EBADF
    values, errnos = backend.check_many(-1, 0xAE03, [0, 1, 2])
    assert values == [-1, -1, -1] and errnos == [9, 9, 9]
    assert backend.check_many(-1, 0xAE03, []) == ([], [])
