"""kvmprobe.host: the reader of procfs/sysfs//dev under a root, fed by FakeHost trees."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import stat
from typing import Any, Callable, Dict, Optional

import pytest

from kvmprobe import HostFacts, SnapshotError, read_host_facts
from kvmprobe.host import NODES_FILE, VIRT_FLAGS, DeviceNode, GroupEntry
from kvmprobe.testing import KVM_GID, FakeHost


def facts_of(host: FakeHost, tmp_path: pathlib.Path) -> HostFacts:
    return read_host_facts(host.write(str(tmp_path)))


# --- the preset hosts -----------------------------------------------------------------------


def test_centos7(tmp_path: pathlib.Path) -> None:
    facts = facts_of(FakeHost.centos7(), tmp_path)
    assert (facts.system, facts.machine, facts.kernel_release) == ("Linux", "x86_64", "3.10.0-1160.el7.x86_64")
    assert facts.cpu_vendor == "GenuineIntel"
    assert facts.cpu_flags == {"vmx", "ept", "vpid"}
    assert facts.kvm_backend == "kvm_intel" and facts.nested_enabled is False
    assert facts.kvm_modules["kvm_intel"]["nested"] == "N"
    node = facts.kvm_node
    assert node is not None and node.is_char and node.number == "10:232"
    assert (node.mode, node.owner, node.group) == (0o660, "root", "kvm")
    assert facts.devices["/dev/vhost-vsock"] is None and facts.devices["/dev/vhost-net"] is not None
    assert facts.user_name == "alice" and KVM_GID in facts.groups
    assert facts.proc_modules is True and facts.kvm_misc_dev == "10:232"
    assert not facts.in_vm and facts.container is None


def test_no_kvm_module(tmp_path: pathlib.Path) -> None:
    facts = facts_of(FakeHost.no_kvm_module(), tmp_path)
    assert facts.kvm_modules == {} and facts.kvm_backend is None and facts.nested_enabled is None
    assert facts.kvm_node is None and facts.kvm_misc_dev is None
    assert "vmx" in facts.cpu_flags


def test_outside_kvm_group(tmp_path: pathlib.Path) -> None:
    facts = facts_of(FakeHost.outside_kvm_group(), tmp_path)
    assert facts.uid == 1001 and facts.user_name == "bob" and facts.groups == (1001,)
    kvm = facts.group_named("kvm")
    assert kvm is not None and kvm.gid == KVM_GID and kvm.members == ("alice",)
    assert facts.group(KVM_GID) == kvm


def test_amd_nested0(tmp_path: pathlib.Path) -> None:
    facts = facts_of(FakeHost.amd_nested0(), tmp_path)
    assert facts.cpu_vendor == "AuthenticAMD" and facts.cpu_flags == {"svm", "npt"}
    assert facts.kvm_backend == "kvm_amd" and facts.nested_enabled is False


def test_pvm(tmp_path: pathlib.Path) -> None:
    facts = facts_of(FakeHost.pvm(), tmp_path)
    assert facts.kvm_backend == "kvm_pvm" and facts.nested_enabled is None
    assert facts.cpu_flags == {"hypervisor"} and facts.in_vm
    assert facts.proc_modules is False and facts.container == "docker"
    node = facts.kvm_node
    assert node is not None and node.mode_text == "crw-------" and node.owner_text == "root:root"
    assert facts.group_named("kvm") is None
    assert facts.devices["/dev/vhost-net"] is None and facts.devices["/dev/vhost-vsock"] is None


def test_container_without_kvm(tmp_path: pathlib.Path) -> None:
    facts = facts_of(FakeHost.container_no_kvm(), tmp_path)
    assert facts.container == "docker" and facts.kvm_node is None
    assert facts.kvm_backend == "kvm_intel" and facts.kvm_misc_dev == "10:232"
    assert facts.devices["/dev/net/tun"] is None


# --- parsing details ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [("Y", True), ("y", True), ("1", True), ("N", False), ("n", False), ("0", False), ("maybe", None)],
)
def test_nested_values(raw: str, expected: Optional[bool], tmp_path: pathlib.Path) -> None:
    host = FakeHost(modules={"kvm": {}, "kvm_intel": {"nested": raw}})
    assert facts_of(host, tmp_path).nested_enabled is expected


def test_nested_missing_file_is_none(tmp_path: pathlib.Path) -> None:
    # A cloud kernel can strip the option (kata-containers/runtime#820): unknown, not False.
    assert facts_of(FakeHost(modules={"kvm": {}, "kvm_intel": {"ept": "Y"}}), tmp_path).nested_enabled is None


@pytest.mark.parametrize(
    "machine, modules, backend",
    [
        ("aarch64", {"kvm": {"halt_poll_ns": "0"}}, "built-in"),
        ("riscv64", {"kvm": {}}, "built-in"),
        ("x86_64", {"kvm": {}}, None),
        ("x86_64", {}, None),
        ("x86_64", {"kvm": {}, "kvm_pvm": {}}, "kvm_pvm"),
        ("ppc64le", {"kvm": {}, "kvm_hv": {"nested": "Y"}}, "kvm_hv"),
    ],
)
def test_backend(machine: str, modules: Dict[str, Dict[str, str]], backend: Optional[str],
                 tmp_path: pathlib.Path) -> None:  # fmt: skip
    facts = facts_of(FakeHost(machine=machine, cpu_vendor=None, cpu_flags=(), modules=modules), tmp_path)
    assert facts.kvm_backend == backend


def test_builtin_nested_is_read_from_kvm(tmp_path: pathlib.Path) -> None:
    host = FakeHost(machine="s390x", cpu_vendor=None, cpu_flags=("sie",), modules={"kvm": {"nested": "1"}})
    facts = facts_of(host, tmp_path)
    assert facts.kvm_backend == "built-in" and facts.nested_enabled is True and facts.cpu_flags == {"sie"}


def test_only_virtualization_flags_are_kept(tmp_path: pathlib.Path) -> None:
    every = ("fpu", "vmx", "svm", "hypervisor", "sse2", "ept", "sev_snp", "avx512f")
    facts = facts_of(FakeHost(cpu_flags=every), tmp_path)
    assert facts.cpu_flags == set(every) & VIRT_FLAGS == {"vmx", "svm", "hypervisor", "ept", "sev_snp"}


def test_first_cpu_counts(tmp_path: pathlib.Path) -> None:
    root = tmp_path
    FakeHost().write(str(root))
    (root / "proc/cpuinfo").write_text("processor : 0\nflags : fpu svm\n\nprocessor : 1\nflags : fpu vmx\n")
    assert read_host_facts(str(root)).cpu_flags == {"svm"}


def test_arm64_cpuinfo_has_no_vendor(tmp_path: pathlib.Path) -> None:
    host = FakeHost(machine="aarch64", cpu_vendor=None, cpu_flags=("fp", "asimd"), modules={"kvm": {}})
    facts = facts_of(host, tmp_path)
    assert facts.cpu_vendor is None and facts.cpu_flags == frozenset() and facts.kvm_backend == "built-in"


def test_empty_root_gives_unknowns_not_errors(tmp_path: pathlib.Path) -> None:
    facts = read_host_facts(str(tmp_path))
    assert (facts.system, facts.machine, facts.kernel_release) == ("", "", "")
    assert facts.cpu_vendor is None and facts.kvm_modules == {} and facts.kvm_node is None
    assert facts.uid is None and facts.groups == () and facts.proc_modules is None
    assert all(node is None for node in facts.devices.values())


def test_a_directory_where_a_file_should_be_is_unknown(tmp_path: pathlib.Path) -> None:
    # OSError other than ENOENT (here EISDIR) is mapped in the same one place: the fact is None.
    FakeHost().write(str(tmp_path))
    release = tmp_path / "proc/sys/kernel/osrelease"
    release.unlink()
    release.mkdir()
    (tmp_path / "sys/module/kvm_intel/parameters/nested").unlink()
    (tmp_path / "sys/module/kvm_intel/parameters/nested").mkdir()
    facts = read_host_facts(str(tmp_path))
    assert facts.kernel_release == "" and facts.nested_enabled is None
    assert "nested" not in facts.kvm_modules["kvm_intel"]


def test_regular_file_in_place_of_the_node(tmp_path: pathlib.Path) -> None:
    FakeHost().with_node("/dev/kvm", None).write(str(tmp_path))
    (tmp_path / "dev/kvm").write_text("")
    node = read_host_facts(str(tmp_path)).kvm_node
    assert node is not None and node.kind == "file" and not node.is_char and node.number == ""


def test_custom_device_path(tmp_path: pathlib.Path) -> None:
    host = FakeHost().with_node("/dev/kvm-alt", FakeHost.char(10, 232, 0o666))
    facts = read_host_facts(host.write(str(tmp_path)), device="/dev/kvm-alt")
    assert facts.kvm_device == "/dev/kvm-alt" and facts.kvm_node is not None and facts.kvm_node.mode == 0o666


def test_node_owner_without_a_name(tmp_path: pathlib.Path) -> None:
    facts = facts_of(FakeHost().with_node("/dev/kvm", FakeHost.char(10, 232, 0o660, 0, 4242)), tmp_path)
    node = facts.kvm_node
    assert node is not None and node.group is None and node.owner_text == "root:4242"


def test_group_db_keeps_only_relevant_entries(tmp_path: pathlib.Path) -> None:
    host = dataclasses.replace(
        FakeHost(), group_db=FakeHost().group_db + (("audio", 29, ("alice",)), ("disk", 6, ()))
    )
    names = {entry.name for entry in facts_of(host, tmp_path).group_db}
    # the kvm group, the node owners' groups (root), and the process's groups (alice, kvm)
    assert names == {"root", "kvm", "alice"}


def test_container_markers(tmp_path: pathlib.Path) -> None:
    assert facts_of(FakeHost(container="podman"), tmp_path / "a").container == "podman"
    assert facts_of(FakeHost(container="kubernetes"), tmp_path / "b").container == "kubernetes"


# --- the firmware MSR (root-only) ------------------------------------------------------------


def test_msr_is_read_when_vmx_is_listed(tmp_path: pathlib.Path) -> None:
    # IA32_FEATURE_CONTROL = lock | VMXON outside SMX
    facts = facts_of(FakeHost(msr=(0x3A, 0b101)), tmp_path)
    assert facts.msr_vt == 0b101 and facts.msr_error is None


def test_msr_amd_offset(tmp_path: pathlib.Path) -> None:
    host = dataclasses.replace(FakeHost.amd_nested0(), msr=(0xC0010114, 1 << 4))
    assert facts_of(host, tmp_path).msr_vt == 1 << 4


def test_msr_missing_names_the_errno(tmp_path: pathlib.Path) -> None:
    facts = facts_of(FakeHost(), tmp_path)
    assert facts.msr_vt is None and facts.msr_error == "ENOENT"


def test_msr_not_read_without_vmx_or_svm(tmp_path: pathlib.Path) -> None:
    facts = facts_of(dataclasses.replace(FakeHost.pvm(), msr=(0x3A, 5)), tmp_path)
    assert facts.msr_vt is None and facts.msr_error is None


# --- the nodes file ---------------------------------------------------------------------------


def test_malformed_nodes_file(tmp_path: pathlib.Path) -> None:
    FakeHost().write(str(tmp_path))
    (tmp_path / NODES_FILE).write_text("{not json")
    with pytest.raises(SnapshotError) as caught:
        read_host_facts(str(tmp_path))
    assert caught.value.path == str(tmp_path / NODES_FILE) and "not valid JSON" in str(caught.value)


def test_bad_mode_in_nodes_file_names_the_field(tmp_path: pathlib.Path) -> None:
    FakeHost().write(str(tmp_path))
    nodes = json.loads((tmp_path / NODES_FILE).read_text())
    nodes["/dev/kvm"]["mode"] = "rw-rw----"
    (tmp_path / NODES_FILE).write_text(json.dumps(nodes))
    with pytest.raises(SnapshotError) as caught:
        read_host_facts(str(tmp_path))
    assert caught.value.field == "$./dev/kvm.mode"


def test_nodes_file_is_ignored_under_the_real_root() -> None:
    # Under "/" nodes are always stat-ed: compare with os.stat directly.
    facts = read_host_facts("/")
    for path, node in facts.devices.items():
        try:
            st: Optional[os.stat_result] = os.stat(path)
        except OSError:
            st = None
        if st is None:
            assert node is None
        else:
            assert node is not None and node.mode == stat.S_IMODE(st.st_mode) and node.uid == st.st_uid
            if stat.S_ISCHR(st.st_mode):
                assert node.number == f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


def test_real_root_matches_uname() -> None:
    facts = read_host_facts()
    uname = os.uname()
    assert (facts.system, facts.machine, facts.kernel_release) == (uname.sysname, uname.machine, uname.release)
    assert facts.uid == os.geteuid()
    assert set(facts.groups) == set(os.getgroups())


# --- to_dict / from_dict ----------------------------------------------------------------------

PRESETS: Dict[str, Callable[[], FakeHost]] = {
    "centos7": FakeHost.centos7,
    "no_kvm_module": FakeHost.no_kvm_module,
    "outside_kvm_group": FakeHost.outside_kvm_group,
    "amd_nested0": FakeHost.amd_nested0,
    "pvm": FakeHost.pvm,
    "container_no_kvm": FakeHost.container_no_kvm,
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_round_trip(name: str, tmp_path: pathlib.Path) -> None:
    facts = facts_of(PRESETS[name](), tmp_path)
    document = json.loads(json.dumps(facts.to_dict()))
    again = HostFacts.from_dict(document)
    assert again == facts and again.to_dict() == facts.to_dict()
    assert again.kvm_backend == facts.kvm_backend and again.nested_enabled == facts.nested_enabled
    assert hash(again) == hash(facts)


def test_to_dict_key_order_is_fixed(tmp_path: pathlib.Path) -> None:
    facts = facts_of(FakeHost.pvm(), tmp_path)
    assert json.dumps(facts.to_dict()) == json.dumps(HostFacts.from_dict(facts.to_dict()).to_dict())
    assert list(facts.to_dict())[:3] == ["system", "machine", "kernel_release"]
    assert list(facts.to_dict()["devices"]) == sorted(facts.devices)


def test_from_dict_minimal() -> None:
    facts = HostFacts.from_dict({"system": "Linux", "machine": "x86_64", "kernel_release": "5.10.0"})
    assert facts.kvm_backend is None and facts.devices == {} and facts.kvm_device == "/dev/kvm"


GOOD: Dict[str, Any] = {
    "system": "Linux",
    "machine": "x86_64",
    "kernel_release": "5.10.0",
    "devices": {"/dev/kvm": DeviceNode("char", 10, 232, 0o660, 0, 36, "root", "kvm").to_dict()},
    "group_db": [GroupEntry("kvm", 36, ("alice",)).to_dict()],
}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"kernel_release": 5}, "$.host.kernel_release"),
        ({"cpu_flags": "vmx"}, "$.host.cpu_flags"),
        ({"cpu_flags": ["vmx", 1]}, "$.host.cpu_flags[1]"),
        ({"kvm_modules": {"kvm_intel": {"nested": True}}}, "$.host.kvm_modules.kvm_intel.nested"),
        ({"kvm_modules": {"kvm_intel": ["nested"]}}, "$.host.kvm_modules.kvm_intel"),
        ({"uid": True}, "$.host.uid"),
        ({"uid": "0"}, "$.host.uid"),
        ({"groups": [0, "kvm"]}, "$.host.groups[1]"),
        ({"proc_modules": "yes"}, "$.host.proc_modules"),
        ({"devices": {"/dev/kvm": {**GOOD["devices"]["/dev/kvm"], "type": "pipe"}}}, '$.host.devices["/dev/kvm"].type'),
        ({"devices": {"/dev/kvm": {**GOOD["devices"]["/dev/kvm"], "mode": "99"}}}, '$.host.devices["/dev/kvm"].mode'),
        ({"devices": {"/dev/kvm": {**GOOD["devices"]["/dev/kvm"], "uid": None}}}, '$.host.devices["/dev/kvm"].uid'),
        ({"devices": {"/dev/kvm": "crw"}}, '$.host.devices["/dev/kvm"]'),
        ({"group_db": [{"name": "kvm", "gid": "36"}]}, "$.host.group_db[0].gid"),
        ({"group_db": [{"name": "kvm", "gid": 36, "members": "alice"}]}, "$.host.group_db[0].members"),
        ({"nested": "Y"}, "$.host.nested"),
        ({"msr_vt": 1.5}, "$.host.msr_vt"),
    ],
)
def test_from_dict_names_the_bad_field(change: Dict[str, Any], field: str) -> None:
    with pytest.raises(SnapshotError) as caught:
        HostFacts.from_dict({**GOOD, **change}, path="host.json")
    err = caught.value
    assert err.field == field and err.path == "host.json"
    assert str(err).startswith(f"host.json: {field}: ")


@pytest.mark.parametrize("missing", ["system", "machine", "kernel_release"])
def test_from_dict_missing_required(missing: str) -> None:
    data = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(SnapshotError) as caught:
        HostFacts.from_dict(data, field="$.snapshot.host")
    assert caught.value.field == f"$.snapshot.host.{missing}" and "missing" in caught.value.message


def test_from_dict_not_an_object() -> None:
    with pytest.raises(SnapshotError) as caught:
        HostFacts.from_dict([], path="x.json")  # type: ignore[arg-type]
    assert caught.value.field == "$.host" and "expected an object" in caught.value.message


def test_facts_are_immutable(tmp_path: pathlib.Path) -> None:
    facts = facts_of(FakeHost(), tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        facts.kernel_release = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        facts.kvm_modules["kvm_intel"]["nested"] = "N"  # type: ignore[index]


def test_the_backend_facts_derive_from_the_one_backends_table() -> None:
    """_host_facts, _cc_judge, _cc_data and the remedies read the backends table, not their own lists."""
    from kvmprobe import _cc_data, _cc_judge, _host_facts, _remedies
    from kvmprobe._kvm_backends import BACKENDS, PVM, backend_of, serving
    from kvmprobe.host import HostFacts

    assert _host_facts._VENDOR_MODULES == tuple(b.module for b in BACKENDS)
    assert set(_cc_judge._VENDOR_MODULES) == {b.module for b in BACKENDS if b.confidential} == {"kvm_intel", "kvm_amd"}
    for kind in _cc_data.KINDS:
        assert (kind.module, kind.vendor) == (serving(kind.id).module, serving(kind.id).vendor)
    amd = HostFacts("Linux", "x86_64", "6.8", cpu_flags=frozenset({"svm"}), kvm_modules={"kvm": {}, "kvm_amd": {}})
    assert _remedies.vendor_module(amd) == "kvm_amd" and amd.kvm_backend == "kvm_amd"
    pvm = HostFacts("Linux", "x86_64", "6.18", kvm_modules={"kvm": {}, PVM: {}})
    row = backend_of(pvm.kvm_backend)
    assert row is not None and row.cpu_flag is None and row.nested_param is None and not row.confidential
