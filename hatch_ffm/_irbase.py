"""What every piece of native code hatch-ffm generates shares (pure ``llvmlite.ir``).

IR types; :class:`Imports`, the declarations of everything the code may import (see
``ffm_runtime._abi``); and :class:`HelperBase`, the internal functions a module's stubs
and accelerators share: reading fields at the runtime's offsets, reading ints, argument
conversions and segment checks, the error path.
"""

from __future__ import annotations

from typing import ClassVar

from llvmlite import ir

from ffm_runtime import _abi

__all__ = ["F32", "F64", "I1", "I8", "I32", "I64", "PTR", "HelperBase", "Imports", "IndirectCallee"]

PTR = ir.PointerType()
I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F32 = ir.FloatType()
F64 = ir.DoubleType()


class Imports:
    """Declarations of everything a stub may import; see :mod:`ffm_runtime._abi`."""

    def __init__(self, module: ir.Module) -> None:
        self.module = module
        self._functions: dict[str, ir.Function] = {}
        self._globals: dict[str, ir.GlobalVariable] = {}
        self._strings: dict[bytes, ir.GlobalVariable] = {}

    _SIGNATURES: ClassVar[dict[str, tuple[ir.Type, list[ir.Type], bool]]] = {
        "PyLong_AsLongLong": (I64, [PTR], False),
        "PyLong_FromLongLong": (PTR, [I64], False),
        "PyLong_FromUnsignedLongLong": (PTR, [I64], False),
        "PyLong_AsVoidPtr": (PTR, [PTR], False),
        "PyLong_FromVoidPtr": (PTR, [PTR], False),
        "PyFloat_AsDouble": (F64, [PTR], False),
        "PyFloat_FromDouble": (PTR, [F64], False),
        "PyBool_FromLong": (PTR, [I64], False),
        "PyErr_Occurred": (PTR, [], False),
        "PyErr_Clear": (ir.VoidType(), [], False),
        "PyEval_SaveThread": (PTR, [], False),
        "PyEval_RestoreThread": (ir.VoidType(), [PTR], False),
        "PyObject_IsInstance": (I32, [PTR, PTR], False),
        "PyObject_Type": (PTR, [PTR], False),
        "PyObject_GetAttr": (PTR, [PTR, PTR], False),
        "PyObject_CallFunction": (PTR, [PTR, PTR], True),
        "PyObject_CallFunctionObjArgs": (PTR, [PTR], True),
        "PyObject_CallMethodObjArgs": (PTR, [PTR, PTR], True),
        "PyList_GetItem": (PTR, [PTR, I64], False),
        "PyLong_AsUnsignedLong": (I64, [PTR], False),
        "PyThread_get_thread_ident": (I64, [], False),
        "PyLong_AsSsize_t": (I64, [PTR], False),
        "PyLong_FromSsize_t": (PTR, [I64], False),
        "PyType_GenericAlloc": (PTR, [PTR, I64], False),
        "PyTuple_New": (PTR, [I64], False),
        "PyTuple_SetItem": (I32, [PTR, I64, PTR], False),
        "PyTuple_Size": (I64, [PTR], False),
        "PyTuple_GetItem": (PTR, [PTR, I64], False),
        "PyList_New": (PTR, [I64], False),
        "PyList_SetItem": (I32, [PTR, I64, PTR], False),
        "PyList_Size": (I64, [PTR], False),
        "PyList_Append": (I32, [PTR, PTR], False),
        "PyList_SetSlice": (I32, [PTR, I64, I64, PTR], False),
        "Py_IncRef": (ir.VoidType(), [PTR], False),
        "Py_DecRef": (ir.VoidType(), [PTR], False),
        "__errno_location": (PTR, [], False),
        "memset": (PTR, [PTR, I32, I64], False),
        "llvm.memcpy.p0.p0.i64": (ir.VoidType(), [PTR, PTR, I64, I1], False),
        "llvm.fabs.f32": (F32, [F32], False),
        "llvm.fabs.f64": (F64, [F64], False),
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
            kind: ir.Type = I8
            if name in _abi.RUNTIME_CELLS:
                kind = PTR
            elif name == _abi.OFFSETS_SYMBOL:
                kind = ir.ArrayType(I64, len(_abi.OFFSETS))
            var = ir.GlobalVariable(self.module, kind, name)
            var.linkage = "external"
            self._globals[name] = var
        return self._globals[name]

    def cstring(self, text: str) -> ir.GlobalVariable:
        data = text.encode() + b"\0"
        if data not in self._strings:
            array = ir.ArrayType(I8, len(data))
            var = ir.GlobalVariable(self.module, array, f".str.{len(self._strings)}")
            var.global_constant = True
            var.linkage = "private"
            var.unnamed_addr = True
            var.initializer = ir.Constant(array, bytearray(data))
            self._strings[data] = var
        return self._strings[data]


class IndirectCallee:
    """A pointer value seen as a callee of a known type, for an indirect call."""

    def __init__(self, pointer: ir.Value, function_type: ir.FunctionType) -> None:
        self.pointer = pointer
        self.function_type = function_type
        self.type = pointer.type

    def get_reference(self) -> str:
        return str(self.pointer.get_reference())


class HelperBase:
    """Internal functions shared by all the code of a module (stubs, accelerators): reading
    fields and ints, argument conversions and checks, the error path.  Each
    is made once per module, on first use (:meth:`get`), which keeps modules small."""

    def __init__(self, imports: Imports) -> None:
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
        where = b.gep(table, [ir.Constant(I64, 0), ir.Constant(I32, _abi.OFFSETS.index(name))],
                      source_etype=table.value_type)
        return b.gep(obj, [b.load(where, typ=I64)], source_etype=I8)

    def load_field(self, b: ir.IRBuilder, obj: ir.Value, name: str) -> ir.Value:
        """The ``PyObject *`` in field ``name`` of ``obj`` (borrowed; NULL if unset)."""
        return b.load(self.field(b, obj, name), typ=PTR)

    def _make_convert(self, converter: str, name: str) -> ir.Function:
        """``convert_<name>(obj) -> {value, ok}``: ``obj`` through the CPython function
        ``converter``; not ok (the error cleared) if it raised."""
        fn, b = self._function("convert_" + name, ir.LiteralStructType([I64, I1]), [PTR])
        value = self.call(b, converter, fn.args[0])
        with b.if_then(b.icmp_signed("==", value, ir.Constant(I64, -1)), likely=False):
            failed = b.icmp_unsigned("!=", self.call(b, "PyErr_Occurred"),
                                     ir.Constant(PTR, None))
            with b.if_then(failed, likely=False):
                self.call(b, "PyErr_Clear")
                self._pair(b, value, ir.Constant(I1, 0))
        self._pair(b, value, ir.Constant(I1, 1))
        return fn

    def _make_convert_ssize(self) -> ir.Function:
        return self._make_convert("PyLong_AsSsize_t", "ssize")

    def _make_convert_unsigned(self) -> ir.Function:
        return self._make_convert("PyLong_AsUnsignedLong", "unsigned")

    def _converted(self, b: ir.IRBuilder, helper: str,
                   obj: ir.Value) -> tuple[ir.Value, ir.Value]:
        pair = b.call(self.get(helper), [obj])
        return b.extract_value(pair, 0), b.extract_value(pair, 1)

    def address_of(self, b: ir.IRBuilder, obj: ir.Value) -> tuple[ir.Value, ir.Value]:
        """``(value, ok)``: an address field's value, an int in ``[0, 2**64)`` (not ok, the
        error cleared, for anything else: a negative int is no address)."""
        return self._converted(b, "convert_unsigned", obj)

    def ssize_of(self, b: ir.IRBuilder, obj: ir.Value) -> tuple[ir.Value, ir.Value]:
        """``(value, ok)``: an int field's value as ``PyLong_AsSsize_t`` gives it (not ok, the
        error cleared, if it raised)."""
        return self._converted(b, "convert_ssize", obj)

    def unsigned_of(self, b: ir.IRBuilder, obj: ir.Value) -> tuple[ir.Value, ir.Value]:
        """``(value, ok)``: an int's value as ``PyLong_AsUnsignedLong`` gives it (not ok, the
        error cleared, if it raised)."""
        return self._converted(b, "convert_unsigned", obj)

    def _make_fail(self) -> ir.Function:
        """``fail(key, mode, position, value)``: clear the error, let ``arg_error`` raise."""
        fn, b = self._function("fail", PTR, [PTR, PTR, I64, PTR], cold=True)
        key, mode, position, value = fn.args
        self.call(b, "PyErr_Clear")
        cell = b.load(self.imports.data(_abi.CELL_ARG_ERROR), typ=PTR)
        result = self.call(b, "PyObject_CallFunction", cell, self.imports.cstring("ssnO"), key,
                           mode, position, value)
        with b.if_then(b.icmp_unsigned("!=", result, ir.Constant(PTR, None))):
            self.call(b, "Py_DecRef", result)
        b.ret(ir.Constant(PTR, None))
        return fn

    def _make_fail_count(self) -> ir.Function:
        fn, b = self._function("fail_count", PTR, [PTR, PTR, I64], cold=True)
        key, mode, nargs = fn.args
        cell = b.load(self.imports.data(_abi.CELL_ARG_ERROR), typ=PTR)
        result = self.call(b, "PyObject_CallFunction", cell, self.imports.cstring("ssnn"), key,
                           mode, ir.Constant(I64, -1), nargs)
        with b.if_then(b.icmp_unsigned("!=", result, ir.Constant(PTR, None))):
            self.call(b, "Py_DecRef", result)
        b.ret(ir.Constant(PTR, None))
        return fn

    @staticmethod
    def _pair(b: ir.IRBuilder, value: ir.Value, ok: ir.Value) -> None:
        pair = ir.LiteralStructType([value.type, I1])
        b.ret(b.insert_value(b.insert_value(ir.Constant(pair, ir.Undefined), value, 0), ok, 1))

    def _make_int(self) -> ir.Function:
        """``int(obj, low, high) -> {i64, ok}``: an int in ``[low, high]``."""
        fn, b = self._function("int", ir.LiteralStructType([I64, I1]), [PTR, I64, I64])
        obj, low, high = fn.args
        value = self.call(b, "PyLong_AsLongLong", obj)
        with b.if_then(b.icmp_signed("==", value, ir.Constant(I64, -1)), likely=False):
            failed = b.icmp_unsigned("!=", self.call(b, "PyErr_Occurred"), ir.Constant(PTR, None))
            with b.if_then(failed, likely=False):
                self._pair(b, value, ir.Constant(I1, 0))
        inside = b.and_(b.icmp_signed(">=", value, low), b.icmp_signed("<=", value, high))
        self._pair(b, value, inside)
        return fn

    def _make_double(self) -> ir.Function:
        fn, b = self._function("double", ir.LiteralStructType([F64, I1]), [PTR])
        value = self.call(b, "PyFloat_AsDouble", fn.args[0])
        with b.if_then(b.fcmp_ordered("==", value, ir.Constant(F64, -1.0)), likely=False):
            failed = b.icmp_unsigned("!=", self.call(b, "PyErr_Occurred"), ir.Constant(PTR, None))
            with b.if_then(failed, likely=False):
                self._pair(b, value, ir.Constant(I1, 0))
        self._pair(b, value, ir.Constant(I1, 1))
        return fn

    def _make_float(self) -> ir.Function:
        """``float(obj) -> {float, ok}``: finite doubles beyond float's range are refused."""
        fn, b = self._function("float", ir.LiteralStructType([F32, I1]), [PTR])
        pair = b.call(self.get("double"), [fn.args[0]])
        value, ok = b.extract_value(pair, 0), b.extract_value(pair, 1)
        narrow = b.fptrunc(value, F32)
        inf32 = b.fcmp_ordered("==", self.call(b, "llvm.fabs.f32", narrow),
                               ir.Constant(F32, float("inf")))
        inf64 = b.fcmp_ordered("==", self.call(b, "llvm.fabs.f64", value),
                               ir.Constant(F64, float("inf")))
        self._pair(b, narrow, b.and_(ok, b.not_(b.and_(inf32, b.not_(inf64)))))
        return fn

    def _make_bool(self) -> ir.Function:
        fn, b = self._function("bool", ir.LiteralStructType([I8, I1]), [PTR])
        obj = fn.args[0]
        is_true = b.icmp_unsigned("==", obj, self.imports.data("_Py_TrueStruct"))
        is_false = b.icmp_unsigned("==", obj, self.imports.data("_Py_FalseStruct"))
        self._pair(b, b.zext(is_true, I8), b.or_(is_true, is_false))
        return fn

    def _unless_unset(self, b: ir.IRBuilder, obj: ir.Value, *names: str,
                      drop: ir.Value | None = None) -> None:
        """Return NULL (no error: "not here") if any of these fields of ``obj`` is unset, as
        in an object made with ``object.__new__`` (Python then raises AttributeError),
        dropping ``drop`` (a still empty new segment) first."""
        unset = ir.Constant(I1, 0)
        for name in names:
            unset = b.or_(unset, b.icmp_unsigned("==", self.load_field(b, obj, name),
                                                 ir.Constant(PTR, None)))
        self._give_up_if(b, unset, drop)

    def _give_up_if(self, b: ir.IRBuilder, condition: ir.Value, drop: ir.Value | None) -> None:
        """If ``condition``: drop ``drop`` (if any) and return NULL without an error."""
        with b.if_then(condition, likely=False):
            if drop is not None:
                self.call(b, "Py_DecRef", drop)  # unset fields are NULL: dealloc skips them
            b.ret(ir.Constant(PTR, None))

    def _owned_here(self, b: ir.IRBuilder, guard: ir.Value) -> ir.Value:
        """Whether ``guard`` (a confinement list, or None) lets this thread in (runs no Python
        code; clears the error of a malformed guard)."""
        null = ir.Constant(PTR, None)
        result = b.alloca(I1)
        b.store(ir.Constant(I1, 1), result)
        with b.if_then(b.icmp_unsigned("!=", guard, self.imports.data("_Py_NoneStruct"))):
            owner = self.call(b, "PyList_GetItem", guard, ir.Constant(I64, 0))
            with b.if_else(b.icmp_unsigned("==", owner, null), likely=False) as (broken, fine):
                with broken:
                    self.call(b, "PyErr_Clear")
                    b.store(ir.Constant(I1, 0), result)
                with fine:
                    current = self.call(b, "PyThread_get_thread_ident")
                    owner_value, known = self.unsigned_of(b, owner)
                    b.store(b.and_(known, b.icmp_unsigned("==", owner_value, current)), result)
        return b.load(result)

    def _size_of(self, b: ir.IRBuilder, obj: ir.Value) -> ir.Value:
        """An ``int`` size field's value; beyond ``Py_ssize_t`` it reads as the largest one."""
        value, ok = self.ssize_of(b, obj)
        return b.select(ok, value, ir.Constant(I64, 2**63 - 1))

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
        fn, b = self._function("segment", ir.LiteralStructType([PTR, I1]),
                               [PTR, I64, I1, I1, PTR], inline=False)
        obj, min_size, allow_heap, written, verified = fn.args
        null = ir.Constant(PTR, None)
        fail = fn.append_basic_block("fail")
        obj_type = self.load_field(b, obj, "ob_type")
        seg_type = b.load(self.imports.data(_abi.CELL_SEGMENT_TYPE), typ=PTR)
        with b.if_then(b.icmp_unsigned("!=", obj_type, seg_type), likely=False):
            confined_type = b.load(self.imports.data(_abi.CELL_CONFINED_TYPE), typ=PTR)
            with b.if_else(b.icmp_unsigned("==", obj_type, confined_type)) as (then, otherwise):
                with then:
                    guard = self.load_field(b, obj, "segment._guard")
                    checked = fn.append_basic_block("guard")
                    b.cbranch(b.icmp_unsigned("==", guard, null), fail, checked)
                    b.position_at_end(checked)
                    known = fn.append_basic_block("known")
                    unknown = fn.append_basic_block("unknown")
                    b.cbranch(b.icmp_unsigned("==", guard, b.load(verified, typ=PTR)), known,
                              unknown)
                    b.position_at_end(unknown)
                    owner_obj = self.call(b, "PyList_GetItem", guard, ir.Constant(I64, 0))
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
                    heap_type = b.load(self.imports.data(_abi.CELL_HEAP_TYPE), typ=PTR)
                    heap_ok = b.and_(allow_heap, b.icmp_unsigned("==", obj_type, heap_type))
                    allowed = fn.append_basic_block("heap")
                    b.cbranch(heap_ok, allowed, fail)
                    b.position_at_end(allowed)
        raw = self.load_field(b, obj, "segment._address")
        got = fn.append_basic_block("address")
        b.cbranch(b.icmp_unsigned("==", raw, null), fail, got)
        b.position_at_end(got)
        address_value, address_ok = self.address_of(b, raw)
        address = b.inttoptr(address_value, PTR)
        converted = fn.append_basic_block("converted")
        b.cbranch(address_ok, converted, fail)
        b.position_at_end(converted)
        with b.if_then(written, likely=False):
            low = self.load_field(b, obj, "segment._align")
            readable = fn.append_basic_block("readable")
            b.cbranch(b.icmp_unsigned("==", low, null), fail, readable)
            b.position_at_end(readable)
            low_value, low_ok = self.ssize_of(b, low)
            read_only = b.and_(low_value, ir.Constant(I64, _abi.SEGMENT_READ_ONLY_BIT))
            writable = fn.append_basic_block("writable")
            b.cbranch(b.or_(b.not_(low_ok), b.icmp_unsigned("!=", read_only, ir.Constant(
                I64, 0))), fail, writable)
            b.position_at_end(writable)
        with b.if_then(b.icmp_signed(">=", min_size, ir.Constant(I64, 0))):
            size_obj = self.load_field(b, obj, "segment._size")
            sized = fn.append_basic_block("sized")
            b.cbranch(b.icmp_unsigned("==", size_obj, null), fail, sized)
            b.position_at_end(sized)
            size = self._size_of(b, size_obj)
            large = fn.append_basic_block("large")
            b.cbranch(b.icmp_signed("<", size, min_size), fail, large)
            b.position_at_end(large)
        self._pair(b, address, ir.Constant(I1, 1))
        b.position_at_end(fail)
        self.call(b, "PyErr_Clear")  # a failed lookup of a tampered field: the caller reports
        self._pair(b, null, ir.Constant(I1, 0))
        return fn
