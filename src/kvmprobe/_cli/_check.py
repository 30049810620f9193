"""``kvmprobe check VMM[@VERSION]... [--installed]``: can these VMMs run on this host (or a recorded one)?

The names may also be confidential-guest kinds (``sev``, ``sev-es``, ``sev-snp``, ``tdx``): those
are judged layer by layer by :mod:`kvmprobe.confidential`, and the report names the layer that
blocks and its fix. Exit 0 when everything named is ready (VMMs on conditions too, unless
``--strict``), 1 when one is not (or an installed one cannot be judged), 2 on bad input (an
unknown name or release, a bad profile file), 3 when the live KVM device cannot be used.
"""

from __future__ import annotations

import sys

from .._value import replace
from ..probing import ProbeResult
from ..profiles import (
    CAVEAT,
    Profile,
    Readiness,
    builtin_profile,
    check_document,
    check_state,
    check_vmm,
    installed_profiles,
    load_profile,
    resolve_vmm_spec,
    vmm_names,
)
from . import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

    from ..confidential import ConfidentialReadiness

# Suffixes of --guest-memory sizes.
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="can these VMMs run here? exit 0 if all are ready, 1 if one is not",
        description="Check the host's KVM against what each VMM needs: the capabilities it refuses "
        "to start without, the ones whose absence degrades a feature, and the KVM API version. "
        "Name a release as the VMM spells it (qemu@7.2, cloud-hypervisor@v45); without one, the "
        "newest release kvmprobe knows. Built-in VMMs: " + ", ".join(vmm_names()) + ". Confidential "
        "guests: sev, sev-es, sev-snp, tdx (every layer from the CPU to the memlock limit, and the one "
        "that blocks).",
        epilog="exit codes: 0 all ready (on conditions too, unless --strict), 1 one is not or cannot be told "
        "(UNKNOWN: the recording lacks an answer), 2 bad input, 3 KVM unavailable.",
    )
    parser.add_argument(
        "vmms", nargs="*", metavar="VMM[@VERSION]",
        help="built-in VMMs, e.g. cloud-hypervisor@v45 qemu@7.2 firecracker; or sev, sev-es, sev-snp, tdx",
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
    parser.add_argument(
        "--create-vm",
        action="store_true",
        help="sev/sev-es/sev-snp/tdx: also create a VM of each confidential type and close it at once",
    )
    parser.add_argument(
        "--guest-memory",
        metavar="SIZE",
        help="sev/sev-es: the guest's RAM (e.g. 4G), held against this process's RLIMIT_MEMLOCK",
    )
    _common.add_source_arguments(parser)
    parser.set_defaults(func=run)


def quick_args(words: List[str]) -> Optional[argparse.Namespace]:
    """``check`` read without argparse when the words are plain."""
    return _common.quick_args(
        "check", words, run,
        flags={"--all": "all", "--installed": "installed", "--json": "json", "--strict": "strict", "--create-vm": "create_vm"},
        valued={**_common.SOURCE_OPTIONS, "--guest-memory": "guest_memory"},
        appended={"--profile": "profile"},
        positional="vmms",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if not (args.vmms or args.all or args.profile or args.installed):
        raise _common.UsageError(
            "name at least one VMM (" + ", ".join(vmm_names()) + "), or give --all, --installed or --profile FILE"
        )
    # Bad input fails before KVM is touched: unknown names and releases, unreadable or malformed
    # profiles. Which release range applies depends on the host's architecture, known after.
    if args.installed and args.snapshot is not None:
        raise _common.UsageError("--installed checks the VMMs installed here against this host: leave out --snapshot")
    specs, kinds = _split_names(args.vmms)
    memory = parse_size(args.guest_memory) if args.guest_memory is not None else None
    if not kinds and (args.create_vm or memory is not None):
        raise _common.UsageError("--create-vm and --guest-memory apply to sev, sev-es, sev-snp and tdx only")
    files = [load_profile(path) for path in args.profile]
    result = _common.load_result(args)
    named = [builtin_profile(vmm, result.arch, version) for vmm, version in specs]
    installed = installed_profiles(result.arch) if args.installed else []
    targets: List[Profile] = named
    if args.all:
        targets += [builtin_profile(name, result.arch) for name in vmm_names(result.arch)
                    if name not in {p.name for p in named}]
        if not targets and not kinds:  # --all where no built-in profile fits: nothing checked is not "ready"
            raise _common.UsageError(
                f"no built-in VMM profile for {result.arch}, so --all checks nothing; describe the VMM in a file for "
                "--profile FILE (see docs/profiles.md)"
            )
    targets += [profile for profile, _ in installed if profile is not None]
    targets += files
    verdicts = [check_vmm(target, result) for target in targets]
    found = {id(profile): item for profile, item in installed if profile is not None}
    unjudged = [item for profile, item in installed if profile is None]
    items = [item for _, item in installed] if args.installed else None
    confidential: List[ConfidentialReadiness] = []
    if kinds:
        from ..confidential import assess

        report = assess(result, kinds=kinds, backend=_common.backend_of(args), create_vms=args.create_vm,
                        guest_memory=memory)  # fmt: skip
        confidential = list(report.verdicts)
    strict = bool(getattr(args, "strict", False))
    if args.json:
        _common.write_json(check_document(result, verdicts, installed=items, found=found, confidential=confidential,
                                          strict=strict))  # fmt: skip
    else:
        sys.stdout.write(render(result, verdicts, found=found, unjudged=unjudged, searched=args.installed,
                                confidential=confidential))  # fmt: skip
    state = check_state(verdicts, confidential, strict=strict, installed=items)
    return _common.EXIT_OK if state == "ready" else _common.EXIT_NO


def _split_names(words: List[str]) -> Tuple[List[Tuple[str, Optional[str]]], List[str]]:
    """The VMM specs (``(vmm, version)``) and the confidential kinds among the names, each once."""
    from ..confidential import KINDS, resolve_kind
    from ..errors import UnknownVmm

    specs: List[Tuple[str, Optional[str]]] = []
    kinds: List[str] = []
    for word in words:
        kind = resolve_kind(word)
        if kind is not None:
            kinds.append(kind)
            continue
        try:
            specs.append(resolve_vmm_spec(word))
        except UnknownVmm as err:
            import difflib  # only on this error path

            close = difflib.get_close_matches(word.strip().lower(), list(KINDS), n=2, cutoff=0.6)
            if close and type(err) is UnknownVmm:
                raise UnknownVmm(word, close + err.suggestions, known=err.known + list(KINDS),
                                 what="VMM profile or confidential-VM kind") from None
            raise
    return list(dict.fromkeys(specs)), list(dict.fromkeys(kinds))


def parse_size(text: str) -> int:
    """``4G``, ``512MiB``, ``2048`` (bytes) as a number of bytes (binary units)."""
    import re

    match = re.fullmatch(r"([0-9]{1,15})\s*([KMGT]?)(?:I?B)?", text.strip().upper())
    if match is None:
        raise _common.UsageError(f"--guest-memory {text!r} is no size; give bytes or a number with K, M, G or T (4G)")
    return int(match.group(1)) * _UNITS[match.group(2)]


def render(
    result: ProbeResult,
    verdicts: List[Readiness],
    *,
    found: Optional[Dict[int, Dict[str, Any]]] = None,
    unjudged: Optional[List[Dict[str, Any]]] = None,
    searched: bool = False,
    confidential: Optional[List[ConfidentialReadiness]] = None,
) -> str:
    """The human report: the host, then per VMM the verdict and every reason, then per
    confidential kind the verdict, the blocking layer's fix and every layer."""
    lines = [f"host: Linux {result.kernel} ({result.arch}), KVM API {result.api_version}, {_common.where_from(result)}"]
    for verdict in verdicts:
        profile = verdict.profile
        name = verdict.display_name + (f" {profile.version}" if profile.version else "")
        where = [profile.name + (f" {profile.versions}" if profile.versions else ""), profile.arch or "any arch"]
        lines += ["", f"{name} [{', '.join(where)}]: {verdict.state_text}", f"  {verdict.summary()}"]
        item = (found or {}).get(id(profile))
        if item is not None:
            lines.append(f"  installed: {item['binary']}: {item['output']}")
        if verdict.needs_kernel_text:
            lines.append(f"  fix: a Linux {verdict.needs_kernel_text} or newer kernel")
        for missing in verdict.missing_required:
            lines.append(f"  {'not recorded' if missing.not_recorded else 'missing'} ({missing.kind}): {missing.describe()}")
        for problem in verdict.problems[len(verdict.blocked_by):]:  # a blocker is the summary already
            lines.append(f"  problem: {problem}")
        for missing in verdict.missing_optional:
            lines.append(f"  optional, {'not recorded' if missing.not_recorded else 'missing'}: {missing.describe()}")
        for missing in verdict.missing_conditional:
            word = "not recorded" if missing.not_recorded else "missing"
            lines.append(f"  {word}, only needed for {missing.why}: {replace(missing, why='').describe()}")
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
    for kind in confidential or ():
        lines += [""] + confidential_lines(kind)
    if any(v.missing_required for v in verdicts):
        lines += ["", f"note: {CAVEAT}"]
    return "\n".join(lines) + "\n"


def confidential_lines(verdict: ConfidentialReadiness, *, indent: str = "  ") -> List[str]:
    """One confidential kind: the verdict, the fix, each layer (status, what it found) and notes."""
    from ..confidential import vm_type_name

    lines = [
        f"{verdict.display_name} [{verdict.kind}, {vm_type_name(verdict.vm_type)}]: "
        f"{'ready' if verdict.ready else 'UNKNOWN' if verdict.unknown else 'NOT READY'}",
        f"{indent}{verdict.summary()}",
    ]
    if verdict.fix:
        lines.append(f"{indent}fix: {verdict.fix}")
    width = max(len(layer.title) for layer in verdict.layers)
    for layer in verdict.layers:
        mark = "  <- blocks" if layer.id == verdict.blocking else ""
        lines.append(f"{indent}  {layer.title:<{width}}  {layer.status:<7}  {layer.summary}{mark}")
    for layer in verdict.layers:
        if layer.status == "warn" and layer.fix:
            lines.append(f"{indent}warning ({layer.title}): {layer.fix}")
    lines += [f"{indent}note: {note}" for note in verdict.notes]
    return lines
