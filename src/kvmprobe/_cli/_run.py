"""``kvmprobe run``: does KVM_RUN work here, and how fast? The micro-guest checks, in full.

Exit 0 when the real-mode guest ran exactly as hardware would, 1 when it did not (or did not
finish), 2 on bad input (a bad time limit, a snapshot without run results, a machine the
micro-guest cannot run on), 3 when the live KVM device cannot be used.
"""

from __future__ import annotations

import argparse
import sys

from . import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a micro-guest under KVM_RUN: does it work, what does an exit cost, how slow is guest code",
        description="Run the standard micro-guests in a child process under a watchdog: five bytes of real-mode "
        "code (mov al,0x42; out 0x10,al; hlt) must give KVM_EXIT_IO then KVM_EXIT_HLT; a long-mode guest reads "
        "CPUID (compared with KVM_GET_SUPPORTED_CPUID), makes N OUT exits (the exit cost) and runs a loop timed "
        "against the same code run natively (the slowdown). Well under a second; --thorough measures longer.",
        epilog="exit codes: 0 KVM_RUN works, 1 it does not, 2 bad input, 3 KVM unavailable.",
    )
    parser.add_argument("--json", action="store_true", help="print the run document (schema kvmprobe-run)")
    parser.add_argument(
        "--thorough", action="store_true", help="10,000 exits and a 1,000,000-iteration loop (seconds under emulation)"
    )
    parser.add_argument(
        "--time-limit", type=float, metavar="SECONDS", help="how long each guest may run (default 10, thorough 30)"
    )
    _common.add_source_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..guest import RunReport

    snapshot = getattr(args, "snapshot", None)
    if snapshot is not None:
        if args.device is not None or args.thorough or args.time_limit is not None:
            raise _common.UsageError("--device, --thorough and --time-limit apply to this host, not to --snapshot "
                                     "(hint: leave them out, or leave out --snapshot to run on this host)")
        recorded = _common.load_host(snapshot)
        if recorded.run is None:
            raise _common.UsageError(
                f"{snapshot} carries no run results (hint: record them with 'kvmprobe snapshot --run -o FILE', "
                "or leave out --snapshot to run on this host)"
            )
        report: RunReport = recorded.run
        backend = recorded.host.kvm_backend if recorded.host is not None else None
        where = f"{recorded.device} ({recorded.source})"
    else:
        from ..device import device_path
        from ..guest import run_checks
        from ..host import kvm_backend_of

        path = device_path(args.device)
        report = run_checks(thorough=args.thorough, time_limit=args.time_limit, device=path,
                            backend=_common.backend_of(args))  # fmt: skip
        # The one read of the backend fact a live probe makes too; a fake's run says nothing of it.
        backend = kvm_backend_of() if _common.backend_of(args) is None else None
        where = path
    if args.json:
        _common.write_json(report.to_dict())
    else:
        sys.stdout.write(render(report, where, backend))
    return _common.EXIT_OK if report.ok else _common.EXIT_NO


def render(report: Any, where: str, backend: Optional[str]) -> str:
    """The report for a person: each guest, the figures, then one verdict line."""
    from ..guest import NORMAL_EXIT_NS, describe_ns

    lines: List[str] = [f"kvmprobe run: {where}{f' ({backend})' if backend else ''}, measured {report.measured_at}", ""]
    exits = ", then ".join(f"{e.describe()} ({describe_ns(e.ns)})" for e in report.real_mode) or "no exit"
    state = "ok" if report.ok else f"NOT OK: {report.failure()}"
    lines.append(f"  real mode   {exits}: {state}")
    if report.long_mode_outcome:
        lines.append(f"  long mode   {report.long_mode_outcome}" + (f": {report.long_mode_error}" if report.long_mode_error else ""))
    cost = report.exit_cost
    if cost is not None:
        lines.append(
            f"  exit cost   {describe_ns(cost.median_ns)} per exit to user space (median of {cost.exits}; "
            f"fastest {describe_ns(cost.min_ns)}, slowest {describe_ns(cost.max_ns)})"
        )
    loop = report.compute
    if loop is not None:
        lines.append(
            f"  compute     a {loop.iterations:,}-iteration loop: {describe_ns(loop.guest_ns)} in the guest, "
            f"{describe_ns(loop.native_ns)} natively: {loop.slowdown:,.0f}x slower"
        )
    for row in report.cpuid:
        differences = row.differences()
        if row.supported is None:
            text = "not in KVM_GET_SUPPORTED_CPUID"
        elif differences:
            text = "differs from KVM_GET_SUPPORTED_CPUID in " + ", ".join(f"{r} bits {b:#x}" for r, b in differences)
        else:
            text = "as KVM_GET_SUPPORTED_CPUID lists it"
        lines.append(f"  cpuid       leaf {row.leaf:#x}.{row.subleaf}: {text}")
    lines.append("")
    if not report.ok:
        lines.append(f"verdict: KVM_RUN does not work here: {report.failure()}")
    else:
        verdict = "verdict: KVM_RUN works here"
        if cost is not None:
            verdict += f", {describe_ns(cost.median_ns)} per exit (about {describe_ns(NORMAL_EXIT_NS)} on VT-x/AMD-V)"
        if loop is not None:
            verdict += f", guest code {loop.slowdown:,.0f}x slower than native"
        if report.cpuid_follows_table is False:
            verdict += ", guest CPUID not the vCPU's table"
        long_mode = report.long_mode_outcome
        if long_mode == "timeout":  # the figures above are partial or missing: say so in the verdict
            verdict += (f"; but the long-mode guest did not finish in {report.time_limit:g} s, so the figures are "
                        "incomplete (give a longer --time-limit)")
        elif long_mode and long_mode != "halted":
            verdict += f"; but the long-mode guest failed ({long_mode}), so the figures are incomplete"
        lines.append(verdict)
    return "\n".join(lines) + "\n"
