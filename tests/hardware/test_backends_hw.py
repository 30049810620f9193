"""Both ioctl backends against the real /dev/kvm: the same answers as raw ``fcntl.ioctl``.

The compiled (cffi) and ctypes backends must agree with each other and with the kernel for
every capability of the table, open their fds with ``O_CLOEXEC`` and leak none. ``EINTR`` is
reported by a backend and asked again by the device (the one EINTR policy), for real: a
preloaded ``ioctl`` (compiled here) fails every other ``KVM_CHECK_EXTENSION`` with ``EINTR`` in
a child process, and nothing of it surfaces.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
from typing import Any, Dict

import pytest

import kvmprobe
from kvmprobe import _backend_cffi
from kvmprobe._backend import Backend
from kvmprobe._backend_select import select_backend
from kvmprobe.caps import Cap

from _helpers import open_fds  # noqa: I001
from _helpers import RAW_KVM_CHECK_EXTENSION, RAW_KVM_GET_API_VERSION, raw_check_extension


def _kvm_unusable() -> str:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as err:
        return f"/dev/kvm cannot be opened read-write: {os.strerror(err.errno or 0)}"
    os.close(fd)
    return ""


pytestmark = [
    pytest.mark.kvm,
    pytest.mark.skipif(bool(_kvm_unusable()), reason=_kvm_unusable() or "n/a"),
]

CFFI_MISSING = _backend_cffi.unavailable_reason()
needs_cffi = pytest.mark.skipif(bool(CFFI_MISSING), reason=f"the compiled backend is not usable: {CFFI_MISSING}")
NUMBERS = [int(cap) for cap in Cap]


@pytest.fixture(params=["cffi", "ctypes"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "cffi" and CFFI_MISSING:
        pytest.skip(f"the compiled backend is not usable: {CFFI_MISSING}")
    return select_backend(str(request.param))


def test_every_cap_equals_the_raw_ioctl(backend: Backend, raw_kvm_fd: int) -> None:
    raw = [raw_check_extension(raw_kvm_fd, n) for n in NUMBERS]
    fd = backend.open("/dev/kvm")  # ownership: closed below
    try:
        values, errnos = backend.check_many(fd, RAW_KVM_CHECK_EXTENSION, NUMBERS)
        single = [backend.ioctl(fd, RAW_KVM_CHECK_EXTENSION, n) for n in NUMBERS]
        api = backend.ioctl(fd, RAW_KVM_GET_API_VERSION)
    finally:
        backend.close(fd)
    assert errnos == [0] * len(NUMBERS)
    assert values == raw
    assert single == raw
    assert api == fcntl.ioctl(raw_kvm_fd, RAW_KVM_GET_API_VERSION) == 12
    assert any(v > 1 for v in raw), "expected count-valued answers (e.g. NR_MEMSLOTS) on a real kernel"


@needs_cffi
def test_cffi_and_ctypes_probe_identically() -> None:
    fast = kvmprobe.probe(backend=select_backend("cffi"), refresh=True, vm=True)
    slow = kvmprobe.probe(backend=select_backend("ctypes"), refresh=True, vm=True)
    assert (fast.backend, slow.backend) == ("cffi", "ctypes")
    assert dict(fast.values) == dict(slow.values)
    assert dict(fast.errors) == dict(slow.errors) == {}
    assert fast.vm_values is not None and slow.vm_values is not None
    assert dict(fast.vm_values) == dict(slow.vm_values)
    assert len(fast.values) == len(Cap)


def test_numbers_outside_the_table_answer_zero(backend: Backend, raw_kvm_fd: int) -> None:
    outside = [max(NUMBERS) + 1000, 100000]
    fd = backend.open("/dev/kvm")  # ownership: closed below
    try:
        assert backend.check_many(fd, RAW_KVM_CHECK_EXTENSION, outside) == ([0, 0], [0, 0])
    finally:
        backend.close(fd)
    assert [raw_check_extension(raw_kvm_fd, n) for n in outside] == [0, 0]


def test_fd_is_close_on_exec(backend: Backend) -> None:
    fd = backend.open("/dev/kvm")  # ownership: closed below
    try:
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert os.readlink(f"/proc/self/fd/{fd}") == "/dev/kvm"
    finally:
        backend.close(fd)
    with pytest.raises(OSError) as info:
        os.fstat(fd)
    assert info.value.errno == errno.EBADF


def test_probing_leaks_no_fd(backend: Backend) -> None:
    before = open_fds()
    for _ in range(3):
        kvmprobe.probe(backend=backend, refresh=True, vm=True)
    assert open_fds() == before


def test_errors_per_entry_on_a_fd_that_is_not_kvm(backend: Backend, tmp_path: pathlib.Path) -> None:
    # A regular file answers every KVM ioctl with ENOTTY: reported per entry, not raised.
    path = tmp_path / "plain"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        values, errnos = backend.check_many(fd, RAW_KVM_CHECK_EXTENSION, [0, 1])
        with pytest.raises(OSError) as info:
            backend.ioctl(fd, RAW_KVM_GET_API_VERSION)
    finally:
        os.close(fd)
    assert (values, errnos) == ([-1, -1], [errno.ENOTTY, errno.ENOTTY])
    assert info.value.errno == errno.ENOTTY


INTERPOSER = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>

/* Fails every other KVM_CHECK_EXTENSION (0xAE03) with EINTR, as a signal arriving mid-call
 * would, so each query's first attempt fails and its retry succeeds. */
long eintr_injected = 0;
static int flip = 0;

int ioctl(int fd, unsigned long request, ...)
{
    static int (*real_ioctl)(int, unsigned long, ...);
    va_list ap;
    unsigned long arg;
    va_start(ap, request);
    arg = va_arg(ap, unsigned long);
    va_end(ap);
    if (!real_ioctl)
        real_ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
    if (request == 0xAE03UL && (flip ^= 1)) {
        eintr_injected++;
        errno = EINTR;
        return -1;
    }
    return real_ioctl(fd, request, arg);
}
"""

CHILD = textwrap.dedent(
    """
    import ctypes, json, sys
    from kvmprobe._backend_select import select_backend
    from kvmprobe.caps import Cap
    from kvmprobe.device import KvmDevice

    numbers = [int(cap) for cap in Cap]
    with KvmDevice.open("/dev/kvm", backend=select_backend(sys.argv[1])) as kvm:  # closed on leaving
        values, errnos = kvm.check_many(numbers)
        single = kvm.check_extension_raw(numbers[0])
    injected = ctypes.c_long.in_dll(ctypes.CDLL(None), "eintr_injected").value
    print(json.dumps({"values": values, "errnos": errnos, "single": single, "injected": injected}))
    """
)


@pytest.fixture(scope="module")
def eintr_library(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler (cc) to build the EINTR-injecting ioctl")
    where = tmp_path_factory.mktemp("eintr")
    (where / "eintr.c").write_text(INTERPOSER)
    library = where / "libeintr.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(where / "eintr.c"), "-ldl"],
        check=True,
        capture_output=True,
    )
    return library


@pytest.mark.parametrize("name", ["cffi", "ctypes"])
def test_eintr_is_retried(name: str, eintr_library: pathlib.Path, raw_kvm_fd: int) -> None:
    if name == "cffi" and CFFI_MISSING:
        pytest.skip(f"the compiled backend is not usable: {CFFI_MISSING}")
    env = dict(os.environ, LD_PRELOAD=str(eintr_library), KVMPROBE_BACKEND=name)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, name], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert child.returncode == 0, child.stderr
    report: Dict[str, Any] = json.loads(child.stdout)
    raw = [raw_check_extension(raw_kvm_fd, n) for n in NUMBERS]
    assert report["errnos"] == [0] * len(NUMBERS)
    assert report["values"] == raw
    assert report["single"] == raw[0]
    assert report["injected"] >= len(NUMBERS) // 2  # EINTR really happened, and never surfaced
