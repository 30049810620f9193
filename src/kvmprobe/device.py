"""An open KVM device (the analog of kvm-ioctls ``Kvm``) and a short-lived VM fd.

Imports ``caps``, ``_ioctl``, ``_device_x86``, ``_device_errors``, ``_vcpu``, ``_backend``,
``_backend_select`` and ``errors``. This is the one place where errno values from ``open(2)`` and
``ioctl(2)`` become kvmprobe errors with their fixes (worded in ``_device_errors``), and where an interrupted call (``EINTR``) is asked again, a bounded
number of times. Nothing here caches: see ``probe`` for that. The x86 CPU queries (supported
and emulated CPUID, MSR lists, feature MSRs, device attributes, a scratch vCPU's TSC rate) are
``KvmDevice`` methods from ``_device_x86``; their errno becomes
:class:`~kvmprobe.errors.IoctlFailed` here, in :meth:`KvmDevice._asked`.
"""

from __future__ import annotations

import errno
import os
import sys

from ._backend import Backend
from ._backend_select import select_backend
from ._device_errors import (
    KVM_PATH, NOT_MAINLINE_HINT, ioctl_error, open_error, open_failure, permission_hint, recorded_failure,
)
from ._device_x86 import X86Queries
from ._ioctl import KVM_API_VERSION, KvmIoctls
from .caps import Cap
from .errors import BadDevicePath, CapabilityQueryFailed, IoctlFailed, KvmIoctlError, KvmNotFound, NotAKvmDevice, UnsupportedPlatform

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any, Callable, ContextManager, Optional, Sequence, Type, TypeVar, Union

    from ._backend import CheckResults
    from ._vcpu import GuestMemory, VcpuFd
    from .caps import CapLike

    _T = TypeVar("_T")

__all__ = ["DEFAULT_DEVICE", "KvmDevice", "VmFd", "device_path", "open_failure", "permission_hint", "recorded_failure"]

DEFAULT_DEVICE = KVM_PATH



def device_path(path: Optional[str] = None) -> str:
    """The device to open: ``path``, else ``$KVMPROBE_DEVICE``, else ``/dev/kvm``; resolved once.

    A relative path is taken from the working directory and made absolute here, so that every
    later use (the open, the node's ``stat`` under the root read, the messages) names one file.
    Nothing else is changed: no ``..`` is folded, no symlink resolved (the kernel does that).

    Raises:
        BadDevicePath: ``path`` is empty, or ``KVMPROBE_DEVICE`` is set but empty: a script's
            unset variable must not silently become ``/dev/kvm``.

    Example:
        >>> device_path("/dev/kvm")
        '/dev/kvm'
        >>> device_path("")
        Traceback (most recent call last):
        ...
        kvmprobe.errors.BadDevicePath: the KVM device path given (--device) is empty (hint: give the device's path, e.g. --device /dev/kvm, or leave the option out for the default)
    """
    if path is None:
        path = os.environ.get("KVMPROBE_DEVICE")
        if path is None:
            return DEFAULT_DEVICE
        if not path:
            raise BadDevicePath(
                "KVMPROBE_DEVICE is set but empty",
                hint="set it to the device's path (KVMPROBE_DEVICE=/dev/kvm), or unset it for the default /dev/kvm",
            )
    if not path:
        raise BadDevicePath(
            "the KVM device path given (--device) is empty",
            hint="give the device's path, e.g. --device /dev/kvm, or leave the option out for the default",
        )
    if not path.startswith("/"):
        try:
            path = os.path.join(os.getcwd(), path)
        except OSError:  # the working directory is gone: the open will say what it finds
            pass
    return path


def ensure_linux(platform: str = sys.platform) -> None:
    """Raise ``UnsupportedPlatform`` unless running on Linux.

    Example:
        >>> ensure_linux("linux")
        >>> ensure_linux("darwin")
        Traceback (most recent call last):
        ...
        kvmprobe.errors.UnsupportedPlatform: KVM is a Linux interface; this is darwin (hint: run kvmprobe on the Linux host itself, or check a recorded host with --snapshot FILE)
    """
    if not platform.startswith("linux"):
        raise UnsupportedPlatform(
            f"KVM is a Linux interface; this is {platform}",
            hint="run kvmprobe on the Linux host itself, or check a recorded host with --snapshot FILE",
        )


class KvmDevice(X86Queries):
    """An open KVM system fd. Use :meth:`open` and close it (or use ``with``).

    Example (hardware):
        >>> with KvmDevice.open() as kvm:  # doctest: +SKIP
        ...     kvm.api_version(), kvm.check_extension(Cap.IMMEDIATE_EXIT) > 0
        (12, True)

    Example:
        >>> from kvmprobe.testing import FakeBackend
        >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend({Cap.HLT: 1})) as kvm:
        ...     kvm.closed
        False
        >>> kvm.closed
        True
    """

    def __init__(self, fd: int, path: str, backend: Backend, ioctls: KvmIoctls) -> None:
        self._fd: Optional[int] = fd
        self.path = path
        self.backend = backend
        self.ioctls = ioctls
        #: What KVM_GET_API_VERSION answered when :meth:`open` checked it (always 12 then).
        self.version = 0

    @classmethod
    def open(cls, path: Optional[str] = None, *, backend: Optional[Backend] = None) -> KvmDevice:
        """Open the device read-write with ``O_CLOEXEC`` and check that it speaks KVM API 12.

        Args:
            path: the device (default: ``$KVMPROBE_DEVICE`` or ``/dev/kvm``).
            backend: the ioctl binding (default: :func:`kvmprobe.backend` picks one).

        Raises:
            KvmNotFound, KvmPermissionDenied, NotAKvmDevice, UnsupportedPlatform, KvmIoctlError.

        Example:
            >>> from kvmprobe.testing import FakeBackend
            >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend({Cap.HLT: 1})) as kvm:
            ...     kvm.api_version(), kvm.check_extension(Cap.HLT)
            (12, 1)
        """
        ensure_linux()
        where = device_path(path)
        ioctls = KvmIoctls.for_machine()
        chosen = backend if backend is not None else select_backend()
        try:
            fd = _retrying(lambda: chosen.open(where))  # ownership: this KvmDevice closes it
        except OSError as err:
            raise open_error(where, err) from err
        except ValueError as err:  # an embedded NUL, or a surrogate the file system encoding cannot carry
            raise KvmNotFound(
                f"{ascii(where)} cannot name a device ({err})",
                hint="give the KVM device's path (--device /dev/kvm or KVMPROBE_DEVICE)",
                path=where,
            ) from None
        device = cls(fd, where, chosen, ioctls)
        try:
            version = device.api_version()
        except BaseException:
            device.close()
            raise
        if version != KVM_API_VERSION:
            device.close()
            raise NotAKvmDevice(
                f"{where} answers KVM API version {version}; kvmprobe (like every VMM) needs {KVM_API_VERSION}",
                hint=NOT_MAINLINE_HINT,
                path=where,
            )
        device.version = version
        return device

    def fileno(self) -> int:
        """The raw fd; raises ``KvmIoctlError`` once closed.

        Example:
            >>> from kvmprobe.testing import FakeBackend
            >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend({})) as kvm:
            ...     kvm.fileno() >= 0
            True
        """
        if self._fd is None:
            raise KvmIoctlError(f"{self.path} is already closed", errno=errno.EBADF, path=self.path)
        return self._fd

    def close(self) -> None:
        """Close the fd (idempotent).

        Example:
            >>> from kvmprobe.testing import FakeBackend
            >>> kvm = KvmDevice.open("/dev/kvm", backend=FakeBackend({}))
            >>> kvm.close(); kvm.close(); kvm.closed
            True
        """
        fd, self._fd = self._fd, None
        if fd is not None:
            _close(self.backend, fd)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._fd is None

    def __enter__(self) -> KvmDevice:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def _ioctl(self, name: str, request: int, arg: int = 0) -> int:
        fd = self.fileno()
        try:
            return _retrying(lambda: self.backend.ioctl(fd, request, arg))
        except OSError as err:
            raise ioctl_error(self.path, name, err) from err

    def api_version(self) -> int:
        """``KVM_GET_API_VERSION``: 12 on every kernel since 2.6.22.

        Raises:
            NotAKvmDevice: ENOTTY, the fd is no KVM device. KvmIoctlError: other errno.

        Example:
            >>> from kvmprobe.testing import FakeBackend
            >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend({})) as kvm:
            ...     kvm.api_version()
            12
        """
        return self._ioctl("KVM_GET_API_VERSION", self.ioctls.KVM_GET_API_VERSION)

    def check_extension_raw(self, number: int) -> int:
        """``KVM_CHECK_EXTENSION`` for any number: 0 means unsupported, > 0 is cap-specific.

        Numbers the kernel does not know answer 0, not an error.

        Raises:
            CapabilityQueryFailed: the query itself failed (its errno is kept); the device
                stays usable, only this answer is unknown.

        Example:
            >>> from kvmprobe.testing import FakeBackend
            >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend({10: 32764})) as kvm:
            ...     kvm.check_extension_raw(10), kvm.check_extension_raw(9999)
            (32764, 0)
        """
        return _query(self.backend, self.fileno(), self.ioctls.KVM_CHECK_EXTENSION, number, "")

    def check_extension(self, cap: CapLike) -> int:
        """``KVM_CHECK_EXTENSION`` for a capability; its raw value (a count or mask for some).

        Example:
            >>> from kvmprobe.testing import FakeBackend
            >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend({Cap.NR_MEMSLOTS: 32764})) as kvm:
            ...     kvm.check_extension("NR_MEMSLOTS")
            32764
        """
        return self.check_extension_raw(int(Cap.lookup(cap)))

    def has(self, cap: CapLike) -> bool:
        """Whether the capability answers a positive value.

        Example:
            >>> from kvmprobe.testing import FakeBackend
            >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend({Cap.HLT: 1})) as kvm:
            ...     kvm.has("HLT"), kvm.has("IRQCHIP")
            (True, False)
        """
        return self.check_extension(cap) > 0

    def check_many(self, numbers: Sequence[int]) -> CheckResults:
        """``KVM_CHECK_EXTENSION`` for each number in one pass: values and errnos (0 = ok).

        Example:
            >>> from kvmprobe.testing import FakeBackend
            >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend({1: 1})) as kvm:
            ...     kvm.check_many([0, 1])
            ([0, 1], [0, 0])
        """
        fd = self.fileno()
        return _ask_again_if_interrupted(self.backend, fd, self.ioctls.KVM_CHECK_EXTENSION, numbers)

    def _asked(self, name: str, call: Callable[[], _T]) -> _T:
        """``call``, asked again on EINTR; any other errno becomes :class:`IoctlFailed`."""
        try:
            return _retrying(call)
        except OSError as err:
            raise IoctlFailed(name, err.errno or errno.EIO, path=self.path) from err

    def vcpu_mmap_size(self) -> int:
        """``KVM_GET_VCPU_MMAP_SIZE``: the bytes to map from a vCPU fd (``struct kvm_run`` and more).

        Example (hardware):
            >>> with KvmDevice.open() as kvm:  # doctest: +SKIP
            ...     kvm.vcpu_mmap_size() >= 4096
            True
        """
        return self._ioctl("KVM_GET_VCPU_MMAP_SIZE", self.ioctls.KVM_GET_VCPU_MMAP_SIZE)

    def create_vm(self, vm_type: int = 0) -> ContextManager[VmFd]:
        """``KVM_CREATE_VM``: a VM fd that is closed when the ``with`` block ends.

        Creating a VM allocates kernel memory and, on Intel/AMD, turns VMX/SVM on; kvmprobe
        does it only when asked (``probe(vm=True)``, ``doctor``).

        Raises:
            KvmBusy: EBUSY, another hypervisor holds the extensions.
            KvmPermissionDenied, KvmIoctlError: other failures.

        Example:
            >>> from kvmprobe.testing import FakeBackend
            >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend({}, vm_values={129: 11})) as kvm:
            ...     with kvm.create_vm() as vm:
            ...         vm.check_extension_raw(129)
            11
        """

        def make() -> VmFd:
            # Ownership: the VmFd is closed by _Scoped when the block ends, whatever happens in it.
            return VmFd(self._ioctl("KVM_CREATE_VM", self.ioctls.KVM_CREATE_VM, vm_type), self)

        return _Scoped(make)


class VmFd:
    """A VM fd from :meth:`KvmDevice.create_vm`; closed by the context manager that made it.

    Example:
        >>> from kvmprobe.testing import FakeBackend
        >>> backend = FakeBackend({}, vm_values={Cap.NR_MEMSLOTS: 32764, Cap.HLT: 1}, tsc_khz=2_500_000)
        >>> with KvmDevice.open("/dev/kvm", backend=backend) as kvm, kvm.create_vm() as vm:
        ...     vm.fileno() in backend.open_fds, vm.check_extension_raw(Cap.NR_MEMSLOTS)
        ...     vm.check_many([Cap.HLT, Cap.IRQCHIP]), vm.tsc_khz()
        (True, 32764)
        (([1, 0], [0, 0]), 2500000)
        >>> vm.close()  # already closed when the block ended: closing again does nothing
        >>> vm.fileno()
        Traceback (most recent call last):
        ...
        kvmprobe.errors.KvmIoctlError: the VM fd is already closed...
        >>> backend.open_fds
        []
    """

    def __init__(self, fd: int, device: KvmDevice) -> None:
        self._fd: Optional[int] = fd
        self._device = device

    def fileno(self) -> int:
        """The raw VM fd."""
        if self._fd is None:
            raise KvmIoctlError("the VM fd is already closed", errno=errno.EBADF)
        return self._fd

    def close(self) -> None:
        """Close the VM fd (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            _close(self._device.backend, fd)

    def check_extension_raw(self, number: int) -> int:
        """``KVM_CHECK_EXTENSION`` on the VM fd (``KVM_CAP_CHECK_EXTENSION_VM``).

        Raises:
            CapabilityQueryFailed: the query failed (its errno is kept).
        """
        device = self._device
        return _query(device.backend, self.fileno(), device.ioctls.KVM_CHECK_EXTENSION, number, " (VM fd)")

    def check_many(self, numbers: Sequence[int]) -> CheckResults:
        """``KVM_CHECK_EXTENSION`` on the VM fd for each number in one pass."""
        fd = self.fileno()
        return _ask_again_if_interrupted(self._device.backend, fd, self._device.ioctls.KVM_CHECK_EXTENSION, numbers)

    def _call(self, name: str, fd: int, request: int, arg: Union[int, bytearray]) -> int:
        """One VM or vCPU ioctl, errno mapped here. ``EINTR`` is asked again, except on
        ``KVM_RUN``, where it is the answer (a signal kicked the vCPU out)."""
        backend = self._device.backend

        def once() -> int:
            if isinstance(arg, bytearray):
                return backend.ioctl_buffer(fd, request, arg)
            return backend.ioctl(fd, request, arg)

        try:
            return once() if name == "KVM_RUN" else _retrying(once)
        except InterruptedError:
            raise
        except OSError as err:
            raise ioctl_error(self._device.path, name, err) from err

    def set_user_memory_region(self, slot: int, guest_phys: int, memory: GuestMemory, flags: int = 0) -> None:
        """``KVM_SET_USER_MEMORY_REGION``: guest-physical ``guest_phys`` onward is ``memory``.

        The slot keeps ``memory``'s address: close the VM before unmapping ``memory``.

        Raises:
            KvmIoctlError: the kernel refused the slot (its errno is kept).

        Example (hardware):
            >>> from kvmprobe._vcpu import GuestMemory
            >>> with GuestMemory(1 << 20) as ram, KvmDevice.open() as kvm, kvm.create_vm() as vm:  # doctest: +SKIP
            ...     vm.set_user_memory_region(0, 0, ram)
        """
        from ._vcpu import memory_region

        region = memory_region(slot, flags, guest_phys, memory.size, memory.address)
        self._call("KVM_SET_USER_MEMORY_REGION", self.fileno(), self._device.ioctls.KVM_SET_USER_MEMORY_REGION, region)

    def set_tss_addr(self, address: int) -> None:
        """``KVM_SET_TSS_ADDR``: three pages Intel VMX uses to run real mode without unrestricted guest.

        Raises:
            KvmIoctlError: the kernel refused (its errno is kept).

        Example:
            >>> from kvmprobe.testing import FakeBackend
            >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend()) as kvm, kvm.create_vm() as vm:
            ...     vm.set_tss_addr(0xFFFBD000)  # a kernel without the ioctl (FakeBackend has none)
            Traceback (most recent call last):
            ...
            kvmprobe.errors.KvmIoctlError: KVM_SET_TSS_ADDR failed on /dev/kvm: ENOTTY (Inappropriate ioctl for device)...
        """
        self._call("KVM_SET_TSS_ADDR", self.fileno(), self._device.ioctls.KVM_SET_TSS_ADDR, address)

    def create_vcpu(self, vcpu_id: int = 0) -> ContextManager[VcpuFd]:
        """``KVM_CREATE_VCPU``, and its ``kvm_run`` mapped: a vCPU closed when the block ends.

        ``KVM_RUN`` on it may never return (a guest that never exits): :mod:`kvmprobe.guest` runs
        guests under a watchdog.

        Raises:
            KvmIoctlError: the kernel refused the vCPU (its errno is kept).

        Example (hardware):
            >>> with KvmDevice.open() as kvm, kvm.create_vm() as vm, vm.create_vcpu(0) as vcpu:  # doctest: +SKIP
            ...     vcpu.get_regs().rip
            65520
        """
        from ._vcpu import VcpuFd

        def make() -> VcpuFd:
            device = self._device
            size = device.vcpu_mmap_size()
            fd = self._new_vcpu(vcpu_id)
            # Ownership: the VcpuFd closes fd (and unmaps kvm_run), closed by _Scoped when the block
            # ends, whatever happens in it; it closes fd itself if mapping kvm_run fails.
            try:
                return VcpuFd(fd, size, self._call, lambda number: _close(device.backend, number), device.ioctls)
            except OSError as err:  # mmap(2) of kvm_run; the fd is closed already
                raise ioctl_error(device.path, "mmap of the vCPU's kvm_run", err) from err

        return _Scoped(make)

    def _new_vcpu(self, vcpu_id: int) -> int:
        """``KVM_CREATE_VCPU``: the raw vCPU fd (the caller owns and closes it). The one step that
        creates a vCPU, for :meth:`create_vcpu` and :meth:`tsc_khz`, its errno mapped by
        :meth:`_call` like every VM ioctl."""
        return self._call("KVM_CREATE_VCPU", self.fileno(), self._device.ioctls.KVM_CREATE_VCPU, vcpu_id)

    def tsc_khz(self) -> int:
        """``KVM_GET_TSC_KHZ`` of a scratch vCPU of this VM (vCPU 0, closed before returning):
        the TSC rate KVM gives a new guest, in kHz.

        Raises:
            KvmIoctlError, KvmPermissionDenied: ``KVM_CREATE_VCPU`` failed (as in :meth:`create_vcpu`).
            IoctlFailed: ``KVM_GET_TSC_KHZ`` failed (the question only; the VM stays usable).

        Example:
            >>> from kvmprobe.testing import FakeBackend
            >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend(tsc_khz=2596122)) as kvm, kvm.create_vm() as vm:
            ...     vm.tsc_khz()
            2596122
        """
        device = self._device
        vcpu = self._new_vcpu(0)
        try:  # ownership: the vCPU fd is closed in the finally below, on every path
            return device._asked("KVM_GET_TSC_KHZ", lambda: device.backend.ioctl(vcpu, device.ioctls.KVM_GET_TSC_KHZ, 0))
        finally:
            _close(device.backend, vcpu)


class _Scoped:
    """What ``create_vm`` and ``create_vcpu`` return: ``make()`` runs when the ``with`` block is
    entered, and what it made is closed when the block ends, whatever happens in it (what
    ``contextlib.contextmanager`` would do, without importing contextlib on every command)."""

    __slots__ = ("_make", "_made")

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._made: Any = None

    def __enter__(self) -> Any:
        self._made = self._make()
        return self._made

    def __exit__(self, *exc_info: object) -> None:
        made, self._made = self._made, None
        if made is not None:
            made.close()


# EINTR means the call was interrupted before it did anything (signal(7)): ask again. This is
# the one EINTR policy: backends report EINTR like any errno, and every call through this
# module is asked again at most this many times, so that a call interrupted forever ends in an
# error instead of a hang.
_EINTR_RETRIES = 100


def _retrying(call: Callable[[], _T]) -> _T:
    for _ in range(_EINTR_RETRIES):
        try:
            return call()
        except InterruptedError:
            continue
    return call()


def _query(backend: Backend, fd: int, request: int, number: int, where: str) -> int:
    """One ``KVM_CHECK_EXTENSION``; a failure is that query's, not the device's."""
    try:
        return _retrying(lambda: backend.ioctl(fd, request, number))
    except OSError as err:
        try:
            name = Cap(number).c_name
        except ValueError:
            name = f"capability number {number}"
        raise CapabilityQueryFailed(name + where, err.errno or errno.EIO) from err


def _ask_again_if_interrupted(backend: Backend, fd: int, request: int, numbers: Sequence[int]) -> CheckResults:
    """``check_many``, with each entry that reports EINTR asked again on its own."""
    values, errnos = backend.check_many(fd, request, numbers)
    if errnos.count(0) != len(errnos) and errno.EINTR in errnos:  # counting zeros is the fast look
        values, errnos = list(values), list(errnos)
        for index, code in enumerate(errnos):
            if code == errno.EINTR:
                try:
                    values[index], errnos[index] = _retrying(lambda: backend.ioctl(fd, request, numbers[index])), 0
                except OSError as err:
                    values[index], errnos[index] = -1, err.errno or errno.EIO
    return values, errnos


def _close(backend: Backend, fd: int) -> None:
    """Close ``fd``, never failing: Linux releases the descriptor even when close(2) reports an
    error (EINTR, EIO), and retrying could close an fd another thread just got (close(2) NOTES).
    kvmprobe wrote nothing through it, so no data can have been lost."""
    try:
        backend.close(fd)
    except OSError:
        pass
