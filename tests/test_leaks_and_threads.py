"""Reference leaks (1,000,000 calls of each kind of handle, including ones that raise, keep the
process's memory flat) and concurrency (8 threads calling handles in their own arenas)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import ffm_runtime as ffm
from ffm_runtime import ADDRESS, JAVA_DOUBLE, JAVA_INT, JAVA_LONG, Arena, FunctionDescriptor, Linker

LEAK_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
import ffm_runtime as ffm
from ffm_runtime import ADDRESS, JAVA_DOUBLE, JAVA_INT, JAVA_LONG, FunctionDescriptor, Linker

ffm.load_library(sys.argv[2])
find = ffm.SymbolLookup.loader_lookup().find
link = Linker.native_linker().downcall_handle
id_int = link(find("id_int"), FunctionDescriptor.of(JAVA_INT, JAVA_INT))
id_int_critical = link(find("id_int"), FunctionDescriptor.of(JAVA_INT, JAVA_INT),
                       Linker.Option.critical())
id_double = link(find("id_double"), FunctionDescriptor.of(JAVA_DOUBLE, JAVA_DOUBLE))
id_ptr = link(find("id_ptr"), FunctionDescriptor.of(ADDRESS, ADDRESS))
byte_len = link(find("byte_len"), FunctionDescriptor.of(JAVA_LONG, ADDRESS))
add = link(FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT))
add_target = find("add_int")
div = link(find("div"), FunctionDescriptor.of(
    ffm.MemoryLayout.struct_layout(JAVA_INT, JAVA_INT), JAVA_INT, JAVA_INT))
with ffm.Arena.of_confined() as probe:
    confined_type = type(probe.allocate(1))
cell = ffm.Arena.of_auto().allocate(16, 8)
text = ffm.Arena.of_auto().allocate_from("leak check")
closed_arena = ffm.Arena.of_confined()
closed = closed_arena.allocate(8)
closed_arena.close()
BAD = {"raises TypeError": "x" * 3, "raises OverflowError": 2**40,
       "raises ScopeClosedError": closed, "raises count TypeError": None}
WATCHED = [text, text._address, closed, closed._guard, add_target, add_target._address,
           *BAD.values(), True, False, id_int, byte_len, div, ffm.Arena, confined_type,
           cell, JAVA_INT, JAVA_DOUBLE]

def call(kind, n):
    if kind == "int":
        for i in range(n): id_int(i)
    elif kind == "int critical":
        for i in range(n): id_int_critical(i)
    elif kind == "double":
        for i in range(n): id_double(i * 0.5)
    elif kind == "pointer in and out":
        for _ in range(n): id_ptr(text)
    elif kind == "segment argument":
        for _ in range(n): byte_len(text)
    elif kind == "unbound":
        for i in range(n): add(add_target, i, 1)
    elif kind == "segment get and set":
        for i in range(n):
            cell.set(JAVA_INT, 4, i & 0xFFFF)
            cell.set(JAVA_DOUBLE, 8, 0.5)
            cell.get(JAVA_INT, 4)
            cell.get(JAVA_DOUBLE, 8)
    elif kind == "arena allocate":
        for _ in range(n // 1000):
            with ffm.Arena.of_confined() as arena:
                for _ in range(1000): arena.allocate(16)
    elif kind == "accelerator slow path":
        for i in range(n):
            try:
                cell.get(JAVA_INT, 100)
            except IndexError:
                pass
            cell.get(JAVA_INT, offset=4)
    elif kind == "struct result, prefix allocator":
        for _ in range(n // 1000):
            with ffm.Arena.of_confined() as arena:
                prefix = ffm.SegmentAllocator.prefix_allocator(arena.allocate(8, 4))
                for i in range(1000):
                    kept = div(prefix, i, 7)
                    div(prefix, 7, i + 1)
    elif kind == "struct result":
        for _ in range(n // 1000):
            with ffm.Arena.of_confined() as arena:
                for i in range(1000): div(arena, i, 7)
    else:
        bad = BAD[kind]
        handle = byte_len if kind == "raises ScopeClosedError" else id_int
        for _ in range(n):
            try:
                handle() if bad is None else handle(bad)
            except (TypeError, OverflowError, ffm.ScopeClosedError):
                pass

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

kind, count = sys.argv[3], int(sys.argv[4])
call(kind, count // 10)  # warm up
before = rss()
def references():
    counts = []
    for index in range(len(WATCHED)):
        counts.append(sys.getrefcount(WATCHED[index]))
    return counts

start = references()
call(kind, count)
end = references()
print(rss() - before)
print([end[i] - start[i] for i in range(len(start))])
"""

KINDS = [
    "int",
    "int critical",
    "double",
    "pointer in and out",
    "segment argument",
    "unbound",
    "struct result",
    "struct result, prefix allocator",
    "segment get and set",
    "arena allocate",
    "accelerator slow path",
    "raises TypeError",
    "raises OverflowError",
    "raises ScopeClosedError",
    "raises count TypeError",
]


@pytest.mark.parametrize("kind", KINDS)
def test_million_calls_keep_memory_flat(stub_site: Path, native_lib: Path, kind: str) -> None:
    count = 1_000_000
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(LEAK_SCRIPT),
            str(stub_site),
            str(native_lib),
            kind,
            str(count),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "FFM_ENABLE_NATIVE_ACCESS": "ALL-UNNAMED"},
    )
    assert result.returncode == 0, result.stderr
    growth_line, references_line = result.stdout.strip().splitlines()
    growth = int(growth_line)
    # one leaked object per call would be >= 16 MB here
    assert growth < 2 << 20, f"{kind}: resident memory grew {growth} bytes over {count} calls"
    # and a leaked reference to a long-lived object shows in its reference count
    assert set(ast.literal_eval(references_line)) == {0}, f"{kind}: {references_line}"


@pytest.mark.usefixtures("stub_site")
def test_eight_threads_with_their_own_arenas(native_lib: Path) -> None:
    ffm.load_library(str(native_lib))
    find = ffm.SymbolLookup.loader_lookup().find
    link = Linker.native_linker().downcall_handle
    byte_len = link(find("byte_len"), FunctionDescriptor.of(JAVA_LONG, ADDRESS))
    add = link(find("add_int"), FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT))
    write_int = link(find("write_int"), FunctionDescriptor.of_void(ADDRESS, JAVA_INT))
    id_double = link(
        find("id_double"), FunctionDescriptor.of(JAVA_DOUBLE, JAVA_DOUBLE), Linker.Option.critical()
    )
    deadline = time.monotonic() + 2.0
    errors: list[BaseException] = []
    rounds = [0] * 8

    def work(index: int) -> None:
        try:
            while time.monotonic() < deadline:
                with Arena.of_confined() as arena:
                    text = arena.allocate_from("x" * (index + rounds[index] % 50))
                    cell = arena.allocate(JAVA_INT)
                    for step in range(20):
                        assert byte_len(text) == index + rounds[index] % 50
                        assert add(index, step) == index + step
                        write_int(cell, index * 1000 + step)
                        assert cell.get(JAVA_INT, 0) == index * 1000 + step
                        assert id_double(step / 4) == step / 4
                rounds[index] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert all(r > 10 for r in rounds), rounds
