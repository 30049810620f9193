""""Cannot tell" is not "no": every command on a real snapshot of this machine with rows cut out.

The snapshot is recorded here at run time (``python -m kvmprobe snapshot``), then the rows of five
capabilities every profile or the confidential check needs are removed (the file the review
called partial.json). Each command must say UNKNOWN / not recorded for what depends on them,
never NOT READY, blocked, masked or a change; the full recording is the control.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.kvm

# The rows cut out (as in cli-review.md): every built-in profile needs USER_MEMORY; VM_TYPES
# decides the confidential kinds; the others are optional or conditional for some VMM.
CUT = ("KVM_CAP_USER_MEMORY", "KVM_CAP_IMMEDIATE_EXIT", "KVM_CAP_VM_TYPES", "KVM_CAP_NESTED_STATE", "KVM_CAP_HYPERV")


def kvmprobe(*args: str, cwd: Path) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "kvmprobe", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding full.json (this machine, recorded now) and partial.json (rows cut)."""
    if not os.path.exists("/dev/kvm"):
        pytest.skip("no /dev/kvm here")
    where = tmp_path_factory.mktemp("cannot-tell")
    done = kvmprobe("snapshot", "-o", "full.json", cwd=where)
    assert done.returncode == 0, done.stderr
    doc = json.loads((where / "full.json").read_text())
    names = {row["name"] for row in doc["capabilities"]}
    assert set(CUT) <= names  # the control has each row
    doc["capabilities"] = [row for row in doc["capabilities"] if row["name"] not in CUT]
    (where / "partial.json").write_text(json.dumps(doc))
    return where


def test_dump_says_unknown_where_the_recording_cannot_tell(recorded: Path) -> None:
    out = kvmprobe("--snapshot", "partial.json", cwd=recorded).stdout
    rows = out[out.index("VMM READINESS"):].split("\n\n")[0].splitlines()[1:]
    # USER_MEMORY is required by every profile: none can be told ready, and none is "NOT READY"
    # for want of it; only a backend that blocks outright (gVisor on kvm_pvm) still says no.
    for row in rows:
        name, state = row.split()[:2]
        assert state in ("UNKNOWN", "NOT"), row
        if state == "NOT":
            assert "does not run on" in row, row
    assert any(row.split()[1] == "UNKNOWN" for row in rows)


def test_check_says_unknown_exits_1_and_json_says_null(recorded: Path) -> None:
    done = kvmprobe("check", "qemu", "--snapshot", "partial.json", cwd=recorded)
    assert done.returncode == 1
    assert "]: UNKNOWN" in done.stdout and "NOT READY" not in done.stdout
    assert "missing (required)" not in done.stdout  # an unrecorded capability is not "missing"
    assert "not recorded (required): KVM_CAP_USER_MEMORY" in done.stdout
    hyperv = [line for line in done.stdout.splitlines() if "KVM_CAP_HYPERV (44" in line]
    assert hyperv and all(line.lstrip().startswith("not recorded, only needed for") for line in hyperv)
    doc = json.loads(kvmprobe("check", "qemu", "--snapshot", "partial.json", "--json", cwd=recorded).stdout)
    assert (doc["ready"], doc["state"], doc["strict"]) == (None, "unknown", False)
    assert (doc["vmms"][0]["ready"], doc["vmms"][0]["state"]) == (None, "unknown")
    # The control: the full recording of the same machine is told (ready or not, never unknown).
    full = json.loads(kvmprobe("check", "qemu", "--snapshot", "full.json", "--json", cwd=recorded).stdout)
    assert full["state"] in ("ready", "not-ready") and full["ready"] is (full["state"] == "ready")


def test_strict_is_in_the_json_not_only_in_the_exit_code(recorded: Path) -> None:
    plain = kvmprobe("check", "qemu", "--snapshot", "full.json", "--json", cwd=recorded)
    strict = kvmprobe("check", "qemu", "--snapshot", "full.json", "--json", "--strict", cwd=recorded)
    doc, strict_doc = json.loads(plain.stdout), json.loads(strict.stdout)
    assert strict_doc["strict"] is True
    conditional = bool(doc["vmms"][0]["conditions"])
    # Whatever this machine's backend: the document's verdict and the exit code agree.
    for done, document in ((plain, doc), (strict, strict_doc)):
        assert (done.returncode == 0) is (document["ready"] is True)
    if conditional and doc["ready"]:
        assert strict_doc["ready"] is False and strict.returncode == 1


def test_confidential_kind_is_unknown_at_the_kvm_layer_not_blocked(recorded: Path) -> None:
    doc = json.loads(kvmprobe("check", "sev-snp", "--snapshot", "partial.json", "--json", cwd=recorded).stdout)
    (verdict,) = doc["confidential"]
    kvm = next(layer for layer in verdict["layers"] if layer["id"] == "kvm")
    assert kvm["status"] == "unknown" and "not recorded" in kvm["summary"]
    assert verdict["blocking"] != "kvm"
    # Only a lower or upper layer that says no may make it not ready; otherwise it cannot be told.
    assert verdict["state"] == ("not-ready" if verdict["blocking"] else "unknown")
    text = kvmprobe("doctor", "--snapshot", "partial.json", cwd=recorded).stdout
    assert "KVM_CAP_VM_TYPES not recorded" in text and "no KVM_CAP_VM_TYPES" not in text
    assert "blocked at the KVM layer" not in text


def test_diff_puts_what_one_recording_lacks_under_not_compared(recorded: Path) -> None:
    done = kvmprobe("diff", "partial.json", "full.json", cwd=recorded)
    assert done.returncode == 0, done.stdout  # nothing differs: the cut rows are not compared
    assert "VMM verdicts changed" not in done.stdout and "NOT READY -> ready" not in done.stdout
    notes = done.stdout[done.stdout.index("not compared:"):]
    assert "5 capabilities not recorded on A" in notes and "cannot tell on A" in notes


def samples_of(text: str) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip


def test_export_never_writes_unknown_as_not_ready(recorded: Path) -> None:
    checked = json.loads(kvmprobe("check", "--all", "--snapshot", "partial.json", "--json", cwd=recorded).stdout)
    states = {v["vmm"]: v["state"] for v in checked["vmms"]}
    assert "unknown" in states.values()
    nfd = kvmprobe("export", "--format", "nfd", "--snapshot", "partial.json", cwd=recorded)
    assert nfd.returncode == 0
    labels = dict(line.split("/", 1)[1].split("=", 1) for line in nfd.stdout.splitlines() if not line.startswith("#"))
    prom = samples_of(kvmprobe("export", "--format", "prometheus", "--snapshot", "partial.json", cwd=recorded).stdout)
    for vmm, state in states.items():
        if state == "unknown":
            assert f"vmm.{vmm}.ready" not in labels and labels[f"vmm.{vmm}.unknown"] == "true"
            assert ("kvm_vmm_ready", (("vmm", vmm),)) not in prom
            assert prom[("kvm_vmm_unknown", (("vmm", vmm),))] == 1
        else:
            assert labels[f"vmm.{vmm}.ready"] == ("true" if state == "ready" else "false")


def test_export_carries_the_condition_check_names(recorded: Path) -> None:
    checked = json.loads(kvmprobe("check", "--all", "--snapshot", "full.json", "--json", cwd=recorded).stdout)
    conditional: List[Tuple[str, str]] = [(v["vmm"], v["kvm_backend"]) for v in checked["vmms"]
                                          if v["state"] == "ready" and v["conditions"]]  # fmt: skip
    nfd = kvmprobe("export", "--format", "nfd", "--snapshot", "full.json", cwd=recorded).stdout
    labels = dict(line.split("/", 1)[1].split("=", 1) for line in nfd.splitlines() if not line.startswith("#"))
    prom = samples_of(kvmprobe("export", "--format", "prometheus", "--snapshot", "full.json", cwd=recorded).stdout)
    told = {vmm for vmm, _ in conditional}
    for vmm, backend in conditional:
        assert labels[f"vmm.{vmm}.ready"] == "true" and labels[f"vmm.{vmm}.condition"] == backend
        assert prom[("kvm_vmm_condition", (("backend", backend), ("vmm", vmm)))] == 1
    assert {key.split(".")[1] for key in labels if key.endswith(".condition")} == told
    # And the backend named is the module sysfs lists here, read without kvmprobe.
    modules = set(os.listdir("/sys/module"))
    assert all(backend in modules for _, backend in conditional)


def test_emulate_reports_unrecorded_capabilities_as_not_recorded(recorded: Path) -> None:
    code = ("import fcntl, os\nfd = os.open('/dev/kvm', os.O_RDWR | os.O_CLOEXEC)\n"
            "for n in (1, 3, 136): fcntl.ioctl(fd, 0xAE03, n)\n")  # HLT, USER_MEMORY, IMMEDIATE_EXIT
    done = kvmprobe("emulate", "--host", "partial.json", "--trace=trace.json", "--", sys.executable, "-c", code,
                    cwd=recorded)  # fmt: skip
    assert done.returncode == 0, done.stderr
    calls = {c["name"]: c for c in json.loads((recorded / "trace.json").read_text())["calls"]}
    for name in ("KVM_CAP_USER_MEMORY", "KVM_CAP_IMMEDIATE_EXIT"):
        assert (calls[name]["how"], calls[name]["masked"], calls[name]["answers"]) == ("not recorded", False, [0])
    assert calls["KVM_CAP_HLT"]["how"] in ("recorded", "absent on that host")
    assert "not recorded for the emulated host" in done.stderr


def test_a_live_probe_carries_the_kvm_module_sysfs_lists() -> None:
    from kvmprobe import probe
    from kvmprobe.profiles import check_vmm

    if not os.path.exists("/dev/kvm"):
        pytest.skip("no /dev/kvm here")
    # Read here without kvmprobe: the x86 vendor modules that register /dev/kvm.
    loaded = {name for name in os.listdir("/sys/module") if name in ("kvm_intel", "kvm_amd", "kvm_pvm")}
    result = probe(refresh=True)
    if not loaded:
        pytest.skip("no x86 KVM vendor module loaded here (another architecture)")
    assert result.real_backend and result.kvm_backend in loaded
    if len(loaded) == 1:
        assert result.kvm_backend == loaded.pop()
    # Verdicts read it from the result: the same backend, and no other read.
    assert check_vmm("qemu", result).kvm_backend == result.kvm_backend
