"""``kvmprobe cpu [--json] [--has FEATURE...]``: the CPU a guest gets from KVM here, and what KVM hides."""

from __future__ import annotations

import sys

from . import _common

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any, List, Optional

# Lines are wrapped to this width (a terminal's usual 100 columns, less a margin).
_WIDTH = 96


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cpu",
        help="the CPU a guest gets from KVM, and what KVM hides of the host CPU",
        description="Ask KVM what CPU it offers a guest (KVM_GET_SUPPORTED_CPUID and KVM_GET_EMULATED_CPUID, the "
        "MSR lists, the feature MSRs, the XSAVE components and a scratch vCPU's TSC rate) and compare it with the "
        "host CPU's own CPUID and /proc/cpuinfo flags. With --has, exit 0 when a guest gets every named feature, "
        "1 when not. Feature names are /proc/cpuinfo's (pni, sse4_1, avx2) or the kernel's X86_FEATURE_ macros.",
    )
    parser.add_argument("--json", action="store_true", help="print the kvmprobe-cpu JSON document")
    parser.add_argument("--has", nargs="+", metavar="FEATURE", help="exit 0 if a guest gets every FEATURE, 1 if not")
    parser.add_argument("-q", "--quiet", action="store_true", help="with --has: print nothing, only set the exit code")
    _common.add_source_arguments(parser)
    parser.set_defaults(func=run)


def quick_args(words: List[str]) -> Optional[argparse.Namespace]:
    """``cpu`` read without argparse when the words are plain (``--has`` is argparse's)."""
    args = _common.quick_args("cpu", words, run, flags={"--json": "json", "-q": "quiet", "--quiet": "quiet"})
    if args is not None:
        args.has = None
    return args


def run(args: argparse.Namespace) -> int:
    from .._cpuid import lookup
    from ..cpuinfo import cpu_of
    from ..errors import NotRecorded

    wanted = [lookup(name) for name in args.has or ()]  # bad names fail before KVM is touched
    result = _common.load_result(args, vm=True, cpu=True)
    info = cpu_of(result)
    if wanted and not info.readable:
        raise NotRecorded("the guest CPU", info.source, hint="; ".join(info.notes) or "record it on an x86 host")
    if args.json:
        _common.write_json(_with_class(info))
    if wanted:
        return _has(info, [row.name for row in wanted], quiet=args.quiet or args.json)
    if not args.json:
        where = f"Linux {result.kernel} ({result.arch}), {result.device}"
        sys.stdout.write(render(info, where))
    return _common.EXIT_OK


def _with_class(info: Any) -> Any:
    """The kvmprobe-cpu document with the host's compatibility class (``kvmprobe compat``):
    ``null`` where KVM's CPUID is not known."""
    from .._cpu_view import cpu_class, view_of

    doc = info.to_dict()
    readable = info.record is not None and info.record.cpuid is not None
    doc["cpu_class"] = cpu_class(view_of(info.record, info.source)) if readable else None
    return doc


def _has(info: Any, names: List[str], *, quiet: bool) -> int:
    missing = [name for name in names if not info.has(name)]
    if not quiet:
        for name in names:
            if name not in missing:
                state = "yes"
            elif name in info.host_only:
                state = "missing (the host CPU has it; KVM does not offer it)"
            elif name in info.emulated:
                state = "missing (KVM can only emulate it: KVM_GET_EMULATED_CPUID)"
            else:
                state = "missing"
            print(f"{name}: {state}")
    if missing:
        print(f"kvmprobe: a guest does not get: {', '.join(missing)} ({info.source})", file=sys.stderr)
        return _common.EXIT_NO
    return _common.EXIT_OK


def wrap_words(words: List[str], width: int) -> List[str]:
    """``textwrap.wrap(" ".join(words), width, break_on_hyphens=False)``: words packed greedily into
    lines of at most ``width``. By hand for plain words (textwrap imports ``re``: milliseconds);
    textwrap itself for a word that is empty, too long for a line, or holds whitespace.

    Example:
        >>> wrap_words(["fpu", "vme", "de", "pse"], 8)
        ['fpu vme', 'de pse']
    """
    if any(not word or len(word) > width or not word.isprintable() or " " in word for word in words):
        import textwrap

        return textwrap.wrap(" ".join(words), width=width, break_on_hyphens=False)
    lines: List[str] = []
    line = ""
    for word in words:
        if line and len(line) + 1 + len(word) <= width:
            line += " " + word
        else:
            if line:
                lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def _wrap(label: str, words: List[str], indent: int) -> List[str]:
    lines = wrap_words(words, _WIDTH - indent) or [""]
    pad = " " * indent
    return [f"{label:<{indent}}{lines[0]}".rstrip()] + [pad + line for line in lines[1:]]


def render(info: Any, where: str = "") -> str:
    """The human report of ``kvmprobe cpu``: grouped, one screen, names not bits."""
    module = f", {info.kvm_backend}" if info.kvm_backend else ""
    out: List[str] = [f"CPU a guest gets from KVM: {info.source} ({where}{module})"]
    if not info.readable and info.record is None:
        out += [f"  {note}" for note in info.notes]
        return "\n".join(out) + "\n"
    record = info.record
    if info.vendor is not None:
        out.append(f"  vendor      {info.vendor}, family {info.family} ({info.family:#x}), model {info.model} "
                   f"({info.model:#x}), stepping {info.stepping} (CPUID.1:EAX {info.signature:#010x})")  # fmt: skip
    if info.microcode is not None:
        out.append(f"  microcode   {info.microcode:#x}")
    entries = "not answered" if record.cpuid is None else f"{len(record.cpuid)} entries"
    emulated = "not answered" if record.emulated_cpuid is None else f"{len(record.emulated_cpuid)} entries"
    out.append(f"  CPUID       KVM_GET_SUPPORTED_CPUID {entries}, KVM_GET_EMULATED_CPUID {emulated}")
    host = record.host_cpuid_source or "not recorded"
    flags = "not recorded" if record.host_flags is None else f"{len(record.host_flags)} flags"
    out.append(f"  host        CPUID: {host}; /proc/cpuinfo: {flags}")
    if record.cpuid is not None:
        hidden = "" if info.host is None else f"; missing: what the host CPU has and KVM does not offer ({len(info.host_only)})"
        out += ["", f"Features a guest gets ({len(info.features)}){hidden}:"]
        for group, offered, missing in info.groups():
            out += _wrap(f"  {group}", offered, 30)
            if missing:
                out += _wrap("    missing:", missing, 30)
        out.append("")
        if info.emulated:
            out += _wrap("KVM emulates (not offered):", sorted(info.emulated), 30)
        if info.host is not None:
            out += _wrap("KVM offers, the host lacks:", sorted(info.kvm_only), 30)
    xsave = "not known" if info.xsave_mask is None else f"{info.xsave_mask:#x}: " + " ".join(info.xsave)
    source = "KVM_X86_XCOMP_GUEST_SUPP" if record.xcomp_guest_supp is not None else "CPUID 0xD.0"
    out.append(f"XSAVE components a guest may use ({source}): {xsave}")
    if info.xsave_lost:
        out.append("  the host has, a guest may not use: " + " ".join(info.xsave_lost))
    if info.feature_msrs:
        out.append("Feature MSRs (KVM_GET_MSR_FEATURE_INDEX_LIST, values from KVM_GET_MSRS):")
        for msr in info.feature_msrs:
            value = "not readable" if msr.value is None else f"{msr.value:#x}"
            out += _wrap(f"  {msr.msr:<#7x} {msr.name:<28} {value:<20}", msr.meaning.split(), 60)
    msrs = "not answered" if record.msrs is None else f"{len(record.msrs)}"
    out.append(f"MSRs a VMM saves and restores (KVM_GET_MSR_INDEX_LIST): {msrs}")
    tsc = "not recorded" if record.tsc_khz is None else f"{record.tsc_khz} kHz"
    out.append(f"TSC rate of a new vCPU (KVM_GET_TSC_KHZ): {tsc}")
    for failure in info.failed:
        out.append(f"not answered: {failure.describe()}")
    for note in info.notes:
        out += _wrap("note: ", note.split(), 6)
    return "\n".join(out) + "\n"
