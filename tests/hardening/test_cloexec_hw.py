"""Every fd kvmprobe holds is close-on-exec: a child started meanwhile inherits none of them.

A backend wrapped around the real one (injected through ``backend=``) starts a child process
while the system fd is open and again while the VM fd is open. The child is started with
``close_fds=False``, so it would keep any inheritable descriptor, and lists its own
/proc/self/fd. Neither /dev/kvm nor a kvm-vm fd may appear there; ``F_GETFD`` and ``F_GETFL``
on the live fds must say FD_CLOEXEC and O_RDWR.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from typing import Any, Dict, List, Sequence

import pytest

from hardening._faultlib import tally
from kvmprobe import probe
from kvmprobe._backend import Backend, CheckResults
from kvmprobe._backend_select import select_backend
from kvmprobe._backend_cffi import unavailable_reason
from kvmprobe.testing import ForwardingBackend

pytestmark = pytest.mark.kvm

CHILD = "import json, os; print(json.dumps({n: os.readlink('/proc/self/fd/' + n) for n in os.listdir('/proc/self/fd') if os.path.exists('/proc/self/fd/' + n)}))"


class SpawningBackend(ForwardingBackend):
    """Forwards to the real backend; at each batch of queries, inspects the fd and starts a child."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.seen: List[Dict[str, Any]] = []

    def check_many(self, fd: int, request: int, numbers: Sequence[int]) -> CheckResults:
        child = subprocess.run([sys.executable, "-c", CHILD], close_fds=False, capture_output=True, text=True, check=True)
        self.seen.append(
            {
                "fd": fd,
                "target": os.readlink(f"/proc/self/fd/{fd}"),
                "cloexec": bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC),
                "access": fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE,
                "child": json.loads(child.stdout),
            }
        )
        return self.inner.check_many(fd, request, numbers)


@pytest.mark.parametrize("name", ["cffi", "ctypes"])
def test_a_child_started_while_kvmprobe_holds_its_fds_inherits_none(name: str) -> None:
    if name == "cffi" and unavailable_reason():
        pytest.skip(f"the cffi backend is not built here: {unavailable_reason()}")
    backend = SpawningBackend(select_backend(name))
    result = probe(backend=backend, vm=True, refresh=True)
    tally("descriptors: close-on-exec", len(backend.seen))
    # The system fd, then (KVM_CAP_CHECK_EXTENSION_VM) the VM fd.
    assert [seen["target"] for seen in backend.seen] == ["/dev/kvm", "anon_inode:kvm-vm"][: len(backend.seen)]
    assert len(backend.seen) == (2 if result.vm_values is not None else 1)
    for seen in backend.seen:
        assert seen["cloexec"], f"{seen['target']} is not close-on-exec"
        assert seen["access"] == os.O_RDWR, f"{seen['target']} is not O_RDWR"
        inherited = [target for target in seen["child"].values() if target == "/dev/kvm" or "kvm-vm" in target]
        assert inherited == [], f"a child started while {seen['target']} was open inherited {inherited}"
