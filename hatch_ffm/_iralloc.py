"""Native allocation of struct results: a stub cuts its result segment from an ``Arena``'s
slab or a prefix or slicing allocator's segment itself, exactly as the Python allocator
would, and leaves everything else (new slabs, large blocks, other allocators, every error)
to Python.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from ffm_runtime import _abi

from ._irbase import I1, I32, I64, PTR, HelperBase

__all__ = ["AllocationHelpers"]


class AllocationHelpers(HelperBase):
    """The helpers of :class:`HelperBase` and those that allocate struct results."""

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
        fn, b = self._function("carve", PTR, [PTR, I64, I64], inline=False)
        arena, size, alignment = fn.args
        null = ir.Constant(PTR, None)
        self._unless_unset(b, arena, "arena._segment_class")
        segment_class = self.load_field(b, arena, "arena._segment_class")
        known = b.or_(
            b.icmp_unsigned("==", segment_class,
                            b.load(self.imports.data(_abi.CELL_SEGMENT_TYPE), typ=PTR)),
            b.icmp_unsigned("==", segment_class,
                            b.load(self.imports.data(_abi.CELL_CONFINED_TYPE), typ=PTR)))
        self._give_up_if(b, b.not_(known), None)  # not one of the runtime's: Python's to judge
        segment = self.call(b, "PyType_GenericAlloc", segment_class, ir.Constant(I64, 0))
        with b.if_then(b.icmp_unsigned("==", segment, null), likely=False):
            b.ret(null)
        self._unless_unset(b, arena, "arena._confinement", "arena._cursor", "arena._limit",
                           "arena._slab_view", drop=segment)
        guard = self.load_field(b, arena, "arena._confinement")
        self._give_up_if(b, b.not_(self._owned_here(b, guard)), segment)
        cursor_field = self.field(b, arena, "arena._cursor")
        old_cursor = b.load(cursor_field, typ=PTR)
        # the cursor's int is dropped below: only an exact one (freeing it runs no Python code)
        self._give_up_if(b, b.icmp_unsigned("!=", self.load_field(b, old_cursor, "ob_type"),
                                            self.imports.data("PyLong_Type")), segment)
        cursor = self._size_of(b, old_cursor)
        limit = self._size_of(b, self.load_field(b, arena, "arena._limit"))
        # a slab's state as the arena keeps it, else Python's business (no overflow below)
        self._give_up_if(b, b.or_(b.or_(b.icmp_signed("<", cursor, ir.Constant(I64, 0)),
                                         b.icmp_signed(">", cursor, limit)),
                                  b.icmp_signed(">", limit, ir.Constant(
                                      I64, _abi.ARENA_SLAB_SIZE))), segment)
        mask = b.sub(alignment, ir.Constant(I64, 1))
        offset = b.and_(b.add(cursor, mask), b.not_(mask))
        end = b.add(offset, size)
        self._give_up_if(b, b.icmp_signed(">", end, limit), segment)
        self._unless_unset(b, arena, "arena._slab_start", "arena._slab_align", drop=segment)
        start, start_ok = self.ssize_of(b, self.load_field(b, arena, "arena._slab_start"))
        low, low_ok = self.ssize_of(b, self.load_field(b, arena, "arena._slab_align"))
        view = self.load_field(b, arena, "arena._slab_view")
        usable = b.and_(b.and_(start_ok, low_ok), b.icmp_unsigned(
            "==", self.load_field(b, view, "ob_type"), self.imports.data("PyMemoryView_Type")))
        usable = b.and_(usable, b.icmp_signed(">", start, ir.Constant(I64, 0)))
        self._give_up_if(b, b.not_(usable), segment)
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
        base = b.phi(PTR)
        base.add_incoming(old_cursor, shared_block)
        base.add_incoming(made, made_block)
        # pooled slabs keep their old bytes: an allocation zeroes its own
        self.call(b, "memset", b.inttoptr(b.add(start, offset), PTR), ir.Constant(I32, 0), size)
        self._fill(b, segment, [
            ("segment._address", self.call(b, "PyLong_FromSsize_t", b.add(start, offset))),
            ("segment._align", self.call(b, "PyLong_FromSsize_t", b.add(low, offset))),
            ("segment._base", base),
            ("segment._size", self.call(b, "PyLong_FromSsize_t", size)),
        ], [("segment._view", view),
            ("segment._scope", arena), ("segment._guard", guard)])
        b.ret(segment)
        return fn

    def _fill(self, b: ir.IRBuilder, segment: ir.Value, new: list[tuple[str, ir.Value]],
              shared: list[tuple[str, ir.Value]]) -> None:
        """Fill a new segment's fields: ``new`` references (any NULL: drop the segment and
        return NULL, the error set) and ``shared`` ones (a reference is taken)."""
        failed = ir.Constant(I1, 0)
        for name, value in new:
            b.store(value, self.field(b, segment, name))
            failed = b.or_(failed, b.icmp_unsigned("==", value, ir.Constant(PTR, None)))
        for name, value in shared:
            self.call(b, "Py_IncRef", value)
            b.store(value, self.field(b, segment, name))
        with b.if_then(failed, likely=False):
            self.call(b, "Py_DecRef", segment)
            b.ret(ir.Constant(PTR, None))

    def _make_cut(self) -> ir.Function:
        """``cut(segment, parent, offset, size, alignment) -> segment or NULL``: fills the
        new, empty ``segment`` (of ``parent``'s exact type, ``MemorySegment`` or the
        confined one) as the writable slice ``[offset, offset + size)`` of ``parent``, like
        ``parent.as_slice(offset, size, alignment)``, for the prefix and slicing
        allocators.  A field whose value equals the parent's shares the parent's int (when
        it is an exact one).  Runs no Python code.

        NULL without an error set means "not here" (a read-only, closed or foreign segment,
        out of bounds, misaligned): ``segment`` is dropped and the Python allocator then
        does or refuses it.
        """
        fn, b = self._function("cut", PTR, [PTR, PTR, I64, I64, I64], inline=False)
        segment, parent, offset, size, alignment = fn.args
        none = self.imports.data("_Py_NoneStruct")
        self._unless_unset(b, parent, "segment._guard", "segment._size", "segment._align",
                           "segment._address", "segment._view", "segment._scope",
                           "segment._base", drop=segment)
        guard = self.load_field(b, parent, "segment._guard")
        self._give_up_if(b, b.not_(self._owned_here(b, guard)), segment)
        whole = self._size_of(b, self.load_field(b, parent, "segment._size"))
        low, low_ok = self.ssize_of(b, self.load_field(b, parent, "segment._align"))
        address, address_ok = self.address_of(b, self.load_field(b, parent, "segment._address"))
        view = self.load_field(b, parent, "segment._view")
        has_view = b.icmp_unsigned("!=", view, none)
        parent_base, base_ok = self.ssize_of(b, self.load_field(b, parent, "segment._base"))
        start = b.add(address, offset)
        bad = b.not_(b.and_(b.and_(low_ok, address_ok), b.or_(base_ok, b.not_(has_view))))
        bad = b.or_(bad, b.or_(b.icmp_signed("<", offset, ir.Constant(I64, 0)),
                               b.icmp_signed(">", offset, b.sub(whole, size))))
        bad = b.or_(bad, b.icmp_unsigned("!=", b.and_(low, ir.Constant(
            I64, _abi.SEGMENT_READ_ONLY_BIT)), ir.Constant(I64, 0)))
        bad = b.or_(bad, b.icmp_unsigned("!=", b.and_(start, b.sub(alignment, ir.Constant(
            I64, 1))), ir.Constant(I64, 0)))
        self._give_up_if(b, bad, segment)
        base = b.select(has_view, b.add(parent_base, offset), ir.Constant(I64, 0))
        low_bits = b.and_(start, ir.Constant(I64, _abi.SEGMENT_ALIGN_BITS))
        at_start = b.icmp_signed("==", offset, ir.Constant(I64, 0))

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
            result = b.phi(PTR)
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

    def _make_allocate(self) -> ir.Function:
        """``allocate(allocator, size, alignment) -> segment or NULL`` for a struct result.

        From an ``Arena``, :meth:`_make_carve` cuts it when it can, from a prefix or slicing
        allocator :meth:`_make_cut`.  Otherwise an arena is asked (``arena.allocate(size,
        alignment)``: new slabs, large blocks and every error are its business), and any
        other allocator goes through the runtime's checking ``allocate`` cell (so do prefix
        and slicing allocators whose segment is not cut here: their errors are Python's).
        """
        fn, b = self._function("allocate", PTR, [PTR, I64, I64], inline=False)
        allocator, size, alignment = fn.args
        null = ir.Constant(PTR, None)
        kind = self.load_field(b, allocator, "ob_type")
        cell = b.load(self.imports.data(_abi.CELL_ALLOCATE), typ=PTR)
        checked = fn.append_basic_block("checked")

        def gave_up(result: ir.Value) -> None:
            """``result`` NULL: an error is returned, or else the checked path is taken."""
            with b.if_then(b.icmp_unsigned("!=", result, null)):
                b.ret(result)
            with b.if_then(b.icmp_unsigned("!=", self.call(b, "PyErr_Occurred"), null),
                           likely=False):
                b.ret(null)
            b.branch(checked)

        arena_type = b.load(self.imports.data(_abi.CELL_ARENA_TYPE), typ=PTR)
        is_arena = b.icmp_unsigned("==", kind, arena_type)
        small = b.and_(b.icmp_signed("<=", size, ir.Constant(I64, _abi.ARENA_SMALL)),
                       b.icmp_signed("<=", alignment, ir.Constant(I64, _abi.ARENA_SLAB_ALIGN)))
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
            name = b.load(self.imports.data(_abi.CELL_ALLOCATE_NAME), typ=PTR)
            result = self.call(b, "PyObject_CallMethodObjArgs", allocator, name, size_obj,
                               alignment_obj, null)
            self.call(b, "Py_DecRef", size_obj)
            self.call(b, "Py_DecRef", alignment_obj)
            b.ret(result)
        for prefix in ("prefix", "slicing"):
            allocator_type = b.load(self.imports.data(
                _abi.CELL_PREFIX_TYPE if prefix == "prefix" else _abi.CELL_SLICING_TYPE), typ=PTR)
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
        null = ir.Constant(PTR, None)
        field = f"{kind}._segment"
        first = self.load_field(b, allocator, field)
        with b.if_then(b.icmp_unsigned("==", first, null), likely=False):
            b.branch(checked)
        segment_type = self.load_field(b, first, "ob_type")
        plain = b.load(self.imports.data(_abi.CELL_SEGMENT_TYPE), typ=PTR)
        confined = b.load(self.imports.data(_abi.CELL_CONFINED_TYPE), typ=PTR)
        native = b.or_(b.icmp_unsigned("==", segment_type, plain),
                       b.icmp_unsigned("==", segment_type, confined))
        with b.if_then(b.not_(native), likely=False):
            b.branch(checked)
        # the object first: allocating it may run any Python code, the allocator's included
        segment = self.call(b, "PyType_GenericAlloc", segment_type, ir.Constant(I64, 0))
        with b.if_then(b.icmp_unsigned("==", segment, null), likely=False):
            b.ret(null)
        parent = self.load_field(b, allocator, field)  # read again: it may have changed
        unset = b.icmp_unsigned("==", parent, null)
        offset_field = None
        if kind == "slicing":
            offset_field = self.field(b, allocator, "slicing._offset")
            unset = b.or_(unset, b.icmp_unsigned("==", b.load(offset_field, typ=PTR), null))
        with b.if_then(unset, likely=False):
            self.call(b, "Py_DecRef", segment)
            b.branch(checked)
        with b.if_then(b.icmp_unsigned("!=", self.load_field(b, parent, "ob_type"),
                                       segment_type), likely=False):
            self.call(b, "Py_DecRef", segment)
            b.branch(checked)
        if offset_field is None:
            result = b.call(self.get("cut"), [segment, parent, ir.Constant(I64, 0), size,
                                              alignment])
            gave_up(result)
            return
        address_obj = self.load_field(b, parent, "segment._address")
        with b.if_then(b.icmp_unsigned("==", address_obj, null), likely=False):
            self.call(b, "Py_DecRef", segment)
            b.branch(checked)
        old_offset = b.load(offset_field, typ=PTR)
        base, base_ok = self.address_of(b, address_obj)
        # the old offset's int is dropped below: only an exact one (no Python code runs)
        exact = b.icmp_unsigned("==", self.load_field(b, old_offset, "ob_type"),
                                self.imports.data("PyLong_Type"))
        with b.if_then(b.not_(b.and_(base_ok, exact)), likely=False):
            self.call(b, "Py_DecRef", segment)
            b.branch(checked)
        mask = b.sub(alignment, ir.Constant(I64, 1))
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
