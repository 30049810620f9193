"""The features kvmprobe says a guest gets, against QEMU's own view of this host.

QEMU (Debian's qemu-system-x86_64) is started with ``-accel kvm -S`` and asked over QMP for
``query-cpu-model-expansion`` of model ``host`` (type full, ``migratable`` off so nothing is
filtered for migration). QEMU builds that model from KVM_GET_SUPPORTED_CPUID itself; each of
its boolean properties that names a CPUID bit is mapped to the /proc/cpuinfo name here (QEMU
writes '-' or '.' where Linux writes '_', and a few bits have other names) and compared.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from typing import Any, Dict

import pytest

import kvmprobe
from kvmprobe._cpuid_table import FEATURES

pytestmark = [
    pytest.mark.kvm,
    pytest.mark.skipif(platform.machine() != "x86_64", reason="qemu-system-x86_64 on x86_64 only"),
]

QEMU = "qemu-system-x86_64"

# QEMU names for bits whose Linux name differs beyond '-'/'.' -> '_': qemu/qemu v10.2.2
# target/i386/cpu.c feature_word_info, matched by CPUID location against Linux cpufeatures.h
# (written out here, not taken from kvmprobe's alias table).
QEMU_TO_LINUX = {
    "ds": "dts", "tsc-deadline": "tsc_deadline_timer", "cr8legacy": "cr8_legacy", "pause-filter": "pausefilter",
    "avx512vbmi2": "avx512_vbmi2", "avx512vnni": "avx512_vnni", "avx512bitalg": "avx512_bitalg", "sgxlc": "sgx_lc",
    "tsx-ldtrk": "tsxldtrk", "xstore": "rng", "xstore-en": "rng_en", "xcrypt": "ace", "xcrypt-en": "ace_en",
    "sse3": "pni", "pclmuldq": "pclmulqdq", "xd": "nx", "i64": "lm", "ffxsr": "fxsr_opt",
}  # fmt: skip

# Bits QEMU decides itself whatever KVM answers (qemu target/i386/kvm/kvm.c
# kvm_arch_get_supported_cpuid and cpu.c): always added, taken from the host's own CPUID, or
# set and cleared by its topology and machine code. Not KVM's answer, so not compared.
QEMU_DECIDES = {
    "mtrr", "pat", "mce", "mca", "ht", "hypervisor", "arat", "topoext", "overflow_recov", "succor",
    "kvm_hint_dedicated", "tsc_deadline_timer", "erms", "fsrm", "fzrm", "fsrs", "fsrc", "arch_capabilities",
    "kvmclock", "kvmclock2",  # QEMU sets both bits from one property
}  # fmt: skip


def qmp_host_model() -> Dict[str, Any]:
    commands = [
        {"execute": "qmp_capabilities"},
        {"execute": "query-cpu-model-expansion",
         "arguments": {"type": "full", "model": {"name": "host", "props": {"migratable": False}}}},
        {"execute": "quit"},
    ]  # fmt: skip
    done = subprocess.run(
        [QEMU, "-accel", "kvm", "-machine", "q35", "-display", "none", "-nodefaults", "-S", "-qmp", "stdio"],
        input="".join(json.dumps(c) + "\n" for c in commands),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    for line in done.stdout.splitlines():
        reply = json.loads(line)
        model = reply.get("return", {}).get("model") if isinstance(reply.get("return"), dict) else None
        if model is not None:
            props: Dict[str, Any] = model["props"]
            return props
    raise AssertionError(f"QEMU gave no model expansion (exit {done.returncode}): {done.stderr[-500:]}")


def test_the_features_a_guest_gets_agree_with_qemus_host_model() -> None:
    if shutil.which(QEMU) is None:
        pytest.skip(f"{QEMU} is not installed (Debian: apt-get install qemu-system-x86)")
    props = qmp_host_model()
    names = {row.name for row in FEATURES}
    qemu: Dict[str, bool] = {}
    for prop, value in props.items():
        if not isinstance(value, bool):
            continue
        linux = QEMU_TO_LINUX.get(prop, prop.replace("-", "_").replace(".", "_"))
        if linux in names and linux not in QEMU_DECIDES:
            qemu[linux] = value
    info = kvmprobe.cpu(refresh=True)
    assert len(qemu) >= 40, f"only {len(qemu)} QEMU properties map to kvmprobe's names"
    assert sum(qemu.values()) >= 10, "QEMU's host model offers almost nothing: not a real comparison"
    differ = {name: (qemu[name], name in info.features) for name in qemu if qemu[name] != (name in info.features)}
    assert differ == {}, f"(QEMU, kvmprobe) disagree on {differ}"
