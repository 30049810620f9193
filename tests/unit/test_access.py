"""Who may open a node read-write: the ACL decoder, the access decision and the remedy.

The decoder is checked against ACLs ``setfacl`` (the acl package) wrote and ``getfacl`` reads
back, and against the test's own ``struct`` encoding. The access decision is checked against the
kernel itself: as root, regular files with chosen modes, owners and ACLs are opened read-write
by other accounts through ``setpriv`` (the permission check is the one device nodes get), and
kvmprobe's answer must match. Each skips with the reason where root, setpriv or the acl tools are
absent.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest

from kvmprobe._access import (
    ACL_GROUP,
    ACL_GROUP_OBJ,
    ACL_MASK,
    ACL_OTHER,
    ACL_USER,
    ACL_USER_OBJ,
    AclEntry,
    Node,
    Who,
    decode_acl,
    may_open,
    read_acl,
)

UNDEFINED = 0xFFFFFFFF  # ACL_UNDEFINED_ID, the e_id of the entries that name nobody


def encode(entries: List[Tuple[int, int, int]]) -> bytes:
    """include/uapi/linux/posix_acl_xattr.h, written out here: version 2, then (tag, perm, id)."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in entries)


def test_decode_reads_the_uapi_layout() -> None:
    raw = encode([(0x01, 6, UNDEFINED), (0x02, 6, 64055), (0x04, 4, UNDEFINED), (0x08, 6, 36),
                  (0x10, 6, UNDEFINED), (0x20, 0, UNDEFINED)])  # fmt: skip
    assert decode_acl(raw) == (
        AclEntry(ACL_USER_OBJ, 6), AclEntry(ACL_USER, 6, 64055), AclEntry(ACL_GROUP_OBJ, 4),
        AclEntry(ACL_GROUP, 6, 36), AclEntry(ACL_MASK, 6), AclEntry(ACL_OTHER, 0),
    )  # fmt: skip
    for bad in (b"", b"\x02\x00\x00", encode([])[:-1] + b"\x03", encode([(1, 6, 0)])[:-2], encode([(0x40, 6, 0)])):
        with pytest.raises(ValueError):
            decode_acl(bad)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every account may enter (pytest's tmp_path is 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix="kvmprobe-access-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def needs_root_and(*programs: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: files are given to other owners, and opened as other accounts")
    for program in programs:
        if shutil.which(program) is None:
            pytest.skip(f"needs {program} (Debian: apt-get install {'acl' if 'facl' in program else 'util-linux'})")


def test_decode_matches_what_setfacl_wrote_and_getfacl_reads(shared_dir: Path) -> None:
    needs_root_and("setfacl", "getfacl")
    target = shared_dir / "node"
    target.write_text("")
    done = subprocess.run(["setfacl", "-m", "u:4242:rw,g:36:r,m::rw", str(target)], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"this file system takes no ACL here: {done.stderr.strip()}")
    listed = subprocess.run(["getfacl", "-n", "-c", "-E", str(target)], capture_output=True, text=True, timeout=30).stdout
    theirs = {line.split("#")[0].strip() for line in listed.splitlines() if line.strip()}
    acl = read_acl(str(target))
    assert acl is not None and {entry.text() for entry in acl} == theirs
    assert read_acl(str(shared_dir / "missing")) is None


# (mode, owner uid, owner gid, setfacl spec or None, account uid, gid, supplementary groups)
Case = Tuple[int, int, int, Optional[str], int, int, Tuple[int, ...]]
CASES: List[Case] = [
    (0o600, 0, 0, None, 65534, 65534, ()),            # root's own node: nobody else
    (0o660, 0, 4242, None, 4100, 4100, (4242,)),      # in its group
    (0o660, 0, 4242, None, 4100, 4242, ()),           # its group as the primary group
    (0o660, 0, 4242, None, 4100, 4100, ()),           # not in it
    (0o670, 0, 4242, None, 4100, 4100, (4242,)),      # mode 0670: the group may (the old hint said "owner only")
    (0o606, 0, 4242, None, 4100, 4100, (4242,)),      # group bits empty: a group member is refused, others not
    (0o606, 0, 4242, None, 4100, 4100, ()),
    (0o666, 4100, 0, None, 4100, 4100, ()),           # the owner
    (0o066, 4100, 0, None, 4100, 4100, (0,)),         # the owner is refused even though others may
    (0o660, 0, 0, "u:4100:rw", 4100, 4100, ()),       # a named-user ACL entry
    (0o600, 0, 0, "u:4100:rw", 4100, 4100, ()),       # ... set, but the mask (chmod after) says ---
    (0o660, 0, 0, "g:4242:rw", 4100, 4100, (4242,)),  # a named-group entry
    (0o660, 0, 0, "g:4242:r", 4100, 4100, (4242,)),   # read only: refused
    (0o660, 0, 0, "u:4100:r,g:4242:rw", 4100, 4100, (4242,)),  # a user entry wins over a group entry
    (0o666, 0, 0, "g:4242:-", 4100, 4100, (4242,)),   # a matching group entry without rw refuses, others may
    (0o600, 0, 0, None, 0, 0, ()),                    # root
]


def kernel_allows(path: Path, uid: int, gid: int, groups: Tuple[int, ...]) -> bool:
    """Open ``path`` O_RDWR as that account: the kernel's own answer."""
    setpriv = ["setpriv", f"--reuid={uid}", f"--regid={gid}"]
    setpriv += [f"--groups={','.join(str(g) for g in groups)}"] if groups else ["--clear-groups"]
    done = subprocess.run([*setpriv, "/bin/sh", "-c", 'exec 3<>"$1"', "sh", str(path)], capture_output=True, timeout=30)
    return done.returncode == 0


def test_the_decision_is_the_kernels(shared_dir: Path) -> None:
    needs_root_and("setpriv", "setfacl")
    answers = set()
    for index, (mode, owner, group, spec, uid, gid, groups) in enumerate(CASES):
        target = shared_dir / f"node{index}"
        target.write_text("")
        os.chown(target, owner, group)
        if spec is not None:
            subprocess.run(["setfacl", "-m", spec, str(target)], check=True, timeout=30)
        os.chmod(target, mode)  # after setfacl: with an ACL, the group bits are the mask
        st = os.stat(target)
        node = Node(st.st_mode & 0o7777, st.st_uid, st.st_gid, read_acl(str(target)))
        ours = may_open(node, Who(uid, gid, groups)).allowed
        assert ours == kernel_allows(target, uid, gid, groups), (CASES[index], node)
        answers.add(ours)
    assert answers == {True, False}


def test_has_and_doctor_give_one_remedy_for_one_node(shared_dir: Path) -> None:
    """As nobody, a node of mode 0670 owned by another group: ``has`` (the device seam's error
    hint) and ``doctor`` (the diagnosis) must give the same advice, and neither may call it the
    owner's alone (the old hint did, for anything but an exact rw- group)."""
    import json
    import stat

    from _helpers import kvmprobe_as_nobody

    needs_root_and("setpriv")
    node = shared_dir / "kvm"
    os.mknod(node, stat.S_IFCHR | 0o670, os.makedev(10, 232))  # a copy of /dev/kvm's number, not /dev/kvm
    os.chown(node, 0, 4242)
    os.chmod(node, 0o670)  # mknod's mode went through the umask
    has = kvmprobe_as_nobody("has", "HLT", "--device", str(node), device=str(node))
    doctor = kvmprobe_as_nobody("doctor", "--json", "--device", str(node), device=str(node))
    assert has.returncode == 3 and has.stderr.count("\n") == 1, has.stderr
    hint = has.stderr.split("(hint: ", 1)[1].rstrip().removesuffix(")")
    access = next(c for c in json.loads(doctor.stdout)["checks"] if c["id"] == "device-access")
    assert access["status"] == "FAIL" and access["remedy"] == hint
    assert "only its owner" not in access["summary"] and "owner" not in hint
