"""ABI lowering: from a descriptor and options to the machine-level call shape.

This step decides what the handle takes from Python (a leading allocator for a
struct result, a capture segment, the arguments), how each argument travels
(a scalar, register-sized pieces of a struct, or a struct copied to the stack),
and how the result comes back.  It knows nothing about LLVM; :mod:`hatch_ffm._ir`
turns its result into IR.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ffm_runtime._descriptor import FunctionDescriptor, Option, check_options, check_upcall
from ffm_runtime._layouts import AddressLayout, GroupLayout, ValueLayout
from ffm_runtime._targets import TARGETS, CallingConvention

from . import _aapcs64, _sysv
from ._sysv import Piece, PieceType, Shape

__all__ = [
    "SCALARS",
    "Extension",
    "Form",
    "LoweredSignature",
    "LoweredUpcall",
    "NotSupportedYetError",
    "Param",
    "Passing",
    "Piece",
    "PieceType",
    "Result",
    "Returning",
    "Role",
    "ScalarKind",
    "Shape",
    "UpcallArgument",
    "lower",
    "lower_upcall",
]


class NotSupportedYetError(ValueError):
    """A descriptor or option that is valid FFM but that hatch-ffm cannot compile yet."""


class Form(enum.Enum):
    """What a scalar is in C."""

    BOOLEAN = "boolean"  #: ``bool`` (one byte, 0 or 1)
    INTEGER = "integer"  #: a signed or unsigned (``char16_t``) integer
    FLOAT = "float"
    DOUBLE = "double"
    ADDRESS = "address"  #: a pointer


class Extension(enum.Enum):
    """How an integer narrower than a register is widened in the call (the value is the
    LLVM parameter attribute)."""

    NONE = ""
    SIGN = "signext"
    ZERO = "zeroext"


@dataclass(frozen=True)
class ScalarKind:
    """How one value-layout carrier crosses the boundary."""

    #: carrier code (``i``, ``j``, ``a``, ...: ``ValueLayout.carrier``)
    carrier: str
    form: Form
    #: width in bits of a boolean or integer, else 0
    bits: int
    extension: Extension
    #: inclusive range accepted from Python for integers, else ``None``
    value_range: tuple[int, int] | None
    #: an unsigned integer (``ValueLayout.unsigned``, and ``JAVA_CHAR``): boxed from its
    #: bits as a non-negative int
    unsigned: bool = False

    @property
    def is_sse(self) -> bool:
        return self.form in (Form.FLOAT, Form.DOUBLE)


SCALARS: dict[str, ScalarKind] = {
    "z": ScalarKind("z", Form.BOOLEAN, 8, Extension.ZERO, None),
    "b": ScalarKind("b", Form.INTEGER, 8, Extension.SIGN, (-(1 << 7), (1 << 7) - 1)),
    "c": ScalarKind("c", Form.INTEGER, 16, Extension.ZERO, (0, (1 << 16) - 1), unsigned=True),
    "s": ScalarKind("s", Form.INTEGER, 16, Extension.SIGN, (-(1 << 15), (1 << 15) - 1)),
    "i": ScalarKind("i", Form.INTEGER, 32, Extension.NONE, (-(1 << 31), (1 << 31) - 1)),
    "j": ScalarKind("j", Form.INTEGER, 64, Extension.NONE, (-(1 << 63), (1 << 63) - 1)),
    "f": ScalarKind("f", Form.FLOAT, 0, Extension.NONE, None),
    "d": ScalarKind("d", Form.DOUBLE, 0, Extension.NONE, None),
    "a": ScalarKind("a", Form.ADDRESS, 0, Extension.NONE, None),
    # unsigned forms (ValueLayout.unsigned), by the layout's _code; as C's, narrow ones are
    # zero-extended by the caller (the ABIs leave 32- and 64-bit ones alone)
    "ub": ScalarKind("ub", Form.INTEGER, 8, Extension.ZERO, (0, (1 << 8) - 1), unsigned=True),
    "us": ScalarKind("us", Form.INTEGER, 16, Extension.ZERO, (0, (1 << 16) - 1), unsigned=True),
    "ui": ScalarKind("ui", Form.INTEGER, 32, Extension.NONE, (0, (1 << 32) - 1), unsigned=True),
    "uj": ScalarKind("uj", Form.INTEGER, 64, Extension.NONE, (0, (1 << 64) - 1), unsigned=True),
}


class Role(enum.Enum):
    """What a handle's Python argument is for."""

    ALLOCATOR = "allocator"  #: the ``SegmentAllocator`` of a struct result
    CAPTURE = "capture"  #: the call-state segment (``capture_call_state``)
    VALUE = "value"  #: an argument of the native function


class Passing(enum.Enum):
    """How a handle's Python argument reaches the native function."""

    OBJECT = "object"  #: not at all: the allocator
    SEGMENT = "segment"  #: not at all: the capture segment, written after the call
    SCALAR = "scalar"  #: a number, boolean or (a segment's) address
    PIECES = "pieces"  #: a struct in registers (see :class:`Piece`)
    BYVAL = "byval"  #: a struct copied to the stack by the call (x86_64)
    BYREF = "byref"  #: a struct copied by the stub, passed by pointer (AArch64)


class Returning(enum.Enum):
    """How the native function's result comes back."""

    VOID = "void"
    SCALAR = "scalar"
    PIECES = "pieces"  #: a struct in registers
    SRET = "sret"  #: a struct written through a hidden pointer


@dataclass(frozen=True)
class Param:
    """One Python argument of a handle (after an unbound handle's target address)."""

    role: Role
    passing: Passing
    scalar: ScalarKind | None = None
    #: a struct's (or the capture segment's minimum) size and alignment
    size: int = 0
    alignment: int = 1
    pieces: tuple[Piece, ...] = ()
    #: the argument's layout index in the descriptor (``-1`` for allocator / capture)
    layout_index: int = -1


@dataclass(frozen=True)
class Result:
    """How the result comes back."""

    passing: Returning
    scalar: ScalarKind | None = None
    size: int = 0
    alignment: int = 1
    pieces: tuple[Piece, ...] = ()
    #: byte size of an ``ADDRESS`` result's target layout (0: zero-length segments)
    target_size: int = 0


@dataclass(frozen=True)
class LoweredSignature:
    """A call shape ready for code generation."""

    key: str
    params: tuple[Param, ...]
    result: Result
    #: keep the GIL across the call (``critical`` / ``is_trivial``)
    keeps_gil: bool
    #: heap segments may be passed for ``ADDRESS`` (``critical(allow_heap_access=True)``)
    allow_heap: bool = False
    #: index of the first variadic *layout* (``first_variadic_arg``), or ``None``
    first_variadic: int | None = None
    #: store ``errno`` into the capture segment right after the call
    capture_errno: bool = False


def _scalar(layout: ValueLayout) -> ScalarKind:
    return SCALARS[layout._code]


def lower(
    key: str,
    descriptor: FunctionDescriptor,
    options: tuple[Option, ...],
    target: str = "x86_64-linux",
    checked: bool = False,
) -> LoweredSignature:
    """Lower one registration for ``target``, or raise :class:`NotSupportedYetError`.
    ``checked``: ``options`` are what ``check_options`` made of them for ``descriptor``."""
    if target not in TARGETS:
        raise NotSupportedYetError(f"lowering for {target} is not supported yet")
    aarch64 = TARGETS[target].calling_convention is CallingConvention.AAPCS64
    keeps_gil = allow_heap = capture = False
    first_variadic = None
    for option in options if checked else check_options(descriptor, options):
        if option.kind == "critical":
            keeps_gil = True
            allow_heap = bool(option.value)
        elif option.kind == "first_variadic_arg":
            assert isinstance(option.value, int)
            first_variadic = option.value
        else:
            capture = True
    classify = _aapcs64.classify if aarch64 else _sysv.classify

    params: list[Param] = []
    gprs, sses = _sysv.GPR_COUNT, _sysv.SSE_COUNT
    result_layout = descriptor.return_layout
    if result_layout is None:
        result = Result(Returning.VOID)
    elif isinstance(result_layout, ValueLayout):
        target_size = 0
        if isinstance(result_layout, AddressLayout) and result_layout.target_layout is not None:
            target_size = result_layout.target_layout.byte_size
        result = Result(Returning.SCALAR, _scalar(result_layout), target_size=target_size)
    else:
        assert isinstance(result_layout, GroupLayout)
        pieces = classify(result_layout)
        if pieces is None:
            if not aarch64:
                gprs -= 1  # the hidden result pointer takes rdi (on AArch64 it is x8)
            result = Result(Returning.SRET, None, result_layout.byte_size, result_layout.byte_alignment)
        else:
            result = Result(
                Returning.PIECES, None, result_layout.byte_size, result_layout.byte_alignment, pieces
            )
        params.append(Param(Role.ALLOCATOR, Passing.OBJECT))
    if capture:
        params.append(Param(Role.CAPTURE, Passing.SEGMENT, size=4, alignment=4))

    for index, layout in enumerate(descriptor.argument_layouts):
        if isinstance(layout, ValueLayout):
            kind = _scalar(layout)
            if kind.is_sse:
                sses = max(sses - 1, 0)  # past the registers, scalars go to the stack
            else:
                gprs = max(gprs - 1, 0)
            params.append(Param(Role.VALUE, Passing.SCALAR, kind, layout_index=index))
            continue
        assert isinstance(layout, GroupLayout)
        pieces = classify(layout)
        if pieces is not None and aarch64:
            # AArch64 keeps an aggregate whole: in registers if they suffice, else on the
            # stack; LLVM decides from the piece types ([N x float], [2 x i64]).
            params.append(
                Param(
                    Role.VALUE, Passing.PIECES, None, layout.byte_size, layout.byte_alignment, pieces, index
                )
            )
            continue
        if pieces is not None:
            need_sse = sum(1 for p in pieces if p.is_sse)
            need_gpr = len(pieces) - need_sse
            if need_sse <= sses and need_gpr <= gprs:
                sses -= need_sse
                gprs -= need_gpr
                params.append(
                    Param(
                        Role.VALUE,
                        Passing.PIECES,
                        None,
                        layout.byte_size,
                        layout.byte_alignment,
                        pieces,
                        index,
                    )
                )
                continue
        params.append(
            Param(
                Role.VALUE,
                Passing.BYREF if aarch64 else Passing.BYVAL,
                None,
                layout.byte_size,
                layout.byte_alignment,
                (),
                index,
            )
        )
    return LoweredSignature(key, tuple(params), result, keeps_gil, allow_heap, first_variadic, capture)


@dataclass(frozen=True)
class UpcallArgument:
    """One argument C passes to an upcall: a scalar, boxed for the Python target, or a struct
    or union by value, which reaches the target as a segment of its bytes."""

    scalar: ScalarKind
    #: byte size of an ``ADDRESS`` argument's target layout (0: a zero-length segment); a
    #: struct's size
    target_size: int = 0
    #: a struct or union by value: how C passes it (a :class:`Param` passed as ``PIECES``,
    #: ``BYVAL`` or ``BYREF``, as a downcall passes it).  The upcall's entry gathers it in
    #: memory first, so ``scalar`` is then ``ADDRESS``: a pointer to its bytes.
    struct: Param | None = None


@dataclass(frozen=True)
class LoweredUpcall:
    """An upcall shape ready for code generation: what C passes, what it gets back."""

    key: str
    arguments: tuple[UpcallArgument, ...]
    #: ``None``: void, or a struct result
    result: ScalarKind | None
    #: a struct or union result (``Returning.PIECES`` or ``SRET``, as a downcall's), or ``None``
    struct_result: Result | None = None

    @property
    def has_structs(self) -> bool:
        """Whether a struct or union travels by value (the entry then gathers and scatters it)."""
        return self.struct_result is not None or any(a.struct is not None for a in self.arguments)


def lower_upcall(key: str, descriptor: FunctionDescriptor, target: str = "x86_64-linux") -> LoweredUpcall:
    """Lower one upcall registration for ``target``, or raise :class:`NotSupportedYetError`.

    Structs and unions by value travel as a downcall of the same descriptor passes and
    returns them (:func:`lower`: the callee sees what the caller does)."""
    if target not in TARGETS:
        raise NotSupportedYetError(f"lowering for {target} is not supported yet")
    check_upcall(descriptor)
    layouts = [*descriptor.argument_layouts, descriptor.return_layout]
    values: list[Param] = []
    struct_result = None
    if any(isinstance(layout, GroupLayout) for layout in layouts):
        lowered = lower(key, descriptor, (), target)
        values = [param for param in lowered.params if param.role is Role.VALUE]
        if lowered.result.passing in (Returning.PIECES, Returning.SRET):
            struct_result = lowered.result
    arguments = []
    for index, layout in enumerate(descriptor.argument_layouts):
        if isinstance(layout, GroupLayout):
            arguments.append(UpcallArgument(SCALARS["a"], layout.byte_size, values[index]))
            continue
        assert isinstance(layout, ValueLayout)
        size = 0
        if isinstance(layout, AddressLayout) and layout.target_layout is not None:
            size = layout.target_layout.byte_size
        arguments.append(UpcallArgument(_scalar(layout), size))
    result = descriptor.return_layout
    scalar = _scalar(result) if isinstance(result, ValueLayout) else None
    return LoweredUpcall(key, tuple(arguments), scalar, struct_result)
