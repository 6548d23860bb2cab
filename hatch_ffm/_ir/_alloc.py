"""Native allocation of segments: a stub cuts its struct result from an ``Arena``'s slab or a
prefix or slicing allocator's segment itself, and ``Arena.allocate``'s accelerator cuts
from the slab, exactly as the Python methods would; everything else (new slabs, large
blocks, other allocators, every error) is left to Python.

Each allocation makes the segment object first (that may collect garbage, and so run
finalizers: any Python code), then checks and reads what it cuts from, with no Python code
in between and until the segment is complete.
"""

from __future__ import annotations

import enum

from llvmlite import ir

from ffm_runtime import _contract

from ._idioms import Idioms, is_null, not_null
from ._imports import Imports
from ._model import IntRead, Model
from ._reuse import helper_function
from ._types import I1, I32, I64, NULL, PTR, i64

__all__ = ["Allocation"]


class _Cut(enum.Enum):
    """The allocators of ``SegmentAllocator`` whose results a stub cuts itself, by the cell
    holding their type."""

    PREFIX = _contract.CELL_PREFIX_TYPE  #: ``prefix_allocator``: always from offset 0
    SLICING = _contract.CELL_SLICING_TYPE  #: ``slicing_allocator``: from its ``_offset`` on

    @property
    def segment_field(self) -> str:
        return "prefix._segment" if self is _Cut.PREFIX else "slicing._segment"


class Allocation:
    """The allocation helpers of one module."""

    def __init__(self, imports: Imports, idioms: Idioms, model: Model) -> None:
        self.imports = imports
        self.idioms = idioms
        self.model = model

    def carve(self, b: ir.IRBuilder, arena: ir.Value, size: ir.Value, alignment: ir.Value) -> ir.Value:
        """A new segment cut from ``arena``'s current slab, or NULL (see :meth:`_carve`)."""
        return b.call(self._carve, [arena, size, alignment])

    def allocate(self, b: ir.IRBuilder, allocator: ir.Value, size: int, alignment: int) -> ir.Value:
        """A struct result's segment from ``allocator``, or NULL (error set; see
        :meth:`_allocate`)."""
        return b.call(self._allocate, [allocator, i64(size), i64(alignment)])

    def global_segment(
        self, b: ir.IRBuilder, address: ir.Value, size: ir.Value, size_int: ir.Value = NULL
    ) -> ir.Value:
        """A new segment of ``size`` bytes at ``address`` in the global scope, as
        ``MemorySegment._make(address, size)`` makes it, or NULL (error set); see
        :meth:`_global_segment`.  ``size_int``: an exact ``int`` of value ``size`` that
        the segment shares (as Python's does: a target layout's size), or NULL."""
        return b.call(self._global_segment, [address, size, size_int])

    def address_result(self, b: ir.IRBuilder, address: ir.Value, size: ir.Value) -> ir.Value:
        """What an ``ADDRESS`` result denotes, as ``_handles.result_segment(address, size)``
        gives it: ``MemorySegment.NULL`` for 0, else :meth:`global_segment`."""
        return b.call(self._address_result, [address, size])

    @helper_function
    def _global_segment(self) -> ir.Function:
        """``global_segment(address, size) -> segment or NULL``: exactly a ``MemorySegment``
        (the global scope is not confined) with ``_address`` (unsigned), ``_size``,
        ``_scope`` the global scope, ``_guard`` and ``_view`` None, ``_base`` 0 and
        ``_align`` the address's low bits, as ``MemorySegment._make`` makes a writable
        one.  The object is made first (that may collect garbage: any Python code), then
        filled with new ints (``_size``: ``size_int``, a reference taken, unless NULL);
        nothing else is read, so nothing can change meanwhile."""
        fn, b = self.idioms.helper("global_segment", PTR, [I64, I64, PTR])
        address, size, size_int = fn.args
        call = self.imports.call
        # the shared size is held across the allocation (any code may run there)
        with b.if_then(not_null(b, size_int)):
            call(b, "Py_IncRef", size_int)
        segment = call(b, "PyType_GenericAlloc", self.imports.cell(b, _contract.CELL_SEGMENT_TYPE), i64(0))
        with b.if_then(is_null(b, segment), likely=False):
            with b.if_then(not_null(b, size_int)):
                call(b, "Py_DecRef", size_int)
            b.ret(NULL)
        none = self.imports.data("_Py_NoneStruct")
        size_slot = b.alloca(PTR)
        b.store(size_int, size_slot)
        with b.if_then(is_null(b, size_int)):
            b.store(call(b, "PyLong_FromSsize_t", size), size_slot)
        self.fill(
            b,
            segment,
            [
                ("segment._address", call(b, "PyLong_FromUnsignedLongLong", address)),
                ("segment._size", b.load(size_slot)),
                ("segment._base", call(b, "PyLong_FromSsize_t", i64(0))),
                (
                    "segment._align",
                    call(b, "PyLong_FromSsize_t", b.and_(address, i64(_contract.SEGMENT_ALIGN_BITS))),
                ),
            ],
            [
                ("segment._scope", self.imports.cell(b, _contract.CELL_GLOBAL_SCOPE)),
                ("segment._guard", none),
                ("segment._view", none),
            ],
        )
        b.ret(segment)
        return fn

    @helper_function
    def _address_result(self) -> ir.Function:
        """``address_result(address, size) -> segment or NULL`` (error set)."""
        fn, b = self.idioms.helper("address_result", PTR, [I64, I64])
        address, size = fn.args
        with b.if_then(b.icmp_unsigned("==", address, i64(0))):
            null = self.imports.cell(b, _contract.CELL_NULL_SEGMENT)
            self.imports.call(b, "Py_IncRef", null)
            b.ret(null)
        b.ret(self.global_segment(b, address, size))
        return fn

    @helper_function
    def _carve(self) -> ir.Function:
        """``carve(arena, size, alignment) -> segment or NULL``: a zeroed segment cut from the
        current slab of ``arena`` (exactly an ``Arena``; ``size`` <= ``ARENA_SMALL``, a power
        of two ``alignment`` <= ``ARENA_SLAB_ALIGN``), exactly as ``Arena.allocate`` would.

        NULL without an error set means "not here": no slab with room, or the arena is
        closed or owned by another thread; ``Arena.allocate`` then does (or refuses) it.
        """
        fn, b = self.idioms.helper("carve", PTR, [PTR, I64, I64])
        arena, size, alignment = fn.args
        model, call = self.model, self.imports.call
        model.give_up_if_unset(b, arena, "arena._segment_class")
        segment_class = model.load_field(b, arena, "arena._segment_class")
        # not one of the runtime's: Python's to judge
        self.idioms.give_up_if(b, b.not_(model.is_runtime_segment_type(b, segment_class)))
        segment = call(b, "PyType_GenericAlloc", segment_class, i64(0))
        with b.if_then(is_null(b, segment), likely=False):
            b.ret(NULL)
        model.give_up_if_unset(
            b, arena, "arena._confinement", "arena._cursor", "arena._limit", "arena._slab_view", drop=segment
        )
        guard = model.load_field(b, arena, "arena._confinement")
        # a confined arena of this thread or an unconfined one; a shared arena's slab is only
        # carved by Arena.allocate, under the arena's lock (another thread's Python allocation
        # may be between reading and moving the cursor)
        self.idioms.give_up_if(b, b.not_(model.owned_here(b, guard)), segment)
        cursor_field = model.field(b, arena, "arena._cursor")
        old_cursor = b.load(cursor_field, typ=PTR)
        # the cursor's int is dropped below: only an exact one (freeing it runs no Python code)
        self.idioms.give_up_if(b, b.not_(model.is_exact(b, old_cursor, "PyLong_Type")), segment)
        cursor = model.read_size(b, old_cursor)
        limit = model.read_size(b, model.load_field(b, arena, "arena._limit"))
        # a slab's state as the arena keeps it, else Python's business (no overflow below)
        self.idioms.give_up_if(
            b,
            b.or_(
                b.or_(b.icmp_signed("<", cursor, i64(0)), b.icmp_signed(">", cursor, limit)),
                b.icmp_signed(">", limit, i64(_contract.ARENA_SLAB_SIZE)),
            ),
            segment,
        )
        mask = b.sub(alignment, i64(1))
        offset = b.and_(b.add(cursor, mask), b.not_(mask))
        end = b.add(offset, size)
        self.idioms.give_up_if(b, b.icmp_signed(">", end, limit), segment)
        model.give_up_if_unset(b, arena, "arena._slab_start", "arena._slab_align", drop=segment)
        start, start_ok = model.read_int(b, model.load_field(b, arena, "arena._slab_start"), IntRead.SSIZE)
        low, low_ok = model.read_int(b, model.load_field(b, arena, "arena._slab_align"), IntRead.SSIZE)
        view = model.load_field(b, arena, "arena._slab_view")
        usable = b.and_(b.and_(start_ok, low_ok), model.is_exact(b, view, "PyMemoryView_Type"))
        usable = b.and_(usable, b.icmp_signed(">", start, i64(0)))
        self.idioms.give_up_if(b, b.not_(usable), segment)
        new_cursor = call(b, "PyLong_FromSsize_t", end)
        with b.if_then(is_null(b, new_cursor), likely=False):
            call(b, "Py_DecRef", segment)
            b.ret(NULL)
        b.store(new_cursor, cursor_field)
        # The segment's base is its offset in the slab: without padding, the old cursor's
        # int, whose reference the arena gives up, so the segment takes it over.
        with b.if_else(b.icmp_signed("==", offset, cursor)) as (share, make):
            with share:
                shared_block = b.block
            with make:
                made = call(b, "PyLong_FromSsize_t", offset)
                call(b, "Py_DecRef", old_cursor)  # an exact int: freeing it runs no Python code
                made_block = b.block
        base = b.phi(PTR)
        base.add_incoming(old_cursor, shared_block)
        base.add_incoming(made, made_block)
        # pooled slabs keep their old bytes: an allocation zeroes its own
        call(b, "memset", b.inttoptr(b.add(start, offset), PTR), ir.Constant(I32, 0), size)
        self.fill(
            b,
            segment,
            [
                ("segment._address", call(b, "PyLong_FromSsize_t", b.add(start, offset))),
                ("segment._align", call(b, "PyLong_FromSsize_t", b.add(low, offset))),
                ("segment._base", base),
                ("segment._size", call(b, "PyLong_FromSsize_t", size)),
            ],
            [("segment._view", view), ("segment._scope", arena), ("segment._guard", guard)],
        )
        b.ret(segment)
        return fn

    def fill(
        self,
        b: ir.IRBuilder,
        segment: ir.Value,
        new: list[tuple[str, ir.Value]],
        shared: list[tuple[str, ir.Value]],
    ) -> None:
        """Fill a new segment's fields: ``new`` references (any NULL: drop the segment and
        return NULL, the error set) and ``shared`` ones (a reference is taken)."""
        failed = ir.Constant(I1, 0)
        for name, value in new:
            b.store(value, self.model.field(b, segment, name))
            failed = b.or_(failed, is_null(b, value))
        for name, value in shared:
            self.imports.call(b, "Py_IncRef", value)
            b.store(value, self.model.field(b, segment, name))
        with b.if_then(failed, likely=False):
            self.imports.call(b, "Py_DecRef", segment)  # unset fields are NULL: dealloc skips them
            b.ret(NULL)

    def slice(
        self,
        b: ir.IRBuilder,
        segment: ir.Value,
        parent: ir.Value,
        offset: ir.Value,
        size: ir.Value,
        alignment: ir.Value,
    ) -> ir.Value:
        """Fill ``segment`` as ``parent.as_slice(offset, size, alignment)``, read-only
        parents included (see :meth:`_cut`)."""
        return b.call(self._cut, [segment, parent, offset, size, alignment, ir.Constant(I1, 1)])

    @helper_function
    def _cut(self) -> ir.Function:
        """``cut(segment, parent, offset, size, alignment, any) -> segment or NULL``: fills
        the new, empty ``segment`` (of ``parent``'s exact type, ``MemorySegment`` or the
        confined one) as the slice ``[offset, offset + size)`` of ``parent``, like
        ``parent.as_slice(offset, size, alignment)``: for the prefix and slicing allocators
        (``any`` false: writable parents only) and ``as_slice`` (``any``: a read-only
        parent gives a read-only slice).  A field whose value equals the parent's shares the
        parent's int (when it is an exact one).  Runs no Python code.  A parent without its
        view yet gives a slice without one either (made on first use, of the same bytes:
        Python makes the parent's first).

        NULL without an error set means "not here" (a read-only, closed or foreign segment,
        a scope that is not the global one or an open ``Arena``, out of bounds, a negative
        size, misaligned): ``segment`` is dropped and the Python method then does or
        refuses it.
        """
        fn, b = self.idioms.helper("cut", PTR, [PTR, PTR, I64, I64, I64, I1])
        segment, parent, offset, size, alignment, any_parent = fn.args
        model, call = self.model, self.imports.call
        model.give_up_if_unset(
            b,
            parent,
            "segment._guard",
            "segment._size",
            "segment._align",
            "segment._address",
            "segment._view",
            "segment._scope",
            "segment._base",
            drop=segment,
        )
        guard = model.load_field(b, parent, "segment._guard")
        # (a shared arena's: open; no Python code runs until the segment is complete)
        self.idioms.give_up_if(b, b.not_(model.usable_here(b, guard)), segment)
        self.idioms.give_up_if(
            b, b.not_(model.scope_alive(b, model.load_field(b, parent, "segment._scope"))), segment
        )
        size_field = model.load_field(b, parent, "segment._size")
        whole, whole_ok = model.read_int(b, size_field, IntRead.SSIZE)
        # (the allocators' Python paths read a size beyond Py_ssize_t as in bounds)
        whole = b.select(b.or_(whole_ok, any_parent), whole, model.read_size(b, size_field))
        low, low_ok = model.read_int(b, model.load_field(b, parent, "segment._align"), IntRead.SSIZE)
        address, address_ok = model.read_int(
            b, model.load_field(b, parent, "segment._address"), IntRead.UNSIGNED
        )
        view = model.load_field(b, parent, "segment._view")
        has_view = b.icmp_unsigned("!=", view, self.imports.data("_Py_NoneStruct"))
        parent_base, base_ok = model.read_int(b, model.load_field(b, parent, "segment._base"), IntRead.SSIZE)
        start = b.add(address, offset)
        bad = b.not_(b.and_(b.and_(low_ok, address_ok), b.or_(base_ok, b.not_(has_view))))
        bad = b.or_(
            bad, b.or_(b.icmp_signed("<", offset, i64(0)), b.icmp_signed(">", offset, b.sub(whole, size)))
        )
        bad = b.or_(bad, b.icmp_signed("<", size, i64(0)))
        bad = b.or_(bad, b.and_(any_parent, b.not_(whole_ok)))  # as_slice: Python's to judge
        read_only = b.and_(low, i64(_contract.SEGMENT_READ_ONLY_BIT))
        bad = b.or_(bad, b.and_(b.not_(any_parent), b.icmp_unsigned("!=", read_only, i64(0))))
        bad = b.or_(bad, b.icmp_unsigned("!=", b.and_(start, b.sub(alignment, i64(1))), i64(0)))
        self.idioms.give_up_if(b, bad, segment)
        base = b.select(has_view, b.add(parent_base, offset), i64(0))
        # Python: (address & ALIGN_BITS) | (the parent's READ_ONLY_BIT)
        low_bits = b.or_(b.and_(start, i64(_contract.SEGMENT_ALIGN_BITS)), read_only)
        at_start = b.icmp_signed("==", offset, i64(0))

        def field_int(name: str, same: ir.Value, value: ir.Value) -> tuple[str, ir.Value]:
            """A new reference for field ``name``: the parent's int if ``same`` and it is an
            exact int (freeing it then never runs Python code), else a new int of ``value``."""
            exact = model.is_exact(b, model.load_field(b, parent, name), "PyLong_Type")
            with b.if_else(b.and_(same, exact)) as (share, make):
                with share:
                    shared = model.load_field(b, parent, name)
                    call(b, "Py_IncRef", shared)
                    shared_block = b.block
                with make:
                    made = call(b, "PyLong_FromSsize_t", value)
                    made_block = b.block
            result = b.phi(PTR)
            result.add_incoming(shared, shared_block)
            result.add_incoming(made, made_block)
            return name, result

        self.fill(
            b,
            segment,
            [
                field_int("segment._address", at_start, start),
                field_int("segment._align", b.icmp_unsigned("==", low, low_bits), low_bits),
                field_int("segment._base", b.and_(has_view, at_start), base),
                field_int("segment._size", b.icmp_signed("==", size, whole), size),
            ],
            [
                ("segment._view", view),
                ("segment._scope", model.load_field(b, parent, "segment._scope")),
                ("segment._guard", guard),
            ],
        )
        b.ret(segment)
        return fn

    @helper_function
    def _allocate(self) -> ir.Function:
        """``allocate(allocator, size, alignment) -> segment or NULL`` (error set) for a
        struct result.  Python: ``ffm_runtime._handles.allocate_result``.

        From an ``Arena``, :meth:`_carve` cuts it when it can, from a prefix or slicing
        allocator :meth:`_cut`.  Everything else goes through the runtime's checking
        ``allocate`` cell (an arena's new slabs, large blocks and errors too: its
        ``allocate`` method may have been replaced, and what it returns is written to).
        """
        fn, b = self.idioms.helper("allocate", PTR, [PTR, I64, I64])
        allocator, size, alignment = fn.args
        call = self.imports.call
        kind = self.model.type_of(b, allocator)
        checked = fn.append_basic_block("checked")
        is_arena = b.icmp_unsigned("==", kind, self.imports.cell(b, _contract.CELL_ARENA_TYPE))
        small = b.and_(
            b.icmp_signed("<=", size, i64(_contract.ARENA_SMALL)),
            b.icmp_signed("<=", alignment, i64(_contract.ARENA_SLAB_ALIGN)),
        )
        with b.if_then(b.and_(is_arena, small)):
            self.idioms.return_unless_not_here(b, self.carve(b, allocator, size, alignment))
        for cut in _Cut:
            with b.if_then(b.icmp_unsigned("==", kind, self.imports.cell(b, cut.value))):
                self._cut_from(b, cut, allocator, size, alignment, checked)
        b.branch(checked)
        b.position_at_end(checked)
        b.ret(
            call(
                b,
                "PyObject_CallFunction",
                self.imports.cell(b, _contract.CELL_ALLOCATE),
                self.imports.cstring("Onn"),
                allocator,
                size,
                alignment,
            )
        )
        return fn

    def _cut_from(
        self,
        b: ir.IRBuilder,
        cut: _Cut,
        allocator: ir.Value,
        size: ir.Value,
        alignment: ir.Value,
        checked: ir.Block,
    ) -> None:
        """A prefix or slicing allocator's result, cut natively; branches to ``checked``
        (the Python path) when it is not here."""
        model, call = self.model, self.imports.call

        def not_here(drop: ir.Value | None = None) -> None:
            if drop is not None:
                call(b, "Py_DecRef", drop)
            b.branch(checked)

        def found(result: ir.Value) -> None:
            self.idioms.return_unless_not_here(b, result)
            not_here()

        first = model.load_field(b, allocator, cut.segment_field)
        with b.if_then(is_null(b, first), likely=False):
            not_here()
        segment_type = model.type_of(b, first)
        with b.if_then(b.not_(model.is_runtime_segment_type(b, segment_type)), likely=False):
            not_here()
        # the object first: allocating it may run any Python code, the allocator's included
        segment = call(b, "PyType_GenericAlloc", segment_type, i64(0))
        with b.if_then(is_null(b, segment), likely=False):
            b.ret(NULL)
        parent = model.load_field(b, allocator, cut.segment_field)  # read again: may have changed
        unset = is_null(b, parent)
        if cut is _Cut.SLICING:
            offset_field = model.field(b, allocator, "slicing._offset")
            unset = b.or_(unset, is_null(b, b.load(offset_field, typ=PTR)))
        with b.if_then(unset, likely=False):
            not_here(segment)
        with b.if_then(b.icmp_unsigned("!=", model.type_of(b, parent), segment_type), likely=False):
            not_here(segment)
        if cut is _Cut.PREFIX:
            found(b.call(self._cut, [segment, parent, i64(0), size, alignment, ir.Constant(I1, 0)]))
            return
        address_obj = model.load_field(b, parent, "segment._address")
        with b.if_then(is_null(b, address_obj), likely=False):
            not_here(segment)
        old_offset = b.load(offset_field, typ=PTR)
        base, base_ok = model.read_int(b, address_obj, IntRead.UNSIGNED)
        # the old offset's int is dropped below: only an exact one (no Python code runs)
        exact = model.is_exact(b, old_offset, "PyLong_Type")
        with b.if_then(b.not_(b.and_(base_ok, exact)), likely=False):
            not_here(segment)
        mask = b.sub(alignment, i64(1))
        start = b.and_(b.add(b.add(base, model.read_size(b, old_offset)), mask), b.not_(mask))
        offset = b.sub(start, base)
        new_offset = call(b, "PyLong_FromSsize_t", b.add(offset, size))
        with b.if_then(is_null(b, new_offset), likely=False):
            call(b, "Py_DecRef", segment)
            b.ret(NULL)
        result = b.call(self._cut, [segment, parent, offset, size, alignment, ir.Constant(I1, 0)])
        with b.if_then(not_null(b, result)):
            b.store(new_offset, offset_field)
            call(b, "Py_DecRef", old_offset)  # an exact int: freeing it runs no Python code
            b.ret(result)
        call(b, "Py_DecRef", new_offset)
        found(result)
