"""The verdict types of the confidential-VM checks: one layer's finding, one kind's readiness, a host's report.

Imports ``_bitmasks``, ``_cc_data``, ``_cc_facts``, ``caps`` and ``errors``. Value objects only;
the checks that fill them are in ``_cc_judge``, the public names in ``kvmprobe.confidential``.
"""

from __future__ import annotations


from ._bitmasks import decode_mask, vm_type
from ._cc_data import KINDS as _KIND_TABLE, LAYERS, Kind
from ._cc_facts import ConfidentialFacts
from .caps import Cap
from .errors import UnknownVmm

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass
    from typing import Any, Dict, NamedTuple, Optional, Tuple
else:
    from ._value import NamedTuple
    from ._value import dataclass

__all__ = [
    "KINDS",
    "LAYER_IDS",
    "ConfidentialReadiness",
    "ConfidentialReport",
    "Layer",
    "kind_named",
    "resolve_kind",
    "vm_type_name",
]

#: The kinds of confidential guest, by id.
KINDS: Tuple[str, ...] = tuple(kind.id for kind in _KIND_TABLE)
#: The layers, bottom up.
LAYER_IDS: Tuple[str, ...] = tuple(layer for layer, _ in LAYERS)

_BY_ID: Dict[str, Kind] = {kind.id: kind for kind in _KIND_TABLE}
_ALIASES = {"snp": "sev-snp", "sevsnp": "sev-snp", "seves": "sev-es", "amd-sev": "sev", "intel-tdx": "tdx"}
_TITLES = dict(LAYERS)


class Layer(NamedTuple):
    """What one layer says for one kind: ``status`` (ok, blocked, warn, unknown, n/a), what was
    found, and for a blocked or warned layer the fix and where that fix comes from.

    Example:
        >>> layer = Layer("module", "blocked", "kvm_amd.sev_snp=N", fix="load kvm_amd with sev_snp=1")
        >>> layer.title, layer.to_dict()["fix"], layer.to_dict()["source"]
        ('module parameter', 'load kvm_amd with sev_snp=1', None)
    """

    id: str
    status: str
    summary: str
    fix: str = ""
    source: str = ""

    @property
    def title(self) -> str:
        """The layer's name as shown (``module parameter``)."""
        return _TITLES.get(self.id, self.id)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: id, status, summary, fix and source (null when none)."""
        return {"id": self.id, "status": self.status, "summary": self.summary, "fix": self.fix or None,
                "source": self.source or None}  # fmt: skip


@dataclass(frozen=True)
class ConfidentialReadiness:
    """The verdict for one kind of confidential guest on one host.

    ``ready``: KVM offers the VM type (and made one, when asked to) and no layer above it
    blocks. ``blocking``: the id of the layer that stops it (``None`` when ready), whose fix is
    :attr:`fix`. ``layers`` holds every layer's finding, bottom up; ``notes`` the warnings about
    numbers that out-of-tree series use otherwise, and how the verdict was reached. ``unknown``:
    a recorded host without an answer for ``KVM_CAP_VM_TYPES`` and no layer that says no:
    cannot tell (not ready, yet nothing blocks; :attr:`state` ``unknown``).

    Example:
        >>> from kvmprobe.confidential import check_confidential
        >>> from kvmprobe.testing import fake_probe_result
        >>> verdict = check_confidential("sev-snp", fake_probe_result({"VM_TYPES": 1}))
        >>> verdict.ready, verdict.blocking, verdict.layer("kvm").status
        (False, 'kvm', 'blocked')
        >>> verdict.fix
        'see the layers below: KVM offers the type once they allow it'
        >>> doc = verdict.to_dict()
        >>> doc["vm_type_name"], doc["blocking"], len(doc["layers"]) == len(verdict.layers)
        ('KVM_X86_SNP_VM (4)', 'kvm', True)
    """

    kind: str
    display_name: str
    vm_type: int
    ready: bool
    blocking: Optional[str]
    layers: Tuple[Layer, ...]
    notes: Tuple[str, ...] = ()
    unknown: bool = False

    @property
    def state(self) -> str:
        """``ready``, ``not-ready`` or ``unknown`` (what the recording lacks decides).

        Example:
            >>> from kvmprobe.confidential import check_confidential
            >>> from kvmprobe.testing import fake_probe_result
            >>> check_confidential("tdx", fake_probe_result({"VM_TYPES": 1})).state
            'not-ready'
        """
        return "ready" if self.ready else "unknown" if self.unknown else "not-ready"

    def layer(self, layer_id: str) -> Layer:
        """The finding of one layer (see :data:`LAYER_IDS`).

        Raises:
            KeyError: no such layer.
        """
        for item in self.layers:
            if item.id == layer_id:
                return item
        raise KeyError(layer_id)

    @property
    def fix(self) -> str:
        """The blocking layer's fix (``""`` when ready)."""
        return self.layer(self.blocking).fix if self.blocking else ""

    def summary(self) -> str:
        """One sentence: ready, or which layer blocks and what it found.

        Example:
            >>> from kvmprobe.confidential import check_confidential
            >>> from kvmprobe.testing import fake_probe_result
            >>> print(check_confidential("tdx", fake_probe_result({"VM_TYPES": 1}, kernel="6.8.0")).summary())
            Intel TDX cannot run here: blocked at the kernel layer: Linux 6.8 predates KVM's TDX guests (Linux 6.16)
        """
        if self.ready:
            return f"{self.display_name} can run here: KVM offers {vm_type_name(self.vm_type)}"
        if self.unknown:
            return (f"{self.display_name}: cannot tell whether it can run here: KVM_CAP_VM_TYPES is not recorded "
                    "(the recorded host has no answer for it)")
        if self.blocking is None:
            return f"{self.display_name} cannot run here"
        found = self.layer(self.blocking)
        return f"{self.display_name} cannot run here: blocked at the {found.title} layer: {found.summary}"

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready (an entry of ``check --json`` and of the doctor's confidential section)."""
        return {
            "kind": self.kind,
            "display_name": self.display_name,
            "vm_type": self.vm_type,
            "vm_type_name": vm_type_name(self.vm_type),
            "ready": None if self.unknown else self.ready,
            "state": self.state,
            "blocking": self.blocking,
            "summary": self.summary(),
            "fix": self.fix or None,
            "layers": [layer.to_dict() for layer in self.layers],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class ConfidentialReport:
    """Every kind's verdict on one host, with the VM types KVM offers and the facts read.

    ``vm_types`` is the ``KVM_CAP_VM_TYPES`` answer (``None``: not answered, or, when
    ``vm_types_recorded`` is false, not recorded at all); ``facts`` the
    :class:`ConfidentialFacts` the verdicts came from (``None``: not recorded).

    Example:
        >>> from kvmprobe.confidential import assess
        >>> from kvmprobe.testing import fake_probe_result
        >>> report = assess(fake_probe_result({"VM_TYPES": 1}))
        >>> report.vm_type_names, [v.ready for v in report.verdicts]
        (('KVM_X86_DEFAULT_VM',), [False, False, False, False])
        >>> report.verdict("snp").kind, report.to_dict()["vm_type_names"]
        ('sev-snp', ['KVM_X86_DEFAULT_VM'])
    """

    vm_types: Optional[int]
    verdicts: Tuple[ConfidentialReadiness, ...]
    facts: Optional[ConfidentialFacts]
    arch: str
    vm_types_recorded: bool = True

    @property
    def vm_type_names(self) -> Tuple[str, ...]:
        """The names of the VM types KVM offers (unknown bits as hex)."""
        if self.vm_types is None:
            return ()
        decoded = decode_mask(Cap.VM_TYPES, self.vm_types)
        if decoded is None:
            return ()
        return decoded.names + ((hex(decoded.unknown),) if decoded.unknown else ())

    def verdict(self, kind: str) -> ConfidentialReadiness:
        """The verdict of one kind (any spelling :func:`resolve_kind` takes).

        Raises:
            UnknownVmm: no such kind.
        """
        wanted = kind_named(kind).id
        return next(v for v in self.verdicts if v.kind == wanted)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: the VM types, every verdict and the facts."""
        return {
            "vm_types": self.vm_types,
            "vm_types_recorded": self.vm_types_recorded,
            "vm_type_names": list(self.vm_type_names),
            "verdicts": [v.to_dict() for v in self.verdicts],
            "facts": None if self.facts is None else self.facts.to_dict(),
        }


def vm_type_name(number: int) -> str:
    """``KVM_X86_SNP_VM (4)``, or ``VM type 9`` for a number mainline does not define.

    Example:
        >>> vm_type_name(4), vm_type_name(9)
        ('KVM_X86_SNP_VM (4)', 'VM type 9')
    """
    found = vm_type(number)
    return f"{found.name} ({number})" if found is not None else f"VM type {number}"


def resolve_kind(name: str) -> Optional[str]:
    """The kind id for a name (``sev``, ``sev-es``, ``sev-snp``/``snp``, ``tdx``), else ``None``.

    Example:
        >>> resolve_kind("SEV_SNP"), resolve_kind("snp"), resolve_kind("qemu")
        ('sev-snp', 'sev-snp', None)
    """
    folded = name.strip().lower()
    if any(char.isspace() or char == "_" for char in folded):  # re only then: it costs milliseconds
        import re

        folded = re.sub(r"[\s_]+", "-", folded)
    folded = _ALIASES.get(folded, _ALIASES.get(folded.replace("-", ""), folded))
    return folded if folded in _BY_ID else None


def kind_named(name: str) -> Kind:
    found = resolve_kind(name)
    if found is None:
        import difflib  # only on this error path

        close = difflib.get_close_matches(name.strip().lower(), list(KINDS), n=3, cutoff=0.5)
        raise UnknownVmm(name, close, known=list(KINDS), hint="" if close else "the kinds are: " + ", ".join(KINDS),
                         what="confidential-VM kind")
    return _BY_ID[found]
