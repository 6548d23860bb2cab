"""Pointers as segments, natively, on the installed wheels: an ADDRESS result (labs declared
with one, registered by example_project), get/set(ADDRESS), as_slice and a remembered
reinterpret run no Python code of the runtime, and a remembered reinterpret is refused once
the environment no longer enables the caller.  Prints "pointer checks passed".  Run by
tests/test_e2e.py on every supported CPython, with FFM_ENABLE_NATIVE_ACCESS=__main__."""

from __future__ import annotations

import os
import sys
import types

import ffm_runtime as f

assert f.accelerated(), "no accelerators"
runtime = os.path.dirname(f.__file__)
seen: list[str] = []


def profile(frame: types.FrameType, event: str, arg: object) -> None:
    if event == "call" and frame.f_code.co_filename.startswith(runtime):
        seen.append(frame.f_code.co_name)


linker = f.Linker.native_linker()
labs = linker.default_lookup().find("labs")
as_address = linker.downcall_handle(labs, f.FunctionDescriptor.of(f.ADDRESS, f.JAVA_LONG))
critical = linker.downcall_handle(
    labs, f.FunctionDescriptor.of(f.ADDRESS, f.JAVA_LONG), f.Linker.Option.critical()
)
with f.Arena.of_confined() as arena:
    cell = arena.allocate(32, 8)
    target = arena.allocate(8, 8)
    address = target.address  # (a property: Python code)
    pointer = f.MemorySegment.of_address(address)
    for attempt in range(2):  # the first reinterpret decides (in Python) and is remembered
        sys.setprofile(profile)
        results = [as_address(address), critical(address), as_address(0)]
        cell.set(f.ADDRESS, 8, target)
        read = cell.get(f.ADDRESS, 8)
        part = cell.as_slice(8, 16, 8)
        wider = pointer.reinterpret(8)
        moved = pointer.reinterpret(8, arena)
        sys.setprofile(None)
        if attempt == 0:
            del seen[:]
    assert seen == [], seen
    assert [r.address for r in results] == [target.address, target.address, 0]
    assert results[2] is f.MemorySegment.NULL and results[0].scope is f.MemorySegment.NULL.scope
    assert read.address == target.address and part.get(f.JAVA_LONG, 0) == target.address
    wider.set(f.JAVA_LONG, 0, 42)
    assert target.get(f.JAVA_LONG, 0) == 42 and moved.scope is arena
    os.environ["FFM_ENABLE_NATIVE_ACCESS"] = "someone_else"
    try:
        pointer.reinterpret(8)
    except f.IllegalCallerError as exc:
        assert "the __main__ script is not enabled for native access" in str(exc), exc
    else:
        raise AssertionError("a changed environment was not seen")
print("pointer checks passed")
