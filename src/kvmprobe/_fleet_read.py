"""Reading many recorded hosts one at a time: the snapshot files of a fleet, and their CPU sections.

Imports ``snapshot``, ``_cpu_record``, ``_validate`` and ``errors``. A fleet
command names files and directories (``hosts/``: each ``*.json`` file in it, not recursing);
:func:`snapshot_paths` yields them without listing them all first, and :func:`read_cpu` reads
one host's CPU section, so memory stays flat however many hosts there are.

:func:`read_cpu` checks what it uses as strictly as :func:`kvmprobe.load_snapshot` does (the
schema name and version, the architecture, the kernel, and in ``cpu`` the CPUID entries, the
feature MSRs, the MSR list, the XSAVE components, the TSC rate and the failed queries) through
the same ``_validate`` checks and :meth:`CpuRecord.from_dict`, and parses the rest without
building it (:func:`~kvmprobe._validate.parse_json_lazy`): a file must still be valid JSON
throughout, but a field it does not use is not checked. ``compat`` and ``fleet``, which use the
capabilities too, read the whole snapshot with :func:`kvmprobe.load_snapshot`.
"""

from __future__ import annotations

import os
from typing import Iterable, Iterator, NamedTuple, Optional

from ._cpu_record import CpuRecord
from ._validate import Checker, clip, parse_json_lazy, read_text
from .errors import SnapshotError
from .snapshot import MAX_SNAPSHOT_BYTES, SCHEMA_NAME, SCHEMA_VERSION

__all__ = ["HostCpu", "read_cpu", "snapshot_paths"]

# The keys of a snapshot's cpu section a fleet uses; the others (the host's own CPUID and
# flags, KVM's emulated CPUID, the decoded view) are not read.
_USED = ("cpuid", "msrs", "feature_msr_indices", "feature_msrs", "xcomp_guest_supp", "tsc_khz", "failed")
_HINT = "give the path of a file written by 'python -m kvmprobe snapshot -o FILE'"


class HostCpu(NamedTuple):
    """One recorded host as a fleet reads it: where from, its machine and kernel, its CPU record
    (``None``: the snapshot does not record one)."""

    path: str
    arch: str
    kernel: str
    record: Optional[CpuRecord]


def snapshot_paths(specs: Iterable[str]) -> Iterator[str]:
    """Each file named, and each ``*.json`` regular file directly in each directory named.

    Directory entries come in the order the file system gives them (nothing is sorted: a fleet
    of any size is never held in memory); hidden files are skipped.

    Raises:
        SnapshotError: a path that does not exist, or a directory with no snapshot in it.

    Example:
        >>> import tempfile, os
        >>> where = tempfile.mkdtemp()
        >>> for name in ("a.json", "b.txt", ".c.json"):
        ...     open(os.path.join(where, name), "w").close()
        >>> [os.path.basename(p) for p in snapshot_paths([where])]
        ['a.json']
    """
    for spec in specs:
        if not os.path.isdir(spec):
            if not os.path.lexists(spec):
                raise SnapshotError("no such file or directory", path=spec, hint=_HINT)
            yield spec
            continue
        found = 0
        try:
            with os.scandir(spec) as entries:
                for entry in entries:
                    if entry.name.endswith(".json") and not entry.name.startswith(".") and entry.is_file():
                        found += 1
                        yield entry.path
        except OSError as err:
            raise SnapshotError(f"cannot list the directory: {err.strerror}", path=spec, hint=_HINT) from None
        if not found:
            raise SnapshotError("no snapshot (*.json) in this directory", path=spec, hint=_HINT)


def read_cpu(path: str) -> HostCpu:
    """One snapshot file's architecture, kernel and CPU record, read fast and checked strictly.

    Raises:
        SnapshotError: the file cannot be read, is not a kvmprobe snapshot, or a field it uses
            is wrong (named by its JSON path, as :func:`kvmprobe.load_snapshot` names it).

    Example:
        >>> import os, tempfile
        >>> from kvmprobe.presets import load_preset
        >>> from kvmprobe.snapshot import snapshot_document, write_snapshot
        >>> path = os.path.join(tempfile.mkdtemp(), "h.json")
        >>> write_snapshot(snapshot_document(load_preset("pvm-6.18")), path)
        >>> host = read_cpu(path)
        >>> host.arch, len(host.record.cpuid), host.record.host_cpuid
        ('x86_64', 75, None)
    """

    def file_error(message: str, shown: str, why: str) -> SnapshotError:
        return SnapshotError(message, path=shown, hint=why)

    text = read_text(path, MAX_SNAPSHOT_BYTES, file_error, hint=_HINT)
    tree = parse_json_lazy(text, lambda message: SnapshotError(message, path=path))
    check = Checker(lambda field, message, hint: SnapshotError(message, path=path, field=field, hint=hint))
    top = check.pairs(tree, "$")
    if top.get("schema") != SCHEMA_NAME:
        check.fail("$.schema", f"not a kvmprobe snapshot (expected \"schema\": \"{SCHEMA_NAME}\")",
                   hint="record one with 'python -m kvmprobe snapshot -o FILE'")  # fmt: skip
    if "schema_version" not in top:
        check.fail("$.schema_version", "missing")
    version = check.integer(top["schema_version"], "$.schema_version", 1, 2**31 - 1)
    if version > SCHEMA_VERSION:
        check.fail("$.schema_version", f"snapshot schema {version} is newer than this kvmprobe reads ({SCHEMA_VERSION})",
                   hint=f"read it with the kvmprobe that wrote it ({clip(str(top.get('kvmprobe_version')))}), or update "
                   "this one")  # fmt: skip
    for key in ("arch", "kernel"):
        if key not in top:
            check.fail(f"$.{key}", "missing")
    arch = check.text(top["arch"], "$.arch")
    kernel = check.text(top["kernel"], "$.kernel")
    section = top.get("cpu")
    if section is None:
        return HostCpu(path, arch, kernel, None)
    if version < 2:
        check.fail("$.cpu", f"is a schema version 2 key; this document says schema_version {version}")
    raw = check.pairs(section, "$.cpu")
    # Every key is still checked to be known; the unused ones are passed on as not recorded.
    used = {key: check.plain(value, f"$.cpu.{key}") if key in _USED else None for key, value in raw.items()
            if key != "cpuid"}  # fmt: skip
    if "cpuid" in raw:  # its rows are read as pairs (CpuRecord.from_dict checks them as strictly)
        used["cpuid"] = raw["cpuid"]
    return HostCpu(path, arch, kernel, CpuRecord.from_dict(used, check, "$.cpu", extra=("decoded",)))
