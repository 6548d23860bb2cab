"""Per-call cost of hatch-ffm downcall handles against ctypes, cffi and a plain builtin.

Run after ``make demo`` (which installs example_project, whose Feature registers
the shapes measured here) with that environment's Python::

    FFM_ENABLE_NATIVE_ACCESS=__main__ .demo-venv/bin/python benchmarks/bench_calls.py

Every row is ``min(timeit.repeat(...)) / number`` in nanoseconds, all measured
in the same run; ratios compare rows of this run only.  ``int add(int, int)``
comes from ``bench_add.c``, compiled here with ``cc``; ``strlen`` is libc's.
"""

from __future__ import annotations

import argparse
import ctypes
import operator
import os
import platform
import subprocess
import sys
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.join(HERE, "_build")


def build_library() -> str:
    os.makedirs(BUILD, exist_ok=True)
    source = os.path.join(HERE, "bench_add.c")
    library = os.path.join(BUILD, "libbenchadd.so")
    if not os.path.exists(library) or os.path.getmtime(library) < os.path.getmtime(source):
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", library, source], check=True)
    return library


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=500_000, help="calls per repeat")
    parser.add_argument("--repeat", type=int, default=7, help="repeats; the minimum is kept")
    args = parser.parse_args()

    import ffm_runtime as ffm
    from ffm_runtime import ADDRESS, JAVA_INT, JAVA_LONG, FunctionDescriptor, Linker

    library = build_library()
    ffm.load_library(library)
    lookup = ffm.SymbolLookup.loader_lookup()
    linker = Linker.native_linker()
    add_desc = FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT)
    strlen_desc = FunctionDescriptor.of(JAVA_LONG, ADDRESS)
    critical = Linker.Option.critical()
    add_addr, strlen_addr = lookup.find("add"), lookup.find("strlen")
    ffm_add = linker.downcall_handle(add_addr, add_desc)
    ffm_add_critical = linker.downcall_handle(add_addr, add_desc, critical)
    ffm_strlen = linker.downcall_handle(strlen_addr, strlen_desc)
    ffm_strlen_critical = linker.downcall_handle(strlen_addr, strlen_desc, critical)

    text = b"0123456789"
    confined = ffm.Arena.of_confined()
    seg_confined = confined.allocate_from(text.decode())
    seg_auto = ffm.Arena.of_auto().allocate_from(text.decode())

    c_lib = ctypes.CDLL(library)
    c_add = c_lib.add
    c_add.argtypes, c_add.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    libc = ctypes.CDLL(None)
    c_strlen = libc.strlen
    c_strlen.argtypes, c_strlen.restype = (ctypes.c_char_p,), ctypes.c_size_t

    rows: list[tuple[str, str, dict[str, object]]] = [
        ("operator.add (builtin)", "op_add(2, 3)", {"op_add": operator.add}),
        ("hatch-ffm add, default (GIL released)", "f(2, 3)", {"f": ffm_add}),
        ("hatch-ffm add, critical (GIL kept)", "f(2, 3)", {"f": ffm_add_critical}),
        ("ctypes add", "f(2, 3)", {"f": c_add}),
        ("hatch-ffm strlen, default, auto-arena segment", "f(s)", {"f": ffm_strlen, "s": seg_auto}),
        ("hatch-ffm strlen, critical, auto-arena segment", "f(s)", {"f": ffm_strlen_critical, "s": seg_auto}),
        (
            "hatch-ffm strlen, critical, confined-arena segment",
            "f(s)",
            {"f": ffm_strlen_critical, "s": seg_confined},
        ),
        ("ctypes strlen (bytes as c_char_p)", "f(s)", {"f": c_strlen, "s": text}),
    ]
    try:
        import cffi

        ffi = cffi.FFI()
        ffi.cdef("int add(int, int); size_t strlen(const char *);")
        cffi_lib, cffi_libc = ffi.dlopen(library), ffi.dlopen(None)
        cffi_buf = ffi.new("char[]", text)
        rows.insert(4, ("cffi ABI add", "f(2, 3)", {"f": cffi_lib.add}))
        rows.append(("cffi ABI strlen (char[] cdata)", "f(s)", {"f": cffi_libc.strlen, "s": cffi_buf}))
    except ImportError:
        print("(cffi not installed: its rows are skipped)", file=sys.stderr)

    assert ffm_add(2, 3) == ffm_add_critical(2, 3) == c_add(2, 3) == 5
    assert ffm_strlen(seg_auto) == ffm_strlen_critical(seg_confined) == c_strlen(text) == 10

    results: dict[str, float] = {}
    for label, statement, namespace in rows:
        timer = timeit.Timer(statement, globals=namespace)
        results[label] = min(timer.repeat(repeat=args.repeat, number=args.number)) / args.number * 1e9
    base = results["operator.add (builtin)"]
    print(
        f"# {platform.python_implementation()} {platform.python_version()} on "
        f"{platform.machine()}, number={args.number}, repeat={args.repeat}"
    )
    print("| call | ns per call | / operator.add | ctypes / this |")
    print("|---|---:|---:|---:|")
    for label, ns in results.items():
        peer = results["ctypes add" if " add" in label else "ctypes strlen (bytes as c_char_p)"]
        versus = f"{peer / ns:.1f}x" if label.startswith("hatch-ffm") else ""
        print(f"| {label} | {ns:.1f} | {ns / base:.2f}x | {versus} |")
    confined.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
