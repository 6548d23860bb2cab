"""hatch-ffm: compile the downcall stubs a package registers into its wheel.

Build-time API.  A Feature registers call shapes with
:meth:`RuntimeForeignAccess.register_for_downcall` in ``during_setup(access)``;
the hatchling build hook ``ffm`` compiles them with llvmlite.  This package
imports without pluggy, hatchling or llvmlite; ``hookimpl`` (the optional
marker for Feature methods) needs pluggy when used.
"""

from __future__ import annotations

from typing import Any

from ffm_runtime import __version__

from ._lowering import NotSupportedYetError
from ._registration import DuringSetupAccess, RuntimeForeignAccess

__all__ = [
    "DuringSetupAccess",
    "NotSupportedYetError",
    "RuntimeForeignAccess",
    "__version__",
    "hookimpl",
]


def __getattr__(name: str) -> Any:
    if name == "hookimpl":
        from ._hookspecs import hookimpl

        return hookimpl
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
