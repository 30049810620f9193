"""What CPU a guest can get from KVM here: ``kvmprobe.cpu()`` and the :class:`CpuInfo` it returns.

Imports ``probing``, ``_host_reader``, ``_backend``, ``_cpu_record`` and ``_cpu_decode``. The public
home of the CPU view (the function is ``kvmprobe.cpu``; this module cannot share its name, since
importing a submodule ``kvmprobe.cpu`` would replace the function on the package).
:func:`cpu` rides on the probe cache: ``probe(vm=True, cpu=True)`` asks KVM's CPU questions
once per device (thread- and fork-safe, as ``probe()``), and each result is decoded once. Under
``kvmprobe.testing.fake_kvm`` it answers for the fake host, from its recorded CPU data.

Live, the host's side (its own CPUID and ``/proc/cpuinfo`` flags) is read only when the probe
went through a real ioctl backend (``ctypes`` or ``cffi``): a fake backend's host is made up,
and this machine's CPU says nothing about it.
"""

from __future__ import annotations

import _thread  # threading's Lock, without importing threading (about 0.5 ms)
import os
import weakref

from ._backend import Backend
from ._cpu_decode import CPU_SCHEMA, CPU_SCHEMA_VERSION, NOT_READ_YET, CpuInfo, FeatureMsr, decode
from ._cpu_record import REAL_BACKENDS, CpuRecord, live_host_side
from ._host_reader import facts_of_live
from .probing import ProbeResult, probe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__all__ = [
    "CPU_SCHEMA",
    "CPU_SCHEMA_VERSION",
    "NOT_READ_YET",
    "CpuInfo",
    "CpuRecord",
    "FeatureMsr",
    "cpu",
    "cpu_of",
]

# One decoded view per result, kept as long as the result lives (the probe cache holds it).
_decoded: "weakref.WeakKeyDictionary[ProbeResult, CpuInfo]" = weakref.WeakKeyDictionary()
_lock = _thread.allocate_lock()


def _after_fork() -> None:
    # A child forked while another thread held the lock would deadlock on it (as probing's cache).
    global _lock
    _lock = _thread.allocate_lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def cpu_of(result: ProbeResult, root: str = "/") -> CpuInfo:
    """The decoded CPU view of a probe result (live, recorded, preset or fake); cached per result.

    Raises:
        NotRecorded: an x86 host whose result carries no CPU data (a synthesized preset, a
            snapshot written without it, a probe without ``cpu=True``).

    Example:
        >>> from kvmprobe.presets import load_preset
        >>> info = cpu_of(load_preset("pvm-6.18"))
        >>> info.readable, info.vendor in ("GenuineIntel", "AuthenticAMD"), info.has("cx16")
        (True, True, True)
        >>> cpu_of(load_preset("linux-4.14"))
        Traceback (most recent call last):
        ...
        kvmprobe.errors.NotRecorded: preset:linux-4.14 (synthesized): CPU data not recorded (hint: record the host with 'python -m kvmprobe snapshot --vm -o FILE' and read that file)
    """
    found = _decoded.get(result)
    if found is not None:
        return found
    facts = result.host
    if facts is None and result.source == "live" and result.backend in REAL_BACKENDS:
        facts = facts_of_live(result, root)
    info = decode(
        live_host_side(result.cpu, source=result.source, backend=result.backend, root=root),
        arch=result.arch,
        source=result.source,
        kvm_backend=None if facts is None else facts.kvm_backend,
    )
    with _lock:
        return _decoded.setdefault(result, info)


def cpu(path: Optional[str] = None, *, backend: Optional[Backend] = None, refresh: bool = False) -> CpuInfo:
    """What CPU a guest can get from KVM on this host (cached, like :func:`kvmprobe.probe`).

    Asks KVM_GET_SUPPORTED_CPUID, KVM_GET_EMULATED_CPUID, the MSR index and feature lists,
    KVM_GET_MSRS for the feature MSRs, the ``KVM_X86_XCOMP_GUEST_SUPP`` attribute and a
    scratch vCPU's KVM_GET_TSC_KHZ (the VM and vCPU are closed at once), compares with the
    host's own CPUID and ``/proc/cpuinfo``, and decodes it all. A query that fails is
    recorded in ``failed`` with its errno, never taken for "unsupported". On aarch64,
    riscv64 and s390x the result says what is not read yet (``readable`` is false).

    Args:
        path: the device (default: ``$KVMPROBE_DEVICE`` or ``/dev/kvm``).
        backend: an ioctl backend (default: cffi when built, else ctypes).
        refresh: ask the kernel again.

    Raises:
        KvmUnavailable: the device cannot be used.
        NotRecorded: under ``fake_kvm``, a host without CPU data.

    Example:
        >>> import kvmprobe
        >>> from kvmprobe.testing import fake_cpu_record, fake_kvm
        >>> with fake_kvm("pvm-6.18", cpu=fake_cpu_record(features=["avx512f", "avx2"])):
        ...     kvmprobe.cpu().has("avx512f"), kvmprobe.cpu().has("sse4_2")
        (True, False)
    """
    return cpu_of(probe(path, backend=backend, vm=True, cpu=True, refresh=refresh))

