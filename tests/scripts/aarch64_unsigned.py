"""Unsigned downcall arguments and results (``JAVA_INT.unsigned()`` and friends) against the
C test library (``argv[1]``), cross-compiled by aarch64 gcc: prints "unsigned: ok".  Run by
tests/test_aarch64_emulated.py in an emulated aarch64 CPython."""

from __future__ import annotations

import sys
from typing import Any

import ffm_runtime as ffm
from ffm_runtime import JAVA_BYTE, JAVA_INT, JAVA_LONG, JAVA_SHORT, FunctionDescriptor, Linker

ffm.load_library(sys.argv[1])
find: Any = ffm.SymbolLookup.loader_lookup().find
link: Any = Linker.native_linker().downcall_handle
U8, U16, U32, U64 = (layout.unsigned() for layout in (JAVA_BYTE, JAVA_SHORT, JAVA_INT, JAVA_LONG))
for name, layout, top in (("id_u8", U8, 255), ("id_u16", U16, 65535), ("id_u32", U32, 2**32 - 1)):
    identity = link(find(name), FunctionDescriptor.of(layout, layout))
    assert [identity(v) for v in (0, top // 2 + 1, top)] == [0, top // 2 + 1, top], name
assert link(find("id_u64"), FunctionDescriptor.of(U64, U64))(2**64 - 1) == 2**64 - 1
assert link(find("low_byte"), FunctionDescriptor.of(U8, U32))(0x1FF) == 0xFF
assert link(find("low_half"), FunctionDescriptor.of(U16, U32))(0x18001) == 0x8001
mix = link(find("mix_unsigned"), FunctionDescriptor.of(U64, U8, U16, U32, U64))
assert mix(255, 65535, 2**32 - 1, 2**64 - 1) == (255 + (65535 << 8) + ((2**32 - 1) << 24) + 2**64 - 1) % 2**64
print("unsigned: ok")
