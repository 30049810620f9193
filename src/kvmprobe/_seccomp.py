"""seccomp mechanics behind ``kvmprobe emulate``: a BPF filter on ``KVM_CHECK_EXTENSION``, its
installation between fork and exec, and the user-notification listener a supervisor answers on.

Imports ``_ioctl``, ``errors`` and ``_files`` (the bounded reader) only. Numbers in, numbers out: which capability gets which
answer is decided a floor up (``kvmprobe.emulate``) and arrives here as a mapping of capability
numbers to seccomp actions.

How a program is made to see another host without being changed: a seccomp filter (Linux 3.5,
``Documentation/userspace-api/seccomp_filter.rst``) runs on every system call of the task that
installed it and of everything it starts (threads, children, re-execs all inherit it, and it
cannot be removed). The filter matches ``ioctl(fd, KVM_CHECK_EXTENSION, cap)`` and either

* returns ``SECCOMP_RET_ERRNO`` with data 0: the call returns 0, "not supported", without
  entering the kernel (``kernel/seccomp.c``: ``syscall_set_return_value(..., -data, 0)``), or
  with data N: -1 with errno N (a query the recorded host answered with an error);
* or returns ``SECCOMP_RET_USER_NOTIF`` (Linux 5.0): the call waits until a supervisor holding
  the filter's listener fd answers it with any value, or lets it go on to the kernel with
  ``SECCOMP_USER_NOTIF_FLAG_CONTINUE`` (Linux 5.5);
* or ``SECCOMP_RET_ALLOW``: every other call, and every other ioctl, goes on as always.

The filter is installed by a trampoline, ``python -I -S -c BOOT ... -- CMD ARGS``: a fresh
interpreter (no threads, so nothing of a forked multi-threaded parent is inherited) that sets
``no_new_privs``, installs the filter, sends the listener fd to the parent over a socketpair
(``SCM_RIGHTS``) and ``execvp``'s CMD. The same socket tells the parent whether the filter was
installed and whether the exec worked: it is close-on-exec, so end-of-file means CMD runs
filtered. CMD is never run unfiltered.
"""

from __future__ import annotations

import array
import ctypes
import errno
import functools
import os
import socket
import stat
import struct
import sys

from ._ioctl import GENERIC, KvmIoctls
from .errors import EmulationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union
else:
    from ._value import NamedTuple

# --- Constants, each from the kernel's uapi headers -------------------------------------------

# include/uapi/linux/seccomp.h: return actions (the high 16 bits; the low 16 are data).
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_USER_NOTIF = 0x7FC00000
RET_ALLOW = 0x7FFF0000
_RET_DATA = 0x0000FFFF
# seccomp(2) operations and filter flags.
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_GET_ACTION_AVAIL = 2
_SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
_SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1 << 0
# include/uapi/linux/prctl.h
_PR_SET_NO_NEW_PRIVS = 38

# include/uapi/linux/bpf_common.h: classic BPF opcodes the filter uses.
_LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x05 | 0x10 | 0x00  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x05 | 0x30 | 0x00  # BPF_JMP | BPF_JGE | BPF_K
_RET_K = 0x06 | 0x00  # BPF_RET | BPF_K
# include/linux/bpf.h BPF_MAXINSNS: the longest classic program the kernel accepts.
MAX_INSNS = 4096

# struct seccomp_data (include/uapi/linux/seccomp.h): int nr; __u32 arch; __u64
# instruction_pointer; __u64 args[6]. Offsets of the 32-bit words the filter loads, for the
# little-endian arches below (x86_64 and aarch64 as Linux runs them).
_OFF_NR = 0
_OFF_ARCH = 4
_OFF_ARG1_LO = 16 + 8 * 1
_OFF_ARG2_LO = 16 + 8 * 2
_OFF_ARG2_HI = 16 + 8 * 2 + 4
# struct seccomp_notif: __u64 id; __u32 pid; __u32 flags; struct seccomp_data data (64 bytes).
_NOTIF = struct.Struct("=QII" + "iIQ6Q")
# struct seccomp_notif_resp: __u64 id; __s64 val; __s32 error; __u32 flags.
_RESP = struct.Struct("=QqiI")
# SECCOMP_IOCTL_NOTIF_RECV/SEND/ID_VALID: SECCOMP_IOWR(0, ...), SECCOMP_IOWR(1, ...), SECCOMP_IOW(2,
# __u64) with SECCOMP_IOC_MAGIC '!'; x86_64 and aarch64 use the generic _IOC layout.
_NOTIF_RECV = GENERIC.ioc(GENERIC.read | GENERIC.write, ord("!"), 0, _NOTIF.size)
_NOTIF_SEND = GENERIC.ioc(GENERIC.read | GENERIC.write, ord("!"), 1, _RESP.size)
_NOTIF_ID_VALID = GENERIC.ioc(GENERIC.write, ord("!"), 2, 8)

# include/linux/miscdevice.h: KVM_MINOR 232 on the misc major 10, whatever path /dev/kvm has.
_MISC_MAJOR = 10
_KVM_MINOR = 232
# virt/kvm/kvm_main.c kvm_dev_ioctl_create_vm: anon_inode_getfile("kvm-vm", ...).
_VM_LINK = "anon_inode:kvm-vm"

#: What a notified fd is: the KVM system fd, a VM fd, or anything else.
SYSTEM, VM, OTHER = "system", "vm", "other"


class Arch(NamedTuple):
    """One architecture's numbers: ``AUDIT_ARCH_*`` (include/uapi/linux/audit.h: the ELF machine
    | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE) and the system calls the filter and trampoline use."""

    machine: str
    audit_arch: int
    nr_ioctl: int
    nr_seccomp: int
    nr_pidfd_getfd: int
    # x86_64's x32 ABI shares AUDIT_ARCH_X86_64 and sets this bit in nr (__X32_SYSCALL_BIT).
    x32_bit: int


# arch/x86/entry/syscalls/syscall_64.tbl (ioctl 16, seccomp 317, pidfd_getfd 438) and
# include/uapi/asm-generic/unistd.h for arm64 (__NR_ioctl 29, __NR_seccomp 277, pidfd_getfd 438).
ARCHES: Dict[str, Arch] = {
    "x86_64": Arch("x86_64", 0xC000003E, 16, 317, 438, 0x40000000),
    "aarch64": Arch("aarch64", 0xC00000B7, 29, 277, 438, 0),
}


def arch_for(machine: Optional[str] = None, platform: str = sys.platform) -> Arch:
    """The numbers for ``machine`` (default: this one); ``EmulationError`` where there are none.

    Example:
        >>> hex(arch_for("aarch64").audit_arch), arch_for("x86_64").nr_ioctl
        ('0xc00000b7', 16)
        >>> arch_for("riscv64")
        Traceback (most recent call last):
        ...
        kvmprobe.errors.EmulationError: emulation needs a seccomp filter written for x86_64 or aarch64; this is riscv64 (hint: run the command on an x86_64 or aarch64 Linux host, or use 'kvmprobe check --snapshot' to judge a recorded host without running anything)
    """
    hint = "run the command on an x86_64 or aarch64 Linux host, or use 'kvmprobe check --snapshot' " \
        "to judge a recorded host without running anything"
    if not platform.startswith("linux"):
        raise EmulationError(f"emulation needs Linux's seccomp; this is {platform}", hint=hint)
    name = machine if machine is not None else os.uname().machine
    found = ARCHES.get(name)
    if found is None:
        raise EmulationError(f"emulation needs a seccomp filter written for x86_64 or aarch64; this is {name}", hint=hint)
    return found


def ret_errno(code: int) -> int:
    """``SECCOMP_RET_ERRNO`` with ``code``: 0 makes the call return 0, N > 0 fail with errno N.

    Example:
        >>> hex(ret_errno(0)), hex(ret_errno(5))
        ('0x50000', '0x50005')
    """
    if not 0 <= code <= _RET_DATA:
        raise ValueError(f"errno {code} does not fit SECCOMP_RET_DATA")
    return RET_ERRNO | code


# --- The filter --------------------------------------------------------------------------------


class _Asm:
    """A classic BPF program with forward jumps to labels (jt/jf are 8-bit skip counts)."""

    def __init__(self) -> None:
        self.code: List[Tuple[int, Union[int, str], Union[int, str], int]] = []
        self.labels: Dict[str, int] = {}

    def ld(self, offset: int) -> None:
        self.code.append((_LD_W_ABS, 0, 0, offset))

    def jump(self, op: int, k: int, true: Union[int, str] = 0, false: Union[int, str] = 0) -> None:
        self.code.append((op, true, false, k))

    def ret(self, action: int) -> None:
        self.code.append((_RET_K, 0, 0, action))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def assemble(self) -> bytes:
        if len(self.code) > MAX_INSNS:
            raise EmulationError(f"the filter needs {len(self.code)} BPF instructions, more than the kernel's {MAX_INSNS}")
        out = bytearray()
        for at, (op, true, false, k) in enumerate(self.code):
            skips = [self.labels[t] - at - 1 if isinstance(t, str) else t for t in (true, false)]
            if not all(0 <= s <= 255 for s in skips):
                raise AssertionError(f"BPF jump out of range at {at}: {skips}")
            out += struct.pack("=HBBI", op, skips[0], skips[1], k)
        return bytes(out)


def filter_program(
    arch: Arch,
    ioctls: KvmIoctls,
    caps: Mapping[int, int],
    default: int,
    *,
    api_version: int = RET_ALLOW,
) -> bytes:
    """The filter: ``caps`` maps a capability number to the action for ``KVM_CHECK_EXTENSION`` of
    it, ``default`` is the action for every other number, ``api_version`` for ``KVM_GET_API_VERSION``.

    Every system call of another architecture (a 32-bit or x32 call on x86_64, AArch32 on arm64)
    kills the process: its ioctl has other numbers, so letting it through would run CMD
    unfiltered. A capability number with bits above 31 set goes to the kernel (which answers 0).
    The result is ``struct sock_filter[]`` bytes for :func:`install`.

    Example:
        >>> prog = filter_program(arch_for("x86_64"), KvmIoctls.for_machine("x86_64"), {36: ret_errno(0)}, RET_ALLOW)
        >>> len(prog) // 8, struct.unpack_from("=HBBI", prog, 0)  # first: load seccomp_data.arch
        (18, (32, 0, 0, 4))
    """
    asm = _Asm()
    asm.ld(_OFF_ARCH)
    asm.jump(_JEQ_K, arch.audit_arch, "native", 0)
    asm.ret(RET_KILL_PROCESS)
    asm.label("native")
    asm.ld(_OFF_NR)
    if arch.x32_bit:
        asm.jump(_JGE_K, arch.x32_bit, 0, "not_x32")
        asm.ret(RET_KILL_PROCESS)
        asm.label("not_x32")
    asm.jump(_JEQ_K, arch.nr_ioctl, "ioctl", 0)
    asm.ret(RET_ALLOW)
    asm.label("ioctl")
    # ioctl's request is an unsigned int (fs/ioctl.c: SYSCALL_DEFINE3(ioctl, unsigned int fd,
    # unsigned int cmd, unsigned long arg)): only the low 32 bits of args[1] count.
    asm.ld(_OFF_ARG1_LO)
    asm.jump(_JEQ_K, ioctls.KVM_CHECK_EXTENSION, "check", 0)
    if api_version != RET_ALLOW:
        asm.jump(_JEQ_K, ioctls.KVM_GET_API_VERSION, 0, "other")
        asm.ret(api_version)
        asm.label("other")
    asm.ret(RET_ALLOW)
    asm.label("check")
    asm.ld(_OFF_ARG2_HI)
    asm.jump(_JEQ_K, 0, "small", 0)
    asm.ret(RET_ALLOW)
    asm.label("small")
    asm.ld(_OFF_ARG2_LO)
    for number, action in sorted(caps.items()):
        if action == default:
            continue
        asm.jump(_JEQ_K, number, 0, 1)  # equal: the next instruction returns its action
        asm.ret(action)
    asm.ret(default)
    return asm.assemble()


def actions_available() -> str:
    """``/proc/sys/kernel/seccomp/actions_avail`` (Linux 4.14), or ``""`` where it is absent."""
    from ._files import read_limited

    try:  # a few action names (kernel/seccomp.c, seccomp_actions_avail): 4 KiB is ample
        return read_limited("/proc/sys/kernel/seccomp/actions_avail", 4096, truncate=True).decode("ascii", "replace").strip()
    except OSError:
        return ""


# --- Installing it (in the trampoline, between fork and exec) --------------------------------


@functools.lru_cache(maxsize=None)
def _function(name: str, restype: Any, *argtypes: Any) -> Any:
    """libc's ``name`` (errno kept) with its own prototype: indexing makes a new function
    object, so two prototypes of ``ioctl`` (pointer and integer argument) do not clash."""
    fn = ctypes.CDLL(None, use_errno=True)[name]
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


def _failed(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


class _SockFprog(ctypes.Structure):
    # struct sock_fprog (include/uapi/linux/filter.h): unsigned short len; struct sock_filter *filter.
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(program: bytes, *, listener: bool, arch: Optional[Arch] = None) -> int:
    """Set ``no_new_privs`` and install ``program`` on the calling thread; return the listener fd
    (``O_CLOEXEC``; the caller owns it) or -1 without ``listener``. Irreversible: only ever
    called in the trampoline, never in kvmprobe itself. ``OSError`` says which step failed.
    """
    arch = arch or arch_for()
    prctl = _function("prctl", ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
    if prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise _failed("prctl(PR_SET_NO_NEW_PRIVS)")
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    seccomp = _function("syscall", ctypes.c_long, ctypes.c_long, ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p)
    flags = _SECCOMP_FILTER_FLAG_NEW_LISTENER if listener else 0
    result = seccomp(arch.nr_seccomp, _SECCOMP_SET_MODE_FILTER, flags, ctypes.addressof(prog))
    if result < 0:
        raise _failed("seccomp(SECCOMP_SET_MODE_FILTER)")
    return int(result) if listener else -1


# The status messages the trampoline sends the parent before exec.
_INSTALLED = b"I"
_FAILED = b"F"  # + errno, then the step's text
_EXEC_FAILED = b"E"  # + errno


def trampoline(argv: Sequence[str]) -> None:
    """The trampoline's main: ``HEXPROG LISTENER(0|1) SOCKFD -- CMD ARGS...``. Never returns.

    Runs in the fresh interpreter the parent starts; see the module docstring.
    """
    program, want_listener, sock_fd = bytes.fromhex(argv[0]), argv[1] == "1", int(argv[2])
    command = list(argv[4:])
    # Ownership: this process owns sock (inherited from the parent) and the listener; the
    # listener is closed before exec, the socket on exec (set close-on-exec below).
    sock = socket.socket(fileno=sock_fd)
    os.set_inheritable(sock_fd, False)
    try:
        listener = install(program, listener=want_listener)
    except OSError as err:
        sock.sendall(_FAILED + struct.pack("=i", err.errno or 0) + str(err.strerror).encode())
        os._exit(126)
    if listener >= 0:
        sock.sendmsg([_INSTALLED], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [listener]).tobytes())])
        os.close(listener)
    else:
        sock.sendall(_INSTALLED)
    try:
        os.execvp(command[0], command)
    except OSError as err:
        sock.sendall(_EXEC_FAILED + struct.pack("=i", err.errno or 0))
    os._exit(127)


# The trampoline's interpreter: isolated (-I: no PYTHON* variables, no user site, no script
# directory on sys.path) and without site (-S); kvmprobe is found through the path passed first.
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from kvmprobe._seccomp import trampoline; trampoline(sys.argv[2:])"


def trampoline_argv(program: bytes, listener: bool, sock_fd: int, command: Sequence[str]) -> List[str]:
    """The argv that installs ``program`` and then execs ``command`` (run it with ``sock_fd`` passed)."""
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return [sys.executable, "-I", "-S", "-c", _BOOT, package_parent, program.hex(), "1" if listener else "0",
            str(sock_fd), "--", *command]


def status_socketpair() -> Tuple[socket.socket, socket.socket]:
    """``(parent_end, child_end)``: SOCK_SEQPACKET keeps the trampoline's messages apart.

    Both are close-on-exec; the caller passes the child end's fd to the trampoline explicitly
    (``pass_fds``) and closes it once the trampoline has started.
    """
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def wait_installed(sock: socket.socket, command: str, timeout: float = 60.0) -> Optional[int]:
    """Wait until the trampoline has installed the filter; return the listener fd it sent
    (owned by the caller) or ``None`` (no listener asked for).

    Raises:
        EmulationError: the filter could not be installed, or the trampoline never started (the
            command did not run at all).
    """
    sock.settimeout(timeout)
    listener: Optional[int] = None
    try:
        # MSG_CMSG_CLOEXEC: a received fd is otherwise inheritable, and a process another
        # thread starts meanwhile would hold the listener.
        data, ancillary, _, _ = sock.recvmsg(512, socket.CMSG_SPACE(4), socket.MSG_CMSG_CLOEXEC)
    except OSError as err:  # socket.timeout is an OSError
        raise EmulationError(f"the seccomp trampoline did not start within {timeout:g} s; {command} was not run",
                             hint="try again on a less loaded machine") from err
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            for extra in fds[1:]:
                os.close(extra)
            if fds:
                listener = fds[0]
    if data == _INSTALLED:
        return listener
    if listener is not None:
        os.close(listener)
    if data.startswith(_FAILED):
        (code,) = struct.unpack_from("=i", data, 1)
        raise EmulationError(
            f"cannot install the seccomp filter ({data[5:].decode(errors='replace')}); {command} was not run",
            hint=_install_hint(code),
            errno=code,
        )
    raise EmulationError(f"the seccomp trampoline ended before installing the filter; {command} was not run",
                         hint="see the messages above (a tracer or the interpreter could not start)")


def raise_exec_error(sock: socket.socket, command: str) -> None:
    """After the run: raise ``EmulationError`` if the trampoline reported that exec failed."""
    sock.setblocking(False)
    try:
        data = sock.recv(512)
    except (BlockingIOError, OSError):
        return
    if data.startswith(_EXEC_FAILED):
        (code,) = struct.unpack_from("=i", data, 1)
        raise EmulationError(
            f"cannot run {command}: {os.strerror(code)}",
            hint="give a program on PATH or its path, after '--'",
            errno=code,
        )


def _install_hint(code: int) -> str:
    if code == errno.EINVAL:
        return "this kernel lacks seccomp filters or user notification (Linux 5.5+ for exact values); " \
            "try again with --values real"
    if code in (errno.EACCES, errno.EPERM):
        return "a container's or sandbox's seccomp policy forbids installing filters; run outside it"
    return "the kernel needs CONFIG_SECCOMP_FILTER; see /proc/sys/kernel/seccomp/actions_avail"


# --- The listener (in the supervisor) ---------------------------------------------------------


class Notification(NamedTuple):
    """One waiting ioctl: who asked (``pid`` in our PID namespace), on which fd, what."""

    id: int
    pid: int
    fd: int
    request: int
    arg: int


class Listener:
    """The filter's listener fd: receive notifications and answer them. Closes the fd.

    Example (hardware):
        >>> listener = Listener(fd)  # doctest: +SKIP
    """

    def __init__(self, fd: int) -> None:
        self.fd: Optional[int] = fd
        self._ioctl_ptr = _function("ioctl", ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)

    def _ioctl(self, request: int, buffer: "ctypes.Array[ctypes.c_char]") -> None:
        if self.fd is None:
            raise OSError(errno.EBADF, "the listener is closed")
        if self._ioctl_ptr(self.fd, request, buffer) != 0:
            raise _failed("ioctl")

    def receive(self, timeout: float) -> Optional[Notification]:
        """The next notification, ``None`` after ``timeout`` seconds, or ``EOFError`` once
        every task under the filter has exited (POLLHUP, Linux 5.8)."""
        import select

        if self.fd is None:
            raise EOFError
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        events = poller.poll(int(timeout * 1000))
        if not events:
            return None
        if not events[0][1] & select.POLLIN:
            raise EOFError
        # The kernel (5.5+) refuses a receive buffer that is not zeroed: a fresh one is.
        buffer = ctypes.create_string_buffer(_NOTIF.size)
        try:
            self._ioctl(_NOTIF_RECV, buffer)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.EINTR):  # the waiting task was killed meanwhile
                return None
            raise
        ident, pid, _, _nr, _arch, _ip, fd, request, arg, _, _, _ = _NOTIF.unpack(buffer.raw)
        return Notification(ident, pid, fd & 0xFFFFFFFF, request & 0xFFFFFFFF, arg)

    def valid(self, ident: int) -> bool:
        """Whether notification ``ident`` still waits (its task did not die): to be asked after
        reading anything of the task from /proc, whose PID may meanwhile name another task."""
        buffer = ctypes.create_string_buffer(struct.pack("=Q", ident), 8)
        try:
            self._ioctl(_NOTIF_ID_VALID, buffer)
        except OSError:
            return False
        return True

    def _send(self, ident: int, value: int, error: int, flags: int) -> None:
        buffer = ctypes.create_string_buffer(_RESP.pack(ident, value, error, flags), _RESP.size)
        try:
            self._ioctl(_NOTIF_SEND, buffer)
        except OSError as err:
            if err.errno != errno.ENOENT:  # ENOENT: the task was interrupted and no longer waits
                raise

    def answer(self, ident: int, value: int) -> None:
        """The call returns ``value`` without entering the kernel."""
        self._send(ident, value, 0, 0)

    def fail(self, ident: int, code: int) -> None:
        """The call fails with errno ``code``."""
        self._send(ident, 0, -code, 0)

    def pass_on(self, ident: int) -> None:
        """The call goes on to the kernel (``SECCOMP_USER_NOTIF_FLAG_CONTINUE``, Linux 5.5)."""
        self._send(ident, 0, 0, _SECCOMP_USER_NOTIF_FLAG_CONTINUE)

    def close(self) -> None:
        """Close the fd (idempotent); tasks that notify afterwards get ENOSYS."""
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


def fd_kind(pid: int, fd: int) -> str:
    """What ``fd`` of task ``pid`` is: :data:`SYSTEM` (a KVM device node, by its device number),
    :data:`VM` (``anon_inode:kvm-vm``) or :data:`OTHER`. Ask ``Listener.valid`` afterwards."""
    where = f"/proc/{pid}/fd/{fd}"
    try:
        if os.readlink(where) == _VM_LINK:
            return VM
        info = os.stat(where)
    except OSError:
        return OTHER
    if stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(_MISC_MAJOR, _KVM_MINOR):
        return SYSTEM
    return OTHER


def ioctl_value(fd: int, request: int, arg: int) -> int:
    """``ioctl(fd, request, arg)`` with an integer argument: its result, or -errno."""
    ioctl = _function("ioctl", ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong)
    while True:
        result = int(ioctl(fd, request, arg))
        if result >= 0:
            return result
        code = ctypes.get_errno()
        if code != errno.EINTR:
            return -code


def borrow_fd(pid: int, fd: int, arch: Arch) -> Optional[int]:
    """A duplicate of task ``pid``'s ``fd`` (``pidfd_getfd``, Linux 5.6; ``O_CLOEXEC``), owned
    by the caller; ``None`` where the kernel or a policy does not allow it."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        pidfd = opener(pid)
    except OSError:
        return None
    try:
        getfd = _function("syscall", ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_int, ctypes.c_uint)
        dup = getfd(arch.nr_pidfd_getfd, pidfd, fd, 0)  # ownership: the caller closes it
        return int(dup) if dup >= 0 else None
    finally:
        os.close(pidfd)
