"""AArch64 relocations as LLVM emits them for small-code-model PIC objects.

Instructions are patched field by field; every value is checked against its field
(alignment and range), so a bogus relocation is an error, never a wrong write.
"""

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

R_AARCH64_NONE: Final = 0
R_AARCH64_ABS64: Final = 257
R_AARCH64_ABS32: Final = 258
R_AARCH64_PREL64: Final = 260
R_AARCH64_PREL32: Final = 261
R_AARCH64_ADR_PREL_PG_HI21: Final = 275
R_AARCH64_ADD_ABS_LO12_NC: Final = 277
R_AARCH64_LDST8_ABS_LO12_NC: Final = 278
R_AARCH64_JUMP26: Final = 282
R_AARCH64_CALL26: Final = 283
R_AARCH64_LDST16_ABS_LO12_NC: Final = 284
R_AARCH64_LDST32_ABS_LO12_NC: Final = 285
R_AARCH64_LDST64_ABS_LO12_NC: Final = 286
R_AARCH64_LDST128_ABS_LO12_NC: Final = 299
R_AARCH64_ADR_GOT_PAGE: Final = 311
R_AARCH64_LD64_GOT_LO12_NC: Final = 312

_LDST_SHIFT: Final = {
    R_AARCH64_LDST8_ABS_LO12_NC: 0,
    R_AARCH64_LDST16_ABS_LO12_NC: 1,
    R_AARCH64_LDST32_ABS_LO12_NC: 2,
    R_AARCH64_LDST64_ABS_LO12_NC: 3,
    R_AARCH64_LDST128_ABS_LO12_NC: 4,
}

#: ``ldr x16, #8; br x16`` followed by the 8-byte target.
TRAMPOLINE_SIZE: Final = 16
#: where in a trampoline its 8-byte target is
TRAMPOLINE_TARGET: Final = 8
_GOT_TYPES: Final = frozenset({R_AARCH64_ADR_GOT_PAGE, R_AARCH64_LD64_GOT_LO12_NC})


class RelocationError(ValueError):
    """A relocation cannot be applied (unknown type, overflow, misalignment, out of bounds)."""


#: (ADRP's page distance and the low 12 bits of an address do not change when the image
#: moves by whole 4 KiB pages, as it does: it is placed on a page boundary)
_KINDS: Final = {
    R_AARCH64_NONE: "none",
    R_AARCH64_ABS64: "abs64",
    R_AARCH64_ABS32: "abs32",
    R_AARCH64_PREL64: "pc",
    R_AARCH64_PREL32: "pc",
    R_AARCH64_ADR_PREL_PG_HI21: "pc",
    R_AARCH64_ADD_ABS_LO12_NC: "pc",
    **dict.fromkeys(_LDST_SHIFT, "pc"),
    R_AARCH64_JUMP26: "plt",
    R_AARCH64_CALL26: "plt",
    R_AARCH64_ADR_GOT_PAGE: "got",
    R_AARCH64_LD64_GOT_LO12_NC: "got",
}


def kind(rtype: int) -> str:
    """What the value of a relocation of type ``rtype`` depends on (see ``_reloc_x86_64``)."""
    return _KINDS.get(rtype, "unknown")


def name(rtype: int) -> str:
    return f"AArch64 relocation type {rtype}"


def needs_got(rtype: int) -> bool:
    return rtype in _GOT_TYPES


def needs_plt(rtype: int) -> bool:
    return rtype in (R_AARCH64_CALL26, R_AARCH64_JUMP26)


def trampoline(target: int) -> bytes:
    return struct.pack("<II", 0x58000050, 0xD61F0200) + struct.pack("<Q", target)


def _page(address: int) -> int:
    return address & ~0xFFF


def _word(image: bytearray, offset: int, limit: int, name: str) -> int:
    if offset < 0 or offset + 4 > limit or offset % 4:
        raise RelocationError(f"{name} at {offset:#x} is outside its section or misaligned")
    return int(struct.unpack_from("<I", image, offset)[0])


def _put_word(image: bytearray, offset: int, value: int) -> None:
    struct.pack_into("<I", image, offset, value & 0xFFFFFFFF)


def _signed_fits(value: int, bits: int) -> bool:
    return -(1 << (bits - 1)) <= value < (1 << (bits - 1))


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
    """Apply one relocation to ``image[offset]``; see ``_reloc_x86_64.apply`` for the terms."""
    name = f"AArch64 relocation type {rtype}"
    value = symbol + addend
    if rtype == R_AARCH64_NONE:
        return
    if rtype in (R_AARCH64_ABS64, R_AARCH64_PREL64, R_AARCH64_ABS32, R_AARCH64_PREL32):
        size = 8 if rtype in (R_AARCH64_ABS64, R_AARCH64_PREL64) else 4
        if offset < 0 or offset + size > limit:
            raise RelocationError(f"{name} at {offset:#x} writes outside its section")
        if rtype in (R_AARCH64_PREL64, R_AARCH64_PREL32):
            value -= place
        fmt = (
            {8: "<Q", 4: "<I"}[size]
            if rtype in (R_AARCH64_ABS64, R_AARCH64_ABS32)
            else {8: "<q", 4: "<i"}[size]
        )
        if fmt == "<Q":
            value &= (1 << 64) - 1
        try:
            struct.pack_into(fmt, image, offset, value)
        except struct.error as exc:
            raise RelocationError(f"{name} at {offset:#x}: {value:#x} overflows") from exc
        return
    word = _word(image, offset, limit, name)
    if rtype in (R_AARCH64_CALL26, R_AARCH64_JUMP26):
        assert plt_entry is not None
        delta = plt_entry + addend - place
        if delta % 4 or not _signed_fits(delta >> 2, 26):
            raise RelocationError(f"{name} at {offset:#x}: branch offset {delta:#x} out of range")
        _put_word(image, offset, (word & 0xFC000000) | ((delta >> 2) & 0x03FFFFFF))
    elif rtype in (R_AARCH64_ADR_PREL_PG_HI21, R_AARCH64_ADR_GOT_PAGE):
        target = value if rtype == R_AARCH64_ADR_PREL_PG_HI21 else (got_entry or 0) + addend
        pages = (_page(target) - _page(place)) >> 12
        if not _signed_fits(pages, 21):
            raise RelocationError(f"{name} at {offset:#x}: page offset {pages:#x} out of range")
        immlo, immhi = pages & 0x3, (pages >> 2) & 0x7FFFF
        _put_word(image, offset, (word & 0x9F00001F) | (immlo << 29) | (immhi << 5))
    elif rtype == R_AARCH64_ADD_ABS_LO12_NC:
        _put_word(image, offset, (word & 0xFFC003FF) | ((value & 0xFFF) << 10))
    elif rtype in _LDST_SHIFT or rtype == R_AARCH64_LD64_GOT_LO12_NC:
        shift = 3 if rtype == R_AARCH64_LD64_GOT_LO12_NC else _LDST_SHIFT[rtype]
        target = (got_entry or 0) + addend if rtype == R_AARCH64_LD64_GOT_LO12_NC else value
        low = target & 0xFFF
        if low % (1 << shift):
            raise RelocationError(
                f"{name} at {offset:#x}: {target:#x} is not aligned for the {1 << shift}-byte access"
            )
        _put_word(image, offset, (word & 0xFFC003FF) | ((low >> shift) << 10))
    else:
        raise RelocationError(f"unknown AArch64 relocation type {rtype}")
