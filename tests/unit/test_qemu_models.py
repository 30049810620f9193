"""QEMU's model table (``kvmprobe._qemu_models``), and the ``-cpu`` values a baseline gives.

Three checks of the data, none of them the data against itself:

* the generator (``scripts/build_qemu_models.py``) writes exactly the module from the research
  extraction of QEMU's source, where that extraction is at hand (the research directory of the
  development machine; skipped elsewhere with the reason);
* each QEMU feature name that is also a Linux ``/proc/cpuinfo`` flag sits at the CPUID bit the
  kernel's ``cpufeatures.h`` gives it (``_cpuid_table``, read from another source tree);
* the installed QEMU itself, in ``tests/hardware/test_qemu_models_hw.py``: the model names of
  ``-cpu help`` and each model's features as QMP ``query-cpu-model-expansion`` expands them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List

import pytest

from _fingerprints import FINGERPRINTS, fingerprint_record, name_of
from _packaging import run_script
from kvmprobe import compat
from kvmprobe._cpuid_table import FEATURES, QEMU_NAMES
from kvmprobe._qemu_models import (
    ALWAYS_AVAILABLE,
    FEATURE_BITS,
    KVM_DEFAULT_OFF,
    KVM_DEFAULT_ON,
    MODELS,
    MSR_FEATURE_BITS,
    NAMES_AFTER_7_2,
)
from kvmprobe.testing import fake_cpu_record, fake_probe_result

ROOT = Path(__file__).resolve().parents[2]
RESEARCH = Path(os.environ.get("KVMPROBE_RESEARCH", "/work/research"))


def test_the_module_is_what_the_generator_writes_from_qemus_source(tmp_path: Path) -> None:
    newest, old = RESEARCH / "qemu-cpu-models.json", RESEARCH / "qemu-cpu-models-7.2.json"
    if not newest.exists() or not old.exists():
        pytest.skip(f"the extraction of QEMU's target/i386/cpu.c ({newest.name}) is not here; set KVMPROBE_RESEARCH")
    target = tmp_path / "_qemu_models.py"
    run_script("build_qemu_models.py", str(newest), str(old), "-o", str(target))
    assert target.read_text() == (ROOT / "src" / "kvmprobe" / "_qemu_models.py").read_text()


def test_qemu_names_sit_where_the_kernel_puts_the_same_flag() -> None:
    linux = {row.name: (row.leaf, row.subleaf or 0, row.register, row.bit) for row in FEATURES}
    aliases = {qemu.replace("_", "-"): name for qemu, name in QEMU_NAMES.items()}
    compared = 0
    for name, place in FEATURE_BITS.items():
        flag = aliases.get(name, name.replace("-", "_").replace(".", "_"))
        if flag in linux and name != "kvmclock":  # kvmclock sets bits 0 and 3; the kernel names them apart
            assert place == linux[flag], (name, place, linux[flag])
            compared += 1
    assert compared >= 150


def test_the_table_is_whole() -> None:
    assert len(MODELS) == 99 and sum(1 for m in MODELS if m[6]) == 74
    names = [m[0] for m in MODELS]
    assert len(set(names)) == len(names)
    for name, _alias, vendor, *_, in_7_2, features, msr in MODELS:
        assert vendor in ("GenuineIntel", "AuthenticAMD", "HygonGenuine", "CentaurHauls"), name
        assert set(features.split()) <= set(FEATURE_BITS), name
        assert set(msr.split()) <= set(MSR_FEATURE_BITS), name
        if in_7_2:
            assert not (set(features.split()) | set(msr.split())) & NAMES_AFTER_7_2, name
    assert {"hypervisor", "arat", "topoext"} <= ALWAYS_AVAILABLE <= set(FEATURE_BITS)
    assert KVM_DEFAULT_ON <= set(FEATURE_BITS) and "svm" in KVM_DEFAULT_OFF


def fingerprint_hosts(vendor: str) -> List[Any]:
    return [fake_probe_result({}, source=name_of(p), cpu=fingerprint_record(p)) for p in FINGERPRINTS
            if name_of(p).startswith(vendor)]  # fmt: skip


@pytest.mark.parametrize(("vendor", "model"), [("INTEL", "Cascadelake-Server-v5"), ("AMD", "EPYC-Rome-v3")])
def test_real_cpus_of_three_and_two_generations_get_a_named_model(vendor: str, model: str) -> None:
    base = compat.baseline(fingerprint_hosts(vendor))
    cpu = compat.qemu_cpu(base)
    assert cpu.model == model and cpu.arg.startswith(model + ",+") and cpu.remove == ()
    # What the model has and the baseline lacks would be a '-': a model that runs as it is has none.
    older = compat.qemu_cpu(base, "7.2")
    assert older.model is not None and not set(older.add) & NAMES_AFTER_7_2
    assert any("no name for" in note for note in older.notes)


def test_no_model_of_another_vendor_and_the_host_style_answer() -> None:
    mixed = compat.baseline(fingerprint_hosts("INTEL") + fingerprint_hosts("AMD"))
    cpu = compat.qemu_cpu(mixed)
    assert cpu.model is None and cpu.arg.startswith("host,migratable=on,-")
    assert any("vendors differ" in note for note in cpu.notes)
    # Every feature some host has and another lacks is turned off by name.
    assert {"avx512f", "sse4a"} <= set(cpu.remove)


def test_kvm_default_properties_a_host_lacks_become_removals() -> None:
    no_pv_eoi = fake_cpu_record(["sse2", "sse", "fxsr", "mmx", "x2apic", "kvmclock", "kvm_nopiodelay", "kvm_asyncpf",
                                 "kvm_steal_time", "kvmclock_stable_bit"])  # fmt: skip
    cpu = compat.qemu_cpu(compat.baseline([fake_probe_result({}, cpu=no_pv_eoi)]))
    assert cpu.closest is not None and "-kvm-pv-eoi" in cpu.closest[1].split(",")


def test_the_version_must_be_one_the_table_covers() -> None:
    base = compat.baseline(fingerprint_hosts("AMD"))
    for bad in ("6.2", "latest", ""):
        with pytest.raises(ValueError, match="7.2 to 10.2.2"):
            compat.qemu_cpu(base, bad)
