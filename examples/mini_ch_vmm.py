#!/usr/bin/env python3
"""A stand-in VMM that checks KVM the way Cloud Hypervisor does on x86_64, and panics like it.

It does not use kvmprobe: like any VMM it asks the kernel directly (``KVM_GET_API_VERSION``,
then ``KVM_CHECK_EXTENSION`` for each capability of Cloud Hypervisor's required list, in that
list's order, stopping at the first missing one), then creates a VM. On a host without one of
them it stops as Cloud Hypervisor does: a Rust panic from ``unwrap()`` on the error, exit
status 101. So ``kvmprobe emulate`` can show the story's failure on any modern machine:

    python -m kvmprobe emulate --host preset:rhel-7.9 -- python examples/mini_ch_vmm.py

The list is Cloud Hypervisor's ``check_required_kvm_extensions``
(cloud-hypervisor/cloud-hypervisor@v53.0 hypervisor/src/kvm/x86_64/mod.rs:41-70); the
capability numbers are the kernel's ``KVM_CAP_*`` (include/uapi/linux/kvm.h).
tests/unit/test_examples_emulate.py holds the list against kvmprobe's Cloud Hypervisor profile.
"""

from __future__ import annotations

import fcntl
import os
import sys

# _IO(KVMIO=0xAE, nr) on x86_64's (generic) ioctl layout.
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_CHECK_EXTENSION = 0xAE03

# (kvm-ioctls Cap variant, KVM_CAP_* number), in Cloud Hypervisor's order.
REQUIRED = (
    ("AdjustClock", 39),
    ("ExtCpuid", 7),
    ("GetTscKhz", 61),
    ("ImmediateExit", 136),
    ("Ioeventfd", 36),
    ("Irqchip", 0),
    ("Irqfd", 32),
    ("IrqRouting", 25),
    ("MpState", 14),
    ("SetIdentityMapAddr", 37),
    ("SetTssAddr", 4),
    ("SplitIrqchip", 121),
    ("TscDeadlineTimer", 72),
    ("UserMemory", 3),
    ("UserNmi", 22),
    ("VcpuEvents", 41),
    ("Xsave", 55),
)


def panic(error: str) -> int:
    # Rust's default panic hook: the thread, the place, and the Debug form of the error.
    print("thread 'vmm' panicked at vmm/src/vm.rs:\ncalled `Result::unwrap()` on an `Err` value: "
          f"{error}\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace", file=sys.stderr)
    return 101


def main() -> int:
    kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)  # ownership: closed at exit
    try:
        version = fcntl.ioctl(kvm, KVM_GET_API_VERSION, 0)
        if version != 12:
            return panic(f"IncompatibleApiVersion({version})")
        for name, number in REQUIRED:
            if fcntl.ioctl(kvm, KVM_CHECK_EXTENSION, number) <= 0:
                return panic(f"CheckExtensions(Capability missing: {name})")
        vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)  # ownership: closed right away, this VMM stops here
        os.close(vm)
    finally:
        os.close(kvm)
    print(f"mini_ch_vmm: KVM API 12, all {len(REQUIRED)} required capabilities present, VM created")
    return 0


if __name__ == "__main__":
    sys.exit(main())
