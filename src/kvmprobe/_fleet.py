"""A fleet of recorded hosts, one at a time: the baseline, the classes, and each VMM's readiness.

Imports ``_fleet_read``, ``_baseline``, ``_cpu_view``, ``_cpu_record``, ``presets``, ``profiles``,
``probing``, ``_arch`` and ``errors``. Hosts come as snapshot files, directories of them,
``preset:NAME`` or probe results; each is read, folded into running totals and dropped, so memory
stays flat with the number of hosts (it grows with the number of distinct classes and capability
sets only).

:func:`cpu_hosts` reads only the CPU section of a file (:func:`~kvmprobe._fleet_read.read_cpu`,
the fast path of ``baseline``); :func:`summarize` reads whole snapshots (it needs the
capabilities for readiness) and checks each distinct set of capability answers against each
VMM once.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple, Union

from ._arch import is_x86
from ._baseline import Baseline, BaselineBuilder
from ._cpu_record import CpuRecord
from ._cpu_view import CpuView, cpu_class, view_of
from ._fleet_read import read_cpu, snapshot_paths
from .errors import IncomparableHosts, NotRecorded
from .probing import ProbeResult

__all__ = ["FLEET_SCHEMA", "FleetClass", "FleetSummary", "HostLike", "count_classes", "cpu_hosts", "summarize", "views"]

FLEET_SCHEMA = "kvmprobe-fleet"
#: A host as the fleet functions take one: a snapshot path, a directory of them,
#: ``preset:NAME``, or a probe result (live, loaded or fake).
HostLike = Union[str, "os.PathLike[str]", ProbeResult]


def _specs(hosts: Iterable[HostLike]) -> Iterator[Union[str, ProbeResult]]:
    for host in hosts:
        if isinstance(host, ProbeResult):
            yield host
        elif isinstance(host, str) and host.startswith("preset:"):
            yield host
        else:
            yield from snapshot_paths([os.fspath(host)])


def cpu_hosts(hosts: Iterable[HostLike]) -> Iterator[Tuple[str, str, Optional[CpuRecord]]]:
    """``(label, arch, CPU record)`` per host; a file's CPU section only is read."""
    for spec in _specs(hosts):
        if isinstance(spec, ProbeResult):
            yield spec.source, spec.arch, spec.cpu
        elif spec.startswith("preset:"):
            from .presets import load_recorded

            result = load_recorded(spec)
            yield spec, result.arch, result.cpu
        else:
            read = read_cpu(spec)
            yield read.path, read.arch, read.record


def _full_hosts(hosts: Iterable[HostLike]) -> Iterator[Tuple[str, ProbeResult]]:
    from .presets import load_recorded

    for spec in _specs(hosts):
        yield (spec.source, spec) if isinstance(spec, ProbeResult) else (spec, load_recorded(spec))


def views(hosts: Iterable[Tuple[str, str, Optional[CpuRecord]]]) -> Iterator[Tuple[str, CpuView]]:
    """``(arch, view)`` per host, refusing a set of hosts of more than one architecture, and CPU
    data kvmprobe does not read (not x86) or that was not recorded, naming the host.

    Raises:
        IncomparableHosts: two architectures, or no host at all.
        NotRecorded: a host without CPU data.
    """
    first: Optional[Tuple[str, str]] = None
    for label, arch, record in hosts:
        if first is None:
            first = (label, arch)
        elif arch != first[1]:
            raise IncomparableHosts(
                f"hosts of different architectures: {first[0]} is {first[1]}, {label} is {arch}; "
                "no guest moves between them", hint="give the hosts of one architecture")  # fmt: skip
        if not is_x86(arch):
            raise NotRecorded(f"{arch} CPU data (kvmprobe reads x86 CPUs only so far)", label,
                              hint="give x86_64 hosts; 'kvmprobe diff' compares the capabilities of any two")  # fmt: skip
        yield arch, view_of(record, label)
    if first is None:
        raise IncomparableHosts("no host given", hint="name snapshot files or directories of them")


class FleetClass(NamedTuple):
    """One compatibility class: its hash, how many hosts, the first of them by name, its CPU model.

    Example:
        >>> from kvmprobe.compat import fleet
        >>> from kvmprobe.testing import fake_cpu_record, fake_probe_result
        >>> (first,) = fleet([fake_probe_result({}, source="h0", cpu=fake_cpu_record(["sse2"]))]).classes
        >>> len(first.cpu_class), first.hosts, first.example, first.model
        (12, 1, 'h0', 'GenuineIntel family 6 model 142 stepping 12')
    """

    cpu_class: str
    hosts: int
    example: str
    model: Optional[str]


class FleetSummary(NamedTuple):
    """What ``kvmprobe fleet`` reports. ``readiness``: ``(vmm, ready hosts)`` per built-in VMM;
    ``unknown``: ``(vmm, hosts where nothing recorded says no but something needed was not recorded)``,
    counted apart because cannot tell is not no.

    Example:
        >>> from kvmprobe.compat import fleet
        >>> from kvmprobe.testing import fake_cpu_record, fake_probe_result
        >>> summary = fleet([fake_probe_result({}, cpu=fake_cpu_record(f)) for f in (["sse2"], ["sse2", "avx2"])])
        >>> doc = summary.to_dict()
        >>> doc["schema"], doc["hosts"], [c["hosts"] for c in doc["classes"]], doc["baseline"]["lost"]
        ('kvmprobe-fleet', 2, [1, 1], ['avx2'])
    """

    hosts: int
    arch: str
    classes: Tuple[FleetClass, ...]
    baseline: Baseline
    readiness: Tuple[Tuple[str, int], ...]
    unknown: Tuple[Tuple[str, int], ...] = ()

    def to_dict(self) -> Dict[str, Any]:
        """The ``kvmprobe fleet --json`` document (``schema`` ``kvmprobe-fleet``, version 1)."""
        base = self.baseline.to_dict()
        return {
            "schema": FLEET_SCHEMA,
            "schema_version": 1,
            "hosts": self.hosts,
            "arch": self.arch,
            "classes": [c._asdict() for c in self.classes],
            "baseline": {key: base[key] for key in ("vendors", "models", "features", "lost", "xsave", "feature_msrs",
                                                    "tsc_khz", "alone")},
            "readiness": [{"vmm": vmm, "ready": ready, "unknown": dict(self.unknown).get(vmm, 0), "hosts": self.hosts}
                          for vmm, ready in self.readiness],
        }  # fmt: skip


class _Classes:
    """Running counts per class: hosts, the first host by name, the CPU model."""

    def __init__(self) -> None:
        self.seen: Dict[str, List[Any]] = {}

    def add(self, view: CpuView) -> None:
        key = cpu_class(view)
        kept = self.seen.get(key)
        if kept is None:
            self.seen[key] = [1, view.source, view.model()]
        else:
            kept[0] += 1
            kept[1] = min(kept[1], view.source)

    def result(self) -> Tuple[FleetClass, ...]:
        ordered = sorted(self.seen.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
        return tuple(FleetClass(key, count, example, model) for key, (count, example, model) in ordered)


def count_classes(views_: Iterable[Tuple[str, CpuView]]) -> Tuple[FleetClass, ...]:
    """The classes of the hosts ``views_`` yields, with their counts, most hosts first."""
    counts = _Classes()
    for _, view in views_:
        counts.add(view)
    return counts.result()


def _signature(result: ProbeResult) -> Tuple[Any, ...]:
    """What decides readiness: the answers, the API version, the architecture, the KVM backend."""
    backend = result.host.kvm_backend if result.host is not None else None
    return (tuple(sorted((int(c), v) for c, v in result.values.items())),
            tuple(sorted((int(c), e) for c, e in result.errors.items())),
            tuple(sorted(int(c) for c in result.not_recorded)), result.api_version, result.arch, backend)  # fmt: skip


def summarize(hosts: Iterable[HostLike]) -> FleetSummary:
    """Read every host once: classes with counts, the baseline, each VMM's readiness.

    Raises:
        IncomparableHosts, NotRecorded, SnapshotError: as :func:`views` and the readers.
    """
    from .profiles import check_vmm, vmm_names

    builder = BaselineBuilder()
    classes = _Classes()
    ready: Dict[str, int] = {}
    unknown: Dict[str, int] = {}
    seen: Dict[Tuple[Any, ...], Tuple[str, ...]] = {}
    names: List[str] = []
    results: Dict[str, ProbeResult] = {}

    def feed() -> Iterator[Tuple[str, str, Optional[CpuRecord]]]:
        for label, result in _full_hosts(hosts):
            results[label] = result  # held only until its view is made, below
            yield label, result.arch, result.cpu

    arch = ""
    for arch, view in views(feed()):
        result = results.pop(view.source)
        builder.add(view, arch)
        classes.add(view)
        if not names:
            names = vmm_names(arch)
        signature = _signature(result)
        verdicts = seen.get(signature)
        if verdicts is None:
            verdicts = tuple(check_vmm(name, result, arch=arch).state for name in names)
            seen[signature] = verdicts
        for name, state in zip(names, verdicts):
            ready[name] = ready.get(name, 0) + (state == "ready")
            unknown[name] = unknown.get(name, 0) + (state == "unknown")
    return FleetSummary(
        hosts=builder.hosts,
        arch=arch,
        classes=classes.result(),
        baseline=builder.result(),
        readiness=tuple((name, ready.get(name, 0)) for name in names),
        unknown=tuple((name, unknown.get(name, 0)) for name in names),
    )
