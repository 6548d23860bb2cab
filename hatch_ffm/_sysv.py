"""The x86_64 System V calling convention for aggregates (structs and unions by value).

Classification follows the psABI: an aggregate larger than 16 bytes is MEMORY; a
smaller one is cut into eightbytes, each INTEGER if any field in it is an integer or
pointer, else SSE.  Each eightbyte then travels as one register-sized *piece*
(``i8``..``i64``, ``float``, ``double`` or ``<2 x float>``), as clang lowers it.

:class:`PieceType` and :class:`Piece` are also AArch64's (see :mod:`hatch_ffm._aapcs64`).
"""

from __future__ import annotations

import enum
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

__all__ = [
    "DOUBLE",
    "FLOAT",
    "GPR_COUNT",
    "SSE_COUNT",
    "Piece",
    "PieceType",
    "Shape",
    "classify",
    "integer",
    "leaves",
]

#: argument registers: rdi rsi rdx rcx r8 r9 / xmm0-7
GPR_COUNT = 6
SSE_COUNT = 8


class Shape(enum.Enum):
    """How a piece holds its elements."""

    SCALAR = "scalar"  #: one element
    ARRAY = "array"  #: ``[N x element]``
    VECTOR = "vector"  #: ``<N x element>``


@dataclass(frozen=True)
class PieceType:
    """The machine type of a piece: elements of ``bits`` bits each, integers or
    (``floating``) IEEE floats, one (``Shape.SCALAR``) or ``count`` in an array or a vector.

    x86_64 uses ``iN`` (N = 8..64), ``float``, ``double`` and ``<2 x float>``; AArch64
    ``iN``, ``[2 x i64]`` and ``[N x float|double]`` (N = 1..4).  ``str()`` spells it as
    LLVM IR does.
    """

    floating: bool
    bits: int
    shape: Shape = Shape.SCALAR
    count: int = 1

    def __post_init__(self) -> None:
        widths = (32, 64) if self.floating else tuple(range(8, 65, 8))
        if (
            self.bits not in widths
            or not 1 <= self.count <= 4
            or (self.shape is Shape.SCALAR and self.count != 1)
        ):
            raise ValueError(f"no register piece is {self!r}")

    @property
    def is_sse(self) -> bool:
        """Whether it travels in an SSE register (x86_64)."""
        return self.floating

    def __str__(self) -> str:
        element = ("float" if self.bits == 32 else "double") if self.floating else f"i{self.bits}"
        if self.shape is Shape.SCALAR:
            return element
        if self.shape is Shape.VECTOR:
            return f"<{self.count} x {element}>"
        return f"[{self.count} x {element}]"


def integer(bits: int) -> PieceType:
    """The integer piece type of ``bits`` bits."""
    return PieceType(False, bits)


FLOAT = PieceType(True, 32)
DOUBLE = PieceType(True, 64)


@dataclass(frozen=True)
class Piece:
    """A part of an aggregate that travels as one value: in one register, or (AArch64's
    arrays) in consecutive ones."""

    type: PieceType
    offset: int
    size: int

    @property
    def is_sse(self) -> bool:
        return self.type.is_sse


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
            kind = integer(8 * length)
        elif length <= 4:
            kind = FLOAT
        elif has_double[index]:
            kind = DOUBLE
        else:
            kind = PieceType(True, 32, Shape.VECTOR, 2)
        pieces.append(Piece(kind, start, length))
    return tuple(pieces)
