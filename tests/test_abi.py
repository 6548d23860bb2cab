"""Structs by value, variadic calls, errno capture and GIL semantics: against the C test
library and libc."""

from __future__ import annotations

import ctypes
import errno
import itertools
import os
import re
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import ffm_runtime as ffm
from ffm_runtime import (
    ADDRESS,
    JAVA_DOUBLE,
    JAVA_INT,
    JAVA_LONG,
    Arena,
    FunctionDescriptor,
    Linker,
    MemorySegment,
    PathElement,
)

pytestmark = pytest.mark.usefixtures("stub_site")
LINKER = Linker.native_linker()
ERRNO = Linker.Option.capture_call_state("errno")


@pytest.fixture(scope="module")
def features(stub_site: Path) -> Any:
    from ffm_testpkg import features  # type: ignore[import-not-found]

    return features


def link(lookup: ffm.SymbolLookup, name: str, descriptor: FunctionDescriptor, *options: Linker.Option) -> Any:
    address = lookup.find(name)
    assert address is not None, name
    return LINKER.downcall_handle(address, descriptor, *options)


class TestErrnoCapture:
    def test_capture_state_layout(self) -> None:
        layout = Linker.Option.capture_state_layout()
        assert layout.byte_offset(PathElement.group_element("errno")) == 0

    @pytest.mark.parametrize(
        "name",
        [
            "set_errno_V",
            "set_errno_I",
            "set_errno_D",
            "set_errno_SL",
            "set_errno_SLL",
            "set_errno_SLLL",
            "set_errno_SD",
            "set_errno_SDD",
            "set_errno_SDDD",
        ],
    )
    def test_errno_is_captured(self, lookup: ffm.SymbolLookup, features: Any, name: str) -> None:
        result_layout = features.ERRNO_CASES[name]
        handle = link(lookup, name, FunctionDescriptor(result_layout, (JAVA_INT,)), ERRNO)
        errno_handle = Linker.Option.capture_state_layout().var_handle(PathElement.group_element("errno"))
        with Arena.of_confined() as arena:
            state = arena.allocate(Linker.Option.capture_state_layout())
            if isinstance(result_layout, ffm.StructLayout):
                result = handle(arena, state, 42)  # allocator, capture segment, arguments
                assert result.scope is arena and result.byte_size == result_layout.byte_size
                carrier = result_layout.member_layouts[0]
                values = [result.get_at_index(carrier, i) for i in range(len(result_layout.member_layouts))]
                start = 42 if carrier is JAVA_LONG else 42.5
                assert values == [start + i for i in range(len(values))]
            else:
                result = handle(state, 42)
                assert result == {"set_errno_V": None, "set_errno_I": 42, "set_errno_D": 42.0}[name]
            assert errno_handle.get(state, 0) == 42

    def test_capture_segment_is_checked(self, lookup: ffm.SymbolLookup) -> None:
        handle = link(lookup, "set_errno_I", FunctionDescriptor.of(JAVA_INT, JAVA_INT), ERRNO)
        with Arena.of_confined() as arena:
            with pytest.raises(
                IndexError,
                match=r"argument 0 \(capture segment\): segment of 2 "
                r"bytes is too small for the capture state",
            ):
                handle(arena.allocate(2), 1)
            with pytest.raises(
                TypeError,
                match=r"argument 0 \(capture segment\): expected "
                r"MemorySegment",
            ):
                handle(None, 1)
            with pytest.raises(TypeError, match=r"takes 2 arguments \(first: capture segment\)"):
                handle(1)
            with pytest.raises(ValueError, match="Heap segment not allowed"):
                handle(MemorySegment.of_array(bytearray(4)), 1)

    def test_libc_strtol_range_error(self) -> None:
        strtol = LINKER.downcall_handle(
            ffm.SymbolLookup.loader_lookup().find("strtol"),
            FunctionDescriptor.of(JAVA_LONG, ADDRESS, ADDRESS, JAVA_INT),
            ERRNO,
        )
        with Arena.of_confined() as arena:
            state = arena.allocate(Linker.Option.capture_state_layout())
            assert strtol(state, arena.allocate_from("123"), MemorySegment.NULL, 10) == 123
            big = strtol(state, arena.allocate_from("99999999999999999999"), MemorySegment.NULL, 10)
            assert big == 2**63 - 1
            assert state.get(JAVA_INT, 0) == errno.ERANGE

    def test_libc_open_missing_file(self) -> None:
        open_ = LINKER.downcall_handle(
            ffm.SymbolLookup.loader_lookup().find("open"),
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT),
            Linker.Option.first_variadic_arg(2),
            ERRNO,
        )
        with Arena.of_confined() as arena:
            state = arena.allocate(Linker.Option.capture_state_layout())
            assert open_(state, arena.allocate_from("/nonexistent/hatch-ffm"), os.O_RDONLY) == -1
            assert state.get(JAVA_INT, 0) == errno.ENOENT


class TestStructs:
    def test_div_and_ldiv(self, features: Any) -> None:
        find = ffm.SymbolLookup.loader_lookup().find
        div = LINKER.downcall_handle(find("div"), features.LIBC["div"][0])
        ldiv = LINKER.downcall_handle(find("ldiv"), features.LIBC["ldiv"][0])
        quot = features.DIV_T.var_handle(PathElement.group_element("quot"))
        rem = features.DIV_T.var_handle(PathElement.group_element("rem"))
        with Arena.of_confined() as arena:
            result = div(arena, 17, 5)
            assert (quot.get(result, 0), rem.get(result, 0)) == (3, 2)
            result = div(arena, -17, 5)
            assert (quot.get(result, 0), rem.get(result, 0)) == (-3, -2)
            wide = ldiv(arena, 10**15 + 7, 10**7)
            assert (wide.get(JAVA_LONG, 0), wide.get(JAVA_LONG, 8)) == (10**8, 7)

    def test_struct_results_come_from_the_allocator(self, features: Any) -> None:
        div = LINKER.downcall_handle(ffm.SymbolLookup.loader_lookup().find("div"), features.LIBC["div"][0])
        with Arena.of_confined() as arena:
            block = arena.allocate(64, 8)
            allocator = ffm.SegmentAllocator.slicing_allocator(block)
            first, second = div(allocator, 7, 2), div(allocator, 9, 4)
            assert first.address == block.address and second.address == block.address + 8
            assert block.get(JAVA_INT, 8) == 2 and block.get(JAVA_INT, 12) == 1
            with pytest.raises(TypeError, match=r"takes a SegmentAllocator .* not int"):
                div(5, 7, 2)
            with pytest.raises(IndexError, match="cannot fit 8 more bytes"):
                for _ in range(10):
                    div(allocator, 1, 1)

    @pytest.mark.parametrize("make", [Arena.of_confined, Arena.of_auto, Arena.global_arena])
    def test_struct_results_carved_from_an_arena(self, features: Any, make: Any) -> None:
        """The stub carves results from the arena's slab itself: they must be exactly what
        ``arena.allocate`` would give, interleave with it without overlap, and survive a
        slab change (100,000 bytes of results need two slabs)."""
        div = LINKER.downcall_handle(ffm.SymbolLookup.loader_lookup().find("div"), features.LIBC["div"][0])
        arena = make()
        try:
            results = []
            for i in range(12_500):
                results.append((i, div(arena, i, 7)))
                if i % 1000 == 0:
                    results.append((-1, arena.allocate(3)))
            spans = sorted((s.address, s.address + s.byte_size) for _, s in results)
            assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))
            for i, segment in results:
                assert segment.scope is arena and segment.byte_size == (3 if i < 0 else 8)
                assert type(segment) is type(arena.allocate(1))
                if i >= 0:
                    assert segment.address % 4 == 0
                    assert (segment.get(JAVA_INT, 0), segment.get(JAVA_INT, 4)) == divmod(i, 7)
                    assert segment.to_bytes() == struct.pack("=ii", *divmod(i, 7))
                    assert segment.as_slice(4).get(JAVA_INT, 0) == i % 7
        finally:
            if make.__name__ == "of_confined":  # (Arena.of_confined is another object once accelerated)
                arena.close()
        if make.__name__ == "of_confined":  # (Arena.of_confined is another object once accelerated)
            with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
                results[1][1].get(JAVA_INT, 0)
            with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
                div(arena, 1, 1)

    @pytest.mark.parametrize("kind", ["prefix", "slicing"])
    def test_struct_results_cut_from_allocator_segments(self, features: Any, kind: str) -> None:
        """Prefix and slicing allocators are served by the stub itself when it can; whatever
        it serves or refuses must be what the runtime's checking path gives."""
        from ffm_runtime._handles import allocate_result

        div = LINKER.downcall_handle(ffm.SymbolLookup.loader_lookup().find("div"), features.LIBC["div"][0])
        make = getattr(ffm.SegmentAllocator, f"{kind}_allocator")

        def outcome(call: Any, *args: Any) -> tuple[Any, ...]:
            try:
                segment = call(*args)
            except Exception as exc:
                return (type(exc), str(exc))
            return (type(segment), segment.address, segment.byte_size, segment.scope, segment.is_read_only())

        heap = bytearray(64)
        closed_arena = Arena.of_confined()
        closed = closed_arena.allocate(64, 8)
        closed_arena.close()
        with Arena.of_confined() as arena:
            parents = {
                "confined": arena.allocate(64, 8),
                "auto": Arena.of_auto().allocate(64, 8),
                "read-only": arena.allocate(64, 8).as_read_only(),
                "heap": MemorySegment.of_array(heap),
                "odd": arena.allocate(64, 8).as_slice(1),
                "small": arena.allocate(4, 8),
                "closed": closed,
                "materialized": arena.allocate(5000, 8),
            }
            parents["materialized"].to_bytes()
            for name, parent in parents.items():
                for calls in range(1, 4):  # a slicing allocator moves on, then runs out
                    native, python = make(parent), make(parent)
                    for _ in range(calls):
                        expected = outcome(allocate_result, python, 8, 4)
                        got = outcome(div, native, 17, 5)
                        assert got == expected, (name, got, expected)
                        if got[0] is type(parents["confined"]) or got[0] is MemorySegment:
                            result = div(native, 9, 4)
                            allocate_result(python, 8, 4)  # keep the two in step
                            assert (result.get(JAVA_INT, 0), result.get(JAVA_INT, 4)) == (2, 1)
                            assert result.to_bytes() == struct.pack("=ii", 2, 1)

    def test_prefix_allocator_results_share_the_block(self, features: Any) -> None:
        """Every call through a prefix allocator makes a new result object over the same
        memory, of the arena's scope, and the allocator holds none of them."""
        div = LINKER.downcall_handle(ffm.SymbolLookup.loader_lookup().find("div"), features.LIBC["div"][0])
        arena = Arena.of_confined()
        block, other = arena.allocate(16, 8), arena.allocate(16, 8)
        prefix = ffm.SegmentAllocator.prefix_allocator(block)
        first = div(prefix, 17, 5)
        second = div(prefix, 9, 4)
        assert first is not second and first.address == second.address == block.address
        assert (first.get(JAVA_INT, 0), second.get(JAVA_INT, 4)) == (2, 1)  # same memory
        del first, second
        for i in range(1000):
            result = div(prefix, i, 7)
            assert (result.get(JAVA_INT, 0), result.get(JAVA_INT, 4)) == divmod(i, 7)
            assert result.byte_size == 8 and result.scope is arena
            assert sys.getrefcount(result) == 2  # ``result`` and the call's argument
        type(prefix).__init__(prefix, other)  # type: ignore[misc]
        moved = div(prefix, 1, 1)
        assert moved.address == other.address
        kept = div(prefix, 5, 5)
        arena.close()
        with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
            div(prefix, 1, 1)
        with pytest.raises(ffm.ScopeClosedError, match="Already closed"):
            kept.get(JAVA_INT, 0)

    def test_struct_results_from_another_threads_arena(self, features: Any) -> None:
        div = LINKER.downcall_handle(ffm.SymbolLookup.loader_lookup().find("div"), features.LIBC["div"][0])
        errors: list[BaseException] = []
        with Arena.of_confined() as arena:
            div(arena, 1, 1)  # the arena has a slab: the stub's own path is the one tested

            def call() -> None:
                try:
                    div(arena, 1, 1)
                except BaseException as exc:
                    errors.append(exc)

            thread = threading.Thread(target=call)
            thread.start()
            thread.join()
        assert len(errors) == 1 and isinstance(errors[0], ffm.WrongThreadError)
        assert "Attempted access outside owning thread" in str(errors[0])

    def test_struct_arguments_are_checked(self, lookup: ffm.SymbolLookup, features: Any) -> None:
        kinds = features.VARARG_KINDS
        handle = link(
            lookup,
            "varargs",
            FunctionDescriptor.of_void(ADDRESS, ADDRESS, JAVA_INT, kinds[7]),
            Linker.Option.first_variadic_arg(3),
        )
        with Arena.of_confined() as arena:
            types = arena.allocate_from(JAVA_INT, [7])
            out = arena.allocate(32)
            with pytest.raises(
                IndexError,
                match=r"argument 3: segment of 16 bytes is too small "
                r"for struct \[j8j8j8\] \(24 bytes\)",
            ):
                handle(types, out, 1, arena.allocate(16))
            with pytest.raises(TypeError, match=r"argument 3: expected MemorySegment for struct"):
                handle(types, out, 1, (1, 2, 3))

    def test_struct_at_the_by_value_limit(self, lookup: ffm.SymbolLookup, features: Any) -> None:
        """A struct of MAX_BY_VALUE_BYTE_SIZE bytes goes both ways, also from a thread whose
        stack is musl's default (128 KiB): the stub copies it onto the stack."""
        from ffm_runtime._descriptor import MAX_BY_VALUE_BYTE_SIZE

        assert features.AT_LIMIT.byte_size == MAX_BY_VALUE_BYTE_SIZE
        echo = link(lookup, "at_limit_echo", features.AT_LIMIT_ECHO)
        words = list(range(1, MAX_BY_VALUE_BYTE_SIZE // 8 + 1))
        expected = [*words[:7], -8, *words[8:-1], words[-1] + 7]
        outcomes: list[object] = []

        def call() -> None:
            with Arena.of_confined() as arena:
                argument = arena.allocate_from(JAVA_LONG, words)
                result = echo(arena, argument, 7)
                outcomes.append((result.to_array(JAVA_LONG).tolist(), argument.to_array(JAVA_LONG).tolist()))

        call()
        previous = threading.stack_size(128 * 1024)
        try:
            thread = threading.Thread(target=call)
            thread.start()
            thread.join()
        finally:
            threading.stack_size(previous)
        assert outcomes == [(expected, words)] * 2

    @pytest.mark.parametrize("size", [4097, 64 << 20, 1 << 40], ids=["4097", "64MiB", "1TiB"])
    @pytest.mark.parametrize("bound", [True, False], ids=["bound", "unbound"])
    def test_beyond_the_by_value_limit_is_refused_at_link_time(
        self, lookup: ffm.SymbolLookup, size: int, bound: bool
    ) -> None:
        """The runtime applies the rule the build applies, whatever the installed wheels say."""
        big = ffm.MemoryLayout.struct_layout(ffm.MemoryLayout.sequence_layout(size, ffm.JAVA_BYTE))
        address = lookup.find("at_limit_echo")
        for descriptor, where in [
            (FunctionDescriptor.of_void(JAVA_INT, big), "argument 1"),
            (FunctionDescriptor.of(big, JAVA_INT), "result"),
        ]:
            with pytest.raises(
                ValueError,
                match=(
                    rf"^Layout \[\[{size}:b1\]\] \({where} of {re.escape(str(descriptor))}\) is "
                    rf"{size} bytes: a struct or union passed or returned by value may have at "
                    rf"most 4096 bytes \(MAX_BY_VALUE_BYTE_SIZE"
                ),
            ):
                LINKER.downcall_handle(*([address] if bound else []), descriptor)

    def test_at_the_by_value_limit_passes_the_link_time_rule(self) -> None:
        """Not registered, so missing - but not refused by the size rule."""
        at_limit = ffm.MemoryLayout.struct_layout(ffm.MemoryLayout.sequence_layout(4096, ffm.JAVA_BYTE))
        with pytest.raises(ffm.MissingForeignRegistrationError, match=r"\(\[\[4096:b1\]\]\)v"):
            LINKER.downcall_handle(FunctionDescriptor.of_void(at_limit))


class TestUnions:
    def test_unions_by_value(self, lookup: ffm.SymbolLookup, features: Any) -> None:
        unions = features.UNIONS
        with Arena.of_confined() as arena:
            small = arena.allocate(features.UNION_IF)
            small.set(JAVA_INT, 0, -123)
            assert link(lookup, "union_int", unions["union_int"])(small) == -123
            pair = arena.allocate(features.UNION_DL)
            pair.set(JAVA_DOUBLE, 0, 2.5)
            echoed = link(lookup, "union_echo", unions["union_echo"])(arena, pair)
            assert echoed.get(JAVA_DOUBLE, 0) == 2.5 and echoed.to_bytes() == pair.to_bytes()
            big = arena.allocate_from(JAVA_DOUBLE, [1.5, 2.5, 3.5])
            union_big = link(lookup, "union_big", unions["union_big"])
            assert [union_big(big, i) for i in range(3)] == [1.5, 2.5, 3.5]


class TestVariadic:
    def test_writeback(self, lookup: ffm.SymbolLookup, features: Any) -> None:
        import random

        rng = random.Random(11)
        kinds = features.VARARG_KINDS
        formats = {0: "<i", 1: "<q", 2: "<d", 3: "<Q", 4: "<ii", 5: "<dd", 6: "<ffff", 7: "<qqq"}
        for case in features.VARARG_CASES:
            descriptor = FunctionDescriptor.of_void(ADDRESS, ADDRESS, JAVA_INT, *[kinds[k] for k in case])
            handle = link(lookup, "varargs", descriptor, Linker.Option.first_variadic_arg(3))
            with Arena.of_confined() as arena:
                types = arena.allocate_from(JAVA_INT, list(case)) if case else MemorySegment.NULL
                out = arena.allocate(32 * max(len(case), 1))
                args, expected = [], []
                for kind in case:
                    fmt = formats[kind]
                    if kind in (2, 5):
                        values = [rng.uniform(-1e6, 1e6) for _ in fmt[1:]]
                    elif kind == 6:
                        values = [
                            struct.unpack("<f", struct.pack("<f", rng.uniform(-1e3, 1e3)))[0] for _ in fmt[1:]
                        ]
                    elif kind == 3:
                        values = [rng.getrandbits(64)]
                    else:
                        bits = 32 if kind in (0, 4) else 64
                        values = [rng.randrange(-(2 ** (bits - 1)), 2 ** (bits - 1)) for _ in fmt[1:]]
                    packed = struct.pack(fmt, *values)
                    expected.append(packed)
                    if kind in (0, 1, 2):
                        args.append(values[0])
                    elif kind == 3:
                        args.append(MemorySegment.of_address(values[0]))
                    else:
                        segment = arena.allocate(kinds[kind])
                        segment.as_memoryview()[:] = packed
                        args.append(segment)
                handle(types, out, len(case), *args)
                data = out.to_bytes()
                for index, packed in enumerate(expected):
                    assert data[32 * index : 32 * index + len(packed)] == packed, (case, index)

    def test_snprintf(self, features: Any) -> None:
        snprintf = LINKER.downcall_handle(
            ffm.SymbolLookup.loader_lookup().find("snprintf"),
            *features.LIBC["snprintf"][0:1],
            *features.LIBC["snprintf"][1],
        )
        with Arena.of_confined() as arena:
            buffer = arena.allocate(64)
            fmt = arena.allocate_from("%d|%.2f|%s|%ld")
            written = snprintf(buffer, 64, fmt, -42, 3.14159, arena.allocate_from("héllo"), 2**40)
            expected = f"-42|3.14|héllo|{2**40}"
            assert buffer.get_string() == expected and written == len(expected.encode())

    def test_invalid_variadic_layouts(self) -> None:
        for layout in (ffm.JAVA_FLOAT, ffm.JAVA_BOOLEAN, ffm.JAVA_CHAR, ffm.JAVA_BYTE, ffm.JAVA_SHORT):
            with pytest.raises(ValueError, match="Invalid variadic argument layout"):
                LINKER.downcall_handle(
                    FunctionDescriptor.of_void(JAVA_INT, layout), Linker.Option.first_variadic_arg(1)
                )


class TestGil:
    """A default handle releases the GIL around the call; a critical one keeps it."""

    def run_threads(self, handle: Any) -> float:
        threads = [threading.Thread(target=handle, args=(150,)) for _ in range(4)]
        start = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.monotonic() - start

    def test_blocking_calls_overlap_unless_critical(self, lookup: ffm.SymbolLookup) -> None:
        default = link(lookup, "sleep_ms", FunctionDescriptor.of_void(JAVA_INT))
        critical = link(lookup, "sleep_ms", FunctionDescriptor.of_void(JAVA_INT), Linker.Option.critical())
        assert self.run_threads(default) < 0.45  # 4 x 150 ms, side by side
        assert self.run_threads(critical) >= 0.55  # one after the other

    def test_ctypes_reference(self) -> None:
        assert ctypes.sizeof(ctypes.c_long) == 8  # LP64: JAVA_LONG is C long here
