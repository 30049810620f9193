"""The doctor judges access for the account that runs the VMM: this process by default, or the
one ``--as-user`` names (``diagnose(as_user=...)``), from mode, owner, ACL and that account's
groups in the passwd/group files under the root read; never by becoming it. Remedies fit where
kvmprobe runs: in a container the fix is on the host or in the runtime.
"""

from __future__ import annotations

import dataclasses
import errno
import struct
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from kvmprobe import Cap, UnknownUser
from kvmprobe.caps import CapLike
from kvmprobe._cli import main
from kvmprobe.diagnosis import CHECK_IDS, Diagnosis, Status, Verdict, diagnose
from kvmprobe.testing import KVM_GID, FakeBackend, FakeHost

WORKING: Dict[CapLike, int] = {Cap.IMMEDIATE_EXIT: 1}
QEMU_UID = 64055  # Debian's libvirt-qemu


def libvirt_host(in_kvm: bool = True, **changes: object) -> FakeHost:
    """A Debian-like host: /dev/kvm 0660 root:kvm, the doctor run as root, libvirt-qemu maybe in kvm."""
    members = ("alice", "libvirt-qemu") if in_kvm else ("alice",)
    host = FakeHost(
        uid=0,
        gid=0,
        groups=(),
        users={"root": 0, "alice": 1000, "libvirt-qemu": QEMU_UID, "nobody": 65534},
        group_db=(("root", 0, ()), ("kvm", KVM_GID, members), ("alice", 1000, ()),
                  ("libvirt-qemu", QEMU_UID, ()), ("nogroup", 65534, ())),
    )  # fmt: skip
    return dataclasses.replace(host, **changes)  # type: ignore[arg-type]


def run(host: FakeHost, tmp_path: Path, as_user: str, backend: FakeBackend = FakeBackend(WORKING)) -> Diagnosis:
    return diagnose(root=host.write(str(tmp_path)), backend=backend, as_user=as_user)


def test_as_user_in_the_kvm_group_may_open_the_device(tmp_path: Path) -> None:
    report = run(libvirt_host(), tmp_path, "libvirt-qemu")
    access = report.check("device-access")
    assert access.status is Status.PASS and access.decisive
    assert "libvirt-qemu (uid 64055)" in access.summary and "not opened as that user" in access.summary
    assert report.usable


def test_as_user_outside_the_group_is_not_usable_with_its_own_remedy(tmp_path: Path) -> None:
    report = run(libvirt_host(in_kvm=False), tmp_path, "libvirt-qemu")
    access = report.check("device-access")
    assert access.status is Status.FAIL and report.verdict is Verdict.NOT_USABLE
    assert "libvirt-qemu is not in group 'kvm'" in access.summary
    assert access.remedy.startswith("sudo usermod -aG kvm libvirt-qemu, then restart what runs as libvirt-qemu")
    assert "$USER" not in access.remedy


def test_as_user_by_number_and_its_primary_group(tmp_path: Path) -> None:
    # /dev/kvm owned by the account's own primary group (passwd's gid field), nobody listed in it.
    host = libvirt_host(in_kvm=False).with_node("/dev/kvm", FakeHost.char(10, 232, 0o660, 0, QEMU_UID))
    report = run(host, tmp_path, str(QEMU_UID))
    assert report.check("device-access").status is Status.PASS, report.check("device-access")


def test_as_user_granted_by_an_acl(tmp_path: Path) -> None:
    # setfacl -m u:libvirt-qemu:rw /dev/kvm on a 0600 root:root node: the mask becomes rw-.
    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 6, QEMU_UID), (0x04, 0, 0xFFFFFFFF), (0x10, 6, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)]
    acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries)
    host = libvirt_host(in_kvm=False, acls={"/dev/kvm": acl}).with_node("/dev/kvm", FakeHost.char(10, 232, 0o660, 0, 0))
    assert run(host, tmp_path, "libvirt-qemu").check("device-access").status is Status.PASS
    assert run(host, tmp_path, "alice").check("device-access").status is Status.FAIL


def test_as_root_may_open_anything(tmp_path: Path) -> None:
    host = FakeHost.pvm()
    report = diagnose(root=host.write(str(tmp_path)), backend=FakeBackend(WORKING), as_user="root")
    assert report.check("device-access").status is Status.PASS


def test_an_unknown_account_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(UnknownUser, match="no account 'qemu-kvm'"):
        run(libvirt_host(), tmp_path, "qemu-kvm")
    with pytest.raises(UnknownUser):
        run(libvirt_host(), tmp_path, "4242")


def test_vhost_and_tun_are_judged_for_the_account(tmp_path: Path) -> None:
    # tun 0600 root:root: libvirt-qemu cannot open it; vhost-net 0660 root:kvm: it can.
    nodes = dict(libvirt_host().nodes)
    nodes["/dev/net/tun"] = FakeHost.char(10, 200, 0o600, 0, 0)
    nodes["/dev/vhost-net"] = FakeHost.char(10, 238, 0o660, 0, KVM_GID)
    report = run(libvirt_host(nodes=nodes), tmp_path, "libvirt-qemu")
    tun = report.check("tun")
    assert tun.status is Status.WARN and "libvirt-qemu (uid 64055) cannot open it read-write" in tun.summary, tun
    assert "crw------- 10:200 root:root" in tun.summary and tun.remedy
    assert report.check("vhost-net").status is Status.PASS


def test_an_unprivileged_user_is_told_tun_is_not_theirs(tmp_path: Path) -> None:
    # doctor run as uid 1000 said "PASS tun /dev/net/tun: crw------- root:root".
    nodes = dict(FakeHost().nodes)
    nodes["/dev/net/tun"] = FakeHost.char(10, 200, 0o600, 0, 0)
    report = diagnose(root=FakeHost(nodes=nodes).write(str(tmp_path)), backend=FakeBackend(WORKING))
    tun = report.check("tun")
    assert tun.status is Status.WARN and "alice (uid 1000) cannot open it read-write" in tun.summary, tun
    assert report.check("device-access").status is Status.PASS  # /dev/kvm 0660 root:kvm, alice in kvm


def test_in_a_container_the_fix_is_on_the_host_or_the_runtime(tmp_path: Path) -> None:
    host = dataclasses.replace(FakeHost.pvm(), uid=65534, gid=65534, groups=(65534,))
    access = diagnose(root=host.write(str(tmp_path)), backend=FakeBackend(open_errno=errno.EACCES)).check("device-access")
    assert "only its owner may open it (mode 0600)" in access.summary
    assert "--group-add" in access.remedy and "on the host" in access.remedy and "device plugin" in access.remedy
    assert "usermod" not in access.remedy and "udevadm" not in access.remedy, access.remedy


def test_in_a_container_a_group_device_needs_group_add_not_usermod(tmp_path: Path) -> None:
    host = dataclasses.replace(FakeHost.outside_kvm_group(), container="docker")
    access = diagnose(root=host.write(str(tmp_path)), backend=FakeBackend(open_errno=errno.EACCES)).check("device-access")
    assert access.remedy.startswith(f"start the container with '--group-add {KVM_GID}'"), access.remedy


def test_capability_queries_is_a_check_id() -> None:
    assert "capability-queries" in CHECK_IDS


def cli(argv: List[str], capsys: pytest.CaptureFixture[str]) -> Tuple[int, str]:
    code = main(argv, backend=FakeBackend(WORKING))
    return code, capsys.readouterr().err


def test_the_cli_refuses_an_unknown_account_and_a_recorded_host(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = cli(["doctor", "--as-user", "no-such-account-here"], capsys)
    assert code == 2 and err.count("\n") == 1 and "no account 'no-such-account-here'" in err
    code, err = cli(["doctor", "--as-user", "root", "--snapshot", "preset:pvm-6.18"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--as-user" in err


def test_the_cli_as_root_account(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--as-user", "root", "--json"], backend=FakeBackend(WORKING))
    out = capsys.readouterr().out
    import json

    doc = json.loads(out)
    assert doc["as_user"]["name"] == "root" and doc["as_user"]["uid"] == 0
    assert code in (0, 1)
