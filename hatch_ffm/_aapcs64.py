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

from ._sysv import DOUBLE, FLOAT, Piece, PieceType, Shape, integer, leaves

__all__ = ["FPR_COUNT", "GPR_COUNT", "classify", "hfa"]

GPR_COUNT = 8  # x0-x7
FPR_COUNT = 8  # v0-v7


def hfa(layout: MemoryLayout) -> tuple[PieceType, int] | None:
    """(``FLOAT`` or ``DOUBLE``, member count) for an HFA, else ``None``."""
    members = [leaf.carrier for _, leaf in leaves(layout)]
    if not 1 <= len(members) <= 4 or len(set(members)) != 1 or members[0] not in "fd":
        return None
    return (FLOAT if members[0] == "f" else DOUBLE), len(members)


def classify(layout: MemoryLayout) -> tuple[Piece, ...] | None:
    """Register pieces of an aggregate (one piece), or ``None`` when it goes by reference."""
    homogeneous = hfa(layout)
    if homogeneous is not None:
        element, count = homogeneous
        return (Piece(PieceType(True, element.bits, Shape.ARRAY, count), 0, count * element.bits // 8),)
    size = layout.byte_size
    if size > 16 or size == 0:
        return None
    return (Piece(integer(8 * size) if size <= 8 else PieceType(False, 64, Shape.ARRAY, 2), 0, size),)
