"""The doctor's checks: what the kernel answered, and the judge that turns it into checks.

Imports ``_remedies``, ``_check_model``, ``_host_checks``, ``_access``, ``host``, ``probing``, ``device``, ``_device_errors`` (the remedy sentences it
shares with the device), ``_backend``, ``_backend_select``, ``_ioctl``, ``_release``, ``caps`` and
``errors``; ``guest`` and ``_guest_report`` where a micro-guest runs and ``_run_verdict`` to judge what it found. :func:`ask_kernel` asks the live device (or
:func:`recorded_answers` reads a probe result), and :class:`Judge` builds one :class:`Check` per
id in :data:`CHECK_IDS` from those answers and the host facts. ``diagnosis`` turns the checks
into a verdict. The remedy sentences live in ``_remedies``.
"""

from __future__ import annotations

import errno

from . import _remedies
from ._access import AclEntry, Who, may_open
from ._backend import Backend, ForwardingBackend
from ._backend_select import select_backend
from ._check_model import Check, Status
from ._device_errors import DOCTOR_HINT, KERNEL_LOG_HINT, NOT_MAINLINE_HINT, policy_hint
from ._host_checks import HostChecks
from ._ioctl import KVM_API_VERSION, KvmIoctls
from ._release import format_version, parse_release
from .caps import Cap
from ._device_errors import is_kvm_node, other_node_hint
from .device import KvmDevice, recorded_failure
from .errors import (
    KvmIoctlError,
    KvmNotFound,
    KvmPermissionDenied,
    KvmProbeError,
    KvmUnavailable,
    NotAKvmDevice,
    UnsupportedPlatform,
    describe_errno,
)
from .host import HostFacts
from .probing import ProbeResult, probe_device

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass, field
    from typing import Dict, Mapping, Optional, Tuple

    from ._guest_report import RunReport
else:
    from ._value import dataclass, field

__all__ = ["CHECK_IDS", "DECISIVE", "Check", "Judge", "Status", "ask_kernel", "recorded_answers"]

#: Every check :func:`diagnose` may report, in the order it reports them.
CHECK_IDS = (
    "platform",
    "kernel",
    "capability-queries",  # only when a KVM_CHECK_EXTENSION query failed
    "device-node",
    "device-access",
    "api-version",
    "create-vm",
    "run",
    "kvm-module",
    "nested",
    "cpu-flags",
    "hypervisor",
    "firmware-vt",
    "vhost-net",
    "vhost-vsock",
    "tun",
)

#: The checks the verdict comes from: the kernel's own answers. Like ``create-vm``, ``run`` (KVM_RUN
#: of a micro-guest) is a SKIP where it was not asked (a fake or recorded host without it).
DECISIVE = ("device-access", "api-version", "create-vm", "run")

# How access was granted, as a person reads it (kvmprobe._access.Access.via).
_VIA = {
    "root": "root may open any device node (CAP_DAC_OVERRIDE)",
    "owner": "as its owner",
    "group": "through its group",
    "acl-user": "through an ACL entry for the account",
    "acl-group": "through an ACL entry for one of its groups",
    "other": "the mode lets everyone read and write",
}

# include/linux/miscdevice.h: KVM_MINOR 232 on MISC_MAJOR 10.
_KVM_NUMBER = "10:232"


# --- the kernel's answers -----------------------------------------------------------------


@dataclass
class Answers:
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
    probe: Optional[ProbeResult] = None  # every capability, asked in the same open (live)
    derived: bool = False  # a host derived from its kernel's source: nothing was opened or run
    run: Optional[RunReport] = None  # the micro-guest checks (kvmprobe.guest.run_checks)
    run_error: Optional[KvmProbeError] = None  # they could not be run at all
    run_skip: str = ""  # why they were not run
    immediate_exit_recorded: bool = True  # False: a recorded host without that row
    synthesized: bool = False  # made up from the capability table: no device was ever opened


class _Watch(ForwardingBackend):
    """A Backend that forwards to another and notes whether ``open`` succeeded and what
    ``KVM_GET_API_VERSION`` returned, so a failure inside ``KvmDevice.open`` can be placed."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.opened = False
        self.api_version: Optional[int] = None

    def open(self, path: str) -> int:
        fd = self.inner.open(path)  # ownership: KvmDevice closes it through close()
        self.opened = True
        return fd

    def ioctl(self, fd: int, request: int, arg: int = 0) -> int:
        result = self.inner.ioctl(fd, request, arg)
        if request == KvmIoctls.for_machine().KVM_GET_API_VERSION:
            self.api_version = result
        return result


def ask_kernel(path: str, backend: Optional[Backend], create_vm: bool, run: bool = False) -> Answers:
    answers = Answers("live")
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
        answers.probe = _every_capability(kvm)
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
    if not run:
        answers.run_skip = "not run (diagnose(run=True) or 'kvmprobe doctor' on the live host runs it)"
    elif answers.vm_created:
        run_micro_guest(answers, path, backend)
    return answers


def run_micro_guest(answers: Answers, path: str, backend: Optional[Backend]) -> None:
    """The standard micro-guest checks into ``answers`` (a guest that cannot be built here is a SKIP)."""
    from .errors import GuestError
    from .guest import run_checks  # only when a guest runs: it brings the watchdog and the code

    try:
        answers.run = run_checks(device=path, backend=backend)
    except GuestError as err:
        answers.run_skip = err.message
    except KvmProbeError as err:
        answers.run_error = err
def _every_capability(kvm: KvmDevice) -> Optional[ProbeResult]:
    """Every capability, asked on the doctor's one open of the device by the one batch probe
    (what later sections, such as the confidential-VM one, read instead of opening it again);
    ``None`` if the batch fails."""
    try:
        return probe_device(kvm)
    except OSError:
        return None


def recorded_answers(result: ProbeResult, how: str) -> Answers:
    answers = Answers(how, opened=True, api_version=result.api_version, derived=result.derivation is not None,
                      synthesized=result.synthesized)
    if how == "recorded" and result.api_version == 0 and not answers.derived and not answers.synthesized:
        unanswered = _unanswered(answers, result)
        if unanswered is not None:
            return unanswered
    if result.api_version != KVM_API_VERSION:
        # A live device with another version fails at open; a recording keeps what it answered.
        answers.api_error = NotAKvmDevice(
            f"{result.device} answered KVM API version {result.api_version}; every VMM needs {KVM_API_VERSION}",
            hint=NOT_MAINLINE_HINT,
            path=result.device,
        )
    if result.vm_created:
        answers.vm_created = True
    elif answers.derived:
        answers.vm_skip = "a host derived from source: no VM was created"
    elif how == "recorded":
        answers.vm_skip = "the recorded host was probed without creating a VM"
    else:
        answers.vm_skip = "the probe did not create a VM (probe(vm=True) does)"
    if Cap.IMMEDIATE_EXIT in result.not_recorded:
        answers.immediate_exit_recorded = False  # no answer: neither 0 nor an error
    elif Cap.IMMEDIATE_EXIT not in result.errors:
        answers.immediate_exit = result.values.get(Cap.IMMEDIATE_EXIT, 0)
    else:
        answers.immediate_exit_errno = result.errors[Cap.IMMEDIATE_EXIT]
    answers.query_errors = dict(result.errors)
    answers.run = result.run
    if result.run is None:
        answers.run_skip = (
            "not recorded (the host was recorded without 'snapshot --run')"
            if how == "recorded"
            else "not run: a probe result was given (kvmprobe.guest.run_checks() runs it)"
        )
    return answers


def _unanswered(answers: Answers, result: ProbeResult) -> Optional[Answers]:
    """A recording of a device that never answered KVM_GET_API_VERSION (API version 0, no value,
    every query failed with one errno, or none asked): what a live doctor finds when the open or
    that ioctl fails. ``kvmprobe-collect.py`` writes such documents where KVM cannot be asked."""
    codes = set(result.errors.values())
    if result.values or len(codes) > 1:
        return None
    answers.api_version = None
    answers.vm_skip = "KVM did not answer when the host was recorded"
    answers.run_skip = "not recorded (KVM did not answer when the host was recorded)"
    if codes:
        answers.opened, error = recorded_failure(result.device, codes.pop())
    else:  # no row at all: not Linux, or no ioctl encoding for the architecture (the platform check says)
        answers.opened = False
        error = KvmIoctlError(
            f"{result.device} was not asked when the host was recorded (see the platform check)",
            hint="record the host on Linux with an architecture kvmprobe knows",
            path=result.device,
        )
    if answers.opened:
        answers.api_error = error
    else:
        answers.open_error = error
    return answers


# --- the checks -----------------------------------------------------------------------------


def _own(hint: str) -> str:
    """An error's hint as the doctor gives it: never "run the doctor" from inside the doctor."""
    return KERNEL_LOG_HINT if hint == DOCTOR_HINT else hint


class Judge(HostChecks):
    """Builds every check from the facts and the answers.

    Access to the nodes is judged for the account that runs the VMM: ``who`` (``--as-user``,
    then ``as_other``), else this process as the facts describe it; ``acls`` are the nodes'
    access ACLs where read.
    """

    def __init__(
        self,
        facts: HostFacts,
        answers: Answers,
        path: str,
        *,
        facts_known: bool = True,
        who: Optional[Who] = None,
        who_text: str = "",
        acls: Optional[Mapping[str, Optional[Tuple[AclEntry, ...]]]] = None,
    ) -> None:
        self.facts = facts
        self.facts_known = facts_known
        self.answers = answers
        self.recorded = answers.how == "recorded"
        self.path = path
        self.as_other = who is not None
        self.who: Optional[Who] = who if who is not None else (
            _remedies.process_who(facts) if facts.uid is not None else None)  # fmt: skip
        self.who_text = who_text or _remedies.user_text(facts)
        self.acls = acls or {}
        self.works = bool(answers.opened) and answers.api_error is None and answers.open_error is None
        # KVM registered its device or a backend module is loaded: CPU flags then explain nothing.
        self.backend_present = facts.kvm_backend is not None or facts.kvm_misc_dev is not None

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
        if not self.answers.immediate_exit_recorded:
            return Check("kernel", Status.INFO, f"Linux {release}; {cap.c_name} is not recorded (the recorded host has no answer for it)")
        failed = self.answers.immediate_exit_errno
        if value is None and failed is not None:
            return Check(
                "kernel",
                Status.WARN,
                f"Linux {release}: KVM_CHECK_EXTENSION({cap.c_name}) failed with {describe_errno(failed)}, so "
                "whether VMMs that require it (Cloud Hypervisor) can start here is unknown",
                f"{policy_hint(False)}; 'python -m kvmprobe has {cap.name}' asks again",
            )
        version = parse_release(release)
        if value == 0:
            if version is not None and version >= cap.since:  # no upgrade to a release it already is
                upgrade = (
                    f"this kernel is {since} or newer, yet its KVM does not offer {cap.c_name}: check the kernel's "
                    "build and the KVM backend ('dmesg | grep -i kvm'), or use a kernel whose KVM has it"
                )
            return Check(
                "kernel",
                Status.WARN,
                f"Linux {release}: KVM lacks {cap.c_name} (mainline since {since}); VMMs that require it, "
                "such as Cloud Hypervisor (since v21.1), refuse to start here",
                upgrade,
            )
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
            return Check("device-node", Status.FAIL, f"{path} does not exist", _remedies.missing_device_remedy(facts))
        expected = facts.kvm_misc_dev or _KVM_NUMBER
        if is_kvm_node(path) or node.number == expected:
            recreate = (
                f"recreate it: 'sudo rm {path} && sudo mknod {path} c {expected.replace(':', ' ')} && "
                f"sudo chgrp kvm {path} && sudo chmod 0660 {path}' (or 'sudo udevadm trigger --name-match=kvm')"
            )
        else:  # another device, a file, a directory: never remove it; the path is the mistake
            recreate = other_node_hint(path)
        if not node.is_char:
            return Check("device-node", self.explain(Status.FAIL),
                         f"{path} is a {node.kind}, not a character device", recreate)  # fmt: skip
        if node.number != expected:
            return Check(
                "device-node",
                self.explain(Status.FAIL),
                f"{path} is {_remedies.node_text(node)}, but KVM's device number is {expected}",
                recreate,
            )
        return Check("device-node", Status.PASS, f"{path}: character device {_remedies.node_text(node)}")

    def device_access(self) -> Check:
        answers = self.answers
        facts = self.facts
        who = _remedies.user_text(facts)
        if answers.derived:
            return Check("device-access", Status.PASS,
                         f"{self.path} assumed to open read-write: the host was derived from its kernel's source, "
                         "never opened", decisive=True)  # fmt: skip
        if answers.synthesized and not self.facts_known:  # a preset made from the table: nothing was opened
            return Check("device-access", Status.PASS,
                         "no device: a host synthesized from the capability table, whose answers are assumed",
                         decisive=True)  # fmt: skip
        if answers.how == "recorded" and answers.opened:
            who = who if facts.uid is not None else "the user who recorded it"
            return Check("device-access", Status.PASS,
                         f"{self.path} opened read-write for {who} when the host was recorded",
                         decisive=True)  # fmt: skip
        if answers.how == "probe":
            return Check("device-access", Status.PASS, f"{self.path} opened read-write (the probe given)",
                         decisive=True)  # fmt: skip
        if answers.opened and self.as_other:
            return self.access_for_other()
        if answers.opened:
            return Check("device-access", Status.PASS, f"{self.path} opens read-write for {who}", decisive=True)
        err = answers.open_error
        if isinstance(err, KvmPermissionDenied):
            summary, remedy = _remedies.permission(facts, acl=self.acls.get(self.path))
            return Check("device-access", Status.FAIL, summary, remedy, decisive=True)
        if isinstance(err, KvmNotFound):
            if facts.kvm_node is None:
                remedy = _remedies.missing_device_remedy(facts)
            else:  # ENODEV/ENXIO: a node with no driver behind it
                meant = is_kvm_node(self.path) or facts.kvm_node.number == (facts.kvm_misc_dev or _KVM_NUMBER)
                remedy = _remedies.module_remedy(facts) if facts.kvm_backend is None and meant else err.hint
            return Check("device-access", Status.FAIL, err.message, remedy, decisive=True)
        message = err.message if err is not None else f"{self.path} could not be opened"
        hint = err.hint if err is not None else ""
        return Check("device-access", Status.FAIL, message, hint, decisive=True)

    def access_for_other(self) -> Check:
        """The device opened for this process; whether the ``--as-user`` account may open it is
        computed from the node's mode, owner and ACL and the account's groups (never by becoming it)."""
        node = self.facts.kvm_node
        assert self.who is not None
        how = "by its mode, owner, ACL and groups; not opened as that user"
        if node is None:
            return Check("device-access", Status.SKIP,
                         f"{self.path} was not looked at, so access for {self.who_text} is unknown", decisive=True)  # fmt: skip
        access = may_open(_remedies.node_access(node, self.acls.get(self.path)), self.who)
        if access.allowed:
            return Check("device-access", Status.PASS,
                         f"{self.path} opens read-write for {self.who_text} ({_VIA[access.via]}, {how})", decisive=True)  # fmt: skip
        summary, remedy = _remedies.permission(self.facts, who=self.who, who_text=self.who_text, as_other=True,
                                               acl=self.acls.get(self.path))  # fmt: skip
        return Check("device-access", Status.FAIL, f"{summary} ({how})", remedy, decisive=True)

    def api_version(self) -> Check:
        answers = self.answers
        if not answers.opened:
            return Check("api-version", Status.SKIP, "needs an open device", decisive=True)
        if answers.api_error is not None:
            return Check("api-version", Status.FAIL, answers.api_error.message, _own(answers.api_error.hint), decisive=True)
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
            return Check("create-vm", Status.FAIL, err.message, _own(err.hint), decisive=True)
        return Check("create-vm", Status.SKIP, answers.vm_skip or "not asked", decisive=True)

    def run(self) -> Check:
        """KVM_RUN of the micro-guests: FAIL naming the exit, WARN far off normal, PASS with the figures."""
        answers = self.answers
        report = answers.run
        if report is None:
            if answers.run_error is not None:
                err = answers.run_error
                return Check("run", Status.FAIL, f"no guest could be run: {err.message}", _own(err.hint), decisive=True)
            if not self.works or (answers.how == "live" and not answers.vm_created):
                return Check("run", Status.SKIP, "not run: needs a VM (create-vm)", decisive=True)
            return Check("run", Status.SKIP, answers.run_skip or "not run", decisive=True)
        from ._run_verdict import judge_run

        status, summary, remedy = judge_run(report, self.facts, recorded=answers.how != "live")
        return Check("run", Status(status), summary, remedy, decisive=True)

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
                f"{policy_hint(False)}; 'python -m kvmprobe --all' shows each one as ERROR",
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
            self.run(),
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
