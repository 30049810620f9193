"""Host diagnosis: whether KVM works here, why, and what to do (``python -m kvmprobe doctor``).

Imports ``host``, ``probing``, ``device``, ``caps``, ``_backend``, ``_ioctl``, ``_release`` and
``errors``. :func:`diagnose` turns the kernel's answers and the :class:`~kvmprobe.HostFacts`
into a :class:`Diagnosis`: a verdict and a list of :class:`Check` results, each with what
was found and, where something is wrong, the remedy.

The verdict comes from the kernel alone: the device opens read-write for this process,
answers API version 12, and creates a VM. Those three checks are *decisive*. CPU flags,
modules, module parameters and device nodes only *explain* a failure; they never overrule a
device that works (``kvm-ok`` and ``virt-host-validate`` decide from ``vmx``/``svm`` and so
call a working PVM host unusable). Checks that need root and cannot run say SKIP, never guess.
"""

from __future__ import annotations

import enum
import errno
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ._backend import Backend, CheckResults
from ._backend_select import select_backend
from ._ioctl import KVM_API_VERSION, KvmIoctls
from ._release import format_version, parse_release
from .caps import Cap
from .device import DEFAULT_DEVICE, KvmDevice, device_path
from .errors import (
    KvmNotFound,
    KvmPermissionDenied,
    KvmProbeError,
    KvmUnavailable,
    NotAKvmDevice,
    UnsupportedPlatform,
    describe_errno,
)
from .host import MSR_FEATURE_CONTROL, MSR_VM_CR, DeviceNode, HostFacts, read_host_facts
from .probing import ProbeResult

__all__ = ["CHECK_IDS", "Check", "Diagnosis", "Status", "Verdict", "diagnose"]

#: Every check :func:`diagnose` reports, in the order it reports them.
CHECK_IDS = (
    "platform",
    "kernel",
    "device-node",
    "device-access",
    "api-version",
    "create-vm",
    "kvm-module",
    "nested",
    "cpu-flags",
    "hypervisor",
    "firmware-vt",
    "vhost-net",
    "vhost-vsock",
    "tun",
)

#: The checks the verdict comes from: the kernel's own answers.
DECISIVE = ("device-access", "api-version", "create-vm")

# include/linux/miscdevice.h: KVM_MINOR 232 on MISC_MAJOR 10.
_KVM_NUMBER = "10:232"
_X86 = ("x86_64", "amd64", "i386", "i686")


class Status(enum.Enum):
    """The outcome of one check.

    PASS: as needed. WARN: works, but something a VMM may need is missing. FAIL: broken (for a
    decisive check: KVM is not usable). SKIP: could not be checked here (not root, nothing to
    ask), never a guess. INFO: a fact that explains, neither good nor bad.

    Example:
        >>> Status.WARN.value
        'WARN'
    """

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"
    INFO = "INFO"


class Verdict(enum.Enum):
    """The overall answer, from the decisive checks (plus warnings from the others).

    Example:
        >>> Verdict.USABLE_WITH_WARNINGS.value, Verdict.USABLE_WITH_WARNINGS.text
        ('usable_with_warnings', 'KVM usable, with warnings')
    """

    USABLE = "usable"
    USABLE_WITH_WARNINGS = "usable_with_warnings"
    NOT_USABLE = "not_usable"

    @property
    def text(self) -> str:
        """The verdict as a person reads it.

        Example:
            >>> Verdict.NOT_USABLE.text
            'KVM not usable'
        """
        return {
            "usable": "KVM usable",
            "usable_with_warnings": "KVM usable, with warnings",
            "not_usable": "KVM not usable",
        }[self.value]


@dataclass(frozen=True)
class Check:
    """One check: its id, outcome, what was found and, where something is wrong, the fix.

    ``remedy`` is a command or a sentence, computed from what was observed; it is set for
    WARN and FAIL, and for an INFO that tells how to change a setting (``nested``).
    ``decisive`` marks the kernel's answers the verdict comes from.

    Example:
        >>> Check("tun", Status.WARN, "/dev/net/tun is missing", "sudo modprobe tun").to_dict()["status"]
        'WARN'
    """

    id: str
    status: Status
    summary: str
    remedy: str = ""
    decisive: bool = False

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: ``id``, ``status``, ``decisive``, ``summary``, ``remedy`` (null when none).

        Example:
            >>> Check("api-version", Status.PASS, "KVM API version 12", decisive=True).to_dict()["remedy"] is None
            True
        """
        return {
            "id": self.id,
            "status": self.status.value,
            "decisive": self.decisive,
            "summary": self.summary,
            "remedy": self.remedy or None,
        }


@dataclass(frozen=True)
class Diagnosis:
    """The result of :func:`diagnose`: the verdict, the checks, and the facts they came from.

    Example:
        >>> import tempfile
        >>> from kvmprobe.testing import FakeBackend, FakeHost
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     report = diagnose(root=FakeHost.pvm().write(tmp), backend=FakeBackend({Cap.IMMEDIATE_EXIT: 1}))
        >>> report.verdict.value, report.usable, report.check("kvm-module").summary
        ('usable_with_warnings', True, 'kvm_pvm loaded (PVM: runs guests without VT-x/AMD-V)')
    """

    verdict: Verdict
    checks: Tuple[Check, ...]
    facts: HostFacts
    summary: str
    source: str = "live"
    device: str = DEFAULT_DEVICE

    @property
    def usable(self) -> bool:
        """Whether KVM can be used here (with or without warnings)."""
        return self.verdict is not Verdict.NOT_USABLE

    @property
    def warnings(self) -> List[Check]:
        """The checks that say WARN (and non-decisive FAILs).

        Example:
            >>> import tempfile
            >>> from kvmprobe.testing import FakeBackend, FakeHost
            >>> with tempfile.TemporaryDirectory() as tmp:
            ...     report = diagnose(root=FakeHost.centos7().write(tmp), backend=FakeBackend({}))
            >>> [check.id for check in report.warnings]
            ['kernel', 'vhost-vsock']
        """
        return [c for c in self.checks if c.status is Status.WARN or (c.status is Status.FAIL and not c.decisive)]

    def check(self, check_id: str) -> Check:
        """The check with this id.

        Raises:
            KeyError: no check has that id (see :data:`CHECK_IDS`).

        Example:
            >>> import errno, tempfile
            >>> from kvmprobe.testing import FakeBackend, FakeHost
            >>> with tempfile.TemporaryDirectory() as tmp:
            ...     report = diagnose(root=FakeHost.container_no_kvm().write(tmp),
            ...                       backend=FakeBackend(open_errno=errno.ENOENT))
            >>> report.check("device-access").status.value, report.usable
            ('FAIL', False)
        """
        for item in self.checks:
            if item.id == check_id:
                return item
        raise KeyError(check_id)

    def to_dict(self) -> Dict[str, Any]:
        """The JSON document of ``python -m kvmprobe doctor --json``.

        Example:
            >>> import tempfile
            >>> from kvmprobe.testing import FakeBackend, FakeHost
            >>> with tempfile.TemporaryDirectory() as tmp:
            ...     doc = diagnose(root=FakeHost.centos7().write(tmp), backend=FakeBackend({})).to_dict()
            >>> doc["verdict"], doc["usable"], [c["status"] for c in doc["checks"]][:6]
            ('usable_with_warnings', True, ['PASS', 'WARN', 'PASS', 'PASS', 'PASS', 'PASS'])
        """
        return {
            "schema": "kvmprobe-doctor/1",
            "verdict": self.verdict.value,
            "usable": self.usable,
            "summary": self.summary,
            "source": self.source,
            "device": self.device,
            "checks": [item.to_dict() for item in self.checks],
            "host": self.facts.to_dict(),
        }


# --- the kernel's answers -----------------------------------------------------------------


@dataclass
class _Answers:
    """What the kernel answered (live) or was recorded to have answered."""

    how: str  # "live", "probe" (a live ProbeResult), "recorded"
    opened: Optional[bool] = None
    open_error: Optional[KvmProbeError] = None
    api_version: Optional[int] = None
    api_error: Optional[KvmProbeError] = None
    vm_created: Optional[bool] = None
    vm_error: Optional[KvmProbeError] = None
    vm_skip: str = ""
    immediate_exit: Optional[int] = None
    immediate_exit_errno: Optional[int] = None  # its query failed with this errno
    query_errors: Dict[Cap, int] = field(default_factory=dict)  # every failed capability query


class _Watch:
    """A Backend that forwards to another and notes whether ``open`` succeeded and what
    ``KVM_GET_API_VERSION`` returned, so a failure inside ``KvmDevice.open`` can be placed."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.opened = False
        self.api_version: Optional[int] = None

    def open(self, path: str) -> int:
        fd = self.inner.open(path)  # ownership: KvmDevice closes it through close() below
        self.opened = True
        return fd

    def close(self, fd: int) -> None:
        self.inner.close(fd)

    def ioctl(self, fd: int, request: int, arg: int = 0) -> int:
        result = self.inner.ioctl(fd, request, arg)
        if request == KvmIoctls.for_machine().KVM_GET_API_VERSION:
            self.api_version = result
        return result

    def check_many(self, fd: int, request: int, numbers: Sequence[int]) -> CheckResults:
        return self.inner.check_many(fd, request, numbers)

    def ioctl_buffer(self, fd: int, request: int, buffer: bytearray) -> int:
        return self.inner.ioctl_buffer(fd, request, buffer)


def _ask_kernel(path: str, backend: Optional[Backend], create_vm: bool) -> _Answers:
    answers = _Answers("live")
    watch = _Watch(backend if backend is not None else select_backend())
    try:
        kvm = KvmDevice.open(path, backend=watch)
    except KvmUnavailable as err:
        answers.opened = watch.opened
        if watch.opened:  # open(2) worked; KVM_GET_API_VERSION failed or was not 12
            answers.api_version = watch.api_version
            answers.api_error = err
        else:
            answers.open_error = err
        return answers
    with kvm:  # the system fd is closed on leaving the block
        answers.opened = True
        answers.api_version = watch.api_version if watch.api_version is not None else KVM_API_VERSION
        try:
            answers.immediate_exit = kvm.check_extension(Cap.IMMEDIATE_EXIT)
        except KvmProbeError as err:
            answers.immediate_exit = None
            answers.immediate_exit_errno = err.errno or errno.EIO
            answers.query_errors = {Cap.IMMEDIATE_EXIT: answers.immediate_exit_errno}
        if not create_vm:
            answers.vm_skip = "not asked (create_vm=False)"
            return answers
        try:
            with kvm.create_vm():  # the VM fd is closed at once
                pass
            answers.vm_created = True
        except KvmUnavailable as err:
            answers.vm_created = False
            answers.vm_error = err
    return answers


def _recorded_answers(result: ProbeResult, how: str) -> _Answers:
    answers = _Answers(how, opened=True, api_version=result.api_version)
    if result.api_version != KVM_API_VERSION:
        # A live device with another version fails at open; a recording keeps what it answered.
        answers.api_error = NotAKvmDevice(
            f"{result.device} answered KVM API version {result.api_version}; every VMM needs {KVM_API_VERSION}",
            hint="this kernel's KVM is not the mainline interface; use a mainline KVM kernel",
            path=result.device,
        )
    if result.vm_created:
        answers.vm_created = True
    elif how == "recorded":
        answers.vm_skip = "the recorded host was probed without creating a VM"
    else:
        answers.vm_skip = "the probe did not create a VM (probe(vm=True) does)"
    if Cap.IMMEDIATE_EXIT not in result.errors:
        answers.immediate_exit = result.values.get(Cap.IMMEDIATE_EXIT, 0)
    else:
        answers.immediate_exit_errno = result.errors[Cap.IMMEDIATE_EXIT]
    answers.query_errors = dict(result.errors)
    return answers


# --- wording helpers ------------------------------------------------------------------------


def _who(facts: HostFacts) -> str:
    if facts.uid is None:
        return "this user"
    return f"{facts.user_name} (uid {facts.uid})" if facts.user_name else f"uid {facts.uid}"


def _node_text(node: DeviceNode) -> str:
    number = f" {node.number}" if node.number else ""
    return f"{node.mode_text}{number} {node.owner_text}"


def _is_x86(facts: HostFacts) -> bool:
    return facts.machine in _X86


def _vendor_module(facts: HostFacts) -> Optional[str]:
    if "vmx" in facts.cpu_flags:
        return "kvm_intel"
    if "svm" in facts.cpu_flags:
        return "kvm_amd"
    return None


def _nested_host_hint(facts: HostFacts) -> str:
    return (
        "this is a virtual machine whose CPU shows neither vmx nor svm: enable nested virtualization on the "
        "host that runs it (there: kvm_intel/kvm_amd nested=1 and a CPU model that passes vmx/svm through, "
        "e.g. QEMU '-cpu host' or libvirt <cpu mode='host-passthrough'/>; on a cloud, an instance type with "
        "nested virtualization or bare metal), or boot this guest with a PVM kernel and 'modprobe kvm_pvm'"
    )


def _module_remedy(facts: HostFacts) -> str:
    """How to get a KVM backend loaded, from the CPU flags and whether modules can be loaded."""
    if not _is_x86(facts) and facts.machine:
        if facts.machine.startswith("s390") and "sie" not in facts.cpu_flags:
            return "this s390 system lacks the SIE facility: KVM needs an LPAR or z/VM guest with SIE"
        return (
            f"on {facts.machine} KVM is part of the kernel: boot a kernel with CONFIG_KVM=y (on arm64 entered "
            "at EL2, i.e. not as a guest without nested support) and look at 'dmesg | grep -i kvm'"
        )
    module = _vendor_module(facts)
    no_modules = facts.proc_modules is False
    if module is None:
        if facts.in_vm:
            return _nested_host_hint(facts)
        return (
            "the CPU shows neither vmx nor svm: enable Intel VT-x or AMD-V (SVM mode) in the firmware setup, "
            "power the machine off and on, then load kvm_intel or kvm_amd"
        )
    if no_modules:
        return (
            f"this kernel has no loadable modules (no /proc/modules): boot a kernel built with "
            f"CONFIG_{module.upper()}=y"
        )
    return f"sudo modprobe {module} (if it fails, 'dmesg | grep -i kvm' says why, e.g. 'disabled by bios')"


def _missing_device_remedy(facts: HostFacts) -> str:
    path = facts.kvm_device
    registered = facts.kvm_misc_dev
    if facts.container is not None:
        remedy = (
            f"this process runs in a {facts.container} container without {path}: start it with "
            f"'--device {path}' (docker/podman run), or on Kubernetes request a KVM device plugin resource "
            "(e.g. devices.kubevirt.io/kvm)"
        )
        if registered is None and facts.kvm_backend is None:
            remedy += "; first make sure the host has KVM ('python -m kvmprobe doctor' on the host)"
        return remedy
    if registered is not None:
        major, _, minor = registered.partition(":")
        return (
            f"KVM is loaded (misc device {registered}) but {path} is missing: let udev create it "
            f"('sudo udevadm trigger --name-match=kvm'), or 'sudo mknod {path} c {major} {minor} && "
            f"sudo chgrp kvm {path} && sudo chmod 0660 {path}'"
        )
    return _module_remedy(facts)


def _udev_remedy(facts: HostFacts, path: str) -> str:
    prefix = "" if facts.group_named("kvm") else "there is no 'kvm' group here: 'sudo groupadd --system kvm', then "
    return (
        f"{prefix}give {path} to group kvm with a udev rule: KERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0660\" in "
        "/etc/udev/rules.d/65-kvm.rules and 'sudo udevadm control --reload && sudo udevadm trigger "
        f"--name-match=kvm' (or 'sudo chgrp kvm {path} && sudo chmod 0660 {path}' until the next boot), "
        "then 'sudo usermod -aG kvm $USER' and log out and in again; or run the VMM as root"
    )


def _permission(facts: HostFacts) -> Tuple[str, str]:
    """(what was observed, the remedy) for EACCES/EPERM on open, from the node and the groups."""
    path = facts.kvm_device
    node = facts.kvm_node
    who = _who(facts)
    if node is None:
        return (
            f"{path}: permission denied for {who}",
            f"run as root, or ask for read-write access to {path} (e.g. 'sudo usermod -aG kvm $USER', then "
            "log out and in again)",
        )
    base = f"{path}: permission denied for {who} ({_node_text(node)})"
    lsm = (
        f"check 'getfacl {path}' and 'ls -Z {path}' (an ACL or SELinux/AppArmor label can deny it); in a "
        f"container, start it with '--device {path}' so its device cgroup allows it"
    )
    if facts.uid == 0:
        return base + "; even root is refused, so a policy denies it", lsm
    group_rw = node.mode & 0o060 == 0o060
    if node.mode & 0o006 == 0o006:
        return base + "; the mode lets everyone read and write, so a policy denies it", lsm
    if node.gid == 0 or not group_rw:
        mode = f"{node.mode:04o}"
        return base + f"; only its owner may open it (mode {mode})", _udev_remedy(facts, path)
    group = facts.group(node.gid)
    if group is None:
        return (
            base + f"; its group (gid {node.gid}) has no entry in /etc/group",
            f"create that group ('sudo groupadd -g {node.gid} kvm') and 'sudo usermod -aG kvm $USER', then log "
            "out and in again; or give the node the kvm group with a udev rule",
        )
    in_session = node.gid == facts.gid or node.gid in facts.groups
    listed = facts.user_name is not None and facts.user_name in group.members
    if in_session:
        return base + f"; this process is in group '{group.name}', which may read and write it", lsm
    if listed:
        return (
            base + f"; {facts.user_name} is in group '{group.name}' in /etc/group, but not in this session's "
            "groups (added after this login)",
            f"log out and in again (or run 'newgrp {group.name}') so the group takes effect",
        )
    user = facts.user_name or "this user"
    return (
        base + f"; {user} is not in group '{group.name}'",
        f"sudo usermod -aG {group.name} $USER, then log out and in again",
    )


# --- the checks -----------------------------------------------------------------------------


class _Judge:
    """Builds every check from the facts and the answers."""

    def __init__(self, facts: HostFacts, answers: _Answers, path: str, *, facts_known: bool = True) -> None:
        self.facts = facts
        self.facts_known = facts_known
        self.answers = answers
        self.path = path
        self.works = bool(answers.opened) and answers.api_error is None and answers.open_error is None
        # KVM registered its device or a backend module is loaded: CPU flags then explain nothing.
        self.backend_present = facts.kvm_backend is not None or facts.kvm_misc_dev is not None

    def explain(self, status: Status) -> Status:
        # An explanation never overrules a working device: what would be a FAIL is a WARN then.
        return Status.WARN if status is Status.FAIL and self.works else status

    def platform(self) -> Check:
        facts = self.facts
        where = f" ({facts.container} container)" if facts.container else ""
        if not facts.system:
            return Check("platform", Status.SKIP, f"unknown (no /proc/sys/kernel/ostype); {facts.machine}{where}")
        text = f"{facts.system} {facts.machine}{where}"
        if facts.system != "Linux":
            return Check("platform", self.explain(Status.FAIL), text + ": KVM is a Linux interface",
                         "run kvmprobe on the Linux host itself")  # fmt: skip
        try:
            KvmIoctls.for_machine(facts.machine)
        except UnsupportedPlatform as err:
            return Check("platform", self.explain(Status.FAIL), f"{text}: {err.message}", err.hint)
        return Check("platform", Status.PASS, text)

    def kernel(self) -> Check:
        release = self.facts.kernel_release
        cap = Cap.IMMEDIATE_EXIT
        since = format_version(cap.since)
        if not release:
            return Check("kernel", Status.SKIP, "release unknown (no /proc/sys/kernel/osrelease)")
        value = self.answers.immediate_exit
        upgrade = (
            f"upgrade to Linux {since} or newer (or a vendor kernel that backports {cap.c_name}); "
            f"'python -m kvmprobe has {cap.name}' checks again"
        )
        if value is not None and value > 0:
            return Check("kernel", Status.PASS, f"Linux {release}; KVM answers {cap.c_name}")
        failed = self.answers.immediate_exit_errno
        if value is None and failed is not None:
            return Check(
                "kernel",
                Status.WARN,
                f"Linux {release}: KVM_CHECK_EXTENSION({cap.c_name}) failed with {describe_errno(failed)}, so "
                "whether VMMs that require it (Cloud Hypervisor) can start here is unknown",
                "a security policy (seccomp, SELinux, a container runtime) may block KVM ioctls for this process; "
                f"'python -m kvmprobe has {cap.name}' asks again",
            )
        if value == 0:
            return Check(
                "kernel",
                Status.WARN,
                f"Linux {release}: KVM lacks {cap.c_name} (mainline since {since}); VMMs that require it, "
                "such as Cloud Hypervisor (since v21.1), refuse to start here",
                upgrade,
            )
        version = parse_release(release)
        if version is not None and version < cap.since:
            return Check(
                "kernel",
                Status.WARN,
                f"Linux {release} predates {since}, which added {cap.c_name} (Cloud Hypervisor requires it); "
                "a vendor kernel may have backported it: the device's answer decides",
                upgrade,
            )
        return Check("kernel", Status.PASS, f"Linux {release}")

    def device_node(self) -> Check:
        facts = self.facts
        node = facts.kvm_node
        path = facts.kvm_device
        if path not in facts.devices:
            return Check("device-node", Status.SKIP, f"{path} was not looked at (not in the host facts)")
        if node is None:
            if self.works:
                return Check("device-node", Status.INFO, f"{path} does not exist under the root read, yet it opened")
            return Check("device-node", Status.FAIL, f"{path} does not exist", _missing_device_remedy(facts))
        expected = facts.kvm_misc_dev or _KVM_NUMBER
        recreate = (
            f"recreate it: 'sudo rm {path} && sudo mknod {path} c {expected.replace(':', ' ')} && "
            f"sudo chgrp kvm {path} && sudo chmod 0660 {path}' (or 'sudo udevadm trigger --name-match=kvm')"
        )
        if not node.is_char:
            return Check("device-node", self.explain(Status.FAIL),
                         f"{path} is a {node.kind}, not a character device", recreate)  # fmt: skip
        if node.number != expected:
            return Check(
                "device-node",
                self.explain(Status.FAIL),
                f"{path} is {_node_text(node)}, but KVM's device number is {expected}",
                recreate,
            )
        return Check("device-node", Status.PASS, f"{path}: character device {_node_text(node)}")

    def device_access(self) -> Check:
        answers = self.answers
        facts = self.facts
        who = _who(facts)
        if answers.how == "recorded":
            who = who if facts.uid is not None else "the user who recorded it"
            return Check("device-access", Status.PASS,
                         f"{self.path} opened read-write for {who} when the host was recorded",
                         decisive=True)  # fmt: skip
        if answers.how == "probe":
            return Check("device-access", Status.PASS, f"{self.path} opened read-write (the probe given)",
                         decisive=True)  # fmt: skip
        if answers.opened:
            return Check("device-access", Status.PASS, f"{self.path} opens read-write for {who}", decisive=True)
        err = answers.open_error
        if isinstance(err, KvmPermissionDenied):
            summary, remedy = _permission(facts)
            return Check("device-access", Status.FAIL, summary, remedy, decisive=True)
        if isinstance(err, KvmNotFound):
            if facts.kvm_node is None:
                remedy = _missing_device_remedy(facts)
            else:  # ENODEV/ENXIO: a node with no driver behind it
                remedy = _module_remedy(facts) if facts.kvm_backend is None else err.hint
            return Check("device-access", Status.FAIL, err.message, remedy, decisive=True)
        message = err.message if err is not None else f"{self.path} could not be opened"
        hint = err.hint if err is not None else ""
        return Check("device-access", Status.FAIL, message, hint, decisive=True)

    def api_version(self) -> Check:
        answers = self.answers
        if not answers.opened:
            return Check("api-version", Status.SKIP, "needs an open device", decisive=True)
        if answers.api_error is not None:
            return Check("api-version", Status.FAIL, answers.api_error.message, answers.api_error.hint, decisive=True)
        return Check("api-version", Status.PASS, f"KVM API version {answers.api_version}", decisive=True)

    def create_vm(self) -> Check:
        answers = self.answers
        if not self.works:
            return Check("create-vm", Status.SKIP, "needs an open KVM device", decisive=True)
        if answers.vm_created:
            how = " (recorded)" if answers.how == "recorded" else "; the VM was closed at once"
            return Check("create-vm", Status.PASS, f"KVM_CREATE_VM works{how}", decisive=True)
        err = answers.vm_error
        if err is not None:
            return Check("create-vm", Status.FAIL, err.message, err.hint, decisive=True)
        return Check("create-vm", Status.SKIP, answers.vm_skip or "not asked", decisive=True)

    def kvm_module(self) -> Check:
        facts = self.facts
        backend = facts.kvm_backend
        others = sorted(set(facts.kvm_modules) - {backend or "", "kvm"})
        also = f"; also {', '.join(others)}" if others else ""
        if backend == "kvm_pvm":
            return Check("kvm-module", Status.PASS, f"kvm_pvm loaded (PVM: runs guests without VT-x/AMD-V){also}")
        if backend == "built-in":
            return Check("kvm-module", Status.PASS, f"KVM built into the {facts.machine} kernel (/sys/module/kvm)")
        if backend is not None:
            return Check("kvm-module", Status.PASS, f"{backend} loaded{also}")
        found = (
            "only the kvm core is loaded, no backend (kvm_intel, kvm_amd, kvm_pvm)"
            if "kvm" in facts.kvm_modules
            else "no KVM module in /sys/module"
        )
        if self.works:
            return Check("kvm-module", Status.INFO, f"{found}, yet the device works")
        return Check("kvm-module", Status.FAIL, found, _module_remedy(facts))

    def nested(self) -> Check:
        facts = self.facts
        backend = facts.kvm_backend
        if backend is None:
            return Check("nested", Status.SKIP, "no KVM backend loaded")
        if backend == "kvm_pvm":
            return Check("nested", Status.INFO, "kvm_pvm has no 'nested' parameter")
        module = "kvm" if backend == "built-in" else backend
        raw = facts.kvm_modules.get(module, {}).get("nested")
        if raw is None:
            if backend == "built-in" and facts.machine in ("aarch64", "arm64"):
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
        if not _is_x86(facts):
            if facts.machine.startswith("s390"):
                if "sie" in facts.cpu_flags:
                    return Check("cpu-flags", Status.PASS, "sie (s390 start-interpretive execution)")
                return Check("cpu-flags", self.explain(Status.FAIL), "no sie facility", _module_remedy(facts))
            cpu = facts.machine or "this CPU"
            return Check("cpu-flags", Status.INFO, f"{cpu} lists no virtualization flag to check")
        if facts.cpu_vendor is None and not facts.cpu_flags:
            return Check("cpu-flags", Status.SKIP, "/proc/cpuinfo could not be read")
        names = {"vmx": "vmx (Intel VT-x)", "svm": "svm (AMD-V)"}
        found = [names[f] for f in ("vmx", "svm") if f in facts.cpu_flags]
        extra = sorted(facts.cpu_flags & {"ept", "vpid", "npt"})
        if found:
            return Check("cpu-flags", Status.PASS, ", ".join(found + extra))
        how = f": {facts.kvm_backend} needs neither" if facts.kvm_backend == "kvm_pvm" else ""
        if self.works:
            return Check("cpu-flags", Status.INFO, f"neither vmx nor svm, and KVM works{how}")
        if self.backend_present:
            # KVM is loaded without them, so they do not explain this failure (the other checks do).
            loaded = facts.kvm_backend or "a KVM backend"
            return Check("cpu-flags", Status.INFO, f"neither vmx nor svm, yet {loaded} is loaded{how}")
        return Check("cpu-flags", Status.FAIL, "neither vmx nor svm in /proc/cpuinfo", _module_remedy(facts))

    def hypervisor(self) -> Check:
        facts = self.facts
        if not _is_x86(facts):
            return Check("hypervisor", Status.INFO, f"not known on {facts.machine or 'this CPU'} (no hypervisor flag)")
        if not facts.in_vm:
            return Check("hypervisor", Status.PASS, "no hypervisor flag: bare metal")
        nested = "vmx" in facts.cpu_flags or "svm" in facts.cpu_flags
        if self.works:
            if facts.kvm_backend == "kvm_pvm":
                how = "kvm_pvm, which needs no nested VT-x/AMD-V"
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
            _nested_host_hint(facts),
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
            return Check(check_id, Status.PASS, f"{path}: {_node_text(node)}")
        if facts.container is not None:
            remedy = f"pass it into the container: '--device {path}' (and load {module} on the host)"
        elif facts.proc_modules is False:
            remedy = f"this kernel has no loadable modules: use a kernel built with {module} (=y)"
        else:
            remedy = f"sudo modprobe {module}"
        found = f"{path} is a {node.kind}, not a character device" if node is not None else f"{path} is missing"
        return Check(check_id, Status.WARN, f"{found}: {purpose}", remedy)

    def capability_queries(self) -> Tuple[Check, ...]:
        """A WARN naming the capability queries that failed; nothing when none did."""
        failed = self.answers.query_errors
        if not failed:
            return ()
        shown = ", ".join(f"{cap.c_name} ({describe_errno(code).split(' ')[0]})" for cap, code in list(failed.items())[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        return (
            Check(
                "capability-queries",
                Status.WARN,
                f"{len(failed)} KVM_CHECK_EXTENSION {'query' if len(failed) == 1 else 'queries'} failed, "
                f"so {'that capability is' if len(failed) == 1 else 'those capabilities are'} unknown: {shown}{more}",
                "a security policy (seccomp, SELinux, a container runtime) may block KVM ioctls for this process; "
                "'python -m kvmprobe --all' shows each one as ERROR",
            ),
        )

    def all(self) -> Tuple[Check, ...]:
        checks = (
            self.platform(),
            self.kernel(),
            *self.capability_queries(),
            self.device_node(),
            self.device_access(),
            self.api_version(),
            self.create_vm(),
            self.kvm_module(),
            self.nested(),
            self.cpu_flags(),
            self.hypervisor(),
            self.firmware_vt(),
            self.node_check("vhost-net", "/dev/vhost-net", "vhost_net",
                            "no in-kernel virtio-net backend (QEMU vhost=on); VMMs fall back to slower userspace "
                            "networking"),
            self.node_check("vhost-vsock", "/dev/vhost-vsock", "vhost_vsock",
                            "no host-guest vsock through vhost (QEMU vhost-vsock-pci, Kata Containers)"),
            self.node_check("tun", "/dev/net/tun", "tun", "no TAP devices for guest networking"),
        )  # fmt: skip
        if self.facts_known:
            return checks
        # A recorded host without facts: only the kernel's recorded answers can be judged.
        judged = ("platform", "kernel", "capability-queries") + DECISIVE
        return tuple(
            c if c.id in judged else Check(c.id, Status.SKIP, "not recorded (the recorded host carries no host facts)")
            for c in checks
        )


def _has_facts(facts: HostFacts) -> bool:
    """Whether the facts were read from a host at all (a synthesized host's are all empty)."""
    return bool(facts.devices or facts.kvm_modules or facts.cpu_flags or facts.cpu_vendor or facts.uid is not None)


def _verdict(checks: Sequence[Check]) -> Verdict:
    decisive = {c.id: c for c in checks if c.decisive}
    if any(c.status is Status.FAIL for c in decisive.values()):
        return Verdict.NOT_USABLE
    if any(decisive[name].status is not Status.PASS for name in ("device-access", "api-version")):
        return Verdict.NOT_USABLE
    if any(c.status in (Status.WARN, Status.FAIL) for c in checks):
        return Verdict.USABLE_WITH_WARNINGS
    return Verdict.USABLE


def _summary(verdict: Verdict, checks: Sequence[Check], facts: HostFacts, *, recorded: bool) -> str:
    if verdict is Verdict.NOT_USABLE:
        failed = next((c for c in checks if c.decisive and c.status is Status.FAIL), None)
        return f"{verdict.text}: {failed.summary}" if failed else verdict.text
    backend = facts.kvm_backend or "unknown backend"
    vm = "a VM can be created" if next(c for c in checks if c.id == "create-vm").status is Status.PASS else (
        "VM creation not checked")  # fmt: skip
    opens = "the device opened when recorded" if recorded else "the device opens"
    text = f"{verdict.text}: {opens}, API version {KVM_API_VERSION}, {vm} ({backend})"
    warned = [c.id for c in checks if c.status is Status.WARN]
    if warned:
        text += f"; warnings: {', '.join(warned)}"
    return text


def diagnose(
    probe: Optional[ProbeResult] = None,
    *,
    root: str = "/",
    device: Optional[str] = None,
    backend: Optional[Backend] = None,
    create_vm: bool = True,
) -> Diagnosis:
    """Say whether KVM is usable here, why, and what to do.

    Live (no ``probe``): opens the device read-write (``O_CLOEXEC``), asks
    ``KVM_GET_API_VERSION`` and ``KVM_CHECK_EXTENSION(IMMEDIATE_EXIT)``, creates a VM and closes
    it at once (unless ``create_vm=False``), and reads the host facts under ``root``. The fds are
    closed before returning; an unusable device is the verdict, not an exception.

    Recorded (``probe`` with ``host`` facts, e.g. from a snapshot): judges the recorded answers
    and facts without touching any device; what the recording cannot tell is SKIP. A live
    :class:`~kvmprobe.ProbeResult` without facts is judged from its answers, with the facts read
    under ``root``.

    Args:
        probe: a probe result to judge instead of asking the kernel.
        root: where the host's files are (a :class:`kvmprobe.testing.FakeHost` tree in tests).
        device: the KVM device (default: ``$KVMPROBE_DEVICE`` or ``/dev/kvm``; under a fake
            ``root`` the environment is not consulted).
        backend: the ioctl backend (a :class:`kvmprobe.testing.FakeBackend` in tests).
        create_vm: also try ``KVM_CREATE_VM``.

    Returns:
        A :class:`Diagnosis`; ``.verdict`` is NOT_USABLE when a decisive check fails.

    Raises:
        BackendUnavailable: the forced ioctl backend cannot be loaded (the tool cannot run).
        SnapshotError: a fake host's node file is malformed.

    Example:
        >>> import errno, tempfile
        >>> from kvmprobe.testing import FakeBackend, FakeHost
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     report = diagnose(root=FakeHost.outside_kvm_group().write(tmp),
        ...                       backend=FakeBackend(open_errno=errno.EACCES))
        >>> report.verdict.value, report.check("device-access").remedy
        ('not_usable', 'sudo usermod -aG kvm $USER, then log out and in again')
    """
    fake_root = os.path.abspath(root) != "/"
    facts_known = True
    if probe is not None and probe.host is not None:
        facts = probe.host
        answers = _recorded_answers(probe, "recorded")
        path = probe.device
        source = probe.source
        # A preset synthesized from the capability table carries empty facts.
        facts_known = _has_facts(facts)
    elif probe is not None and probe.source not in ("live", "fake"):
        # A recorded host without facts (a synthesized preset): only its answers are known.
        facts = HostFacts(system="Linux", machine=probe.arch, kernel_release=probe.kernel, kvm_device=probe.device)
        answers = _recorded_answers(probe, "recorded")
        path = probe.device
        source = probe.source
        facts_known = False
    else:
        if probe is not None:
            path = probe.device
        elif device:
            path = device
        else:
            path = DEFAULT_DEVICE if fake_root else device_path()
        facts = read_host_facts(root, device=path)
        answers = _recorded_answers(probe, "probe") if probe is not None else _ask_kernel(path, backend, create_vm)
        source = probe.source if probe is not None else "live"
    checks = _Judge(facts, answers, path, facts_known=facts_known).all()
    verdict = _verdict(checks)
    return Diagnosis(
        verdict=verdict,
        checks=checks,
        facts=facts,
        summary=_summary(verdict, checks, facts, recorded=answers.how == "recorded"),
        source=source,
        device=path,
    )
