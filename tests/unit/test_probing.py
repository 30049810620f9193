"""The batch probe: one pass, the cache, thread safety, VM-fd answers, failed queries."""

from __future__ import annotations

import errno
import threading
from typing import List, Sequence

import pytest

import kvmprobe
from kvmprobe import Cap, CapabilityQueryFailed, KvmNotFound, UnknownCapability
from kvmprobe import probing
from kvmprobe.snapshot import snapshot_document
from kvmprobe.testing import FakeBackend, ForwardingBackend, default_backend, fake_kvm, fake_probe_result


def test_one_pass_asks_every_capability_once() -> None:
    backend = FakeBackend({Cap.NR_MEMSLOTS: 32764, Cap.IMMEDIATE_EXIT: 1})
    result = kvmprobe.probe("/dev/kvm", backend=backend)
    asked = [arg for name, arg in backend.calls if name == "KVM_CHECK_EXTENSION"]
    assert sorted(asked) == sorted(int(c) for c in Cap)
    assert backend.opened == ["/dev/kvm"] and backend.open_fds == []
    assert result.value(Cap.NR_MEMSLOTS) == 32764  # the raw count, not 1
    assert result.has("ImmediateExit") and not result.has("XEN_HVM")
    assert result.api_version == 12 and result.backend == "fake" and result.vm_values is None


def test_result_is_immutable() -> None:
    result = fake_probe_result({Cap.HLT: 1})
    with pytest.raises(Exception):
        result.api_version = 11  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.values[Cap.HLT] = 0  # type: ignore[index]


def test_cache_until_refresh() -> None:
    backend = FakeBackend({Cap.HLT: 1})
    first = kvmprobe.probe("/dev/kvm", backend=backend)
    assert kvmprobe.probe("/dev/kvm", backend=backend) is first
    backend.values[int(Cap.HLT)] = 0
    second = kvmprobe.probe("/dev/kvm", backend=backend, refresh=True)
    assert second is not first and not second.has(Cap.HLT)
    assert len(backend.opened) == 2


def test_concurrent_first_calls_probe_once(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FakeBackend({Cap.HLT: 1})
    start = threading.Barrier(16)
    results: List[kvmprobe.ProbeResult] = []

    def worker() -> None:
        start.wait()
        results.append(kvmprobe.probe("/dev/kvm", backend=backend))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(backend.opened) == 1
    assert all(r is results[0] for r in results)


def test_vm_probe_keeps_both_values_and_closes_the_vm() -> None:
    backend = FakeBackend(
        {Cap.X2APIC_API: 15, Cap.CHECK_EXTENSION_VM: 1, Cap.HLT: 1},
        vm_values={Cap.X2APIC_API: 11, Cap.CHECK_EXTENSION_VM: 1, Cap.HLT: 1},
    )
    result = kvmprobe.probe("/dev/kvm", backend=backend, vm=True)
    assert result.value("X2APIC_API") == 15 and result.vm_value("X2APIC_API") == 11
    assert result.vm_created and backend.open_fds == []
    creates = [c for c in backend.calls if c[0] == "KVM_CREATE_VM"]
    assert creates == [("KVM_CREATE_VM", 0)]  # type 0


def test_vm_fd_not_asked_without_check_extension_vm() -> None:
    backend = FakeBackend({Cap.X2APIC_API: 15}, vm_values={Cap.X2APIC_API: 11})
    result = kvmprobe.probe("/dev/kvm", backend=backend, vm=True)
    assert result.vm_created and result.vm_values is None and result.vm_value("X2APIC_API") is None
    assert backend.open_fds == []


def test_vm_request_upgrades_a_plain_cached_result() -> None:
    backend = FakeBackend({Cap.CHECK_EXTENSION_VM: 1})
    plain = kvmprobe.probe("/dev/kvm", backend=backend)
    with_vm = kvmprobe.probe("/dev/kvm", backend=backend, vm=True)
    assert not plain.vm_created and with_vm.vm_created
    assert kvmprobe.probe("/dev/kvm", backend=backend) is with_vm


def test_failed_query_is_reported_not_zero() -> None:
    backend = FakeBackend({Cap.HLT: 1, Cap.IRQCHIP: 1}, fail={("KVM_CHECK_EXTENSION", int(Cap.IRQCHIP)): errno.EIO})
    result = kvmprobe.probe("/dev/kvm", backend=backend)
    assert result.errors == {Cap.IRQCHIP: errno.EIO}
    with pytest.raises(CapabilityQueryFailed, match="KVM_CAP_IRQCHIP.*EIO"):
        result.value(Cap.IRQCHIP)
    with pytest.raises(CapabilityQueryFailed):
        result.has("IRQCHIP")
    row = next(r for r in snapshot_document(result)["capabilities"] if r["name"] == "KVM_CAP_IRQCHIP")
    assert row["value"] is None and row["error"] == errno.EIO
    assert result.has(Cap.HLT)


def test_unavailable_device_is_not_cached() -> None:
    backend = FakeBackend(open_errno=errno.ENOENT)
    for _ in range(2):
        with pytest.raises(KvmNotFound):
            kvmprobe.probe("/dev/kvm", backend=backend)
    assert len(backend.opened) == 2


def test_module_level_has_and_value_follow_the_fake() -> None:
    with fake_kvm({"IMMEDIATE_EXIT": 1, "NR_MEMSLOTS": 509}) as host:
        assert kvmprobe.probe() is host
        assert kvmprobe.has("IMMEDIATE_EXIT") and kvmprobe.has(136) and kvmprobe.has(Cap.IMMEDIATE_EXIT)
        assert kvmprobe.value("NR_MEMSLOTS") == 509 and kvmprobe.value(10) == 509
        assert not kvmprobe.has("XEN_HVM")
        with pytest.raises(UnknownCapability):
            kvmprobe.has("NOPE_NOT_A_CAP")
        with fake_kvm({"IMMEDIATE_EXIT": 0}):
            assert not kvmprobe.has("IMMEDIATE_EXIT")
        assert kvmprobe.has("IMMEDIATE_EXIT")
    assert probing._cache.current is None


def test_arch_gating_is_reported() -> None:
    arm = fake_probe_result({}, arch="aarch64")
    assert not arm.applies(Cap.XSAVE) and arm.applies(Cap.ARM_SVE) and arm.applies(Cap.HLT)


def test_json_document_shape() -> None:
    doc = snapshot_document(fake_probe_result({Cap.NR_MEMSLOTS: 32764}, vm_values={Cap.NR_MEMSLOTS: 32764}))
    assert doc["api_version"] == 12 and doc["device"] == "/dev/kvm"
    assert [row["number"] for row in doc["capabilities"]] == [int(cap) for cap in Cap]
    assert all({"name", "number", "value", "vm_value"} <= set(row) for row in doc["capabilities"])
    assert sum(row["value"] for row in doc["capabilities"]) == 32764  # NR_MEMSLOTS only; every other 0
    memslots = next(r for r in doc["capabilities"] if r["number"] == 10)
    assert memslots == {**memslots, "name": "KVM_CAP_NR_MEMSLOTS", "value": 32764, "vm_value": 32764}


def test_names_resolved_once_stay_out_of_values() -> None:
    result = fake_probe_result({Cap.IMMEDIATE_EXIT: 1})
    for _ in range(2):
        assert result.has("ImmediateExit") and result.value("IMMEDIATE_EXIT") == 1
    assert set(result.values) == set(Cap)  # the public mapping is keyed by members only
    with pytest.raises(UnknownCapability):
        result.has("ImmediatExit")


# --- the cache: what it keeps, and for how long ---------------------------------------------


def test_distinct_fake_backends_are_not_kept_and_do_not_grow_memory() -> None:
    import gc
    import tracemalloc
    import weakref

    def probe_with_fresh_backends(count: int) -> None:
        for _ in range(count):
            kvmprobe.probe(backend=FakeBackend({Cap.HLT: 1}))

    # Every backend and every result is gone once probed (a cache of any size keeps some alive).
    refs: List["weakref.ref[object]"] = []
    for _ in range(100):
        backend = FakeBackend({Cap.HLT: 1})
        refs += [weakref.ref(backend), weakref.ref(kvmprobe.probe(backend=backend))]
    del backend
    gc.collect()
    assert [ref for ref in refs if ref() is not None] == []

    probe_with_fresh_backends(50)  # warm up: imports, interned names, the table's arrays
    gc.collect()
    tracemalloc.start()
    try:
        probe_with_fresh_backends(10)
        gc.collect()
        baseline = tracemalloc.get_traced_memory()[0]
        probe_with_fresh_backends(300)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    # Nor does anything else grow per probe: a kept result is about 4 KB, the bound 100 bytes a
    # probe (what remains is allocator bookkeeping, tens of bytes in all).
    assert grown < 300 * 100, f"{grown} bytes kept after 300 probes with distinct backends"
    assert probing._cache.by_backend == {}


class _Unhashable(FakeBackend):
    __hash__ = None  # type: ignore[assignment]


class _NoWeakRefs(ForwardingBackend):
    """A backend without __weakref__ (slots): it cannot be held weakly, so it is not cached."""

    __slots__ = ()

    def __init__(self, inner: FakeBackend) -> None:
        super().__init__(inner)
        self.name = "slots"


def test_an_unhashable_backend_works_and_is_cached_by_identity() -> None:
    backend = _Unhashable({Cap.HLT: 1})
    first = kvmprobe.probe(backend=backend)
    assert first.has("HLT") and kvmprobe.probe(backend=backend) is first
    assert len(backend.opened) == 1


def test_a_backend_that_cannot_be_weakly_referenced_is_probed_every_time() -> None:
    fake = FakeBackend({Cap.HLT: 1})
    backend = _NoWeakRefs(fake)
    assert kvmprobe.probe(backend=backend).has("HLT") and kvmprobe.probe(backend=backend).has("HLT")
    assert len(fake.opened) == 2


def test_two_backends_never_share_a_result_even_when_equal() -> None:
    class Equal(FakeBackend):
        def __eq__(self, other: object) -> bool:
            return isinstance(other, Equal)

        def __hash__(self) -> int:
            return 1

    a, b = Equal({Cap.HLT: 1}), Equal({Cap.HLT: 0})
    assert kvmprobe.probe(backend=a).has("HLT") and not kvmprobe.probe(backend=b).has("HLT")


def test_the_default_path_is_cached_refreshed_and_released_through_an_injected_backend() -> None:
    fake = FakeBackend({Cap.HLT: 1, Cap.IMMEDIATE_EXIT: 1})
    with default_backend(fake):
        first = kvmprobe.probe()
        assert kvmprobe.probe() is first and kvmprobe.has("HLT") and kvmprobe.value("IMMEDIATE_EXIT") == 1
        assert len(fake.opened) == 1  # served from the cache
        fake.values[int(Cap.HLT)] = 0
        assert kvmprobe.has("HLT")  # still the cached answer
        refreshed = kvmprobe.probe(refresh=True)
        assert refreshed is not first and not kvmprobe.has("HLT") and len(fake.opened) == 2
        with_vm = kvmprobe.probe(vm=True)  # a VM was not created yet: probes again
        assert with_vm.vm_created and kvmprobe.probe() is with_vm and len(fake.opened) == 3
        assert fake.open_fds == []
    assert probing._cache.current is None and probing._cache.default_backend is None


def test_the_default_path_caches_per_device_path() -> None:
    fake = FakeBackend({Cap.HLT: 1})
    with default_backend(fake):
        assert kvmprobe.probe("/dev/kvm") is kvmprobe.probe("/dev/kvm")
        assert kvmprobe.probe("/dev/other-kvm") is not kvmprobe.probe("/dev/kvm")
        assert fake.opened == ["/dev/kvm", "/dev/other-kvm"]


def test_the_doctor_asks_through_the_one_batch_probe() -> None:
    """The doctor's open of the device and probe() give the same result (probing.probe_device)."""
    import os

    from kvmprobe._checks import ask_kernel

    answers = ask_kernel("/dev/kvm", FakeBackend({Cap.HLT: 1, Cap.NR_MEMSLOTS: 509}), create_vm=False)
    direct = kvmprobe.probe("/dev/kvm", backend=FakeBackend({Cap.HLT: 1, Cap.NR_MEMSLOTS: 509}), refresh=True)
    assert answers.probe is not None
    assert answers.probe.kernel == direct.kernel == os.uname().release
    assert (answers.probe.arch, answers.probe.backend) == (direct.arch, direct.backend)
    assert answers.probe.value("NR_MEMSLOTS") == 509 and answers.probe.supported() == direct.supported()
