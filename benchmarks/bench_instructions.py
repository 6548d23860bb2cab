"""Instructions per call, counted by ``valgrind --tool=callgrind``, of accelerated memory
operations and struct-returning critical downcalls: counts repeat exactly from run to run,
where times on a busy machine do not, so two builds can be compared row by row.

Each row runs in two child processes under callgrind (with address randomisation off where
``setarch`` can turn it off), one making ``--number`` calls and one five times as many; the
difference, divided by the difference in calls, is the cost of one call including the loop's
(the ``loop`` row is the empty loop).  ``arena.allocate(64)`` stays in one slab up to 1024
calls, so ``--number`` is at most 200.

Run after ``make demo`` (example_project registers the critical ``div``), with valgrind::

    FFM_ENABLE_NATIVE_ACCESS=__main__ .demo-venv/bin/python benchmarks/bench_instructions.py
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable

ROWS = {
    "loop": "the loop itself (for _ in range(n): pass)",
    "get-confined": "segment.get(JAVA_INT, 8), confined arena",
    "set-confined": "segment.set(JAVA_INT, 8, 42), confined arena",
    "get-auto": "segment.get(JAVA_INT, 8), automatic arena",
    "set-auto": "segment.set(JAVA_INT, 8, 42), automatic arena",
    "allocate": "arena.allocate(64), confined arena",
    "div-prefix": "div critical, result in a prefix allocator",
    "div-arena": "div critical, result in a confined arena",
    "strlen-critical": "strlen critical, a confined-arena segment",
}


def run_row(row: str, calls: int) -> None:
    """The child process: ``calls`` calls of ``row``."""
    import ffm_runtime as ffm
    from ffm_runtime import JAVA_INT, Arena, Linker

    confined, auto = Arena.of_confined(), Arena.of_auto()

    def loop(n: int) -> None:
        for _ in range(n):
            pass

    def get(segment: ffm.MemorySegment) -> Callable[[int], None]:
        def run(n: int) -> None:
            read = segment.get
            for _ in range(n):
                read(JAVA_INT, 8)

        return run

    def set_(segment: ffm.MemorySegment) -> Callable[[int], None]:
        def run(n: int) -> None:
            write = segment.set
            for _ in range(n):
                write(JAVA_INT, 8, 42)

        return run

    def allocate(n: int) -> None:
        take = confined.allocate
        for _ in range(n):
            take(64)

    def div(into: object) -> Callable[[int], None]:
        from example_project.ffm_features import CRITICAL, DIV

        handle = Linker.native_linker().downcall_handle(
            ffm.SymbolLookup.loader_lookup().find("div"), DIV, CRITICAL
        )
        assert handle(into, 17, 5).get(JAVA_INT, 4) == 2

        def run(n: int) -> None:
            for _ in range(n):
                handle(into, 17, 5)

        return run

    def strlen(n: int) -> None:
        handle = Linker.native_linker().downcall_handle(
            ffm.SymbolLookup.loader_lookup().find("strlen"),
            ffm.FunctionDescriptor.of(ffm.JAVA_LONG, ffm.ADDRESS),
            Linker.Option.critical(),
        )
        text = confined.allocate_from("0123456789")
        assert handle(text) == 10
        for _ in range(n):
            handle(text)

    runs: dict[str, Callable[[], Callable[[int], None]]] = {
        "loop": lambda: loop,
        "get-confined": lambda: get(confined.allocate(64)),
        "set-confined": lambda: set_(confined.allocate(64)),
        "get-auto": lambda: get(auto.allocate(64)),
        "set-auto": lambda: set_(auto.allocate(64)),
        "allocate": lambda: allocate,
        "div-prefix": lambda: div(ffm.SegmentAllocator.prefix_allocator(Arena.of_confined().allocate(8, 4))),
        "div-arena": lambda: div(Arena.of_confined()),
        "strlen-critical": lambda: strlen,
    }
    runs[row]()(calls)


def instructions(row: str, calls: int) -> int:
    """Instructions callgrind counts for a child process making ``calls`` calls of ``row``."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        row,
        str(calls),
    ]
    if shutil.which("setarch"):
        command = ["setarch", platform.machine(), "-R", *command]
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONHASHSEED": "0"}
    )
    match = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or match is None:
        raise SystemExit(f"{row}: the child process failed:\n{result.stderr[-2000:]}")
    return int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--number",
        type=int,
        default=200,
        help="calls in the smaller run (at most 200); the other makes 5 times as many",
    )
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated: " + ", ".join(ROWS))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_row(args.child[0], int(args.child[1]))
        return 0
    rows = args.rows.split(",")
    if not 1 <= args.number <= 200 or not set(rows) <= set(ROWS):
        parser.error("--number takes 1 to 200, --rows names from: " + ", ".join(ROWS))
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed")
    import ffm_runtime

    print(
        f"# {platform.python_implementation()} {platform.python_version()} on "
        f"{platform.machine()}, accelerated={ffm_runtime.accelerated()}, calls "
        f"{args.number} and {5 * args.number}"
    )
    print("| operation | instructions per call |")
    print("|---|---:|")
    for row in rows:
        few, many = instructions(row, args.number), instructions(row, 5 * args.number)
        print(f"| {ROWS[row]} | {(many - few) / (4 * args.number):.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
