"""Finding native symbols: ``load_library`` and ``SymbolLookup``.

``load_library`` is the analog of ``System.loadLibrary``/``System.load``: the
libraries a package loads are what its :meth:`SymbolLookup.loader_lookup`
searches, before the process's global symbols.  :meth:`SymbolLookup.library_lookup`
loads one library for the lifetime of an arena; :func:`default_lookup` (Java's
``Linker.defaultLookup()``) finds the symbols of the C library and the math library.
"""

from __future__ import annotations

import _ctypes
import os
import sys

from . import _bootstrap
from ._access import caller_module, caller_unit, ensure_native_access
from ._errors import LibraryLoadError, UnsupportedOperationError
from ._locks import ForkSafeLock
from ._memory import MemorySegment, _depth, _pin

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ctypes
    from collections.abc import Callable
    from typing import Any
else:  # ctypes itself on first use (it costs a fair part of import ffm_runtime)
    from . import _lazy_ctypes as ctypes

__all__ = ["SymbolLookup", "default_lookup", "load_library"]

_lock = ForkSafeLock()
#: unit (``None``: no Python caller) -> libraries it loaded, in load order
_loaded: dict[str | None, list[ctypes.CDLL]] = {}


def _package_dirs(module_name: str | None) -> list[str]:
    """Folders to search first for a bare library name: the caller's own, then its top package's."""
    dirs: list[str] = []
    if module_name is None:
        return dirs
    module = sys.modules.get(module_name)
    main = sys.modules.get("__main__")
    if module is None and getattr(getattr(main, "__spec__", None), "name", None) == module_name:
        module = main  # run by python -m or runpy.run_module
    path = getattr(module, "__file__", None)
    if isinstance(path, str):
        dirs.append(os.path.dirname(os.path.abspath(path)))
    top = sys.modules.get(module_name.partition(".")[0])
    for entry in getattr(top, "__path__", None) or ():
        folder = os.path.abspath(entry)
        if folder not in dirs:
            dirs.append(folder)
    return dirs


def _candidates(name: str, module_name: str | None) -> list[str]:
    if os.sep in name:
        return [os.path.abspath(name)]
    found = []
    if name.endswith(".so") or ".so." in name:
        # a file name ("libfoo.so.1"): the package's own copy, else the system loader's
        # (LD_LIBRARY_PATH, the ld.so cache), never one in the current directory
        for folder in _package_dirs(module_name):
            candidate = os.path.join(folder, name)
            if os.path.isfile(candidate):
                found.append(candidate)
        found.append(name)
        return found
    for folder in _package_dirs(module_name):
        for file_name in (f"lib{name}.so", f"{name}.so"):
            candidate = os.path.join(folder, file_name)
            if os.path.isfile(candidate):
                found.append(candidate)
    # Imported here, not at the top: ctypes.util imports shutil, which on 3.12 and later
    # imports platform-specific modules at import time (the runtime's import needs neither).
    import ctypes.util

    system = ctypes.util.find_library(name)
    if system:
        found.append(system)
    return found


def load_library(name_or_path: str) -> str:
    """Load a native library for the calling package and return the path or name loaded.

    A path (containing ``/``) is loaded as is, like ``System.load``.  A file name
    (``"libfoo.so"``, ``"libm.so.6"``) is looked for in the calling module's folder
    and its top-level package's folder, then loaded by the system loader
    (``LD_LIBRARY_PATH``, the ``ld.so`` cache).  A bare name like ``"m"`` is looked up
    as ``libm.so`` in those folders, then on the system (``ctypes.util.find_library``),
    like ``System.loadLibrary``.  This is a restricted operation.
    """
    if not isinstance(name_or_path, str) or not name_or_path:
        raise TypeError("load_library() takes a non-empty str")
    unit = ensure_native_access("ffm_runtime.load_library")
    module_name = caller_module()
    candidates = _candidates(name_or_path, module_name)
    errors = []
    for candidate in candidates:
        try:
            library = ctypes.CDLL(candidate)
        except OSError as exc:
            errors.append(str(exc))
            continue
        with _lock:
            _loaded.setdefault(unit, []).append(library)
        return candidate
    detail = "; ".join(errors) if errors else "no such library in the package folder or on the system"
    raise LibraryLoadError(f"cannot load library {name_or_path!r}: {detail}")


class SymbolLookup:
    """Finds symbols by name; ``find`` returns a zero-length segment or ``None``."""

    __slots__ = ("_parts",)

    def __init__(self, finder: Callable[[str], int | None], scope: Any = None) -> None:
        # (finder, scope of the segments it finds: None is the global scope), tried in order
        self._parts: tuple[tuple[Callable[[str], int | None], Any], ...] = ((finder, scope),)

    @staticmethod
    def loader_lookup() -> SymbolLookup:
        """Symbols of the libraries the calling package loaded, then the process's globals."""
        unit = caller_unit()

        def find(name: str) -> int | None:
            with _lock:
                libraries = list(_loaded.get(unit, ()))
            for library in libraries:
                address = _bootstrap.dlsym(name, library._handle)
                if address:
                    return address
            return _bootstrap.dlsym(name)

        return SymbolLookup(find)

    @staticmethod
    def library_lookup(name_or_path: str | os.PathLike[str], arena: Any) -> SymbolLookup:
        """Load one library and find symbols in it alone, until ``arena`` is closed
        (Java's ``SymbolLookup.libraryLookup``; a restricted operation).

        A ``str`` is handed to the system loader as is (``"libm.so.6"`` is searched on
        ``LD_LIBRARY_PATH`` and in the ``ld.so`` cache, a name with ``/`` is a path); an
        :class:`os.PathLike` is a path, made absolute.  The library is unloaded when the
        arena is closed (an automatic arena: when it is freed; the global arena: never);
        ``find`` then raises :class:`ScopeClosedError`.  The segments ``find`` returns
        belong to the arena.  Raises :class:`LibraryLoadError` if the library cannot be
        loaded.
        """
        ensure_native_access("SymbolLookup.library_lookup")
        from ._arena import Arena

        if isinstance(name_or_path, os.PathLike):
            path = os.fspath(name_or_path)
            if not isinstance(path, str):
                raise TypeError(f"library_lookup() needs a str path, not {type(path).__name__}")
            name = os.path.abspath(path)
        elif isinstance(name_or_path, str):
            name = name_or_path
        else:
            raise TypeError(
                f"library_lookup() takes a library name (str) or path (os.PathLike), "
                f"not {type(name_or_path).__name__}"
            )
        if not isinstance(arena, Arena):
            raise TypeError(f"library_lookup() needs an Arena, not {type(arena).__name__}")
        arena._check()
        if not name or "\0" in name:
            raise LibraryLoadError(f"cannot load library {name!r}: not a library name")
        if not _dlsym_available():
            raise UnsupportedOperationError(
                "SymbolLookup.library_lookup() needs the system's dynamic loader (dlopen), "
                "which this platform does not have"
            )
        try:
            handle = _ctypes.dlopen(name, ctypes.DEFAULT_MODE)
        except OSError as exc:
            raise LibraryLoadError(f"cannot load library {name!r}: {exc}") from None
        try:
            arena._add_cleanup(lambda: _ctypes.dlclose(handle))
        except BaseException:
            _ctypes.dlclose(handle)
            raise
        scope = arena.scope

        def find(symbol: str) -> int | None:
            # the arena is pinned (a shared one acquired) while dlsym reads the handle: a
            # close meanwhile (another thread's, or a signal handler's or finalizer's, run
            # before the call) is refused rather than unloading the library under dlsym
            guard = scope._guard()
            depth = _depth(guard)
            try:
                _pin(guard, scope)
                return _bootstrap.dlsym(symbol, handle)
            finally:
                if guard is not None and depth:
                    del guard[depth:]

        return SymbolLookup(find, scope)

    def find(self, name: str) -> MemorySegment | None:
        """The address of ``name`` as a zero-length segment, or ``None`` if not found."""
        if not isinstance(name, str):
            raise TypeError(f"symbol name must be a str, not {type(name).__name__}")
        if not name or "\0" in name:
            return None
        for finder, scope in self._parts:
            address = finder(name)
            if address is not None:
                if scope is None:
                    return MemorySegment.of_address(address)
                return MemorySegment._make(address, 0, scope)
        return None

    def or_else(self, other: SymbolLookup) -> SymbolLookup:
        """A lookup that tries this one, then ``other``."""

        if not isinstance(other, SymbolLookup):
            raise TypeError(f"or_else() needs a SymbolLookup, not {type(other).__name__}")
        combined = SymbolLookup.__new__(SymbolLookup)
        combined._parts = self._parts + other._parts
        return combined


def _dlsym_available() -> bool:
    return _bootstrap.dlsym_available()


#: the default lookup's libraries, as the JDK's on Linux: the C library, the math library and
#: the dynamic-linking library (glibc's sonames; other names through ctypes.util.find_library)
_DEFAULT_LIBRARIES: tuple[tuple[str, str], ...] = (
    ("libc.so.6", "c"),
    ("libm.so.6", "m"),
    ("libdl.so.2", "dl"),
)
_default: list[SymbolLookup] = []  # the default lookup, once made


def _open_default(soname: str, short: str) -> int | None:
    try:
        return int(_ctypes.dlopen(soname, ctypes.DEFAULT_MODE))
    except OSError:
        pass
    from ctypes.util import find_library  # (imported here: see _candidates)

    found = find_library(short)
    if found:
        try:
            return int(_ctypes.dlopen(found, ctypes.DEFAULT_MODE))
        except OSError:
            return None
    return None


def default_lookup() -> SymbolLookup:
    """Symbols of the C library, the math library and ``libdl`` (``Linker.default_lookup()``).

    Not a restricted operation, as in Java.  The libraries are loaded once, on first use,
    and never unloaded.
    """
    with _lock:
        if _default:
            return _default[0]
    handles: list[int] = []
    if _dlsym_available():
        for soname, short in _DEFAULT_LIBRARIES:
            handle = _open_default(soname, short)
            if handle is not None:
                handles.append(handle)

    def find(name: str) -> int | None:
        for handle in handles:
            address = _bootstrap.dlsym(name, handle)
            if address:
                return address
        return None

    with _lock:
        if not _default:
            _default.append(SymbolLookup(find))
        return _default[0]
