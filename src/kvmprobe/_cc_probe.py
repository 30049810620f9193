"""Ask the live KVM what a confidential-VM check needs beyond KVM_CHECK_EXTENSION, and read the files.

Imports ``device``, ``_backend``, ``_host_reader``, ``_cc_facts``, ``_cc_data``, ``caps`` and
``errors``. :func:`gather_confidential` is the live gathering: the files under a root (through
``_host_reader``), then one pass over ``/dev/kvm`` for the ``KVM_X86_GRP_SEV`` attributes and,
when asked, ``KVM_CREATE_VM`` of each confidential VM type (each VM closed at once) with the
capabilities its fd answers. Meaning is ``_cc_judge``'s.
"""

from __future__ import annotations

import errno as _errno
import os
from ._value import replace

from ._backend import Backend
from ._cc_data import KINDS as _KIND_TABLE, KVM_X86_GRP_SEV, SEV_ATTRS
from ._cc_facts import ConfidentialFacts
from ._host_reader import read_confidential_files
from .caps import Cap
from .device import KvmDevice, device_path
from .errors import KvmProbeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple

__all__ = ["FILES_ONLY_NOTE", "confidential_device", "gather_confidential"]

#: ``kvm_note`` of facts gathered from the files alone (``ask_kvm=False``, a plain snapshot).
FILES_ONLY_NOTE = "KVM was not asked (the SEV attributes, creating confidential VMs)"


def _ask_kvm(path: str, backend: Optional[Backend], create_vms: bool) -> ConfidentialFacts:
    """KVM's answers beyond KVM_CHECK_EXTENSION: the SEV attributes of /dev/kvm, and, with
    ``create_vms``, KVM_CREATE_VM of each kind's type (a VM made is closed at once) and the
    private-memory capabilities asked on its fd."""
    attrs: Dict[str, Tuple[Optional[int], Optional[int]]] = {}
    created: Dict[int, int] = {}
    vm_fd: Dict[int, Dict[str, int]] = {}
    with KvmDevice.open(path, backend=backend) as kvm:  # the system fd is closed on leaving the block
        if kvm.check_extension(Cap.SYS_ATTRIBUTES) > 0:
            for attr in SEV_ATTRS:
                attrs[attr.name] = _device_attr(kvm, KVM_X86_GRP_SEV, attr.attr)
        if create_vms:
            for kind in _KIND_TABLE:
                try:
                    with kvm.create_vm(kind.vm_type) as vm:  # the VM fd is closed when the block ends
                        created[kind.vm_type] = 0
                        vm_fd[kind.vm_type] = {
                            cap.c_name: vm.check_extension_raw(int(cap)) for cap in _VM_FD_CAPS
                        }
                except KvmProbeError as err:
                    created[kind.vm_type] = err.errno or _errno.EIO
    note = "" if create_vms else "no VM was created (create_vms=False)"
    return ConfidentialFacts(sev_attrs=attrs, created=created, vm_fd=vm_fd, kvm_note=note)


# What is asked on the fd of a VM of each kind's type: every capability a kind needs, and the
# masks whose VM-fd answer differs from /dev/kvm's (MEMORY_ATTRIBUTES, GUEST_MEMFD_FLAGS).
_VM_FD_CAPS: Tuple[Cap, ...] = tuple(
    dict.fromkeys([need.cap for kind in _KIND_TABLE for need in kind.needs] + [Cap.GUEST_MEMFD_FLAGS])
)


def _device_attr(kvm: KvmDevice, group: int, attr: int) -> Tuple[Optional[int], Optional[int]]:
    """(value, None) from KVM_GET_DEVICE_ATTR, or (None, errno): ENXIO is "not served here"."""
    try:
        return kvm.get_device_attr(group, attr), None
    except KvmProbeError as err:
        return None, err.errno or _errno.EIO


def confidential_device(device: Optional[str], root: str) -> str:
    """The KVM device to ask: ``device``, else ``$KVMPROBE_DEVICE`` or ``/dev/kvm`` (under a fake
    ``root`` the environment names no device of that host, as ``diagnose`` has it)."""
    return device or (device_path() if os.path.abspath(root) == "/" else "/dev/kvm")


def gather_confidential(
    path: str, *, root: str = "/", backend: Optional[Backend] = None, create_vms: bool = False, ask_kvm: bool = True
) -> ConfidentialFacts:
    """The live gathering: the files under ``root``, then KVM's answers on the device ``path``.

    The files need no privilege but tell more to root (CPUID through ``/dev/cpu/0/cpuid``, the
    kernel log). KVM is asked for the ``KVM_X86_GRP_SEV`` attributes of ``/dev/kvm``; with
    ``create_vms`` also ``KVM_CREATE_VM`` for the SEV, SEV-ES, SNP and TDX types (each VM made
    is closed at once; creating one allocates kernel memory, hence opt-in). With ``ask_kvm`` false
    the device is not opened at all (the files alone; for commands that open it once).

    Raises:
        KvmUnavailable: the device cannot be opened.
    """
    files = read_confidential_files(root)
    if not ask_kvm:
        return replace(files, kvm_note=FILES_ONLY_NOTE)
    kvm = _ask_kvm(path, backend, create_vms)
    return replace(files, sev_attrs=kvm.sev_attrs, created=kvm.created, vm_fd=kvm.vm_fd, kvm_note=kvm.kvm_note)
