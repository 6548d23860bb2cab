"""Native access: the single gate every restricted operation goes through.

Restricted operations (creating downcall handles, ``reinterpret``, loading
libraries) call :func:`ensure_native_access`.  The unit of permission is the
top-level package of the calling module (``__main__`` for a script).  This
version allows every unit; the enforcement policy plugs in here.
"""

from __future__ import annotations

import sys

__all__ = ["caller_module", "caller_unit", "ensure_native_access"]

_RUNTIME_PACKAGE = __name__.partition(".")[0]


def caller_module(skip: int = 0) -> str:
    """Name of the first module outside ``ffm_runtime`` on the call stack."""
    frame = sys._getframe(1 + skip)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not isinstance(name, str):
            name = ""
        if name.partition(".")[0] != _RUNTIME_PACKAGE:
            return name
        frame = frame.f_back  # type: ignore[assignment]  # loop ends on None
    return "__main__"


def caller_unit(skip: int = 0) -> str:
    """Top-level package of the calling module: the unit of native-access permission."""
    return caller_module(skip + 1).partition(".")[0] or "__main__"


def ensure_native_access(operation: str) -> str:
    """Check that the caller may perform the restricted ``operation``; return its unit."""
    return caller_unit(1)
