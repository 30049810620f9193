"""The doctor's verdict types: a :class:`Check` and its :class:`Status`.

Imports ``_value`` only. Value types, below every room that makes or shows checks (``_checks``,
``_host_checks``, ``diagnosis``); ``kvmprobe.diagnosis`` is where users import them.
"""

from __future__ import annotations

import enum

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass
    from typing import Any, Dict
else:
    from ._value import dataclass

__all__ = ["Check", "Status"]


class Status(enum.Enum):
    """The outcome of one check.

    PASS: as needed. WARN: works, but something a VMM may need is missing. FAIL: broken (for a
    decisive check: KVM is not usable). SKIP: could not be checked here (not root, nothing to
    ask), never a guess. INFO: a fact that explains, neither good nor bad.

    Example:
        >>> Status.WARN.value
        'WARN'
    """

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"
    INFO = "INFO"


@dataclass(frozen=True)
class Check:
    """One check: its id, outcome, what was found and, where something is wrong, the fix.

    ``remedy`` is a command or a sentence, computed from what was observed; it is set for
    WARN and FAIL, and for an INFO that tells how to change a setting (``nested``).
    ``decisive`` marks the kernel's answers the verdict comes from.

    Example:
        >>> Check("tun", Status.WARN, "/dev/net/tun is missing", "sudo modprobe tun").to_dict()["status"]
        'WARN'
    """

    id: str
    status: Status
    summary: str
    remedy: str = ""
    decisive: bool = False

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: ``id``, ``status``, ``decisive``, ``summary``, ``remedy`` (null when none).

        Example:
            >>> Check("api-version", Status.PASS, "KVM API version 12", decisive=True).to_dict()["remedy"] is None
            True
        """
        return {
            "id": self.id,
            "status": self.status.value,
            "decisive": self.decisive,
            "summary": self.summary,
            "remedy": self.remedy or None,
        }
