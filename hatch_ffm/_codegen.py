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
from collections.abc import Callable, Iterable
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
#: Sets (of two entries) in a module's memo of int values (see ``_Helpers.word``); a power
#: of two.
_WORD_CACHE_SETS = 128


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
        "PyLong_FromUnsignedLongLong": (_PTR, [_I64], False),
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
        "PyObject_CallMethodObjArgs": (_PTR, [_PTR, _PTR], True),
        "PyList_GetItem": (_PTR, [_PTR, _I64], False),
        "PyLong_AsUnsignedLong": (_I64, [_PTR], False),
        "PyThread_get_thread_ident": (_I64, [], False),
        "PyLong_AsSsize_t": (_I64, [_PTR], False),
        "PyLong_FromSsize_t": (_PTR, [_I64], False),
        "PyType_GenericAlloc": (_PTR, [_PTR, _I64], False),
        "PyTuple_New": (_PTR, [_I64], False),
        "PyTuple_SetItem": (_I32, [_PTR, _I64, _PTR], False),
        "PyTuple_Size": (_I64, [_PTR], False),
        "PyTuple_GetItem": (_PTR, [_PTR, _I64], False),
        "PyList_New": (_PTR, [_I64], False),
        "PyList_SetItem": (_I32, [_PTR, _I64, _PTR], False),
        "PyList_Size": (_I64, [_PTR], False),
        "PyList_Append": (_I32, [_PTR, _PTR], False),
        "PyList_SetSlice": (_I32, [_PTR, _I64, _I64, _PTR], False),
        "Py_IncRef": (ir.VoidType(), [_PTR], False),
        "Py_DecRef": (ir.VoidType(), [_PTR], False),
        "__errno_location": (_PTR, [], False),
        "memset": (_PTR, [_PTR, _I32, _I64], False),
        "llvm.memcpy.p0.p0.i64": (ir.VoidType(), [_PTR, _PTR, _I64, _I1], False),
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
            if not name.startswith("llvm."):
                # called through the GOT the loader fills (no PLT-style trampoline hop)
                fn.attributes.add("nonlazybind")
            self._functions[name] = fn
        return self._functions[name]

    def data(self, name: str) -> ir.GlobalVariable:
        """An imported data symbol (Python object or runtime cell)."""
        if name not in self._globals:
            if not (name in _abi.PYTHON_DATA or name in _abi.RUNTIME_CELLS
                    or name == _abi.OFFSETS_SYMBOL):
                raise AssertionError(f"{name} is not in the stub ABI contract")
            kind: ir.Type = _I8
            if name in _abi.RUNTIME_CELLS:
                kind = _PTR
            elif name == _abi.OFFSETS_SYMBOL:
                kind = ir.ArrayType(_I64, len(_abi.OFFSETS))
            var = ir.GlobalVariable(self.module, kind, name)
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


class _Helpers:
    """Internal functions shared by every stub of a module: the argument conversions and the
    error path.  Keeping them out of the stubs keeps the module small to build and compile."""

    def __init__(self, imports: _Imports) -> None:
        self.imports = imports
        self._made: dict[str, ir.Function] = {}

    def get(self, name: str) -> ir.Function:
        if name not in self._made:
            self._made[name] = getattr(self, "_make_" + name)()
        return self._made[name]

    def _function(self, name: str, result: ir.Type, params: list[ir.Type], cold: bool = False,
                  inline: bool = True) -> tuple[ir.Function, ir.IRBuilder]:
        fn = ir.Function(self.imports.module, ir.FunctionType(result, params), "ffm_h_" + name)
        fn.linkage = "internal"
        fn.attributes.add("nounwind")
        if cold:
            fn.attributes.add("cold")
        fn.attributes.add("alwaysinline" if inline and not cold else "noinline")
        return fn, ir.IRBuilder(fn.append_basic_block("entry"))

    def call(self, b: ir.IRBuilder, name: str, *args: ir.Value) -> ir.Instruction:
        return b.call(self.imports.function(name), list(args))

    def field(self, b: ir.IRBuilder, obj: ir.Value, name: str) -> ir.Value:
        """The address of field ``name`` (see ``_abi.OFFSETS``) of the object ``obj``."""
        table = self.imports.data(_abi.OFFSETS_SYMBOL)
        where = b.gep(table, [ir.Constant(_I64, 0), ir.Constant(_I32, _abi.OFFSETS.index(name))],
                      source_etype=table.value_type)
        return b.gep(obj, [b.load(where, typ=_I64)], source_etype=_I8)

    def load_field(self, b: ir.IRBuilder, obj: ir.Value, name: str) -> ir.Value:
        """The ``PyObject *`` in field ``name`` of ``obj`` (borrowed; NULL if unset)."""
        return b.load(self.field(b, obj, name), typ=_PTR)

    # -- ints held by long-lived fields -----------------------------------------------
    def _word_cache(self) -> ir.GlobalVariable:
        """The module's memo of int values: ``_WORD_CACHE_SETS`` sets of two entries
        ``(int object, value)``, the newer first.  Each object is held by a reference, so
        its address names it while it is here (ints are immutable and a live object's
        address is not reused).  Only exact ints are entered: freeing an evicted one runs
        no Python code."""
        name = "ffm_h_word_cache"
        if name not in self.imports.module.globals:
            kind = ir.ArrayType(_I64, 4 * _WORD_CACHE_SETS)
            cache = ir.GlobalVariable(self.imports.module, kind, name)
            cache.linkage = "internal"
            cache.initializer = ir.Constant(kind, None)
            cache.align = 64
        return self.imports.module.globals[name]

    def _cache_set(self, b: ir.IRBuilder, obj: ir.Value) -> list[ir.Value]:
        """Pointers to the set for ``obj``: newer key, its value, older key, its value."""
        cache = self._word_cache()
        where = b.ptrtoint(obj, _I64)
        index = b.lshr(b.mul(where, ir.Constant(_I64, 0x9E3779B97F4A7C15)),
                       ir.Constant(_I64, 64 - _WORD_CACHE_SETS.bit_length() + 1))
        first = b.shl(index, ir.Constant(_I64, 2))
        zero = ir.Constant(_I64, 0)
        return [b.gep(cache, [zero, b.or_(first, ir.Constant(_I64, i))]) for i in range(4)]

    def _make_word_miss(self) -> ir.Function:
        """``word_miss(obj) -> {value, ok}``: an exact ``int`` in ``[0, 2**64)``, entered
        into the cache as its set's newer entry (the older one is dropped); anything else
        is not ok (no error set).  Runs no Python code."""
        fn, b = self._function("word_miss", ir.LiteralStructType([_I64, _I1]), [_PTR],
                               inline=False)
        obj = fn.args[0]
        exact = b.icmp_unsigned("==", self.load_field(b, obj, "ob_type"),
                                self.imports.data("PyLong_Type"))
        with b.if_then(b.not_(exact), likely=False):
            self._pair(b, ir.Constant(_I64, 0), ir.Constant(_I1, 0))
        value = self.call(b, "PyLong_AsUnsignedLong", obj)
        with b.if_then(b.icmp_signed("==", value, ir.Constant(_I64, -1)), likely=False):
            failed = b.icmp_unsigned("!=", self.call(b, "PyErr_Occurred"),
                                     ir.Constant(_PTR, None))
            with b.if_then(failed, likely=False):
                self.call(b, "PyErr_Clear")  # negative or too large: not a word
                self._pair(b, ir.Constant(_I64, 0), ir.Constant(_I1, 0))
        newer_key, newer_value, older_key, older_value = self._cache_set(b, obj)
        dropped = b.load(older_key, typ=_I64)
        b.store(b.load(newer_key, typ=_I64), older_key)
        b.store(b.load(newer_value, typ=_I64), older_value)
        self.call(b, "Py_IncRef", obj)
        b.store(b.ptrtoint(obj, _I64), newer_key)
        b.store(value, newer_value)
        with b.if_then(b.icmp_unsigned("!=", dropped, ir.Constant(_I64, 0))):
            self.call(b, "Py_DecRef", b.inttoptr(dropped, _PTR))
        self._pair(b, value, ir.Constant(_I1, 1))
        return fn

    def _lookup(self, b: ir.IRBuilder, obj: ir.Value) -> tuple[ir.Value, ir.Value]:
        """``(hit, value)``: whether ``obj`` is in the cache, and its value if so."""
        newer_key, newer_value, older_key, older_value = self._cache_set(b, obj)
        where = b.ptrtoint(obj, _I64)
        newer = b.icmp_unsigned("==", b.load(newer_key, typ=_I64), where)
        older = b.icmp_unsigned("==", b.load(older_key, typ=_I64), where)
        value = b.select(newer, b.load(newer_value, typ=_I64), b.load(older_value, typ=_I64))
        return b.or_(newer, older), value

    def word(self, b: ir.IRBuilder, obj: ir.Value) -> tuple[ir.Value, ir.Value]:
        """``(value, ok)``: ``obj``'s value if it is an exact int in ``[0, 2**64)``, from
        the cache when it is there (the fields this is used on keep their objects for
        long), else by :meth:`_make_word_miss`.  ``obj`` must not be NULL (an empty entry's
        key is 0): callers check fields for being unset first."""
        hit, found = self._lookup(b, obj)
        return self._pair_or_call(b, hit, found, "word_miss", obj)

    def _pair_or_call(self, b: ir.IRBuilder, good: ir.Value, value: ir.Value, helper: str,
                      obj: ir.Value) -> tuple[ir.Value, ir.Value]:
        """``(value, true)`` if ``good``, else the ``{value, ok}`` that ``helper(obj)``
        returns."""
        entry = b.block
        with b.if_then(b.not_(good), likely=False):
            pair = b.call(self.get(helper), [obj])
            other, other_ok = b.extract_value(pair, 0), b.extract_value(pair, 1)
            slow = b.block
        result = b.phi(_I64)
        result.add_incoming(value, entry)
        result.add_incoming(other, slow)
        ok = b.phi(_I1)
        ok.add_incoming(ir.Constant(_I1, 1), entry)
        ok.add_incoming(other_ok, slow)
        return result, ok

    @staticmethod
    def _or_else(b: ir.IRBuilder, good: ir.Value, value: ir.Value,
                 otherwise: Callable[[], ir.Value]) -> ir.Value:
        """``value`` if ``good``, else what ``otherwise`` emits (an ``i64``)."""
        entry = b.block
        with b.if_then(b.not_(good), likely=False):
            other = otherwise()
            slow = b.block
        result = b.phi(_I64)
        result.add_incoming(value, entry)
        result.add_incoming(other, slow)
        return result

    def _converted(self, b: ir.IRBuilder, good: ir.Value, value: ir.Value, obj: ir.Value,
                   converter: str) -> tuple[ir.Value, ir.Value]:
        """``(value, ok)``: ``value`` if ``good``, else ``obj`` through ``converter`` (see
        :meth:`_make_convert`)."""
        return self._pair_or_call(b, good, value, "convert_" + converter, obj)

    def _make_convert(self, converter: str, result: ir.Type, name: str) -> ir.Function:
        """``convert_<name>(obj) -> {value, ok}``: ``obj`` through the CPython function
        ``converter``; not ok (the error cleared) if it raised."""
        fn, b = self._function("convert_" + name, ir.LiteralStructType([_I64, _I1]), [_PTR],
                               inline=False)
        value = self.call(b, converter, fn.args[0])
        if result == _PTR:
            value = b.ptrtoint(value, _I64)
            maybe = b.icmp_unsigned("==", value, ir.Constant(_I64, 0))
        else:
            maybe = b.icmp_signed("==", value, ir.Constant(_I64, -1))
        with b.if_then(maybe, likely=False):
            failed = b.icmp_unsigned("!=", self.call(b, "PyErr_Occurred"),
                                     ir.Constant(_PTR, None))
            with b.if_then(failed, likely=False):
                self.call(b, "PyErr_Clear")
                self._pair(b, value, ir.Constant(_I1, 0))
        self._pair(b, value, ir.Constant(_I1, 1))
        return fn

    def _make_convert_address(self) -> ir.Function:
        return self._make_convert("PyLong_AsVoidPtr", _PTR, "address")

    def _make_convert_ssize(self) -> ir.Function:
        return self._make_convert("PyLong_AsSsize_t", _I64, "ssize")

    def _make_convert_unsigned(self) -> ir.Function:
        return self._make_convert("PyLong_AsUnsignedLong", _I64, "unsigned")

    def address_of(self, b: ir.IRBuilder, obj: ir.Value,
                   remember: bool = True) -> tuple[ir.Value, ir.Value]:
        """``(value, ok)``: an address field's value (``PyLong_AsVoidPtr`` for what the cache
        does not take; not ok, the error cleared, if that raised).  ``remember=False``: a
        miss is not entered (for objects seen once, like the fields of a segment just
        made)."""
        if remember:
            value, ok = self.word(b, obj)
        else:
            ok, value = self._lookup(b, obj)
        return self._converted(b, ok, value, obj, "address")

    def ssize_of(self, b: ir.IRBuilder, obj: ir.Value) -> tuple[ir.Value, ir.Value]:
        """``(value, ok)``: an int field's value as ``PyLong_AsSsize_t`` gives it (through
        the cache; not ok, the error cleared, if it raised)."""
        value, ok = self.word(b, obj)
        fits = b.and_(ok, b.icmp_signed(">=", value, ir.Constant(_I64, 0)))
        return self._converted(b, fits, value, obj, "ssize")

    def unsigned_of(self, b: ir.IRBuilder, obj: ir.Value) -> tuple[ir.Value, ir.Value]:
        """``(value, ok)``: an int's value as ``PyLong_AsUnsignedLong`` gives it (through the
        cache; not ok, the error cleared, if it raised)."""
        value, ok = self.word(b, obj)
        return self._converted(b, ok, value, obj, "unsigned")

    def _make_fail(self) -> ir.Function:
        """``fail(key, mode, position, value)``: clear the error, let ``arg_error`` raise."""
        fn, b = self._function("fail", _PTR, [_PTR, _PTR, _I64, _PTR], cold=True)
        key, mode, position, value = fn.args
        self.call(b, "PyErr_Clear")
        cell = b.load(self.imports.data(_abi.CELL_ARG_ERROR), typ=_PTR)
        result = self.call(b, "PyObject_CallFunction", cell, self.imports.cstring("ssnO"), key,
                           mode, position, value)
        with b.if_then(b.icmp_unsigned("!=", result, ir.Constant(_PTR, None))):
            self.call(b, "Py_DecRef", result)
        b.ret(ir.Constant(_PTR, None))
        return fn

    def _make_fail_count(self) -> ir.Function:
        fn, b = self._function("fail_count", _PTR, [_PTR, _PTR, _I64], cold=True)
        key, mode, nargs = fn.args
        cell = b.load(self.imports.data(_abi.CELL_ARG_ERROR), typ=_PTR)
        result = self.call(b, "PyObject_CallFunction", cell, self.imports.cstring("ssnn"), key,
                           mode, ir.Constant(_I64, -1), nargs)
        with b.if_then(b.icmp_unsigned("!=", result, ir.Constant(_PTR, None))):
            self.call(b, "Py_DecRef", result)
        b.ret(ir.Constant(_PTR, None))
        return fn

    @staticmethod
    def _pair(b: ir.IRBuilder, value: ir.Value, ok: ir.Value) -> None:
        pair = ir.LiteralStructType([value.type, _I1])
        b.ret(b.insert_value(b.insert_value(ir.Constant(pair, ir.Undefined), value, 0), ok, 1))

    def _make_int(self) -> ir.Function:
        """``int(obj, low, high) -> {i64, ok}``: an int in ``[low, high]``."""
        fn, b = self._function("int", ir.LiteralStructType([_I64, _I1]), [_PTR, _I64, _I64])
        obj, low, high = fn.args
        value = self.call(b, "PyLong_AsLongLong", obj)
        with b.if_then(b.icmp_signed("==", value, ir.Constant(_I64, -1)), likely=False):
            failed = b.icmp_unsigned("!=", self.call(b, "PyErr_Occurred"), ir.Constant(_PTR, None))
            with b.if_then(failed, likely=False):
                self._pair(b, value, ir.Constant(_I1, 0))
        inside = b.and_(b.icmp_signed(">=", value, low), b.icmp_signed("<=", value, high))
        self._pair(b, value, inside)
        return fn

    def _make_double(self) -> ir.Function:
        fn, b = self._function("double", ir.LiteralStructType([_F64, _I1]), [_PTR])
        value = self.call(b, "PyFloat_AsDouble", fn.args[0])
        with b.if_then(b.fcmp_ordered("==", value, ir.Constant(_F64, -1.0)), likely=False):
            failed = b.icmp_unsigned("!=", self.call(b, "PyErr_Occurred"), ir.Constant(_PTR, None))
            with b.if_then(failed, likely=False):
                self._pair(b, value, ir.Constant(_I1, 0))
        self._pair(b, value, ir.Constant(_I1, 1))
        return fn

    def _make_float(self) -> ir.Function:
        """``float(obj) -> {float, ok}``: finite doubles beyond float's range are refused."""
        fn, b = self._function("float", ir.LiteralStructType([_F32, _I1]), [_PTR])
        pair = b.call(self.get("double"), [fn.args[0]])
        value, ok = b.extract_value(pair, 0), b.extract_value(pair, 1)
        narrow = b.fptrunc(value, _F32)
        inf32 = b.fcmp_ordered("==", self.call(b, "llvm.fabs.f32", narrow),
                               ir.Constant(_F32, float("inf")))
        inf64 = b.fcmp_ordered("==", self.call(b, "llvm.fabs.f64", value),
                               ir.Constant(_F64, float("inf")))
        self._pair(b, narrow, b.and_(ok, b.not_(b.and_(inf32, b.not_(inf64)))))
        return fn

    def _make_bool(self) -> ir.Function:
        fn, b = self._function("bool", ir.LiteralStructType([_I8, _I1]), [_PTR])
        obj = fn.args[0]
        is_true = b.icmp_unsigned("==", obj, self.imports.data("_Py_TrueStruct"))
        is_false = b.icmp_unsigned("==", obj, self.imports.data("_Py_FalseStruct"))
        self._pair(b, b.zext(is_true, _I8), b.or_(is_true, is_false))
        return fn

    def _unless_unset(self, b: ir.IRBuilder, obj: ir.Value, *names: str,
                      drop: ir.Value | None = None) -> None:
        """Return NULL (no error: "not here") if any of these fields of ``obj`` is unset, as
        in an object made with ``object.__new__`` (Python then raises AttributeError),
        dropping ``drop`` (a still empty new segment) first."""
        unset = ir.Constant(_I1, 0)
        for name in names:
            unset = b.or_(unset, b.icmp_unsigned("==", self.load_field(b, obj, name),
                                                 ir.Constant(_PTR, None)))
        self._give_up_if(b, unset, drop)

    def _give_up_if(self, b: ir.IRBuilder, condition: ir.Value, drop: ir.Value | None) -> None:
        """If ``condition``: drop ``drop`` (if any) and return NULL without an error."""
        with b.if_then(condition, likely=False):
            if drop is not None:
                self.call(b, "Py_DecRef", drop)  # unset fields are NULL: dealloc skips them
            b.ret(ir.Constant(_PTR, None))

    def _owned_here(self, b: ir.IRBuilder, guard: ir.Value) -> ir.Value:
        """Whether ``guard`` (a confinement list, or None) lets this thread in (runs no Python
        code; clears the error of a malformed guard)."""
        null = ir.Constant(_PTR, None)
        result = b.alloca(_I1)
        b.store(ir.Constant(_I1, 1), result)
        with b.if_then(b.icmp_unsigned("!=", guard, self.imports.data("_Py_NoneStruct"))):
            owner = self.call(b, "PyList_GetItem", guard, ir.Constant(_I64, 0))
            with b.if_else(b.icmp_unsigned("==", owner, null), likely=False) as (broken, fine):
                with broken:
                    self.call(b, "PyErr_Clear")
                    b.store(ir.Constant(_I1, 0), result)
                with fine:
                    current = self.call(b, "PyThread_get_thread_ident")
                    owner_value, known = self.unsigned_of(b, owner)
                    b.store(b.and_(known, b.icmp_unsigned("==", owner_value, current)), result)
        return b.load(result)

    def _size_of(self, b: ir.IRBuilder, obj: ir.Value, cached: bool = False) -> ir.Value:
        """An ``int`` size field's value; beyond ``Py_ssize_t`` it reads as the largest one.
        ``cached``: through :meth:`word` (for fields that keep their objects)."""
        largest = ir.Constant(_I64, 2**63 - 1)

        def slow() -> ir.Value:
            value = self.call(b, "PyLong_AsSsize_t", obj)
            entry = b.block
            with b.if_then(b.icmp_signed("==", value, ir.Constant(_I64, -1)), likely=False):
                failed = b.icmp_unsigned("!=", self.call(b, "PyErr_Occurred"),
                                         ir.Constant(_PTR, None))
                with b.if_then(failed, likely=False):
                    self.call(b, "PyErr_Clear")
                saturated = b.select(failed, largest, value)
                checked = b.block
            result = b.phi(_I64)
            result.add_incoming(value, entry)
            result.add_incoming(saturated, checked)
            return result

        if not cached:
            return slow()
        value, ok = self.word(b, obj)
        return self._or_else(b, ok, b.select(b.icmp_signed("<", value, ir.Constant(_I64, 0)),
                                             largest, value), slow)

    def _make_carve(self) -> ir.Function:
        """``carve(arena, size, alignment) -> segment or NULL``: a zeroed segment cut from the
        current slab of ``arena`` (exactly an ``Arena``; ``size`` <= ``ARENA_SMALL``, a power
        of two ``alignment`` <= ``ARENA_SLAB_ALIGN``), exactly as ``Arena.allocate`` would.

        NULL without an error set means "not here": no slab with room, or the arena is
        closed or owned by another thread; ``Arena.allocate`` then does (or refuses) it.
        The segment object is allocated first (that may collect garbage, and so run
        finalizers: any Python code); every check and field read comes after it, with no
        Python code in between and until the segment is complete.
        """
        fn, b = self._function("carve", _PTR, [_PTR, _I64, _I64], inline=False)
        arena, size, alignment = fn.args
        null = ir.Constant(_PTR, None)
        self._unless_unset(b, arena, "arena._segment_class")
        segment = self.call(b, "PyType_GenericAlloc",
                            self.load_field(b, arena, "arena._segment_class"),
                            ir.Constant(_I64, 0))
        with b.if_then(b.icmp_unsigned("==", segment, null), likely=False):
            b.ret(null)
        self._unless_unset(b, arena, "arena._confinement", "arena._cursor", "arena._limit",
                           "arena._slab_view", drop=segment)
        guard = self.load_field(b, arena, "arena._confinement")
        self._give_up_if(b, b.not_(self._owned_here(b, guard)), segment)
        cursor_field = self.field(b, arena, "arena._cursor")
        old_cursor = b.load(cursor_field, typ=_PTR)
        # the cursor's int is dropped below: only an exact one (freeing it runs no Python code)
        self._give_up_if(b, b.icmp_unsigned("!=", self.load_field(b, old_cursor, "ob_type"),
                                            self.imports.data("PyLong_Type")), segment)
        cursor = self._size_of(b, old_cursor)
        limit = self._size_of(b, self.load_field(b, arena, "arena._limit"), cached=True)
        # a slab's state as the arena keeps it, else Python's business (no overflow below)
        self._give_up_if(b, b.or_(b.or_(b.icmp_signed("<", cursor, ir.Constant(_I64, 0)),
                                         b.icmp_signed(">", cursor, limit)),
                                  b.icmp_signed(">", limit, ir.Constant(
                                      _I64, _abi.ARENA_SLAB_SIZE))), segment)
        mask = b.sub(alignment, ir.Constant(_I64, 1))
        offset = b.and_(b.add(cursor, mask), b.not_(mask))
        end = b.add(offset, size)
        self._give_up_if(b, b.icmp_signed(">", end, limit), segment)
        self._unless_unset(b, arena, "arena._slab_start", "arena._slab_align", drop=segment)
        start, start_ok = self.ssize_of(b, self.load_field(b, arena, "arena._slab_start"))
        low, low_ok = self.ssize_of(b, self.load_field(b, arena, "arena._slab_align"))
        self._give_up_if(b, b.not_(b.and_(start_ok, low_ok)), segment)
        new_cursor = self.call(b, "PyLong_FromSsize_t", end)
        with b.if_then(b.icmp_unsigned("==", new_cursor, null), likely=False):
            self.call(b, "Py_DecRef", segment)
            b.ret(null)
        b.store(new_cursor, cursor_field)
        # The segment's base is its offset in the slab: without padding, the old cursor's
        # int, whose reference the arena gives up, so the segment takes it over.
        with b.if_else(b.icmp_signed("==", offset, cursor)) as (share, make):
            with share:
                shared_block = b.block
            with make:
                made = self.call(b, "PyLong_FromSsize_t", offset)
                self.call(b, "Py_DecRef", old_cursor)  # an int: freeing it runs no Python code
                made_block = b.block
        base = b.phi(_PTR)
        base.add_incoming(old_cursor, shared_block)
        base.add_incoming(made, made_block)
        # pooled slabs keep their old bytes: an allocation zeroes its own
        self.call(b, "memset", b.inttoptr(b.add(start, offset), _PTR), ir.Constant(_I32, 0), size)
        self._fill(b, segment, [
            ("segment._address", self.call(b, "PyLong_FromSsize_t", b.add(start, offset))),
            ("segment._align", self.call(b, "PyLong_FromSsize_t", b.add(low, offset))),
            ("segment._base", base),
            ("segment._size", self.call(b, "PyLong_FromSsize_t", size)),
        ], [("segment._view", self.load_field(b, arena, "arena._slab_view")),
            ("segment._scope", arena), ("segment._guard", guard)])
        b.ret(segment)
        return fn

    def _fill(self, b: ir.IRBuilder, segment: ir.Value, new: list[tuple[str, ir.Value]],
              shared: list[tuple[str, ir.Value]]) -> None:
        """Fill a new segment's fields: ``new`` references (any NULL: drop the segment and
        return NULL, the error set) and ``shared`` ones (a reference is taken)."""
        failed = ir.Constant(_I1, 0)
        for name, value in new:
            b.store(value, self.field(b, segment, name))
            failed = b.or_(failed, b.icmp_unsigned("==", value, ir.Constant(_PTR, None)))
        for name, value in shared:
            self.call(b, "Py_IncRef", value)
            b.store(value, self.field(b, segment, name))
        with b.if_then(failed, likely=False):
            self.call(b, "Py_DecRef", segment)
            b.ret(ir.Constant(_PTR, None))

    def _make_cut(self) -> ir.Function:
        """``cut(segment, parent, offset, size, alignment) -> segment or NULL``: fills the
        new, empty ``segment`` (of ``parent``'s exact type, ``MemorySegment`` or the
        confined one) as the writable slice ``[offset, offset + size)`` of ``parent``, like
        ``parent.as_slice(offset, size, alignment)``, for the prefix and slicing
        allocators.  A field whose value equals the parent's shares the parent's int (so
        :meth:`_make_reuse` compares them by identity).  Runs no Python code.

        NULL without an error set means "not here" (a read-only, closed or foreign segment,
        out of bounds, misaligned): ``segment`` is dropped and the Python allocator then
        does or refuses it.
        """
        fn, b = self._function("cut", _PTR, [_PTR, _PTR, _I64, _I64, _I64], inline=False)
        segment, parent, offset, size, alignment = fn.args
        none = self.imports.data("_Py_NoneStruct")
        self._unless_unset(b, parent, "segment._guard", "segment._size", "segment._align",
                           "segment._address", "segment._view", "segment._scope",
                           "segment._base", drop=segment)
        guard = self.load_field(b, parent, "segment._guard")
        self._give_up_if(b, b.not_(self._owned_here(b, guard)), segment)
        whole = self._size_of(b, self.load_field(b, parent, "segment._size"), cached=True)
        low, low_ok = self.ssize_of(b, self.load_field(b, parent, "segment._align"))
        address, address_ok = self.address_of(b, self.load_field(b, parent, "segment._address"))
        view = self.load_field(b, parent, "segment._view")
        has_view = b.icmp_unsigned("!=", view, none)
        parent_base, base_ok = self.ssize_of(b, self.load_field(b, parent, "segment._base"))
        start = b.add(address, offset)
        bad = b.not_(b.and_(b.and_(low_ok, address_ok), b.or_(base_ok, b.not_(has_view))))
        bad = b.or_(bad, b.or_(b.icmp_signed("<", offset, ir.Constant(_I64, 0)),
                               b.icmp_signed(">", offset, b.sub(whole, size))))
        bad = b.or_(bad, b.icmp_unsigned("!=", b.and_(low, ir.Constant(
            _I64, _abi.SEGMENT_READ_ONLY_BIT)), ir.Constant(_I64, 0)))
        bad = b.or_(bad, b.icmp_unsigned("!=", b.and_(start, b.sub(alignment, ir.Constant(
            _I64, 1))), ir.Constant(_I64, 0)))
        self._give_up_if(b, bad, segment)
        base = b.select(has_view, b.add(parent_base, offset), ir.Constant(_I64, 0))
        low_bits = b.and_(start, ir.Constant(_I64, _abi.SEGMENT_ALIGN_BITS))
        at_start = b.icmp_signed("==", offset, ir.Constant(_I64, 0))

        def field_int(name: str, same: ir.Value, value: ir.Value) -> tuple[str, ir.Value]:
            """A new reference for field ``name``: the parent's int if ``same`` and it is an
            exact int (freeing it then never runs Python code), else a new int of ``value``."""
            exact = b.icmp_unsigned("==", self.load_field(b, self.load_field(b, parent, name),
                                                          "ob_type"),
                                    self.imports.data("PyLong_Type"))
            entry = b.block
            with b.if_else(b.and_(same, exact)) as (share, make):
                with share:
                    shared = self.load_field(b, parent, name)
                    self.call(b, "Py_IncRef", shared)
                    shared_block = b.block
                with make:
                    made = self.call(b, "PyLong_FromSsize_t", value)
                    made_block = b.block
            del entry
            result = b.phi(_PTR)
            result.add_incoming(shared, shared_block)
            result.add_incoming(made, made_block)
            return name, result

        self._fill(b, segment, [
            field_int("segment._address", at_start, start),
            field_int("segment._align", b.icmp_unsigned("==", low, low_bits), low_bits),
            field_int("segment._base", b.and_(has_view, at_start), base),
            field_int("segment._size", b.icmp_signed("==", size, whole), size),
        ], [("segment._view", view),
            ("segment._scope", self.load_field(b, parent, "segment._scope")),
            ("segment._guard", guard)])
        b.ret(segment)
        return fn

    def _make_reuse(self) -> ir.Function:
        """``reuse(cached, parent, size, alignment) -> cached or NULL``: a segment a prefix
        allocator's stub cut before (see :meth:`_make_cut`), handed out again if nothing
        else holds it (reference count 1: the allocator's) and it is exactly what
        :meth:`_make_cut` would make from ``parent`` now, after the same checks: it shares
        the parent's address, alignment bits, base (with a view), view, scope and guard
        objects, and has ``size``.  Runs no Python code; NULL (no error): make a new one."""
        fn, b = self._function("reuse", _PTR, [_PTR, _PTR, _I64, _I64], inline=False)
        cached, parent, size, alignment = fn.args
        null = ir.Constant(_PTR, None)
        none = self.imports.data("_Py_NoneStruct")
        self._give_up_if(b, b.or_(b.icmp_unsigned("==", cached, null),
                                  b.icmp_unsigned("==", cached, none)), None)
        refcount = b.load(self.field(b, cached, "ob_refcnt"), typ=_I64)
        self._give_up_if(b, b.icmp_signed("!=", refcount, ir.Constant(_I64, 1)), None)
        self._give_up_if(b, b.icmp_unsigned("!=", self.load_field(b, cached, "ob_type"),
                                            self.load_field(b, parent, "ob_type")), None)
        fields = ("segment._guard", "segment._size", "segment._align", "segment._address",
                  "segment._view", "segment._scope", "segment._base")
        self._unless_unset(b, parent, *fields)
        self._unless_unset(b, cached, *fields)
        view = self.load_field(b, parent, "segment._view")
        has_view = b.icmp_unsigned("!=", view, none)
        bad = ir.Constant(_I1, 0)
        for name in ("segment._guard", "segment._view", "segment._scope", "segment._address",
                     "segment._align"):
            bad = b.or_(bad, b.icmp_unsigned("!=", self.load_field(b, cached, name),
                                             self.load_field(b, parent, name)))
        same_base = b.icmp_unsigned("==", self.load_field(b, cached, "segment._base"),
                                    self.load_field(b, parent, "segment._base"))
        bad = b.or_(bad, b.and_(has_view, b.not_(same_base)))
        self._give_up_if(b, bad, None)
        guard = self.load_field(b, parent, "segment._guard")
        self._give_up_if(b, b.not_(self._owned_here(b, guard)), None)
        whole = self._size_of(b, self.load_field(b, parent, "segment._size"), cached=True)
        low, low_ok = self.ssize_of(b, self.load_field(b, parent, "segment._align"))
        address, address_ok = self.address_of(b, self.load_field(b, parent, "segment._address"))
        cached_size, size_ok = self.ssize_of(b, self.load_field(b, cached, "segment._size"))
        bad = b.not_(b.and_(b.and_(low_ok, address_ok), size_ok))
        bad = b.or_(bad, b.icmp_signed(">", size, whole))
        bad = b.or_(bad, b.icmp_unsigned("!=", b.and_(low, ir.Constant(
            _I64, _abi.SEGMENT_READ_ONLY_BIT)), ir.Constant(_I64, 0)))
        bad = b.or_(bad, b.icmp_unsigned("!=", b.and_(address, b.sub(alignment, ir.Constant(
            _I64, 1))), ir.Constant(_I64, 0)))
        bad = b.or_(bad, b.icmp_unsigned("!=", low, b.and_(address, ir.Constant(
            _I64, _abi.SEGMENT_ALIGN_BITS))))
        bad = b.or_(bad, b.icmp_unsigned("!=", cached_size, size))
        without_view = fn.append_basic_block("without_view")
        checked = fn.append_basic_block("checked")
        self._give_up_if(b, bad, None)
        b.cbranch(has_view, checked, without_view)
        b.position_at_end(without_view)
        cached_base, base_ok = self.ssize_of(b, self.load_field(b, cached, "segment._base"))
        self._give_up_if(b, b.or_(b.not_(base_ok), b.icmp_unsigned(
            "!=", cached_base, ir.Constant(_I64, 0))), None)
        b.branch(checked)
        b.position_at_end(checked)
        self.call(b, "Py_IncRef", cached)
        b.ret(cached)
        return fn

    def _make_harmless(self) -> ir.Function:
        """``harmless(segment, parent) -> i1``: whether dropping a reference to ``segment``
        (a prefix allocator's remembered result, or NULL) surely runs no Python code: NULL,
        still held elsewhere, or a plain or confined segment whose ints are exact and whose
        view, scope and guard are ``parent``'s (which keeps them alive)."""
        fn, b = self._function("harmless", _I1, [_PTR, _PTR], inline=False)
        segment, parent = fn.args
        null = ir.Constant(_PTR, None)
        yes, no = ir.Constant(_I1, 1), ir.Constant(_I1, 0)
        with b.if_then(b.icmp_unsigned("==", segment, null)):
            b.ret(yes)
        refcount = b.load(self.field(b, segment, "ob_refcnt"), typ=_I64)
        with b.if_then(b.icmp_signed(">", refcount, ir.Constant(_I64, 1))):
            b.ret(yes)
        kind = self.load_field(b, segment, "ob_type")
        plain = b.load(self.imports.data(_abi.CELL_SEGMENT_TYPE), typ=_PTR)
        confined = b.load(self.imports.data(_abi.CELL_CONFINED_TYPE), typ=_PTR)
        with b.if_then(b.and_(b.icmp_unsigned("!=", kind, plain),
                              b.icmp_unsigned("!=", kind, confined))):
            b.ret(no)
        fine = yes
        for name in ("segment._address", "segment._size", "segment._align", "segment._base"):
            value = self.load_field(b, segment, name)
            entry = b.block
            is_int = fn.append_basic_block(f"int{name[9:]}")
            joined = fn.append_basic_block(f"joined{name[9:]}")
            b.cbranch(b.icmp_unsigned("==", value, null), joined, is_int)
            b.position_at_end(is_int)
            exact = b.icmp_unsigned("==", self.load_field(b, value, "ob_type"),
                                    self.imports.data("PyLong_Type"))
            b.branch(joined)
            b.position_at_end(joined)
            ok = b.phi(_I1)
            ok.add_incoming(yes, entry)
            ok.add_incoming(exact, is_int)
            fine = b.and_(fine, ok)
        for name in ("segment._view", "segment._scope", "segment._guard"):
            value = self.load_field(b, segment, name)
            fine = b.and_(fine, b.or_(b.icmp_unsigned("==", value, null),
                                      b.icmp_unsigned("==", value,
                                                      self.load_field(b, parent, name))))
        b.ret(fine)
        return fn

    def _make_allocate(self) -> ir.Function:
        """``allocate(allocator, size, alignment) -> segment or NULL`` for a struct result.

        From an ``Arena``, :meth:`_make_carve` cuts it when it can, from a prefix or slicing
        allocator :meth:`_make_cut`.  Otherwise an arena is asked (``arena.allocate(size,
        alignment)``: new slabs, large blocks and every error are its business), and any
        other allocator goes through the runtime's checking ``allocate`` cell (so do prefix
        and slicing allocators whose segment is not cut here: their errors are Python's).
        """
        fn, b = self._function("allocate", _PTR, [_PTR, _I64, _I64], inline=False)
        allocator, size, alignment = fn.args
        null = ir.Constant(_PTR, None)
        kind = self.load_field(b, allocator, "ob_type")
        cell = b.load(self.imports.data(_abi.CELL_ALLOCATE), typ=_PTR)
        checked = fn.append_basic_block("checked")

        def gave_up(result: ir.Value) -> None:
            """``result`` NULL: an error is returned, or else the checked path is taken."""
            with b.if_then(b.icmp_unsigned("!=", result, null)):
                b.ret(result)
            with b.if_then(b.icmp_unsigned("!=", self.call(b, "PyErr_Occurred"), null),
                           likely=False):
                b.ret(null)
            b.branch(checked)

        arena_type = b.load(self.imports.data(_abi.CELL_ARENA_TYPE), typ=_PTR)
        is_arena = b.icmp_unsigned("==", kind, arena_type)
        small = b.and_(b.icmp_signed("<=", size, ir.Constant(_I64, _abi.ARENA_SMALL)),
                       b.icmp_signed("<=", alignment, ir.Constant(_I64, _abi.ARENA_SLAB_ALIGN)))
        with b.if_then(b.and_(is_arena, small)):
            segment = b.call(self.get("carve"), [allocator, size, alignment])
            with b.if_then(b.icmp_unsigned("!=", segment, null)):
                b.ret(segment)
            with b.if_then(b.icmp_unsigned("!=", self.call(b, "PyErr_Occurred"), null),
                           likely=False):
                b.ret(null)
        with b.if_then(is_arena):
            size_obj = self.call(b, "PyLong_FromLongLong", size)
            alignment_obj = self.call(b, "PyLong_FromLongLong", alignment)
            with b.if_then(b.or_(b.icmp_unsigned("==", size_obj, null),
                                 b.icmp_unsigned("==", alignment_obj, null)), likely=False):
                b.ret(null)  # MemoryError is set; the two small ints are cached anyway
            name = b.load(self.imports.data(_abi.CELL_ALLOCATE_NAME), typ=_PTR)
            result = self.call(b, "PyObject_CallMethodObjArgs", allocator, name, size_obj,
                               alignment_obj, null)
            self.call(b, "Py_DecRef", size_obj)
            self.call(b, "Py_DecRef", alignment_obj)
            b.ret(result)
        for prefix in ("prefix", "slicing"):
            allocator_type = b.load(self.imports.data(
                _abi.CELL_PREFIX_TYPE if prefix == "prefix" else _abi.CELL_SLICING_TYPE), typ=_PTR)
            with b.if_then(b.icmp_unsigned("==", kind, allocator_type)):
                self._cut_for(b, fn, prefix, allocator, size, alignment, checked, gave_up)
        b.branch(checked)
        b.position_at_end(checked)
        b.ret(self.call(b, "PyObject_CallFunction", cell, self.imports.cstring("Onn"), allocator,
                        size, alignment))
        return fn

    def _cut_for(self, b: ir.IRBuilder, fn: ir.Function, kind: str, allocator: ir.Value,
                 size: ir.Value, alignment: ir.Value, checked: ir.Block,
                 gave_up: Callable[[ir.Value], None]) -> None:
        """A prefix (``kind == "prefix"``) or slicing allocator's result, cut natively."""
        null = ir.Constant(_PTR, None)
        field = f"{kind}._segment"
        first = self.load_field(b, allocator, field)
        with b.if_then(b.icmp_unsigned("==", first, null), likely=False):
            b.branch(checked)
        segment_type = self.load_field(b, first, "ob_type")
        plain = b.load(self.imports.data(_abi.CELL_SEGMENT_TYPE), typ=_PTR)
        confined = b.load(self.imports.data(_abi.CELL_CONFINED_TYPE), typ=_PTR)
        native = b.or_(b.icmp_unsigned("==", segment_type, plain),
                       b.icmp_unsigned("==", segment_type, confined))
        with b.if_then(b.not_(native), likely=False):
            b.branch(checked)
        if kind == "prefix":  # a result made before, if it can be handed out again
            for name in ("prefix._recent0", "prefix._recent1"):
                again = b.call(self.get("reuse"), [self.load_field(b, allocator, name), first,
                                                   size, alignment])
                with b.if_then(b.icmp_unsigned("!=", again, null)):
                    b.ret(again)
        # the object first: allocating it may run any Python code, the allocator's included
        segment = self.call(b, "PyType_GenericAlloc", segment_type, ir.Constant(_I64, 0))
        with b.if_then(b.icmp_unsigned("==", segment, null), likely=False):
            b.ret(null)
        parent = self.load_field(b, allocator, field)  # read again: it may have changed
        unset = b.icmp_unsigned("==", parent, null)
        offset_field = None
        if kind == "slicing":
            offset_field = self.field(b, allocator, "slicing._offset")
            unset = b.or_(unset, b.icmp_unsigned("==", b.load(offset_field, typ=_PTR), null))
        with b.if_then(unset, likely=False):
            self.call(b, "Py_DecRef", segment)
            b.branch(checked)
        with b.if_then(b.icmp_unsigned("!=", self.load_field(b, parent, "ob_type"),
                                       segment_type), likely=False):
            self.call(b, "Py_DecRef", segment)
            b.branch(checked)
        if offset_field is None:
            result = b.call(self.get("cut"), [segment, parent, ir.Constant(_I64, 0), size,
                                              alignment])
            with b.if_then(b.icmp_unsigned("!=", result, null)):
                # remember it: the newest first; the one before it stays, older ones go
                newest = self.field(b, allocator, "prefix._recent0")
                older = self.field(b, allocator, "prefix._recent1")
                dropped = b.load(older, typ=_PTR)
                # (if freeing it could run Python code, nothing is remembered this time)
                with b.if_then(b.call(self.get("harmless"), [dropped, parent])):
                    b.store(b.load(newest, typ=_PTR), older)
                    self.call(b, "Py_IncRef", result)
                    b.store(result, newest)
                    self.call(b, "Py_DecRef", dropped)  # NULL-safe
            gave_up(result)
            return
        address_obj = self.load_field(b, parent, "segment._address")
        with b.if_then(b.icmp_unsigned("==", address_obj, null), likely=False):
            self.call(b, "Py_DecRef", segment)
            b.branch(checked)
        old_offset = b.load(offset_field, typ=_PTR)
        base, base_ok = self.address_of(b, address_obj)
        # the old offset's int is dropped below: only an exact one (no Python code runs)
        exact = b.icmp_unsigned("==", self.load_field(b, old_offset, "ob_type"),
                                self.imports.data("PyLong_Type"))
        with b.if_then(b.not_(b.and_(base_ok, exact)), likely=False):
            self.call(b, "Py_DecRef", segment)
            b.branch(checked)
        mask = b.sub(alignment, ir.Constant(_I64, 1))
        start = b.and_(b.add(b.add(base, self._size_of(b, old_offset)), mask), b.not_(mask))
        offset = b.sub(start, base)
        new_offset = self.call(b, "PyLong_FromSsize_t", b.add(offset, size))
        with b.if_then(b.icmp_unsigned("==", new_offset, null), likely=False):
            self.call(b, "Py_DecRef", segment)
            b.ret(null)
        result = b.call(self.get("cut"), [segment, parent, offset, size, alignment])
        with b.if_then(b.icmp_unsigned("!=", result, null)):
            b.store(new_offset, offset_field)
            self.call(b, "Py_DecRef", old_offset)  # an int: freeing it runs no Python code
            b.ret(result)
        self.call(b, "Py_DecRef", new_offset)
        gave_up(result)

    def _make_segment(self) -> ir.Function:
        """``segment(obj, min_size, allow_heap, written, verified) -> {address, ok}``.

        Segments usable anywhere are exactly of the ``MemorySegment`` type (fast path);
        confined ones are exactly of a subclass whose guard must name this thread; heap
        ones of another subclass, allowed only when ``allow_heap``.  ``min_size`` < 0 skips
        the size check (an ``ADDRESS`` argument); ``written`` (the capture segment, which
        the stub writes) refuses read-only segments.  Fields are read at the runtime's
        offsets.  ``verified`` points to the guard last found to name this thread during
        this call (segments of one arena share it; no Python code runs between the checks
        of one call's segments, so it cannot change meanwhile).
        """
        fn, b = self._function("segment", ir.LiteralStructType([_PTR, _I1]),
                               [_PTR, _I64, _I1, _I1, _PTR], inline=False)
        obj, min_size, allow_heap, written, verified = fn.args
        null = ir.Constant(_PTR, None)
        fail = fn.append_basic_block("fail")
        obj_type = self.load_field(b, obj, "ob_type")
        seg_type = b.load(self.imports.data(_abi.CELL_SEGMENT_TYPE), typ=_PTR)
        with b.if_then(b.icmp_unsigned("!=", obj_type, seg_type), likely=False):
            confined_type = b.load(self.imports.data(_abi.CELL_CONFINED_TYPE), typ=_PTR)
            with b.if_else(b.icmp_unsigned("==", obj_type, confined_type)) as (then, otherwise):
                with then:
                    guard = self.load_field(b, obj, "segment._guard")
                    checked = fn.append_basic_block("guard")
                    b.cbranch(b.icmp_unsigned("==", guard, null), fail, checked)
                    b.position_at_end(checked)
                    known = fn.append_basic_block("known")
                    unknown = fn.append_basic_block("unknown")
                    b.cbranch(b.icmp_unsigned("==", guard, b.load(verified, typ=_PTR)), known,
                              unknown)
                    b.position_at_end(unknown)
                    owner_obj = self.call(b, "PyList_GetItem", guard, ir.Constant(_I64, 0))
                    owned = fn.append_basic_block("owned")
                    b.cbranch(b.icmp_unsigned("==", owner_obj, null), fail, owned)
                    b.position_at_end(owned)
                    owner, owner_ok = self.unsigned_of(b, owner_obj)
                    current = self.call(b, "PyThread_get_thread_ident")
                    mine = fn.append_basic_block("mine")
                    b.cbranch(b.or_(b.not_(owner_ok), b.icmp_unsigned("!=", owner, current)),
                              fail, mine)
                    b.position_at_end(mine)
                    b.store(guard, verified)
                    b.branch(known)
                    b.position_at_end(known)
                with otherwise:
                    heap_type = b.load(self.imports.data(_abi.CELL_HEAP_TYPE), typ=_PTR)
                    heap_ok = b.and_(allow_heap, b.icmp_unsigned("==", obj_type, heap_type))
                    allowed = fn.append_basic_block("heap")
                    b.cbranch(heap_ok, allowed, fail)
                    b.position_at_end(allowed)
        raw = self.load_field(b, obj, "segment._address")
        got = fn.append_basic_block("address")
        b.cbranch(b.icmp_unsigned("==", raw, null), fail, got)
        b.position_at_end(got)
        address_value, address_ok = self.address_of(b, raw)
        address = b.inttoptr(address_value, _PTR)
        converted = fn.append_basic_block("converted")
        b.cbranch(address_ok, converted, fail)
        b.position_at_end(converted)
        with b.if_then(written, likely=False):
            low = self.load_field(b, obj, "segment._align")
            readable = fn.append_basic_block("readable")
            b.cbranch(b.icmp_unsigned("==", low, null), fail, readable)
            b.position_at_end(readable)
            low_value, low_ok = self.ssize_of(b, low)
            read_only = b.and_(low_value, ir.Constant(_I64, _abi.SEGMENT_READ_ONLY_BIT))
            writable = fn.append_basic_block("writable")
            b.cbranch(b.or_(b.not_(low_ok), b.icmp_unsigned("!=", read_only, ir.Constant(
                _I64, 0))), fail, writable)
            b.position_at_end(writable)
        with b.if_then(b.icmp_signed(">=", min_size, ir.Constant(_I64, 0))):
            size_obj = self.load_field(b, obj, "segment._size")
            sized = fn.append_basic_block("sized")
            b.cbranch(b.icmp_unsigned("==", size_obj, null), fail, sized)
            b.position_at_end(sized)
            size = self._size_of(b, size_obj, cached=True)
            large = fn.append_basic_block("large")
            b.cbranch(b.icmp_signed("<", size, min_size), fail, large)
            b.position_at_end(large)
        self._pair(b, address, ir.Constant(_I1, 1))
        b.position_at_end(fail)
        self._pair(b, null, ir.Constant(_I1, 0))
        return fn


class _StubBuilder:
    def __init__(self, imports: _Imports, helpers: _Helpers, sig: LoweredSignature, name: str,
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
                                                 ir.Constant(_I64, position), value]))
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
                self._verified = self.builder.alloca(_PTR)
                self.builder.store(ir.Constant(_PTR, None), self._verified)
        return self._verified

    # -- conversions -------------------------------------------------------------------
    def unbox(self, kind: ScalarKind, obj: ir.Value, position: int) -> ir.Value:
        """A number or boolean argument (segments: see ``emit``'s third phase)."""
        b = self.builder
        if kind.carrier == "z":
            return self.checked("bool", position, obj)
        if kind.bits:
            assert kind.value_range is not None
            low, high = kind.value_range
            value = self.checked("int", position, obj, ir.Constant(_I64, low),
                                 ir.Constant(_I64, high))
            return b.trunc(value, ir.IntType(kind.bits)) if kind.bits < 64 else value
        if kind.carrier == "d":
            return self.checked("double", position, obj)
        assert kind.carrier == "f", kind
        return self.checked("float", position, obj)

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
    def temporary(self, kind: ir.Type) -> ir.Value:
        """A 16-byte-aligned stack slot for a ``kind`` (allocated in the entry block)."""
        b = self.builder
        with b.goto_entry_block():
            slot = b.alloca(kind)
            slot.align = 16
        return slot

    def copy(self, target: ir.Value, source: ir.Value, size: int) -> None:
        self.builder.call(self.imports.function("llvm.memcpy.p0.p0.i64"),
                          [target, source, ir.Constant(_I64, size), ir.Constant(_I1, 0)])

    def load_piece(self, address: ir.Value, piece: Piece) -> ir.Value:
        """A piece's value, never reading past the piece's bytes (through a copy if needed)."""
        b = self.builder
        where = b.gep(address, [ir.Constant(_I64, piece.offset)], source_etype=_I8)
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
        where = b.gep(address, [ir.Constant(_I64, piece.offset)], source_etype=_I8)
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
        b.cbranch(b.icmp_signed("!=", self.nargs, ir.Constant(_I64, expected)), bad_count, start)
        b.position_at_end(bad_count)
        b.ret(b.call(self.helpers.get("fail_count"), [self.key, self.mode, self.nargs]))
        b.position_at_end(start)

        def arg(i: int) -> ir.Value:
            return b.load(b.gep(self.args, [ir.Constant(_I64, i)], source_etype=_PTR), typ=_PTR)

        # Three phases, so that no Python code runs between reading a segment's address and
        # the call: (1) numbers and booleans, whose conversion may call __index__/__float__;
        # (2) the struct result's memory, whose allocator may run Python code (and, through
        # the garbage collector, finalizers); (3) segments, whose checks run no Python code.
        values: dict[int, list[tuple[ir.Value, ir.Type, tuple[str, ...]]]] = {}
        allocator = capture = None
        allocator_position = 0
        result = sig.result
        for index, param in enumerate(sig.params):
            if param.role == "allocator":
                allocator = arg(index + base)
                allocator_position = index + base
            elif param.passing == "scalar" and param.role != "capture":
                assert param.scalar is not None
                kind = param.scalar
                if kind.carrier != "a":
                    values[index] = [(self.unbox(kind, arg(index + base), index + base),
                                      _c_type(kind), (kind.extension,) if kind.extension else ())]

        segment = result_address = None
        if result.passing in ("pieces", "sret"):
            assert allocator is not None
            segment = b.call(self.helpers.get("allocate"),
                             [allocator, ir.Constant(_I64, result.size),
                              ir.Constant(_I64, result.alignment)])
            with b.if_then(b.icmp_unsigned("==", segment, ir.Constant(_PTR, None)),
                           likely=False):
                b.ret(ir.Constant(_PTR, None))

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
                                                     ir.Constant(_I64, position), value]))
            b.position_at_end(going_on)

        def segment_address(obj: ir.Value, position: int, min_size: int,
                            written: bool = False) -> ir.Value:
            pair = b.call(self.helpers.get("segment"),
                          [obj, ir.Constant(_I64, min_size), ir.Constant(_I1, int(sig.allow_heap)),
                           ir.Constant(_I1, int(written)), self.verified_guard()])
            fail_with_result(b.not_(b.extract_value(pair, 1)), position, obj)
            return b.extract_value(pair, 0)

        if self.bound:
            # ``self`` is the int the runtime bound (a builtin's ``__self__`` cannot be set)
            target = b.inttoptr(self.helpers.address_of(b, self.self_arg)[0], _PTR)
        else:
            first = arg(0)
            target = segment_address(first, 0, -1)
            fail_with_result(b.icmp_unsigned("==", target, ir.Constant(_PTR, None)), 0, first)
        for index, param in enumerate(sig.params):
            position = index + base
            if param.role == "allocator" or index in values:
                continue
            obj = arg(position)
            if param.role == "capture":
                capture = segment_address(obj, position, param.size, written=True)
            elif param.passing == "scalar":  # ADDRESS
                values[index] = [(segment_address(obj, position, -1), _PTR, ())]
            else:
                address = segment_address(obj, position, param.size)
                if param.passing == "pieces":
                    values[index] = [(self.load_piece(address, piece), _piece_type(piece), ())
                                     for piece in param.pieces]
                elif param.passing == "byref":
                    # the callee owns the copy (AAPCS64: larger aggregates by reference)
                    copy = self.temporary(ir.ArrayType(_I8, param.size))
                    self.copy(copy, address, param.size)
                    values[index] = [(copy, _PTR, ())]
                else:
                    alignment = max(8, param.alignment)
                    values[index] = [(address, _PTR,
                                      (f"byval([{param.size} x i8]) align {alignment}",))]

        native: list[tuple[ir.Value, ir.Type, tuple[str, ...]]] = []  # (value, type, attributes)
        variadic_from = None  # index in ``native`` of the first variadic argument
        if segment is not None:
            # (a result segment of a SegmentAllocator written in Python could be anything)
            address_obj = self.helpers.load_field(b, segment, "segment._address")
            fail_with_result(b.icmp_unsigned("==", address_obj, ir.Constant(_PTR, None)),
                             allocator_position, allocator)
            address_value, address_ok = self.helpers.address_of(b, address_obj, remember=False)
            fail_with_result(b.not_(address_ok), allocator_position, allocator)
            result_address = b.inttoptr(address_value, _PTR)
            if result.passing == "sret":
                native.append((result_address, _PTR,
                               (f"sret([{result.size} x i8]) align {max(8, result.alignment)}",)))
        for index, param in enumerate(sig.params):
            if param.role in ("allocator", "capture"):
                continue
            if sig.first_variadic is not None and variadic_from is None \
                    and param.layout_index >= sig.first_variadic:
                variadic_from = len(native)
            native.extend(values[index])
        if sig.first_variadic is not None and variadic_from is None:
            variadic_from = len(native)

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
    if piece.ir == "a2i64":
        return ir.ArrayType(_I64, 2)
    if piece.ir.startswith("a"):
        element = _F32 if piece.ir.endswith("f32") else _F64
        return ir.ArrayType(element, int(piece.ir[1:-3]))
    return ir.IntType(int(piece.ir[1:]))


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
    imports = _Imports(module)
    helpers = _Helpers(imports)
    for sig in signatures:
        symbol = stub_symbol(sig.key)
        _StubBuilder(imports, helpers, sig, symbol + _abi.STUB_BOUND_SUFFIX, bound=True).emit()
        _StubBuilder(imports, helpers, sig, symbol + _abi.STUB_UNBOUND_SUFFIX, bound=False).emit()
    return module
