"""How value layouts turn into bytes and back: one codec per (carrier, byte order).

A codec has ``unpack_from(buffer, offset) -> (value,)`` and ``pack(value) -> bytes``, the
interface of ``struct.Struct``; numeric carriers use a ``struct.Struct`` directly, so a
checked segment access costs one C call.  Booleans and addresses need Python-level
conversions.  Writes convert with ``pack`` before any check (see ``_memory._pin``).
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Final

__all__ = ["codec_for"]

_FORMATS: Final = {
    "z": "?",
    "b": "b",
    "c": "H",
    "s": "h",
    "i": "i",
    "j": "q",
    "f": "f",
    "d": "d",
    "a": "Q",
    # unsigned forms (ValueLayout.unsigned)
    "ub": "B",
    "us": "H",
    "ui": "I",
    "uj": "Q",
}

#: Set by ``ffm_runtime._memory``: makes the segment an address read from memory denotes.
make_address_segment: Callable[[int, int], Any] | None = None
#: Set by ``ffm_runtime._memory``: the raw address of a segment written to memory.
segment_address: Callable[[Any], int] | None = None


class BoolCodec:
    """``JAVA_BOOLEAN``: one byte, written from ``bool`` only, read as ``byte != 0``."""

    __slots__ = ("_struct",)

    def __init__(self) -> None:
        self._struct = struct.Struct("B")

    def unpack_from(self, buffer: Any, offset: int) -> tuple[bool]:
        return (self._struct.unpack_from(buffer, offset)[0] != 0,)

    def pack(self, value: object) -> bytes:
        if value is not True and value is not False:
            raise TypeError(f"JAVA_BOOLEAN needs a bool, not {type(value).__name__}")
        return self._struct.pack(value)


class AddressCodec:
    """``ADDRESS``: reads a segment (sized by the target layout), writes a segment's address."""

    __slots__ = ("_struct", "_target_size")

    def __init__(self, fmt: str, target_size: int) -> None:
        self._struct = struct.Struct(fmt)
        self._target_size = target_size

    def unpack_from(self, buffer: Any, offset: int) -> tuple[Any]:
        address = self._struct.unpack_from(buffer, offset)[0]
        assert make_address_segment is not None
        return (make_address_segment(address, self._target_size),)

    def pack(self, value: object) -> bytes:
        assert segment_address is not None
        return self._struct.pack(segment_address(value))


def codec_for(carrier: str, order: str, target_size: int = 0) -> Any:
    """The codec of a value layout (``carrier``: its ``_code``)."""
    prefix = "<" if order == "little" else ">"
    if carrier == "z":
        return BoolCodec()
    if carrier == "a":
        return AddressCodec(prefix + _FORMATS["a"], target_size)
    return struct.Struct(prefix + _FORMATS[carrier])
