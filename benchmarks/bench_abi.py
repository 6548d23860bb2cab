"""Per-call cost of a struct-returning call (``div``), a variadic call (``snprintf``) and an
errno-capturing call (``strtol``) through hatch-ffm, ctypes and cffi ABI mode, in one run.

Each group also has a row for the same call made in a C loop (``bench_c_floor.c``, compiled
here with ``cc -O2``): the native work itself, which no binding can go below; its "ctypes /
this" is the largest ratio any binding could reach.

Run after ``make demo`` (example_project's Feature registers these shapes)::

    FFM_ENABLE_NATIVE_ACCESS=__main__ .demo-venv/bin/python benchmarks/bench_abi.py
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import subprocess
import sys
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.join(HERE, "_build")


def c_floor(number: int, repeat: int) -> dict[str, float]:
    """ns per call of the same libc calls made from C (``bench_c_floor.c``, ``cc -O2``):
    what no binding can go below."""
    os.makedirs(BUILD, exist_ok=True)
    source = os.path.join(HERE, "bench_c_floor.c")
    program = os.path.join(BUILD, "bench_c_floor")
    if not os.path.exists(program) or os.path.getmtime(program) < os.path.getmtime(source):
        subprocess.run(["cc", "-O2", "-o", program, source], check=True)
    output = subprocess.run(
        [program, str(number * 10), str(repeat)], check=False, capture_output=True, text=True
    ).stdout
    return {name: float(ns) for name, ns in (line.split() for line in output.splitlines())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000, help="calls per repeat")
    parser.add_argument("--repeat", type=int, default=7, help="repeats; the minimum is kept")
    args = parser.parse_args()

    from example_project.ffm_features import CRITICAL, DIV, SNPRINTF, STRTOL

    import ffm_runtime as ffm
    from ffm_runtime import Linker, MemorySegment

    find = ffm.SymbolLookup.loader_lookup().find
    link = Linker.native_linker().downcall_handle
    ffm_div = link(find("div"), DIV)
    ffm_snprintf = link(find("snprintf"), *SNPRINTF)
    ffm_strtol = link(find("strtol"), *STRTOL)
    ffm_div_critical = link(find("div"), DIV, CRITICAL)
    ffm_snprintf_critical = link(find("snprintf"), *SNPRINTF, CRITICAL)
    ffm_strtol_critical = link(find("strtol"), *STRTOL, CRITICAL)
    arena = ffm.Arena.of_confined()
    result_block = arena.allocate(8, 4)
    prefix = ffm.SegmentAllocator.prefix_allocator(result_block)
    buffer = arena.allocate(64)
    fmt = arena.allocate_from("%d and %.2f")
    number = arena.allocate_from("12345")
    state = arena.allocate(Linker.Option.capture_state_layout())
    null = MemorySegment.NULL

    class DivT(ctypes.Structure):
        _fields_ = (("quot", ctypes.c_int), ("rem", ctypes.c_int))

    libc = ctypes.CDLL(None, use_errno=True)
    c_div = libc.div
    c_div.argtypes, c_div.restype = (ctypes.c_int, ctypes.c_int), DivT
    c_snprintf = libc.snprintf
    c_snprintf.restype = ctypes.c_int
    c_strtol = libc.strtol
    c_strtol.argtypes = (ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int)
    c_strtol.restype = ctypes.c_long
    c_buffer = ctypes.create_string_buffer(64)

    namespace: dict[str, object] = {
        "ffm_div": ffm_div,
        "ffm_snprintf": ffm_snprintf,
        "ffm_strtol": ffm_strtol,
        "ffm_div_critical": ffm_div_critical,
        "ffm_snprintf_critical": ffm_snprintf_critical,
        "ffm_strtol_critical": ffm_strtol_critical,
        "arena": arena,
        "prefix": prefix,
        "buffer": buffer,
        "fmt": fmt,
        "number": number,
        "state": state,
        "null": null,
        "c_div": c_div,
        "c_snprintf": c_snprintf,
        "c_strtol": c_strtol,
        "c_buffer": c_buffer,
        "ctypes": ctypes,
    }
    rows = [
        ("div: hatch-ffm, result in a prefix allocator", "ffm_div(prefix, 17, 5)"),
        ("div: hatch-ffm critical, result in a prefix allocator", "ffm_div_critical(prefix, 17, 5)"),
        ("div: hatch-ffm, result in the arena", "ffm_div(arena, 17, 5)"),
        ("div: hatch-ffm critical, result in the arena", "ffm_div_critical(arena, 17, 5)"),
        ("div: ctypes (Structure restype)", "c_div(17, 5)"),
        ("snprintf: hatch-ffm", "ffm_snprintf(buffer, 64, fmt, 42, 2.5)"),
        ("snprintf: hatch-ffm critical", "ffm_snprintf_critical(buffer, 64, fmt, 42, 2.5)"),
        ("snprintf: ctypes", "c_snprintf(c_buffer, 64, b'%d and %.2f', 42, ctypes.c_double(2.5))"),
        ("strtol + errno: hatch-ffm capture_call_state", "ffm_strtol(state, number, null, 10)"),
        (
            "strtol + errno: hatch-ffm critical capture_call_state",
            "ffm_strtol_critical(state, number, null, 10)",
        ),
        ("strtol + errno: ctypes use_errno + get_errno", "c_strtol(b'12345', None, 10); ctypes.get_errno()"),
    ]
    try:
        import cffi

        ffi = cffi.FFI()
        ffi.cdef(
            "typedef struct { int quot; int rem; } div_t; div_t div(int, int);"
            "int snprintf(char *, size_t, const char *, ...);"
            "long strtol(const char *, char **, int);"
        )
        cffi_libc = ffi.dlopen(None)
        namespace.update(
            cffi_div=cffi_libc.div,
            cffi_snprintf=cffi_libc.snprintf,
            cffi_strtol=cffi_libc.strtol,
            ffi=ffi,
            cffi_buf=ffi.new("char[64]"),
            cffi_int=ffi.cast("int", 42),
            cffi_double=ffi.cast("double", 2.5),
        )
        rows.insert(5, ("div: cffi ABI", "cffi_div(17, 5)"))
        rows.insert(
            9, ("snprintf: cffi ABI", "cffi_snprintf(cffi_buf, 64, b'%d and %.2f', cffi_int, cffi_double)")
        )
        rows.append(
            ("strtol + errno: cffi ABI (ffi.errno)", "cffi_strtol(b'12345', ffi.NULL, 10); ffi.errno")
        )
    except ImportError:
        print("(cffi not installed: its rows are skipped)", file=sys.stderr)

    assert ffm_div(prefix, 17, 5).get(ffm.JAVA_INT, 4) == c_div(17, 5).rem == 2
    assert ffm_strtol(state, number, null, 10) == 12345

    groups = {"div": "div", "snprintf": "snprintf", "strtol": "strtol + errno"}
    results = {
        f"{groups[name]}: C, no binding (cc -O2 loop)": ns
        for name, ns in c_floor(args.number, args.repeat).items()
    }
    for label, statement in rows:
        timer = timeit.Timer(statement, globals=namespace)
        results[label] = min(timer.repeat(repeat=args.repeat, number=args.number)) / args.number * 1e9
    print(
        f"# {platform.python_implementation()} {platform.python_version()} on "
        f"{platform.machine()}, number={args.number}, repeat={args.repeat}"
    )
    print("| call | ns per call | ctypes / this |")
    print("|---|---:|---:|")
    order = [label for label, _ in rows]
    for group in ("div", "snprintf", "strtol"):  # the C row after its group's ctypes row
        last = max(i for i, label in enumerate(order) if label.startswith(group))
        order.insert(last + 1, next(k for k in results if k.startswith(group) and ": C," in k))
    for label in order:
        ns = results[label]
        group = label.split(":")[0].split(" ")[0]
        peer = next(v for k, v in results.items() if k.startswith(group) and "ctypes" in k)
        ratio = f"{peer / ns:.1f}x"
        print(f"| {label} | {ns:.1f} | {ratio if 'ctypes' not in label else ''} |")
    arena.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
