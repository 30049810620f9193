"""Host diagnosis: whether KVM works here, why, and what to do (``python -m kvmprobe doctor``).

Imports ``_checks`` (the checks and the judge), ``_cc_judge`` and ``_cc_verdict`` (the
confidential-VM section), ``host``, ``_host_reader``, ``probing``, ``device``, ``_backend``,
``_ioctl``, ``_arch`` and ``errors``. :func:`diagnose` turns the kernel's answers and the
:class:`~kvmprobe.HostFacts` into a :class:`Diagnosis`: a verdict and a list of :class:`Check`
results, each with what was found and, where something is wrong, the remedy (``_remedies``).

The verdict comes from the kernel alone: the device opens read-write for this process,
answers API version 12, and creates a VM. Those three checks are *decisive*. CPU flags,
modules, module parameters and device nodes only *explain* a failure; they never overrule a
device that works (``kvm-ok`` and ``virt-host-validate`` decide from ``vmx``/``svm`` and so
call a working PVM host unusable). Checks that need root and cannot run say SKIP, never guess.
"""

from __future__ import annotations

import enum
import os

from ._backend import Backend
from ._checks import CHECK_IDS, DECISIVE, Check, Judge, Status, ask_kernel, recorded_answers
from ._arch import is_x86
from ._ioctl import KVM_API_VERSION
from ._host_reader import Account, read_account, read_acls
from .device import DEFAULT_DEVICE, device_path
from .host import DEVICE_PATHS, HostFacts, read_host_facts
from .errors import KvmProbeError
from .probing import ProbeResult

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass
    from typing import Any, Dict, List, Optional, Sequence, Tuple

    from ._cc_verdict import ConfidentialReport
else:
    from ._value import dataclass

__all__ = ["CHECK_IDS", "DECISIVE", "SCHEMA_NAME", "SCHEMA_VERSION", "Check", "Diagnosis", "Status", "Verdict", "diagnose"]

#: The ``schema`` of the ``doctor --json`` document (:meth:`Diagnosis.to_dict`); kvmprobe up to
#: 0.1.0 wrote ``"kvmprobe-doctor/1"`` (name and version in one string), which is that version 1.
SCHEMA_NAME = "kvmprobe-doctor"
#: Its version; bumped when a key is removed or changes meaning.
SCHEMA_VERSION = 1

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
    #: Whether SEV, SEV-ES, SEV-SNP and TDX guests can run here (x86 hosts whose KVM is usable;
    #: ``None`` otherwise): a section of its own, which never changes the verdict.
    confidential: Optional[ConfidentialReport] = None
    as_user: Optional[Account] = None

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
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "verdict": self.verdict.value,
            "usable": self.usable,
            "summary": self.summary,
            "source": self.source,
            "device": self.device,
            "as_user": self.as_user.to_dict() if self.as_user is not None else None,
            "checks": [item.to_dict() for item in self.checks],
            "host": self.facts.to_dict(),
            "confidential": self.confidential.to_dict() if self.confidential is not None else None,
        }


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


def _summary(
    verdict: Verdict, checks: Sequence[Check], facts: HostFacts, *, recorded: bool, derived: bool = False,
    made_up: bool = False,
) -> str:
    if verdict is Verdict.NOT_USABLE:
        failed = next((c for c in checks if c.decisive and c.status is Status.FAIL), None)
        return f"{verdict.text}: {failed.summary}" if failed else verdict.text
    backend = facts.kvm_backend or "unknown backend"
    vm = "a VM can be created" if next(c for c in checks if c.id == "create-vm").status is Status.PASS else (
        "VM creation not checked")  # fmt: skip
    if any(c.id == "run" and c.status in (Status.PASS, Status.WARN) for c in checks):
        vm += " and runs a guest"
    opens = "the device opened when recorded" if recorded else "the device opens"
    if derived:
        opens = "derived from source (the device assumed to open)"
    elif made_up:
        opens = "no device (synthesized from the capability table)"
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
    run: Optional[bool] = None,
    as_user: Optional[str] = None,
) -> Diagnosis:
    """Say whether KVM is usable here, why, and what to do.

    Live (no ``probe``): opens the device read-write (``O_CLOEXEC``), asks
    ``KVM_GET_API_VERSION`` and ``KVM_CHECK_EXTENSION(IMMEDIATE_EXIT)``, creates a VM and closes
    it at once (unless ``create_vm=False``), runs the micro-guest checks (``run``), and reads the
    host facts under ``root``. The fds are
    closed before returning; an unusable device is the verdict, not an exception.

    Recorded (``probe`` with ``host`` facts, e.g. from a snapshot): judges the recorded answers
    and facts without touching any device; what the recording cannot tell is SKIP. A live
    :class:`~kvmprobe.ProbeResult` without facts is judged from its answers, with the facts read
    under ``root``.

    Args:
        probe: a probe result to judge instead of asking the kernel.
        root: where the host's files are (a :class:`kvmprobe.testing.FakeHost` tree in tests).
        device: the KVM device (default: ``$KVMPROBE_DEVICE`` or ``/dev/kvm``; under a fake
            ``root`` the environment is not consulted); a relative path is resolved once.
        backend: the ioctl backend (a :class:`kvmprobe.testing.FakeBackend` in tests).
        create_vm: also try ``KVM_CREATE_VM``.
        run: also run the micro-guest checks (``kvmprobe.guest.run_checks``: ``KVM_RUN`` of a
            real-mode and a long-mode guest in a child process under a watchdog, well under a
            second). Default: on the live host with the default backend; a fake ``root`` or an
            injected ``backend`` (a fake host) reports the ``run`` check as SKIP "not run".
        as_user: judge access for this account (a user name or uid) instead of this process:
            whether it could open the KVM device, vhost and tun, from their mode, owner and
            ACL and the account's groups in ``etc/passwd`` and ``etc/group`` under ``root``
            (never by becoming it; a device cgroup or an LSM can still refuse). The kernel's
            answers still come from this process's own open. Live hosts only.

    Returns:
        A :class:`Diagnosis`; ``.verdict`` is NOT_USABLE when a decisive check fails.

    Raises:
        BackendUnavailable: the forced ioctl backend cannot be loaded (the tool cannot run).
        BadDevicePath: ``device`` (or ``KVMPROBE_DEVICE``) is empty.
        UnknownUser: ``as_user`` names no account in the passwd file under ``root``.
        ValueError: ``as_user`` with a recorded ``probe`` (its accounts are not recorded).
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
    account: Optional[Account] = None
    if as_user is not None:
        if probe is not None and probe.source not in ("live", "fake"):
            raise ValueError("as_user needs the live host: a recorded host's accounts are not recorded")
        account = read_account(as_user, root)  # bad input fails before the device is touched
    if probe is not None and probe.host is not None:
        facts = probe.host
        answers = recorded_answers(probe, "recorded")
        path = probe.device
        source = probe.source
        # A preset synthesized from the capability table carries empty facts.
        facts_known = _has_facts(facts)
    elif probe is not None and probe.source not in ("live", "fake"):
        # A recorded host without facts (a synthesized preset): only its answers are known.
        facts = HostFacts(system="Linux", machine=probe.arch, kernel_release=probe.kernel, kvm_device=probe.device)
        answers = recorded_answers(probe, "recorded")
        path = probe.device
        source = probe.source
        facts_known = False
    else:
        if probe is not None:
            path = probe.device
        elif device is None and fake_root:
            path = DEFAULT_DEVICE  # a fake host's device: the environment is not consulted
        else:
            path = device_path(device)  # resolved once: the node read and the open name one file
        facts = read_host_facts(root, device=path)
        live_host = not fake_root and backend is None
        run_guest = (live_host and create_vm) if run is None else run
        answers = (
            recorded_answers(probe, "probe") if probe is not None else ask_kernel(path, backend, create_vm, run_guest)
        )
        source = probe.source if probe is not None else "live"
    acls = read_acls((path,) + DEVICE_PATHS, root) if answers.how != "recorded" else {}
    who_text = f"{account.name} (uid {account.uid})" if account is not None else ""
    judge = Judge(facts, answers, path, facts_known=facts_known, who=account.who if account is not None else None,
                  who_text=who_text, acls=acls)  # fmt: skip
    checks = judge.all()
    verdict = _verdict(checks)
    confidential = None
    if verdict is not Verdict.NOT_USABLE and is_x86(facts.machine or (probe.arch if probe else "")):
        confidential = _confidential(probe if probe is not None else answers.probe, root)
    return Diagnosis(
        verdict=verdict,
        checks=checks,
        facts=facts,
        summary=_summary(verdict, checks, facts, recorded=answers.how == "recorded", derived=answers.derived,
                         made_up=answers.synthesized and not facts_known),
        source=source,
        device=path,
        confidential=confidential,
        as_user=account,
    )


def _confidential(probe: Optional[ProbeResult], root: str) -> Optional[ConfidentialReport]:
    """The confidential-VM section, from the answers in hand: a recorded host's recorded facts,
    else this host's files with the capabilities already asked (the device is not opened again;
    'kvmprobe check sev' asks the SEV attributes and, with --create-vm, creates such VMs)."""
    from ._cc_judge import assess

    if probe is None:
        return None
    try:
        return assess(probe, root=root, ask_kvm=False)
    except KvmProbeError:  # a fake root's malformed node file: the checks above already said so
        return None
