"""10,000 probes on the real device, with and without a VM, leave /proc/self/fd exactly as it was.

Both backends (cffi where built, and ctypes) are run, and so are the error paths: probes
failing at KVM_GET_API_VERSION, KVM_CREATE_VM and the VM fd's queries on the real fds. The
listing compares descriptor numbers and what they point at, before and after.
"""

from __future__ import annotations

import errno
from typing import List

import pytest

from _helpers import open_fds
from hardening._faultlib import Fault, FaultBackend, tally
from kvmprobe import KvmError, probe
from kvmprobe._backend import Backend
from kvmprobe._backend_select import select_backend
from kvmprobe._backend_cffi import unavailable_reason
from kvmprobe._cli import main
from kvmprobe.caps import Cap

pytestmark = pytest.mark.kvm

PROBES = 10_000


def backends() -> List[str]:
    names = ["ctypes"]
    if not unavailable_reason():
        names.insert(0, "cffi")
    return names


@pytest.mark.parametrize("name", ["cffi", "ctypes"])
@pytest.mark.parametrize("vm", [False, True], ids=["system-fd", "vm"])
def test_ten_thousand_probes_leave_the_fd_table_as_it_was(name: str, vm: bool) -> None:
    if name not in backends():
        pytest.skip(f"the cffi backend is not built here: {unavailable_reason()}")
    backend: Backend = select_backend(name)
    before = open_fds()
    first = probe(backend=backend, vm=vm, refresh=True)
    for _ in range(PROBES - 1):
        probe(backend=backend, vm=vm, refresh=True)
    after = open_fds()
    tally("descriptors: real-device probes", PROBES)
    assert after == before
    assert first.vm_created is vm and first.has(Cap.USER_MEMORY)


@pytest.mark.parametrize(
    "fault",
    [
        Fault("KVM_GET_API_VERSION", errno.EIO),
        Fault("KVM_CREATE_VM", errno.ENOMEM),
        Fault("VM_CHECK_EXTENSION", errno.EFAULT),
        Fault("close", errno.EIO),
    ],
    ids=lambda fault: f"{fault.op}-{errno.errorcode[fault.code]}",
)
def test_failing_probes_on_real_fds_leak_nothing(fault: Fault) -> None:
    backend = FaultBackend(select_backend(), [fault])
    before = open_fds()
    for _ in range(1000):
        try:
            probe(backend=backend, vm=True, refresh=True)
        except KvmError:
            pass
    tally("descriptors: real-device probes", 1000)
    assert open_fds() == before
    assert backend.open_fds == []


def test_every_command_leaves_the_fd_table_as_it_was(tmp_path: object) -> None:
    import contextlib
    import io
    import os

    out = os.path.join(str(tmp_path), "out")
    commands = [
        ["dump"], ["dump", "--vm", "--json"], ["has", "HLT"], ["check", "--all"], ["doctor"],
        ["snapshot", "--vm", "-o", out + ".json"], ["diff", "preset:pvm-6.18"],
        ["export", "--format", "nfd", "-o", out + ".features"], ["export", "--format", "prometheus"],
    ]
    before = open_fds()
    for _ in range(20):
        for argv in commands:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                assert main(argv) in (0, 1)
    tally("descriptors: CLI commands", 20 * len(commands))
    assert open_fds() == before
