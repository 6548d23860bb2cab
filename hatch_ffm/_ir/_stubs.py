"""Downcall stubs: lowered call shapes to LLVM IR.

Each stub is a ``METH_FASTCALL`` function ``PyObject *(PyObject *self, PyObject
*const *args, Py_ssize_t nargs)``.  It checks the argument count, converts each argument
with CPython Stable ABI calls (range-checking narrow integers and floats), releases the GIL
unless the shape is critical, calls the target, and boxes the result.  On a bad argument it
calls the runtime's ``arg_error`` cell, which raises a precise exception.

The bound variant (``_b``) reads the target address from ``self`` (a Python int); the
unbound variant (``_u``) takes it from a ``MemorySegment`` passed as the first argument.
Both are one function under two names (``_u`` is an alias): the runtime makes an unbound
handle with ``self`` NULL, which the stub tests once, at its start.

A stub works in phases, so that no Python code runs between reading a segment's address and
the call: (1) numbers and booleans, whose conversion may call ``__index__``/``__float__``;
(2) the struct result's memory, whose allocator may run Python code (and, through the
garbage collector, finalizers); (3) segments, whose checks run no Python code; (4) the
call; (5) the result.

Segments of a shared arena (and the target of a handle bound to a symbol of a shared
arena's library) are acquired for the call when it releases the GIL: one item appended to
the arena's guard before the GIL goes, one removed when it is back, so another thread's
``close()`` is refused meanwhile (see ``ffm_runtime._contract``, section 4).  Confined
arenas' guards get the same item (a pin): the function may call back into Python on this
thread (an upcall), whose ``close()`` must be refused as well, as in Java.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from llvmlite import ir

from ffm_runtime import _contract
from ffm_runtime._manifest import stub_symbol

from .._lowering import Extension, Form, LoweredSignature, LoweredUpcall, Passing, Piece, Returning, Role
from ._fast import FastBuilder, FastFunction
from ._helpers import Helpers
from ._idioms import is_null, return_pair
from ._model import IntRead
from ._reuse import helper_function
from ._types import (
    I1,
    I8,
    I32,
    I64,
    NULL,
    PTR,
    VOID,
    IndirectCallee,
    RawAttributes,
    i64,
    piece_type,
    scalar_type,
    store_size,
)
from ._upcalls import Upcalls

__all__ = ["StubModule", "build_stubs", "stub_symbol"]

_STUB_TYPE = ir.FunctionType(PTR, [PTR, PTR, I64])


class _Argument(NamedTuple):
    """One argument of the native call."""

    value: ir.Value
    type: ir.Type
    #: parameter attributes (``signext``, ``byval(...)``)
    attributes: tuple[str, ...] = ()


class StubModule:
    """An LLVM module of stubs, and the helpers they share."""

    def __init__(self, triple: str) -> None:
        self.helpers = Helpers.for_module("hatch_ffm_stubs", triple)
        self.imports = self.helpers.imports
        self.imports.owners[StubModule] = self
        self.module = self.helpers.module

    def add(self, sig: LoweredSignature, symbol: str) -> None:
        """Both variants of the stub for ``sig``: ``symbol`` plus the bound and unbound
        suffixes, one function under two names (it tells them apart by ``self``)."""
        stub = _Stub(self, sig, symbol + _contract.STUB_BOUND_SUFFIX)
        stub.emit()
        _Alias(self.module, symbol + _contract.STUB_UNBOUND_SUFFIX, stub.fn)

    @helper_function
    def fail(self) -> ir.Function:
        """``fail(key, mode, position, value)``: clear the error, let ``arg_error`` raise."""
        fn, b = self.helpers.idioms.helper("fail", PTR, [PTR, PTR, I64, PTR], cold=True)
        key, mode, position, value = fn.args
        imports = self.helpers.imports
        imports.call(b, "PyErr_Clear")
        result = imports.call(
            b,
            "PyObject_CallFunction",
            imports.cell(b, _contract.CELL_ARG_ERROR),
            imports.cstring("ssnO"),
            key,
            mode,
            position,
            value,
        )
        imports.call(b, "Py_DecRef", result)  # (it always raises: NULL)
        b.ret(NULL)
        return fn

    @helper_function
    def acquire(self) -> ir.Function:
        """``acquire(guard) -> i32``: append one acquisition to a shared arena's guard (or
        a pin to a confined arena's: one item too) and keep a reference to it; nonzero (an
        error set) if that failed.  ``guard`` NULL: 0."""
        fn, b = self.helpers.idioms.helper("acquire", I32, [PTR])
        (guard,) = fn.args
        imports = self.helpers.imports
        with b.if_then(is_null(b, guard)):
            b.ret(ir.Constant(I32, 0))
        failed = imports.call(b, "PyList_Append", guard, imports.cell(b, _contract.CELL_SHARED_MARK))
        with b.if_then(b.icmp_signed("==", failed, ir.Constant(I32, 0)), likely=True):
            imports.call(b, "Py_IncRef", guard)
        b.ret(failed)
        return fn

    @helper_function
    def release(self) -> ir.Function:
        """``release(guard)``: remove one acquisition (any: they are alike) from a shared
        arena's guard and drop the reference :meth:`acquire` took.  ``guard`` NULL: nothing.
        Runs no Python code (what it drops are ints, and maybe the list of them)."""
        fn, b = self.helpers.idioms.helper("release", VOID, [PTR])
        (guard,) = fn.args
        imports = self.helpers.imports
        with b.if_then(is_null(b, guard)):
            b.ret_void()
        count = imports.call(b, "PyList_Size", guard)
        with b.if_then(b.icmp_signed(">", count, i64(1)), likely=True):
            # as list.pop() does, keeping the list's capacity for the next acquisition (a
            # PyList_SetSlice would shrink and grow it again on every call)
            last = b.sub(count, i64(1))
            item = imports.call(b, "PyList_GetItem", guard, last)
            b.store(last, self.helpers.model.field(b, guard, "list.ob_size"))
            imports.call(b, "Py_DecRef", item)
        imports.call(b, "Py_DecRef", guard)
        b.ret_void()
        return fn

    @helper_function
    def scoped_target(self) -> ir.Function:
        """``scoped_target(self, slot) -> {i64, i1}``: the target of a bound handle whose
        ``self`` is the tuple ``(address, guard, arena)`` of a symbol of a library an arena
        unloads (``SymbolLookup.library_lookup``): the arena must be usable here; its guard
        goes into ``slot`` to be acquired for the call (a shared arena's, so the library
        stays loaded; a confined arena's, pinned: a callback must not unload it while its
        code runs).  The tuple keeps the arena, and so an automatic arena's library, alive.
        Not ok: the handle's ``self`` is unusable (the caller reports it)."""
        fn, b = self.helpers.idioms.helper("scoped_target", ir.LiteralStructType([I64, I1]), [PTR, PTR])
        self_arg, slot = fn.args
        model, imports = self.helpers.model, self.helpers.imports
        fail = fn.append_basic_block("fail")
        number = imports.call(b, "PyTuple_GetItem", self_arg, i64(0))
        guard = imports.call(b, "PyTuple_GetItem", self_arg, i64(1))
        read = fn.append_basic_block("read")
        b.cbranch(b.or_(is_null(b, number), is_null(b, guard)), fail, read)
        b.position_at_end(read)
        address, ok = model.read_int(b, number, IntRead.UNSIGNED)
        checked = fn.append_basic_block("checked")
        b.cbranch(b.not_(ok), fail, checked)
        b.position_at_end(checked)
        with b.if_else(model.is_open_shared(b, guard)) as (shared, other):
            with shared:
                b.store(guard, slot)
            with other:
                owned = fn.append_basic_block("owned")
                b.cbranch(b.not_(model.owned_here(b, guard)), fail, owned)
                b.position_at_end(owned)
                none = imports.data("_Py_NoneStruct")
                with b.if_then(b.icmp_unsigned("!=", guard, none)):
                    b.store(guard, slot)
        return_pair(b, address, ir.Constant(I1, 1))
        b.position_at_end(fail)
        return_pair(b, i64(0), ir.Constant(I1, 0))
        return fn

    @helper_function
    def result_address(self) -> ir.Function:
        """``result_address(segment, slot) -> {ptr, i1}``: the address of a struct result's
        segment (which a ``SegmentAllocator`` written in Python could have made anything);
        a shared arena's memory must be open now (Python code ran since it was allocated),
        a confined arena's this thread's, and its guard goes into ``slot``, acquired while
        the callee (or, after it, the stub) writes it (a callback of the callee runs Python
        code on this thread, which must not close it meanwhile).  Not ok: the segment is
        unusable (the caller reports the allocator)."""
        fn, b = self.helpers.idioms.helper("result_address", ir.LiteralStructType([PTR, I1]), [PTR, PTR])
        segment, slot = fn.args
        model, imports = self.helpers.model, self.helpers.imports
        fail = fn.append_basic_block("fail")
        raw = model.load_field(b, segment, "segment._address")
        read = fn.append_basic_block("read")
        b.cbranch(is_null(b, raw), fail, read)
        b.position_at_end(read)
        address, ok = model.read_int(b, raw, IntRead.UNSIGNED)
        checked = fn.append_basic_block("checked")
        b.cbranch(b.not_(ok), fail, checked)
        b.position_at_end(checked)
        kind = model.type_of(b, segment)
        shared_kind = imports.cell(b, _contract.CELL_SHARED_TYPE)
        confined_kind = imports.cell(b, _contract.CELL_CONFINED_TYPE)
        with b.if_then(b.icmp_unsigned("==", kind, shared_kind), likely=False):
            guard = model.load_field(b, segment, "segment._guard")
            is_open = fn.append_basic_block("open")
            b.cbranch(b.not_(model.is_open_shared(b, guard)), fail, is_open)
            b.position_at_end(is_open)
            b.store(guard, slot)
        with b.if_then(b.icmp_unsigned("==", kind, confined_kind)):
            guard = model.load_field(b, segment, "segment._guard")
            usable = b.and_(
                b.not_(is_null(b, guard)),
                b.icmp_unsigned("!=", guard, imports.data("_Py_NoneStruct")),
            )
            present = fn.append_basic_block("present")
            b.cbranch(b.not_(usable), fail, present)
            b.position_at_end(present)
            owned = fn.append_basic_block("owned")
            b.cbranch(b.not_(model.owned_here(b, guard)), fail, owned)
            b.position_at_end(owned)
            b.store(guard, slot)
        return_pair(b, b.inttoptr(address, PTR), ir.Constant(I1, 1))
        b.position_at_end(fail)
        return_pair(b, NULL, ir.Constant(I1, 0))
        return fn

    @helper_function
    def critical_upcall(self) -> ir.Function:
        """``critical_upcall(key) -> NULL``: raise the error of a critical downcall whose
        function called back into Python (the upcall was refused)."""
        fn, b = self.helpers.idioms.helper("critical_upcall", PTR, [PTR], cold=True)
        imports = self.helpers.imports
        error = imports.cell(b, _contract.CELL_CRITICAL_UPCALL)
        imports.call(
            b, "Py_DecRef", imports.call(b, "PyObject_CallFunction", error, imports.cstring("s"), fn.args[0])
        )
        b.ret(NULL)
        return fn

    @helper_function
    def fail_count(self) -> ir.Function:
        """``fail_count(key, mode, nargs)``: let ``arg_error`` raise for the argument count."""
        fn, b = self.helpers.idioms.helper("fail_count", PTR, [PTR, PTR, I64], cold=True)
        key, mode, nargs = fn.args
        imports = self.helpers.imports
        result = imports.call(
            b,
            "PyObject_CallFunction",
            imports.cell(b, _contract.CELL_ARG_ERROR),
            imports.cstring("ssnn"),
            key,
            mode,
            i64(-1),
            nargs,
        )
        imports.call(b, "Py_DecRef", result)  # (it always raises: NULL)
        b.ret(NULL)
        return fn


class _Alias(ir.GlobalValue):  # type: ignore[misc]  # (llvmlite is untyped)
    """Another name of a function (llvmlite has no aliases)."""

    def __init__(self, module: ir.Module, name: str, function: ir.Function) -> None:
        super().__init__(module, function.type, name=name)
        self.function = function
        module.add_global(self)

    def __str__(self) -> str:
        function = self.function
        return f"{self.get_reference()} = alias {function.function_type}, ptr {function.get_reference()}"


class _Stub:
    """One stub, both variants, emitted phase by phase (see the module docstring): a bound
    handle's ``self`` is its target, an unbound handle's is NULL (its target is the first
    argument, and the arguments of the shape come after it)."""

    def __init__(self, stubs: StubModule, sig: LoweredSignature, name: str) -> None:
        self.stubs = stubs
        self.helpers = stubs.helpers
        self.imports = stubs.helpers.imports
        self.sig = sig
        self.fn = FastFunction(self.imports.module, _STUB_TYPE, name)
        self.fn.attributes.add("nounwind")
        self.self_arg, self.args, self.nargs = self.fn.args
        self.b = FastBuilder(self.fn.append_basic_block("entry"))
        self.key = self.imports.cstring(sig.key)
        b = self.b
        self.unbound = is_null(b, self.self_arg)
        #: Python argument position of ``sig.params[0]`` (0 bound, 1 unbound)
        self.base = b.zext(self.unbound, I64)
        self.mode = b.select(self.unbound, self.imports.cstring("u"), self.imports.cstring("b"))
        #: where ``sig.params``' arguments start
        self.params = b.gep(self.args, [self.base], source_etype=PTR)
        #: native arguments by index in ``sig.params``
        self.values: dict[int, list[_Argument]] = {}
        self.allocator: ir.Value | None = None
        self.allocator_position = 0
        self.result_segment: ir.Value | None = None
        self.result_address: ir.Value | None = None
        self.target: ir.Value | None = None
        self.capture: ir.Value | None = None
        self._verified: ir.Value | None = None
        #: stack slots of the shared and confined arenas' guards to acquire for the call
        #: (NULL: none)
        self._shared: list[ir.Value] = []

    def emit(self) -> None:
        self._check_count()
        self._convert_numbers()
        self._allocate_result()
        self._check_segments()
        self._box(self._call())

    # -- phases -----------------------------------------------------------------------------
    def _check_count(self) -> None:
        b = self.b
        expected = b.add(self.base, i64(len(self.sig.params)))
        bad_count = self.fn.append_basic_block("bad_count")
        start = self.fn.append_basic_block("start")
        b.cbranch(b.icmp_signed("!=", self.nargs, expected), bad_count, start)
        b.position_at_end(bad_count)
        b.ret(b.call(self.stubs.fail_count, [self.key, self.mode, self.nargs]))
        b.position_at_end(start)

    def _convert_numbers(self) -> None:
        """Phase 1: numbers and booleans (any Python code may run)."""
        for index, param in enumerate(self.sig.params):
            kind = param.scalar
            if param.passing is not Passing.SCALAR or kind is None or kind.form is Form.ADDRESS:
                continue
            obj = self._arg(index)
            value, ok = self.helpers.numbers.unbox(self.b, kind, obj)
            self._fail_if(self.b.not_(ok), index, obj)
            extension = () if kind.extension is Extension.NONE else (kind.extension.value,)
            self.values[index] = [_Argument(value, scalar_type(kind), extension)]

    def _allocate_result(self) -> None:
        """Phase 2: the struct result's segment (any Python code may run)."""
        for index, param in enumerate(self.sig.params):
            if param.role is Role.ALLOCATOR:
                self.allocator_position = index
                self.allocator = self._arg(self.allocator_position)
        result = self.sig.result
        if result.passing not in (Returning.PIECES, Returning.SRET):
            return
        assert self.allocator is not None, "lowering adds an allocator for struct results"
        b = self.b
        segment = self.helpers.alloc.allocate(b, self.allocator, result.size, result.alignment)
        with b.if_then(is_null(b, segment), likely=False):
            b.ret(NULL)
        self.result_segment = segment

    def _check_segments(self) -> None:
        """Phase 3: the target, segment arguments and the result's address (no Python code
        runs from here to the call)."""
        b = self.b
        slot = self._shared_slot()
        bound = self.fn.append_basic_block("bound_target")
        unbound = self.fn.append_basic_block("unbound_target")
        done = self.fn.append_basic_block("target")
        b.cbranch(self.unbound, unbound, bound)
        b.position_at_end(bound)
        bound_target = b.inttoptr(self._bound_target(slot), PTR)
        bound = b.block
        b.branch(done)
        b.position_at_end(unbound)
        first = b.load(self.args, typ=PTR)
        unbound_target = self._segment_address(first, i64(0), -1, slot=slot)
        self._fail_if(is_null(b, unbound_target), i64(0), first)
        unbound = b.block
        b.branch(done)
        b.position_at_end(done)
        target = b.phi(PTR)
        target.add_incoming(bound_target, bound)
        target.add_incoming(unbound_target, unbound)
        self.target = target
        for index, param in enumerate(self.sig.params):
            position = index
            if param.role is Role.ALLOCATOR or index in self.values:
                continue
            obj = self._arg(position)
            if param.role is Role.CAPTURE:
                self.capture = self._segment_address(obj, position, param.size, written=True)
            elif param.passing is Passing.SCALAR:  # ADDRESS
                self.values[index] = [_Argument(self._segment_address(obj, position, -1), PTR)]
            elif param.passing is Passing.PIECES:
                address = self._segment_address(obj, position, param.size)
                self.values[index] = [
                    _Argument(self._load_piece(address, piece), piece_type(piece.type))
                    for piece in param.pieces
                ]
            elif param.passing is Passing.BYREF:
                address = self._segment_address(obj, position, param.size)
                # the callee owns the copy (AAPCS64: larger aggregates by reference)
                copy = self._temporary(ir.ArrayType(I8, param.size))
                self._copy(copy, address, param.size)
                self.values[index] = [_Argument(copy, PTR)]
            else:
                address = self._segment_address(obj, position, param.size)
                alignment = max(8, param.alignment)
                self.values[index] = [
                    _Argument(address, PTR, (f"byval([{param.size} x i8]) align {alignment}",))
                ]
        if self.result_segment is not None:
            pair = b.call(self.stubs.result_address, [self.result_segment, self._shared_slot()])
            self.result_address = b.extract_value(pair, 0)
            self._fail_if(b.not_(b.extract_value(pair, 1)), self.allocator_position, self.allocator)

    def _call(self) -> ir.Instruction:
        """Phase 4: the native call, without the GIL unless critical; ``errno`` right
        after it."""
        b = self.b
        native, variadic_from = self._native_arguments()
        c_type = ir.FunctionType(
            self._c_result(), [a.type for a in native[:variadic_from]], var_arg=variadic_from is not None
        )
        if not self.sig.keeps_gil:
            self._acquire_shared()
        state = None if self.sig.keeps_gil else self.imports.call(b, "PyEval_SaveThread")
        critical = self.imports.critical_word() if self.sig.keeps_gil else None
        if critical is not None:
            outer = b.load(critical, typ=I64)  # (0: a critical function cannot call another)
            b.store(i64(1), critical)
        call = b.call(IndirectCallee(self.target, c_type), [a.value for a in native])
        for position, argument in enumerate(native):
            if argument.attributes:
                call.arg_attributes[position] = RawAttributes(argument.attributes)
        if self.capture is not None:
            # errno right after the call: before the GIL (or anything else) can touch it
            location = self.imports.call(b, "__errno_location")
            b.store(b.load(location, typ=I32), self.capture, align=1)
        if critical is not None:
            refused = b.icmp_unsigned("==", b.load(critical, typ=I64), i64(2))
            b.store(outer, critical)
            with b.if_then(refused, likely=False):
                if self.result_segment is not None:
                    self.imports.call(b, "Py_DecRef", self.result_segment)
                b.ret(b.call(self.stubs.critical_upcall, [self.key]))
        if state is not None:
            self.imports.call(b, "PyEval_RestoreThread", state)
            for slot in self._shared:
                b.call(self.stubs.release, [b.load(slot, typ=PTR)])
        return call

    def _box(self, call: ir.Instruction) -> None:
        """Phase 5: the result as a Python object."""
        b, result = self.b, self.sig.result
        if result.passing is Returning.PIECES:
            assert self.result_address is not None and self.result_segment is not None
            if len(result.pieces) == 1:
                self._store_piece(self.result_address, result.pieces[0], call)
            else:
                for index, piece in enumerate(result.pieces):
                    self._store_piece(self.result_address, piece, b.extract_value(call, index))
            b.ret(self.result_segment)
        elif result.passing is Returning.SRET:
            assert self.result_segment is not None
            b.ret(self.result_segment)
        elif result.passing is Returning.VOID:
            b.ret(self.helpers.idioms.new_none(b))
        else:
            kind = result.scalar
            assert kind is not None
            if kind.form is Form.ADDRESS:
                # as _handles.result_segment, natively: no Python call
                b.ret(self.helpers.alloc.address_result(b, b.ptrtoint(call, I64), i64(result.target_size)))
            else:
                b.ret(self.helpers.numbers.box(b, kind, call))

    # -- pieces of the phases ---------------------------------------------------------------
    def _native_arguments(self) -> tuple[list[_Argument], int | None]:
        """The native call's arguments, and the index of the first variadic one (``None``:
        not variadic)."""
        sig, result = self.sig, self.sig.result
        native: list[_Argument] = []
        if result.passing is Returning.SRET:
            native.append(
                _Argument(
                    self.result_address,
                    PTR,
                    (f"sret([{result.size} x i8]) align {max(8, result.alignment)}",),
                )
            )
        variadic_from = None
        for index, param in enumerate(sig.params):
            if param.role is not Role.VALUE:
                continue
            if (
                variadic_from is None
                and sig.first_variadic is not None
                and param.layout_index >= sig.first_variadic
            ):
                variadic_from = len(native)
            native.extend(self.values[index])
        if sig.first_variadic is not None and variadic_from is None:
            variadic_from = len(native)
        return native, variadic_from

    def _arg(self, index: int) -> ir.Value:
        """The argument for ``sig.params[index]``."""
        b = self.b
        return b.load(b.gep(self.params, [i64(index)], source_etype=PTR), typ=PTR)

    def _fail_if(self, condition: ir.Value, position: int | ir.Value, value: ir.Value) -> None:
        """If ``condition``, drop the result segment (if made) and let ``arg_error`` report
        the argument for ``sig.params[position]``, or at the Python ``position`` given as a
        constant (-2: ``self``), whose value is ``value``."""
        b = self.b
        failing = self.fn.append_basic_block(f"fail{position if isinstance(position, int) else ''}")
        going_on = self.fn.append_basic_block(f"ok{position if isinstance(position, int) else ''}")
        b.cbranch(condition, failing, going_on)
        b.position_at_end(failing)
        if self.result_segment is not None:
            self.imports.call(b, "Py_DecRef", self.result_segment)
        where = b.add(self.base, i64(position)) if isinstance(position, int) else position
        b.ret(b.call(self.stubs.fail, [self.key, self.mode, where, value]))
        b.position_at_end(going_on)

    def _segment_address(
        self,
        obj: ir.Value,
        position: int | ir.Value,
        min_size: int,
        written: bool = False,
        slot: ir.Value | None = None,
    ) -> ir.Value:
        address, ok = self.helpers.model.check_segment(
            self.b,
            obj,
            min_size,
            self.sig.allow_heap,
            written,
            self._verified_guard(),
            self._shared_slot() if slot is None else slot,
        )
        self._fail_if(self.b.not_(ok), position, obj)
        return address

    def _bound_target(self, slot: ir.Value) -> ir.Value:
        """The target of a bound handle (an i64): ``self`` is the int the runtime bound (a
        builtin's ``__self__`` cannot be set), read here; or, for a symbol of a library an
        arena unloads, a tuple, which :attr:`StubModule.scoped_target` reads (and puts the
        arena's guard in ``slot``)."""
        b, model = self.b, self.helpers.model
        plain = self.fn.append_basic_block("plain_target")
        scoped = self.fn.append_basic_block("scoped_target")
        done = self.fn.append_basic_block("bound_target_read")
        b.cbranch(model.is_exact(b, self.self_arg, "PyTuple_Type"), scoped, plain)
        b.position_at_end(plain)
        plain_address, _ = model.read_int(b, self.self_arg, IntRead.UNSIGNED)
        plain = b.block
        b.branch(done)
        b.position_at_end(scoped)
        pair = b.call(self.stubs.scoped_target, [self.self_arg, slot])
        address, ok = b.extract_value(pair, 0), b.extract_value(pair, 1)
        self._fail_if(b.not_(ok), i64(-2), self.self_arg)
        checked = b.block
        b.branch(done)
        b.position_at_end(done)
        target = b.phi(I64)
        target.add_incoming(plain_address, plain)
        target.add_incoming(address, checked)
        return target

    def _shared_slot(self) -> ir.Value:
        """A new stack slot (NULL at first) for a shared or confined arena's guard to
        acquire."""
        with self.b.goto_entry_block():
            slot = self.b.alloca(PTR)
            self.b.store(NULL, slot)
        self._shared.append(slot)
        return slot

    def _acquire_shared(self) -> None:
        """Acquire the arenas' guards the checks found, before the GIL goes; if one
        cannot be (no memory), give back those acquired and fail (one way out for all:
        ``undo<i>`` releases slot ``i`` and goes on to ``undo<i-1>``)."""
        b = self.b
        if not self._shared:
            return
        undo = [self.fn.append_basic_block(f"undo{index}") for index in range(len(self._shared))]
        for index, slot in enumerate(self._shared):
            failed = b.call(self.stubs.acquire, [b.load(slot, typ=PTR)])
            going_on = self.fn.append_basic_block(f"acquired{index}")
            branch = b.cbranch(b.icmp_signed("!=", failed, ir.Constant(I32, 0)), undo[index], going_on)
            branch.set_weights([1, 99])
            b.position_at_end(going_on)
        after = b.block
        # undo<i>: slot i failed or was acquired: release those before it
        for index, block in enumerate(undo):
            b.position_at_end(block)
            if index > 0:
                b.call(self.stubs.release, [b.load(self._shared[index - 1], typ=PTR)])
                b.branch(undo[index - 1])
            else:
                if self.result_segment is not None:
                    self.imports.call(b, "Py_DecRef", self.result_segment)
                b.ret(NULL)
        b.position_at_end(after)

    def _verified_guard(self) -> ir.Value:
        """The stack slot for the guard this call's segment checks verified (NULL at first)."""
        if self._verified is None:
            with self.b.goto_entry_block():
                self._verified = self.b.alloca(PTR)
                self.b.store(NULL, self._verified)
        return self._verified

    def _c_result(self) -> ir.Type:
        result = self.sig.result
        if result.passing is Returning.SCALAR:
            assert result.scalar is not None
            return scalar_type(result.scalar)
        if result.passing is Returning.PIECES:
            types = [piece_type(p.type) for p in result.pieces]
            return types[0] if len(types) == 1 else ir.LiteralStructType(types)
        return VOID

    def _temporary(self, kind: ir.Type) -> ir.Value:
        """A 16-byte-aligned stack slot for a ``kind`` (allocated in the entry block)."""
        with self.b.goto_entry_block():
            slot = self.b.alloca(kind)
            slot.align = 16
        return slot

    def _copy(self, target: ir.Value, source: ir.Value, size: int) -> None:
        self.imports.call(self.b, "llvm.memcpy.p0.p0.i64", target, source, i64(size), ir.Constant(I1, 0))

    def _load_piece(self, address: ir.Value, piece: Piece) -> ir.Value:
        """A piece's value, never reading past the piece's bytes (through a copy if needed)."""
        b = self.b
        where = b.gep(address, [i64(piece.offset)], source_etype=I8)
        kind = piece_type(piece.type)
        if store_size(kind) > piece.size:
            slot = self._temporary(kind)
            b.store(ir.Constant(kind, None), slot)
            self._copy(slot, where, piece.size)
            where = slot
        return b.load(where, typ=kind, align=1)

    def _store_piece(self, address: ir.Value, piece: Piece, value: ir.Value) -> None:
        """Store a piece, never writing past the piece's bytes (through a copy if needed)."""
        b = self.b
        where = b.gep(address, [i64(piece.offset)], source_etype=I8)
        if store_size(value.type) > piece.size:
            slot = self._temporary(value.type)
            b.store(value, slot)
            self._copy(where, slot, piece.size)
        else:
            b.store(value, where, align=1)


def build_stubs(
    signatures: Iterable[LoweredSignature],
    triple: str,
    upcalls: Iterable[LoweredUpcall] = (),
    pool_size: int = 0,
) -> ir.Module:
    """One LLVM module holding both variants of every stub, and the entry and a pool of
    ``pool_size`` trampolines of every upcall shape."""
    stubs = StubModule(triple)
    for sig in signatures:
        stubs.add(sig, stub_symbol(sig.key))
    pools = Upcalls(stubs.helpers)
    for upcall in upcalls:
        pools.add(upcall, stub_symbol(upcall.key), pool_size)
    return stubs.module
