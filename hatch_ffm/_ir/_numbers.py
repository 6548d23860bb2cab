"""Python numbers and booleans to C values and back: the conversions of arguments (stubs)
and of values to store (``MemorySegment.set``), and the boxing of results (stubs,
``MemorySegment.get``).  One implementation per scalar form, shared."""

from __future__ import annotations

from llvmlite import ir

from .._lowering import Extension, Form, ScalarKind
from ._idioms import Idioms, is_null, return_pair, unpack
from ._imports import Imports
from ._reuse import helper_function
from ._types import F32, F64, I8, I64, PTR, i64, pair_type

__all__ = ["Numbers"]


class Numbers:
    """Conversions between Python objects and C scalars, for the code of one module."""

    def __init__(self, imports: Imports, idioms: Idioms) -> None:
        self.imports = imports
        self.idioms = idioms

    def unbox(self, b: ir.IRBuilder, kind: ScalarKind, obj: ir.Value) -> tuple[ir.Value, ir.Value]:
        """``(value, ok)``: ``obj`` as a C value of ``kind`` (not ``ADDRESS``); not ok (no
        error set) if it is of the wrong type or out of range.  Integers accept what
        ``operator.index`` does (which may run Python code: ``__index__``), floats what
        ``float()`` does; booleans are ``True`` and ``False`` only."""
        if kind.form is Form.BOOLEAN:
            return unpack(b, b.call(self._to_bool, [obj]))
        if kind.form is Form.DOUBLE:
            return unpack(b, b.call(self._to_double, [obj]))
        if kind.form is Form.FLOAT:
            return unpack(b, b.call(self._to_float, [obj]))
        if kind.form is not Form.INTEGER or kind.value_range is None:
            raise ValueError(f"no conversion to {kind}")
        if kind.unsigned and kind.bits == 64:
            return unpack(b, b.call(self._to_uint64, [obj]))
        low, high = kind.value_range
        value, ok = unpack(b, b.call(self._to_int, [obj, i64(low), i64(high)]))
        if kind.bits < 64:
            value = b.trunc(value, ir.IntType(kind.bits))
        return value, ok

    def box(self, b: ir.IRBuilder, kind: ScalarKind, value: ir.Value) -> ir.Value:
        """A new ``bool``, ``int`` or ``float`` of the C value ``value`` of ``kind`` (not
        ``ADDRESS``), or NULL (error set)."""
        if kind.form is Form.BOOLEAN:
            nonzero = b.icmp_unsigned("!=", value, ir.Constant(I8, 0))
            return self.imports.call(b, "PyBool_FromLong", b.zext(nonzero, I64))
        if kind.form is Form.FLOAT:
            return self.imports.call(b, "PyFloat_FromDouble", b.fpext(value, F64))
        if kind.form is Form.DOUBLE:
            return self.imports.call(b, "PyFloat_FromDouble", value)
        if kind.form is not Form.INTEGER:
            raise ValueError(f"no Python object for {kind}")
        if kind.unsigned and kind.bits == 64:
            return self.imports.call(b, "PyLong_FromUnsignedLongLong", value)
        wide = value
        if kind.bits < 64:
            zero = kind.unsigned or kind.extension is Extension.ZERO
            wide = b.zext(value, I64) if zero else b.sext(value, I64)
        return self.imports.call(b, "PyLong_FromLongLong", wide)

    @helper_function
    def _to_int(self) -> ir.Function:
        """``int(obj, low, high) -> {i64, ok}``: an int in ``[low, high]``."""
        fn, b = self.idioms.helper("int", pair_type(I64), [PTR, I64, I64])
        obj, low, high = fn.args
        value, ok = self.idioms.checked_call(b, "PyLong_AsLongLong", obj)
        inside = b.and_(b.icmp_signed(">=", value, low), b.icmp_signed("<=", value, high))
        return_pair(b, value, b.and_(ok, inside))
        return fn

    @helper_function
    def _to_uint64(self) -> ir.Function:
        """``uint64(obj) -> {i64, ok}``: an int in ``[0, 2**64)``, through ``__index__`` as
        ``PyLong_AsLongLong`` converts (``PyLong_AsUnsignedLong`` takes ints only)."""
        fn, b = self.idioms.helper("uint64", pair_type(I64), [PTR])
        index = self.imports.call(b, "PyNumber_Index", fn.args[0])
        with b.if_then(is_null(b, index), likely=False):
            self.imports.call(b, "PyErr_Clear")
            return_pair(b, i64(0), ir.Constant(ir.IntType(1), 0))
        value, ok = self.idioms.checked_call(b, "PyLong_AsUnsignedLong", index)
        self.imports.call(b, "Py_DecRef", index)  # an int: freeing it runs no Python code
        return_pair(b, value, ok)
        return fn

    @helper_function
    def _to_double(self) -> ir.Function:
        fn, b = self.idioms.helper("double", pair_type(F64), [PTR])
        return_pair(b, *self.idioms.checked_call(b, "PyFloat_AsDouble", fn.args[0]))
        return fn

    @helper_function
    def _to_float(self) -> ir.Function:
        """``float(obj) -> {float, ok}``: finite doubles beyond float's range are refused (as
        ``struct`` refuses them for ``"f"``)."""
        fn, b = self.idioms.helper("float", pair_type(F32), [PTR])
        value, ok = unpack(b, b.call(self._to_double, [fn.args[0]]))
        narrow = b.fptrunc(value, F32)
        inf32 = b.fcmp_ordered(
            "==", self.imports.call(b, "llvm.fabs.f32", narrow), ir.Constant(F32, float("inf"))
        )
        inf64 = b.fcmp_ordered(
            "==", self.imports.call(b, "llvm.fabs.f64", value), ir.Constant(F64, float("inf"))
        )
        return_pair(b, narrow, b.and_(ok, b.not_(b.and_(inf32, b.not_(inf64)))))
        return fn

    @helper_function
    def _to_bool(self) -> ir.Function:
        fn, b = self.idioms.helper("bool", pair_type(I8), [PTR])
        obj = fn.args[0]
        is_true = b.icmp_unsigned("==", obj, self.imports.data("_Py_TrueStruct"))
        is_false = b.icmp_unsigned("==", obj, self.imports.data("_Py_FalseStruct"))
        return_pair(b, b.zext(is_true, I8), b.or_(is_true, is_false))
        return fn
