"""Confidential-VM knowledge as data: the four kinds, the layers, the SEV attributes, the fixes.

Imports ``caps``, ``_vm_types``, ``_kvm_backends`` (which module and CPU vendor serve each kind) and,
where used, ``_cpuid_table``. One source of truth for what an SEV, SEV-ES, SEV-SNP or TDX guest needs
from each layer of a host (CPU, BIOS, firmware, kernel, module parameter, KVM, capabilities,
device access, misc cgroup, memlock limit), for the system-fd device attributes of
``KVM_X86_GRP_SEV``, for the CPUID 0x8000001F fields beyond its feature bits (whose names are
``_cpuid_table``'s), for the kernel-log lines that tell a layer's state, and for the one fix
per layer, each with its source. The checks built on it are in ``kvmprobe.confidential``.

Sources: Linux 7.1.5 (danayer/linux-7.1.5@7d33d86d5512, an unmodified stable tarball) unless
another tree is named; docs/research/confidential.md gathers them with the release dating.
"""

from __future__ import annotations

from ._kvm_backends import serving
from ._vm_types import number_of
from .caps import Cap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, NamedTuple, Optional, Tuple
else:
    from ._value import NamedTuple

__all__ = [
    "CPUID_FIELDS",
    "CPUID_LEAF",
    "KINDS",
    "KVM_X86_GRP_SEV",
    "LAYERS",
    "LOG_KEEP",
    "LOG_LINES",
    "REMEDIES",
    "SEV_ATTRS",
    "SNP_POLICY_BITS",
    "VMSA_FEATURES",
    "Kind",
    "LogLine",
    "Need",
    "Remedy",
    "SevAttr",
    "cpuid_bit",
]

_LINUX = "danayer/linux-7.1.5@7d33d86d5512"

#: The layers, bottom up, with the word each is shown by.
LAYERS: Tuple[Tuple[str, str], ...] = (
    ("cpu", "CPU"),
    ("bios", "BIOS"),
    ("firmware", "firmware"),
    ("kernel", "kernel"),
    ("module", "module parameter"),
    ("kvm", "KVM"),
    ("capabilities", "capabilities"),
    ("device", "device access"),
    ("cgroup", "misc cgroup"),
    ("memlock", "memlock limit"),
)


class Need(NamedTuple):
    """A capability a VMM asks before it creates such a guest: a positive answer (``bit`` 0) or
    the bit ``bit`` set in the answer; why; and the VMM source that asks it."""

    cap: Cap
    bit: int
    why: str
    source: str


_QEMU_GMEM = (
    "QEMU accel/kvm/kvm-all.c kvm_init: kvm_guest_memfd_supported = KVM_CAP_GUEST_MEMFD && "
    "KVM_CAP_USER_MEMORY2 && (KVM_CAP_MEMORY_ATTRIBUTES & KVM_MEMORY_ATTRIBUTE_PRIVATE)"
)
_PRIVATE_MEMORY = (
    Need(Cap.GUEST_MEMFD, 0, "private guest memory comes from guest_memfd", _QEMU_GMEM),
    Need(Cap.USER_MEMORY2, 0, "memory slots that point at a guest_memfd", _QEMU_GMEM),
    Need(Cap.MEMORY_ATTRIBUTES, 0x8, "KVM_MEMORY_ATTRIBUTE_PRIVATE: converting pages between shared and private",
         _QEMU_GMEM),
    Need(Cap.EXIT_HYPERCALL, 1 << 12, "KVM_HC_MAP_GPA_RANGE exits: the guest asks to convert pages",
         "qemu/qemu@05caf2690e5a target/i386/kvm/tdx.c and target/i386/sev.c (sev_snp_launch_start)"),
)  # fmt: skip


class Kind(NamedTuple):
    """A kind of confidential guest and what each layer must offer it.

    ``vm_type``: its ``KVM_CREATE_VM`` type (``_vm_types``, by the kernel's name);
    ``cpu_flag``: the /proc/cpuinfo flag the kernel shows when CPU and BIOS allow it (its CPUID
    bit, where one tells, is :func:`cpuid_bit`);
    ``module``/``param``: the KVM module and its parameter; ``misc``: the misc cgroup resource
    its guests use; ``pins_memory``: KVM pins all guest RAM against RLIMIT_MEMLOCK.
    """

    id: str
    display: str
    vm_type: int
    vendor: str
    module: str
    param: str
    cpu_flag: str
    misc: str
    pins_memory: bool
    needs: Tuple[Need, ...]
    source: str


def _kind(id: str, display: str, vm_type_name: str, param: str, cpu_flag: str, misc: str, pins_memory: bool,
          needs: Tuple[Need, ...], source: str) -> Kind:
    """A kind, its VM type resolved by the kernel's name and its module and CPU vendor from the
    backend that serves it (``_kvm_backends``)."""
    backend = serving(id)
    return Kind(id, display, number_of(vm_type_name), backend.vendor or "", backend.module, param, cpu_flag, misc,
                pins_memory, needs, source)


KINDS: Tuple[Kind, ...] = (
    _kind("sev", "AMD SEV", "KVM_X86_SEV_VM", "sev", "sev", "sev", True, (),
          f"{_LINUX} arch/x86/kvm/svm/sev.c:3018-3023, 3061-3134"),
    _kind("sev-es", "AMD SEV-ES", "KVM_X86_SEV_ES_VM", "sev_es", "sev_es", "sev_es", True, (),
          f"{_LINUX} arch/x86/kvm/svm/sev.c:3024-3027, 3135-3164"),
    _kind("sev-snp", "AMD SEV-SNP", "KVM_X86_SNP_VM", "sev_snp", "sev_snp", "sev_es", False, _PRIVATE_MEMORY,
          f"{_LINUX} arch/x86/kvm/svm/sev.c:3028-3059, 3165-3185"),
    _kind("tdx", "Intel TDX", "KVM_X86_TDX_VM", "tdx", "tdx_host_platform", "tdx", False,
          _PRIVATE_MEMORY + (
              Need(Cap.SPLIT_IRQCHIP, 0, "TDX guests need the split irqchip", "qemu/qemu@05caf2690e5a target/i386/kvm/tdx.c"),
              Need(Cap.X86_APIC_BUS_CYCLES_NS, 0, "QEMU sets the TD's APIC bus frequency",
                   "qemu/qemu@05caf2690e5a target/i386/kvm/tdx.c"),
          ), f"{_LINUX} arch/x86/kvm/vmx/main.c:1057-1063; vmx/tdx.c:3364-3432"),
)  # fmt: skip


def cpuid_bit(kind: Kind) -> Optional[int]:
    """The EAX bit of CPUID 0x8000001F that says the CPU has ``kind`` (``None``: no CPUID bit
    tells, as for TDX): the feature of ``_cpuid_table`` (loaded here only) named as the
    /proc/cpuinfo flag of the kind.

    Example:
        >>> [cpuid_bit(kind) for kind in KINDS]
        [1, 3, 4, None]
    """
    from ._cpuid_table import FEATURES

    for feature in FEATURES:
        if feature.leaf == CPUID_LEAF and feature.register == "eax" and feature.name == kind.cpu_flag:
            return feature.bit
    return None


#: ``KVM_X86_GRP_SEV``: the attribute group of /dev/kvm that kvm_amd serves (asm/kvm.h:503-507).
KVM_X86_GRP_SEV = 1


class SevAttr(NamedTuple):
    """One attribute of ``KVM_X86_GRP_SEV``: its number, name, first release and meaning."""

    attr: int
    name: str
    since: str
    meaning: str


#: KVM_HAS/GET_DEVICE_ATTR on /dev/kvm (needs KVM_CAP_SYS_ATTRIBUTES). kvm_amd built with SEV
#: answers them even with SEV off (values 0); without kvm_amd every query fails with ENXIO
#: (arch/x86/kvm/x86.c:5003-5009; svm/svm.c:5389-5390; svm/sev.c:2205-2225, 3179-3183, 3222-3229).
#: Dated by kvmtool's 6.10 header sync, the 6.19 and 7.0 uapi headers.
SEV_ATTRS: Tuple[SevAttr, ...] = (
    SevAttr(0, "KVM_X86_SEV_VMSA_FEATURES", "6.10", "the SEV features KVM_SEV_INIT2 accepts"),
    SevAttr(1, "KVM_X86_SNP_POLICY_BITS", "6.19", "the SNP guest policy bits firmware and KVM support"),
    SevAttr(2, "KVM_X86_SEV_SNP_REQ_CERTS", "7.0", "1 when KVM_EXIT_SNP_REQ_CERTS can be enabled"),
)

#: The bits of KVM_X86_SEV_VMSA_FEATURES (SVM_SEV_FEAT_*, arch/x86/include/asm/svm.h:307-311).
VMSA_FEATURES: Dict[int, str] = {1 << 5: "DEBUG_SWAP", 1 << 9: "SECURE_TSC"}

#: The flag bits of an SNP guest policy (SNP_POLICY_MASK_*, include/linux/psp-sev.h:28-39);
#: bits 0-15 hold the minimum firmware API version.
SNP_POLICY_BITS: Dict[int, str] = {
    1 << 16: "SMT", 1 << 17: "RSVD_MBO", 1 << 18: "MIGRATE_MA", 1 << 19: "DEBUG", 1 << 20: "SINGLE_SOCKET",
    1 << 21: "CXL_ALLOW", 1 << 22: "MEM_AES_256_XTS", 1 << 23: "RAPL_DIS", 1 << 24: "CIPHERTEXT_HIDING_DRAM",
    1 << 25: "PAGE_SWAP_DISABLE",
}  # fmt: skip

#: CPUID Fn8000_001F, the AMD memory-encryption leaf: the fields beyond EAX's feature bits, as
#: (register, low bit, width, name). arch/x86/kvm/svm/sev.c:3094-3109, arch/x86/kernel/cpu/amd.c:591,
#: virtee/snphost@56d5d7e79630 src/ok/mod.rs:295-651 (the AMD APM itself was not read).
CPUID_LEAF = 0x8000001F
#: ECX is how many encrypted guests may run at once (the highest ASID); ASIDs below EDX's are
#: SEV-ES/SNP's, the rest SEV's.
CPUID_FIELDS: Tuple[Tuple[str, int, int, str], ...] = (
    ("ebx", 0, 6, "C-bit"),
    ("ebx", 6, 6, "address bits lost"),
    ("ebx", 12, 4, "VMPLs"),
    ("ecx", 0, 32, "ASIDs"),
    ("edx", 0, 32, "first SEV-only ASID"),
)


class LogLine(NamedTuple):
    """A kernel-log text that tells a layer's state: for which kinds, which layer, good or bad."""

    text: str
    kinds: Tuple[str, ...]
    layer: str
    good: bool
    meaning: str
    source: str


LOG_LINES: Tuple[LogLine, ...] = (
    LogLine("virt/tdx: module initialized", ("tdx",), "firmware", True, "the TDX module is initialized (6.16-7.0)",
            "KT0511/linux-6.16.1@210b82c35000 arch/x86/virt/vmx/tdx/tdx.c:1168"),
    LogLine("virt/tdx: TDX-Module initialized", ("tdx",), "firmware", True, "the TDX module is initialized (7.1+)",
            f"{_LINUX} arch/x86/virt/vmx/tdx/tdx.c:1234-1277"),
    LogLine("virt/tdx: module not loaded", ("tdx",), "firmware", False, "the BIOS loaded no TDX module",
            f"{_LINUX} Documentation/arch/x86/tdx.rst:45-72"),
    LogLine("initialization failed", ("tdx",), "firmware", False, "the TDX module failed to initialize",
            f"{_LINUX} Documentation/arch/x86/tdx.rst:45-72"),
    LogLine("Hibernation support is enabled", ("tdx",), "kernel", False, "TDX is refused while hibernation is possible",
            f"{_LINUX} Documentation/arch/x86/tdx.rst:159-165"),
    LogLine("SEV-SNP API:", ("sev-snp",), "firmware", True, "the SNP firmware answered (its API version)",
            f"{_LINUX} drivers/crypto/ccp/sev-dev.c:1482"),
    LogLine("Memory for the RMP table has not been reserved by BIOS", ("sev-snp",), "bios", False,
            "the BIOS reserved no RMP table", f"{_LINUX} arch/x86/virt/svm/sev.c:601, 633"),
    LogLine("SNP cannot be supported", ("sev-snp",), "bios", False,
            "the AMD IOMMU is off or in passthrough mode", f"{_LINUX} drivers/iommu/amd/init.c:3381-3408"),
)  # fmt: skip

#: What a kernel-log line must contain to be kept in the facts (the texts above, and the
#: subsystem prefixes that explain them).
LOG_KEEP = ("virt/tdx:", "tdx:", "SEV", "SNP", "RMP", "kvm_amd:", "ccp ")


class Remedy(NamedTuple):
    """The fix for one layer's failure, and where it comes from."""

    text: str
    source: str


REMEDIES: Dict[str, Remedy] = {
    "amd_cpu": Remedy(
        "run SEV guests on an AMD EPYC host whose CPUID 0x8000001F reports the feature (SEV-SNP needs EPYC "
        "7003 or later)", "virtee/snphost@56d5d7e79630 src/ok/mod.rs:346-347, 381-382, 427-428"),
    "intel_cpu": Remedy(
        "run TDX guests on an Intel Xeon host whose CPU and BIOS offer TDX",
        f"{_LINUX} Documentation/arch/x86/tdx.rst:1-38"),
    "amd_bios_sev": Remedy(
        "enable SMEE (memory encryption) and SEV in the BIOS (AMD CBS > CPU Common): the kernel hides the "
        "sev flags while SYSCFG bit 23 is clear", f"{_LINUX} arch/x86/kernel/cpu/amd.c:580-610"),
    "amd_bios_asids": Remedy(
        "reserve ASIDs for SEV-ES/SNP in the BIOS (the SEV-ES ASID limit, so that CPUID 0x8000001F EDX > 1): "
        "KVM turns SEV-ES and SNP off when the first SEV-only ASID is 1", f"{_LINUX} arch/x86/kvm/svm/sev.c:3155-3157"),
    "amd_bios_snp": Remedy(
        "enable SEV-SNP and 'SNP Memory Coverage' (the RMP table) in the BIOS, and keep the AMD IOMMU on and "
        "out of passthrough mode", f"snphost src/ok/mod.rs:521-522, 543; {_LINUX} drivers/iommu/amd/init.c:3381-3392"),
    "amd_firmware": Remedy(
        "update the BIOS/SEV firmware (SEV-SNP needs firmware API 1.51 or newer), make sure the ccp driver "
        "has created /dev/sev, then reload kvm_amd (or reboot) so KVM initializes the firmware again",
        f"{_LINUX} drivers/crypto/ccp/sev-dev.c:47-48, 1372-1375; arch/x86/kvm/svm/sev.c:3168-3185"),
    "amd_module": Remedy(
        "load kvm_amd with 'modprobe kvm_amd sev=1 sev_es=1 sev_snp=1' and keep it in /etc/modprobe.d "
        "('options kvm_amd sev=1 sev_es=1 sev_snp=1'); since Linux 6.16 KVM also writes N there when a "
        "lower layer (firmware, ASIDs, IOMMU) made it turn the feature off: 'dmesg | grep -i sev' says which",
        f"{_LINUX} arch/x86/kvm/svm/sev.c:55-64, 3218-3220"),
    "amd_cmdline": Remedy("remove 'sev=nosnp' from the kernel command line", f"{_LINUX} arch/x86/virt/svm/cmdline.c:29-33"),
    "dev_sev": Remedy(
        "give the VMM's user read-write access to /dev/sev with a udev rule (KERNEL==\"sev\", GROUP=\"sev\", "
        "MODE=\"0660\") rather than running it as root",
        "NixOS/nixpkgs release-22.11 nixos/modules/hardware/cpu/amd-sev.nix; libvirt docs/kbase/launch_security_sev.rst"),
    "memlock": Remedy(
        "raise RLIMIT_MEMLOCK ('ulimit -l', limits.conf 'memlock', systemd LimitMEMLOCK=) to the guest's RAM "
        "plus the VMM's overhead, or grant CAP_IPC_LOCK; under libvirt use <memoryBacking><locked/> or a "
        "memtune hard_limit about 256 MiB above the guest's RAM",
        f"{_LINUX} arch/x86/kvm/svm/sev.c:723-755; libvirt/libvirt@2c3ffa37284b docs/kbase/launch_security_sev.rst"),
    "misc_cgroup": Remedy(
        "a resource missing from misc.capacity has capacity 0: the BIOS gave that guest type no ASIDs/KeyIDs, "
        "the feature is off, or the kernel lacks it; fix the BIOS split, and check misc.max of the VMM's cgroup",
        f"{_LINUX} kernel/cgroup/misc.c:353-365; arch/x86/kvm/svm/sev.c:3126-3129, 3163; arch/x86/kvm/vmx/tdx.c:3358"),
    "intel_bios_tdx": Remedy(
        "enable TME, TME-MT, TDX, the SEAM loader and a non-zero TME-MT/TDX key split in the BIOS, so that it "
        "loads the TDX module and gives TDX its KeyIDs",
        f"canonical/ubuntu-server-documentation@028edf39547d docs/how-to/virtualisation/intel-tdx.md; {_LINUX} "
        "Documentation/arch/x86/tdx.rst:25-38"),
    "intel_cmdline_tdx": Remedy(
        "boot with 'nohibernate kvm_intel.tdx=1' (kvm_intel.tdx defaults to N, and TDX is refused while "
        "hibernation is possible)", f"{_LINUX} arch/x86/kvm/vmx/tdx.c:56-57; Documentation/arch/x86/tdx.rst:159-165"),
    "intel_tdx_module": Remedy(
        "update the TDX module if the kernel log says 'module not loaded' or 'initialization failed', then "
        "look for 'virt/tdx: module initialized' (6.16-7.0) or 'virt/tdx: TDX-Module initialized' (7.1+); keep "
        "EPT, the TDP MMU, EPT A/D bits and APICv on, since KVM turns TDX off without them",
        f"{_LINUX} Documentation/arch/x86/tdx.rst:45-72; arch/x86/kvm/vmx/tdx.c:3374-3392"),
    "kernel_version": Remedy(
        "run Linux 6.10 or newer for SEV and SEV-ES VM types, 6.11 for SEV-SNP and 6.16 for TDX (or a vendor "
        "kernel that backports them)", "docs/research/confidential.md, section 1.1 (uapi header dating)"),
}  # fmt: skip
