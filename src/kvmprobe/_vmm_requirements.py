"""What each KVM-based VMM needs from the host's KVM, per architecture and per release: pure data.

Imports ``caps``, ``_kvm_backends`` (the backends' module names) and ``_vmm_versions``. Capabilities are ``Cap`` members, so a typo fails mypy
and import; their numbers and first Linux releases come from the ``Cap`` table, never from
here. ``profiles`` turns an entry and one of its release ranges into a
:class:`~kvmprobe.profiles.Profile` and checks hosts against it.

Kinds of requirement, as the VMMs' own sources treat a capability:

* ``required``: probed with ``KVM_CHECK_EXTENSION`` before the VM is built; the VMM refuses
  to start (or panics) when the answer is 0.
* ``implicit``: never probed, but the ioctl it stands for is issued unconditionally in the
  default configuration (or the answer is used as it comes), so the VMM fails there instead.
* ``unchecked``: the VMM says it needs it but deliberately does not probe it, because some
  kernels implement it without advertising the capability. A 0 answer proves nothing.
* ``conditional``: required only for a feature or configuration (the text says which).
* ``optional``: probed; when missing, a feature degrades (the text says how).
* ``incompatible``: an answer the VMM cannot cope with: present, and the VMM fails.

**How releases are written down.** An entry's ``releases`` are contiguous ranges, oldest
first, each with the *full* list of capabilities the VMM probes and refuses without in
those releases, cited ``repo@tag file:lines`` at the range's first release (or the tree
read for it). Full lists rather than changes from one range to the next: each range is then
checked against its citation by reading one file, with nothing to add up, and the lists are
short. The other kinds change rarely, so each :class:`Need` carries the releases it holds
for (``since``/``until``, both range bounds); a need without bounds holds for every range.
A range ends wherever anything changes, so every bound is a range's first or last release.
Those needs were read at the newest release and at the releases where they change; where a
range is older than that reading, they are carried back (the required lists never are).

A last release ``vN.x`` covers the series' later point releases, the newest range's too:
point releases are assumed to keep their series' lists (Cloud Hypervisor's v28.3 shows one
that did not, and has a range of its own). Documented minimum kernels are the VMM's support
policy, not something it checks.
"""

from __future__ import annotations


from ._kvm_backends import PVM
from ._vmm_versions import Span
from .caps import Cap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass
    from typing import Dict, NamedTuple, Optional, Tuple
else:
    from ._value import NamedTuple, dataclass

__all__ = [
    "BACKEND_CONSTRAINTS",
    "ENTRIES",
    "API_SECTIONS",
    "IF_MISSING",
    "NEEDED_FOR",
    "VMMS",
    "BackendConstraint",
    "Need",
    "Release",
    "Source",
    "Vmm",
    "VmmEntry",
]


class Need(NamedTuple):
    """One capability with what it is needed for, what breaks without it, or when it is needed.

    ``since`` and ``until`` bound the releases it holds for (inclusive, as the VMM spells
    them; empty: from the oldest or to the newest range).
    """

    cap: Cap
    text: str = ""
    since: str = ""
    until: str = ""


class Source(NamedTuple):
    """Where a list comes from: ``repo`` at ``ref`` (a release tag, or a commit), ``files``."""

    repo: str
    ref: str
    files: Tuple[str, ...]

    def cite(self) -> str:
        """``owner/repo@v45.0 path/file.rs:10-20`` (a commit shortened to 12 digits)."""
        ref = self.ref[:12] if len(self.ref) == 40 else self.ref
        return f"{self.repo}@{ref} " + " + ".join(self.files)


class Release(NamedTuple):
    """A range of releases (``first`` to ``last``, inclusive) that probe the same ``required`` list."""

    first: str
    last: str
    source: Source
    required: Tuple[Cap, ...]


class Vmm(NamedTuple):
    """A VMM: its name, how it numbers releases, and how an installed one tells its release.

    ``prefixes`` are what may lead a release (``v`` in ``v45.0``); ``programs`` the binaries
    (``{arch}``: the machine, as ``uname -m``), ``query`` the arguments that make one print its
    release and exit, ``output`` a regular expression on the first line printed (group 1: the
    release), cited in ``output_source``; ``library`` instead matches a shared library's file
    name for a VMM that is a library.
    """

    name: str
    display_name: str
    prefixes: Tuple[str, ...]
    example: str
    programs: Tuple[str, ...] = ()
    query: Tuple[str, ...] = ()
    output: str = ""
    library: str = ""
    output_source: str = ""


class VmmEntry(NamedTuple):
    """The host requirements of one VMM on one architecture, per release range."""

    vmm: str
    arch: str
    releases: Tuple[Release, ...]
    texts: Tuple[Need, ...] = ()
    implicit: Tuple[Need, ...] = ()
    unchecked: Tuple[Need, ...] = ()
    conditional: Tuple[Need, ...] = ()
    optional: Tuple[Need, ...] = ()
    incompatible: Tuple[Need, ...] = ()
    api_version: Optional[int] = 12
    min_kernel: Optional[str] = None
    min_kernel_source: str = ""
    failure: str = ""
    other: Tuple[str, ...] = ()
    # Backend constraints (which KVM backends a VMM runs on, e.g. gVisor's KVM platform and
    # kvm_pvm) belong here as one more field, checked in profiles._evaluate: issue #14.

    @property
    def display_name(self) -> str:
        """The VMM's name as its project writes it."""
        return VMMS[self.vmm].display_name

    def span(self, release: Release) -> Span:
        """``release``'s range, spelled the VMM's way."""
        return Span(release.first, release.last, VMMS[self.vmm].prefixes)


# What a capability gives a VMM (KVM's api.rst: API_SECTIONS below says where), used when an entry
# gives no text of its own.
NEEDED_FOR = {
    Cap.IRQCHIP: "the in-kernel interrupt controller (KVM_CREATE_IRQCHIP)",
    Cap.USER_MEMORY: "guest RAM (KVM_SET_USER_MEMORY_REGION)",
    Cap.SET_TSS_ADDR: "the TSS pages Intel VMX needs for real mode (KVM_SET_TSS_ADDR)",
    Cap.EXT_CPUID: "the guest CPUID table (KVM_GET_SUPPORTED_CPUID, KVM_SET_CPUID2)",
    Cap.MP_STATE: "vCPU run states such as halted or waiting for SIPI (KVM_GET/SET_MP_STATE)",
    Cap.DESTROY_MEMORY_REGION_WORKS: "deleting memory slots (a historic flag)",
    Cap.JOIN_MEMORY_REGIONS_WORKS: "re-registering memory slots (a historic flag)",
    Cap.USER_NMI: "injecting NMIs (KVM_NMI)",
    Cap.IRQ_ROUTING: "GSI routing of MSIs and interrupt pins (KVM_SET_GSI_ROUTING)",
    Cap.MCE: "machine-check injection (KVM_X86_SETUP_MCE)",
    Cap.IRQFD: "device interrupts through eventfds (KVM_IRQFD)",
    Cap.PIT2: "the in-kernel i8254 timer (KVM_CREATE_PIT2)",
    Cap.PIT_STATE2: "saving and restoring the PIT (KVM_GET/SET_PIT2)",
    Cap.IOEVENTFD: "device doorbells through eventfds (KVM_IOEVENTFD)",
    Cap.IOEVENTFD_ANY_LENGTH: "ioeventfds that match any access length (virtio notifications)",
    Cap.SET_IDENTITY_MAP_ADDR: "the identity-map page Intel VMX needs for real mode (KVM_SET_IDENTITY_MAP_ADDR)",
    Cap.ADJUST_CLOCK: "the guest kvmclock across pause and snapshot (KVM_GET/SET_CLOCK)",
    Cap.INTERNAL_ERROR_DATA: "details of KVM internal-error exits",
    Cap.VCPU_EVENTS: "pending exceptions, interrupts and NMIs on save/restore (KVM_GET/SET_VCPU_EVENTS)",
    Cap.DEBUGREGS: "saving and restoring debug registers (KVM_GET/SET_DEBUGREGS)",
    Cap.X86_ROBUST_SINGLESTEP: "reliable single-stepping of guests",
    Cap.XSAVE: "FPU/SSE/AVX register state (KVM_GET/SET_XSAVE)",
    Cap.XCRS: "the XCR0 register (KVM_GET/SET_XCRS)",
    Cap.GET_TSC_KHZ: "reading the guest TSC frequency (KVM_GET_TSC_KHZ)",
    Cap.TSC_DEADLINE_TIMER: "the TSC-deadline mode of the guest's local APIC timer",
    Cap.SIGNAL_MSI: "injecting MSIs directly (KVM_SIGNAL_MSI)",
    Cap.SPLIT_IRQCHIP: "the split irqchip: local APICs in the kernel, IOAPIC and PIC in the VMM",
    Cap.IMMEDIATE_EXIT: "kicking vCPUs out of KVM_RUN without a signal race (kvm_run.immediate_exit)",
    Cap.ARM_PSCI_0_2: "PSCI 0.2 CPU power control for the guest",
    Cap.DEVICE_CTRL: "in-kernel devices such as the GIC (KVM_CREATE_DEVICE)",
    Cap.ONE_REG: "reading and writing vCPU registers (KVM_GET/SET_ONE_REG)",
    Cap.ENABLE_CAP: "enabling vCPU capabilities (KVM_ENABLE_CAP on a vCPU)",
    Cap.SET_GUEST_DEBUG: "guest debugging (KVM_SET_GUEST_DEBUG)",
}

# What degrades when an optional capability is missing (api.rst: API_SECTIONS), used when an entry
# gives no text.
IF_MISSING = {
    Cap.XSAVE2: "the 4 KiB legacy KVM_GET_XSAVE area is used, so no AMX state",
    Cap.XCRS: "XCR0 is not saved or restored",
    Cap.MSI_DEVID: "MSI routes carry no device ID (only an ARM GICv3 ITS needs one)",
    Cap.NR_MEMSLOTS: "the memory-slot limit is assumed to be KVM's old default of 32",
    Cap.NR_VCPUS: "the recommended vCPU count is assumed to be 4",
    Cap.MAX_VCPUS: "the vCPU limit falls back to KVM_CAP_NR_VCPUS",
    Cap.GET_TSC_KHZ: "the guest TSC frequency is not recorded",
    Cap.TSC_CONTROL: "the guest TSC frequency cannot be set (KVM_SET_TSC_KHZ)",
    Cap.TSC_DEADLINE_TIMER: "guests get no TSC-deadline timer mode",
    Cap.IMMEDIATE_EXIT: "vCPUs are kicked with signals only",
    Cap.READONLY_MEM: "read-only memory (ROM, flash) is handled through MMIO exits",
    Cap.NESTED_STATE: "the state of guests running their own VMs is not saved (no snapshot or migration)",
    Cap.USER_MEMORY2: "no guest_memfd-backed memory slots (KVM_SET_USER_MEMORY_REGION2)",
    Cap.PRE_FAULT_MEMORY: "guest memory cannot be pre-faulted (KVM_PRE_FAULT_MEMORY)",
    Cap.KVMCLOCK_CTRL: "guests are not told they were paused (soft-lockup warnings after a pause)",
    Cap.COUNTER_OFFSET: "the guest counter cannot be offset (KVM_ARM_SET_COUNTER_OFFSET), e.g. on restore",
    Cap.ARM_VM_IPA_SIZE: "the guest physical address space stays at the default 40 bits (1 TiB)",
    Cap.ARM_PMU_V3: "no virtual PMU: no performance counters in the guest",
    Cap.ARM_SVE: "no SVE vectors in the guest",
    Cap.ARM_PTRAUTH_ADDRESS: "no pointer authentication (address keys) in the guest",
    Cap.ARM_PTRAUTH_GENERIC: "no pointer authentication (generic key) in the guest",
    Cap.ARM_MTE: "no Memory Tagging Extension in the guest",
    Cap.ARM_EL2: "no nested virtualization (no EL2 in the guest)",
    Cap.GUEST_DEBUG_HW_BPS: "no hardware breakpoints for the gdbstub",
}


# Where Documentation/virt/kvm/api.rst describes each capability of NEEDED_FOR and IF_MISSING:
# its section number and title as in the api.rst of Linux 7.x (capabilities up to 248; sections
# 4.24-4.52 checked against gregkh/linux@4055f250a329, whose numbering agrees). Numbers drift
# between releases; the titles are the kernel's names and grep. Absent: api.rst has no section
# (KVM_CAP_DESTROY_MEMORY_REGION_WORKS, _JOIN_MEMORY_REGIONS_WORKS and _X86_ROBUST_SINGLESTEP are
# only defined in include/uapi/linux/kvm.h).
API_SECTIONS = {
    Cap.IRQCHIP: "4.24 KVM_CREATE_IRQCHIP",
    Cap.USER_MEMORY: "4.35 KVM_SET_USER_MEMORY_REGION",
    Cap.SET_TSS_ADDR: "4.36 KVM_SET_TSS_ADDR",
    Cap.EXT_CPUID: "4.46 KVM_GET_SUPPORTED_CPUID",
    Cap.MP_STATE: "4.38 KVM_GET_MP_STATE",
    Cap.USER_NMI: "4.64 KVM_NMI",
    Cap.IRQ_ROUTING: "4.52 KVM_SET_GSI_ROUTING",
    Cap.MCE: "4.105 KVM_X86_SETUP_MCE",
    Cap.IRQFD: "4.75 KVM_IRQFD",
    Cap.PIT2: "4.71 KVM_CREATE_PIT2",
    Cap.PIT_STATE2: "4.72 KVM_GET_PIT2",
    Cap.IOEVENTFD: "4.59 KVM_IOEVENTFD",
    Cap.IOEVENTFD_ANY_LENGTH: "4.59 KVM_IOEVENTFD",
    Cap.SET_IDENTITY_MAP_ADDR: "4.40 KVM_SET_IDENTITY_MAP_ADDR",
    Cap.ADJUST_CLOCK: "4.29 KVM_GET_CLOCK",
    Cap.INTERNAL_ERROR_DATA: "5. The kvm_run structure (KVM_EXIT_INTERNAL_ERROR)",
    Cap.VCPU_EVENTS: "4.31 KVM_GET_VCPU_EVENTS",
    Cap.DEBUGREGS: "4.33 KVM_GET_DEBUGREGS",
    Cap.XSAVE: "4.42 KVM_GET_XSAVE",
    Cap.XCRS: "4.44 KVM_GET_XCRS",
    Cap.GET_TSC_KHZ: "4.56 KVM_GET_TSC_KHZ",
    Cap.TSC_DEADLINE_TIMER: "4.46 KVM_GET_SUPPORTED_CPUID",
    Cap.SIGNAL_MSI: "4.71 KVM_SIGNAL_MSI",
    Cap.SPLIT_IRQCHIP: "7.5 KVM_CAP_SPLIT_IRQCHIP",
    Cap.IMMEDIATE_EXIT: "5. The kvm_run structure (immediate_exit)",
    Cap.ARM_PSCI_0_2: "4.82 KVM_ARM_VCPU_INIT",
    Cap.DEVICE_CTRL: "4.79 KVM_CREATE_DEVICE",
    Cap.ONE_REG: "4.69 KVM_GET_ONE_REG",
    Cap.ENABLE_CAP: "4.37 KVM_ENABLE_CAP",
    Cap.SET_GUEST_DEBUG: "4.87 KVM_SET_GUEST_DEBUG",
    Cap.XSAVE2: "4.42 KVM_GET_XSAVE",
    Cap.MSI_DEVID: "4.52 KVM_SET_GSI_ROUTING",
    Cap.NR_MEMSLOTS: "4.35 KVM_SET_USER_MEMORY_REGION",
    Cap.NR_VCPUS: "4.7 KVM_CREATE_VCPU",
    Cap.MAX_VCPUS: "4.7 KVM_CREATE_VCPU",
    Cap.TSC_CONTROL: "4.55 KVM_SET_TSC_KHZ",
    Cap.READONLY_MEM: "4.35 KVM_SET_USER_MEMORY_REGION",
    Cap.NESTED_STATE: "4.114 KVM_GET_NESTED_STATE",
    Cap.USER_MEMORY2: "4.140 KVM_SET_USER_MEMORY_REGION2",
    Cap.PRE_FAULT_MEMORY: "4.143 KVM_PRE_FAULT_MEMORY",
    Cap.KVMCLOCK_CTRL: "4.70 KVM_KVMCLOCK_CTRL",
    Cap.COUNTER_OFFSET: "4.138 KVM_ARM_SET_COUNTER_OFFSET",
    Cap.ARM_VM_IPA_SIZE: "4.2 KVM_CREATE_VM",
    Cap.ARM_PMU_V3: "4.82 KVM_ARM_VCPU_INIT",
    Cap.ARM_SVE: "4.82 KVM_ARM_VCPU_INIT",
    Cap.ARM_PTRAUTH_ADDRESS: "4.82 KVM_ARM_VCPU_INIT",
    Cap.ARM_PTRAUTH_GENERIC: "4.82 KVM_ARM_VCPU_INIT",
    Cap.ARM_MTE: "7.28 KVM_CAP_ARM_MTE",
    Cap.ARM_EL2: "4.82 KVM_ARM_VCPU_INIT",
    Cap.GUEST_DEBUG_HW_BPS: "4.87 KVM_SET_GUEST_DEBUG",
}


def _req(cap: Cap, text: str = "", since: str = "", until: str = "") -> Need:
    return Need(cap, text or NEEDED_FOR.get(cap, ""), since, until)


def _opt(cap: Cap, text: str = "", since: str = "", until: str = "") -> Need:
    return Need(cap, text or IF_MISSING.get(cap, ""), since, until)


def _when(cap: Cap, condition: str, since: str = "", until: str = "") -> Need:
    return Need(cap, condition, since, until)


def _at(repo: str, ref: str, *files: str) -> Source:
    return Source(repo, ref, files)


VMMS: Dict[str, Vmm] = {
    vmm.name: vmm
    for vmm in (
        Vmm(
            "firecracker", "Firecracker", ("v",), "v1.16.1", ("firecracker",), ("--version",),
            r"Firecracker v([0-9]+\.[0-9]+\.[0-9]+)",
            output_source="firecracker-microvm/firecracker@v1.16.1 src/firecracker/src/main.rs:292-293 "
            "(println!(\"Firecracker v{}\\n\"), CARGO_PKG_VERSION since v1.5.0)",
        ),
        Vmm(
            "cloud-hypervisor", "Cloud Hypervisor", ("v",), "v53.0", ("cloud-hypervisor",), ("--version",),
            r"cloud-hypervisor v([0-9]+\.[0-9]+(?:\.[0-9]+)?)",
            output_source="cloud-hypervisor/cloud-hypervisor@v45.0 src/main.rs:865 + build.rs:9-32 "
            "(git describe: v45.0, or v45.0.0 from CARGO_PKG_VERSION)",
        ),
        Vmm(
            "qemu", "QEMU", ("", "v"), "7.2.22", ("qemu-system-{arch}", "qemu-kvm"), ("--version",),
            r"QEMU emulator version ([0-9]+\.[0-9]+\.[0-9]+)",
            output_source="qemu/qemu@v7.2.0 softmmu/vl.c:831-835; @v10.2.2 system/vl.c:874-878 "
            "(QEMU emulator version <VERSION> [(<pkgversion>)])",
        ),
        Vmm(
            "crosvm", "crosvm", ("",), "0.1.0", ("crosvm",), ("version",),
            r"crosvm ([0-9]+\.[0-9]+\.[0-9]+)",
            output_source="google/crosvm@f1e797a68dad src/main.rs:679-690 + src/crosvm/cmdline.rs:474-477 "
            "(no --version flag; 'crosvm version' prints crosvm <CARGO_PKG_VERSION>, always 0.1.0)",
        ),
        Vmm(
            "libkrun", "libkrun", ("v",), "v1.19.0",
            library=r"libkrun\.so\.([0-9]+\.[0-9]+\.[0-9]+)",
            output_source="a library, with no version command: the release is in its file name, libkrun.so.1.19.0",
        ),
        Vmm("dragonball", "Dragonball", ("",), "4.1.0"),
        Vmm(
            "gvisor-kvm", "gVisor (KVM platform)", ("release-",), "release-20260817.0", ("runsc",), ("--version",),
            r"runsc version (?:release-|0\.0~)?([0-9]{8}\.[0-9]+)",
            output_source="google/gvisor@3c5eee17dc45 runsc/cli/cli.go:106-111 (runsc version release-YYYYMMDD.N; "
            "Debian's package prints 0.0~YYYYMMDD.N)",
        ),
    )
}

_FC = "firecracker-microvm/firecracker"
_CH = "cloud-hypervisor/cloud-hypervisor"
_QEMU = "qemu/qemu"
_CROSVM = "google/crosvm"
_LIBKRUN = "containers/libkrun"
_KATA = "kata-containers/kata-containers"
_GVISOR = "google/gvisor"

_FC_FAILURE = (
    "refuses to start: 'Missing KVM capabilities: <first missing>', by its kvm-ioctls name up to v1.4 "
    "(Pit2), its number in hex from v1.5.0 (21) and with 0x from v1.11.0 (0x21)"
)
_FC_KERNEL = "@81b38b9dad60 docs/kernel-policy.md: supported hosts 5.10, 6.1 and 6.18 (4K pages only)"
_CH_FAILURE = (
    "panics: unwrap() on CheckExtensions(Capability missing: <Cap>), the first missing one "
    "(in Vm::new up to v27, Vm::create_hypervisor_vm from v28.0)"
)
_CH_KERNEL = "@ae44c2971c83 README.md:84-87 and release-notes.md v34.0: minimum supported host kernel 5.13"
_QEMU_FAILURE = (
    "exits 1: 'kvm does not support KVM_CAP_<NAME>' and 'failed to initialize kvm: Invalid argument' "
    "(IRQ_ROUTING up to 8.1: 'kvm: KVM_CAP_IRQ_ROUTING not supported by KVM')"
)
_QEMU_KERNEL = "@v10.2.2 docs/system/target-i386.rst:39-40: the default KVM CPU features need Linux v4.5+"
_CROSVM_FAILURE = "refuses: 'missing required hypervisor capability ImmediateExit'; other caps fail at the ioctl"
_CROSVM_KERNEL = "@f1e797a68dad docs/book/src/running_crosvm/requirements.md:5: Linux 4.14 or newer with KVM"
_LIBKRUN_FAILURE = "Error::KvmCap(<Cap>): 'Missing KVM capabilities: <Cap>', the first missing one (vstate.rs:281)"
_DRAGONBALL_FAILURE = "Error::KvmCap(<Cap>): 'missing KVM capability: <Cap>' (src/dragonball/src/error.rs:55-57)"
_GVISOR_FAILURE = "no capability check: the ioctl fails, or the sentry panics on an answer it cannot use"
_GVISOR_KERNEL = "@3c5eee17dc45 g3doc/user_guide/install.md:5: gVisor requires Linux 5.6+"

# Capability lists that several ranges share, each exactly as its cited source lists it.
_CH_X86_V21_0 = (Cap.SIGNAL_MSI, Cap.TSC_DEADLINE_TIMER, Cap.SPLIT_IRQCHIP, Cap.SET_IDENTITY_MAP_ADDR, Cap.SET_TSS_ADDR)
_CH_X86_V21_1 = _CH_X86_V21_0 + (Cap.IMMEDIATE_EXIT,)
_CH_X86_V30 = _CH_X86_V21_1 + (Cap.GET_TSC_KHZ,)
_CH_X86_V53 = (
    Cap.ADJUST_CLOCK, Cap.EXT_CPUID, Cap.GET_TSC_KHZ, Cap.IMMEDIATE_EXIT, Cap.IOEVENTFD, Cap.IRQCHIP,
    Cap.IRQFD, Cap.IRQ_ROUTING, Cap.MP_STATE, Cap.SET_IDENTITY_MAP_ADDR, Cap.SET_TSS_ADDR,
    Cap.SPLIT_IRQCHIP, Cap.TSC_DEADLINE_TIMER, Cap.USER_MEMORY, Cap.USER_NMI, Cap.VCPU_EVENTS, Cap.XSAVE,
)
_CH_X86_V40 = _CH_X86_V53[:-1] + (Cap.XCRS, Cap.XSAVE)
_CH_ARM_V40 = (
    Cap.IMMEDIATE_EXIT, Cap.IOEVENTFD, Cap.IRQCHIP, Cap.IRQFD, Cap.IRQ_ROUTING, Cap.MP_STATE, Cap.ONE_REG,
    Cap.USER_MEMORY,
)
_FC_X86 = (
    Cap.IRQCHIP, Cap.IOEVENTFD, Cap.IRQFD, Cap.USER_MEMORY, Cap.SET_TSS_ADDR, Cap.PIT2, Cap.PIT_STATE2,
    Cap.ADJUST_CLOCK, Cap.DEBUGREGS, Cap.MP_STATE, Cap.VCPU_EVENTS, Cap.XCRS, Cap.XSAVE, Cap.EXT_CPUID,
)
_FC_ARM = (Cap.IOEVENTFD, Cap.IRQFD, Cap.USER_MEMORY, Cap.ARM_PSCI_0_2, Cap.DEVICE_CTRL, Cap.MP_STATE, Cap.ONE_REG)
# QEMU: kvm_required_capabilites (generic), then kvm_arch_required_capabilities.
_QEMU_GENERIC_V7 = (Cap.USER_MEMORY, Cap.DESTROY_MEMORY_REGION_WORKS, Cap.JOIN_MEMORY_REGIONS_WORKS)
_QEMU_GENERIC_V8_2 = _QEMU_GENERIC_V7 + (Cap.INTERNAL_ERROR_DATA, Cap.IOEVENTFD, Cap.IOEVENTFD_ANY_LENGTH)
# Up to 8.1 IRQ_ROUTING is refused by its own check in kvm_arch_init, after the two lists.
_QEMU_X86_V7 = _QEMU_GENERIC_V7 + (Cap.SET_TSS_ADDR, Cap.EXT_CPUID, Cap.MP_STATE, Cap.IRQ_ROUTING)
_QEMU_X86_V8_2 = _QEMU_GENERIC_V8_2 + (
    Cap.SET_TSS_ADDR, Cap.EXT_CPUID, Cap.MP_STATE, Cap.SIGNAL_MSI, Cap.IRQ_ROUTING, Cap.DEBUGREGS, Cap.XSAVE,
    Cap.VCPU_EVENTS, Cap.X86_ROBUST_SINGLESTEP, Cap.MCE, Cap.ADJUST_CLOCK, Cap.SET_IDENTITY_MAP_ADDR,
)
# What QEMU 8.2 made mandatory (the series "require Linux 4.4 for KVM", merged as 3c95fd4ed895),
# probed into flags and optional before.
_QEMU_LISTED_IN_8_2 = (
    Cap.INTERNAL_ERROR_DATA, Cap.IOEVENTFD, Cap.IOEVENTFD_ANY_LENGTH, Cap.SIGNAL_MSI, Cap.DEBUGREGS, Cap.XSAVE,
    Cap.VCPU_EVENTS, Cap.X86_ROBUST_SINGLESTEP, Cap.ADJUST_CLOCK, Cap.SET_IDENTITY_MAP_ADDR,
)
_QEMU_7_2 = "qemu/qemu@v7.2.0"
_QEMU_NEWEST = "qemu/qemu@v10.2.2"
_GVISOR_ANSWER = (
    "the sentry uses the VM-fd answer as it comes (a fallback only when the query fails): 0 panics it, "
    "'index out of range [0] with length 0'"
)

ENTRIES: Tuple[VmmEntry, ...] = (
    VmmEntry(
        vmm="firecracker",
        arch="x86_64",
        # The same 14 capabilities in the same order in every release; the file moved.
        releases=(
            Release("v1.0.0", "v1.4.x", _at(_FC, "v1.0.0", "src/vmm/src/vstate/system.rs:61-77"), _FC_X86),
            Release("v1.5.0", "v1.10.x", _at(_FC, "v1.5.0", "src/vmm/src/vstate/vm.rs:352-367"), _FC_X86),
            Release("v1.11.0", "v1.11.x", _at(_FC, "v1.11.0", "src/vmm/src/vstate/kvm.rs:172-187"), _FC_X86),
            Release("v1.12.0", "v1.16.x", _at(_FC, "v1.12.0", "src/vmm/src/arch/x86_64/kvm.rs:31-46"), _FC_X86),
        ),
        texts=(_req(Cap.PIT_STATE2, "saving and restoring the PIT in snapshots (KVM_GET/SET_PIT2)"),
               _req(Cap.XCRS, "saving and restoring XCR0 in snapshots (KVM_GET/SET_XCRS)")),
        conditional=(
            _when(Cap.TSC_CONTROL, "restoring a snapshot on a host whose TSC frequency differs (KVM_SET_TSC_KHZ)"),
            _when(
                Cap.GET_TSC_KHZ,
                "restoring a snapshot that recorded its TSC frequency: KVM_GET_TSC_KHZ is issued without a probe, "
                "and its failure fails the restore (saving only warns and records none) "
                "(@v1.16.1 src/vmm/src/arch/x86_64/vcpu.rs:587-590, 630-639)",
            ),
        ),
        optional=(
            _opt(Cap.XSAVE2, since="v1.12.0"),
            _opt(Cap.MSI_DEVID),
            _opt(Cap.NR_MEMSLOTS),
        ),
        min_kernel="5.10",
        min_kernel_source=_FC_KERNEL,
        failure=_FC_FAILURE,
        other=(
            "from v1.5.0, CPU templates may add capabilities to the required list, or remove them (kvm_capabilities)",
            "host CPU vendor GenuineIntel or AuthenticAMD",
            "KVM_GET_SUPPORTED_CPUID and KVM_GET_MSR_INDEX_LIST must succeed",
        ),
    ),
    VmmEntry(
        vmm="firecracker",
        arch="aarch64",
        releases=(
            Release("v1.0.0", "v1.0.x", _at(_FC, "v1.0.0", "src/vmm/src/vstate/system.rs:79-82"), (Cap.IRQCHIP,) + _FC_ARM),
            # 89a15b9f0 "kvm: KVM_CAP_IRQCHIP not needed on ARM"
            Release("v1.1.0", "v1.4.x", _at(_FC, "v1.1.0", "src/vmm/src/vstate/system.rs:79-82"), _FC_ARM),
            Release("v1.5.0", "v1.10.x", _at(_FC, "v1.5.0", "src/vmm/src/vstate/vm.rs:287-295"), _FC_ARM),
            Release("v1.11.0", "v1.11.x", _at(_FC, "v1.11.0", "src/vmm/src/vstate/kvm.rs:149-157"), _FC_ARM),
            Release("v1.12.0", "v1.16.x", _at(_FC, "v1.12.0", "src/vmm/src/arch/aarch64/kvm.rs:30-38"), _FC_ARM),
        ),
        optional=(
            _opt(
                Cap.COUNTER_OFFSET,
                "the guest's physical counter is not reset at boot, so the guest reads the host's "
                "(@v1.16.1 src/vmm/src/arch/aarch64/vcpu.rs:375-392)",
                since="v1.11.0",
            ),
            _opt(Cap.MSI_DEVID, "MSI routes carry no device ID, which the GICv3 ITS needs for MSIs"),
            _opt(Cap.NR_MEMSLOTS),
        ),
        min_kernel="5.10",
        min_kernel_source=_FC_KERNEL,
        failure=_FC_FAILURE,
        other=("an in-kernel GIC through KVM_CREATE_DEVICE: GICv3, else GICv2",),
    ),
    VmmEntry(
        vmm="cloud-hypervisor",
        arch="x86_64",
        releases=(
            Release("v21.0", "v21.0", _at(_CH, "v21.0", "hypervisor/src/kvm/x86_64/mod.rs:117-134"), _CH_X86_V21_0),
            # 507912385, backported to v21.1 as 366223c9f
            Release("v21.1", "v28.2", _at(_CH, "v21.1", "hypervisor/src/kvm/x86_64/mod.rs:117-137"), _CH_X86_V21_1),
            # c22c4675b (v30.0) backported to the v28 stable branch as 39a81c596; v29.0 lacks it
            Release("v28.3", "v28.x", _at(_CH, "v28.3", "hypervisor/src/kvm/x86_64/mod.rs:34-57"), _CH_X86_V30),
            Release("v29.0", "v29.x", _at(_CH, "v29.0", "hypervisor/src/kvm/x86_64/mod.rs:34-54"), _CH_X86_V21_1),
            Release("v30.0", "v39.x", _at(_CH, "v30.0", "hypervisor/src/kvm/x86_64/mod.rs:34-57"), _CH_X86_V30),
            # PR #6449: 86cf50565 dropped SIGNAL_MSI, 241d1d5cd added twelve
            Release("v40.0", "v48.x", _at(_CH, "v40.0", "hypervisor/src/kvm/x86_64/mod.rs:34-64"), _CH_X86_V40),
            Release("v49.0", "v51.x", _at(_CH, "v49.0", "hypervisor/src/kvm/x86_64/mod.rs:34-64"), _CH_X86_V40),
            Release("v52.0", "v52.x", _at(_CH, "v52.0", "hypervisor/src/kvm/x86_64/mod.rs:40-70"), _CH_X86_V40),
            # 4b671954a "Support pre-XSAVE x86 CPUs": XCRS probed per VM instead
            Release("v53.0", "v53.x", _at(_CH, "v53.0", "hypervisor/src/kvm/x86_64/mod.rs:41-70"), _CH_X86_V53),
        ),
        texts=(
            _req(Cap.IMMEDIATE_EXIT, "completing PIO and MMIO exits before pausing vCPUs (kvm_run.immediate_exit)"),
            _req(Cap.SPLIT_IRQCHIP, "its split irqchip, enabled unconditionally at VM creation"),
        ),
        # "DeviceCtrl, EnableCap, and SetGuestDebug are also required, but some kernels have the
        # features implemented without the capability flags" (@v53.0 x86_64/mod.rs:50; since v40.0)
        unchecked=(
            _req(Cap.DEVICE_CTRL, since="v40.0"),
            _req(Cap.ENABLE_CAP, since="v40.0"),
            _req(Cap.SET_GUEST_DEBUG, since="v40.0"),
        ),
        conditional=(
            _when(Cap.X2APIC_API, "a guest with an APIC ID above 254 (panics without it)"),
            _when(Cap.HYPERV_SYNIC, "--cpus kvm_hyperv=on"),
            _when(Cap.MAX_VCPUS, "more vCPUs than KVM_CAP_NR_VCPUS allows"),
            _when(
                Cap.NESTED_STATE,
                "a snapshot or live migration: every vCPU state save issues KVM_GET_NESTED_STATE without a probe, "
                "which fails where this answers 0 (@v49.0 hypervisor/src/kvm/mod.rs:2347, 2915-2921)",
                since="v49.0",
            ),
            _when(Cap.GUEST_MEMFD, "an SEV-SNP guest (sev_snp build)", since="v52.0"),
            _when(Cap.EXIT_HYPERCALL, "an SEV-SNP guest (sev_snp build; also needs /dev/sev)", since="v52.0"),
        ),
        optional=(
            _opt(Cap.XSAVE2, since="v52.0"),
            _opt(
                Cap.XCRS,
                "XCR0 is not saved or restored (CPUs without XSAVE are supported this way) "
                "(@v53.0 hypervisor/src/kvm/mod.rs:939, 3048-3052)",
                since="v53.0",
            ),
            _opt(Cap.MSI_DEVID),
            _opt(Cap.NR_VCPUS, "the vCPU limit falls back to kvm-ioctls' default of 4 if KVM_CAP_MAX_VCPUS is 0 too"),
        ),
        min_kernel="5.13",
        min_kernel_source=_CH_KERNEL,
        failure=_CH_FAILURE,
        other=(
            "KVM_SET_IDENTITY_MAP_ADDR, KVM_SET_TSS_ADDR and KVM_ENABLE_CAP(SPLIT_IRQCHIP) must succeed at VM creation",
            "KVM_GET_MSR_INDEX_LIST and KVM_GET_SUPPORTED_CPUID must succeed",
        ),
    ),
    VmmEntry(
        vmm="cloud-hypervisor",
        arch="aarch64",
        releases=(
            Release(
                "v21.0", "v39.x", _at(_CH, "v21.0", "hypervisor/src/kvm/aarch64/mod.rs:138-146"), (Cap.SIGNAL_MSI, Cap.ONE_REG)
            ),
            Release("v40.0", "v44.x", _at(_CH, "v40.0", "hypervisor/src/kvm/aarch64/mod.rs:108-127"), _CH_ARM_V40),
            Release("v45.0", "v52.x", _at(_CH, "v45.0", "hypervisor/src/kvm/aarch64/mod.rs:107-126"), _CH_ARM_V40),
            Release("v53.0", "v53.x", _at(_CH, "v53.0", "hypervisor/src/kvm/aarch64/mod.rs:94-113"), _CH_ARM_V40),
        ),
        texts=(
            _req(Cap.IMMEDIATE_EXIT, "completing PIO and MMIO exits before pausing vCPUs (kvm_run.immediate_exit)"),
        ),
        unchecked=(_req(Cap.SET_GUEST_DEBUG, since="v40.0"),),
        optional=(
            _opt(Cap.ARM_VM_IPA_SIZE),
            _opt(Cap.ARM_PMU_V3),
            _opt(Cap.ARM_SVE, since="v45.0"),
            _opt(
                Cap.COUNTER_OFFSET,
                "a restore writes the guest counter through every vCPU instead of one (it still works) "
                "(@v53.0 hypervisor/src/kvm/mod.rs:1390-1404)",
                since="v53.0",
            ),
            _opt(Cap.MSI_DEVID, "MSI routes carry no device ID, which the GICv3 ITS needs for MSIs"),
        ),
        min_kernel="5.13",
        min_kernel_source=_CH_KERNEL,
        failure=_CH_FAILURE,
        other=("a GICv3 host interrupt controller", "PSCI 0.2 is set on every vCPU without probing KVM_CAP_ARM_PSCI_0_2"),
    ),
    VmmEntry(
        vmm="cloud-hypervisor",
        arch="riscv64",
        # No riscv64 KVM backend before v43.0.
        releases=(
            Release("v43.0", "v53.x", _at(_CH, "v43.0", "hypervisor/src/kvm/riscv64/mod.rs:137-156"), _CH_ARM_V40),
        ),
        texts=(
            _req(Cap.IMMEDIATE_EXIT, "completing PIO and MMIO exits before pausing vCPUs (kvm_run.immediate_exit)"),
        ),
        min_kernel="5.13",
        min_kernel_source=_CH_KERNEL,
        failure=_CH_FAILURE,
        other=(
            "the comment at riscv64/mod.rs:110 (copied from aarch64) calls SetGuestDebug required but unchecked; "
            "set_guest_debug is compiled out on riscv64 (@v53.0 hypervisor/src/kvm/mod.rs:2693), so it is no "
            "requirement there",
        ),
    ),
    VmmEntry(
        vmm="qemu",
        arch="x86_64",
        releases=(
            Release(
                "7.2.0", "7.x",
                _at(_QEMU, "v7.2.0", "accel/kvm/kvm-all.c:108-113", "target/i386/kvm/kvm.c:83-88",
                    "target/i386/kvm/kvm.c:2484-2487"),
                _QEMU_X86_V7,
            ),
            # Read in a one-commit import of the 8.1.0 release (VERSION 8.1.0).
            Release(
                "8.0.0", "8.1.x",
                _at("NikoZHAI/qemu-8.1.0", "b4f51ea55", "accel/kvm/kvm-all.c:110-115", "target/i386/kvm/kvm.c:90-95",
                    "target/i386/kvm/kvm.c:2585-2588"),
                _QEMU_X86_V7,
            ),
            # "require Linux 4.4 for KVM" (126e7f780367 and siblings, merged as 3c95fd4ed895); read
            # in an import of 8.2.4 with its own patches reverted.
            Release(
                "8.2.0", "9.1.x",
                _at("cyanea-bt/qemu-8-patched", "c22c906c6", "accel/kvm/kvm-all.c:106-114",
                    "target/i386/kvm/kvm.c:90-104"),
                _QEMU_X86_V8_2,
            ),
            # Read in an import of the 9.2.4 release.
            Release(
                "9.2.0", "9.x",
                _at("zhouyuming/qemu-9.2.4", "6d042ec60", "accel/kvm/kvm-all.c:103-111", "target/i386/kvm/kvm.c:117-131"),
                _QEMU_X86_V8_2,
            ),
            Release(
                "10.0.0", "10.0.x",
                _at(_QEMU, "v10.0.2", "accel/kvm/kvm-all.c:103-111", "target/i386/kvm/kvm.c:114-128"),
                _QEMU_X86_V8_2,
            ),
            Release(
                "10.1.0", "10.2.x",
                _at(_QEMU, "v10.2.2", "accel/kvm/kvm-all.c:113-121", "target/i386/kvm/kvm.c:116-130"),
                _QEMU_X86_V8_2,
            ),
        ),
        implicit=(
            _req(
                Cap.IRQCHIP,
                "the kernel irqchip: 8.0 removed the userspace local APIC with KVM, so pc and q35 refuse without it: "
                "'KVM does not support userspace APIC' (@v10.2.2 target/i386/cpu-apic.c:27-31, "
                "docs/about/removed-features.rst:1002-1007)",
                since="8.0.0",
            ),
            _req(
                Cap.IRQFD,
                "the kernel irqchip, full or split: 'kvm: irqfd not implemented', exit 1 "
                "(@v10.2.2 accel/kvm/kvm-all.c:2435-2438)",
                since="8.2.0",
            ),
            _req(
                Cap.PIT2,
                "the in-kernel PIT of the default pc/q35 setup (full kernel irqchip, pit=auto): 'In-kernel PIT not "
                "available' (@v10.2.2 hw/i386/kvm/i8254.c:249-252); kernel-irqchip=split or -machine pit=off avoid it",
                since="8.2.0",
            ),
            _req(
                Cap.PIT_STATE2,
                "the in-kernel PIT of the default pc/q35 setup (full kernel irqchip, pit=auto): 'In-kernel PIT not "
                "available' (@v10.2.2 hw/i386/kvm/i8254.c:249-252); kernel-irqchip=split or -machine pit=off avoid it",
                since="8.2.0",
            ),
            _req(
                Cap.MCE,
                "the default CPU models' machine-check MSRs: without it QEMU skips KVM_X86_SETUP_MCE yet writes "
                "MSR_MCG_CTL, which the kernel refuses: 'failed to set MSR 0x17b' "
                "(@v7.2.0 target/i386/kvm/kvm.c:2052-2055, 3521-3525)",
                until="8.1.x",
            ),
        ),
        conditional=(
            _when(
                Cap.SET_GUEST_DEBUG,
                "-gdb or -s: 'gdbstub: current accelerator doesn't support guest debugging', exit 1 "
                "(@v10.2.2 accel/kvm/kvm-all.c:2755-2757, gdbstub/system.c:345-349)",
            ),
            _when(Cap.SPLIT_IRQCHIP, "kernel-irqchip=split, or the microvm machine: 'Could not enable split irqchip mode'"),
            _when(Cap.MAX_VCPUS, "-smp above the KVM_CAP_MAX_VCPUS answer"),
            _when(Cap.X2APIC_API, "APIC IDs of 255 and up (large guests)"),
            _when(
                Cap.X86_DISABLE_EXITS,
                "-overcommit cpu-pm=on: 'kvm: guest stopping CPU not supported', fatal since 10.0 "
                "(@v10.2.2 target/i386/kvm/kvm.c:3343-3350)",
                since="10.0.0",
            ),
            _when(Cap.X86_BUS_LOCK_EXIT, "bus-lock-ratelimit above 0: 'kvm: bus lock detection unsupported'"),
            _when(
                Cap.HYPERV,
                "hv-* enlightenments: without it hv-relaxed, hv-evmcs and hv-enforce-cpuid are silently ignored, "
                "hv-vpindex and hv-synic refuse to start, and hv-time and hv-vapic abort on KVM_SET_MSRS "
                "(@v10.2.2 target/i386/kvm/kvm.c:860-865)",
            ),
            _when(
                Cap.HYPERV_VP_INDEX,
                "hv-vpindex (and hv-synic): 'kernel doesn't allow setting HyperV VP_INDEX' "
                "(@v10.2.2 hw/i386/x86-common.c:432-436)",
            ),
            _when(
                Cap.HYPERV_SYNIC,
                "hv-synic with x-hv-synic-kvm-only=on: 'failed to turn on HyperV SynIC in KVM' "
                "(@v10.2.2 target/i386/kvm/kvm.c:1740-1750)",
            ),
            _when(Cap.HYPERV_SYNIC2, "hv-synic: 'failed to turn on HyperV SynIC in KVM' (kvm.c:1740-1750)"),
            _when(Cap.HYPERV_ENLIGHTENED_VMCS, "hv-evmcs: 'Hyper-V enlightened VMCS (hv-evmcs) is not supported by kernel'"),
            _when(
                Cap.HYPERV_ENFORCE_CPUID,
                "hv-enforce-cpuid=on: 'failed to enable KVM_CAP_HYPERV_ENFORCE_CPUID' (@v10.2.2 kvm.c:1789-1795)",
            ),
            _when(
                Cap.ENFORCE_PV_FEATURE_CPUID,
                "-cpu ...,kvm-pv-enforce-cpuid=on: QEMU aborts without it (@v10.2.2 target/i386/kvm/kvm.c:2266-2273)",
            ),
            _when(
                Cap.VM_TYPES,
                "an SEV-SNP or TDX guest, or sev-guest with legacy-vm-type=off: 'vm-type ... not supported by KVM' "
                "(@v10.2.2 target/i386/kvm/kvm.c:199-236); plain sev-guest uses the default VM type",
                since="9.2.0",
            ),
        ),
        optional=(
            _opt(
                Cap.IRQCHIP,
                "QEMU emulates the interrupt controllers, warning 'Userspace local APIC is deprecated for KVM' "
                "(@v7.2.0 hw/intc/apic.c:878-881)",
                until="7.x",
            ),
            _opt(
                Cap.IRQFD,
                "devices signal interrupts through QEMU instead of eventfds (@v7.2.0 accel/kvm/kvm-all.c:2528-2529)",
                until="8.1.x",
            ),
            _opt(Cap.PIT2, "the older KVM_CREATE_PIT is used (@v7.2.0 hw/i386/kvm/i8254.c:263-267)", until="8.1.x"),
            _opt(
                Cap.PIT_STATE2,
                "the PIT is saved with KVM_GET/SET_PIT, and the HPET is left out with the kernel irqchip "
                "(@v7.2.0 hw/i386/pc.c:1270-1277)",
                until="8.1.x",
            ),
        )
        + tuple(
            _opt(cap, "probed into a flag; QEMU works without it (@v7.2.0 accel/kvm/kvm-all.c:2498-2541)", until="8.1.x")
            for cap in _QEMU_LISTED_IN_8_2
        )
        + (
            _opt(Cap.IMMEDIATE_EXIT, "QEMU kicks vCPUs with signals instead"),
            _opt(Cap.NR_MEMSLOTS),
            _opt(Cap.NR_VCPUS),
            _opt(Cap.MULTI_ADDRESS_SPACE, "no separate SMM address space, so no System Management Mode"),
            _opt(Cap.COALESCED_MMIO, "every MMIO write to some devices exits to QEMU (slower)"),
            _opt(Cap.COALESCED_PIO, "every port write to some devices exits to QEMU (slower)"),
            _opt(
                Cap.DIRTY_LOG_RING,
                "asked only with -accel kvm,dirty-ring-size=N; then QEMU warns and tracks dirty pages with the bitmap "
                "(@v10.2.2 accel/kvm/kvm-all.c:1682-1701)",
            ),
            _opt(Cap.MANUAL_DIRTY_LOG_PROTECT2, "dirty bitmaps are cleared all at once (slower live migration)"),
            _opt(Cap.NESTED_STATE),
            _opt(Cap.IRQ_INJECT_STATUS, "interrupt injection reports no delivery status"),
            _opt(Cap.READONLY_MEM),
            _opt(Cap.IRQFD_RESAMPLE, "level-triggered device interrupts go through QEMU (slower VFIO INTx)"),
            _opt(Cap.VM_ATTRIBUTES, "no VM-wide device attributes (KVM_HAS_DEVICE_ATTR on the VM fd)"),
            _opt(
                Cap.SET_GUEST_DEBUG2,
                "the gdbstub single-steps with interrupts on (no KVM_GUESTDBG_BLOCKIRQ) "
                "(@v10.2.2 accel/kvm/kvm-all.c:2764-2770)",
            ),
            _opt(Cap.MEMORY_ATTRIBUTES, "no private memory for confidential guests", since="9.2.0"),
            _opt(Cap.GUEST_MEMFD, "no guest_memfd, so no confidential guests", since="9.2.0"),
            _opt(Cap.USER_MEMORY2, since="9.2.0"),
            _opt(Cap.PRE_FAULT_MEMORY, since="10.1.0"),
            _opt(Cap.SYNC_MMU, "RAM discard is disabled (no memory ballooning)"),
            _opt(Cap.BINARY_STATS_FD, "no KVM statistics in query-stats"),
            _opt(Cap.XCRS, "XCR0 is not migrated"),
            _opt(Cap.SREGS2, "PAE page-directory pointers are not migrated (KVM_GET_SREGS is used)"),
            _opt(Cap.XSAVE2),
            _opt(Cap.EXCEPTION_PAYLOAD, "pending exception payloads are not migrated"),
            _opt(Cap.X86_TRIPLE_FAULT_EVENT, "a pending triple fault is not migrated"),
            _opt(Cap.X86_NOTIFY_VMEXIT, "no notify VM exits (guarding against guests that stall the CPU)"),
            _opt(Cap.X86_USER_SPACE_MSR, "MSR accesses KVM rejects cannot be handled by QEMU"),
            _opt(Cap.GET_TSC_KHZ),
            _opt(Cap.TSC_CONTROL, "the guest TSC frequency cannot be set (tsc-frequency=)"),
            _opt(Cap.TSC_DEADLINE_TIMER),
            _opt(Cap.X86_SMM, "no System Management Mode (OVMF with SMM for secure boot)"),
            _opt(Cap.GET_MSR_FEATURES, "feature MSRs (VMX capabilities, ARCH_CAPABILITIES) are not offered to guests"),
            _opt(
                Cap.X86_DISABLE_EXITS,
                "-overcommit cpu-pm=on only: QEMU reports 'kvm: guest stopping CPU not supported' and goes on "
                "(@v7.2.0 target/i386/kvm/kvm.c:2590-2598)",
                until="9.x",
            ),
        ),
        min_kernel="4.5",
        min_kernel_source=_QEMU_KERNEL,
        failure=_QEMU_FAILURE,
        other=(
            "KVM_GET_MSR_INDEX_LIST and the feature-MSR list must succeed",
            "KVM_SET_IDENTITY_MAP_ADDR, KVM_SET_TSS_ADDR and KVM_SET_NR_MMU_PAGES at init",
        ),
    ),
    VmmEntry(
        vmm="qemu",
        arch="aarch64",
        releases=(
            Release("7.2.0", "8.1.x", _at(_QEMU, "v7.2.0", "accel/kvm/kvm-all.c:108-113", "target/arm/kvm.c:35-37"),
                    _QEMU_GENERIC_V7),
            Release(
                "8.2.0", "9.1.x",
                _at("cyanea-bt/qemu-8-patched", "c22c906c6", "accel/kvm/kvm-all.c:106-114", "target/arm/kvm.c:36-38"),
                _QEMU_GENERIC_V8_2,
            ),
            # "target/arm: kvm: require KVM_CAP_DEVICE_CTRL" (target-arm pull of 2024-10-29)
            Release(
                "9.2.0", "9.x",
                _at("zhouyuming/qemu-9.2.4", "6d042ec60", "accel/kvm/kvm-all.c:103-111", "target/arm/kvm.c:44-47"),
                _QEMU_GENERIC_V8_2 + (Cap.DEVICE_CTRL,),
            ),
            Release("10.0.0", "10.0.x", _at(_QEMU, "v10.0.2", "accel/kvm/kvm-all.c:103-111", "target/arm/kvm.c:44-47"),
                    _QEMU_GENERIC_V8_2 + (Cap.DEVICE_CTRL,)),
            Release("10.1.0", "10.2.x", _at(_QEMU, "v10.2.2", "accel/kvm/kvm-all.c:113-121", "target/arm/kvm.c:45-48"),
                    _QEMU_GENERIC_V8_2 + (Cap.DEVICE_CTRL,)),
        ),
        implicit=(
            _req(
                Cap.IRQFD,
                "the in-kernel GIC (the default): 'kvm: irqfd not implemented', exit 1 "
                "(@v10.2.2 accel/kvm/kvm-all.c:2418-2438)",
                since="8.2.0",
            ),
        ),
        conditional=(
            _when(
                Cap.ARM_IRQ_LINE_LAYOUT_2,
                "-smp above 256 vCPUs: 'Using more than 256 vcpus requires a host kernel with "
                "KVM_CAP_ARM_IRQ_LINE_LAYOUT_2' (@v10.2.2 target/arm/kvm.c:553-558)",
            ),
            _when(Cap.SET_GUEST_DEBUG, "-gdb or -s: 'gdbstub: current accelerator doesn't support guest debugging'"),
        ),
        optional=(
            _opt(Cap.IRQFD, "devices signal interrupts through QEMU instead of eventfds", until="8.1.x"),
            _opt(
                Cap.INTERNAL_ERROR_DATA, "probed into a flag; QEMU works without it", until="8.1.x"
            ),
            _opt(Cap.IOEVENTFD, "probed into a flag; QEMU works without it", until="8.1.x"),
            _opt(Cap.IOEVENTFD_ANY_LENGTH, "probed into a flag; QEMU works without it", until="8.1.x"),
            _opt(
                Cap.DEVICE_CTRL,
                "a GICv2 is created with KVM_CREATE_IRQCHIP and placed with KVM_ARM_SET_DEVICE_ADDR",
                until="9.1.x",
            ),
            _opt(Cap.IMMEDIATE_EXIT, "QEMU kicks vCPUs with signals instead"),
            _opt(Cap.NR_MEMSLOTS),
            _opt(Cap.ARM_VM_IPA_SIZE),
            _opt(Cap.MP_STATE, "vCPU power states are not migrated"),
            _opt(Cap.VCPU_EVENTS, "pending SErrors are not migrated"),
            _opt(Cap.ARM_PSCI_0_2, "guests get PSCI 0.1 only"),
            _opt(Cap.ARM_PMU_V3),
            _opt(Cap.ARM_SVE),
            _opt(Cap.ARM_PTRAUTH_ADDRESS),
            _opt(Cap.ARM_PTRAUTH_GENERIC),
            _opt(Cap.ARM_MTE, since="9.2.0"),
            _opt(Cap.ARM_EL2, since="10.1.0"),
            _opt(Cap.STEAL_TIME, "guests get no steal-time accounting"),
            _opt(Cap.ARM_INJECT_SERROR_ESR, "SErrors are injected without a syndrome value"),
            _opt(Cap.ARM_INJECT_EXT_DABT, "external data aborts cannot be injected into guests"),
            _opt(Cap.ARM_NISV_TO_USER, "MMIO accesses without a valid syndrome fail instead of reaching QEMU"),
            _opt(Cap.GUEST_DEBUG_HW_BPS),
        ),
        min_kernel="4.5",
        min_kernel_source=_QEMU_KERNEL,
        failure=_QEMU_FAILURE,
    ),
    VmmEntry(
        vmm="crosvm",
        arch="x86_64",
        # crosvm has no releases: its crate version is 0.1.0 at every commit.
        releases=(Release("0.1.0", "0.1.x", _at(_CROSVM, "f1e797a68dada35cbafef8d0cfae36bacfaea85e", "src/crosvm/sys/linux.rs:3980-3988"), (Cap.IMMEDIATE_EXIT,)),),
        texts=(_req(Cap.IMMEDIATE_EXIT, "stopping vCPUs (kvm_run.immediate_exit)"),),
        implicit=(
            _req(Cap.USER_MEMORY),
            _req(Cap.IRQCHIP, "the default kernel irqchip (KVM_CREATE_IRQCHIP)"),
            _req(Cap.PIT2, "the default kernel irqchip's PIT (KVM_CREATE_PIT2)"),
            _req(Cap.IRQFD),
            _req(Cap.IOEVENTFD),
            _req(Cap.IRQ_ROUTING),
            _req(Cap.SET_TSS_ADDR),
            _req(Cap.SET_IDENTITY_MAP_ADDR),
            _req(Cap.EXT_CPUID),
        ),
        conditional=(
            _when(Cap.SPLIT_IRQCHIP, "--split-irqchip"),
            _when(Cap.X86_BUS_LOCK_EXIT, "--bus-lock-ratelimit above 0"),
            _when(Cap.MSR_PLATFORM_INFO, "--itmt"),
        ),
        optional=(
            _opt(Cap.KVMCLOCK_CTRL),
            _opt(Cap.USER_MEMORY2),
            _opt(Cap.READONLY_MEM),
            _opt(Cap.TSC_DEADLINE_TIMER),
            _opt(Cap.XSAVE2),
            _opt(Cap.NESTED_STATE),
        ),
        incompatible=(
            _when(
                Cap.MSI_DEVID,
                "answered 1 on the VM fd, crosvm panics 'unexpected KVM_CAP_MSI_DEVID' when it programs the first "
                "MSI route (hypervisor/src/kvm/mod.rs:519-522, 1337-1339); upstream x86 kernels answer 0",
            ),
        ),
        min_kernel="4.14",
        min_kernel_source=_CROSVM_KERNEL,
        failure=_CROSVM_FAILURE,
        other=(
            "protected VMs need the ChromeOS-only KVM_CAP_X86_PROTECTED_VM",
            "the default sandbox needs minijail, seccomp-bpf and namespaces (--disable-sandbox skips it)",
            "number 236 (KVM_CAP_PRE_FAULT_MEMORY upstream, Linux 6.11) is probed on the VM fd as ChromeOS's "
            "non-coherent-DMA capability: where it answers 1, crosvm first tries KVM_MEM_NON_COHERENT_DMA on "
            "non-coherent regions and retries without it; it never issues KVM_PRE_FAULT_MEMORY "
            "(hypervisor/src/kvm/cap.rs:129, mod.rs:121-137, 362-368)",
        ),
    ),
    VmmEntry(
        vmm="crosvm",
        arch="aarch64",
        releases=(Release("0.1.0", "0.1.x", _at(_CROSVM, "f1e797a68dada35cbafef8d0cfae36bacfaea85e", "src/crosvm/sys/linux.rs:3980-3988"), (Cap.IMMEDIATE_EXIT,)),),
        texts=(_req(Cap.IMMEDIATE_EXIT, "stopping vCPUs (kvm_run.immediate_exit)"),),
        implicit=(
            _req(Cap.USER_MEMORY),
            _req(Cap.DEVICE_CTRL, "the in-kernel VGIC (KVM_CREATE_DEVICE)"),
            _req(Cap.IRQFD),
            _req(Cap.IOEVENTFD),
            _req(Cap.ONE_REG),
            _req(Cap.ARM_PSCI_0_2),
        ),
        conditional=(
            _when(Cap.ARM_EL2, "nested virtualization (also needs VGICv3)"),
        ),
        optional=(
            _opt(Cap.ARM_VM_IPA_SIZE),
            _opt(Cap.ARM_PMU_V3),
            _opt(Cap.ARM_SVE, "no SVE vectors in the guest (a VM that asks for SVE fails to start)"),
            _opt(Cap.ARM_PTRAUTH_ADDRESS),
            _opt(Cap.ARM_PTRAUTH_GENERIC),
            _opt(Cap.ARM_MTE),
            _opt(Cap.GUEST_DEBUG_HW_BPS),
            _opt(Cap.MSI_DEVID, "MSI routes carry no device ID, which the GICv3 ITS needs for MSIs"),
            _opt(Cap.READONLY_MEM),
            _opt(Cap.KVMCLOCK_CTRL),
            _opt(Cap.USER_MEMORY2),
        ),
        min_kernel="4.14",
        min_kernel_source=_CROSVM_KERNEL,
        failure=_CROSVM_FAILURE,
        other=(
            "protected VMs need the ChromeOS-only KVM_CAP_ARM_PROTECTED_VM",
            "number 236 (KVM_CAP_PRE_FAULT_MEMORY upstream) and 239 (KVM_CAP_ARM_WRITABLE_IMP_ID_REGS) are probed "
            "as ChromeOS's non-coherent-DMA capability; KVM_PRE_FAULT_MEMORY is never issued "
            "(hypervisor/src/kvm/cap.rs:129-130, mod.rs:362-368)",
        ),
    ),
    VmmEntry(
        vmm="libkrun",
        arch="x86_64",
        # The same list in every v1.x tag (@v1.0.0 vstate.rs:384-385).
        releases=(Release("v1.0.0", "v1.19.x", _at(_LIBKRUN, "v1.19.0", "src/vmm/src/linux/vstate.rs:455-456"),
                          (Cap.IRQCHIP, Cap.IOEVENTFD, Cap.IRQFD, Cap.USER_MEMORY, Cap.SET_TSS_ADDR)),),
        implicit=(
            _req(
                Cap.PIT2,
                "the in-kernel PIT, created with KVM_CREATE_PIT2 unless the split irqchip is asked for "
                "(@v1.19.0 src/devices/src/legacy/kvmioapic.rs:17-25, src/vmm/src/builder.rs:811-818)",
            ),
            _req(
                Cap.EXT_CPUID,
                "the guest CPUID table: KVM_GET_SUPPORTED_CPUID and KVM_SET_CPUID2 on every start "
                "(@v1.19.0 src/vmm/src/linux/vstate.rs:520, 1198-1200)",
            ),
        ),
        conditional=(
            _when(Cap.SPLIT_IRQCHIP, "krun_split_irqchip(ctx, true), or a TDX build"),
            _when(Cap.GUEST_MEMFD, "TEE builds (SEV, TDX)"),
            _when(Cap.EXIT_HYPERCALL, "TEE builds"),
            _when(Cap.X86_APIC_BUS_CYCLES_NS, "a TDX build"),
        ),
        optional=(_opt(Cap.NR_MEMSLOTS),),
        failure=_LIBKRUN_FAILURE,
        other=("opening /dev/kvm panics (expect) rather than failing", "libkrunfw, the bundled guest kernel"),
    ),
    VmmEntry(
        vmm="libkrun",
        arch="aarch64",
        releases=(Release("v1.0.0", "v1.19.x", _at(_LIBKRUN, "v1.19.0", "src/vmm/src/linux/vstate.rs:458-459"),
                          (Cap.IRQCHIP, Cap.IOEVENTFD, Cap.IRQFD, Cap.USER_MEMORY, Cap.ARM_PSCI_0_2)),),
        implicit=(
            _req(
                Cap.DEVICE_CTRL,
                "the in-kernel GIC: a VGICv3 with KVM_CREATE_DEVICE, else a VGICv2, whose failure panics "
                "(@v1.19.0 src/vmm/src/builder.rs:868-882, src/devices/src/legacy/kvmgicv3.rs:37-42)",
            ),
        ),
        optional=(
            _opt(Cap.NR_MEMSLOTS),
            _opt(Cap.ARM_PTRAUTH_ADDRESS),
            _opt(Cap.ARM_PTRAUTH_GENERIC),
        ),
        failure=_LIBKRUN_FAILURE,
        other=("opening /dev/kvm panics (expect) rather than failing", "libkrunfw, the bundled guest kernel"),
    ),
    VmmEntry(
        vmm="libkrun",
        arch="riscv64",
        # The riscv64 build arrived in v1.15.0.
        releases=(Release("v1.15.0", "v1.19.x", _at(_LIBKRUN, "v1.19.0", "src/vmm/src/linux/vstate.rs:461-462"),
                          (Cap.IRQCHIP, Cap.IOEVENTFD, Cap.IRQFD, Cap.USER_MEMORY)),),
        implicit=(
            _req(
                Cap.DEVICE_CTRL,
                "the in-kernel AIA interrupt controller (KVM_CREATE_DEVICE, unwrap: a failure panics) "
                "(@v1.19.0 src/devices/src/legacy/kvmaia.rs:24-29, src/vmm/src/builder.rs:938-940)",
            ),
        ),
        optional=(_opt(Cap.NR_MEMSLOTS),),
        failure=_LIBKRUN_FAILURE,
        other=("opening /dev/kvm panics (expect) rather than failing", "libkrunfw, the bundled guest kernel"),
    ),
    VmmEntry(
        vmm="dragonball",
        arch="x86_64",
        releases=(
            Release("3.0.0", "3.1.x", _at(_KATA, "3.0.0", "src/dragonball/src/kvm_context.rs:39-44"),
                    (Cap.IRQCHIP, Cap.IRQFD, Cap.IOEVENTFD, Cap.USER_MEMORY, Cap.SET_TSS_ADDR)),
            Release("3.2.0", "4.1.x", _at(_KATA, "3.2.0", "src/dragonball/src/kvm_context.rs:39-44"),
                    (Cap.IRQCHIP, Cap.IRQFD, Cap.IOEVENTFD, Cap.USER_MEMORY, Cap.SET_TSS_ADDR)),
        ),
        implicit=(
            _req(
                Cap.PIT2,
                "the in-kernel PIT, created with KVM_CREATE_PIT2 unless the split irqchip is on (TDX only) "
                "(@4.1.0 src/dragonball/src/vm/x86_64.rs:353-371)",
            ),
        ),
        conditional=(
            _when(Cap.SPLIT_IRQCHIP, "TDX guests (the only ones with the split irqchip)"),
            _when(Cap.EXIT_HYPERCALL, "TDX guests"),
        ),
        optional=(
            _opt(Cap.IMMEDIATE_EXIT),
            _opt(Cap.MAX_VCPUS),
            _opt(Cap.NR_MEMSLOTS),
            _opt(Cap.TSC_CONTROL),
            _opt(
                Cap.IOEVENTFD_NO_LENGTH,
                "virtio-mmio v2 devices lose per-queue notification (asked only when a device wants it) "
                "(@4.1.0 src/dragonball/crates/dbs_virtio_devices/src/mmio/mmio_v2.rs:98-105)",
                since="3.2.0",
            ),
        ),
        failure=_DRAGONBALL_FAILURE,
        other=("the supported guest MSR list must be readable", "max_vcpu_count must not exceed KVM's vCPU limit"),
    ),
    VmmEntry(
        vmm="dragonball",
        arch="aarch64",
        releases=(
            Release("3.0.0", "3.1.x", _at(_KATA, "3.0.0", "src/dragonball/src/kvm_context.rs:39-42"),
                    (Cap.IRQCHIP, Cap.IRQFD, Cap.IOEVENTFD, Cap.USER_MEMORY)),
            Release("3.2.0", "4.1.x", _at(_KATA, "3.2.0", "src/dragonball/src/kvm_context.rs:39-42"),
                    (Cap.IRQCHIP, Cap.IRQFD, Cap.IOEVENTFD, Cap.USER_MEMORY)),
        ),
        implicit=(
            _req(
                Cap.DEVICE_CTRL,
                "the in-kernel GIC: a GICv3 with KVM_CREATE_DEVICE, else a GICv2 "
                "(@4.1.0 src/dragonball/crates/dbs_arch/src/aarch64/gic/mod.rs:110-120, 202-204)",
            ),
        ),
        optional=(
            _opt(Cap.IMMEDIATE_EXIT),
            _opt(Cap.MAX_VCPUS),
            _opt(Cap.NR_MEMSLOTS),
            _opt(
                Cap.IOEVENTFD_NO_LENGTH,
                "virtio-mmio v2 devices lose per-queue notification (asked only when a device wants it)",
                since="3.2.0",
            ),
        ),
        failure=_DRAGONBALL_FAILURE,
        other=("max_vcpu_count must not exceed KVM's vCPU limit",),
    ),
    VmmEntry(
        vmm="gvisor-kvm",
        arch="x86_64",
        # The same logic at release-20221219.0 (machine.go:248-255, machine_amd64.go:484-488).
        releases=(
            Release(
                "release-20221219.0", "release-20260817.0",
                _at(_GVISOR, "release-20260817.0", "pkg/sentry/platform/kvm/machine.go:298-306",
                    "pkg/sentry/platform/kvm/machine_amd64.go:549-555"),
                (),
            ),
        ),
        implicit=(
            _req(Cap.USER_MEMORY),
            _req(Cap.SET_TSS_ADDR),
            _req(Cap.EXT_CPUID),
            _req(
                Cap.NR_MEMSLOTS,
                "the memory-slot table: " + _GVISOR_ANSWER + " (machine.go:298-306, bluepill_fault.go:95)",
            ),
            _req(
                Cap.MAX_VCPUS,
                "the vCPU table: " + _GVISOR_ANSWER + " (machine_amd64.go:549-555, pkg/ring0/kernel_amd64.go:41-43)",
            ),
        ),
        optional=(_opt(Cap.TSC_CONTROL),),
        api_version=None,
        min_kernel="5.6",
        min_kernel_source=_GVISOR_KERNEL,
        failure=_GVISOR_FAILURE,
        other=("4K host pages", "bare metal recommended; nested virtualization works but is discouraged"),
    ),
    VmmEntry(
        vmm="gvisor-kvm",
        arch="aarch64",
        releases=(
            Release(
                "release-20221219.0", "release-20260817.0",
                _at(_GVISOR, "release-20260817.0", "pkg/sentry/platform/kvm/machine.go:298-306",
                    "pkg/sentry/platform/kvm/machine_arm64.go:192-207"),
                (),
            ),
        ),
        implicit=(
            _req(Cap.USER_MEMORY),
            _req(Cap.ONE_REG),
            _req(
                Cap.NR_MEMSLOTS,
                "the memory-slot table: " + _GVISOR_ANSWER + " (machine.go:298-306, bluepill_fault.go:95)",
            ),
            _req(
                Cap.MAX_VCPUS,
                "the vCPU count: min(CPUs, answer), so 0 leaves no vCPU and the sentry waits for one forever "
                "(inferred from machine_arm64.go:192-207, not run)",
            ),
        ),
        optional=(_opt(Cap.ARM_VM_IPA_SIZE),),
        api_version=None,
        min_kernel="5.6",
        min_kernel_source=_GVISOR_KERNEL,
        failure=_GVISOR_FAILURE,
        other=("4K host pages", "a 48-bit VA host kernel (CONFIG_ARM64_VA_BITS_48)"),
    ),
)


# --- What a KVM backend demands of a VMM's guests, per VMM (issue #14) ---------------------------
#
# Capabilities cannot show it: a backend may answer every KVM_CHECK_EXTENSION a VMM asks and still
# run only some guests. Keyed by VMM id, separate from ENTRIES (which are per VMM and
# architecture), and read by ``profiles``: a constraint whose ``backend`` is the host's KVM module
# (``HostFacts.kvm_backend``) applies. ``runs=True``: ready, on the condition stated (``check
# --strict`` counts it as not ready); ``runs=False``: the VMM does not run on that backend.

_PVM_SPEC = "virt-pvm/linux@2b24d5b8fddd Documentation/virt/kvm/x86/pvm-spec.rst ('Underlying states', 'PVM booting sequence')"
_PVM_COVER = (
    "[RFC PATCH 00/73] KVM: x86/PVM: Introduce a new hypervisor, 'Design' "
    "(https://lore.kernel.org/lkml/20240226143630.33643-1-jiangshanlai@gmail.com/)"
)
_PVM_EMULATION = (
    "[RFC PATCH 49/73] KVM: x86/PVM: Implement emulation for non-PVM mode "
    "(https://lore.kernel.org/lkml/20240226143630.33643-50-jiangshanlai@gmail.com/)"
)
_PVM_GUEST_CONFIG = "virt-pvm/misc@15d2f0467f49 pvm-guest-6.12.33.config:350-351,464 (KVM_GUEST, PVM_GUEST, X86_PIE)"
_PVM_KATA = "virt-pvm/misc@15d2f0467f49 pvm-get-started-with-kata.md"
_PVM_MEASURED = f"measured on a {PVM} host, 2026-12-01 (docs/research/pvm.md §1-2)"


@dataclass(frozen=True)
class BackendConstraint:
    """What running one VMM on one KVM backend takes (``runs``), or that it does not run there.

    ``backend`` is the KVM module behind ``/dev/kvm`` as the host facts name it (``kvm_pvm``);
    ``short`` the condition in a few words, ``text`` in full (or, when it does not run, what
    happens); ``sources`` the evidence; ``instead`` what to use when it does not run.

    Example:
        >>> from kvmprobe.presets import load_preset
        >>> from kvmprobe.profiles import check_vmm
        >>> (blocked,) = check_vmm("gvisor-kvm", load_preset("pvm-6.18")).blocked_by
        >>> blocked.backend, blocked.runs, blocked.instead
        ('kvm_pvm', False, 'runsc --platform=systrap (or ptrace), which needs no KVM')
        >>> [c.short for c in check_vmm("firecracker", load_preset("pvm-6.18")).conditions]
        ['a guest kernel built for PVM (CONFIG_PVM_GUEST)', "a guest kernel with the host's PVM ABI"]
    """

    backend: str
    runs: bool
    short: str
    text: str
    sources: Tuple[str, ...]
    instead: str = ""


_PVM_GUEST_KERNEL = BackendConstraint(
    backend=PVM,
    runs=True,
    short="a guest kernel built for PVM (CONFIG_PVM_GUEST)",
    text="the guest kernel must be built for PVM (CONFIG_PVM_GUEST: an x86-64 PIE kernel running at hardware "
    "ring 3, from the same PVM tree as the host); firmware, real-mode, 32-bit and other 64-bit guest code only "
    "runs in KVM's instruction emulator (about 1 µs an instruction), so an unmodified guest kernel looks hung "
    "or triple-faults instead of failing with an error",
    sources=(_PVM_SPEC, _PVM_COVER, _PVM_EMULATION, _PVM_GUEST_CONFIG, _PVM_KATA + ":142 ('a customized guest kernel')"),
)

BACKEND_CONSTRAINTS: Dict[str, Tuple[BackendConstraint, ...]] = {
    "firecracker": (
        _PVM_GUEST_KERNEL,
        BackendConstraint(
            backend=PVM,
            runs=True,
            short="a guest kernel with the host's PVM ABI",
            text="reported working with PVM guest kernels whose PVM ABI matches the host's "
            "(AgentENV's Firecracker microVMs with a virt-pvm pvm-612 6.12.33 guest)",
            sources=(
                "kvcache-ai/AgentENV@30340ae353d1 docs/src/deployment/pvm.md ('Host and Guest Kernel Compatibility')",
                "loopholelabs/linux-pvm-ci@be4a15de README.md",
            ),
        ),
    ),
    "cloud-hypervisor": (
        _PVM_GUEST_KERNEL,
        BackendConstraint(
            backend=PVM,
            runs=True,
            short="Cloud Hypervisor v35.0 or later",
            text="Cloud Hypervisor v35.0 or later (older ones, as Kata packages them, cannot run PVM guests: "
            "virtio-vsock, cloud-hypervisor#5691); guest physical addresses below 44 bits (max_phys_bits=43) "
            "with a virtio-pmem root file system",
            sources=(_PVM_KATA + ":217 ('we should use version 35.0 or higher of Cloud Hypervisor')",
                     "virt-pvm/linux#1 (PVM guest kernel start failed with virtio-pmem rootfs)"),  # fmt: skip
        ),
    ),
    "qemu": (
        _PVM_GUEST_KERNEL,
        BackendConstraint(
            backend=PVM,
            runs=True,
            short="qboot firmware, not SeaBIOS",
            text="qboot as the firmware, not SeaBIOS (the PVM guide supports only qboot; SeaBIOS runs entirely "
            "in KVM's emulator: 5.6 million emulated instructions and no native guest entry to reach 'No "
            "bootable device.')",
            sources=(_PVM_KATA + ":209 ('We only support using qboot as the BIOS for QEMU instead of SeaBIOS')", _PVM_MEASURED),
        ),
    ),
    "crosvm": (_PVM_GUEST_KERNEL,),
    "libkrun": (_PVM_GUEST_KERNEL,),
    "dragonball": (
        _PVM_GUEST_KERNEL,
        BackendConstraint(
            backend=PVM,
            runs=True,
            short="not Kata's packaged Dragonball",
            text="not the Dragonball Kata packages: it cannot run PVM guests there (virtio-vsock, "
            "cloud-hypervisor#5691)",
            sources=(_PVM_KATA + ":217 ('the rust vmm (including Dragonball, ...) installed in the Kata Container package "
                     "cannot support PVM guest')",),
        ),
    ),
    "gvisor-kvm": (
        BackendConstraint(
            backend=PVM,
            runs=False,
            short="gVisor's KVM platform does not run on kvm_pvm (it hangs in KVM_RUN)",
            text="gVisor's KVM platform does not run on kvm_pvm: its sentry's ring-0 code is not a PVM guest, so "
            "KVM only emulates it, and its page-fault handler faults again on its per-CPU GS load, forever, "
            "inside KVM_RUN ('runsc --platform=kvm --network=none do /bin/true' never finishes: killed after "
            "20 s, three times; perf counted 1,065,861 emulated instructions and 0 guest entries in 3 s); its "
            "ring 0 also needs its own IDT, SWAPGS and SYSRET, which a PVM guest may not use",
            sources=(
                _PVM_MEASURED,
                "google/gvisor@299835ebdf5a pkg/ring0/entry_amd64.s (exception -> kernel: MOVQ ENTRY_CPU_SELF(GS), AX)",
                _PVM_SPEC.replace("('Underlying states', 'PVM booting sequence')",
                                  "('X86 Instructions with changed behavior')"),  # fmt: skip
            ),
            instead="runsc --platform=systrap (or ptrace), which needs no KVM",
        ),
    ),
}
