"""A VMM profile: what one VMM needs from KVM on one architecture (value types only).

Imports ``caps`` and ``_ioctl``. :class:`Profile` and :class:`Requirement` are built from the
built-in data (``_vmm_requirements``) by ``profiles``, and from files by ``_profile_file``;
``profiles`` checks hosts against them. Public through ``kvmprobe.profiles``.
"""

from __future__ import annotations


from ._ioctl import KVM_API_VERSION
from .caps import Cap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass
    from typing import Any, Dict, Optional, Tuple
else:
    from ._value import dataclass

__all__ = ["KINDS", "Profile", "Requirement"]

#: The kinds of requirement, from the strongest: see ``kvmprobe._vmm_requirements``.
#: ``required`` and ``implicit`` decide readiness when missing, ``incompatible`` when present;
#: the others are reported only.
KINDS = ("required", "implicit", "unchecked", "conditional", "optional", "incompatible")


@dataclass(frozen=True)
class Requirement:
    """One capability a VMM needs, of one kind (``required``, ``optional``, ...), with its text.

    ``text`` says what it is needed for (``required``, ``implicit``, ``unchecked``), under which
    condition (``conditional``), what degrades without it (``optional``), or what an answer
    does to the VMM (``incompatible``).

    Example:
        >>> Requirement(Cap.IMMEDIATE_EXIT, "required", "pausing vCPUs").cap.since_text
        '4.11'
    """

    cap: Cap
    kind: str
    text: str = ""

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready object: name, number, kind, text.

        Example:
            >>> Requirement(Cap.IRQFD, "required").to_dict()["name"]
            'KVM_CAP_IRQFD'
        """
        return {"name": self.cap.c_name, "number": int(self.cap), "kind": self.kind, "text": self.text}


@dataclass(frozen=True)
class Profile:
    """What one VMM needs from KVM on one architecture, and where that list comes from.

    ``arch`` ``None`` means any architecture. ``api_version`` is the KVM API version the VMM
    insists on (``None``: it does not check). ``min_kernel`` is the documented minimum host
    kernel (support policy, not checked by the VMM). ``source`` cites the VMM's own file;
    ``path`` is the file a custom profile was loaded from. A built-in profile holds for a
    range of the VMM's releases, ``versions`` (``"v40.0 to v48.x"``); ``version`` is the
    release it was asked for (``"v45"``, or what an installed binary reported), if any.

    Example:
        >>> from kvmprobe.profiles import builtin_profile
        >>> fc = builtin_profile("firecracker", "x86_64")
        >>> fc.display_name, len(fc.required), fc.api_version, fc.min_kernel
        ('Firecracker', 14, 12, '5.10')
    """

    name: str
    display_name: str
    arch: Optional[str]
    requirements: Tuple[Requirement, ...]
    api_version: Optional[int] = KVM_API_VERSION
    min_kernel: Optional[str] = None
    min_kernel_source: str = ""
    source: str = ""
    failure: str = ""
    other: Tuple[str, ...] = ()
    path: Optional[str] = None
    versions: Optional[str] = None
    version: Optional[str] = None

    def of_kind(self, *kinds: str) -> Tuple[Requirement, ...]:
        """The requirements of the given kinds, in profile order.

        Example:
            >>> from kvmprobe.profiles import builtin_profile
            >>> [r.cap.name for r in builtin_profile("crosvm", "x86_64").of_kind("required")]
            ['IMMEDIATE_EXIT']
        """
        return tuple(r for r in self.requirements if r.kind in kinds)

    @property
    def required(self) -> Tuple[Requirement, ...]:
        """What the VMM cannot run without: the ``required`` and ``implicit`` requirements.

        Example:
            >>> from kvmprobe.profiles import builtin_profile
            >>> len(builtin_profile("cloud-hypervisor", "x86_64").required)
            17
        """
        return self.of_kind("required", "implicit")

    @property
    def optional(self) -> Tuple[Requirement, ...]:
        """The capabilities whose absence degrades a feature.

        Example:
            >>> from kvmprobe.profiles import builtin_profile
            >>> builtin_profile("firecracker", "x86_64").optional[0].cap.name
            'XSAVE2'
        """
        return self.of_kind("optional")

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready object; the ``required``/``optional``/... lists map names to their texts.

        Example:
            >>> from kvmprobe.profiles import builtin_profile
            >>> builtin_profile("crosvm", "x86_64").to_dict()["required"]
            {'KVM_CAP_IMMEDIATE_EXIT': 'stopping vCPUs (kvm_run.immediate_exit)'}
        """
        doc: Dict[str, Any] = {
            "name": self.name,
            "display_name": self.display_name,
            "arch": self.arch,
            "api_version": self.api_version,
            "min_kernel": self.min_kernel,
            "min_kernel_source": self.min_kernel_source,
            "source": self.source,
            "failure": self.failure,
            "other": list(self.other),
            "path": self.path,
            "versions": self.versions,
            "version": self.version,
        }
        for kind in KINDS:
            doc[kind] = {r.cap.c_name: r.text for r in self.of_kind(kind)}
        return doc
