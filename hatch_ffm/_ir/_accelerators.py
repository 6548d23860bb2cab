"""The runtime's accelerators: native versions of ``Arena.allocate``, ``MemorySegment.get``
and ``MemorySegment.set`` and of the confined arena's life cycle (``Arena.of_confined``,
``__enter__``, ``close``; see ``ffm_runtime._contract.ACCELERATORS``); those of the bulk
operations on bytes and strings are in :mod:`._accel_bulk`.

They are compiled like the stubs, with the same helpers, when hatch-ffm's own wheel is
built (``build_accel.py``), and ``ffm_runtime._accel`` installs them as methods.  Each
takes only the common case: exact ``int`` offsets and sizes, a ``ValueLayout`` of a
little-endian numeric or boolean carrier, a value of the exact type the carrier takes, a
segment this thread may access, in bounds and aligned.  Everything else, errors included,
goes to the Python implementation (the *slow path*), so behaviour and messages are the
Python ones.  No Python code can run between a check and the access it guards: every object
a fast path converts is of an exact built-in type.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from ffm_runtime import _contract

from .._lowering import SCALARS, Form, ScalarKind
from ._accel_pointers import build_pointer_accelerators
from ._helpers import Helpers
from ._idioms import is_null, not_null
from ._model import IntRead
from ._types import I1, I32, I64, NULL, PTR, i64, scalar_type

__all__ = ["build_accelerators"]

_METHOD_TYPE = ir.FunctionType(PTR, [PTR, PTR, I64, PTR])
#: the Python type whose exact instances ``MemorySegment.set`` converts natively, by form
_EXACT_TYPES = {
    Form.BOOLEAN: "PyBool_Type",
    Form.INTEGER: "PyLong_Type",
    Form.FLOAT: "PyFloat_Type",
    Form.DOUBLE: "PyFloat_Type",
}


class _Method:
    """One accelerator: ``PyObject *f(self, args, nargs, kwnames)``, with a slow path."""

    def __init__(self, helpers: Helpers, class_name: str, method: str) -> None:
        self.helpers = helpers
        self.imports = helpers.imports
        self.model = helpers.model
        self.fn = ir.Function(
            self.imports.module, _METHOD_TYPE, _contract.accelerator_symbol(class_name, method)
        )
        self.fn.attributes.add("nounwind")
        self.self_arg, self.args, self.nargs, self.kwnames = self.fn.args
        self.b = ir.IRBuilder(self.fn.append_basic_block("entry"))
        self.slow = self.fn.append_basic_block("slow")
        self._emit_slow(_contract.ACCELERATORS.index((class_name, method)))

    def call(self, name: str, *args: ir.Value) -> ir.Instruction:
        return self.imports.call(self.b, name, *args)

    def arg(self, index: int) -> ir.Value:
        b = self.b
        return b.load(b.gep(self.args, [i64(index)], source_etype=PTR), typ=PTR)

    def slow_if(self, condition: ir.Value) -> None:
        """Continue only if ``condition`` is false; otherwise take the Python path."""
        go_on = self.fn.append_basic_block("on")
        self.b.cbranch(condition, self.slow, go_on)
        self.b.position_at_end(go_on)

    def no_keywords(self, low: int, high: int) -> None:
        """Positional arguments only, between ``low`` and ``high`` of them."""
        b = self.b
        self.slow_if(not_null(b, self.kwnames))
        self.slow_if(
            b.or_(b.icmp_signed("<", self.nargs, i64(low)), b.icmp_signed(">", self.nargs, i64(high)))
        )

    def self_is(self, cell: str) -> None:
        """Go on only if ``self`` is exactly of the runtime's type in ``cell``."""
        b = self.b
        self.slow_if(b.icmp_unsigned("!=", self.model.type_of(b, self.self_arg), self.imports.cell(b, cell)))

    def exact_int(self, obj: ir.Value) -> ir.Value:
        """An exact ``int``'s value as ``Py_ssize_t``; other objects and overflow go slow."""
        self.slow_if(self.b.not_(self.model.is_exact(self.b, obj, "PyLong_Type")))
        value, ok = self.model.read_int(self.b, obj, IntRead.SSIZE)
        self.slow_if(self.b.not_(ok))
        return value

    def int_field(self, obj: ir.Value, name: str) -> ir.Value:
        """An ``int`` field that the runtime always sets (unset, or no ``Py_ssize_t``: slow)."""
        raw = self.model.load_field(self.b, obj, name)
        self.slow_if(is_null(self.b, raw))
        value, ok = self.model.read_int(self.b, raw, IntRead.SSIZE)
        self.slow_if(self.b.not_(ok))
        return value

    def _emit_slow(self, index: int) -> None:
        """The Python implementation, called with a tuple of every argument.  A failed
        lookup on the way here may have left an error set: it is cleared, so the Python
        method sees exactly what a Python caller would."""
        b = ir.IRBuilder(self.slow)
        call = self.imports.call
        call(b, "PyErr_Clear")
        none = self.imports.data("_Py_NoneStruct")
        self_or_none = b.select(is_null(b, self.self_arg), none, self.self_arg)
        has_keywords = not_null(b, self.kwnames)
        keywords = b.select(has_keywords, self.kwnames, none)
        count = b.alloca(I64)
        b.store(self.nargs, count)
        with b.if_then(has_keywords):
            b.store(b.add(self.nargs, call(b, "PyTuple_Size", self.kwnames)), count)
        total = b.load(count)
        values = call(b, "PyTuple_New", total)
        with b.if_then(is_null(b, values), likely=False):
            b.ret(NULL)
        position = b.alloca(I64)
        b.store(i64(0), position)
        head = self.fn.append_basic_block("fill")
        body = self.fn.append_basic_block("fill_one")
        done = self.fn.append_basic_block("filled")
        b.branch(head)
        b.position_at_end(head)
        i = b.load(position)
        b.cbranch(b.icmp_signed("<", i, total), body, done)
        b.position_at_end(body)
        item = b.load(b.gep(self.args, [i], source_etype=PTR), typ=PTR)
        call(b, "Py_IncRef", item)
        call(b, "PyTuple_SetItem", values, i, item)  # steals item
        b.store(b.add(i, i64(1)), position)
        b.branch(head)
        b.position_at_end(done)
        result = call(
            b,
            "PyObject_CallFunction",
            self.imports.cell(b, _contract.CELL_ACCEL_FALLBACK),
            self.imports.cstring("nOOO"),
            i64(index),
            self_or_none,
            values,
            keywords,
        )
        call(b, "Py_DecRef", values)
        b.ret(result)


# -- Arena.allocate, MemorySegment.get / set ------------------------------------------------
def _arena_allocate(helpers: Helpers) -> None:
    """``arena.allocate(byte_size[, byte_alignment])`` with ints, and ``arena.allocate(layout[,
    count])`` of a struct or value layout (exactly ``StructLayout``, ``ValueLayout`` or
    ``AddressLayout``), for small allocations."""
    m = _Method(helpers, "Arena", "allocate")
    b, model = m.b, m.model
    m.no_keywords(1, 2)
    first = m.arg(0)
    size_slot, alignment_slot = b.alloca(I64), b.alloca(I64)
    is_layout = model.is_one_of(
        b,
        model.type_of(b, first),
        _contract.CELL_STRUCT_LAYOUT_TYPE,
        _contract.CELL_VALUE_LAYOUT_TYPE,
        _contract.CELL_ADDRESS_LAYOUT_TYPE,
    )
    with b.if_else(is_layout) as (layout, numbers):
        with layout:  # Python: byte_size * count bytes, aligned as the layout
            count_slot = b.alloca(I64)
            b.store(i64(1), count_slot)
            with b.if_then(b.icmp_signed("==", m.nargs, i64(2))):
                b.store(m.exact_int(m.arg(1)), count_slot)
            count = b.load(count_slot)
            element = m.int_field(first, "memory_layout._byte_size")
            # (both small, or Python's: no overflow; a negative count: Python raises)
            m.slow_if(b.icmp_unsigned(">", count, i64(_contract.ARENA_SMALL)))
            m.slow_if(b.icmp_unsigned(">", element, i64(_contract.ARENA_SMALL)))
            b.store(b.mul(element, count), size_slot)
            b.store(m.int_field(first, "memory_layout._byte_alignment"), alignment_slot)
        with numbers:
            b.store(m.exact_int(first), size_slot)
            b.store(i64(1), alignment_slot)
            with b.if_then(b.icmp_signed("==", m.nargs, i64(2))):
                b.store(m.exact_int(m.arg(1)), alignment_slot)
    size = b.load(size_slot)
    alignment = b.load(alignment_slot)
    mask = b.sub(alignment, i64(1))
    bad = b.or_(b.icmp_signed("<", size, i64(0)), b.icmp_signed(">", size, i64(_contract.ARENA_SMALL)))
    bad = b.or_(bad, b.icmp_signed("<=", alignment, i64(0)))
    bad = b.or_(bad, b.icmp_signed(">", alignment, i64(_contract.ARENA_SLAB_ALIGN)))
    bad = b.or_(bad, b.icmp_unsigned("!=", b.and_(alignment, mask), i64(0)))
    m.slow_if(bad)
    m.self_is(_contract.CELL_ARENA_TYPE)
    helpers.idioms.return_unless_not_here(b, helpers.alloc.carve(b, m.self_arg, size, alignment))
    b.branch(m.slow)


def _locate(m: _Method, layout: ir.Value, offset: ir.Value, writing: bool) -> ir.Value:
    """The address ``offset`` bytes into segment ``self`` for an access of ``layout``,
    after the checks of ``MemorySegment.get``/``set`` (failing ones go slow)."""
    b, model = m.b, m.model
    segment = m.self_arg
    m.slow_if(
        b.not_(
            model.is_one_of(
                b,
                model.type_of(b, segment),
                _contract.CELL_CONFINED_TYPE,
                _contract.CELL_SEGMENT_TYPE,
                _contract.CELL_HEAP_TYPE,
                _contract.CELL_SHARED_TYPE,
            )
        )
    )
    # the guard decides, as in Python: None for unconfined segments; an open shared arena's
    # needs no acquisition (the GIL is held and no Python code runs until the access)
    m.slow_if(b.not_(model.usable_here(b, model.load_field(b, segment, "segment._guard"))))
    size = m.int_field(segment, "segment._size")
    width = m.int_field(layout, "layout._byte_size")
    m.slow_if(b.or_(b.icmp_signed("<", offset, i64(0)), b.icmp_signed(">", offset, b.sub(size, width))))
    low_bits = m.int_field(segment, "segment._align")
    if writing:
        m.slow_if(b.icmp_unsigned("!=", b.and_(low_bits, i64(_contract.SEGMENT_READ_ONLY_BIT)), i64(0)))
    mask = m.int_field(layout, "layout._mask")
    m.slow_if(b.icmp_unsigned("!=", b.and_(b.add(low_bits, offset), mask), i64(0)))
    raw = model.load_field(b, segment, "segment._address")
    m.slow_if(is_null(b, raw))
    address, address_ok = model.read_int(b, raw, IntRead.UNSIGNED)
    # beyond 2**63 is never user memory: Python refuses it
    m.slow_if(b.or_(b.not_(address_ok), b.icmp_signed("<", address, i64(0))))
    return b.gep(b.inttoptr(address, PTR), [offset], source_etype=ir.IntType(8))


def _value_kind(m: _Method, layout: ir.Value) -> tuple[ir.Value, ir.Value]:
    """``(layout._kind, is_address)`` of a ``ValueLayout`` (``_contract.VALUE_KINDS``) or an
    ``AddressLayout`` (``_contract.ADDRESS_KIND``); anything else goes slow (and kind 0 goes
    slow in :func:`_per_kind`)."""
    b = m.b
    kind = m.model.type_of(b, layout)
    is_value = b.icmp_unsigned("==", kind, m.imports.cell(b, _contract.CELL_VALUE_LAYOUT_TYPE))
    is_address = b.icmp_unsigned("==", kind, m.imports.cell(b, _contract.CELL_ADDRESS_LAYOUT_TYPE))
    m.slow_if(b.not_(b.or_(is_value, is_address)))
    return m.int_field(layout, "layout._kind"), is_address


def _per_kind(
    m: _Method,
    kind: ir.Value,
    is_address: ir.Value,
    emit: Callable[[ScalarKind], None],
    emit_address: Callable[[], None],
) -> None:
    """Branch on ``kind`` (see :func:`_value_kind`); ``emit(scalar)`` fills the block of each
    value kind, ``emit_address()`` that of an address (and both must return).  A kind that
    does not go with the layout's type (a replaced ``_kind``) goes slow."""
    b = m.b
    switch = b.switch(kind, m.slow)
    for carrier, code in _contract.VALUE_KINDS.items():
        block = m.fn.append_basic_block(f"kind{code}")
        switch.add_case(i64(code), block)
        b.position_at_end(block)
        m.slow_if(is_address)
        emit(SCALARS[carrier])
    block = m.fn.append_basic_block("address")
    switch.add_case(i64(_contract.ADDRESS_KIND), block)
    b.position_at_end(block)
    m.slow_if(b.not_(is_address))
    emit_address()


def _segment_get(helpers: Helpers) -> None:
    """``segment.get(layout[, offset])``."""
    m = _Method(helpers, "MemorySegment", "get")
    b = m.b
    m.no_keywords(1, 2)
    layout = m.arg(0)
    kind, is_address = _value_kind(m, layout)
    offset_slot = b.alloca(I64)
    b.store(i64(0), offset_slot)
    with b.if_then(b.icmp_signed("==", m.nargs, i64(2))):
        b.store(m.exact_int(m.arg(1)), offset_slot)
    where = _locate(m, layout, b.load(offset_slot), writing=False)

    def emit(scalar: ScalarKind) -> None:
        value = b.load(where, typ=scalar_type(scalar), align=1)
        b.ret(helpers.numbers.box(b, scalar, value))

    def emit_address() -> None:
        # a segment of the target layout's size in the global scope, as AddressCodec reads
        # it (an address of 0 too); read before the object is made (which may run any code)
        size = m.int_field(layout, "address._target_size")
        m.slow_if(b.icmp_signed("<", size, i64(0)))
        value = b.load(where, typ=I64, align=1)
        # the segment shares the layout's size int, as Python's does (an exact int only)
        size_int = m.model.load_field(b, layout, "address._target_size")
        shared = b.select(m.model.is_exact(b, size_int, "PyLong_Type"), size_int, NULL)
        b.ret(helpers.alloc.global_segment(b, value, size, shared))

    _per_kind(m, kind, is_address, emit, emit_address)


def _segment_set(helpers: Helpers) -> None:
    """``segment.set(layout, offset, value)``."""
    m = _Method(helpers, "MemorySegment", "set")
    b = m.b
    m.no_keywords(3, 3)
    layout = m.arg(0)
    kind, is_address = _value_kind(m, layout)
    where = _locate(m, layout, m.exact_int(m.arg(1)), writing=True)
    value_obj = m.arg(2)

    def emit(scalar: ScalarKind) -> None:
        # a value of an exact built-in type: converting it runs no Python code
        m.slow_if(b.not_(m.model.is_exact(b, value_obj, _EXACT_TYPES[scalar.form])))
        value, ok = helpers.numbers.unbox(b, scalar, value_obj)
        m.slow_if(b.not_(ok))
        b.store(value, where, align=1)
        b.ret(helpers.idioms.new_none(b))

    def emit_address() -> None:
        # a native segment's address (heap segments are refused: Python raises); its scope
        # is not checked, as in Python
        m.slow_if(b.not_(m.model.is_runtime_segment_type(b, m.model.type_of(b, value_obj))))
        raw = m.model.load_field(b, value_obj, "segment._address")
        m.slow_if(is_null(b, raw))
        address, ok = m.model.read_int(b, raw, IntRead.UNSIGNED)
        m.slow_if(b.not_(ok))
        b.store(address, where, align=1)
        b.ret(helpers.idioms.new_none(b))

    _per_kind(m, kind, is_address, emit, emit_address)


# -- the confined arena's life cycle --------------------------------------------------------
def _arena_of_confined(helpers: Helpers) -> None:
    """``Arena.of_confined()``: the arena, owned by this thread, with a pooled slab if any."""
    m = _Method(helpers, "Arena", "of_confined")
    b, model, imports = m.b, m.model, m.imports
    m.no_keywords(0, 0)
    owner = m.call("PyLong_FromUnsignedLongLong", m.call("PyThread_get_thread_ident"))
    confinement = m.call("PyList_New", i64(1))
    cursor = m.call("PyLong_FromLongLong", i64(0))
    no_slab = m.call("PyLong_FromLongLong", i64(-1))
    slab_limit = m.call("PyLong_FromSsize_t", i64(_contract.ARENA_SLAB_SIZE))
    made = [owner, confinement, cursor, no_slab, slab_limit]

    def drop_made() -> None:
        for obj in made:
            m.call("Py_DecRef", obj)  # (NULL-safe)

    failed = ir.Constant(I1, 0)
    for obj in made:
        failed = b.or_(failed, is_null(b, obj))
    with b.if_then(failed, likely=False):
        drop_made()
        b.ret(NULL)
    arena = m.call("PyType_GenericAlloc", imports.cell(b, _contract.CELL_ARENA_TYPE), i64(0))
    with b.if_then(is_null(b, arena), likely=False):
        drop_made()
        b.ret(NULL)
    # from here on nothing fails: a pooled slab that cannot be taken means no slab
    m.call("Py_IncRef", owner)
    m.call("PyList_SetItem", confinement, i64(0), owner)  # steals one
    true, none = imports.data("_Py_TrueStruct"), imports.data("_Py_NoneStruct")
    for name, value, new in (
        ("arena._confinement", confinement, True),
        ("arena._alive", true, False),
        ("arena._owner", owner, True),
        ("arena._kind", imports.cell(b, _contract.CELL_CONFINED_KIND), False),
        ("arena._segment_class", imports.cell(b, _contract.CELL_CONFINED_TYPE), False),
        ("arena._cursor", cursor, True),
        ("arena._extra", none, False),
        ("arena._slab", none, False),
        ("arena._limit", no_slab, True),
    ):
        model.store_field(b, arena, name, value, new=new)
    pool = imports.cell(b, _contract.CELL_SLAB_POOL)
    count = m.call("PyList_Size", pool)
    with b.if_then(b.icmp_signed(">", count, i64(0))):
        last = b.sub(count, i64(1))
        slab = m.call("PyList_GetItem", pool, last)
        start = m.call("PyTuple_GetItem", slab, i64(1))
        view = m.call("PyTuple_GetItem", slab, i64(2))
        with b.if_else(b.and_(not_null(b, start), not_null(b, view)), likely=True) as (present, absent):
            with present:
                start_value, start_ok = model.read_int(b, start, IntRead.SSIZE)
                low = m.call("PyLong_FromSsize_t", b.and_(start_value, i64(_contract.SEGMENT_ALIGN_BITS)))
                with b.if_else(b.and_(start_ok, not_null(b, low)), likely=True) as (take, leave):
                    with take:
                        m.call("Py_IncRef", slab)
                        m.call("PyList_SetSlice", pool, last, count, NULL)  # drops the pool's
                        model.store_field(b, arena, "arena._slab", slab, new=True)
                        model.store_field(b, arena, "arena._slab_start", start, new=False)
                        model.store_field(b, arena, "arena._slab_align", low, new=True)
                        model.store_field(b, arena, "arena._slab_view", view, new=False)
                        model.store_field(b, arena, "arena._limit", slab_limit, new=False)
                    with leave:  # start without a slab, as when the pool is empty
                        m.call("PyErr_Clear")
                        m.call("Py_DecRef", low)  # (NULL-safe)
            with absent:  # not a slab tuple: start without one too
                m.call("PyErr_Clear")
    m.call("Py_DecRef", slab_limit)
    b.ret(arena)


def _arena_enter(helpers: Helpers) -> None:
    """``arena.__enter__()``: the arena itself."""
    m = _Method(helpers, "Arena", "__enter__")
    m.no_keywords(0, 0)
    m.call("Py_IncRef", m.self_arg)
    m.b.ret(m.self_arg)


def _arena_close(helpers: Helpers) -> None:
    """``arena.close(*ignored)`` (and ``__exit__``) of an open confined arena of this thread
    that has nothing but its current slab to give back (no cleanups, blocks, old slabs or
    exported views: those, and every error, are Python's)."""
    m = _Method(helpers, "Arena", "close")
    b, model, imports = m.b, m.model, m.imports
    none = imports.data("_Py_NoneStruct")
    m.slow_if(not_null(b, m.kwnames))
    m.self_is(_contract.CELL_ARENA_TYPE)
    guard = model.load_field(b, m.self_arg, "arena._confinement")
    m.slow_if(b.icmp_unsigned("==", guard, none))  # not closeable: Python raises
    m.slow_if(b.not_(model.owned_here(b, guard)))
    # an operation's pin (an extra item, see ffm_runtime._memory._pin): Python refuses
    m.slow_if(b.icmp_unsigned("!=", m.call("PyList_Size", guard), i64(1)))
    # what close drops below must free no object with Python code (a finalizer could take
    # the slab away meanwhile): an exact int owner, and _alive True (as an open arena's is)
    m.slow_if(b.not_(model.is_exact(b, m.call("PyList_GetItem", guard, i64(0)), "PyLong_Type")))
    alive = model.load_field(b, m.self_arg, "arena._alive")
    m.slow_if(b.icmp_unsigned("!=", alive, imports.data("_Py_TrueStruct")))
    _only_released_views(m, model.load_field(b, m.self_arg, "arena._extra"))
    slab = model.load_field(b, m.self_arg, "arena._slab")
    m.slow_if(is_null(b, slab))
    has_slab = b.icmp_unsigned("!=", slab, none)
    # only a slab tuple goes back to the pool (anything else: Python refuses to pool it)
    with b.if_then(has_slab):
        m.slow_if(b.not_(model.is_exact(b, slab, "PyTuple_Type")))
        m.slow_if(b.icmp_unsigned("!=", m.call("PyTuple_Size", slab), i64(3)))
    pool = imports.cell(b, _contract.CELL_SLAB_POOL)
    full = b.icmp_signed(">=", m.call("PyList_Size", pool), i64(_contract.ARENA_POOL_MAX))
    m.slow_if(b.and_(has_slab, full))
    zero = m.call("PyLong_FromLongLong", i64(0))
    with b.if_then(is_null(b, zero), likely=False):
        b.ret(NULL)
    m.call("PyList_SetItem", guard, i64(0), zero)  # steals zero
    model.store_field(b, m.self_arg, "arena._alive", imports.data("_Py_FalseStruct"), new=False)
    with b.if_then(has_slab):
        appended = m.call("PyList_Append", pool, slab)
        model.store_field(b, m.self_arg, "arena._slab", none, new=False)  # drops the arena's
        with b.if_then(b.icmp_unsigned("!=", appended, ir.Constant(I32, 0)), likely=False):
            b.ret(NULL)
    b.ret(helpers.idioms.new_none(b))


def _only_released_views(m: _Method, extra: ir.Value) -> None:
    """Go on only if the arena's ``_extra`` is ``None``, or holds nothing but exported views
    that were all released (no slabs, blocks or cleanups; each view's exporter gone, which
    it is only once the view and every view derived from it were released): then the memory
    is reused as if no view had been made (Python: ``_Extras.exported``).  The released
    views' entries are left in the list (the Python close empties it): they are freed with
    the arena, which keeps the close itself as cheap as one without views."""
    b, model, imports = m.b, m.model, m.imports
    none = imports.data("_Py_NoneStruct")
    with b.if_then(b.icmp_unsigned("!=", extra, none)):
        m.slow_if(is_null(b, extra))
        m.slow_if(b.icmp_unsigned("!=", model.type_of(b, extra), imports.cell(b, _contract.CELL_EXTRAS_TYPE)))
        # (unset: NULL, not a list: -1, the error set; the slow path clears it)
        for name in ("slabs", "blocks", "cleanups"):
            items = model.load_field(b, extra, f"extras.{name}")
            m.slow_if(is_null(b, items))
            m.slow_if(b.icmp_signed("!=", m.call("PyList_Size", items), i64(0)))
        exports = model.load_field(b, extra, "extras.exports")
        m.slow_if(is_null(b, exports))
        count = m.call("PyList_Size", exports)
        m.slow_if(b.icmp_signed("<", count, i64(0)))
        position = b.alloca(I64)
        b.store(i64(0), position)
        head = m.fn.append_basic_block("export")
        body = m.fn.append_basic_block("export_one")
        done = m.fn.append_basic_block("exports_done")
        b.branch(head)
        b.position_at_end(head)
        index = b.load(position)
        b.cbranch(b.icmp_signed("<", index, count), body, done)
        b.position_at_end(body)
        entry = m.call("PyList_GetItem", exports, index)  # (borrowed; nothing runs meanwhile)
        m.slow_if(is_null(b, entry))
        # not a tuple, or too short: NULL, the error set (the slow path clears it)
        reference = m.call("PyTuple_GetItem", entry, i64(1))
        m.slow_if(is_null(b, reference))
        weakref_type = imports.cell(b, _contract.CELL_WEAKREF_TYPE)
        m.slow_if(b.icmp_unsigned("!=", model.type_of(b, reference), weakref_type))
        # calling an exact weakref.ref runs no Python code: its referent, or None
        target = m.call("PyObject_CallNoArgs", reference)
        with b.if_then(is_null(b, target), likely=False):
            m.call("PyErr_Clear")
        m.slow_if(is_null(b, target))
        m.call("Py_DecRef", target)  # (alive: others hold it; None: immortal or held)
        m.slow_if(b.icmp_unsigned("!=", target, none))
        b.store(b.add(index, i64(1)), position)
        b.branch(head)
        b.position_at_end(done)


def build_accelerators(triple: str) -> ir.Module:
    """The LLVM module of every accelerator in ``_contract.ACCELERATORS``."""
    helpers = Helpers.for_module("ffm_runtime_accelerators", triple)
    for emit in (_arena_allocate, _segment_get, _segment_set, _arena_of_confined, _arena_enter, _arena_close):
        emit(helpers)
    # (imported here: it builds on this module's _Method, so it imports this module)
    from ._accel_bulk import build_bulk_accelerators  # noqa: PLC0415

    build_bulk_accelerators(helpers)
    build_pointer_accelerators(helpers)
    return helpers.module
