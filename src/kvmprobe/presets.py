"""Hosts a test can ask for by name, each honest about where it came from.

Imports ``snapshot``, ``probing``, ``host``, ``caps``, ``_ioctl`` and ``errors``. Three kinds:

* **Recorded**: ``pvm-6.18`` is the real snapshot of the machine kvmprobe was developed on
  (``python -m kvmprobe snapshot --vm``: Linux 6.18 with the PVM backend ``kvm_pvm``, x86_64,
  run as root in a container), shipped as ``kvmprobe/preset_data/pvm-6.18.json``. Every value
  and host fact is what that kernel answered.
* **Derived from source**: ``rhel-7.9`` (CentOS/RHEL 7.9, kernel 3.10.0-1160.el7; also ``rhel-7``) and
  ``rhel-8.10`` (RHEL 8.10, kernel 4.18.0-553; also ``rhel-8``) are what those vendor kernels
  answer on ``/dev/kvm``, read off their ``kvm_vm_ioctl_check_extension`` and the generic
  handler (every ``case`` label, every constant it returns, the configuration that compiles
  cases in or out), for a typical Intel host: shipped as ``preset_data/rhel-*.json``. They are
  no recording: ``ProbeResult.derivation`` cites the source and states the assumptions
  (hardware-dependent answers, module parameters; the host facts *are* those assumptions),
  ``source`` says ``(derived from source)`` and ``origin`` ``derived from source``. They show
  what a release date cannot: RHEL 7.9's "3.10" has ``SPLIT_IRQCHIP`` and ``X2APIC_API``
  (Linux 4.4 and 4.8) and lacks ``IMMEDIATE_EXIT`` (4.11).
* **Synthesized**: ``linux-3.10``, ``linux-4.14``, ``linux-5.4``, ``linux-5.10`` and
  ``linux-6.1`` are computed when loaded, from each capability's ``Cap.since`` (its first
  mainline release), for x86_64. They list the capabilities a mainline kernel of that
  release exposes *at most*; they are no recording of any kernel. Marked so everywhere:
  ``ProbeResult.synthesized`` is true, ``source`` says ``(synthesized)``, and the kernel
  release is ``<release>.0-synthesized`` (in the host facts too).

The rule for a synthesized host, for every capability of the table:

1. Leave it out (value 0) unless ``since`` is at most the release.
2. Leave it out unless it is offered on x86_64: cap.rs's arch gating (``Cap.applies_to``),
   and no name of another architecture's family: the prefixes in :data:`OTHER_ARCH_PREFIXES`
   and the names in :data:`OTHER_ARCH_NAMES` (PowerPC's, and arm64's ``MSI_DEVID``, whose
   presence a VMM refuses: an upper bound would be wrong there). Other generic-sounding
   capabilities that only some architectures implement (``PTP_KVM`` is arm64's,
   ``VM_GPA_BITS`` riscv's) stay in: the list is an upper bound.
3. Its value is 1, unless the recorded ``pvm-6.18`` host answered more than 1 (a count such
   as ``NR_MEMSLOTS`` or a bit mask such as ``X2APIC_API``): then that answer, as real
   numbers of one real host, not of that old kernel.

What the rule cannot know: stable and vendor kernels backport capabilities (RHEL 7's "3.10"
has many 4.x ones), constants the kernel later dropped still count, and a real host of that
release may lack any of them (no ``kvm_intel``, an old CPU). Host facts other than the
system, machine and kernel release are unknown (``None`` or empty). For a real host, record
one with ``python -m kvmprobe snapshot --vm -o FILE`` and load it with ``load_snapshot``.
"""

from __future__ import annotations

import functools
import json
import os

from ._ioctl import KVM_API_VERSION
from ._value import replace
from .caps import Cap
from .errors import SnapshotError
from .host import HostFacts
from .probing import ProbeResult
from .snapshot import load_snapshot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Tuple

__all__ = [
    "OTHER_ARCH_NAMES",
    "OTHER_ARCH_PREFIXES",
    "RECORDED_PRESET",
    "load_preset",
    "load_recorded",
    "offered_on_x86_64",
    "preset_names",
]

#: The recorded preset: the real snapshot synthesized values larger than 1 come from.
RECORDED_PRESET = "pvm-6.18"

_RECORDED: Dict[str, str] = {RECORDED_PRESET: "pvm-6.18.json"}

# Derived from vendor kernel source (see the module docstring); data files in preset_data/.
_DERIVED: Dict[str, str] = {"rhel-7.9": "rhel-7.9.json", "rhel-8.10": "rhel-8.10.json"}
# Other names users write for them: a major release means its last minor release, the one
# these were derived from (RHEL 8: 8.10; RHEL 7 and CentOS 7: 7.9, the final 7.x).
_ALIASES: Dict[str, str] = {"rhel-8": "rhel-8.10", "rhel-7": "rhel-7.9", "centos-7.9": "rhel-7.9", "centos-7": "rhel-7.9"}

# The kernels users still meet: 3.10 (RHEL/CentOS 7, the story in README), 4.14, 5.4, 5.10
# and 6.1 (long-term releases of Amazon Linux 2, Ubuntu 20.04, Debian 11 and Debian 12).
_SYNTHESIZED: Dict[str, Tuple[int, int]] = {
    "linux-3.10": (3, 10),
    "linux-4.14": (4, 14),
    "linux-5.4": (5, 4),
    "linux-5.10": (5, 10),
    "linux-6.1": (6, 1),
}

#: Capability name prefixes of other architectures' KVM (s390, PowerPC and its sPAPR
#: platform, Arm, MIPS, RISC-V, LoongArch): never offered on x86_64.
OTHER_ARCH_PREFIXES = ("S390_", "PPC_", "SPAPR_", "ARM_", "MIPS_", "RISCV_", "LOONGARCH_")

#: Capabilities of other architectures without their prefix: PowerPC's in-kernel OpenPIC
#: (MPIC) and XICS interrupt controllers and Book E's software TLB (arch/powerpc/kvm/powerpc.c
#: answers them), and MSI_DEVID, which only arm64 answers (arch/arm64/kvm/arm.c:349 in Linux
#: 6.16.1); crosvm panics on x86 where it is 1, so a synthesized x86 host must not claim it.
OTHER_ARCH_NAMES = frozenset({"IRQ_MPIC", "IRQ_XICS", "SW_TLB", "MSI_DEVID"})


def preset_names() -> List[str]:
    """The preset names :func:`load_preset` accepts: the recorded host first, then those derived
    from vendor source, then the synthesized ones by release (aliases such as ``rhel-8`` are
    accepted too, and not listed).

    Example:
        >>> preset_names()
        ['pvm-6.18', 'rhel-7.9', 'rhel-8.10', 'linux-3.10', 'linux-4.14', 'linux-5.4', 'linux-5.10', 'linux-6.1']
    """
    return list(_RECORDED) + list(_DERIVED) + list(_SYNTHESIZED)


def offered_on_x86_64(cap: Cap) -> bool:
    """Whether the synthesized presets may list ``cap`` (rule 2 of this module's docstring).

    Example:
        >>> offered_on_x86_64(Cap.IMMEDIATE_EXIT), offered_on_x86_64(Cap.ARM_SVE), offered_on_x86_64(Cap.IRQ_XICS)
        (True, False, False)
    """
    return (
        cap.applies_to("x86_64")
        and not cap.name.startswith(OTHER_ARCH_PREFIXES)
        and cap.name not in OTHER_ARCH_NAMES
    )


@functools.lru_cache(maxsize=None)
def load_preset(name: str) -> ProbeResult:
    """A named host: the recorded ``pvm-6.18``, ``rhel-7.9`` or ``rhel-8.10`` derived from
    vendor source, or a synthesized ``linux-X.Y`` (x86_64).

    The result is a :class:`~kvmprobe.ProbeResult` like a live probe's; ``source`` is
    ``"preset:<name>"`` (plus ``" (synthesized)"`` or ``" (derived from source)"``). Use it with ``kvmprobe.testing.fake_kvm``
    (or the pytest ``fake_kvm`` fixture) to make code under test see that host.

    Raises:
        SnapshotError: no preset has that name (the hint lists them).

    Example:
        >>> old = load_preset("linux-3.10")
        >>> old.synthesized, old.kernel, old.has("IMMEDIATE_EXIT"), old.has("NR_MEMSLOTS")
        (True, '3.10.0-synthesized', False, True)
        >>> load_preset("linux-4.14").has("IMMEDIATE_EXIT"), load_preset("linux-4.14").value("NR_MEMSLOTS")
        (True, 32764)
        >>> real = load_preset("pvm-6.18")
        >>> real.synthesized, real.host.kvm_backend
        (False, 'kvm_pvm')
        >>> centos = load_preset("rhel-7.9")
        >>> centos.origin, centos.kernel, centos.has("IMMEDIATE_EXIT"), centos.has("SPLIT_IRQCHIP")
        ('derived from source', '3.10.0-1160.el7.x86_64', False, True)
        >>> load_preset("rhel-8").source
        'preset:rhel-8.10 (derived from source)'
    """
    name = _ALIASES.get(name, name)
    if name in _RECORDED:
        return _recorded(name)
    if name in _DERIVED:
        return _derived(name)
    if name in _SYNTHESIZED:
        return _synthesized(name, _SYNTHESIZED[name])
    import difflib  # only on this error path

    close = difflib.get_close_matches(str(name), preset_names(), n=1)
    raise SnapshotError(
        f"no preset named {name!r}",
        hint=(f"did you mean {close[0]}? " if close else "") + "the presets are: " + ", ".join(preset_names()),
    )


def load_recorded(spec: str) -> ProbeResult:
    """A recorded host as the command line names one: ``preset:NAME``, else a snapshot file.

    Raises:
        SnapshotError: no such preset, or the file does not load.

    Example:
        >>> load_recorded("preset:linux-4.14").source
        'preset:linux-4.14 (synthesized)'
    """
    if spec.startswith("preset:"):
        return load_preset(spec[len("preset:"):])
    return load_snapshot(spec)


def _shipped(file: str) -> ProbeResult:
    # The package's own loader reads the file, from a directory or from the zip archive of
    # kvmprobe.pyz alike (importlib.resources would do the same and import zipfile, tempfile,
    # pathlib and more with it: milliseconds a --snapshot preset: run does not need).
    path = os.path.join(os.path.dirname(__file__), "preset_data", file)
    text = __spec__.loader.get_data(path).decode("utf-8")  # type: ignore[union-attr]
    return load_snapshot(json.loads(text))


def _recorded(name: str) -> ProbeResult:
    return replace(_shipped(_RECORDED[name]), source=f"preset:{name}")


def _derived(name: str) -> ProbeResult:
    result = _shipped(_DERIVED[name])
    if result.derivation is None or result.synthesized:  # the data file's own marking, checked
        raise SnapshotError(f"preset {name} is not marked derived from source", hint="reinstall kvmprobe")
    return replace(result, source=f"preset:{name} (derived from source)")


def _synthesized(name: str, release: Tuple[int, int]) -> ProbeResult:
    real = load_preset(RECORDED_PRESET).values
    values: Dict[Cap, int] = {}
    for cap in Cap:
        offered = cap.since <= release and offered_on_x86_64(cap)
        values[cap] = (real[cap] if real.get(cap, 0) > 1 else 1) if offered else 0
    kernel = f"{release[0]}.{release[1]}.0-synthesized"
    return ProbeResult(
        device="/dev/kvm",
        api_version=KVM_API_VERSION,
        values=values,
        arch="x86_64",
        kernel=kernel,
        backend="",
        source=f"preset:{name} (synthesized)",
        host=HostFacts(system="Linux", machine="x86_64", kernel_release=kernel),
        synthesized=True,
    )
