"""The micro-guest's memory layout and the x86 machine code of its standard programs: bytes.

Imports nothing from the package. Every program is hand-assembled; each instruction's bytes
are spelled out beside it (Intel SDM vol. 2 opcode tables). The same bytes mean the same in
32-bit protected mode and 64-bit long mode for every instruction used here (``mov r32, imm32``
B8+r, ``xor``/``mov`` r32 31/89, ``dec r32`` FF /1, ``cpuid`` 0F A2, ``out imm8, al/eax`` E6/E7,
``jnz rel8`` 75, ``hlt`` F4, ``ret`` C3); ``dec ecx`` is FF C9 and not 49, which is a REX prefix
in long mode. Real mode has its own programs.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Sequence, Tuple

__all__ = [
    "CODE_ADDRESS",
    "MEMORY_SIZE",
    "REAL_MODE_CODE_LIMIT",
    "REAL_MODE_OUT_HLT",
    "HANG",
    "compute_loop",
    "cpuid_program",
    "native_loop",
    "out_loop",
    "page_tables",
]

#: Guest RAM: one slot at guest-physical 0, this large (2 MiB: one large page maps all of it).
MEMORY_SIZE = 0x200000
#: Where the code goes (guest-physical; in real mode CS = 0x1000, IP = 0).
CODE_ADDRESS = 0x10000
#: The stack grows down from here (below the code, above the page tables).
STACK_TOP = 0xF000
#: Real mode addresses code through one 64 KiB segment.
REAL_MODE_CODE_LIMIT = 0x10000
#: The page tables of long mode: PML4, PDPT and PD, one 4 KiB page each.
PML4_ADDRESS, PDPT_ADDRESS, PD_ADDRESS = 0x1000, 0x2000, 0x3000

# Page-table entry bits (Intel SDM vol. 3A, 4.5): present, writable, and PS (a 2 MiB page in a PD).
_PRESENT, _WRITABLE, _LARGE = 0x1, 0x2, 0x80

#: ``mov al, 0x42; out 0x10, al; hlt``: the five bytes of issue #14 (real mode).
REAL_MODE_OUT_HLT = bytes([0xB0, 0x42, 0xE6, 0x10, 0xF4])
#: ``jmp $``: a guest that never exits.
HANG = bytes([0xEB, 0xFE])

#: The ports the standard long-mode program reports on.
PORT_MARK, PORT_CPUID = 0x10, 0x20  # PORT_CPUID..+3: EAX, EBX, ECX, EDX


def page_tables() -> List[Tuple[int, bytes]]:
    """The long-mode page tables as (guest-physical address, bytes): the first 2 MiB identity-mapped.

    Example:
        >>> [(hex(at), len(data)) for at, data in page_tables()]
        [('0x1000', 8), ('0x2000', 8), ('0x3000', 8)]
    """
    entry = struct.Struct("<Q")
    return [
        (PML4_ADDRESS, entry.pack(PDPT_ADDRESS | _PRESENT | _WRITABLE)),
        (PDPT_ADDRESS, entry.pack(PD_ADDRESS | _PRESENT | _WRITABLE)),
        (PD_ADDRESS, entry.pack(0 | _PRESENT | _WRITABLE | _LARGE)),
    ]


def _imm32(value: int) -> bytes:
    return struct.pack("<I", value & 0xFFFFFFFF)


def cpuid_program(leaves: Sequence[Tuple[int, int]]) -> bytes:
    """For each (leaf, subleaf): ``cpuid``, then EAX, EBX, ECX, EDX out on ports 0x20-0x23 (32 bits).

    Protected or long mode.

    Example:
        >>> cpuid_program([(0, 0)]).hex()
        'b800000000b9000000000fa2e72089d8e72189c8e72289d0e723'
    """
    code = b""
    for leaf, subleaf in leaves:
        code += b"\xb8" + _imm32(leaf)  # mov eax, leaf
        code += b"\xb9" + _imm32(subleaf)  # mov ecx, subleaf
        code += b"\x0f\xa2"  # cpuid
        code += bytes([0xE7, PORT_CPUID])  # out 0x20, eax
        code += b"\x89\xd8" + bytes([0xE7, PORT_CPUID + 1])  # mov eax, ebx; out 0x21, eax
        code += b"\x89\xc8" + bytes([0xE7, PORT_CPUID + 2])  # mov eax, ecx; out 0x22, eax
        code += b"\x89\xd0" + bytes([0xE7, PORT_CPUID + 3])  # mov eax, edx; out 0x23, eax
    return code


def out_loop(count: int, port: int = PORT_MARK) -> bytes:
    """``count`` times ``out port, al``: one exit to user space each (protected or long mode).

    Example:
        >>> out_loop(3).hex()
        'b903000000e610ffc975fa'
    """
    if count <= 0:
        return b""
    return (
        b"\xb9" + _imm32(count)  # mov ecx, count
        + bytes([0xE6, port])  # again: out port, al
        + b"\xff\xc9"  # dec ecx
        + b"\x75\xfa"  # jnz again (-6)
    )


def _loop(iterations: int) -> bytes:
    # mov ecx, n; again: dec ecx; jnz again (-4). Two instructions an iteration, no memory access.
    return b"\xb9" + _imm32(iterations) + b"\xff\xc9\x75\xfc"


def compute_loop(iterations: int, port: int = PORT_MARK + 1) -> bytes:
    """Two back-to-back ``out``s (the second one times a bare exit), the loop, a third ``out``.

    The run from the second exit to the third is the loop plus one exit: the guest's loop time
    is that minus the bare exit before it. Protected or long mode.

    Example:
        >>> compute_loop(1000).hex()
        'e611e611b9e8030000ffc975fce611'
    """
    mark = bytes([0xE6, port])  # out port, al
    return mark + mark + _loop(iterations) + mark


def native_loop(iterations: int) -> bytes:
    """The same loop as a function the host can call (System V: no argument, nothing returned).

    Example:
        >>> native_loop(1000).hex()
        'b9e8030000ffc975fcc3'
    """
    return _loop(iterations) + b"\xc3"  # ret
