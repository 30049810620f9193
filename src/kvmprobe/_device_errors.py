"""What an errno from opening the KVM device or from one of its ioctls means, as a kvmprobe error.

Imports ``errors``, ``_arch``, ``_access`` and ``_host_files``: the other room of ``device``, which raises what
these functions make (it stays the one place errno values become kvmprobe errors; these only
word them, with the fix for this host: the owner and mode of the node, who may open it, the
container it runs in). The remedy for a permission error is ``doctor``'s, from ``_access``.
"""

from __future__ import annotations

import errno
import os
import stat

from ._arch import is_x86
from .errors import KvmBusy, KvmIoctlError, KvmNotFound, KvmPermissionDenied, KvmUnavailable, NotAKvmDevice, describe_errno

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Tuple

__all__ = [
    "DOCTOR_HINT", "KERNEL_LOG_HINT", "KVM_PATH", "NOT_MAINLINE_HINT", "NOT_THE_DEVICE_HINT", "built_in_kvm_hint", "ioctl_error", "is_kvm_node", "open_error", "other_node_hint",
    "permission_hint", "policy_hint",
]

#: Where the KVM device node is (``device.DEFAULT_DEVICE``): ``/dev/kvm``, misc device 10:232
#: (``include/linux/miscdevice.h``: ``KVM_MINOR 232``; ``Documentation/admin-guide/devices.txt``).
KVM_PATH = "/dev/kvm"
KVM_NUMBER = (10, 232)

# The remedy sentences the device's errors share with the doctor (``_checks``), each written
# once: here, the lowest room both import (``device`` may not import ``_remedies``, its floor).
#: A device that answers another KVM API version than 12.
NOT_MAINLINE_HINT = "this kernel's KVM is not the mainline interface; use a mainline KVM kernel"
#: A KVM ioctl failing with no errno-specific remedy: the doctor looks at the whole host.
DOCTOR_HINT = "run 'python -m kvmprobe doctor' for a diagnosis of this host"
#: What the doctor itself says of such a failure (it is already the diagnosis).
KERNEL_LOG_HINT = "the kernel log ('dmesg | tail') may say why KVM refused it"
#: A path that is no KVM device (a directory, or a node that answers ENOTTY).
NOT_THE_DEVICE_HINT = "point kvmprobe at the KVM device (--device /dev/kvm or KVMPROBE_DEVICE)"


def policy_hint(certain: bool = True) -> str:
    """The remedy of a KVM ioctl refused (EPERM/EACCES) or failing where it should not.

    Example:
        >>> policy_hint(False)
        'a security policy (seccomp, SELinux, a container runtime) may block KVM ioctls for this process'
    """
    return f"a security policy (seccomp, SELinux, a container runtime) {'blocks' if certain else 'may block'} " \
        "KVM ioctls for this process"


_NOT_FOUND = (errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.ENOTDIR)
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)
_NOT_KVM = (errno.ENOTTY, errno.EISDIR, errno.EINVAL)


def _owner(st: os.stat_result) -> Tuple[str, str]:
    import grp  # only on this error path
    import pwd

    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return user, group


def permission_hint(path: str, st: Optional[os.stat_result]) -> str:
    """What to do when this process may not open ``path``: the remedy ``doctor`` gives for the
    same node (one source, :func:`kvmprobe._access.permission`), from the node's mode, owner and
    ACL, this process's credentials and groups, and whether it runs in a container.

    Example:
        >>> permission_hint("/dev/kvm", None).startswith(("run as root", "in this"))
        True
    """
    import grp  # only on this error path
    import pwd

    from . import _access, _host_files as host_files

    uid = os.geteuid()
    try:
        name: Optional[str] = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = None
    who = _access.Who(uid, os.getegid(), tuple(os.getgroups()), name)
    group_name: Optional[str] = None
    members: Tuple[str, ...] = ()
    if st is not None:
        try:
            entry = grp.getgrgid(st.st_gid)
            group_name, members = entry.gr_name, tuple(entry.gr_mem)
        except KeyError:
            pass
    try:
        grp.getgrnam("kvm")
        kvm_group = True
    except KeyError:
        kvm_group = False
    container = host_files.container(host_files.Reader("/"))  # the host reader's one detection
    node = _access.node_of(st, _access.read_acl(path)) if st is not None else None
    return _access.permission(
        path, node, who, who_text=f"{name} (uid {uid})" if name else f"uid {uid}", group_name=group_name,
        group_members=members, kvm_group=kvm_group, container=container,
    )[1]


def is_kvm_node(path: str, number: Optional[Tuple[int, int]] = None) -> bool:
    """Whether ``path`` is meant as the KVM device: it is ``/dev/kvm`` (a trailing ``/`` makes it
    another path), or its node's ``(major, minor)`` is KVM's. Only then is loading KVM, or
    recreating the node, the fix for a failure to open it; else the path is the mistake.

    Example:
        >>> is_kvm_node("/dev/kvm"), is_kvm_node("/dev/kvm/"), is_kvm_node("/dev/tty", (5, 0))
        (True, False, False)
    """
    if not path.endswith("/") and os.path.normpath(path) == KVM_PATH:
        return True
    return number == KVM_NUMBER


def other_node_hint(path: str, *, live: bool = False) -> str:
    """The fix for a device path that is not the KVM device: drop a trailing ``/``; name
    ``/dev/kvm`` when it is there (``live``: this host's); else point at the KVM node.

    Example:
        >>> other_node_hint("/dev/kvm/")
        "drop the trailing '/': --device /dev/kvm"
    """
    stripped = path.rstrip("/")
    if stripped != path and is_kvm_node(stripped):
        return f"drop the trailing '/': --device {stripped}"
    if live and os.path.exists(KVM_PATH):
        return f"the KVM device here is {KVM_PATH}: give --device {KVM_PATH} (or unset KVMPROBE_DEVICE)"
    return NOT_THE_DEVICE_HINT


def missing_kvm_hint(machine: str) -> str:
    """What to do when there is no KVM device, for this machine's architecture.

    Example:
        >>> missing_kvm_hint("aarch64").startswith("on aarch64 KVM is part of the kernel")
        True
        >>> "kvm_intel" in missing_kvm_hint("x86_64"), "kvm_intel" in missing_kvm_hint("s390x")
        (True, False)
    """
    where = "; in a VM enable nested virtualization; in a container pass --device /dev/kvm; " \
        "'python -m kvmprobe doctor' says which"
    if is_x86(machine):
        return "load the KVM module (modprobe kvm_intel, kvm_amd or kvm_pvm) and enable VT-x/AMD-V in the firmware" + where
    return built_in_kvm_hint(machine) + where


def built_in_kvm_hint(machine: str) -> str:
    """Where KVM is no module (every architecture but x86): the kernel must carry it.

    Example:
        >>> built_in_kvm_hint("s390x")
        'on s390x KVM is part of the kernel: boot a kernel with CONFIG_KVM=y'
    """
    return f"on {machine} KVM is part of the kernel: boot a kernel with CONFIG_KVM=y"


def _live_number(path: str) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (os.major(st.st_rdev), os.minor(st.st_rdev)) if stat.S_ISCHR(st.st_mode) else None


def open_error(path: str, err: OSError) -> KvmUnavailable:
    return open_failure(path, err.errno or 0)


def open_failure(path: str, code: int, *, live: bool = True) -> KvmUnavailable:
    """The error of ``open(2)`` of ``path`` failing with errno ``code``, with its fix.

    ``live``: the node is looked at for the permission message and hint; a recording of such a
    failure (``kvmprobe-collect.py``) passes ``False``, its facts being another host's.

    Example:
        >>> open_failure("/dev/kvm", 2, live=False).message
        '/dev/kvm does not exist'
    """
    if code in _NOT_FOUND:
        meant = is_kvm_node(path, _live_number(path) if live else None)
        if code == errno.ENOENT:
            what = f"{path} does not exist"
        elif code == errno.ENOTDIR:
            what = f"{path} does not exist: a part of the path before a '/' is not a directory (ENOTDIR)"
        elif meant:
            what = f"{path} has no KVM driver behind it ({describe_errno(code)})"
        else:
            what = f"{path} has no driver behind it ({describe_errno(code)}): it is not the KVM device"
        if meant or (code == errno.ENOENT and not (live and os.path.exists(KVM_PATH)) and not path.endswith("/")):
            hint = missing_kvm_hint(os.uname().machine)
        else:  # a typo, a trailing '/', another device: the path is the mistake
            hint = other_node_hint(path, live=live)
        return KvmNotFound(what, hint=hint, path=path, errno=code)
    if code in _DENIED:
        try:
            st: Optional[os.stat_result] = os.stat(path) if live else None
        except OSError:
            st = None
        detail = ""
        if st is not None:
            user, group = _owner(st)
            detail = f" (mode {stat.filemode(st.st_mode)} {user}:{group})"
        return KvmPermissionDenied(
            f"cannot open {path} read-write: permission denied{detail}",
            hint=permission_hint(path, st) if live else "give the user who recorded the host access to it "
            "('kvmprobe doctor --snapshot FILE' says how, from the recorded facts)",
            path=path,
            errno=code,
        )
    if code == errno.EISDIR:
        return NotAKvmDevice(
            f"{path} is a directory, not a KVM device",
            hint=other_node_hint(path, live=live),
            path=path,
            errno=code,
        )
    return KvmIoctlError(
        f"cannot open {path}: {describe_errno(code)}",
        hint="check the device path (--device or KVMPROBE_DEVICE) and run 'python -m kvmprobe doctor'",
        path=path,
        errno=code,
    )


def recorded_failure(path: str, code: int) -> Tuple[bool, KvmUnavailable]:
    """``(opened, error)`` for a recording of a device that failed with errno ``code`` before it
    answered ``KVM_GET_API_VERSION`` (``kvmprobe-collect.py`` records such a host with API
    version 0 and that errno on every query). An errno ``open(2)`` gives for a missing, forbidden
    or misplaced node is taken as the open's; any other as ``KVM_GET_API_VERSION``'s.

    Example:
        >>> opened, error = recorded_failure("/dev/null", errno.ENOTTY)
        >>> opened, type(error).__name__
        (True, 'NotAKvmDevice')
    """
    if code in _NOT_FOUND + _DENIED + (errno.EISDIR,):
        return False, open_failure(path, code, live=False)
    return True, ioctl_error(path, "KVM_GET_API_VERSION", OSError(code, os.strerror(code)))


def ioctl_error(path: str, name: str, err: OSError) -> KvmUnavailable:
    code = err.errno or 0
    if code in _NOT_KVM and name == "KVM_GET_API_VERSION":
        return NotAKvmDevice(
            f"{path} is not a KVM device ({name}: {describe_errno(code)})",
            hint=other_node_hint(path),
            path=path,
            errno=code,
        )
    if code == errno.EBUSY and name == "KVM_CREATE_VM":
        return KvmBusy(
            f"{name} failed on {path}: {describe_errno(code)}",
            hint="another hypervisor (VirtualBox, VMware) holds VT-x/AMD-V: stop it or unload its module "
            "(e.g. 'sudo modprobe -r vboxdrv')",
            path=path,
            errno=code,
        )
    if code in (errno.EPERM, errno.EACCES):
        return KvmPermissionDenied(
            f"{name} refused on {path}: {describe_errno(code)}",
            hint=policy_hint(),
            path=path,
            errno=code,
        )
    if name == "KVM_GET_API_VERSION":
        # KVM answers it whatever the state (virt/kvm/kvm_main.c kvm_dev_ioctl: KVM_API_VERSION,
        # EINVAL only for an argument): another errno (EBADFD from /dev/net/tun) is another device.
        return KvmIoctlError(
            f"{name} failed on {path}: {describe_errno(code)}: it is not the KVM device",
            hint=other_node_hint(path),
            path=path,
            errno=code,
        )
    return KvmIoctlError(
        f"{name} failed on {path}: {describe_errno(code)}",
        hint=DOCTOR_HINT,
        path=path,
        errno=code,
    )

