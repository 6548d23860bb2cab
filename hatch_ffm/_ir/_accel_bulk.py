"""The runtime's bulk accelerators: bytes and strings through segments.

Native versions of ``MemorySegment.to_bytes``, ``fill``, ``copy_from``, ``copy`` (the
5-argument byte form), ``get_string`` (UTF-8, up to the terminator or
``byte_length`` bytes) and ``set_string`` (UTF-8, the default charset),
``Arena.allocate_from`` (a ``str``, or one value of a numeric or boolean ``ValueLayout``, or
``JAVA_BYTE`` with ``bytes``) and ``MemorySegment.of_array`` (``bytes`` and ``bytearray``).
As in :mod:`._accelerators`, each takes only the common case (exact built-in types, a
segment this thread may access, in bounds, writable where written, positional arguments
with the default charset) and hands everything else, every error included, to the Python
method: behaviour and messages are the Python ones.

No Python code runs between a check and the access it guards: every object converted is
of an exact built-in type (``int``, ``str``, ``bytes``), and the objects made after a check
(``bytes`` and ``str`` results) are not tracked by the cycle collector, so making them
never runs a collection, hence no finalizer.  Segments are made (``PyType_GenericAlloc``,
which may collect) before the checks of what they are cut from, as in ``_alloc.py``.
"""

from __future__ import annotations

from llvmlite import ir

from ffm_runtime import _contract

from .._lowering import SCALARS, ScalarKind
from ._accelerators import _EXACT_TYPES, _Method, _value_kind
from ._helpers import Helpers
from ._idioms import is_null
from ._model import IntRead
from ._types import I8, I32, I64, NULL, PTR, i64, scalar_type, store_size

__all__ = ["build_bulk_accelerators"]

#: The pages a NUL-terminated string is read in (the smallest page of both targets).
_STRING_PAGE = 4096
_SEGMENT_TYPES = (
    _contract.CELL_CONFINED_TYPE,
    _contract.CELL_SEGMENT_TYPE,
    _contract.CELL_HEAP_TYPE,
    _contract.CELL_SHARED_TYPE,
)


def _segment(
    m: _Method, segment: ir.Value, *, writing: bool, whole: bool = True
) -> tuple[ir.Value, ir.Value]:
    """``(address, size)`` of ``segment`` after the checks of the Python bulk operations: one
    of the runtime's segments, that this thread may access now (its guard decides, as for
    ``get``), writable if ``writing``; anything else goes slow.  ``whole=False``: the segment
    may end past ``2**63`` (``reinterpret(2**63 - 1)``, a C string's idiom), the caller checks
    that the bytes it touches end below."""
    b, model = m.b, m.model
    m.slow_if(b.not_(model.is_one_of(b, model.type_of(b, segment), *_SEGMENT_TYPES)))
    # (an open shared arena's needs no acquisition: the GIL is held and no Python code runs
    # until the access is over)
    m.slow_if(b.not_(model.usable_here(b, model.load_field(b, segment, "segment._guard"))))
    # and its scope is alive (Python asks it): the global scope, or an open arena
    scope = model.load_field(b, segment, "segment._scope")
    m.slow_if(is_null(b, scope))
    is_arena = b.icmp_unsigned("==", model.type_of(b, scope), m.imports.cell(b, _contract.CELL_ARENA_TYPE))
    is_global = b.icmp_unsigned("==", scope, m.imports.cell(b, _contract.CELL_GLOBAL_SCOPE))
    m.slow_if(b.not_(b.or_(is_arena, is_global)))
    with b.if_then(is_arena):
        alive = model.load_field(b, scope, "arena._alive")
        m.slow_if(b.icmp_unsigned("!=", alive, m.imports.data("_Py_TrueStruct")))
    size = m.int_field(segment, "segment._size")
    m.slow_if(b.icmp_signed("<", size, i64(0)))
    if writing:
        low_bits = m.int_field(segment, "segment._align")
        m.slow_if(b.icmp_unsigned("!=", b.and_(low_bits, i64(_contract.SEGMENT_READ_ONLY_BIT)), i64(0)))
    # Python reads through the segment's view (None: made from the address on first use):
    # one it could not slice as [base, base + size) is Python's to refuse
    view = model.load_field(b, segment, "segment._view")
    m.slow_if(is_null(b, view))
    with b.if_then(b.icmp_unsigned("!=", view, m.imports.data("_Py_NoneStruct"))):
        m.slow_if(b.not_(model.is_exact(b, view, "PyMemoryView_Type")))
        base = m.int_field(segment, "segment._base")
        length, length_ok = m.helpers.idioms.checked_call(b, "PyObject_Size", view)  # released: no
        m.slow_if(b.not_(length_ok))
        _in_bounds(m, base, size, length)
    raw = model.load_field(b, segment, "segment._address")
    m.slow_if(is_null(b, raw))
    address, address_ok = model.read_int(b, raw, IntRead.UNSIGNED)
    # beyond 2**63 is never user memory (Python refuses it); nor is a segment ending there
    m.slow_if(b.or_(b.not_(address_ok), b.icmp_signed("<", address, i64(0))))
    if whole:
        m.slow_if(b.icmp_signed("<", b.add(address, size), i64(0)))
    return b.inttoptr(address, PTR), size


def _in_bounds(m: _Method, offset: ir.Value, length: ir.Value, size: ir.Value) -> None:
    """Go on only if ``[offset, offset + length)`` is inside ``size`` bytes."""
    b = m.b
    bad = b.or_(b.icmp_signed("<", offset, i64(0)), b.icmp_signed("<", length, i64(0)))
    m.slow_if(b.or_(bad, b.icmp_signed(">", offset, b.sub(size, length))))


def _at(b: ir.IRBuilder, address: ir.Value, offset: ir.Value) -> ir.Value:
    return b.gep(address, [offset], source_etype=I8)


def _return_self(m: _Method) -> None:
    m.call("Py_IncRef", m.self_arg)
    m.b.ret(m.self_arg)


def _made_or_slow(m: _Method, obj: ir.Value) -> ir.Value:
    """``obj`` (a new reference, or NULL on failure): a failure goes slow, its error cleared,
    and the Python method does or refuses the operation itself."""
    b = m.b
    failed = is_null(b, obj)
    with b.if_then(failed, likely=False):
        m.call("PyErr_Clear")
    m.slow_if(failed)
    return obj


def _utf8(m: _Method, text: ir.Value) -> tuple[ir.Value, ir.Value]:
    """``(bytes, length)`` of the exact ``str`` ``text`` in UTF-8 (CPython's cached copy,
    owned by ``text``); anything else, or a string UTF-8 cannot encode (lone surrogates),
    goes slow."""
    b = m.b
    m.slow_if(b.not_(m.model.is_exact(b, text, "PyUnicode_Type")))
    length = b.alloca(I64)
    data = _made_or_slow(m, m.call("PyUnicode_AsUTF8AndSize", text, length))
    return data, b.load(length)


# -- reading and writing bytes ------------------------------------------------------------------
def _to_bytes(helpers: Helpers) -> None:
    """``segment.to_bytes()``."""
    m = _Method(helpers, "MemorySegment", "to_bytes")
    m.no_keywords(0, 0)
    address, size = _segment(m, m.self_arg, writing=False)
    m.b.ret(_made_or_slow(m, m.call("PyBytes_FromStringAndSize", address, size)))


def _fill(helpers: Helpers) -> None:
    """``segment.fill(value)``."""
    m = _Method(helpers, "MemorySegment", "fill")
    b = m.b
    m.no_keywords(1, 1)
    value = m.exact_int(m.arg(0))
    m.slow_if(b.or_(b.icmp_signed("<", value, i64(-128)), b.icmp_signed(">", value, i64(255))))
    address, size = _segment(m, m.self_arg, writing=True)
    m.call("memset", address, b.and_(b.trunc(value, I32), ir.Constant(I32, 0xFF)), size)
    _return_self(m)


def _copy_from(helpers: Helpers) -> None:
    """``segment.copy_from(source)``."""
    m = _Method(helpers, "MemorySegment", "copy_from")
    b = m.b
    m.no_keywords(1, 1)
    source, source_size = _segment(m, m.arg(0), writing=False)
    target, target_size = _segment(m, m.self_arg, writing=True)
    m.slow_if(b.icmp_signed(">", source_size, target_size))
    m.call("memmove", target, source, source_size)
    _return_self(m)


def _copy(helpers: Helpers) -> None:
    """``MemorySegment.copy(source, source_offset, target, target_offset, byte_size)``; the
    element form (7 arguments) is Python's."""
    m = _Method(helpers, "MemorySegment", "copy")
    b = m.b
    m.no_keywords(5, 5)
    source_offset = m.exact_int(m.arg(1))
    target_offset = m.exact_int(m.arg(3))
    byte_size = m.exact_int(m.arg(4))
    source, source_size = _segment(m, m.arg(0), writing=False)
    target, target_size = _segment(m, m.arg(2), writing=True)
    _in_bounds(m, source_offset, byte_size, source_size)
    _in_bounds(m, target_offset, byte_size, target_size)
    m.call("memmove", _at(b, target, target_offset), _at(b, source, source_offset), byte_size)
    b.ret(helpers.idioms.new_none(b))


# -- strings ----------------------------------------------------------------------------------
def _get_string(helpers: Helpers) -> None:
    """``segment.get_string([offset[, charset[, byte_length]]])`` in UTF-8: a charset argument
    spelled ``"utf-8"`` or ``"UTF-8"`` (any other is Python's), ``byte_length`` an ``int`` (the
    bytes ``[offset, offset + byte_length)``, NULs included) or ``None`` (up to the NUL)."""
    m = _Method(helpers, "MemorySegment", "get_string")
    b = m.b
    m.no_keywords(0, 3)
    offset_slot = b.alloca(I64)
    b.store(i64(0), offset_slot)
    with b.if_then(b.icmp_signed(">=", m.nargs, i64(1))):
        b.store(m.exact_int(m.arg(0)), offset_slot)
    with b.if_then(b.icmp_signed(">=", m.nargs, i64(2))):
        charset = m.arg(1)
        m.slow_if(b.not_(m.model.is_exact(b, charset, "PyUnicode_Type")))
        # (an exact str compared with ASCII text: no error, no Python code)
        lower = m.call("PyUnicode_CompareWithASCIIString", charset, m.imports.cstring("utf-8"))
        upper = m.call("PyUnicode_CompareWithASCIIString", charset, m.imports.cstring("UTF-8"))
        zero = ir.Constant(I32, 0)
        m.slow_if(b.and_(b.icmp_signed("!=", lower, zero), b.icmp_signed("!=", upper, zero)))
    sized_slot = b.alloca(I64)  # the byte_length, or -1: up to the terminator
    b.store(i64(-1), sized_slot)
    with b.if_then(b.icmp_signed("==", m.nargs, i64(3))):
        byte_length = m.arg(2)
        with b.if_then(b.icmp_unsigned("!=", byte_length, m.imports.data("_Py_NoneStruct"))):
            length = m.exact_int(byte_length)
            m.slow_if(b.icmp_signed("<", length, i64(0)))  # Python raises
            b.store(length, sized_slot)
    offset = b.load(offset_slot)
    # (the segment may end past 2**63, as TEXT pointers do: the bytes read end below it)
    address, size = _segment(m, m.self_arg, writing=False, whole=False)
    sized = b.load(sized_slot)
    with b.if_then(b.icmp_signed(">=", sized, i64(0))):
        _in_bounds(m, offset, sized, size)
        m.slow_if(b.icmp_signed("<", b.add(b.ptrtoint(address, I64), b.add(offset, sized)), i64(0)))
        decoded = m.call("PyUnicode_DecodeUTF8", _at(b, address, offset), sized, m.imports.cstring("replace"))
        b.ret(_made_or_slow(m, decoded))
    _terminated_utf8(m, address, size, offset)


def _terminated_utf8(m: _Method, address: ir.Value, size: ir.Value, offset: ir.Value) -> None:
    """Return the UTF-8 string at ``offset`` of the ``size`` bytes at ``address``, up to its NUL."""
    b = m.b
    _in_bounds(m, offset, i64(0), size)
    start = _at(b, address, offset)
    # up to the NUL, one page at a time (as the Python method): no byte is read beyond the
    # page that holds it, nor beyond the segment, nor at 2**63 or above
    end_of_segment = b.add(b.ptrtoint(address, I64), size)
    limit = b.select(
        b.icmp_signed("<", end_of_segment, i64(0)), i64((1 << 63) - 1), end_of_segment
    )  # (unsigned: the sum is below 2**64)
    position = b.alloca(I64)
    b.store(b.ptrtoint(start, I64), position)
    head = m.fn.append_basic_block("page")
    found = m.fn.append_basic_block("found")
    b.branch(head)
    b.position_at_end(head)
    here = b.load(position)
    page_end = b.add(b.and_(here, i64(-_STRING_PAGE)), i64(_STRING_PAGE))
    stop = b.select(b.icmp_unsigned("<", page_end, limit), page_end, limit)
    m.slow_if(b.icmp_unsigned("<=", stop, here))  # no terminator: Python raises
    nul = m.call("memchr", b.inttoptr(here, PTR), ir.Constant(I32, 0), b.sub(stop, here))
    b.store(stop, position)
    b.cbranch(is_null(b, nul), head, found)
    b.position_at_end(found)
    length = b.sub(b.ptrtoint(nul, I64), b.ptrtoint(start, I64))
    decoded = m.call("PyUnicode_DecodeUTF8", start, length, m.imports.cstring("replace"))
    b.ret(_made_or_slow(m, decoded))


def _set_string(helpers: Helpers) -> None:
    """``segment.set_string(offset, text)`` in UTF-8 (a charset argument is Python's)."""
    m = _Method(helpers, "MemorySegment", "set_string")
    b = m.b
    m.no_keywords(2, 2)
    offset = m.exact_int(m.arg(0))
    data, length = _utf8(m, m.arg(1))  # converted before the checks
    address, size = _segment(m, m.self_arg, writing=True)
    _in_bounds(m, offset, b.add(length, i64(1)), size)
    where = _at(b, address, offset)
    m.call("llvm.memcpy.p0.p0.i64", where, data, length, ir.Constant(ir.IntType(1), 0))
    b.store(ir.Constant(I8, 0), _at(b, where, length))
    b.ret(helpers.idioms.new_none(b))


# -- allocation ---------------------------------------------------------------------------
def _carved(m: _Method, size: ir.Value, alignment: ir.Value) -> tuple[ir.Value, ir.Value]:
    """``(segment, address)``: ``size`` zeroed bytes cut from the arena ``self``'s slab, as
    ``Arena.allocate(size, alignment)`` would (``size`` <= ``ARENA_SMALL``, a power of two
    ``alignment`` <= ``ARENA_SLAB_ALIGN``, checked here); not here: slow."""
    b, model = m.b, m.model
    bad = b.or_(b.icmp_signed(">", size, i64(_contract.ARENA_SMALL)), b.icmp_signed("<", size, i64(0)))
    bad = b.or_(bad, b.icmp_signed("<=", alignment, i64(0)))
    bad = b.or_(bad, b.icmp_signed(">", alignment, i64(_contract.ARENA_SLAB_ALIGN)))
    bad = b.or_(bad, b.icmp_unsigned("!=", b.and_(alignment, b.sub(alignment, i64(1))), i64(0)))
    m.slow_if(bad)
    segment = m.helpers.alloc.carve(b, m.self_arg, size, alignment)
    with b.if_then(is_null(b, segment), likely=False):
        m.helpers.idioms.return_if_error(b)  # MemoryError, as Python would
    m.slow_if(is_null(b, segment))  # not here: a new slab, a closed arena, ...: Python's
    # the int carve just made: reading it cannot fail
    address, _ = model.read_int(b, model.load_field(b, segment, "segment._address"), IntRead.UNSIGNED)
    return segment, b.inttoptr(address, PTR)


def _copy_bytes(b: ir.IRBuilder, m: _Method, target: ir.Value, source: ir.Value, length: ir.Value) -> None:
    m.call("llvm.memcpy.p0.p0.i64", target, source, length, ir.Constant(ir.IntType(1), 0))


def _allocate_from(helpers: Helpers) -> None:
    """``arena.allocate_from(text)`` (UTF-8), ``arena.allocate_from(layout, value)`` of one
    numeric or boolean value or of an exact ``list`` or ``tuple`` of them, and
    ``arena.allocate_from(JAVA_BYTE, data)`` of ``bytes`` or ``bytearray``.

    Everything is converted before the segment is made (which may run a finalizer: it
    could change a list or a bytearray): a sequence's values and a bytearray's bytes are
    staged on the stack first (at most ``ARENA_SMALL`` bytes: more is Python's)."""
    m = _Method(helpers, "Arena", "allocate_from")
    b, model = m.b, m.model
    stage = b.alloca(ir.ArrayType(I8, _contract.ARENA_SMALL))
    stage.align = 8
    staged = b.inttoptr(b.ptrtoint(stage, I64), PTR)  # (as an untyped pointer)
    position = b.alloca(I64)
    m.no_keywords(1, 2)
    m.self_is(_contract.CELL_ARENA_TYPE)
    with b.if_then(b.icmp_signed("==", m.nargs, i64(1))):
        data, length = _utf8(m, m.arg(0))  # (immutable: no need to stage it)
        segment, address = _carved(m, b.add(length, i64(1)), i64(1))
        _copy_bytes(b, m, address, data, length)
        b.ret(segment)  # the terminator: zeroed by the carve
    layout, value = m.arg(0), m.arg(1)
    kind, _ = _value_kind(m, layout)  # (an ADDRESS layout: kind 9, no case below: slow)
    width = m.int_field(layout, "layout._byte_size")
    alignment = b.add(m.int_field(layout, "layout._mask"), i64(1))
    is_byte_layout = b.and_(
        b.icmp_signed("==", kind, i64(_contract.VALUE_KINDS["b"])), b.icmp_signed("==", width, i64(1))
    )
    with b.if_then(b.and_(is_byte_layout, model.is_exact(b, value, "PyBytes_Type"))):
        length = m.call("PyBytes_Size", value)
        segment, address = _carved(m, length, alignment)
        _copy_bytes(b, m, address, m.call("PyBytes_AsString", value), length)  # immutable
        b.ret(segment)
    with b.if_then(b.and_(is_byte_layout, model.is_exact(b, value, "PyByteArray_Type"))):
        length = m.call("PyByteArray_Size", value)
        m.slow_if(b.icmp_signed(">", length, i64(_contract.ARENA_SMALL)))
        _copy_bytes(b, m, staged, m.call("PyByteArray_AsString", value), length)
        segment, address = _carved(m, length, alignment)
        _copy_bytes(b, m, address, staged, length)
        b.ret(segment)
    _allocate_values(m, (layout, value), (kind, width, alignment), (staged, position))


def _allocate_values(
    m: _Method,
    arguments: tuple[ir.Value, ir.Value],
    of_layout: tuple[ir.Value, ir.Value, ir.Value],
    stage: tuple[ir.Value, ir.Value],
) -> None:
    """The rest of :func:`_allocate_from`: one value of the layout's carrier, or an exact
    list or tuple of them (staged first)."""
    b, model, helpers = m.b, m.model, m.helpers
    _, value = arguments
    kind, width, alignment = of_layout
    staged, position = stage
    is_list = model.is_exact(b, value, "PyList_Type")
    is_sequence = b.or_(is_list, model.is_exact(b, value, "PyTuple_Type"))
    switch = b.switch(kind, m.slow)
    for carrier, code in _contract.VALUE_KINDS.items():
        scalar = SCALARS[carrier]
        size = store_size(scalar_type(scalar))
        block = m.fn.append_basic_block(f"kind{code}")
        switch.add_case(i64(code), block)
        b.position_at_end(block)
        # a layout's size is its carrier's (one whose field was replaced: Python's)
        m.slow_if(b.icmp_signed("!=", width, i64(size)))

        def convert(item: ir.Value, scalar: ScalarKind = scalar) -> ir.Value:
            """An item of an exact built-in type, converted (which runs no Python code)."""
            m.slow_if(b.not_(model.is_exact(b, item, _EXACT_TYPES[scalar.form])))
            converted, ok = helpers.numbers.unbox(b, scalar, item)
            m.slow_if(b.not_(ok))
            return converted

        with b.if_then(is_sequence):
            count = _sequence_size(m, value, is_list)
            m.slow_if(b.icmp_signed(">", count, i64(_contract.ARENA_SMALL // size)))
            b.store(i64(0), position)
            head = m.fn.append_basic_block(f"stage{code}")
            body = m.fn.append_basic_block(f"stage{code}_one")
            done = m.fn.append_basic_block(f"staged{code}")
            b.branch(head)
            b.position_at_end(head)
            index = b.load(position)
            b.cbranch(b.icmp_signed("<", index, count), body, done)
            b.position_at_end(body)
            where = _at(b, staged, b.mul(index, i64(size)))
            b.store(convert(_sequence_item(m, value, is_list, index)), where, align=1)
            b.store(b.add(index, i64(1)), position)
            b.branch(head)
            b.position_at_end(done)
            total = b.mul(count, i64(size))
            segment, address = _carved(m, total, alignment)
            _copy_bytes(b, m, address, staged, total)
            b.ret(segment)
        converted = convert(value)
        segment, address = _carved(m, width, alignment)
        b.store(converted, address, align=1)
        b.ret(segment)


def _sequence_size(m: _Method, sequence: ir.Value, is_list: ir.Value) -> ir.Value:
    """The size of an exact list (``is_list``) or tuple."""
    b = m.b
    with b.if_else(is_list) as (listed, tupled):
        with listed:
            list_size = m.call("PyList_Size", sequence)
            list_block = b.block
        with tupled:
            tuple_size = m.call("PyTuple_Size", sequence)
            tuple_block = b.block
    size = b.phi(I64)
    size.add_incoming(list_size, list_block)
    size.add_incoming(tuple_size, tuple_block)
    return size


def _sequence_item(m: _Method, sequence: ir.Value, is_list: ir.Value, index: ir.Value) -> ir.Value:
    """Item ``index`` (in range) of an exact list (``is_list``) or tuple, borrowed."""
    b = m.b
    with b.if_else(is_list) as (listed, tupled):
        with listed:
            list_item = m.call("PyList_GetItem", sequence, index)
            list_block = b.block
        with tupled:
            tuple_item = m.call("PyTuple_GetItem", sequence, index)
            tuple_block = b.block
    item = b.phi(PTR)
    item.add_incoming(list_item, list_block)
    item.add_incoming(tuple_item, tuple_block)
    return item


#: ``Py_buffer`` (64-bit targets): the offsets of the fields read, and its size
_BUFFER_SIZE = 80
_BUFFER_BUF, _BUFFER_LEN, _BUFFER_ITEMSIZE, _BUFFER_READONLY, _BUFFER_NDIM = 0, 16, 24, 32, 36
#: ``PyBUF_FULL_RO``: what ``memoryview(obj)`` asks for
_PYBUF_FULL_RO = 0x011C


def _of_array(helpers: Helpers) -> None:
    """``MemorySegment.of_array(buffer)`` of ``bytes`` (a read-only segment over its bytes),
    ``bytearray``, ``array.array`` and writable ``memoryview`` objects (one-dimensional,
    C-contiguous, of a native format); other buffers (numpy arrays, ...) are Python's.  The
    segment's flat view of the object keeps its buffer exported, so it cannot be resized or
    freed while the segment (or a view made from it) exists."""
    m = _Method(helpers, "MemorySegment", "of_array")
    b, model, imports = m.b, m.model, m.imports
    m.no_keywords(1, 1)
    obj = m.arg(0)
    is_bytes = model.is_exact(b, obj, "PyBytes_Type")
    is_bytearray = model.is_exact(b, obj, "PyByteArray_Type")
    # exact types whose buffers are C code's: getting one runs no Python code
    is_buffer = b.or_(
        model.is_exact(b, obj, "PyMemoryView_Type"),
        b.icmp_unsigned("==", model.type_of(b, obj), imports.cell(b, _contract.CELL_ARRAY_TYPE)),
    )
    m.slow_if(b.not_(b.or_(b.or_(is_bytes, is_bytearray), is_buffer)))
    segment = _made_or_slow(
        m, m.call("PyType_GenericAlloc", imports.cell(b, _contract.CELL_HEAP_TYPE), i64(0))
    )

    def give_up_if(condition: ir.Value, *drop: ir.Value) -> None:
        """Go slow if ``condition``, the error cleared, dropping ``drop`` and the segment
        (its fields are unset: freeing it runs no Python code)."""
        with b.if_then(condition, likely=False):
            m.call("PyErr_Clear")
            for obj in drop:
                m.call("Py_DecRef", obj)
            m.call("Py_DecRef", segment)
        m.slow_if(condition)

    view = m.call("PyMemoryView_FromObject", obj)
    give_up_if(is_null(b, view))
    # the view exports the buffer: from here on it stays where it is, as long as it does

    def fill(
        flat: ir.Value, pin: ir.Value, memory: tuple[ir.Value, ir.Value], itemsize: ir.Value, read_only: int
    ) -> None:
        """Fill the segment (``flat``: a new reference to a flat "B" view of the buffer;
        ``memory``: its address and size) and return it."""
        address, size = memory
        low_bits = b.or_(b.and_(address, i64(_contract.SEGMENT_ALIGN_BITS)), i64(read_only))
        helpers.alloc.fill(
            b,
            segment,
            [
                ("segment._view", flat),
                ("segment._address", m.call("PyLong_FromSsize_t", address)),
                ("segment._size", m.call("PyLong_FromSsize_t", size)),
                ("segment._base", m.call("PyLong_FromSsize_t", i64(0))),
                ("segment._align", m.call("PyLong_FromSsize_t", low_bits)),
                ("heap._itemsize", m.call("PyLong_FromSsize_t", itemsize)),
            ],
            [
                ("segment._scope", imports.cell(b, _contract.CELL_GLOBAL_SCOPE)),
                ("segment._guard", imports.data("_Py_NoneStruct")),
                ("heap._object", obj),
                ("heap._pin", pin),
            ],
        )
        b.ret(segment)

    with b.if_then(is_bytes):  # immutable: the object itself pins its bytes
        address = b.ptrtoint(m.call("PyBytes_AsString", obj), I64)
        fill(view, obj, (address, m.call("PyBytes_Size", obj)), i64(1), _contract.SEGMENT_READ_ONLY_BIT)
    with b.if_then(is_bytearray):  # the view is flat already ("B")
        size = m.call("PyByteArray_Size", obj)
        address = b.select(
            b.icmp_signed("==", size, i64(0)), i64(0), b.ptrtoint(m.call("PyByteArray_AsString", obj), I64)
        )
        fill(view, view, (address, size), i64(1), 0)
    # array.array, memoryview: what the buffer is, then its flat view, as Python does
    # (PyObject_GetBuffer/PyBuffer_Release: see their entry in _contract.PYTHON_FUNCTIONS)
    buffer = b.alloca(ir.ArrayType(I8, _BUFFER_SIZE))
    buffer.align = 8
    got = m.call("PyObject_GetBuffer", view, buffer, ir.Constant(I32, _PYBUF_FULL_RO))
    give_up_if(b.icmp_signed("!=", got, ir.Constant(I32, 0)), view)

    def field(offset: int, kind: ir.Type) -> ir.Value:
        return b.load(b.gep(buffer, [i64(0), i64(offset)], source_etype=buffer.allocated_type), typ=kind)

    start = b.ptrtoint(field(_BUFFER_BUF, PTR), I64)
    size = field(_BUFFER_LEN, I64)
    itemsize = field(_BUFFER_ITEMSIZE, I64)
    read_only = field(_BUFFER_READONLY, I32)
    ndim = field(_BUFFER_NDIM, I32)
    m.call("PyBuffer_Release", buffer)  # the view still exports it
    writable_line = b.and_(
        b.icmp_signed("==", read_only, ir.Constant(I32, 0)), b.icmp_signed("==", ndim, ir.Constant(I32, 1))
    )
    give_up_if(b.not_(writable_line), view)  # read-only, or not one-dimensional: Python's
    # view.cast("B"): refused (left to Python) unless C-contiguous and of a native format
    cast, byte_format = imports.cell(b, _contract.CELL_CAST), imports.cell(b, _contract.CELL_BYTE_FORMAT)
    flat = m.call("PyObject_CallFunctionObjArgs", cast, view, byte_format, NULL)
    m.call("Py_DecRef", view)  # the flat view keeps the buffer exported
    give_up_if(is_null(b, flat))
    fill(flat, flat, (b.select(b.icmp_signed("==", size, i64(0)), i64(0), start), size), itemsize, 0)


def build_bulk_accelerators(helpers: Helpers) -> None:
    """Emit the bulk accelerators into ``helpers``' module."""
    for emit in (_to_bytes, _fill, _copy_from, _copy, _get_string, _set_string, _allocate_from, _of_array):
        emit(helpers)
