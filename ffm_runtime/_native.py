"""Bootstrap glue to the running interpreter: symbol lookup, runtime cells, builtins.

ctypes is used here to set things up (resolve symbols, create the builtin
function objects); it is never on the path of a downcall.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any, Final

from . import _abi
from ._locks import ForkSafeLock

__all__ = ["cell_address", "dlsym", "new_builtin", "new_method", "resolve_import", "set_cell",
           "set_offset", "slot_offset"]

try:
    _dlsym: Any = ctypes.CDLL(None).dlsym
    _dlsym.restype = ctypes.c_void_p
    _dlsym.argtypes = (ctypes.c_void_p, ctypes.c_char_p)
except (OSError, TypeError, AttributeError):  # not a POSIX dynamic loader: nothing to look up
    _dlsym = None

_cells = (ctypes.c_void_p * len(_abi.RUNTIME_CELLS))()
_cell_objects: dict[str, object] = {}  # keeps the objects stored in cells alive
_offsets = (ctypes.c_int64 * len(_abi.OFFSETS))()
_WORD: Final = ctypes.sizeof(ctypes.c_void_p)
_lock = ForkSafeLock()


def dlsym(name: str, handle: int | None = None) -> int | None:
    """Address of ``name`` in ``handle`` (default: every global symbol of the process)."""
    if _dlsym is None:
        return None
    address = _dlsym(handle, name.encode())
    return int(address) if address else None


def cell_address(name: str) -> int:
    """Address of the runtime cell ``name`` (see :mod:`._abi`)."""
    return ctypes.addressof(_cells) + _abi.RUNTIME_CELLS.index(name) * ctypes.sizeof(ctypes.c_void_p)


def set_cell(name: str, obj: object) -> None:
    """Store a (kept-alive) Python object in a runtime cell."""
    with _lock:
        _cell_objects[name] = obj
        _cells[_abi.RUNTIME_CELLS.index(name)] = id(obj)


def set_offset(name: str, offset: int) -> None:
    """Publish a byte offset in the table stubs read (see :data:`._abi.OFFSETS`)."""
    _offsets[_abi.OFFSETS.index(name)] = offset


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
        hits = [offset for offset in range(0, type(instance).__basicsize__, _WORD)
                if ctypes.c_void_p.from_address(base + offset).value == id(sentinel)]
    finally:
        descriptor.__delete__(instance)
    if len(hits) != 1:
        from ._errors import UnsupportedPlatformError

        raise UnsupportedPlatformError(
            f"cannot find the slot {type(instance).__name__}.{name} in this interpreter's "
            "objects: hatch-ffm supports CPython 3.10 and later (standard builds)")
    return hits[0]


def type_offset() -> int:
    """The byte offset of ``ob_type`` in every object (found like :func:`slot_offset`)."""
    probe = object()
    hits = [offset for offset in range(0, type(probe).__basicsize__, _WORD)
            if ctypes.c_void_p.from_address(id(probe) + offset).value == id(object)]
    if len(hits) != 1:
        from ._errors import UnsupportedPlatformError

        raise UnsupportedPlatformError("cannot find ob_type in this interpreter's objects")
    return hits[0]


def refcount_offset() -> int:
    """The byte offset of ``ob_refcnt`` (a ``Py_ssize_t``), found by watching a new object's
    reference count change."""
    probe = object()
    before = sys.getrefcount(probe)
    words = [ctypes.c_ssize_t.from_address(id(probe) + offset).value
             for offset in range(0, type(probe).__basicsize__, _WORD)]
    holder = [probe, probe, probe]
    after = sys.getrefcount(probe)
    hits = [offset for index, offset in enumerate(range(0, type(probe).__basicsize__, _WORD))
            if ctypes.c_ssize_t.from_address(id(probe) + offset).value - words[index]
            == after - before == 3]
    del holder
    if len(hits) != 1:
        from ._errors import UnsupportedPlatformError

        raise UnsupportedPlatformError("cannot find ob_refcnt in this interpreter's objects")
    return hits[0]


def resolve_import(name: str) -> int | None:
    """Resolve an undefined symbol of a stub object; ``None`` if it is not allowed."""
    if not _abi.allowed_import(name):
        return None
    if name in _abi.RUNTIME_CELLS:
        return cell_address(name)
    if name == _abi.OFFSETS_SYMBOL:
        return ctypes.addressof(_offsets)
    return dlsym(name)


class _PyMethodDef(ctypes.Structure):
    _fields_ = (
        ("ml_name", ctypes.c_char_p),
        ("ml_meth", ctypes.c_void_p),
        ("ml_flags", ctypes.c_int),
        ("ml_doc", ctypes.c_char_p),
    )


_new_ex = ctypes.pythonapi.PyCFunction_NewEx
_new_ex.restype = ctypes.py_object
_new_ex.argtypes = (ctypes.c_void_p, ctypes.py_object, ctypes.c_void_p)

_new_ex_unbound = ctypes.pythonapi["PyCFunction_NewEx"]  # a separate prototype object
_new_ex_unbound.restype = ctypes.py_object
_new_ex_unbound.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)

_method_defs: dict[tuple[int, str], _PyMethodDef] = {}  # never freed: builtins point into them


def new_builtin(function: int, self_object: object, name: str, doc: str,
                flags: int = _abi.METH_FASTCALL) -> Any:
    """A builtin function calling ``function`` (a ``METH_FASTCALL`` C function, or of the
    calling convention ``flags`` says) with ``self``."""
    with _lock:
        key = (function, name)
        definition = _method_defs.get(key)
        if definition is None:
            definition = _PyMethodDef(name.encode(), function, flags, doc.encode())
            _method_defs[key] = definition
    if self_object is None:  # a plain function (self is NULL)
        return _new_ex_unbound(ctypes.addressof(definition), None, None)
    return _new_ex(ctypes.addressof(definition), self_object, None)


_new_method = ctypes.pythonapi.PyDescr_NewMethod
_new_method.restype = ctypes.py_object
_new_method.argtypes = (ctypes.py_object, ctypes.c_void_p)


def new_method(cls: type, function: int, name: str, doc: str) -> Any:
    """A method descriptor of ``cls`` calling ``function`` (``METH_FASTCALL | METH_KEYWORDS``)."""
    with _lock:
        key = (function, name)
        definition = _method_defs.get(key)
        if definition is None:
            definition = _PyMethodDef(name.encode(), function,
                                      _abi.METH_FASTCALL | _abi.METH_KEYWORDS, doc.encode())
            _method_defs[key] = definition
    return _new_method(cls, ctypes.addressof(definition))
