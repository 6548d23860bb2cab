"""Downcall handles into libc and libm, created when this module is imported."""

from __future__ import annotations

from ffm_runtime import (
    ADDRESS,
    JAVA_DOUBLE,
    JAVA_INT,
    JAVA_LONG,
    Arena,
    FunctionDescriptor,
    Linker,
    SymbolLookup,
    load_library,
)

__all__ = ["abs_", "cos", "getpid", "labs", "strlen", "toupper"]

load_library("m")  # libm, searched here first, then on the system
_linker = Linker.native_linker()
_lookup = SymbolLookup.loader_lookup()


def _handle(name: str, descriptor: FunctionDescriptor, *options: Linker.Option) -> object:
    address = _lookup.find(name)
    if address is None:
        raise LookupError(f"symbol {name!r} not found")
    return _linker.downcall_handle(address, descriptor, *options)


_strlen = _handle("strlen", FunctionDescriptor.of(JAVA_LONG, ADDRESS))
getpid = _handle("getpid", FunctionDescriptor.of(JAVA_INT))
abs_ = _handle("abs", FunctionDescriptor.of(JAVA_INT, JAVA_INT))
labs = _handle("labs", FunctionDescriptor.of(JAVA_LONG, JAVA_LONG))
toupper = _handle("toupper", FunctionDescriptor.of(JAVA_INT, JAVA_INT))
cos = _handle("cos", FunctionDescriptor.of(JAVA_DOUBLE, JAVA_DOUBLE),
              Linker.Option.critical())


def strlen(text: str) -> int:
    """Length in bytes of ``text`` encoded as UTF-8, measured by libc's ``strlen``."""
    with Arena.of_confined() as arena:
        return _strlen(arena.allocate_from(text))  # type: ignore[operator, no-any-return]
