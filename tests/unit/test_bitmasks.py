"""The bit-mask and collision tables: checked against this machine's kernel headers, and shown by name.

The headers (``<linux/kvm.h>``, ``<asm/kvm.h>``, ``<linux/kvm_para.h>``, the installed uapi) are
an independent source: every bit they define under a name the table uses must have the same
value. Older headers lack the newer bits; those are not checked here, only what exists.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from kvmprobe import Cap
from kvmprobe._bitmasks import MASKS, NOT_MASKS, VM_TYPES, Decoded, decode_mask, vm_type
from kvmprobe._cli import main
from kvmprobe._cli._dump import render
from kvmprobe._collisions import COLLISIONS, collisions
from kvmprobe.export import nfd_features, prometheus_text
from kvmprobe.testing import fake_probe_result

HEADERS = [
    Path("/usr/include/linux/kvm.h"),
    Path("/usr/include/x86_64-linux-gnu/asm/kvm.h"),
    Path("/usr/include/asm/kvm.h"),
    Path("/usr/include/linux/kvm_para.h"),
]
_DEFINE = re.compile(r"^#define\s+(\w+)\s+\(?\s*(?:(\d+)(?:U?L*)?\s*<<\s*(\d+)|(0x[0-9a-fA-F]+|\d+))\s*U?L*\s*\)?\s*$")


def header_values() -> Dict[str, int]:
    found: Dict[str, int] = {}
    for path in HEADERS:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            match = _DEFINE.match(line.strip())
            if match is None:
                continue
            name, base, shift, plain = match.groups()
            found.setdefault(name, int(base) << int(shift) if shift else int(plain, 0))
    return found


def test_every_bit_the_installed_headers_define_has_their_value() -> None:
    defined = header_values()
    if not defined:
        pytest.skip("no kernel headers under /usr/include (apt-get install linux-libc-dev)")
    checked: List[str] = []
    for cap, mask in MASKS.items():
        for bit in mask.bits:
            if bit.name in defined and cap is not Cap.EXIT_HYPERCALL:
                assert defined[bit.name] == bit.value, bit.name
                checked.append(bit.name)
    if "KVM_HC_MAP_GPA_RANGE" in defined:  # a hypercall number; the mask bit is 1 << it
        assert 1 << defined["KVM_HC_MAP_GPA_RANGE"] == MASKS[Cap.EXIT_HYPERCALL].bits[0].value
    for vm in VM_TYPES:
        if vm.name in defined:
            assert defined[vm.name] == vm.number, vm.name
    # Linux 6.1's headers (Debian 12) already define the quirks, x2APIC, exits, bus-lock, clock and Xen bits.
    assert len(checked) >= 10, checked


def test_the_tables_are_consistent() -> None:
    for cap, mask in MASKS.items():
        assert mask.cap is cap and cap not in NOT_MASKS
        values = [bit.value for bit in mask.bits]
        assert all(v & (v - 1) == 0 and v > 0 for v in values), cap  # one bit each
        assert len(set(values)) == len(values) and len({b.name for b in mask.bits}) == len(values), cap
    assert [vm.number for vm in VM_TYPES] == list(range(len(VM_TYPES)))
    assert [bit.value for bit in MASKS[Cap.VM_TYPES].bits] == [1 << vm.number for vm in VM_TYPES]


def named(cap: Cap, value: int, arch: Optional[str] = None) -> Decoded:
    decoded = decode_mask(cap, value, arch)
    assert decoded is not None
    return decoded


def test_decoding() -> None:
    assert named(Cap.VM_TYPES, 0x1D).names == ("KVM_X86_DEFAULT_VM", "KVM_X86_SEV_VM", "KVM_X86_SEV_ES_VM", "KVM_X86_SNP_VM")
    assert named(Cap.VM_TYPES, 1 << 28 | 1).text() == "KVM_X86_DEFAULT_VM|0x10000000"  # ChromeOS pKVM's type
    assert named(Cap.VM_TYPES, 0).text() == "0"
    assert decode_mask(Cap.X86_USER_SPACE_MSR, 1) is None  # answers 1: its bits are arguments, not a report
    assert decode_mask(Cap.X86_NOTIFY_VMEXIT, 1) is None
    assert decode_mask(Cap.VM_TYPES, 1, "aarch64") is None  # x86 VM types mean nothing there
    assert named(Cap.ARM_SUPPORTED_BLOCK_SIZES, 1 << 12 | 1 << 21 | 1 << 30, "aarch64").names == (
        "BLOCK_4K", "BLOCK_2M", "BLOCK_1G")  # fmt: skip
    assert named(Cap.MEMORY_ATTRIBUTES, 8, "riscv64").names == ("KVM_MEMORY_ATTRIBUTE_PRIVATE",)
    tdx = vm_type(5)
    assert tdx is not None and (tdx.usable_since, tdx.since) == ("6.16", "6.14")


def test_collisions_name_mainline_from_the_tables() -> None:
    for entry in COLLISIONS:
        if entry.kind == "cap" and entry.number < 250:
            assert entry.mainline == Cap(entry.number).c_name and entry.mainline_since == Cap(entry.number).since_text
        assert entry.source and (not entry.mainline or entry.mainline not in entry.other)
    assert [c.other for c in collisions("cap", 240, "aarch64")] == ["KVM_CAP_ARM_RME"]
    assert collisions("cap", 240, "x86_64") == ()  # RME is an arm64 series
    tdx_names = {c.other for n in (1, 2) for c in collisions("x86-vm-type", n)}
    assert tdx_names == {"KVM_X86_TDX_VM"}  # TDX was type 1, then 2, before mainline's 5
    assert collisions("x86-vm-type", 5) == ()


def test_dump_shows_bits_by_name_and_warns_on_240_for_arm64_only() -> None:
    arm = render(fake_probe_result({"ARM_EL2": 1, "ARM_SUPPORTED_BLOCK_SIZES": 1 << 12 | 1 << 21}, arch="aarch64"))
    row = arm.splitlines().index(next(line for line in arm.splitlines() if line.startswith("KVM_CAP_ARM_EL2 ")))
    assert "KVM_CAP_ARM_RME" in arm.splitlines()[row + 1] and "Kata" in arm.splitlines()[row + 1]
    assert "    = BLOCK_4K|BLOCK_2M" in arm
    x86 = render(fake_probe_result({"ARM_EL2": 1, "VM_TYPES": 0x1D, "X2APIC_API": 3}), show_all=True)
    assert "KVM_CAP_ARM_RME" not in x86
    assert "  VM types     0x1d = KVM_X86_DEFAULT_VM|KVM_X86_SEV_VM|KVM_X86_SEV_ES_VM|KVM_X86_SNP_VM" in x86
    assert "    ! x86 VM type 2 is KVM_X86_SEV_VM in mainline Linux (since 6.10), but KVM_X86_TDX_VM" in x86
    tdx_type_1 = render(fake_probe_result({"VM_TYPES": 0x3}))  # SW_PROTECTED: what old TDX tools ask for
    assert "    ! x86 VM type 1 is KVM_X86_SW_PROTECTED_VM in mainline Linux (since 6.8), but KVM_X86_TDX_VM" in tdx_type_1
    assert "    = KVM_X2APIC_API_USE_32BIT_IDS|KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK" in x86
    assert "! 244 is KVM_CAP_GUEST_MEMFD_FLAGS in mainline Linux (since 6.18), but KVM_CAP_GUEST_MEMFD_MMAP" in x86


def test_has_names_the_bits_and_warns_on_stderr(tmp_path: Path) -> None:
    import json

    from kvmprobe.snapshot import snapshot_document

    path = tmp_path / "arm.json"
    path.write_text(json.dumps(snapshot_document(fake_probe_result({"ARM_EL2": 1}, arch="aarch64"))))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["has", "240", "--snapshot", str(path)])
    assert code == 0 and out.getvalue() == "KVM_CAP_ARM_EL2: yes (1)\n"
    assert err.getvalue().startswith("kvmprobe: note: 240 is KVM_CAP_ARM_EL2 in mainline Linux (since 6.16), but KVM_CAP_ARM_RME")
    path.write_text(json.dumps(snapshot_document(fake_probe_result({"VM_TYPES": 0x21}))))
    with contextlib.redirect_stdout(out):
        main(["has", "VM_TYPES", "--snapshot", str(path)])
    assert out.getvalue().endswith("KVM_CAP_VM_TYPES: yes (33 = KVM_X86_DEFAULT_VM|KVM_X86_TDX_VM)\n")


def test_exports_carry_vm_types_and_bits_by_name() -> None:
    result = fake_probe_result({"VM_TYPES": 0x11, "X2APIC_API": 1, "X86_USER_SPACE_MSR": 1})
    labels = nfd_features(result, cc_ready={"sev-snp": True, "tdx": False}).splitlines()[1:]
    assert "kvmprobe.io/kvm.vm-type.default=true" in labels and "kvmprobe.io/kvm.vm-type.snp=true" in labels
    assert not any("vm-type.sev=" in label or "vm-type.tdx" in label for label in labels)
    assert "kvmprobe.io/kvm.cap.x2apic_api.api_use_32bit_ids=true" in labels
    assert not any(label.startswith("kvmprobe.io/kvm.cap.x86_user_space_msr.") for label in labels)  # not a mask
    assert "kvmprobe.io/cc.sev-snp.ready=true" in labels and "kvmprobe.io/cc.tdx.ready=false" in labels
    text = prometheus_text(result, cc_ready={"tdx": False}, cc_blocking={"tdx": "module"})
    assert 'kvm_vm_type{type="KVM_X86_SNP_VM",number="4"} 1' in text
    assert 'kvm_vm_type{type="KVM_X86_SEV_VM",number="2"} 0' in text
    assert 'kvm_capability_bit{name="KVM_CAP_X2APIC_API",bit="KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK"} 0' in text
    assert 'kvm_confidential_blocked{kind="tdx",layer="module"} 1' in text
    assert "kvm_vm_type" not in prometheus_text(fake_probe_result({"VM_TYPES": 1}, arch="aarch64"))
