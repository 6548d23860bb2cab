"""x86_64 relocations as LLVM emits them for small-code-model PIC objects."""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

__all__ = [
    "TRAMPOLINE_SIZE",
    "TRAMPOLINE_TARGET",
    "RelocationError",
    "apply",
    "kind",
    "name",
    "needs_got",
    "needs_plt",
    "trampoline",
]

R_X86_64_NONE: Final = 0
R_X86_64_64: Final = 1
R_X86_64_PC32: Final = 2
R_X86_64_PLT32: Final = 4
R_X86_64_GOTPCREL: Final = 9
R_X86_64_32: Final = 10
R_X86_64_32S: Final = 11
R_X86_64_PC64: Final = 24
R_X86_64_GOTPCRELX: Final = 41
R_X86_64_REX_GOTPCRELX: Final = 42

NAMES: Final = {
    R_X86_64_NONE: "R_X86_64_NONE",
    R_X86_64_64: "R_X86_64_64",
    R_X86_64_PC32: "R_X86_64_PC32",
    R_X86_64_PLT32: "R_X86_64_PLT32",
    R_X86_64_GOTPCREL: "R_X86_64_GOTPCREL",
    R_X86_64_32: "R_X86_64_32",
    R_X86_64_32S: "R_X86_64_32S",
    R_X86_64_PC64: "R_X86_64_PC64",
    R_X86_64_GOTPCRELX: "R_X86_64_GOTPCRELX",
    R_X86_64_REX_GOTPCRELX: "R_X86_64_REX_GOTPCRELX",
}

#: ``jmp *0(%rip)`` followed by the 8-byte target, padded to 16 bytes.
TRAMPOLINE_SIZE: Final = 16
#: where in a trampoline its 8-byte target is
TRAMPOLINE_TARGET: Final = 6

_GOT_TYPES: Final = frozenset({R_X86_64_GOTPCREL, R_X86_64_GOTPCRELX, R_X86_64_REX_GOTPCRELX})


class RelocationError(ValueError):
    """A relocation cannot be applied (unknown type, overflow, out of bounds)."""


_KINDS: Final = {
    R_X86_64_NONE: "none",
    R_X86_64_64: "abs64",
    R_X86_64_PC32: "pc",
    R_X86_64_PC64: "pc",
    R_X86_64_PLT32: "plt",
    R_X86_64_GOTPCREL: "got",
    R_X86_64_GOTPCRELX: "got",
    R_X86_64_REX_GOTPCRELX: "got",
    R_X86_64_32: "abs32",
    R_X86_64_32S: "abs32",
}


def kind(rtype: int) -> str:
    """What the value of a relocation of type ``rtype`` depends on (see ``_link``): ``pc``
    (distances only), ``got``, ``plt``, ``abs64``, ``abs32``, ``none`` or ``unknown``."""
    return _KINDS.get(rtype, "unknown")


def name(rtype: int) -> str:
    return NAMES.get(rtype, f"relocation type {rtype}")


def needs_got(rtype: int) -> bool:
    return rtype in _GOT_TYPES


def needs_plt(rtype: int) -> bool:
    return rtype == R_X86_64_PLT32


def trampoline(target: int) -> bytes:
    return b"\xff\x25\x00\x00\x00\x00" + struct.pack("<Q", target) + b"\xcc\xcc"


def _put(image: bytearray, offset: int, fmt: str, value: int, name: str, limit: int) -> None:
    size = struct.calcsize(fmt)
    if offset < 0 or offset + size > limit:
        raise RelocationError(f"{name} at {offset:#x} writes outside its section")
    try:
        struct.pack_into(fmt, image, offset, value)
    except struct.error as exc:
        raise RelocationError(f"{name} at {offset:#x}: value {value:#x} overflows its field") from exc


def apply(
    image: bytearray,
    offset: int,
    limit: int,
    rtype: int,
    symbol: int,
    addend: int,
    place: int,
    got_entry: int | None,
    plt_entry: int | None,
) -> None:
    """Apply one relocation to ``image[offset]``; ``limit`` is the end of the target section.

    ``symbol`` is S, ``place`` is P; ``got_entry`` is the address of the symbol's GOT
    slot and ``plt_entry`` the address to call (the symbol or its trampoline).
    """
    name = NAMES.get(rtype, f"relocation type {rtype}")
    if rtype == R_X86_64_NONE:
        return
    if rtype == R_X86_64_64:
        _put(image, offset, "<Q", (symbol + addend) & (2**64 - 1), name, limit)
    elif rtype == R_X86_64_PC32:
        _put(image, offset, "<i", symbol + addend - place, name, limit)
    elif rtype == R_X86_64_PLT32:
        assert plt_entry is not None
        _put(image, offset, "<i", plt_entry + addend - place, name, limit)
    elif rtype in _GOT_TYPES:
        assert got_entry is not None
        _put(image, offset, "<i", got_entry + addend - place, name, limit)
    elif rtype == R_X86_64_32:
        _put(image, offset, "<I", symbol + addend, name, limit)
    elif rtype == R_X86_64_32S:
        _put(image, offset, "<i", symbol + addend, name, limit)
    elif rtype == R_X86_64_PC64:
        _put(image, offset, "<q", symbol + addend - place, name, limit)
    else:
        raise RelocationError(f"unknown x86_64 relocation type {rtype}")
