"""The x86 VM types: the ``KVM_CREATE_VM`` argument, its name, and when KVM got it.

Imports ``_value`` only (data, under the tables that use it: ``_bitmasks`` names the bits of
``KVM_CAP_VM_TYPES`` with it, ``_cc_data`` resolves each confidential kind's VM type by name).

Sources: Linux 7.1.5 as imported at danayer/linux-7.1.5@7d33d86d5512 (an unmodified stable
tarball), dates from the uapi headers of earlier releases (docs/research/confidential.md,
section 0).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, NamedTuple, Optional, Tuple
else:
    from ._value import NamedTuple

__all__ = ["VM_TYPES", "VmType", "number_of", "vm_type"]


class VmType(NamedTuple):
    """An x86 VM type: the ``KVM_CREATE_VM`` argument, its name, a short name for labels, the
    first release whose uapi header defines it, the release whose KVM can create it, and the
    code that advertises it in ``KVM_CAP_VM_TYPES``."""

    number: int
    name: str
    short: str
    since: str
    usable_since: str
    advertised_by: str


#: arch/x86/include/uapi/asm/kvm.h:968-973 (7.1). KVM_CREATE_VM accepts ``type < 32`` with its
#: bit set in ``kvm_caps.supported_vm_types`` (arch/x86/kvm/x86.c:4779-4782), which is exactly
#: what KVM_CAP_VM_TYPES returns (x86.c:4991-4993). Dates: SEV/SEV-ES in kvmtool's 6.10 header
#: sync (01171537bcc0), absent in its 6.9 sync; SNP in bionic's v6.11 headers (63fcca4108d9);
#: TDX defined in 6.14 (perishh/linux-6.14@16b95dcd asm/kvm.h:928) but created by KVM only from
#: 6.16, when vmx/tdx.c arrived (KT0511/linux-6.16.1@210b82c3 vmx/main.c:1083).
VM_TYPES: Tuple[VmType, ...] = (
    VmType(0, "KVM_X86_DEFAULT_VM", "default", "6.8", "6.8", "always (x86.c:10156)"),
    VmType(1, "KVM_X86_SW_PROTECTED_VM", "sw-protected", "6.8", "6.8",
           "CONFIG_KVM_SW_PROTECTED_VM (an EXPERT option, for testing) and the TDP MMU (x86.c:10217-10218)"),
    VmType(2, "KVM_X86_SEV_VM", "sev", "6.10", "6.10", "kvm_amd with SEV enabled (svm/sev.c:3018-3023)"),
    VmType(3, "KVM_X86_SEV_ES_VM", "sev-es", "6.10", "6.10", "kvm_amd with SEV-ES enabled (svm/sev.c:3024-3027)"),
    VmType(4, "KVM_X86_SNP_VM", "snp", "6.11", "6.11", "kvm_amd with SEV-SNP enabled (svm/sev.c:3028-3031)"),
    VmType(5, "KVM_X86_TDX_VM", "tdx", "6.14", "6.16", "kvm_intel with TDX enabled (vmx/main.c:1057-1063)"),
)  # fmt: skip

_VM_TYPE_BY_NUMBER: Dict[int, VmType] = {vm.number: vm for vm in VM_TYPES}
_VM_TYPE_BY_NAME: Dict[str, VmType] = {vm.name: vm for vm in VM_TYPES}


def vm_type(number: int) -> Optional[VmType]:
    """The mainline x86 VM type with this number, or ``None``.

    Example:
        >>> vm_type(4).name, vm_type(9) is None
        ('KVM_X86_SNP_VM', True)
    """
    return _VM_TYPE_BY_NUMBER.get(number)


def number_of(name: str) -> int:
    """The number of the VM type the kernel calls ``name`` (``KeyError`` for no such type).

    Example:
        >>> number_of("KVM_X86_TDX_VM")
        5
    """
    return _VM_TYPE_BY_NAME[name].number
