"""The micro-guest's structure layouts and exit names against the system's <linux/kvm.h>, through gcc.

An independent path: the offsets and sizes as the C compiler lays out the kernel's own structures,
and the ``KVM_EXIT_*`` / ``KVM_INTERNAL_ERROR_*`` values the header defines.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
from typing import Dict

import pytest

from kvmprobe import _vcpu
from kvmprobe._kvm_exits import EXIT_REASONS, INTERNAL_SUBERRORS

HEADER = "/usr/include/linux/kvm.h"

# What _vcpu lays out, as C expressions over the kernel's structures.
LAYOUT = {
    "offsetof(struct kvm_run, immediate_exit)": _vcpu._IMMEDIATE_EXIT,
    "offsetof(struct kvm_run, exit_reason)": _vcpu._EXIT_REASON_AT,
    "offsetof(struct kvm_run, io)": _vcpu._UNION_AT,
    "offsetof(struct kvm_run, io.data_offset)": _vcpu._UNION_AT + 8,
    "offsetof(struct kvm_run, mmio.len)": _vcpu._UNION_AT + 16,
    "offsetof(struct kvm_run, mmio.is_write)": _vcpu._UNION_AT + 20,
    "offsetof(struct kvm_run, fail_entry.cpu)": _vcpu._UNION_AT + 8,
    "offsetof(struct kvm_run, internal.data)": _vcpu._UNION_AT + 8,
    "sizeof(struct kvm_regs)": _vcpu._REGS.size,
    "sizeof(struct kvm_segment)": _vcpu._SEGMENT.size,
    "sizeof(struct kvm_dtable)": _vcpu._DTABLE.size,
    "sizeof(struct kvm_sregs)": _vcpu._SREGS_SIZE,
    "offsetof(struct kvm_sregs, gdt)": 8 * _vcpu._SEGMENT.size,
    "offsetof(struct kvm_sregs, cr0)": 8 * _vcpu._SEGMENT.size + 2 * _vcpu._DTABLE.size,
    "offsetof(struct kvm_sregs, interrupt_bitmap)": _vcpu._SREGS_SIZE - _vcpu._INTERRUPT_BITMAP,
    "offsetof(struct kvm_segment, unusable)": 8 + 4 + 2 + 8,
    "sizeof(struct kvm_userspace_memory_region)": _vcpu._REGION.size,
}


def compiled(tmp_path: pathlib.Path, expressions: Dict[str, str]) -> Dict[str, int]:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not os.path.exists(HEADER):
        pytest.skip("needs a C compiler and the kernel's uapi header (Debian: linux-libc-dev)")
    if os.uname().machine != "x86_64":
        pytest.skip(f"the x86 structures are compared on x86_64; this is {os.uname().machine}")
    lines = "\n".join(f'    printf("%s %lu\\n", "{key}", (unsigned long)({expr}));' for key, expr in expressions.items())
    source = tmp_path / "layout.c"
    source.write_text(f"#include <stdio.h>\n#include <stddef.h>\n#include <linux/kvm.h>\nint main(void) {{\n{lines}\n    return 0;\n}}\n")
    binary = tmp_path / "layout"
    subprocess.run([compiler, "-o", str(binary), str(source)], check=True, capture_output=True, timeout=120)
    printed = subprocess.run([str(binary)], check=True, capture_output=True, text=True, timeout=60).stdout
    return {key: int(value) for key, value in (line.rsplit(" ", 1) for line in printed.splitlines())}


def test_the_structure_layouts_are_the_kernels(tmp_path: pathlib.Path) -> None:
    keys = {f"e{i}": expr for i, expr in enumerate(LAYOUT)}
    found = compiled(tmp_path, keys)
    assert {expr: found[key] for key, expr in keys.items()} == LAYOUT


def test_every_exit_reason_the_header_defines_has_its_number(tmp_path: pathlib.Path) -> None:
    text = pathlib.Path(HEADER).read_text() if os.path.exists(HEADER) else ""
    # The exit reasons are one block, from KVM_EXIT_UNKNOWN to the internal-error suberrors.
    block = text[text.find("#define KVM_EXIT_UNKNOWN"):text.find("/* For KVM_EXIT_INTERNAL_ERROR */")]
    names = re.findall(r"#define (KVM_EXIT_\w+)\s", block)
    suberrors = re.findall(r"#define (KVM_INTERNAL_ERROR_(?!EMULATION_FLAG)\w+)\s", text)
    found = compiled(tmp_path, {name: name for name in names + suberrors})
    assert len(names) >= 30 and len(suberrors) >= 3  # a real comparison, not an empty one
    assert {name: found[name] for name in names} == {name: n for n, name in EXIT_REASONS.items() if name in names}
    assert {found[name]: name for name in suberrors} == {n: s for n, s in INTERNAL_SUBERRORS.items() if s in suberrors}
    # Numbers are unique, and the table's names newer than the header come after its last one.
    assert len(set(EXIT_REASONS.values())) == len(EXIT_REASONS)
    assert all(number > max(found[name] for name in names) for number, name in EXIT_REASONS.items() if name not in names)
