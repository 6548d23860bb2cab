"""Memory layouts: immutable, hashable descriptions of native data.

The string form of a layout follows ``java.lang.foreign``'s ``toString``
(``i4`` for ``JAVA_INT``, ``a8`` for ``ADDRESS``, upper case for big endian,
``2%i4`` for a non-natural alignment, ``i4(name)`` for a named layout,
``[i4i4]`` for a struct, ``[i4|f4]`` for a union, ``[10:i4]`` for a sequence,
``x4`` for padding).  Registration keys are built from it, so it is part of
the stub manifest format and must not change lightly.
"""

from __future__ import annotations

import sys
from typing import Any, Final, Literal

__all__ = [
    "ADDRESS",
    "JAVA_BOOLEAN",
    "JAVA_BYTE",
    "JAVA_CHAR",
    "JAVA_DOUBLE",
    "JAVA_FLOAT",
    "JAVA_INT",
    "JAVA_LONG",
    "JAVA_SHORT",
    "AddressLayout",
    "GroupLayout",
    "MemoryLayout",
    "PaddingLayout",
    "SequenceLayout",
    "StructLayout",
    "UnionLayout",
    "ValueLayout",
]

ByteOrder = Literal["little", "big"]
NATIVE_ORDER: Final[ByteOrder] = "little" if sys.byteorder == "little" else "big"

# carrier code -> (byte size, constant name)
_CARRIERS: Final[dict[str, tuple[int, str]]] = {
    "z": (1, "JAVA_BOOLEAN"),
    "b": (1, "JAVA_BYTE"),
    "c": (2, "JAVA_CHAR"),
    "s": (2, "JAVA_SHORT"),
    "i": (4, "JAVA_INT"),
    "j": (8, "JAVA_LONG"),
    "f": (4, "JAVA_FLOAT"),
    "d": (8, "JAVA_DOUBLE"),
    "a": (8, "ADDRESS"),
}


def _check_alignment(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"byte alignment must be an int, not {type(value).__name__}")
    if value <= 0 or value & (value - 1):
        raise ValueError(f"Invalid alignment: {value} (must be a power of two >= 1)")
    return value


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"layout name must be a str, not {type(name).__name__}")
    return name


class MemoryLayout:
    """Base of all layouts; also the home of the layout factory functions."""

    __slots__ = ("_byte_alignment", "_byte_size", "_name")

    _byte_size: int
    _byte_alignment: int
    _name: str | None

    def __init__(self, byte_size: int, byte_alignment: int, name: str | None) -> None:
        object.__setattr__(self, "_byte_size", byte_size)
        object.__setattr__(self, "_byte_alignment", byte_alignment)
        object.__setattr__(self, "_name", name)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, key: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    # -- properties -------------------------------------------------------------------
    @property
    def byte_size(self) -> int:
        """Size of the layout in bytes."""
        return self._byte_size

    @property
    def byte_alignment(self) -> int:
        """Alignment constraint of the layout in bytes."""
        return self._byte_alignment

    @property
    def name(self) -> str | None:
        """The layout's name, or ``None``."""
        return self._name

    # -- derivation -------------------------------------------------------------------
    def _replace(self, **changes: object) -> MemoryLayout:
        state = {slot: getattr(self, slot) for slot in _all_slots(type(self))}
        state.update({"_" + key: value for key, value in changes.items()})
        clone = object.__new__(type(self))
        for slot, value in state.items():
            object.__setattr__(clone, slot, value)
        return clone

    def with_name(self, name: str) -> MemoryLayout:
        """Return this layout with the given name."""
        return self._replace(name=_check_name(name))

    def without_name(self) -> MemoryLayout:
        """Return this layout without a name."""
        return self._replace(name=None)

    def with_byte_alignment(self, byte_alignment: int) -> MemoryLayout:
        """Return this layout with another alignment constraint."""
        return self._replace(byte_alignment=_check_alignment(byte_alignment))

    def stripped(self) -> MemoryLayout:
        """This layout with every name removed, recursively (used for registration keys)."""
        return self.without_name()

    # -- value semantics --------------------------------------------------------------
    def _key(self) -> tuple[object, ...]:
        return tuple(getattr(self, slot) for slot in _all_slots(type(self)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MemoryLayout):
            return NotImplemented
        return type(self) is type(other) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))

    def _decorate(self, text: str) -> str:
        if self._byte_alignment != self._natural_alignment():
            text = f"{self._byte_alignment}%{text}"
        if self._name is not None:
            text = f"{text}({self._name})"
        return text

    def _natural_alignment(self) -> int:
        return self._byte_alignment

    def _decorate_repr(self, text: str) -> str:
        if self._byte_alignment != self._natural_alignment():
            text = f"{text}.with_byte_alignment({self._byte_alignment})"
        if self._name is not None:
            text = f"{text}.with_name({self._name!r})"
        return text

    # -- factories (java.lang.foreign.MemoryLayout static methods) ---------------------
    @staticmethod
    def struct_layout(*elements: MemoryLayout) -> StructLayout:
        """A struct: members laid out one after the other, with no implicit padding."""
        return StructLayout(elements)

    @staticmethod
    def union_layout(*elements: MemoryLayout) -> UnionLayout:
        """A union: members overlapping at offset 0."""
        return UnionLayout(elements)

    @staticmethod
    def sequence_layout(element_count: int, element: MemoryLayout) -> SequenceLayout:
        """``element_count`` repetitions of ``element``."""
        return SequenceLayout(element_count, element)

    @staticmethod
    def padding_layout(byte_size: int) -> PaddingLayout:
        """``byte_size`` bytes of padding."""
        return PaddingLayout(byte_size)


def _all_slots(cls: type) -> list[str]:
    slots: list[str] = []
    for klass in reversed(cls.__mro__):
        slots.extend(getattr(klass, "__slots__", ()))
    return slots


class ValueLayout(MemoryLayout):
    """A layout for one primitive value (``JAVA_INT``, ``ADDRESS``, ...)."""

    __slots__ = ("_carrier", "_order")

    _carrier: str
    _order: ByteOrder

    def __init__(self, carrier: str, *, byte_alignment: int | None = None,
                 order: ByteOrder = NATIVE_ORDER, name: str | None = None) -> None:
        if carrier not in _CARRIERS:
            raise ValueError(f"unknown carrier code {carrier!r}")
        size = _CARRIERS[carrier][0]
        super().__init__(size, size if byte_alignment is None else _check_alignment(byte_alignment),
                         name)
        object.__setattr__(self, "_carrier", carrier)
        object.__setattr__(self, "_order", order)

    @property
    def carrier(self) -> str:
        """One-letter carrier code, as in Java's ``toString`` (``i`` for int, ...)."""
        return self._carrier

    @property
    def order(self) -> ByteOrder:
        """Byte order: ``"little"`` or ``"big"``."""
        return self._order

    @property
    def constant_name(self) -> str:
        """The name of the constant this layout derives from (``JAVA_INT``, ...)."""
        return _CARRIERS[self._carrier][1]

    def with_order(self, order: ByteOrder) -> ValueLayout:
        """Return this layout with the given byte order (``"little"`` or ``"big"``)."""
        if order not in ("little", "big"):
            raise ValueError(f"byte order must be 'little' or 'big', not {order!r}")
        clone = self._replace(order=order)
        assert isinstance(clone, ValueLayout)
        return clone

    def _natural_alignment(self) -> int:
        return self._byte_size

    def __str__(self) -> str:
        code = self._carrier if self._order == "little" else self._carrier.upper()
        return self._decorate(f"{code}{self._byte_size}")

    def __repr__(self) -> str:
        text = self.constant_name
        if self._order != NATIVE_ORDER:
            text += f".with_order({self._order!r})"
        return self._decorate_repr(text)

    # Java-style constants, filled in below: ValueLayout.JAVA_INT etc.
    JAVA_BOOLEAN: ValueLayout
    JAVA_BYTE: ValueLayout
    JAVA_CHAR: ValueLayout
    JAVA_SHORT: ValueLayout
    JAVA_INT: ValueLayout
    JAVA_LONG: ValueLayout
    JAVA_FLOAT: ValueLayout
    JAVA_DOUBLE: ValueLayout
    ADDRESS: AddressLayout


class AddressLayout(ValueLayout):
    """The layout of a native pointer (``ADDRESS``)."""

    __slots__ = ("_target",)

    _target: MemoryLayout | None

    def __init__(self, *, byte_alignment: int | None = None, order: ByteOrder = NATIVE_ORDER,
                 name: str | None = None) -> None:
        super().__init__("a", byte_alignment=byte_alignment, order=order, name=name)
        object.__setattr__(self, "_target", None)

    @property
    def target_layout(self) -> MemoryLayout | None:
        """The layout of the memory this address points to, if known."""
        return self._target

    def __str__(self) -> str:
        text = super().__str__()
        if self._target is not None:
            text += f":{self._target}"
        return text


class PaddingLayout(MemoryLayout):
    """Unused bytes, for explicit padding in structs."""

    __slots__ = ()

    def __init__(self, byte_size: int, *, name: str | None = None) -> None:
        if not isinstance(byte_size, int) or isinstance(byte_size, bool):
            raise TypeError(f"padding size must be an int, not {type(byte_size).__name__}")
        if byte_size <= 0:
            raise ValueError(f"Invalid padding size: {byte_size}")
        super().__init__(byte_size, 1, name)

    def _natural_alignment(self) -> int:
        return 1

    def __str__(self) -> str:
        return self._decorate(f"x{self._byte_size}")

    def __repr__(self) -> str:
        return self._decorate_repr(f"MemoryLayout.padding_layout({self._byte_size})")


class SequenceLayout(MemoryLayout):
    """``element_count`` repetitions of one element layout."""

    __slots__ = ("_count", "_element")

    _count: int
    _element: MemoryLayout

    def __init__(self, element_count: int, element: MemoryLayout, *, name: str | None = None) -> None:
        if not isinstance(element, MemoryLayout):
            raise TypeError(f"sequence element must be a MemoryLayout, not {type(element).__name__}")
        if not isinstance(element_count, int) or isinstance(element_count, bool):
            raise TypeError("sequence element count must be an int")
        if element_count < 0:
            raise ValueError(f"Illegal element count: {element_count}")
        if element.byte_size % element.byte_alignment:
            raise ValueError(f"Element layout size is not multiple of alignment: {element}")
        super().__init__(element_count * element.byte_size, element.byte_alignment, name)
        object.__setattr__(self, "_count", element_count)
        object.__setattr__(self, "_element", element)

    @property
    def element_count(self) -> int:
        """Number of elements."""
        return self._count

    @property
    def element_layout(self) -> MemoryLayout:
        """The layout of one element."""
        return self._element

    def _natural_alignment(self) -> int:
        return self._element.byte_alignment

    def stripped(self) -> MemoryLayout:
        return SequenceLayout(self._count, self._element.stripped()).with_byte_alignment(
            self._byte_alignment)

    def __str__(self) -> str:
        return self._decorate(f"[{self._count}:{self._element}]")

    def __repr__(self) -> str:
        return self._decorate_repr(
            f"MemoryLayout.sequence_layout({self._count}, {self._element!r})")


class GroupLayout(MemoryLayout):
    """A struct or a union."""

    __slots__ = ("_members",)

    _members: tuple[MemoryLayout, ...]
    _SEPARATOR = ""
    _FACTORY = ""

    def __init__(self, members: tuple[MemoryLayout, ...], size: int, *, name: str | None = None) -> None:
        alignment = max((m.byte_alignment for m in members), default=1)
        super().__init__(size, alignment, name)
        object.__setattr__(self, "_members", members)

    @property
    def member_layouts(self) -> tuple[MemoryLayout, ...]:
        """The member layouts, in order."""
        return self._members

    def _natural_alignment(self) -> int:
        return max((m.byte_alignment for m in self._members), default=1)

    def stripped(self) -> MemoryLayout:
        factory: Any = type(self)  # StructLayout or UnionLayout: (members, *, name)
        clone: MemoryLayout = factory(tuple(m.stripped() for m in self._members))
        return clone.with_byte_alignment(self._byte_alignment)

    def __str__(self) -> str:
        return self._decorate("[" + self._SEPARATOR.join(str(m) for m in self._members) + "]")

    def __repr__(self) -> str:
        inner = ", ".join(repr(m) for m in self._members)
        return self._decorate_repr(f"MemoryLayout.{self._FACTORY}({inner})")


def _check_members(members: tuple[object, ...]) -> tuple[MemoryLayout, ...]:
    for member in members:
        if not isinstance(member, MemoryLayout):
            raise TypeError(f"group members must be MemoryLayouts, not {type(member).__name__}")
    return members  # type: ignore[return-value]  # checked just above


class StructLayout(GroupLayout):
    """Members one after the other; padding must be explicit, as in Java."""

    __slots__ = ()
    _FACTORY = "struct_layout"

    def __init__(self, members: tuple[MemoryLayout, ...], *, name: str | None = None) -> None:
        members = _check_members(tuple(members))
        offset = 0
        for member in members:
            if offset % member.byte_alignment:
                raise ValueError(
                    f"Invalid alignment constraint for member layout: {member} at offset {offset}")
            offset += member.byte_size
        super().__init__(members, offset, name=name)


class UnionLayout(GroupLayout):
    """Members overlapping at offset 0."""

    __slots__ = ()
    _SEPARATOR = "|"
    _FACTORY = "union_layout"

    def __init__(self, members: tuple[MemoryLayout, ...], *, name: str | None = None) -> None:
        members = _check_members(tuple(members))
        super().__init__(members, max((m.byte_size for m in members), default=0), name=name)


JAVA_BOOLEAN: Final = ValueLayout("z")
JAVA_BYTE: Final = ValueLayout("b")
JAVA_CHAR: Final = ValueLayout("c")
JAVA_SHORT: Final = ValueLayout("s")
JAVA_INT: Final = ValueLayout("i")
JAVA_LONG: Final = ValueLayout("j")
JAVA_FLOAT: Final = ValueLayout("f")
JAVA_DOUBLE: Final = ValueLayout("d")
ADDRESS: Final = AddressLayout()

for _layout in (JAVA_BOOLEAN, JAVA_BYTE, JAVA_CHAR, JAVA_SHORT, JAVA_INT, JAVA_LONG,
                JAVA_FLOAT, JAVA_DOUBLE, ADDRESS):
    setattr(ValueLayout, _layout.constant_name, _layout)
del _layout
