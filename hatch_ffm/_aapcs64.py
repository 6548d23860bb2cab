"""The AArch64 procedure call standard (AAPCS64, Linux) for aggregates.

- A homogeneous floating-point aggregate (HFA: 1-4 members, all ``float`` or all
  ``double``) travels in consecutive SIMD registers, as ``[N x float|double]``.
- Any other aggregate of at most 16 bytes travels in one or two general registers, as
  ``i64`` or ``[2 x i64]``.
- A larger aggregate is copied by the caller and passed by reference; a larger result is
  written through the pointer in x8 (``sret``).
"""

from __future__ import annotations

from ffm_runtime._layouts import MemoryLayout

from ._sysv import Piece, leaves

__all__ = ["FPR_COUNT", "GPR_COUNT", "classify", "hfa"]

GPR_COUNT = 8   # x0-x7
FPR_COUNT = 8   # v0-v7


def hfa(layout: MemoryLayout) -> tuple[str, int] | None:
    """(``float`` or ``double``, member count) for an HFA, else ``None``."""
    members = [leaf.carrier for _, leaf in leaves(layout)]
    if not 1 <= len(members) <= 4 or len(set(members)) != 1 or members[0] not in "fd":
        return None
    return ("float" if members[0] == "f" else "double"), len(members)


def classify(layout: MemoryLayout) -> tuple[Piece, ...] | None:
    """Register pieces of an aggregate (one piece), or ``None`` when it goes by reference."""
    homogeneous = hfa(layout)
    if homogeneous is not None:
        kind, count = homogeneous
        size = 4 if kind == "float" else 8
        return (Piece(f"a{count}{'f32' if kind == 'float' else 'f64'}", 0, count * size),)
    size = layout.byte_size
    if size > 16 or size == 0:
        return None
    return (Piece(f"i{8 * size}" if size <= 8 else "a2i64", 0, size),)


def registers(pieces: tuple[Piece, ...]) -> tuple[int, int]:
    """(general, SIMD) registers the pieces need."""
    gprs = fprs = 0
    for piece in pieces:
        if piece.ir.startswith("a") and piece.ir[-3] == "f":
            fprs += int(piece.ir[1:-3])
        else:
            gprs += 2 if piece.ir == "a2i64" else 1
    return gprs, fprs
