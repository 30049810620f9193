"""``kvmprobe check VMM[@VERSION]... [--installed]``: can these VMMs run on this host (or a recorded one)?

Exit 0 when every VMM named is ready (on conditions too, unless ``--strict``), 1 when one is not
(or an installed one cannot be judged), 2 on bad input (an unknown VMM or release, a bad profile
file), 3 when the live KVM device cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..probing import ProbeResult
from ..profiles import (
    CAVEAT,
    Profile,
    Readiness,
    builtin_profile,
    check_vmm,
    load_profile,
    resolve_vmm_spec,
    vmm_names,
)
from . import _common

SCHEMA = "kvmprobe.check/1"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="can these VMMs run here? exit 0 if all are ready, 1 if one is not",
        description="Check the host's KVM against what each VMM needs: the capabilities it refuses "
        "to start without, the ones whose absence degrades a feature, and the KVM API version. "
        "Name a release as the VMM spells it (qemu@7.2, cloud-hypervisor@v45); without one, the "
        "newest release kvmprobe knows. Built-in VMMs: " + ", ".join(vmm_names()) + ".",
        epilog="exit codes: 0 all ready (on conditions too, unless --strict), 1 one is not, 2 bad input, "
        "3 KVM unavailable.",
    )
    parser.add_argument(
        "vmms", nargs="*", metavar="VMM[@VERSION]", help="built-in VMMs, e.g. cloud-hypervisor@v45 qemu@7.2 firecracker"
    )
    parser.add_argument("--all", action="store_true", help="every built-in VMM with a profile for the host's arch")
    parser.add_argument(
        "--installed",
        action="store_true",
        help="the VMMs installed here (PATH and the usual places), each checked as the release it "
        "reports; only their version query (--version) is run, with a time limit",
    )
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="FILE",
        help="a VMM's own requirements, as a JSON or TOML file (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print the JSON document for programs")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 also when a VMM is ready only on a condition of this KVM backend (e.g. a PVM guest kernel)",
    )
    _common.add_source_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not (args.vmms or args.all or args.profile or args.installed):
        raise _common.UsageError(
            "name at least one VMM (" + ", ".join(vmm_names()) + "), or give --all, --installed or --profile FILE"
        )
    # Bad input fails before KVM is touched: unknown names and releases, unreadable or malformed
    # profiles. Which release range applies depends on the host's architecture, known after.
    if args.installed and args.snapshot is not None:
        raise _common.UsageError("--installed checks the VMMs installed here against this host: leave out --snapshot")
    specs = list(dict.fromkeys(resolve_vmm_spec(spec) for spec in args.vmms))
    files = [load_profile(path) for path in args.profile]
    result = _common.load_result(args)
    named = [builtin_profile(vmm, result.arch, version) for vmm, version in specs]
    installed = _installed(result.arch) if args.installed else []
    targets: List[Profile] = named
    if args.all:
        targets += [builtin_profile(name, result.arch) for name in vmm_names(result.arch)
                    if name not in {p.name for p in named}]
    targets += [profile for profile, _ in installed if profile is not None]
    targets += files
    verdicts = [check_vmm(target, result) for target in targets]
    found = {id(profile): item for profile, item in installed if profile is not None}
    unjudged = [item for profile, item in installed if profile is None]
    items = [item for _, item in installed] if args.installed else None
    if args.json:
        _common.write_json(document(result, verdicts, installed=items, found=found))
    else:
        sys.stdout.write(render(result, verdicts, found=found, unjudged=unjudged, searched=args.installed))
    if not _ready(verdicts, items):
        return _common.EXIT_NO
    if getattr(args, "strict", False) and any(v.conditions for v in verdicts):
        return _common.EXIT_NO
    return _common.EXIT_OK


def _ready(verdicts: List[Readiness], installed: Optional[List[Dict[str, Any]]]) -> bool:
    """Every verdict ready; with --installed also something found, and every find judged."""
    if installed is None:
        return all(v.ready for v in verdicts)
    return bool(verdicts) and all(v.ready for v in verdicts) and all(item["range"] for item in installed)


def _installed(
    arch: str, find: Optional[Callable[[str], Sequence[Any]]] = None
) -> List[Tuple[Optional[Profile], Dict[str, Any]]]:
    """Each VMM found here (by ``find``, default ``_installed.find_installed``): its profile for
    the release it reported (``None``: not judged), and what to say about it (binary, output,
    version, the release range used, or why none)."""
    from ..errors import UnknownVmm

    if find is None:
        from .._installed import find_installed  # runs programs: imported only for --installed

        find = find_installed
    found: List[Tuple[Optional[Profile], Dict[str, Any]]] = []
    for item in find(arch):
        doc: Dict[str, Any] = {"vmm": item.vmm, "binary": item.path, "output": item.output,
                               "version": item.version, "range": None, "problem": item.problem or None}
        profile: Optional[Profile] = None
        if item.version is not None:
            try:
                profile = builtin_profile(item.vmm, arch, item.version)
                doc["range"] = profile.versions
            except UnknownVmm as err:  # UnknownRelease: a release no profile covers
                doc["problem"] = f"{err.message} ({err.hint})"
        found.append((profile, doc))
    return found


def document(
    result: ProbeResult,
    verdicts: List[Readiness],
    *,
    installed: Optional[List[Dict[str, Any]]] = None,
    found: Optional[Dict[int, Dict[str, Any]]] = None,
) -> Dict[str, Any]:
    """The ``check --json`` document (``installed``: what ``--installed`` found, judged or not)."""
    entries = []
    for verdict in verdicts:
        entry = verdict.to_dict()
        item = (found or {}).get(id(verdict.profile))
        if item is not None:
            entry["installed"] = {key: item[key] for key in ("binary", "output", "version", "range")}
        entries.append(entry)
    doc: Dict[str, Any] = {
        "schema": SCHEMA,
        "host": {
            "kernel": result.kernel,
            "arch": result.arch,
            "api_version": result.api_version,
            "device": result.device,
            "source": result.source,
        },
        "ready": _ready(verdicts, installed),
        "vmms": entries,
    }
    if installed is not None:
        doc["installed"] = installed
    return doc


def render(
    result: ProbeResult,
    verdicts: List[Readiness],
    *,
    found: Optional[Dict[int, Dict[str, Any]]] = None,
    unjudged: Optional[List[Dict[str, Any]]] = None,
    searched: bool = False,
) -> str:
    """The human report: the host, then per VMM the verdict and every reason."""
    # A host derived from source was never recorded: its source says what it is.
    origin = "" if result.source == "live" else f", {'' if result.derivation else 'recorded: '}{result.source}"
    lines = [f"host: Linux {result.kernel} ({result.arch}), KVM API {result.api_version}, {result.device}{origin}"]
    for verdict in verdicts:
        profile = verdict.profile
        name = verdict.display_name + (f" {profile.version}" if profile.version else "")
        where = [profile.name + (f" {profile.versions}" if profile.versions else ""), profile.arch or "any arch"]
        state = "NOT READY" if not verdict.ready else "ready, on conditions" if verdict.conditions else "ready"
        lines += ["", f"{name} [{', '.join(where)}]: {state}", f"  {verdict.summary()}"]
        item = (found or {}).get(id(profile))
        if item is not None:
            lines.append(f"  installed: {item['binary']}: {item['output']}")
        if verdict.needs_kernel_text:
            lines.append(f"  fix: a Linux {verdict.needs_kernel_text} or newer kernel")
        for missing in verdict.missing_required:
            lines.append(f"  missing ({missing.kind}): {missing.describe()}")
        for problem in verdict.problems[len(verdict.blocked_by):]:  # a blocker is the summary already
            lines.append(f"  problem: {problem}")
        for missing in verdict.missing_optional:
            lines.append(f"  optional, missing: {missing.describe()}")
        for missing in verdict.missing_conditional:
            lines.append(f"  missing, only needed for {missing.why}: {missing.name} ({int(missing.cap)}, Linux {missing.since_text})")
        for note in verdict.notes:
            lines.append(f"  note: {note}")
        for blocker in verdict.blocked_by:
            lines.append(f"  why it does not run on {blocker.backend}: {blocker.text}")
            lines += [f"    evidence: {source}" for source in blocker.sources]
        for condition in verdict.conditions:
            lines.append(f"  condition of {condition.backend}: {condition.text}")
            lines += [f"    source: {source}" for source in condition.sources]
        capability_problems = verdict.missing_required or len(verdict.problems) > len(verdict.blocked_by)
        if not verdict.ready and capability_problems and profile.failure:
            lines.append(f"  how it fails: {profile.failure}")
        origin_text = profile.source or "(no source given)"
        if profile.path:
            origin_text += f" [profile {profile.path}]"
        lines.append(f"  requirements: {origin_text}")
    for item in unjudged or []:
        lines += ["", f"{item['binary']}: NOT CHECKED", f"  {item['problem']}"]
        if item["output"]:
            lines.append(f"  it printed: {item['output']}")
    if searched and not verdicts and not unjudged:
        from .._installed import USUAL_DIRS

        lines += ["", "no VMM found on PATH or in " + ", ".join(USUAL_DIRS)]
    if any(v.missing_required for v in verdicts):
        lines += ["", f"note: {CAVEAT}"]
    return "\n".join(lines) + "\n"
