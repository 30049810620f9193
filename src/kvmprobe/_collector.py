"""The collector for old hosts: ``kvmprobe-collect.py`` with this kvmprobe's tables put in.

Imports ``snapshot``, ``caps``, ``_ioctl``, ``_arch``, ``_host_facts``, ``_cc_data``, ``_cc_facts``,
``_cc_probe``, ``_cpuid_table``, ``_cpuid_insn``, ``_cpu_decode`` and ``_version``. The
collector (package data ``collector/kvmprobe-collect.py.in``) is one file that runs with
Python 2.7 and 3.6+ and writes the snapshot document ``kvmprobe snapshot`` writes on the same
host. It asks the kernel about numbers; the names a snapshot's rows carry, the ioctl numbers of
each architecture, the CPUID feature bits and the other facts a reader needs are this
kvmprobe's, put into the file by :func:`script` when it is served (``kvmprobe collector``),
never copied by hand: one source of truth, and a collector that always matches the kvmprobe
that serves it. Rows are exactly the table's (a number the table lacks has no name to carry,
and a made-up name would clash with a later table's), so a newer kvmprobe reads the document
as one written by this version.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

__all__ = ["TEMPLATE", "knowledge", "script"]

#: The template, as package data (``importlib.resources`` reads it from a zipapp too).
TEMPLATE = "collector/kvmprobe-collect.py.in"
#: The one line of the template that :func:`script` replaces with the tables.
PLACEHOLDER = "KNOWLEDGE_JSON = None  # kvmprobe collector: the tables go here\n"


def knowledge() -> Dict[str, Any]:
    """Everything the collector needs of kvmprobe's tables, as JSON-ready data.

    Example:
        >>> data = knowledge()
        >>> data["caps"][0], data["schema"], data["api_version"]
        (['KVM_CAP_IRQCHIP', 0], 'kvmprobe-snapshot', 12)
        >>> dict(data["ioctls"])["x86_64"]["KVM_CHECK_EXTENSION"] == 0xAE03
        True
    """
    from . import _arch, _cc_data, _cc_facts, _cpu_decode, _cpuid_insn, _cpuid_table, _host_facts, _ioctl
    from ._cc_probe import FILES_ONLY_NOTE
    from ._version import __version__
    from .caps import Cap
    from .snapshot import SCHEMA_NAME, SCHEMA_VERSION

    ioctls: List[List[Any]] = []
    for prefix, _ in _ioctl._LAYOUTS:
        numbers = _ioctl.KvmIoctls.for_machine(prefix)
        ioctls.append([prefix, {name: getattr(numbers, name) for name in _IOCTLS}])
    table = _cpuid_table
    return {
        "kvmprobe_version": __version__,
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "api_version": _ioctl.KVM_API_VERSION,
        "caps": [[cap.c_name, int(cap)] for cap in Cap],
        "ioctls": ioctls,
        "x86": list(_arch._X86),
        "host": {
            "arch_aliases": dict(_arch._ALIASES),
            "built_in": list(_arch.KVM_BUILT_IN),
            "vendor_modules": list(_host_facts._VENDOR_MODULES),
            "virt_flags": sorted(_host_facts.VIRT_FLAGS),
            "device_paths": list(_host_facts.DEVICE_PATHS),
            "nodes_file": _host_facts.NODES_FILE,
            "msr_feature_control": _host_facts.MSR_FEATURE_CONTROL,
            "msr_vm_cr": _host_facts.MSR_VM_CR,
        },
        "cpu": {
            "cpuid_code": _cpuid_insn._CODE.hex(),
            "features": [[r.leaf, r.subleaf, r.register, r.bit, r.name, r.hidden] for r in table.FEATURES],
            "runtime_features": sorted(table.RUNTIME_FEATURES),
            "xsave_components": {str(bit): name for bit, name in table.XSAVE_COMPONENTS.items()},
            "arch_capabilities": {str(bit): name for bit, name in table.ARCH_CAPABILITIES.items()},
            "feature_msrs": {str(index): name for index, name in table.FEATURE_MSRS.items()},
            "volatile": [[v.leaf, v.subleaf, v.register, v.mask] for v in table.VOLATILE],
            "msr_arch_capabilities": table.MSR_IA32_ARCH_CAPABILITIES,
            "msr_ucode_rev": _cpu_decode._MSR_UCODE_REV,
            "msr_platform_info": _cpu_decode._MSR_PLATFORM_INFO,
            "cpuid_fault_bit": _cpu_decode._CPUID_FAULT_BIT,
            "cpuid_fault_meaning": _cpu_decode.CPUID_FAULT_MEANING,
            "pvm_note": _cpu_decode._PVM_NOTE,
        },
        "confidential": {
            "cpuid_leaf": _cc_data.CPUID_LEAF,
            "log_keep": list(_cc_data.LOG_KEEP),
            "max_log_lines": _cc_facts.MAX_LOG_LINES,
            "max_log_chars": _cc_facts.MAX_LOG_CHARS,
            "kvm_note": FILES_ONLY_NOTE,
        },
    }


# The ioctls the collector issues (all on the system fd; no VM is created).
_IOCTLS = (
    "KVM_GET_API_VERSION",
    "KVM_CHECK_EXTENSION",
    "KVM_GET_SUPPORTED_CPUID",
    "KVM_GET_EMULATED_CPUID",
    "KVM_GET_MSR_INDEX_LIST",
    "KVM_GET_MSR_FEATURE_INDEX_LIST",
    "KVM_GET_MSRS",
    "KVM_GET_DEVICE_ATTR",
)


def _tables_text(data: Dict[str, Any]) -> str:
    """The tables as JSON a reader of the file can follow: one key, or one table row, per line."""
    lines = ["{"]
    keys = list(data)
    for n, key in enumerate(keys):
        value = data[key]
        end = "," if n < len(keys) - 1 else ""
        if isinstance(value, dict):
            inner = list(value)
            lines.append(f"{json.dumps(key)}: {{")
            for m, name in enumerate(inner):
                sep = "," if m < len(inner) - 1 else ""
                lines.append(f" {json.dumps(name)}: {_rows_text(value[name], 2)}{sep}")
            lines.append("}" + end)
        else:
            lines.append(f"{json.dumps(key)}: {_rows_text(value, 1)}{end}")
    lines.append("}")
    return "\n".join(lines)


def _rows_text(value: Any, indent: int) -> str:
    compact = json.dumps(value, separators=(",", ":"))
    if not isinstance(value, list) or len(compact) < 100:
        return compact
    pad = " " * indent
    rows = [pad + json.dumps(row, separators=(",", ":")) for row in value]
    return "[\n" + ",\n".join(rows) + "\n" + pad[:-1] + "]"


def script() -> str:
    """The collector's source with this kvmprobe's tables: what ``kvmprobe collector`` prints.

    Example:
        >>> text = script()
        >>> text.startswith("#!/usr/bin/env python"), '"KVM_CAP_IMMEDIATE_EXIT",136' in text
        (True, True)
    """
    from importlib import resources

    template = resources.files("kvmprobe").joinpath(TEMPLATE).read_text(encoding="ascii")
    if template.count(PLACEHOLDER) != 1:
        raise RuntimeError(f"the collector template {TEMPLATE} has no single placeholder line")
    tables = _tables_text(knowledge())
    if '"""' in tables:  # JSON escapes every quote inside a string, so this cannot happen
        raise RuntimeError("the tables would end the raw string that holds them")
    return template.replace(PLACEHOLDER, f'KNOWLEDGE_JSON = r"""\n{tables}\n"""\n')
