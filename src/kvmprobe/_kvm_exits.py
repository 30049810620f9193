"""The names of ``kvm_run.exit_reason`` values and of ``KVM_EXIT_INTERNAL_ERROR`` suberrors: data.

Imports nothing from the package. Numbers as ``include/uapi/linux/kvm.h`` defines them (a test
checks every one the system's ``<linux/kvm.h>`` defines against this table); the ones newer
than that header carry the release that added them.
``kvmprobe.guest`` decodes exits with these tables; the ioctl floor hands over numbers only.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict

__all__ = ["EXIT_REASONS", "INTERNAL_SUBERRORS", "exit_name", "suberror_name"]

#: ``KVM_EXIT_<NAME>`` by number (include/uapi/linux/kvm.h).
EXIT_REASONS: Dict[int, str] = {
    0: "KVM_EXIT_UNKNOWN",
    1: "KVM_EXIT_EXCEPTION",
    2: "KVM_EXIT_IO",
    3: "KVM_EXIT_HYPERCALL",
    4: "KVM_EXIT_DEBUG",
    5: "KVM_EXIT_HLT",
    6: "KVM_EXIT_MMIO",
    7: "KVM_EXIT_IRQ_WINDOW_OPEN",
    8: "KVM_EXIT_SHUTDOWN",
    9: "KVM_EXIT_FAIL_ENTRY",
    10: "KVM_EXIT_INTR",
    11: "KVM_EXIT_SET_TPR",
    12: "KVM_EXIT_TPR_ACCESS",
    13: "KVM_EXIT_S390_SIEIC",
    14: "KVM_EXIT_S390_RESET",
    15: "KVM_EXIT_DCR",
    16: "KVM_EXIT_NMI",
    17: "KVM_EXIT_INTERNAL_ERROR",
    18: "KVM_EXIT_OSI",
    19: "KVM_EXIT_PAPR_HCALL",
    20: "KVM_EXIT_S390_UCONTROL",
    21: "KVM_EXIT_WATCHDOG",
    22: "KVM_EXIT_S390_TSCH",
    23: "KVM_EXIT_EPR",
    24: "KVM_EXIT_SYSTEM_EVENT",
    25: "KVM_EXIT_S390_STSI",
    26: "KVM_EXIT_IOAPIC_EOI",
    27: "KVM_EXIT_HYPERV",
    28: "KVM_EXIT_ARM_NISV",
    29: "KVM_EXIT_X86_RDMSR",
    30: "KVM_EXIT_X86_WRMSR",
    31: "KVM_EXIT_DIRTY_RING_FULL",
    32: "KVM_EXIT_AP_RESET_HOLD",
    33: "KVM_EXIT_X86_BUS_LOCK",
    34: "KVM_EXIT_XEN",
    35: "KVM_EXIT_RISCV_SBI",
    36: "KVM_EXIT_RISCV_CSR",
    37: "KVM_EXIT_NOTIFY",
    38: "KVM_EXIT_LOONGARCH_IOCSR",  # Linux 6.7 (LoongArch KVM)
    39: "KVM_EXIT_MEMORY_FAULT",  # Linux 6.8 (guest_memfd)
    40: "KVM_EXIT_TDX",  # Linux 6.16 (TDX host support)
}

#: ``KVM_INTERNAL_ERROR_<NAME>`` by suberror number (include/uapi/linux/kvm.h), with what it means.
INTERNAL_SUBERRORS: Dict[int, str] = {
    1: "KVM_INTERNAL_ERROR_EMULATION",  # KVM's instruction emulator failed
    2: "KVM_INTERNAL_ERROR_SIMUL_EX",  # unexpected simultaneous exceptions
    3: "KVM_INTERNAL_ERROR_DELIVERY_EV",  # an unexpected VM exit while delivering an event
    4: "KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON",  # the hardware exited for a reason KVM does not handle
}


def exit_name(reason: int) -> str:
    """The ``KVM_EXIT_*`` name of an exit reason (``KVM_EXIT_<n>`` for a number this table lacks).

    Example:
        >>> exit_name(2), exit_name(5), exit_name(99)
        ('KVM_EXIT_IO', 'KVM_EXIT_HLT', 'KVM_EXIT_99')
    """
    return EXIT_REASONS.get(reason, f"KVM_EXIT_{reason}")


def suberror_name(suberror: int) -> str:
    """The ``KVM_INTERNAL_ERROR_*`` name of a suberror (``suberror <n>`` when unknown).

    Example:
        >>> suberror_name(1), suberror_name(7)
        ('KVM_INTERNAL_ERROR_EMULATION', 'suberror 7')
    """
    return INTERNAL_SUBERRORS.get(suberror, f"suberror {suberror}")
