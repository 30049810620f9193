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

from ._version import __version__

# The public names are loaded on first use (PEP 562), so that 'import kvmprobe' costs almost
# nothing (the pytest plugin imports it in every test run) and using one name loads only the
# modules it needs. To export a name: import it below for type checkers, map it in
# _EXPORTS for the run time, and list it in __all__ (tests/unit/test_lazy_facade.py checks
# that all three agree). Not even typing is imported at run time: mypy takes a bare
# TYPE_CHECKING name as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List

    from .atomic import write_atomic
    from .caps import Cap
    from .cpuinfo import CpuInfo, cpu
    from .confidential import ConfidentialReadiness, check_confidential
    from .device import KvmDevice
    from .diagnosis import Check, Diagnosis, Status, Verdict, diagnose
    from .diff import HostDiff, diff_hosts
    from .errors import (
        BackendUnavailable,
        BadDevicePath,
        CapabilityNotRecorded,
        CapabilityQueryFailed,
        EmulationError,
        GuestError,
        IncomparableHosts,
        IoctlFailed,
        KvmBusy,
        KvmError,
        KvmIoctlError,
        KvmNotFound,
        KvmPermissionDenied,
        KvmProbeError,
        KvmUnavailable,
        NotAKvmDevice,
        NotRecorded,
        ProfileError,
        SnapshotError,
        UnknownCapability,
        UnknownCpuFeature,
        UnknownRelease,
        UnknownUser,
        UnknownVmm,
        UnsupportedPlatform,
    )
    from .export import nfd_features, prometheus_text
    from .guest import GuestRun, RunReport, run_checks, run_guest
    from .host import HostFacts, read_host_facts
    from .presets import load_preset, preset_names
    from .probing import ProbeResult, has, probe, value
    from .profiles import Profile, Readiness, check_vmm, load_profile, vmm_names
    from .snapshot import load_snapshot

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "BackendUnavailable": "errors",
    "BadDevicePath": "errors",
    "CapabilityNotRecorded": "errors",
    "Cap": "caps",
    "CapabilityQueryFailed": "errors",
    "Check": "diagnosis",
    "ConfidentialReadiness": "confidential",
    "CpuInfo": "cpuinfo",
    "Diagnosis": "diagnosis",
    "EmulationError": "errors",
    "GuestError": "errors",
    "IncomparableHosts": "errors",
    "GuestRun": "guest",
    "HostDiff": "diff",
    "HostFacts": "host",
    "IoctlFailed": "errors",
    "KvmBusy": "errors",
    "KvmDevice": "device",
    "KvmError": "errors",
    "KvmIoctlError": "errors",
    "KvmNotFound": "errors",
    "KvmPermissionDenied": "errors",
    "KvmProbeError": "errors",
    "KvmUnavailable": "errors",
    "NotAKvmDevice": "errors",
    "NotRecorded": "errors",
    "ProbeResult": "probing",
    "Profile": "profiles",
    "ProfileError": "errors",
    "Readiness": "profiles",
    "RunReport": "guest",
    "SnapshotError": "errors",
    "Status": "diagnosis",
    "UnknownCapability": "errors",
    "UnknownCpuFeature": "errors",
    "UnknownRelease": "errors",
    "UnknownUser": "errors",
    "UnknownVmm": "errors",
    "UnsupportedPlatform": "errors",
    "Verdict": "diagnosis",
    "check_confidential": "confidential",
    "check_vmm": "profiles",
    "cpu": "cpuinfo",
    "diagnose": "diagnosis",
    "diff_hosts": "diff",
    "has": "probing",
    "load_preset": "presets",
    "load_profile": "profiles",
    "load_snapshot": "snapshot",
    "nfd_features": "export",
    "preset_names": "presets",
    "probe": "probing",
    "prometheus_text": "export",
    "read_host_facts": "host",
    "run_checks": "guest",
    "run_guest": "guest",
    "value": "probing",
    "vmm_names": "profiles",
    "write_atomic": "atomic",
}


def __getattr__(name: str) -> Any:
    """Import a public name (or a submodule: ``kvmprobe.caps``) on first use."""
    import sys

    # __import__ rather than importlib.import_module: importlib's package would cost its own
    # import (about 0.3 ms) on every start that uses a name.
    where = _EXPORTS.get(name)
    if where is not None:
        __import__(f"{__name__}.{where}")
        value = getattr(sys.modules[f"{__name__}.{where}"], name)
        globals()[name] = value  # later lookups never come back here
        return value
    if not name.startswith("__"):
        try:
            __import__(f"{__name__}.{name}")
            return sys.modules[f"{__name__}.{name}"]
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))


def backend() -> str:
    """The name of the ioctl backend probes use: ``"cffi"`` (compiled) or ``"ctypes"``.

    ``KVMPROBE_BACKEND=ctypes|cffi`` forces one.

    Raises:
        BackendUnavailable: the forced backend cannot be loaded here.

    Example:
        >>> backend() in ("cffi", "ctypes")
        True
    """
    from ._backend_select import select_backend

    return select_backend().name


__all__ = [
    "BackendUnavailable",
    "BadDevicePath",
    "Cap",
    "CapabilityNotRecorded",
    "CapabilityQueryFailed",
    "Check",
    "ConfidentialReadiness",
    "CpuInfo",
    "Diagnosis",
    "EmulationError",
    "GuestError",
    "GuestRun",
    "HostDiff",
    "HostFacts",
    "IncomparableHosts",
    "IoctlFailed",
    "KvmBusy",
    "KvmDevice",
    "KvmError",
    "KvmIoctlError",
    "KvmNotFound",
    "KvmPermissionDenied",
    "KvmProbeError",
    "KvmUnavailable",
    "NotAKvmDevice",
    "NotRecorded",
    "ProbeResult",
    "Profile",
    "ProfileError",
    "Readiness",
    "RunReport",
    "SnapshotError",
    "Status",
    "UnknownCapability",
    "UnknownCpuFeature",
    "UnknownRelease",
    "UnknownUser",
    "UnknownVmm",
    "UnsupportedPlatform",
    "Verdict",
    "__version__",
    "backend",
    "check_confidential",
    "check_vmm",
    "cpu",
    "diagnose",
    "diff_hosts",
    "has",
    "load_preset",
    "load_profile",
    "load_snapshot",
    "nfd_features",
    "preset_names",
    "probe",
    "prometheus_text",
    "read_host_facts",
    "run_checks",
    "run_guest",
    "value",
    "vmm_names",
    "write_atomic",
]
