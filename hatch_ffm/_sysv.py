"""The x86_64 System V calling convention for aggregates (structs and unions by value).

Classification follows the psABI: an aggregate larger than 16 bytes is MEMORY; a
smaller one is cut into eightbytes, each INTEGER if any field in it is an integer or
pointer, else SSE.  Each eightbyte then travels as one register-sized *piece*
(``i8``..``i64``, ``float``, ``double`` or ``<2 x float>``), as clang lowers it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ffm_runtime._layouts import (
    GroupLayout,
    MemoryLayout,
    PaddingLayout,
    SequenceLayout,
    StructLayout,
    ValueLayout,
)

__all__ = ["GPR_COUNT", "SSE_COUNT", "Piece", "classify", "leaves"]

#: argument registers: rdi rsi rdx rcx r8 r9 / xmm0-7
GPR_COUNT = 6
SSE_COUNT = 8


@dataclass(frozen=True)
class Piece:
    """A part of an aggregate that travels in one register."""

    #: IR type name: ``iN`` (N bits), ``float``, ``double``, ``v2f32`` (x86_64), or an array
    #: ``a2i64`` / ``a{N}f32`` / ``a{N}f64`` (AArch64)
    ir: str
    offset: int
    size: int

    @property
    def is_sse(self) -> bool:
        return self.ir in ("float", "double", "v2f32")


def leaves(layout: MemoryLayout, base: int = 0) -> Iterator[tuple[int, ValueLayout]]:
    """(offset, value layout) of every scalar in ``layout``; padding is skipped."""
    if isinstance(layout, ValueLayout):
        yield base, layout
    elif isinstance(layout, SequenceLayout):
        element = layout.element_layout
        for index in range(layout.element_count):
            yield from leaves(element, base + index * element.byte_size)
    elif isinstance(layout, GroupLayout):
        offset = base
        for member in layout.member_layouts:
            yield from leaves(member, offset)
            if isinstance(layout, StructLayout):
                offset += member.byte_size
    else:
        assert isinstance(layout, PaddingLayout)


def classify(layout: MemoryLayout) -> tuple[Piece, ...] | None:
    """The register pieces of an aggregate, or ``None`` when it is of class MEMORY."""
    size = layout.byte_size
    if size > 16 or size == 0:
        return None
    count = (size + 7) // 8
    sse = [True] * count
    has_double = [False] * count
    for offset, leaf in leaves(layout):
        index = offset // 8
        if leaf.carrier not in "fd":
            sse[index] = False
        elif leaf.carrier == "d":
            has_double[index] = True
    pieces = []
    for index in range(count):
        start = index * 8
        length = min(8, size - start)
        if not sse[index]:
            ir = f"i{8 * length}"
        elif length <= 4:
            ir = "float"
        elif has_double[index]:
            ir = "double"
        else:
            ir = "v2f32"
        pieces.append(Piece(ir, start, length))
    return tuple(pieces)
