"""cffi build script for ``kvmprobe._kvmbatch``, the compiled batch loop (API mode).

Lives outside the package, as pyca/cryptography keeps its ``src/_cffi_src``: ``setup.py``
runs it at build time and nothing imports it at run time. The C layer is flat and named
after what it does (python-evdev style): one ``ioctl`` with an integer argument, and a loop
that runs one request over an array of numbers. The numbers come from Python at call time
(``kvmprobe.caps.Cap``), so C holds no copy of the capability table and no ioctl number.

The module embeds the package version; ``kvmprobe._backend_cffi`` refuses a build whose
version differs from the installed Python code (a stale in-place ``.so``).

Run directly to build in place for development: ``python src/_kvmprobe_cffi/build_batch.py``.
"""

from __future__ import annotations

import pathlib
import re

from cffi import FFI

_HERE = pathlib.Path(__file__).resolve().parent
_VERSION_FILE = _HERE.parent / "kvmprobe" / "_version.py"


def package_version() -> str:
    """``__version__`` read from ``kvmprobe/_version.py`` as text (the package may not import yet)."""
    text = _VERSION_FILE.read_text(encoding="utf-8")
    found = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", text, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no __version__ in {_VERSION_FILE}")
    return found.group(1)


CDEF = """
const char *kvmbatch_version(void);
int kvmbatch_ioctl(int fd, unsigned long request, long arg);
size_t kvmbatch_check_many(int fd, unsigned long request, const long *numbers,
                           int *values, int *errnos, size_t count);
"""

SOURCE = r"""
#include <errno.h>
#include <stddef.h>
#include <sys/ioctl.h>

#define KVMBATCH_VERSION "@VERSION@"

/* The kvmprobe version this module was compiled for; the loader refuses any other. */
static const char *kvmbatch_version(void)
{
    return KVMBATCH_VERSION;
}

/* One ioctl whose argument is an integer (KVM_GET_API_VERSION, KVM_CHECK_EXTENSION,
 * KVM_CREATE_VM), issued once. Returns the result, or -1 with errno set (cffi saves errno for
 * ffi.errno); EINTR is reported like any errno, and kvmprobe's device layer asks again, a
 * bounded number of times. The fd is the caller's: nothing here opens or closes one. */
static int kvmbatch_ioctl(int fd, unsigned long request, long arg)
{
    return ioctl(fd, request, (unsigned long)arg);
}

/* For each i: values[i] = ioctl(fd, request, numbers[i]), issued once; errnos[i] = its errno
 * (EINTR included: the caller asks those again), or 0 when it succeeded (values[i] is then
 * >= 0; -1 on failure). Returns how many entries failed, so the caller can skip reading
 * errnos when none did. */
static size_t kvmbatch_check_many(int fd, unsigned long request, const long *numbers,
                                  int *values, int *errnos, size_t count)
{
    size_t i, failed = 0;
    for (i = 0; i < count; i++) {
        int r = ioctl(fd, request, (unsigned long)numbers[i]);
        values[i] = r;
        if (r < 0) {
            errnos[i] = errno;
            failed++;
        } else {
            errnos[i] = 0;
        }
    }
    return failed;
}
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "kvmprobe._kvmbatch",
    SOURCE.replace("@VERSION@", package_version()),
)

if __name__ == "__main__":
    # Development build: compile next to the sources (src/kvmprobe/_kvmbatch*.so).
    ffibuilder.compile(tmpdir=str(_HERE.parent), verbose=True)
