"""Confidential VMs: can KVM here create an SEV, SEV-ES, SEV-SNP or TDX guest, and which layer stops it.

Imports ``_cc_judge`` (the checks), ``_cc_verdict`` (the verdicts), ``_cc_facts`` (the facts),
``_bitmasks`` and ``_collisions`` (the decoding tables); this public module only gathers their
names, the import path users write. :func:`check_confidential` answers for one kind of guest,
:func:`assess` for all four; each verdict names the blocking layer (``cpu``, ``bios``,
``firmware``, ``kernel``, ``module``, ``kvm``, ``capabilities``, ``device``, ``cgroup`` or
``memlock``) and its fix. :func:`decode_mask` names the bits of a bit-mask capability's answer,
and :func:`collisions` the out-of-tree meanings of a capability number or VM type.

Example:
    >>> from kvmprobe.testing import fake_probe_result
    >>> report = assess(fake_probe_result({"VM_TYPES": 0x1}))
    >>> [(v.kind, v.ready, v.blocking) for v in report.verdicts]
    [('sev', False, 'kvm'), ('sev-es', False, 'kvm'), ('sev-snp', False, 'kvm'), ('tdx', False, 'kvm')]
"""

from __future__ import annotations

from ._bitmasks import Decoded, decode_mask
from ._cc_facts import ConfidentialFacts
from ._cc_judge import assess, check_confidential, read_confidential
from ._cc_verdict import KINDS, LAYER_IDS, ConfidentialReadiness, ConfidentialReport, Layer, resolve_kind, vm_type_name
from ._collisions import Collision, collisions

__all__ = [
    "KINDS",
    "LAYER_IDS",
    "Collision",
    "ConfidentialFacts",
    "ConfidentialReadiness",
    "ConfidentialReport",
    "Decoded",
    "Layer",
    "assess",
    "check_confidential",
    "collisions",
    "decode_mask",
    "read_confidential",
    "resolve_kind",
    "vm_type_name",
]
