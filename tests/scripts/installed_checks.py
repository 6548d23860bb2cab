"""Checks against the installed example project's wheel and the runtime's wheel: results of
its functions, accelerated segment accesses, and the errors of bad calls (type and message).
Prints "checks passed".  Run by tests/test_e2e.py in a fresh virtual environment of every
supported CPython, without llvmlite."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import ffm_runtime
from ffm_runtime import (
    JAVA_DOUBLE,
    JAVA_INT,
    Arena,
    FunctionDescriptor,
    Linker,
    MemorySegment,
    MissingForeignRegistrationError,
    OutOfBoundsError,
)

# the installed wheel's module (not on mypy's path; its handles are typed as plain objects)
native: Any = importlib.import_module("example_project.native")

assert native.abs_(-7) == 7 and native.labs(-(2**62)) == 2**62
assert native.cos(0.0) == 1.0 and native.toupper(ord("a")) == ord("A")
assert native.strlen("") == 0 and native.strlen("x" * 1000) == 1000
assert ffm_runtime.accelerated(), "the wheel's accelerators did not load"
assert type(MemorySegment.get).__name__ == "method_descriptor"
with Arena.of_confined() as arena:
    cell = arena.allocate(16, 8)
    cell.set(JAVA_DOUBLE, 8, 2.5)
    assert cell.get(JAVA_DOUBLE, 8) == 2.5 and cell.get(JAVA_INT, 0) == 0
expected: list[tuple[Callable[[], object], type[Exception], str]] = [
    (lambda: cell.get(JAVA_INT, 0), ffm_runtime.ScopeClosedError, "Already closed"),
    (lambda: Arena.global_arena().allocate(8).get(JAVA_DOUBLE, 1), OutOfBoundsError, "new offset = 1"),
    (lambda: native.abs_("1"), TypeError, "expected int for JAVA_INT, got str"),
    (lambda: native.abs_(2**31), OverflowError, "out of range for JAVA_INT"),
    (lambda: native.abs_(), TypeError, "takes 1 argument (0 given)"),  # noqa: PLW0108  (as the others)
    (lambda: native.cos("x"), TypeError, "expected float for JAVA_DOUBLE"),
    (lambda: native._strlen(b"x"), TypeError, "expected MemorySegment for ADDRESS, got bytes"),
    (
        lambda: Linker.native_linker().downcall_handle(
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT)
        ),
        MissingForeignRegistrationError,
        "register_for_downcall(",
    ),
]
for call, error, text in expected:
    try:
        call()
    except error as exc:
        assert text in str(exc), (text, str(exc))
    else:
        raise AssertionError(f"no {error.__name__}")
print("checks passed")
