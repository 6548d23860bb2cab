"""The runtime's objects as native code sees them: fields, types, ints, the guard, segments.

Native code reads the ``__slots__`` fields of segments, arenas, value layouts and allocators
at the offsets the runtime finds at import (``_contract.OFFSETS``), and recognises objects by
their exact type.  Each rule of the Python side that native code repeats is written here
once, for stubs and accelerators alike:

- reading an int (:meth:`Model.read_int`, with CPython's conversions, which run no Python
  code: an ``int`` subclass's value is read, a ``__index__`` is never called);
- "the guard names this thread" (:meth:`Model.owned_here`), the check of confined memory;
- "this object is a segment this call may use" (:meth:`Model.check_segment`), the check
  of every segment argument.

Fields are unset (NULL) in an object made with ``object.__new__``; a field may hold
anything after ``object.__setattr__``.  Native code then gives up, and the Python method
raises.
"""

from __future__ import annotations

import enum

from llvmlite import ir

from ffm_runtime import _contract

from ._idioms import Idioms, is_null, return_pair, unpack
from ._imports import Imports
from ._reuse import helper_function
from ._types import I1, I8, I64, NULL, PTR, i64, pair_type

__all__ = ["IntRead", "Model"]


class IntRead(enum.Enum):
    """How an ``int`` is read, by the CPython function that reads it."""

    #: a ``Py_ssize_t``: sizes, offsets, alignment bits
    SSIZE = "PyLong_AsSsize_t"
    #: an unsigned word in ``[0, 2**64)``: addresses, thread idents
    UNSIGNED = "PyLong_AsUnsignedLong"


#: what a size beyond ``Py_ssize_t`` reads as (see :meth:`Model.read_size`)
LARGEST_SIZE = 2**63 - 1


class Model:
    """Reading (and, for the accelerators, writing) the runtime's objects."""

    def __init__(self, imports: Imports, idioms: Idioms) -> None:
        self.imports = imports
        self.idioms = idioms

    # -- fields ---------------------------------------------------------------------------
    def field(self, b: ir.IRBuilder, obj: ir.Value, name: str) -> ir.Value:
        """The address of field ``name`` (see ``_contract.OFFSETS``) of the object ``obj``."""
        return b.gep(obj, [self.imports.offset(b, name)], source_etype=I8)

    def load_field(self, b: ir.IRBuilder, obj: ir.Value, name: str) -> ir.Value:
        """The ``PyObject *`` in field ``name`` of ``obj`` (borrowed; NULL if unset)."""
        return b.load(self.field(b, obj, name), typ=PTR)

    def store_field(self, b: ir.IRBuilder, obj: ir.Value, name: str, value: ir.Value, *, new: bool) -> None:
        """Store ``value`` in field ``name`` of ``obj``, dropping the old value; ``new``: the
        reference is ours to give (otherwise a reference is taken)."""
        where = self.field(b, obj, name)
        old = b.load(where, typ=PTR)
        if not new:
            self.imports.call(b, "Py_IncRef", value)
        b.store(value, where)
        self.imports.call(b, "Py_DecRef", old)  # NULL if it was unset

    def any_unset(self, b: ir.IRBuilder, obj: ir.Value, *names: str) -> ir.Value:
        """Whether any of these fields of ``obj`` is unset."""
        unset = ir.Constant(I1, 0)
        for name in names:
            unset = b.or_(unset, is_null(b, self.load_field(b, obj, name)))
        return unset

    def give_up_if_unset(
        self, b: ir.IRBuilder, obj: ir.Value, *names: str, drop: ir.Value | None = None
    ) -> None:
        """Give up (dropping ``drop``) if any of these fields of ``obj`` is unset."""
        self.idioms.give_up_if(b, self.any_unset(b, obj, *names), drop)

    # -- types ----------------------------------------------------------------------------
    def type_of(self, b: ir.IRBuilder, obj: ir.Value) -> ir.Value:
        return self.load_field(b, obj, "ob_type")

    def is_exact(self, b: ir.IRBuilder, obj: ir.Value, type_name: str) -> ir.Value:
        """Whether ``obj`` is exactly of the built-in type ``type_name`` (``PyLong_Type``):
        freeing one runs no Python code, converting one calls no Python method."""
        return b.icmp_unsigned("==", self.type_of(b, obj), self.imports.data(type_name))

    def is_one_of(self, b: ir.IRBuilder, kind: ir.Value, *cells: str) -> ir.Value:
        """Whether the type ``kind`` is one of the runtime's types in these cells."""
        found = ir.Constant(I1, 0)
        for cell in cells:
            found = b.or_(found, b.icmp_unsigned("==", kind, self.imports.cell(b, cell)))
        return found

    def is_runtime_segment_type(self, b: ir.IRBuilder, kind: ir.Value) -> ir.Value:
        """Whether ``kind`` is ``MemorySegment`` or the confined or shared segments' type:
        the types native code makes segments of."""
        return self.is_one_of(
            b, kind, _contract.CELL_SEGMENT_TYPE, _contract.CELL_CONFINED_TYPE, _contract.CELL_SHARED_TYPE
        )

    # -- ints -----------------------------------------------------------------------------
    def read_int(self, b: ir.IRBuilder, obj: ir.Value, how: IntRead) -> tuple[ir.Value, ir.Value]:
        """``(value, ok)``: the ``int`` ``obj`` (not NULL) read ``how``; not ok (the error
        cleared) if it is no int or out of range.  Emitted in place (hot)."""
        return self.idioms.checked_call(b, how.value, obj)

    def read_size(self, b: ir.IRBuilder, obj: ir.Value) -> ir.Value:
        """A size field's value (``obj`` not NULL); one that is no ``Py_ssize_t`` (beyond its
        range, or no int) reads as the largest size."""
        value, ok = self.read_int(b, obj, IntRead.SSIZE)
        return b.select(ok, value, i64(LARGEST_SIZE))

    # -- the guard ------------------------------------------------------------------------
    def owned_here(self, b: ir.IRBuilder, guard: ir.Value) -> ir.Value:
        """Whether ``guard`` (an arena's ``_confinement``, a segment's ``_guard``) lets this
        thread in: ``None`` (not confined), or a list whose first item is this thread's
        ident.  No (the error cleared) for anything else: NULL, a closed arena's guard (0),
        a malformed one.  Runs no Python code; emitted in place (hot).  Python: ``guard is
        None or guard[0] == threading.get_ident()`` (``ffm_runtime._memory``)."""
        fn = b.function
        confined = fn.append_basic_block("confined")
        listed = fn.append_basic_block("listed")
        malformed = fn.append_basic_block("malformed")
        read = fn.append_basic_block("owner")
        done = fn.append_basic_block("owned")
        unconfined = b.block
        b.cbranch(b.icmp_unsigned("==", guard, self.imports.data("_Py_NoneStruct")), done, confined)
        b.position_at_end(confined)
        b.cbranch(is_null(b, guard), done, listed)
        b.position_at_end(listed)
        owner = self.imports.call(b, "PyList_GetItem", guard, i64(0))
        b.cbranch(is_null(b, owner), malformed, read)
        b.position_at_end(malformed)
        self.imports.call(b, "PyErr_Clear")  # not a list, or an empty one
        b.branch(done)
        b.position_at_end(read)
        current = self.imports.call(b, "PyThread_get_thread_ident")
        owner_value, known = self.read_int(b, owner, IntRead.UNSIGNED)
        mine = b.and_(known, b.icmp_unsigned("==", owner_value, current))
        compared = b.block
        b.branch(done)
        b.position_at_end(done)
        owned = b.phi(I1)
        owned.add_incoming(ir.Constant(I1, 1), unconfined)
        owned.add_incoming(ir.Constant(I1, 0), confined)
        owned.add_incoming(ir.Constant(I1, 0), malformed)
        owned.add_incoming(mine, compared)
        return owned

    def scope_alive(self, b: ir.IRBuilder, scope: ir.Value) -> ir.Value:
        """Whether ``scope`` (a segment's ``_scope``, not NULL) is known to be alive: the
        global scope, or exactly an ``Arena`` whose ``_alive`` is ``True``.  No for anything
        else (Python's ``scope.is_alive()`` judges it).  Emitted in place."""
        fn = b.function
        arena = fn.append_basic_block("scope_arena")
        done = fn.append_basic_block("scope_known")
        start = b.block
        is_global = b.icmp_unsigned("==", scope, self.imports.cell(b, _contract.CELL_GLOBAL_SCOPE))
        b.cbranch(is_global, done, arena)
        b.position_at_end(arena)
        is_arena = b.icmp_unsigned(
            "==", self.type_of(b, scope), self.imports.cell(b, _contract.CELL_ARENA_TYPE)
        )
        on_arena = fn.append_basic_block("scope_open")
        b.cbranch(is_arena, on_arena, done)
        b.position_at_end(on_arena)
        open_ = b.icmp_unsigned(
            "==", self.load_field(b, scope, "arena._alive"), self.imports.data("_Py_TrueStruct")
        )
        b.branch(done)
        b.position_at_end(done)
        alive = b.phi(I1)
        alive.add_incoming(ir.Constant(I1, 1), start)
        alive.add_incoming(ir.Constant(I1, 0), arena)
        alive.add_incoming(open_, on_arena)
        return alive

    def is_open_shared(self, b: ir.IRBuilder, guard: ir.Value) -> ir.Value:
        """Whether ``guard`` (not NULL) is an open shared arena's: a list whose first item is
        the ``CELL_SHARED_MARK`` object.  No (the error cleared) for anything else.  Runs no
        Python code; emitted in place.  Python: ``type(guard) is _SharedGuard and guard[0] ==
        _SHARED`` (``ffm_runtime._memory``; the mark is compared by identity here)."""
        fn = b.function
        listed = fn.append_basic_block("shared_listed")
        done = fn.append_basic_block("shared_done")
        start = b.block
        none = self.imports.data("_Py_NoneStruct")
        b.cbranch(b.or_(is_null(b, guard), b.icmp_unsigned("==", guard, none)), done, listed)
        b.position_at_end(listed)
        first = self.imports.call(b, "PyList_GetItem", guard, i64(0))
        with b.if_then(is_null(b, first), likely=False):
            self.imports.call(b, "PyErr_Clear")  # not a list, or an empty one
        mark = self.imports.cell(b, _contract.CELL_SHARED_MARK)
        found = b.and_(b.not_(is_null(b, first)), b.icmp_unsigned("==", first, mark))
        compared = b.block
        b.branch(done)
        b.position_at_end(done)
        result = b.phi(I1)
        result.add_incoming(ir.Constant(I1, 0), start)
        result.add_incoming(found, compared)
        return result

    def usable_here(self, b: ir.IRBuilder, guard: ir.Value) -> ir.Value:
        """Whether this thread may use memory under ``guard`` now, with the GIL held and no
        Python code running until the access: :meth:`owned_here`, or an open shared arena's
        guard (:meth:`is_open_shared`).  Emitted in place."""
        # the shared mark first: reading it as a thread ident would raise (and clear) an error
        open_shared = self.is_open_shared(b, guard)
        fn = b.function
        owner = fn.append_basic_block("usable_owner")
        done = fn.append_basic_block("usable_done")
        start = b.block
        b.cbranch(open_shared, done, owner)
        b.position_at_end(owner)
        owned = self.owned_here(b, guard)
        checked = b.block
        b.branch(done)
        b.position_at_end(done)
        result = b.phi(I1)
        result.add_incoming(ir.Constant(I1, 1), start)
        result.add_incoming(owned, checked)
        return result

    # -- segments -------------------------------------------------------------------------
    def check_segment(
        self,
        b: ir.IRBuilder,
        obj: ir.Value,
        min_size: int,
        allow_heap: bool,
        written: bool,
        verified: ir.Value,
        shared: ir.Value,
    ) -> tuple[ir.Value, ir.Value]:
        """``(address, ok)`` of ``obj`` as a segment argument of a call (see
        :meth:`_segment_check`)."""
        return unpack(
            b,
            b.call(
                self._segment_check,
                [
                    obj,
                    i64(min_size),
                    ir.Constant(I1, int(allow_heap)),
                    ir.Constant(I1, int(written)),
                    verified,
                    shared,
                ],
            ),
        )

    @helper_function
    def _segment_check(self) -> ir.Function:
        """``segment(obj, min_size, allow_heap, written, verified, shared) -> {address, ok}``.

        Segments usable anywhere are exactly of the ``MemorySegment`` type (fast path);
        confined ones are exactly of a subclass whose guard must name this thread (and which,
        the first time a call finds it, is stored in ``*shared``: a callback the native
        function makes runs Python code on this thread, which must not close the arena
        while the function uses its memory); shared ones of another, whose guard must be
        open (:meth:`is_open_shared`), and which is then stored in ``*shared``, for the
        caller to acquire while the GIL is released;
        heap ones of another subclass, allowed only when ``allow_heap``.  ``min_size`` < 0 skips
        the size check (an ``ADDRESS`` argument); ``written`` (the capture segment, which
        the stub writes) refuses read-only segments.  ``verified`` points to the guard last
        found to name this thread during this call (segments of one arena share it; no
        Python code runs between the checks of one call's segments, so it cannot change
        meanwhile).  Not ok: no error is set (the caller reports).
        """
        fn, b = self.idioms.helper("segment", pair_type(PTR), [PTR, I64, I1, I1, PTR, PTR])
        obj, min_size, allow_heap, written, verified, shared = fn.args
        fail = fn.append_basic_block("fail")

        def fail_if(condition: ir.Value) -> None:
            go_on = fn.append_basic_block("checked")
            b.cbranch(condition, fail, go_on)
            b.position_at_end(go_on)

        kind = self.type_of(b, obj)
        with b.if_then(
            b.icmp_unsigned("!=", kind, self.imports.cell(b, _contract.CELL_SEGMENT_TYPE)), likely=False
        ):
            confined = b.icmp_unsigned("==", kind, self.imports.cell(b, _contract.CELL_CONFINED_TYPE))
            with b.if_else(confined) as (then, otherwise):
                with then:
                    guard = self.load_field(b, obj, "segment._guard")
                    fail_if(
                        b.or_(
                            is_null(b, guard),
                            b.icmp_unsigned("==", guard, self.imports.data("_Py_NoneStruct")),
                        )
                    )
                    with b.if_then(b.icmp_unsigned("!=", guard, b.load(verified, typ=PTR))):
                        fail_if(b.not_(self.owned_here(b, guard)))
                        b.store(guard, verified)
                        b.store(guard, shared)
                with otherwise:
                    is_shared = b.icmp_unsigned("==", kind, self.imports.cell(b, _contract.CELL_SHARED_TYPE))
                    with b.if_else(is_shared) as (shared_type, other_type):
                        with shared_type:
                            guard = self.load_field(b, obj, "segment._guard")
                            fail_if(b.not_(self.is_open_shared(b, guard)))
                            b.store(guard, shared)
                        with other_type:
                            heap = b.icmp_unsigned("==", kind, self.imports.cell(b, _contract.CELL_HEAP_TYPE))
                            fail_if(b.not_(b.and_(allow_heap, heap)))
        raw = self.load_field(b, obj, "segment._address")
        fail_if(is_null(b, raw))
        address, address_ok = self.read_int(b, raw, IntRead.UNSIGNED)
        fail_if(b.not_(address_ok))
        with b.if_then(written, likely=False):
            low = self.load_field(b, obj, "segment._align")
            fail_if(is_null(b, low))
            low_value, low_ok = self.read_int(b, low, IntRead.SSIZE)
            read_only = b.and_(low_value, i64(_contract.SEGMENT_READ_ONLY_BIT))
            fail_if(b.or_(b.not_(low_ok), b.icmp_unsigned("!=", read_only, i64(0))))
        with b.if_then(b.icmp_signed(">=", min_size, i64(0))):
            size = self.load_field(b, obj, "segment._size")
            fail_if(is_null(b, size))
            fail_if(b.icmp_signed("<", self.read_size(b, size), min_size))
        return_pair(b, b.inttoptr(address, PTR), ir.Constant(I1, 1))
        b.position_at_end(fail)
        self.imports.call(b, "PyErr_Clear")  # a failed lookup of a tampered field
        return_pair(b, NULL, ir.Constant(I1, 0))
        return fn
