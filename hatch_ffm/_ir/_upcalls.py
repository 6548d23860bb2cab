"""Upcall entries and their trampoline pools: C calling Python, with no writable code.

For an upcall shape with base symbol ``S`` (:func:`hatch_ffm._ir.stub_symbol` of its key) a
module holds:

- ``S_slots``: an array of ``N`` pointers in writable data (``.bss``, which the loader puts on
  pages of its own, never executable).  Slot ``i`` holds the runtime's ``(target, record)``
  tuple while the upcall stub that took it is alive, NULL otherwise;
- ``S_t0`` ... ``S_t<N-1>``: the trampolines, in the code (never writable).  Trampoline ``i``
  is the C function the runtime hands out: it passes the address of slot ``i`` in the static
  chain register (LLVM's ``nest``: ``r10`` on x86_64, ``x15`` on AArch64, which no argument
  uses) and jumps to the entry with the C arguments untouched;
- the entry (internal): takes the GIL (``PyGILState_Ensure``, also on a thread Python never
  saw), reads the slot (under the GIL: the runtime writes slots with the GIL held), boxes the
  arguments, calls the target, converts its result and gives the GIL back.  What cannot be
  raised into C (an exception of the target, a result of the wrong type, a call through a
  freed slot) is reported with ``PyErr_WriteUnraisable`` (``sys.unraisablehook``), naming the
  upcall, and C gets zero.

A shape with structs or unions by value has ``S_gather`` in front of the entry (the
trampolines jump there): it gathers a struct passed in registers into its frame, so that the
entry gets every struct as a pointer to its bytes, and the struct result's memory (zeroed
first: what C gets when the call fails), and returns a struct result as C expects it.  The
entry copies the structs into segments of a confined arena it opens for the call
(``Arena.of_confined``) and closes once the target has returned and its result is copied:
the target's segments are valid during the call only.

A narrow integer result (``bool``, ``char``, ``short``) is returned extended to 32 bits, as C
compilers expect of a callee on both targets.  Narrow integer arguments carry no ``signext``
or ``zeroext``: AAPCS64 leaves the bits above them unspecified (gcc passes a ``uint16_t``
65535 as ``w = 0xffffffff``), so the entry extends them itself.
"""

from __future__ import annotations

from llvmlite import ir

from ffm_runtime import _contract

from .._lowering import Extension, Form, LoweredUpcall, Passing, Piece, Returning, ScalarKind, UpcallArgument
from ._helpers import Helpers
from ._idioms import is_null, not_null
from ._reuse import helper_function
from ._types import I1, I8, I32, I64, NULL, PTR, VOID, RawAttributes, i64, piece_type, scalar_type, store_size

__all__ = ["UPCALL_SLOTS_SUFFIX", "Upcalls", "trampoline_symbol"]

#: ``S_slots``: the array of slots of the pool of shape ``S``
UPCALL_SLOTS_SUFFIX = "_slots"


def trampoline_symbol(base: str, index: int) -> str:
    """The symbol of trampoline ``index`` of the pool of the upcall shape ``base``."""
    return f"{base}_t{index}"


#: integer results narrower than this many bits are returned extended to it
_WIDENED_BITS = 32


def _widened(kind: ScalarKind) -> bool:
    """Whether a result of ``kind`` is returned extended to 32 bits."""
    return kind.form in (Form.BOOLEAN, Form.INTEGER) and kind.bits < _WIDENED_BITS


def _c_type(kind: ScalarKind) -> ir.Type:
    return I32 if _widened(kind) else scalar_type(kind)


class Upcalls:
    """The upcall entries and trampoline pools of one module."""

    def __init__(self, helpers: Helpers) -> None:
        self.helpers = helpers
        self.imports = helpers.imports
        self.imports.owners[Upcalls] = self

    def add(self, sig: LoweredUpcall, base: str, pool_size: int) -> None:
        """The slots, the entry and ``pool_size`` trampolines of the upcall shape ``sig``."""
        module = self.imports.module
        slots_type = ir.ArrayType(PTR, pool_size)
        slots = ir.GlobalVariable(module, slots_type, base + UPCALL_SLOTS_SUFFIX)
        slots.initializer = ir.Constant(slots_type, None)
        slots.align = 8
        slots.visibility = "hidden"  # referenced PC-relatively, never through a GOT
        params = [scalar_type(a.scalar) for a in sig.arguments]
        result = VOID if sig.result is None else _c_type(sig.result)
        if sig.struct_result is not None:
            params.append(PTR)  # where the entry writes the struct result
        entry = self._entry(sig, base, ir.FunctionType(result, [PTR, *params]))
        if sig.has_structs:
            entry = self._struct_entry(sig, base, entry)
        result = entry.function_type.return_type
        trampoline_type = ir.FunctionType(result, entry.function_type.args[1:])
        for index in range(pool_size):
            fn = ir.Function(module, trampoline_type, trampoline_symbol(base, index))
            fn.attributes.add("nounwind")
            b = ir.IRBuilder(fn.append_basic_block("entry"))
            slot = b.gep(slots, [i64(0), i64(index)], source_etype=slots_type, inbounds=True)
            call = b.call(entry, [slot, *fn.args], tail=True)
            self._pass_attributes(entry, fn, call)
            if result is VOID:
                b.ret_void()
            else:
                b.ret(call)

    def _entry(self, sig: LoweredUpcall, base: str, kind: ir.FunctionType) -> ir.Function:
        imports = self.imports
        fn = ir.Function(imports.module, kind, base + "_entry")
        fn.linkage = "internal"
        fn.attributes.add("nounwind")
        fn.args[0].add_attribute("nest")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        key = imports.cstring(sig.key)
        zero = None if kind.return_type is VOID else ir.Constant(kind.return_type, None)

        def leave(value: ir.Value | None) -> None:
            imports.call(b, "PyGILState_Release", gil)
            if value is None:
                b.ret_void()
            else:
                b.ret(value)

        # After the interpreter is finalized (a C atexit handler, a library's destructor)
        # there is no Python to call, nor anything to report with: C gets zero.
        initialized = imports.call(b, "Py_IsInitialized")
        with b.if_then(b.icmp_signed("==", initialized, ir.Constant(initialized.type, 0)), likely=False):
            if zero is None:
                b.ret_void()
            else:
                b.ret(zero)
        gil = imports.call(b, "PyGILState_Ensure")
        # A critical downcall keeps the GIL: the word is 1 now only if it runs on this thread
        # (Java's critical functions must not call back).  Refused without running any
        # Python code (the critical call holds addresses nothing pins); the stub raises.
        critical = imports.critical_word()
        with b.if_then(b.icmp_unsigned("!=", b.load(critical, typ=I64), i64(0)), likely=False):
            b.store(i64(2), critical)
            leave(zero)
        record = b.load(fn.args[0], typ=PTR)
        with b.if_then(is_null(b, record), likely=False):
            b.call(self._freed, [key])
            leave(zero)
        imports.call(b, "Py_IncRef", record)
        report = fn.append_basic_block("report")
        target = imports.call(b, "PyTuple_GetItem", record, i64(0))
        arena = self._struct_arena(b, sig)
        boxed, caches = self._box_arguments(b, sig, base, report, arena)
        returned = imports.call(b, "PyObject_CallFunctionObjArgs", target, *boxed, NULL)
        for obj, cache in zip(boxed, caches, strict=True):
            if cache is None:
                imports.call(b, "Py_DecRef", obj)
            else:
                b.call(self._keep_segment, [cache, obj])
        called = fn.append_basic_block("called")
        b.cbranch(is_null(b, returned), report, called)
        b.position_at_end(called)
        value = self._unbox(b, sig, key, returned, report)
        self._close_struct_arena(b, arena)
        imports.call(b, "Py_DecRef", record)
        leave(value)
        b.position_at_end(report)
        b.call(self._report, [record])
        self._close_struct_arena(b, arena)
        leave(zero)
        return fn

    def _box_arguments(
        self, b: ir.IRBuilder, sig: LoweredUpcall, base: str, report: ir.Block, arena: ir.Value | None
    ) -> tuple[list[ir.Value], list[ir.GlobalVariable | None]]:
        """The Python objects of the entry's C arguments (new references), and for each the
        cache its segment goes back to after the call (``ADDRESS`` arguments: see
        :attr:`_take_segment`), or None; if one cannot be made, the ones made are dropped
        and the entry goes to ``report``.  Struct arguments: segments of ``arena``."""
        fn = b.function
        boxed: list[ir.Value] = []
        caches: list[ir.GlobalVariable | None] = []
        given = fn.args[1 : 1 + len(sig.arguments)]
        for index, (argument, value) in enumerate(zip(sig.arguments, given, strict=True)):
            if argument.struct is not None:
                cache = None
                obj = self._box_struct(b, argument, value, arena)
            elif argument.scalar.form is Form.ADDRESS:
                cache = ir.GlobalVariable(self.imports.module, PTR, f"{base}_segment{index}")
                cache.initializer = NULL
                cache.linkage = "internal"
                obj = b.call(self._take_segment, [cache, b.ptrtoint(value, I64), i64(argument.target_size)])
            else:
                cache = None
                obj = self.helpers.numbers.box(b, argument.scalar, value)
            caches.append(cache)
            failed = fn.append_basic_block(f"box_failed{index}")
            boxed_ok = fn.append_basic_block(f"boxed{index}")
            b.cbranch(is_null(b, obj), failed, boxed_ok)
            b.position_at_end(failed)
            for earlier in boxed:
                self.imports.call(b, "Py_DecRef", earlier)
            b.branch(report)
            b.position_at_end(boxed_ok)
            boxed.append(obj)
        return boxed, caches

    @helper_function
    def _take_segment(self) -> ir.Function:
        """``take_segment(cache, address, size) -> segment or NULL`` (error set): the
        ``ADDRESS`` argument ``address`` as ``address_result`` makes it, in the segment
        ``*cache`` holds if there is one nobody else can see (see :attr:`_keep_segment`).

        A kept segment is reused only if it is exactly a ``MemorySegment``, its reference
        count is 1 (the cache's: no variable, container, frame or ``gc.get_objects()`` list
        holds it) and it has no weak reference; then every field is written again (the
        target may have replaced any of them with ``object.__setattr__``), and the old
        values are dropped only after, so whatever their finalizers do sees a whole segment."""
        fn, b = self.helpers.idioms.helper("upcall_take_segment", PTR, [PTR, I64, I64])
        cache, address, size = fn.args
        imports, model = self.imports, self.helpers.model
        with b.if_then(b.icmp_unsigned("==", address, i64(0))):
            b.ret(self.helpers.alloc.address_result(b, address, size))
        kept = b.load(cache, typ=PTR)
        with b.if_then(is_null(b, kept)):
            b.ret(self.helpers.alloc.address_result(b, address, size))
        b.store(NULL, cache)
        alone = b.and_(
            b.icmp_unsigned("==", model.type_of(b, kept), imports.cell(b, _contract.CELL_SEGMENT_TYPE)),
            b.and_(
                b.icmp_unsigned("==", b.load(kept, typ=I32), ir.Constant(I32, 1)),
                is_null(b, model.load_field(b, kept, "segment.weakrefs")),
            ),
        )
        with b.if_then(b.not_(alone), likely=False):
            imports.call(b, "Py_DecRef", kept)
            b.ret(self.helpers.alloc.address_result(b, address, size))
        fields = {
            "segment._address": imports.call(b, "PyLong_FromUnsignedLongLong", address),
            "segment._size": imports.call(b, "PyLong_FromSsize_t", size),
            "segment._base": imports.call(b, "PyLong_FromSsize_t", i64(0)),
            "segment._align": imports.call(
                b, "PyLong_FromSsize_t", b.and_(address, i64(_contract.SEGMENT_ALIGN_BITS))
            ),
        }
        failed = ir.Constant(ir.IntType(1), 0)
        for value in fields.values():
            failed = b.or_(failed, is_null(b, value))
        with b.if_then(failed, likely=False):
            for value in (*fields.values(), kept):
                imports.call(b, "Py_DecRef", value)  # (NULL: nothing)
            b.ret(NULL)
        olds = []
        for name, value in fields.items():
            where = model.field(b, kept, name)
            olds.append(b.load(where, typ=PTR))
            b.store(value, where)
        # the shared fields: only where the target replaced them (then dropped after)
        none = imports.data("_Py_NoneStruct")
        replaced = []
        for name, value in (
            ("segment._scope", imports.cell(b, _contract.CELL_GLOBAL_SCOPE)),
            ("segment._guard", none),
            ("segment._view", none),
        ):
            where = model.field(b, kept, name)
            old = b.load(where, typ=PTR)
            differs = b.icmp_unsigned("!=", old, value)
            with b.if_then(differs, likely=False):
                imports.call(b, "Py_IncRef", value)
                b.store(value, where)
            replaced.append((differs, old))
        for old in olds:
            imports.call(b, "Py_DecRef", old)
        for differs, old in replaced:
            with b.if_then(differs, likely=False):
                imports.call(b, "Py_DecRef", old)
        b.ret(kept)
        return fn

    @helper_function
    def _keep_segment(self) -> ir.Function:
        """``keep_segment(cache, segment)``: after the call, keep the segment of an
        ``ADDRESS`` argument (our reference) in ``*cache`` for the next call if the cache is
        empty and nobody else holds the segment; drop it otherwise.  (Making and freeing a
        segment object per argument is most of what entering Python from C costs.)"""
        fn, b = self.helpers.idioms.helper("upcall_keep_segment", VOID, [PTR, PTR])
        cache, segment = fn.args
        keep = b.and_(
            is_null(b, b.load(cache, typ=PTR)),
            b.icmp_unsigned("==", b.load(segment, typ=I32), ir.Constant(I32, 1)),
        )
        with b.if_then(keep):
            b.store(segment, cache)
            b.ret_void()
        self.imports.call(b, "Py_DecRef", segment)
        b.ret_void()
        return fn

    def _unbox(
        self, b: ir.IRBuilder, sig: LoweredUpcall, key: ir.Value, returned: ir.Value, report: ir.Block
    ) -> ir.Value | None:
        """The C result of the target's ``returned`` (a new reference, dropped here); on a
        result of the wrong kind, an error set and a branch to ``report``."""
        imports, kind = self.imports, sig.result
        if sig.struct_result is not None:
            self._unbox_struct(b, sig, key, returned, report)
            return None
        if kind is None:
            imports.call(b, "Py_DecRef", returned)
            return None
        fn = b.function
        if kind.form is Form.ADDRESS:
            with b.goto_entry_block():
                verified, shared = b.alloca(PTR), b.alloca(PTR)
                b.store(NULL, verified)
                b.store(NULL, shared)
            value, ok = self.helpers.model.check_segment(b, returned, -1, False, False, verified, shared)
        else:
            value, ok = self.helpers.numbers.unbox(b, kind, returned)
        bad = fn.append_basic_block("bad_result")
        good = fn.append_basic_block("good_result")
        b.cbranch(ok, good, bad)
        b.position_at_end(bad)
        b.call(self._bad_result, [key, returned])
        imports.call(b, "Py_DecRef", returned)
        b.branch(report)
        b.position_at_end(good)
        imports.call(b, "Py_DecRef", returned)
        if _widened(kind):
            zero_extended = kind.unsigned or kind.extension is Extension.ZERO
            return b.zext(value, I32) if zero_extended else b.sext(value, I32)
        return value

    # -- structs and unions by value ------------------------------------------------------
    @staticmethod
    def _pass_attributes(entry: ir.Function, trampoline: ir.Function, call: ir.Instruction) -> None:
        """Give a trampoline's parameters, and its call of ``entry``, the attributes of
        ``entry``'s (``byval``, ``sret``: a struct in memory)."""
        for index, parameter in enumerate(entry.args[1:]):
            attributes = parameter.attributes
            if isinstance(attributes, RawAttributes) and attributes:
                trampoline.args[index].attributes = attributes
                call.arg_attributes[index + 1] = attributes

    def _struct_entry(self, sig: LoweredUpcall, base: str, core: ir.Function) -> ir.Function:
        """The entry C calls for a shape with structs or unions by value, in front of ``core``
        (the entry proper, which takes each of them as a pointer to its bytes and the struct
        result's memory last): it gathers a struct passed in registers into memory of its
        frame (one passed in memory, x86_64's ``byval`` or AArch64's copy by reference, is
        there already), zeroes the struct result's memory (what C gets when the target fails)
        and, after ``core``, loads a struct result returned in registers; an ``sret`` result
        (x86_64's MEMORY class, AArch64's larger than 16 bytes but HFAs) ``core`` writes
        where the caller said."""
        struct_result = sig.struct_result
        sret = struct_result is not None and struct_result.passing is Returning.SRET
        pieces = () if struct_result is None else struct_result.pieces
        result, types, attributes = self._c_signature(sig, core)
        fn = ir.Function(self.imports.module, ir.FunctionType(result, types), base + "_gather")
        fn.linkage = "internal"
        fn.attributes.add("nounwind")
        for parameter, given in zip(fn.args, attributes, strict=True):
            if given:
                parameter.attributes = RawAttributes(given)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        parameters = iter(fn.args)
        forwarded: list[ir.Value] = [next(parameters)]  # the slot
        out: ir.Value | None = None
        if struct_result is not None:
            if sret:
                out = next(parameters)
                self._zero(b, out, struct_result.size)
            else:
                out = self._frame_buffer(b, pieces)
                self._zero(b, out, pieces[-1].offset + store_size(piece_type(pieces[-1].type)))
        for argument in sig.arguments:
            param = argument.struct
            if param is None or param.passing is not Passing.PIECES:
                forwarded.append(next(parameters))
                continue
            memory = self._frame_buffer(b, param.pieces)
            b.store(self._aggregate(b, [next(parameters) for _ in param.pieces]), memory)
            forwarded.append(memory)
        if out is not None:
            forwarded.append(out)
        call = b.call(core, forwarded)
        if struct_result is not None and not sret:
            assert out is not None
            b.ret(b.load(out, typ=result))
        elif result is VOID:
            b.ret_void()
        else:
            b.ret(call)
        return fn

    @staticmethod
    def _c_signature(
        sig: LoweredUpcall, core: ir.Function
    ) -> tuple[ir.Type, list[ir.Type], list[tuple[str, ...]]]:
        """The result type, parameter types and parameter attributes of the C function of
        a shape with structs or unions by value; the first parameter is the slot (``nest``)."""
        struct_result = sig.struct_result
        sret = struct_result is not None and struct_result.passing is Returning.SRET
        pieces = () if struct_result is None else struct_result.pieces
        types: list[ir.Type] = [PTR]
        attributes: list[tuple[str, ...]] = [("nest",)]
        if struct_result is not None and sret:
            types.append(PTR)
            alignment = max(8, struct_result.alignment)
            attributes.append((f"sret([{struct_result.size} x i8]) align {alignment}",))
        for argument in sig.arguments:
            param = argument.struct
            if param is None:
                types.append(scalar_type(argument.scalar))
                attributes.append(())
            elif param.passing is Passing.PIECES:
                types.extend(piece_type(piece.type) for piece in param.pieces)
                attributes.extend(() for _ in param.pieces)
            elif param.passing is Passing.BYVAL:
                types.append(PTR)
                attributes.append((f"byval([{param.size} x i8]) align {max(8, param.alignment)}",))
            else:  # BYREF: a pointer to the caller's copy
                types.append(PTR)
                attributes.append(())
        result: ir.Type
        if struct_result is None:
            result = core.function_type.return_type
        elif sret:
            result = VOID
        elif len(pieces) == 1:
            result = piece_type(pieces[0].type)
        else:
            result = ir.LiteralStructType([piece_type(piece.type) for piece in pieces])
        return result, types, attributes

    @staticmethod
    def _frame_buffer(b: ir.IRBuilder, pieces: tuple[Piece, ...]) -> ir.Value:
        """Memory of the entry's frame for a struct passed in registers as ``pieces``: of
        their type (one piece, or ``{first, second}``: x86_64's first eightbyte is whole when
        there is a second, so the second is at offset 8 in both), 16-aligned."""
        types = [piece_type(piece.type) for piece in pieces]
        with b.goto_entry_block():
            memory = b.alloca(types[0] if len(types) == 1 else ir.LiteralStructType(types))
            memory.align = 16
        return memory

    @staticmethod
    def _aggregate(b: ir.IRBuilder, values: list[ir.Value]) -> ir.Value:
        """The value of a struct's pieces, as :meth:`_frame_buffer` holds them."""
        if len(values) == 1:
            return values[0]
        aggregate: ir.Value = ir.Constant(ir.LiteralStructType([v.type for v in values]), ir.Undefined)
        for index, value in enumerate(values):
            aggregate = b.insert_value(aggregate, value, index)
        return aggregate

    def _zero(self, b: ir.IRBuilder, memory: ir.Value, size: int) -> None:
        self.imports.call(b, "llvm.memset.p0.i64", memory, ir.Constant(I8, 0), i64(size), ir.Constant(I1, 0))

    def _struct_arena(self, b: ir.IRBuilder, sig: LoweredUpcall) -> ir.Value | None:
        """For a shape with struct or union arguments, a stack slot (NULL at first) for the
        confined arena their segments are of, opened at the first and closed when the
        target has returned (:meth:`_close_struct_arena`); ``None`` for other shapes."""
        if all(argument.struct is None for argument in sig.arguments):
            return None
        with b.goto_entry_block():
            slot = b.alloca(PTR)
            b.store(NULL, slot)
        return slot

    def _box_struct(
        self, b: ir.IRBuilder, argument: UpcallArgument, memory: ir.Value, arena: ir.Value | None
    ) -> ir.Value:
        """A new segment of the call's arena holding a copy of the struct at ``memory``, or
        NULL (error set, but for an ``Arena.allocate`` replaced by one returning no segment
        of the arena: nothing is written then)."""
        assert arena is not None and argument.struct is not None
        size, alignment = argument.struct.size, argument.struct.alignment
        model = self.helpers.model
        with b.goto_entry_block():
            result, verified, shared = b.alloca(PTR), b.alloca(PTR), b.alloca(PTR)
        b.store(NULL, result)
        b.store(NULL, verified)
        b.store(NULL, shared)
        opened = b.call(self._open_arena, [arena])
        with b.if_then(not_null(b, opened), likely=True):
            segment = self.helpers.alloc.allocate(b, opened, size, alignment)
            with b.if_then(not_null(b, segment), likely=True):
                # (Python code may have run in allocate: the segment is checked as any)
                address, ok = model.check_segment(b, segment, size, False, True, verified, shared)
                with b.if_else(ok, likely=True) as (copy, refuse):
                    with copy:
                        self.imports.call(
                            b, "llvm.memcpy.p0.p0.i64", address, memory, i64(size), ir.Constant(I1, 0)
                        )
                        b.store(segment, result)
                    with refuse:
                        self.imports.call(b, "Py_DecRef", segment)
        return b.load(result, typ=PTR)

    def _close_struct_arena(self, b: ir.IRBuilder, arena: ir.Value | None) -> None:
        """Close the arena of the struct arguments' segments, if the call opened one."""
        if arena is not None:
            b.call(self._close_arena, [b.load(arena, typ=PTR)])

    def _unbox_struct(
        self, b: ir.IRBuilder, sig: LoweredUpcall, key: ir.Value, returned: ir.Value, report: ir.Block
    ) -> None:
        """Copy the target's ``returned`` segment (a new reference, dropped here) to the struct
        result's memory (the entry's last parameter); a segment that is closed, another
        thread's or too small, or no segment at all: an error set and a branch to ``report``.
        The copy is made with the GIL held and no Python code between the check and it: a
        heap or a shared arena's segment is read as safely as a confined one."""
        assert sig.struct_result is not None
        size = sig.struct_result.size
        fn, imports = b.function, self.imports
        with b.goto_entry_block():
            verified, shared = b.alloca(PTR), b.alloca(PTR)
            b.store(NULL, verified)
            b.store(NULL, shared)
        address, ok = self.helpers.model.check_segment(b, returned, size, True, False, verified, shared)
        bad = fn.append_basic_block("bad_struct_result")
        good = fn.append_basic_block("good_struct_result")
        b.cbranch(ok, good, bad)
        b.position_at_end(bad)
        b.call(self._bad_result, [key, returned])
        imports.call(b, "Py_DecRef", returned)
        b.branch(report)
        b.position_at_end(good)
        imports.call(b, "llvm.memcpy.p0.p0.i64", fn.args[-1], address, i64(size), ir.Constant(I1, 0))
        imports.call(b, "Py_DecRef", returned)

    @helper_function
    def _open_arena(self) -> ir.Function:
        """``open_arena(slot) -> arena or NULL`` (error set): the arena in ``*slot``, or a new
        confined one (``Arena.of_confined()``) stored there."""
        fn, b = self.helpers.idioms.helper("upcall_open_arena", PTR, [PTR])
        (slot,) = fn.args
        arena = b.load(slot, typ=PTR)
        with b.if_then(not_null(b, arena), likely=False):
            b.ret(arena)
        made = self.imports.call(b, "PyObject_CallNoArgs", self.imports.cell(b, _contract.CELL_OPEN_CONFINED))
        b.store(made, slot)
        b.ret(made)
        return fn

    @helper_function
    def _close_arena(self) -> ir.Function:
        """``close_arena(arena)``: close the struct arguments' arena (unless the target
        closed it: ``segment.scope.close()``) and drop it; ``arena`` NULL: nothing.  A
        failure is reported (``sys.unraisablehook``, naming the arena)."""
        fn, b = self.helpers.idioms.helper("upcall_close_arena", VOID, [PTR])
        (arena,) = fn.args
        imports = self.imports
        with b.if_then(is_null(b, arena), likely=False):
            b.ret_void()
        alive = self.helpers.model.load_field(b, arena, "arena._alive")
        with b.if_then(b.icmp_unsigned("==", alive, imports.data("_Py_TrueStruct")), likely=True):
            close = imports.cell(b, _contract.CELL_CLOSE_ARENA)
            closed = imports.call(b, "PyObject_CallFunctionObjArgs", close, arena, NULL)
            with b.if_else(is_null(b, closed), likely=False) as (failed, done):
                with failed:
                    imports.call(b, "PyErr_WriteUnraisable", arena)
                with done:
                    imports.call(b, "Py_DecRef", closed)
        imports.call(b, "Py_DecRef", arena)
        b.ret_void()
        return fn

    @helper_function
    def _freed(self) -> ir.Function:
        """``freed(key)``: report a call through a freed slot (the runtime's ``upcall_error``
        raises the error, ``PyErr_WriteUnraisable`` reports it)."""
        fn, b = self.helpers.idioms.helper("upcall_freed", VOID, [PTR], cold=True)
        imports = self.imports
        error = imports.cell(b, _contract.CELL_UPCALL_ERROR)
        imports.call(
            b, "Py_DecRef", imports.call(b, "PyObject_CallFunction", error, imports.cstring("s"), fn.args[0])
        )
        imports.call(b, "PyErr_WriteUnraisable", NULL)
        b.ret_void()
        return fn

    @helper_function
    def _bad_result(self) -> ir.Function:
        """``bad_result(key, returned)``: set the error for a result of the wrong kind."""
        fn, b = self.helpers.idioms.helper("upcall_bad_result", VOID, [PTR, PTR], cold=True)
        imports = self.imports
        imports.call(b, "PyErr_Clear")
        error = imports.cell(b, _contract.CELL_UPCALL_ERROR)
        result = imports.call(b, "PyObject_CallFunction", error, imports.cstring("sO"), *fn.args)
        imports.call(b, "Py_DecRef", result)  # (it always raises: NULL)
        b.ret_void()
        return fn

    @helper_function
    def _report(self) -> ir.Function:
        """``report(record)``: report the error set, naming the upcall (item 1 of the slot's
        tuple), and drop the reference to the tuple."""
        fn, b = self.helpers.idioms.helper("upcall_report", VOID, [PTR], cold=True)
        imports = self.imports
        (record,) = fn.args
        imports.call(b, "PyErr_WriteUnraisable", imports.call(b, "PyTuple_GetItem", record, i64(1)))
        imports.call(b, "Py_DecRef", record)
        b.ret_void()
        return fn
