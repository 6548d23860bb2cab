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
from typing import ClassVar

from llvmlite import ir

from ffm_runtime import _abi

from ._lowering import LoweredSignature, Piece, ScalarKind

__all__ = ["build_module", "stub_symbol"]

_PTR = ir.PointerType()
_I1 = ir.IntType(1)
_I8 = ir.IntType(8)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_F32 = ir.FloatType()
_F64 = ir.DoubleType()
_STUB_TYPE = ir.FunctionType(_PTR, [_PTR, _PTR, _I64])


def stub_symbol(key: str) -> str:
    """The base symbol of the stub for a registration key (stable across builds)."""
    return "ffm_" + hashlib.sha256(key.encode()).hexdigest()[:20]


def _c_type(kind: ScalarKind) -> ir.Type:
    if kind.bits:
        return ir.IntType(kind.bits)
    return {"f": _F32, "d": _F64, "a": _PTR}[kind.carrier]


class _Imports:
    """Declarations of everything a stub may import; see :mod:`ffm_runtime._abi`."""

    def __init__(self, module: ir.Module) -> None:
        self.module = module
        self._functions: dict[str, ir.Function] = {}
        self._globals: dict[str, ir.GlobalVariable] = {}
        self._strings: dict[bytes, ir.GlobalVariable] = {}

    _SIGNATURES: ClassVar[dict[str, tuple[ir.Type, list[ir.Type], bool]]] = {
        "PyLong_AsLongLong": (_I64, [_PTR], False),
        "PyLong_FromLongLong": (_PTR, [_I64], False),
        "PyLong_AsVoidPtr": (_PTR, [_PTR], False),
        "PyLong_FromVoidPtr": (_PTR, [_PTR], False),
        "PyFloat_AsDouble": (_F64, [_PTR], False),
        "PyFloat_FromDouble": (_PTR, [_F64], False),
        "PyBool_FromLong": (_PTR, [_I64], False),
        "PyErr_Occurred": (_PTR, [], False),
        "PyErr_Clear": (ir.VoidType(), [], False),
        "PyEval_SaveThread": (_PTR, [], False),
        "PyEval_RestoreThread": (ir.VoidType(), [_PTR], False),
        "PyObject_IsInstance": (_I32, [_PTR, _PTR], False),
        "PyObject_Type": (_PTR, [_PTR], False),
        "PyObject_GetAttr": (_PTR, [_PTR, _PTR], False),
        "PyObject_CallFunction": (_PTR, [_PTR, _PTR], True),
        "PyObject_CallFunctionObjArgs": (_PTR, [_PTR], True),
        "PyList_GetItem": (_PTR, [_PTR, _I64], False),
        "PyLong_AsUnsignedLong": (_I64, [_PTR], False),
        "PyThread_get_thread_ident": (_I64, [], False),
        "PyLong_AsSsize_t": (_I64, [_PTR], False),
        "Py_IncRef": (ir.VoidType(), [_PTR], False),
        "Py_DecRef": (ir.VoidType(), [_PTR], False),
        "__errno_location": (_PTR, [], False),
        "llvm.fabs.f32": (_F32, [_F32], False),
        "llvm.fabs.f64": (_F64, [_F64], False),
    }

    def function(self, name: str) -> ir.Function:
        if name not in self._functions:
            if not (name in _abi.PYTHON_FUNCTIONS or name in _abi.LIBC_FUNCTIONS
                    or name.startswith("llvm.")):
                raise AssertionError(f"{name} is not in the stub ABI contract")
            result, params, variadic = self._SIGNATURES[name]
            fn = ir.Function(self.module, ir.FunctionType(result, params, var_arg=variadic), name)
            self._functions[name] = fn
        return self._functions[name]

    def data(self, name: str) -> ir.GlobalVariable:
        """An imported data symbol (Python object or runtime cell)."""
        if name not in self._globals:
            if not (name in _abi.PYTHON_DATA or name in _abi.RUNTIME_CELLS):
                raise AssertionError(f"{name} is not in the stub ABI contract")
            var = ir.GlobalVariable(self.module, _PTR if name in _abi.RUNTIME_CELLS else _I8, name)
            var.linkage = "external"
            self._globals[name] = var
        return self._globals[name]

    def cstring(self, text: str) -> ir.GlobalVariable:
        data = text.encode() + b"\0"
        if data not in self._strings:
            array = ir.ArrayType(_I8, len(data))
            var = ir.GlobalVariable(self.module, array, f".str.{len(self._strings)}")
            var.global_constant = True
            var.linkage = "private"
            var.unnamed_addr = True
            var.initializer = ir.Constant(array, bytearray(data))
            self._strings[data] = var
        return self._strings[data]


class _IndirectCallee:
    """A pointer value seen as a callee of a known type, for an indirect call."""

    def __init__(self, pointer: ir.Value, function_type: ir.FunctionType) -> None:
        self.pointer = pointer
        self.function_type = function_type
        self.type = pointer.type

    def get_reference(self) -> str:
        return str(self.pointer.get_reference())


class _StubBuilder:
    def __init__(self, imports: _Imports, sig: LoweredSignature, name: str, bound: bool) -> None:
        self.imports = imports
        self.sig = sig
        self.bound = bound
        self.fn = ir.Function(imports.module, _STUB_TYPE, name)
        self.fn.attributes.add("nounwind")
        self.self_arg, self.args, self.nargs = self.fn.args
        self.builder = ir.IRBuilder(self.fn.append_basic_block("entry"))

    # -- helpers -----------------------------------------------------------------------
    def call(self, name: str, *args: ir.Value) -> ir.Instruction:
        return self.builder.call(self.imports.function(name), list(args))

    def new_block(self, name: str) -> ir.Block:
        return self.fn.append_basic_block(name)

    def raise_arg_error(self, position: int, value: ir.Value | None) -> None:
        """Emit: clear the error, call ``arg_error(key, mode, position, value)``, return NULL.

        ``position`` -1 reports a wrong argument count (``value`` is then ``nargs``).
        """
        b = self.builder
        self.call("PyErr_Clear")
        cell = b.load(self.imports.data(_abi.CELL_ARG_ERROR), typ=_PTR)
        key = self.imports.cstring(self.sig.key)
        mode = self.imports.cstring("b" if self.bound else "u")
        if value is None:
            fmt = self.imports.cstring("ssnn")
            result = self.call("PyObject_CallFunction", cell, fmt, key, mode,
                               ir.Constant(_I64, position), self.nargs)
        else:
            fmt = self.imports.cstring("ssnO")
            result = self.call("PyObject_CallFunction", cell, fmt, key, mode,
                               ir.Constant(_I64, position), value)
        failed = b.icmp_unsigned("==", result, ir.Constant(_PTR, None))
        with b.if_then(b.not_(failed)):
            self.call("Py_DecRef", result)
        b.ret(ir.Constant(_PTR, None))

    def check_error_if(self, condition: ir.Value, position: int, value: ir.Value) -> None:
        """If ``condition`` and an exception is pending, fail on argument ``position``."""
        b = self.builder
        with b.if_then(condition, likely=False):
            occurred = self.call("PyErr_Occurred")
            is_error = b.icmp_unsigned("!=", occurred, ir.Constant(_PTR, None))
            self.fail_if(is_error, position, value)

    def fail_if(self, condition: ir.Value, position: int, value: ir.Value) -> None:
        b = self.builder
        fail = self.new_block(f"fail{position}")
        ok = self.new_block(f"ok{position}")
        b.cbranch(condition, fail, ok)
        b.position_at_end(fail)
        self.raise_arg_error(position, value)
        b.position_at_end(ok)

    # -- conversions -------------------------------------------------------------------
    def unbox_address(self, obj: ir.Value, position: int) -> ir.Value:
        """A ``MemorySegment``'s address; a confined segment's guard must allow this thread.

        Segments usable anywhere are exactly of the ``MemorySegment`` type (fast
        path); confined ones are of a subclass with a guard (see ``ffm_runtime._abi``).
        """
        b = self.builder
        null = ir.Constant(_PTR, None)
        obj_type = self.call("PyObject_Type", obj)
        self.call("Py_DecRef", obj_type)  # the object keeps its type alive
        seg_type = b.load(self.imports.data(_abi.CELL_SEGMENT_TYPE), typ=_PTR)
        plain = b.icmp_unsigned("==", obj_type, seg_type)
        with b.if_then(b.not_(plain), likely=False):
            confined_type = b.load(self.imports.data(_abi.CELL_CONFINED_TYPE), typ=_PTR)
            is_confined = self.call("PyObject_IsInstance", obj, confined_type)
            confined = b.icmp_signed("==", is_confined, ir.Constant(_I32, 1))
            with b.if_else(confined) as (then, otherwise):
                with then:
                    guard_name = b.load(self.imports.data(_abi.CELL_GUARD_ATTR), typ=_PTR)
                    guard = self.call("PyObject_GetAttr", obj, guard_name)
                    self.fail_if(b.icmp_unsigned("==", guard, null), position, obj)
                    self.call("Py_DecRef", guard)  # the segment keeps its guard alive
                    owner_obj = self.call("PyList_GetItem", guard, ir.Constant(_I64, 0))
                    self.fail_if(b.icmp_unsigned("==", owner_obj, null), position, obj)
                    owner = self.call("PyLong_AsUnsignedLong", owner_obj)
                    current = self.call("PyThread_get_thread_ident")
                    self.fail_if(b.icmp_unsigned("!=", owner, current), position, obj)
                with otherwise:
                    if self.sig.allow_heap:
                        heap_type = b.load(self.imports.data(_abi.CELL_HEAP_TYPE), typ=_PTR)
                        is_heap = self.call("PyObject_IsInstance", obj, heap_type)
                        self.fail_if(b.icmp_signed("!=", is_heap, ir.Constant(_I32, 1)),
                                     position, obj)
                    else:
                        self.fail_if(ir.Constant(_I1, 1), position, obj)
        name = b.load(self.imports.data(_abi.CELL_ADDRESS_ATTR), typ=_PTR)
        raw = self.call("PyObject_GetAttr", obj, name)
        self.fail_if(b.icmp_unsigned("==", raw, null), position, obj)
        address = self.call("PyLong_AsVoidPtr", raw)
        self.call("Py_DecRef", raw)
        self.check_error_if(b.icmp_unsigned("==", address, null), position, obj)
        return address

    def unbox(self, kind: ScalarKind, obj: ir.Value, position: int) -> ir.Value:
        b = self.builder
        if kind.carrier == "z":
            is_true = b.icmp_unsigned("==", obj, self.imports.data("_Py_TrueStruct"))
            is_false = b.icmp_unsigned("==", obj, self.imports.data("_Py_FalseStruct"))
            self.fail_if(b.not_(b.or_(is_true, is_false)), position, obj)
            return b.zext(is_true, _I8)
        if kind.bits:
            value = self.call("PyLong_AsLongLong", obj)
            self.check_error_if(b.icmp_signed("==", value, ir.Constant(_I64, -1)), position, obj)
            assert kind.value_range is not None
            low, high = kind.value_range
            if kind.bits < 64:
                too_low = b.icmp_signed("<", value, ir.Constant(_I64, low))
                too_high = b.icmp_signed(">", value, ir.Constant(_I64, high))
                self.fail_if(b.or_(too_low, too_high), position, obj)
                return b.trunc(value, ir.IntType(kind.bits))
            return value
        if kind.carrier in "fd":
            value = self.call("PyFloat_AsDouble", obj)
            self.check_error_if(b.fcmp_ordered("==", value, ir.Constant(_F64, -1.0)), position, obj)
            if kind.carrier == "d":
                return value
            narrow = b.fptrunc(value, _F32)
            inf32 = b.fcmp_ordered("==", self.call("llvm.fabs.f32", narrow),
                                   ir.Constant(_F32, float("inf")))
            inf64 = b.fcmp_ordered("==", self.call("llvm.fabs.f64", value),
                                   ir.Constant(_F64, float("inf")))
            self.fail_if(b.and_(inf32, b.not_(inf64)), position, obj)
            return narrow
        return self.unbox_address(obj, position)

    def box(self, kind: ScalarKind | None, value: ir.Value | None) -> ir.Value:
        b = self.builder
        if kind is None:
            none = self.imports.data("_Py_NoneStruct")
            self.call("Py_IncRef", none)
            return none
        assert value is not None
        if kind.carrier == "z":
            return self.call("PyBool_FromLong", b.zext(b.icmp_unsigned("!=", value,
                                                                        ir.Constant(_I8, 0)), _I64))
        if kind.bits:
            wide = value
            if kind.bits < 64:
                wide = b.zext(value, _I64) if kind.extension == "zeroext" else b.sext(value, _I64)
            return self.call("PyLong_FromLongLong", wide)
        if kind.carrier == "f":
            return self.call("PyFloat_FromDouble", b.fpext(value, _F64))
        if kind.carrier == "d":
            return self.call("PyFloat_FromDouble", value)
        factory = b.load(self.imports.data(_abi.CELL_MAKE_SEGMENT), typ=_PTR)
        return self.call("PyObject_CallFunction", factory, self.imports.cstring("Kn"),
                         b.ptrtoint(value, _I64), ir.Constant(_I64, self.sig.result.target_size))

    # -- the stub ----------------------------------------------------------------------
    def unbox_segment(self, obj: ir.Value, position: int, min_size: int) -> ir.Value:
        """A segment's address, after the checks of :meth:`unbox_address` and a size check."""
        b = self.builder
        address = self.unbox_address(obj, position)
        name = b.load(self.imports.data(_abi.CELL_SIZE_ATTR), typ=_PTR)
        raw = self.call("PyObject_GetAttr", obj, name)
        self.fail_if(b.icmp_unsigned("==", raw, ir.Constant(_PTR, None)), position, obj)
        size = self.call("PyLong_AsSsize_t", raw)
        self.call("Py_DecRef", raw)
        self.fail_if(b.icmp_signed("<", size, ir.Constant(_I64, min_size)), position, obj)
        return address

    def load_piece(self, address: ir.Value, piece: Piece) -> ir.Value:
        b = self.builder
        where = b.gep(address, [ir.Constant(_I64, piece.offset)], source_etype=_I8)
        return b.load(where, typ=_piece_type(piece), align=1)

    def store_piece(self, address: ir.Value, piece: Piece, value: ir.Value) -> None:
        b = self.builder
        where = b.gep(address, [ir.Constant(_I64, piece.offset)], source_etype=_I8)
        b.store(value, where, align=1)

    def emit(self) -> None:
        b = self.builder
        sig = self.sig
        base = 0 if self.bound else 1
        expected = len(sig.params) + base
        bad_count = self.new_block("bad_count")
        start = self.new_block("start")
        b.cbranch(b.icmp_signed("!=", self.nargs, ir.Constant(_I64, expected)), bad_count, start)
        b.position_at_end(bad_count)
        self.raise_arg_error(-1, None)
        b.position_at_end(start)

        def arg(i: int) -> ir.Value:
            return b.load(b.gep(self.args, [ir.Constant(_I64, i)], source_etype=_PTR), typ=_PTR)

        if self.bound:
            target = self.call("PyLong_AsVoidPtr", self.self_arg)
        else:
            first = arg(0)
            target = self.unbox_address(first, 0)
            self.fail_if(b.icmp_unsigned("==", target, ir.Constant(_PTR, None)), 0, first)

        # Unbox every argument before anything else happens.
        allocator = capture = None
        native: list[tuple[ir.Value, ir.Type, tuple[str, ...]]] = []  # (value, type, attributes)
        variadic_from = None  # index in ``native`` of the first variadic argument
        result = sig.result
        for index, param in enumerate(sig.params):
            position = index + base
            obj = arg(position)
            if param.role == "allocator":
                allocator = obj
                continue
            if param.role == "capture":
                capture = self.unbox_segment(obj, position, param.size)
                continue
            if sig.first_variadic is not None and variadic_from is None \
                    and param.layout_index >= sig.first_variadic:
                variadic_from = len(native)
            if param.passing == "scalar":
                assert param.scalar is not None
                kind = param.scalar
                native.append((self.unbox(kind, obj, position), _c_type(kind),
                               (kind.extension,) if kind.extension else ()))
            else:
                address = self.unbox_segment(obj, position, param.size)
                if param.passing == "pieces":
                    for piece in param.pieces:
                        native.append((self.load_piece(address, piece), _piece_type(piece), ()))
                else:
                    alignment = max(8, param.alignment)
                    native.append((address, _PTR,
                                   (f"byval([{param.size} x i8]) align {alignment}",)))
        if sig.first_variadic is not None and variadic_from is None:
            variadic_from = len(native)

        # A struct result gets its memory from the allocator before the call.
        segment = result_address = None
        if result.passing in ("pieces", "sret"):
            assert allocator is not None
            cell = b.load(self.imports.data(_abi.CELL_ALLOCATE), typ=_PTR)
            segment = self.call("PyObject_CallFunction", cell, self.imports.cstring("Onn"),
                                allocator, ir.Constant(_I64, result.size),
                                ir.Constant(_I64, result.alignment))
            with b.if_then(b.icmp_unsigned("==", segment, ir.Constant(_PTR, None)),
                           likely=False):
                b.ret(ir.Constant(_PTR, None))
            name = b.load(self.imports.data(_abi.CELL_ADDRESS_ATTR), typ=_PTR)
            raw = self.call("PyObject_GetAttr", segment, name)
            result_address = self.call("PyLong_AsVoidPtr", raw)
            self.call("Py_DecRef", raw)
            if result.passing == "sret":
                native.insert(0, (result_address, _PTR,
                                  (f"sret([{result.size} x i8]) align {max(8, result.alignment)}",)))
                if variadic_from is not None:
                    variadic_from += 1

        if result.passing == "scalar":
            assert result.scalar is not None
            c_result: ir.Type = _c_type(result.scalar)
        elif result.passing == "pieces":
            types = [_piece_type(p) for p in result.pieces]
            c_result = types[0] if len(types) == 1 else ir.LiteralStructType(types)
        else:
            c_result = ir.VoidType()
        fixed_types = [t for _, t, _ in native[:variadic_from]]
        c_type = ir.FunctionType(c_result, fixed_types, var_arg=variadic_from is not None)
        state = None if sig.keeps_gil else self.call("PyEval_SaveThread")
        # An indirect call through an opaque pointer: llvmlite reads the callee's
        # ``function_type`` to print the call, so attach the C signature to it.
        call = b.call(_IndirectCallee(target, c_type), [v for v, _, _ in native])
        for position, (_, _, attributes) in enumerate(native):
            if attributes:
                call.arg_attributes[position] = _RawAttributes(attributes)
        if capture is not None:
            # errno right after the call: before the GIL (or anything else) can touch it
            location = b.call(self.imports.function("__errno_location"), [])
            b.store(b.load(location, typ=_I32), capture, align=1)
        if state is not None:
            self.call("PyEval_RestoreThread", state)
        if result.passing == "pieces":
            assert result_address is not None and segment is not None
            if len(result.pieces) == 1:
                self.store_piece(result_address, result.pieces[0], call)
            else:
                for index, piece in enumerate(result.pieces):
                    self.store_piece(result_address, piece, b.extract_value(call, index))
            b.ret(segment)
        elif result.passing == "sret":
            assert segment is not None
            b.ret(segment)
        else:
            b.ret(self.box(result.scalar, None if result.passing == "void" else call))


class _RawAttributes:
    """Parameter attributes printed verbatim (``byval([24 x i8]) align 8``, ``sret(...)``)."""

    def __init__(self, attributes: tuple[str, ...]) -> None:
        self._attributes = attributes

    def __bool__(self) -> bool:
        return bool(self._attributes)

    def _to_list(self, typ: ir.Type) -> list[str]:
        return list(self._attributes)


def _piece_type(piece: Piece) -> ir.Type:
    if piece.ir == "float":
        return _F32
    if piece.ir == "double":
        return _F64
    if piece.ir == "v2f32":
        return ir.VectorType(_F32, 2)
    return ir.IntType(int(piece.ir[1:]))


def build_module(signatures: Iterable[LoweredSignature], triple: str) -> ir.Module:
    """One LLVM module holding both variants of every stub."""
    module = ir.Module(name="hatch_ffm_stubs")
    module.triple = triple
    imports = _Imports(module)
    for sig in signatures:
        symbol = stub_symbol(sig.key)
        _StubBuilder(imports, sig, symbol + _abi.STUB_BOUND_SUFFIX, bound=True).emit()
        _StubBuilder(imports, sig, symbol + _abi.STUB_UNBOUND_SUFFIX, bound=False).emit()
    return module
