"""kvmprobe.diagnosis (diagnose()) on fake hosts (FakeHost trees) and fake kernels (FakeBackend).

Each fake host of the issue gets its verdict and the remedy text a user would need. The rule
under test throughout: the verdict comes from the kernel's answers; flags, modules and
parameters only explain.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import pathlib
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from kvmprobe import Cap, HostFacts, read_host_facts
from kvmprobe.caps import CapLike
from kvmprobe.diagnosis import CHECK_IDS, DECISIVE, Check, Diagnosis, Status, Verdict, diagnose
from kvmprobe.testing import KVM_GID, FakeBackend, FakeHost, fake_probe_result

WORKING: Dict[CapLike, int] = {Cap.IMMEDIATE_EXIT: 1}


@pytest.fixture
def root(tmp_path: pathlib.Path) -> Iterator[str]:
    yield str(tmp_path)


def run(host: FakeHost, root: str, backend: Optional[FakeBackend] = None, *, device: Optional[str] = None,
        create_vm: bool = True) -> Diagnosis:  # fmt: skip
    fake = backend if backend is not None else FakeBackend(WORKING)
    report = diagnose(root=host.write(root), backend=fake, device=device, create_vm=create_vm)
    assert fake.open_fds == [], "diagnose left a fake fd open"
    return report


def statuses(report: Diagnosis) -> List[Tuple[str, str]]:
    return [(c.id, c.status.value) for c in report.checks]


# --- the hosts of the issue -------------------------------------------------------------------


def test_centos7_story(root: str) -> None:
    # DEVELOPERS.md: Cloud Hypervisor panicked; the operator suspected nested=N; the real cause
    # is that 3.10 lacks KVM_CAP_IMMEDIATE_EXIT. The kernel answers 0 for it here.
    report = run(FakeHost.centos7(), root, FakeBackend({}))
    assert report.verdict is Verdict.USABLE_WITH_WARNINGS and report.usable
    kernel = report.check("kernel")
    assert kernel.status is Status.WARN
    assert "3.10.0-1160.el7.x86_64" in kernel.summary and "KVM_CAP_IMMEDIATE_EXIT" in kernel.summary
    assert "Cloud Hypervisor" in kernel.summary and "4.11" in kernel.summary
    assert kernel.remedy.startswith("upgrade to Linux 4.11 or newer")
    nested = report.check("nested")
    assert nested.status is Status.INFO
    assert "kvm_intel.nested=N (off)" in nested.summary
    assert "does not affect VMMs running on this host" in nested.summary
    assert "'modprobe kvm_intel nested=1' then does nothing" in nested.remedy
    assert "sudo modprobe -r kvm_intel && sudo modprobe kvm_intel nested=1" in nested.remedy
    assert "'options kvm_intel nested=1' in /etc/modprobe.d/kvm.conf" in nested.remedy
    assert report.check("cpu-flags").summary == "vmx (Intel VT-x), ept, vpid"
    assert report.check("hypervisor").summary == "no hypervisor flag: bare metal"
    vsock = report.check("vhost-vsock")
    assert vsock.status is Status.WARN and vsock.remedy == "sudo modprobe vhost_vsock"
    assert {c.id for c in report.warnings} == {"kernel", "vhost-vsock"}


def test_centos7_with_a_backported_capability_passes(root: str) -> None:
    # A vendor kernel may backport; the device's answer wins over the release number.
    report = run(FakeHost.centos7(), root, FakeBackend({Cap.IMMEDIATE_EXIT: 1}))
    assert report.check("kernel").status is Status.PASS


def test_no_kvm_module(root: str) -> None:
    report = run(FakeHost.no_kvm_module(), root, FakeBackend(open_errno=errno.ENOENT))
    assert report.verdict is Verdict.NOT_USABLE and not report.usable
    access = report.check("device-access")
    assert access.status is Status.FAIL and access.summary == "/dev/kvm does not exist"
    assert access.remedy.startswith("sudo modprobe kvm_intel")
    assert "disabled by bios" in access.remedy
    assert report.check("kvm-module").status is Status.FAIL
    assert report.check("kvm-module").summary == "no KVM module in /sys/module"
    assert report.check("device-node").status is Status.FAIL
    assert report.check("api-version").status is Status.SKIP
    assert report.check("create-vm").status is Status.SKIP
    assert report.summary == "KVM not usable: /dev/kvm does not exist"


def test_user_outside_kvm_group(root: str) -> None:
    report = run(FakeHost.outside_kvm_group(), root, FakeBackend(open_errno=errno.EACCES))
    assert report.verdict is Verdict.NOT_USABLE
    access = report.check("device-access")
    assert access.status is Status.FAIL and access.decisive
    assert access.summary == (
        "/dev/kvm: permission denied for bob (uid 1001) (crw-rw---- 10:232 root:kvm); bob is not in group 'kvm'"
    )
    assert access.remedy == "sudo usermod -aG kvm $USER, then log out and in again"


def test_user_added_to_group_but_not_logged_in_again(root: str) -> None:
    host = FakeHost.outside_kvm_group()
    host = dataclasses.replace(host, group_db=tuple(
        (name, gid, members + ("bob",)) if name == "kvm" else (name, gid, members) for name, gid, members in host.group_db
    ))  # fmt: skip
    access = run(host, root, FakeBackend(open_errno=errno.EACCES)).check("device-access")
    assert "bob is in group 'kvm' in /etc/group, but not in this session's groups" in access.summary
    assert access.remedy == "log out and in again (or run 'newgrp kvm') so the group takes effect"


def test_user_in_group_yet_denied_points_at_policy(root: str) -> None:
    host = dataclasses.replace(FakeHost.outside_kvm_group(), groups=(1001, KVM_GID))
    access = run(host, root, FakeBackend(open_errno=errno.EACCES)).check("device-access")
    assert "this process is in group 'kvm'" in access.summary
    assert "getfacl /dev/kvm" in access.remedy and "--device /dev/kvm" in access.remedy


def test_device_group_without_name(root: str) -> None:
    host = FakeHost.outside_kvm_group().with_node("/dev/kvm", FakeHost.char(10, 232, 0o660, 0, 4242))
    access = run(host, root, FakeBackend(open_errno=errno.EACCES)).check("device-access")
    assert "gid 4242" in access.summary and "sudo groupadd -g 4242 kvm" in access.remedy


def test_amd_nested0(root: str) -> None:
    report = run(FakeHost.amd_nested0(), root)
    assert report.verdict is Verdict.USABLE
    nested = report.check("nested")
    assert nested.status is Status.INFO and nested.summary.startswith("kvm_amd.nested=0 (off)")
    assert "sudo modprobe -r kvm_amd && sudo modprobe kvm_amd nested=1" in nested.remedy
    assert "'options kvm_amd nested=1' in /etc/modprobe.d/kvm.conf" in nested.remedy
    assert report.check("cpu-flags").summary == "svm (AMD-V), npt"
    assert report.check("kvm-module").summary == "kvm_amd loaded"


def test_pvm_host_flags_never_overrule_a_working_device(root: str) -> None:
    report = run(FakeHost.pvm(), root)
    assert report.usable and report.verdict is Verdict.USABLE_WITH_WARNINGS
    assert all(c.status is not Status.FAIL for c in report.checks)
    assert all(report.check(name).status is Status.PASS for name in DECISIVE if name != "run")
    # A fake host runs no guest: the run check says so, and is never a PASS.
    assert report.check("run").status is Status.SKIP and report.check("run").summary.startswith("not run")
    assert report.check("kvm-module").summary.startswith("kvm_pvm loaded")
    cpu = report.check("cpu-flags")
    assert cpu.status is Status.INFO and cpu.summary == "neither vmx nor svm, and KVM works: kvm_pvm needs neither"
    hyper = report.check("hypervisor")
    assert hyper.status is Status.INFO and "hypervisor flag" in hyper.summary and "kvm_pvm" in hyper.summary
    assert report.check("nested").summary == "kvm_pvm has no 'nested' parameter"
    assert report.check("firmware-vt").status is Status.INFO
    assert {c.id for c in report.warnings} == {"vhost-net", "vhost-vsock"}
    assert report.check("vhost-net").remedy.startswith("pass it into the container: '--device /dev/vhost-net'")
    assert "(kvm_pvm)" in report.summary


def test_pvm_host_as_nobody(root: str) -> None:
    # 0600 root:root and no kvm group: a group must be created and given to the node first.
    # (Outside a container; in one, the fix is on the host: tests/unit/test_doctor_access.py.)
    host = dataclasses.replace(FakeHost.pvm(), uid=65534, gid=65534, groups=(65534,), container=None)
    access = run(host, root, FakeBackend(open_errno=errno.EACCES)).check("device-access")
    assert access.summary == (
        "/dev/kvm: permission denied for nobody (uid 65534) (crw------- 10:232 root:root); "
        "only its owner may open it (mode 0600)"
    )
    assert access.remedy.startswith("there is no 'kvm' group here: 'sudo groupadd --system kvm', then ")
    assert 'KERNEL=="kvm", GROUP="kvm", MODE="0660"' in access.remedy
    assert "sudo usermod -aG kvm $USER" in access.remedy


def test_root_only_node_with_a_kvm_group(root: str) -> None:
    host = FakeHost.outside_kvm_group().with_node("/dev/kvm", FakeHost.char(10, 232, 0o600, 0, 0))
    access = run(host, root, FakeBackend(open_errno=errno.EACCES)).check("device-access")
    assert "groupadd" not in access.remedy and access.remedy.startswith("give /dev/kvm to group kvm with a udev rule")


def test_container_without_dev_kvm(root: str) -> None:
    report = run(FakeHost.container_no_kvm(), root, FakeBackend(open_errno=errno.ENOENT))
    assert report.verdict is Verdict.NOT_USABLE
    access = report.check("device-access")
    assert access.remedy.startswith("this process runs in a docker container without /dev/kvm: start it with "
                                    "'--device /dev/kvm'")  # fmt: skip
    assert report.check("kvm-module").status is Status.PASS  # the host has KVM: only the node is missing
    assert report.check("platform").summary == "Linux x86_64 (docker container)"
    assert report.check("tun").remedy == "pass it into the container: '--device /dev/net/tun' (and load tun on the host)"


# --- the kernel's other answers -----------------------------------------------------------------


def test_ebusy_names_another_hypervisor(root: str) -> None:
    report = run(FakeHost(), root, FakeBackend(WORKING, fail={"KVM_CREATE_VM": errno.EBUSY}))
    vm = report.check("create-vm")
    assert report.verdict is Verdict.NOT_USABLE and vm.status is Status.FAIL
    assert "EBUSY" in vm.summary and "VirtualBox" in vm.remedy
    assert report.check("device-access").status is Status.PASS


def test_api_version_other_than_12(root: str) -> None:
    report = run(FakeHost(), root, FakeBackend(WORKING, api_version=11))
    assert report.check("device-access").status is Status.PASS
    api = report.check("api-version")
    assert api.status is Status.FAIL and "API version 11" in api.summary
    assert report.check("create-vm").status is Status.SKIP and report.verdict is Verdict.NOT_USABLE


def test_not_a_kvm_device(root: str) -> None:
    report = run(FakeHost(), root, FakeBackend(fail={"KVM_GET_API_VERSION": errno.ENOTTY}))
    assert report.check("device-access").status is Status.PASS
    assert "is not a KVM device" in report.check("api-version").summary
    assert report.verdict is Verdict.NOT_USABLE


def test_enodev_with_a_node_but_no_module(root: str) -> None:
    host = FakeHost.no_kvm_module().with_node("/dev/kvm", FakeHost.char(10, 232))
    access = run(host, root, FakeBackend(open_errno=errno.ENODEV)).check("device-access")
    assert "no KVM driver behind it" in access.summary and access.remedy.startswith("sudo modprobe kvm_intel")


def test_node_missing_but_kvm_registered(root: str) -> None:
    host = FakeHost().with_node("/dev/kvm", None)
    report = run(host, root, FakeBackend(open_errno=errno.ENOENT))
    assert "sudo mknod /dev/kvm c 10 232" in report.check("device-node").remedy


def test_wrong_node_kind_and_number(root: str, tmp_path: pathlib.Path) -> None:
    host = FakeHost().with_node("/dev/kvm", FakeHost.char(10, 233))
    node = run(host, root, FakeBackend(open_errno=errno.ENXIO)).check("device-node")
    assert node.status is Status.FAIL and "KVM's device number is 10:232" in node.summary
    # The same oddity next to a working device is only a warning: explanations never overrule.
    again = run(host, str(tmp_path / "again")).check("device-node")
    assert again.status is Status.WARN


def test_guest_without_nested(root: str) -> None:
    host = dataclasses.replace(FakeHost.no_kvm_module(), cpu_flags=("fpu", "hypervisor"))
    report = run(host, root, FakeBackend(open_errno=errno.ENOENT))
    hyper = report.check("hypervisor")
    assert hyper.status is Status.FAIL and "nested virtualization" in hyper.summary
    assert "enable nested virtualization on the host that runs it" in hyper.remedy and "kvm_pvm" in hyper.remedy
    assert report.check("cpu-flags").status is Status.FAIL


def test_bare_metal_without_vt(root: str) -> None:
    host = dataclasses.replace(FakeHost.no_kvm_module(), cpu_flags=("fpu", "lm"))
    access = run(host, root, FakeBackend(open_errno=errno.ENOENT)).check("device-access")
    assert "enable Intel VT-x or AMD-V" in access.remedy


def test_kernel_without_loadable_modules(root: str) -> None:
    host = dataclasses.replace(FakeHost.no_kvm_module(), proc_modules=False)
    access = run(host, root, FakeBackend(open_errno=errno.ENOENT)).check("device-access")
    assert "CONFIG_KVM_INTEL=y" in access.remedy and "modprobe" not in access.remedy
    nested = run(dataclasses.replace(FakeHost.centos7(), proc_modules=False), root + "2").check("nested")
    assert "'kvm-intel.nested=1' to the kernel command line" in nested.remedy


def test_arm64_built_in(root: str) -> None:
    host = FakeHost(machine="aarch64", cpu_vendor=None, cpu_flags=("fp", "asimd"), modules={"kvm": {}})
    report = run(host, root)
    assert report.check("kvm-module").summary == "KVM built into the aarch64 kernel (/sys/module/kvm)"
    assert report.check("nested").summary.startswith("arm64 chooses nested virtualization at boot")
    assert report.check("cpu-flags").status is Status.INFO
    assert report.verdict is Verdict.USABLE


def test_create_vm_can_be_left_out(root: str) -> None:
    backend = FakeBackend(WORKING)
    report = run(FakeHost(), root, backend, create_vm=False)
    assert report.check("create-vm").status is Status.SKIP and report.verdict is Verdict.USABLE
    assert ("KVM_CREATE_VM", 0) not in backend.calls


def test_live_diagnosis_creates_and_closes_a_vm(root: str) -> None:
    backend = FakeBackend(WORKING)
    report = run(FakeHost(), root, backend)
    assert report.check("create-vm").status is Status.PASS
    assert ("KVM_CREATE_VM", 0) in backend.calls and backend.open_fds == []


# --- the root-only firmware check -------------------------------------------------------------------


def test_firmware_disabled_vt(root: str) -> None:
    host = dataclasses.replace(FakeHost.no_kvm_module(), msr=(0x3A, 0b001))  # locked, VMXON off
    check = run(host, root, FakeBackend(open_errno=errno.ENOENT)).check("firmware-vt")
    assert check.status is Status.FAIL and "disabled by the firmware" in check.summary
    assert check.remedy.startswith("enable Intel Virtualization Technology (VT-x) in the firmware setup")


def test_firmware_enabled(root: str) -> None:
    check = run(dataclasses.replace(FakeHost(), msr=(0x3A, 0b101)), root).check("firmware-vt")
    assert check.status is Status.PASS and "0x5" in check.summary


def test_amd_svm_disabled(root: str) -> None:
    host = dataclasses.replace(FakeHost.amd_nested0(), msr=(0xC0010114, 1 << 4))
    check = run(host, root, FakeBackend(open_errno=errno.ENOENT)).check("firmware-vt")
    assert check.status is Status.FAIL and check.remedy.startswith("enable SVM mode (AMD-V)")


def test_firmware_unreadable_is_skip_not_a_guess(root: str) -> None:
    check = run(FakeHost(), root).check("firmware-vt")
    assert check.status is Status.SKIP and "needs root" in check.summary and "ENOENT" in check.summary


def test_firmware_contradiction_does_not_overrule(root: str) -> None:
    report = run(dataclasses.replace(FakeHost(), msr=(0x3A, 0b001)), root)
    assert report.check("firmware-vt").status is Status.WARN and report.usable


# --- recorded hosts and given probes ----------------------------------------------------------------


def facts_for(host: FakeHost, root: str) -> HostFacts:
    return read_host_facts(host.write(root))


def test_recorded_host_is_judged_without_touching_a_device(root: str) -> None:
    facts = facts_for(FakeHost.centos7(), root)
    recorded = dataclasses.replace(fake_probe_result({}, kernel=facts.kernel_release, source="snapshot:c7.json"),
                                   host=facts)  # fmt: skip
    report = diagnose(recorded, root="/nonexistent-root", device="/nonexistent")
    assert report.source == "snapshot:c7.json" and report.facts is facts
    assert report.check("device-access").status is Status.PASS
    assert "when the host was recorded" in report.check("device-access").summary
    assert report.check("create-vm").status is Status.SKIP
    assert report.check("kernel").status is Status.WARN
    assert report.verdict is Verdict.USABLE_WITH_WARNINGS


def test_recorded_host_with_vm(root: str) -> None:
    facts = facts_for(FakeHost.amd_nested0(), root)
    recorded = dataclasses.replace(fake_probe_result(WORKING, vm_values=WORKING, source="snapshot"), host=facts)
    report = diagnose(recorded)
    assert report.check("create-vm").status is Status.PASS and report.verdict is Verdict.USABLE


def test_recorded_host_without_facts_skips_what_it_cannot_know() -> None:
    recorded = fake_probe_result({}, kernel="4.4.0", source="preset:linux-4.4 (synthesized)")
    report = diagnose(recorded)
    assert report.check("kvm-module").status is Status.SKIP
    assert report.check("tun").status is Status.SKIP
    assert report.check("kernel").status is Status.WARN  # the recorded answer: IMMEDIATE_EXIT = 0
    assert report.usable


def test_live_probe_result_reads_facts_from_root(root: str) -> None:
    result = fake_probe_result(WORKING)
    report = diagnose(result, root=FakeHost.amd_nested0().write(root))
    assert report.facts.kvm_backend == "kvm_amd"
    assert report.check("device-access").summary == "/dev/kvm opened read-write (the probe given)"
    assert report.check("create-vm").status is Status.SKIP


def test_fake_root_ignores_kvmprobe_device(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KVMPROBE_DEVICE", "/dev/elsewhere")
    backend = FakeBackend(WORKING)
    report = run(FakeHost(), root, backend)
    assert backend.opened == ["/dev/kvm"] and report.device == "/dev/kvm"


def test_custom_device(root: str) -> None:
    host = FakeHost().with_node("/dev/kvm1", FakeHost.char(10, 232))
    backend = FakeBackend(WORKING)
    report = run(host, root, backend, device="/dev/kvm1")
    assert backend.opened == ["/dev/kvm1"] and report.check("device-node").summary.startswith("/dev/kvm1:")


# --- shape ---------------------------------------------------------------------------------------

SCENARIOS: List[Tuple[Callable[[], FakeHost], Dict[str, int]]] = [
    (FakeHost.centos7, {}),
    (FakeHost.no_kvm_module, {"open_errno": errno.ENOENT}),
    (FakeHost.outside_kvm_group, {"open_errno": errno.EACCES}),
    (FakeHost.amd_nested0, {}),
    (FakeHost.pvm, {}),
    (FakeHost.container_no_kvm, {"open_errno": errno.ENOENT}),
]


@pytest.mark.parametrize("preset, faults", SCENARIOS, ids=[p.__name__ for p, _ in SCENARIOS])
def test_shape_and_every_problem_has_a_remedy(preset: Callable[[], FakeHost], faults: Dict[str, int],
                                              root: str) -> None:  # fmt: skip
    report = run(preset(), root, FakeBackend(WORKING, open_errno=faults.get("open_errno")))
    # Every check but capability-queries, which appears only when a query failed.
    assert tuple(c.id for c in report.checks) == tuple(i for i in CHECK_IDS if i != "capability-queries")
    assert [c.id for c in report.checks if c.decisive] == list(DECISIVE)
    for check in report.checks:
        if check.status in (Status.WARN, Status.FAIL):
            assert check.remedy, f"{check.id} says {check.status.value} without a remedy"
        assert "\n" not in check.summary + check.remedy
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["verdict"] == report.verdict.value and doc["usable"] == report.usable
    assert [c["id"] for c in doc["checks"]] == [c.id for c in report.checks]
    assert {c["status"] for c in doc["checks"]} <= {s.value for s in Status}
    assert HostFacts.from_dict(doc["host"]) == report.facts
    assert report.usable == ("open_errno" not in faults)


def test_check_lookup_unknown_id(root: str) -> None:
    with pytest.raises(KeyError):
        run(FakeHost(), root).check("nope")


def test_check_to_dict() -> None:
    assert Check("tun", Status.PASS, "ok").to_dict() == {
        "id": "tun", "status": "PASS", "decisive": False, "summary": "ok", "remedy": None,
    }  # fmt: skip


def test_flags_do_not_take_the_blame_when_a_backend_is_loaded(root: str) -> None:
    # As nobody on the PVM host: the failure is the permission, not the missing vmx/svm.
    host = dataclasses.replace(FakeHost.pvm(), uid=65534, gid=65534, groups=(65534,))
    report = run(host, root, FakeBackend(open_errno=errno.EACCES))
    assert [c.id for c in report.checks if c.status is Status.FAIL] == ["device-access"]
    assert report.check("cpu-flags").summary == "neither vmx nor svm, yet kvm_pvm is loaded: kvm_pvm needs neither"
    assert report.check("hypervisor").summary == "hypervisor flag: a virtual machine without vmx/svm, with kvm_pvm loaded"


def test_synthesized_host_skips_every_fact_check() -> None:
    # A preset made from the capability table carries empty host facts: nothing to explain with.
    empty = HostFacts(system="Linux", machine="x86_64", kernel_release="3.10.0-synthesized")
    result = dataclasses.replace(fake_probe_result({}, kernel="3.10.0-synthesized", source="preset:linux-3.10"),
                                 host=empty)  # fmt: skip
    report = diagnose(result)
    judged = {"platform", "kernel", *DECISIVE}
    assert all(c.status is Status.SKIP for c in report.checks if c.id not in judged)
    # No device was ever opened for it (it said "opened ... when the host was recorded").
    assert report.check("device-access").summary.startswith("no device: a host synthesized from the capability table")
    assert report.summary.startswith("KVM usable, with warnings: no device (synthesized from the capability table)")


def test_nodes_not_looked_at_are_skip_not_missing(root: str) -> None:
    facts = facts_for(FakeHost.amd_nested0(), root)
    partial = dataclasses.replace(facts, devices={"/dev/kvm": facts.devices["/dev/kvm"]})
    report = diagnose(dataclasses.replace(fake_probe_result(WORKING, source="snapshot"), host=partial))
    assert report.check("device-node").status is Status.PASS
    assert report.check("vhost-net").status is Status.SKIP and report.check("tun").status is Status.SKIP
    gone = diagnose(dataclasses.replace(fake_probe_result(WORKING, source="snapshot"),
                                        host=dataclasses.replace(facts, devices={})))  # fmt: skip
    assert gone.check("device-node").status is Status.SKIP


def test_recorded_host_with_another_api_version_is_not_usable() -> None:
    recorded = fake_probe_result(WORKING, vm_values=WORKING, api_version=11, source="snapshot:old.json")
    report = diagnose(recorded)
    api = report.check("api-version")
    assert api.status is Status.FAIL and "API version 11" in api.summary and api.remedy
    assert report.verdict is Verdict.NOT_USABLE


def test_the_doctor_never_tells_to_run_the_doctor() -> None:
    import errno

    from kvmprobe import diagnose
    from kvmprobe.testing import FakeBackend

    for failing in ("KVM_CREATE_VM", "KVM_GET_API_VERSION"):
        for code in (errno.ENOMEM, errno.EIO):
            found = diagnose(backend=FakeBackend({}, fail={failing: code}), run=False)
            for check in found.checks:
                assert "kvmprobe doctor" not in check.remedy, (failing, code, check)
    created = diagnose(backend=FakeBackend({}, fail={"KVM_CREATE_VM": errno.ENOMEM}), run=False)
    assert next(c for c in created.checks if c.id == "create-vm").remedy.startswith("the kernel log")
