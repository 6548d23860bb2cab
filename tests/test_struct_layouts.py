"""Struct and union layouts against the C compiler: sizeof/offsetof equal byte_size/byte_offset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import ffm_runtime as ffm
from ffm_runtime import (
    ADDRESS,
    JAVA_BYTE,
    JAVA_DOUBLE,
    JAVA_FLOAT,
    JAVA_INT,
    JAVA_LONG,
    JAVA_SHORT,
    FunctionDescriptor,
    Linker,
    MemoryLayout,
    PathElement,
)

pytestmark = pytest.mark.usefixtures("stub_site")

POINT = MemoryLayout.struct_layout(JAVA_INT.with_name("x"), JAVA_INT.with_name("y"))
MIXED = MemoryLayout.struct_layout(
    JAVA_BYTE.with_name("c"),
    MemoryLayout.padding_layout(7),
    JAVA_DOUBLE.with_name("d"),
    JAVA_SHORT.with_name("s"),
    MemoryLayout.padding_layout(6),
)
NESTED = MemoryLayout.struct_layout(
    POINT.with_name("p"),
    JAVA_LONG.with_name("id"),
    MemoryLayout.sequence_layout(3, JAVA_FLOAT).with_name("f"),
    MemoryLayout.padding_layout(4),
)
NUMBER = MemoryLayout.union_layout(
    JAVA_INT.with_name("i"),
    JAVA_DOUBLE.with_name("d"),
    MemoryLayout.sequence_layout(12, JAVA_BYTE).with_name("bytes"),
    MemoryLayout.padding_layout(16),
)
WITH_UNION = MemoryLayout.struct_layout(
    JAVA_BYTE.with_name("tag"),
    MemoryLayout.padding_layout(7),
    NUMBER.with_name("value"),
    ADDRESS.with_name("next"),
)

G = PathElement.group_element
S = PathElement.sequence_element


@pytest.fixture(scope="module")
def c_value(structs_lib: Path) -> Any:
    ffm.load_library(str(structs_lib))
    lookup = ffm.SymbolLookup.loader_lookup()
    linker = Linker.native_linker()

    def value(name: str) -> int:
        return int(linker.downcall_handle(lookup.find(name), FunctionDescriptor.of(JAVA_LONG))())

    return value


@pytest.mark.parametrize(
    ("c_name", "python"),
    [
        ("sizeof_point", lambda: POINT.byte_size),
        ("offsetof_point_y", lambda: POINT.byte_offset(G("y"))),
        ("sizeof_mixed", lambda: MIXED.byte_size),
        ("offsetof_mixed_d", lambda: MIXED.byte_offset(G("d"))),
        ("offsetof_mixed_s", lambda: MIXED.byte_offset(G("s"))),
        ("sizeof_nested", lambda: NESTED.byte_size),
        ("offsetof_nested_id", lambda: NESTED.byte_offset(G("id"))),
        ("offsetof_nested_f2", lambda: NESTED.byte_offset(G("f"), S(2))),
        ("sizeof_number", lambda: NUMBER.byte_size),
        ("alignof_number", lambda: NUMBER.byte_alignment),
        ("sizeof_with_union", lambda: WITH_UNION.byte_size),
        ("offsetof_with_union_value", lambda: WITH_UNION.byte_offset(G("value"))),
        ("offsetof_with_union_next", lambda: WITH_UNION.byte_offset(G("next"))),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_layout_matches_c(c_value: Any, c_name: str, python: Any) -> None:
    assert python() == c_value(c_name)


def test_var_handles_read_what_c_wrote(c_value: Any, structs_lib: Path) -> None:
    fill = Linker.native_linker().downcall_handle(
        ffm.SymbolLookup.loader_lookup().find("fill_mixed"), FunctionDescriptor.of_void(ADDRESS)
    )
    with ffm.Arena.of_confined() as arena:
        mixed = arena.allocate(MIXED)
        fill(mixed)
        assert MIXED.var_handle(G("c")).get(mixed, 0) == ord("Q")
        assert MIXED.var_handle(G("d")).get(mixed, 0) == 2.5
        assert MIXED.var_handle(G("s")).get(mixed, 0) == -7


def test_nested_paths_and_open_sequences() -> None:
    f_handle = NESTED.var_handle(G("f"), S())
    y_handle = NESTED.var_handle(G("p"), G("y"))
    array = MemoryLayout.sequence_layout(4, NESTED)
    id_of = array.var_handle(S(), G("id"))
    with ffm.Arena.of_confined() as arena:
        items = arena.allocate(array)
        for index in range(4):
            id_of.set(items, 0, index, 100 + index)
        assert [id_of.get(items, 0, i) for i in range(4)] == [100, 101, 102, 103]
        assert items.get(JAVA_LONG, NESTED.byte_size * 2 + 8) == 102
        one = items.as_slice(NESTED.byte_size, NESTED)
        f_handle.set(one, 0, 2, 1.5)
        y_handle.set(one, 0, -3)
        assert one.get(JAVA_FLOAT, NESTED.byte_offset(G("f"), S(2))) == 1.5
        assert one.get(JAVA_INT, 4) == -3
        with pytest.raises(IndexError, match="Index 4 out of bounds for length 4"):
            id_of.get(items, 0, 4)
        with pytest.raises(TypeError, match="takes 1 index argument"):
            id_of.get(items, 0)


def test_path_errors() -> None:
    with pytest.raises(ValueError, match="no member named 'z'"):
        POINT.byte_offset(G("z"))
    with pytest.raises(ValueError, match="cannot select a sequence element"):
        POINT.byte_offset(S(0))
    with pytest.raises(ValueError, match="cannot compute the offset of an open sequence"):
        NESTED.byte_offset(G("f"), S())
    with pytest.raises(ValueError, match="index 3 out of range"):
        NESTED.byte_offset(G("f"), S(3))
    with pytest.raises(ValueError, match="is not a value layout"):
        NESTED.var_handle(G("p"))
    assert NESTED.select(G("f"), S()) == JAVA_FLOAT
    assert NUMBER.byte_offset(G("d")) == 0
