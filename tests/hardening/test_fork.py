"""A forked child sees a valid cached probe, can probe again, and never deadlocks on the cache lock.

The child runs its checks and reports through a pipe as JSON, then leaves with ``os._exit``
(pytest's own clean-up must not run twice). An alarm kills a child that hangs, which the
parent then reports as a deadlock.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import warnings
from typing import Any, Callable, Dict

import pytest

from hardening._faultlib import recorded_host_backend, tally
from kvmprobe import probe
from kvmprobe.caps import Cap
from kvmprobe.testing import ForwardingBackend

CHILD_TIMEOUT = 20  # seconds before the alarm kills a stuck child


def in_child(check: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    """Fork; run ``check`` in the child; return what it reported (or why it did not)."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns when forking a process with threads (the point of one test here).
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read_end)
        status = 0
        try:
            signal.alarm(CHILD_TIMEOUT)
            report = check()
        except BaseException as err:  # noqa: BLE001 - reported to the parent
            report, status = {"error": f"{type(err).__name__}: {err}"}, 1
        try:
            os.write(write_end, json.dumps(report).encode("utf-8"))
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return {"error": f"the child was killed by signal {os.WTERMSIG(status)} (SIGALRM: it hung)"}
    found: Dict[str, Any] = json.loads(data.decode("utf-8")) if data else {"error": "no report"}
    return found


def test_the_child_sees_the_cached_result_and_can_refresh() -> None:
    backend = recorded_host_backend()
    parent = probe(backend=backend)

    def check() -> Dict[str, Any]:
        opened_before = len(backend.opened)
        cached = probe(backend=backend)
        opened_for_cached = len(backend.opened) - opened_before
        again = probe(backend=backend, refresh=True)
        return {
            "same_object": cached is parent,
            "opened_for_cached": opened_for_cached,
            "has": cached.has(Cap.IMMEDIATE_EXIT),
            "refreshed_equal": dict(again.values) == dict(parent.values) and again is not parent,
            "open_fds": backend.open_fds,
        }

    report = in_child(check)
    tally("fork", 1)
    assert report == {"same_object": True, "opened_for_cached": 0, "has": True, "refreshed_equal": True, "open_fds": []}


def test_the_child_decodes_the_cpu_from_the_cache_even_if_a_thread_held_the_lock() -> None:
    import kvmprobe.cpuinfo as cpuinfo

    backend = recorded_host_backend()
    parent = cpuinfo.cpu(backend=backend)
    cpuinfo._lock.acquire()  # as if another thread were decoding when the fork came
    try:

        def check() -> Dict[str, Any]:
            opened_before = len(backend.opened)
            cached = cpuinfo.cpu(backend=backend)
            fresh = cpuinfo.cpu(backend=backend, refresh=True)  # decodes: takes the lock
            return {
                "same_object": cached is parent,
                "opened_for_cached": len(backend.opened) - opened_before - 1,
                "features_equal": fresh.features == parent.features and fresh is not parent,
                "open_fds": backend.open_fds,
            }

        report = in_child(check)
    finally:
        cpuinfo._lock.release()
    tally("fork", 1)
    assert report == {"same_object": True, "opened_for_cached": 0, "features_equal": True, "open_fds": []}


class _Blocking(ForwardingBackend):
    """Wraps a backend; ``open`` waits until released, while probe() holds the cache lock."""

    def __init__(self) -> None:
        super().__init__(recorded_host_backend())
        self.name = "blocking"
        self.entered = threading.Event()
        self.release = threading.Event()

    def open(self, path: str) -> int:
        self.entered.set()
        self.release.wait(60)
        return self.inner.open(path)  # ownership: the caller closes it


def test_a_fork_while_another_thread_holds_the_probe_lock_does_not_deadlock() -> None:
    blocking = _Blocking()
    holder = threading.Thread(target=lambda: probe(backend=blocking, refresh=True))
    holder.start()
    try:
        assert blocking.entered.wait(30), "the probing thread never reached open()"

        def check() -> Dict[str, Any]:
            # The lock's holder does not exist in the child; its probe must still be possible.
            result = probe(backend=recorded_host_backend(), refresh=True)
            return {"api": result.api_version, "has": result.has(Cap.HLT)}

        report = in_child(check)
    finally:
        blocking.release.set()
        holder.join(30)
    tally("fork", 1)
    assert report == {"api": 12, "has": True}


@pytest.mark.kvm
def test_real_device_child_answers_like_the_parent_and_holds_no_fd() -> None:
    import kvmprobe

    from _helpers import open_fds

    parent = kvmprobe.probe()
    expected = {cap.name: parent.value(cap) for cap in parent.supported()}

    def check() -> Dict[str, Any]:
        cached = {cap.name: kvmprobe.value(cap) for cap in parent.supported()}
        fresh = kvmprobe.probe(refresh=True)
        kvm_fds = [target for target in open_fds().values() if target == "/dev/kvm" or "kvm-vm" in target]
        return {
            "cached_equal": cached == expected,
            "fresh_equal": {cap.name: fresh.value(cap) for cap in fresh.supported()} == expected,
            "kvm_fds": kvm_fds,
        }

    report = in_child(check)
    tally("fork", 1)
    assert report == {"cached_equal": True, "fresh_equal": True, "kvm_fds": []}
