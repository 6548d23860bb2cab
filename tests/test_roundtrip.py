"""Every value layout through real stubs into a C library compiled by cc."""

from __future__ import annotations

import math
import struct
import threading
from typing import Any

import pytest

import ffm_runtime as ffm
from ffm_runtime import (
    ADDRESS,
    JAVA_BOOLEAN,
    JAVA_BYTE,
    JAVA_CHAR,
    JAVA_DOUBLE,
    JAVA_FLOAT,
    JAVA_INT,
    JAVA_LONG,
    JAVA_SHORT,
    FunctionDescriptor,
    Linker,
    MemorySegment,
)

pytestmark = pytest.mark.usefixtures("stub_site")

LINKER = Linker.native_linker()
CRITICAL = (Linker.Option.critical(),)


def handle(
    lookup: ffm.SymbolLookup, name: str, descriptor: FunctionDescriptor, *options: Linker.Option
) -> Any:
    address = lookup.find(name)
    assert address is not None, name
    return LINKER.downcall_handle(address, descriptor, *options)


def f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


INT_CASES = {
    "id_byte": (JAVA_BYTE, [0, 1, -1, 127, -128, 42]),
    "id_char": (JAVA_CHAR, [0, 1, 65535, 0x41, 0x8000]),
    "id_short": (JAVA_SHORT, [0, -1, 32767, -32768, 1234]),
    "id_int": (JAVA_INT, [0, -1, 2**31 - 1, -(2**31), 123456789]),
    "id_long": (JAVA_LONG, [0, -1, 2**63 - 1, -(2**63), 2**40 + 7]),
}


@pytest.mark.parametrize("options", [(), CRITICAL], ids=["default", "critical"])
@pytest.mark.parametrize("name", sorted(INT_CASES))
def test_integers_round_trip(lookup: ffm.SymbolLookup, name: str, options: tuple[Linker.Option, ...]) -> None:
    layout, values = INT_CASES[name]
    identity = handle(lookup, name, FunctionDescriptor.of(layout, layout), *options)
    for value in values:
        result = identity(value)
        assert result == value and type(result) is int


@pytest.mark.parametrize("options", [(), CRITICAL], ids=["default", "critical"])
def test_booleans_round_trip(lookup: ffm.SymbolLookup, options: tuple[Linker.Option, ...]) -> None:
    identity = handle(lookup, "id_bool", FunctionDescriptor.of(JAVA_BOOLEAN, JAVA_BOOLEAN), *options)
    negate = handle(lookup, "not_bool", FunctionDescriptor.of(JAVA_BOOLEAN, JAVA_BOOLEAN), *options)
    assert identity(True) is True
    assert identity(False) is False
    assert negate(True) is False
    assert negate(False) is True


FLOAT_VALUES = [0.0, -0.0, 1.5, -2.25, 1e-30, 3.0e38, -3.4028234663852886e38, math.inf, -math.inf]


@pytest.mark.parametrize("options", [(), CRITICAL], ids=["default", "critical"])
def test_floats_round_trip(lookup: ffm.SymbolLookup, options: tuple[Linker.Option, ...]) -> None:
    id_float = handle(lookup, "id_float", FunctionDescriptor.of(JAVA_FLOAT, JAVA_FLOAT), *options)
    id_double = handle(lookup, "id_double", FunctionDescriptor.of(JAVA_DOUBLE, JAVA_DOUBLE), *options)
    for value in [*FLOAT_VALUES, 0.1, 1e300, 5e-324, 2**53 + 1]:
        assert id_double(value) == float(value)
        assert math.copysign(1, id_double(value)) == math.copysign(1, float(value))
    for value in [*FLOAT_VALUES, 0.1]:
        assert id_float(value) == f32(value)
    assert math.isnan(id_float(math.nan))
    assert math.isnan(id_double(math.nan))
    assert id_double(7) == 7.0 and type(id_double(7)) is float


def test_pointers_round_trip(lookup: ffm.SymbolLookup) -> None:
    identity = handle(lookup, "id_ptr", FunctionDescriptor.of(ADDRESS, ADDRESS))
    for address in [0, 1, 0x1000, 2**47 - 8, 2**64 - 1]:
        result = identity(MemorySegment.of_address(address))
        assert isinstance(result, MemorySegment)
        assert result.address == address and result.byte_size == 0
    assert identity(MemorySegment.NULL) == MemorySegment.NULL


def test_every_carrier_in_one_call(lookup: ffm.SymbolLookup) -> None:
    layouts = (
        JAVA_BOOLEAN,
        JAVA_BYTE,
        JAVA_CHAR,
        JAVA_SHORT,
        JAVA_INT,
        JAVA_LONG,
        JAVA_FLOAT,
        JAVA_DOUBLE,
        ADDRESS,
    )
    mix = handle(lookup, "mix", FunctionDescriptor.of(JAVA_DOUBLE, *layouts))
    result = mix(True, -3, 7, -5, 11, -13, 0.5, 0.25, MemorySegment.of_address(8))
    expected = 1 + -3 * 10 + 7 * 100 + -5 * 1000 + 11e4 + -13e5 + 0.5e6 + 0.25e7 + 1e9
    assert result == pytest.approx(expected)


def test_arguments_beyond_registers(lookup: ffm.SymbolLookup) -> None:
    spill = handle(
        lookup, "spill", FunctionDescriptor.of(JAVA_DOUBLE, *[JAVA_LONG] * 10, *[JAVA_DOUBLE] * 10)
    )
    ints = list(range(1, 11))
    doubles = [x / 4 for x in range(1, 11)]
    expected = sum((i + 1) * v for i, v in enumerate(ints)) + sum((i + 11) * v for i, v in enumerate(doubles))
    assert spill(*ints, *doubles) == pytest.approx(expected)


def test_void_and_no_arguments(lookup: ffm.SymbolLookup) -> None:
    bump = handle(lookup, "bump", FunctionDescriptor.of_void())
    bump_trivial = handle(lookup, "bump", FunctionDescriptor.of_void(), Linker.Option.is_trivial())
    counter = handle(lookup, "get_counter", FunctionDescriptor.of(JAVA_INT))
    start = counter()
    assert bump() is None
    assert bump_trivial() is None
    assert counter() == start + 2


def test_pointer_arguments_reach_memory(lookup: ffm.SymbolLookup) -> None:
    write_int = handle(lookup, "write_int", FunctionDescriptor.of_void(ADDRESS, JAVA_INT))
    byte_len = handle(lookup, "byte_len", FunctionDescriptor.of(JAVA_LONG, ADDRESS))
    with ffm.Arena.of_confined() as arena:
        cell = arena.allocate(4, 4)
        write_int(cell, -123456)
        assert int.from_bytes(cell.to_bytes(), "little", signed=True) == -123456
        assert byte_len(arena.allocate_from("héllo")) == 6


def test_address_result_is_zero_length_segment(lookup: ffm.SymbolLookup) -> None:
    greeting = handle(lookup, "greeting", FunctionDescriptor.of(ADDRESS))
    result = greeting()
    assert isinstance(result, MemorySegment) and result.byte_size == 0 and result.address != 0
    with pytest.raises(IndexError, match="No string terminator"):
        result.get_string()
    assert result.reinterpret(64).get_string() == "hello from C"


def test_unbound_handle_takes_target_first(lookup: ffm.SymbolLookup) -> None:
    add = LINKER.downcall_handle(FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT))
    target = lookup.find("add_int")
    assert add(target, 2, 40) == 42
    with pytest.raises(TypeError, match=r"takes 3 arguments \(first: target address\) \(2 given\)"):
        add(2, 40)
    with pytest.raises(TypeError, match=r"argument 0 \(target address\): expected MemorySegment"):
        add(1, 2, 40)
    with pytest.raises(ValueError, match="Symbol is NULL"):
        add(MemorySegment.NULL, 2, 40)


def test_handles_are_builtins(lookup: ffm.SymbolLookup) -> None:
    add = handle(lookup, "add_int", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT))
    assert type(add).__name__ == "builtin_function_or_method"
    assert "(i4i4)i4" in (add.__doc__ or "")


def test_handles_work_from_other_threads(lookup: ffm.SymbolLookup) -> None:
    add = handle(lookup, "add_int", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT))
    results: list[int] = []

    def work() -> None:
        results.append(sum(add(i, 1) for i in range(10_000)))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [sum(range(1, 10_001))] * 4
