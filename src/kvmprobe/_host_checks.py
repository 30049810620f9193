"""The doctor's checks that read the host's facts, not the kernel's answers: the KVM module and
its nested parameter, the CPU flags, the hypervisor below, the firmware's VT setting, the nodes
VMMs open (vhost-net, vhost-vsock, tun).

Imports ``_check_model``, ``_host_facts``, ``_kvm_backends``, ``_remedies``, ``_access`` and
``_arch``.
:class:`HostChecks` is a part of ``_checks.Judge`` (which sets the facts, the account judged and
whether the device works); these checks only explain, never decide the verdict.
"""

from __future__ import annotations

from . import _remedies
from ._access import AclEntry, Who, may_open
from ._arch import canonical
from ._check_model import Check, Status
from ._host_facts import MSR_FEATURE_CONTROL, MSR_VM_CR, HostFacts
from ._kvm_backends import BACKENDS, PVM, backend_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping, Optional, Tuple

__all__ = ["HostChecks"]


class HostChecks:
    """The host-facts checks; ``_checks.Judge`` provides what they read."""

    facts: HostFacts
    works: bool
    backend_present: bool
    who: Optional[Who]
    who_text: str
    as_other: bool
    acls: Mapping[str, Optional[Tuple[AclEntry, ...]]]
    recorded: bool  # the facts are a recording's: a remedy would be for that host, not this one

    def explain(self, status: Status) -> Status:
        # An explanation never overrules a working device: what would be a FAIL is a WARN then.
        return Status.WARN if status is Status.FAIL and self.works else status

    def kvm_module(self) -> Check:
        facts = self.facts
        backend = facts.kvm_backend
        others = sorted(set(facts.kvm_modules) - {backend or "", "kvm"})
        also = f"; also {', '.join(others)}" if others else ""
        if backend == PVM:
            return Check("kvm-module", Status.PASS, f"{PVM} loaded (PVM: runs guests without VT-x/AMD-V){also}")
        if backend == "built-in":
            return Check("kvm-module", Status.PASS, f"KVM built into the {facts.machine} kernel (/sys/module/kvm)")
        if backend is not None:
            return Check("kvm-module", Status.PASS, f"{backend} loaded{also}")
        found = (
            f"only the kvm core is loaded, no backend ({', '.join(b.module for b in BACKENDS if b.arch == 'x86_64')})"
            if "kvm" in facts.kvm_modules
            else "no KVM module in /sys/module"
        )
        if self.works:
            return Check("kvm-module", Status.INFO, f"{found}, yet the device works")
        return Check("kvm-module", Status.FAIL, found, _remedies.module_remedy(facts))

    def nested(self) -> Check:
        facts = self.facts
        backend = facts.kvm_backend
        if backend is None:
            return Check("nested", Status.SKIP, "no KVM backend loaded")
        known = backend_of(backend)
        if known is not None and known.nested_param is None:
            return Check("nested", Status.INFO, f"{backend} has no 'nested' parameter")
        module = "kvm" if backend == "built-in" else backend
        raw = facts.kvm_modules.get(module, {}).get("nested")
        if raw is None:
            if backend == "built-in" and canonical(facts.machine) == "aarch64":
                return Check("nested", Status.INFO, "arm64 chooses nested virtualization at boot (kvm-arm.mode=nested)")
            return Check("nested", Status.INFO, f"{module} has no 'nested' parameter here: unknown")
        enabled = facts.nested_enabled
        state = {True: "on", False: "off", None: "unreadable"}[enabled]
        scope = (
            "VMs on this host may use KVM themselves"
            if enabled
            else "VMs on this host cannot use KVM themselves; this does not affect VMMs running on this host"
        )
        summary = f"{module}.nested={raw} ({state}): {scope}"
        if enabled:
            return Check("nested", Status.INFO, summary)
        option = module.replace("_", "-")
        if facts.proc_modules is False or backend == "built-in":
            recipe = (
                f"read-only at runtime; to turn it on, add '{option}.nested=1' to the kernel command line and reboot"
            )
        else:
            recipe = (
                f"read-only while {module} is loaded ('modprobe {module} nested=1' then does nothing); to turn it "
                f"on, stop all VMs and 'sudo modprobe -r {module} && sudo modprobe {module} nested=1', and to keep "
                f"it, put 'options {module} nested=1' in /etc/modprobe.d/kvm.conf"
            )
        return Check("nested", Status.INFO, summary, recipe)

    def cpu_flags(self) -> Check:
        facts = self.facts
        if not _remedies.is_x86(facts):
            if facts.machine.startswith("s390"):
                if "sie" in facts.cpu_flags:
                    return Check("cpu-flags", Status.PASS, "sie (s390 start-interpretive execution)")
                return Check("cpu-flags", self.explain(Status.FAIL), "no sie facility", _remedies.module_remedy(facts))
            cpu = facts.machine or "this CPU"
            return Check("cpu-flags", Status.INFO, f"{cpu} lists no virtualization flag to check")
        if facts.cpu_vendor is None and not facts.cpu_flags:
            return Check("cpu-flags", Status.SKIP, "/proc/cpuinfo could not be read")
        names = {"vmx": "vmx (Intel VT-x)", "svm": "svm (AMD-V)"}
        found = [names[f] for f in ("vmx", "svm") if f in facts.cpu_flags]
        extra = sorted(facts.cpu_flags & {"ept", "vpid", "npt"})
        if found:
            return Check("cpu-flags", Status.PASS, ", ".join(found + extra))
        row = backend_of(facts.kvm_backend)
        how = f": {facts.kvm_backend} needs neither" if row is not None and row.cpu_flag is None else ""
        if self.works:
            return Check("cpu-flags", Status.INFO, f"neither vmx nor svm, and KVM works{how}")
        if self.backend_present:
            # KVM is loaded without them, so they do not explain this failure (the other checks do).
            loaded = facts.kvm_backend or "a KVM backend"
            return Check("cpu-flags", Status.INFO, f"neither vmx nor svm, yet {loaded} is loaded{how}")
        return Check("cpu-flags", Status.FAIL, "neither vmx nor svm in /proc/cpuinfo", _remedies.module_remedy(facts))

    def hypervisor(self) -> Check:
        facts = self.facts
        if not _remedies.is_x86(facts):
            return Check("hypervisor", Status.INFO, f"not known on {facts.machine or 'this CPU'} (no hypervisor flag)")
        if not facts.in_vm:
            return Check("hypervisor", Status.PASS, "no hypervisor flag: bare metal")
        nested = "vmx" in facts.cpu_flags or "svm" in facts.cpu_flags
        if self.works:
            if facts.kvm_backend == PVM:
                how = f"{PVM}, which needs no nested VT-x/AMD-V"
            elif nested:
                how = "nested virtualization (the host passes vmx/svm through)"
            else:
                how = facts.kvm_backend or "an unidentified backend"
            summary = f"hypervisor flag: this is a virtual machine; KVM works through {how}"
            return Check("hypervisor", Status.INFO, summary)
        if nested:
            return Check("hypervisor", Status.INFO, "hypervisor flag: a virtual machine with vmx/svm passed through")
        if self.backend_present:
            loaded = facts.kvm_backend or "a KVM backend"
            summary = f"hypervisor flag: a virtual machine without vmx/svm, with {loaded} loaded"
            return Check("hypervisor", Status.INFO, summary)
        return Check(
            "hypervisor",
            Status.FAIL,
            "hypervisor flag: a virtual machine without vmx/svm; KVM here needs nested virtualization "
            "or a backend like PVM",
            _remedies.nested_host_hint(facts),
        )

    def firmware_vt(self) -> Check:
        facts = self.facts
        intel = "vmx" in facts.cpu_flags
        if not intel and "svm" not in facts.cpu_flags:
            return Check("firmware-vt", Status.INFO, "not applicable: no vmx/svm flag")
        msr = "IA32_FEATURE_CONTROL" if intel else "VM_CR"
        number = MSR_FEATURE_CONTROL if intel else MSR_VM_CR
        if facts.msr_vt is None:
            why = facts.msr_error or "not read"
            if self.recorded:  # the remedy is for the recorded host, not this one
                return Check("firmware-vt", Status.SKIP, f"MSR {msr} ({number:#x}) not recorded: {why}")
            return Check(
                "firmware-vt",
                Status.SKIP,
                f"MSR {msr} ({number:#x}) unreadable: {why}; reading /dev/cpu/0/msr needs root and the msr module "
                "('sudo modprobe msr')",
            )
        value = facts.msr_vt
        if intel:
            # Bit 0 locks the MSR; bit 2 allows VMXON outside SMX. Locked without it: VT-x is off
            # until the firmware setting changes (Intel SDM vol. 3C, 23.7).
            disabled = bool(value & 1) and not value & 0b100
            name, setting = "VT-x", "Intel Virtualization Technology (VT-x)"
        else:
            disabled = bool(value & (1 << 4))  # VM_CR.SVMDIS (AMD APM vol. 2, 15.30.1)
            name, setting = "AMD-V", "SVM mode (AMD-V)"
        if disabled:
            return Check(
                "firmware-vt",
                self.explain(Status.FAIL),
                f"{name} is disabled by the firmware ({msr} = {value:#x})",
                f"enable {setting} in the firmware setup, then power the machine off and on",
            )
        return Check("firmware-vt", Status.PASS, f"{name} enabled in the firmware ({msr} = {value:#x})")

    def node_check(self, check_id: str, path: str, module: str, purpose: str) -> Check:
        facts = self.facts
        if path not in facts.devices:
            return Check(check_id, Status.SKIP, f"{path} was not looked at (not in the host facts)")
        node = facts.devices[path]
        if node is not None and node.is_char:
            if self.who is not None and not may_open(_remedies.node_access(node, self.acls.get(path)), self.who).allowed:
                _, remedy = _remedies.permission(facts, path, who=self.who, who_text=self.who_text,
                                                 as_other=self.as_other, acl=self.acls.get(path))  # fmt: skip
                return Check(check_id, Status.WARN,
                             f"{path}: {_remedies.node_text(node)}: {self.who_text} cannot open it read-write, so "
                             f"{purpose}", remedy)  # fmt: skip
            return Check(check_id, Status.PASS, f"{path}: {_remedies.node_text(node)}")
        if facts.container is not None:
            remedy = f"pass it into the container: '--device {path}' (and load {module} on the host)"
        elif facts.proc_modules is False:
            remedy = f"this kernel has no loadable modules: use a kernel built with {module} (=y)"
        else:
            remedy = f"sudo modprobe {module}"
        found = f"{path} is a {node.kind}, not a character device" if node is not None else f"{path} is missing"
        return Check(check_id, Status.WARN, f"{found}: {purpose}", remedy)
