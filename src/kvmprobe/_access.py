"""Who may open a device node read-write, and what to do when an account may not: one source.

Imports nothing from the package (plumbing: primitive inputs, no reading of the host but the
one extended attribute :func:`read_acl` asks for). The device seam (``device``: the error of a
refused ``open``) and the doctor (``_remedies``, ``_checks``) both word a refused open here, so
``has``, ``export`` and ``doctor`` give the same advice for the same node.

* :func:`decode_acl`: a POSIX access ACL as Linux stores it in the ``system.posix_acl_access``
  extended attribute. The format is the kernel's uapi: ``include/uapi/linux/posix_acl_xattr.h``
  (a little-endian ``__le32 a_version`` = ``POSIX_ACL_XATTR_VERSION`` 2, then entries of
  ``__le16 e_tag, __le16 e_perm, __le32 e_id``) with the tags of
  ``include/uapi/linux/posix_acl.h`` (``ACL_USER_OBJ`` 0x01, ``ACL_USER`` 0x02,
  ``ACL_GROUP_OBJ`` 0x04, ``ACL_GROUP`` 0x08, ``ACL_MASK`` 0x10, ``ACL_OTHER`` 0x20).
* :func:`may_open`: the kernel's decision for ``open(O_RDWR)`` of a device node by an account,
  from its mode, owner, ACL and the account's groups: ``acl_permission_check()`` in
  ``fs/namei.c`` (the owner's bits; the ACL when the group bits are not all clear; else the
  group's or the others' bits), ``posix_acl_permission()`` in ``fs/posix_acl.c`` (named users,
  then every matching group entry, each limited by the mask), and ``CAP_DAC_OVERRIDE`` for root
  (``generic_permission()``). A device cgroup, SELinux/AppArmor or seccomp can still refuse.
* :func:`permission`: what was observed and the remedy, true for where kvmprobe runs: on a
  host (groups, udev), or in a container, where the node and its permissions come from the
  host and the fix is there or in the container runtime (``--device``, ``--group-add``, a
  Kubernetes device plugin), never a udev rule inside the container.
"""

from __future__ import annotations

import os
import stat
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple, Optional, Tuple
else:
    from ._value import NamedTuple

__all__ = [
    "ACL_XATTR",
    "Access",
    "AclEntry",
    "Node",
    "Who",
    "container_kind",
    "decode_acl",
    "may_open",
    "node_of",
    "permission",
    "read_acl",
]

#: The extended attribute holding a file's access ACL (include/uapi/linux/xattr.h XATTR_NAME_POSIX_ACL_ACCESS).
ACL_XATTR = "system.posix_acl_access"

# include/uapi/linux/posix_acl_xattr.h and include/uapi/linux/posix_acl.h.
_XATTR_VERSION = 2
_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")
ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_TAGS = {ACL_USER_OBJ: "user::", ACL_USER: "user:", ACL_GROUP_OBJ: "group::", ACL_GROUP: "group:", ACL_MASK: "mask::",
         ACL_OTHER: "other::"}  # fmt: skip
_READ_WRITE = 0o6  # MAY_READ | MAY_WRITE in the rwx bits of one class


class AclEntry(NamedTuple):
    """One ACL entry: its tag, its ``rwx`` bits (0-7) and, for a named user or group, the id.

    Example:
        >>> AclEntry(ACL_GROUP, 6, 36).text()
        'group:36:rw-'
    """

    tag: int
    perm: int
    id: Optional[int] = None

    def text(self) -> str:
        """As ``getfacl`` prints it, with numeric ids."""
        bits = "".join(letter if self.perm & bit else "-" for letter, bit in (("r", 4), ("w", 2), ("x", 1)))
        head = _TAGS.get(self.tag, f"tag{self.tag:#x}:")
        return f"{head}{self.id}:{bits}" if self.id is not None else f"{head}{bits}"


def decode_acl(data: bytes) -> Tuple[AclEntry, ...]:
    """The entries of a ``system.posix_acl_access`` value, in the kernel's order.

    Raises:
        ValueError: not that format (wrong version, a size that is no whole number of entries,
            an unknown tag).

    Example:
        >>> import struct
        >>> raw = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in
        ...     [(1, 6, 0xFFFFFFFF), (2, 6, 1001), (4, 0, 0xFFFFFFFF), (0x10, 6, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)])
        >>> [e.text() for e in decode_acl(raw)]
        ['user::rw-', 'user:1001:rw-', 'group::---', 'mask::rw-', 'other::---']
    """
    if len(data) < _HEADER.size or (len(data) - _HEADER.size) % _ENTRY.size:
        raise ValueError(f"{len(data)} bytes is no POSIX ACL (a 4-byte header, then 8-byte entries)")
    (version,) = _HEADER.unpack_from(data)
    if version != _XATTR_VERSION:
        raise ValueError(f"POSIX ACL version {version}, not {_XATTR_VERSION}")
    entries = []
    for offset in range(_HEADER.size, len(data), _ENTRY.size):
        tag, perm, ident = _ENTRY.unpack_from(data, offset)
        if tag not in _TAGS:
            raise ValueError(f"unknown POSIX ACL tag {tag:#x}")
        entries.append(AclEntry(tag, perm & 0o7, ident if tag in (ACL_USER, ACL_GROUP) else None))
    return tuple(entries)


def read_acl(path: str) -> Optional[Tuple[AclEntry, ...]]:
    """The access ACL of ``path`` (following symlinks), or ``None``: none set, no ACL support,
    unreadable, or malformed (then the mode bits are all that is known).

    Example:
        >>> read_acl("/nonexistent") is None
        True
    """
    try:
        return decode_acl(os.getxattr(path, ACL_XATTR))
    except (OSError, ValueError):  # ENODATA: no ACL; ENOTSUP: none on this file system
        return None


class Node(NamedTuple):
    """What is known of a node: its permission bits, owner, group and access ACL.

    Example:
        >>> Node(0o660, 0, 36).group_rw
        True
    """

    mode: int
    uid: int
    gid: int
    acl: Optional[Tuple[AclEntry, ...]] = None

    @property
    def group_rw(self) -> bool:
        """Whether the group class may read and write (for an ACL: the mask)."""
        return self.mode & 0o060 == 0o060


class Who(NamedTuple):
    """The account that would open the node: ids, groups in effect, name (``None``: unknown).

    Example:
        >>> Who(1000, 1000, (1000, 36), "alice").in_group(36)
        True
    """

    uid: int
    gid: int
    groups: Tuple[int, ...] = ()
    name: Optional[str] = None

    def in_group(self, gid: int) -> bool:
        """The kernel's ``in_group_p()``: the primary group or a supplementary one."""
        return gid == self.gid or gid in self.groups


class Access(NamedTuple):
    """Whether ``open(O_RDWR)`` is allowed, and by which rule: ``root`` (CAP_DAC_OVERRIDE),
    ``owner``, ``acl-user``/``acl-group`` (an ACL entry naming the account or one of its
    groups), ``group`` (the file's group), ``other``.

    Example:
        >>> may_open(Node(0o660, 0, 36), Who(1000, 1000, (36,)))
        Access(allowed=True, via='group')
    """

    allowed: bool
    via: str


def may_open(node: Node, who: Who) -> Access:
    """Whether ``who`` may open ``node`` read-write, as the kernel decides it (module docstring).

    Example:
        >>> may_open(Node(0o600, 0, 0), Who(1000, 1000)), may_open(Node(0o600, 0, 0), Who(0, 0))
        (Access(allowed=False, via='other'), Access(allowed=True, via='root'))
        >>> acl = (AclEntry(ACL_USER_OBJ, 6), AclEntry(ACL_USER, 6, 1000), AclEntry(ACL_GROUP_OBJ, 0),
        ...        AclEntry(ACL_MASK, 6), AclEntry(ACL_OTHER, 0))
        >>> may_open(Node(0o660, 0, 0, acl), Who(1000, 1000))
        Access(allowed=True, via='acl-user')
    """
    if who.uid == 0:
        return Access(True, "root")  # generic_permission(): CAP_DAC_OVERRIDE reads and writes any non-directory
    if who.uid == node.uid:
        return Access(node.mode & 0o600 == 0o600, "owner")
    if node.acl is not None and node.mode & 0o070:
        return _acl_permission(node, who)
    if who.in_group(node.gid):
        return Access(node.mode & 0o060 == 0o060, "group")
    return Access(node.mode & 0o006 == 0o006, "other")


def _acl_permission(node: Node, who: Who) -> Access:
    """fs/posix_acl.c posix_acl_permission() for MAY_READ|MAY_WRITE, the owner already ruled out."""
    assert node.acl is not None
    entries = sorted(node.acl, key=lambda e: (e.tag, e.id or 0))  # the kernel keeps them so (posix_acl_valid)
    mask = next((e.perm for e in entries if e.tag == ACL_MASK), 0o7)
    found = False
    for entry in entries:
        if entry.tag == ACL_USER and entry.id == who.uid:
            return Access(entry.perm & mask & _READ_WRITE == _READ_WRITE, "acl-user")
        matches = (entry.tag == ACL_GROUP_OBJ and who.in_group(node.gid)) or (
            entry.tag == ACL_GROUP and entry.id is not None and who.in_group(entry.id)
        )
        if matches:
            found = True
            if entry.perm & _READ_WRITE == _READ_WRITE:
                via = "group" if entry.tag == ACL_GROUP_OBJ else "acl-group"
                return Access(entry.perm & mask & _READ_WRITE == _READ_WRITE, via)
        if entry.tag == ACL_OTHER:
            if found:
                return Access(False, "acl-group")
            return Access(entry.perm & _READ_WRITE == _READ_WRITE, "other")
    return Access(False, "other")  # no ACL_OTHER entry: the kernel refuses such an ACL (EIO)


def container_kind(dockerenv: bool, containerenv: bool, cgroup: str) -> Optional[str]:
    """``docker``, ``podman``, ``kubernetes`` or ``lxc`` from the marks a container leaves
    (``/.dockerenv``, ``/run/.containerenv``, pid 1's cgroup), else ``None``.

    Example:
        >>> container_kind(False, False, "0::/kubepods/burstable/pod1"), container_kind(False, False, "0::/")
        ('kubernetes', None)
    """
    if dockerenv:
        return "docker"
    if containerenv:
        return "podman"
    for marker, name in (("kubepods", "kubernetes"), ("docker", "docker"), ("libpod", "podman"), ("lxc", "lxc")):
        if marker in cgroup:
            return name
    return None


def _mode_text(node: Node) -> str:
    return f"{node.mode:04o}"


def _udev(path: str, *, kvm_group: bool, who: str, session: str) -> str:
    name = os.path.basename(path)
    prefix = "" if kvm_group else "there is no 'kvm' group here: 'sudo groupadd --system kvm', then "
    return (
        f"{prefix}give {path} to group kvm with a udev rule: KERNEL==\"{name}\", GROUP=\"kvm\", MODE=\"0660\" in "
        "/etc/udev/rules.d/65-kvm.rules and 'sudo udevadm control --reload && sudo udevadm trigger "
        f"--name-match={name}' (or 'sudo chgrp kvm {path} && sudo chmod 0660 {path}' until the next boot), "
        f"then 'sudo usermod -aG kvm {who}' and {session}; or run the VMM as root"
    )


def permission(
    path: str,
    node: Optional[Node],
    who: Who,
    *,
    who_text: str,
    node_text: str = "",
    group_name: Optional[str] = None,
    group_members: Tuple[str, ...] = (),
    kvm_group: bool = True,
    container: Optional[str] = None,
    as_other: bool = False,
) -> Tuple[str, str]:
    """(what was observed, the remedy) when ``who`` may not open ``path`` read-write.

    Args:
        path: the node.
        node: its mode, owner and ACL (``None``: it could not be looked at).
        who: the account (this process, or the one ``--as-user`` names).
        who_text: how to name the account (``bob (uid 1001)``).
        node_text: how to show the node (``crw-rw---- 10:232 root:kvm``).
        group_name, group_members: the node's group in the group database (``None``: no entry).
        kvm_group: whether a group named ``kvm`` exists.
        container: the kind of container kvmprobe runs in, if any.
        as_other: ``who`` is another account than this process (``--as-user``): its groups
            take effect when its processes start, not at a login of this session.

    Example:
        >>> who = Who(1001, 1001, (1001,), "bob")
        >>> permission("/dev/kvm", Node(0o660, 0, 36), who, who_text="bob (uid 1001)", group_name="kvm")[1]
        'sudo usermod -aG kvm $USER, then log out and in again'
        >>> print(permission("/dev/kvm", Node(0o660, 0, 36), who, who_text="bob (uid 1001)", group_name="kvm",
        ...                  container="docker")[1])
        start the container with '--group-add 36' (the gid of /dev/kvm's group on the host; on Kubernetes: securityContext.supplementalGroups: [36]): groups inside the container come from the runtime, not from a login
    """
    user = who.name if as_other and who.name else "$USER"
    session = f"restart what runs as {user} (a process gets its groups when it starts)" if as_other else (
        "log out and in again")  # fmt: skip
    if node is None:
        if container is not None:
            return (
                f"{path}: permission denied for {who_text}",
                f"in this {container} container, {path} comes from the host: start the container with "
                f"'--device {path}' and '--group-add' the gid of its group there (or use a KVM device plugin on "
                "Kubernetes), or run the VMM as root in the container",
            )
        return (
            f"{path}: permission denied for {who_text}",
            f"run as root, or ask for read-write access to {path} (e.g. 'sudo usermod -aG kvm {user}', then "
            f"{session})",
        )
    shown = f" ({node_text})" if node_text else ""
    base = f"{path}: permission denied for {who_text}{shown}"
    policy = (
        f"check 'getfacl {path}' and 'ls -Z {path}' (an ACL or SELinux/AppArmor label can deny it); in a "
        f"container, start it with '--device {path}' so its device cgroup allows it"
    )
    if who.uid == 0:
        return base + "; even root is refused, so a policy denies it", policy
    if node.mode & 0o006 == 0o006 and not node.acl:
        return base + "; the mode lets everyone read and write, so a policy denies it", policy
    if node.acl and not may_open(node, who).allowed and who.uid != node.uid:
        entries = " ".join(e.text() for e in node.acl)
        if any(e.tag in (ACL_USER, ACL_GROUP) for e in node.acl):
            return (
                base + f"; its ACL ({entries}) gives {who_text} no read-write access",
                f"grant it: 'sudo setfacl -m u:{who.name or who.uid}:rw {path}' (udev: TAG+=\"uaccess\" or "
                "RUN+=\"/usr/bin/setfacl ...\"); or add the account to a group the ACL lets in",
            )
    if node.gid == 0 or not node.group_rw:
        observed = base + f"; only its owner may open it (mode {_mode_text(node)})"
        if container is not None:
            return observed, (
                f"{path} and its permissions come from the host, so the fix is there or in the container runtime, "
                f"not in this {container} container: on the host give it a group (a udev rule: KERNEL==\""
                f"{os.path.basename(path)}\", GROUP=\"kvm\", MODE=\"0660\"), then start the container with "
                f"'--device {path} --group-add <that gid>' (on Kubernetes: securityContext.supplementalGroups, or "
                f"a device plugin such as KubeVirt's devices.kubevirt.io/{os.path.basename(path)}); or run the VMM as "
                "root in the container"
            )
        return observed, _udev(path, kvm_group=kvm_group, who=user, session=session)
    in_session = who.in_group(node.gid)
    if container is not None and not in_session:
        named = f"'{group_name}' (gid {node.gid})" if group_name else f"gid {node.gid}"
        return (
            base + f"; {who.name or who_text} is not in its group {named}",
            f"start the container with '--group-add {node.gid}' (the gid of {path}'s group on the host; on "
            f"Kubernetes: securityContext.supplementalGroups: [{node.gid}]): groups inside the container come "
            "from the runtime, not from a login",
        )
    if group_name is None:
        return (
            base + f"; its group (gid {node.gid}) has no entry in /etc/group",
            f"create that group ('sudo groupadd -g {node.gid} kvm') and 'sudo usermod -aG kvm {user}', then "
            f"{session}; or give the node the kvm group with a udev rule",
        )
    if in_session:
        return base + f"; {'this process' if not as_other else who_text} is in group '{group_name}', which may read and write it", policy
    if who.name is not None and who.name in group_members:
        if as_other:
            return (
                base + f"; {who.name} is listed in group '{group_name}' in /etc/group, yet its groups here lack it",
                f"{session}; a running process keeps the groups it started with",
            )
        return (
            base + f"; {who.name} is in group '{group_name}' in /etc/group, but not in this session's "
            "groups (added after this login)",
            f"log out and in again (or run 'newgrp {group_name}') so the group takes effect",
        )
    return (
        base + f"; {who.name or 'this user'} is not in group '{group_name}'",
        f"sudo usermod -aG {group_name} {user}, then {session}",
    )


def node_of(st: os.stat_result, acl: Optional[Tuple[AclEntry, ...]] = None) -> Node:
    """A :class:`Node` from ``os.stat`` (permission bits only).

    Example:
        >>> node_of(os.stat("/")).mode <= 0o7777
        True
    """
    return Node(stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, acl)
