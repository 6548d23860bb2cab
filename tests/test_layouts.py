"""Layouts, descriptors, options and canonical registration keys (no native code)."""

from __future__ import annotations

import pytest

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
    MemoryLayout,
    ValueLayout,
    registration_key,
)
from ffm_runtime._layouts import PaddingLayout

VALUES = [
    JAVA_BOOLEAN,
    JAVA_BYTE,
    JAVA_CHAR,
    JAVA_SHORT,
    JAVA_INT,
    JAVA_LONG,
    JAVA_FLOAT,
    JAVA_DOUBLE,
    ADDRESS,
]


class TestValueLayouts:
    @pytest.mark.parametrize(
        ("layout", "text", "size"),
        [
            (JAVA_BOOLEAN, "z1", 1),
            (JAVA_BYTE, "b1", 1),
            (JAVA_CHAR, "c2", 2),
            (JAVA_SHORT, "s2", 2),
            (JAVA_INT, "i4", 4),
            (JAVA_LONG, "j8", 8),
            (JAVA_FLOAT, "f4", 4),
            (JAVA_DOUBLE, "d8", 8),
            (ADDRESS, "a8", 8),
        ],
        ids=lambda x: getattr(x, "constant_name", None),
    )
    def test_java_strings_and_sizes(self, layout: ValueLayout, text: str, size: int) -> None:
        assert str(layout) == text
        assert layout.byte_size == size == layout.byte_alignment

    def test_constants_also_on_value_layout(self) -> None:
        assert ValueLayout.JAVA_INT is JAVA_INT
        assert ValueLayout.ADDRESS is ADDRESS

    def test_derivations(self) -> None:
        assert str(JAVA_INT.with_name("x")) == "i4(x)"
        assert str(JAVA_INT.with_byte_alignment(1)) == "1%i4"
        assert str(JAVA_INT.with_order("big")) == "I4"
        assert JAVA_INT.with_name("x").without_name() == JAVA_INT
        assert JAVA_INT.with_name("x") != JAVA_INT
        assert JAVA_INT.with_name("x").name == "x"

    @pytest.mark.parametrize(
        "layout",
        [
            JAVA_INT,
            JAVA_INT.with_name("x"),
            JAVA_LONG.with_byte_alignment(4),
            JAVA_SHORT.with_order("big"),
            MemoryLayout.struct_layout(JAVA_INT.with_name("a"), JAVA_INT),
            MemoryLayout.union_layout(JAVA_INT, JAVA_FLOAT),
            MemoryLayout.sequence_layout(3, JAVA_DOUBLE),
            MemoryLayout.padding_layout(4),
        ],
        ids=str,
    )
    def test_repr_round_trips(self, layout: MemoryLayout) -> None:
        namespace = {
            "JAVA_INT": JAVA_INT,
            "JAVA_LONG": JAVA_LONG,
            "JAVA_SHORT": JAVA_SHORT,
            "JAVA_FLOAT": JAVA_FLOAT,
            "JAVA_DOUBLE": JAVA_DOUBLE,
            "MemoryLayout": MemoryLayout,
        }
        assert eval(repr(layout), namespace) == layout

    def test_immutable_and_hashable(self) -> None:
        with pytest.raises(AttributeError, match="immutable"):
            JAVA_INT._name = "x"  # type: ignore[misc]
        assert len({JAVA_INT, JAVA_INT.with_name("a").without_name(), JAVA_LONG}) == 2
        assert JAVA_INT.__eq__(4) is NotImplemented

    @pytest.mark.parametrize("alignment", [0, 3, -4, 6])
    def test_bad_alignment(self, alignment: int) -> None:
        with pytest.raises(ValueError, match=f"Invalid alignment: {alignment}"):
            JAVA_INT.with_byte_alignment(alignment)

    def test_bad_types(self) -> None:
        with pytest.raises(TypeError, match="byte alignment must be an int"):
            JAVA_INT.with_byte_alignment("4")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="layout name must be a str"):
            JAVA_INT.with_name(3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="byte order must be 'little' or 'big'"):
            JAVA_INT.with_order("middle")  # type: ignore[arg-type]


class TestGroupLayouts:
    def test_struct_size_alignment_string(self) -> None:
        point = MemoryLayout.struct_layout(JAVA_INT.with_name("x"), JAVA_INT.with_name("y"))
        assert (point.byte_size, point.byte_alignment) == (8, 4)
        assert str(point) == "[i4(x)i4(y)]"
        padded = MemoryLayout.struct_layout(JAVA_BYTE, MemoryLayout.padding_layout(7), JAVA_LONG)
        assert (padded.byte_size, padded.byte_alignment, str(padded)) == (16, 8, "[b1x7j8]")

    def test_struct_needs_explicit_padding(self) -> None:
        with pytest.raises(ValueError, match="Invalid alignment constraint for member layout"):
            MemoryLayout.struct_layout(JAVA_BYTE, JAVA_INT)

    def test_union_and_sequence(self) -> None:
        union = MemoryLayout.union_layout(JAVA_INT, JAVA_DOUBLE)
        assert (union.byte_size, union.byte_alignment, str(union)) == (8, 8, "[i4|d8]")
        seq = MemoryLayout.sequence_layout(10, JAVA_SHORT)
        assert (seq.byte_size, str(seq)) == (20, "[10:s2]")
        with pytest.raises(ValueError, match="Illegal element count: -1"):
            MemoryLayout.sequence_layout(-1, JAVA_INT)

    def test_padding(self) -> None:
        assert str(PaddingLayout(3)) == "x3"
        with pytest.raises(ValueError, match="Invalid padding size: 0"):
            MemoryLayout.padding_layout(0)

    def test_stripped_removes_names_recursively(self) -> None:
        named = MemoryLayout.struct_layout(
            JAVA_INT.with_name("a"), MemoryLayout.sequence_layout(2, JAVA_INT.with_name("b"))
        ).with_name("s")
        assert str(named.stripped()) == "[i4[2:i4]]"
        # inner names only: a new struct too, with the alignment kept
        inner = MemoryLayout.struct_layout(JAVA_INT.with_name("a"), JAVA_INT).with_byte_alignment(16)
        assert inner.stripped() is not inner and inner.stripped() == MemoryLayout.struct_layout(
            JAVA_INT, JAVA_INT
        ).with_byte_alignment(16)

    def test_a_layout_without_names_is_its_own_stripped_form(self) -> None:
        """(keys of unnamed shapes are made without copying their layouts)"""
        plain = MemoryLayout.struct_layout(JAVA_INT, MemoryLayout.sequence_layout(2, JAVA_INT))
        assert plain.stripped() is plain
        descriptor = FunctionDescriptor.of(plain, ADDRESS, plain)
        assert descriptor.stripped() is descriptor
        named = FunctionDescriptor.of(plain, plain.with_name("p"))
        assert named.stripped() is not named and str(named.stripped()) == str(named.stripped())
        assert named.stripped() == FunctionDescriptor.of(plain, plain)


class TestDescriptors:
    def test_of_and_of_void(self) -> None:
        add = FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT)
        assert str(add) == "(i4i4)i4"
        assert add.return_layout is JAVA_INT and add.argument_layouts == (JAVA_INT, JAVA_INT)
        assert str(FunctionDescriptor.of_void()) == "()v"
        assert FunctionDescriptor.of_void(ADDRESS).return_layout is None
        assert repr(add) == "FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT)"
        assert repr(FunctionDescriptor.of_void()) == "FunctionDescriptor.of_void()"

    def test_value_semantics(self) -> None:
        assert FunctionDescriptor.of(JAVA_INT) == FunctionDescriptor.of(JAVA_INT)
        assert hash(FunctionDescriptor.of(JAVA_INT)) == hash(FunctionDescriptor.of(JAVA_INT))
        assert FunctionDescriptor.of(JAVA_INT) != FunctionDescriptor.of_void(JAVA_INT)
        with pytest.raises(AttributeError, match="immutable"):
            FunctionDescriptor.of(JAVA_INT)._result = None  # type: ignore[misc]

    def test_derivations(self) -> None:
        base = FunctionDescriptor.of_void(JAVA_INT)
        assert str(base.append_argument_layouts(ADDRESS)) == "(i4a8)v"
        assert str(base.change_return_layout(JAVA_LONG)) == "(i4)j8"
        assert str(base.change_return_layout(JAVA_LONG).drop_return_layout()) == "(i4)v"

    def test_type_errors(self) -> None:
        with pytest.raises(TypeError, match="argument layout 1 must be a MemoryLayout, not int"):
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, 3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="result layout must be a MemoryLayout, not NoneType"):
            FunctionDescriptor.of(None)  # type: ignore[arg-type]


class TestOptionsAndKeys:
    def test_seed_example_keys(self) -> None:
        """The registrations of GraalVM's example, in Python."""
        cases = [
            ((FunctionDescriptor.of_void(),), "()v"),
            ((FunctionDescriptor.of_void(), Linker.Option.is_trivial()), "()v critical"),
            ((FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT),), "(i4i4)i4"),
            (
                (FunctionDescriptor.of(ADDRESS, JAVA_INT, JAVA_INT), Linker.Option.first_variadic_arg(1)),
                "(i4i4)a8 variadic(1)",
            ),
            (
                (FunctionDescriptor.of_void(JAVA_INT), Linker.Option.capture_call_state("errno")),
                "(i4)v capture(errno)",
            ),
        ]
        for args, key in cases:
            assert registration_key(*args[:1], args[1:]) == key

    def test_names_are_stripped_and_options_ordered(self) -> None:
        named = FunctionDescriptor.of(JAVA_INT.with_name("r"), JAVA_INT.with_name("a"))
        assert registration_key(named) == registration_key(FunctionDescriptor.of(JAVA_INT, JAVA_INT))
        one = registration_key(
            FunctionDescriptor.of_void(JAVA_INT),
            [Linker.Option.critical(), Linker.Option.first_variadic_arg(0)],
        )
        two = registration_key(
            FunctionDescriptor.of_void(JAVA_INT),
            [Linker.Option.first_variadic_arg(0), Linker.Option.critical()],
        )
        assert one == two == "(i4)v critical variadic(0)"

    def test_is_trivial_is_critical_without_heap(self) -> None:
        assert Linker.Option.is_trivial() == Linker.Option.critical(allow_heap_access=False)
        assert Linker.Option.critical(True).canonical == "critical(heap)"

    def test_option_validation(self) -> None:
        with pytest.raises(ValueError, match="Duplicate option"):
            registration_key(
                FunctionDescriptor.of_void(), [Linker.Option.critical(), Linker.Option.critical(True)]
            )
        with pytest.raises(IndexError, match="Index '3' not in bounds"):
            registration_key(FunctionDescriptor.of_void(JAVA_INT), [Linker.Option.first_variadic_arg(3)])
        with pytest.raises(ValueError, match="Unknown name: 'GetLastError', must be one of: errno"):
            Linker.Option.capture_call_state("GetLastError")
        with pytest.raises(TypeError, match="allow_heap_access must be a bool"):
            Linker.Option.critical(1)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="descriptor must be a FunctionDescriptor"):
            registration_key("(i4)v")  # type: ignore[arg-type]

    def test_capture_state_layout(self) -> None:
        layout = Linker.Option.capture_state_layout()
        assert str(layout) == "[i4(errno)]"
        assert layout.byte_size == 4


def test_var_handles_need_segments() -> None:
    handle = JAVA_INT.var_handle()
    for bad in (None, 5, {}):
        with pytest.raises(TypeError, match="a var handle accesses a MemorySegment"):
            handle.get(bad, 0)
        with pytest.raises(TypeError, match="a var handle accesses a MemorySegment"):
            handle.set(bad, 0, 1)


def test_value_layout_alignment_is_capped() -> None:
    assert JAVA_INT.with_byte_alignment(2**30).byte_alignment == 2**30
    with pytest.raises(ValueError, match=r"value layouts support alignments up to 1073741824"):
        JAVA_INT.with_byte_alignment(2**31)


@pytest.mark.parametrize(
    "make",
    [
        lambda: MemoryLayout.sequence_layout(2**60, JAVA_LONG),
        lambda: MemoryLayout.padding_layout(2**64),
        lambda: MemoryLayout.struct_layout(*[MemoryLayout.sequence_layout(2**62, JAVA_BYTE)] * 2),
    ],
    ids=["sequence", "padding", "struct"],
)
def test_a_layout_has_at_most_2_63_minus_1_bytes(make: object) -> None:
    """As in Java, where a layout's size is a long: a larger one was accepted, and a downcall
    whose ADDRESS result targets it made segments of byte_size -2**63 (for 2**63) or 0 (2**64),
    while get(ADDRESS) of the same layout said 2**63."""
    with pytest.raises(
        OverflowError, match=r"Layout size overflow: \d+ bytes; a layout has at most 2\*\*63 - 1"
    ):
        make()  # type: ignore[operator]
    assert MemoryLayout.sequence_layout((2**63 - 1) // 8, JAVA_LONG).byte_size == 2**63 - 8
