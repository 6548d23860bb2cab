"""Immutable records without ``dataclasses`` (whose import, with ``inspect``, costs more
than a first downcall handle should): a class lists its fields in ``__slots__`` and sets
them once, in its ``__init__`` (``Final``); records compare, hash and print by those fields."""

from __future__ import annotations

__all__ = ["Record"]


class Record:
    """Base of the runtime's records (fields set once, in ``__init__``)."""

    __slots__ = ()

    def _fields(self) -> tuple[str, ...]:
        fields: tuple[str, ...] = type(self).__slots__
        return fields

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields())

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields())
        return f"{type(self).__name__}({fields})"
