"""Commands load only what they use (issue #19): the modules each command imports, checked.

Start-up is most of what a short command costs, so a feature must cost nothing to a command
that does not use it. Each command runs in a child interpreter against a made-up KVM device
(a minimal backend, made the default one as ``kvmprobe.testing.default_backend`` does, so the
command takes its usual path), and the modules it imported are held against the features it
uses: every kvmprobe module must belong to the core or to one of those features, and none of
the standard library's costly modules may load unless the command needs it (JSON output needs
``json``, which brings ``re``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Dict, FrozenSet, List, Tuple

import pytest

# What every command (and a probe from Python) may load: the probe and what it stands on, and
# the CLI's shell.
CORE = frozenset({
    "kvmprobe", "kvmprobe._version", "kvmprobe._arch", "kvmprobe._value", "kvmprobe.errors", "kvmprobe.caps",
    "kvmprobe._cap_values", "kvmprobe.probing", "kvmprobe.device", "kvmprobe._device_x86", "kvmprobe._device_errors",
    "kvmprobe._ioctl", "kvmprobe._backend", "kvmprobe._backend_select", "kvmprobe._backend_cffi",
    "kvmprobe._backend_ctypes", "kvmprobe._kvmbatch", "kvmprobe._kvmbatch.lib", "kvmprobe._cli", "kvmprobe._cli._common",
    # the bit masks and number collisions every capability line is shown with (and the VM types
    # the bits of KVM_CAP_VM_TYPES are named from)
    "kvmprobe._bitmasks", "kvmprobe._collisions", "kvmprobe._vm_types",
})  # fmt: skip

FEATURES: Dict[str, FrozenSet[str]] = {
    "host facts": frozenset({"kvmprobe.host", "kvmprobe._host_reader", "kvmprobe._host_facts", "kvmprobe._access",
                             "kvmprobe._files", "kvmprobe._validate", "kvmprobe._cc_facts", "kvmprobe._host_files",
                             "kvmprobe._kvm_backends"}),
    "profiles": frozenset({"kvmprobe.profiles", "kvmprobe._profile", "kvmprobe._profile_file", "kvmprobe._readiness",
                           "kvmprobe._vmm_requirements", "kvmprobe._vmm_versions", "kvmprobe._release",
                           "kvmprobe._kvm_backends"}),
    "snapshot": frozenset({"kvmprobe.snapshot", "kvmprobe._snapshot_rows", "kvmprobe._validate"}),
    "confidential": frozenset({"kvmprobe.confidential", "kvmprobe._cc_judge", "kvmprobe._cc_probe",
                               "kvmprobe._cc_data", "kvmprobe._cc_verdict", "kvmprobe._cc_facts",
                               "kvmprobe._cpuid_insn"}),  # the CPUID leaf of the memory encryption
    "doctor": frozenset({"kvmprobe.diagnosis", "kvmprobe._checks", "kvmprobe._check_model", "kvmprobe._host_checks",
                         "kvmprobe._remedies", "kvmprobe._run_verdict", "kvmprobe._release"}),
    "micro-guest": frozenset({"kvmprobe.guest", "kvmprobe._vcpu", "kvmprobe._forked", "kvmprobe._stop", "kvmprobe._guest_code",
                              "kvmprobe._guest_report", "kvmprobe._kvm_exits", "kvmprobe._kvm_structs",
                              "kvmprobe._cpuid", "kvmprobe._cpuid_table"}),
    "cpu": frozenset({"kvmprobe.cpuinfo", "kvmprobe._cpu_record", "kvmprobe._cpu_decode", "kvmprobe._cpuid",
                      "kvmprobe._cpuid_table", "kvmprobe._cpuid_insn", "kvmprobe._kvm_structs", "kvmprobe._kvm_backends"}),
}  # fmt: skip

# The standard library's modules that cost a millisecond or more to import.
COSTLY = frozenset({
    "argparse", "re", "json", "typing", "dataclasses", "inspect", "threading", "shutil", "statistics", "datetime",
    "hashlib", "textwrap", "difflib", "subprocess", "importlib.resources", "tempfile", "locale", "gettext",
})  # fmt: skip

# The command, the features it uses, and the costly modules it needs.
COMMANDS: List[Tuple[str, Tuple[str, ...], FrozenSet[str]]] = [
    ("has IMMEDIATE_EXIT", (), frozenset()),
    ("dump", ("profiles", "host facts"), frozenset()),
    ("--json", ("snapshot", "host facts", "confidential"), frozenset({"json", "re"})),
    ("doctor", ("doctor", "host facts", "confidential", "micro-guest"), frozenset()),
    ("check --all", ("profiles", "host facts", "confidential"), frozenset()),
    ("cpu", ("cpu", "host facts"), frozenset()),
]

# A KVM device that answers like a kernel with every capability: the system fd, VM and vCPU fds
# are /dev/null (nothing runs on them), structure ioctls fail as on a kernel without them.
_CHILD = textwrap.dedent(
    """
    import os, sys
    before = set(sys.modules)

    class Seam:
        name = "fake"
        def open(self, path):
            return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        def close(self, fd):
            os.close(fd)
        def ioctl(self, fd, request, arg=0):
            number = request & 0xFFFF
            if number == 0xAE00:
                return 12
            if number in (0xAE01, 0xAE41):  # KVM_CREATE_VM, KVM_CREATE_VCPU
                return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            return 0
        def check_many(self, fd, request, numbers):
            return [1] * len(numbers), [0] * len(numbers)
        def ioctl_buffer(self, fd, request, buffer, pointers=()):
            raise OSError(25, os.strerror(25))

    from kvmprobe import probing
    probing._set_default_backend(Seam())
    words = sys.argv[2:]
    if words == ["probe"]:
        import kvmprobe
        kvmprobe.probe()
    else:
        from kvmprobe._cli import main
        main(words)
    found = set(sys.modules) - before
    with open(sys.argv[1], "w") as out:
        out.write(" ".join(sorted(found)))
    """
)


def _imported(tmp_path: object, words: List[str]) -> FrozenSet[str]:
    """The modules a child interpreter imported to run ``words`` (``["probe"]``: a probe from Python)."""
    where = os.path.join(str(tmp_path), "modules.txt")
    env = dict(os.environ, KVMPROBE_DEVICE="/dev/kvm-made-up", NO_COLOR="1")
    env.pop("KVMPROBE_BACKEND", None)
    done = subprocess.run([sys.executable, "-c", _CHILD, where, *words], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    with open(where, encoding="utf-8") as handle:
        return frozenset(handle.read().split())


@pytest.mark.parametrize(("command", "uses", "needs"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_a_command_loads_only_what_it_uses(
    tmp_path: object, command: str, uses: Tuple[str, ...], needs: FrozenSet[str]
) -> None:
    found = _imported(tmp_path, command.split())
    words = command.split()
    own = {f"kvmprobe._cli._{'dump' if words[0].startswith('-') else words[0]}"}
    allowed = CORE | own | frozenset().union(*(FEATURES[name] for name in uses))
    assert sorted(m for m in found if m.startswith("kvmprobe") and m not in allowed) == []
    assert sorted(found & COSTLY - needs) == []


def test_a_probe_from_python_loads_the_probe_only(tmp_path: object) -> None:
    found = _imported(tmp_path, ["probe"])
    assert sorted(m for m in found if m.startswith("kvmprobe") and m not in CORE) == []
    assert sorted(found & COSTLY) == []
    # the CLI's shell and the output's decoration are a command's, not the probe's
    assert not found & {"kvmprobe._cli", "kvmprobe._cli._common", "kvmprobe._bitmasks", "kvmprobe._collisions"}


def test_every_feature_module_exists() -> None:
    import importlib.util

    for name in sorted(CORE.union(*FEATURES.values()) - {"kvmprobe._kvmbatch", "kvmprobe._kvmbatch.lib"}):
        assert importlib.util.find_spec(name) is not None, name
