"""Function descriptors and Linker options, and the canonical registration key.

A registration key identifies one stub: the descriptor with every layout name
stripped, plus the options that change the generated code.  The build side and
the run time compute it with the same function, :func:`registration_key`.
"""

from __future__ import annotations

from ._layouts import MemoryLayout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Final

__all__ = [
    "MAX_BY_VALUE_BYTE_SIZE",
    "UPCALL_KEY_PREFIX",
    "FunctionDescriptor",
    "Option",
    "check_upcall",
    "checked_key",
    "registration_key",
    "upcall_key",
]

#: What the canonical key of an upcall shape starts with (a downcall's starts with ``(``).
UPCALL_KEY_PREFIX: Final = "upcall "

CAPTURABLE_STATES: Final = ("errno",)

#: The largest struct or union (in bytes) a descriptor may pass or return by value.  A stub
#: copies each such argument onto the calling thread's stack (x86_64: the outgoing argument
#: area, ``byval``; AArch64: the copy it passes by reference), so the limit keeps a call's
#: stack use to about a page per argument; a result is written straight into the segment the
#: allocator gives, and is held to the same limit so that one rule covers both directions.
#: Pass anything larger by reference: an ``ADDRESS`` argument and a ``MemorySegment``.
MAX_BY_VALUE_BYTE_SIZE: Final = 4096


class FunctionDescriptor:
    """The signature of a native function: a result layout (or none) and argument layouts."""

    __slots__ = ("_args", "_result")

    _result: MemoryLayout | None
    _args: tuple[MemoryLayout, ...]

    def __init__(self, result: MemoryLayout | None, args: Iterable[MemoryLayout]) -> None:
        args = tuple(args)
        for position, layout in enumerate(args):
            if not isinstance(layout, MemoryLayout):
                raise TypeError(
                    f"argument layout {position} must be a MemoryLayout, not {type(layout).__name__}"
                )
        if result is not None and not isinstance(result, MemoryLayout):
            raise TypeError(f"result layout must be a MemoryLayout or None, not {type(result).__name__}")
        object.__setattr__(self, "_result", result)
        object.__setattr__(self, "_args", args)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("FunctionDescriptor is immutable")

    @classmethod
    def of(cls, result: MemoryLayout, *args: MemoryLayout) -> FunctionDescriptor:
        """A descriptor with a result layout (Java's ``FunctionDescriptor.of``)."""
        if not isinstance(result, MemoryLayout):
            raise TypeError(f"result layout must be a MemoryLayout, not {type(result).__name__}")
        return cls(result, args)

    @classmethod
    def of_void(cls, *args: MemoryLayout) -> FunctionDescriptor:
        """A descriptor without a result (Java's ``FunctionDescriptor.ofVoid``)."""
        return cls(None, args)

    @property
    def return_layout(self) -> MemoryLayout | None:
        """The result layout, or ``None`` for a void function."""
        return self._result

    @property
    def argument_layouts(self) -> tuple[MemoryLayout, ...]:
        """The argument layouts, in order."""
        return self._args

    def append_argument_layouts(self, *layouts: MemoryLayout) -> FunctionDescriptor:
        """A new descriptor with more argument layouts at the end."""
        return FunctionDescriptor(self._result, self._args + layouts)

    def change_return_layout(self, layout: MemoryLayout) -> FunctionDescriptor:
        """A new descriptor with another result layout."""
        return FunctionDescriptor.of(layout, *self._args)

    def drop_return_layout(self) -> FunctionDescriptor:
        """A new descriptor without a result layout."""
        return FunctionDescriptor(None, self._args)

    def stripped(self) -> FunctionDescriptor:
        """This descriptor with every layout name removed (itself when there is none)."""
        result = None if self._result is None else self._result.stripped()
        args = tuple(a.stripped() for a in self._args)
        if result is self._result and all(a is b for a, b in zip(args, self._args, strict=True)):
            return self
        return FunctionDescriptor(result, args)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FunctionDescriptor):
            return NotImplemented
        return self._result == other._result and self._args == other._args

    def __hash__(self) -> int:
        return hash((self._result, self._args))

    def __str__(self) -> str:
        result = "v" if self._result is None else str(self._result)
        return "(" + "".join(str(a) for a in self._args) + ")" + result

    def __repr__(self) -> str:
        inner = ", ".join(repr(a) for a in self._args)
        if self._result is None:
            return f"FunctionDescriptor.of_void({inner})"
        return f"FunctionDescriptor.of({self._result!r}{', ' if inner else ''}{inner})"


class Option:
    """A linker option (Java's ``Linker.Option``); create with the static methods."""

    __slots__ = ("_kind", "_value")

    _kind: str
    _value: object

    def __init__(self, kind: str, value: object) -> None:
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_value", value)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("Linker.Option is immutable")

    @staticmethod
    def critical(allow_heap_access: bool = False) -> Option:
        """A short call that keeps the GIL (Java's ``Linker.Option.critical``)."""
        if not isinstance(allow_heap_access, bool):
            raise TypeError("allow_heap_access must be a bool")
        return Option("critical", allow_heap_access)

    @staticmethod
    def is_trivial() -> Option:
        """JDK 21's name for ``critical(allow_heap_access=False)``."""
        return Option.critical(False)

    @staticmethod
    def first_variadic_arg(index: int) -> Option:
        """The index of the first variadic argument (Java's ``firstVariadicArg``)."""
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"first_variadic_arg index must be an int, not {type(index).__name__}")
        if index < 0:
            raise ValueError(f"first_variadic_arg index must be >= 0, not {index}")
        return Option("first_variadic_arg", index)

    @staticmethod
    def capture_call_state(*names: str) -> Option:
        """Save parts of the execution state (``"errno"``) right after the call."""
        for name in names:
            if name not in CAPTURABLE_STATES:
                raise ValueError(f"Unknown name: {name!r}, must be one of: {', '.join(CAPTURABLE_STATES)}")
        return Option("capture_call_state", tuple(sorted(set(names))))

    @staticmethod
    def capture_state_layout() -> MemoryLayout:
        """The layout of the segment that receives captured state: ``struct { int errno; }``."""
        from ._layouts import JAVA_INT, MemoryLayout

        return MemoryLayout.struct_layout(JAVA_INT.with_name("errno"))

    @property
    def kind(self) -> str:
        """``critical``, ``first_variadic_arg`` or ``capture_call_state``."""
        return self._kind

    @property
    def value(self) -> object:
        """The option's argument."""
        return self._value

    @property
    def canonical(self) -> str:
        """The option's part of a registration key."""
        if self._kind == "critical":
            return "critical(heap)" if self._value else "critical"
        if self._kind == "first_variadic_arg":
            return f"variadic({self._value})"
        assert isinstance(self._value, tuple)
        return "capture(" + ",".join(self._value) + ")"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Option):
            return NotImplemented
        return (self._kind, self._value) == (other._kind, other._value)

    def __hash__(self) -> int:
        return hash((self._kind, self._value))

    def __repr__(self) -> str:
        if self._kind == "critical":
            return f"Linker.Option.critical(allow_heap_access={self._value})"
        if self._kind == "first_variadic_arg":
            return f"Linker.Option.first_variadic_arg({self._value})"
        assert isinstance(self._value, tuple)
        return "Linker.Option.capture_call_state(" + ", ".join(repr(n) for n in self._value) + ")"


_VARIADIC_REFUSED: Final = frozenset("zbcsf")


class _Where:
    """Where a layout is in a descriptor ("argument 1 of (i4)v"), for messages: made into
    text only when one is raised (a descriptor's text is not cheap, and a build checks
    thousands)."""

    __slots__ = ("descriptor", "what")

    def __init__(self, what: str, descriptor: FunctionDescriptor) -> None:
        self.what = what
        self.descriptor = descriptor

    def __str__(self) -> str:
        return f"{self.what} of {self.descriptor}"


def _check_layout(layout: MemoryLayout, where: _Where, top_level: bool) -> None:
    """The JDK's link-time rules for a layout in a descriptor (TestIllegalLink)."""
    from ._layouts import (
        NATIVE_ORDER,
        GroupLayout,
        PaddingLayout,
        SequenceLayout,
        StructLayout,
        ValueLayout,
    )

    if isinstance(layout, ValueLayout):
        if layout.order != NATIVE_ORDER:
            raise ValueError(f"Layout {layout} ({where}) does not have the native byte order")
        if layout.byte_alignment != layout.byte_size:
            raise ValueError(f"Layout alignment must be natural alignment: {layout} ({where})")
        return
    if top_level and isinstance(layout, (SequenceLayout, PaddingLayout)):
        raise ValueError(
            f"Unsupported layout: {layout} ({where}); a {type(layout).__name__} "
            "cannot be passed or returned on its own, wrap it in a struct"
        )
    if isinstance(layout, SequenceLayout):
        _check_layout(layout.element_layout, where, False)
        return
    if isinstance(layout, PaddingLayout):
        return
    assert isinstance(layout, GroupLayout)
    if not layout.member_layouts:
        raise ValueError(f"Unsupported layout: empty group {layout} ({where})")
    natural = max(m.byte_alignment for m in layout.member_layouts)
    if layout.byte_alignment != natural:
        raise ValueError(
            f"Layout alignment must be natural alignment: {layout} ({where}) has "
            f"alignment {layout.byte_alignment}, its members {natural}"
        )
    for member in layout.member_layouts:
        _check_layout(member, where, False)
    if isinstance(layout, StructLayout):
        actual = content = 0  # offset in the layout; end of the last member
        for member in layout.member_layouts:
            if isinstance(member, PaddingLayout):
                actual += member.byte_size
                continue
            expected = -(-content // member.byte_alignment) * member.byte_alignment
            if actual != expected:
                raise ValueError(
                    f"Member layout {member} of {layout} ({where}) is at offset "
                    f"{actual}, C puts it at {expected}: check the padding"
                )
            actual += member.byte_size
            content = actual
    else:
        content = max(m.byte_size for m in layout.member_layouts)
    padded = -(-content // natural) * natural
    if layout.byte_size < padded:
        raise ValueError(
            f"Layout lacks trailing padding: {layout} ({where}) is "
            f"{layout.byte_size} bytes, C makes it {padded}"
        )
    if layout.byte_size > padded:
        raise ValueError(
            f"Layout has unexpected padding: {layout} ({where}) is "
            f"{layout.byte_size} bytes, C makes it {padded}"
        )


def _check_by_value_size(layout: MemoryLayout, where: _Where) -> None:
    """A struct or union passed or returned by value fits :data:`MAX_BY_VALUE_BYTE_SIZE`."""
    from ._layouts import GroupLayout

    if isinstance(layout, GroupLayout) and layout.byte_size > MAX_BY_VALUE_BYTE_SIZE:
        raise ValueError(
            f"Layout {layout} ({where}) is {layout.byte_size} bytes: a struct or union passed "
            f"or returned by value may have at most {MAX_BY_VALUE_BYTE_SIZE} bytes "
            "(MAX_BY_VALUE_BYTE_SIZE; a stub copies such an argument onto the thread's stack); "
            "pass it by reference instead, as an ADDRESS and a MemorySegment"
        )


def check_options(descriptor: FunctionDescriptor, options: Iterable[object]) -> tuple[Option, ...]:
    """Validate a descriptor and its linker options (the JDK's link-time checks, and
    :data:`MAX_BY_VALUE_BYTE_SIZE`); return the options in canonical order."""
    seen: dict[str, Option] = {}
    for option in options:
        if not isinstance(option, Option):
            raise TypeError(f"options must be Linker.Option values, not {type(option).__name__}")
        if option.kind in seen:
            raise ValueError(f"Duplicate option: {option!r}")
        seen[option.kind] = option
    for index, layout in enumerate(descriptor.argument_layouts):
        where = _Where(f"argument {index}", descriptor)
        _check_layout(layout, where, True)
        _check_by_value_size(layout, where)
    if descriptor.return_layout is not None:
        where = _Where("result", descriptor)
        _check_layout(descriptor.return_layout, where, True)
        _check_by_value_size(descriptor.return_layout, where)
    variadic = seen.get("first_variadic_arg")
    if variadic is not None:
        first = variadic.value
        assert isinstance(first, int)
        if first > len(descriptor.argument_layouts):
            raise IndexError(
                f"Index '{first}' not in bounds for descriptor {descriptor} "
                f"({len(descriptor.argument_layouts)} arguments)"
            )
        for layout in descriptor.argument_layouts[first:]:
            carrier = getattr(layout, "carrier", "")
            if carrier in _VARIADIC_REFUSED:
                raise ValueError(
                    f"Invalid variadic argument layout: {layout} in {descriptor}; C promotes "
                    "it, so pass JAVA_INT for bool/char/short and JAVA_DOUBLE for float"
                )
    capture = seen.get("capture_call_state")
    if capture is not None and not capture.value:
        raise ValueError(
            "capture_call_state() needs the names of the states to capture, "
            f"e.g. capture_call_state({CAPTURABLE_STATES[0]!r})"
        )
    return tuple(seen[k] for k in sorted(seen))


def registration_key(descriptor: FunctionDescriptor, options: Iterable[object] = ()) -> str:
    """The canonical key of a downcall shape: names stripped, options in canonical order."""
    if not isinstance(descriptor, FunctionDescriptor):
        raise TypeError(f"descriptor must be a FunctionDescriptor, not {type(descriptor).__name__}")
    return checked_key(descriptor.stripped(), check_options(descriptor, options))


def checked_key(stripped: FunctionDescriptor, checked: tuple[Option, ...]) -> str:
    """:func:`registration_key` of a descriptor already stripped of names, with the options
    :func:`check_options` made of the given ones (no check again)."""
    key = str(stripped)
    for option in checked:
        key += " " + option.canonical
    return key


def check_upcall(descriptor: object, options: Iterable[object] = ()) -> FunctionDescriptor:
    """Validate an upcall descriptor with the JDK's rules (``Linker.upcallStub``): the
    layouts' link-time rules and :data:`MAX_BY_VALUE_BYTE_SIZE` as for downcalls, and no
    linker option at all (``critical``, ``first_variadic_arg`` and ``capture_call_state``
    are downcall options: "Not supported for upcall"; an upcall is never variadic)."""
    if not isinstance(descriptor, FunctionDescriptor):
        raise TypeError(f"descriptor must be a FunctionDescriptor, not {type(descriptor).__name__}")
    for option in options:
        if not isinstance(option, Option):
            raise TypeError(f"options must be Linker.Option values, not {type(option).__name__}")
        raise ValueError(
            f"Not supported for upcall: {option!r} (critical, first_variadic_arg and "
            "capture_call_state are options of downcalls; an upcall takes none)"
        )
    check_options(descriptor, ())
    return descriptor


def upcall_key(descriptor: FunctionDescriptor, options: Iterable[object] = ()) -> str:
    """The canonical key of an upcall shape: ``upcall `` and the descriptor, names stripped."""
    check_upcall(descriptor, options)
    return UPCALL_KEY_PREFIX + str(descriptor.stripped())
