"""VMM readiness: can Firecracker, Cloud Hypervisor, QEMU, crosvm, ... run on this host, and if not, why?

Imports ``_vmm_requirements`` (the built-in profiles, as data), ``_profile`` (the value types),
``_profile_file`` (the file loader), ``probing``, ``caps``, ``_release`` and ``errors``. A
:class:`Profile` lists what a VMM needs from KVM; :func:`check_vmm` holds a host's answers (a
:class:`~kvmprobe.ProbeResult`, live or recorded) against it and returns a :class:`Readiness`
that says what is missing, which Linux release first had it, and which kernel the host runs.
:func:`load_profile` reads a VMM's own requirements from a small JSON or TOML file.

The first-release data is the ``Cap`` table's ``since``. Vendor kernels backport many
capabilities (RHEL 7's "3.10" and RHEL 8's "4.18" carry features of much later releases), so
a release number is advice about which upgrade helps; the kernel's own answer is the truth,
and readiness is always decided from the answer, never from the release number.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from . import probing
from ._profile import KINDS, Profile, Requirement
from ._profile_file import MAX_PROFILE_BYTES, load_profile
from ._release import format_version, parse_release
from ._vmm_requirements import ENTRIES, VmmEntry
from .caps import ARCHES, Cap
from .errors import UnknownVmm, describe_errno
from .probing import ProbeResult

__all__ = [
    "CAVEAT",
    "KINDS",
    "MAX_PROFILE_BYTES",
    "Missing",
    "Profile",
    "Readiness",
    "Requirement",
    "builtin_profile",
    "builtin_profiles",
    "check_vmm",
    "load_profile",
    "resolve_vmm",
    "vmm_names",
]

#: Why "needs Linux >= X" is advice and the kernel's answer is what counts.
CAVEAT = (
    "Vendor kernels backport capabilities (RHEL 7's 3.10 and RHEL 8's 4.18 carry many later ones), "
    "so a Linux release is advice; the kernel's own answer, which readiness is decided from, is the truth."
)

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

    Example:
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

    @property
    def needs_kernel_text(self) -> Optional[str]:
        """``needs_kernel`` as ``"4.11"``, or ``None``.

        Example:
            >>> from kvmprobe.testing import fake_probe_result
            >>> host = fake_probe_result({c: 1 for c in Cap if c.since <= (4, 3)}, kernel="4.3.0")
            >>> check_vmm("qemu", host).needs_kernel_text  # KVM_CAP_IOEVENTFD_ANY_LENGTH came in 4.4
            '4.4'
        """
        return None if self.needs_kernel is None else format_version(self.needs_kernel)

    def summary(self) -> str:
        """The one-sentence verdict.

        Example:
            >>> from kvmprobe.testing import fake_probe_result
            >>> host = fake_probe_result({c: 1 for c in Cap if c is not Cap.IMMEDIATE_EXIT}, kernel="3.10.0-1160.el7.x86_64")
            >>> check_vmm("cloud-hypervisor", host).summary()
            'Cloud Hypervisor cannot run here: KVM_CAP_IMMEDIATE_EXIT is missing (needs Linux >= 4.11; you have 3.10)'
        """
        name = self.display_name
        if self.ready:
            count = len(self.profile.required)
            text = f"{name} can run here: " + (
                f"all {count} required capabilities are present" if count else "it requires no capability up front"
            )
            if self.missing_optional:
                names = [m.name for m in self.missing_optional]
                shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
                text += f" ({len(names)} optional missing: {shown})"
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
            >>> from kvmprobe.testing import fake_probe_result
            >>> doc = check_vmm("qemu", fake_probe_result({c: 1 for c in Cap})).to_dict()
            >>> doc["vmm"], doc["ready"], doc["missing_required"]
            ('qemu', True, [])
        """
        return {
            "vmm": self.vmm,
            "display_name": self.display_name,
            "ready": self.ready,
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
            "profile": {
                "name": self.profile.name,
                "arch": self.profile.arch,
                "source": self.profile.source,
                "path": self.profile.path,
                "min_kernel": self.profile.min_kernel,
                "required": len(self.profile.required),
                "optional": len(self.profile.optional),
            },
        }


# --- The built-in profiles --------------------------------------------------------------------


def _from_entry(entry: VmmEntry) -> Profile:
    requirements: List[Requirement] = []
    for kind, needs in (
        ("required", entry.required),
        ("implicit", entry.implicit),
        ("unchecked", entry.unchecked),
        ("conditional", entry.conditional),
        ("optional", entry.optional),
    ):
        requirements.extend(Requirement(need.cap, kind, need.text) for need in needs)
    return Profile(
        name=entry.vmm,
        display_name=entry.display_name,
        arch=entry.arch,
        requirements=tuple(requirements),
        api_version=entry.api_version,
        min_kernel=entry.min_kernel,
        min_kernel_source=entry.min_kernel_source,
        source=entry.source.cite(),
        failure=entry.failure,
        other=entry.other,
    )


# Built once at import from immutable data: nothing to lock.
_BUILTIN: Dict[Tuple[str, str], Profile] = {(e.vmm, e.arch): _from_entry(e) for e in ENTRIES}
_NAMES: Tuple[str, ...] = tuple(dict.fromkeys(e.vmm for e in ENTRIES))
_ALIASES = {"ch": "cloud-hypervisor", "clh": "cloud-hypervisor", "fc": "firecracker", "gvisor": "gvisor-kvm"}


def vmm_names(arch: Optional[str] = None) -> List[str]:
    """The built-in VMM ids (kebab-case), for one architecture or (``None``) for any.

    Example:
        >>> vmm_names("x86_64")[:4]
        ['firecracker', 'cloud-hypervisor', 'qemu', 'crosvm']
        >>> "firecracker" in vmm_names("riscv64"), "cloud-hypervisor" in vmm_names("riscv64")
        (False, True)
    """
    return [name for name in _NAMES if arch is None or (name, arch) in _BUILTIN]


def builtin_profiles() -> List[Profile]:
    """Every built-in profile, each VMM's architectures together.

    Example:
        >>> sorted({p.arch for p in builtin_profiles() if p.arch})
        ['aarch64', 'riscv64', 'x86_64']
    """
    return [_BUILTIN[(name, arch)] for name in _NAMES for arch in ARCHES if (name, arch) in _BUILTIN]


def resolve_vmm(name: str) -> str:
    """The built-in VMM id for a name in any common spelling: id, display name or alias.

    Raises:
        UnknownVmm: no built-in VMM by that name on any architecture; carries suggestions.

    Example:
        >>> resolve_vmm("Cloud_Hypervisor"), resolve_vmm("clh"), resolve_vmm("FC")
        ('cloud-hypervisor', 'cloud-hypervisor', 'firecracker')
    """
    folded = re.sub(r"[\s_]+", "-", name.strip().lower())
    folded = _ALIASES.get(folded, folded)
    if folded in _NAMES:
        return folded
    by_display = {_BUILTIN[(n, a)].display_name.lower(): n for (n, a) in _BUILTIN}
    if name.strip().lower() in by_display:
        return by_display[name.strip().lower()]
    import difflib  # only on this error path

    close = difflib.get_close_matches(folded, list(_NAMES) + list(_ALIASES), n=3, cutoff=0.6)
    suggestions = list(dict.fromkeys(_ALIASES.get(c, c) for c in close))
    raise UnknownVmm(name, suggestions, known=list(_NAMES))


def builtin_profile(name: str, arch: Optional[str] = None) -> Profile:
    """The built-in profile of VMM ``name`` for ``arch`` (default: this machine's).

    ``name`` may be the id (``cloud-hypervisor``), the display name, or an alias (``ch``,
    ``clh``, ``fc``); case, spaces and underscores do not matter.

    Raises:
        UnknownVmm: no such VMM (with suggestions), or no profile of it for ``arch``.

    Example:
        >>> builtin_profile("Cloud Hypervisor", "aarch64").source.split("@")[0]
        'cloud-hypervisor/cloud-hypervisor'
        >>> builtin_profile("firecraker", "x86_64")
        Traceback (most recent call last):
        ...
        kvmprobe.errors.UnknownVmm: no built-in VMM profile 'firecraker' (hint: did you mean firecracker?)
    """
    vmm = resolve_vmm(name)
    where = arch or os.uname().machine
    found = _BUILTIN.get((vmm, where))
    if found is None:
        arches = [a for a in ARCHES if (vmm, a) in _BUILTIN]
        raise UnknownVmm(
            vmm,
            arch=where,
            hint=f"kvmprobe knows {vmm} on {', '.join(arches)}; describe it for {where} in a file for --profile",
        )
    return found


# --- Checking a host --------------------------------------------------------------------------


def check_vmm(
    name: Union[str, Profile],
    probe: Optional[ProbeResult] = None,
    *,
    arch: Optional[str] = None,
) -> Readiness:
    """Whether VMM ``name`` (or a :class:`Profile`) can run on the host ``probe`` describes.

    Every capability of the profile is looked up in the host's ``KVM_CHECK_EXTENSION``
    answers (a positive answer counts as present; a failed query as missing, as the VMMs
    treat it). The KVM API version is compared with the one the VMM insists on. A host kernel
    below the VMM's documented minimum is noted, not counted: VMMs do not check it.

    Args:
        name: a built-in VMM (see :func:`vmm_names`) or a :class:`Profile`.
        probe: the host (default: ``kvmprobe.probe()``, the live and cached one); a recorded
            host (``--snapshot``) works the same way.
        arch: which built-in profile to use (default: the host's architecture).

    Returns:
        A :class:`Readiness`.

    Raises:
        UnknownVmm: no built-in profile by that name (checked before the host is probed), or
            none for the architecture (``arch``: checked before probing; else the host's, known
            once it is probed).
        KvmUnavailable: ``probe`` was not given and KVM cannot be reached.

    Example:
        >>> from kvmprobe.testing import fake_probe_result
        >>> host = fake_probe_result({c: 1 for c in Cap if c.since <= (3, 10)}, kernel="3.10.0-1160.el7.x86_64")
        >>> check_vmm("firecracker", host).ready, check_vmm("cloud-hypervisor", host).ready
        (True, False)
        >>> check_vmm("cloud-hypervisor", host).summary()
        'Cloud Hypervisor cannot run here: KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_SPLIT_IRQCHIP are missing (needs Linux >= 4.11; you have 3.10)'
    """
    if isinstance(name, Profile):
        return _evaluate(name, probe if probe is not None else probing.probe())
    resolve_vmm(name)  # an unknown name fails before KVM is touched
    if arch is not None:
        profile = builtin_profile(name, arch)  # so does a VMM without a profile for ``arch``
        return _evaluate(profile, probe if probe is not None else probing.probe())
    # The host's architecture is known once it is probed (a faked host may differ from this machine).
    host = probe if probe is not None else probing.probe()
    return _evaluate(builtin_profile(name, host.arch), host)


def _evaluate(profile: Profile, host: ProbeResult) -> Readiness:
    missing: Dict[str, List[Missing]] = {kind: [] for kind in KINDS}
    for req in profile.requirements:
        errno = host.errors.get(req.cap)
        if errno is None and host.values.get(req.cap, 0) > 0:
            continue
        missing[req.kind].append(Missing(req.cap, req.kind, req.text, errno, req.cap in host.not_recorded))

    problems: List[str] = []
    if profile.api_version is not None and host.api_version != profile.api_version:
        problems.append(f"the KVM API version is {host.api_version}, it needs {profile.api_version}")
    if profile.arch is not None and profile.arch != host.arch:
        problems.append(f"this profile is for {profile.arch}, the host is {host.arch}")

    version = parse_release(host.kernel)
    required = missing["required"] + missing["implicit"]
    # What the file merely lacks (not recorded) is no reason to upgrade.
    newer = [m for m in required if not m.not_recorded and (version is None or m.since > version)]
    needs = max((m.since for m in newer), default=None)

    notes: List[str] = []
    unverified = missing["unchecked"]
    if unverified:
        notes.append(
            f"{profile.display_name} needs but does not probe "
            + ", ".join(m.name for m in unverified)
            + "; the kernel does not advertise "
            + ("it" if len(unverified) == 1 else "them")
            + ", which some kernels do although they implement it"
        )
    floor = parse_release(profile.min_kernel) if profile.min_kernel else None
    if floor is not None and version is not None and version < floor:
        notes.append(
            f"Linux {format_version(version)} is below {profile.display_name}'s documented minimum host "
            f"kernel {profile.min_kernel}"
            + (f" ({profile.min_kernel_source})" if profile.min_kernel_source else "")
        )
    return Readiness(
        vmm=profile.name,
        display_name=profile.display_name,
        ready=not required and not problems,
        missing_required=tuple(required),
        missing_optional=tuple(missing["optional"]),
        missing_conditional=tuple(missing["conditional"]),
        problems=tuple(problems),
        notes=tuple(notes),
        kernel=host.kernel,
        arch=host.arch,
        api_version=host.api_version,
        needs_kernel=needs,
        profile=profile,
    )


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
