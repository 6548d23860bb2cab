"""The aarch64 accelerator object (built into ffm_runtime) reads, writes and refuses like the
Python methods: prints the machine and "accelerated".  Run by tests/test_aarch64_emulated.py
in an emulated aarch64 CPython."""

from __future__ import annotations

import platform
import struct
import threading

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
