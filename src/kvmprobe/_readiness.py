"""What a readiness check says: the verdict on one VMM (:class:`Readiness`) and each capability
it lacks (:class:`Missing`), in words a person acts on.

Imports ``_profile``, ``_vmm_requirements``, ``_release``, ``caps`` and ``errors``. Value types only: the
check itself (holding a host's answers against a profile) is ``profiles.check_vmm``, and
``kvmprobe.profiles`` is where users import these names.
"""

from __future__ import annotations

from ._profile import Profile
from ._release import format_version, parse_release
from ._vmm_requirements import BackendConstraint
from .caps import Cap
from .errors import describe_errno

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass
    from typing import Any, Dict, Optional, Sequence, Tuple
else:
    from ._value import dataclass

__all__ = ["Missing", "Readiness", "STATES"]

#: A readiness's three states (:attr:`Readiness.state`): ``ready``; ``not-ready`` (something
#: required is absent, or an incompatible answer present, as recorded); ``unknown`` (nothing
#: recorded says no, but something required was not recorded: cannot tell).
STATES = ("ready", "not-ready", "unknown")


@dataclass(frozen=True)
class Missing:
    """A capability the host does not offer, with why it matters and the release that added it.

    ``errno`` is set when the kernel answered the query with an error instead of a value
    (a VMM then sees the capability as missing too); ``not_recorded`` when a recorded host has
    no answer for it at all (its snapshot lacks the row): unknown, not unsupported.

    Example:
        >>> m = Missing(Cap.IMMEDIATE_EXIT, "required", "pausing vCPUs")
        >>> m.name, m.since_text, m.describe()
        ('KVM_CAP_IMMEDIATE_EXIT', '4.11', 'KVM_CAP_IMMEDIATE_EXIT (136, Linux 4.11): pausing vCPUs')
    """

    cap: Cap
    kind: str
    why: str = ""
    errno: Optional[int] = None
    not_recorded: bool = False

    @property
    def name(self) -> str:
        """The C name, e.g. ``KVM_CAP_IMMEDIATE_EXIT``.

        Example:
            >>> Missing(Cap.IRQFD, "required").name
            'KVM_CAP_IRQFD'
        """
        return self.cap.c_name

    @property
    def since(self) -> Tuple[int, int]:
        """The first mainline Linux release with this capability, from the ``Cap`` table.

        Example:
            >>> Missing(Cap.SPLIT_IRQCHIP, "required").since
            (4, 4)
        """
        return self.cap.since

    @property
    def since_text(self) -> str:
        """The release as the table writes it: ``"4.11"``, or ``"<=3.0"`` (3.0 or earlier).

        Example:
            >>> Missing(Cap.IRQCHIP, "required").since_text
            '<=3.0'
        """
        return self.cap.since_text

    def describe(self) -> str:
        """One line: name, number, first release, and the text (plus a failed query's errno).

        Example:
            >>> Missing(Cap.IRQFD, "required", "device interrupts", errno=5).describe()
            'KVM_CAP_IRQFD (32, Linux <=3.0): device interrupts [the query failed: EIO (Input/output error)]'
        """
        line = f"{self.name} ({int(self.cap)}, Linux {self.since_text})"
        if self.why:
            line += f": {self.why}"
        if self.errno is not None:
            line += f" [the query failed: {describe_errno(self.errno)}]"
        if self.not_recorded:
            line += " [not recorded: the recorded host has no answer for it]"
        return line

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready object.

        Example:
            >>> Missing(Cap.IMMEDIATE_EXIT, "required").to_dict()["since"]
            '4.11'
        """
        return {
            "name": self.name,
            "number": int(self.cap),
            "kind": self.kind,
            "why": self.why,
            "since": self.since_text,
            "errno": self.errno,
            "not_recorded": self.not_recorded,
        }


@dataclass(frozen=True)
class Readiness:
    """The verdict for one VMM on one host: ready or not, and every reason.

    ``ready`` is true when no ``required``/``implicit`` capability is missing and nothing in
    ``problems`` (a KVM API version other than the one the VMM insists on, or a profile for
    another architecture). ``needs_kernel`` is the one upgrade that brings every missing
    required capability the host's release predates: the newest of their first releases
    (``None`` when nothing is missing, or when the host is already that new and lacks them for
    another reason: kernel configuration, module parameters, the CPU, a nested setup).
    ``notes`` carries the rest: capabilities a VMM needs but does not probe that the kernel did
    not advertise, and a kernel below the VMM's documented minimum.

    What capabilities cannot show comes from the KVM backend behind ``/dev/kvm`` (``kvm_backend``,
    from the host facts): ``conditions`` are what the backend demands for the VMM to run (ready,
    on those conditions; ``check --strict`` counts them), ``blocked_by`` says the VMM does not run
    on that backend at all (not ready; its text is also in ``problems``). Both carry their sources.

    ``ready`` false is not always "no": :attr:`state` is ``unknown`` when every missing
    required capability is merely not recorded (a cut snapshot) and nothing else says no.

    Example:
        >>> from kvmprobe.profiles import check_vmm
        >>> from kvmprobe.testing import fake_probe_result
        >>> old = fake_probe_result({c: 1 for c in Cap if c.since <= (3, 10)}, kernel="3.10.0-1160.el7.x86_64")
        >>> r = check_vmm("cloud-hypervisor", old)
        >>> r.ready, [m.name for m in r.missing_required], r.needs_kernel
        (False, ['KVM_CAP_IMMEDIATE_EXIT', 'KVM_CAP_SPLIT_IRQCHIP'], (4, 11))
    """

    vmm: str
    display_name: str
    ready: bool
    missing_required: Tuple[Missing, ...]
    missing_optional: Tuple[Missing, ...]
    missing_conditional: Tuple[Missing, ...]
    problems: Tuple[str, ...]
    notes: Tuple[str, ...]
    kernel: str
    arch: str
    api_version: int
    needs_kernel: Optional[Tuple[int, int]]
    profile: Profile
    kvm_backend: Optional[str] = None
    conditions: Tuple[BackendConstraint, ...] = ()
    blocked_by: Tuple[BackendConstraint, ...] = ()

    @property
    def state(self) -> str:
        """``ready``, ``not-ready`` or ``unknown`` (see :data:`STATES`).

        Example:
            >>> from kvmprobe.profiles import check_vmm
            >>> from kvmprobe.testing import fake_probe_result
            >>> cut = fake_probe_result({c: 1 for c in Cap}, not_recorded=[Cap.IMMEDIATE_EXIT])
            >>> check_vmm("cloud-hypervisor", cut).state, check_vmm("firecracker", fake_probe_result({})).state
            ('unknown', 'not-ready')
        """
        if self.ready:
            return "ready"
        if self.problems or any(not m.not_recorded for m in self.missing_required):
            return "not-ready"
        return "unknown"

    @property
    def state_text(self) -> str:
        """The state as reports print it: ``ready``, ``ready, on conditions``, ``NOT READY`` or
        ``UNKNOWN`` (cannot tell).

        Example:
            >>> from kvmprobe.profiles import check_vmm
            >>> from kvmprobe.testing import fake_probe_result
            >>> check_vmm("firecracker", fake_probe_result({})).state_text
            'NOT READY'
        """
        state = self.state
        if state == "ready":
            return "ready, on conditions" if self.conditions else "ready"
        return "UNKNOWN" if state == "unknown" else "NOT READY"

    @property
    def needs_kernel_text(self) -> Optional[str]:
        """``needs_kernel`` as ``"4.11"``, or ``None``.

        Example:
            >>> from kvmprobe.profiles import check_vmm
        >>> from kvmprobe.testing import fake_probe_result
            >>> host = fake_probe_result({c: 1 for c in Cap if c.since <= (4, 3)}, kernel="4.3.0")
            >>> check_vmm("qemu", host).needs_kernel_text  # KVM_CAP_IOEVENTFD_ANY_LENGTH came in 4.4
            '4.4'
        """
        return None if self.needs_kernel is None else format_version(self.needs_kernel)

    def summary(self) -> str:
        """The one-sentence verdict.

        Example:
            >>> from kvmprobe.profiles import check_vmm
        >>> from kvmprobe.testing import fake_probe_result
            >>> host = fake_probe_result({c: 1 for c in Cap if c is not Cap.IMMEDIATE_EXIT}, kernel="3.10.0-1160.el7.x86_64")
            >>> check_vmm("cloud-hypervisor", host).summary()
            'Cloud Hypervisor cannot run here: KVM_CAP_IMMEDIATE_EXIT is missing (needs Linux >= 4.11; you have 3.10)'
            >>> check_vmm("qemu@7.2", host).summary()
            'QEMU 7.2 can run here: all 8 required capabilities are present (1 optional missing: KVM_CAP_IMMEDIATE_EXIT)'
        """
        name = self.display_name + (f" {self.profile.version}" if self.profile.version else "")
        if self.ready:
            count = len(self.profile.required)
            text = f"{name} can run here: " + (
                f"all {count} required capabilities are present" if count else "it requires no capability up front"
            )
            if self.missing_optional:
                names = [m.name for m in self.missing_optional]
                shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
                text += f" ({len(names)} optional missing: {shown})"
            if self.conditions:
                text += f"; on {self.kvm_backend} only with " + "; ".join(c.short for c in self.conditions)
            return text
        parts = []
        absent = [m for m in self.missing_required if not m.not_recorded]
        unknown = [m for m in self.missing_required if m.not_recorded]
        if absent:
            parts.append(_missing_phrase(absent, self.kernel))
        if unknown:
            one = len(unknown) == 1
            parts.append(
                ", ".join(m.name for m in unknown)
                + f" {'is' if one else 'are'} not recorded (the recorded host has no answer for {'it' if one else 'them'})"
            )
        parts.extend(self.problems)
        if unknown and not absent and not self.problems:
            return f"{name}: cannot tell whether it can run here: " + "; ".join(parts)
        return f"{name} cannot run here: " + "; ".join(parts)

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready object (the ``check --json`` entry for one VMM).

        Example:
            >>> from kvmprobe.profiles import check_vmm
        >>> from kvmprobe.testing import fake_probe_result
            >>> doc = check_vmm("qemu", fake_probe_result({c: 1 for c in Cap})).to_dict()
            >>> doc["vmm"], doc["ready"], doc["missing_required"]
            ('qemu', True, [])
        """
        return {
            "vmm": self.vmm,
            "display_name": self.display_name,
            "ready": None if self.state == "unknown" else self.ready,
            "state": self.state,
            "summary": self.summary(),
            "kernel": self.kernel,
            "arch": self.arch,
            "api_version": self.api_version,
            "needs_kernel": self.needs_kernel_text,
            "missing_required": [m.to_dict() for m in self.missing_required],
            "missing_optional": [m.to_dict() for m in self.missing_optional],
            "missing_conditional": [m.to_dict() for m in self.missing_conditional],
            "problems": list(self.problems),
            "notes": list(self.notes),
            "kvm_backend": self.kvm_backend,
            "conditions": [_constraint_dict(c) for c in self.conditions],
            "blocked_by": [_constraint_dict(c) for c in self.blocked_by],
            "profile": {
                "name": self.profile.name,
                "arch": self.profile.arch,
                "source": self.profile.source,
                "path": self.profile.path,
                "versions": self.profile.versions,
                "version": self.profile.version,
                "min_kernel": self.profile.min_kernel,
                "required": len(self.profile.required),
                "optional": len(self.profile.optional),
            },
        }


def _constraint_dict(constraint: BackendConstraint) -> Dict[str, Any]:
    doc: Dict[str, Any] = {
        "backend": constraint.backend,
        "short": constraint.short,
        "text": constraint.text,
        "sources": list(constraint.sources),
    }
    if constraint.instead:
        doc["instead"] = constraint.instead
    return doc


def _since_phrase(since: Tuple[int, int], texts: Sequence[str]) -> str:
    """``4.4``, or ``3.0 or earlier`` when the table only knows it was in 3.0 already."""
    text = format_version(since)
    return f"{text} or earlier" if f"<={text}" in texts else text


def _missing_phrase(missing: Sequence[Missing], kernel: str) -> str:
    """``X is missing (needs Linux >= 4.11; you have 3.10)`` and its variants."""
    version = parse_release(kernel)
    have = format_version(version) if version is not None else repr(kernel)
    names = ", ".join(m.name for m in missing)
    verb = "is" if len(missing) == 1 else "are"
    newer = [m for m in missing if version is None or m.since > version]
    older = [m for m in missing if m not in newer]
    clauses = []
    if newer:
        clauses.append(f"needs Linux >= {format_version(max(m.since for m in newer))}; you have {have}")
    if older:
        since = _since_phrase(max(m.since for m in older), [m.since_text for m in older])
        it = "it" if len(older) == 1 else "them"
        if newer:
            clauses.append(
                ", ".join(m.name for m in older) + f" {'is' if len(older) == 1 else 'are'} in Linux since {since}, "
                f"yet this kernel does not offer {it}"
            )
        else:
            clauses.append(f"in Linux since {since}, yet this {have} kernel does not offer {it}")
    return f"{names} {verb} missing ({'; '.join(clauses)})"
