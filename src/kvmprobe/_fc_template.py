"""Firecracker's custom CPU template (x86_64), read and written exactly as Firecracker's parser takes it.

Imports nothing from the package. The format, from firecracker-microvm/firecracker@81b38b9dad60 (the
parser and schema are the same at v1.16.1):

* the document (``src/vmm/src/cpu_config/x86_64/custom_cpu_template.rs:118-132``,
  ``deny_unknown_fields``): ``kvm_capabilities`` (strings: a decimal capability number to add,
  ``!`` and one to remove; ``templates.rs:129-155``), ``cpuid_modifiers``, ``msr_modifiers``;
  all optional. ``vcpu_features`` and ``reg_modifiers`` are aarch64's and refused here.
* a CPUID modifier (``:94-116``): ``leaf`` and ``subleaf`` as number strings, ``flags`` a JSON
  integer (``KVM_CPUID_FLAG_SIGNIFCANT_INDEX`` is 1), ``modifiers``: ``register`` exactly
  ``eax``, ``ebx``, ``ecx`` or ``edx`` (``:169-186``) and its ``bitmap``; all four required,
  other keys ignored (that struct does not deny them).
* an MSR modifier (``:146-159``): ``addr`` (a number string) and a 64-bit ``bitmap``.
* number strings (``templates_serde.rs:18-50``): a lower-case ``0x`` or ``0b`` prefix, then
  digits of that base (either case, leading zeros and one ``+`` allowed); no decimal, no
  ``0X``, no JSON number. Written as ``{:#x}`` (``:10-16``).
* bitmaps (``templates.rs:211-260``): an optional ``0b``, then ``0``/``1``/``x`` (lower case
  only) read from the last character (bit 0); ``_`` separates and is skipped, but the length
  check (at most 32, or 64 for an MSR) runs before it, so a ``_`` past a full register is
  refused; a shorter bitmap leaves the missing high bits as ``x``. ``0`` and ``1`` force the
  bit, ``x`` keeps it: ``new = (old & !filter) | value`` (``:173-178``). Written as ``0b`` and
  exactly 32 or 64 characters (``:184-209``).

Applied (``cpu_config/x86_64/mod.rs:43-92``) to KVM_GET_SUPPORTED_CPUID by exact
``(leaf, subleaf)``; a pair KVM does not list is an error (``CpuidFeatureNotSupported``), as is
an MSR KVM does not list (``MsrNotSupported``). The entry's flags become the template's.
Firecracker's normalization (``cpuid/normalize.rs`` and the vendor ones) runs afterwards and wins.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

__all__ = [
    "CpuTemplate",
    "CpuidModifier",
    "Filter",
    "MsrModifier",
    "apply_cpuid",
    "bitmap_text",
    "parse_bitmap",
    "parse_number",
    "parse_template",
    "template_document",
]

REGISTERS = ("eax", "ebx", "ecx", "edx")
_TOP_KEYS = ("kvm_capabilities", "cpuid_modifiers", "msr_modifiers")
_AARCH64_KEYS = ("vcpu_features", "reg_modifiers")
_U32 = 2**32 - 1
_RADIX_DIGITS = {16: re.compile(r"\+?[0-9a-fA-F]+"), 2: re.compile(r"\+?[01]+")}
_CAPABILITY = re.compile(r"!?\+?[0-9]+")


class Filter(NamedTuple):
    """A register bitmap: ``filter`` has the bits the template sets, ``value`` what they become.

    Example:
        >>> Filter(0b110, 0b100).apply(0b011)
        5
    """

    filter: int
    value: int

    def apply(self, old: int) -> int:
        """``(old & !filter) | value``, as Firecracker applies it."""
        return (old & ~self.filter) | self.value


class CpuidModifier(NamedTuple):
    """One CPUID leaf's modifiers: ``registers`` is ``(register, Filter)`` per register named."""

    leaf: int
    subleaf: int
    flags: int
    registers: Tuple[Tuple[str, Filter], ...]


class MsrModifier(NamedTuple):
    """One MSR's 64-bit modifier."""

    addr: int
    bitmap: Filter


class CpuTemplate(NamedTuple):
    """A Firecracker custom CPU template for x86_64."""

    kvm_capabilities: Tuple[str, ...] = ()
    cpuid_modifiers: Tuple[CpuidModifier, ...] = ()
    msr_modifiers: Tuple[MsrModifier, ...] = ()


#: Makes the caller's exception: ``(field, message)``.
MakeError = Callable[[str, str], Exception]


def _value_error(field: str, message: str) -> Exception:
    return ValueError(f"{field}: {message}")


def parse_number(text: Any, field: str = "$", make_error: MakeError = _value_error) -> int:
    """A ``leaf``/``subleaf``/``addr`` string as Firecracker reads it (``0x`` or ``0b``, lower case).

    Example:
        >>> parse_number("0x0007"), parse_number("0b11"), parse_number("0xD")
        (7, 3, 13)
        >>> parse_number("7")
        Traceback (most recent call last):
        ...
        ValueError: $: '7' has no number system prefix (0x or 0b)
    """
    if not isinstance(text, str):
        raise make_error(field, f"expected a string like \"0x7\", got {type(text).__name__}")
    radix = {"0x": 16, "0b": 2}.get(text[:2])
    if radix is None:
        raise make_error(field, f"{text[:40]!r} has no number system prefix (0x or 0b)")
    digits = text[2:]
    if _RADIX_DIGITS[radix].fullmatch(digits) is None:
        raise make_error(field, f"{text[:40]!r} is not a base-{radix} number")
    value = int(digits, radix)
    if value > _U32:
        raise make_error(field, f"{text[:40]!r} does not fit 32 bits")
    return value


def parse_bitmap(text: Any, width: int, field: str = "$", make_error: MakeError = _value_error) -> Filter:
    """A bitmap of ``0``/``1``/``x`` (``_`` separators, optional ``0b``) for a ``width``-bit register.

    Example:
        >>> parse_bitmap("0b1x0", 32)
        Filter(filter=5, value=4)
        >>> parse_bitmap("0bX", 32)
        Traceback (most recent call last):
        ...
        ValueError: $: unknown character 'X' in the bitmap (0, 1, x or _)
    """
    if not isinstance(text, str):
        raise make_error(field, f"expected a bitmap string, got {type(text).__name__}")
    body = text[2:] if text.startswith("0b") else text
    mask = value = 0
    bit = 0
    for char in reversed(body):
        if bit >= width:
            raise make_error(field, f"the bitmap is longer than {width} bits")
        if char == "_":
            continue
        if char == "0":
            mask |= 1 << bit
        elif char == "1":
            mask |= 1 << bit
            value |= 1 << bit
        elif char != "x":
            raise make_error(field, f"unknown character {char!r} in the bitmap (0, 1, x or _)")
        bit += 1
    return Filter(mask, value)


def bitmap_text(bitmap: Filter, width: int) -> str:
    """``0b`` and exactly ``width`` characters, highest bit first, as Firecracker writes them.

    Example:
        >>> bitmap_text(Filter(0b101, 0b100), 8)
        '0bxxxxx1x0'
    """
    chars = ["x" if not bitmap.filter >> bit & 1 else "1" if bitmap.value >> bit & 1 else "0" for bit in range(width)]
    return "0b" + "".join(reversed(chars))


def _mapping(item: Any, field: str, make_error: MakeError) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise make_error(field, f"expected an object, got {type(item).__name__}")
    return item


def _array(item: Any, field: str, make_error: MakeError) -> Sequence[Any]:
    if not isinstance(item, list):
        raise make_error(field, f"expected an array, got {type(item).__name__}")
    return item


def _required(item: Mapping[str, Any], key: str, field: str, make_error: MakeError) -> Any:
    if key not in item:
        raise make_error(f"{field}.{key}", "missing")
    return item[key]


def _cpuid_modifier(item: Any, at: str, make_error: MakeError) -> CpuidModifier:
    row = _mapping(item, at, make_error)
    leaf = parse_number(_required(row, "leaf", at, make_error), f"{at}.leaf", make_error)
    subleaf = parse_number(_required(row, "subleaf", at, make_error), f"{at}.subleaf", make_error)
    flags = _required(row, "flags", at, make_error)
    if isinstance(flags, bool) or not isinstance(flags, int) or not 0 <= flags <= _U32:
        raise make_error(f"{at}.flags", f"expected an integer 0..{_U32} (not a string), got {flags!r:.40}")
    registers: List[Tuple[str, Filter]] = []
    for j, mod in enumerate(_array(_required(row, "modifiers", at, make_error), f"{at}.modifiers", make_error)):
        where = f"{at}.modifiers[{j}]"
        mod = _mapping(mod, where, make_error)
        register = _required(mod, "register", where, make_error)
        if register not in REGISTERS:
            raise make_error(f"{where}.register", "Invalid CPUID register. Must be one of [eax, ebx, ecx, edx]")
        bitmap = parse_bitmap(_required(mod, "bitmap", where, make_error), 32, f"{where}.bitmap", make_error)
        registers.append((register, bitmap))
    return CpuidModifier(leaf, subleaf, flags, tuple(registers))


def parse_template(document: Any, make_error: MakeError = _value_error) -> CpuTemplate:
    """Read a parsed x86_64 custom CPU template the way Firecracker's serde does.

    Raises:
        the error ``make_error`` makes (``ValueError`` by default), naming the field.

    Example:
        >>> t = parse_template({"cpuid_modifiers": [{"leaf": "0x1", "subleaf": "0x0", "flags": 0,
        ...     "modifiers": [{"register": "ecx", "bitmap": "0bx0"}]}]})
        >>> t.cpuid_modifiers[0].registers
        (('ecx', Filter(filter=1, value=0)),)
        >>> parse_template({"reg_modifiers": []})
        Traceback (most recent call last):
        ...
        ValueError: $.reg_modifiers: unknown field (aarch64 only; x86_64 templates have kvm_capabilities, cpuid_modifiers, msr_modifiers)
    """
    top = _mapping(document, "$", make_error)
    for key in top:
        if key not in _TOP_KEYS:
            extra = "aarch64 only; " if key in _AARCH64_KEYS else ""
            raise make_error(f"$.{key}", f"unknown field ({extra}x86_64 templates have {', '.join(_TOP_KEYS)})")
    caps: List[str] = []
    for i, cap in enumerate(_array(top.get("kvm_capabilities", []), "$.kvm_capabilities", make_error)):
        if not isinstance(cap, str) or _CAPABILITY.fullmatch(cap) is None or int(cap.lstrip("!")) > _U32:
            raise make_error(f"$.kvm_capabilities[{i}]", f"expected \"<number>\" or \"!<number>\", got {cap!r:.40}")
        caps.append(cap)
    cpuid = tuple(
        _cpuid_modifier(item, f"$.cpuid_modifiers[{i}]", make_error)
        for i, item in enumerate(_array(top.get("cpuid_modifiers", []), "$.cpuid_modifiers", make_error))
    )
    msrs: List[MsrModifier] = []
    for i, item in enumerate(_array(top.get("msr_modifiers", []), "$.msr_modifiers", make_error)):
        at = f"$.msr_modifiers[{i}]"
        row = _mapping(item, at, make_error)
        addr = parse_number(_required(row, "addr", at, make_error), f"{at}.addr", make_error)
        msrs.append(MsrModifier(addr, parse_bitmap(_required(row, "bitmap", at, make_error), 64, f"{at}.bitmap", make_error)))
    return CpuTemplate(tuple(caps), cpuid, tuple(msrs))


def template_document(template: CpuTemplate) -> Dict[str, Any]:
    """The JSON document of ``template``, written as Firecracker's own serializer writes one.

    Example:
        >>> t = CpuTemplate(cpuid_modifiers=(CpuidModifier(7, 0, 1, (("ebx", Filter(1 << 5, 0)),)),))
        >>> template_document(t)["cpuid_modifiers"][0]["modifiers"][0]["bitmap"]
        '0bxxxxxxxxxxxxxxxxxxxxxxxxxx0xxxxx'
    """
    doc: Dict[str, Any] = {}
    if template.kvm_capabilities:
        doc["kvm_capabilities"] = list(template.kvm_capabilities)
    doc["cpuid_modifiers"] = [
        {
            "leaf": f"{mod.leaf:#x}",
            "subleaf": f"{mod.subleaf:#x}",
            "flags": mod.flags,
            "modifiers": [{"register": register, "bitmap": bitmap_text(bits, 32)} for register, bits in mod.registers],
        }
        for mod in template.cpuid_modifiers
    ]
    doc["msr_modifiers"] = [{"addr": f"{mod.addr:#x}", "bitmap": bitmap_text(mod.bitmap, 64)} for mod in template.msr_modifiers]
    return doc


def apply_cpuid(template: CpuTemplate, entries: Sequence[Sequence[int]]) -> List[Tuple[int, ...]]:
    """``entries`` (``function, index, flags, eax, ebx, ecx, edx``) with the template's CPUID
    modifiers applied as Firecracker applies them (before its normalization).

    Raises:
        LookupError: a modified ``(leaf, subleaf)`` is not among ``entries`` (Firecracker's
            ``CpuidFeatureNotSupported``).

    Example:
        >>> t = CpuTemplate(cpuid_modifiers=(CpuidModifier(1, 0, 0, (("ecx", Filter(1, 0)),)),))
        >>> apply_cpuid(t, [(1, 0, 0, 0, 0, 0b11, 0)])
        [(1, 0, 0, 0, 0, 2, 0)]
    """
    rows = [list(entry) for entry in entries]
    where: Dict[Tuple[int, int], List[int]] = {(row[0], row[1]): row for row in rows}
    for mod in template.cpuid_modifiers:
        row: Optional[List[int]] = where.get((mod.leaf, mod.subleaf))
        if row is None:
            raise LookupError(f"CpuidFeatureNotSupported({mod.leaf:#x}, {mod.subleaf:#x})")
        row[2] = mod.flags
        for register, bits in mod.registers:
            index = 3 + REGISTERS.index(register)
            row[index] = bits.apply(row[index])
    return [tuple(row) for row in rows]
