"""VMM readiness: can Firecracker, Cloud Hypervisor, QEMU, crosvm, ... run on this host, and if not, why?

Imports ``_vmm_requirements`` (the built-in profiles, as data), ``_vmm_versions`` (release
numbers), ``_profile`` and ``_readiness`` (the value types), ``_profile_file`` (the file
loader), ``probing``, ``caps``, ``_release``, ``_value``, ``errors`` and (to find installed VMMs)
``_installed``. A :class:`Profile` lists what a VMM
needs from KVM, for one range of its releases; :func:`check_vmm` holds a host's answers (a
:class:`~kvmprobe.ProbeResult`, live or recorded) against it and returns a :class:`Readiness`
that says what is missing, which Linux release first had it, and which kernel the host runs.
``check_vmm("qemu", version="7.2")`` (or ``"qemu@7.2"``) checks a release; no version means the
newest. :func:`load_profile` reads a VMM's own requirements from a small JSON or TOML file.

The first-release data is the ``Cap`` table's ``since``. Vendor kernels backport many
capabilities (RHEL 7's "3.10" and RHEL 8's "4.18" carry features of much later releases), so
a release number is advice about which upgrade helps; the kernel's own answer is the truth,
and readiness is always decided from the answer, never from the release number.
"""

from __future__ import annotations

import os

from . import probing
from ._profile import KINDS, Profile, Requirement
from ._profile_file import MAX_PROFILE_BYTES, load_profile
from ._readiness import STATES, Missing, Readiness
from ._release import format_version, parse_release
from ._value import replace
from ._vmm_requirements import (
    BACKEND_CONSTRAINTS,
    ENTRIES,
    IF_MISSING,
    NEEDED_FOR,
    VMMS,
    BackendConstraint,
    Need,
    Release,
    VmmEntry,
)
from ._vmm_versions import parse_version
from .caps import ARCHES
from .errors import UnknownRelease, UnknownVmm
from .probing import ProbeResult

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

__all__ = [
    "BackendConstraint",
    "CAVEAT",
    "KINDS",
    "MAX_PROFILE_BYTES",
    "Missing",
    "Profile",
    "Readiness",
    "Requirement",
    "STATES",
    "builtin_profile",
    "builtin_profiles",
    "check_document",
    "check_state",
    "check_vmm",
    "installed_profiles",
    "load_profile",
    "resolve_vmm",
    "resolve_vmm_spec",
    "vmm_names",
    "vmm_releases",
]

#: Why "needs Linux >= X" is advice and the kernel's answer is what counts.
CAVEAT = (
    "Vendor kernels backport capabilities (RHEL 7's 3.10 and RHEL 8's 4.18 carry many later ones), "
    "so a Linux release is advice; the kernel's own answer, which readiness is decided from, is the truth."
)

# --- The built-in profiles --------------------------------------------------------------------

# The entries by (VMM, arch); profiles are built from them when first asked for (immutable
# data, so two threads building the same one build equal values: nothing to lock).
_ENTRIES: Dict[Tuple[str, str], VmmEntry] = {(e.vmm, e.arch): e for e in ENTRIES}
_NAMES: Tuple[str, ...] = tuple(dict.fromkeys(e.vmm for e in ENTRIES))
_ALIASES = {"ch": "cloud-hypervisor", "clh": "cloud-hypervisor", "fc": "firecracker", "gvisor": "gvisor-kvm"}
_BUILT: Dict[Tuple[str, str, int], Profile] = {}
_RESOLVED: Dict[str, str] = {}  # names as given -> ids (a few: callers name the same VMMs)


def _bound(entry: VmmEntry, need: Need) -> Tuple[int, int]:
    """The indexes of the first and last of ``entry``'s ranges ``need`` holds for."""
    firsts = [r.first for r in entry.releases]
    lasts = [r.last for r in entry.releases]
    if need.since and need.since not in firsts or need.until and need.until not in lasts:
        raise ValueError(f"{entry.vmm} {entry.arch}: {need.cap.c_name} is bounded by {need.since or '-'} to "
                         f"{need.until or '-'}, which is not the start and end of its release ranges")
    return (firsts.index(need.since) if need.since else 0,
            lasts.index(need.until) if need.until else len(entry.releases) - 1)


def _profile(entry: VmmEntry, index: int) -> Profile:
    key = (entry.vmm, entry.arch, index)
    built = _BUILT.get(key)
    if built is not None:
        return built
    release: Release = entry.releases[index]
    texts = {need.cap: need.text for need in entry.texts}
    requirements = [Requirement(cap, "required", texts.get(cap) or NEEDED_FOR.get(cap, "")) for cap in release.required]
    for kind, needs in (
        ("implicit", entry.implicit),
        ("unchecked", entry.unchecked),
        ("conditional", entry.conditional),
        ("optional", entry.optional),
        ("incompatible", entry.incompatible),
    ):
        for need in needs:
            first, last = _bound(entry, need)
            if first <= index <= last:
                fallback = IF_MISSING if kind == "optional" else NEEDED_FOR
                requirements.append(Requirement(need.cap, kind, need.text or fallback.get(need.cap, "")))
    built = Profile(
        name=entry.vmm,
        display_name=entry.display_name,
        arch=entry.arch,
        requirements=tuple(requirements),
        api_version=entry.api_version,
        min_kernel=entry.min_kernel,
        min_kernel_source=entry.min_kernel_source,
        source=release.source.cite(),
        failure=entry.failure,
        other=entry.other,
        versions=entry.span(release).label,
    )
    _BUILT[key] = built
    return built


def vmm_names(arch: Optional[str] = None) -> List[str]:
    """The built-in VMM ids (kebab-case), for one architecture or (``None``) for any.

    Example:
        >>> vmm_names("x86_64")[:4]
        ['firecracker', 'cloud-hypervisor', 'qemu', 'crosvm']
        >>> "firecracker" in vmm_names("riscv64"), "cloud-hypervisor" in vmm_names("riscv64")
        (False, True)
    """
    return [name for name in _NAMES if arch is None or (name, arch) in _ENTRIES]


def vmm_releases(name: str, arch: Optional[str] = None) -> List[str]:
    """The release ranges kvmprobe has a profile for, oldest first, as the VMM spells releases.

    The last one is what a check without a version uses. A range ending in ``.x`` takes the
    later point releases of that series.

    Raises:
        UnknownVmm: no such VMM, or none for ``arch`` (default: this machine's).

    Example:
        >>> vmm_releases("cloud-hypervisor", "x86_64")[-2:], vmm_releases("qemu", "x86_64")[0]
        (['v52.0 to v52.x', 'v53.0 to v53.x'], '7.2.0 to 7.x')
    """
    entry = _entry(resolve_vmm(name), arch or os.uname().machine)
    return [entry.span(release).label for release in entry.releases]


def builtin_profiles(*, releases: bool = False) -> List[Profile]:
    """Every built-in profile, each VMM's architectures together: the newest release of each,
    or (``releases=True``) one per release range, oldest first.

    Example:
        >>> sorted({p.arch for p in builtin_profiles() if p.arch})
        ['aarch64', 'riscv64', 'x86_64']
        >>> [p.versions for p in builtin_profiles(releases=True) if p.name == "qemu" and p.arch == "x86_64"][:2]
        ['7.2.0 to 7.x', '8.0.0 to 8.1.x']
    """
    found: List[Profile] = []
    for name in _NAMES:
        for arch in ARCHES:
            entry = _ENTRIES.get((name, arch))
            if entry is not None:
                indexes = range(len(entry.releases)) if releases else [len(entry.releases) - 1]
                found.extend(_profile(entry, index) for index in indexes)
    return found


def resolve_vmm(name: str) -> str:
    """The built-in VMM id for a name in any common spelling: id, display name or alias.

    Raises:
        UnknownVmm: no built-in VMM by that name on any architecture; carries suggestions.

    Example:
        >>> resolve_vmm("Cloud_Hypervisor"), resolve_vmm("clh"), resolve_vmm("FC")
        ('cloud-hypervisor', 'cloud-hypervisor', 'firecracker')
    """
    known = _RESOLVED.get(name)
    if known is not None:  # a fleet tool asks for the same seven names for every host
        return known
    folded = _folded(name)
    folded = _ALIASES.get(folded, folded)
    if folded in _NAMES:
        if len(_RESOLVED) < 256:
            _RESOLVED[name] = folded
        return folded
    by_display = {vmm.display_name.lower(): vmm.name for vmm in VMMS.values()}
    if name.strip().lower() in by_display:
        return by_display[name.strip().lower()]
    import difflib  # only on this error path

    close = difflib.get_close_matches(folded, list(_NAMES) + list(_ALIASES), n=3, cutoff=0.6)
    suggestions = list(dict.fromkeys(_ALIASES.get(c, c) for c in close))
    raise UnknownVmm(name, suggestions, known=list(_NAMES))


def _folded(name: str) -> str:
    """``name`` lowercased, each run of whitespace and underscores one ``-`` (``re`` is imported
    only for a name that has either: it costs milliseconds)."""
    folded = name.strip().lower()
    if "_" in folded or " " in folded or not folded.isprintable():  # isprintable: no other whitespace
        import re

        folded = re.sub(r"[\s_]+", "-", folded)
    return folded


def _entry(vmm: str, arch: str) -> VmmEntry:
    found = _ENTRIES.get((vmm, arch))
    if found is None:
        arches = [a for a in ARCHES if (vmm, a) in _ENTRIES]
        raise UnknownVmm(
            vmm,
            arch=arch,
            hint=f"kvmprobe knows {vmm} on {', '.join(arches)}; describe it for {arch} in a file for --profile",
        )
    return found


def _release_index(entry: VmmEntry, version: str) -> int:
    """The index of the range of ``entry`` that holds ``version``, or UnknownRelease."""
    vmm = VMMS[entry.vmm]
    known = [entry.span(release).label for release in entry.releases]
    parsed = parse_version(version, vmm.prefixes)
    if parsed is None:
        raise UnknownRelease(vmm.display_name, version, arch=entry.arch, known=known, malformed=vmm.example)
    for index, release in enumerate(entry.releases):
        if entry.span(release).contains(parsed):
            return index
    raise UnknownRelease(vmm.display_name, version, arch=entry.arch, known=known)


def _split(name: str, version: Optional[str]) -> Tuple[str, Optional[str]]:
    """``("qemu", "7.2")`` from ``"qemu@7.2"``; a version given both ways must agree."""
    if "@" in name:
        name, _, spelled = name.partition("@")
        if version is not None and version != spelled:
            raise UnknownRelease(name, f"{spelled} (and version={version!r})")
        version = spelled
    return resolve_vmm(name), version


def builtin_profile(name: str, arch: Optional[str] = None, version: Optional[str] = None) -> Profile:
    """The built-in profile of VMM ``name`` for ``arch`` (default: this machine's) and a release.

    ``name`` may be the id (``cloud-hypervisor``), the display name, or an alias (``ch``,
    ``clh``, ``fc``); case, spaces and underscores do not matter; ``name@version`` works too.
    ``version`` is spelled as the VMM spells it, and shorter is fine (``v45.0``, ``v45``, ``45``,
    ``7.2.22``, ``7.2``); without one, the newest release range.

    Raises:
        UnknownVmm: no such VMM (with suggestions), or no profile of it for ``arch``.
        UnknownRelease: a version no range covers, or no version at all (names the ranges).

    Example:
        >>> builtin_profile("Cloud Hypervisor", "aarch64").source.split("@")[0]
        'cloud-hypervisor/cloud-hypervisor'
        >>> p = builtin_profile("ch", "x86_64", "v45")
        >>> p.versions, p.version, "KVM_CAP_XCRS" in {r.cap.c_name for r in p.required}
        ('v40.0 to v48.x', 'v45', True)
        >>> builtin_profile("firecraker", "x86_64")
        Traceback (most recent call last):
        ...
        kvmprobe.errors.UnknownVmm: no built-in VMM profile 'firecraker' (hint: did you mean firecracker?)
    """
    vmm, version = _split(name, version)
    entry = _entry(vmm, arch or os.uname().machine)
    if version is None:
        return _profile(entry, len(entry.releases) - 1)
    return replace(_profile(entry, _release_index(entry, version)), version=version.strip())


def resolve_vmm_spec(spec: str) -> Tuple[str, Optional[str]]:
    """``(vmm, version)`` from ``name`` or ``name@version``, both checked before any host is.

    The name resolves as in :func:`resolve_vmm`; the version must fall in a release range of
    that VMM on some architecture (which one applies is known once the host is).

    Raises:
        UnknownVmm: no such VMM.
        UnknownRelease: no range holds the version (the ranges of this machine's arch named).

    Example:
        >>> resolve_vmm_spec("CH@v45"), resolve_vmm_spec("qemu")
        (('cloud-hypervisor', 'v45'), ('qemu', None))
    """
    vmm, version = _split(spec, None)
    if version is not None:
        _check_release_anywhere(vmm, version)
    return vmm, version


def _check_release_anywhere(vmm: str, version: str) -> None:
    """UnknownRelease unless some architecture's ranges hold ``version`` (before any probe)."""
    entries = [_ENTRIES[(vmm, arch)] for arch in ARCHES if (vmm, arch) in _ENTRIES]
    here = _ENTRIES.get((vmm, os.uname().machine), entries[0])
    errors = []
    for entry in [here] + [e for e in entries if e is not here]:
        try:
            _release_index(entry, version)
            return
        except UnknownRelease as err:
            errors.append(err)
    raise errors[0]


# --- Checking a host --------------------------------------------------------------------------


def check_vmm(
    name: Union[str, Profile],
    probe: Optional[ProbeResult] = None,
    *,
    arch: Optional[str] = None,
    version: Optional[str] = None,
) -> Readiness:
    """Whether VMM ``name`` (or a :class:`Profile`) can run on the host ``probe`` describes.

    Every capability of the profile is looked up in the host's ``KVM_CHECK_EXTENSION``
    answers (a positive answer counts as present; a failed query as missing, as the VMMs
    treat it). The KVM API version is compared with the one the VMM insists on. A host kernel
    below the VMM's documented minimum is noted, not counted: VMMs do not check it.

    Args:
        name: a built-in VMM (see :func:`vmm_names`), ``name@version``, or a :class:`Profile`.
        probe: the host (default: ``kvmprobe.probe()``, the live and cached one); a recorded
            host (``--snapshot``) works the same way.
        arch: which built-in profile to use (default: the host's architecture).
        version: the VMM's release, as it spells them (see :func:`builtin_profile`); default:
            the newest release kvmprobe has a profile for. A :class:`Profile` given as ``name``
            is used as it is.

    Returns:
        A :class:`Readiness`.

    Raises:
        UnknownVmm: no built-in profile by that name (checked before the host is probed), or
            none for the architecture (``arch``: checked before probing; else the host's, known
            once it is probed).
        UnknownRelease: no release range holds ``version`` (checked before probing).
        KvmUnavailable: ``probe`` was not given and KVM cannot be reached.

    Example:
        >>> from kvmprobe.testing import fake_probe_result
        >>> host = fake_probe_result({c: 1 for c in Cap if c.since <= (3, 10)}, kernel="3.10.0-1160.el7.x86_64")
        >>> check_vmm("firecracker", host).ready, check_vmm("cloud-hypervisor", host).ready
        (True, False)
        >>> check_vmm("cloud-hypervisor", host).summary()
        'Cloud Hypervisor cannot run here: KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_SPLIT_IRQCHIP are missing (needs Linux >= 4.11; you have 3.10)'
        >>> check_vmm("qemu", host).ready, check_vmm("qemu", host, version="7.2").ready
        (False, True)
    """
    if isinstance(name, Profile):
        return _evaluate(name, probe if probe is not None else probing.probe())
    vmm, version = _split(name, version)  # an unknown name or release fails before KVM is touched
    if arch is not None:
        profile = builtin_profile(vmm, arch, version)  # so does a VMM without a profile for ``arch``
        return _evaluate(profile, probe if probe is not None else probing.probe())
    if probe is None:
        if version is not None:
            _check_release_anywhere(vmm, version)
        probe = probing.probe()
    # The host's architecture is known once it is probed (a faked host may differ from this machine).
    return _evaluate(builtin_profile(vmm, probe.arch, version), probe)


def _evaluate(profile: Profile, host: ProbeResult) -> Readiness:
    """The readiness of ``host`` for ``profile``: worked out once per result and profile (a fleet
    tool checks a host, then diffs it twice; each asks for the same verdicts)."""
    held: Tuple[Profile, Readiness] = host._remembered(
        f"readiness:{id(profile)}", lambda: (profile, _judged(profile, host))
    )
    return held[1] if held[0] is profile else _judged(profile, host)


def _judged(profile: Profile, host: ProbeResult) -> Readiness:
    missing: Dict[str, List[Missing]] = {kind: [] for kind in KINDS}
    problems: List[str] = []
    for req in profile.requirements:
        if req.kind == "incompatible":
            problems.extend(_incompatible(profile, req, host))
            continue
        errno = host.errors.get(req.cap)
        if errno is None and host.values.get(req.cap, 0) > 0:
            continue
        missing[req.kind].append(Missing(req.cap, req.kind, req.text, errno, req.cap in host.not_recorded))

    # Backend constraints (#14): a VMM that does not run on this KVM backend (gVisor's KVM
    # platform on kvm_pvm) is a problem; one that runs on conditions says which.
    backend = host.kvm_backend  # read when probed (a real backend) or recorded: never here
    constraints = [c for c in BACKEND_CONSTRAINTS.get(profile.name, ()) if c.backend == backend]
    blocked = tuple(c for c in constraints if not c.runs)
    problems.extend(c.short + (f"; use {c.instead}" if c.instead else "") for c in blocked)
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
        kvm_backend=backend,
        conditions=tuple(c for c in constraints if c.runs),
        blocked_by=blocked,
    )


def _incompatible(profile: Profile, req: Requirement, host: ProbeResult) -> List[str]:
    """A problem when the host gives the answer ``req`` says the VMM cannot cope with.

    The VM-fd answer is used where it was recorded (VMMs ask these on the VM fd), else the
    system fd's; a failed query is no answer, so no problem.
    """
    where = ""
    answer = host.values.get(req.cap, 0) if req.cap not in host.errors else 0
    if host.vm_values is not None and req.cap not in host.vm_errors:
        answer, where = host.vm_values.get(req.cap, 0), " on the VM fd"
    if answer <= 0:
        return []
    return [f"{req.cap.c_name} answers {answer}{where}, and {profile.display_name} fails with it: {req.text}"]


def installed_profiles(
    arch: str, find: Optional[Callable[[str], Sequence[Any]]] = None
) -> List[Tuple[Optional[Profile], Dict[str, Any]]]:
    """Each VMM installed here (found by ``find``, default ``_installed.find_installed``, which
    runs each binary's version query with a time limit): its built-in profile for the release it
    reported (``None``: it cannot be judged), and what to say about it (``vmm``, ``binary``,
    ``output``, ``version``, ``range``: the release range used, ``problem``: why none).

    Example:
        >>> from kvmprobe._installed import Installed
        >>> found = installed_profiles("x86_64", lambda arch: [Installed("qemu", "/usr/bin/qemu", "QEMU 7.2.22", "7.2.22")])
        >>> found[0][0].versions, found[0][1]["range"]
        ('7.2.0 to 7.x', '7.2.0 to 7.x')
    """
    if find is None:
        from ._installed import find_installed  # runs programs: imported only when asked

        find = find_installed
    found: List[Tuple[Optional[Profile], Dict[str, Any]]] = []
    for item in find(arch):
        doc: Dict[str, Any] = {"vmm": item.vmm, "binary": item.path, "output": item.output,
                               "version": item.version, "range": None, "problem": item.problem or None}  # fmt: skip
        profile: Optional[Profile] = None
        if item.version is not None:
            try:
                profile = builtin_profile(item.vmm, arch, item.version)
                doc["range"] = profile.versions
            except UnknownVmm as err:  # UnknownRelease: a release no profile covers
                doc["problem"] = f"{err.message} ({err.hint})"
        found.append((profile, doc))
    return found


# --- The check document ------------------------------------------------------------------------

#: The ``check --json`` document's ``schema`` and ``schema_version`` (kvmprobe up to 0.1.0
#: wrote ``"schema": "kvmprobe.check/1"`` without a version: the same document, version 1).
#: Version 2: ``ready`` is ``null`` when the verdict is "cannot tell", every verdict and the
#: document carry ``state`` (:data:`STATES`), and the document says whether ``strict`` applied.
CHECK_SCHEMA = "kvmprobe-check"
CHECK_SCHEMA_VERSION = 2


def check_state(
    verdicts: Sequence[Readiness],
    confidential: Sequence[Any] = (),
    *,
    strict: bool = False,
    installed: Optional[Sequence[Dict[str, Any]]] = None,
) -> str:
    """The state of a whole check: ``ready`` when every verdict is, ``not-ready`` when one says
    no, else ``unknown`` (one cannot tell, none says no).

    ``confidential`` holds :class:`~kvmprobe.confidential.ConfidentialReadiness` verdicts;
    ``strict`` counts a VMM ready only on conditions of the KVM backend as not ready;
    ``installed`` (what ``check --installed`` found) makes finding nothing, or a find that
    could not be judged, not ready.

    Example:
        >>> from kvmprobe.testing import fake_probe_result
        >>> host = fake_probe_result({c: 1 for c in Cap}, not_recorded=["IMMEDIATE_EXIT"])
        >>> check_state([check_vmm("qemu", host)]), check_state([check_vmm("cloud-hypervisor", host)])
        ('ready', 'unknown')
        >>> check_state([check_vmm("cloud-hypervisor", host), check_vmm("firecracker", fake_probe_result({}))])
        'not-ready'
    """
    states = [v.state for v in verdicts] + [v.state for v in confidential]
    if strict and any(v.conditions for v in verdicts):
        states.append("not-ready")
    if installed is not None and (not verdicts or not all(item["range"] for item in installed)):
        states.append("not-ready")
    if "not-ready" in states:
        return "not-ready"
    return "unknown" if "unknown" in states else "ready"


def check_document(
    result: ProbeResult,
    verdicts: Sequence[Readiness],
    *,
    confidential: Sequence[Any] = (),
    strict: bool = False,
    installed: Optional[Sequence[Dict[str, Any]]] = None,
    found: Optional[Dict[int, Dict[str, Any]]] = None,
) -> Dict[str, Any]:
    """The ``kvmprobe check --json`` document (schema ``kvmprobe-check``, version 2).

    ``ready`` is true, false, or ``null`` when the check cannot tell (``state`` ``unknown``),
    as :func:`check_state` decides with ``strict`` (which the document records). Each VMM's
    entry is :meth:`Readiness.to_dict` (with what ``--installed`` found about it, from
    ``found``: profile id -> the find); ``installed`` lists every find, judged or not;
    ``confidential`` the confidential kinds judged.

    Example:
        >>> from kvmprobe.testing import fake_probe_result
        >>> host = fake_probe_result({c: 1 for c in Cap}, not_recorded=["IMMEDIATE_EXIT"])
        >>> doc = check_document(host, [check_vmm("cloud-hypervisor", host)])
        >>> doc["schema"], doc["ready"], doc["state"], doc["vmms"][0]["state"]
        ('kvmprobe-check', None, 'unknown', 'unknown')
    """
    entries = []
    for verdict in verdicts:
        entry = verdict.to_dict()
        item = (found or {}).get(id(verdict.profile))
        if item is not None:
            entry["installed"] = {key: item[key] for key in ("binary", "output", "version", "range")}
        entries.append(entry)
    state = check_state(verdicts, confidential, strict=strict, installed=installed)
    doc: Dict[str, Any] = {
        "schema": CHECK_SCHEMA,
        "schema_version": CHECK_SCHEMA_VERSION,
        "host": {
            "kernel": result.kernel,
            "arch": result.arch,
            "api_version": result.api_version,
            "device": result.device,
            "source": result.source,
            "kvm_backend": result.kvm_backend,
        },
        "ready": None if state == "unknown" else state == "ready",
        "state": state,
        "strict": strict,
        "vmms": entries,
    }
    if installed is not None:
        doc["installed"] = list(installed)
    if confidential:
        doc["confidential"] = [v.to_dict() for v in confidential]
    return doc
