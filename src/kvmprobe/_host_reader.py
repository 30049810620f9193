"""Read the host facts KVM depends on, from files under a ``root`` (default ``/``).

Imports ``_host_facts``, ``_cc_facts``, ``_cc_data``, ``_host_files`` (its bounded readers), ``_access``,
``_cpuid_insn``, ``_validate`` and ``errors``.
This is the one reader of the system for kvmprobe: procfs, sysfs, ``/dev`` and
``/etc/group``/``/etc/passwd`` (and, for confidential VMs, the cpuid driver, the misc cgroup and
the kernel log), every path taken relative to ``root`` so that a test can hand it a directory
tree that looks like another host (see ``kvmprobe.testing.FakeHost``). It never issues an ioctl: what the kernel *answers*
is the job of ``device``; here are only the facts that *explain* an answer.

A missing file is not an error: the fact is ``None`` (or empty) and the diagnosis reports
it as unknown. So is a path that is no regular file (a FIFO, a device) or is far larger than
such a file can be: nothing here blocks or reads without bound. ``OSError`` is mapped in
exactly one place, :func:`_attempt`.

Device nodes cannot be created portably in a test tree (``mknod`` needs root), so under a
root other than ``/`` the reader also reads :data:`NODES_FILE`, a small JSON file that
describes nodes (type, major/minor, mode, owner). Under the real ``/`` that file is never
read: nodes are always ``os.stat``-ed.
"""

from __future__ import annotations

import os
import stat as _stat

from ._cc_facts import ConfidentialFacts
from ._access import AclEntry, Who, decode_acl, read_acl
from ._host_files import TEXT_LIMIT, Reader as _Reader, attempt as _attempt, container, first_cpu
from ._host_facts import (
    DEVICE_PATHS,
    MSR_FEATURE_CONTROL,
    MSR_VM_CR,
    NODES_FILE,
    VIRT_FLAGS,
    DeviceNode,
    GroupEntry,
    HostFacts,
    _FactsLoader,
)
from ._validate import parse_json
from .errors import SnapshotError, UnknownUser

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple
else:
    from ._value import NamedTuple

__all__ = ["Account", "read_account", "read_acls", "read_confidential_files", "read_host_facts"]

# --- the reader ---------------------------------------------------------------------------


# The bounded readers of files under a root (their limits, and the one mapping of OSError)
# live in _host_files, where the device's error wording and the CPU record read them too.
_TEXT_LIMIT = TEXT_LIMIT
# /etc/passwd and /etc/group may list many users; still bounded, so memory is.
_DB_LIMIT = 16 * 1024 * 1024


def _id(text: str) -> Optional[int]:
    """A uid or gid as the databases write it: ASCII digits, at most 10 (a 32-bit id)."""
    return int(text) if 0 < len(text) <= 10 and text.isascii() and text.isdigit() else None


def _parse_db(text: Optional[str]) -> List[Tuple[str, int, Tuple[str, ...]]]:
    """``name:x:id:...`` lines of /etc/group or /etc/passwd (id is field 3, members field 4;
    in /etc/passwd field 4 is the primary gid)."""
    rows: List[Tuple[str, int, Tuple[str, ...]]] = []
    for line in (text or "").splitlines():
        parts = line.split(":")
        if len(parts) < 3 or line.startswith("#"):
            continue
        number = _id(parts[2])
        if number is None:
            continue
        extra = parts[3] if len(parts) > 3 else ""
        rows.append((parts[0], number, tuple(m for m in extra.split(",") if m)))
    return rows


def _parse_status(text: Optional[str]) -> Tuple[Optional[int], Optional[int], Tuple[int, ...]]:
    uid: Optional[int] = None
    gid: Optional[int] = None
    groups: Tuple[int, ...] = ()
    for line in (text or "").splitlines():
        key, _, value = line.partition(":")
        fields = value.split()
        try:
            # "Uid: real effective saved fs": access checks use the effective (fs) id.
            if key == "Uid" and len(fields) >= 2:
                uid = int(fields[1])
            elif key == "Gid" and len(fields) >= 2:
                gid = int(fields[1])
            elif key == "Groups":
                groups = tuple(int(g) for g in fields)
        except ValueError:
            continue
    return uid, gid, groups


def _nodes_sidecar(reader: _Reader) -> Dict[str, Any]:
    if reader.real:
        return {}
    text = reader.text("/" + NODES_FILE)
    if text is None:
        return {}
    where = reader.path(NODES_FILE)
    data = parse_json(text, lambda message: SnapshotError(message, path=where, field="$", hint="fix or rewrite the fake host"))
    if not isinstance(data, dict):
        raise SnapshotError("expected an object of node paths", path=where, field="$", hint="fix the fake host")
    return data


def _node(
    reader: _Reader, sidecar: Mapping[str, Any], path: str, names: Tuple[Dict[int, str], Dict[int, str]]
) -> Optional[DeviceNode]:
    users, groups = names
    if path in sidecar:
        loader = _FactsLoader(reader.path(NODES_FILE), "$")
        node = loader.node(sidecar[path], f"$.{path}")
        return DeviceNode(node.kind, node.major, node.minor, node.mode, node.uid, node.gid,
                          users.get(node.uid), groups.get(node.gid))  # fmt: skip
    st = reader.stat(path)
    if st is None:
        return None
    if _stat.S_ISCHR(st.st_mode):
        kind = "char"
    elif _stat.S_ISBLK(st.st_mode):
        kind = "block"
    elif _stat.S_ISDIR(st.st_mode):
        kind = "directory"
    elif _stat.S_ISREG(st.st_mode):
        kind = "file"
    else:
        kind = "other"
    is_dev = kind in ("char", "block")
    return DeviceNode(
        kind=kind,
        major=os.major(st.st_rdev) if is_dev else None,
        minor=os.minor(st.st_rdev) if is_dev else None,
        mode=_stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        owner=users.get(st.st_uid),
        group=groups.get(st.st_gid),
    )


class Account(NamedTuple):
    """An account a VMM may run as, from the passwd and group files under a root: its ids,
    its groups (the primary one and every group that lists it) and its name.

    Example:
        >>> Account(64055, 64055, (36, 64055), "libvirt-qemu").who.in_group(36)
        True
    """

    uid: int
    gid: int
    groups: Tuple[int, ...]
    name: str

    @property
    def who(self) -> Who:
        """The account as the access check takes it."""
        return Who(self.uid, self.gid, self.groups, self.name)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready.

        Example:
            >>> Account(0, 0, (0,), "root").to_dict()
            {'name': 'root', 'uid': 0, 'gid': 0, 'groups': [0]}
        """
        return {"name": self.name, "uid": self.uid, "gid": self.gid, "groups": list(self.groups)}


def read_account(user: str, root: str = "/") -> Account:
    """The account ``user`` (a name, or a uid in ASCII digits) from ``etc/passwd`` under
    ``root``, with its groups from ``etc/group`` there: what ``initgroups(3)`` gives a process
    started as that user. Accounts only a directory service knows (LDAP, NIS) are not read.

    Raises:
        UnknownUser: no such account in that passwd file.

    Example:
        >>> import tempfile
        >>> from kvmprobe.testing import FakeHost
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     read_account("alice", FakeHost().write(tmp))
        Account(uid=1000, gid=1000, groups=(36, 1000), name='alice')
    """
    reader = _Reader(root)
    passwd = reader.path("/etc/passwd")
    by_uid = _id(user)
    found: Optional[Tuple[str, int, int]] = None
    for line in (reader.text("/etc/passwd", _DB_LIMIT) or "").splitlines():
        parts = line.split(":")
        if len(parts) < 4 or line.startswith("#"):
            continue
        uid, gid = _id(parts[2]), _id(parts[3])
        if uid is None or gid is None:
            continue
        if parts[0] == user or (by_uid is not None and uid == by_uid):
            found = (parts[0], uid, gid)
            break
    if found is None:
        raise UnknownUser(
            f"no account {user!r} in {passwd}",
            hint="give a user name or uid listed there (accounts from LDAP or NIS are not read)",
        )
    name, uid, gid = found
    groups = {gid} | {number for _, number, members in _parse_db(reader.text("/etc/group", _DB_LIMIT)) if name in members}
    return Account(uid, gid, tuple(sorted(groups)), name)


def read_acls(paths: Tuple[str, ...], root: str = "/") -> Dict[str, Optional[Tuple[AclEntry, ...]]]:
    """The access ACL of each node under ``root`` (``None``: none, or unknown). Under a fake
    root, :data:`NODES_FILE` may give one per node as ``"acl"``: the attribute's bytes in hex.

    Example:
        >>> read_acls(("/nonexistent",))
        {'/nonexistent': None}
    """
    reader = _Reader(root)
    sidecar = _nodes_sidecar(reader)
    acls: Dict[str, Optional[Tuple[AclEntry, ...]]] = {}
    for path in paths:
        described = sidecar.get(path)
        if isinstance(described, dict) and isinstance(described.get("acl"), str):
            try:
                acls[path] = decode_acl(bytes.fromhex(described["acl"]))
            except ValueError:
                acls[path] = None
        elif path in sidecar:
            acls[path] = None
        else:
            acls[path] = read_acl(reader.path(path))
    return acls


def facts_of_live(result: Any, root: str = "/") -> HostFacts:
    """The host facts of a live probe result (a :class:`~kvmprobe.ProbeResult`) read under ``root``,
    read once per result: the readiness of seven VMMs, the confidential section and the CPU
    view each ask for them, and the host said what it said at the result's moment.

    Example:
        >>> import tempfile
        >>> from kvmprobe.testing import FakeHost, fake_probe_result
        >>> result = fake_probe_result({})
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     root = FakeHost.pvm().write(tmp)
        ...     facts_of_live(result, root) is facts_of_live(result, root)
        True
    """
    made: HostFacts = result._remembered(f"host_facts:{root}", lambda: read_host_facts(root, device=result.device))
    return made


def kvm_backend_of(root: str = "/") -> Optional[str]:
    """The KVM module behind ``/dev/kvm`` on the host under ``root``, as
    :attr:`HostFacts.kvm_backend` names it, from the ``kvm*`` entries of ``/sys/module`` only
    (one directory listing: ``probing`` reads it once per live probe through a real backend).

    Example:
        >>> import tempfile
        >>> from kvmprobe.testing import FakeHost
        >>> with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        ...     kvm_backend_of(FakeHost.pvm().write(one)), kvm_backend_of(FakeHost.centos7().write(two))
        ('kvm_pvm', 'kvm_intel')
    """
    reader = _Reader(root)
    modules: Dict[str, Dict[str, str]] = {
        name: {} for name in reader.listdir("/sys/module") if name == "kvm" or name.startswith(("kvm_", "kvm-"))
    }
    machine = os.uname().machine if reader.real else (reader.text("/proc/sys/kernel/arch") or "").strip()
    found: Optional[str] = HostFacts("Linux", machine, "", kvm_modules=modules).kvm_backend
    return found


def read_host_facts(root: str = "/", *, device: str = "/dev/kvm") -> HostFacts:
    """Read the facts of the host whose files live under ``root``.

    Nothing here needs root or issues an ioctl; a fact whose file is missing or unreadable
    is ``None``. Under ``root="/"`` the facts are this machine's (``uname`` fills in
    what ``/proc/sys/kernel`` lacks).

    Args:
        root: the directory standing for ``/`` (a fake host in tests).
        device: the KVM device path (as the host sees it) whose node to describe.

    Raises:
        SnapshotError: only for a fake host whose :data:`NODES_FILE` is malformed.

    Example:
        >>> import tempfile
        >>> from kvmprobe.testing import FakeHost
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     facts = read_host_facts(FakeHost.centos7().write(tmp))
        >>> facts.kernel_release, facts.kvm_backend, facts.nested_enabled, facts.kvm_node.mode_text
        ('3.10.0-1160.el7.x86_64', 'kvm_intel', False, 'crw-rw----')
    """
    reader = _Reader(root)
    uname = os.uname() if reader.real else None

    def kernel(name: str, fallback: str) -> str:
        text = reader.text(f"/proc/sys/kernel/{name}")
        return text.strip() if text is not None else fallback

    system = kernel("ostype", uname.sysname if uname else "")
    release = kernel("osrelease", uname.release if uname else "")
    # /proc/sys/kernel/arch exists since Linux 5.19; older kernels leave uname as the source.
    machine = kernel("arch", uname.machine if uname else "")
    vendor, cpu_flags = first_cpu(reader)
    flags = frozenset(cpu_flags or ()) & VIRT_FLAGS

    modules: Dict[str, Dict[str, str]] = {}
    for name in reader.listdir("/sys/module"):
        if name == "kvm" or name.startswith("kvm_") or name.startswith("kvm-"):
            params: Dict[str, str] = {}
            for param in reader.listdir(f"/sys/module/{name}/parameters"):
                value = reader.text(f"/sys/module/{name}/parameters/{param}")
                if value is not None:
                    params[param] = value.strip()
            modules[name] = params
    misc = reader.text("/sys/devices/virtual/misc/kvm/dev")

    users = {number: name for name, number, _ in _parse_db(reader.text("/etc/passwd", _DB_LIMIT))}
    db = _parse_db(reader.text("/etc/group", _DB_LIMIT))
    group_names = {number: name for name, number, _ in db}
    sidecar = _nodes_sidecar(reader)
    devices = {path: _node(reader, sidecar, path, (users, group_names)) for path in (device,) + DEVICE_PATHS}

    uid, gid, groups = _parse_status(reader.text("/proc/self/status"))
    wanted = {gid, *groups} | {node.gid for node in devices.values() if node is not None}
    group_db = tuple(
        GroupEntry(name, number, members) for name, number, members in db if number in wanted or name == "kvm"
    )

    msr_vt: Optional[int] = None
    msr_error: Optional[str] = None
    if "vmx" in flags or "svm" in flags:
        offset = MSR_FEATURE_CONTROL if "vmx" in flags else MSR_VM_CR
        raw, msr_error = reader.pread("/dev/cpu/0/msr", 8, offset)
        if raw is not None and len(raw) == 8:
            msr_vt = int.from_bytes(raw, "little")
        elif raw is not None:
            msr_error = "short read"

    return HostFacts(
        system=system,
        machine=machine,
        kernel_release=release,
        cpu_vendor=vendor,
        cpu_flags=flags,
        kvm_modules=modules,
        proc_modules=reader.exists("/proc/modules") if reader.exists("/proc") else None,
        kvm_misc_dev=misc.strip() if misc is not None else None,
        kvm_device=device,
        devices=devices,
        uid=uid,
        gid=gid,
        groups=groups,
        user_name=users.get(uid) if uid is not None else None,
        group_db=group_db,
        container=container(reader),
        msr_vt=msr_vt,
        msr_error=msr_error,
    )


# --- the confidential-VM layers' files ------------------------------------------------------

# /dev/cpu/N/cpuid (the cpuid driver, arch/x86/kernel/cpuid.c): a pread of 16 bytes at offset
# ``leaf | subleaf << 32`` runs CPUID there and returns EAX, EBX, ECX, EDX.
_CPUID_DEVICE = "/dev/cpu/0/cpuid"
# The kernel log: one record per read(2) of /dev/kmsg (Documentation/ABI/testing/dev-kmsg),
# "prio,seq,usec,flags;text". Bounded, so that a huge log cannot stall a probe.
_KMSG = "/dev/kmsg"
_KMSG_RECORDS = 65536
_KMSG_RECORD_BYTES = 8192
# The misc controller's capacity file: the cgroup v2 root, or a v1 misc hierarchy.
_MISC_CAPACITY = ("/sys/fs/cgroup/misc.capacity", "/sys/fs/cgroup/misc/misc.capacity")
# CAP_IPC_LOCK (include/uapi/linux/capability.h): pinning memory without RLIMIT_MEMLOCK.
_CAP_IPC_LOCK = 14


def _packed(registers: Tuple[int, int, int, int]) -> bytes:
    return b"".join(value.to_bytes(4, "little") for value in registers)


def _confidential_leaf(
    read: Callable[[int], Tuple[Optional[bytes], Optional[str]]], leaf: int
) -> Tuple[Optional[Tuple[int, int, int, int]], str]:
    """CPUID ``leaf`` (EAX, EBX, ECX, EDX) through ``read`` (16 bytes, as the cpuid driver reads
    them, or the errno name), asked only when the highest extended leaf reaches it; else why not."""
    top, why = read(0x80000000)
    if top is None or len(top) != 16:
        return None, {
            "ENOENT": f"no {_CPUID_DEVICE} (the cpuid driver: modprobe cpuid)",
            "EACCES": f"{_CPUID_DEVICE} needs root",
            "EPERM": f"{_CPUID_DEVICE} needs root",
        }.get(why or "", f"{_CPUID_DEVICE}: {why or 'short read'}")
    highest = int.from_bytes(top[:4], "little")
    if highest < leaf:
        return None, f"the CPU's highest extended leaf is {highest:#x}: it has no leaf {leaf:#x}"
    raw, why = read(leaf)
    if raw is None or len(raw) != 16:
        return None, f"{_CPUID_DEVICE}: {why or 'short read'}"
    eax, ebx, ecx, edx = (int.from_bytes(raw[i : i + 4], "little") for i in range(0, 16, 4))
    return (eax, ebx, ecx, edx), ""


def _cmdline_words(text: Optional[str]) -> Optional[Tuple[str, ...]]:
    if text is None:
        return None
    wanted = ("kvm_amd.", "kvm_intel.", "kvm-amd.", "kvm-intel.", "sev=", "mem_encrypt=", "nohibernate", "hibernate=")
    return tuple(word for word in text.split() if word.startswith(wanted))


def _misc_capacity(reader: _Reader) -> Tuple[Optional[Dict[str, int]], Optional[str]]:
    for path in _MISC_CAPACITY:
        text = reader.text(path)
        if text is None:
            continue
        capacity: Dict[str, int] = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isascii() and parts[1].isdigit() and len(parts[1]) <= 19:
                capacity[parts[0]] = int(parts[1])
        return capacity, path
    return None, None


def _memlock(reader: _Reader) -> Optional[Tuple[int, int]]:
    for line in (reader.text("/proc/self/limits") or "").splitlines():
        if line.startswith("Max locked memory"):
            fields = line[len("Max locked memory"):].split()
            if len(fields) >= 2:
                try:
                    soft, hard = (-1 if f == "unlimited" else int(f) for f in fields[:2])
                except ValueError:
                    return None
                return soft, hard
    return None


def _ipc_lock(reader: _Reader) -> Optional[bool]:
    for line in (reader.text("/proc/self/status") or "").splitlines():
        if line.startswith("CapEff:"):
            try:
                return bool(int(line.split(":", 1)[1].strip(), 16) >> _CAP_IPC_LOCK & 1)
            except ValueError:
                return None
    return None


def _log_text(record: str) -> str:
    head, sep, text = record.partition(";")
    if sep and head.count(",") >= 2 and head.split(",")[0].isdigit():
        return text
    return record


def _kernel_log(reader: _Reader, keep: Tuple[str, ...]) -> Tuple[Optional[Tuple[str, ...]], str]:
    from ._cc_facts import MAX_LOG_CHARS, MAX_LOG_LINES

    if reader.real:
        records, why = _attempt(_read_kmsg)
        if records is None:
            return None, f"{_KMSG}: {why} (reading the kernel log needs CAP_SYSLOG)"
    else:
        text = reader.text(_KMSG, _TEXT_LIMIT)
        if text is None:
            return None, f"no {_KMSG} under the root read"
        records = text.splitlines()
    lines = [_log_text(r).split("\n", 1)[0].strip() for r in records]
    kept = [line[:MAX_LOG_CHARS] for line in lines if any(word in line for word in keep)]
    return tuple("".join(ch if ch.isprintable() else "?" for ch in line) for line in kept[-MAX_LOG_LINES:]), ""


def _read_kmsg() -> List[str]:
    # O_NONBLOCK: read returns EAGAIN at the end instead of waiting for new records.
    fd = os.open(_KMSG, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # ownership: closed below
    records: List[str] = []
    try:
        while len(records) < _KMSG_RECORDS:
            try:
                data = os.read(fd, _KMSG_RECORD_BYTES)
            except BlockingIOError:
                break
            except BrokenPipeError:  # EPIPE: the record was overwritten while reading; take the next
                continue
            if not data:
                break
            records.append(data.decode("utf-8", errors="replace"))
    finally:
        os.close(fd)
    return records


def read_confidential_files(root: str = "/") -> ConfidentialFacts:
    """The confidential-VM facts that files under ``root`` tell (no ioctl is issued).

    CPUID 0x8000001F (on this host ``/dev/cpu/0/cpuid``, else the instruction through
    ``_cpuid_insn``; under another root its ``dev/cpu/0/cpuid`` file; the leaf is read only
    when the CPU's highest extended leaf reaches it), the kernel command line, the
    misc cgroup's ``misc.capacity``, this process's memlock limit and CAP_IPC_LOCK, and the
    kernel-log lines about SEV and TDX (``/dev/kmsg``; under a fake root a text file there). A
    missing or unreadable file leaves its fact unknown, with the reason where one is known.

    Example:
        >>> import os, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     os.makedirs(os.path.join(tmp, "sys/fs/cgroup"))
        ...     with open(os.path.join(tmp, "sys/fs/cgroup/misc.capacity"), "w") as f:
        ...         _ = f.write("sev 410\\nsev_es 99\\n")
        ...     facts = read_confidential_files(tmp)
        >>> dict(facts.misc_capacity), facts.memlock, facts.cpuid_note
        ({'sev': 410, 'sev_es': 99}, None, 'no /dev/cpu/0/cpuid (the cpuid driver: modprobe cpuid)')
    """
    from ._cc_data import CPUID_LEAF, LOG_KEEP

    reader = _Reader(root)
    top = reader.pread(_CPUID_DEVICE, 16, 0x80000000)  # the highest extended leaf, asked once
    if reader.real and (top[0] is None or len(top[0]) != 16):
        # This host without the cpuid driver's file (no driver, not root): the CPUID instruction,
        # which needs neither. The file comes first because reading it loads no ctypes.
        from ._cpuid_insn import open_host_cpuid

        with open_host_cpuid() as (function, source):
            if function is None:
                cpuid, note = None, source
            else:
                cpuid, note = _confidential_leaf(lambda leaf: (_packed(function(leaf, 0)), None), CPUID_LEAF)
    else:  # the cpuid driver's file, or a tree that looks like another host: its file, laid out alike
        cpuid, note = _confidential_leaf(
            lambda leaf: top if leaf == 0x80000000 else reader.pread(_CPUID_DEVICE, 16, leaf), CPUID_LEAF)
    capacity, misc_path = _misc_capacity(reader)
    log, log_note = _kernel_log(reader, LOG_KEEP)
    return ConfidentialFacts(
        cpuid=cpuid,
        cpuid_note=note,
        cmdline=_cmdline_words(reader.text("/proc/cmdline")),
        misc_capacity=capacity,
        misc_path=misc_path,
        memlock=_memlock(reader),
        ipc_lock=_ipc_lock(reader),
        kernel_log=log,
        kernel_log_note=log_note,
    )
