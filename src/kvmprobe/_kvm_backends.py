"""The KVM backends: the modules that register ``/dev/kvm``, and what each needs and offers.

Imports ``_value`` only (data, cited; one floor under everything that reads it). One source of
truth for which module serves which CPU, what it needs of the CPU (VT-x, AMD-V, nothing), its
``nested`` module parameter, the confidential guests it can create, and the one thing a user must
know about it. The host facts (which backend is loaded), the doctor's checks and remedies, the
confidential-VM judgement, the CPU decoder and the VMM requirements derive their backend facts
from :data:`BACKENDS`.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, NamedTuple, Optional, Tuple
else:
    from ._value import NamedTuple

__all__ = ["BACKENDS", "CONFIDENTIAL_MODULES", "MODULES", "PVM", "KvmBackend", "backend_of", "serving"]

# The Linux tree the citations point into (an unmodified stable tarball).
_LINUX = "danayer/linux-7.1.5@7d33d86d5512"
_PVM_SPEC = "virt-pvm/linux@2b24d5b8fddd Documentation/virt/kvm/x86/pvm-spec.rst"
_PVM_COVER = (
    "[RFC PATCH 00/73] KVM: x86/PVM: Introduce a new hypervisor, 2024-02-26, "
    "https://lore.kernel.org/lkml/20240226143630.33643-1-jiangshanlai@gmail.com/"
)


class KvmBackend(NamedTuple):
    """One KVM backend module.

    ``arch``: the architecture it runs on (``_arch`` spelling); ``vendor``: the CPU vendor it
    serves (``/proc/cpuinfo`` ``vendor_id``; ``None``: any); ``cpu_flag``: the ``/proc/cpuinfo``
    flag of the hardware virtualization it needs (``None``: it needs none); ``nested_param``:
    its module parameter that lets its guests use KVM themselves (``None``: it has none);
    ``confidential``: the confidential-guest kinds it can create (``_cc_data.KINDS`` ids).

    Example:
        >>> backend_of("kvm_amd").cpu_flag, backend_of("kvm_amd").confidential
        ('svm', ('sev', 'sev-es', 'sev-snp'))
    """

    module: str
    arch: str
    vendor: Optional[str]
    cpu_flag: Optional[str]
    nested_param: Optional[str]
    confidential: Tuple[str, ...]
    note: str
    sources: Tuple[str, ...]


#: The paging-based x86 backend (no VT-x/AMD-V needed): the one spelling of its module name.
PVM = "kvm_pvm"

#: Every backend, in the order the host facts prefer one when several are loaded.
BACKENDS: Tuple[KvmBackend, ...] = (
    KvmBackend("kvm_intel", "x86_64", "GenuineIntel", "vmx", "nested", ("tdx",),
               "Intel VT-x; nested=Y lets its guests run KVM (the parameter prints Y/N)",
               (f"{_LINUX} arch/x86/kvm/vmx/vmx.c (module_param nested, bool)",
                f"{_LINUX} arch/x86/kvm/vmx/main.c:1057-1063 (KVM_X86_TDX_VM)")),
    KvmBackend("kvm_amd", "x86_64", "AuthenticAMD", "svm", "nested", ("sev", "sev-es", "sev-snp"),
               "AMD-V (SVM); nested=1 lets its guests run KVM (the parameter prints 1/0)",
               (f"{_LINUX} arch/x86/kvm/svm/svm.c (module_param nested, int)",
                f"{_LINUX} arch/x86/kvm/svm/sev.c:3018-3059 (the SEV VM types)")),
    KvmBackend(PVM, "x86_64", None, None, None, (),
               "PVM runs guests without VT-x/AMD-V (a paging-based backend); only guest kernels built for PVM "
               "(CONFIG_PVM_GUEST) run natively, other guest code runs in KVM's instruction emulator",
               (_PVM_SPEC, _PVM_COVER, "docs/research/pvm.md §1")),
    KvmBackend("kvm_hv", "ppc64le", None, None, "nested", (),
               "POWER hypervisor mode (HV KVM); nested lets its guests run KVM",
               (f"{_LINUX} arch/powerpc/kvm/book3s_hv.c (module_param nested)",)),
    KvmBackend("kvm_pr", "ppc64le", None, None, None, (),
               "POWER problem-state KVM (PR KVM): runs guests without hypervisor mode",
               (f"{_LINUX} arch/powerpc/kvm/book3s_pr.c",)),
)  # fmt: skip

_BY_MODULE: Dict[str, KvmBackend] = {row.module: row for row in BACKENDS}

#: The module names, in :data:`BACKENDS`' order.
MODULES: Tuple[str, ...] = tuple(row.module for row in BACKENDS)
#: The modules that can create confidential guests at all.
CONFIDENTIAL_MODULES: Tuple[str, ...] = tuple(row.module for row in BACKENDS if row.confidential)


def backend_of(module: Optional[str]) -> Optional[KvmBackend]:
    """The backend row of ``module`` (``None``: no such backend, e.g. ``"built-in"``).

    Example:
        >>> backend_of(PVM).cpu_flag is None, backend_of("built-in")
        (True, None)
    """
    return _BY_MODULE.get(module) if module is not None else None


def serving(kind: str) -> KvmBackend:
    """The backend that creates confidential guests of ``kind`` (``KeyError``: none does).

    Example:
        >>> serving("tdx").module
        'kvm_intel'
    """
    for row in BACKENDS:
        if kind in row.confidential:
            return row
    raise KeyError(kind)
