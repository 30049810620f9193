"""kvmprobe: what KVM on this host can do, and why a VMM will or won't run here.

The facade: explicit re-exports, no logic. ``probe()`` asks the kernel about every
capability in one pass and caches the answer; ``has()`` and ``value()`` read that cache.

Example:
    >>> import kvmprobe
    >>> from kvmprobe.testing import fake_kvm
    >>> with fake_kvm({"IMMEDIATE_EXIT": 1, "NR_MEMSLOTS": 32764}):
    ...     kvmprobe.has("IMMEDIATE_EXIT"), kvmprobe.value("KVM_CAP_NR_MEMSLOTS")
    (True, 32764)
"""

from __future__ import annotations

from ._atomic import write_atomic
from ._backend import select_backend as _select_backend
from ._version import __version__
from .caps import Cap
from .device import KvmDevice
from .diagnose import Check, Diagnosis, Status, Verdict, diagnose
from .errors import (
    BackendUnavailable,
    CapabilityQueryFailed,
    KvmBusy,
    KvmError,
    KvmIoctlError,
    KvmNotFound,
    KvmPermissionDenied,
    KvmProbeError,
    KvmUnavailable,
    NotAKvmDevice,
    ProfileError,
    SnapshotError,
    UnknownCapability,
    UnknownVmm,
    UnsupportedPlatform,
)
from .export import nfd_features, prometheus_text
from .host import HostFacts, read_host_facts
from .probing import ProbeResult, has, probe, value
from .profiles import Profile, Readiness, check_vmm, load_profile, vmm_names


def backend() -> str:
    """The name of the ioctl backend probes use: ``"cffi"`` (compiled) or ``"ctypes"``.

    ``KVMPROBE_BACKEND=ctypes|cffi`` forces one.

    Raises:
        BackendUnavailable: the forced backend cannot be loaded here.

    Example:
        >>> backend() in ("cffi", "ctypes")
        True
    """
    return _select_backend().name


__all__ = [
    "BackendUnavailable",
    "Cap",
    "CapabilityQueryFailed",
    "Check",
    "Diagnosis",
    "HostFacts",
    "KvmBusy",
    "KvmDevice",
    "KvmError",
    "KvmIoctlError",
    "KvmNotFound",
    "KvmPermissionDenied",
    "KvmProbeError",
    "KvmUnavailable",
    "NotAKvmDevice",
    "ProbeResult",
    "Profile",
    "ProfileError",
    "Readiness",
    "SnapshotError",
    "Status",
    "UnknownCapability",
    "UnknownVmm",
    "UnsupportedPlatform",
    "Verdict",
    "__version__",
    "backend",
    "check_vmm",
    "diagnose",
    "has",
    "load_profile",
    "nfd_features",
    "probe",
    "prometheus_text",
    "read_host_facts",
    "value",
    "vmm_names",
    "write_atomic",
]
