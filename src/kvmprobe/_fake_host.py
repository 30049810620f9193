"""A made-up host as a directory tree (:class:`FakeHost`): what ``kvmprobe.testing`` offers tests.

Imports ``_host_facts`` only. :meth:`FakeHost.write` lays out the files
``kvmprobe.read_host_facts`` reads, under a directory a test names as the root; the presets
(``FakeHost.pvm()``, ``centos7()``, ``amd_snp()``, ...) are hosts kvmprobe's own tests and users'
tests meet. Public through ``kvmprobe.testing`` (a dataclass: ``dataclasses.replace`` tweaks one).
"""

from __future__ import annotations

from dataclasses import dataclass as _dataclass, field as _field, replace as _replace

from ._host_facts import NODES_FILE as _NODES_FILE, DeviceNode as _DeviceNode

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, Mapping, Optional, Tuple

__all__ = ["KVM_GID", "FakeHost"]

# --- FakeHost: a miniature /proc, /sys, /dev and /etc for kvmprobe.host ----------------------

#: The gid RHEL and Fedora give the ``kvm`` group (Debian/Ubuntu pick a dynamic one).
KVM_GID = 36


def _char(major: int, minor: int, mode: int = 0o660, uid: int = 0, gid: int = KVM_GID) -> _DeviceNode:
    return _DeviceNode("char", major, minor, mode, uid, gid)


def _standard_nodes(kvm: Optional[_DeviceNode], *, vhost: bool = True, tun: bool = True) -> Dict[str, Optional[_DeviceNode]]:
    # Device numbers from a mainline kernel: misc 10:232 kvm, 10:238 vhost-net, 10:241
    # vhost-vsock, 10:200 tun (include/linux/miscdevice.h). Modes as systemd's udev rules set
    # them (rules.d/50-udev-default.rules.in): kvm, vhost-net and vhost-vsock to group kvm with
    # DEV_KVM_MODE (0660 here), tun 0666.
    return {
        "/dev/kvm": kvm,
        "/dev/vhost-net": _char(10, 238) if vhost else None,
        "/dev/vhost-vsock": _char(10, 241) if vhost else None,
        "/dev/net/tun": _char(10, 200, 0o666, 0, 0) if tun else None,
    }


@_dataclass
class FakeHost:
    """A made-up host, written as a directory tree that :func:`kvmprobe.read_host_facts` reads.

    :meth:`write` lays out ``proc/`` (``sys/kernel/{ostype,osrelease,arch}``, ``cpuinfo``,
    ``self/status``, ``1/cgroup``, ``modules``), ``sys/module/<module>/parameters/*``,
    ``sys/devices/virtual/misc/kvm/dev``, ``etc/passwd``, ``etc/group``, a ``/.dockerenv``
    for a container, ``dev/cpu/0/msr`` when ``msr`` is given, and the nodes of ``nodes`` in
    ``kvmprobe-nodes.json`` (device nodes cannot be made without root; the reader reads that
    file only under a root other than ``/``), with the access ACL of ``acls`` (path to the
    ``system.posix_acl_access`` bytes) for those that have one. Presets model the hosts of the doctor tests;
    tweak one with :func:`dataclasses.replace`.

    Example:
        >>> import tempfile, kvmprobe
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     facts = kvmprobe.read_host_facts(FakeHost.amd_nested0().write(tmp))
        >>> facts.cpu_vendor, facts.kvm_backend, facts.nested_enabled, facts.kvm_node.owner_text
        ('AuthenticAMD', 'kvm_amd', False, 'root:kvm')
    """

    kernel_release: str = "6.8.0-45-generic"
    machine: str = "x86_64"
    system: str = "Linux"
    cpu_vendor: Optional[str] = "GenuineIntel"
    cpu_flags: Tuple[str, ...] = ("fpu", "vme", "msr", "vmx", "ept", "vpid", "lm")
    modules: Mapping[str, Mapping[str, str]] = _field(
        default_factory=lambda: {"kvm": {"halt_poll_ns": "200000"}, "kvm_intel": {"nested": "Y", "ept": "Y"}}
    )
    proc_modules: bool = True
    kvm_misc_dev: Optional[str] = "10:232"
    nodes: Mapping[str, Optional[_DeviceNode]] = _field(default_factory=lambda: _standard_nodes(_char(10, 232)))
    uid: int = 1000
    gid: int = 1000
    groups: Tuple[int, ...] = (1000, KVM_GID)
    users: Mapping[str, int] = _field(default_factory=lambda: {"root": 0, "alice": 1000, "nobody": 65534})
    group_db: Tuple[Tuple[str, int, Tuple[str, ...]], ...] = (
        ("root", 0, ()),
        ("kvm", KVM_GID, ("alice",)),
        ("alice", 1000, ()),
        ("nogroup", 65534, ()),
    )
    container: Optional[str] = None
    msr: Optional[Tuple[int, int]] = None
    cpuid: Mapping[int, Tuple[int, int, int, int]] = _field(default_factory=dict)
    cmdline: Optional[str] = None
    misc_capacity: Optional[Mapping[str, int]] = None
    memlock: Optional[Tuple[int, int]] = None
    cap_eff: Optional[int] = None
    kernel_log: Optional[Tuple[str, ...]] = None
    acls: Mapping[str, bytes] = _field(default_factory=dict)

    def write(self, root: str) -> str:
        """Write the tree under ``root`` (an existing, preferably empty directory); return ``root``."""
        import json
        import os

        def put(relative: str, text: str) -> None:
            path = os.path.join(root, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)

        put("proc/sys/kernel/ostype", self.system + "\n")
        put("proc/sys/kernel/osrelease", self.kernel_release + "\n")
        put("proc/sys/kernel/arch", self.machine + "\n")
        cpu = "".join(
            f"processor\t: {n}\n"
            + (f"vendor_id\t: {self.cpu_vendor}\n" if self.cpu_vendor else "")
            + ("flags" if self.machine in ("x86_64", "i686") else "Features")
            + f"\t\t: {' '.join(self.cpu_flags)}\n\n"
            for n in range(2)
        )
        put("proc/cpuinfo", cpu)
        groups = " ".join(str(g) for g in self.groups)
        caps = f"CapEff:\t{self.cap_eff:016x}\n" if self.cap_eff is not None else ""
        put("proc/self/status", f"Name:\tpython3\nUid:\t{self.uid}\t{self.uid}\t{self.uid}\t{self.uid}\n"
            f"Gid:\t{self.gid}\t{self.gid}\t{self.gid}\t{self.gid}\nGroups:\t{groups} \n{caps}")  # fmt: skip
        put("proc/1/cgroup", "0::/\n" if self.container != "kubernetes" else "0::/kubepods/burstable/pod1\n")
        if self.proc_modules:
            put("proc/modules", "".join(f"{name} 1 0 - Live 0x0\n" for name in self.modules))
        os.makedirs(os.path.join(root, "sys/module"), exist_ok=True)
        for name, params in self.modules.items():
            os.makedirs(os.path.join(root, f"sys/module/{name}/parameters"), exist_ok=True)
            for param, value in params.items():
                put(f"sys/module/{name}/parameters/{param}", value + "\n")
        if self.kvm_misc_dev is not None:
            put("sys/devices/virtual/misc/kvm/dev", self.kvm_misc_dev + "\n")
        put("etc/passwd", "".join(f"{name}:x:{uid}:{uid}::/home/{name}:/bin/sh\n" for name, uid in self.users.items()))
        put("etc/group", "".join(f"{name}:x:{gid}:{','.join(members)}\n" for name, gid, members in self.group_db))
        nodes = {path: node.to_dict() for path, node in self.nodes.items() if node is not None}
        for path, raw in self.acls.items():  # the system.posix_acl_access bytes of a node, as hex
            nodes[path]["acl"] = raw.hex()
        put(_NODES_FILE, json.dumps(nodes, indent=1, sort_keys=True) + "\n")
        os.makedirs(os.path.join(root, "dev"), exist_ok=True)
        if self.container == "docker":
            put(".dockerenv", "")
        elif self.container == "podman":
            put("run/.containerenv", "")
        self._write_confidential(root, put)
        if self.msr is not None:
            offset, msr_value = self.msr
            path = os.path.join(root, "dev/cpu/0/msr")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.seek(offset)
                handle.write(msr_value.to_bytes(8, "little"))
        return root

    def _write_confidential(self, root: str, put: Callable[[str, str], None]) -> None:
        """The confidential-VM layers' files: CPUID through the cpuid driver (a sparse file, each
        leaf's 16 bytes at offset ``leaf``), the command line, misc.capacity, the memlock limit
        and the kernel log (``dev/kmsg`` records, ``prio,seq,usec,flags;text``)."""
        import os

        if self.cpuid:
            path = os.path.join(root, "dev/cpu/0/cpuid")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                for leaf, registers in sorted(self.cpuid.items()):
                    handle.seek(leaf)
                    handle.write(b"".join(r.to_bytes(4, "little") for r in registers))
        if self.cmdline is not None:
            put("proc/cmdline", self.cmdline + "\n")
        if self.misc_capacity is not None:
            put("sys/fs/cgroup/misc.capacity", "".join(f"{k} {v}\n" for k, v in self.misc_capacity.items()))
        if self.memlock is not None:
            soft, hard = ("unlimited" if n < 0 else str(n) for n in self.memlock)
            put("proc/self/limits", f"Limit                     Soft Limit           Hard Limit           Units\n"
                f"Max locked memory         {soft:<20} {hard:<20} bytes\n")  # fmt: skip
        if self.kernel_log is not None:
            put("dev/kmsg", "".join(f"6,{n},{n * 1000},-;{line}\n" for n, line in enumerate(self.kernel_log)))

    @staticmethod
    def char(major: int, minor: int, mode: int = 0o660, uid: int = 0, gid: int = KVM_GID) -> _DeviceNode:
        """A character-device node description (default: 0660 root:kvm).

        Example:
            >>> FakeHost.char(10, 232).mode_text
            'crw-rw----'
        """
        return _char(major, minor, mode, uid, gid)

    def with_node(self, path: str, node: Optional[_DeviceNode]) -> FakeHost:
        """A copy with ``path`` described as ``node`` (``None``: absent).

        Example:
            >>> FakeHost().with_node("/dev/kvm", None).nodes["/dev/kvm"] is None
            True
        """
        return _replace(self, nodes={**self.nodes, path: node})

    @classmethod
    def centos7(cls) -> FakeHost:
        """The CentOS 7 host of DEVELOPERS.md: bare-metal Intel, kernel 3.10, kvm_intel nested=N,
        ``/dev/kvm`` 0660 root:kvm with the user in ``kvm``; no vhost-vsock (Linux 4.8 added it).

        Example:
            >>> FakeHost.centos7().kernel_release
            '3.10.0-1160.el7.x86_64'
        """
        nodes = _standard_nodes(_char(10, 232))
        nodes["/dev/vhost-vsock"] = None
        return cls(
            kernel_release="3.10.0-1160.el7.x86_64",
            modules={"kvm": {"halt_poll_ns": "400000"}, "kvm_intel": {"nested": "N", "ept": "Y"}},
            nodes=nodes,
        )

    @classmethod
    def no_kvm_module(cls) -> FakeHost:
        """Bare-metal Intel with VT-x, but no KVM module loaded: no ``/dev/kvm``, nothing registered.

        Example:
            >>> FakeHost.no_kvm_module().modules
            {}
        """
        return cls(modules={}, kvm_misc_dev=None, nodes=_standard_nodes(None, vhost=False))

    @classmethod
    def outside_kvm_group(cls) -> FakeHost:
        """Ubuntu-like host: ``/dev/kvm`` 0660 root:kvm, and the user (bob) is not in ``kvm``.

        Example:
            >>> FakeHost.outside_kvm_group().groups
            (1001,)
        """
        return cls(
            uid=1001,
            gid=1001,
            groups=(1001,),
            users={"root": 0, "alice": 1000, "bob": 1001, "nobody": 65534},
            group_db=(("root", 0, ()), ("kvm", KVM_GID, ("alice",)), ("bob", 1001, ()), ("nogroup", 65534, ())),
        )

    @classmethod
    def amd_nested0(cls) -> FakeHost:
        """Bare-metal AMD: kvm_amd with ``nested`` = 0 (kvm_amd prints an int, not Y/N).

        Example:
            >>> FakeHost.amd_nested0().modules["kvm_amd"]["nested"]
            '0'
        """
        return cls(
            cpu_vendor="AuthenticAMD",
            cpu_flags=("fpu", "msr", "svm", "npt", "lm"),
            modules={"kvm": {"halt_poll_ns": "200000"}, "kvm_amd": {"nested": "0", "npt": "1"}},
        )

    @classmethod
    def pvm(cls) -> FakeHost:
        """A guest like the machine kvmprobe is developed on: kernel 6.18, the ``hypervisor``
        flag and no vmx/svm, KVM from ``kvm_pvm``, no ``/proc/modules``, ``/dev/kvm`` 0600
        root:root, no vhost nodes, root in a docker container, and no ``kvm`` group.

        Example:
            >>> FakeHost.pvm().modules["kvm_pvm"]["pvm_native"]
            'Y'
        """
        return cls(
            kernel_release="6.18.44-fc-v769",
            cpu_flags=("fpu", "msr", "hypervisor", "lm"),
            modules={"kvm": {"enable_virt_at_load": "Y", "halt_poll_ns": "200000"},
                     "kvm_pvm": {"pvm_native": "Y", "force": "N"}},  # fmt: skip
            proc_modules=False,
            nodes=_standard_nodes(_char(10, 232, 0o600, 0, 0), vhost=False, tun=True),
            uid=0,
            gid=0,
            groups=(),
            users={"root": 0, "nobody": 65534},
            group_db=(("root", 0, ()), ("nogroup", 65534, ())),
            container="docker",
        )

    @classmethod
    def container_no_kvm(cls) -> FakeHost:
        """A docker container on a KVM host, started without ``--device /dev/kvm``: the host's
        modules and misc registration show through ``/sys``, the node does not exist.

        Example:
            >>> FakeHost.container_no_kvm().nodes["/dev/kvm"] is None
            True
        """
        return cls(
            nodes=_standard_nodes(None, vhost=False, tun=False),
            uid=0,
            gid=0,
            groups=(),
            container="docker",
        )

    @classmethod
    def amd_snp(cls) -> FakeHost:
        """A made-up bare-metal AMD EPYC host ready for SEV, SEV-ES and SEV-SNP guests: Linux 6.18,
        the sev/sev_es/sev_snp flags, CPUID 0x8000001F with SEV, SEV-ES and SNP (C-bit 51, 1006
        ASIDs, the first 99 for SEV-ES/SNP), kvm_amd with sev/sev_es/sev_snp=Y, ``/dev/sev`` 0660
        root:sev with the user (alice) in ``sev``, misc.capacity ``sev 907``/``sev_es 99``, an 8 MiB
        memlock limit, and the SNP firmware's API line in the kernel log. Pair it with
        :meth:`FakeBackend.amd_snp` for KVM's answers.

        Example:
            >>> FakeHost.amd_snp().modules["kvm_amd"]["sev_snp"]
            'Y'
        """
        sev_gid = 970
        return cls(
            kernel_release="6.18.0",
            cpu_vendor="AuthenticAMD",
            cpu_flags=("fpu", "msr", "svm", "npt", "lm", "sme", "sev", "sev_es", "sev_snp"),
            modules={"kvm": {"halt_poll_ns": "200000"},
                     "kvm_amd": {"nested": "1", "npt": "1", "sev": "Y", "sev_es": "Y", "sev_snp": "Y"}},  # fmt: skip
            nodes={**_standard_nodes(_char(10, 232)), "/dev/sev": _char(10, 122, 0o660, 0, sev_gid)},
            groups=(1000, KVM_GID, sev_gid),
            group_db=(("root", 0, ()), ("kvm", KVM_GID, ("alice",)), ("sev", sev_gid, ("alice",)), ("alice", 1000, ())),
            # EAX: SME, SEV, VM_PAGE_FLUSH, SEV_ES, SEV_SNP, VMPL, V_TSC_AUX, SME_COHERENT, DEBUG_SWAP;
            # EBX: C-bit 51, 1 address bit lost, 4 VMPLs; ECX: 1006 ASIDs; EDX: SEV-only from ASID 100.
            cpuid={0x80000000: (0x80000028, 0, 0, 0), 0x8000001F: (0x463F, 0x4073, 1006, 100)},
            cmdline="BOOT_IMAGE=/vmlinuz-6.18.0 root=/dev/sda1 ro",
            misc_capacity={"sev": 907, "sev_es": 99},
            memlock=(8 << 20, 8 << 20),
            cap_eff=0,
            kernel_log=("ccp 0000:22:00.1: sev enabled", "ccp 0000:22:00.1: SEV-SNP API:1.55 build:21"),
        )

    @classmethod
    def amd_sev_firmware_off(cls) -> FakeHost:
        """A made-up AMD host like :meth:`amd_snp` whose SEV firmware did not initialize SNP:
        kvm_amd still says ``sev_snp=Y`` while KVM offers no SNP VM type (as on Linux 6.11-6.15,
        where the parameter does not fold in the firmware, or on a kernel that drops the type
        after the parameters are set), and no SNP API line in the kernel log. Pair it with
        :meth:`FakeBackend.amd_sev_firmware_off`.

        Example:
            >>> FakeHost.amd_sev_firmware_off().kernel_log
            ('ccp 0000:22:00.1: sev enabled',)
        """
        return _replace(cls.amd_snp(), kernel_release="6.12.0", kernel_log=("ccp 0000:22:00.1: sev enabled",))

    @classmethod
    def intel_tdx_off(cls) -> FakeHost:
        """A made-up bare-metal Intel host whose BIOS enabled TDX (the kernel's tdx_host_platform
        flag) but whose kvm_intel runs with ``tdx=N`` (its default): Linux 6.18, no ``tdx`` in
        misc.capacity, nothing about TDX in the kernel log. Pair it with a :class:`FakeBackend`
        answering ``VM_TYPES`` 1.

        Example:
            >>> FakeHost.intel_tdx_off().modules["kvm_intel"]["tdx"]
            'N'
        """
        return cls(
            kernel_release="6.18.0",
            cpu_flags=("fpu", "msr", "vmx", "ept", "vpid", "lm", "tdx_host_platform"),
            modules={"kvm": {"halt_poll_ns": "200000"}, "kvm_intel": {"nested": "Y", "ept": "Y", "tdx": "N"}},
            cpuid={0x80000000: (0x80000008, 0, 0, 0)},
            cmdline="BOOT_IMAGE=/vmlinuz-6.18.0 root=/dev/sda1 ro",
            misc_capacity={},
            memlock=(8 << 20, 8 << 20),
            cap_eff=0,
            kernel_log=(),
        )
