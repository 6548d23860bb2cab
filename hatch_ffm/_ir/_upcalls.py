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

        gil = imports.call(b, "PyGILState_Ensure")
        record = b.load(fn.args[0], typ=PTR)
        with b.if_then(is_null(b, record), likely=False):
            b.call(self._freed, [key])
            leave(zero)
        imports.call(b, "Py_IncRef", record)
        report = fn.append_basic_block("report")
        target = imports.call(b, "PyTuple_GetItem", record, i64(0))
        boxed: list[ir.Value] = []
        for index, (argument, value) in enumerate(zip(sig.arguments, fn.args[1:], strict=True)):
            obj = self._box(b, argument.scalar, argument.target_size, value)
            failed = fn.append_basic_block(f"box_failed{index}")
            boxed_ok = fn.append_basic_block(f"boxed{index}")
            b.cbranch(is_null(b, obj), failed, boxed_ok)
            b.position_at_end(failed)
            for earlier in boxed:
                imports.call(b, "Py_DecRef", earlier)
            b.branch(report)
            b.position_at_end(boxed_ok)
            boxed.append(obj)
        returned = imports.call(b, "PyObject_CallFunctionObjArgs", target, *boxed, NULL)
        for obj in boxed:
            imports.call(b, "Py_DecRef", obj)
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

    def _box(self, b: ir.IRBuilder, kind: ScalarKind, target_size: int, value: ir.Value) -> ir.Value:
        """A new Python object for the C argument ``value``, or NULL (error set)."""
        if kind.form is Form.ADDRESS:
            return self.helpers.alloc.address_result(b, b.ptrtoint(value, I64), i64(target_size))
        return self.helpers.numbers.box(b, kind, value)

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
