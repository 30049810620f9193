"""The third state, "cannot tell", and the KVM backend fact, on made-up hosts (no /dev/kvm)."""

from __future__ import annotations

import dataclasses

from kvmprobe import Cap, ProbeResult, probe
from kvmprobe.diff import diff_hosts
from kvmprobe.emulate import _trace, policy_for
from kvmprobe.export import VerdictState, nfd_features, prometheus_text
from kvmprobe.presets import load_preset
from kvmprobe.profiles import check_document, check_state, check_vmm
from kvmprobe._supervisor import Tally
from kvmprobe.testing import FakeBackend, fake_probe_result


def every_cap_but(*cut: str) -> ProbeResult:
    return fake_probe_result({c: 1 for c in Cap}, not_recorded=list(cut))


def test_three_states_by_hand() -> None:
    cut = every_cap_but("USER_MEMORY")
    assert check_vmm("qemu", cut).state == "unknown"
    assert check_vmm("qemu", fake_probe_result({c: 1 for c in Cap})).state == "ready"
    # Recorded and absent beats not recorded: USER_MEMORY unknown, IRQCHIP known absent -> not ready.
    both = fake_probe_result({c: 1 for c in Cap if c is not Cap.IRQCHIP}, not_recorded=["USER_MEMORY"])
    assert check_vmm("qemu", both).state == "not-ready"
    # A problem (a wrong API version) says no whatever is not recorded.
    odd = fake_probe_result({c: 1 for c in Cap}, not_recorded=["USER_MEMORY"], api_version=11)
    assert check_vmm("qemu", odd).state == "not-ready"
    # Only an optional capability unrecorded: still ready.
    assert check_vmm("qemu", every_cap_but("NESTED_STATE")).state == "ready"


def test_document_and_state_of_a_whole_check() -> None:
    cut = every_cap_but("USER_MEMORY")
    unknown, told = check_vmm("qemu", cut), check_vmm("qemu", fake_probe_result({}))
    assert check_state([unknown]) == "unknown" and check_state([unknown, told]) == "not-ready"
    doc = check_document(cut, [unknown], strict=True)
    assert (doc["ready"], doc["state"], doc["strict"], doc["schema_version"]) == (None, "unknown", True, 2)
    assert check_state([], installed=[]) == "not-ready"  # --installed that found nothing


def test_strict_counts_conditions_in_the_document() -> None:
    pvm = load_preset("pvm-6.18")
    verdict = check_vmm("firecracker", pvm)
    assert verdict.state == "ready" and verdict.conditions
    assert check_document(pvm, [verdict])["ready"] is True
    strict = check_document(pvm, [verdict], strict=True)
    assert (strict["ready"], strict["state"]) == (False, "not-ready")


def test_a_fake_backend_result_is_not_judged_with_this_machines_module() -> None:
    fake = probe("/dev/kvm", backend=FakeBackend({c: 1 for c in Cap}), refresh=True)
    assert fake.source == "live" and fake.kvm_backend is None and fake.real_backend is False
    for name in ("qemu", "firecracker", "gvisor-kvm"):
        verdict = check_vmm(name, fake)
        assert verdict.kvm_backend is None and not verdict.conditions and not verdict.blocked_by
    # The recorded facts say it for a recorded host; without them nothing does.
    pvm = load_preset("pvm-6.18")
    assert pvm.kvm_backend == "kvm_pvm" and check_vmm("gvisor-kvm", pvm).blocked_by
    assert dataclasses.replace(pvm, host=None).kvm_backend is None


def test_export_writes_unknown_and_conditions_and_never_ready_false_for_unknown() -> None:
    cut = every_cap_but("USER_MEMORY")
    pvm = load_preset("pvm-6.18")
    states = {"qemu": check_vmm("qemu", cut), "firecracker": check_vmm("firecracker", pvm),
              "crosvm": check_vmm("crosvm", fake_probe_result({}))}
    assert {k: VerdictState.of(v) for k, v in states.items()} == {
        "qemu": VerdictState("unknown"), "firecracker": VerdictState("ready", "kvm_pvm"),
        "crosvm": VerdictState("not-ready")}
    text = nfd_features(pvm, vmm_ready=states, caps="none", cpu="none", prefix="k.example.com")
    labels = [line.split("/", 1)[1] for line in text.splitlines() if not line.startswith("#")]
    assert [label for label in labels if label.startswith("vmm.")] == [
        "vmm.crosvm.ready=false", "vmm.firecracker.ready=true", "vmm.firecracker.condition=kvm_pvm",
        "vmm.qemu.unknown=true"]
    metrics = [line for line in prometheus_text(pvm, vmm_ready=states, caps="none", cpu="none").splitlines()
               if line.startswith("kvm_vmm")]
    assert metrics == ['kvm_vmm_ready{vmm="crosvm"} 0', 'kvm_vmm_ready{vmm="firecracker"} 1',
                       'kvm_vmm_unknown{vmm="qemu"} 1', 'kvm_vmm_condition{vmm="firecracker",backend="kvm_pvm"} 1']
    cc = prometheus_text(pvm, cc_ready={"sev-snp": None, "tdx": False}, caps="none", cpu="none")
    assert 'kvm_confidential_unknown{kind="sev-snp"} 1' in cc and 'kvm_confidential_ready{kind="sev-snp"}' not in cc


def test_diff_notes_a_device_one_recording_lacks() -> None:
    pvm = load_preset("pvm-6.18")
    assert pvm.host is not None
    devices = dict(pvm.host.devices)
    lacking = dataclasses.replace(pvm, host=dataclasses.replace(pvm.host, devices={k: v for k, v in devices.items()
                                                                                    if k != "/dev/vhost-net"}))
    result = diff_hosts(lacking, pvm)
    assert result.equal, [f.describe() for f in result.facts]
    assert "host.devices./dev/vhost-net: only B recorded it; not compared" in result.notes
    # A module loaded on one host only is a fact that differs (absence is the fact there).
    modules = dict(pvm.host.kvm_modules)
    modules.pop("kvm_pvm")
    other = dataclasses.replace(pvm, host=dataclasses.replace(pvm.host, kvm_modules=modules))
    assert any(f.key == "host.kvm_modules.kvm_pvm" for f in diff_hosts(pvm, other).facts)


def test_diff_verdict_unknown_is_not_a_change() -> None:
    full = fake_probe_result({c: 1 for c in Cap})
    cut = every_cap_but("USER_MEMORY")
    result = diff_hosts(cut, full)
    assert not result.verdicts and any("QEMU: cannot tell on A" in n for n in result.notes)
    none = fake_probe_result({})
    told = diff_hosts(none, full)
    assert any(v.vmm == "qemu" for v in told.verdicts)


def test_emulate_says_why_it_answered_0() -> None:
    host = fake_probe_result({"HLT": 1}, not_recorded=["USER_MEMORY"])
    policy = policy_for(host, ["IOEVENTFD"], exact=True)
    tally = Tally()
    for cap in (Cap.HLT, Cap.USER_MEMORY, Cap.IOEVENTFD, Cap.IMMEDIATE_EXIT):
        tally.add(int(cap), "system", policy.answer("system", int(cap)))
    trace = _trace(tally, policy, "supervisor", "test", [Cap.IOEVENTFD], host)
    how = {e.name: (e.how, e.masked) for e in trace.entries}
    assert how == {"KVM_CAP_HLT": ("recorded", False), "KVM_CAP_USER_MEMORY": ("not recorded", False),
                   "KVM_CAP_IOEVENTFD": ("masked", True), "KVM_CAP_IMMEDIATE_EXIT": ("absent on that host", False)}
    assert trace.render().splitlines()[-1].startswith(
        "4 capabilities asked in 4 calls (1 masked, 1 absent on that host, 1 not recorded)")
