"""The CPython bootstrap: what native code needs from the running interpreter, set up once.

:func:`ensure` runs :func:`bootstrap` once, before the first native object (a wheel's stubs,
the runtime's accelerators) is loaded: it fills the runtime's cells and the offsets table
the contract (:mod:`._contract`) describes, after checking the contract's fields against
the classes' ``__slots__``.  ``import ffm_runtime`` does none of it: nothing native is
loaded, allocated or probed before it is needed.  The rest is the glue it and the loader
use: symbol lookup (``dlsym``), resolving a native object's imports, and builtins made from
native functions.  ctypes is used here to set things up; it is never on the path of a
downcall.
"""

from __future__ import annotations

import struct
import sys

from . import _contract
from ._locks import ForkSafeLock

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ctypes
    from typing import Any, Final, TypeGuard
else:  # ctypes itself on first use (it costs a fair part of import ffm_runtime)
    from . import _lazy_ctypes as ctypes

__all__ = [
    "bootstrap",
    "cell_address",
    "dlsym",
    "dlsym_available",
    "done",
    "ensure",
    "lock",
    "new_builtin",
    "new_method",
    "resolve_import",
    "set_cell",
    "set_offset",
    "slot_offset",
]

_WORD: Final = struct.calcsize("P")  # (a pointer's size, without importing ctypes)
#: held while the bootstrap runs, and while the accelerators are installed (:mod:`._accel`)
lock = ForkSafeLock()


class _Native:
    """The C functions and the never-freed tables of the bootstrap, made on first use."""

    def __init__(self) -> None:
        self.dlsym: Any = None
        self.calloc: Any = None
        try:
            libc = ctypes.CDLL(None)
            self.dlsym = libc.dlsym
            self.dlsym.restype = ctypes.c_void_p
            self.dlsym.argtypes = (ctypes.c_void_p, ctypes.c_char_p)
            self.calloc = libc.calloc
            self.calloc.restype = ctypes.c_void_p
            self.calloc.argtypes = (ctypes.c_size_t, ctypes.c_size_t)
        except (OSError, TypeError, AttributeError):  # not a POSIX dynamic loader: nothing to look up
            self.dlsym = self.calloc = None
        self.incref: Any = ctypes.pythonapi.Py_IncRef
        self.incref.restype = None
        self.incref.argtypes = (ctypes.py_object,)
        self.new_ex: Any = ctypes.pythonapi.PyCFunction_NewEx
        self.new_ex.restype = ctypes.py_object
        self.new_ex.argtypes = (ctypes.c_void_p, ctypes.py_object, ctypes.c_void_p)
        self.new_ex_unbound: Any = ctypes.pythonapi["PyCFunction_NewEx"]  # a separate prototype
        self.new_ex_unbound.restype = ctypes.py_object
        self.new_ex_unbound.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
        self.new_method: Any = ctypes.pythonapi.PyDescr_NewMethod
        self.new_method.restype = ctypes.py_object
        self.new_method.argtypes = (ctypes.py_object, ctypes.c_void_p)
        # the tables go last: _permanent uses self.calloc
        self.cells = _permanent(len(_contract.RUNTIME_CELLS) * _WORD, self)
        self.offsets = _permanent(len(_contract.OFFSETS) * 8, self)
        self.critical = _permanent(8, self)


_made: list[_Native] = []  # the one _Native, once made


def _native() -> _Native:
    if not _made:
        with lock:
            if not _made:
                _made.append(_Native())
    return _made[0]


def _permanent(size: int, native: _Native | None = None) -> int:
    """``size`` zeroed bytes that are never freed.

    What native code reads outside the objects it is given (the runtime cells, the offsets
    table, the method definitions of builtins) lives here, not in Python objects: module
    globals are freed at interpreter exit while a late finalizer can still call a stub or an
    accelerated method.
    """
    calloc = (native or _native()).calloc
    if calloc is None:
        buffer = ctypes.create_string_buffer(size)
        _never_freed.append(buffer)
        return ctypes.addressof(buffer)
    address = calloc(1, size)
    if not address:
        raise MemoryError(f"cannot allocate {size} bytes for the runtime's tables")
    return int(address)


_never_freed: list[object] = []  # only where there is no C library to allocate from


def _permanent_string(text: str) -> int:
    """A NUL-terminated UTF-8 copy of ``text`` that is never freed."""
    data = text.encode()
    address = _permanent(len(data) + 1)
    ctypes.memmove(address, data, len(data))
    return address


def dlsym(name: str, handle: int | None = None) -> int | None:
    """Address of ``name`` in ``handle`` (default: every global symbol of the process)."""
    lookup = _native().dlsym
    if lookup is None:
        return None
    address = lookup(handle, name.encode())
    return int(address) if address else None


def dlsym_available() -> bool:
    """Whether :func:`dlsym` can find symbols here (a POSIX dynamic loader)."""
    return _native().dlsym is not None


def cell_address(name: str) -> int:
    """Address of the runtime cell ``name`` (see :mod:`._contract`)."""
    return _native().cells + _contract.RUNTIME_CELLS.index(name) * _WORD


def set_cell(name: str, obj: object) -> None:
    """Store a Python object in a runtime cell; it is kept alive for the life of the process
    (a reference that is never given back), like the cell itself."""
    with lock:
        _native().incref(obj)
        ctypes.c_void_p.from_address(cell_address(name)).value = id(obj)


def set_offset(name: str, offset: int) -> None:
    """Publish a byte offset in the table stubs read (see :data:`._contract.OFFSETS`)."""
    ctypes.c_int64.from_address(_native().offsets + _contract.OFFSETS.index(name) * 8).value = offset


def slot_offset(instance: object, name: str) -> int:
    """The byte offset of the ``__slots__`` field ``name`` in ``instance``'s memory.

    Found, not assumed: a fresh sentinel is stored in the slot and the instance's
    words are searched for its address; exactly one must match.  The slot is left
    unset afterwards.
    """
    descriptor = getattr(type(instance), name)
    sentinel = object()
    descriptor.__set__(instance, sentinel)
    try:
        base = id(instance)
        hits = [
            offset
            for offset in range(0, type(instance).__basicsize__, _WORD)
            if ctypes.c_void_p.from_address(base + offset).value == id(sentinel)
        ]
    finally:
        descriptor.__delete__(instance)
    if len(hits) != 1:
        from ._errors import UnsupportedPlatformError

        raise UnsupportedPlatformError(
            f"cannot find the slot {type(instance).__name__}.{name} in this interpreter's "
            "objects: hatch-ffm supports CPython 3.10 and later (standard builds)"
        )
    return hits[0]


def type_offset() -> int:
    """The byte offset of ``ob_type`` in every object (found like :func:`slot_offset`)."""
    probe = object()
    hits = [
        offset
        for offset in range(0, type(probe).__basicsize__, _WORD)
        if ctypes.c_void_p.from_address(id(probe) + offset).value == id(object)
    ]
    if len(hits) != 1:
        from ._errors import UnsupportedPlatformError

        raise UnsupportedPlatformError("cannot find ob_type in this interpreter's objects")
    return hits[0]


def size_offset() -> int:
    """The byte offset of ``ob_size`` in a list (found: the one word of three lists of
    distinct lengths that holds each length; grown by an append, so that their capacity
    differs from their length)."""
    probes = [[None] * n for n in (3, 1001, 5003)]  # (small: 40 KiB, not the 10 MiB of large ones)
    for probe in probes:
        probe.append(None)
    hits = [
        offset
        for offset in range(0, list.__basicsize__, _WORD)
        if all(ctypes.c_ssize_t.from_address(id(p) + offset).value == len(p) for p in probes)
    ]
    if len(hits) != 1:
        from ._errors import UnsupportedPlatformError

        raise UnsupportedPlatformError("cannot find ob_size in this interpreter's lists")
    return hits[0]


def resolve_import(name: str) -> int | None:
    """Resolve an undefined symbol of a stub object; ``None`` if it is not allowed."""
    if not _contract.allowed_import(name):
        return None
    if name in _contract.RUNTIME_CELLS:
        return cell_address(name)
    if name == _contract.OFFSETS_SYMBOL:
        return _native().offsets
    if name == _contract.CRITICAL_SYMBOL:
        return _native().critical
    return dlsym(name)


#: the ctypes structure of a PyMethodDef, made on first use (ctypes is imported then)
_method_def_type: list[Any] = []


def _py_method_def() -> Any:
    if not _method_def_type:

        class _PyMethodDef(ctypes.Structure):
            _fields_ = (
                ("ml_name", ctypes.c_void_p),
                ("ml_meth", ctypes.c_void_p),
                ("ml_flags", ctypes.c_int),
                ("ml_doc", ctypes.c_void_p),
            )

        _method_def_type.append(_PyMethodDef)
    return _method_def_type[0]


#: (function, name) -> address of its PyMethodDef, in never-freed memory: builtins and
#: method descriptors point into them as long as they exist, at exit too
_method_defs: dict[tuple[int, str], int] = {}


def _method_def(function: int, name: str, doc: str, flags: int) -> int:
    with lock:
        key = (function, name)
        address = _method_defs.get(key)
        if address is None:
            method_def = _py_method_def()
            address = _permanent(ctypes.sizeof(method_def))
            definition = method_def.from_address(address)
            definition.ml_name = _permanent_string(name)
            definition.ml_meth = function
            definition.ml_flags = flags
            definition.ml_doc = _permanent_string(doc)
            _method_defs[key] = address
        return address


def new_builtin(
    function: int, self_object: object, name: str, doc: str, flags: int = _contract.METH_FASTCALL
) -> Any:
    """A builtin function calling ``function`` (a ``METH_FASTCALL`` C function, or of the
    calling convention ``flags`` says) with ``self``."""
    definition = _method_def(function, name, doc, flags)
    if self_object is None:  # a plain function (self is NULL)
        return _native().new_ex_unbound(definition, None, None)
    return _native().new_ex(definition, self_object, None)


def new_method(cls: type, function: int, name: str, doc: str) -> Any:
    """A method descriptor of ``cls`` calling ``function`` (``METH_FASTCALL | METH_KEYWORDS``)."""
    return _native().new_method(
        cls, _method_def(function, name, doc, _contract.METH_FASTCALL | _contract.METH_KEYWORDS)
    )


def _slots(cls: type) -> set[str]:
    """Every ``__slots__`` name of ``cls`` and its bases."""
    names: set[str] = set()
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.update((slots,) if isinstance(slots, str) else slots)
    return names


_done: list[bool] = []  # [True] once bootstrap() has run


class _NoArrayYet:
    """What the array-type cell holds until ``array`` is imported: the type of no object."""


#: ``[True]`` while the array-type cell holds :class:`_NoArrayYet`
array_pending: list[bool] = []


#: ``Py_TPFLAGS_IMMUTABLETYPE``: set on types made in C (``array.array``), never on classes
_IMMUTABLE_TYPE = 1 << 8


def _is_array_type(cls: object) -> TypeGuard[type]:
    """Whether ``cls`` is the standard library's ``array.array``, a type made in C whose
    buffer is C code's (what native code assumes of the cell's type), not a class of that
    name (a project's own ``array`` module, which may be the one ``import array`` finds)."""
    return (
        isinstance(cls, type)
        and cls.__module__ == "array"
        and cls.__name__ == "array"
        and bool(cls.__flags__ & _IMMUTABLE_TYPE)
    )


def _array_type() -> type:
    """``array.array`` if ``array`` was imported, else :class:`_NoArrayYet` (importing
    ``array`` imports ``collections``: more than a first handle may cost); then
    :func:`array_seen` stores the real type when an array first reaches
    ``MemorySegment.of_array``."""
    found = getattr(sys.modules.get("array"), "array", None)
    if _is_array_type(found):
        return found
    array_pending.append(True)
    return _NoArrayYet


def array_seen(cls: type) -> None:
    """Store ``cls`` in the array-type cell if it is ``array.array`` (one of its objects
    reached ``of_array``: ``array`` is in use), so that native code takes arrays from now on."""
    if not _is_array_type(cls):
        return
    with lock:
        if array_pending:
            set_cell(_contract.CELL_ARRAY_TYPE, cls)
            array_pending.clear()


def done() -> bool:
    """Whether the cells and the offsets table are filled."""
    return bool(_done)


def ensure() -> None:
    """Run :func:`bootstrap` once; called before any native object is loaded."""
    if not _done:
        with lock:
            if not _done:
                bootstrap()
                _done.append(True)


def bootstrap() -> None:
    """Fill the cells and the offsets table native code reads.

    Runs once (:func:`ensure`), before the first native object is loaded, so before any
    native code can run: every cell the contract names gets its object, every field it
    names is checked to be a ``__slots__`` field of its class, and its offset is found in
    this interpreter's objects.  ``Arena.of_confined`` and ``Arena.close`` are stored as
    the runtime has them now (:func:`._accel.arena_methods`: not a replacement the class
    holds); installing the accelerators stores theirs.
    """
    from _weakref import ref as weak_reference

    from . import _accel, _access
    from ._arena import Arena, _Extras, _pool, _PrefixAllocator, _SlicingAllocator
    from ._errors import UnsupportedPlatformError
    from ._handles import allocate_result, arg_error, result_segment
    from ._layouts import AddressLayout, MemoryLayout, StructLayout, ValueLayout
    from ._memory import _SHARED, GLOBAL_SCOPE, MemorySegment, _ConfinedSegment, _HeapSegment, _SharedSegment
    from ._upcalls import critical_upcall, upcall_error

    open_confined, close = _accel.arena_methods()
    cells: dict[str, object] = {
        _contract.CELL_SEGMENT_TYPE: MemorySegment,
        _contract.CELL_CONFINED_TYPE: _ConfinedSegment,
        _contract.CELL_HEAP_TYPE: _HeapSegment,
        _contract.CELL_ARENA_TYPE: Arena,
        _contract.CELL_VALUE_LAYOUT_TYPE: ValueLayout,
        _contract.CELL_PREFIX_TYPE: _PrefixAllocator,
        _contract.CELL_SLICING_TYPE: _SlicingAllocator,
        _contract.CELL_ALLOCATE: allocate_result,
        _contract.CELL_ALLOCATE_NAME: sys.intern("allocate"),
        _contract.CELL_MAKE_SEGMENT: result_segment,
        _contract.CELL_ARG_ERROR: arg_error,
        _contract.CELL_ACCEL_FALLBACK: _accel.fallback,
        _contract.CELL_SLAB_POOL: _pool,
        _contract.CELL_CONFINED_KIND: "confined",
        _contract.CELL_GLOBAL_SCOPE: GLOBAL_SCOPE,
        _contract.CELL_EXTRAS_TYPE: _Extras,
        _contract.CELL_WEAKREF_TYPE: weak_reference,
        _contract.CELL_ARRAY_TYPE: _array_type(),
        _contract.CELL_CAST: memoryview.cast,
        _contract.CELL_BYTE_FORMAT: sys.intern("B"),
        _contract.CELL_NULL_SEGMENT: MemorySegment.NULL,
        _contract.CELL_ADDRESS_LAYOUT_TYPE: AddressLayout,
        _contract.CELL_NATIVE_ACCESS: _access.NATIVE_STATE,
        _contract.CELL_SHARED_TYPE: _SharedSegment,
        _contract.CELL_SHARED_MARK: _SHARED,
        _contract.CELL_STRUCT_LAYOUT_TYPE: StructLayout,
        _contract.CELL_UPCALL_ERROR: upcall_error,
        _contract.CELL_CRITICAL_UPCALL: critical_upcall,
        # (stored again when the accelerators are installed: _accel.install)
        _contract.CELL_OPEN_CONFINED: open_confined,
        _contract.CELL_CLOSE_ARENA: close,
    }
    classes: dict[str, type] = {
        "segment": MemorySegment,
        "arena": Arena,
        "layout": ValueLayout,
        "prefix": _PrefixAllocator,
        "slicing": _SlicingAllocator,
        "heap": _HeapSegment,
        "extras": _Extras,
        "address": AddressLayout,
        "memory_layout": MemoryLayout,
    }
    if set(cells) != set(_contract.RUNTIME_CELLS) or set(classes) != set(_contract.FIELDS):
        raise UnsupportedPlatformError(
            "internal error: ffm_runtime's cells or classes do not "
            "match its contract (a broken installation?)"
        )
    for role, names in _contract.FIELDS.items():
        missing = set(names) - _slots(classes[role])
        if missing:
            raise UnsupportedPlatformError(
                f"internal error: the contract names fields {sorted(missing)} that "
                f"{classes[role].__name__} does not have (a broken installation?)"
            )
    for name, obj in cells.items():
        set_cell(name, obj)
    set_offset("ob_type", type_offset())
    set_offset("segment.weakrefs", MemorySegment.__weakrefoffset__)
    set_offset("list.ob_size", size_offset())
    arena: Arena = object.__new__(Arena)
    probes = {
        "segment": object.__new__(MemorySegment),
        "arena": arena,
        "layout": object.__new__(ValueLayout),
        "prefix": object.__new__(_PrefixAllocator),
        "slicing": object.__new__(_SlicingAllocator),
        "heap": object.__new__(_HeapSegment),
        "extras": object.__new__(_Extras),
        "address": object.__new__(AddressLayout),
        "memory_layout": object.__new__(MemoryLayout),
    }
    try:
        for role, names in _contract.FIELDS.items():
            for field in names:
                set_offset(f"{role}.{field}", slot_offset(probes[role], field))
    finally:
        arena._confinement = None  # what its __del__ reads
