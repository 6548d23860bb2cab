"""Stub code generation: lowered call shapes to LLVM IR text (pure ``llvmlite.ir``).

Each stub is a ``METH_FASTCALL`` function ``PyObject *(PyObject *self, PyObject
*const *args, Py_ssize_t nargs)``.  It checks the argument count, unboxes each
argument with CPython Stable ABI calls (range-checking narrow integers and
floats), releases the GIL unless the shape is critical, calls the target, and
boxes the result.  On a bad argument it clears the pending error and calls the
runtime's ``arg_error`` cell, which raises a precise exception.

The bound variant (``_b``) reads the target address from ``self`` (a Python
int); the unbound variant (``_u``) takes it from a ``MemorySegment`` passed as
the first argument.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from llvmlite import ir

from ffm_runtime import _abi

from ._iralloc import AllocationHelpers
from ._irbase import F32, F64, I1, I8, I32, I64, PTR, Imports, IndirectCallee
from ._lowering import (
    Extension,
    Form,
    LoweredSignature,
    Passing,
    Piece,
    PieceType,
    Returning,
    Role,
    ScalarKind,
    Shape,
)

__all__ = ["build_module", "stub_symbol"]

_STUB_TYPE = ir.FunctionType(PTR, [PTR, PTR, I64])


def stub_symbol(key: str) -> str:
    """The base symbol of the stub for a registration key (stable across builds)."""
    return "ffm_" + hashlib.sha256(key.encode()).hexdigest()[:20]


def _c_type(kind: ScalarKind) -> ir.Type:
    if kind.form is Form.FLOAT:
        return F32
    if kind.form is Form.DOUBLE:
        return F64
    if kind.form is Form.ADDRESS:
        return PTR
    return ir.IntType(kind.bits)


class _Helpers(AllocationHelpers):
    """Every helper a module's stubs share (see :mod:`hatch_ffm._irbase` and
    :mod:`hatch_ffm._iralloc`)."""


class _StubBuilder:
    def __init__(self, imports: Imports, helpers: _Helpers, sig: LoweredSignature, name: str,
                 bound: bool) -> None:
        self.imports = imports
        self.helpers = helpers
        self.sig = sig
        self.bound = bound
        self.fn = ir.Function(imports.module, _STUB_TYPE, name)
        self.fn.attributes.add("nounwind")
        self.self_arg, self.args, self.nargs = self.fn.args
        self.builder = ir.IRBuilder(self.fn.append_basic_block("entry"))
        self._verified: ir.Value | None = None
        self.key = imports.cstring(sig.key)
        self.mode = imports.cstring("b" if bound else "u")

    # -- helpers -----------------------------------------------------------------------
    def call(self, name: str, *args: ir.Value) -> ir.Instruction:
        return self.builder.call(self.imports.function(name), list(args))

    def new_block(self, name: str) -> ir.Block:
        return self.fn.append_basic_block(name)

    def fail_if(self, condition: ir.Value, position: int, value: ir.Value) -> None:
        """If ``condition``, report argument ``position`` (``value``) and return NULL."""
        b = self.builder
        fail = self.new_block(f"fail{position}")
        ok = self.new_block(f"ok{position}")
        b.cbranch(condition, fail, ok)
        b.position_at_end(fail)
        b.ret(b.call(self.helpers.get("fail"), [self.key, self.mode,
                                                 ir.Constant(I64, position), value]))
        b.position_at_end(ok)

    def checked(self, helper: str, position: int, obj: ir.Value, *extra: ir.Value) -> ir.Value:
        b = self.builder
        pair = b.call(self.helpers.get(helper), [obj, *extra])
        self.fail_if(b.not_(b.extract_value(pair, 1)), position, obj)
        return b.extract_value(pair, 0)

    def verified_guard(self) -> ir.Value:
        """The stack slot for the guard this call's segment checks verified (NULL at first)."""
        if self._verified is None:
            with self.builder.goto_entry_block():
                self._verified = self.builder.alloca(PTR)
                self.builder.store(ir.Constant(PTR, None), self._verified)
        return self._verified

    # -- conversions -------------------------------------------------------------------
    def unbox(self, kind: ScalarKind, obj: ir.Value, position: int) -> ir.Value:
        """A number or boolean argument (segments: see ``emit``'s third phase)."""
        b = self.builder
        if kind.form is Form.BOOLEAN:
            return self.checked("bool", position, obj)
        if kind.form is Form.INTEGER:
            assert kind.value_range is not None
            low, high = kind.value_range
            value = self.checked("int", position, obj, ir.Constant(I64, low),
                                 ir.Constant(I64, high))
            return b.trunc(value, ir.IntType(kind.bits)) if kind.bits < 64 else value
        if kind.form is Form.DOUBLE:
            return self.checked("double", position, obj)
        assert kind.form is Form.FLOAT, kind
        return self.checked("float", position, obj)

    def box(self, kind: ScalarKind | None, value: ir.Value | None) -> ir.Value:
        b = self.builder
        if kind is None:
            none = self.imports.data("_Py_NoneStruct")
            self.call("Py_IncRef", none)
            return none
        assert value is not None
        if kind.form is Form.BOOLEAN:
            return self.call("PyBool_FromLong", b.zext(b.icmp_unsigned("!=", value,
                                                                        ir.Constant(I8, 0)), I64))
        if kind.form is Form.INTEGER:
            wide = value
            if kind.bits < 64:
                wide = (b.zext(value, I64) if kind.extension is Extension.ZERO
                        else b.sext(value, I64))
            return self.call("PyLong_FromLongLong", wide)
        if kind.form is Form.FLOAT:
            return self.call("PyFloat_FromDouble", b.fpext(value, F64))
        if kind.form is Form.DOUBLE:
            return self.call("PyFloat_FromDouble", value)
        factory = b.load(self.imports.data(_abi.CELL_MAKE_SEGMENT), typ=PTR)
        return self.call("PyObject_CallFunction", factory, self.imports.cstring("Kn"),
                         b.ptrtoint(value, I64), ir.Constant(I64, self.sig.result.target_size))

    # -- the stub ----------------------------------------------------------------------
    def temporary(self, kind: ir.Type) -> ir.Value:
        """A 16-byte-aligned stack slot for a ``kind`` (allocated in the entry block)."""
        b = self.builder
        with b.goto_entry_block():
            slot = b.alloca(kind)
            slot.align = 16
        return slot

    def copy(self, target: ir.Value, source: ir.Value, size: int) -> None:
        self.builder.call(self.imports.function("llvm.memcpy.p0.p0.i64"),
                          [target, source, ir.Constant(I64, size), ir.Constant(I1, 0)])

    def load_piece(self, address: ir.Value, piece: Piece) -> ir.Value:
        """A piece's value, never reading past the piece's bytes (through a copy if needed)."""
        b = self.builder
        where = b.gep(address, [ir.Constant(I64, piece.offset)], source_etype=I8)
        kind = _piece_type(piece)
        width = _store_size(kind)
        if width > piece.size:
            slot = self.temporary(kind)
            b.store(ir.Constant(kind, None), slot)
            self.copy(slot, where, piece.size)
            where = slot
        return b.load(where, typ=kind, align=1)

    def store_piece(self, address: ir.Value, piece: Piece, value: ir.Value) -> None:
        """Store a piece, never writing past the piece's bytes (through a copy if needed)."""
        b = self.builder
        where = b.gep(address, [ir.Constant(I64, piece.offset)], source_etype=I8)
        if _store_size(value.type) > piece.size:
            slot = self.temporary(value.type)
            b.store(value, slot)
            self.copy(where, slot, piece.size)
        else:
            b.store(value, where, align=1)

    def emit(self) -> None:
        b = self.builder
        sig = self.sig
        base = 0 if self.bound else 1
        expected = len(sig.params) + base
        bad_count = self.new_block("bad_count")
        start = self.new_block("start")
        b.cbranch(b.icmp_signed("!=", self.nargs, ir.Constant(I64, expected)), bad_count, start)
        b.position_at_end(bad_count)
        b.ret(b.call(self.helpers.get("fail_count"), [self.key, self.mode, self.nargs]))
        b.position_at_end(start)

        def arg(i: int) -> ir.Value:
            return b.load(b.gep(self.args, [ir.Constant(I64, i)], source_etype=PTR), typ=PTR)

        # Three phases, so that no Python code runs between reading a segment's address and
        # the call: (1) numbers and booleans, whose conversion may call __index__/__float__;
        # (2) the struct result's memory, whose allocator may run Python code (and, through
        # the garbage collector, finalizers); (3) segments, whose checks run no Python code.
        values: dict[int, list[tuple[ir.Value, ir.Type, tuple[str, ...]]]] = {}
        allocator = capture = None
        allocator_position = 0
        result = sig.result
        for index, param in enumerate(sig.params):
            if param.role is Role.ALLOCATOR:
                allocator = arg(index + base)
                allocator_position = index + base
            elif param.passing is Passing.SCALAR:
                assert param.scalar is not None
                kind = param.scalar
                if kind.form is not Form.ADDRESS:
                    values[index] = [(self.unbox(kind, arg(index + base), index + base),
                                      _c_type(kind), (kind.extension.value,)
                                      if kind.extension is not Extension.NONE else ())]

        segment = result_address = None
        if result.passing in (Returning.PIECES, Returning.SRET):
            assert allocator is not None
            segment = b.call(self.helpers.get("allocate"),
                             [allocator, ir.Constant(I64, result.size),
                              ir.Constant(I64, result.alignment)])
            with b.if_then(b.icmp_unsigned("==", segment, ir.Constant(PTR, None)),
                           likely=False):
                b.ret(ir.Constant(PTR, None))

        def fail_with_result(condition: ir.Value, position: int, value: ir.Value) -> None:
            """fail_if, dropping the result segment made in phase 2."""
            if segment is None:
                self.fail_if(condition, position, value)
                return
            failing = self.new_block(f"drop{position}")
            going_on = self.new_block(f"keep{position}")
            b.cbranch(condition, failing, going_on)
            b.position_at_end(failing)
            self.call("Py_DecRef", segment)
            b.ret(b.call(self.helpers.get("fail"), [self.key, self.mode,
                                                     ir.Constant(I64, position), value]))
            b.position_at_end(going_on)

        def segment_address(obj: ir.Value, position: int, min_size: int,
                            written: bool = False) -> ir.Value:
            pair = b.call(self.helpers.get("segment"),
                          [obj, ir.Constant(I64, min_size), ir.Constant(I1, int(sig.allow_heap)),
                           ir.Constant(I1, int(written)), self.verified_guard()])
            fail_with_result(b.not_(b.extract_value(pair, 1)), position, obj)
            return b.extract_value(pair, 0)

        if self.bound:
            # ``self`` is the int the runtime bound (a builtin's ``__self__`` cannot be set)
            target = b.inttoptr(self.helpers.address_of(b, self.self_arg)[0], PTR)
        else:
            first = arg(0)
            target = segment_address(first, 0, -1)
            fail_with_result(b.icmp_unsigned("==", target, ir.Constant(PTR, None)), 0, first)
        for index, param in enumerate(sig.params):
            position = index + base
            if param.role is Role.ALLOCATOR or index in values:
                continue
            obj = arg(position)
            if param.role is Role.CAPTURE:
                capture = segment_address(obj, position, param.size, written=True)
            elif param.passing is Passing.SCALAR:  # ADDRESS
                values[index] = [(segment_address(obj, position, -1), PTR, ())]
            else:
                address = segment_address(obj, position, param.size)
                if param.passing is Passing.PIECES:
                    values[index] = [(self.load_piece(address, piece), _piece_type(piece), ())
                                     for piece in param.pieces]
                elif param.passing is Passing.BYREF:
                    # the callee owns the copy (AAPCS64: larger aggregates by reference)
                    copy = self.temporary(ir.ArrayType(I8, param.size))
                    self.copy(copy, address, param.size)
                    values[index] = [(copy, PTR, ())]
                else:
                    alignment = max(8, param.alignment)
                    values[index] = [(address, PTR,
                                      (f"byval([{param.size} x i8]) align {alignment}",))]

        native: list[tuple[ir.Value, ir.Type, tuple[str, ...]]] = []  # (value, type, attributes)
        variadic_from = None  # index in ``native`` of the first variadic argument
        if segment is not None:
            # (a result segment of a SegmentAllocator written in Python could be anything)
            address_obj = self.helpers.load_field(b, segment, "segment._address")
            fail_with_result(b.icmp_unsigned("==", address_obj, ir.Constant(PTR, None)),
                             allocator_position, allocator)
            address_value, address_ok = self.helpers.address_of(b, address_obj)
            fail_with_result(b.not_(address_ok), allocator_position, allocator)
            result_address = b.inttoptr(address_value, PTR)
            if result.passing is Returning.SRET:
                native.append((result_address, PTR,
                               (f"sret([{result.size} x i8]) align {max(8, result.alignment)}",)))
        for index, param in enumerate(sig.params):
            if param.role is not Role.VALUE:
                continue
            if sig.first_variadic is not None and variadic_from is None \
                    and param.layout_index >= sig.first_variadic:
                variadic_from = len(native)
            native.extend(values[index])
        if sig.first_variadic is not None and variadic_from is None:
            variadic_from = len(native)

        if result.passing is Returning.SCALAR:
            assert result.scalar is not None
            c_result: ir.Type = _c_type(result.scalar)
        elif result.passing is Returning.PIECES:
            types = [_piece_type(p) for p in result.pieces]
            c_result = types[0] if len(types) == 1 else ir.LiteralStructType(types)
        else:
            c_result = ir.VoidType()
        fixed_types = [t for _, t, _ in native[:variadic_from]]
        c_type = ir.FunctionType(c_result, fixed_types, var_arg=variadic_from is not None)
        state = None if sig.keeps_gil else self.call("PyEval_SaveThread")
        # An indirect call through an opaque pointer: llvmlite reads the callee's
        # ``function_type`` to print the call, so attach the C signature to it.
        call = b.call(IndirectCallee(target, c_type), [v for v, _, _ in native])
        for position, (_, _, attributes) in enumerate(native):
            if attributes:
                call.arg_attributes[position] = _RawAttributes(attributes)
        if capture is not None:
            # errno right after the call: before the GIL (or anything else) can touch it
            location = b.call(self.imports.function("__errno_location"), [])
            b.store(b.load(location, typ=I32), capture, align=1)
        if state is not None:
            self.call("PyEval_RestoreThread", state)
        if result.passing is Returning.PIECES:
            assert result_address is not None and segment is not None
            if len(result.pieces) == 1:
                self.store_piece(result_address, result.pieces[0], call)
            else:
                for index, piece in enumerate(result.pieces):
                    self.store_piece(result_address, piece, b.extract_value(call, index))
            b.ret(segment)
        elif result.passing is Returning.SRET:
            assert segment is not None
            b.ret(segment)
        else:
            b.ret(self.box(result.scalar, None if result.passing is Returning.VOID else call))


class _RawAttributes:
    """Parameter attributes printed verbatim (``byval([24 x i8]) align 8``, ``sret(...)``)."""

    def __init__(self, attributes: tuple[str, ...]) -> None:
        self._attributes = attributes

    def __bool__(self) -> bool:
        return bool(self._attributes)

    def _to_list(self, typ: ir.Type) -> list[str]:
        return list(self._attributes)


def _piece_type(piece: Piece) -> ir.Type:
    kind: PieceType = piece.type
    element: ir.Type = ((F32 if kind.bits == 32 else F64) if kind.floating
                        else ir.IntType(kind.bits))
    if kind.shape is Shape.SCALAR:
        return element
    if kind.shape is Shape.VECTOR:
        return ir.VectorType(element, kind.count)
    return ir.ArrayType(element, kind.count)


def _store_size(kind: ir.Type) -> int:
    """Bytes a store of ``kind`` writes."""
    if isinstance(kind, ir.ArrayType):
        return int(kind.count) * _store_size(kind.element)
    if isinstance(kind, ir.VectorType):
        return int(kind.count) * _store_size(kind.element)
    if isinstance(kind, ir.IntType):
        return (int(kind.width) + 7) // 8
    return 8 if isinstance(kind, ir.DoubleType) else 4


def build_module(signatures: Iterable[LoweredSignature], triple: str) -> ir.Module:
    """One LLVM module holding both variants of every stub."""
    module = ir.Module(name="hatch_ffm_stubs")
    module.triple = triple
    imports = Imports(module)
    helpers = _Helpers(imports)
    for sig in signatures:
        symbol = stub_symbol(sig.key)
        _StubBuilder(imports, helpers, sig, symbol + _abi.STUB_BOUND_SUFFIX, bound=True).emit()
        _StubBuilder(imports, helpers, sig, symbol + _abi.STUB_UNBOUND_SUFFIX, bound=False).emit()
    return module
