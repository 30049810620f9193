"""Write snapshots of three made-up hosts for trying 'kvmprobe check sev|sev-es|sev-snp|tdx' without one.

    python examples/fake_confidential_hosts.py [DIRECTORY]

Each host is a kvmprobe.testing.FakeHost tree (its /proc, /sys, /dev and /etc files) read by
the same code that reads a live host, with a FakeBackend answering KVM's ioctls: an AMD EPYC
host ready for SEV-SNP (amd-snp.json), the same host whose SEV firmware did not initialize SNP
(amd-sev-firmware-off.json), and an Intel host whose kvm_intel runs with tdx=N
(intel-tdx-off.json). These are fakes, not recordings of real machines.
"""

from __future__ import annotations

import os
import sys
import tempfile

from kvmprobe import probe, read_host_facts
from kvmprobe.confidential import read_confidential
from kvmprobe.snapshot import snapshot_document, write_snapshot
from kvmprobe.testing import FakeBackend, FakeHost

HOSTS = {
    "amd-snp.json": (FakeHost.amd_snp, FakeBackend.amd_snp),
    "amd-sev-firmware-off.json": (FakeHost.amd_sev_firmware_off, FakeBackend.amd_sev_firmware_off),
    "intel-tdx-off.json": (FakeHost.intel_tdx_off, FakeBackend.intel_tdx_off),
}


def main(directory: str) -> None:
    for name, (host, kvm) in HOSTS.items():
        backend = kvm()
        with tempfile.TemporaryDirectory() as root:
            host().write(root)
            result = probe(backend=backend, refresh=True)
            facts = read_confidential(root=root, backend=backend, create_vms=True)
            document = snapshot_document(result, read_host_facts(root), confidential=facts,
                                         recorded_at="2026-12-01T00:00:00Z")  # fmt: skip
        document["kernel"] = document["host"]["kernel_release"]  # the made-up host's, not this one's
        write_snapshot(document, os.path.join(directory, name))
        print(f"wrote {name}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
