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
    MemorySegment,
    SymbolLookup,
    load_library,
)

from .ffm_features import CRITICAL, DIV, SNPRINTF, STRTOL

__all__ = ["abs_", "c_div", "cos", "format_number", "getpid", "labs", "parse_long", "strlen", "toupper"]

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
cos = _handle("cos", FunctionDescriptor.of(JAVA_DOUBLE, JAVA_DOUBLE), Linker.Option.critical())


def strlen(text: str) -> int:
    """Length in bytes of ``text`` encoded as UTF-8, measured by libc's ``strlen``."""
    with Arena.of_confined() as arena:
        return _strlen(arena.allocate_from(text))  # type: ignore[operator, no-any-return]


_div = _handle("div", DIV, CRITICAL)
_snprintf = _handle("snprintf", *SNPRINTF, CRITICAL)
_strtol = _handle("strtol", *STRTOL, CRITICAL)


def c_div(numerator: int, denominator: int) -> tuple[int, int]:
    """``(quot, rem)`` from C's ``div`` (a struct returned by value)."""
    with Arena.of_confined() as arena:
        result = _div(arena, numerator, denominator)  # type: ignore[operator]
        return result.get(JAVA_INT, 0), result.get(JAVA_INT, 4)


def format_number(count: int, value: float) -> str:
    """``snprintf(buffer, 64, "%d items, %.3f each", count, value)`` (a variadic call)."""
    with Arena.of_confined() as arena:
        buffer = arena.allocate(64)
        _snprintf(buffer, 64, arena.allocate_from("%d items, %.3f each"), count, value)  # type: ignore[operator]
        return buffer.get_string()


def parse_long(text: str) -> tuple[int, int]:
    """``(value, errno)`` from C's ``strtol(text, NULL, 10)``, errno captured by the stub."""
    with Arena.of_confined() as arena:
        state = arena.allocate(Linker.Option.capture_state_layout())
        value = _strtol(state, arena.allocate_from(text), MemorySegment.NULL, 10)  # type: ignore[operator]
        return value, state.get(JAVA_INT, 0)
