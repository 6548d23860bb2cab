"""The idioms of code that calls CPython: value/ok pairs, checked calls that clear the error
they raise, and the ways to give up.

Conventions every helper of this package follows:

- A helper that may fail returns a *pair* ``{value, i1 ok}``; a failed one has set no error
  (it cleared it).
- A helper that returns a ``PyObject *`` returns a new reference, or NULL.  NULL with an
  error set is an error, for the caller to return; NULL without one means "not here": the
  caller takes another way (in the end, a Python method decides, and raises if it must).
- "Give up" is to return NULL without an error set.
"""

from __future__ import annotations

from llvmlite import ir

from ._imports import Imports
from ._types import F64, I1, NULL

__all__ = ["Idioms", "is_null", "not_null", "return_pair", "unpack"]


def is_null(b: ir.IRBuilder, value: ir.Value) -> ir.Value:
    return b.icmp_unsigned("==", value, NULL)


def not_null(b: ir.IRBuilder, value: ir.Value) -> ir.Value:
    return b.icmp_unsigned("!=", value, NULL)


def return_pair(b: ir.IRBuilder, value: ir.Value, ok: ir.Value) -> None:
    """Return ``{value, ok}``."""
    pair = ir.LiteralStructType([value.type, I1])
    b.ret(b.insert_value(b.insert_value(ir.Constant(pair, ir.Undefined), value, 0), ok, 1))


def unpack(b: ir.IRBuilder, pair: ir.Value) -> tuple[ir.Value, ir.Value]:
    """``(value, ok)`` of a pair."""
    return b.extract_value(pair, 0), b.extract_value(pair, 1)


class Idioms:
    """The idioms, for the code of one module."""

    def __init__(self, imports: Imports) -> None:
        self.imports = imports

    def helper(
        self, name: str, result: ir.Type, params: list[ir.Type], *, cold: bool = False
    ) -> tuple[ir.Function, ir.IRBuilder]:
        """A new internal function ``ffm_h_<name>`` and a builder at its entry.  It is called,
        never inlined (``hatch_ffm._compile`` runs no inliner): code that must be inline
        for speed is emitted in place by a method instead.  ``cold``: an error path, laid
        out away from the hot code."""
        if self.imports.recordings:
            self.imports.recordings[-1].events.append(("self",))
        fn = ir.Function(self.imports.module, ir.FunctionType(result, params), "ffm_h_" + name)
        fn.linkage = "internal"
        fn.attributes.add("nounwind")
        fn.attributes.add("noinline")
        if cold:
            fn.attributes.add("cold")
        return fn, ir.IRBuilder(fn.append_basic_block("entry"))

    def checked_call(self, b: ir.IRBuilder, name: str, *args: ir.Value) -> tuple[ir.Value, ir.Value]:
        """``(value, ok)`` of the CPython function ``name``, whose failure value (-1 or -1.0)
        is also a valid result: it failed if an error is set then, and the error is cleared.
        Emitted in place."""
        value = self.imports.call(b, name, *args)
        failure = ir.Constant(value.type, -1.0 if value.type == F64 else -1)
        entry = b.block
        maybe = (
            b.fcmp_ordered("==", value, failure) if value.type == F64 else b.icmp_signed("==", value, failure)
        )
        with b.if_then(maybe, likely=False):
            failed = not_null(b, self.imports.call(b, "PyErr_Occurred"))
            with b.if_then(failed, likely=False):
                self.imports.call(b, "PyErr_Clear")
            succeeded = b.not_(failed)
            checked = b.block
        ok = b.phi(I1)
        ok.add_incoming(ir.Constant(I1, 1), entry)
        ok.add_incoming(succeeded, checked)
        return value, ok

    def give_up_if(self, b: ir.IRBuilder, condition: ir.Value, drop: ir.Value | None = None) -> None:
        """If ``condition``: drop ``drop`` (a reference, if any) and give up."""
        with b.if_then(condition, likely=False):
            if drop is not None:
                self.imports.call(b, "Py_DecRef", drop)
            b.ret(NULL)

    def return_if_error(self, b: ir.IRBuilder) -> None:
        """Return NULL if an error is set."""
        with b.if_then(not_null(b, self.imports.call(b, "PyErr_Occurred")), likely=False):
            b.ret(NULL)

    def return_unless_not_here(self, b: ir.IRBuilder, result: ir.Value) -> None:
        """Return ``result`` (a ``PyObject *``) unless it is NULL without an error set ("not
        here"): the code after this is the other way."""
        with b.if_then(not_null(b, result)):
            b.ret(result)
        self.return_if_error(b)

    def new_none(self, b: ir.IRBuilder) -> ir.Value:
        """A new reference to ``None``."""
        none = self.imports.data("_Py_NoneStruct")
        self.imports.call(b, "Py_IncRef", none)
        return none
