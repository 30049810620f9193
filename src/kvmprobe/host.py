"""The host facts KVM depends on (:class:`HostFacts`), and :func:`read_host_facts`, which reads them.

Imports ``_host_facts`` (the model) and ``_host_reader`` (the reader of procfs, sysfs, ``/dev``
and ``/etc``); this public module only gathers their names, the import path users write.
"""

from __future__ import annotations

from ._host_facts import (
    DEVICE_PATHS,
    MSR_FEATURE_CONTROL,
    MSR_VM_CR,
    NODES_FILE,
    VIRT_FLAGS,
    DeviceNode,
    GroupEntry,
    HostFacts,
)
from ._host_reader import kvm_backend_of, read_host_facts

__all__ = [
    "DEVICE_PATHS",
    "MSR_FEATURE_CONTROL",
    "MSR_VM_CR",
    "NODES_FILE",
    "VIRT_FLAGS",
    "DeviceNode",
    "GroupEntry",
    "HostFacts",
    "kvm_backend_of",
    "read_host_facts",
]
