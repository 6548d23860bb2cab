"""ABI lowering: from a descriptor and options to the machine-level call shape.

This step decides how each argument and the result travel (which C type, which
Python conversion) and refuses what the code generator does not handle yet.
It knows nothing about LLVM; :mod:`hatch_ffm._codegen` turns its result into IR.
"""

from __future__ import annotations

from dataclasses import dataclass

from ffm_runtime._descriptor import FunctionDescriptor, Option, check_options
from ffm_runtime._layouts import NATIVE_ORDER, AddressLayout, MemoryLayout, ValueLayout

__all__ = ["LoweredSignature", "NotSupportedYetError", "ScalarKind", "lower"]


class NotSupportedYetError(ValueError):
    """A descriptor or option that is valid FFM but that hatch-ffm cannot compile yet."""


@dataclass(frozen=True)
class ScalarKind:
    """How one value-layout carrier crosses the boundary."""

    #: carrier code (``i``, ``j``, ``a``, ...)
    carrier: str
    #: integer width in bits, or 0 for floating point and pointers
    bits: int
    #: ``"signext"``, ``"zeroext"`` or ``""`` (argument extension attribute)
    extension: str
    #: inclusive range accepted from Python for integers, else ``None``
    value_range: tuple[int, int] | None


SCALARS: dict[str, ScalarKind] = {
    "z": ScalarKind("z", 8, "zeroext", None),
    "b": ScalarKind("b", 8, "signext", (-(1 << 7), (1 << 7) - 1)),
    "c": ScalarKind("c", 16, "zeroext", (0, (1 << 16) - 1)),
    "s": ScalarKind("s", 16, "signext", (-(1 << 15), (1 << 15) - 1)),
    "i": ScalarKind("i", 32, "", (-(1 << 31), (1 << 31) - 1)),
    "j": ScalarKind("j", 64, "", (-(1 << 63), (1 << 63) - 1)),
    "f": ScalarKind("f", 0, "", None),
    "d": ScalarKind("d", 0, "", None),
    "a": ScalarKind("a", 0, "", None),
}


@dataclass(frozen=True)
class LoweredSignature:
    """A call shape ready for code generation."""

    key: str
    arguments: tuple[ScalarKind, ...]
    result: ScalarKind | None
    #: keep the GIL across the call (``critical`` / ``is_trivial``)
    keeps_gil: bool
    #: heap segments may be passed for ``ADDRESS`` (``critical(allow_heap_access=True)``)
    allow_heap: bool = False
    #: byte size of an ``ADDRESS`` result's target layout (0: zero-length segments)
    result_target_size: int = 0


def _scalar(layout: MemoryLayout, where: str, descriptor: FunctionDescriptor) -> ScalarKind:
    if not isinstance(layout, ValueLayout):
        raise NotSupportedYetError(
            f"{type(layout).__name__} {layout} as {where} of {descriptor} is not supported yet: "
            "hatch-ffm currently compiles value layouts (JAVA_* and ADDRESS) only")
    if layout.order != NATIVE_ORDER:
        raise ValueError(f"Layout {layout} as {where} of {descriptor} has non-native byte order")
    if layout.byte_alignment != layout.byte_size:
        raise ValueError(
            f"Layout {layout} as {where} of {descriptor}: layout alignment must be natural alignment")
    return SCALARS[layout.carrier]


def lower(key: str, descriptor: FunctionDescriptor, options: tuple[Option, ...]) -> LoweredSignature:
    """Lower one registration, or raise :class:`NotSupportedYetError` / ``ValueError``."""
    keeps_gil = allow_heap = False
    for option in check_options(descriptor, options):
        if option.kind == "critical":
            keeps_gil = True
            allow_heap = bool(option.value)
        else:
            raise NotSupportedYetError(
                f"{option!r} (registered with {descriptor}) is not supported yet")
    arguments = tuple(_scalar(layout, f"argument {i}", descriptor)
                      for i, layout in enumerate(descriptor.argument_layouts))
    result = None
    target_size = 0
    if descriptor.return_layout is not None:
        result = _scalar(descriptor.return_layout, "result", descriptor)
        if isinstance(descriptor.return_layout, AddressLayout) \
                and descriptor.return_layout.target_layout is not None:
            target_size = descriptor.return_layout.target_layout.byte_size
    return LoweredSignature(key, arguments, result, keeps_gil, allow_heap, target_size)
