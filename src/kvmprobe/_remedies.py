"""The remedy sentences: what to do about what the checks find, computed from the host facts.

Imports ``_host_facts``, ``_kvm_backends``, ``_device_errors``, ``_access`` and ``_arch``. Each function takes the
:class:`~kvmprobe.HostFacts` of the host (and what failed) and returns one imperative sentence
(or a summary and a sentence), true for that kind of host: a container, a kernel without
modules, a virtual machine, PVM. They are what gets edited and reviewed most; the checks
(``_checks``) decide *when* each applies. The permission remedy itself lives one floor down in
``_access``, where the device seam's error hint takes it from too: one source.
"""

from __future__ import annotations

from . import _access
from ._access import AclEntry, Node, Who
from ._arch import is_x86 as _is_x86_machine
from ._device_errors import built_in_kvm_hint, is_kvm_node, other_node_hint
from ._host_facts import DeviceNode, HostFacts
from ._kvm_backends import BACKENDS, PVM

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Tuple


def user_text(facts: HostFacts) -> str:
    if facts.uid is None:
        return "this user"
    return f"{facts.user_name} (uid {facts.uid})" if facts.user_name else f"uid {facts.uid}"


def node_text(node: DeviceNode) -> str:
    number = f" {node.number}" if node.number else ""
    return f"{node.mode_text}{number} {node.owner_text}"


def is_x86(facts: HostFacts) -> bool:
    return _is_x86_machine(facts.machine)


def vendor_module(facts: HostFacts) -> Optional[str]:
    """The backend whose hardware virtualization the CPU shows (``_kvm_backends``: vmx, svm)."""
    for backend in BACKENDS:
        if backend.cpu_flag is not None and backend.cpu_flag in facts.cpu_flags:
            return backend.module
    return None


def nested_host_hint(facts: HostFacts) -> str:
    return (
        "this is a virtual machine whose CPU shows neither vmx nor svm: enable nested virtualization on the "
        "host that runs it (there: kvm_intel/kvm_amd nested=1 and a CPU model that passes vmx/svm through, "
        "e.g. QEMU '-cpu host' or libvirt <cpu mode='host-passthrough'/>; on a cloud, an instance type with "
        f"nested virtualization or bare metal), or boot this guest with a PVM kernel and 'modprobe {PVM}'"
    )


def module_remedy(facts: HostFacts) -> str:
    """How to get a KVM backend loaded, from the CPU flags and whether modules can be loaded."""
    if not is_x86(facts) and facts.machine:
        if facts.machine.startswith("s390") and "sie" not in facts.cpu_flags:
            return "this s390 system lacks the SIE facility: KVM needs an LPAR or z/VM guest with SIE"
        return built_in_kvm_hint(facts.machine) + (
            " (on arm64 entered at EL2, i.e. not as a guest without nested support) and look at 'dmesg | grep -i kvm'"
        )
    module = vendor_module(facts)
    no_modules = facts.proc_modules is False
    if module is None:
        if facts.in_vm:
            return nested_host_hint(facts)
        return (
            "the CPU shows neither vmx nor svm: enable Intel VT-x or AMD-V (SVM mode) in the firmware setup, "
            "power the machine off and on, then load kvm_intel or kvm_amd"
        )
    if no_modules:
        return (
            f"this kernel has no loadable modules (no /proc/modules): boot a kernel built with "
            f"CONFIG_{module.upper()}=y"
        )
    return f"sudo modprobe {module} (if it fails, 'dmesg | grep -i kvm' says why, e.g. 'disabled by bios')"


def missing_device_remedy(facts: HostFacts) -> str:
    path = facts.kvm_device
    registered = facts.kvm_misc_dev
    if not is_kvm_node(path):  # a typo, a trailing '/': the path is the mistake, not the host
        return other_node_hint(path)
    if facts.container is not None:
        remedy = (
            f"this process runs in a {facts.container} container without {path}: start it with "
            f"'--device {path}' (docker/podman run), or on Kubernetes request a KVM device plugin resource "
            "(e.g. devices.kubevirt.io/kvm)"
        )
        if registered is None and facts.kvm_backend is None:
            remedy += "; first make sure the host has KVM ('python -m kvmprobe doctor' on the host)"
        return remedy
    if registered is not None:
        major, _, minor = registered.partition(":")
        return (
            f"KVM is loaded (misc device {registered}) but {path} is missing: let udev create it "
            f"('sudo udevadm trigger --name-match=kvm'), or 'sudo mknod {path} c {major} {minor} && "
            f"sudo chgrp kvm {path} && sudo chmod 0660 {path}'"
        )
    return module_remedy(facts)


def process_who(facts: HostFacts) -> Who:
    """This process as the access check takes it (ids ``-1`` when the facts do not say)."""
    uid = facts.uid if facts.uid is not None else -1
    gid = facts.gid if facts.gid is not None else -1
    return Who(uid, gid, facts.groups, facts.user_name)


def node_access(node: DeviceNode, acl: Optional[Tuple[AclEntry, ...]] = None) -> Node:
    """A recorded node as the access check takes it."""
    return Node(node.mode, node.uid, node.gid, acl)


def permission(
    facts: HostFacts,
    path: Optional[str] = None,
    *,
    who: Optional[Who] = None,
    who_text: Optional[str] = None,
    as_other: bool = False,
    acl: Optional[Tuple[AclEntry, ...]] = None,
) -> Tuple[str, str]:
    """(what was observed, the remedy) when an account may not open ``path`` (default: the KVM
    device) read-write: this process, or ``who`` (``--as-user``). The sentences are
    :func:`kvmprobe._access.permission`'s, the same the device seam puts in its error's hint."""
    where = path or facts.kvm_device
    node = facts.devices.get(where)
    account = who if who is not None else process_who(facts)
    entry = facts.group(node.gid) if node is not None else None
    return _access.permission(
        where,
        node_access(node, acl) if node is not None else None,
        account,
        who_text=who_text or user_text(facts),
        node_text=node_text(node) if node is not None else "",
        group_name=entry.name if entry is not None else None,
        group_members=entry.members if entry is not None else (),
        kvm_group=facts.group_named("kvm") is not None,
        container=facts.container,
        as_other=as_other,
    )


def slow_guest_remedy(facts: HostFacts) -> str:
    """What a guest that runs far slower than natively (or exits far slower than normal) means here."""
    if facts.kvm_backend == PVM:
        return (
            f"this is PVM ({PVM}): only guest kernels built for PVM (CONFIG_PVM_GUEST, an x86-64 PIE kernel at "
            "ring 3) run natively; firmware, real-mode, 32-bit and other guest code runs in KVM's instruction "
            "emulator (PVM RFC 49/73, 'Implement emulation for non-PVM mode'): boot a PVM guest kernel, or run "
            "on a host with VT-x/AMD-V"
        )
    if facts.in_vm:
        return (
            "this host is itself a virtual machine: every exit of its guests also exits to the hypervisor below "
            "(nested virtualization); run on bare metal, or on an instance type with nested virtualization "
            "that the cloud accelerates, for normal exit costs"
        )
    return (
        "KVM may be running the guest in its instruction emulator: watch 'perf stat -e kvm:kvm_emulate_insn,"
        "kvm:kvm_entry -a' while 'kvmprobe run' runs, and check that VT-x/AMD-V is on ('kvmprobe doctor')"
    )


def run_failure_remedy(facts: HostFacts) -> str:
    """What to do when KVM_RUN does not run the five-byte real-mode guest."""
    where = (
        f"; on PVM ({PVM}) real-mode code runs in KVM's instruction emulator, whose failures show there too"
        if facts.kvm_backend == PVM
        else ""
    )
    return (
        "look for KVM messages in 'dmesg' from the time of the run (a failed VM entry, an emulation failure) and "
        f"list every exit with 'kvmprobe run --json'{where}"
    )
