"""Bytes and strings through segments against the peers that do the same, in one run.

Run with any environment that has hatch-ffm installed (no stubs needed)::

    .demo-venv/bin/python benchmarks/bench_bulk.py

Every row is ``min(timeit.repeat(...)) / number`` in nanoseconds; each ratio compares a
row with its peer measured in the same run, and the goal (issue 12) says met or not met.
Closing an arena is timed alone: batches of arenas are prepared, then closed in a loop.
"""

from __future__ import annotations

import argparse
import array
import ctypes
import platform
import time
import timeit
from collections.abc import Callable
from typing import Any


def _close_ns(prepare: Callable[[], Any], batches: int, repeat: int) -> float:
    """ns per ``close()`` of arenas made by ``prepare`` (30 at a time: the slab pool's size)."""
    best = float("inf")
    for _ in range(repeat):
        total = 0
        for _ in range(batches):
            arenas = [prepare() for _ in range(30)]
            start = time.perf_counter_ns()
            for arena in arenas:
                arena.close()
            total += time.perf_counter_ns() - start
        best = min(best, total / (batches * 30))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=100_000, help="operations per repeat")
    parser.add_argument("--repeat", type=int, default=7, help="repeats; the minimum is kept")
    args = parser.parse_args()

    import ffm_runtime as ffm
    from ffm_runtime import JAVA_BYTE, JAVA_INT, JAVA_LONG, Arena, MemorySegment

    confined = Arena.of_confined()
    text = confined.allocate(64, 8)
    text.set_string(0, "sixteen bytes ok")  # 16 bytes of UTF-8, then the NUL
    source = confined.allocate(112, 8)
    target = confined.allocate(112, 8)
    text_address = text.address
    buffer = ctypes.create_string_buffer(112)
    address = ctypes.addressof(buffer)
    heap = bytearray(64)
    numbers = array.array("q", range(8))
    data = bytes(64)
    namespace = {
        "ctypes": ctypes,
        "address": address,
        "text_address": text_address,
        "text": text,
        "source": source,
        "target": target,
        "confined": confined,
        "heap": heap,
        "numbers": numbers,
        "data": data,
        "MemorySegment": MemorySegment,
        "JAVA_LONG": JAVA_LONG,
        "JAVA_INT": JAVA_INT,
        "JAVA_BYTE": JAVA_BYTE,
    }

    def plain() -> Arena:
        arena = Arena.of_confined()
        arena.allocate(64)
        return arena

    def viewed() -> Arena:
        arena = Arena.of_confined()
        arena.allocate(64).as_memoryview().release()
        return arena

    #: (what, its statement, peer, its statement, goal: at most this ratio, or None)
    rows: list[tuple[str, str, str, str, float | None]] = [
        (
            "get_string of 16 bytes (UTF-8)",
            "text.get_string()",
            "ctypes.string_at(a)",
            "ctypes.string_at(text_address)",
            0.5,
        ),
        (
            "set_string of 16 bytes (UTF-8)",
            'text.set_string(0, "sixteen bytes ok")',
            "ctypes.memmove(a, b, 17)",
            'ctypes.memmove(address, b"sixteen bytes ok", 17)',
            None,
        ),
        (
            "allocate_from(str) of 16 bytes",
            'confined.allocate_from("sixteen bytes ok")',
            "allocate(17)",
            "confined.allocate(17)",
            1.5,
        ),
        (
            "allocate_from(JAVA_LONG, v)",
            "confined.allocate_from(JAVA_LONG, 7)",
            "allocate(8)",
            "confined.allocate(8)",
            1.3,
        ),
        (
            "allocate_from(JAVA_INT, [4 ints])",
            "confined.allocate_from(JAVA_INT, [1, 2, 3, 4])",
            "allocate(16)",
            "confined.allocate(16, 4)",
            1.5,
        ),
        (
            "allocate_from(JAVA_BYTE, bytes) of 64 bytes",
            "confined.allocate_from(JAVA_BYTE, data)",
            "allocate(64)",
            "confined.allocate(64)",
            1.5,
        ),
        (
            "MemorySegment.of_array(bytearray)",
            "MemorySegment.of_array(heap)",
            "memoryview(obj)",
            "memoryview(heap)",
            2.0,
        ),
        (
            "MemorySegment.of_array(array.array)",
            "MemorySegment.of_array(numbers)",
            "memoryview(obj)",
            "memoryview(numbers)",
            2.0,
        ),
        (
            "MemorySegment.of_array(bytes)",
            "MemorySegment.of_array(data)",
            "memoryview(obj)",
            "memoryview(data)",
            2.0,
        ),
        (
            "fill of 112 bytes",
            "target.fill(7)",
            "ctypes.memset(a, 7, 112)",
            "ctypes.memset(address, 7, 112)",
            0.5,
        ),
        (
            "to_bytes of 112 bytes",
            "source.to_bytes()",
            "ctypes.string_at(a, 112)",
            "ctypes.string_at(address, 112)",
            0.5,
        ),
        (
            "MemorySegment.copy of 112 bytes",
            "MemorySegment.copy(source, 0, target, 0, 112)",
            "ctypes.memmove(a, b, 112)",
            "ctypes.memmove(address, text_address, 112)",
            0.5,
        ),
        (
            "copy_from of 112 bytes",
            "target.copy_from(source)",
            "ctypes.memmove(a, b, 112)",
            "ctypes.memmove(address, text_address, 112)",
            0.5,
        ),
    ]
    print(
        f"# {platform.python_implementation()} {platform.python_version()} on "
        f"{platform.machine()}, hatch-ffm {ffm.__version__}, accelerated={ffm.accelerated()}, "
        f"number={args.number}, repeat={args.repeat}"
    )
    print("| operation | ns | peer | peer ns | ratio | goal |")
    print("|---|---:|---|---:|---:|---|")

    def timed(statement: str) -> float:
        timer = timeit.Timer(statement, globals=namespace)
        number: int = args.number
        return min(timer.repeat(repeat=args.repeat, number=number)) / number * 1e9

    def report(what: str, ns: float, peer: str, peer_ns: float, goal: float | None) -> None:
        ratio = ns / peer_ns
        verdict = "-" if goal is None else f"<= {goal}x: {'met' if ratio <= goal else 'not met'}"
        print(f"| {what} | {ns:.0f} | {peer} | {peer_ns:.0f} | {ratio:.2f}x | {verdict} |", flush=True)

    for what, statement, peer, peer_statement, goal in rows:
        report(what, timed(statement), peer, timed(peer_statement), goal)
    batches = max(1, args.number // 300)
    report(
        "close() of a confined arena after one as_memoryview() (released)",
        _close_ns(viewed, batches, args.repeat),
        "plain close()",
        _close_ns(plain, batches, args.repeat),
        1.5,
    )
    confined.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
