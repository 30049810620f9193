"""What each KVM-based VMM needs from the host's KVM, per architecture: pure data.

Imports only ``caps``. Capabilities are ``Cap`` members, so a typo fails mypy and import;
their numbers and first Linux releases come from the ``Cap`` table, never from here.
``profiles`` turns these entries into :class:`~kvmprobe.profiles.Profile` objects and checks
hosts against them.

Kinds of requirement, as the VMMs' own sources treat a capability:

* ``required``: probed with ``KVM_CHECK_EXTENSION`` before the VM is built; the VMM refuses
  to start (or panics) when the answer is 0.
* ``implicit``: never probed, but the ioctl it stands for is issued unconditionally in the
  default configuration, so the VMM fails there instead.
* ``unchecked``: the VMM says it needs it but deliberately does not probe it, because some
  kernels implement it without advertising the capability. A 0 answer proves nothing.
* ``conditional``: required only for a feature or configuration (the text says which).
* ``optional``: probed; when missing, a feature degrades (the text says how).

Every entry cites where its list comes from: repository, commit and file:lines, taken from
public snapshots (``vmm-requirements.json`` in the project's reference notes). Documented
minimum kernels are the VMM's support policy, not something it checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from .caps import Cap

__all__ = ["BACKEND_CONSTRAINTS", "ENTRIES", "BackendConstraint", "Need", "Source", "VmmEntry"]


@dataclass(frozen=True)
class Need:
    """One capability with what it is needed for, what breaks without it, or when it is needed."""

    cap: Cap
    text: str = ""


@dataclass(frozen=True)
class Source:
    """Where a requirement list comes from: ``repo`` at ``commit`` (snapshot ``date``), ``files``."""

    repo: str
    commit: str
    date: str
    files: Tuple[str, ...]

    def cite(self) -> str:
        """``owner/repo@abcdef123456 path/file.rs:10-20``."""
        return f"{self.repo}@{self.commit[:12]} " + " + ".join(self.files)


@dataclass(frozen=True)
class VmmEntry:
    """The host requirements of one VMM on one architecture."""

    vmm: str
    arch: str
    display_name: str
    source: Source
    required: Tuple[Need, ...]
    implicit: Tuple[Need, ...] = ()
    unchecked: Tuple[Need, ...] = ()
    conditional: Tuple[Need, ...] = ()
    optional: Tuple[Need, ...] = ()
    api_version: Optional[int] = 12
    min_kernel: Optional[str] = None
    min_kernel_source: str = ""
    failure: str = ""
    other: Tuple[str, ...] = ()


# What a capability gives a VMM (KVM's api.rst), used when an entry gives no text of its own.
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

# What degrades when an optional capability is missing, used when an entry gives no text.
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


def _req(cap: Cap, text: str = "") -> Need:
    return Need(cap, text or NEEDED_FOR.get(cap, ""))


def _opt(cap: Cap, text: str = "") -> Need:
    return Need(cap, text or IF_MISSING.get(cap, ""))


def _when(cap: Cap, condition: str) -> Need:
    return Need(cap, condition)


_FIRECRACKER = Source("firecracker-microvm/firecracker", "81b38b9dad6056d7a48073e95ac5a9aed51cb2ab", "2026-08-21", ())
_CLOUD_HYPERVISOR = Source("cloud-hypervisor/cloud-hypervisor", "ae44c2971c83dd2b1bd704fa81102ec0dec4e7d4", "2026-08-22", ())
_QEMU = Source("qemu/qemu", "ece408818d27f745ef1b05fb3cc99a1e7a5bf580", "2026-02-13", ())
_CROSVM = Source("google/crosvm", "f1e797a68dada35cbafef8d0cfae36bacfaea85e", "2026-08-21", ())
_LIBKRUN = Source("containers/libkrun", "6ed74facc26d857e57a6a952635eb2890d87b99c", "2026-06-12", ())
_KATA = Source("kata-containers/kata-containers", "7c6ba40c54ea29b459b4997cff948caaba4e658b", "2026-08-22", ())
_GVISOR = Source("google/gvisor", "3c5eee17dc45659fb86843531074f38e78e0cc35", "2026-08-21", ())


def _at(source: Source, *files: str) -> Source:
    return Source(source.repo, source.commit, source.date, files)


_FC_FAILURE = "refuses to start: KvmError::Capabilities(<cap number>), the first missing one"
_FC_KERNEL = "docs/kernel-policy.md: supported hosts 5.10, 6.1 and 6.18 (4K pages only)"
_CH_FAILURE = "panics: unwrap() on CheckExtensions(Capability missing: <Cap>) in Vm::create_hypervisor_vm"
_CH_KERNEL = "README.md:84-87 and release-notes.md v34.0: minimum supported host kernel 5.13"
_QEMU_FAILURE = "exits: 'kvm does not support KVM_CAP_<NAME>' and 'Please upgrade to at least kernel 4.5.'"
_QEMU_KERNEL = "docs/system/target-i386.rst:39-40: the default KVM CPU features need Linux v4.5+"
_CROSVM_FAILURE = "refuses: 'missing required hypervisor capability ImmediateExit'; other caps fail at the ioctl"
_CROSVM_KERNEL = "docs/book/src/running_crosvm/requirements.md:5: Linux 4.14 or newer with KVM"
_LIBKRUN_FAILURE = "Error::KvmCap(<Cap>), the first missing one"
_DRAGONBALL_FAILURE = "an error from KvmContext::check_cap"
_GVISOR_FAILURE = "no capability check: the ioctl fails"
_GVISOR_KERNEL = "g3doc/user_guide/install.md:5: gVisor requires Linux 5.6+"

ENTRIES: Tuple[VmmEntry, ...] = (
    VmmEntry(
        vmm="firecracker",
        arch="x86_64",
        display_name="Firecracker",
        source=_at(_FIRECRACKER, "src/vmm/src/arch/x86_64/kvm.rs:31-46"),
        required=(
            _req(Cap.IRQCHIP),
            _req(Cap.IOEVENTFD),
            _req(Cap.IRQFD),
            _req(Cap.USER_MEMORY),
            _req(Cap.SET_TSS_ADDR),
            _req(Cap.PIT2),
            _req(Cap.PIT_STATE2, "saving and restoring the PIT in snapshots (KVM_GET/SET_PIT2)"),
            _req(Cap.ADJUST_CLOCK),
            _req(Cap.DEBUGREGS),
            _req(Cap.MP_STATE),
            _req(Cap.VCPU_EVENTS),
            _req(Cap.XCRS, "saving and restoring XCR0 in snapshots (KVM_GET/SET_XCRS)"),
            _req(Cap.XSAVE),
            _req(Cap.EXT_CPUID),
        ),
        conditional=(
            _when(Cap.TSC_CONTROL, "restoring a snapshot on a host whose TSC frequency differs (KVM_SET_TSC_KHZ)"),
        ),
        optional=(
            _opt(Cap.XSAVE2),
            _opt(Cap.MSI_DEVID),
            _opt(Cap.NR_MEMSLOTS),
            _opt(Cap.GET_TSC_KHZ, "snapshots carry no TSC frequency, so a restore cannot scale the guest TSC"),
        ),
        min_kernel="5.10",
        min_kernel_source=_FC_KERNEL,
        failure=_FC_FAILURE,
        other=(
            "CPU templates may add capabilities to the required list, or remove them (kvm_capabilities)",
            "host CPU vendor GenuineIntel or AuthenticAMD",
            "KVM_GET_SUPPORTED_CPUID and KVM_GET_MSR_INDEX_LIST must succeed",
        ),
    ),
    VmmEntry(
        vmm="firecracker",
        arch="aarch64",
        display_name="Firecracker",
        source=_at(_FIRECRACKER, "src/vmm/src/arch/aarch64/kvm.rs:30-38"),
        required=(
            _req(Cap.IOEVENTFD),
            _req(Cap.IRQFD),
            _req(Cap.USER_MEMORY),
            _req(Cap.ARM_PSCI_0_2),
            _req(Cap.DEVICE_CTRL),
            _req(Cap.MP_STATE),
            _req(Cap.ONE_REG),
        ),
        optional=(
            _opt(Cap.COUNTER_OFFSET),
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
        display_name="Cloud Hypervisor",
        source=_at(_CLOUD_HYPERVISOR, "hypervisor/src/kvm/x86_64/mod.rs:52-68"),
        required=(
            _req(Cap.ADJUST_CLOCK),
            _req(Cap.EXT_CPUID),
            _req(Cap.GET_TSC_KHZ),
            _req(Cap.IMMEDIATE_EXIT, "completing PIO and MMIO exits before pausing vCPUs (kvm_run.immediate_exit)"),
            _req(Cap.IOEVENTFD),
            _req(Cap.IRQCHIP),
            _req(Cap.IRQFD),
            _req(Cap.IRQ_ROUTING),
            _req(Cap.MP_STATE),
            _req(Cap.SET_IDENTITY_MAP_ADDR),
            _req(Cap.SET_TSS_ADDR),
            _req(Cap.SPLIT_IRQCHIP, "its split irqchip, enabled unconditionally at VM creation"),
            _req(Cap.TSC_DEADLINE_TIMER),
            _req(Cap.USER_MEMORY),
            _req(Cap.USER_NMI),
            _req(Cap.VCPU_EVENTS),
            _req(Cap.XSAVE),
        ),
        unchecked=(
            _req(Cap.DEVICE_CTRL),
            _req(Cap.ENABLE_CAP),
            _req(Cap.SET_GUEST_DEBUG),
        ),
        conditional=(
            _when(Cap.X2APIC_API, "a guest with an APIC ID above 254 (panics without it)"),
            _when(Cap.HYPERV_SYNIC, "--cpus kvm_hyperv=on"),
            _when(Cap.MAX_VCPUS, "more vCPUs than KVM_CAP_NR_VCPUS allows"),
            _when(Cap.GUEST_MEMFD, "an SEV-SNP guest (sev_snp build)"),
            _when(Cap.EXIT_HYPERCALL, "an SEV-SNP guest (sev_snp build; also needs /dev/sev)"),
        ),
        optional=(
            _opt(Cap.XSAVE2),
            _opt(Cap.XCRS, "XCR0 is not saved or restored (CPUs without XSAVE are supported this way)"),
            _opt(Cap.MSI_DEVID),
            _opt(Cap.NR_VCPUS, "the vCPU limit falls back to kvm-ioctls' default of 4 if KVM_CAP_MAX_VCPUS is 0 too"),
            _opt(Cap.NR_MEMSLOTS),
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
        display_name="Cloud Hypervisor",
        source=_at(_CLOUD_HYPERVISOR, "hypervisor/src/kvm/aarch64/mod.rs:104-111"),
        required=(
            _req(Cap.IMMEDIATE_EXIT, "completing PIO and MMIO exits before pausing vCPUs (kvm_run.immediate_exit)"),
            _req(Cap.IOEVENTFD),
            _req(Cap.IRQCHIP),
            _req(Cap.IRQFD),
            _req(Cap.IRQ_ROUTING),
            _req(Cap.MP_STATE),
            _req(Cap.ONE_REG),
            _req(Cap.USER_MEMORY),
        ),
        unchecked=(_req(Cap.SET_GUEST_DEBUG),),
        optional=(
            _opt(Cap.ARM_VM_IPA_SIZE),
            _opt(Cap.ARM_PMU_V3),
            _opt(Cap.ARM_SVE),
            _opt(Cap.COUNTER_OFFSET),
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
        display_name="Cloud Hypervisor",
        source=_at(_CLOUD_HYPERVISOR, "hypervisor/src/kvm/riscv64/mod.rs:102-119"),
        required=(
            _req(Cap.IMMEDIATE_EXIT, "completing PIO and MMIO exits before pausing vCPUs (kvm_run.immediate_exit)"),
            _req(Cap.IOEVENTFD),
            _req(Cap.IRQCHIP),
            _req(Cap.IRQFD),
            _req(Cap.IRQ_ROUTING),
            _req(Cap.MP_STATE),
            _req(Cap.ONE_REG),
            _req(Cap.USER_MEMORY),
        ),
        min_kernel="5.13",
        min_kernel_source=_CH_KERNEL,
        failure=_CH_FAILURE,
    ),
    VmmEntry(
        vmm="qemu",
        arch="x86_64",
        display_name="QEMU",
        source=_at(_QEMU, "accel/kvm/kvm-all.c:113-121", "target/i386/kvm/kvm.c:116-130"),
        required=(
            _req(Cap.USER_MEMORY),
            _req(Cap.DESTROY_MEMORY_REGION_WORKS),
            _req(Cap.JOIN_MEMORY_REGIONS_WORKS),
            _req(Cap.INTERNAL_ERROR_DATA),
            _req(Cap.IOEVENTFD),
            _req(Cap.IOEVENTFD_ANY_LENGTH),
            _req(Cap.SET_TSS_ADDR),
            _req(Cap.EXT_CPUID),
            _req(Cap.MP_STATE),
            _req(Cap.SIGNAL_MSI),
            _req(Cap.IRQ_ROUTING),
            _req(Cap.DEBUGREGS),
            _req(Cap.XSAVE),
            _req(Cap.VCPU_EVENTS),
            _req(Cap.X86_ROBUST_SINGLESTEP),
            _req(Cap.MCE),
            _req(Cap.ADJUST_CLOCK),
            _req(Cap.SET_IDENTITY_MAP_ADDR),
        ),
        conditional=(
            _when(Cap.IRQFD, "the in-kernel irqchip (the default when KVM_CAP_IRQCHIP is there)"),
            _when(Cap.PIT2, "the in-kernel PIT (the default with the kernel irqchip on pc/q35)"),
            _when(Cap.PIT_STATE2, "the in-kernel PIT (the default with the kernel irqchip on pc/q35)"),
            _when(Cap.SPLIT_IRQCHIP, "kernel-irqchip=split, or the microvm machine"),
            _when(Cap.MAX_VCPUS, "-smp above the KVM_CAP_MAX_VCPUS answer"),
            _when(Cap.X2APIC_API, "APIC IDs of 255 and up (large guests)"),
            _when(Cap.X86_DISABLE_EXITS, "-overcommit cpu-pm=on"),
            _when(Cap.X86_BUS_LOCK_EXIT, "bus-lock-ratelimit above 0"),
            _when(Cap.HYPERV, "any hv-* enlightenment"),
        ),
        optional=(
            _opt(Cap.IRQCHIP, "the interrupt controllers are emulated in QEMU (slower)"),
            _opt(Cap.IMMEDIATE_EXIT, "QEMU kicks vCPUs with signals instead"),
            _opt(Cap.NR_MEMSLOTS),
            _opt(Cap.NR_VCPUS),
            _opt(Cap.MULTI_ADDRESS_SPACE, "no separate SMM address space, so no System Management Mode"),
            _opt(Cap.COALESCED_MMIO, "every MMIO write to some devices exits to QEMU (slower)"),
            _opt(Cap.COALESCED_PIO, "every port write to some devices exits to QEMU (slower)"),
            _opt(Cap.DIRTY_LOG_RING, "dirty-page tracking uses the bitmap instead of the ring"),
            _opt(Cap.MANUAL_DIRTY_LOG_PROTECT2, "dirty bitmaps are cleared all at once (slower live migration)"),
            _opt(Cap.NESTED_STATE),
            _opt(Cap.IRQ_INJECT_STATUS, "interrupt injection reports no delivery status"),
            _opt(Cap.READONLY_MEM),
            _opt(Cap.IRQFD_RESAMPLE, "level-triggered device interrupts go through QEMU (slower VFIO INTx)"),
            _opt(Cap.VM_ATTRIBUTES, "no VM-wide device attributes (KVM_HAS_DEVICE_ATTR on the VM fd)"),
            _opt(Cap.SET_GUEST_DEBUG, "no single-step or breakpoints for the gdbstub"),
            _opt(Cap.MEMORY_ATTRIBUTES, "no private memory for confidential guests"),
            _opt(Cap.GUEST_MEMFD, "no guest_memfd, so no confidential guests"),
            _opt(Cap.USER_MEMORY2),
            _opt(Cap.PRE_FAULT_MEMORY),
            _opt(Cap.SYNC_MMU, "RAM discard is disabled (no memory ballooning)"),
            _opt(Cap.BINARY_STATS_FD, "no KVM statistics in query-stats"),
            _opt(Cap.XCRS, "XCR0 is not migrated"),
            _opt(Cap.SREGS2, "PAE page-directory pointers are not migrated (KVM_GET_SREGS is used)"),
            _opt(Cap.XSAVE2),
            _opt(Cap.HYPERV_VP_INDEX, "no hv-vpindex enlightenment"),
            _opt(Cap.EXCEPTION_PAYLOAD, "pending exception payloads are not migrated"),
            _opt(Cap.X86_TRIPLE_FAULT_EVENT, "a pending triple fault is not migrated"),
            _opt(Cap.X86_NOTIFY_VMEXIT, "no notify VM exits (guarding against guests that stall the CPU)"),
            _opt(Cap.X86_USER_SPACE_MSR, "MSR accesses KVM rejects cannot be handled by QEMU"),
            _opt(Cap.PMU_CAPABILITY, "the vPMU cannot be switched off in KVM (-cpu pmu=off)"),
            _opt(Cap.GET_TSC_KHZ),
            _opt(Cap.TSC_CONTROL, "the guest TSC frequency cannot be set (tsc-frequency=)"),
            _opt(Cap.TSC_DEADLINE_TIMER),
            _opt(Cap.X86_SMM, "no System Management Mode (OVMF with SMM for secure boot)"),
            _opt(Cap.GET_MSR_FEATURES, "feature MSRs (VMX capabilities, ARCH_CAPABILITIES) are not offered to guests"),
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
        display_name="QEMU",
        source=_at(_QEMU, "accel/kvm/kvm-all.c:113-121", "target/arm/kvm.c:46-49"),
        required=(
            _req(Cap.USER_MEMORY),
            _req(Cap.DESTROY_MEMORY_REGION_WORKS),
            _req(Cap.JOIN_MEMORY_REGIONS_WORKS),
            _req(Cap.INTERNAL_ERROR_DATA),
            _req(Cap.IOEVENTFD),
            _req(Cap.IOEVENTFD_ANY_LENGTH),
            _req(Cap.DEVICE_CTRL),
        ),
        conditional=(_when(Cap.IRQFD, "the in-kernel irqchip (the default)"),),
        optional=(
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
            _opt(Cap.ARM_MTE),
            _opt(Cap.ARM_EL2),
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
        display_name="crosvm",
        source=_at(_CROSVM, "src/crosvm/sys/linux.rs:3980-3988"),
        required=(_req(Cap.IMMEDIATE_EXIT, "stopping vCPUs (kvm_run.immediate_exit)"),),
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
            _opt(Cap.MSI_DEVID),
            _opt(Cap.READONLY_MEM),
            _opt(Cap.TSC_DEADLINE_TIMER),
            _opt(Cap.XSAVE2),
            _opt(Cap.NESTED_STATE),
            _opt(Cap.PRE_FAULT_MEMORY),
        ),
        min_kernel="4.14",
        min_kernel_source=_CROSVM_KERNEL,
        failure=_CROSVM_FAILURE,
        other=(
            "protected VMs need the ChromeOS-only KVM_CAP_X86_PROTECTED_VM",
            "the default sandbox needs minijail, seccomp-bpf and namespaces (--disable-sandbox skips it)",
        ),
    ),
    VmmEntry(
        vmm="crosvm",
        arch="aarch64",
        display_name="crosvm",
        source=_at(_CROSVM, "src/crosvm/sys/linux.rs:3980-3988"),
        required=(_req(Cap.IMMEDIATE_EXIT, "stopping vCPUs (kvm_run.immediate_exit)"),),
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
        other=("protected VMs need the ChromeOS-only KVM_CAP_ARM_PROTECTED_VM",),
    ),
    VmmEntry(
        vmm="libkrun",
        arch="x86_64",
        display_name="libkrun",
        source=_at(_LIBKRUN, "src/vmm/src/linux/vstate.rs:456-457"),
        required=(
            _req(Cap.IRQCHIP),
            _req(Cap.IOEVENTFD),
            _req(Cap.IRQFD),
            _req(Cap.USER_MEMORY),
            _req(Cap.SET_TSS_ADDR),
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
        display_name="libkrun",
        source=_at(_LIBKRUN, "src/vmm/src/linux/vstate.rs:459-460"),
        required=(
            _req(Cap.IRQCHIP),
            _req(Cap.IOEVENTFD),
            _req(Cap.IRQFD),
            _req(Cap.USER_MEMORY),
            _req(Cap.ARM_PSCI_0_2),
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
        vmm="dragonball",
        arch="x86_64",
        display_name="Dragonball",
        source=_at(_KATA, "src/dragonball/src/kvm_context.rs:39-44"),
        required=(
            _req(Cap.IRQCHIP),
            _req(Cap.IRQFD),
            _req(Cap.IOEVENTFD),
            _req(Cap.USER_MEMORY),
            _req(Cap.SET_TSS_ADDR),
        ),
        conditional=(
            _when(Cap.SPLIT_IRQCHIP, "a configured split irqchip"),
            _when(Cap.EXIT_HYPERCALL, "TDX guests"),
        ),
        optional=(
            _opt(Cap.IMMEDIATE_EXIT),
            _opt(Cap.MAX_VCPUS),
            _opt(Cap.NR_MEMSLOTS),
            _opt(Cap.TSC_CONTROL),
        ),
        failure=_DRAGONBALL_FAILURE,
        other=("the supported guest MSR list must be readable", "max_vcpu_count must not exceed KVM's vCPU limit"),
    ),
    VmmEntry(
        vmm="dragonball",
        arch="aarch64",
        display_name="Dragonball",
        source=_at(_KATA, "src/dragonball/src/kvm_context.rs:39-42"),
        required=(
            _req(Cap.IRQCHIP),
            _req(Cap.IRQFD),
            _req(Cap.IOEVENTFD),
            _req(Cap.USER_MEMORY),
        ),
        optional=(
            _opt(Cap.IMMEDIATE_EXIT),
            _opt(Cap.MAX_VCPUS),
            _opt(Cap.NR_MEMSLOTS),
        ),
        failure=_DRAGONBALL_FAILURE,
        other=("max_vcpu_count must not exceed KVM's vCPU limit",),
    ),
    VmmEntry(
        vmm="gvisor-kvm",
        arch="x86_64",
        display_name="gVisor (KVM platform)",
        source=_at(_GVISOR, "pkg/sentry/platform/kvm/machine.go:299-311", "pkg/sentry/platform/kvm/machine_amd64.go:40-49"),
        required=(),
        implicit=(
            _req(Cap.USER_MEMORY),
            _req(Cap.SET_TSS_ADDR),
            _req(Cap.EXT_CPUID),
        ),
        optional=(
            _opt(Cap.NR_MEMSLOTS),
            _opt(Cap.MAX_VCPUS),
            _opt(Cap.TSC_CONTROL),
        ),
        api_version=None,
        min_kernel="5.6",
        min_kernel_source=_GVISOR_KERNEL,
        failure=_GVISOR_FAILURE,
        other=("4K host pages", "bare metal recommended; nested virtualization works but is discouraged"),
    ),
    VmmEntry(
        vmm="gvisor-kvm",
        arch="aarch64",
        display_name="gVisor (KVM platform)",
        source=_at(_GVISOR, "pkg/sentry/platform/kvm/kvm_arm64.go:70-100", "pkg/sentry/platform/kvm/machine.go:299-311"),
        required=(),
        implicit=(
            _req(Cap.USER_MEMORY),
            _req(Cap.ONE_REG),
        ),
        optional=(
            _opt(Cap.ARM_VM_IPA_SIZE),
            _opt(Cap.NR_MEMSLOTS),
            _opt(Cap.MAX_VCPUS),
        ),
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
_PVM_MEASURED = "measured on a kvm_pvm host, 2026-12-01 (kvmprobe research notes, pvm.md §1-2)"


@dataclass(frozen=True)
class BackendConstraint:
    """What running one VMM on one KVM backend takes (``runs``), or that it does not run there.

    ``backend`` is the KVM module behind ``/dev/kvm`` as the host facts name it (``kvm_pvm``);
    ``short`` the condition in a few words, ``text`` in full (or, when it does not run, what
    happens); ``sources`` the evidence; ``instead`` what to use when it does not run.
    """

    backend: str
    runs: bool
    short: str
    text: str
    sources: Tuple[str, ...]
    instead: str = ""


_PVM_GUEST_KERNEL = BackendConstraint(
    backend="kvm_pvm",
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
            backend="kvm_pvm",
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
            backend="kvm_pvm",
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
            backend="kvm_pvm",
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
            backend="kvm_pvm",
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
            backend="kvm_pvm",
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
