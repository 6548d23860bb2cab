"""Cost of checked memory access and allocation against ctypes and struct, in one run.

Run with any environment that has hatch-ffm installed (no stubs needed)::

    .demo-venv/bin/python benchmarks/bench_memory.py

Every row is ``min(timeit.repeat(...)) / number`` in nanoseconds; ratios compare rows of
this run only.
"""

from __future__ import annotations

import argparse
import ctypes
import platform
import struct
import timeit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=300_000, help="operations per repeat")
    parser.add_argument("--repeat", type=int, default=7, help="repeats; the minimum is kept")
    args = parser.parse_args()

    import ffm_runtime as ffm
    from ffm_runtime import JAVA_INT, Arena

    buffer = ctypes.create_string_buffer(64)
    address = ctypes.addressof(buffer)
    view = memoryview(buffer).cast("B")
    unpack = struct.Struct("<i")
    confined = Arena.of_confined()
    confined_segment = confined.allocate(64, 8)
    auto_segment = Arena.of_auto().allocate(64, 8)

    def cycle() -> None:
        with Arena.of_confined() as arena:
            arena.allocate(64)

    namespace = {
        "ctypes": ctypes,
        "address": address,
        "view": view,
        "unpack": unpack,
        "JAVA_INT": JAVA_INT,
        "confined": confined,
        "cseg": confined_segment,
        "aseg": auto_segment,
        "cycle": cycle,
        "Arena": Arena,
    }
    groups = [
        (
            "read an int",
            [
                ("ctypes c_int.from_address(a).value", "ctypes.c_int.from_address(address).value"),
                ("struct.unpack_from on a memoryview (unchecked)", "unpack.unpack_from(view, 8)[0]"),
                ("hatch-ffm segment.get(JAVA_INT, 8), auto arena", "aseg.get(JAVA_INT, 8)"),
                ("hatch-ffm segment.get(JAVA_INT, 8), confined arena", "cseg.get(JAVA_INT, 8)"),
            ],
        ),
        (
            "write an int",
            [
                ("ctypes c_int.from_address(a).value = 5", "ctypes.c_int.from_address(address).value = 5"),
                ("struct.pack_into on a memoryview (unchecked)", "unpack.pack_into(view, 8, 5)"),
                ("hatch-ffm segment.set(JAVA_INT, 8, 5), auto arena", "aseg.set(JAVA_INT, 8, 5)"),
                ("hatch-ffm segment.set(JAVA_INT, 8, 5), confined arena", "cseg.set(JAVA_INT, 8, 5)"),
            ],
        ),
        (
            "allocate 64 bytes",
            [
                ("ctypes.create_string_buffer(64)", "ctypes.create_string_buffer(64)"),
                ("hatch-ffm arena.allocate(64), open confined arena", "confined.allocate(64)"),
                ("hatch-ffm with Arena.of_confined() as a: a.allocate(64)", "cycle()"),
            ],
        ),
    ]
    print(
        f"# {platform.python_implementation()} {platform.python_version()} on "
        f"{platform.machine()}, hatch-ffm {ffm.__version__}, number={args.number}, "
        f"repeat={args.repeat}"
    )
    print("| operation | ns | / first row of its group |")
    print("|---|---:|---:|")
    for title, rows in groups:
        base = None
        for label, statement in rows:
            timer = timeit.Timer(statement, globals=namespace)
            ns = min(timer.repeat(repeat=args.repeat, number=args.number)) / args.number * 1e9
            base = base or ns
            print(f"| {title}: {label} | {ns:.1f} | {ns / base:.2f}x |", flush=True)
    confined.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
