"""``kvmprobe doctor``: whether KVM works here, why, and what to do.

Exit codes: 0 usable (warnings allowed unless ``--strict``), 1 not usable (KVM unreachable
included: that is the verdict, not an error), 2 the tool could not run (bad arguments, an
unreadable snapshot, a forced backend that is missing).
"""

from __future__ import annotations

import sys

from ..diagnosis import Diagnosis, Status, Verdict, diagnose
from . import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any, List, Optional

_COLORS = {
    Status.PASS: "\033[32m",  # green
    Status.WARN: "\033[33m",  # yellow
    Status.FAIL: "\033[31m",  # red
    Status.SKIP: "\033[34m",  # blue
    Status.INFO: "\033[36m",  # cyan
}
_VERDICT_STATUS = {
    Verdict.USABLE: Status.PASS,
    Verdict.USABLE_WITH_WARNINGS: Status.WARN,
    Verdict.NOT_USABLE: Status.FAIL,
}
_RESET = "\033[0m"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="say whether KVM works here, why, and what to do",
        description="Diagnose this host's KVM: the device, its permissions for this user, the API "
        "version, VM creation, the backend module and its nested parameter, CPU flags, and the "
        "vhost/tun devices VMMs use. The verdict comes from the kernel's answers; the rest explains.",
        epilog="exit codes: 0 usable (warnings allowed unless --strict), 1 not usable, 2 the tool could "
        "not run (bad arguments, unreadable snapshot)",
    )
    parser.add_argument("--json", action="store_true", help="print the diagnosis as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    parser.add_argument(
        "--as-user",
        metavar="USER",
        help="judge access to /dev/kvm, vhost and tun for this account (a name or uid, e.g. libvirt-qemu) "
        "instead of the one running kvmprobe: from mode, owner, ACLs and its groups in /etc/passwd and "
        "/etc/group, without becoming it (run it as root for the kernel's own answers)",
    )
    _common.add_source_arguments(parser)
    parser.set_defaults(func=run)


def quick_args(words: List[str]) -> Optional[argparse.Namespace]:
    """``doctor`` read without argparse when the words are plain."""
    return _common.quick_args(
        "doctor", words, run, flags={"--json": "json", "--strict": "strict"},
        valued={**_common.SOURCE_OPTIONS, "--as-user": "as_user"},
    )


def run(args: argparse.Namespace) -> int:
    if getattr(args, "snapshot", None) is not None:
        if args.as_user is not None:
            raise _common.UsageError("--as-user needs the live host: a recorded host's accounts and ACLs are not recorded")
        report = diagnose(_common.load_result(args))
    else:
        report = diagnose(device=args.device, backend=_common.backend_of(args), as_user=args.as_user)
    if args.json:
        _common.write_json(report.to_dict())
    else:
        sys.stdout.write(render(report, color=_common.use_color(sys.stdout)))
    return exit_code(report, strict=args.strict)


def exit_code(report: Diagnosis, *, strict: bool = False) -> int:
    """0 usable, 1 not usable; with ``strict``, warnings count as not ready."""
    if report.verdict is Verdict.NOT_USABLE:
        return _common.EXIT_NO
    if strict and report.verdict is Verdict.USABLE_WITH_WARNINGS:
        return _common.EXIT_NO
    return _common.EXIT_OK


def _word(status: Status, color: bool) -> str:
    word = f"{status.value:<4}"
    return f"{_COLORS[status]}{word}{_RESET}" if color else word


def render(report: Diagnosis, *, color: bool = False) -> str:
    """One aligned line per check, the remedy under each WARN/FAIL, then the verdict."""
    width = max(len(item.id) for item in report.checks)
    indent = " " * (2 + 4 + 2 + width + 2)
    source = "" if report.source == "live" else f" ({report.source})"
    device = "no device" if report.source.endswith("(synthesized)") else report.device  # presets.load_preset's mark
    lines: List[str] = [f"kvmprobe doctor: {device}{source}"]
    if report.as_user is not None:
        account = report.as_user
        lines.append(f"access judged for {account.name} (uid {account.uid}, groups {', '.join(map(str, account.groups))})")
    lines.append("")
    for item in report.checks:
        lines.append(f"  {_word(item.status, color)}  {item.id:<{width}}  {item.summary}")
        if item.remedy:
            label = "fix" if item.status in (Status.WARN, Status.FAIL) else "to change"
            lines.append(f"{indent}{label}: {item.remedy}")
    lines += confidential_section(report, color=color, width=width)
    verdict = report.verdict.text
    if color:
        verdict = f"{_COLORS[_VERDICT_STATUS[report.verdict]]}{verdict}{_RESET}"
    rest = report.summary[len(report.verdict.text):]
    lines += ["", f"verdict: {verdict}{rest}"]
    return "\n".join(lines) + "\n"


def confidential_section(report: Diagnosis, *, color: bool, width: int) -> List[str]:
    """One line per confidential kind: ready (PASS) or not (INFO: most hosts need none, so its fix
    is a recipe to change that, as for other INFO lines), and why."""
    section = report.confidential
    if section is None:
        return []
    types = section.vm_type_names
    if not section.vm_types_recorded:
        offered = "KVM_CAP_VM_TYPES not recorded"
    else:
        offered = f"KVM_CAP_VM_TYPES {section.vm_types:#x} ({'|'.join(types)})" if section.vm_types else "no KVM_CAP_VM_TYPES"
    indent = " " * (2 + 4 + 2 + width + 2)
    lines = ["", f"confidential VMs: {offered}; 'kvmprobe check sev-snp' shows every layer"]
    for verdict in section.verdicts:
        # Cannot tell is SKIP (not checked, never a guess), not an INFO "not ready".
        status = Status.PASS if verdict.ready else Status.SKIP if verdict.unknown else Status.INFO
        if verdict.ready:
            text = verdict.summary()
        elif verdict.unknown:
            text = "cannot tell: " + verdict.layer("kvm").summary
        else:
            found = verdict.layer(verdict.blocking) if verdict.blocking else None
            text = f"not ready: blocked at the {found.title} layer: {found.summary}" if found else "not ready"
        lines.append(f"  {_word(status, color)}  {verdict.kind:<{width}}  {text}")
        if verdict.fix:
            lines.append(f"{indent}to change: {verdict.fix}")
    return lines
