#!/usr/bin/env python3
"""A VMM launcher's pre-flight check: refuse to start when KVM lacks a capability we need.

Copy this into your launcher. It asks the kernel once (kvmprobe caches the answer), names
every missing capability with the first Linux release that has it, and exits non-zero, so
the VMM never gets to panic halfway through VM creation.

    python examples/preflight.py                      # the capabilities listed below
    python examples/preflight.py IMMEDIATE_EXIT XSAVE # or your own list
"""

from __future__ import annotations

import sys
from typing import List, Sequence

import kvmprobe

# What a Cloud Hypervisor-like VMM checks before creating a VM on x86_64.
REQUIRED = (
    "IRQCHIP", "IOEVENTFD", "IRQFD", "USER_MEMORY", "SET_TSS_ADDR", "EXT_CPUID",
    "MP_STATE", "VCPU_EVENTS", "XSAVE", "SPLIT_IRQCHIP", "IMMEDIATE_EXIT",
)


def missing_capabilities(required: Sequence[str]) -> List[kvmprobe.Cap]:
    """The required capabilities this host's KVM does not offer (names resolve any spelling)."""
    caps = [kvmprobe.Cap.lookup(name) for name in required]
    return [cap for cap in caps if not kvmprobe.has(cap)]


def main(argv: Sequence[str]) -> int:
    required = list(argv) or list(REQUIRED)
    try:
        missing = missing_capabilities(required)
    except kvmprobe.KvmProbeError as err:  # no /dev/kvm, no permission, unknown name...
        print(f"preflight: {err}", file=sys.stderr)
        return 2 if isinstance(err, kvmprobe.UnknownCapability) else 3
    if missing:
        kernel = kvmprobe.probe().kernel
        for cap in missing:
            print(f"preflight: {cap.c_name} is missing (needs Linux >= {cap.since_text}; you have {kernel})",
                  file=sys.stderr)
        print("preflight: refusing to start the VMM", file=sys.stderr)
        return 1
    print(f"preflight: all {len(required)} required KVM capabilities present")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
