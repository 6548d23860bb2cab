"""The declarations of what generated code imports: exactly the contract's names
(``ffm_runtime._contract``), declared from the C signatures written there, plus the LLVM
intrinsics the code uses and its own constant strings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from llvmlite import ir

from ffm_runtime import _contract

from ._reuse import Recording
from ._types import F32, F64, I1, I8, I32, I64, PTR, VOID

__all__ = ["Imports", "declared_type"]

#: C types of the contract's signatures, on the LP64 targets (x86_64 and AArch64 Linux)
_C_TYPES: Final[Mapping[str, ir.Type]] = {
    "void": VOID,
    "int": I32,
    "long": I64,
    "unsigned long": I64,
    "long long": I64,
    "unsigned long long": I64,
    "Py_ssize_t": I64,
    "size_t": I64,
    "double": F64,
    "PyObject *": PTR,
    "PyTypeObject *": PTR,
    "PyThreadState *": PTR,
    "PyFrameObject *": PTR,
    "PyCodeObject *": PTR,
    "void *": PTR,
    "const void *": PTR,
    "const char *": PTR,
    "char *": PTR,
    "Py_ssize_t *": PTR,
    "Py_buffer *": PTR,
    "int *": PTR,
    "PyGILState_STATE": I32,
}

#: LLVM intrinsics the code calls (lowered by LLVM: never imports, except ``memcpy``)
_INTRINSICS: Final[Mapping[str, ir.FunctionType]] = {
    "llvm.memcpy.p0.p0.i64": ir.FunctionType(VOID, [PTR, PTR, I64, I1]),
    "llvm.memset.p0.i64": ir.FunctionType(VOID, [PTR, I8, I64, I1]),
    "llvm.fabs.f32": ir.FunctionType(F32, [F32]),
    "llvm.fabs.f64": ir.FunctionType(F64, [F64]),
}


def declared_type(signature: str) -> ir.FunctionType:
    """The function type of a C signature of the contract, e.g. ``"int (PyObject *, ...)"``."""
    result, _, rest = signature.partition("(")
    if not rest.endswith(")"):
        raise ValueError(f"not a C signature: {signature!r}")
    names = rest[:-1].split(", ")
    variadic = names[-1] == "..."
    if variadic:
        names.pop()
    if names == ["void"]:
        names = []
    try:
        return ir.FunctionType(_C_TYPES[result.strip()], [_C_TYPES[name] for name in names], var_arg=variadic)
    except KeyError as exc:
        raise ValueError(f"C type {exc} of {signature!r} has no IR type here") from None


class Imports:
    """Everything one module imports, declared on first use."""

    def __init__(self, module: ir.Module) -> None:
        self.module = module
        self._functions: dict[str, ir.Function] = {}
        self._globals: dict[str, ir.GlobalVariable] = {}
        self._strings: dict[bytes, ir.GlobalVariable] = {}
        #: the recordings of the helper functions being built (``_reuse``), innermost last
        self.recordings: list[Recording] = getattr(module, "recordings", [])
        #: the objects whose properties build this module's helper functions, by class
        self.owners: dict[type, object] = {}

    def function(self, name: str) -> ir.Function:
        """A function of the contract (or an LLVM intrinsic)."""
        if self.recordings:
            self.recordings[-1].events.append(("function", name))
        if name not in self._functions:
            if name in _INTRINSICS:
                fn = ir.Function(self.module, _INTRINSICS[name], name)
            else:
                signature = _contract.PYTHON_FUNCTIONS.get(name) or _contract.LIBC_FUNCTIONS.get(name)
                if signature is None:
                    raise AssertionError(f"{name} is not in the stub ABI contract")
                fn = ir.Function(self.module, declared_type(signature), name)
                # called through the GOT the loader fills (no PLT-style trampoline hop)
                fn.attributes.add("nonlazybind")
            self._functions[name] = fn
        return self._functions[name]

    def call(self, b: ir.IRBuilder, name: str, *args: ir.Value) -> ir.Instruction:
        """Call the function ``name`` of the contract (or an LLVM intrinsic)."""
        return b.call(self.function(name), list(args))

    def global_variable(self, name: str, kind: ir.Type) -> ir.GlobalVariable:
        """An external global of the contract, as a ``kind``."""
        if self.recordings:
            self.recordings[-1].events.append(("global", name, kind))
        if name not in self._globals:
            var = ir.GlobalVariable(self.module, kind, name)
            var.linkage = "external"
            self._globals[name] = var
        return self._globals[name]

    def data(self, name: str) -> ir.GlobalVariable:
        """A CPython object or type of the contract (``_Py_NoneStruct``, ``PyLong_Type``):
        its address is the object."""
        if name not in _contract.PYTHON_DATA:
            raise AssertionError(f"{name} is not in the stub ABI contract")
        return self.global_variable(name, I8)

    def cell(self, b: ir.IRBuilder, name: str) -> ir.Value:
        """The ``PyObject *`` the runtime stored in cell ``name`` (``_contract.CELL_*``)."""
        if name not in _contract.RUNTIME_CELLS:
            raise AssertionError(f"{name} is not a runtime cell")
        return b.load(self.global_variable(name, PTR), typ=PTR)

    def offset(self, b: ir.IRBuilder, field: str) -> ir.Value:
        """The byte offset of ``field`` (a name of ``_contract.OFFSETS``) in the runtime's table."""
        table = self.global_variable(_contract.OFFSETS_SYMBOL, ir.ArrayType(I64, len(_contract.OFFSETS)))
        where = b.gep(
            table,
            [ir.Constant(I64, 0), ir.Constant(I32, _contract.OFFSETS.index(field))],
            source_etype=table.value_type,
        )
        return b.load(where, typ=I64)

    def critical_word(self) -> ir.GlobalVariable:
        """The word critical downcalls and upcall entries share (``_contract.CRITICAL_SYMBOL``)."""
        return self.global_variable(_contract.CRITICAL_SYMBOL, I64)

    def cstring(self, text: str) -> ir.GlobalVariable:
        """A private NUL-terminated constant string."""
        data = text.encode() + b"\0"
        recording = self.recordings[-1] if self.recordings else None
        if recording is not None:
            recording.events.append(("cstring", text))
        if data not in self._strings:
            array = ir.ArrayType(I8, len(data))
            var = ir.GlobalVariable(self.module, array, f".str.{len(self._strings)}")
            var.global_constant = True
            var.linkage = "private"
            var.unnamed_addr = True
            var.initializer = ir.Constant(array, bytearray(data))
            self._strings[data] = var
        if recording is not None:
            recording.values[len(recording.events) - 1] = self._strings[data]
        return self._strings[data]
