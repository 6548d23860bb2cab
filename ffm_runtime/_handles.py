"""Downcall handles: builtin functions bound to a stub, and their error reports.

A handle is a CPython builtin whose C function is the stub and whose ``self``
is the target address (bound handles) or ``None`` (unbound handles).  When a
stub meets an argument it cannot convert, it calls :func:`arg_error`, which
works out what was wrong and raises the matching exception with a message.
"""

from __future__ import annotations

from . import _bootstrap
from ._arena import Arena, SegmentAllocator
from ._descriptor import FunctionDescriptor, Option
from ._errors import MissingForeignRegistrationError, OutOfBoundsError, ReadOnlyError
from ._layouts import ADDRESS, GroupLayout, MemoryLayout, ValueLayout
from ._locks import ForkSafeLock
from ._memory import MemorySegment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["allocate_result", "arg_error", "make_handle", "missing_registration", "result_segment"]

_lock = ForkSafeLock()
#: registration key -> (descriptor with names stripped, options), for error messages
_descriptors: dict[str, tuple[FunctionDescriptor, tuple[Option, ...]]] = {}


_INT_RANGES = {
    "b": (-(1 << 7), (1 << 7) - 1),
    "c": (0, (1 << 16) - 1),
    "s": (-(1 << 15), (1 << 15) - 1),
    "i": (-(1 << 31), (1 << 31) - 1),
    "j": (-(1 << 63), (1 << 63) - 1),
    # unsigned forms (ValueLayout.unsigned), by the layout's _code
    "ub": (0, (1 << 8) - 1),
    "us": (0, (1 << 16) - 1),
    "ui": (0, (1 << 32) - 1),
    "uj": (0, (1 << 64) - 1),
}
_FLOAT_MAX = 3.4028234663852886e38
#: The position a stub reports when a bound handle's target arena is unusable.
_BOUND_TARGET = -2


def _type_name(value: object) -> str:
    return type(value).__name__


def _raise_for(layout: MemoryLayout, value: object, where: str) -> NoReturn:
    if not isinstance(layout, ValueLayout):
        _raise_for_segment(value, where, f"struct {layout}", layout.byte_size, heap=False)
    name = layout._display_name
    carrier = layout._code
    if carrier == "z":
        raise TypeError(f"{where}: expected bool for {name}, got {_type_name(value)}")
    if carrier in _INT_RANGES:
        import operator  # (an error path: not imported before it is needed)

        try:
            number = operator.index(value)  # type: ignore[arg-type]
        except TypeError as exc:
            raise TypeError(f"{where}: expected int for {name}, got {_type_name(value)}") from exc
        low, high = _INT_RANGES[carrier]
        raise OverflowError(f"{where}: {number} is out of range for {name} [{low}, {high}]")
    if carrier in "fd":
        import math

        if isinstance(value, (str, bytes, bytearray)):
            raise TypeError(f"{where}: expected float for {name}, got {_type_name(value)}")
        try:
            number_f = math.fsum((value,))  # type: ignore[arg-type]  # converts like the stub
        except TypeError as exc:
            raise TypeError(f"{where}: expected float for {name}, got {_type_name(value)}") from exc
        if carrier == "f" and math.isfinite(number_f) and abs(number_f) > _FLOAT_MAX:
            raise OverflowError(f"{where}: {number_f!r} is out of range for {name} (|x| <= {_FLOAT_MAX!r})")
        raise TypeError(f"{where}: cannot convert {_type_name(value)} to {name}")
    if not isinstance(value, MemorySegment):
        hint = ""
        if isinstance(value, (str, bytes, bytearray)):
            hint = " (copy it to native memory first, e.g. arena.allocate_from(text))"
        elif isinstance(value, int):
            hint = " (wrap a raw address with MemorySegment.of_address(n))"
        raise TypeError(f"{where}: expected MemorySegment for {name}, got {_type_name(value)}{hint}")
    value.scope._check()  # raises for a closed arena or another thread
    if not value.is_native():
        raise ValueError(
            f"{where}: Heap segment not allowed: {value!r}; to pass Python buffers, register "
            "and link the call shape with Linker.Option.critical(allow_heap_access=True)"
        )
    if value.address == 0:
        raise ValueError(f"{where}: Symbol is NULL: {value!r}")
    raise TypeError(f"{where}: cannot pass {value!r} as {name}")


def _raise_for_segment(
    value: object, where: str, what: str, size: int, heap: bool, written: bool = False
) -> NoReturn:
    if not isinstance(value, MemorySegment):
        raise TypeError(f"{where}: expected MemorySegment for {what}, got {_type_name(value)}")
    value.scope._check()  # raises for a closed arena or another thread
    if not value.is_native() and not heap:
        raise ValueError(
            f"{where}: Heap segment not allowed: {value!r}; to pass Python buffers, register "
            "and link the call shape with Linker.Option.critical(allow_heap_access=True)"
        )
    if value.byte_size < size:
        raise OutOfBoundsError(
            f"{where}: segment of {value.byte_size} bytes is too small for {what} ({size} bytes)", 0, size
        )
    if written and value.is_read_only():
        raise ReadOnlyError(f"{where}: {what} is written by the call, and {value!r} is read-only")
    raise TypeError(f"{where}: cannot pass {value!r} as {what}")


def arg_error(key: str, mode: str, position: int, value: Any) -> NoReturn:
    """Raise the exception for a bad downcall argument (called by stubs only).

    ``mode`` is ``"b"`` (bound handle) or ``"u"`` (unbound: argument 0 is the
    target); ``position`` is the argument's index, or -1 for a wrong count, in
    which case ``value`` is the number of arguments given.
    """
    entry = _descriptors.get(key)
    if entry is None:
        raise TypeError(f"invalid argument for downcall {key}")
    descriptor, options = entry
    leading = ["target address"] if mode == "u" else []
    if isinstance(descriptor.return_layout, GroupLayout):
        leading.append("SegmentAllocator for the struct result")
    capture = any(o.kind == "capture_call_state" for o in options)
    if capture:
        leading.append("capture segment")
    where = f"downcall {key}"
    if position == _BOUND_TARGET:  # a bound target's arena, (address, guard, arena): see make_handle
        value[2]._check()  # closed, or another thread's: raises
        raise TypeError(f"{where}: invalid target {value!r}")
    if position < 0:
        expected = len(descriptor.argument_layouts) + len(leading)
        plural = "" if expected == 1 else "s"
        first = f" (first: {', then '.join(leading)})" if leading else ""
        raise TypeError(f"{where} takes {expected} argument{plural}{first} ({value} given)")
    if position < len(leading):
        role = leading[position]
        here = f"{where}, argument {position} ({role})"
        if role == "target address":
            _raise_for(ADDRESS, value, here)
        if role.startswith("SegmentAllocator") and isinstance(value, Arena):
            value._check()  # a shared arena closed while its result was allocated: raises
        if role == "capture segment":
            layout = Option.capture_state_layout()
            _raise_for_segment(
                value, here, f"the capture state {layout}", layout.byte_size, heap=False, written=True
            )
        raise TypeError(f"{here}: invalid value {value!r}")
    layout = descriptor.argument_layouts[position - len(leading)]
    if isinstance(layout, GroupLayout):
        heap = any(o.kind == "critical" and o.value for o in options)
        _raise_for_segment(value, f"{where}, argument {position}", f"struct {layout}", layout.byte_size, heap)
    _raise_for(layout, value, f"{where}, argument {position}")


def allocate_result(allocator: Any, size: int, alignment: int) -> MemorySegment:
    """Memory for a struct result (called by stubs): ``allocator.allocate(size, alignment)``,
    checked: a native, writable segment of at least ``size`` bytes usable here.  An ``Arena``'s
    result too: its ``allocate`` may have been replaced (the stub writes the result there)."""
    # Native twin: the stubs' allocate (hatch_ffm/_ir/_alloc.py), which calls this for the rest.
    if not isinstance(allocator, SegmentAllocator):
        raise TypeError(
            f"a downcall returning a struct takes a SegmentAllocator (an Arena, for "
            f"example) before its arguments, not {_type_name(allocator)}"
        )
    segment = allocator.allocate(size, alignment)
    if (
        not isinstance(segment, MemorySegment)
        or not segment.is_native()
        or segment.byte_size < size
        or segment.is_read_only()
    ):
        raise TypeError(
            f"{type(allocator).__name__}.allocate({size}, {alignment}) returned "
            f"{segment!r}, not a writable native segment of {size} bytes"
        )
    segment.scope._check()
    return segment


def missing_registration(
    key: str, descriptor: FunctionDescriptor, options: tuple[object, ...]
) -> MissingForeignRegistrationError:
    """The error for a call shape that no installed wheel registered."""
    from ._registry import registry

    arguments = ", ".join([repr(descriptor.stripped())] + [repr(o) for o in options])
    unreadable = registry.unreadable()
    note = "".join(f"\n    {bad.error}" for bad in unreadable)
    if note:
        note = (
            f"\nThese stub manifests cannot be read; if one of them was meant to provide "
            f"this call shape, reinstall its package:{note}\n"
        )
    return MissingForeignRegistrationError(
        f"Cannot perform downcall with descriptor {key}: no installed wheel registered this "
        "call shape. To allow it, add this line to during_setup(access) of a Feature listed in "
        "[tool.hatch.build.targets.wheel.hooks.ffm] features, then rebuild and reinstall the "
        f"wheel:\n\n    RuntimeForeignAccess.register_for_downcall({arguments})\n{note}",
        key,
        tuple(bad.path for bad in unreadable),
    )


def make_handle(
    key: str,
    descriptor: FunctionDescriptor,
    options: tuple[object, ...],
    target: str,
    address: int | None,
    scope: Any = None,
) -> Any:
    """A builtin calling the stub for ``key``; bound to ``address`` unless it is ``None``.
    ``scope``: the arena owning the symbol at ``address`` (a library it unloads): the stub
    checks it on every call, and keeps a shared one acquired while the call runs."""
    from ._registry import registry

    stub = registry.stub_address(key, target, bound=address is not None)
    if stub is None:
        raise missing_registration(key, descriptor, options)
    with _lock:
        _descriptors.setdefault(key, (descriptor.stripped(), tuple(options)))  # type: ignore[arg-type]
    doc = f"Downcall handle {key}" + (
        "" if address is not None else "; the first argument is the target address segment"
    )
    bound: object = address
    if scope is not None and address is not None:
        bound = (address, scope._guard(), scope)  # what the stub reads: see _stubs._bound_target
    return _bootstrap.new_builtin(stub, bound, "downcall", doc)


def result_segment(address: int, size: int) -> MemorySegment:
    """The segment an ``ADDRESS`` result denotes (called by stubs)."""
    return MemorySegment.NULL if address == 0 else MemorySegment._make(address, size)
