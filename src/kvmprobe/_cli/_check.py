"""``kvmprobe check VMM...``: can these VMMs run on this host (or a recorded one), and if not, why?

Exit 0 when every VMM named is ready, 1 when one is not, 2 on bad input (an unknown VMM, a bad
profile file), 3 when the live KVM device cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Union

from ..probing import ProbeResult
from ..profiles import CAVEAT, Profile, Readiness, check_vmm, load_profile, resolve_vmm, vmm_names
from . import _common

#: The ``check --json`` document's ``schema`` and ``schema_version`` (kvmprobe up to 0.1.0
#: wrote ``"schema": "kvmprobe.check/1"`` without a version: the same document, version 1).
SCHEMA = "kvmprobe-check"
SCHEMA_VERSION = 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="can these VMMs run here? exit 0 if all are ready, 1 if one is not",
        description="Check the host's KVM against what each VMM needs: the capabilities it refuses "
        "to start without, the ones whose absence degrades a feature, and the KVM API version. "
        "Built-in VMMs: " + ", ".join(vmm_names()) + ".",
        epilog="exit codes: 0 all ready, 1 one is not, 2 bad input, 3 KVM unavailable.",
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
    if not targets:  # --all where no built-in profile fits: nothing checked is not "ready"
        raise _common.UsageError(
            f"no built-in VMM profile for {result.arch}, so --all checks nothing; describe the VMM in a file for "
            "--profile FILE (see 'Custom profiles' in README.md)"
        )
    verdicts = [check_vmm(target, result) for target in targets]
    if args.json:
        _common.write_json(document(result, verdicts))
    else:
        sys.stdout.write(render(result, verdicts))
    return _common.EXIT_OK if all(v.ready for v in verdicts) else _common.EXIT_NO


def document(result: ProbeResult, verdicts: List[Readiness]) -> Dict[str, Any]:
    """The ``check --json`` document."""
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
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
    lines = [f"host: Linux {result.kernel} ({result.arch}), KVM API {result.api_version}, {_common.where_from(result)}"]
    for verdict in verdicts:
        profile = verdict.profile
        label = f"{verdict.display_name} [{profile.name}, {profile.arch or 'any arch'}]"
        lines += ["", f"{label}: {'ready' if verdict.ready else 'NOT READY'}", f"  {verdict.summary()}"]
        if verdict.needs_kernel_text:
            lines.append(f"  fix: a Linux {verdict.needs_kernel_text} or newer kernel")
        for missing in verdict.missing_required:
            lines.append(f"  missing ({missing.kind}): {missing.describe()}")
        for problem in verdict.problems:
            lines.append(f"  problem: {problem}")
        for missing in verdict.missing_optional:
            lines.append(f"  optional, missing: {missing.describe()}")
        for missing in verdict.missing_conditional:
            lines.append(f"  missing, only needed for {missing.why}: {missing.name} ({int(missing.cap)}, Linux {missing.since_text})")
        for note in verdict.notes:
            lines.append(f"  note: {note}")
        if not verdict.ready and profile.failure:
            lines.append(f"  how it fails: {profile.failure}")
        origin_text = profile.source or "(no source given)"
        if profile.path:
            origin_text += f" [profile {profile.path}]"
        lines.append(f"  requirements: {origin_text}")
    if any(v.missing_required for v in verdicts):
        lines += ["", f"note: {CAVEAT}"]
    return "\n".join(lines) + "\n"
