"""Render a probed host for the systems that already run fleets: NFD labels and Prometheus.

Imports ``probing``, ``caps``, ``_bitmasks``, ``_labels``, ``_ioctl``, ``_version``, ``_value`` and,
where a host has CPU data, ``_cpu_view``; :func:`gather` also ``diagnosis``, ``profiles``,
``guest``, ``host``, ``device`` and ``errors``. Both renderers are pure: they take what was
learned about one host (a :class:`~kvmprobe.ProbeResult`, or ``None`` when the device could not
be reached, plus the verdict, the nested setting and each VMM's readiness) and return text;
writing the text is :func:`kvmprobe.write_atomic`'s job. :func:`gather` learns it all about one
host (:class:`Gathered`).

A verdict has three states (``profiles.STATES``), and "cannot tell" is never written as "no":
a VMM whose readiness cannot be told (a recording without an answer it needs) gets no
``ready`` label or ``kvm_vmm_ready`` sample, but ``vmm.<id>.unknown=true`` /
``kvm_vmm_unknown{vmm} 1``. A VMM ready only on conditions of the KVM backend (a PVM guest
kernel on ``kvm_pvm``) keeps ``ready=true`` and says so: ``vmm.<id>.condition=<backend>`` /
``kvm_vmm_condition{vmm,backend} 1`` (select on ``ready=true`` without ``condition`` for what
``check --strict`` accepts). Confidential kinds likewise (``cc.<kind>.unknown``,
``kvm_confidential_unknown{kind}``).

* :func:`nfd_features`: a feature file for Kubernetes Node Feature Discovery's ``local``
  source (``/etc/kubernetes/node-feature-discovery/features.d/``): one
  ``<prefix>/<name>=<value>`` per line. Every key is a Kubernetes qualified name and every
  value a label value (k8s.io/apimachinery ``IsQualifiedName``/``IsValidLabelValue``, which
  nfd-master applies in pkg/apis/nfd/validate), and the file stays within nfd-worker's
  65536-byte limit (``MaxFeatureFileSize`` in source/local/local.go).
* :func:`prometheus_text`: the text exposition format for node_exporter's textfile
  collector (``*.prom``): ``# HELP``/``# TYPE`` and gauges, no timestamps (the collector
  rejects them).

The labels, under ``prefix`` (default :data:`DEFAULT_PREFIX`)::

    kvm.usable=true|false          kvmprobe's verdict: KVM works here
    kvm.unavailable=<reason>       only when not usable and the reason is known (permission-denied, ...)
    kvm.api-version=12             KVM_GET_API_VERSION
    kvm.nested=true|false          the KVM module's nested parameter (absent: unknown)
    kvm.run=ok|failed              whether KVM_RUN ran the micro-guest (absent: not run; kvmprobe.guest)
    kvm.cap.<name>=<value>         each selected capability the kernel supports (absent: unsupported)
    kvm.cap.<name>.<bit>=true      each bit set in a selected bit-mask capability's answer, by name
    kvm.vm-type.<type>=true        each VM type KVM_CAP_VM_TYPES offers (default, sev, sev-es, snp, tdx, ...)
    cc.<kind>.ready=true|false     each confidential-guest kind judged (sev, sev-es, sev-snp, tdx)
    cc.<kind>.unknown=true         instead of ready, when the recording cannot tell
    kvm.capability-query-errors=N  only when N selected capabilities' queries failed: those have no
                                   label, and are unknown rather than unsupported
    vmm.<id>.ready=true|false      each VMM profile's verdict
    vmm.<id>.unknown=true          instead of ready, when the recording cannot tell
    vmm.<id>.condition=<backend>   ready only on conditions of that KVM backend (kvm_pvm)
    kvm.cpu-class=<hash>           the CPU compatibility class (kvmprobe.compat.cpu_class), x86 with CPU data
    kvm.cpu-vendor=<vendor>        the CPU vendor a guest sees
    kvm.cpu.<feature>=true         each feature a guest gets that /proc/cpuinfo names; the others
                                   (KVM's paravirtual bits, speculation controls, ...) as NFD
                                   features only ('# +no-label': usable in NodeFeatureRules, no label)
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple, Union

from ._bitmasks import MASKS, VM_TYPES, decode_mask
from ._ioctl import KVM_API_VERSION
from ._labels import DEFAULT_PREFIX, NAME_MAX, check_prefix, is_label_value, is_qualified_name, label_name
from ._version import __version__
from .caps import Cap, CapLike
from .probing import ProbeResult

__all__ = [
    "CPU_LABELS",
    "CapSelection",
    "DEFAULT_PREFIX",
    "Gathered",
    "VerdictState",
    "NFD_MAX_FILE_SIZE",
    "Unavailable",
    "cap_label_name",
    "check_prefix",
    "gather",
    "is_label_value",
    "is_qualified_name",
    "label_name",
    "nfd_features",
    "prometheus_text",
    "select_caps",
    "unavailable_reason",
]

#: nfd-worker ignores a feature file larger than this (``MaxFeatureFileSize``, source/local/local.go).
NFD_MAX_FILE_SIZE = 65536

#: Why KVM cannot be used: an error (its class names the reason), a short text, or ``None``.
Unavailable = Union[BaseException, str, None]

#: Which capabilities to export: ``"all"`` (or ``None``), ``"none"``, or names/numbers/members.
CapSelection = Union[str, Iterable[CapLike], None]

def cap_label_name(cap: CapLike) -> str:
    """The label name of a capability: ``kvm.cap.`` and its lowercased short name.

    Raises:
        UnknownCapability: ``cap`` names no capability.

    Example:
        >>> cap_label_name(Cap.IMMEDIATE_EXIT), cap_label_name("KVM_CAP_NR_MEMSLOTS")
        ('kvm.cap.immediate_exit', 'kvm.cap.nr_memslots')
    """
    head = "kvm.cap."
    return head + label_name(Cap.lookup(cap).name.lower(), max_length=NAME_MAX - len(head))


def _bit_labels(result: ProbeResult, cap: Cap, value: int) -> List[Tuple[str, str]]:
    """``kvm.cap.<name>.<bit>=true`` per named bit of a mask answer; VM_TYPES as ``kvm.vm-type.<type>``."""
    mask = MASKS.get(cap)
    if mask is None or decode_mask(cap, value, result.arch) is None:
        return []
    if cap is Cap.VM_TYPES:
        return [(f"kvm.vm-type.{vm.short}", "true") for vm in VM_TYPES if value >> vm.number & 1]
    head = cap_label_name(cap) + "."
    return [
        (head + label_name(mask.short(bit), max_length=NAME_MAX - len(head)), "true")
        for bit in mask.bits
        if value & bit.value
    ]


def _cc_label_name(kind: str, tail: str = ".ready") -> str:
    head = "cc."
    return head + label_name(kind, max_length=NAME_MAX - len(head) - len(tail)) + tail


def _vmm_label_name(vmm: str, tail: str = ".ready") -> str:
    head = "vmm."
    return head + label_name(vmm, max_length=NAME_MAX - len(head) - len(tail)) + tail


class VerdictState(NamedTuple):
    """One verdict as the exports write it: ``state`` (``ready``, ``not-ready``, ``unknown``)
    and, for a VMM ready only on conditions of the KVM backend, that backend (``condition``).

    Example:
        >>> from kvmprobe.profiles import check_vmm
        >>> from kvmprobe.testing import fake_probe_result
        >>> VerdictState.of(check_vmm("firecracker", fake_probe_result({}))), VerdictState.of(True)
        (VerdictState(state='not-ready', condition=None), VerdictState(state='ready', condition=None))
    """

    state: str
    condition: Optional[str] = None

    @classmethod
    def of(cls, verdict: Any) -> "VerdictState":
        """From a :class:`~kvmprobe.profiles.Readiness` or confidential verdict (its ``state``
        and conditions), a bool (ready or not), ``None`` (cannot tell), or a state itself."""
        if isinstance(verdict, VerdictState):
            return verdict
        if verdict is None:
            return cls("unknown")
        if isinstance(verdict, bool):
            return cls("ready" if verdict else "not-ready")
        if isinstance(verdict, str):
            return cls(verdict)
        conditional = verdict.state == "ready" and getattr(verdict, "conditions", ())
        return cls(verdict.state, (getattr(verdict, "kvm_backend", None) or "unknown-backend") if conditional else None)


def _verdict_labels(name: str, verdict: Any, label: Any) -> List[Tuple[str, str]]:
    """``<name>.ready=true|false``, or ``<name>.unknown=true``; ``<name>.condition=<backend>``."""
    state = VerdictState.of(verdict)
    if state.state == "unknown":
        return [(label(name, ".unknown"), "true")]
    pairs = [(label(name, ".ready"), _bool(state.state == "ready"))]
    if state.condition is not None:
        pairs.append((label(name, ".condition"), label_name(state.condition)))
    return pairs


def select_caps(selection: CapSelection = "all") -> Tuple[Cap, ...]:
    """Resolve a capability selection to members, in table order without repeats.

    ``"all"`` or ``None``: every member; ``"none"``: no capability; a comma-separated
    string or an iterable: those capabilities, in any spelling :meth:`Cap.lookup` accepts.

    Raises:
        UnknownCapability: a name is no capability (with close matches).
        ValueError: the string names nothing at all (``""``, ``","``).

    Example:
        >>> [c.name for c in select_caps("KVM_CAP_IMMEDIATE_EXIT, nr_memslots")]
        ['NR_MEMSLOTS', 'IMMEDIATE_EXIT']
        >>> len(select_caps("all")) == len(Cap), select_caps("none")
        (True, ())
    """
    if selection is None:
        return tuple(Cap)
    if isinstance(selection, str):
        word = selection.strip().lower()
        if word == "all":
            return tuple(Cap)
        if word == "none":
            return ()
        items: Iterable[CapLike] = [part for part in (p.strip() for p in selection.split(",")) if part]
        if not items:
            raise ValueError(f"capability selection {selection!r} names nothing; give all, none, or names")
    else:
        items = selection
    chosen = {Cap.lookup(item) for item in items}
    return tuple(cap for cap in Cap if cap in chosen)


def unavailable_reason(error: Union[BaseException, str]) -> str:
    """A short label-safe reason for why KVM cannot be used: from an error's class, or a text.

    ``KvmPermissionDenied`` gives ``permission-denied``, ``KvmNotFound`` ``not-found``,
    ``NotAKvmDevice`` ``not-a-kvm-device``. A text (such as the id of the doctor check that
    failed, ``create-vm``) is made label-safe with :func:`label_name`.

    Example:
        >>> from kvmprobe import KvmPermissionDenied, KvmBusy
        >>> unavailable_reason(KvmPermissionDenied("no")), unavailable_reason(KvmBusy("busy"))
        ('permission-denied', 'busy')
        >>> unavailable_reason("create-vm")
        'create-vm'
    """
    if isinstance(error, str):
        return label_name(error)
    name = type(error).__name__
    if name.startswith("Kvm") and len(name) > 3:
        name = name[3:]
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", name).lower()
    return label_name(words)


def _expiry_text(expiry: datetime) -> str:
    if expiry.tzinfo is None or expiry.utcoffset() is None:
        raise ValueError(f"expiry time {expiry.isoformat()} has no time zone; give an aware datetime (UTC)")
    return expiry.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _facts(
    result: Optional[ProbeResult],
    usable: Optional[bool],
    nested: Optional[bool],
    unavailable: Unavailable,
) -> Tuple[bool, Optional[bool]]:
    """Fill the defaults: usable means a device that answered API 12; nested from recorded facts."""
    if usable is None:
        usable = unavailable is None and result is not None and result.api_version == KVM_API_VERSION
    if unavailable is not None:
        usable = False
    if nested is None and result is not None and result.host is not None:
        nested = result.host.nested_enabled
    return usable, nested


def _bool(flag: bool) -> str:
    return "true" if flag else "false"


def _labels(
    result: Optional[ProbeResult],
    *,
    usable: bool,
    nested: Optional[bool],
    vmm_ready: Mapping[str, Any],
    unavailable: Unavailable,
    prefix: str,
    caps: Tuple[Cap, ...],
    cc_ready: Mapping[str, Any],
) -> List[Tuple[str, str]]:
    pairs: List[Tuple[str, str]] = [("kvm.usable", _bool(usable))]
    if not usable and unavailable is not None:
        pairs.append(("kvm.unavailable", unavailable_reason(unavailable)))
    if result is not None:
        pairs.append(("kvm.api-version", str(result.api_version)))
    if nested is not None:
        pairs.append(("kvm.nested", _bool(nested)))
    if result is not None and result.run is not None:
        pairs.append(("kvm.run", "ok" if result.run.ok else "failed"))
    if result is not None:
        failed = sum(1 for cap in caps if cap in result.errors)
        if failed:
            # A failed query has no cap label, like an unsupported one; this says the two apart.
            pairs.append(("kvm.capability-query-errors", str(failed)))
        for cap in caps:
            if cap in result.errors:
                continue
            raw = result.values.get(cap, 0)
            if raw > 0:
                pairs.append((cap_label_name(cap), str(raw)))
                pairs.extend(_bit_labels(result, cap, raw))
    for vmm in sorted(vmm_ready):
        pairs.extend(_verdict_labels(vmm, vmm_ready[vmm], _vmm_label_name))
    for kind in cc_ready:
        pairs.extend(_verdict_labels(kind, cc_ready[kind], _cc_label_name))
    return [(f"{prefix}/{name}", value) for name, value in pairs]


def nfd_features(
    result: Optional[ProbeResult],
    *,
    usable: Optional[bool] = None,
    nested: Optional[bool] = None,
    vmm_ready: Optional[Mapping[str, Any]] = None,
    unavailable: Unavailable = None,
    prefix: str = DEFAULT_PREFIX,
    caps: CapSelection = "all",
    expiry_time: Optional[datetime] = None,
    cc_ready: Optional[Mapping[str, Any]] = None,
    cpu: str = "all",
) -> str:
    """The NFD feature file for one host: one ``<prefix>/<name>=<value>`` label per line.

    A supported capability's label carries the kernel's raw answer (``kvm.cap.nr_memslots=32764``);
    an unsupported one has no label, as NFD does for CPU flags, so a ``nodeSelector`` or a
    NodeFeatureRule ``Exists`` asks "supported?" and ``Gt`` asks "how many?". When the device
    could not be reached, pass ``result=None`` and the error as ``unavailable``: the file
    still says ``kvm.usable=false`` (and why), which is what a scheduler needs to know.

    Args:
        result: the probe (live or recorded), or ``None`` when KVM could not be reached.
        usable: kvmprobe's verdict (default: a result answering API version 12).
        nested: whether nested virtualization is on (default: from ``result.host`` when recorded;
            ``None`` leaves the label out).
        vmm_ready: each VMM profile id and whether it can run here: a bool, ``None`` (cannot
            tell), a :class:`~kvmprobe.profiles.Readiness` or a :class:`VerdictState` (these
            two also carry a condition of the KVM backend).
        unavailable: why KVM cannot be used: the error that kept the device out of reach, or
            a short text such as the failed doctor check's id (sets ``kvm.unavailable``; makes
            ``usable`` false).
        prefix: the label namespace (checked by :func:`check_prefix`).
        caps: which capabilities get labels (:func:`select_caps`; default all).
        expiry_time: adds ``# +expiry-time=<RFC 3339, UTC>``: nfd-worker drops the labels
            after that moment unless the file was rewritten, so a node whose exporter
            stopped does not keep claiming KVM forever.
        cc_ready: each confidential-guest kind (``sev-snp``) and whether it can run here
            (:func:`kvmprobe.confidential.assess`), as ``vmm_ready``.
        cpu: what of the guest CPU to label, where the result has CPU data: ``all`` (the
            class, the vendor and the features), ``class`` (the class and the vendor), ``none``.

    Returns:
        The file's text, ending in a newline.

    Raises:
        ValueError: bad ``prefix``, a naive ``expiry_time``, or a file over NFD's 64 KiB
            (only a very long prefix with every capability gets there).
        UnknownCapability: a name in ``caps`` is no capability.

    Example:
        >>> from kvmprobe.testing import fake_probe_result
        >>> result = fake_probe_result({"IMMEDIATE_EXIT": 1, "NR_MEMSLOTS": 32764})
        >>> print(nfd_features(result, vmm_ready={"firecracker": True}, prefix="kvm.example.com"), end="")
        ... # doctest: +ELLIPSIS
        # kvmprobe ... feature file for NFD's local source (features.d), from no device: fake
        kvm.example.com/kvm.usable=true
        kvm.example.com/kvm.api-version=12
        kvm.example.com/kvm.cap.nr_memslots=32764
        kvm.example.com/kvm.cap.immediate_exit=1
        kvm.example.com/vmm.firecracker.ready=true
    """
    check_prefix(prefix)
    chosen = select_caps(caps)
    flag, nested = _facts(result, usable, nested, unavailable)
    pairs = _labels(
        result,
        usable=flag,
        nested=nested,
        vmm_ready=vmm_ready or {},
        unavailable=unavailable,
        prefix=prefix,
        caps=chosen,
        cc_ready=cc_ready or {},
    )
    if result is None:
        where = "no device"
    elif result.synthesized or result.derivation is not None:  # made up, or derived from a kernel's source
        where = f"no device: {result.source}"
    elif result.source == "live":
        where = f"{result.device} (live)"
    else:  # a recording: the device was the recorded host's, not this one's
        where = f"{result.source}, recorded from that host's {result.device}"
    lines = [f"# kvmprobe {__version__} feature file for NFD's local source (features.d), from {where}"]
    if expiry_time is not None:
        lines.append(f"# +expiry-time={_expiry_text(expiry_time)}")
    for key, value, label in [(k, v, True) for k, v in pairs] + _cpu_pairs(result, prefix, cpu):
        # The sanitizers make this impossible; checking keeps a future label from slipping through.
        if not is_qualified_name(key) or not is_label_value(value):
            raise ValueError(f"internal error: label {key}={value} is not a valid Kubernetes label")
        if not label:
            lines.append("# +no-label")  # nfd-worker: this one line is a feature, not a label
        lines.append(f"{key}={value}")
    text = "\n".join(lines) + "\n"
    size = len(text.encode("utf-8"))
    if size > NFD_MAX_FILE_SIZE:
        raise ValueError(
            f"the feature file would be {size} bytes, over NFD's limit of {NFD_MAX_FILE_SIZE} "
            f"(nfd-worker ignores such a file); use a shorter prefix than {len(prefix)} characters "
            "or export fewer capabilities (--caps)"
        )
    return text


#: What of the guest CPU ``export`` may label: everything, the class and vendor, nothing.
CPU_LABELS = ("all", "class", "none")


def _cpu_pairs(result: Optional[ProbeResult], prefix: str, cpu: str = "all") -> List[Tuple[str, str, bool]]:
    """``(key, value, is_label)`` for the CPU (``_cpu_view.cpu_labels``); nfd-worker applies
    ``# +no-label`` to the one line after it (kubernetes-sigs/node-feature-discovery@a650db05
    source/local/local.go parseFeatureFile: "SkipFeature and SkipLabel only take effect for one feature")."""
    from ._cpu_view import cpu_labels, labelled_view

    if cpu not in CPU_LABELS:
        raise ValueError(f"cpu={cpu!r}: give one of {', '.join(CPU_LABELS)}")
    view = labelled_view(result.cpu, result.source) if result is not None and cpu != "none" else None
    pairs = [] if view is None else cpu_labels(view)[: 2 if cpu == "class" else None]
    return [(f"{prefix}/{label_name(k)}", label_name(v), is_label) for k, v, is_label in pairs]


# --- Prometheus text exposition format (prometheus.io/docs/instrumenting/exposition_formats) ---


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample(name: str, value: float, labels: Optional[Mapping[str, str]] = None) -> str:
    if not labels:
        return f"{name} {value}"
    inner = ",".join(f'{key}="{_escape_label(text)}"' for key, text in labels.items())
    return f"{name}{{{inner}}} {value}"


class _Metrics:
    """Collects gauges family by family: HELP, TYPE, then the samples."""

    def __init__(self) -> None:
        self.lines: List[str] = []

    def gauge(self, name: str, help_text: str, samples: List[str]) -> None:
        if not samples:
            return
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} gauge")
        self.lines.extend(samples)


def prometheus_text(
    result: Optional[ProbeResult],
    *,
    usable: Optional[bool] = None,
    nested: Optional[bool] = None,
    vmm_ready: Optional[Mapping[str, Any]] = None,
    unavailable: Unavailable = None,
    caps: CapSelection = "all",
    cc_ready: Optional[Mapping[str, Any]] = None,
    cc_blocking: Optional[Mapping[str, str]] = None,
    cpu: str = "all",
) -> str:
    """The host as Prometheus gauges, for node_exporter's textfile collector (a ``*.prom`` file).

    Metrics: ``kvm_usable`` (1/0), ``kvm_unavailable{reason}`` (1, only when not usable and
    the reason is known), ``kvm_api_version``, ``kvm_capability{name,number}`` (the raw
    ``KVM_CHECK_EXTENSION`` answer, 0 when unsupported, for each selected capability),
    ``kvm_capability_query_errno{name,number}`` (a query the kernel failed),
    ``kvm_vmm_ready{vmm}`` (1/0; none for a VMM the recording cannot tell about, which has
    ``kvm_vmm_unknown{vmm}`` 1 instead), ``kvm_vmm_condition{vmm,backend}`` (1: ready only on
    conditions of that KVM backend), ``kvm_nested_enabled`` (1/0, absent when unknown),
    ``kvm_run_ok`` (1/0: ``KVM_RUN`` ran the micro-guest), ``kvm_run_exit_seconds`` (the median
    cost of an exit to user space) and ``kvm_run_slowdown_ratio`` (guest time over native time of
    the same loop), all three only when the micro-guest ran,
    ``kvm_capability_bit{name,bit}`` (1/0 for each named bit of a selected bit-mask capability
    the kernel answered), ``kvm_vm_type{type,number}`` (1/0 for each VM type, when
    ``KVM_CAP_VM_TYPES`` answered), ``kvm_confidential_ready{kind}`` (1/0; or
    ``kvm_confidential_unknown{kind}`` 1),
    ``kvm_confidential_blocked{kind,layer}`` (1, the layer that stops a kind) and
    ``kvm_probe_info{kernel,arch,device,source,backend,version}`` (1). No timestamps:
    node_exporter refuses them in textfiles.

    Args:
        result, usable, nested, vmm_ready, unavailable, caps, cc_ready: as :func:`nfd_features`.
        cc_blocking: for each confidential kind not ready, the layer that blocks it.
        cpu: ``none`` leaves out ``kvm_cpu_info`` (the CPU's class, vendor and signature).

    Raises:
        UnknownCapability: a name in ``caps`` is no capability.

    Example:
        >>> from kvmprobe.testing import fake_probe_result
        >>> text = prometheus_text(fake_probe_result({"NR_MEMSLOTS": 32764}), caps=["NR_MEMSLOTS"])
        >>> print("\\n".join(line for line in text.splitlines() if not line.startswith("#")))
        ... # doctest: +ELLIPSIS
        kvm_usable 1
        kvm_api_version 12
        kvm_capability{name="KVM_CAP_NR_MEMSLOTS",number="10"} 32764
        kvm_probe_info{kernel="6.18.0",arch="x86_64",device="/dev/kvm",source="fake",backend="fake",version="..."} 1
    """
    chosen = select_caps(caps)
    flag, nested = _facts(result, usable, nested, unavailable)
    out = _Metrics()
    out.gauge(
        "kvm_usable",
        "Whether KVM is usable on this host (1) or not (0), as kvmprobe decided.",
        [_sample("kvm_usable", int(flag))],
    )
    if not flag and unavailable is not None:
        out.gauge(
            "kvm_unavailable",
            "Why KVM is not usable here (the reason label); present only then.",
            [_sample("kvm_unavailable", 1, {"reason": unavailable_reason(unavailable)})],
        )
    if result is not None:
        out.gauge(
            "kvm_api_version",
            "KVM_GET_API_VERSION: 12 on every Linux since 2.6.22.",
            [_sample("kvm_api_version", result.api_version)],
        )
        out.gauge(
            "kvm_capability",
            "Raw KVM_CHECK_EXTENSION answer on the /dev/kvm fd (0: unsupported; some are counts or masks).",
            [
                _sample("kvm_capability", result.values.get(cap, 0), {"name": cap.c_name, "number": str(int(cap))})
                for cap in chosen
                if cap not in result.errors and cap not in result.not_recorded  # no answer is no 0
            ],
        )
        out.gauge(
            "kvm_capability_query_errno",
            "The errno KVM_CHECK_EXTENSION failed with, for a capability the kernel gave no answer.",
            [
                _sample("kvm_capability_query_errno", result.errors[cap], {"name": cap.c_name, "number": str(int(cap))})
                for cap in chosen
                if cap in result.errors
            ],
        )
    if result is not None:
        _mask_gauges(out, result, chosen)
    ready = {vmm: VerdictState.of(verdict) for vmm, verdict in sorted((vmm_ready or {}).items())}
    out.gauge(
        "kvm_vmm_ready",
        "Whether each VMM profile can run on this host (1) or not (0), by kvmprobe's readiness check "
        "(no sample when it cannot tell: see kvm_vmm_unknown).",
        [_sample("kvm_vmm_ready", int(v.state == "ready"), {"vmm": vmm}) for vmm, v in ready.items() if v.state != "unknown"],
    )
    out.gauge(
        "kvm_vmm_unknown",
        "A VMM profile whose readiness cannot be told: the recording lacks an answer it needs (1; present only then).",
        [_sample("kvm_vmm_unknown", 1, {"vmm": vmm}) for vmm, v in ready.items() if v.state == "unknown"],
    )
    out.gauge(
        "kvm_vmm_condition",
        "A VMM profile that is ready only on conditions of this KVM backend (the backend label); 'check --strict' says no.",
        [_sample("kvm_vmm_condition", 1, {"vmm": vmm, "backend": v.condition}) for vmm, v in ready.items()
         if v.condition is not None],
    )
    kinds = {kind: VerdictState.of(verdict) for kind, verdict in (cc_ready or {}).items()}
    out.gauge(
        "kvm_confidential_ready",
        "Whether each kind of confidential guest can run here (1) or not (0), by kvmprobe's layer-by-layer check.",
        [_sample("kvm_confidential_ready", int(v.state == "ready"), {"kind": kind}) for kind, v in kinds.items()
         if v.state != "unknown"],
    )
    out.gauge(
        "kvm_confidential_unknown",
        "A kind of confidential guest whose readiness cannot be told: the recording lacks KVM_CAP_VM_TYPES (1).",
        [_sample("kvm_confidential_unknown", 1, {"kind": kind}) for kind, v in kinds.items() if v.state == "unknown"],
    )
    out.gauge(
        "kvm_confidential_blocked",
        "The layer that stops a kind of confidential guest (cpu, bios, firmware, kernel, module, kvm, ...).",
        [_sample("kvm_confidential_blocked", 1, {"kind": kind, "layer": layer}) for kind, layer in (cc_blocking or {}).items()],
    )
    if nested is not None:
        out.gauge(
            "kvm_nested_enabled",
            "The KVM module's nested parameter: 1 on, 0 off (absent: unknown).",
            [_sample("kvm_nested_enabled", int(nested))],
        )
    run = result.run if result is not None else None
    if run is not None:
        out.gauge(
            "kvm_run_ok",
            "Whether KVM_RUN ran kvmprobe's real-mode micro-guest exactly as hardware would (1) or not (0).",
            [_sample("kvm_run_ok", int(run.ok))],
        )
        if run.exit_cost is not None:
            out.gauge(
                "kvm_run_exit_seconds",
                "Median time of one guest exit to user space and back (KVM_RUN round trip of an OUT), in seconds.",
                [_sample("kvm_run_exit_seconds", run.exit_cost.median_ns / 1e9)],
            )
        if run.compute is not None:
            out.gauge(
                "kvm_run_slowdown_ratio",
                "How many times slower a compute loop ran in the guest than natively (about 1 with VT-x/AMD-V).",
                [_sample("kvm_run_slowdown_ratio", round(run.compute.slowdown, 3))],
            )
    from ._cpu_view import cpu_info, labelled_view

    view = labelled_view(result.cpu, result.source) if result is not None and cpu != "none" else None
    if view is not None:
        out.gauge("kvm_cpu_info", "The CPU a guest gets (always 1): its compatibility class (hosts of one class are "
                  "interchangeable for migration), vendor and CPUID.1:EAX.", [_sample("kvm_cpu_info", 1, cpu_info(view))])
    if result is not None:
        info = {
            "kernel": result.kernel,
            "arch": result.arch,
            "device": "" if result.derivation is not None else result.device,  # derived from source: none was asked
            "source": result.source,
            "backend": result.backend,
            "version": __version__,
        }
        out.gauge(
            "kvm_probe_info",
            "Where these kvm_* values come from (always 1).",
            [_sample("kvm_probe_info", 1, info)],
        )
    return "\n".join(out.lines) + "\n"


def _mask_gauges(out: _Metrics, result: ProbeResult, chosen: Tuple[Cap, ...]) -> None:
    """The bits of the selected bit-mask capabilities, by name, and the VM types by name."""
    samples = []
    for cap in chosen:
        if cap in result.errors or cap is Cap.VM_TYPES:
            continue
        mask = MASKS.get(cap)
        value = result.values.get(cap, 0)
        if mask is None or decode_mask(cap, value, result.arch) is None:
            continue
        for bit in mask.bits:
            samples.append(_sample("kvm_capability_bit", int(bool(value & bit.value)), {"name": cap.c_name, "bit": bit.name}))
    out.gauge(
        "kvm_capability_bit",
        "One named bit of a bit-mask capability's KVM_CHECK_EXTENSION answer: 1 set, 0 clear.",
        samples,
    )
    types = result.values.get(Cap.VM_TYPES, 0)
    if Cap.VM_TYPES in chosen and Cap.VM_TYPES not in result.errors and types > 0 and decode_mask(Cap.VM_TYPES, types, result.arch):
        out.gauge(
            "kvm_vm_type",
            "Whether KVM_CREATE_VM accepts each VM type (KVM_CAP_VM_TYPES): 1 yes, 0 no.",
            [_sample("kvm_vm_type", types >> vm.number & 1, {"type": vm.name, "number": str(vm.number)}) for vm in VM_TYPES],
        )


# --- What one host's export says -----------------------------------------------------------------


class Gathered(NamedTuple):
    """What the renderers need about one host, and why it is not usable when it is not.

    ``vmm`` and ``confidential`` map each VMM profile id and confidential kind to its
    :class:`VerdictState`; ``cc_blocking`` each confidential kind not ready to the layer that
    blocks it. ``live``: the host was probed now (not ``--snapshot``); ``why``: the diagnosis's
    summary, or the error that kept the device out of reach.

    Example:
        >>> from kvmprobe.testing import fake_probe_result
        >>> host = gather(fake_probe_result({}))
        >>> host.live, host.vmm["firecracker"]
        (False, VerdictState(state='not-ready', condition=None))
    """

    result: Optional[ProbeResult]
    live: bool
    usable: bool
    nested: Optional[bool]
    vmm: Dict[str, VerdictState]
    unavailable: Unavailable
    why: str
    confidential: Optional[Dict[str, VerdictState]] = None
    cc_blocking: Optional[Dict[str, str]] = None


def gather(
    result: Optional[ProbeResult] = None,
    *,
    device: Optional[str] = None,
    backend: Optional[Any] = None,
    cpu: bool = True,
) -> Gathered:
    """Learn what an export says about one host: the probe (``result``, a recorded host; else
    this host, probed now), the diagnosis's verdict and nested setting, each built-in VMM's
    readiness and each confidential kind's.

    Live, the probe also creates a VM (``probe(vm=True)``): that is the decisive test of a usable
    KVM, and the device is opened once; with the default backend the micro-guest checks run too
    (:func:`kvmprobe.guest.with_run`: ``kvm.run``, ``kvm_run_*``; well under a second). When the
    device cannot be used at all, the error is the reason, every VMM is not ready, and the host
    facts that need no device still count (nested).

    Args:
        result: a recorded host (``None``: probe this one).
        device, backend: this host's KVM device and ioctl backend (live only).
        cpu: also ask KVM's CPU questions live (the CPU class and feature labels).

    Raises:
        KvmUnavailable: never for a live host (that is exported as such); SnapshotError and
            friends only through ``result``'s loading, which is the caller's.

    Example:
        >>> from kvmprobe.testing import fake_probe_result
        >>> cut = fake_probe_result({c: 1 for c in Cap}, not_recorded=["IMMEDIATE_EXIT"])
        >>> gather(cut).vmm["cloud-hypervisor"].state
        'unknown'
    """
    from .diagnosis import Status, diagnose
    from .errors import KvmUnavailable
    from .profiles import check_vmm, vmm_names

    live = result is None
    if result is None:
        from .probing import probe

        try:
            result = probe(device, vm=True, backend=backend, cpu=cpu)
        except KvmUnavailable as err:
            from .device import device_path
            from .host import read_host_facts

            facts = read_host_facts(device=device_path(device))
            return Gathered(None, live=True, usable=False, nested=facts.nested_enabled,
                            vmm={name: VerdictState("not-ready") for name in vmm_names(facts.machine)},
                            unavailable=err, why=str(err))  # fmt: skip
        if backend is None and result.source == "live":  # a fake's host (fake_kvm, a backend) runs no guest
            from .guest import with_run

            result = with_run(result)
    diagnosis = diagnose(result)
    failed = next((c for c in diagnosis.checks if c.decisive and c.status is Status.FAIL), None)
    unavailable: Unavailable = None
    if not diagnosis.usable:
        unavailable = failed.id if failed is not None else "not-usable"
    vmm = {
        name: VerdictState.of(check_vmm(name, result, arch=result.arch)) if diagnosis.usable else VerdictState("not-ready")
        for name in vmm_names(result.arch)
    }
    cc = diagnosis.confidential  # x86 hosts whose KVM is usable: from the answers in hand
    return Gathered(
        result, live=live, usable=diagnosis.usable, nested=diagnosis.facts.nested_enabled,
        vmm=vmm, unavailable=unavailable, why=diagnosis.summary,
        confidential=None if cc is None else {v.kind: VerdictState.of(v) for v in cc.verdicts},
        cc_blocking=None if cc is None else {v.kind: v.blocking for v in cc.verdicts if v.blocking},
    )  # fmt: skip
