"""Unsigned integer layouts (``JAVA_INT.unsigned()``, an extension of Java's API): layout
semantics, memory access, and downcall arguments and results against C functions compiled
by the system compiler (tests/native), the reference for the ABI."""

from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import Any

import pytest

import ffm_runtime as ffm
from ffm_runtime import (
    ADDRESS,
    JAVA_BYTE,
    JAVA_CHAR,
    JAVA_DOUBLE,
    JAVA_INT,
    JAVA_LONG,
    JAVA_SHORT,
    Arena,
    FunctionDescriptor,
    Linker,
    MemoryLayout,
)

U8, U16, U32, U64 = (layout.unsigned() for layout in (JAVA_BYTE, JAVA_SHORT, JAVA_INT, JAVA_LONG))


def test_layouts() -> None:
    assert (str(U8), str(U16), str(U32), str(U64)) == ("u1", "u2", "u4", "u8")
    assert repr(U32) == "JAVA_INT.unsigned()" and U32.constant_name == "JAVA_INT"
    assert U32 != JAVA_INT and JAVA_INT.unsigned() == U32 and hash(U32) == hash(JAVA_INT.unsigned())
    assert U32.carrier == "i" and U32.byte_size == 4 and U32.byte_alignment == 4
    assert U32.is_unsigned and JAVA_CHAR.is_unsigned and not JAVA_INT.is_unsigned
    # derivations keep the unsignedness, and signed() goes back
    assert str(U32.with_name("n")) == "u4(n)" and U32.with_name("n").is_unsigned
    assert str(U64.with_order("big")) == "U8" and repr(U64.with_order("big")) == (
        "JAVA_LONG.unsigned().with_order('big')"
    )
    assert str(U16.with_byte_alignment(1)) == "1%u2" and U16.with_byte_alignment(1).is_unsigned
    assert U32.with_name("n").without_name() == U32 and U32.signed() == JAVA_INT
    assert JAVA_CHAR.unsigned() is JAVA_CHAR and U32.unsigned() == U32
    assert str(MemoryLayout.struct_layout(U8, MemoryLayout.padding_layout(3), U32)) == "[u1x3u4]"
    with pytest.raises(ValueError, match="JAVA_DOUBLE has no unsigned form: only JAVA_BYTE"):
        JAVA_DOUBLE.unsigned()
    with pytest.raises(ValueError, match="ADDRESS has no unsigned form"):
        ADDRESS.unsigned()
    with pytest.raises(ValueError, match=r"JAVA_CHAR has no signed form.*JAVA_SHORT is the signed"):
        JAVA_CHAR.signed()


def test_memory_access() -> None:
    with Arena.of_confined() as arena:
        cell = arena.allocate(8, 8)
        for layout, top in ((U8, 2**8 - 1), (U16, 2**16 - 1), (U32, 2**32 - 1), (U64, 2**64 - 1)):
            cell.set(layout, 0, top)
            assert cell.get(layout, 0) == top and cell.get(layout.signed(), 0) == -1
            cell.set(layout.signed(), 0, -2)
            assert cell.get(layout, 0) == top - 1
            with pytest.raises(OverflowError, match="-1 is out of range for " + re.escape(repr(layout))):
                cell.set(layout, 0, -1)
            with pytest.raises(OverflowError, match=rf"{top + 1} is out of range"):
                cell.set(layout, 0, top + 1)
        with pytest.raises(TypeError, match=r"JAVA_INT\.unsigned\(\) needs an int, not str"):
            cell.set(U32, 0, "1")
        cell.set(U64, 0, 2**63 + 5)
        assert cell.to_array(U32).tolist() == [5, 2**31] and cell.to_array(U64).tolist() == [2**63 + 5]
        big = U32.with_order("big")
        cell.set(big, 4, 0x80000001)
        assert cell.as_slice(4, 4).to_bytes() == b"\x80\x00\x00\x01" and cell.get(big, 4) == 0x80000001
        values = arena.allocate_from(U16, [0, 65535, 40000])
        assert values.to_array(U16).tolist() == [0, 65535, 40000]
        assert arena.allocate_from(U8, b"\xff\x80").to_array(U8).tolist() == [255, 128]


@pytest.fixture(scope="module")
def link(stub_site: Path, lookup: ffm.SymbolLookup) -> Any:
    def make(name: str, descriptor: FunctionDescriptor, *options: Linker.Option) -> Any:
        return Linker.native_linker().downcall_handle(lookup.find(name), descriptor, *options)

    return make


def test_downcall_round_trips(link: Any) -> None:
    for name, layout, values in (
        ("id_u8", U8, (0, 1, 127, 128, 255)),
        ("id_u16", U16, (0, 32767, 32768, 65535)),
        ("id_u32", U32, (0, 2**31 - 1, 2**31, 2**32 - 1)),
        ("id_u64", U64, (0, 2**63 - 1, 2**63, 2**64 - 1)),
    ):
        identity = link(name, FunctionDescriptor.of(layout, layout))
        for value in values:
            assert identity(value) == value, (name, value)
        top = values[-1]
        key = f"({layout}){layout}"
        message = f"downcall {key}, argument 0: -1 is out of range for {layout!r} [0, {values[-1]}]"
        with pytest.raises(OverflowError, match=re.escape(message)):
            identity(-1)
        with pytest.raises(OverflowError, match=rf"{top + 1} is out of range for .*\[0, {top}\]"):
            identity(top + 1)
        with pytest.raises(TypeError, match=r"expected int for JAVA_\w+\.unsigned\(\), got str"):
            identity("1")

    class Index:
        def __index__(self) -> int:
            return 2**64 - 2

    assert link("id_u64", FunctionDescriptor.of(U64, U64))(Index()) == 2**64 - 2


def test_results_are_zero_extended(link: Any) -> None:
    """C returns the narrow value; the handle reads only its bits, as unsigned."""
    assert link("low_byte", FunctionDescriptor.of(U8, U32))(0x1FF) == 0xFF
    assert link("low_half", FunctionDescriptor.of(U16, U32))(0x18001) == 0x8001
    assert link("id_u32", FunctionDescriptor.of(U32, U32))(0xFFFFFFFF) == 0xFFFFFFFF


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the x86_64 SysV caller extends narrow arguments")
def test_narrow_arguments_are_zero_extended(link: Any) -> None:
    """x86_64 SysV: the caller zero-extends an unsigned char/short argument to 32 bits (clang-
    compiled callees rely on it): a callee reading the whole 32-bit register sees the value."""
    assert link("raw32", FunctionDescriptor.of(U32, U8))(0xFF) == 0xFF
    assert link("raw32", FunctionDescriptor.of(U32, U16))(0xFFFF) == 0xFFFF


@pytest.mark.parametrize("critical", [False, True])
def test_mixed_arguments(link: Any, critical: bool) -> None:
    options = (Linker.Option.critical(),) if critical else ()
    mix = link("mix_unsigned", FunctionDescriptor.of(U64, U8, U16, U32, U64), *options)
    for a, b, c, d in ((255, 65535, 2**32 - 1, 2**64 - 1), (1, 2, 3, 4), (128, 32768, 2**31, 2**63)):
        assert mix(a, b, c, d) == (a + (b << 8) + (c << 24) + d) % 2**64
