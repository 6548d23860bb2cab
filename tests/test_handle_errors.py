"""Bad input to handles: each gets its own exception and message, never a crash."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest
from fuzz.values import BrokenIndex, Index

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


def identity(lookup: ffm.SymbolLookup, name: str, layout: ffm.ValueLayout) -> Any:
    address = lookup.find(name)
    assert address is not None
    return LINKER.downcall_handle(address, FunctionDescriptor.of(layout, layout))


class TestMissingRegistration:
    def test_message_shows_signature_and_line_to_paste(self, lookup: ffm.SymbolLookup) -> None:
        descriptor = FunctionDescriptor.of(JAVA_SHORT, JAVA_SHORT, JAVA_SHORT, JAVA_SHORT)
        with pytest.raises(ffm.MissingForeignRegistrationError) as info:
            LINKER.downcall_handle(lookup.find("id_short"), descriptor)
        message = str(info.value)
        assert "Cannot perform downcall with descriptor (s2s2s2)s2" in message
        assert (
            "RuntimeForeignAccess.register_for_downcall("
            "FunctionDescriptor.of(JAVA_SHORT, JAVA_SHORT, JAVA_SHORT, JAVA_SHORT))"
        ) in message
        assert info.value.key == "(s2s2s2)s2"
        assert isinstance(info.value, LookupError)

    def test_options_are_part_of_the_shape(self, lookup: ffm.SymbolLookup) -> None:
        # (i4i4)i4 is registered, but not as a critical call
        with pytest.raises(
            ffm.MissingForeignRegistrationError,
            match=r"(?s)\(i4i4\)i4 critical.*Linker\.Option\.critical"
            r"\(allow_heap_access=False\)",
        ):
            LINKER.downcall_handle(
                lookup.find("add_int"),
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT),
                Linker.Option.critical(),
            )

    def test_declining_feature_registered_nothing(self) -> None:
        with pytest.raises(ffm.MissingForeignRegistrationError, match=r"\(s2s2s2\)s2"):
            LINKER.downcall_handle(FunctionDescriptor.of(JAVA_SHORT, JAVA_SHORT, JAVA_SHORT, JAVA_SHORT))

    def test_layout_names_do_not_matter(self, lookup: ffm.SymbolLookup) -> None:
        named = FunctionDescriptor.of(
            JAVA_INT.with_name("r"), JAVA_INT.with_name("a"), JAVA_INT.with_name("b")
        )
        assert LINKER.downcall_handle(lookup.find("add_int"), named)(1, 2) == 3


class TestArgumentCount:
    @pytest.mark.parametrize("args", [(), (1, 2), (1, 2, 3)], ids=["none", "two", "three"])
    def test_wrong_count(self, lookup: ffm.SymbolLookup, args: tuple[int, ...]) -> None:
        id_int = identity(lookup, "id_int", JAVA_INT)
        with pytest.raises(
            TypeError,
            match=rf"downcall \(i4\)i4 takes 1 argument \({len(args)} "
            r"given\)",
        ):
            id_int(*args)

    def test_keywords_are_refused(self, lookup: ffm.SymbolLookup) -> None:
        id_int = identity(lookup, "id_int", JAVA_INT)
        with pytest.raises(TypeError, match="keyword arguments"):
            id_int(x=1)


RANGES = [
    ("id_byte", JAVA_BYTE, [128, -129, 2**70], r"\[-128, 127\]"),
    ("id_char", JAVA_CHAR, [-1, 65536], r"\[0, 65535\]"),
    ("id_short", JAVA_SHORT, [32768, -32769], r"\[-32768, 32767\]"),
    ("id_int", JAVA_INT, [2**31, -(2**31) - 1], r"\[-2147483648, 2147483647\]"),
    ("id_long", JAVA_LONG, [2**63, -(2**63) - 1, 10**30], r"\[-9223372036854775808, "),
]


@pytest.mark.parametrize(
    ("name", "layout", "values", "shown"), RANGES, ids=[r[1].constant_name for r in RANGES]
)
def test_integer_out_of_range(
    lookup: ffm.SymbolLookup, name: str, layout: ffm.ValueLayout, values: list[int], shown: str
) -> None:
    handle = identity(lookup, name, layout)
    for value in values:
        with pytest.raises(
            OverflowError,
            match=rf"argument 0: {value} is out of range for "
            rf"{layout.constant_name} {shown}",
        ):
            handle(value)


@pytest.mark.parametrize(
    "layout", [JAVA_BYTE, JAVA_CHAR, JAVA_SHORT, JAVA_INT, JAVA_LONG], ids=lambda layout: layout.constant_name
)
@pytest.mark.parametrize(
    "value", [1.5, "1", None, b"x", [1], 1j], ids=["float", "str", "None", "bytes", "list", "complex"]
)
def test_integer_wrong_type(lookup: ffm.SymbolLookup, layout: ffm.ValueLayout, value: object) -> None:
    name = {"b": "id_byte", "c": "id_char", "s": "id_short", "i": "id_int", "j": "id_long"}
    handle = identity(lookup, name[layout.carrier], layout)
    with pytest.raises(
        TypeError,
        match=rf"argument 0: expected int for {layout.constant_name}, "
        rf"got {type(value).__name__}",
    ):
        handle(value)


def test_integer_accepts_index_protocol(lookup: ffm.SymbolLookup) -> None:
    id_int = identity(lookup, "id_int", JAVA_INT)
    assert id_int(Index(42)) == 42
    assert id_int(True) == 1
    with pytest.raises(OverflowError, match="out of range for JAVA_INT"):
        id_int(Index(2**40))


def test_failing_index_is_reported(lookup: ffm.SymbolLookup) -> None:
    id_int = identity(lookup, "id_int", JAVA_INT)
    with pytest.raises(ZeroDivisionError, match="broken __index__"):
        id_int(BrokenIndex())


@pytest.mark.parametrize("value", [1, 0, None, "True", 1.0], ids=repr)
def test_boolean_needs_bool(lookup: ffm.SymbolLookup, value: object) -> None:
    handle = identity(lookup, "id_bool", JAVA_BOOLEAN)
    with pytest.raises(
        TypeError,
        match=rf"expected bool for JAVA_BOOLEAN, got "
        rf"{type(value).__name__}",
    ):
        handle(value)


@pytest.mark.parametrize("layout", [JAVA_FLOAT, JAVA_DOUBLE], ids=lambda x: x.constant_name)
@pytest.mark.parametrize("value", ["1.0", None, b"1", [1.0]], ids=repr)
def test_float_wrong_type(lookup: ffm.SymbolLookup, layout: ffm.ValueLayout, value: object) -> None:
    handle = identity(lookup, "id_float" if layout.carrier == "f" else "id_double", layout)
    with pytest.raises(
        TypeError,
        match=rf"expected float for {layout.constant_name}, "
        rf"got {type(value).__name__}",
    ):
        handle(value)


def test_float_out_of_range(lookup: ffm.SymbolLookup) -> None:
    id_float = identity(lookup, "id_float", JAVA_FLOAT)
    id_double = identity(lookup, "id_double", JAVA_DOUBLE)
    for value in (1e39, -1e300, 2**200):
        with pytest.raises(OverflowError, match="is out of range for JAVA_FLOAT"):
            id_float(value)
    with pytest.raises(OverflowError, match="int too large to convert to float"):
        id_double(2**2000)
    assert id_float(math.inf) == math.inf


@pytest.mark.parametrize(
    "value", [0, 12345, "text", b"bytes", None, 1.0], ids=["int-zero", "int", "str", "bytes", "None", "float"]
)
def test_address_needs_segment(lookup: ffm.SymbolLookup, value: object) -> None:
    handle = identity(lookup, "id_ptr", ADDRESS)
    with pytest.raises(
        TypeError,
        match=rf"argument 0: expected MemorySegment for ADDRESS, "
        rf"got {type(value).__name__}",
    ):
        handle(value)


def test_closed_segment_is_refused_before_the_call(lookup: ffm.SymbolLookup) -> None:
    byte_len = LINKER.downcall_handle(lookup.find("byte_len"), FunctionDescriptor.of(JAVA_LONG, ADDRESS))
    with ffm.Arena.of_confined() as arena:
        text = arena.allocate_from("abc")
        assert byte_len(text) == 3
    with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
        byte_len(text)


def test_other_threads_segment_is_refused(lookup: ffm.SymbolLookup) -> None:
    byte_len = LINKER.downcall_handle(lookup.find("byte_len"), FunctionDescriptor.of(JAVA_LONG, ADDRESS))
    errors: list[BaseException] = []
    with ffm.Arena.of_confined() as arena:
        text = arena.allocate_from("abc")

        def other() -> None:
            try:
                byte_len(text)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert len(errors) == 1
    assert isinstance(errors[0], ffm.WrongThreadError)
    assert "Attempted access outside owning thread" in str(errors[0])


def test_auto_and_global_segments_pass_anywhere(lookup: ffm.SymbolLookup) -> None:
    byte_len = LINKER.downcall_handle(lookup.find("byte_len"), FunctionDescriptor.of(JAVA_LONG, ADDRESS))
    auto = ffm.Arena.of_auto().allocate_from("four")
    forever = ffm.Arena.global_arena().allocate_from("seven!!")
    results: list[int] = []
    thread = threading.Thread(target=lambda: results.extend([byte_len(auto), byte_len(forever)]))
    thread.start()
    thread.join()
    assert results == [4, 7]


def test_null_bound_address_is_refused() -> None:
    with pytest.raises(ValueError, match="Symbol is NULL"):
        LINKER.downcall_handle(MemorySegment.NULL, FunctionDescriptor.of(JAVA_INT))


def test_descriptor_must_be_a_descriptor() -> None:
    with pytest.raises(TypeError, match="expected a FunctionDescriptor, got int"):
        LINKER.downcall_handle(MemorySegment.of_address(8), 5)
    with pytest.raises(TypeError, match="needs a descriptor"):
        LINKER.downcall_handle()
    with pytest.raises(TypeError, match=r"options must be Linker\.Option values, not str"):
        LINKER.downcall_handle(FunctionDescriptor.of(JAVA_INT), "critical")
