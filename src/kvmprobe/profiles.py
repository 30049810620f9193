"""VMM readiness: can Firecracker, Cloud Hypervisor, QEMU, crosvm, ... run on this host, and if not, why?

Imports ``_vmm_requirements`` (the built-in profiles, as data), ``probing``, ``caps``,
``_release``, ``_files`` and ``errors``. A :class:`Profile` lists what a VMM needs from KVM;
:func:`check_vmm` holds a host's answers (a :class:`~kvmprobe.ProbeResult`, live or recorded)
against it and returns a :class:`Readiness` that says what is missing, which Linux release
first had it, and which kernel the host runs. :func:`load_profile` reads a VMM's own
requirements from a small JSON or TOML file.

The first-release data is the ``Cap`` table's ``since``. Vendor kernels backport many
capabilities (RHEL 7's "3.10" and RHEL 8's "4.18" carry features of much later releases), so
a release number is advice about which upgrade helps; the kernel's own answer is the truth,
and readiness is always decided from the answer, never from the release number.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import platform
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from . import probing
from ._files import read_limited
from ._release import format_version, parse_release
from ._vmm_requirements import ENTRIES, VmmEntry
from .caps import ARCHES, Cap
from .errors import ProfileError, UnknownCapability, UnknownVmm, describe_errno
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

#: The kinds of requirement, from the strongest: see ``kvmprobe._vmm_requirements``.
#: ``required`` and ``implicit`` decide readiness; the others are reported only.
KINDS = ("required", "implicit", "unchecked", "conditional", "optional")

#: Why "needs Linux >= X" is advice and the kernel's answer is what counts.
CAVEAT = (
    "Vendor kernels backport capabilities (RHEL 7's 3.10 and RHEL 8's 4.18 carry many later ones), "
    "so a Linux release is advice; the kernel's own answer, which readiness is decided from, is the truth."
)

# KVM_GET_API_VERSION has answered 12 since Linux 2.6.22, when the KVM ABI was declared
# stable; Documentation/virt/kvm/api.rst tells userspace to refuse any other value.
_KVM_API_VERSION = 12


@dataclass(frozen=True)
class Requirement:
    """One capability a VMM needs, of one kind (``required``, ``optional``, ...), with its text.

    ``text`` says what it is needed for (``required``, ``implicit``, ``unchecked``), under which
    condition (``conditional``), or what degrades without it (``optional``).

    Example:
        >>> Requirement(Cap.IMMEDIATE_EXIT, "required", "pausing vCPUs").cap.since_text
        '4.11'
    """

    cap: Cap
    kind: str
    text: str = ""

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready object: name, number, kind, text.

        Example:
            >>> Requirement(Cap.IRQFD, "required").to_dict()["name"]
            'KVM_CAP_IRQFD'
        """
        return {"name": self.cap.c_name, "number": int(self.cap), "kind": self.kind, "text": self.text}


@dataclass(frozen=True)
class Profile:
    """What one VMM needs from KVM on one architecture, and where that list comes from.

    ``arch`` ``None`` means any architecture. ``api_version`` is the KVM API version the VMM
    insists on (``None``: it does not check). ``min_kernel`` is the documented minimum host
    kernel (support policy, not checked by the VMM). ``source`` cites the VMM's own file;
    ``path`` is the file a custom profile was loaded from.

    Example:
        >>> fc = builtin_profile("firecracker", "x86_64")
        >>> fc.display_name, len(fc.required), fc.api_version, fc.min_kernel
        ('Firecracker', 14, 12, '5.10')
    """

    name: str
    display_name: str
    arch: Optional[str]
    requirements: Tuple[Requirement, ...]
    api_version: Optional[int] = _KVM_API_VERSION
    min_kernel: Optional[str] = None
    min_kernel_source: str = ""
    source: str = ""
    failure: str = ""
    other: Tuple[str, ...] = ()
    path: Optional[str] = None

    def of_kind(self, *kinds: str) -> Tuple[Requirement, ...]:
        """The requirements of the given kinds, in profile order.

        Example:
            >>> [r.cap.name for r in builtin_profile("crosvm", "x86_64").of_kind("required")]
            ['IMMEDIATE_EXIT']
        """
        return tuple(r for r in self.requirements if r.kind in kinds)

    @property
    def required(self) -> Tuple[Requirement, ...]:
        """What the VMM cannot run without: the ``required`` and ``implicit`` requirements.

        Example:
            >>> len(builtin_profile("cloud-hypervisor", "x86_64").required)
            17
        """
        return self.of_kind("required", "implicit")

    @property
    def optional(self) -> Tuple[Requirement, ...]:
        """The capabilities whose absence degrades a feature.

        Example:
            >>> builtin_profile("firecracker", "x86_64").optional[0].cap.name
            'XSAVE2'
        """
        return self.of_kind("optional")

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready object; the ``required``/``optional``/... lists map names to their texts.

        Example:
            >>> builtin_profile("crosvm", "x86_64").to_dict()["required"]
            {'KVM_CAP_IMMEDIATE_EXIT': 'stopping vCPUs (kvm_run.immediate_exit)'}
        """
        doc: Dict[str, Any] = {
            "name": self.name,
            "display_name": self.display_name,
            "arch": self.arch,
            "api_version": self.api_version,
            "min_kernel": self.min_kernel,
            "min_kernel_source": self.min_kernel_source,
            "source": self.source,
            "failure": self.failure,
            "other": list(self.other),
            "path": self.path,
        }
        for kind in KINDS:
            doc[kind] = {r.cap.c_name: r.text for r in self.of_kind(kind)}
        return doc


@dataclass(frozen=True)
class Missing:
    """A capability the host does not offer, with why it matters and the release that added it.

    ``errno`` is set when the kernel answered the query with an error instead of a value
    (a VMM then sees the capability as missing too).

    Example:
        >>> m = Missing(Cap.IMMEDIATE_EXIT, "required", "pausing vCPUs")
        >>> m.name, m.since_text, m.describe()
        ('KVM_CAP_IMMEDIATE_EXIT', '4.11', 'KVM_CAP_IMMEDIATE_EXIT (136, Linux 4.11): pausing vCPUs')
    """

    cap: Cap
    kind: str
    why: str = ""
    errno: Optional[int] = None

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
        if self.missing_required:
            parts.append(_missing_phrase(self.missing_required, self.kernel))
        parts.extend(self.problems)
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
    where = arch or platform.machine()
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
        UnknownVmm: no built-in profile by that name, or for that architecture. Checked before
            the host is probed.
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
        profile = builtin_profile(name, arch)
        return _evaluate(profile, probe if probe is not None else probing.probe())
    host = probe if probe is not None else probing.probe()
    return _evaluate(builtin_profile(name, host.arch), host)


def _evaluate(profile: Profile, host: ProbeResult) -> Readiness:
    missing: Dict[str, List[Missing]] = {kind: [] for kind in KINDS}
    for req in profile.requirements:
        errno = host.errors.get(req.cap)
        if errno is None and host.values.get(req.cap, 0) > 0:
            continue
        missing[req.kind].append(Missing(req.cap, req.kind, req.text, errno))

    problems: List[str] = []
    if profile.api_version is not None and host.api_version != profile.api_version:
        problems.append(f"the KVM API version is {host.api_version}, it needs {profile.api_version}")
    if profile.arch is not None and profile.arch != host.arch:
        problems.append(f"this profile is for {profile.arch}, the host is {host.arch}")

    version = parse_release(host.kernel)
    required = missing["required"] + missing["implicit"]
    newer = [m for m in required if version is None or m.since > version]
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


# --- Custom profiles from files ---------------------------------------------------------------

#: Profile files larger than this are refused before being read (a real one is a few kB).
MAX_PROFILE_BYTES = 1024 * 1024

_KEYS = (
    "name",
    "display_name",
    "arch",
    "api_version",
    "min_kernel",
    "source",
    "required",
    "optional",
    "conditional",
)
_MANDATORY = ("name", "required")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_VERSION = re.compile(r"\d+\.\d+")


def load_profile(path: Union[str, "os.PathLike[str]"]) -> Profile:
    """Read a VMM's requirements from a JSON or TOML file.

    The file has ``name`` and ``required`` and may have ``display_name``, ``arch`` (one of
    ``x86_64``, ``aarch64``, ``riscv64``, ``s390x``; absent: any), ``api_version`` (12),
    ``min_kernel`` (a string such as ``"5.10"``), ``source``, and the capability lists
    ``required``, ``optional`` and ``conditional``. Each list is either an array of capability
    names (any spelling ``Cap.lookup`` takes) or a table mapping each name to its text: what it
    is needed for, what degrades without it, or (``conditional``, a table only) when it is
    needed. ``.json`` files are JSON, ``.toml`` files TOML (Python 3.11+, or the ``tomli``
    package); other names are tried as JSON, then TOML.

    Raises:
        ProfileError: the file cannot be read, does not parse, or a key is missing, unknown or
            of the wrong type, a capability name is unknown (with suggestions), a capability
            does not exist on the profile's architecture or is listed twice. The error names the
            file and the key.

    Example:
        >>> import json, os, tempfile
        >>> doc = {"name": "my-vmm", "arch": "x86_64", "required": ["USER_MEMORY", "ImmediateExit"]}
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = os.path.join(d, "my-vmm.json")
        ...     with open(path, "w") as f:
        ...         _ = f.write(json.dumps(doc))
        ...     profile = load_profile(path)
        >>> profile.name, [r.cap.c_name for r in profile.required]
        ('my-vmm', ['KVM_CAP_USER_MEMORY', 'KVM_CAP_IMMEDIATE_EXIT'])
    """
    where = os.fspath(path)
    hint = f"give the path of a readable JSON or TOML profile file (at most {MAX_PROFILE_BYTES} bytes)"
    try:
        raw = read_limited(where, MAX_PROFILE_BYTES)
    except OSError as err:
        raise ProfileError(f"cannot read the profile: {err.strerror or err}", path=where, hint=hint) from err
    except ValueError as err:  # an embedded NUL, or a surrogate the file system encoding cannot carry
        raise ProfileError(f"cannot read the profile: not a file name ({err})", path=ascii(where), hint=hint) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ProfileError(f"not UTF-8 text (byte {err.start})", path=where) from None
    return _validate(_parse(text, where), where)


def _parse(text: str, where: str) -> Any:
    suffix = os.path.splitext(where)[1].lower()
    if suffix == ".json":
        return _parse_json(text, where)
    if suffix == ".toml":
        return _parse_toml(text, where)
    try:
        return _parse_json(text, where)
    except ProfileError as as_json:
        try:
            return _parse_toml(text, where)
        except ProfileError as as_toml:
            raise ProfileError(
                f"neither JSON ({as_json.message.split(': ', 1)[-1]}) nor TOML ({as_toml.message.split(': ', 1)[-1]})",
                path=where,
                hint="name the file .json or .toml so kvmprobe knows which it is meant to be",
            ) from None


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as err:
        detail = f"{err.msg} (line {err.lineno}, column {err.colno})" if isinstance(err, json.JSONDecodeError) else str(err)
        raise ProfileError(f"not valid JSON: {detail}", path=where) from None
    except RecursionError:  # json recurses once per nesting level
        raise ProfileError("not usable JSON: nested too deeply", path=where) from None


def _parse_toml(text: str, where: str) -> Any:
    toml: Any = None
    for module in ("tomllib", "tomli"):  # tomllib is in the stdlib from 3.11; tomli is its backport
        try:
            toml = importlib.import_module(module)
            break
        except ImportError:
            continue
    if toml is None:
        raise ProfileError(
            "reading TOML needs Python 3.11+ or the 'tomli' package",
            path=where,
            hint="write the profile as JSON, or pip install tomli",
        )
    try:
        return toml.loads(text)
    except ValueError as err:  # tomllib.TOMLDecodeError is a ValueError
        raise ProfileError(f"not valid TOML: {err}", path=where) from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ProfileError("not usable TOML: nested too deeply", path=where) from None


# C0/C1 controls (a terminal would act on escape sequences) and lone surrogates (JSON "\\udc80"
# parses to one; no output stream can encode it).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _printable(text: str, where: str, key: str) -> None:
    """Refuse text that would be printed as anything but itself (tab and newline are fine)."""
    bad = _UNPRINTABLE.search(text)
    if bad is not None:
        raise ProfileError(
            f"contains the unprintable character {ascii(bad.group())} at offset {bad.start()}",
            path=where,
            key=key,
        )


def _clip(text: str, limit: int = 60) -> str:
    """At most ``limit`` characters of ``text`` for a message (a value may be megabytes long)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind_of(value: Any) -> str:
    """The JSON/TOML word for a parsed value's type, for error messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {_clip(repr(value))}"
    if isinstance(value, str):
        return f"the string {_clip(ascii(value))}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _validate(doc: Any, where: str) -> Profile:
    if not isinstance(doc, dict):
        raise ProfileError(f"expected a table (JSON object) at the top level, found {_kind_of(doc)}", path=where)
    for key in doc:
        if key not in _KEYS:
            close = difflib.get_close_matches(str(key), _KEYS, n=1, cutoff=0.6)
            raise ProfileError(
                "unknown key",
                path=where,
                key=_clip(ascii(key)[1:-1]),
                hint=(f"did you mean '{close[0]}'? " if close else "") + "the keys are " + ", ".join(_KEYS),
            )
    for key in _MANDATORY:
        if key not in doc:
            raise ProfileError(f"missing; every profile needs {' and '.join(_MANDATORY)}", path=where, key=key)

    def string(key: str, default: Optional[str] = None) -> Optional[str]:
        value = doc.get(key, default)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ProfileError(f"expected a non-empty string, found {_kind_of(value)}", path=where, key=key)
        if value is not None:
            _printable(value, where, key)
        return value

    name = string("name") or ""
    if not _NAME.fullmatch(name):
        raise ProfileError(
            f"expected a short id such as 'my-vmm' (letters, digits, '.', '_', '+', '-'), found {name!r}",
            path=where,
            key="name",
        )
    arch = string("arch")
    if arch is not None and arch not in ARCHES:
        close = difflib.get_close_matches(arch, ARCHES, n=1, cutoff=0.4)
        raise ProfileError(
            f"expected one of {', '.join(ARCHES)}, found {arch!r}",
            path=where,
            key="arch",
            hint=(f"did you mean '{close[0]}'? " if close else "") + "use the 'uname -m' spelling, or leave arch out for any",
        )
    api = doc.get("api_version", _KVM_API_VERSION)
    if isinstance(api, bool) or not isinstance(api, int) or api != _KVM_API_VERSION:
        raise ProfileError(
            f"expected 12, the KVM API version every Linux since 2.6.22 reports, found {_kind_of(api)}",
            path=where,
            key="api_version",
            hint="leave api_version out, or set it to 12",
        )
    min_kernel = doc.get("min_kernel")
    if min_kernel is not None and not (isinstance(min_kernel, str) and _VERSION.fullmatch(min_kernel)):
        raise ProfileError(
            f"expected a release string such as \"5.10\", found {_kind_of(min_kernel)}",
            path=where,
            key="min_kernel",
            hint="quote the release: a number would turn 5.10 into 5.1",
        )

    seen: Dict[Cap, str] = {}
    requirements: List[Requirement] = []
    for kind in ("required", "optional", "conditional"):
        if kind not in doc:
            continue
        for cap, text, key in _caps(doc[kind], kind, where):
            if cap in seen:
                raise ProfileError(f"{cap.c_name} is listed twice (also in {seen[cap]})", path=where, key=key)
            if arch is not None and not cap.applies_to(arch):
                raise ProfileError(
                    f"{cap.c_name} exists on {', '.join(sorted(cap.arches))} only, not on {arch}",
                    path=where,
                    key=key,
                )
            seen[cap] = kind
            requirements.append(Requirement(cap, kind, text))
    return Profile(
        name=name,
        display_name=string("display_name", name) or name,
        arch=arch,
        requirements=tuple(requirements),
        api_version=api,
        min_kernel=min_kernel,
        source=string("source") or "",
        path=where,
    )


def _caps(value: Any, kind: str, where: str) -> List[Tuple[Cap, str, str]]:
    """``(cap, text, key)`` for each entry of an array of names or a table of name -> text."""
    items: List[Tuple[Any, str, str]] = []
    if isinstance(value, list) and kind != "conditional":
        for index, entry in enumerate(value):
            items.append((entry, "", f"{kind}[{index}]"))
    elif isinstance(value, dict):
        for entry, text in value.items():
            key = f"{kind}.{entry}"
            if not isinstance(text, str) or (kind == "conditional" and not text.strip()):
                what = "the condition under which it is needed" if kind == "conditional" else "a text (or \"\")"
                raise ProfileError(f"expected a string: {what}, found {_kind_of(text)}", path=where, key=key)
            _printable(text, where, key)
            items.append((entry, text, key))
    else:
        shape = "a table of capability name = condition" if kind == "conditional" else (
            "an array of capability names, or a table of name = text"
        )
        raise ProfileError(f"expected {shape}, found {_kind_of(value)}", path=where, key=kind)
    found: List[Tuple[Cap, str, str]] = []
    for entry, text, key in items:
        if isinstance(entry, bool) or not isinstance(entry, (str, int)):
            raise ProfileError(f"expected a capability name, found {_kind_of(entry)}", path=where, key=key)
        try:
            cap = Cap.lookup(entry)
        except UnknownCapability as err:
            raise ProfileError(err.message, path=where, key=key, hint=err.hint) from None
        found.append((cap, text, key))
    return found
