"""``kvmprobe check VMM...``: can these VMMs run on this host (or a recorded one), and if not, why?

Exit 0 when every VMM named is ready (on conditions too, unless ``--strict``), 1 when one is not,
2 on bad input (an unknown VMM, a bad profile file), 3 when the live KVM device cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Union

from ..probing import ProbeResult
from ..profiles import CAVEAT, Profile, Readiness, check_vmm, load_profile, resolve_vmm, vmm_names
from . import _common

SCHEMA = "kvmprobe.check/1"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="can these VMMs run here? exit 0 if all are ready, 1 if one is not",
        description="Check the host's KVM against what each VMM needs: the capabilities it refuses "
        "to start without, the ones whose absence degrades a feature, and the KVM API version. "
        "Built-in VMMs: " + ", ".join(vmm_names()) + ".",
        epilog="exit codes: 0 all ready (on conditions too, unless --strict), 1 one is not, 2 bad input, "
        "3 KVM unavailable.",
    )
    parser.add_argument("vmms", nargs="*", metavar="VMM", help="built-in VMMs, e.g. cloud-hypervisor firecracker")
    parser.add_argument("--all", action="store_true", help="every built-in VMM with a profile for the host's arch")
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
    if not (args.vmms or args.all or args.profile):
        raise _common.UsageError(
            "name at least one VMM (" + ", ".join(vmm_names()) + "), or give --all or --profile FILE"
        )
    # Bad input fails before KVM is touched: unknown names, unreadable or malformed profiles.
    names = list(dict.fromkeys(resolve_vmm(name) for name in args.vmms))
    profiles = [load_profile(path) for path in args.profile]
    result = _common.load_result(args)
    targets: List[Union[str, Profile]] = list(names)
    if args.all:
        targets += [name for name in vmm_names(result.arch) if name not in targets]
    targets += profiles
    verdicts = [check_vmm(target, result) for target in targets]
    if args.json:
        _common.write_json(document(result, verdicts))
    else:
        sys.stdout.write(render(result, verdicts))
    if not all(v.ready for v in verdicts):
        return _common.EXIT_NO
    if getattr(args, "strict", False) and any(v.conditions for v in verdicts):
        return _common.EXIT_NO
    return _common.EXIT_OK


def document(result: ProbeResult, verdicts: List[Readiness]) -> Dict[str, Any]:
    """The ``check --json`` document."""
    return {
        "schema": SCHEMA,
        "host": {
            "kernel": result.kernel,
            "arch": result.arch,
            "api_version": result.api_version,
            "device": result.device,
            "source": result.source,
        },
        "ready": all(v.ready for v in verdicts),
        "vmms": [v.to_dict() for v in verdicts],
    }


def render(result: ProbeResult, verdicts: List[Readiness]) -> str:
    """The human report: the host, then per VMM the verdict and every reason."""
    origin = "" if result.source == "live" else f", recorded: {result.source}"
    lines = [f"host: Linux {result.kernel} ({result.arch}), KVM API {result.api_version}, {result.device}{origin}"]
    for verdict in verdicts:
        profile = verdict.profile
        label = f"{verdict.display_name} [{profile.name}, {profile.arch or 'any arch'}]"
        state = "NOT READY" if not verdict.ready else "ready, on conditions" if verdict.conditions else "ready"
        lines += ["", f"{label}: {state}", f"  {verdict.summary()}"]
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
    if any(v.missing_required for v in verdicts):
        lines += ["", f"note: {CAVEAT}"]
    return "\n".join(lines) + "\n"
