"""The contract between generated stubs and this runtime.

Stubs are ELF objects that import only the names listed here: CPython Stable
ABI functions and data, one libc function, and the runtime's own cells (data
words the runtime fills in before a stub runs).  The loader refuses any other
undefined symbol, and the code generator declares exactly these names.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CELL_ADDRESS_ATTR",
    "CELL_ALLOCATE",
    "CELL_ALLOCATE_NAME",
    "CELL_ARENA_TYPE",
    "CELL_ARG_ERROR",
    "CELL_CONFINED_TYPE",
    "CELL_GUARD_ATTR",
    "CELL_HEAP_TYPE",
    "CELL_MAKE_SEGMENT",
    "CELL_SEGMENT_TYPE",
    "CELL_SIZE_ATTR",
    "LIBC_FUNCTIONS",
    "METH_FASTCALL",
    "PYTHON_DATA",
    "PYTHON_FUNCTIONS",
    "RUNTIME_CELLS",
    "STUB_BOUND_SUFFIX",
    "STUB_UNBOUND_SUFFIX",
    "allowed_import",
]

#: CPython Stable ABI functions a stub may call (all available since 3.10 or earlier).
PYTHON_FUNCTIONS: Final = frozenset({
    "PyLong_AsLongLong",
    "PyLong_FromLongLong",
    "PyLong_FromUnsignedLongLong",
    "PyLong_AsVoidPtr",
    "PyLong_FromVoidPtr",
    "PyFloat_AsDouble",
    "PyFloat_FromDouble",
    "PyBool_FromLong",
    "PyErr_Occurred",
    "PyErr_Clear",
    "PyEval_SaveThread",
    "PyEval_RestoreThread",
    "PyObject_IsInstance",
    "PyObject_Type",
    "PyObject_GetAttr",
    "PyObject_CallFunction",
    "PyObject_CallFunctionObjArgs",
    "PyObject_CallMethodObjArgs",
    "PyList_GetItem",
    "PyLong_AsSsize_t",
    "PyLong_AsUnsignedLong",
    "PyThread_get_thread_ident",
    "Py_IncRef",
    "Py_DecRef",
})

#: CPython Stable ABI data a stub may reference.
PYTHON_DATA: Final = frozenset({"_Py_NoneStruct", "_Py_TrueStruct", "_Py_FalseStruct"})

#: libc functions a stub may call.
LIBC_FUNCTIONS: Final = frozenset({"__errno_location"})

#: Cell holding the ``MemorySegment`` type (a ``PyObject *``): segments usable from any
#: thread at any time are exactly of this type.
CELL_SEGMENT_TYPE: Final = "ffm_rt_segment_type"
#: Cell holding the type of segments owned by a confined arena (a subclass).
CELL_CONFINED_TYPE: Final = "ffm_rt_confined_type"
#: Cell holding the type of heap segments (over Python buffers; a subclass).
CELL_HEAP_TYPE: Final = "ffm_rt_heap_type"
#: Cell holding the interned name of the attribute that yields a segment's raw address.
CELL_ADDRESS_ATTR: Final = "ffm_rt_address_attr"
#: Cell holding the interned name (``_guard``) of a confined segment's guard: a one-element list holding
#: the owner thread's ident, or 0 once the owning arena is closed.
CELL_GUARD_ATTR: Final = "ffm_rt_guard_attr"
#: Cell holding the interned name (``_size``) of a segment's byte size.
CELL_SIZE_ATTR: Final = "ffm_rt_size_attr"
#: Cell holding ``allocate(allocator, size, alignment) -> MemorySegment`` for struct results.
CELL_ALLOCATE: Final = "ffm_rt_allocate"
#: Cell holding the ``Arena`` type: a struct result's memory comes from ``arena.allocate``
#: directly when the allocator is exactly an ``Arena``.
CELL_ARENA_TYPE: Final = "ffm_rt_arena_type"
#: Cell holding the interned name ``allocate``.
CELL_ALLOCATE_NAME: Final = "ffm_rt_allocate_name"
#: Cell holding ``make_segment(address: int, size: int) -> MemorySegment`` for ``ADDRESS``
#: results (``size`` is the target layout's size, 0 without one).
CELL_MAKE_SEGMENT: Final = "ffm_rt_make_segment"
#: Cell holding ``arg_error(key: str, mode: str, index: int, value: object)``, which always
#: raises (see ``ffm_runtime._handles.arg_error``).
CELL_ARG_ERROR: Final = "ffm_rt_arg_error"

RUNTIME_CELLS: Final = (CELL_SEGMENT_TYPE, CELL_CONFINED_TYPE, CELL_HEAP_TYPE, CELL_ADDRESS_ATTR,
                        CELL_GUARD_ATTR, CELL_SIZE_ATTR, CELL_ALLOCATE, CELL_ARENA_TYPE,
                        CELL_ALLOCATE_NAME, CELL_MAKE_SEGMENT, CELL_ARG_ERROR)

#: A stub for key K is emitted twice: ``<symbol>_b`` takes the target address from the
#: handle's ``self`` (a bound handle), ``<symbol>_u`` from its first argument.
STUB_BOUND_SUFFIX: Final = "_b"
STUB_UNBOUND_SUFFIX: Final = "_u"

#: ``PyMethodDef.ml_flags`` for a vectorcall-style builtin.
METH_FASTCALL: Final = 0x0080


def allowed_import(name: str) -> bool:
    """Whether a stub object may import ``name``."""
    return (name in PYTHON_FUNCTIONS or name in PYTHON_DATA or name in LIBC_FUNCTIONS
            or name in RUNTIME_CELLS)
