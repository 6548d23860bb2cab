"""The runtime's accelerators: native versions of ``Arena.allocate``, ``MemorySegment.get``
and ``MemorySegment.set`` (see ``ffm_runtime._abi.ACCELERATORS``).

They are compiled like the stubs, with the same helpers, when hatch-ffm's own wheel is
built (``build_accel.py``), and ``ffm_runtime._accel`` installs them as methods.  Each
takes only the common case: exact ``int`` offsets and sizes, a ``ValueLayout`` of a
little-endian numeric or boolean carrier, a value of the exact type the carrier takes, a
segment this thread may access, in bounds and aligned.  Everything else, errors included,
goes to the Python implementation, so behaviour and messages are the Python ones.  No
Python code can run between a check and the access it guards: every object a fast path
touches is of an exact built-in type.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from llvmlite import ir

from ffm_runtime import _abi

from ._codegen import _Helpers
from ._irbase import F32, F64, I8, I32, I64, PTR, Imports

__all__ = ["build_accelerator_module", "write_accelerators"]

I16 = ir.IntType(16)
_METHOD_TYPE = ir.FunctionType(PTR, [PTR, PTR, I64, PTR])
#: (IR type, Python type that the fast path of ``set`` takes, value range) per ``_kind``
_KINDS: dict[int, tuple[ir.Type, str, tuple[int, int] | None]] = {
    _abi.VALUE_KINDS["z"]: (I8, "PyBool_Type", None),
    _abi.VALUE_KINDS["b"]: (I8, "PyLong_Type", (-(2**7), 2**7 - 1)),
    _abi.VALUE_KINDS["c"]: (I16, "PyLong_Type", (0, 2**16 - 1)),
    _abi.VALUE_KINDS["s"]: (I16, "PyLong_Type", (-(2**15), 2**15 - 1)),
    _abi.VALUE_KINDS["i"]: (I32, "PyLong_Type", (-(2**31), 2**31 - 1)),
    _abi.VALUE_KINDS["j"]: (I64, "PyLong_Type", (-(2**63), 2**63 - 1)),
    _abi.VALUE_KINDS["f"]: (F32, "PyFloat_Type", None),
    _abi.VALUE_KINDS["d"]: (F64, "PyFloat_Type", None),
}

class _Method:
    """One accelerator: ``PyObject *f(self, args, nargs, kwnames)``, with a slow path."""

    def __init__(self, imports: Imports, helpers: _Helpers, index: int) -> None:
        class_name, method = _abi.ACCELERATORS[index]
        self.imports = imports
        self.helpers = helpers
        self.fn = ir.Function(imports.module, _METHOD_TYPE,
                              _abi.accelerator_symbol(class_name, method))
        self.fn.attributes.add("nounwind")
        self.self_arg, self.args, self.nargs, self.kwnames = self.fn.args
        self.b = ir.IRBuilder(self.fn.append_basic_block("entry"))
        self.slow = self.fn.append_basic_block("slow")
        self._emit_slow(index)

    def call(self, name: str, *args: ir.Value) -> ir.Instruction:
        return self.b.call(self.imports.function(name), list(args))

    def arg(self, index: int) -> ir.Value:
        b = self.b
        return b.load(b.gep(self.args, [ir.Constant(I64, index)], source_etype=PTR), typ=PTR)

    def slow_if(self, condition: ir.Value) -> None:
        """Continue only if ``condition`` is false; otherwise take the Python path."""
        go_on = self.fn.append_basic_block("on")
        self.b.cbranch(condition, self.slow, go_on)
        self.b.position_at_end(go_on)

    def is_type(self, obj: ir.Value, type_symbol: str) -> ir.Value:
        """Whether ``obj`` is exactly of the built-in type ``type_symbol``."""
        return self.b.icmp_unsigned("==", self.helpers.load_field(self.b, obj, "ob_type"),
                                    self.imports.data(type_symbol))

    def ssize(self, obj: ir.Value) -> ir.Value:
        """An ``int``'s value as ``Py_ssize_t``; beyond its range: the slow path."""
        value = self.call("PyLong_AsSsize_t", obj)
        with self.b.if_then(self.b.icmp_signed("==", value, ir.Constant(I64, -1)), likely=False):
            failed = self.b.icmp_unsigned("!=", self.call("PyErr_Occurred"),
                                          ir.Constant(PTR, None))
            with self.b.if_then(failed, likely=False):
                self.call("PyErr_Clear")
                self.b.branch(self.slow)
        return value

    def exact_int(self, obj: ir.Value) -> ir.Value:
        """An exact ``int``'s value as ``Py_ssize_t``; other objects and overflow go slow."""
        self.slow_if(self.b.not_(self.is_type(obj, "PyLong_Type")))
        return self.ssize(obj)

    def field_int(self, obj: ir.Value, name: str) -> ir.Value:
        """An ``int`` field that the runtime always sets (NULL, i.e. unset, or beyond
        ``Py_ssize_t`` goes slow)."""
        b = self.b
        raw = self.helpers.load_field(b, obj, name)
        self.slow_if(b.icmp_unsigned("==", raw, ir.Constant(PTR, None)))
        value, ok = self.helpers.ssize_of(b, raw)
        self.slow_if(b.not_(ok))
        return value

    def _emit_slow(self, index: int) -> None:
        """The Python implementation, called with a tuple of every argument.  A failed
        lookup on the way here may have left an error set: it is cleared, so the Python
        method sees exactly what a Python caller would."""
        b = ir.IRBuilder(self.slow)
        b.call(self.imports.function("PyErr_Clear"), [])
        null = ir.Constant(PTR, None)
        none = self.imports.data("_Py_NoneStruct")
        self_or_none = b.select(b.icmp_unsigned("==", self.self_arg, null), none, self.self_arg)
        has_keywords = b.icmp_unsigned("!=", self.kwnames, null)
        keywords = b.select(has_keywords, self.kwnames, none)
        count = b.alloca(I64)
        b.store(self.nargs, count)
        with b.if_then(has_keywords):
            b.store(b.add(self.nargs, b.call(self.imports.function("PyTuple_Size"),
                                             [self.kwnames])), count)
        total = b.load(count)
        values = b.call(self.imports.function("PyTuple_New"), [total])
        with b.if_then(b.icmp_unsigned("==", values, null), likely=False):
            b.ret(null)
        position = b.alloca(I64)
        b.store(ir.Constant(I64, 0), position)
        head = self.fn.append_basic_block("fill")
        body = self.fn.append_basic_block("fill_one")
        done = self.fn.append_basic_block("filled")
        b.branch(head)
        b.position_at_end(head)
        i = b.load(position)
        b.cbranch(b.icmp_signed("<", i, total), body, done)
        b.position_at_end(body)
        item = b.load(b.gep(self.args, [i], source_etype=PTR), typ=PTR)
        b.call(self.imports.function("Py_IncRef"), [item])
        b.call(self.imports.function("PyTuple_SetItem"), [values, i, item])  # steals item
        b.store(b.add(i, ir.Constant(I64, 1)), position)
        b.branch(head)
        b.position_at_end(done)
        fallback = b.load(self.imports.data(_abi.CELL_ACCEL_FALLBACK), typ=PTR)
        result = b.call(self.imports.function("PyObject_CallFunction"),
                        [fallback, self.imports.cstring("nOOO"), ir.Constant(I64, index),
                         self_or_none, values, keywords])
        b.call(self.imports.function("Py_DecRef"), [values])
        b.ret(result)

    def no_keywords(self, low: int, high: int) -> None:
        """Positional arguments only, between ``low`` and ``high`` of them."""
        b = self.b
        self.slow_if(b.icmp_unsigned("!=", self.kwnames, ir.Constant(PTR, None)))
        self.slow_if(b.or_(b.icmp_signed("<", self.nargs, ir.Constant(I64, low)),
                           b.icmp_signed(">", self.nargs, ir.Constant(I64, high))))

def _arena_allocate(imports: Imports, helpers: _Helpers) -> None:
    """``arena.allocate(byte_size[, byte_alignment])`` with ints, for small allocations."""
    m = _Method(imports, helpers, _abi.ACCELERATORS.index(("Arena", "allocate")))
    b = m.b
    m.no_keywords(1, 2)
    size = m.exact_int(m.arg(0))
    alignment_slot = b.alloca(I64)
    b.store(ir.Constant(I64, 1), alignment_slot)
    with b.if_then(b.icmp_signed("==", m.nargs, ir.Constant(I64, 2))):
        b.store(m.exact_int(m.arg(1)), alignment_slot)
    alignment = b.load(alignment_slot)
    mask = b.sub(alignment, ir.Constant(I64, 1))
    bad = b.or_(b.icmp_signed("<", size, ir.Constant(I64, 0)),
                b.icmp_signed(">", size, ir.Constant(I64, _abi.ARENA_SMALL)))
    bad = b.or_(bad, b.icmp_signed("<=", alignment, ir.Constant(I64, 0)))
    bad = b.or_(bad, b.icmp_signed(">", alignment, ir.Constant(I64, _abi.ARENA_SLAB_ALIGN)))
    bad = b.or_(bad, b.icmp_unsigned("!=", b.and_(alignment, mask), ir.Constant(I64, 0)))
    m.slow_if(bad)
    arena_type = b.load(imports.data(_abi.CELL_ARENA_TYPE), typ=PTR)
    m.slow_if(b.icmp_unsigned("!=", helpers.load_field(b, m.self_arg, "ob_type"), arena_type))
    segment = b.call(helpers.get("carve"), [m.self_arg, size, alignment])
    with b.if_then(b.icmp_unsigned("!=", segment, ir.Constant(PTR, None))):
        b.ret(segment)
    with b.if_then(b.icmp_unsigned("!=", m.call("PyErr_Occurred"), ir.Constant(PTR, None)),
                   likely=False):
        b.ret(ir.Constant(PTR, None))
    b.branch(m.slow)

def _locate(m: _Method, layout: ir.Value, offset: ir.Value, writing: bool) -> ir.Value:
    """The address ``offset`` bytes into segment ``self`` for an access of ``layout``,
    after the checks of ``MemorySegment.get``/``set`` (failing ones go slow)."""
    b, helpers, imports = m.b, m.helpers, m.imports
    segment = m.self_arg
    kind = helpers.load_field(b, segment, "ob_type")
    ours = b.or_(
        b.icmp_unsigned("==", kind, b.load(imports.data(_abi.CELL_CONFINED_TYPE), typ=PTR)),
        b.or_(b.icmp_unsigned("==", kind, b.load(imports.data(_abi.CELL_SEGMENT_TYPE), typ=PTR)),
              b.icmp_unsigned("==", kind, b.load(imports.data(_abi.CELL_HEAP_TYPE), typ=PTR))))
    m.slow_if(b.not_(ours))
    # the guard decides, as in Python: None for unconfined segments
    guard = helpers.load_field(b, segment, "segment._guard")
    m.slow_if(b.icmp_unsigned("==", guard, ir.Constant(PTR, None)))
    m.slow_if(b.not_(helpers._owned_here(b, guard)))
    size = m.field_int(segment, "segment._size")
    width = m.field_int(layout, "layout._byte_size")
    m.slow_if(b.or_(b.icmp_signed("<", offset, ir.Constant(I64, 0)),
                    b.icmp_signed(">", offset, b.sub(size, width))))
    low_bits = m.field_int(segment, "segment._align")
    if writing:
        read_only = b.and_(low_bits, ir.Constant(I64, _abi.SEGMENT_READ_ONLY_BIT))
        m.slow_if(b.icmp_unsigned("!=", read_only, ir.Constant(I64, 0)))
    mask = m.field_int(layout, "layout._mask")
    m.slow_if(b.icmp_unsigned("!=", b.and_(b.add(low_bits, offset), mask), ir.Constant(I64, 0)))
    address = helpers.load_field(b, segment, "segment._address")
    m.slow_if(b.icmp_unsigned("==", address, ir.Constant(PTR, None)))
    address_value, address_ok = helpers.address_of(b, address)
    # beyond 2**63 is never user memory: Python refuses it
    m.slow_if(b.or_(b.not_(address_ok), b.icmp_signed("<", address_value, ir.Constant(I64, 0))))
    base = b.inttoptr(address_value, PTR)
    return b.gep(base, [offset], source_etype=I8)

def _layout_kind(m: _Method, layout: ir.Value) -> ir.Value:
    """``layout._kind`` of a ``ValueLayout``; anything else (or kind 0) goes slow."""
    b = m.b
    value_layout = b.load(m.imports.data(_abi.CELL_VALUE_LAYOUT_TYPE), typ=PTR)
    m.slow_if(b.icmp_unsigned("!=", m.helpers.load_field(b, layout, "ob_type"), value_layout))
    kind = m.field_int(layout, "layout._kind")
    m.slow_if(b.icmp_signed("==", kind, ir.Constant(I64, 0)))
    return kind

def _per_kind(m: _Method, kind: ir.Value, emit: Callable[[int], None]) -> None:
    """Branch on ``kind``; ``emit(k)`` fills the block of kind ``k`` (and must return)."""
    b = m.b
    switch = b.switch(kind, m.slow)
    for code in _KINDS:
        block = m.fn.append_basic_block(f"kind{code}")
        switch.add_case(ir.Constant(I64, code), block)
        b.position_at_end(block)
        emit(code)

def _segment_get(imports: Imports, helpers: _Helpers) -> None:
    """``segment.get(layout[, offset])``."""
    m = _Method(imports, helpers, _abi.ACCELERATORS.index(("MemorySegment", "get")))
    b = m.b
    m.no_keywords(1, 2)
    layout = m.arg(0)
    kind = _layout_kind(m, layout)
    offset_slot = b.alloca(I64)
    b.store(ir.Constant(I64, 0), offset_slot)
    with b.if_then(b.icmp_signed("==", m.nargs, ir.Constant(I64, 2))):
        b.store(m.exact_int(m.arg(1)), offset_slot)
    where = _locate(m, layout, b.load(offset_slot), writing=False)

    def emit(code: int) -> None:
        ir_type, _, value_range = _KINDS[code]
        value = b.load(where, typ=ir_type, align=1)
        if code == _abi.VALUE_KINDS["z"]:
            b.ret(m.call("PyBool_FromLong", b.zext(b.icmp_unsigned("!=", value,
                                                                    ir.Constant(I8, 0)), I64)))
        elif ir_type is F32:
            b.ret(m.call("PyFloat_FromDouble", b.fpext(value, F64)))
        elif ir_type is F64:
            b.ret(m.call("PyFloat_FromDouble", value))
        else:
            assert value_range is not None
            unsigned = value_range[0] == 0
            wide = value if ir_type is I64 else (b.zext(value, I64) if unsigned
                                                 else b.sext(value, I64))
            b.ret(m.call("PyLong_FromLongLong", wide))

    _per_kind(m, kind, emit)

def _segment_set(imports: Imports, helpers: _Helpers) -> None:
    """``segment.set(layout, offset, value)``."""
    m = _Method(imports, helpers, _abi.ACCELERATORS.index(("MemorySegment", "set")))
    b = m.b
    m.no_keywords(3, 3)
    layout = m.arg(0)
    kind = _layout_kind(m, layout)
    offset = m.exact_int(m.arg(1))
    value_obj = m.arg(2)
    none = imports.data("_Py_NoneStruct")

    def emit(code: int) -> None:
        ir_type, type_symbol, value_range = _KINDS[code]
        # the value first: of an exact built-in type, so converting it runs no Python code
        m.slow_if(b.not_(m.is_type(value_obj, type_symbol)))
        if code == _abi.VALUE_KINDS["z"]:
            value: ir.Value = b.zext(b.icmp_unsigned("==", value_obj,
                                                     imports.data("_Py_TrueStruct")), I8)
        elif type_symbol == "PyFloat_Type":
            double = m.call("PyFloat_AsDouble", value_obj)
            if ir_type is F32:
                # like struct's "f": finite doubles beyond float's range are Python's to refuse
                value = b.fptrunc(double, F32)
                too_big = b.and_(
                    b.fcmp_ordered("==", m.call("llvm.fabs.f32", value),
                                   ir.Constant(F32, float("inf"))),
                    b.fcmp_ordered("!=", m.call("llvm.fabs.f64", double),
                                   ir.Constant(F64, float("inf"))))
                m.slow_if(too_big)
            else:
                value = double
        else:
            assert value_range is not None
            pair = b.call(helpers.get("int"), [value_obj, ir.Constant(I64, value_range[0]),
                                               ir.Constant(I64, value_range[1])])
            with b.if_then(b.not_(b.extract_value(pair, 1)), likely=False):
                m.call("PyErr_Clear")
                b.branch(m.slow)
            value = b.extract_value(pair, 0)
            if ir_type is not I64:
                value = b.trunc(value, ir_type)
        where = _locate(m, layout, offset, writing=True)
        b.store(value, where, align=1)
        m.call("Py_IncRef", none)
        b.ret(none)

    _per_kind(m, kind, emit)

def _set_field(m: _Method, obj: ir.Value, name: str, value: ir.Value, new: bool) -> None:
    """Store ``value`` in field ``name`` of ``obj``, dropping the old value; ``new``: the
    reference is ours to give (otherwise a reference is taken)."""
    b = m.b
    where = m.helpers.field(b, obj, name)
    old = b.load(where, typ=PTR)
    if not new:
        m.call("Py_IncRef", value)
    b.store(value, where)
    with b.if_then(b.icmp_unsigned("!=", old, ir.Constant(PTR, None))):
        m.call("Py_DecRef", old)


def _arena_of_confined(imports: Imports, helpers: _Helpers) -> None:
    """``Arena.of_confined()``: the arena, owned by this thread, with a pooled slab if any."""
    m = _Method(imports, helpers, _abi.ACCELERATORS.index(("Arena", "of_confined")))
    b = m.b
    null = ir.Constant(PTR, None)
    m.no_keywords(0, 0)
    owner = m.call("PyLong_FromUnsignedLongLong", m.call("PyThread_get_thread_ident"))
    confinement = m.call("PyList_New", ir.Constant(I64, 1))
    cursor = m.call("PyLong_FromLongLong", ir.Constant(I64, 0))
    no_slab = m.call("PyLong_FromLongLong", ir.Constant(I64, -1))
    slab_limit = m.call("PyLong_FromSsize_t", ir.Constant(I64, _abi.ARENA_SLAB_SIZE))
    made = [owner, confinement, cursor, no_slab, slab_limit]

    def drop_made() -> None:
        for obj in made:
            with b.if_then(b.icmp_unsigned("!=", obj, null)):
                m.call("Py_DecRef", obj)

    failed = ir.Constant(ir.IntType(1), 0)
    for obj in made:
        failed = b.or_(failed, b.icmp_unsigned("==", obj, null))
    with b.if_then(failed, likely=False):
        drop_made()
        b.ret(null)
    arena_type = b.load(imports.data(_abi.CELL_ARENA_TYPE), typ=PTR)
    arena = m.call("PyType_GenericAlloc", arena_type, ir.Constant(I64, 0))
    with b.if_then(b.icmp_unsigned("==", arena, null), likely=False):
        drop_made()
        b.ret(null)
    # from here on nothing can fail but the slab's alignment int (then: no slab)
    m.call("Py_IncRef", owner)
    m.call("PyList_SetItem", confinement, ir.Constant(I64, 0), owner)  # steals one
    true, none = imports.data("_Py_TrueStruct"), imports.data("_Py_NoneStruct")
    for name, value, new in (
            ("arena._confinement", confinement, True), ("arena._alive", true, False),
            ("arena._owner", owner, True),
            ("arena._kind", b.load(imports.data(_abi.CELL_CONFINED_KIND), typ=PTR), False),
            ("arena._segment_class", b.load(imports.data(_abi.CELL_CONFINED_TYPE), typ=PTR),
             False),
            ("arena._cursor", cursor, True), ("arena._extra", none, False),
            ("arena._slab", none, False), ("arena._limit", no_slab, True)):
        _set_field(m, arena, name, value, new)
    pool = b.load(imports.data(_abi.CELL_SLAB_POOL), typ=PTR)
    count = m.call("PyList_Size", pool)
    with b.if_then(b.icmp_signed(">", count, ir.Constant(I64, 0))):
        last = b.sub(count, ir.Constant(I64, 1))
        slab = m.call("PyList_GetItem", pool, last)
        start = m.call("PyTuple_GetItem", slab, ir.Constant(I64, 1))
        view = m.call("PyTuple_GetItem", slab, ir.Constant(I64, 2))
        low = m.call("PyLong_FromSsize_t", b.and_(
            m.call("PyLong_AsSsize_t", start), ir.Constant(I64, _abi.SEGMENT_ALIGN_BITS)))
        usable = b.and_(b.icmp_unsigned("!=", low, null),
                        b.and_(b.icmp_unsigned("!=", start, null),
                               b.icmp_unsigned("!=", view, null)))
        with b.if_else(usable, likely=True) as (take, leave):
            with take:
                m.call("Py_IncRef", slab)
                m.call("PyList_SetSlice", pool, last, count, null)  # drops the pool's reference
                _set_field(m, arena, "arena._slab", slab, True)
                _set_field(m, arena, "arena._slab_start", start, False)
                _set_field(m, arena, "arena._slab_align", low, True)
                _set_field(m, arena, "arena._slab_view", view, False)
                _set_field(m, arena, "arena._limit", slab_limit, False)
            with leave:  # start without a slab, as when the pool is empty
                m.call("PyErr_Clear")
                with b.if_then(b.icmp_unsigned("!=", low, null)):
                    m.call("Py_DecRef", low)
    m.call("Py_DecRef", slab_limit)
    b.ret(arena)


def _arena_enter(imports: Imports, helpers: _Helpers) -> None:
    """``arena.__enter__()``: the arena itself."""
    m = _Method(imports, helpers, _abi.ACCELERATORS.index(("Arena", "__enter__")))
    m.no_keywords(0, 0)
    m.call("Py_IncRef", m.self_arg)
    m.b.ret(m.self_arg)


def _arena_close(imports: Imports, helpers: _Helpers) -> None:
    """``arena.close(*ignored)`` (and ``__exit__``) of an open confined arena of this thread
    that has nothing but its current slab to give back (no cleanups, blocks, old slabs or
    exported views: those, and every error, are Python's)."""
    m = _Method(imports, helpers, _abi.ACCELERATORS.index(("Arena", "close")))
    b = m.b
    null = ir.Constant(PTR, None)
    none = imports.data("_Py_NoneStruct")
    m.slow_if(b.icmp_unsigned("!=", m.kwnames, null))
    arena_type = b.load(imports.data(_abi.CELL_ARENA_TYPE), typ=PTR)
    m.slow_if(b.icmp_unsigned("!=", helpers.load_field(b, m.self_arg, "ob_type"), arena_type))
    guard = helpers.load_field(b, m.self_arg, "arena._confinement")
    m.slow_if(b.or_(b.icmp_unsigned("==", guard, null), b.icmp_unsigned("==", guard, none)))
    m.slow_if(b.not_(helpers._owned_here(b, guard)))
    # an operation's pin (an extra item, see ffm_runtime._memory._pin): Python refuses
    m.slow_if(b.icmp_signed("!=", m.call("PyList_Size", guard), ir.Constant(I64, 1)))
    m.slow_if(b.icmp_unsigned("!=", helpers.load_field(b, m.self_arg, "arena._extra"), none))
    slab = helpers.load_field(b, m.self_arg, "arena._slab")
    m.slow_if(b.icmp_unsigned("==", slab, null))
    has_slab = b.icmp_unsigned("!=", slab, none)
    # only a slab tuple goes back to the pool (anything else: Python refuses to pool it)
    with b.if_then(has_slab):
        m.slow_if(b.icmp_unsigned("!=", helpers.load_field(b, slab, "ob_type"),
                                  imports.data("PyTuple_Type")))
        m.slow_if(b.icmp_signed("!=", m.call("PyTuple_Size", slab), ir.Constant(I64, 3)))
    pool = b.load(imports.data(_abi.CELL_SLAB_POOL), typ=PTR)
    full = b.icmp_signed(">=", m.call("PyList_Size", pool), ir.Constant(I64, _abi.ARENA_POOL_MAX))
    m.slow_if(b.and_(has_slab, full))
    zero = m.call("PyLong_FromLongLong", ir.Constant(I64, 0))
    with b.if_then(b.icmp_unsigned("==", zero, null), likely=False):
        b.ret(null)
    m.call("PyList_SetItem", guard, ir.Constant(I64, 0), zero)  # steals zero
    _set_field(m, m.self_arg, "arena._alive", imports.data("_Py_FalseStruct"), False)
    with b.if_then(has_slab):
        appended = m.call("PyList_Append", pool, slab)
        _set_field(m, m.self_arg, "arena._slab", none, False)  # drops the arena's reference
        with b.if_then(b.icmp_signed("!=", appended, ir.Constant(I32, 0)), likely=False):
            b.ret(null)
    m.call("Py_IncRef", none)
    b.ret(none)


def build_accelerator_module(triple: str) -> ir.Module:
    """The LLVM module of every accelerator in ``_abi.ACCELERATORS``."""
    module = ir.Module(name="ffm_runtime_accelerators")
    module.triple = triple
    imports = Imports(module)
    helpers = _Helpers(imports)
    _arena_allocate(imports, helpers)
    _segment_get(imports, helpers)
    _segment_set(imports, helpers)
    _arena_of_confined(imports, helpers)
    _arena_enter(imports, helpers)
    _arena_close(imports, helpers)
    return module


def write_accelerators(directory: Path) -> dict[str, object]:
    """Compile the accelerators for every target into ``directory``, with their manifest
    (``ffm_runtime._accel`` reads it); returns the manifest."""
    from ._build import TARGET_TRIPLES
    from ._compile import compile_object

    directory.mkdir(parents=True, exist_ok=True)
    objects = {}
    for target, triple in sorted(TARGET_TRIPLES.items()):
        data = compile_object(str(build_accelerator_module(triple)), triple)
        name = f"accel-{target}.o"
        (directory / name).write_bytes(data)
        objects[target] = {"file": name, "sha256": hashlib.sha256(data).hexdigest()}
    manifest: dict[str, object] = {"format": 1, "objects": objects}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


if __name__ == "__main__":
    import sys

    write_accelerators(Path(sys.argv[1]))
