"""The contract between generated stubs and this runtime.

Stubs (and the runtime's accelerators) are ELF objects that import only the
names listed here: CPython Stable ABI functions and data, three libc functions,
the runtime's own cells (data words the runtime fills in before a stub runs)
and the runtime's table of object field offsets.  The loader refuses any other
undefined symbol, and the code generator declares exactly these names, each
function with the C signature written next to its name.

The offsets table lets a stub read a segment's or an arena's ``__slots__``
fields directly instead of through attribute lookups.  The runtime does not
assume any object layout: it finds each offset at import by storing a
sentinel in the slot and searching the instance's memory for it (see
``ffm_runtime._native.slot_offset``), and refuses to start if that fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = [
    "ACCELERATORS",
    "ARENA_POOL_MAX",
    "ARENA_SLAB_ALIGN",
    "ARENA_SLAB_SIZE",
    "ARENA_SMALL",
    "CELL_ACCEL_FALLBACK",
    "CELL_ALLOCATE",
    "CELL_ALLOCATE_NAME",
    "CELL_ARENA_TYPE",
    "CELL_ARG_ERROR",
    "CELL_CONFINED_KIND",
    "CELL_CONFINED_TYPE",
    "CELL_HEAP_TYPE",
    "CELL_MAKE_SEGMENT",
    "CELL_PREFIX_TYPE",
    "CELL_SEGMENT_TYPE",
    "CELL_SLAB_POOL",
    "CELL_SLICING_TYPE",
    "CELL_VALUE_LAYOUT_TYPE",
    "LIBC_FUNCTIONS",
    "METH_FASTCALL",
    "METH_KEYWORDS",
    "OFFSETS",
    "OFFSETS_SYMBOL",
    "PYTHON_DATA",
    "PYTHON_FUNCTIONS",
    "RUNTIME_CELLS",
    "SEGMENT_ALIGN_BITS",
    "SEGMENT_READ_ONLY_BIT",
    "STATIC_ACCELERATORS",
    "STUB_BOUND_SUFFIX",
    "STUB_UNBOUND_SUFFIX",
    "VALUE_KINDS",
    "accelerator_symbol",
    "allowed_import",
]

#: CPython Stable ABI functions a stub may call (all available since 3.10 or earlier), with
#: their C signatures, from which the code generator declares them (see
#: ``hatch_ffm/_ir/_imports.py``; types as on the LP64 targets: ``long`` is 64 bits).
PYTHON_FUNCTIONS: Final[Mapping[str, str]] = MappingProxyType({
    "PyLong_AsLongLong": "long long (PyObject *)",
    "PyLong_FromLongLong": "PyObject *(long long)",
    "PyLong_FromUnsignedLongLong": "PyObject *(unsigned long long)",
    "PyLong_AsVoidPtr": "void *(PyObject *)",
    "PyLong_FromVoidPtr": "PyObject *(void *)",
    "PyFloat_AsDouble": "double (PyObject *)",
    "PyFloat_FromDouble": "PyObject *(double)",
    "PyBool_FromLong": "PyObject *(long)",
    "PyErr_Occurred": "PyObject *(void)",
    "PyErr_Clear": "void (void)",
    "PyEval_SaveThread": "PyThreadState *(void)",
    "PyEval_RestoreThread": "void (PyThreadState *)",
    "PyObject_IsInstance": "int (PyObject *, PyObject *)",
    "PyObject_Type": "PyObject *(PyObject *)",
    "PyObject_GetAttr": "PyObject *(PyObject *, PyObject *)",
    "PyObject_CallFunction": "PyObject *(PyObject *, const char *, ...)",
    "PyObject_CallFunctionObjArgs": "PyObject *(PyObject *, ...)",
    "PyObject_CallMethodObjArgs": "PyObject *(PyObject *, PyObject *, ...)",
    "PyList_GetItem": "PyObject *(PyObject *, Py_ssize_t)",
    "PyLong_AsSsize_t": "Py_ssize_t (PyObject *)",
    "PyLong_FromSsize_t": "PyObject *(Py_ssize_t)",
    "PyType_GenericAlloc": "PyObject *(PyTypeObject *, Py_ssize_t)",
    "PyTuple_New": "PyObject *(Py_ssize_t)",
    "PyTuple_SetItem": "int (PyObject *, Py_ssize_t, PyObject *)",
    "PyTuple_Size": "Py_ssize_t (PyObject *)",
    "PyTuple_GetItem": "PyObject *(PyObject *, Py_ssize_t)",
    "PyList_New": "PyObject *(Py_ssize_t)",
    "PyList_SetItem": "int (PyObject *, Py_ssize_t, PyObject *)",
    "PyList_Size": "Py_ssize_t (PyObject *)",
    "PyList_Append": "int (PyObject *, PyObject *)",
    "PyList_SetSlice": "int (PyObject *, Py_ssize_t, Py_ssize_t, PyObject *)",
    "PyLong_AsUnsignedLong": "unsigned long (PyObject *)",
    "PyThread_get_thread_ident": "unsigned long (void)",
    "Py_IncRef": "void (PyObject *)",
    "Py_DecRef": "void (PyObject *)",
})

#: CPython Stable ABI data a stub may reference.
PYTHON_DATA: Final = frozenset({"_Py_NoneStruct", "_Py_TrueStruct", "_Py_FalseStruct",
                                "PyLong_Type", "PyFloat_Type", "PyBool_Type",
                                "PyMemoryView_Type", "PyTuple_Type"})

#: libc functions a stub may call, with their C signatures.  ``memcpy``: LLVM turns a large
#: ``llvm.memcpy`` into a call (on AArch64, the copy of a struct argument over 256 bytes that
#: the stub passes by reference).
LIBC_FUNCTIONS: Final[Mapping[str, str]] = MappingProxyType({
    "__errno_location": "int *(void)",
    "memcpy": "void *(void *, const void *, size_t)",
    "memset": "void *(void *, int, size_t)",
})

#: Cell holding the ``MemorySegment`` type (a ``PyObject *``): segments usable from any
#: thread at any time are exactly of this type.
CELL_SEGMENT_TYPE: Final = "ffm_rt_segment_type"
#: Cell holding the type of segments owned by a confined arena (a subclass).
CELL_CONFINED_TYPE: Final = "ffm_rt_confined_type"
#: Cell holding the type of heap segments (over Python buffers; a subclass).
CELL_HEAP_TYPE: Final = "ffm_rt_heap_type"
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

#: Cell holding the ``ValueLayout`` type (layouts of exactly this type have ``_kind``).
CELL_VALUE_LAYOUT_TYPE: Final = "ffm_rt_value_layout_type"
#: Cell holding ``fallback(index, self, args: tuple, kwnames: tuple | None)``, which calls
#: the Python implementation of accelerator ``ACCELERATORS[index]``.
CELL_ACCEL_FALLBACK: Final = "ffm_rt_accel_fallback"

#: Cell holding the process-wide list of pooled slabs, ``(raw, start, view)`` tuples.
CELL_SLAB_POOL: Final = "ffm_rt_slab_pool"
#: Cell holding the ``str`` a confined arena's ``_kind`` is.
CELL_CONFINED_KIND: Final = "ffm_rt_confined_kind"

#: Cells holding the types of ``SegmentAllocator.prefix_allocator`` and
#: ``slicing_allocator`` results: struct results are cut from their segment natively.
CELL_PREFIX_TYPE: Final = "ffm_rt_prefix_type"
CELL_SLICING_TYPE: Final = "ffm_rt_slicing_type"

RUNTIME_CELLS: Final = (CELL_SEGMENT_TYPE, CELL_CONFINED_TYPE, CELL_HEAP_TYPE, CELL_ALLOCATE,
                        CELL_ARENA_TYPE, CELL_ALLOCATE_NAME, CELL_MAKE_SEGMENT, CELL_ARG_ERROR,
                        CELL_VALUE_LAYOUT_TYPE, CELL_ACCEL_FALLBACK, CELL_SLAB_POOL,
                        CELL_CONFINED_KIND, CELL_PREFIX_TYPE, CELL_SLICING_TYPE)

#: Arena constants native code shares: the slab size and the pool's capacity.
ARENA_SLAB_SIZE: Final = 64 * 1024
ARENA_POOL_MAX: Final = 32

#: The runtime's accelerators: native ``METH_FASTCALL | METH_KEYWORDS`` methods that take
#: the common case of ``Class.method`` and hand anything else (other argument types,
#: keywords, every error) to the Python implementation through ``CELL_ACCEL_FALLBACK``.
#: ``(class name, method name)``; the symbol is ``ffm_acc_<class>_<method>``.
ACCELERATORS: Final = (("Arena", "allocate"), ("MemorySegment", "get"), ("MemorySegment", "set"),
                       ("Arena", "of_confined"), ("Arena", "__enter__"), ("Arena", "close"))
#: Those of ``ACCELERATORS`` that are static methods (called without ``self``).
STATIC_ACCELERATORS: Final = frozenset({("Arena", "of_confined")})
METH_KEYWORDS: Final = 0x0002


def accelerator_symbol(class_name: str, method: str) -> str:
    """The symbol of the accelerator for ``class_name.method``."""
    return f"ffm_acc_{class_name.lower()}_{method.strip('_')}"

#: The runtime's table of byte offsets (an array of 64-bit words, in this order):
#: ``ob_type`` of any object, then the ``__slots__`` fields of ``MemorySegment``
#: (``segment.*``), ``Arena`` (``arena.*``), ``ValueLayout`` (``layout.*``) and the
#: prefix and slicing allocators (``prefix.*``, ``slicing.*``).  A segment's ``_address`` and
#: ``_size`` are exact ints; a confined segment's ``_guard`` (shared with its arena's
#: ``_confinement``) is a one-element list holding the owner thread's ident, 0 once the
#: arena is closed, and ``None`` for unconfined segments and arenas.
OFFSETS_SYMBOL: Final = "ffm_rt_offsets"
OFFSETS: Final = (
    "ob_type",
    "segment._address", "segment._size", "segment._scope", "segment._guard",
    "segment._view", "segment._base", "segment._align",
    "arena._confinement", "arena._cursor", "arena._limit", "arena._slab_start",
    "arena._slab_align", "arena._slab_view", "arena._segment_class",
    "layout._kind", "layout._byte_size", "layout._mask",
    "arena._alive", "arena._owner", "arena._kind", "arena._extra", "arena._slab",
    "prefix._segment", "slicing._segment", "slicing._offset",
)

#: A ``ValueLayout``'s ``_kind``: how native code reads and writes it (little-endian, the
#: byte order of both targets); 0 for layouts native code leaves to Python (big-endian
#: ones, ``ADDRESS``).
VALUE_KINDS: Final = {"z": 1, "b": 2, "c": 3, "s": 4, "i": 5, "j": 6, "f": 7, "d": 8}

#: An arena's slabs start on this boundary; allocations with a larger alignment get blocks.
ARENA_SLAB_ALIGN: Final = 64
#: Allocations larger than this get their own block rather than a piece of a slab.
ARENA_SMALL: Final = 4096

#: A segment's ``_align`` field holds its address's bits under this mask (small ints).
SEGMENT_ALIGN_BITS: Final = (1 << 30) - 1
#: Set in a segment's ``_align`` field when the segment is read-only (``_align`` holds the
#: address's low 30 bits otherwise).
SEGMENT_READ_ONLY_BIT: Final = 1 << 40

#: A stub for key K is emitted twice: ``<symbol>_b`` takes the target address from the
#: handle's ``self`` (a bound handle), ``<symbol>_u`` from its first argument.
STUB_BOUND_SUFFIX: Final = "_b"
STUB_UNBOUND_SUFFIX: Final = "_u"

#: ``PyMethodDef.ml_flags`` for a vectorcall-style builtin.
METH_FASTCALL: Final = 0x0080


def allowed_import(name: str) -> bool:
    """Whether a stub object may import ``name``."""
    return (name in PYTHON_FUNCTIONS or name in PYTHON_DATA or name in LIBC_FUNCTIONS
            or name in RUNTIME_CELLS or name == OFFSETS_SYMBOL)
