"""The exception tree of kvmprobe, each error with the fix for it.

Imports nothing from the package. Every error carries ``message`` (what is wrong,
with the facts observed), ``hint`` (what to do about it), and ``path`` / ``errno``
where they apply. ``str(err)`` is one line: the message, then the hint.

::

    KvmProbeError (alias KvmError)
    ├── KvmUnavailable              /dev/kvm cannot be used at all (CLI exit 3)
    │   ├── KvmNotFound             ENOENT/ENODEV/ENXIO: no device node or no KVM module
    │   ├── KvmPermissionDenied     EACCES/EPERM: this user may not open the device
    │   ├── NotAKvmDevice           ENOTTY/EISDIR/... or an API version other than 12
    │   ├── KvmBusy                 EBUSY on KVM_CREATE_VM: another hypervisor holds VT-x/AMD-V
    │   ├── KvmIoctlError           opening the device, its API version, KVM_CREATE_VM or a guest's ioctl failed
    │   └── UnsupportedPlatform     not Linux, or an arch with no ioctl encoding
    ├── UnknownCapability (+LookupError)   a name that is no KVM capability; suggests close ones
    ├── UnknownCpuFeature (+LookupError)   a name that is no CPUID feature bit; suggests close ones
    ├── CapabilityQueryFailed (+LookupError) one KVM_CHECK_EXTENSION failed; the device still works
    ├── IoctlFailed (+LookupError)         one query ioctl (KVM_GET_SUPPORTED_CPUID, ...) failed; the device still works
    ├── NotRecorded (+LookupError)         a recorded host lacks the data asked for (not "unsupported")
    │   └── CapabilityNotRecorded          a recorded host has no answer for a capability (no row)
    ├── SnapshotError (+ValueError)        a malformed recorded host: the file and the field
    ├── ProfileError (+ValueError)         a malformed custom VMM profile: the file and the key
    ├── UnknownVmm (+LookupError)          no built-in VMM profile by that name (or for that arch)
    │   └── UnknownRelease                 a release of that VMM no built-in profile covers
    ├── UnknownUser (+LookupError)         --as-user names no account in the passwd file read
    ├── BackendUnavailable                 the forced ioctl backend (KVMPROBE_BACKEND) is missing
    ├── BadDevicePath (+ValueError)        an empty device path (--device '', KVMPROBE_DEVICE=): none to open
    ├── EmulationError                     'kvmprobe emulate'/'learn' cannot run the command as asked
    ├── GuestError (+ValueError)           a micro-guest cannot be run as asked (code, time limit, arch)
    └── IncomparableHosts (+ValueError)    hosts a fleet command cannot compare (architectures differ, none given)
"""

from __future__ import annotations

import errno as _errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "BackendUnavailable",
    "BadDevicePath",
    "CapabilityNotRecorded",
    "CapabilityQueryFailed",
    "EmulationError",
    "IoctlFailed",
    "GuestError",
    "IncomparableHosts",
    "KvmBusy",
    "KvmError",
    "KvmIoctlError",
    "KvmNotFound",
    "KvmPermissionDenied",
    "KvmProbeError",
    "KvmUnavailable",
    "NotAKvmDevice",
    "NotRecorded",
    "ProfileError",
    "SnapshotError",
    "UnknownCapability",
    "UnknownCpuFeature",
    "UnknownRelease",
    "UnknownUser",
    "UnknownVmm",
    "UnsupportedPlatform",
]


class KvmProbeError(Exception):
    """Base of every error kvmprobe raises on purpose.

    Example:
        >>> err = KvmProbeError("something is wrong", hint="do this")
        >>> str(err)
        'something is wrong (hint: do this)'
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str = "",
        path: str | None = None,
        errno: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.path = path
        self.errno = errno

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default Exception pickling,
        # which multiprocessing and pytest-xdist rely on.
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[KvmProbeError], state: dict[str, Any]) -> KvmProbeError:
    err = cls.__new__(cls)
    Exception.__init__(err, state.get("message", ""))
    err.__dict__.update(state)
    return err


KvmError = KvmProbeError


class KvmUnavailable(KvmProbeError):
    """KVM cannot be used through this device at all.

    Example:
        >>> issubclass(KvmNotFound, KvmUnavailable)
        True
    """


class KvmNotFound(KvmUnavailable):
    """The device node is missing, or no KVM module backs it (ENOENT, ENODEV, ENXIO).

    Example:
        >>> KvmNotFound("/dev/kvm does not exist", path="/dev/kvm").path
        '/dev/kvm'
    """


class KvmPermissionDenied(KvmUnavailable):
    """This user may not open the device read-write (EACCES, EPERM, EROFS).

    Example:
        >>> KvmPermissionDenied("no", errno=13).errno
        13
    """


class NotAKvmDevice(KvmUnavailable):
    """The path opens but is not a KVM device: ENOTTY on KVM_GET_API_VERSION, or API != 12.

    Example:
        >>> NotAKvmDevice("/tmp/x is not a KVM device").message
        '/tmp/x is not a KVM device'
    """


class KvmBusy(KvmUnavailable):
    """KVM_CREATE_VM failed with EBUSY: another hypervisor holds the virtualization extensions.

    Example:
        >>> issubclass(KvmBusy, KvmUnavailable)
        True
    """


class KvmIoctlError(KvmUnavailable):
    """Opening the device, ``KVM_GET_API_VERSION`` or ``KVM_CREATE_VM`` failed with an errno that
    nothing more specific explains, so the device cannot be used; or a VM or vCPU ioctl of a
    micro-guest failed (``KVM_CREATE_VCPU``, ``KVM_SET_SREGS``, ``KVM_RUN``: a guest cannot run).
    (One failed capability query is :class:`CapabilityQueryFailed`: the device still answers
    everything else.)

    Example:
        >>> KvmIoctlError("KVM_GET_API_VERSION failed", errno=5).errno
        5
    """


class UnsupportedPlatform(KvmUnavailable):
    """Not Linux, or a CPU architecture whose ioctl encoding kvmprobe does not know.

    Example:
        >>> issubclass(UnsupportedPlatform, KvmProbeError)
        True
    """


class UnknownCapability(KvmProbeError, LookupError):
    """A name or number that is no KVM capability kvmprobe knows; carries close matches.

    Example:
        >>> err = UnknownCapability("IMEDIATE_EXIT", ["KVM_CAP_IMMEDIATE_EXIT"])
        >>> err.suggestions
        ['KVM_CAP_IMMEDIATE_EXIT']
    """

    def __init__(self, name: str, suggestions: list[str] | None = None, *, hint: str = "") -> None:
        self.name = name
        self.suggestions = list(suggestions or [])
        if not hint:
            if self.suggestions:
                hint = "did you mean " + ", ".join(self.suggestions) + "?"
            else:
                hint = "run 'python -m kvmprobe --all' to list every capability"
        super().__init__(f"unknown KVM capability {name!r}", hint=hint)


class UnknownCpuFeature(KvmProbeError, LookupError):
    """A name that is no x86 CPUID feature bit kvmprobe knows; carries close matches.

    Example:
        >>> err = UnknownCpuFeature("avx513f", ["avx512f"])
        >>> str(err)
        "unknown CPU feature 'avx513f' (hint: did you mean avx512f?)"
    """

    def __init__(self, name: str, suggestions: list[str] | None = None, *, hint: str = "") -> None:
        self.name = name
        self.suggestions = list(suggestions or [])
        if not hint:
            if self.suggestions:
                hint = "did you mean " + ", ".join(self.suggestions) + "?"
            else:
                hint = "give the flag as /proc/cpuinfo spells it (pni, sse4_1, avx2) or its kernel macro"
        super().__init__(f"unknown CPU feature {name!r}", hint=hint)


class CapabilityQueryFailed(KvmProbeError, LookupError):
    """KVM_CHECK_EXTENSION for this capability failed, so its value is not known.

    Raised by ``ProbeResult.has()``/``value()`` for a query the probe recorded as failed, and by
    ``KvmDevice.check_extension()`` for one that fails now. KVM itself stays usable.

    Example:
        >>> CapabilityQueryFailed("KVM_CAP_HLT", 5).errno
        5
    """

    def __init__(self, c_name: str, errno: int) -> None:
        self.c_name = c_name
        super().__init__(
            f"KVM_CHECK_EXTENSION({c_name}) failed: {describe_errno(errno)}",
            hint="the kernel gave no answer for this capability; see 'python -m kvmprobe doctor'",
            errno=errno,
        )


class IoctlFailed(KvmProbeError, LookupError):
    """One query ioctl on a working KVM fd failed: its answer is unknown, the device still works.

    Raised by ``KvmDevice``'s CPU and attribute queries (KVM_GET_SUPPORTED_CPUID,
    KVM_GET_MSRS, KVM_GET_DEVICE_ATTR, ...). ``ioctl`` is the kernel's name of the call that
    failed, ``errno`` its errno: ENOTTY or EINVAL mostly mean a kernel without that ioctl,
    ENXIO an attribute it does not know. Callers record it; it is never "unsupported".

    Example:
        >>> err = IoctlFailed("KVM_GET_EMULATED_CPUID", 25)
        >>> err.ioctl, err.errno, err.message
        ('KVM_GET_EMULATED_CPUID', 25, 'KVM_GET_EMULATED_CPUID failed: ENOTTY (Inappropriate ioctl for device)')
    """

    def __init__(self, ioctl: str, errno: int, *, path: str | None = None, hint: str = "") -> None:
        self.ioctl = ioctl
        super().__init__(
            f"{ioctl} failed: {describe_errno(errno)}",
            hint=hint or "an older kernel or another architecture may lack this ioctl; 'python -m kvmprobe doctor' "
            "diagnoses the device",
            path=path,
            errno=errno,
        )


class NotRecorded(KvmProbeError, LookupError):
    """A recorded host (snapshot or preset) does not carry the data asked for: not recorded,
    which says nothing about whether that host supports it (CLI exit 2).

    Example:
        >>> str(NotRecorded("CPU data", "preset:linux-4.14 (synthesized)"))
        "preset:linux-4.14 (synthesized): CPU data not recorded (hint: record the host with 'python -m kvmprobe snapshot --vm -o FILE' and read that file)"
    """

    def __init__(self, what: str, source: str, *, hint: str = "") -> None:
        self.what = what
        self.source = source
        super().__init__(
            f"{source}: {what} not recorded",
            hint=hint or "record the host with 'python -m kvmprobe snapshot --vm -o FILE' and read that file",
        )


class CapabilityNotRecorded(NotRecorded):
    """A recorded host (a snapshot) has no answer for this capability: its row is missing.

    Not recorded is not unsupported: the host may well have it. Raised by
    ``ProbeResult.has()``/``value()`` for such a capability.

    Example:
        >>> str(CapabilityNotRecorded("KVM_CAP_HLT", "host.json"))
        "host.json records no answer for KVM_CAP_HLT (its row is missing) (hint: record the host again with 'python -m kvmprobe snapshot -o FILE' to know it)"
    """

    def __init__(self, c_name: str, source: str) -> None:
        self.c_name = c_name
        self.what = c_name
        self.source = source
        KvmProbeError.__init__(
            self,
            f"{source} records no answer for {c_name} (its row is missing)",
            hint="record the host again with 'python -m kvmprobe snapshot -o FILE' to know it",
        )


def _located(message: str, path: str | None, part: str) -> str:
    """``file: part: message``, leaving out what is not known."""
    where = ": ".join(p for p in (path or "", part) if p)
    return f"{where}: {message}" if where else message


class SnapshotError(KvmProbeError, ValueError):
    """A recorded host (snapshot) is malformed: names the file and the JSON path of the field.

    Example:
        >>> str(SnapshotError("expected an integer", path="h.json", field="$.api_version"))
        "h.json: $.api_version: expected an integer (hint: record the host again with 'python -m kvmprobe snapshot -o FILE')"
    """

    def __init__(self, message: str, *, path: str | None = None, field: str = "", hint: str = "") -> None:
        self.field = field
        super().__init__(
            _located(message, path, field),
            hint=hint or "record the host again with 'python -m kvmprobe snapshot -o FILE'",
            path=path,
        )


class ProfileError(KvmProbeError, ValueError):
    """A custom VMM profile file is malformed: names the file, the key and what was expected.

    Example:
        >>> ProfileError("expected a list of capability names", path="p.toml", key="required").key
        'required'
    """

    def __init__(self, message: str, *, path: str | None = None, key: str = "", hint: str = "") -> None:
        self.key = key
        super().__init__(
            _located(message, path, key),
            hint=hint or "see 'Your own VMM: a profile file' in docs/profiles.md for the file format",
            path=path,
        )


class UnknownVmm(KvmProbeError, LookupError):
    """No built-in VMM profile has this name (or none exists for that architecture); ``what``
    names what was looked for when it is not a VMM (a confidential-VM kind, either).

    ``known`` lists the names there are; ``suggestions`` the close ones.

    Example:
        >>> err = UnknownVmm("cloud-hypervsor", ["cloud-hypervisor"], known=["cloud-hypervisor", "qemu"])
        >>> err.suggestions, err.hint
        (['cloud-hypervisor'], 'did you mean cloud-hypervisor?')
    """

    def __init__(
        self,
        name: str,
        suggestions: list[str] | None = None,
        *,
        known: list[str] | None = None,
        arch: str | None = None,
        hint: str = "",
        what: str = "built-in VMM profile",
    ) -> None:
        self.name = name
        self.suggestions = list(suggestions or [])
        self.known = list(known or [])
        self.arch = arch
        if not hint:
            if self.suggestions:
                hint = "did you mean " + ", ".join(self.suggestions) + "?"
            else:
                hint = "known: " + ", ".join(self.known) + "; or describe it in a file for --profile"
        where = f" for {arch}" if arch else ""
        super().__init__(f"no {what} {name!r}{where}", hint=hint)


class UnknownRelease(UnknownVmm):
    """A release of a known VMM that no built-in profile covers, or a version that names none.

    ``version`` is what was asked; ``known`` the release ranges there are for ``arch`` (oldest
    first), the last of which is what no version means.

    Example:
        >>> err = UnknownRelease("Cloud Hypervisor", "v20", arch="x86_64", known=["v21.0", "v53.0 to v53.x"])
        >>> print(err)
        no Cloud Hypervisor release v20 in kvmprobe's profiles for x86_64 (hint: kvmprobe knows Cloud Hypervisor v21.0, v53.0 to v53.x on x86_64; name a release in one of those ranges, or none for the newest (v53.0 to v53.x))
    """

    def __init__(
        self,
        vmm: str,
        version: str,
        *,
        arch: str | None = None,
        known: list[str] | None = None,
        malformed: str = "",
    ) -> None:
        self.name = vmm
        self.version = version
        self.suggestions: list[str] = []
        self.known = list(known or [])
        self.arch = arch
        where = f" on {arch}" if arch else ""
        ranges = ", ".join(self.known)
        newest = self.known[-1] if self.known else ""
        if malformed:
            message = f"{version!r} is not a {vmm} release (it writes them like {malformed})"
        else:
            message = f"no {vmm} release {version} in kvmprobe's profiles" + (f" for {arch}" if arch else "")
        hint = (
            f"kvmprobe knows {vmm} {ranges}{where}; name a release in one of those ranges, or none for the newest ({newest})"
            if self.known
            else f"kvmprobe has no {vmm} profile{where}"
        )
        KvmProbeError.__init__(self, message, hint=hint)


class UnknownUser(KvmProbeError, LookupError):
    """``doctor --as-user`` (``diagnose(as_user=...)``) names no account of the passwd file read.

    Example:
        >>> UnknownUser("no account 'qemu' in /etc/passwd", hint="give a user name or uid").hint
        'give a user name or uid'
    """


class BackendUnavailable(KvmProbeError):
    """The ioctl backend asked for (``KVMPROBE_BACKEND``) cannot be loaded here.

    Example:
        >>> BackendUnavailable("cffi backend not built").message
        'cffi backend not built'
    """


class BadDevicePath(KvmProbeError, ValueError):
    """The KVM device path given names nothing to open: ``--device ''``, or ``KVMPROBE_DEVICE``
    set but empty (a script passing an unset variable). Bad input (CLI exit 2), never a silent
    ``/dev/kvm`` in its place.

    Example:
        >>> str(BadDevicePath("the device path is empty", hint="give --device PATH"))
        'the device path is empty (hint: give --device PATH)'
    """


class EmulationError(KvmProbeError):
    """A command cannot be run on an emulated host: no seccomp filter here (not Linux, another
    architecture, a kernel or sandbox without it), or the command cannot be started. The
    command is never run unfiltered instead (CLI exit 2).

    Example:
        >>> str(EmulationError("cannot run nosuch: No such file or directory", hint="give a program on PATH"))
        'cannot run nosuch: No such file or directory (hint: give a program on PATH)'
    """


class GuestError(KvmProbeError, ValueError):
    """A micro-guest cannot be run as asked: code that does not fit the guest's memory, a time
    limit that is not a positive number of seconds, an unknown CPU mode, or an architecture whose
    guests kvmprobe cannot build yet (CLI exit 2).

    Example:
        >>> str(GuestError("a time limit of 0 s", hint="give a positive number of seconds"))
        'a time limit of 0 s (hint: give a positive number of seconds)'
    """


class IncomparableHosts(KvmProbeError, ValueError):
    """The hosts given to a fleet command cannot be compared: their architectures differ (no
    guest moves between them), there is none, or a VMM is asked for what it does not do (a
    Firecracker live migration). CLI exit 2.

    Example:
        >>> str(IncomparableHosts("a.json is x86_64, b.json is aarch64", hint="compare hosts of one architecture"))
        'a.json is x86_64, b.json is aarch64 (hint: compare hosts of one architecture)'
    """


# errno of a failed write -> (what happened, what to do), with {directory} and {errno} filled in.
_ACCESS = ("permission denied in {directory} ({errno})", "choose a directory this user may write to, or run with the "
           "rights to write there")  # fmt: skip
_FULL = ("{errno}", "free some space, or choose another file system")
_WRITE_FAILURES = {
    _errno.ENOENT: ("the directory {directory} does not exist", "create it first (mkdir -p {directory}) or choose another path"),
    _errno.ENOTDIR: ("a part of {directory} is not a directory", "choose another path"),
    _errno.EACCES: _ACCESS,
    _errno.EPERM: _ACCESS,
    _errno.EROFS: ("{directory} is on a read-only file system", "choose another path"),
    _errno.ENOSPC: _FULL,
    _errno.EDQUOT: _FULL,
}


def write_failure(path: str, err: BaseException, *, option: str = "-o", dash: str = "standard output") -> tuple[str, str]:
    """``(message, hint)`` for a file kvmprobe could not write (``-o FILE``, ``--trace=FILE``).

    The one wording every command uses (snapshot, export, emulate, learn): what stands at
    the path or what failed, and what to do. Nothing was changed in any case (the writer,
    :func:`kvmprobe.write_atomic`, replaces a file whole or not at all). ``option`` and ``dash``:
    how the hint names the option, and what ``-`` means for it.

    A directory named in the message is one that was looked at: ``ENOENT`` where the directory
    exists (``/proc/self/status``: a file system that takes no new files) is not "the directory
    does not exist".

    Example:
        >>> write_failure("out/", IsADirectoryError(21, "a directory", "out/"))[0]
        'cannot write out/: it is a directory'
        >>> write_failure("/nonexistent/h.json", FileNotFoundError(2, "No such file or directory"))[0]
        'cannot write /nonexistent/h.json: the directory /nonexistent does not exist'
        >>> write_failure("/proc/self/status", FileNotFoundError(2, "No such file or directory"))[0]
        'cannot write /proc/self/status: /proc/self takes no new files (ENOENT (No such file or directory))'
    """
    unchanged = "nothing was changed"
    flag = option if option.endswith("=") else f"{option} "  # '--trace=FILE', '-o FILE'
    if isinstance(path, str) and not path:
        return "cannot write to an empty path", f"give a file name ({flag}FILE), or '-' for {dash}"
    directory = os.path.dirname(os.path.abspath(path)) if isinstance(path, str) else ""
    if isinstance(err, ValueError):  # an embedded NUL, or a surrogate the file system encoding cannot carry
        return f"cannot write {ascii(path)}: not a file name ({err})", "give a path without NUL bytes or undecodable characters"
    code = getattr(err, "errno", None) or 0
    strerror = getattr(err, "strerror", None) or ""
    if code == _errno.EISDIR:
        return f"cannot write {path}: it is a directory", f"name a file in it ({flag}{path.rstrip('/')}/NAME), or '-' for {dash}"
    if code == _errno.EEXIST and ("not a regular file" in strerror or strerror.startswith("a symbolic link")):
        if strerror.startswith("a symbolic link"):
            hint = (f"kvmprobe never replaces a symbolic link, and left this one alone; give the path it points to, "
                    f"remove the link first, or '-' for {dash}")
        else:
            hint = (f"kvmprobe replaces only regular files, and left this one alone; give the path of a file, or '-' "
                    f"for {dash}")
        return f"cannot write {path}: it is {strerror}", hint
    if code in (_errno.ENOENT, _errno.ENOTDIR) and directory and os.path.isdir(directory):
        # The directory is there: it refuses new files (procfs, sysfs), or the path is odd.
        return (f"cannot write {path}: {directory} takes no new files ({describe_errno(code)})",
                f"choose a path on an ordinary file system; {unchanged}")
    known = _WRITE_FAILURES.get(code)
    if known is not None:
        reason, hint = known
        fill = {"directory": directory, "errno": describe_errno(code)}
        return f"cannot write {path}: {reason.format(**fill)}", f"{hint.format(**fill)}; {unchanged}"
    reason = describe_errno(code) if code else str(err)
    return f"cannot write {path}: {reason}", f"choose a path in a writable directory; {unchanged}"


def describe_errno(code: int) -> str:
    """``EACCES (Permission denied)`` for an errno value.

    Example:
        >>> describe_errno(13)
        'EACCES (Permission denied)'
    """
    name = _errno.errorcode.get(code, f"errno {code}")
    return f"{name} ({os.strerror(code)})"
