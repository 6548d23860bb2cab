"""The contract between the native code hatch-ffm generates and this runtime.

Native code (the stubs in a wheel, the runtime's accelerators) comes as ELF objects that
import only the names listed here: CPython Stable ABI functions and data, three libc
functions, the runtime's cells and its table of field offsets.  The loader refuses any
other undefined symbol; the code generator declares exactly these names, each function
from the C signature written next to it.  A change to anything here that a runtime of the
same manifest format could not honour makes a new format (``_manifest.FORMAT_VERSION``).

In order of role: what native code may import (1); the runtime's cells, Python objects it
reads (2); the fields of runtime objects it reads, and their offsets table (3); how those
fields represent state (4); how stubs become builtins (5); the accelerators (6).
:mod:`._bootstrap` fills the cells and the offsets table, once, before any native code runs.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import MappingProxyType
    from typing import Final
else:
    MappingProxyType = type(type.__dict__)  # (types.MappingProxyType, without importing types)

__all__ = [
    "ACCELERATORS",
    "ADDRESS_KIND",
    "ARENA_POOL_MAX",
    "ARENA_SLAB_ALIGN",
    "ARENA_SLAB_SIZE",
    "ARENA_SMALL",
    "CELL_ACCEL_FALLBACK",
    "CELL_ADDRESS_LAYOUT_TYPE",
    "CELL_ALLOCATE",
    "CELL_ALLOCATE_NAME",
    "CELL_ARENA_TYPE",
    "CELL_ARG_ERROR",
    "CELL_ARRAY_TYPE",
    "CELL_BYTE_FORMAT",
    "CELL_CAST",
    "CELL_CLOSE_ARENA",
    "CELL_CONFINED_KIND",
    "CELL_CONFINED_TYPE",
    "CELL_CRITICAL_UPCALL",
    "CELL_EXTRAS_TYPE",
    "CELL_GLOBAL_SCOPE",
    "CELL_HEAP_TYPE",
    "CELL_MAKE_SEGMENT",
    "CELL_NATIVE_ACCESS",
    "CELL_NULL_SEGMENT",
    "CELL_OPEN_CONFINED",
    "CELL_PREFIX_TYPE",
    "CELL_SEGMENT_TYPE",
    "CELL_SHARED_MARK",
    "CELL_SHARED_TYPE",
    "CELL_SLAB_POOL",
    "CELL_SLICING_TYPE",
    "CELL_UPCALL_ERROR",
    "CELL_VALUE_LAYOUT_TYPE",
    "CELL_WEAKREF_TYPE",
    "CRITICAL_SYMBOL",
    "FIELDS",
    "LIBC_FUNCTIONS",
    "METH_FASTCALL",
    "METH_KEYWORDS",
    "NATIVE_ACCESS_ITEMS",
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

# -- 1. What native code may import -----------------------------------------------------

#: CPython Stable ABI functions native code may call (all available since 3.10), with their
#: C signatures, from which the code generator declares them (``hatch_ffm/_ir/_imports.py``;
#: types as on the LP64 targets: ``long`` is 64 bits).
PYTHON_FUNCTIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # ints and floats
        "PyLong_AsLongLong": "long long (PyObject *)",
        "PyLong_AsSsize_t": "Py_ssize_t (PyObject *)",
        "PyLong_AsUnsignedLong": "unsigned long (PyObject *)",
        "PyNumber_Index": "PyObject *(PyObject *)",
        "PyLong_FromLongLong": "PyObject *(long long)",
        "PyLong_FromUnsignedLongLong": "PyObject *(unsigned long long)",
        "PyLong_FromSsize_t": "PyObject *(Py_ssize_t)",
        "PyFloat_AsDouble": "double (PyObject *)",
        "PyFloat_FromDouble": "PyObject *(double)",
        "PyBool_FromLong": "PyObject *(long)",
        # errors
        "PyErr_Occurred": "PyObject *(void)",
        "PyErr_Clear": "void (void)",
        # the GIL and threads
        "PyEval_SaveThread": "PyThreadState *(void)",
        "PyEval_RestoreThread": "void (PyThreadState *)",
        "PyThread_get_thread_ident": "unsigned long (void)",
        # upcalls: the GIL on any thread (also one Python never saw), and errors that
        # cannot be raised into C
        "Py_IsInitialized": "int (void)",
        "PyGILState_Ensure": "PyGILState_STATE (void)",
        "PyGILState_Release": "void (PyGILState_STATE)",
        "PyErr_WriteUnraisable": "void (PyObject *)",
        # calls into the runtime's Python code (cells)
        "PyObject_CallFunction": "PyObject *(PyObject *, const char *, ...)",
        "PyObject_CallMethodObjArgs": "PyObject *(PyObject *, PyObject *, ...)",
        "PyObject_CallFunctionObjArgs": "PyObject *(PyObject *, ...)",
        "PyObject_CallNoArgs": "PyObject *(PyObject *)",
        # objects, tuples and lists
        "PyType_GenericAlloc": "PyObject *(PyTypeObject *, Py_ssize_t)",
        "Py_IncRef": "void (PyObject *)",
        "Py_DecRef": "void (PyObject *)",
        "PyTuple_New": "PyObject *(Py_ssize_t)",
        "PyTuple_SetItem": "int (PyObject *, Py_ssize_t, PyObject *)",
        "PyTuple_Size": "Py_ssize_t (PyObject *)",
        "PyTuple_GetItem": "PyObject *(PyObject *, Py_ssize_t)",
        "PyList_New": "PyObject *(Py_ssize_t)",
        "PyList_GetItem": "PyObject *(PyObject *, Py_ssize_t)",
        "PyList_SetItem": "int (PyObject *, Py_ssize_t, PyObject *)",
        "PyList_Size": "Py_ssize_t (PyObject *)",
        "PyList_Append": "int (PyObject *, PyObject *)",
        "PyList_SetSlice": "int (PyObject *, Py_ssize_t, Py_ssize_t, PyObject *)",
        # bytes, strings and buffers (the bulk accelerators)
        "PyBytes_FromStringAndSize": "PyObject *(const char *, Py_ssize_t)",
        "PyBytes_AsString": "char *(PyObject *)",
        "PyBytes_Size": "Py_ssize_t (PyObject *)",
        "PyByteArray_AsString": "char *(PyObject *)",
        "PyByteArray_Size": "Py_ssize_t (PyObject *)",
        "PyUnicode_DecodeUTF8": "PyObject *(const char *, Py_ssize_t, const char *)",
        "PyUnicode_AsUTF8AndSize": "const char *(PyObject *, Py_ssize_t *)",
        "PyUnicode_CompareWithASCIIString": "int (PyObject *, const char *)",
        "PyMemoryView_FromObject": "PyObject *(PyObject *)",
        "PyObject_Size": "Py_ssize_t (PyObject *)",
        # In the Stable ABI since 3.11; CPython 3.10 exports both with the same signatures
        # and the same Py_buffer layout (of_array reads buf, len, itemsize, readonly, ndim).
        "PyObject_GetBuffer": "int (PyObject *, Py_buffer *, int)",
        "PyBuffer_Release": "void (Py_buffer *)",
        # the calling code, for decisions remembered per code (``_access``); dictionaries
        "PyEval_GetFrame": "PyFrameObject *(void)",
        "PyFrame_GetCode": "PyCodeObject *(PyFrameObject *)",
        "PyEval_GetGlobals": "PyObject *(void)",
        "PyDict_GetItem": "PyObject *(PyObject *, PyObject *)",
        "PyObject_GetAttr": "PyObject *(PyObject *, PyObject *)",
    }
)

#: CPython Stable ABI data native code may reference (singletons, and types it compares
#: objects' types with).
PYTHON_DATA: Final = frozenset(
    {
        "_Py_NoneStruct",
        "_Py_TrueStruct",
        "_Py_FalseStruct",
        "PyLong_Type",
        "PyFloat_Type",
        "PyBool_Type",
        "PyMemoryView_Type",
        "PyTuple_Type",
        "PyBytes_Type",
        "PyByteArray_Type",
        "PyUnicode_Type",
        "PyList_Type",
    }
)

#: libc functions native code may call, with their C signatures.  ``memcpy``: LLVM turns a
#: large ``llvm.memcpy`` into a call (on AArch64, the copy of a struct argument over 256
#: bytes that the stub passes by reference).
LIBC_FUNCTIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "__errno_location": "int *(void)",
        "memcpy": "void *(void *, const void *, size_t)",
        "memset": "void *(void *, int, size_t)",
        # the bulk accelerators: copies between segments (overlap allowed), string ends
        "memmove": "void *(void *, const void *, size_t)",
        "memchr": "void *(const void *, int, size_t)",
    }
)

# -- 2. The runtime's cells -------------------------------------------------------------
# A cell is a data word holding a ``PyObject *`` the runtime stores before native code runs
# (and keeps alive for the life of the process).  Every ``CELL_*`` name below is one.

#: The ``MemorySegment`` type: segments usable from any thread at any time are exactly of it.
CELL_SEGMENT_TYPE: Final = "ffm_rt_segment_type"
#: The type of segments owned by a confined arena (a subclass).
CELL_CONFINED_TYPE: Final = "ffm_rt_confined_type"
#: The type of heap segments (over Python buffers; a subclass).
CELL_HEAP_TYPE: Final = "ffm_rt_heap_type"
#: The ``Arena`` type: a struct result's memory comes from the arena directly when the
#: allocator is exactly an ``Arena``.
CELL_ARENA_TYPE: Final = "ffm_rt_arena_type"
#: The ``ValueLayout`` type (layouts of exactly this type have ``_kind``).
CELL_VALUE_LAYOUT_TYPE: Final = "ffm_rt_value_layout_type"
#: The types of ``SegmentAllocator.prefix_allocator`` and ``slicing_allocator`` results:
#: struct results are cut from their segment natively.
CELL_PREFIX_TYPE: Final = "ffm_rt_prefix_type"
CELL_SLICING_TYPE: Final = "ffm_rt_slicing_type"
#: ``allocate(allocator, size, alignment) -> MemorySegment`` for struct results.
CELL_ALLOCATE: Final = "ffm_rt_allocate"
#: The interned name ``allocate``: stubs of earlier builds ask an arena for a struct result by
#: it; stubs now go through ``CELL_ALLOCATE``, which checks what a replaced method returns.
CELL_ALLOCATE_NAME: Final = "ffm_rt_allocate_name"
#: ``make_segment(address: int, size: int) -> MemorySegment`` for ``ADDRESS`` results
#: (``size`` is the target layout's size, 0 without one).
CELL_MAKE_SEGMENT: Final = "ffm_rt_make_segment"
#: ``arg_error(key: str, mode: str, index: int, value: object)``, which always raises.
CELL_ARG_ERROR: Final = "ffm_rt_arg_error"
#: ``fallback(index, self, args: tuple, kwnames: tuple | None)``: the Python implementation
#: of accelerator ``ACCELERATORS[index]``.
CELL_ACCEL_FALLBACK: Final = "ffm_rt_accel_fallback"
#: The process-wide list of pooled slabs, ``(raw, start, view)`` tuples.
CELL_SLAB_POOL: Final = "ffm_rt_slab_pool"
#: The ``str`` a confined arena's ``_kind`` is.
CELL_CONFINED_KIND: Final = "ffm_rt_confined_kind"
#: The type of an arena's rarely needed state (``_arena._Extras``): ``close`` closes an
#: arena natively when it holds nothing but views that were all released.
CELL_EXTRAS_TYPE: Final = "ffm_rt_extras_type"
#: ``weakref.ref``: how an arena's exported views are told released (see above).
CELL_WEAKREF_TYPE: Final = "ffm_rt_weakref_type"
#: ``array.array``, whose buffers ``MemorySegment.of_array`` takes natively, and
#: ``memoryview.cast`` and ``"B"``, with which it makes their flat view (``view.cast("B")``).
CELL_ARRAY_TYPE: Final = "ffm_rt_array_type"
CELL_CAST: Final = "ffm_rt_cast"
CELL_BYTE_FORMAT: Final = "ffm_rt_byte_format"
#: The global scope (``_memory.GLOBAL_SCOPE``): the scope of heap segments and of the
#: segments native code makes for ``ADDRESS`` values.
CELL_GLOBAL_SCOPE: Final = "ffm_rt_global_scope"
#: ``MemorySegment.NULL``: an ``ADDRESS`` result of 0.
CELL_NULL_SEGMENT: Final = "ffm_rt_null_segment"
#: The ``AddressLayout`` type (layouts of exactly this type have ``_target_size``).
CELL_ADDRESS_LAYOUT_TYPE: Final = "ffm_rt_address_layout_type"
#: The decisions of the native-access check remembered per calling code, and what native
#: code compares them with: ``_access.NATIVE_STATE`` (a tuple; see ``NATIVE_ACCESS_ITEMS``).
CELL_NATIVE_ACCESS: Final = "ffm_rt_native_access"
#: The type of segments owned by a shared arena (a subclass).
CELL_SHARED_TYPE: Final = "ffm_rt_shared_type"
#: The ``int`` item 0 of an open shared arena's guard is (never a thread ident).
CELL_SHARED_MARK: Final = "ffm_rt_shared_mark"
#: ``upcall_error(key: str[, result])``, which always raises: the error an upcall reports
#: (``sys.unraisablehook``) for a call through a freed slot (no ``result``) or a result its
#: target returned that is not of the descriptor's result layout.
CELL_UPCALL_ERROR: Final = "ffm_rt_upcall_error"
#: ``critical_upcall(key: str)``, which always raises: the error a critical downcall (its
#: key) raises when the function called back into Python (see ``CRITICAL_SYMBOL``).
CELL_CRITICAL_UPCALL: Final = "ffm_rt_critical_upcall"
#: The ``StructLayout`` type: ``Arena.allocate(layout[, count])`` takes layouts of exactly it,
#: ``ValueLayout`` or ``AddressLayout`` natively (none overrides ``byte_size`` or
#: ``byte_alignment``: their values are the ``memory_layout`` fields).
CELL_STRUCT_LAYOUT_TYPE: Final = "ffm_rt_struct_layout_type"
#: ``Arena.of_confined`` and ``Arena.close`` as installed (the accelerators, when they are in
#: use): an upcall's struct and union arguments are segments of a confined arena the entry
#: opens for the call and closes when the target has returned.
CELL_OPEN_CONFINED: Final = "ffm_rt_open_confined"
CELL_CLOSE_ARENA: Final = "ffm_rt_close_arena"

#: Every cell's symbol, in the order of the cells table.
RUNTIME_CELLS: Final = tuple(value for name, value in tuple(globals().items()) if name.startswith("CELL_"))

# -- 3. The fields native code reads ----------------------------------------------------
# Native code reads these ``__slots__`` fields of the runtime's objects directly, at byte
# offsets the bootstrap finds at import by storing a sentinel in the slot and searching the
# instance's memory for it (no object layout is assumed), and checks against the classes'
# ``__slots__``.  The offsets table is an array of 64-bit words: ``ob_type`` (of any
# object), then these fields, class by class, in this order.

#: The runtime's classes, by their role here, and the fields native code reads.
FIELDS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        # MemorySegment
        "segment": ("_address", "_size", "_scope", "_guard", "_view", "_base", "_align"),
        # Arena
        "arena": (
            "_alive",
            "_owner",
            "_kind",
            "_confinement",
            "_segment_class",
            "_extra",
            "_slab",
            "_slab_start",
            "_slab_align",
            "_slab_view",
            "_cursor",
            "_limit",
        ),
        # ValueLayout
        "layout": ("_kind", "_byte_size", "_mask"),
        # the prefix and the slicing allocator
        "prefix": ("_segment",),
        "slicing": ("_segment", "_offset"),
        # heap segments (MemorySegment.of_array), besides the segment fields
        "heap": ("_itemsize", "_object", "_pin"),
        # an arena's _extra (lists; exports: (view, weak reference to its exporter) tuples)
        "extras": ("slabs", "blocks", "cleanups", "exports"),
        # AddressLayout: the size of the segments its addresses read as
        "address": ("_target_size",),
        # every MemoryLayout (slots of the base class: the same place in every layout)
        "memory_layout": ("_byte_size", "_byte_alignment"),
    }
)
OFFSETS_SYMBOL: Final = "ffm_rt_offsets"
#: A 64-bit word all stubs share, written with the GIL held: 0, or 1 while a critical
#: downcall (which keeps the GIL) runs, or 2 once an upcall entry found it 1 after taking
#: the GIL (so on the critical call's own thread: Java's critical functions must not call
#: back) and refused to call Python; the critical stub then raises ``CELL_CRITICAL_UPCALL``.
CRITICAL_SYMBOL: Final = "ffm_rt_critical"
#: The offsets table's entries: ``ob_type``; ``segment.weakrefs``, where a ``MemorySegment``
#: keeps its list of weak references (its type's ``__weakrefoffset__``: NULL while there is
#: none); ``list.ob_size``, where a list keeps its length; then ``"<role>.<field>"``.
OFFSETS: Final = (
    "ob_type",
    "segment.weakrefs",
    "list.ob_size",
    *(f"{role}.{name}" for role, names in FIELDS.items() for name in names),
)

# -- 4. What the fields hold ------------------------------------------------------------
# A segment's ``_address`` and ``_size`` are exact ints; a confined segment's ``_guard``
# (shared with its arena's ``_confinement``) is a list whose first item is the owner
# thread's ident, 0 once the arena is closed (items after it are pins of running
# operations, see ``_memory._pin``), and ``None`` for unconfined segments and arenas.
# A shared segment's ``_guard`` (its arena's ``_confinement``) is a list (of a subclass)
# whose first item is the ``CELL_SHARED_MARK`` object while the arena is open, 0 once
# closed; items after it are acquisitions, all alike: each holder appends one and later
# removes one (any), and ``close`` refuses while there is one.  Native code that releases
# the GIL with such a segment's address in hand acquires the guard for that time.

#: A segment's ``_align`` holds its address's bits under this mask (small ints).
SEGMENT_ALIGN_BITS: Final = (1 << 30) - 1
#: Set in a segment's ``_align`` when the segment is read-only.
SEGMENT_READ_ONLY_BIT: Final = 1 << 40
#: A ``ValueLayout``'s ``_kind``: how native code reads and writes it (little-endian, the
#: byte order of both targets); 0 for layouts native code leaves to Python (big-endian ones);
#: ``ADDRESS_KIND`` for a little-endian ``AddressLayout``.  Keyed by the layout's ``_code``:
#: its carrier, or ``u`` and the carrier for an unsigned form (``ValueLayout.unsigned``).
VALUE_KINDS: Final[Mapping[str, int]] = MappingProxyType(
    {"z": 1, "b": 2, "c": 3, "s": 4, "i": 5, "j": 6, "f": 7, "d": 8, "ub": 9, "us": 10, "ui": 11, "uj": 12}
)
#: The ``_kind`` of a little-endian ``AddressLayout`` (not a ``VALUE_KINDS`` code: the
#: accelerators read and write it as a segment, not as a number).
ADDRESS_KIND: Final = 13
#: The items of the ``CELL_NATIVE_ACCESS`` tuple, in order: the remembered decisions
#: (``id(code) -> (globals, __name__, __spec__, enable value, policy value, unit, code,
#: sys.path entries)``), what stands for "absent", the ``os`` module's namespace,
#: ``os.environ`` and the dictionary behind it, the keys ``"__name__"``, ``"__spec__"``,
#: ``"environ"`` and the two variables' (bytes), what stands for what does not matter (the
#: ``__spec__`` of a module that is not ``__main__``; ``sys.path`` but for ``ALL-UNNAMED``),
#: the ``sys`` module's namespace, the key ``"path"``, ``[code, entry]`` of the decision
#: remembered or found last, and ``"_data"`` (the attribute of ``os.environ`` that holds its
#: dictionary: the one read must still be it).
NATIVE_ACCESS_ITEMS: Final = (
    "decided",
    "absent",
    "os_namespace",
    "environ",
    "environ_data",
    "name_key",
    "spec_key",
    "environ_key",
    "enable_key",
    "policy_key",
    "unchecked",
    "sys_namespace",
    "path_key",
    "last",
    "data_name",
)
#: An arena's slabs: their size, and the boundary they start on (allocations with a larger
#: alignment get blocks of their own).
ARENA_SLAB_SIZE: Final = 64 * 1024
ARENA_SLAB_ALIGN: Final = 64
#: Allocations larger than this get their own block rather than a piece of a slab.
ARENA_SMALL: Final = 4096
#: Slabs kept for reuse, process-wide.
ARENA_POOL_MAX: Final = 32

# -- 5. Stubs as builtins ---------------------------------------------------------------

#: A stub for key K is emitted twice: ``<symbol>_b`` takes the target address from the
#: handle's ``self`` (a bound handle), ``<symbol>_u`` from its first argument.
STUB_BOUND_SUFFIX: Final = "_b"
STUB_UNBOUND_SUFFIX: Final = "_u"
#: ``PyMethodDef.ml_flags``: a vectorcall-style builtin, and one taking keywords too.
METH_FASTCALL: Final = 0x0080
METH_KEYWORDS: Final = 0x0002

# -- 6. The accelerators ----------------------------------------------------------------

#: Native ``METH_FASTCALL | METH_KEYWORDS`` methods that take the common case of
#: ``Class.method`` and hand anything else (other argument types, keywords, every error) to
#: the Python implementation through ``CELL_ACCEL_FALLBACK``: ``(class name, method name)``.
ACCELERATORS: Final = (
    ("Arena", "allocate"),
    ("MemorySegment", "get"),
    ("MemorySegment", "set"),
    ("Arena", "of_confined"),
    ("Arena", "__enter__"),
    ("Arena", "close"),
    # bytes and strings (hatch_ffm/_ir/_accel_bulk.py)
    ("MemorySegment", "to_bytes"),
    ("MemorySegment", "fill"),
    ("MemorySegment", "copy_from"),
    ("MemorySegment", "copy"),
    ("MemorySegment", "get_string"),
    ("MemorySegment", "set_string"),
    ("Arena", "allocate_from"),
    ("MemorySegment", "of_array"),
    ("MemorySegment", "reinterpret"),
    ("MemorySegment", "as_slice"),
)
#: Those of ``ACCELERATORS`` that are static methods (called without ``self``).
STATIC_ACCELERATORS: Final = frozenset(
    {("Arena", "of_confined"), ("MemorySegment", "copy"), ("MemorySegment", "of_array")}
)


def accelerator_symbol(class_name: str, method: str) -> str:
    """The symbol of the accelerator for ``class_name.method``: ``ffm_acc_<class>_<method>``."""
    return f"ffm_acc_{class_name.lower()}_{method.strip('_')}"


def allowed_import(name: str) -> bool:
    """Whether native code may import ``name``."""
    return (
        name in PYTHON_FUNCTIONS
        or name in PYTHON_DATA
        or name in LIBC_FUNCTIONS
        or name in RUNTIME_CELLS
        or name in (OFFSETS_SYMBOL, CRITICAL_SYMBOL)
    )
