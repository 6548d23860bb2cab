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

from . import _contract
from ._codecs import codec_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar, Final, Literal, TypeAlias

__all__ = [
    "ADDRESS",
    "ADDRESS_UNALIGNED",
    "JAVA_BOOLEAN",
    "JAVA_BYTE",
    "JAVA_CHAR",
    "JAVA_CHAR_UNALIGNED",
    "JAVA_DOUBLE",
    "JAVA_DOUBLE_UNALIGNED",
    "JAVA_FLOAT",
    "JAVA_FLOAT_UNALIGNED",
    "JAVA_INT",
    "JAVA_INT_UNALIGNED",
    "JAVA_LONG",
    "JAVA_LONG_UNALIGNED",
    "JAVA_SHORT",
    "JAVA_SHORT_UNALIGNED",
    "AddressLayout",
    "GroupLayout",
    "MemoryLayout",
    "PaddingLayout",
    "PathElement",
    "SequenceLayout",
    "StructLayout",
    "UnionLayout",
    "ValueLayout",
    "VarHandle",
]

if TYPE_CHECKING:
    ByteOrder: TypeAlias = Literal["little", "big"]
    _Path: TypeAlias = "PathElement"
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


_MAX_VALUE_ALIGNMENT: Final = _contract.SEGMENT_ALIGN_BITS + 1


def _check_alignment(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"byte alignment must be an int, not {type(value).__name__}")
    if value <= 0 or value & (value - 1):
        raise ValueError(f"Invalid alignment: {value} (must be a power of two >= 1)")
    return value


def _check_value_alignment(layout: MemoryLayout) -> None:
    """Value layouts are accessed with alignment checks on the address's low 30 bits."""
    if layout._byte_alignment > _MAX_VALUE_ALIGNMENT:
        raise ValueError(
            f"Invalid alignment: {layout._byte_alignment}: value layouts support "
            f"alignments up to {_MAX_VALUE_ALIGNMENT} (2**30)"
        )


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"layout name must be a str, not {type(name).__name__}")
    return name


#: The largest size of a layout, as in Java (a ``long``): sizes are ``Py_ssize_t`` natively.
_MAX_LAYOUT_SIZE: Final = 2**63 - 1


class MemoryLayout:
    """Base of all layouts; also the home of the layout factory functions."""

    __slots__ = ("_byte_alignment", "_byte_size", "_name")

    _byte_size: int
    _byte_alignment: int
    _name: str | None

    def __init__(self, byte_size: int, byte_alignment: int, name: str | None) -> None:
        if byte_size > _MAX_LAYOUT_SIZE:  # as Java's long arithmetic refuses it
            raise OverflowError(
                f"Layout size overflow: {byte_size} bytes; a layout has at most 2**63 - 1 bytes "
                "(for memory of unknown size, a sequence of (2**63 - 1) // element size elements)"
            )
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
        state = {slot: getattr(self, slot) for slot in _key_slots(type(self))}
        state.update({"_" + key: value for key, value in changes.items()})
        clone = object.__new__(type(self))
        for slot, value in state.items():
            object.__setattr__(clone, slot, value)
        clone._derive()
        return clone

    def _derive(self) -> None:
        """Compute the derived (non-key) slots after construction."""

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
        """This layout with every name removed, recursively (used for registration keys);
        itself when it has none (layouts are immutable)."""
        return self if self._name is None else self.without_name()

    # -- value semantics --------------------------------------------------------------
    def _key(self) -> tuple[object, ...]:
        return tuple(getattr(self, slot) for slot in _key_slots(type(self)))

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

    # -- layout paths ---------------------------------------------------------------------
    PathElement: ClassVar[type[PathElement]]

    def byte_offset(self, *path: _Path) -> int:
        """Offset in bytes of the layout selected by ``path`` (no open sequence elements)."""
        _, offset, strides = _walk(self, path)
        if strides:
            raise ValueError(
                f"Bad layout path: cannot compute the offset of an open sequence "
                f"element in {self}; give the element's index"
            )
        return offset

    def select(self, *path: _Path) -> MemoryLayout:
        """The layout selected by ``path``."""
        return _walk(self, path)[0]

    def var_handle(self, *path: _Path) -> VarHandle:
        """An accessor for the value layout selected by ``path``.

        ``handle.get(segment, base_offset, *indices)`` and
        ``handle.set(segment, base_offset, *indices, value)`` read and write it; each
        open ``sequence_element()`` in ``path`` adds an index argument.
        """
        selected, offset, strides = _walk(self, path)
        if not isinstance(selected, ValueLayout):
            raise ValueError(f"Bad layout path: {selected} selected by the path is not a value layout")
        return VarHandle(selected, offset, tuple(strides))

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


#: Slots computed from the others (fast-access helpers); not part of a layout's identity.
_DERIVED_SLOTS: Final = frozenset({"_codec", "_kind", "_mask", "_target_size"})


def _key_slots(cls: type) -> list[str]:
    slots: list[str] = []
    for klass in reversed(cls.__mro__):
        slots.extend(s for s in getattr(klass, "__slots__", ()) if s not in _DERIVED_SLOTS)
    return slots


#: the carriers with an unsigned form (:meth:`ValueLayout.unsigned`); JAVA_CHAR is unsigned
_SIGNED_INTEGERS: Final = frozenset("bsij")


class ValueLayout(MemoryLayout):
    """A layout for one primitive value (``JAVA_INT``, ``ADDRESS``, ...)."""

    __slots__ = ("_carrier", "_codec", "_kind", "_mask", "_order", "_unsigned")

    _carrier: str
    _order: ByteOrder
    _codec: Any
    _mask: int
    _unsigned: bool

    def __init__(
        self,
        carrier: str,
        *,
        byte_alignment: int | None = None,
        order: ByteOrder = NATIVE_ORDER,
        name: str | None = None,
    ) -> None:
        if carrier not in _CARRIERS:
            raise ValueError(f"unknown carrier code {carrier!r}")
        size = _CARRIERS[carrier][0]
        super().__init__(size, size if byte_alignment is None else _check_alignment(byte_alignment), name)
        object.__setattr__(self, "_carrier", carrier)
        object.__setattr__(self, "_order", order)
        object.__setattr__(self, "_unsigned", False)
        if type(self) is ValueLayout:
            self._derive()

    def _derive(self) -> None:
        _check_value_alignment(self)
        code = self._code
        object.__setattr__(self, "_codec", codec_for(code, self._order))
        object.__setattr__(self, "_mask", self._byte_alignment - 1)
        object.__setattr__(
            self, "_kind", _contract.VALUE_KINDS.get(code, 0) if self._order == "little" else 0
        )

    @property
    def _code(self) -> str:
        """How values of this layout are read, written and passed: the carrier, or ``u``
        and the carrier for an unsigned form (``ui``: ``JAVA_INT.unsigned()``)."""
        return "u" + self._carrier if self._unsigned else self._carrier

    @property
    def is_unsigned(self) -> bool:
        """Whether values are read as unsigned integers: :meth:`unsigned` layouts, and
        ``JAVA_CHAR`` (an extension of Java's API)."""
        return self._unsigned or self._carrier == "c"

    def unsigned(self) -> ValueLayout:
        """This integer layout, read and written as an unsigned integer (an extension of
        Java's API, which has no unsigned layouts): ``JAVA_INT.unsigned()`` is C's
        ``uint32_t`` (``get`` returns ``0..2**32-1``, ``set`` takes it; as a downcall
        argument or result, the C function's ``unsigned int``).  ``JAVA_CHAR`` is unsigned
        already and is returned as is."""
        if self._carrier == "c":
            return self
        if self._carrier not in _SIGNED_INTEGERS:
            raise ValueError(
                f"{self!r} has no unsigned form: only JAVA_BYTE, JAVA_SHORT, JAVA_INT and JAVA_LONG do"
            )
        clone = self._replace(unsigned=True)
        assert isinstance(clone, ValueLayout)
        return clone

    def signed(self) -> ValueLayout:
        """This integer layout, read and written as a signed integer (the inverse of
        :meth:`unsigned`; Java's integer layouts are signed)."""
        if self._carrier not in _SIGNED_INTEGERS:
            raise ValueError(
                f"{self!r} has no signed form: only JAVA_BYTE, JAVA_SHORT, JAVA_INT and JAVA_LONG do"
                + (" (JAVA_SHORT is the signed 16-bit layout)" if self._carrier == "c" else "")
            )
        clone = self._replace(unsigned=False)
        assert isinstance(clone, ValueLayout)
        return clone

    @property
    def _display_name(self) -> str:
        """The constant's name, as messages show it (``JAVA_INT.unsigned()``)."""
        return _CARRIERS[self._carrier][1] + (".unsigned()" if self._unsigned else "")

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
        code = "u" if self._unsigned else self._carrier  # u4: JAVA_INT.unsigned()
        code = code if self._order == "little" else code.upper()
        return self._decorate(f"{code}{self._byte_size}")

    def __repr__(self) -> str:
        text = self._display_name
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

    __slots__ = ("_target", "_target_size")

    _target: MemoryLayout | None
    _target_size: int  # the size of the segments addresses read as (for native code)

    def __init__(
        self, *, byte_alignment: int | None = None, order: ByteOrder = NATIVE_ORDER, name: str | None = None
    ) -> None:
        super().__init__("a", byte_alignment=byte_alignment, order=order, name=name)
        object.__setattr__(self, "_target", None)
        self._derive()

    def _derive(self) -> None:
        target_size = 0 if self._target is None else self._target.byte_size
        _check_value_alignment(self)
        object.__setattr__(self, "_codec", codec_for("a", self._order, target_size))
        object.__setattr__(self, "_mask", self._byte_alignment - 1)
        object.__setattr__(self, "_target_size", target_size)
        object.__setattr__(self, "_kind", _contract.ADDRESS_KIND if self._order == "little" else 0)

    def with_target_layout(self, layout: MemoryLayout) -> AddressLayout:
        """This address layout, pointing to ``layout`` (restricted, like Java's).

        Addresses read through it, or returned by a downcall whose result layout it is,
        become segments of ``layout.byte_size`` bytes instead of zero-length ones.
        """
        from ._access import ensure_native_access

        ensure_native_access("AddressLayout.with_target_layout")
        if not isinstance(layout, MemoryLayout):
            raise TypeError(f"target layout must be a MemoryLayout, not {type(layout).__name__}")
        clone = self._replace(target=layout)
        assert isinstance(clone, AddressLayout)
        return clone

    def without_target_layout(self) -> AddressLayout:
        """This address layout without a target layout."""
        clone = self._replace(target=None)
        assert isinstance(clone, AddressLayout)
        return clone

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
        element = self._element.stripped()
        if self._name is None and element is self._element:
            return self
        return SequenceLayout(self._count, element).with_byte_alignment(self._byte_alignment)

    def __str__(self) -> str:
        return self._decorate(f"[{self._count}:{self._element}]")

    def __repr__(self) -> str:
        return self._decorate_repr(f"MemoryLayout.sequence_layout({self._count}, {self._element!r})")


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
        members = tuple(m.stripped() for m in self._members)
        if self._name is None and all(m is n for m, n in zip(members, self._members, strict=True)):
            return self  # (no name anywhere: itself, as for a value layout)
        factory: Any = type(self)  # StructLayout or UnionLayout: (members, *, name)
        clone: MemoryLayout = factory(members)
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
                    f"Invalid alignment constraint for member layout: {member} at offset {offset}"
                )
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

for _layout in (
    JAVA_BOOLEAN,
    JAVA_BYTE,
    JAVA_CHAR,
    JAVA_SHORT,
    JAVA_INT,
    JAVA_LONG,
    JAVA_FLOAT,
    JAVA_DOUBLE,
    ADDRESS,
):
    setattr(ValueLayout, _layout.constant_name, _layout)
del _layout

JAVA_SHORT_UNALIGNED: Final = JAVA_SHORT.with_byte_alignment(1)
JAVA_CHAR_UNALIGNED: Final = JAVA_CHAR.with_byte_alignment(1)
JAVA_INT_UNALIGNED: Final = JAVA_INT.with_byte_alignment(1)
JAVA_LONG_UNALIGNED: Final = JAVA_LONG.with_byte_alignment(1)
JAVA_FLOAT_UNALIGNED: Final = JAVA_FLOAT.with_byte_alignment(1)
JAVA_DOUBLE_UNALIGNED: Final = JAVA_DOUBLE.with_byte_alignment(1)
ADDRESS_UNALIGNED: Final = ADDRESS.with_byte_alignment(1)


class PathElement:
    """One step of a layout path (Java's ``MemoryLayout.PathElement``)."""

    __slots__ = ("_kind", "_value")

    _kind: str
    _value: str | int | None

    def __init__(self, kind: str, value: str | int | None) -> None:
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_value", value)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("PathElement is immutable")

    @staticmethod
    def group_element(name_or_index: str | int) -> PathElement:
        """Select a struct or union member by name or by index."""
        if isinstance(name_or_index, bool) or not isinstance(name_or_index, (str, int)):
            raise TypeError("group_element() takes a member name or index")
        if isinstance(name_or_index, int) and name_or_index < 0:
            raise ValueError(f"Index out of range: {name_or_index}")
        return PathElement("group", name_or_index)

    @staticmethod
    def sequence_element(index: int | None = None) -> PathElement:
        """Select a sequence element; without ``index`` the element is open (a handle argument)."""
        if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
            raise TypeError("sequence_element() takes an int index or nothing")
        if index is not None and index < 0:
            raise ValueError(f"Index out of range: {index}")
        return PathElement("sequence", index)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PathElement):
            return NotImplemented
        return (self._kind, self._value) == (other._kind, other._value)

    def __hash__(self) -> int:
        return hash((self._kind, self._value))

    def __repr__(self) -> str:
        method = "group_element" if self._kind == "group" else "sequence_element"
        inner = "" if self._value is None else repr(self._value)
        return f"PathElement.{method}({inner})"


MemoryLayout.PathElement = PathElement


def _walk(layout: MemoryLayout, path: tuple[object, ...]) -> tuple[MemoryLayout, int, list[tuple[int, int]]]:
    offset = 0
    strides: list[tuple[int, int]] = []
    for element in path:
        if not isinstance(element, PathElement):
            raise TypeError(f"layout paths are made of PathElements, not {type(element).__name__}")
        if element._kind == "group":
            if not isinstance(layout, GroupLayout):
                raise ValueError(f"Bad layout path: cannot select a group element from {layout}")
            members = layout.member_layouts
            key = element._value
            if isinstance(key, int):
                if key >= len(members):
                    raise ValueError(f"Bad layout path: index {key} out of range for {layout}")
                index = key
            else:
                names = [m.name for m in members]
                if key not in names:
                    raise ValueError(f"Bad layout path: no member named {key!r} in {layout}")
                index = names.index(key)
            if isinstance(layout, StructLayout):
                offset += sum(m.byte_size for m in members[:index])
            layout = members[index]
        else:
            if not isinstance(layout, SequenceLayout):
                raise ValueError(f"Bad layout path: cannot select a sequence element from {layout}")
            element_layout = layout.element_layout
            if element._value is None:
                strides.append((element_layout.byte_size, layout.element_count))
            else:
                assert isinstance(element._value, int)
                if element._value >= layout.element_count:
                    raise ValueError(f"Bad layout path: index {element._value} out of range for {layout}")
                offset += element._value * element_layout.byte_size
            layout = element_layout
    return layout, offset, strides


#: ``MemorySegment``, set by ``ffm_runtime._memory`` (which imports this module)
SEGMENT_TYPE: type | None = None


def _check_segment(segment: object) -> None:
    if SEGMENT_TYPE is None or not isinstance(segment, SEGMENT_TYPE):
        raise TypeError(f"a var handle accesses a MemorySegment, not {type(segment).__name__}")


class VarHandle:
    """Reads and writes one value inside a segment through a layout path."""

    __slots__ = ("_layout", "_offset", "_strides")

    def __init__(self, layout: ValueLayout, offset: int, strides: tuple[tuple[int, int], ...]) -> None:
        self._layout = layout
        self._offset = offset
        self._strides = strides

    @property
    def layout(self) -> ValueLayout:
        """The value layout accessed."""
        return self._layout

    def _position(self, base_offset: int, indices: tuple[object, ...]) -> int:
        if isinstance(base_offset, bool) or not isinstance(base_offset, int):
            raise TypeError(f"base offset must be an int, not {type(base_offset).__name__}")
        base_offset = int.__index__(base_offset)
        if len(indices) != len(self._strides):
            raise TypeError(f"this handle takes {len(self._strides)} index argument(s), got {len(indices)}")
        offset = base_offset + self._offset
        for given, (stride, count) in zip(indices, self._strides, strict=True):
            if isinstance(given, bool) or not isinstance(given, int):
                raise TypeError(f"sequence index must be an int, not {type(given).__name__}")
            index = int.__index__(given)
            if not 0 <= index < count:
                raise IndexError(f"Index {index} out of bounds for length {count}")
            offset += index * stride
        return offset

    def get(self, segment: Any, base_offset: int, *indices: int) -> Any:
        """Read the value at ``base_offset`` (plus the path) in ``segment``."""
        _check_segment(segment)
        return segment.get(self._layout, self._position(base_offset, indices))

    def set(self, segment: Any, base_offset: int, *indices_and_value: Any) -> None:
        """Write the last argument at ``base_offset`` (plus the path) in ``segment``."""
        if not indices_and_value:
            raise TypeError("set() needs a value")
        *indices, value = indices_and_value
        _check_segment(segment)
        segment.set(self._layout, self._position(base_offset, tuple(indices)), value)

    def __repr__(self) -> str:
        return f"VarHandle({self._layout!r}, offset={self._offset}, strides={self._strides})"
