"""Fixtures for the benchmarks: the real /dev/kvm, the C baseline built at session start, tags.

Every benchmark tags itself (the ``tag`` fixture) with what ``benches/report.py`` needs to
print ratios: its ``group``, its ``role`` (``baseline`` or ``subject``), a ``label``, the
``passes`` one call makes (the C baseline runs many per call), and its ``target``.
In the short mode (``--benchmark-disable``) each benchmark body runs once, as a smoke test.
The bench modules import nothing from here (pytest runs with ``--import-mode=importlib``):
they get everything through fixtures.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional

import pytest

from kvmprobe.caps import Cap

HERE = pathlib.Path(__file__).resolve().parent
DEVICE = "/dev/kvm"


def kvm_unusable(path: str = DEVICE) -> str:
    """Why ``path`` cannot be used for the benchmarks, or ``""``."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as err:
        return f"{path} cannot be opened read-write: {os.strerror(err.errno or 0)}"
    os.close(fd)
    return ""


def _tag(
    benchmark: Any,
    *,
    group: str,
    role: str,
    label: str,
    passes: int = 1,
    target: Optional[float] = None,
    unit: str = "ratio",
) -> None:
    """Tag a benchmark for ``benches/report.py``.

    ``group`` pairs subjects with the baseline of the same group; ``passes`` is how many
    passes one call makes; ``target`` is the ratio to the baseline the subject must stay
    within, or with ``unit="ms"`` the milliseconds it may add to the baseline.
    """
    benchmark.group = group
    benchmark.extra_info.update(group=group, role=role, label=label, passes=passes, target=target, unit=unit)


@pytest.fixture
def tag() -> Callable[..., None]:
    """The tagging function (see ``_tag``)."""
    return _tag


@pytest.fixture(scope="session")
def timing(request: pytest.FixtureRequest) -> bool:
    """Whether this run times (``python benches/report.py``, ``--benchmark-enable``) or only
    checks each benchmark's answers once (the suite's ``--benchmark-disable``)."""
    config = request.config
    return not (config.getoption("benchmark_disable") and not config.getoption("benchmark_enable"))


@pytest.fixture(scope="session")
def kvm_path() -> str:
    """The KVM device; the benchmark is skipped, with the reason, where it cannot be used."""
    reason = kvm_unusable()
    if reason:
        pytest.skip(f"benchmarks need a usable KVM device: {reason}")
    return DEVICE


@pytest.fixture(scope="session")
def numbers() -> List[int]:
    """The capability numbers of the whole table, in table order (from ``Cap``)."""
    return [int(cap) for cap in Cap]


@dataclass
class CLoop:
    """The compiled baseline (``benches/c_loop.c``) with its input and output arrays.

    One call runs ``reps`` passes, so the Python call that starts it is spread over many.
    """

    lib: ctypes.CDLL
    numbers: Any
    values: Any
    errnos: Any
    count: int
    reps: int = 200

    def batch(self, fd: int, request: int) -> int:
        """``reps`` passes of the plain loop on ``fd``; returns the failures of the last pass."""
        # Ownership: fd is the bench's, which closes it; the arrays belong to this object.
        result: int = self.lib.c_batch(fd, request, self.numbers, self.values, self.errnos, self.count, self.reps)
        return result

    def probe(self, path: str, api_request: int, check_request: int) -> int:
        """``reps`` whole probes (open, API version, pass, close); returns the API version."""
        # Ownership: c_probe closes every fd it opens before it returns.
        result: int = self.lib.c_probe(
            path.encode(), api_request, check_request, self.numbers, self.values, self.errnos, self.count, self.reps
        )
        return result

    def results(self) -> List[int]:
        """The values of the last pass."""
        return list(self.values)


@pytest.fixture(scope="session")
def c_loop(tmp_path_factory: pytest.TempPathFactory, numbers: List[int]) -> Iterator[CLoop]:
    """``benches/c_loop.c`` compiled with the system ``cc -O2`` into a temporary directory."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler (cc) to build the C baseline loop")
    where = tmp_path_factory.mktemp("c_loop")
    library = where / "libc_loop.so"
    subprocess.run(
        [compiler, "-O2", "-shared", "-fPIC", "-o", str(library), str(HERE / "c_loop.c")],
        check=True,
        capture_output=True,
    )
    lib = ctypes.CDLL(str(library))
    array = ctypes.c_long * len(numbers)
    ints = ctypes.c_int * len(numbers)
    lib.c_batch.argtypes = (ctypes.c_int, ctypes.c_ulong, array, ints, ints, ctypes.c_int, ctypes.c_int)
    lib.c_batch.restype = ctypes.c_int
    lib.c_probe.argtypes = (
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_ulong,
        array,
        ints,
        ints,
        ctypes.c_int,
        ctypes.c_int,
    )
    lib.c_probe.restype = ctypes.c_int
    yield CLoop(lib, array(*numbers), ints(), ints(), len(numbers))
