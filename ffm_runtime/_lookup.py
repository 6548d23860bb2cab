"""Finding native symbols: ``load_library`` and ``SymbolLookup``.

``load_library`` is the analog of ``System.loadLibrary``/``System.load``: the
libraries a package loads are what its :meth:`SymbolLookup.loader_lookup`
searches, before the process's global symbols.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable

from . import _bootstrap
from ._access import caller_module, caller_unit, ensure_native_access
from ._errors import LibraryLoadError, UnsupportedOperationError
from ._locks import ForkSafeLock
from ._memory import MemorySegment

__all__ = ["SymbolLookup", "load_library"]

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
    if os.sep in name or name.endswith(".so") or ".so." in name:
        return [os.path.abspath(name)]
    found = []
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

    A path (containing ``/`` or ending in ``.so``) is loaded as is, like
    ``System.load``.  A bare name like ``"m"`` is looked up as ``libm.so`` in the
    calling module's folder and its top-level package's folder, then on the
    system (``ctypes.util.find_library``), like ``System.loadLibrary``.
    This is a restricted operation.
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

    __slots__ = ("_finder",)

    def __init__(self, finder: Callable[[str], int | None]) -> None:
        self._finder = finder

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
    def library_lookup(name_or_path: str, arena: object = None) -> SymbolLookup:
        """Not supported yet; raises :class:`UnsupportedOperationError` (a restricted method)."""
        ensure_native_access("SymbolLookup.library_lookup")
        raise UnsupportedOperationError(
            "SymbolLookup.library_lookup is not supported yet: SymbolLookup.loader_lookup() is "
            "currently the only supported kind of SymbolLookup; load the library with "
            "ffm_runtime.load_library(name) first"
        )

    def find(self, name: str) -> MemorySegment | None:
        """The address of ``name`` as a zero-length segment, or ``None`` if not found."""
        if not isinstance(name, str):
            raise TypeError(f"symbol name must be a str, not {type(name).__name__}")
        if not name or "\0" in name:
            return None
        address = self._finder(name)
        return None if address is None else MemorySegment.of_address(address)

    def or_else(self, other: SymbolLookup) -> SymbolLookup:
        """A lookup that tries this one, then ``other``."""

        def find(name: str) -> int | None:
            found = self._finder(name)
            return found if found is not None else other._finder(name)

        return SymbolLookup(find)
