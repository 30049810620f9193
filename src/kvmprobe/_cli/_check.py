"""``kvmprobe check VMM...``: can these VMMs run on this host (or a recorded one), and if not, why?

The names may also be confidential-guest kinds (``sev``, ``sev-es``, ``sev-snp``, ``tdx``): those
are judged layer by layer by :mod:`kvmprobe.confidential`, and the report names the layer that
blocks and its fix. Exit 0 when everything named is ready, 1 when one is not, 2 on bad input (an
unknown name, a bad profile file), 3 when the live KVM device cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Union

from ..probing import ProbeResult
from ..profiles import CAVEAT, Profile, Readiness, check_vmm, load_profile, resolve_vmm, vmm_names
from . import _common

if TYPE_CHECKING:
    from ..confidential import ConfidentialReadiness

SCHEMA = "kvmprobe.check/1"

# Suffixes of --guest-memory sizes.
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="can these VMMs run here? exit 0 if all are ready, 1 if one is not",
        description="Check the host's KVM against what each VMM needs: the capabilities it refuses "
        "to start without, the ones whose absence degrades a feature, and the KVM API version. "
        "Built-in VMMs: " + ", ".join(vmm_names()) + ". Confidential guests: sev, sev-es, sev-snp, tdx "
        "(every layer from the CPU to the memlock limit, and the one that blocks).",
        epilog="exit codes: 0 all ready, 1 one is not, 2 bad input, 3 KVM unavailable.",
    )
    parser.add_argument(
        "vmms", nargs="*", metavar="VMM", help="built-in VMMs (e.g. cloud-hypervisor firecracker) or sev, sev-es, sev-snp, tdx"
    )
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


def run(args: argparse.Namespace) -> int:
    if not (args.vmms or args.all or args.profile):
        raise _common.UsageError(
            "name at least one VMM (" + ", ".join(vmm_names()) + "), or give --all or --profile FILE"
        )
    # Bad input fails before KVM is touched: unknown names, unreadable or malformed profiles.
    names, kinds = _split_names(args.vmms)
    memory = parse_size(args.guest_memory) if args.guest_memory is not None else None
    if not kinds and (args.create_vm or memory is not None):
        raise _common.UsageError("--create-vm and --guest-memory apply to sev, sev-es, sev-snp and tdx only")
    profiles = [load_profile(path) for path in args.profile]
    result = _common.load_result(args)
    targets: List[Union[str, Profile]] = list(names)
    if args.all:
        targets += [name for name in vmm_names(result.arch) if name not in targets]
    targets += profiles
    verdicts = [check_vmm(target, result) for target in targets]
    confidential: List[ConfidentialReadiness] = []
    if kinds:
        from ..confidential import assess

        report = assess(result, kinds=kinds, backend=_common.backend_of(args), create_vms=args.create_vm,
                        guest_memory=memory)  # fmt: skip
        confidential = list(report.verdicts)
    if args.json:
        _common.write_json(document(result, verdicts, confidential))
    else:
        sys.stdout.write(render(result, verdicts, confidential))
    ready = all(v.ready for v in verdicts) and all(v.ready for v in confidential)
    return _common.EXIT_OK if ready else _common.EXIT_NO


def _split_names(words: List[str]) -> "tuple[List[str], List[str]]":
    """The built-in VMM ids and the confidential kinds among the names given, each once."""
    from ..confidential import KINDS, resolve_kind
    from ..errors import UnknownVmm

    vmms: List[str] = []
    kinds: List[str] = []
    for word in words:
        kind = resolve_kind(word)
        if kind is not None:
            kinds.append(kind)
            continue
        try:
            vmms.append(resolve_vmm(word))
        except UnknownVmm as err:
            import difflib  # only on this error path

            close = difflib.get_close_matches(word.strip().lower(), list(KINDS), n=2, cutoff=0.6)
            if close:
                raise UnknownVmm(word, close + err.suggestions, known=err.known + list(KINDS)) from None
            raise
    return list(dict.fromkeys(vmms)), list(dict.fromkeys(kinds))


def parse_size(text: str) -> int:
    """``4G``, ``512MiB``, ``2048`` (bytes) as a number of bytes (binary units)."""
    import re

    match = re.fullmatch(r"([0-9]{1,15})\s*([KMGT]?)(?:I?B)?", text.strip().upper())
    if match is None:
        raise _common.UsageError(f"--guest-memory {text!r} is no size; give bytes or a number with K, M, G or T (4G)")
    return int(match.group(1)) * _UNITS[match.group(2)]


def document(
    result: ProbeResult, verdicts: List[Readiness], confidential: Optional[List[ConfidentialReadiness]] = None
) -> Dict[str, Any]:
    """The ``check --json`` document (``confidential`` only when a kind was named)."""
    doc: Dict[str, Any] = {
        "schema": SCHEMA,
        "host": {
            "kernel": result.kernel,
            "arch": result.arch,
            "api_version": result.api_version,
            "device": result.device,
            "source": result.source,
        },
        "ready": all(v.ready for v in verdicts) and all(v.ready for v in confidential or ()),
        "vmms": [v.to_dict() for v in verdicts],
    }
    if confidential:
        doc["confidential"] = [v.to_dict() for v in confidential]
    return doc


def render(
    result: ProbeResult, verdicts: List[Readiness], confidential: Optional[List[ConfidentialReadiness]] = None
) -> str:
    """The human report: the host, then per VMM the verdict and every reason, then per
    confidential kind the verdict, the blocking layer's fix and every layer."""
    origin = "" if result.source == "live" else f", recorded: {result.source}"
    lines = [f"host: Linux {result.kernel} ({result.arch}), KVM API {result.api_version}, {result.device}{origin}"]
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
        f"{'ready' if verdict.ready else 'NOT READY'}",
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
