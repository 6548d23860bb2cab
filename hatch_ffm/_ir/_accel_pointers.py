"""The accelerators of segments made from segments: ``MemorySegment.reinterpret`` and
``MemorySegment.as_slice`` (see ``_accelerators`` for how an accelerator hands every other
case, errors included, to the Python method).

``reinterpret`` is restricted: the native method lets a caller through only when the
native-access check already let the same calling code through and remembered it, and every
fact that decision was made from is still the same object (``ffm_runtime._access``; the
table is the ``CELL_NATIVE_ACCESS`` cell).  Any other caller goes to the Python method,
which checks (and may remember).

(``_accelerators`` imports this module to emit these; the method builder, ``_Method``, is
used only then, once both are loaded.)
"""

from __future__ import annotations

from llvmlite import ir

from ffm_runtime import _contract

from . import _accelerators
from ._helpers import Helpers
from ._idioms import is_null
from ._model import IntRead
from ._types import I64, NULL, PTR, i64

__all__ = ["build_pointer_accelerators"]


def _caller_let_through(m: _accelerators._Method) -> None:
    """Go on only if a decision remembered for the calling code still holds (see
    ``ffm_runtime._access._remembered``): the calling code's entry, whose globals, their
    ``__name__`` (and ``__spec__`` for ``__main__``), and both variables' values are the same
    objects now; and ``os.environ`` is still the one whose dictionary is read, and that is
    still its ``_data``.  Python code can run here (a key of a dictionary looked in whose
    hash collides with the key looked up is compared with it; a descriptor named ``_data``):
    nothing is read before the check that this code could change, and the entry is held."""
    b = m.b
    frame = m.call("PyEval_GetFrame")
    m.slow_if(is_null(b, frame))  # no Python caller: only the policy decides
    scope = m.call("PyEval_GetGlobals")
    m.slow_if(is_null(b, scope))
    code = m.call("PyFrame_GetCode", frame)  # a new reference; the frame keeps it alive
    m.call("Py_DecRef", code)
    state = m.imports.cell(b, _contract.CELL_NATIVE_ACCESS)
    items = {
        name: m.call("PyTuple_GetItem", state, i64(index))
        for index, name in enumerate(_contract.NATIVE_ACCESS_ITEMS)
    }

    def lookup(mapping: ir.Value, key: ir.Value) -> ir.Value:
        """``mapping.get(key, absent)`` (borrowed)."""
        found = m.call("PyDict_GetItem", mapping, key)
        return b.select(is_null(b, found), items["absent"], found)

    # the decision of last time, or the one remembered for this code: keyed by the code's id
    # (hashing a code object hashes its constants)
    entry_slot = b.alloca(PTR)
    last_code = m.call("PyList_GetItem", items["last"], i64(0))
    with b.if_else(b.icmp_unsigned("==", last_code, code)) as (again, other):
        with again:
            b.store(m.call("PyList_GetItem", items["last"], i64(1)), entry_slot)
        with other:
            key = m.call("PyLong_FromUnsignedLongLong", b.ptrtoint(code, I64))
            m.slow_if(is_null(b, key))  # (MemoryError: the Python method meets it too)
            b.store(m.call("PyDict_GetItem", items["decided"], key), entry_slot)
            m.call("Py_DecRef", key)  # an exact int: freeing it runs no Python code
    entry = b.load(entry_slot, typ=PTR)
    m.slow_if(is_null(b, entry))
    m.slow_if(b.not_(m.model.is_exact(b, entry, "PyTuple_Type")))  # (None: nothing last)
    # A dictionary lookup below may run Python code (a key whose hash collides with the one
    # looked up compares itself with it), which may decide again and drop the entry: it is
    # held until the checks are done, and dropped on the way to the slow path too.
    m.call("Py_IncRef", entry)
    slow = m.slow
    m.slow = m.fn.append_basic_block("drop_entry")
    drop = ir.IRBuilder(m.slow)
    m.imports.call(drop, "Py_DecRef", entry)
    drop.branch(slow)

    def same(index: int, now: ir.Value) -> None:
        m.slow_if(b.icmp_unsigned("!=", m.call("PyTuple_GetItem", entry, i64(index)), now))

    same(6, code)
    same(0, scope)
    same(1, lookup(scope, items["name_key"]))
    spec = m.call("PyTuple_GetItem", entry, i64(2))
    with b.if_then(b.icmp_unsigned("!=", spec, items["unchecked"])):
        m.slow_if(b.icmp_unsigned("!=", spec, lookup(scope, items["spec_key"])))
    same(3, lookup(items["environ_data"], items["enable_key"]))
    same(4, lookup(items["environ_data"], items["policy_key"]))
    _same_environment(m, items, lookup(items["os_namespace"], items["environ_key"]))
    snapshot = m.call("PyTuple_GetItem", entry, i64(7))
    with b.if_then(b.icmp_unsigned("!=", snapshot, items["unchecked"])):
        _same_path(m, lookup(items["sys_namespace"], items["path_key"]), snapshot)
    m.slow = slow
    m.call("Py_DecRef", entry)  # (freeing it here may run Python code: nothing is read yet)


def _same_environment(m: _accelerators._Method, items: dict[str, ir.Value], environ: ir.Value) -> None:
    """Go on only if ``environ`` (``os.environ`` now) is the one whose dictionary was read,
    and that dictionary is still its ``_data`` (one put in its place is what Python reads)."""
    b = m.b
    m.slow_if(b.icmp_unsigned("!=", environ, items["environ"]))
    data = m.call("PyObject_GetAttr", environ, items["data_name"])
    m.call("Py_DecRef", data)  # (NULL-safe; os.environ holds it)
    with b.if_then(is_null(b, data), likely=False):
        m.call("PyErr_Clear")
    m.slow_if(b.icmp_unsigned("!=", data, items["environ_data"]))


def _same_path(m: _accelerators._Method, path: ir.Value, snapshot: ir.Value) -> None:
    """Go on only if ``path`` (``sys.path``) is a list of exactly the objects of the tuple
    ``snapshot`` (``_access._same_path``)."""
    b = m.b
    # exactly a list, as Python requires: a subclass's iteration (what the import system and
    # the manifest registry see) may differ from its items
    m.slow_if(b.not_(m.model.is_exact(b, path, "PyList_Type")))
    count = m.call("PyList_Size", path)
    m.slow_if(b.icmp_signed("!=", count, m.call("PyTuple_Size", snapshot)))
    index_slot = b.alloca(I64)
    b.store(i64(0), index_slot)
    head = m.fn.append_basic_block("path_head")
    body = m.fn.append_basic_block("path_item")
    done = m.fn.append_basic_block("path_same")
    b.branch(head)
    b.position_at_end(head)
    index = b.load(index_slot)
    b.cbranch(b.icmp_signed("<", index, count), body, done)
    b.position_at_end(body)
    now = m.call("PyList_GetItem", path, index)
    m.slow_if(b.icmp_unsigned("!=", now, m.call("PyTuple_GetItem", snapshot, index)))
    b.store(b.add(index, i64(1)), index_slot)
    b.branch(head)
    b.position_at_end(done)


def _result_scope(m: _accelerators._Method, with_arena: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(the result's scope, its guard) for ``reinterpret``: the arena, or the segment's
    scope; the global scope's guard is None, an ``Arena``'s its ``_confinement``
    (``scope._guard()``); other scopes go slow."""
    b, model, imports = m.b, m.model, m.imports
    scope_slot = b.alloca(PTR)
    b.store(model.load_field(b, m.self_arg, "segment._scope"), scope_slot)
    with b.if_then(with_arena):
        b.store(m.arg(1), scope_slot)
    scope = b.load(scope_slot, typ=PTR)
    m.slow_if(is_null(b, scope))
    is_global = b.icmp_unsigned("==", scope, imports.cell(b, _contract.CELL_GLOBAL_SCOPE))
    is_arena = b.icmp_unsigned("==", model.type_of(b, scope), imports.cell(b, _contract.CELL_ARENA_TYPE))
    # Python takes arena.scope: an Arena's is itself
    m.slow_if(b.and_(with_arena, b.not_(is_arena)))
    m.slow_if(b.not_(b.or_(is_global, is_arena)))
    guard_slot = b.alloca(PTR)
    b.store(imports.data("_Py_NoneStruct"), guard_slot)
    with b.if_then(is_arena):
        b.store(model.load_field(b, scope, "arena._confinement"), guard_slot)
    guard = b.load(guard_slot, typ=PTR)
    m.slow_if(is_null(b, guard))
    return scope, guard


def _open_here(m: _accelerators._Method, arena: ir.Value) -> None:
    """Go on only if ``arena._check()`` passes: alive, and owned by no thread or this one."""
    b, model, imports = m.b, m.model, m.imports
    alive = model.load_field(b, arena, "arena._alive")
    m.slow_if(b.icmp_unsigned("!=", alive, imports.data("_Py_TrueStruct")))
    owner = model.load_field(b, arena, "arena._owner")
    m.slow_if(is_null(b, owner))
    with b.if_then(b.icmp_unsigned("!=", owner, imports.data("_Py_NoneStruct"))):
        owner_value, known = model.read_int(b, owner, IntRead.UNSIGNED)
        mine = b.icmp_unsigned("==", owner_value, m.call("PyThread_get_thread_ident"))
        m.slow_if(b.not_(b.and_(known, mine)))


def _writable_native_address(m: _accelerators._Method) -> ir.Value:
    """The address of ``self``, a native segment that is not read-only: no view yet, or (a
    slab's) view with the read-only bit clear (``is_read_only()``); else slow."""
    b, model, imports = m.b, m.model, m.imports
    m.slow_if(b.not_(model.is_runtime_segment_type(b, model.type_of(b, m.self_arg))))
    view = model.load_field(b, m.self_arg, "segment._view")
    m.slow_if(is_null(b, view))
    with b.if_then(b.icmp_unsigned("!=", view, imports.data("_Py_NoneStruct"))):
        m.slow_if(b.not_(model.is_exact(b, view, "PyMemoryView_Type")))
        low = model.load_field(b, m.self_arg, "segment._align")
        m.slow_if(is_null(b, low))
        low_value, low_ok = model.read_int(b, low, IntRead.SSIZE)
        read_only = b.and_(low_value, i64(_contract.SEGMENT_READ_ONLY_BIT))
        m.slow_if(b.or_(b.not_(low_ok), b.icmp_unsigned("!=", read_only, i64(0))))
    raw = model.load_field(b, m.self_arg, "segment._address")
    m.slow_if(is_null(b, raw))
    address, address_ok = model.read_int(b, raw, IntRead.UNSIGNED)
    m.slow_if(b.not_(address_ok))
    return address


def _segment_reinterpret(helpers: Helpers) -> None:
    """``segment.reinterpret(new_size[, arena])`` of a native segment that is not
    read-only, by a caller let through before; the result as ``MemorySegment._make`` makes
    it (in the segment's scope, or the arena's)."""
    m = _accelerators._Method(helpers, "MemorySegment", "reinterpret")
    b, imports = m.b, m.imports
    none = imports.data("_Py_NoneStruct")
    m.no_keywords(1, 2)
    size = m.exact_int(m.arg(0))
    m.slow_if(b.icmp_signed("<", size, i64(0)))
    _caller_let_through(m)
    with_arena = b.icmp_signed("==", m.nargs, i64(2))
    _, guard = _result_scope(m, with_arena)
    unconfined = b.icmp_unsigned("==", guard, none)
    kind = b.select(
        unconfined,
        imports.cell(b, _contract.CELL_SEGMENT_TYPE),
        imports.cell(b, _contract.CELL_CONFINED_TYPE),
    )
    # the object first (that may run any Python code), then everything is read and checked
    segment = m.call("PyType_GenericAlloc", kind, i64(0))
    with b.if_then(is_null(b, segment), likely=False):
        b.ret(NULL)
    slow = m.slow
    m.slow = m.fn.append_basic_block("drop")  # from here on, going slow drops the object
    drop = ir.IRBuilder(m.slow)
    imports.call(drop, "Py_DecRef", segment)  # unset fields are NULL: dealloc skips them
    drop.branch(slow)
    scope, guard = _result_scope(m, with_arena)
    m.slow_if(b.icmp_unsigned("!=", b.icmp_unsigned("==", guard, none), unconfined))
    with b.if_then(with_arena):
        _open_here(m, scope)
    address = _writable_native_address(m)
    m.slow = slow
    helpers.alloc.fill(
        b,
        segment,
        [
            ("segment._address", m.call("PyLong_FromUnsignedLongLong", address)),
            ("segment._size", m.call("PyLong_FromSsize_t", size)),
            ("segment._base", m.call("PyLong_FromSsize_t", i64(0))),
            (
                "segment._align",
                m.call("PyLong_FromSsize_t", b.and_(address, i64(_contract.SEGMENT_ALIGN_BITS))),
            ),
        ],
        [("segment._scope", scope), ("segment._guard", guard), ("segment._view", none)],
    )
    b.ret(segment)


def _segment_as_slice(helpers: Helpers) -> None:
    """``segment.as_slice(offset[, new_size[, byte_alignment]])`` with ints (``new_size``
    ``None`` or left out: to the end), of a native segment (see ``Allocation.slice``)."""
    m = _accelerators._Method(helpers, "MemorySegment", "as_slice")
    b, model = m.b, m.model
    m.no_keywords(1, 3)
    offset = m.exact_int(m.arg(0))
    kind = model.type_of(b, m.self_arg)
    m.slow_if(b.not_(model.is_runtime_segment_type(b, kind)))
    # to the end: the size Python computes first (the slice checks it against the segment's
    # size again, after the object is made)
    size_slot = b.alloca(I64)
    b.store(i64(-1), size_slot)
    with b.if_then(b.icmp_signed(">=", m.nargs, i64(2))):
        new_size = m.arg(1)
        with b.if_then(b.icmp_unsigned("!=", new_size, m.imports.data("_Py_NoneStruct"))):
            b.store(m.exact_int(new_size), size_slot)
            m.slow_if(b.icmp_signed("<", b.load(size_slot), i64(0)))  # Python raises
    with b.if_then(b.icmp_signed("<", b.load(size_slot), i64(0))):
        to_end = b.sub(m.int_field(m.self_arg, "segment._size"), offset)
        m.slow_if(b.icmp_signed("<", to_end, i64(0)))  # Python raises
        b.store(to_end, size_slot)
    size = b.load(size_slot)
    alignment_slot = b.alloca(I64)
    b.store(i64(1), alignment_slot)
    with b.if_then(b.icmp_signed("==", m.nargs, i64(3))):
        b.store(m.exact_int(m.arg(2)), alignment_slot)
    alignment = b.load(alignment_slot)
    m.slow_if(b.icmp_signed("<=", alignment, i64(0)))
    m.slow_if(b.icmp_unsigned("!=", b.and_(alignment, b.sub(alignment, i64(1))), i64(0)))
    segment = m.call("PyType_GenericAlloc", kind, i64(0))
    with b.if_then(is_null(b, segment), likely=False):
        b.ret(NULL)
    # a __class__ assignment meanwhile (the object made may have run Python code)
    with b.if_then(b.icmp_unsigned("!=", model.type_of(b, m.self_arg), kind), likely=False):
        m.call("Py_DecRef", segment)
        b.branch(m.slow)
    helpers.idioms.return_unless_not_here(
        b, helpers.alloc.slice(b, segment, m.self_arg, offset, size, alignment)
    )
    b.branch(m.slow)


def build_pointer_accelerators(helpers: Helpers) -> None:
    """Emit ``reinterpret`` and ``as_slice`` into the accelerators' module."""
    for emit in (_segment_reinterpret, _segment_as_slice):
        emit(helpers)
