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

A narrow integer result (``bool``, ``char``, ``short``) is returned extended to 32 bits, as C
compilers expect of a callee on both targets.  Narrow integer arguments carry no ``signext``
or ``zeroext``: AAPCS64 leaves the bits above them unspecified (gcc passes a ``uint16_t``
65535 as ``w = 0xffffffff``), so the entry extends them itself.
"""

from __future__ import annotations

from functools import cached_property

from llvmlite import ir

from ffm_runtime import _contract

from .._lowering import Extension, Form, LoweredUpcall, ScalarKind
from ._helpers import Helpers
from ._idioms import is_null
from ._types import I32, I64, NULL, PTR, VOID, i64, scalar_type

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
        entry = self._entry(sig, base, ir.FunctionType(result, [PTR, *params]))
        trampoline_type = ir.FunctionType(result, params)
        for index in range(pool_size):
            fn = ir.Function(module, trampoline_type, trampoline_symbol(base, index))
            fn.attributes.add("nounwind")
            b = ir.IRBuilder(fn.append_basic_block("entry"))
            slot = b.gep(slots, [i64(0), i64(index)], source_etype=slots_type, inbounds=True)
            call = b.call(entry, [slot, *fn.args], tail=True)
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
        boxed, caches = self._box_arguments(b, sig, base, report)
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
        imports.call(b, "Py_DecRef", record)
        leave(value)
        b.position_at_end(report)
        b.call(self._report, [record])
        leave(zero)
        return fn

    def _box_arguments(
        self, b: ir.IRBuilder, sig: LoweredUpcall, base: str, report: ir.Block
    ) -> tuple[list[ir.Value], list[ir.GlobalVariable | None]]:
        """The Python objects of the entry's C arguments (new references), and for each the
        cache its segment goes back to after the call (``ADDRESS`` arguments: see
        :attr:`_take_segment`), or None; if one cannot be made, the ones made are dropped
        and the entry goes to ``report``."""
        fn = b.function
        boxed: list[ir.Value] = []
        caches: list[ir.GlobalVariable | None] = []
        for index, (argument, value) in enumerate(zip(sig.arguments, fn.args[1:], strict=True)):
            if argument.scalar.form is Form.ADDRESS:
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

    @cached_property
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

    @cached_property
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

    @cached_property
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

    @cached_property
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

    @cached_property
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
