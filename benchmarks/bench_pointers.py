"""Cost of pointers as segments: ``ADDRESS`` results, ``get``/``set(ADDRESS)``, ``reinterpret``
and ``as_slice``, against the integer operations they should cost about as much as, in one run.

Run after ``make demo`` (example_project's Feature registers ``labs`` with an ``ADDRESS``
result and with a ``JAVA_LONG`` one, both default and critical)::

    FFM_ENABLE_NATIVE_ACCESS=__main__ .demo-venv/bin/python benchmarks/bench_pointers.py

Every row is ``min(timeit.repeat(...)) / number`` in nanoseconds; a row's ratio is to the
first row of its group, measured in the same run, and the goal (issue 12) is checked there.
"""

from __future__ import annotations

import argparse
import platform
import timeit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=300_000, help="operations per repeat")
    parser.add_argument("--repeat", type=int, default=7, help="repeats; the minimum is kept")
    args = parser.parse_args()

    import ffm_runtime as ffm
    from ffm_runtime import ADDRESS, JAVA_LONG, Arena, FunctionDescriptor, Linker, MemorySegment

    linker = Linker.native_linker()
    labs = linker.default_lookup().find("labs")
    critical = Linker.Option.critical()
    as_long = FunctionDescriptor.of(JAVA_LONG, JAVA_LONG)
    as_address = FunctionDescriptor.of(ADDRESS, JAVA_LONG)
    confined = Arena.of_confined()
    segment = confined.allocate(64, 8)
    target = confined.allocate(16, 8)
    segment.set(ADDRESS, 8, target)
    pointer = MemorySegment.of_address(target.address)  # zero-length, as an ADDRESS result
    namespace = {
        "long_default": linker.downcall_handle(labs, as_long),
        "long_critical": linker.downcall_handle(labs, as_long, critical),
        "address_default": linker.downcall_handle(labs, as_address),
        "address_critical": linker.downcall_handle(labs, as_address, critical),
        "seg": segment,
        "target": target,
        "pointer": pointer,
        "arena": confined,
        "JAVA_LONG": JAVA_LONG,
        "ADDRESS": ADDRESS,
        "address": target.address,
    }
    # (title, goal as a ratio to the group's first row, rows)
    groups = [
        (
            "labs(x), default handle (GIL released)",
            1.3,
            [
                ("JAVA_LONG result", "long_default(address)"),
                ("ADDRESS result", "address_default(address)"),
            ],
        ),
        (
            "labs(x), critical handle (GIL kept)",
            1.3,
            [
                ("JAVA_LONG result", "long_critical(address)"),
                ("ADDRESS result", "address_critical(address)"),
            ],
        ),
        (
            "read a pointer, confined arena",
            1.3,
            [
                ("seg.get(JAVA_LONG, 8)", "seg.get(JAVA_LONG, 8)"),
                ("seg.get(ADDRESS, 8)", "seg.get(ADDRESS, 8)"),
            ],
        ),
        (
            "write a pointer, confined arena",
            1.3,
            [
                ("seg.set(JAVA_LONG, 8, address)", "seg.set(JAVA_LONG, 8, address)"),
                ("seg.set(ADDRESS, 8, target)", "seg.set(ADDRESS, 8, target)"),
            ],
        ),
        (
            "resize a pointer",
            2.0,
            [
                ("seg.get(JAVA_LONG, 8)", "seg.get(JAVA_LONG, 8)"),
                ("pointer.reinterpret(16)", "pointer.reinterpret(16)"),
                ("pointer.reinterpret(16, arena)", "pointer.reinterpret(16, arena)"),
            ],
        ),
        (
            "slice a segment",
            2.0,
            [
                ("seg.get(JAVA_LONG, 8)", "seg.get(JAVA_LONG, 8)"),
                ("seg.as_slice(8, 16)", "seg.as_slice(8, 16)"),
                ("seg.as_slice(8, 16, 8)", "seg.as_slice(8, 16, 8)"),
            ],
        ),
    ]
    print(
        f"# {platform.python_implementation()} {platform.python_version()} on "
        f"{platform.machine()}, hatch-ffm {ffm.__version__}, accelerated={ffm.accelerated()}, "
        f"number={args.number}, repeat={args.repeat}"
    )
    print("| operation | ns | / first row of its group | goal | met |")
    print("|---|---:|---:|---:|---|")
    met_all = True
    for title, goal, rows in groups:
        base = None
        for label, statement in rows:
            timer = timeit.Timer(statement, globals=namespace)
            ns = min(timer.repeat(repeat=args.repeat, number=args.number)) / args.number * 1e9
            if base is None:
                base = ns
                print(f"| {title}: {label} | {ns:.1f} | 1.00x | | |", flush=True)
                continue
            met = ns / base <= goal
            met_all = met_all and met
            verdict = "yes" if met else "no"
            print(f"| {title}: {label} | {ns:.1f} | {ns / base:.2f}x | <= {goal}x | {verdict} |", flush=True)
    print(f"# every goal met: {'yes' if met_all else 'no'}")
    confined.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
