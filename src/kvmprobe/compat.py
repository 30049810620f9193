"""Fleet CPU compatibility from recorded hosts: baselines, migration verdicts, compatibility classes.

Imports ``_fleet``, ``_baseline``, ``_baseline_formats``, ``_compat_judge``, ``_cpu_view``,
``_cpu_record``, ``_fc_template``, ``_validate``, ``presets``, ``probing``, ``_vmm_versions`` and
``errors``; the public home of the names that live in those rooms. Everything answers from snapshots
alone (``kvmprobe snapshot --vm -o FILE`` on each host), anywhere, with no VMM or libvirt:

* :func:`baseline`: the largest guest CPU every host offers (volatile fields cleared), streamed
  host by host; :func:`firecracker_template` and :func:`qemu_cpu` render it for those VMMs.
* :func:`compare`: can a guest started on one host (with everything it offers, or with a
  baseline) move to another, by live migration or snapshot restore, and if not, every reason.
* :func:`cpu_class`: a short hash of what a verdict judges; hosts of one class are
  interchangeable. :func:`fleet` counts the classes of a fleet, its baseline and readiness.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple, Union

from ._baseline import BASELINE_SCHEMA, Baseline, BaselineBuilder, baseline_from_dict
from ._baseline_formats import QemuCpu
from ._compat_judge import PURPOSES, Compat, Reason
from ._cpu_record import CpuRecord
from ._cpu_view import CLASS_DIGITS, cpu_class as _class_of, view_of
from ._fleet import FleetClass, FleetSummary, HostLike, count_classes, cpu_hosts, summarize, views
from .errors import IncomparableHosts
from .probing import ProbeResult

__all__ = [
    "BASELINE_SCHEMA",
    "CLASS_DIGITS",
    "PURPOSES",
    "Baseline",
    "Compat",
    "FirecrackerTemplate",
    "FleetClass",
    "FleetSummary",
    "HostLike",
    "QemuCpu",
    "Reason",
    "baseline",
    "classes",
    "compare",
    "cpu_class",
    "firecracker_template",
    "fleet",
    "load_baseline",
    "qemu_cpu",
]


def baseline(hosts: Iterable[HostLike]) -> Baseline:
    """The largest guest CPU every host offers, read one host at a time (memory stays flat).

    Per judged register (``_cpuid_rules``, Cloud Hypervisor's rules where they apply): the
    features every host offers, the smallest maximum sub-leaf and address widths; the XSAVE
    components and feature-MSR bits every host offers. One host gives its own set.

    Args:
        hosts: snapshot files, directories of them (each ``*.json``), ``preset:NAME``, results.

    Raises:
        IncomparableHosts: no host, or hosts of two architectures.
        NotRecorded: a host without CPU data (named), or not x86.
        SnapshotError: a file that does not read.

    Example:
        >>> from kvmprobe.testing import fake_cpu_record, fake_probe_result
        >>> a = fake_probe_result({}, cpu=fake_cpu_record(["avx2", "avx512f", "sse2"]))
        >>> b = fake_probe_result({}, cpu=fake_cpu_record(["avx2", "sse2"]))
        >>> base = baseline([a, b])
        >>> "avx512f" in base.features(), base.lost_features()
        (False, ('avx512f',))
    """
    builder = BaselineBuilder()
    for arch, view in views(cpu_hosts(hosts)):
        builder.add(view, arch)
    return builder.result()


def classes(hosts: Iterable[HostLike]) -> Tuple[FleetClass, ...]:
    """The compatibility classes of a set of hosts with how many hosts each has, most first.

    Only each file's CPU section is read (as :func:`baseline` reads it); memory grows with the
    number of classes, not of hosts.

    Example:
        >>> from kvmprobe.testing import fake_cpu_record, fake_probe_result
        >>> hosts = [fake_probe_result({}, source=f"h{i}", cpu=fake_cpu_record(["sse2"] + ["avx2"] * (i % 2)))
        ...          for i in range(5)]
        >>> [(c.hosts, c.example) for c in classes(hosts)]
        [(3, 'h0'), (2, 'h1')]
    """
    return count_classes(views(cpu_hosts(hosts)))


def cpu_class(host: Union[HostLike, CpuRecord]) -> str:
    """A host's compatibility class: 12 hex digits hashing what a verdict judges.

    Hosts of one class pass every CPU check of :func:`compare` both ways; APIC IDs and other
    fields that differ from one CPU to the next are cleared first.

    Raises:
        NotRecorded: the host has no CPU data.

    Example:
        >>> from kvmprobe.presets import load_preset
        >>> len(cpu_class(load_preset("pvm-6.18")))
        12
    """
    if isinstance(host, CpuRecord):
        return _class_of(view_of(host, "record"))
    for _, view in views(cpu_hosts([host])):
        return _class_of(view)
    raise IncomparableHosts("no host given")  # pragma: no cover (views raises first)


def _one(host: HostLike) -> ProbeResult:
    if isinstance(host, ProbeResult):
        return host
    from .presets import load_recorded

    return load_recorded(os.fspath(host))


def compare(
    source: HostLike,
    dest: HostLike,
    *,
    guest: Optional[Baseline] = None,
    purpose: str = "migrate",
    vmm: Optional[str] = None,
) -> Compat:
    """Whether a guest started on ``source`` can move to ``dest``, with every reason if not.

    Judged: the CPU vendor; each CPUID register by its rule (Cloud Hypervisor's
    ``BitwiseSubset``/``Equal``/``NumNotGreater`` list, cited, plus every register the feature
    table names bits of); the XSAVE components; IA32_ARCH_CAPABILITIES (Cloud Hypervisor's
    rule), PERF_CAPABILITIES and CPUID faulting; the TSC rate against the VMM's 250 ppm tolerance
    when ``dest`` cannot scale it (``KVM_CAP_TSC_CONTROL``). With ``vmm`` (``qemu``,
    ``cloud-hypervisor``, ``firecracker``, optionally ``@VERSION``), also whether it runs on
    ``dest`` and the capabilities its restore or migration path needs there.

    Args:
        source, dest: snapshot files, ``preset:NAME`` or probe results.
        guest: the guest's CPU when it is a baseline (it must fit ``source`` too); default:
            everything ``source`` offers.
        purpose: ``migrate`` (live migration) or ``restore`` (a snapshot restored).
        vmm: the VMM that moves the guest.

    Raises:
        IncomparableHosts: different architectures; Firecracker asked to migrate live.
        NotRecorded: a host without CPU data.

    Example:
        >>> from kvmprobe.testing import fake_cpu_record, fake_probe_result
        >>> big = fake_probe_result({}, cpu=fake_cpu_record(["avx2", "avx512f"]))
        >>> small = fake_probe_result({}, cpu=fake_cpu_record(["avx2"]))
        >>> [r.names for r in compare(big, small).reasons], compare(small, big).ok
        ([('avx512f',)], True)
    """
    from ._compat_judge import compare as judge

    a, b = _one(source), _one(dest)
    return judge(a, b, guest=guest, purpose=purpose, vmm=vmm, source_name=_name(source, a), dest_name=_name(dest, b))


def _name(spec: HostLike, result: ProbeResult) -> str:
    return result.source if isinstance(spec, ProbeResult) else os.fspath(spec)


class FirecrackerTemplate(NamedTuple):
    """A Firecracker custom CPU template (``document``, ready for ``json.dumps``) and ``notes``
    on what the format cannot express for these hosts.

    Example:
        >>> from kvmprobe.testing import fake_cpu_record, fake_probe_result
        >>> template = firecracker_template(baseline([fake_probe_result({}, cpu=fake_cpu_record(["sse2"]))]))
        >>> sorted(template.document), isinstance(template.notes, list)
        (['cpuid_modifiers', 'msr_modifiers'], True)
    """

    document: Dict[str, Any]
    notes: List[str]


def firecracker_template(base: Baseline) -> FirecrackerTemplate:
    """The Firecracker custom CPU template that gives a guest the baseline on every host.

    Bitmaps are ``0b`` and 32 characters (64 for an MSR) of ``0``/``1``/``x``: ``0`` clears what
    some host lacks, the rest is ``x`` (left as the host has it).

    Example:
        >>> from kvmprobe.testing import fake_cpu_record, fake_probe_result
        >>> base = baseline([fake_probe_result({}, cpu=fake_cpu_record(f)) for f in (["avx2", "bmi1"], ["bmi1"])])
        >>> firecracker_template(base).document["cpuid_modifiers"][0]["modifiers"]
        [{'register': 'ebx', 'bitmap': '0bxxxxxxxxxxxxxxxxxxxxxxxxxx0xxxxx'}]
    """
    from ._baseline_formats import firecracker_template as render
    from ._fc_template import template_document

    template, notes = render(base)
    return FirecrackerTemplate(template_document(template), notes)


def qemu_cpu(base: Baseline, qemu_version: str = "10.2.2") -> QemuCpu:
    """The QEMU ``-cpu`` value that gives a guest the baseline on every host.

    The named model of the hosts' vendor (QEMU's model table as cited data, 7.2 to 10.2.2) that
    runs on every host as it is and needs the fewest ``+feature``, newest on a tie; where no
    model runs as it is, ``host`` with ``-feature`` for what some host lacks (``closest`` names
    the nearest model).

    Raises:
        ValueError: ``qemu_version`` is not a release number, or older than 7.2.

    Example:
        >>> from kvmprobe.testing import fake_cpu_record, fake_probe_result
        >>> cpu = qemu_cpu(baseline([fake_probe_result({}, cpu=fake_cpu_record(["sse2"]))]))
        >>> cpu.arg.startswith("host,"), cpu.closest is not None
        (True, True)
    """
    from ._baseline_formats import qemu_cpu as render
    from ._vmm_versions import parse_version

    version = parse_version(qemu_version, ("", "v"))
    if version is None or version < (7, 2):
        raise ValueError(f"QEMU {qemu_version!r}: kvmprobe has QEMU's model table from 7.2 to 10.2.2; give one of those")
    return render(base, version)


def load_baseline(path: str) -> Baseline:
    """Read a baseline document (``kvmprobe baseline --format json -o FILE``) back, strictly.

    Raises:
        SnapshotError: the file cannot be read, is not a baseline, or a field is wrong.

    Example:
        >>> import json, os, tempfile
        >>> from kvmprobe.testing import fake_cpu_record, fake_probe_result
        >>> path = os.path.join(tempfile.mkdtemp(), "base.json")
        >>> with open(path, "w") as out:
        ...     _ = out.write(json.dumps(baseline([fake_probe_result({}, cpu=fake_cpu_record(["sse2"]))]).to_dict()))
        >>> load_baseline(path).features()
        ('sse2',)
    """
    from ._validate import Checker, parse_json, read_text
    from .errors import SnapshotError

    hint = "write one with 'kvmprobe baseline --format json -o FILE SNAPSHOT...'"
    text = read_text(path, 4 << 20, lambda message, shown, why: SnapshotError(message, path=shown, hint=why), hint=hint)
    document = parse_json(text, lambda message: SnapshotError(message, path=path, hint=hint))
    return baseline_from_dict(document, Checker(lambda field, message, why: SnapshotError(
        message, path=path, field=field, hint=why or hint)))  # fmt: skip


def fleet(hosts: Iterable[HostLike]) -> FleetSummary:
    """A fleet at a glance: how many hosts, the classes with their counts, the baseline and the
    hosts that alone keep features out of it, and how many hosts each built-in VMM runs on.

    Hosts are read one at a time (memory grows with the number of distinct classes, not hosts).

    Example:
        >>> from kvmprobe.testing import fake_cpu_record, fake_probe_result
        >>> hosts = [fake_probe_result({}, cpu=fake_cpu_record(f)) for f in (["sse2"], ["sse2"], ["sse2", "avx2"])]
        >>> summary = fleet(hosts)
        >>> summary.hosts, [c.hosts for c in summary.classes]
        (3, [2, 1])
    """
    return summarize(hosts)
