"""The aarch64 accelerator object (built into ffm_runtime) reads, writes and refuses like the
Python methods, and its pointer methods (get/set(ADDRESS), as_slice, a remembered
reinterpret) run no Python code: prints the machine and "accelerated".  Run by tests/test_aarch64_emulated.py
in an emulated aarch64 CPython."""

from __future__ import annotations

import array
import os
import platform
import struct
import sys
import threading
import types

import ffm_runtime as f

assert f.accelerated(), "no accelerators"
values: dict[f.ValueLayout, object] = {
    f.JAVA_BYTE: -5,
    f.JAVA_CHAR: 65535,
    f.JAVA_SHORT: -300,
    f.JAVA_INT: -(2**31),
    f.JAVA_LONG: 2**63 - 1,
    f.JAVA_FLOAT: 1.5,
    f.JAVA_DOUBLE: -2.25,
    f.JAVA_BOOLEAN: True,
    f.JAVA_BYTE.unsigned(): 255,
    f.JAVA_SHORT.unsigned(): 65535,
    f.JAVA_INT.unsigned(): 2**32 - 1,
    f.JAVA_LONG.unsigned(): 2**64 - 1,
}
with f.Arena.of_confined() as arena:
    cell = arena.allocate(16, 8)
    for layout, value in values.items():
        cell.set(layout, 8, value)
        assert cell.get(layout, 8) == value, layout
    cell.set(f.JAVA_INT, 0, 0x01020304)
    assert cell.as_slice(0, 4).to_bytes() == struct.pack("<i", 0x01020304)
    try:
        cell.get(f.JAVA_INT, 14)
    except IndexError as exc:
        assert "new offset = 14" in str(exc)
    else:
        raise AssertionError("no IndexError")
# the bulk accelerators: bytes and strings
bulk = {
    "to_bytes": f.MemorySegment.to_bytes,
    "fill": f.MemorySegment.fill,
    "copy": f.MemorySegment.copy,
    "get_string": f.MemorySegment.get_string,
    "of_array": f.MemorySegment.of_array,
    "allocate_from": f.Arena.allocate_from,
}
for name, method in bulk.items():
    assert type(method).__name__ == "builtin_function_or_method" or "method" in type(method).__name__, name
with f.Arena.of_confined() as arena:
    text = arena.allocate_from("héllo")
    assert text.to_bytes() == "héllo\0".encode() and text.get_string() == "héllo"
    cell = arena.allocate_from(f.JAVA_LONG, -(2**63))
    assert cell.get(f.JAVA_LONG, 0) == -(2**63) and cell.address % 8 == 0
    assert arena.allocate_from(f.JAVA_DOUBLE, 2.5).get(f.JAVA_DOUBLE, 0) == 2.5
    assert arena.allocate_from(f.JAVA_BYTE, b"xyz").to_bytes() == b"xyz"
    assert arena.allocate_from(f.JAVA_BYTE, bytearray(b"ab")).to_bytes() == b"ab"
    assert list(arena.allocate_from(f.JAVA_SHORT, [1, -2, 3]).to_array(f.JAVA_SHORT)) == [1, -2, 3]
    assert arena.allocate_from(f.JAVA_FLOAT, (1.5, 2.5)).get(f.JAVA_FLOAT, 4) == 2.5
    pair = arena.allocate(f.MemoryLayout.struct_layout(f.JAVA_INT, f.JAVA_INT, f.JAVA_LONG), 2)
    assert pair.byte_size == 32 and pair.address % 8 == 0 and pair.to_bytes() == bytes(32)
    block = arena.allocate(32)
    assert block.fill(7).to_bytes() == bytes([7]) * 32
    block.set_string(4, "abc")
    block.copy_from(text)
    f.MemorySegment.copy(block, 0, block, 10, 7)
    assert block.get_string(10) == "héllo"
    data = bytearray(b"heap\0")
    heap = f.MemorySegment.of_array(data)
    assert heap.heap_base() is data and heap.get_string() == "heap"
    frozen = f.MemorySegment.of_array(b"frozen")
    assert frozen.is_read_only() and frozen.to_bytes() == b"frozen"
    for refused in (lambda: frozen.fill(0), lambda: block.get_string(40), lambda: block.fill(300)):
        try:
            refused()
        except (f.ReadOnlyError, IndexError, OverflowError):
            pass
        else:
            raise AssertionError("not refused")
numbers = array.array("q", [1, -2])
assert f.MemorySegment.of_array(numbers).get(f.JAVA_LONG, 8) == -2
assert f.MemorySegment.of_array(memoryview(bytearray(b"ab"))).to_bytes() == b"ab"
viewed = f.Arena.of_confined()
viewed.allocate(8).as_memoryview().release()
viewed.close()  # natively: every view released
assert not viewed.is_alive()
# pointers: get/set(ADDRESS), as_slice and reinterpret natively (no Python code of the runtime)
runtime = os.path.dirname(f.__file__)
seen: list[str] = []


def profile(frame: types.FrameType, event: str, arg: object) -> None:
    if event == "call" and frame.f_code.co_filename.startswith(runtime):
        seen.append(frame.f_code.co_name)


with f.Arena.of_confined() as arena:
    cell = arena.allocate(32, 8)
    target = arena.allocate(8, 8)
    pointer = f.MemorySegment.of_address(target.address)
    to_long = f.ADDRESS.with_target_layout(f.JAVA_LONG)
    for attempt in range(2):  # the first reinterpret decides (in Python) and is remembered
        sys.setprofile(profile)
        cell.set(f.ADDRESS, 8, target)
        read = cell.get(f.ADDRESS, 8)
        sized = cell.get(to_long, 8)
        part = cell.as_slice(8, 16, 8)
        wider = pointer.reinterpret(8)
        moved = pointer.reinterpret(8, arena)
        sized_text = cell.get_string(8, "utf-8", 3)  # byte_length: NULs included
        sys.setprofile(None)
        if attempt == 0:
            del seen[:]
    assert seen == [], seen
    assert read.address == target.address and read.byte_size == 0 and sized.byte_size == 8
    assert part.address == cell.address + 8 and part.get(f.JAVA_LONG, 0) == target.address
    wider.set(f.JAVA_LONG, 0, 42)
    assert target.get(f.JAVA_LONG, 0) == 42 and moved.scope is arena
    assert sized_text == struct.pack("<Q", target.address)[:3].decode("utf-8", "replace")
    try:
        cell.as_slice(1, 8, 8)
    except f.MisalignedAccessError as exc:
        assert "Target offset 1 is incompatible with alignment constraint 8" in str(exc), exc
    else:
        raise AssertionError("no MisalignedAccessError")
# a shared arena: get, set and allocate natively from any thread; refused once closed
shared = f.Arena.of_shared()
made: list[f.MemorySegment] = []
worker = threading.Thread(target=lambda: made.append(shared.allocate(8, 8)))
worker.start()
worker.join()
made[0].set(f.JAVA_LONG, 0, -7)
assert made[0].get(f.JAVA_LONG, 0) == -7 and type(made[0]).__name__ == "_SharedSegment"
shared.close()
try:
    made[0].get(f.JAVA_LONG, 0)
except f.ScopeClosedError as exc:
    assert "Already closed" in str(exc)
else:
    raise AssertionError("no ScopeClosedError")
print(platform.machine(), "accelerated")
