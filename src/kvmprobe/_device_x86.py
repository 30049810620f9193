"""The x86 CPU queries of ``/dev/kvm``, as methods ``KvmDevice`` inherits: structures in, numbers out.

Imports ``_kvm_structs``, ``_ioctl``, ``_backend`` and ``errors``. Each method lays out the uapi
structure (``_kvm_structs``), issues the ioctl through ``KvmDevice._asked`` (``device``: where EINTR
is asked again and an errno becomes :class:`~kvmprobe.errors.IoctlFailed`) and returns plain
numbers. Meaning (feature names, MSR names) lives in ``_cpuid``; nothing here caches or decodes.
These rooms serve the CPU view (``kvmprobe.cpu()``) and the confidential-VM checks (device
attributes of group 1, ``KVM_X86_GRP_SEV``). The scratch vCPU's ``tsc_khz`` is in ``device``,
with the VM fds.
"""

from __future__ import annotations

import errno

from .errors import IoctlFailed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Sequence, TypeVar

    from . import _kvm_structs as structs
    from ._backend import Backend, Pointers
    from ._ioctl import KvmIoctls

    _T = TypeVar("_T")

__all__ = ["KVM_X86_GRP_SYSTEM", "KVM_X86_XCOMP_GUEST_SUPP", "X86Queries"]

# Growing buffers: KVM_GET_SUPPORTED_CPUID answers E2BIG while the buffer is too small
# (arch/x86/kvm/cpuid.c, kvm_dev_ioctl_get_cpuid; KVM_MAX_CPUID_ENTRIES is 256 today), and
# the MSR lists answer E2BIG after writing the count they need (arch/x86/kvm/x86.c,
# KVM_GET_MSR_INDEX_LIST). Start where today's kernels fit, grow, stop at a bound no kernel
# comes near: past it, E2BIG is what is recorded.
_FIRST_ENTRIES = 256
_MAX_ENTRIES = 1 << 16

#: ``KVM_X86_GRP_SYSTEM`` and ``KVM_X86_XCOMP_GUEST_SUPP`` (arch/x86/include/uapi/asm/kvm.h,
#: Linux 5.17): device attribute group 0, attribute 0 of ``/dev/kvm`` is the mask of XSAVE
#: components a guest may enable (XCR0 bits, AMX tiles included).
KVM_X86_GRP_SYSTEM = 0
KVM_X86_XCOMP_GUEST_SUPP = 0


class X86Queries:
    """The system-fd CPU queries; ``KvmDevice`` provides the fd, backend, numbers and ``_asked``."""

    path: str
    backend: Backend
    ioctls: KvmIoctls

    def fileno(self) -> int:
        raise NotImplementedError

    def _asked(self, name: str, call: Callable[[], _T]) -> _T:
        raise NotImplementedError

    def _buffer(self, name: str, request: int, buffer: bytearray, pointers: Pointers = ()) -> int:
        fd, backend = self.fileno(), self.backend
        if pointers:
            return self._asked(name, lambda: backend.ioctl_buffer(fd, request, buffer, pointers))
        return self._asked(name, lambda: backend.ioctl_buffer(fd, request, buffer))

    def _grown(self, name: str, request: int, make: Callable[[int], bytearray], read: Callable[[bytearray], _T]) -> _T:
        """Ask with a buffer of ``make(room)``, growing it on E2BIG (to the count the kernel wrote
        in the leading u32 where it did, else double), up to the bound; then ``read`` it."""
        from . import _kvm_structs as structs  # loaded with the first CPU query

        room = _FIRST_ENTRIES
        while True:
            buffer = make(room)
            try:
                self._buffer(name, request, buffer)
            except IoctlFailed as err:
                if err.errno == errno.E2BIG and room < _MAX_ENTRIES:
                    # kvm_msr_list.nmsrs and kvm_cpuid2.nent are both the leading u32.
                    room = max(structs.msr_list_count(buffer), room * 2)
                    continue
                raise
            return read(buffer)

    def _cpuid(self, name: str, request: int) -> List[structs.Entry]:
        from . import _kvm_structs as structs  # loaded with the first CPU query

        return self._grown(name, request, structs.cpuid2_buffer, structs.cpuid2_entries)

    def supported_cpuid(self) -> List[structs.Entry]:
        """``KVM_GET_SUPPORTED_CPUID``: every CPUID leaf KVM can give a guest, as the kernel
        answered it: ``(function, index, flags, eax, ebx, ecx, edx)`` tuples in its order.

        The buffer grows (doubling) while the kernel answers E2BIG, up to 65536 entries.

        Raises:
            IoctlFailed: the ioctl failed (ENOTTY/EINVAL: not x86 or no such ioctl; E2BIG past the bound).

        Example:
            >>> from kvmprobe.device import KvmDevice
            >>> from kvmprobe.testing import FakeBackend
            >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend(cpuid=[(0, 0, 0, 0xD, 1, 2, 3)])) as kvm:
            ...     kvm.supported_cpuid()
            [(0, 0, 0, 13, 1, 2, 3)]
        """
        return self._cpuid("KVM_GET_SUPPORTED_CPUID", self.ioctls.KVM_GET_SUPPORTED_CPUID)

    def emulated_cpuid(self) -> List[structs.Entry]:
        """``KVM_GET_EMULATED_CPUID``: the CPUID bits KVM can emulate (even where the host
        lacks them, e.g. MOVBE, RDPID), as :meth:`supported_cpuid` lays them out.

        Raises:
            IoctlFailed: the ioctl failed (``KVM_CAP_EXT_EMUL_CPUID`` absent: ENOTTY/EINVAL).

        Example:
            >>> from kvmprobe.device import KvmDevice
            >>> from kvmprobe.testing import FakeBackend
            >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend()) as kvm:
            ...     kvm.emulated_cpuid()
            Traceback (most recent call last):
            ...
            kvmprobe.errors.IoctlFailed: KVM_GET_EMULATED_CPUID failed: ENOTTY (Inappropriate ioctl for device) (hint: an older kernel or another architecture may lack this ioctl; 'python -m kvmprobe doctor' diagnoses the device)
        """
        return self._cpuid("KVM_GET_EMULATED_CPUID", self.ioctls.KVM_GET_EMULATED_CPUID)

    def _msr_list(self, name: str, request: int) -> List[int]:
        from . import _kvm_structs as structs  # loaded with the first CPU query

        return self._grown(name, request, structs.msr_list_buffer, structs.msr_list_indices)

    def msr_index_list(self) -> List[int]:
        """``KVM_GET_MSR_INDEX_LIST``: the MSRs a VMM may save and restore for a guest.

        Raises:
            IoctlFailed: the ioctl failed.

        Example:
            >>> from kvmprobe.device import KvmDevice
            >>> from kvmprobe.testing import FakeBackend
            >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend(msrs=[0x10, 0x174])) as kvm:
            ...     [hex(i) for i in kvm.msr_index_list()]
            ['0x10', '0x174']
        """
        return self._msr_list("KVM_GET_MSR_INDEX_LIST", self.ioctls.KVM_GET_MSR_INDEX_LIST)

    def msr_feature_index_list(self) -> List[int]:
        """``KVM_GET_MSR_FEATURE_INDEX_LIST``: the feature MSRs :meth:`get_msrs` can read here.

        Raises:
            IoctlFailed: the ioctl failed (no ``KVM_CAP_GET_MSR_FEATURES``: ENOTTY/EINVAL).

        Example:
            >>> from kvmprobe.device import KvmDevice
            >>> from kvmprobe.testing import FakeBackend
            >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend(feature_msrs={0x10a: 0x69})) as kvm:
            ...     [hex(i) for i in kvm.msr_feature_index_list()]
            ['0x10a']
        """
        return self._msr_list("KVM_GET_MSR_FEATURE_INDEX_LIST", self.ioctls.KVM_GET_MSR_FEATURE_INDEX_LIST)

    def get_msrs(self, indices: Sequence[int]) -> Dict[int, int]:
        """``KVM_GET_MSRS`` on the system fd: the values of feature MSRs (those of
        :meth:`msr_feature_index_list`), index -> value, for every index that could be read.

        The kernel stops at the first MSR it cannot read and returns how many it read; the
        rest are asked again after it, so one unreadable MSR hides no other. Missing keys are
        the unreadable ones.

        Raises:
            IoctlFailed: the ioctl itself failed.

        Example:
            >>> from kvmprobe.device import KvmDevice
            >>> from kvmprobe.testing import FakeBackend
            >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend(feature_msrs={0x8b: 0x1000065})) as kvm:
            ...     {hex(k): hex(v) for k, v in kvm.get_msrs([0x8b, 0x999]).items()}
            {'0x8b': '0x1000065'}
        """
        from . import _kvm_structs as structs  # loaded with the first CPU query

        values: Dict[int, int] = {}
        rest = list(indices)
        while rest:
            buffer = structs.msrs_buffer(rest)
            count = self._buffer("KVM_GET_MSRS", self.ioctls.KVM_GET_MSRS, buffer)
            count = max(0, min(count, len(rest)))
            values.update(structs.msrs_values(buffer, count))
            rest = rest[count + 1:]  # the one at ``count`` could not be read
        return values

    def has_device_attr(self, group: int, attr: int) -> bool:
        """``KVM_HAS_DEVICE_ATTR`` on the system fd: whether ``/dev/kvm`` has that attribute.

        Group 0 attribute 0 is ``KVM_X86_XCOMP_GUEST_SUPP``; group 1 (``KVM_X86_GRP_SEV``)
        holds the SEV attributes. ENXIO (the kernel's "no such group or attribute") is
        ``False``.

        Raises:
            IoctlFailed: any other errno (ENOTTY/EINVAL: no device attributes on /dev/kvm,
                i.e. no ``KVM_CAP_SYS_ATTRIBUTES``).

        Example:
            >>> from kvmprobe.device import KvmDevice
            >>> from kvmprobe.testing import FakeBackend
            >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend(device_attrs={(0, 0): 0xE7})) as kvm:
            ...     kvm.has_device_attr(0, 0), kvm.has_device_attr(1, 0)
            (True, False)
        """
        from . import _kvm_structs as structs  # loaded with the first CPU query

        buffer = structs.device_attr_buffer(group, attr)
        try:
            self._buffer("KVM_HAS_DEVICE_ATTR", self.ioctls.KVM_HAS_DEVICE_ATTR, buffer)
        except IoctlFailed as err:
            if err.errno == errno.ENXIO:
                return False
            raise
        return True

    def get_device_attr(self, group: int, attr: int) -> int:
        """``KVM_GET_DEVICE_ATTR`` on the system fd: the u64 value of a ``/dev/kvm`` attribute.

        Raises:
            IoctlFailed: the ioctl failed; ``errno`` ENXIO means no such attribute here.

        Example:
            >>> from kvmprobe.device import KvmDevice
            >>> from kvmprobe.testing import FakeBackend
            >>> with KvmDevice.open("/dev/kvm", backend=FakeBackend(device_attrs={(0, 0): 0xE7})) as kvm:
            ...     hex(kvm.get_device_attr(KVM_X86_GRP_SYSTEM, KVM_X86_XCOMP_GUEST_SUPP))
            '0xe7'
        """
        from . import _kvm_structs as structs  # loaded with the first CPU query

        buffer = structs.device_attr_buffer(group, attr)
        request = self.ioctls.KVM_GET_DEVICE_ATTR
        self._buffer("KVM_GET_DEVICE_ATTR", request, buffer, structs.DEVICE_ATTR_POINTERS)
        return structs.device_attr_value(buffer)
