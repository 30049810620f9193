"""Recorded hosts: write a probe result as a JSON document, and read one back strictly.

Imports ``probing``, ``host``, ``_host_reader``, ``_snapshot_rows``, ``_validate``, ``_cpu_record``,
``_cpu_decode``, ``_guest_report``, ``_cc_facts``, ``_cc_probe``, ``_backend``, ``_arch``, ``caps``,
``errors``, ``atomic`` and ``_version``. A snapshot is the JSON document ``python -m kvmprobe
snapshot`` (and ``python -m kvmprobe --json``) writes: the schema name and version, who wrote it and
when, the device, API version and kernel, one row per capability (the system-fd value, the VM-fd
value where asked, the errno where a query failed), the host facts, the CPU a guest gets (``cpu``:
KVM's raw CPUID and MSR answers exactly as given, and their decoded view; ``null`` when not
recorded) and, when they were run, the micro-guest checks (``run``). ``load_snapshot`` turns such a
document back into a :class:`~kvmprobe.ProbeResult`, so every API and command runs on a recorded
host as on the live one. The schema is documented as JSON Schema in
``kvmprobe/schema/snapshot-2.schema.json``. Version 2 adds optional top-level keys, absent or null
where there is nothing to say: ``derivation`` (a host worked out from a kernel's source, see
:class:`~kvmprobe.probing.Derivation`), ``cpu``, ``run`` and ``confidential`` (the
confidential-VM facts, :class:`~kvmprobe.confidential.ConfidentialFacts`); version-1 documents
still load.

Reading is strict: a malformed document raises :class:`~kvmprobe.SnapshotError` naming the
file and the JSON path of the bad field (``$.capabilities[3].value``). Two things are not
errors: capability names this kvmprobe's table lacks (a newer kvmprobe wrote them; they are
kept in ``ProbeResult.unknown`` and reported), and capabilities of the table the document
lacks (cut out, or an older kvmprobe did not know them): they are *not recorded*
(``ProbeResult.not_recorded``), never read as 0, and every command says so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from ._cc_facts import ConfidentialFacts
from ._snapshot_rows import ROW_KEYS, read_rows
from ._validate import Checker, clip, key_path, parse_json, read_text, type_word
from ._value import replace
from ._version import __version__
from .caps import Cap
from .errors import SnapshotError, write_failure
from ._host_reader import facts_of_live
from .host import HostFacts
from .probing import CapValues, Derivation, ProbeResult, probe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Union

    from ._backend import Backend
    from ._cpu_record import CpuRecord
    from ._guest_report import RunReport

__all__ = [
    "MAX_SNAPSHOT_BYTES",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "document_for",
    "gather_live",
    "load_snapshot",
    "record",
    "snapshot_document",
    "write_snapshot",
]

#: The ``schema`` value every snapshot carries.
SCHEMA_NAME = "kvmprobe-snapshot"
#: The document shape this kvmprobe writes (and the newest it reads; every older one loads).
#: Any change of shape (a key added, removed or retyped) bumps it; new capability rows are
#: data and do not. Version 2 added the optional ``derivation``, ``cpu`` and ``run`` keys.
SCHEMA_VERSION = 2
#: Files larger than this are refused before being read. A real snapshot is about 30 kB.
MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024

# KVM_CHECK_EXTENSION returns a C int; a negative return is an error (errno), never a value.
_INT_MAX = 2**31 - 1
# recorded_at, compiled on the first one read (re costs milliseconds to import; writing needs none).
_TIME = r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,6})?(?:Z|([+-])(\d{2}):(\d{2}))"
_PATTERNS: Dict[str, Any] = {}

_TOP_KEYS = (
    "schema",
    "schema_version",
    "kvmprobe_version",
    "recorded_at",
    "synthesized",
    "device",
    "api_version",
    "backend",
    "kernel",
    "arch",
    "vm_created",
    "capabilities",
    "host",
)
# Keys a document may leave out, each with the schema version that added it: "derivation" is
# written after "synthesized" when set; "cpu" after "host"; "run" (the micro-guest checks, issue
# #14) when they were run; "confidential" last when recorded.
_DERIVATION_KEYS = ("kind", "sources", "assumptions")
# Keys a document may leave out ("not recorded"), with the schema version that added each.
_OPTIONAL_KEYS = {"derivation": 2, "cpu": 2, "run": 2, "confidential": 2}

if TYPE_CHECKING:
    PathOrDict = Union[str, "os.PathLike[str]", Mapping[str, Any]]


def _now() -> str:
    # time rather than datetime (what this printed before): the same text, without an import.
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def snapshot_document(
    result: ProbeResult,
    host: Optional[HostFacts] = None,
    *,
    recorded_at: Optional[str] = None,
    confidential: Optional[ConfidentialFacts] = None,
) -> Dict[str, Any]:
    """The snapshot document of ``result``: what ``python -m kvmprobe snapshot`` writes.

    Keys come in a fixed order (the JSON text of one host is the same every time but for the
    time). Capabilities are listed in table order, then any ``unknown`` rows a loaded snapshot
    carried, by number. ``host`` defaults to ``result.host``; with neither the ``host`` key is
    ``null``. ``recorded_at`` defaults to the result's own time (a loaded snapshot), else now
    (UTC), and is ``null`` for a synthesized host. The micro-guest checks (``result.run``) are
    written under ``"run"`` only when they were recorded. ``confidential`` (default
    ``result.confidential``) adds the key of that name; without it the key is left out.

    Args:
        result: a live, loaded or fake probe result.
        host: the host facts to record (see :func:`kvmprobe.host.read_host_facts`).
        recorded_at: override the time (ISO 8601), e.g. for reproducible output.
        confidential: the confidential-VM facts to record (see :mod:`kvmprobe.confidential`).

    Returns:
        A dict ready for ``json.dumps``; :func:`load_snapshot` reads it back.

    Example:
        >>> from kvmprobe.testing import fake_probe_result
        >>> doc = snapshot_document(fake_probe_result({Cap.IMMEDIATE_EXIT: 1}))
        >>> doc["schema"], doc["schema_version"], doc["synthesized"], doc["recorded_at"]
        ('kvmprobe-snapshot', 2, True, None)
        >>> [row for row in doc["capabilities"] if row["name"] == "KVM_CAP_IMMEDIATE_EXIT"]
        [{'name': 'KVM_CAP_IMMEDIATE_EXIT', 'number': 136, 'value': 1}]
    """
    facts = host if host is not None else result.host
    cc = confidential if confidential is not None else result.confidential
    asked = not (result.synthesized or result.derivation is not None)
    when = recorded_at or result.recorded_at or (_now() if asked else None)
    doc: Dict[str, Any] = {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "kvmprobe_version": result.recorded_by or __version__,
        "recorded_at": when,
        "synthesized": result.synthesized,
    }
    if result.derivation is not None:
        doc["derivation"] = result.derivation.to_dict()
    doc.update(
        device=result.device,
        api_version=result.api_version,
        backend=result.backend,
        kernel=result.kernel,
        arch=result.arch,
        vm_created=result.vm_created,
        capabilities=_rows(result),
        host=facts.to_dict() if facts is not None else None,
        cpu=_cpu_section(result, facts),
    )
    if result.run is not None:
        doc["run"] = result.run.to_dict()
    if cc is not None:
        doc["confidential"] = cc.to_dict()
    return doc


def _cpu_section(result: ProbeResult, facts: Optional[HostFacts]) -> Optional[Dict[str, Any]]:
    """The raw CPU record and its decoded view (kept so a reader needs no decoder), or None."""
    if result.cpu is None:
        return None
    from ._cpu_decode import decode

    info = decode(result.cpu, arch=result.arch, source=result.source,
                  kvm_backend=None if facts is None else facts.kvm_backend)  # fmt: skip
    return {**result.cpu.to_dict(), "decoded": info.decoded_dict()}


def _rows(result: ProbeResult) -> List[Dict[str, Any]]:
    rows: List[Dict[str, Any]] = []
    for cap in Cap:
        if cap in result.not_recorded:
            continue  # still not recorded when written back: never a made-up 0
        failed = cap in result.errors
        row: Dict[str, Any] = {
            "name": cap.c_name,
            "number": int(cap),
            "value": None if failed else result.values.get(cap, 0),
        }
        if failed:
            row["error"] = result.errors[cap]
        if result.vm_values is not None:
            vm_failed = cap in result.vm_errors
            row["vm_value"] = None if vm_failed else result.vm_values.get(cap, 0)
            if vm_failed:
                row["vm_error"] = result.vm_errors[cap]
        rows.append(row)
    for extra in sorted(result.unknown, key=lambda r: int(r["number"])):
        rows.append({key: extra[key] for key in ROW_KEYS if key in extra})
    return rows


def record(
    path: Optional[str] = None,
    *,
    vm: bool = False,
    root: str = "/",
    refresh: bool = False,
    confidential: bool = False,
) -> Dict[str, Any]:
    """Probe the live host and return its snapshot document, host facts and the confidential-VM
    facts its files tell included.

    The CPU section (x86) is recorded too: KVM's CPUID, MSR and XSAVE answers, the host's own
    CPUID and ``/proc/cpuinfo`` flags and, with ``vm``, a scratch vCPU's TSC rate.

    Args:
        path: the KVM device (default ``$KVMPROBE_DEVICE`` or ``/dev/kvm``).
        vm: also create a VM and record every capability's VM-fd value (and the TSC rate).
        confidential: also ask KVM the confidential-VM questions: the SEV attributes of /dev/kvm
            and, with ``vm``, KVM_CREATE_VM of each confidential type (closed at once).
        root: where the host facts are read (``/``; a test passes a fake tree).
        refresh: probe again rather than use the cached answer.

    Raises:
        KvmUnavailable: the device cannot be used (with the reason and the fix).

    Example (hardware):
        >>> doc = record(vm=True)  # doctest: +SKIP
        >>> doc["api_version"], doc["host"]["kernel_release"] == doc["kernel"]  # doctest: +SKIP
        (12, True)
    """
    return document_for(probe(path, vm=vm, refresh=refresh, cpu=True), root, ask_kvm=confidential)


def gather_live(
    result: ProbeResult, root: str = "/", backend: Optional[Backend] = None, *, ask_kvm: bool = False
) -> ProbeResult:
    """``result`` with what a recording of it carries besides KVM's answers, gathered once from
    this machine when ``result`` is live: the host facts (under ``root``), the confidential-VM
    facts of its files (with ``ask_kvm`` also KVM's answers through ``backend``, a VM of each
    confidential type tried when the probe made a VM) and the host's side of its CPU record
    (its CPUID and ``/proc/cpuinfo`` flags). A recorded or made-up result is returned as it is.
    ``document_for``, ``diff`` against this host and ``export`` all gather through here.

    Example:
        >>> from kvmprobe.testing import fake_probe_result
        >>> made = fake_probe_result({"HLT": 1})
        >>> gather_live(made) is made
        True
    """
    if result.source != "live":
        return result
    from ._cc_probe import gather_confidential  # only when recording a live host

    facts = result.host if result.host is not None else facts_of_live(result, root)
    cc = result.confidential
    if cc is None:
        cc = gather_confidential(result.device, root=root, backend=backend, create_vms=result.vm_created,
                                 ask_kvm=ask_kvm)  # fmt: skip
    cpu = result.cpu
    if cpu is not None:  # the CPU record's module only for a result that has one
        from ._cpu_record import live_host_side

        cpu = live_host_side(cpu, source=result.source, backend=result.backend, root=root)
    return replace(result, host=facts, confidential=cc, cpu=cpu)


def document_for(
    result: ProbeResult, root: str = "/", backend: Optional[Backend] = None, *, ask_kvm: bool = False
) -> Dict[str, Any]:
    """The snapshot document of ``result``; a live one gets what :func:`gather_live` gathers
    (host facts, confidential-VM facts, the host's side of its CPU record).

    Example:
        >>> from kvmprobe.testing import fake_probe_result
        >>> document_for(fake_probe_result({"HLT": 1}))["host"] is None
        True
    """
    gathered = gather_live(result, root, backend, ask_kvm=ask_kvm)
    return snapshot_document(gathered, gathered.host, confidential=gathered.confidential)


def write_snapshot(document: Mapping[str, Any], path: str) -> None:
    """Write ``document`` as JSON to ``path`` atomically (a temporary file, then a rename).

    A reader never sees a half-written file, and a failed write leaves the old file as it
    was. The file gets mode 0644 (see :func:`kvmprobe.atomic.write_atomic`).

    Raises:
        SnapshotError: the file cannot be written (the path and the reason), or something
            other than a regular file stands there (a device, a FIFO, a directory: left alone).

    Example:
        >>> import os, tempfile
        >>> from kvmprobe.testing import fake_probe_result
        >>> target = os.path.join(tempfile.mkdtemp(), "host.json")
        >>> write_snapshot(snapshot_document(fake_probe_result({"HLT": 1})), target)
        >>> load_snapshot(target).has("HLT")
        True
    """
    import json

    from .atomic import write_atomic

    try:
        write_atomic(path, json.dumps(document, indent=2) + "\n")
    except (OSError, ValueError) as err:  # ValueError: a NUL or an unencodable surrogate in the path
        message, hint = write_failure(path, err)
        failure = SnapshotError(message, hint=hint)
        failure.path = path
        raise failure from None


def load_snapshot(path_or_dict: PathOrDict) -> ProbeResult:
    """Read a recorded host: a snapshot file, or its already-parsed document.

    The result has the interface of a live probe: ``has()``, ``value()``, ``vm_value()`` and
    every command answer from it. ``source`` is ``"snapshot:<path>"`` (``"snapshot"`` for a
    dict), and ``host`` holds the recorded host facts. Capabilities the document does not
    list are in ``not_recorded`` (asking one raises ``CapabilityNotRecorded``); rows whose
    names this kvmprobe does not know are kept in ``unknown``.

    Files are refused before parsing when they are not regular files (a FIFO, ``/dev/zero``,
    a directory) or larger than :data:`MAX_SNAPSHOT_BYTES`.

    Args:
        path_or_dict: a path (``str`` or ``os.PathLike``) or a mapping.

    Returns:
        The recorded host as a :class:`~kvmprobe.ProbeResult`.

    Raises:
        SnapshotError: the file cannot be read, is not UTF-8 JSON, or a field is wrong; the
            message names the file and the JSON path (``$.capabilities[3].value``).
        TypeError: ``path_or_dict`` is neither a path nor a mapping.

    Example:
        >>> from kvmprobe.testing import fake_probe_result
        >>> doc = snapshot_document(fake_probe_result({"IMMEDIATE_EXIT": 1}, kernel="4.14.0"))
        >>> host = load_snapshot(doc)
        >>> host.has("IMMEDIATE_EXIT"), host.kernel, host.source
        (True, '4.14.0', 'snapshot')
        >>> doc["capabilities"][3]["value"] = "yes"
        >>> load_snapshot(doc)
        Traceback (most recent call last):
        ...
        kvmprobe.errors.SnapshotError: $.capabilities[3].value: expected an integer or null, got a string ('yes') (hint: record the host again with 'python -m kvmprobe snapshot -o FILE')
    """
    if isinstance(path_or_dict, Mapping):
        return _Reader(None).result(path_or_dict)
    if isinstance(path_or_dict, (str, os.PathLike)):
        path = os.fspath(path_or_dict)
        if not isinstance(path, str):
            raise TypeError("load_snapshot() takes a str path, not bytes")
        return _Reader(path).result(_read_json(path))
    raise TypeError(f"load_snapshot() takes a path or a mapping, not {type(path_or_dict).__name__}")


def _read_json(path: str) -> Any:
    """The parsed JSON of a snapshot file, or SnapshotError."""
    hint = "give the path of a file written by 'python -m kvmprobe snapshot -o FILE'"

    def file_error(message: str, shown: str, why: str) -> SnapshotError:
        return SnapshotError(message, path=shown, hint=why)

    text = read_text(path, MAX_SNAPSHOT_BYTES, file_error, hint=hint)
    return parse_json(text, lambda message: SnapshotError(message, path=path))


class _Reader(Checker):
    """Validates one document; every error names the file and the field."""

    def __init__(self, path: Optional[str]) -> None:
        super().__init__(lambda field, message, hint: SnapshotError(message, path=path, field=field, hint=hint))
        self.path = path

    def result(self, document: Any) -> ProbeResult:
        if not isinstance(document, Mapping):
            self.fail("$", f"expected a JSON object, got {type_word(document)}")
        schema = document.get("schema")
        if schema != SCHEMA_NAME:
            self.fail(
                "$.schema",
                f"not a kvmprobe snapshot (expected \"schema\": \"{SCHEMA_NAME}\")",
                hint="record one with 'python -m kvmprobe snapshot -o FILE'",
            )
        if "schema_version" not in document:
            self.fail("$.schema_version", "missing")
        version = self.integer(document["schema_version"], "$.schema_version", 1, _INT_MAX)
        if version > SCHEMA_VERSION:
            self.fail(
                "$.schema_version",
                f"snapshot schema {version} is newer than this kvmprobe {__version__} reads ({SCHEMA_VERSION})",
                hint=f"read it with the kvmprobe that wrote it ({clip(str(document.get('kvmprobe_version')))}), or update "
                "this one: it is installed from its source tree, so reinstall from a newer one ('pip install .' there)",
            )
        for key in document:
            if key in _OPTIONAL_KEYS and version < _OPTIONAL_KEYS[key]:
                self.fail(key_path("$", str(key)), f"is a schema version {_OPTIONAL_KEYS[key]} key; "
                          f"this document says schema_version {version}")  # fmt: skip
            if key not in _TOP_KEYS and key not in _OPTIONAL_KEYS:
                known = ", ".join(_TOP_KEYS + tuple(_OPTIONAL_KEYS))
                self.fail(key_path("$", str(key)), "unknown key", hint=f"the keys are: {known}")
        for key in _TOP_KEYS:
            if key not in document:
                self.fail(key_path("$", key), "missing")
        recorded_by = self.text(document["kvmprobe_version"], "$.kvmprobe_version")
        recorded_at = self.time(document["recorded_at"], "$.recorded_at")
        synthesized = self.boolean(document["synthesized"], "$.synthesized")
        derivation = self.derivation(document.get("derivation"))
        if derivation is not None and synthesized:
            self.fail("$.synthesized", "is true, but a host derived from source is not synthesized")
        device = self.text(document["device"], "$.device")
        api_version = self.integer(document["api_version"], "$.api_version", 0, _INT_MAX)
        backend = self.text(document["backend"], "$.backend", empty=True)
        kernel = self.text(document["kernel"], "$.kernel")
        arch = self.text(document["arch"], "$.arch")
        vm_created = self.boolean(document["vm_created"], "$.vm_created")
        rows = read_rows(self, document["capabilities"])
        values, errors, vm_values, vm_errors, unknown, not_recorded = rows
        # A row the document lacks is not recorded, never 0 (unsupported): cut out, or written
        # by a kvmprobe that did not know the capability (rows.not_recorded). ProbeResult.has()
        # refuses to guess.
        if vm_values is not None and not vm_created:
            self.fail("$.vm_created", "is false, but the capabilities carry VM-fd values")
        facts = document["host"]
        host = None if facts is None else HostFacts.from_dict(facts, path=self.path, field="$.host")
        self.arch(arch, host)
        run = self.run(document.get("run"))
        cpu = self.cpu(document.get("cpu"))
        cc_data = document.get("confidential")
        cc = None if cc_data is None else ConfidentialFacts.from_dict(cc_data, path=self.path, field="$.confidential")
        return ProbeResult(
            device=device,
            api_version=api_version,
            values=CapValues._of(values),
            arch=arch,
            kernel=kernel,
            backend=backend,
            errors=errors,
            vm_values=None if vm_values is None else CapValues._of(vm_values),
            vm_errors=vm_errors,
            vm_created=vm_created,
            source=f"snapshot:{self.path}" if self.path is not None else "snapshot",
            host=host,
            confidential=cc,
            unknown=unknown,
            recorded_at=recorded_at,
            recorded_by=recorded_by,
            synthesized=synthesized,
            derivation=derivation,
            run=run,
            cpu=cpu,
            not_recorded=not_recorded,
        )

    def arch(self, arch: str, host: Optional[HostFacts]) -> None:
        """``$.arch`` is one kvmprobe knows (``_arch.ARCHES``), or one the host facts do not
        contradict (the collector records any machine, so that doctor can say why KVM was not
        asked there; without /proc/sys/kernel it records no machine)."""
        from ._arch import ARCHES, canonical, supported_text

        if canonical(arch) in ARCHES or (host is not None and canonical(host.machine) in ("", canonical(arch))):
            return
        said = f", and $.host.machine is {clip(host.machine)!r}" if host is not None else ""
        self.fail("$.arch", f"{clip(arch)!r} is not an architecture kvmprobe knows{said}",
                  hint=f"kvmprobe knows {supported_text()}")  # fmt: skip

    def run(self, item: Any) -> Optional[RunReport]:
        """The recorded micro-guest checks, or ``None`` (absent or null: not recorded)."""
        if item is None:
            return None
        from ._guest_report import RunReport  # only for a document that recorded them

        return RunReport.from_dict(
            item, lambda field, message, hint: SnapshotError(message, path=self.path, field=field, hint=hint)
        )

    def derivation(self, item: Any) -> Optional[Derivation]:
        """The ``derivation`` object: kind, the sources cited, the assumptions (or ``None``)."""
        if item is None:
            return None
        at = "$.derivation"
        if not isinstance(item, Mapping):
            self.fail(at, f"expected an object or null, got {type_word(item)}")
        for key in item:
            if key not in _DERIVATION_KEYS:
                self.fail(key_path(at, str(key)), "unknown key", hint=f"a derivation has: {', '.join(_DERIVATION_KEYS)}")
        if item.get("kind") != Derivation.kind:
            self.fail(f"{at}.kind", f"expected {Derivation.kind!r}")
        texts = []
        for key in ("sources", "assumptions"):
            value = item.get(key, [])
            if not isinstance(value, list):
                self.fail(f"{at}.{key}", f"expected an array of strings, got {type_word(value)}")
            texts.append(tuple(self.text(entry, f"{at}.{key}[{index}]") for index, entry in enumerate(value)))
        if not texts[0]:
            self.fail(f"{at}.sources", "is empty: a host derived from source cites its source")
        return Derivation(texts[0], texts[1])
    def cpu(self, section: Any) -> Optional[CpuRecord]:
        """The raw CPU record of a ``cpu`` section (its ``decoded`` view is checked to be an
        object and otherwise ignored: it is decoded again from the raw answers on use)."""
        if section is None:
            return None
        from ._cpu_record import CpuRecord as Record

        record = Record.from_dict(section, self, "$.cpu", extra=("decoded",))
        decoded = section.get("decoded")
        if decoded is not None:
            self.mapping(decoded, "$.cpu.decoded")
        return record

    def time(self, item: Any, field: str) -> Optional[str]:
        if item is None:
            return None
        text = self.text(item, field)
        pattern = _PATTERNS.get(_TIME)
        if pattern is None:
            import re

            pattern = _PATTERNS[_TIME] = re.compile(_TIME, re.ASCII)
        match = pattern.fullmatch(text)
        if match is None:
            self.fail(field, f"{text!r} is not an ISO 8601 time like 2026-11-25T09:30:00Z")
        # The date, time and offset checked by datetime's constructors, not by fromisoformat(),
        # which takes fractions of 1 to 6 digits only from Python 3.11 on (3.9 and 3.10: 3 or 6).
        year, month, day, hour, minute, second, sign, off_hours, off_minutes = match.groups()
        from datetime import datetime, timedelta, timezone

        try:
            offset = timedelta(hours=int(off_hours or 0), minutes=int(off_minutes or 0)) * (-1 if sign == "-" else 1)
            datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=timezone(offset))
        except ValueError:
            self.fail(field, f"{text!r} is not a valid date and time")
        return text
