"""Concurrency: 64 threads asking at once while another refreshes the probe.

Each thread must always see one whole, consistent result (never a mix of two probes, never
an older one after a newer), nothing may raise, and the device must be opened exactly as
often as needed: once for any number of concurrent first calls, once per refresh, once per
live diagnosis. The unit tests count opens on a backend whose every answer carries the number
of the open it came from; the hardware test counts batch passes against the real device.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Set

import pytest

from hardening._faultlib import tally
from kvmprobe import ProbeResult, probe
from kvmprobe._backend import CheckResults, Pointers
from kvmprobe._ioctl import KVM_API_VERSION, KvmIoctls
from kvmprobe.caps import Cap
from kvmprobe.diagnosis import diagnose
from kvmprobe.testing import FakeHost

THREADS = 64
REFRESHES = 20


class GenerationBackend:
    """Every capability answers the number of the open its fd came from (1, 2, ...), so a result
    mixing two probes shows as two different values. Each query yields the GIL, to let other
    threads run in the middle of a probe."""

    name = "generation"

    def __init__(self) -> None:
        self.opens = 0
        self._gen: Dict[int, int] = {}
        self._next_fd = 3000
        self._lock = threading.Lock()
        self._ioctls = KvmIoctls.for_machine()

    def open(self, path: str) -> int:
        with self._lock:
            self.opens += 1
            self._next_fd += 1
            self._gen[self._next_fd] = self.opens
            return self._next_fd  # ownership: the caller closes it through close()

    def close(self, fd: int) -> None:
        with self._lock:
            del self._gen[fd]

    @property
    def open_fds(self) -> List[int]:
        with self._lock:
            return sorted(self._gen)

    def ioctl(self, fd: int, request: int, arg: int = 0) -> int:
        if request == self._ioctls.KVM_GET_API_VERSION:
            return KVM_API_VERSION
        if request == self._ioctls.KVM_CREATE_VM:
            with self._lock:
                self._next_fd += 1
                self._gen[self._next_fd] = self._gen[fd]
                return self._next_fd
        time.sleep(0)
        return self._gen[fd]

    def check_many(self, fd: int, request: int, numbers: Sequence[int]) -> CheckResults:
        values = []
        for _ in numbers:
            time.sleep(0)  # let the other 64 threads in, mid-probe
            values.append(self._gen[fd])
        return values, [0] * len(values)

    def ioctl_buffer(self, fd: int, request: int, buffer: bytearray, pointers: Pointers = ()) -> int:
        raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))


def generation(result: ProbeResult) -> int:
    """The one open every answer of ``result`` came from; fails on a mixed result."""
    seen = set(result.values.values())
    assert len(seen) == 1 and not result.errors, f"a mixed result: {sorted(seen)}"
    return seen.pop()


def run_threads(count: int, work: Callable[[int], None]) -> List[BaseException]:
    """Start ``count`` threads at one barrier running ``work(index)``; return what they raised."""
    barrier = threading.Barrier(count)
    errors: List[BaseException] = []
    lock = threading.Lock()

    def body(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as err:  # noqa: BLE001 - collected, and the test fails on it
            with lock:
                errors.append(err)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck: deadlock"
    return errors


def test_concurrent_first_calls_open_the_device_once() -> None:
    backend = GenerationBackend()
    results: List[ProbeResult] = []

    def first_call(_: int) -> None:
        result = probe(backend=backend)
        results.append(result)

    errors = run_threads(THREADS, first_call)
    tally("concurrency", THREADS)
    assert errors == []
    assert backend.opens == 1
    assert len({id(r) for r in results}) == 1 and generation(results[0]) == 1
    assert backend.open_fds == []


def test_64_threads_see_one_consistent_result_while_another_refreshes(tmp_path: object) -> None:
    backend = GenerationBackend()
    root = FakeHost.pvm().write(str(tmp_path))
    probe(backend=backend)  # the first probe: open 1
    stop = threading.Event()
    produced: Set[int] = {1}
    live_diagnoses = [0]
    counter = threading.Lock()
    calls = [0]

    def refresher() -> None:
        for _ in range(REFRESHES):
            produced.add(generation(probe(backend=backend, refresh=True)))
            time.sleep(0.002)
        stop.set()

    def reader(index: int) -> None:
        last = 0
        rounds = 0
        while not stop.is_set() or rounds < 3:
            rounds += 1
            result = probe(backend=backend)
            now = generation(result)
            assert now >= last, f"thread {index} went back from probe {last} to {now}"
            last = now
            assert result.has(Cap.HLT) and result.value(Cap.NR_MEMSLOTS) == now
            assert diagnose(result, root=root).usable
            if index % 16 == 0 and rounds <= 2:  # a few live diagnoses: each opens the device once
                assert diagnose(root=root, backend=backend).usable
                with counter:
                    live_diagnoses[0] += 1
            with counter:
                calls[0] += 1

    refresh_thread = threading.Thread(target=refresher)
    refresh_thread.start()
    errors = run_threads(THREADS, reader)
    refresh_thread.join(120)
    tally("concurrency", calls[0] + REFRESHES)
    assert errors == [], errors[:3]
    assert backend.opens == 1 + REFRESHES + live_diagnoses[0]
    assert max(produced) <= backend.opens and len(produced) == 1 + REFRESHES
    assert backend.open_fds == []


@pytest.mark.kvm
def test_real_device_64_threads_has_value_probe_diagnose_while_refreshing() -> None:
    """The module-level API on the real device: one batch pass per refresh, same answers always."""
    import fcntl
    import os

    import kvmprobe
    from kvmprobe import probing

    from _helpers import RAW_KVM_CHECK_EXTENSION

    fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    try:
        expected = {cap: fcntl.ioctl(fd, RAW_KVM_CHECK_EXTENSION, int(cap)) for cap in (Cap.HLT, Cap.NR_MEMSLOTS, Cap.IMMEDIATE_EXIT)}
    finally:
        os.close(fd)
    before = probing._cache.probes
    first = kvmprobe.probe()
    stop = threading.Event()
    seen: Set[int] = set()
    refreshed: List[Optional[ProbeResult]] = []

    def refresher() -> None:
        for _ in range(REFRESHES):
            refreshed.append(kvmprobe.probe(refresh=True))
        stop.set()

    def reader(index: int) -> None:
        rounds = 0
        while not stop.is_set() or rounds < 3:
            rounds += 1
            result = kvmprobe.probe()
            seen.add(id(result))
            assert kvmprobe.has(Cap.HLT) == (expected[Cap.HLT] > 0)
            assert kvmprobe.value(Cap.NR_MEMSLOTS) == expected[Cap.NR_MEMSLOTS]
            assert all(result.value(cap) == value for cap, value in expected.items())
            if index % 8 == 0:
                assert diagnose(result).verdict.value in ("usable", "usable_with_warnings")

    refresh_thread = threading.Thread(target=refresher)
    refresh_thread.start()
    errors = run_threads(THREADS, reader)
    refresh_thread.join(120)
    tally("concurrency", THREADS + REFRESHES)
    assert errors == [], errors[:3]
    assert probing._cache.probes - before == 1 + REFRESHES
    assert seen <= {id(first)} | {id(r) for r in refreshed}
