"""The confidential-VM checks: read every layer of a host, and name the one that blocks each kind.

Imports ``probing``, ``host``, ``_cc_probe`` (the live gathering), ``_cc_verdict``, ``_cc_facts``,
``_cc_data``, ``_bitmasks``, ``_collisions``, ``_kvm_backends``, ``_host_reader``, ``_backend``, ``_release``, ``caps`` and ``errors`` (and
``_cpuid`` where a CPUID leaf is shown). Public through ``kvmprobe.confidential``.

The kernel's own answer decides: ``KVM_CAP_VM_TYPES`` (Linux 6.8, the mask of VM types
``KVM_CREATE_VM`` accepts), optionally confirmed by creating a VM of the type and closing it at
once. Every other layer (CPU, BIOS, firmware, kernel, module parameter, capabilities,
``/dev/sev``, the misc cgroup, the memlock limit) explains that answer or, when KVM offers the
type, says what still stops a VMM.

Which layer blocks: when KVM offers the type, the first of kvm (the VM could not be created),
capabilities, device, cgroup and memlock that fails. When it does not, the KVM layer itself if
this KVM backend creates no confidential guest at all (``kvm_pvm``, or no backend); else the
lowest failing layer of cpu, bios, kernel, firmware and module; else the firmware when the
module parameter says yes (on Linux 6.11-6.15 it does not fold in the firmware's state); else KVM.
"""

from __future__ import annotations


from ._backend import Backend
from ._bitmasks import decode_mask, vm_type
from ._cc_data import CPUID_FIELDS, CPUID_LEAF, LOG_LINES, REMEDIES, SEV_ATTRS, SNP_POLICY_BITS, VMSA_FEATURES, Kind, cpuid_bit
from ._cc_facts import UNLIMITED, ConfidentialFacts
from ._cc_verdict import KINDS, ConfidentialReadiness, ConfidentialReport, Layer, kind_named, vm_type_name
from ._collisions import collisions
from ._kvm_backends import CONFIDENTIAL_MODULES
from ._cc_probe import confidential_device, gather_confidential
from ._release import format_version, parse_release
from .caps import Cap
from .errors import describe_errno
from ._host_reader import facts_of_live
from .host import HostFacts
from .probing import ProbeResult, probe as _probe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ["assess", "check_confidential", "read_confidential"]

# The backends whose KVM can create confidential guests at all (_kvm_backends).
_VENDOR_MODULES = CONFIDENTIAL_MODULES


def read_confidential(
    probe: Optional[ProbeResult] = None,
    *,
    root: str = "/",
    device: Optional[str] = None,
    backend: Optional[Backend] = None,
    create_vms: bool = False,
) -> ConfidentialFacts:
    """The confidential-VM facts of a host: files under ``root`` and KVM's answers.

    KVM is asked for the ``KVM_X86_GRP_SEV`` attributes of ``/dev/kvm``; with ``create_vms``
    also ``KVM_CREATE_VM`` for the SEV, SEV-ES, SNP and TDX types, each VM closed at once
    (creating one allocates kernel memory, hence opt-in). A recorded ``probe`` returns what it
    recorded (an empty :class:`ConfidentialFacts` when nothing), touching nothing.

    Raises:
        KvmUnavailable: the live device cannot be opened.

    Example:
        >>> import tempfile
        >>> from kvmprobe.testing import FakeBackend, FakeHost
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     facts = read_confidential(root=FakeHost.amd_snp().write(tmp), backend=FakeBackend({"VM_TYPES": 0x1d}),
        ...                               create_vms=True)
        >>> dict(facts.created), dict(facts.misc_capacity)
        ({2: 0, 3: 0, 4: 0, 5: 22}, {'sev': 907, 'sev_es': 99})
    """
    if probe is not None and probe.source != "live":
        return probe.confidential if probe.confidential is not None else ConfidentialFacts(kvm_note="not recorded")
    path = probe.device if probe is not None else confidential_device(device, root)
    return gather_confidential(path, root=root, backend=backend, create_vms=create_vms)


# --- judging ---------------------------------------------------------------------------------


def _remedy(key: str) -> Tuple[str, str]:
    remedy = REMEDIES[key]
    return remedy.text, remedy.source


def _flag(value: Optional[str]) -> Optional[bool]:
    """A module parameter: ``Y``/``1`` on, ``N``/``0`` off (ints before 2021's bool conversion)."""
    text = (value or "").strip()
    return True if text in ("Y", "y", "1") else False if text in ("N", "n", "0") else None


class _Judge:
    """The layers of one kind, from the probe, the host facts and the confidential facts."""

    def __init__(
        self, kind: Kind, result: ProbeResult, host: Optional[HostFacts], cc: Optional[ConfidentialFacts],
        guest_memory: Optional[int],
    ) -> None:  # fmt: skip
        self.kind = kind
        self.result = result
        self.host = host
        self.cc = cc
        self.guest_memory = guest_memory
        self.amd = kind.vendor == "AuthenticAMD"
        self.arch = host.machine if host is not None and host.machine else result.arch
        self.release = parse_release(host.kernel_release if host is not None and host.kernel_release else result.kernel)
        self.log: Tuple[str, ...] = cc.kernel_log if cc is not None and cc.kernel_log is not None else ()

    def log_says(self, layer: str) -> List[Tuple[bool, str, str]]:
        """(good, line, source) for each kernel-log line about this kind's ``layer``."""
        found = []
        for pattern in LOG_LINES:
            if self.kind.id in pattern.kinds and pattern.layer == layer:
                for line in self.log:
                    if pattern.text in line:
                        found.append((pattern.good, line, pattern.source))
        return found

    def cpu(self) -> Layer:
        kind, host = self.kind, self.host
        vendor_fix = _remedy("amd_cpu") if self.amd else _remedy("intel_cpu")
        if self.arch and self.arch != "x86_64":
            return Layer("cpu", "blocked", f"{kind.display} is an x86_64 feature; this host is {self.arch}", *vendor_fix)
        if host is None or host.cpu_vendor is None:
            return Layer("cpu", "unknown", "the CPU vendor is not recorded")
        if host.cpu_vendor != kind.vendor:
            maker = "an AMD" if self.amd else "an Intel"
            return Layer("cpu", "blocked", f"{kind.display} needs {maker} CPU ({kind.vendor}); this one is {host.cpu_vendor}",
                         *vendor_fix)  # fmt: skip
        if not self.amd:
            return Layer("cpu", "ok", f"{host.cpu_vendor}; no CPUID bit tells TDX, the kernel's tdx_host_platform flag does")
        cpuid = self.cc.cpuid if self.cc is not None else None
        if cpuid is None:
            why = self.cc.cpuid_note if self.cc is not None and self.cc.cpuid_note else "not recorded"
            return Layer("cpu", "unknown", f"CPUID {CPUID_LEAF:#x} unknown: {why}")
        eax, ebx, ecx, edx = cpuid
        text = f"CPUID {CPUID_LEAF:#x}: {_leaf_text(cpuid)}"
        bit = cpuid_bit(kind)
        if not eax >> (bit or 0) & 1:
            return Layer("cpu", "blocked", f"{text}; no {kind.cpu_flag} (EAX bit {bit})", *vendor_fix)
        if ecx == 0:
            return Layer("cpu", "blocked", f"{text}; no ASID for encrypted guests", *vendor_fix)
        return Layer("cpu", "ok", text)

    def bios(self, cpu: Layer) -> Layer:
        kind, host = self.kind, self.host
        if cpu.status == "blocked":
            return Layer("bios", "n/a", "the CPU does not offer it")
        if host is None:
            return Layer("bios", "unknown", "the CPU flags are not recorded")
        for good, line, source in self.log_says("bios"):
            if not good:
                return Layer("bios", "blocked", f"the kernel log says: {line}", REMEDIES["amd_bios_snp"].text, source)
        if not self.amd:
            if kind.cpu_flag in host.cpu_flags:
                return Layer("bios", "ok", "/proc/cpuinfo lists tdx_host_platform: the BIOS gave TDX its KeyIDs")
            return Layer("bios", "blocked",
                         "/proc/cpuinfo has no tdx_host_platform flag: the kernel found no TDX KeyIDs (a BIOS "
                         "setting), or refused TDX because hibernation is possible (boot with nohibernate)",
                         *_remedy("intel_bios_tdx"))  # fmt: skip
        if kind.cpu_flag not in host.cpu_flags:
            key = "amd_bios_snp" if kind.id == "sev-snp" else "amd_bios_sev"
            unknown_cpu = " (or the CPU lacks it: its CPUID is unknown)" if cpu.status == "unknown" else ""
            return Layer("bios", "blocked", f"/proc/cpuinfo has no {kind.cpu_flag} flag: the kernel hides it when the "
                         f"BIOS left it off{unknown_cpu}", *_remedy(key))  # fmt: skip
        cpuid = self.cc.cpuid if self.cc is not None else None
        if kind.id != "sev" and cpuid is not None and cpuid[3] <= 1:
            return Layer("bios", "blocked", f"no ASID is reserved for SEV-ES/SNP (CPUID {CPUID_LEAF:#x} EDX = {cpuid[3]})",
                         *_remedy("amd_bios_asids"))  # fmt: skip
        return Layer("bios", "ok", f"/proc/cpuinfo lists {kind.cpu_flag}: CPU and BIOS allow it")

    def firmware(self) -> Layer:
        kind, host = self.kind, self.host
        said = self.log_says("firmware")
        bad = [(line, source) for good, line, source in said if not good]
        if not self.amd:
            if bad:
                return Layer("firmware", "blocked", f"the kernel log says: {bad[-1][0]}", REMEDIES["intel_tdx_module"].text,
                             bad[-1][1])  # fmt: skip
            if said:
                return Layer("firmware", "ok", f"the kernel log says: {said[-1][1]}")
            return Layer("firmware", "unknown", "the kernel log says nothing about the TDX module" + self.log_note())
        if host is None or "/dev/sev" not in host.devices:
            return Layer("firmware", "unknown", "/dev/sev is not recorded")
        node = host.devices["/dev/sev"]
        if node is None or not node.is_char:
            return Layer("firmware", "blocked", "no /dev/sev: the ccp driver found no AMD secure processor, or is not "
                         "loaded", *_remedy("amd_firmware"))  # fmt: skip
        text = "/dev/sev is there (the ccp driver found the secure processor)"
        import re  # only for the firmware's version in the kernel's log

        versions = [m for _, line, _ in said for m in re.findall(r"SEV-SNP API:(\d+)\.(\d+)", line)]
        if kind.id == "sev-snp" and versions:
            major, minor = (int(part) for part in versions[-1])
            if (major, minor) < (1, 51):
                return Layer("firmware", "blocked", f"{text}; SNP firmware API {major}.{minor} is older than 1.51",
                             *_remedy("amd_firmware"))  # fmt: skip
            text += f"; SNP firmware API {major}.{minor}"
        return Layer("firmware", "ok", text)

    def log_note(self) -> str:
        if self.cc is None:
            return " (not recorded)"
        return f" ({self.cc.kernel_log_note})" if self.cc.kernel_log is None and self.cc.kernel_log_note else ""

    def kernel(self) -> Layer:
        kind = self.kind
        found = vm_type(kind.vm_type)
        usable = parse_release(found.usable_since) if found is not None else None
        words = self.cc.cmdline if self.cc is not None and self.cc.cmdline is not None else ()
        if self.release is None:
            return Layer("kernel", "unknown", "the kernel release is not known")
        have = format_version(self.release)
        if usable is not None and self.release < usable:
            what = {"sev": "SEV VM types", "sev-es": "SEV-ES VM types", "sev-snp": "SEV-SNP guests", "tdx": "TDX guests"}
            return Layer("kernel", "blocked", f"Linux {have} predates KVM's {what[kind.id]} (Linux {found.usable_since})"
                         if found else have, *_remedy("kernel_version"))  # fmt: skip
        if kind.id == "sev-snp" and "sev=nosnp" in words:
            return Layer("kernel", "blocked", "the kernel command line says sev=nosnp", *_remedy("amd_cmdline"))
        for good, line, source in self.log_says("kernel"):
            if not good:
                return Layer("kernel", "blocked", f"the kernel log says: {line}", REMEDIES["intel_cmdline_tdx"].text, source)
        return Layer("kernel", "ok", f"Linux {have}")

    def module(self) -> Layer:
        kind, host = self.kind, self.host
        if host is None:
            return Layer("module", "unknown", "the module parameters are not recorded")
        fix = _remedy("amd_module") if self.amd else _remedy("intel_cmdline_tdx")
        params = host.kvm_modules.get(kind.module)
        if params is None:
            return Layer("module", "blocked", f"{kind.module} is not loaded", *fix)
        raw = params.get(kind.param)
        if raw is None:
            since = vm_type(kind.vm_type)
            return Layer("module", "blocked", f"{kind.module} has no '{kind.param}' parameter: a kernel before "
                         f"{since.usable_since if since else '?'} or built without it", *_remedy("kernel_version"))  # fmt: skip
        state = _flag(raw)
        name = f"{kind.module}.{kind.param}={raw}"
        if state:
            return Layer("module", "ok", name)
        if state is None:
            return Layer("module", "unknown", f"{name}: not a yes or no")
        words = self.cc.cmdline if self.cc is not None and self.cc.cmdline is not None else ()
        asked = [w for w in words if w.replace("-", "_").split("=")[0] == f"{kind.module}.{kind.param}"]
        if asked and _flag(asked[-1].split("=", 1)[1] if "=" in asked[-1] else "Y"):
            cause = _remedy("amd_firmware") if self.amd else _remedy("intel_tdx_module")
            return Layer("module", "blocked", f"{name} although the kernel command line asks {asked[-1]}: KVM turned "
                         "it off while loading, because a lower layer failed", *cause)  # fmt: skip
        return Layer("module", "blocked", name, *fix)

    def offered(self) -> Optional[bool]:
        """Whether KVM_CAP_VM_TYPES has the kind's bit; ``None`` when it gives no answer."""
        result = self.result
        if Cap.VM_TYPES in result.errors or Cap.VM_TYPES in result.not_recorded:
            return None
        mask = result.values.get(Cap.VM_TYPES, 0)
        if mask == 0:
            return None  # no KVM_CAP_VM_TYPES: a kernel before 6.8 (or not x86)
        return bool(mask >> self.kind.vm_type & 1)

    def kvm(self, offered: Optional[bool]) -> Layer:
        kind, result = self.kind, self.result
        mask = result.values.get(Cap.VM_TYPES, 0)
        made = self.cc.created.get(kind.vm_type) if self.cc is not None else None
        attrs = self.attrs_text()
        backend = self.host.kvm_backend if self.host is not None else (result.backend or None)
        if Cap.VM_TYPES in result.not_recorded:  # cannot tell: neither offered nor refused
            return Layer("kvm", "unknown", "KVM_CAP_VM_TYPES is not recorded (the recorded host has no answer for it)"
                         + attrs)  # fmt: skip
        if Cap.VM_TYPES in result.errors:
            return Layer("kvm", "unknown", f"KVM_CHECK_EXTENSION(KVM_CAP_VM_TYPES) failed: "
                         f"{describe_errno(result.errors[Cap.VM_TYPES])}")  # fmt: skip
        shown = f"KVM_CAP_VM_TYPES = {mask:#x} ({_types_text(mask)})"
        if offered is None:
            if kind.id in ("sev", "sev-es"):
                return Layer("kvm", "unknown", "no KVM_CAP_VM_TYPES (Linux before 6.8): SEV guests start on a default "
                             "VM with KVM_SEV_INIT there, which kvmprobe does not try" + attrs)  # fmt: skip
            return Layer("kvm", "blocked", f"no KVM_CAP_VM_TYPES, so no {vm_type_name(kind.vm_type)}" + attrs,
                         *_remedy("kernel_version"))  # fmt: skip
        if offered:
            if made is not None and made != 0:
                return Layer("kvm", "blocked", f"{shown}, yet KVM_CREATE_VM({kind.vm_type}) failed: {describe_errno(made)}",
                             "the kernel log ('dmesg') says why KVM refused the VM", "")  # fmt: skip
            how = f"; KVM_CREATE_VM({kind.vm_type}) made one, closed at once" if made == 0 else ""
            return Layer("kvm", "ok", shown + how + attrs)
        refused = f"; KVM_CREATE_VM({kind.vm_type}) fails with {describe_errno(made).split(' ')[0]}" if made else ""
        text = f"{shown}: no {vm_type_name(kind.vm_type)}{refused}{attrs}"
        if self.host is not None and backend not in _VENDOR_MODULES:
            module = backend or "no backend module"
            return Layer("kvm", "blocked", f"{text}; this KVM is {module}, which creates no confidential guest",
                         f"{kind.display} guests need {kind.module} on a bare-metal {'AMD' if self.amd else 'Intel'} "
                         f"host; {module} cannot create them", kind.source)  # fmt: skip
        return Layer("kvm", "blocked", text, "see the layers below: KVM offers the type once they allow it", kind.source)

    def attrs_text(self) -> str:
        if not self.amd or self.cc is None or not self.cc.sev_attrs:
            return ""
        codes = {answer[1] for answer in self.cc.sev_attrs.values()}
        if len(codes) == 1 and None not in codes:
            return f"; KVM_X86_GRP_SEV attributes: {describe_errno(codes.pop() or 0).split(' ')[0]}"
        parts = []
        for attr in SEV_ATTRS:
            answer = self.cc.sev_attrs.get(attr.name)
            if answer is None:
                continue
            value, code = answer
            if code is not None:
                parts.append(f"{attr.name}: {describe_errno(code).split(' ')[0]}")
            elif attr.name == "KVM_X86_SEV_VMSA_FEATURES":
                parts.append(f"{attr.name} = {_named(value or 0, VMSA_FEATURES)}")
            elif attr.name == "KVM_X86_SNP_POLICY_BITS":
                parts.append(f"{attr.name} = {_named((value or 0) & ~0xFFFF, SNP_POLICY_BITS)}")
            else:
                parts.append(f"{attr.name} = {value}")
        return "; KVM_X86_GRP_SEV: " + ", ".join(parts) if parts else ""

    def capabilities(self) -> Layer:
        kind, result = self.kind, self.result
        if not kind.needs:
            return Layer("capabilities", "n/a", "none beyond the VM type")
        on_vm = self.cc.vm_fd.get(kind.vm_type) if self.cc is not None else None
        # Asked on a VM of the kind's type where one was made: MEMORY_ATTRIBUTES answers there
        # for that type, while /dev/kvm answers what the kernel was built with.
        where = f"on the fd of a {vm_type_name(kind.vm_type)} VM" if on_vm is not None else "on /dev/kvm"
        missing = []
        for need in kind.needs:
            name = need.cap.c_name
            if on_vm is not None and name in on_vm:
                value = on_vm[name]
            elif need.cap in result.errors:
                missing.append(f"{name} (its query failed)")
                continue
            else:
                value = result.values.get(need.cap, 0)
            if (value & need.bit == 0) if need.bit else value <= 0:
                decoded = decode_mask(need.cap, need.bit) if need.bit else None
                bit = f" & {decoded.text()}" if decoded is not None else ""
                missing.append(f"{name}{bit} ({need.why})")
        if missing:
            return Layer("capabilities", "blocked", f"asked {where}, missing: " + "; ".join(missing),
                         f"a kernel built with {kind.display} support offers them (see the kernel layer)",
                         kind.needs[0].source)  # fmt: skip
        return Layer("capabilities", "ok", f"asked {where}: " + ", ".join(n.cap.name for n in kind.needs))

    def device(self) -> Layer:
        host = self.host
        if not self.amd:
            return Layer("device", "n/a", "TDX guests need no device besides /dev/kvm")
        if host is None or "/dev/sev" not in host.devices:
            return Layer("device", "unknown", "/dev/sev is not recorded")
        node = host.devices["/dev/sev"]
        if node is None:
            return Layer("device", "blocked", "no /dev/sev (VMMs open it to talk to the secure processor)",
                         *_remedy("amd_firmware"))  # fmt: skip
        shown = f"/dev/sev {node.mode_text} {node.owner_text}"
        if _may_read_write(host, node.mode, node.uid, node.gid):
            return Layer("device", "ok", f"{shown}: this process may open it read-write")
        who = f"uid {host.uid}" if host.uid is not None else "this user"
        return Layer("device", "blocked", f"{shown}: {who} may not open it read-write", *_remedy("dev_sev"))

    def cgroup(self) -> Layer:
        kind, cc = self.kind, self.cc
        if cc is None:
            return Layer("cgroup", "unknown", "not recorded")
        if cc.misc_capacity is None:
            return Layer("cgroup", "unknown", "no misc.capacity (no cgroup v2 misc controller mounted, or a kernel "
                         "without CONFIG_CGROUP_MISC): the capacity is not known")  # fmt: skip
        count = cc.misc_capacity.get(kind.misc, 0)
        shared = " (SEV-ES and SEV-SNP guests share it)" if kind.misc == "sev_es" else ""
        if count == 0:
            return Layer("cgroup", "blocked", f"{cc.misc_path} lists no '{kind.misc}': capacity 0{shared}",
                         *_remedy("misc_cgroup"))  # fmt: skip
        return Layer("cgroup", "ok", f"{kind.misc} {count}{shared}")

    def memlock(self) -> Layer:
        kind, cc = self.kind, self.cc
        if not kind.pins_memory:
            return Layer("memlock", "n/a", "private memory comes from guest_memfd, not pinned against RLIMIT_MEMLOCK")
        if cc is None or cc.memlock is None:
            return Layer("memlock", "unknown", "RLIMIT_MEMLOCK is not recorded")
        soft = cc.memlock[0]
        if cc.ipc_lock:
            return Layer("memlock", "ok", "this process has CAP_IPC_LOCK, which lifts RLIMIT_MEMLOCK")
        if soft == UNLIMITED:
            return Layer("memlock", "ok", "RLIMIT_MEMLOCK is unlimited")
        text = f"RLIMIT_MEMLOCK is {_size(soft)}; KVM pins all of an SEV guest's RAM against it"
        if self.guest_memory is not None:
            if soft < self.guest_memory:
                return Layer("memlock", "blocked", f"{text}, less than the {_size(self.guest_memory)} asked for",
                             *_remedy("memlock"))  # fmt: skip
            return Layer("memlock", "ok", f"{text}, enough for {_size(self.guest_memory)}")
        return Layer("memlock", "warn", f"{text}: a VMM with this limit runs guests of at most {_size(soft)}",
                     *_remedy("memlock"))  # fmt: skip

    def judge(self) -> ConfidentialReadiness:
        kind = self.kind
        offered = self.offered()
        cpu = self.cpu()
        below = {layer.id: layer for layer in (cpu, self.bios(cpu), self.firmware(), self.kernel(), self.module())}
        kvm = self.kvm(offered)
        above = {layer.id: layer for layer in (self.capabilities(), self.device(), self.cgroup(), self.memlock())}
        notes = [c.warning() for c in collisions("x86-vm-type", kind.vm_type, "x86_64")]
        if kind.id == "tdx":
            notes += [c.warning() for c in collisions("x86-vm-type", 1, "x86_64")]
        blocking: Optional[str] = None
        unrecorded = Cap.VM_TYPES in self.result.not_recorded
        legacy = offered is None and kvm.status == "unknown" and Cap.VM_TYPES not in self.result.errors and not unrecorded
        if unrecorded:
            # The deciding answer is not in the recording: only a layer that says no decides;
            # otherwise the verdict is "cannot tell", never "blocked at the KVM layer".
            blocking = next((l.id for l in (*below.values(), *above.values()) if l.status == "blocked"), None)
        elif offered:
            blocking = next((l.id for l in (kvm, *above.values()) if l.status == "blocked"), None)
        elif legacy:
            # No KVM_CAP_VM_TYPES to ask: only a module parameter that says yes (and no layer
            # that says no) makes it ready; without that evidence KVM stays the open question.
            blocking = next((l.id for l in (*below.values(), *above.values()) if l.status == "blocked"), None)
            if blocking is None and below["module"].status != "ok":
                blocking = "kvm"
            notes.append("decided from the layers below KVM: this kernel has no KVM_CAP_VM_TYPES to ask")
        elif offered is None and kvm.status == "unknown":
            blocking = "kvm"  # the query failed: nothing says whether the type exists
        else:
            backend = self.host.kvm_backend if self.host is not None else None
            if self.host is not None and backend not in _VENDOR_MODULES:
                blocking = "kvm"
            else:
                order = ("cpu", "bios", "kernel", "firmware", "module")
                blocking = next((name for name in order if below[name].status == "blocked"), None)
                if blocking is None and below["module"].status == "ok" and offered is False:
                    param = below["module"].summary
                    cause = _remedy("amd_firmware") if self.amd else _remedy("intel_tdx_module")
                    what = "the SEV firmware is not initialized for it" if self.amd else "the TDX module or a KVM prerequisite failed"
                    below["firmware"] = Layer("firmware", "blocked", f"{param}, yet KVM offers no "
                                              f"{vm_type_name(kind.vm_type)}: {what}", *cause)  # fmt: skip
                    blocking = "firmware"
                blocking = blocking or "kvm"
        layers = (*below.values(), kvm, *above.values())
        ready = blocking is None and (offered is True or legacy)
        return ConfidentialReadiness(kind.id, kind.display, kind.vm_type, ready, blocking, layers, tuple(notes),
                                     unknown=unrecorded and blocking is None)  # fmt: skip


def _may_read_write(host: HostFacts, mode: int, uid: int, gid: int) -> bool:
    """Whether this process may open a node read-write, by its mode bits (root always may)."""
    if host.uid == 0:
        return True
    if host.uid is not None and host.uid == uid:
        return mode & 0o600 == 0o600
    if gid == host.gid or gid in host.groups:
        return mode & 0o060 == 0o060
    return mode & 0o006 == 0o006


def _named(value: int, names: Dict[int, str]) -> str:
    parts = [name for bit, name in names.items() if value & bit]
    rest = value & ~sum(names)
    return "|".join(parts + ([hex(rest)] if rest else [])) if value else "0"


def _types_text(mask: int) -> str:
    decoded = decode_mask(Cap.VM_TYPES, mask)
    return decoded.text() if decoded is not None else hex(mask)


def _leaf_text(cpuid: Sequence[int]) -> str:
    from ._cpuid import features_of  # the CPUID table, only when a leaf is shown

    eax = cpuid[0]
    names = sorted(features_of([(0x80000000, 0, 0, CPUID_LEAF, 0, 0, 0), (CPUID_LEAF, 0, 0, *cpuid)]))
    if not eax:
        return "no memory-encryption feature"
    fields = []
    registers = dict(zip(("eax", "ebx", "ecx", "edx"), cpuid))
    for register, low, width, name in CPUID_FIELDS:
        fields.append(f"{name} {registers[register] >> low & ((1 << width) - 1)}")
    return " ".join(names) + "; " + ", ".join(fields)


def _size(value: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if value >= 1 << shift and value % (1 << shift) == 0:
            return f"{value >> shift} {unit}"
    return f"{value} bytes"


# --- the public entry points --------------------------------------------------------------------


def _gather(
    probe: Optional[ProbeResult],
    root: str,
    device: Optional[str],
    backend: Optional[Backend],
    create_vms: bool,
    ask_kvm: bool = True,
) -> Tuple[ProbeResult, Optional[HostFacts], Optional[ConfidentialFacts]]:
    result = probe if probe is not None else _probe(confidential_device(device, root), backend=backend)
    if result.source != "live":
        # A recorded or made-up host: its facts as carried (None where not recorded), nothing touched.
        return result, result.host, result.confidential
    host = result.host if result.host is not None else facts_of_live(result, root)
    cc = result.confidential
    if cc is None:
        cc = gather_confidential(result.device, root=root, backend=backend, create_vms=create_vms, ask_kvm=ask_kvm)
    return result, host, cc


def check_confidential(
    kind: str,
    probe: Optional[ProbeResult] = None,
    *,
    root: str = "/",
    device: Optional[str] = None,
    backend: Optional[Backend] = None,
    create_vms: bool = False,
    guest_memory: Optional[int] = None,
) -> ConfidentialReadiness:
    """Whether a guest of ``kind`` (``sev``, ``sev-es``, ``sev-snp``, ``tdx``) can run here, and if
    not, which layer stops it and how to fix that.

    The verdict comes from ``KVM_CAP_VM_TYPES`` (and, with ``create_vms``, from
    ``KVM_CREATE_VM`` of the type, the VM closed at once); the other layers explain it. A live
    host is probed and its files read under ``root``; a recorded ``probe`` (a snapshot) is
    judged from what it recorded, and what it did not record is "unknown", never "missing".

    Args:
        kind: the kind of guest (:data:`KINDS`; ``snp`` and other spellings work).
        probe: the host (default: the live one).
        root: where the host's files are (a :class:`kvmprobe.testing.FakeHost` tree in tests).
        device: the KVM device (default: ``$KVMPROBE_DEVICE`` or ``/dev/kvm``).
        backend: the ioctl backend (a :class:`kvmprobe.testing.FakeBackend` in tests).
        create_vms: also create a VM of each confidential type and close it at once.
        guest_memory: the guest's RAM in bytes, to hold RLIMIT_MEMLOCK against (SEV, SEV-ES).

    Raises:
        UnknownVmm: ``kind`` names no kind (checked before anything is probed).
        KvmUnavailable: a live host's device cannot be used.

    Example:
        >>> from kvmprobe.testing import fake_probe_result
        >>> verdict = check_confidential("sev", fake_probe_result({"VM_TYPES": 0x1d}))
        >>> verdict.ready, verdict.layer("kvm").summary
        (True, 'KVM_CAP_VM_TYPES = 0x1d (KVM_X86_DEFAULT_VM|KVM_X86_SEV_VM|KVM_X86_SEV_ES_VM|KVM_X86_SNP_VM)')
    """
    wanted = kind_named(kind)
    result, host, cc = _gather(probe, root, device, backend, create_vms)
    return _Judge(wanted, result, host, cc, guest_memory).judge()


def assess(
    probe: Optional[ProbeResult] = None,
    *,
    kinds: Sequence[str] = KINDS,
    root: str = "/",
    device: Optional[str] = None,
    backend: Optional[Backend] = None,
    create_vms: bool = False,
    guest_memory: Optional[int] = None,
    ask_kvm: bool = True,
) -> ConfidentialReport:
    """Every kind's verdict (or those of ``kinds``) on one host, its facts read once.

    Arguments as :func:`check_confidential`; with ``ask_kvm`` false a live ``probe``'s device is
    not opened again (its answers and the files decide; the SEV attributes stay unknown).

    Example:
        >>> from kvmprobe.testing import fake_probe_result
        >>> [v.kind for v in assess(fake_probe_result({}), kinds=["snp", "tdx"]).verdicts]
        ['sev-snp', 'tdx']
    """
    wanted = [kind_named(name) for name in kinds]
    result, host, cc = _gather(probe, root, device, backend, create_vms, ask_kvm)
    verdicts = tuple(_Judge(kind, result, host, cc, guest_memory).judge() for kind in dict.fromkeys(wanted))
    answered = Cap.VM_TYPES not in result.errors and result.values.get(Cap.VM_TYPES, 0) > 0
    arch = host.machine if host is not None and host.machine else result.arch
    return ConfidentialReport(result.values.get(Cap.VM_TYPES) if answered else None, verdicts, cc, arch,
                              vm_types_recorded=Cap.VM_TYPES not in result.not_recorded)  # fmt: skip
