"""The doctor's judgement of a micro-guest run: PASS with the figures, FAIL naming the exit, or
WARN far off normal, each with this host's remedy.

Imports ``_remedies``, ``_guest_report`` and ``_host_facts``. ``_checks`` (the doctor's checks)
wraps what :func:`judge_run` returns into its ``run`` check; "normal" and its sources are in
``_guest_report``.
"""

from __future__ import annotations

from . import _remedies
from ._guest_report import NORMAL_EXIT_NS, RunReport, describe_ns
from ._host_facts import HostFacts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Tuple

__all__ = ["judge_run"]

_SEQUENCE = "the real-mode guest gave KVM_EXIT_IO out on port 0x10 with 0x42, then KVM_EXIT_HLT"


def judge_run(report: RunReport, facts: HostFacts, *, recorded: bool) -> Tuple[str, str, str]:
    """(status ``PASS``/``WARN``/``FAIL``, summary, remedy) for ``report`` on the host of ``facts``.

    Example:
        >>> from kvmprobe._guest_report import GuestExit
        >>> hung = RunReport("2026-12-01T22:00:00Z", "x86_64", 2.0, "timeout", ())
        >>> judge_run(hung, HostFacts("Linux", "x86_64", "6.18.0"), recorded=True)[:2]
        ('FAIL', 'KVM_RUN does not run a guest: the real-mode guest did not finish in 2 s (measured 2026-12-01T22:00:00Z)')
    """
    when = f" (measured {report.measured_at})" if recorded else ""
    if not report.ok:
        return "FAIL", f"KVM_RUN does not run a guest: {report.failure()}{when}", _remedies.run_failure_remedy(facts)
    parts: List[str] = []
    far = False
    cost, loop = report.exit_cost, report.compute
    if cost is not None:
        text = f"an exit to user space takes {describe_ns(cost.median_ns)} (median of {cost.exits})"
        if cost.far_off:
            far, text = True, text + f", normal on VT-x/AMD-V is about {describe_ns(NORMAL_EXIT_NS)}"
        parts.append(text)
    if loop is not None:
        text = f"a compute loop runs {loop.slowdown:,.0f}x slower than natively"
        if loop.far_off:
            far, text = True, text + ", normal is native speed"
        parts.append(text)
    if report.cpuid_follows_table is False:
        differ = sum(len(row.differences()) for row in report.cpuid)
        parts.append(f"the guest's CPUID is not the table its vCPU was given ({differ} registers differ)")
    long_mode = report.long_mode_outcome
    if long_mode and long_mode != "halted":
        summary = f"KVM_RUN works in real mode ({_SEQUENCE}), but the long-mode guest failed: {report.long_mode_error}"
        return "WARN", summary + when, _remedies.run_failure_remedy(facts)
    if far:
        summary = f"KVM_RUN works ({_SEQUENCE}), but far off normal: " + "; ".join(parts) + when
        return "WARN", summary, _remedies.slow_guest_remedy(facts)
    figures = "".join(f"; {part}" for part in parts)
    return "PASS", f"KVM_RUN works: {_SEQUENCE}{figures}{when}", ""
