"""Input fuzzing driver (run in a subprocess): random argument tuples against handles of every
value layout and against segment and arena operations.

    python fuzz_inputs.py SITE NATIVE_LIB SEED COUNT [HYPOTHESIS_EXAMPLES]

Any Python exception is an acceptable outcome; a crash ends the process with a signal.
Prints the number of calls and the exception types seen.
"""

from __future__ import annotations

import math
import random
import sys
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

sys.path.insert(0, sys.argv[1])

from values import BrokenFloat, BrokenIndex, FloatLike, Index, WrongIndex

import ffm_runtime as ffm
from ffm_runtime import (
    ADDRESS,
    JAVA_BOOLEAN,
    JAVA_BYTE,
    JAVA_CHAR,
    JAVA_DOUBLE,
    JAVA_FLOAT,
    JAVA_INT,
    JAVA_LONG,
    JAVA_SHORT,
    Arena,
    FunctionDescriptor,
    Linker,
    MemorySegment,
)

DEBUG = False

LAYOUTS = {
    "id_bool": JAVA_BOOLEAN,
    "id_byte": JAVA_BYTE,
    "id_char": JAVA_CHAR,
    "id_short": JAVA_SHORT,
    "id_int": JAVA_INT,
    "id_long": JAVA_LONG,
    "id_float": JAVA_FLOAT,
    "id_double": JAVA_DOUBLE,
    "id_ptr": ADDRESS,
}


def main() -> int:
    native_lib, seed, count = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    examples = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    rng = random.Random(seed)
    ffm.load_library(native_lib)
    lookup = ffm.SymbolLookup.loader_lookup()
    linker = Linker.native_linker()

    live = Arena.of_auto()
    closed_arena = Arena.of_confined()
    closed = closed_arena.allocate_from("closed")
    closed_arena.close()
    foreign: list[MemorySegment] = []
    foreign_arena: list[Arena] = []
    started = threading.Event()
    finish = threading.Event()

    def owner() -> None:
        arena = Arena.of_confined()
        foreign.append(arena.allocate_from("foreign"))
        foreign_arena.append(arena)
        started.set()
        finish.wait()
        arena.close()

    thread = threading.Thread(target=owner)
    thread.start()
    started.wait()

    # Segments safe to hand to code that dereferences them (or refused before it runs).
    safe_segments = [
        live.allocate_from("text"),
        live.allocate(64, 8),
        closed,
        foreign[0],
        MemorySegment.of_array(bytearray(b"heap\0")),
        live.allocate(64).as_read_only(),
    ]
    pool: list[Any] = [
        0,
        1,
        -1,
        127,
        128,
        -129,
        2**15,
        2**16,
        2**31,
        -(2**31) - 1,
        2**63,
        -(2**63) - 1,
        2**64,
        10**100,
        -(10**100),
        True,
        False,
        0.0,
        -0.0,
        1.5,
        math.nan,
        math.inf,
        -math.inf,
        1e308,
        3.5e38,
        5e-324,
        None,
        "",
        "text",
        b"",
        b"bytes",
        bytearray(4),
        [],
        [1],
        (),
        {},
        object(),
        1j,
        Index(5),
        Index(2**70),
        BrokenIndex(),
        BrokenFloat(),
        FloatLike(),
        WrongIndex(),
        MemorySegment.NULL,
        MemorySegment.of_address(0x1000),
        JAVA_INT,
        Arena.global_arena(),
        *safe_segments,
    ]
    handles: list[tuple[str, Any, bool]] = []  # (name, handle, dereferences its pointers)
    for name, layout in LAYOUTS.items():
        for options in ((), (Linker.Option.critical(),)):
            handles.append(
                (
                    name,
                    linker.downcall_handle(
                        lookup.find(name), FunctionDescriptor.of(layout, layout), *options
                    ),
                    False,
                )
            )
    all_layouts = (
        JAVA_BOOLEAN,
        JAVA_BYTE,
        JAVA_CHAR,
        JAVA_SHORT,
        JAVA_INT,
        JAVA_LONG,
        JAVA_FLOAT,
        JAVA_DOUBLE,
        ADDRESS,
    )
    handles.append(
        (
            "mix",
            linker.downcall_handle(lookup.find("mix"), FunctionDescriptor.of(JAVA_DOUBLE, *all_layouts)),
            False,
        )
    )
    handles.append(
        ("add unbound", linker.downcall_handle(FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT)), False)
    )
    handles.append(
        (
            "byte_len",
            linker.downcall_handle(lookup.find("byte_len"), FunctionDescriptor.of(JAVA_LONG, ADDRESS)),
            True,
        )
    )
    handles.append(
        (
            "write_int",
            linker.downcall_handle(lookup.find("write_int"), FunctionDescriptor.of_void(ADDRESS, JAVA_INT)),
            True,
        )
    )
    add_target = lookup.find("add_int")

    segment_ops: list[Callable[[MemorySegment, list[Any]], Any]] = [
        lambda s, a: s.get(*a[:2]),
        lambda s, a: s.set(*a[:3]),
        lambda s, a: s.get_at_index(*a[:2]),
        lambda s, a: s.set_at_index(*a[:3]),
        lambda s, a: s.as_slice(*a[:3]),
        lambda s, a: s.fill(*a[:1]),
        lambda s, a: s.copy_from(*a[:1]),
        lambda s, a: MemorySegment.copy(s, *a[:4]),
        lambda s, a: s.mismatch(*a[:1]),
        lambda s, a: s.to_array(*a[:1]),
        lambda s, a: s.get_string(*a[:2]),
        lambda s, a: s.set_string(*a[:3]),
        lambda s, a: s.to_bytes(),
        lambda s, a: s.as_read_only().get(*a[:2]),
        lambda s, a: Arena.global_arena().allocate(*a[:2]),
        lambda s, a: Arena.global_arena().allocate_from(*a[:2]),
        lambda s, a: MemorySegment.of_address(*a[:1]),
        lambda s, a: MemorySegment.of_array(*a[:1]),
    ]
    layouts = [*all_layouts, JAVA_INT.with_order("big"), JAVA_LONG.with_byte_alignment(1)]
    seen: Counter[str] = Counter()

    def arguments(size: int, dereferences: bool) -> list[Any]:
        if dereferences:
            choices = safe_segments + pool[:44]  # segments that are safe, or non-segments
            choices = [c for c in choices if not isinstance(c, MemorySegment) or c in safe_segments]
        else:
            choices = pool
        return [rng.choice(choices) for _ in range(size)]

    def one_call() -> None:
        if rng.random() < 0.6:
            name, handle, dereferences = rng.choice(handles)
            width = {"mix": 9, "add unbound": 3, "write_int": 2}.get(name, 1)
            size = width if rng.random() < 0.85 else rng.randrange(5)
            args = arguments(size, dereferences)
            if name == "add unbound" and args and (isinstance(args[0], MemorySegment) or rng.random() < 0.5):
                # The target of an unbound handle is called, not checked: like any function
                # pointer handed to native code, it must be a function (or be refused: NULL).
                args[0] = rng.choice([add_target, MemorySegment.NULL, closed, foreign[0]])
            if name == "write_int" and args and isinstance(args[0], MemorySegment) and args[0].byte_size < 4:
                args[0] = safe_segments[1]
            if DEBUG:
                print(name, [type(a).__name__ + ":" + repr(a)[:40] for a in args], flush=True)
            handle(*args)
        else:
            segment = rng.choice(safe_segments)
            args = [rng.choice(layouts + pool) for _ in range(4)]
            if rng.random() < 0.5:
                args[0] = rng.choice(layouts)
                args[1] = rng.randrange(-8, 72)
            rng.choice(segment_ops)(segment, args)

    for _ in range(count):
        try:
            one_call()
            seen["returned"] += 1
        except Exception as exc:
            seen[type(exc).__name__] += 1
            if DEBUG and isinstance(exc, AttributeError):
                import traceback

                traceback.print_exc(limit=-2)

    if examples:
        from hypothesis import given, settings
        from hypothesis import seed as fixed_seed
        from hypothesis import strategies as st

        anything = st.one_of(
            st.integers(),
            st.floats(),
            st.booleans(),
            st.none(),
            st.text(),
            st.binary(),
            st.sampled_from(pool),
        )

        # Not the unbound handle: its first argument is called, whatever it points to (the
        # loop above hands it only a real function or segments it must refuse).
        callable_safely = [h for h in handles if not h[2] and h[0] != "add unbound"]

        @fixed_seed(seed)  # reproducible from the printed seed, like the loop above
        @settings(max_examples=examples, deadline=None, database=None)
        @given(st.sampled_from(callable_safely), st.lists(anything, max_size=10))
        def fuzz(entry: tuple[str, Any, bool], args: list[Any]) -> None:
            try:
                entry[1](*args)
                seen["hypothesis returned"] += 1
            except Exception as exc:
                seen["hypothesis " + type(exc).__name__] += 1

        fuzz()

    finish.set()
    thread.join()
    print(sum(seen.values()))
    print(dict(sorted(seen.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
