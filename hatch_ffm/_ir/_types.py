"""IR types: the machine types generated code uses, and the IR types of what ABI lowering
hands over (scalar kinds, register pieces).  Pure ``llvmlite.ir``."""

from __future__ import annotations

from llvmlite import ir

from .._lowering import Form, PieceType, ScalarKind, Shape

__all__ = [
    "F32",
    "F64",
    "I1",
    "I8",
    "I16",
    "I32",
    "I64",
    "NULL",
    "PTR",
    "VOID",
    "IndirectCallee",
    "RawAttributes",
    "i64",
    "pair_type",
    "piece_type",
    "scalar_type",
    "store_size",
]

PTR = ir.PointerType()
I1 = ir.IntType(1)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F32 = ir.FloatType()
F64 = ir.DoubleType()
VOID = ir.VoidType()
#: the NULL pointer (``PyObject *`` results: "error set", or "not here")
NULL = ir.Constant(PTR, None)


def i64(value: int) -> ir.Constant:
    """A 64-bit integer constant."""
    return ir.Constant(I64, value)


def pair_type(value: ir.Type) -> ir.LiteralStructType:
    """``{value, i1 ok}``: what a helper that may fail returns (see ``_idioms``)."""
    return ir.LiteralStructType([value, I1])


def scalar_type(kind: ScalarKind) -> ir.Type:
    """The C type of a value-layout carrier."""
    if kind.form is Form.FLOAT:
        return F32
    if kind.form is Form.DOUBLE:
        return F64
    if kind.form is Form.ADDRESS:
        return PTR
    return ir.IntType(kind.bits)


def piece_type(kind: PieceType) -> ir.Type:
    """The IR type a register piece travels as."""
    element: ir.Type = (F32 if kind.bits == 32 else F64) if kind.floating else ir.IntType(kind.bits)
    if kind.shape is Shape.SCALAR:
        return element
    if kind.shape is Shape.VECTOR:
        return ir.VectorType(element, kind.count)
    return ir.ArrayType(element, kind.count)


def store_size(kind: ir.Type) -> int:
    """Bytes a store of ``kind`` writes."""
    if isinstance(kind, (ir.ArrayType, ir.VectorType)):
        return int(kind.count) * store_size(kind.element)
    if isinstance(kind, ir.IntType):
        return (int(kind.width) + 7) // 8
    return 8 if isinstance(kind, ir.DoubleType) else 4


class IndirectCallee:
    """A pointer value seen as a callee of a known type, for an indirect call (llvmlite
    reads the callee's ``function_type`` to print the call)."""

    def __init__(self, pointer: ir.Value, function_type: ir.FunctionType) -> None:
        self.pointer = pointer
        self.function_type = function_type
        self.type = pointer.type

    def get_reference(self) -> str:
        return str(self.pointer.get_reference())


class RawAttributes:
    """Parameter attributes printed verbatim (``byval([24 x i8]) align 8``, ``sret(...)``)."""

    def __init__(self, attributes: tuple[str, ...]) -> None:
        self._attributes = attributes

    def __bool__(self) -> bool:
        return bool(self._attributes)

    def _to_list(self, typ: ir.Type) -> list[str]:
        return list(self._attributes)
