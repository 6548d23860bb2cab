"""Threads racing ``close()`` of a shared arena against downcalls and memory access, under
``sys.setswitchinterval(1e-6)``.  ``argv[1]``: the C test library (tests/native).  Prints
"checks passed".  ``argv[2]``, if given: how many racing rounds (30).  Run by
tests/test_shared_arena.py on every supported CPython, and by tests/test_aarch64_emulated.py.

The orders that matter are forced, not hoped for: a downcall blocks in ``read`` on a pipe
until the test writes to it, and a Python operation is held inside its access by a profile
function until the other thread has tried to close.
"""

from __future__ import annotations

import itertools
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import ffm_runtime as ffm
from ffm_runtime import (
    ADDRESS,
    JAVA_BYTE,
    JAVA_INT,
    JAVA_LONG,
    Arena,
    FunctionDescriptor,
    Linker,
    MemorySegment,
    ScopeClosedError,
    ScopeInUseError,
    SymbolLookup,
)

sys.setswitchinterval(1e-6)
LIBRARY = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 30
ffm.load_library(LIBRARY)
find: Any = SymbolLookup.loader_lookup().find
link: Any = Linker.native_linker().downcall_handle
READ = FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG)
block_on_read = link(find("block_on_read"), READ)
write_int = link(find("write_int"), FunctionDescriptor.of_void(ADDRESS, JAVA_INT))
byte_len = link(find("byte_len"), FunctionDescriptor.of(JAVA_LONG, ADDRESS))
GLOBAL = Arena.global_arena()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait (up to a generous deadline) for another thread to get somewhere."""
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


def expect(call: Callable[[], object], error: type[BaseException], text: str) -> None:
    try:
        call()
    except error as exc:
        assert text in str(exc), (text, str(exc))
    else:
        raise AssertionError(f"no {error.__name__} ({text})")


#: the ``read`` system call's number, as /proc/<pid>/task/<tid>/syscall shows a thread in it:
#: x86_64's, aarch64's (under qemu-user the host's shows)
READ_SYSCALLS = {"0", "63"}


def in_read(thread: threading.Thread) -> bool:
    """Whether ``thread`` is blocked in the ``read`` system call (so inside the downcall)."""
    try:
        with open(f"/proc/self/task/{thread.native_id}/syscall") as status:
            return status.read().split(" ", 1)[0] in READ_SYSCALLS
    except OSError:
        return False


def acquisitions(arena: Arena) -> int:
    return len(arena._confinement) - 1  # type: ignore[arg-type]  # a shared arena's guard


def run_blocked(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Start ``call`` in a thread; its result (or exception) lands in the list."""
    results: list[object] = []

    def body() -> None:
        try:
            results.append(call())
        except BaseException as exc:
            results.append(exc)

    thread = threading.Thread(target=body, daemon=True)  # a failed check must not hang
    thread.start()
    return thread, results


def blocking_downcall_keeps_the_arena() -> None:
    """A downcall given a segment of a shared arena holds it while it runs: close() from
    another thread is refused, other threads keep using the arena, the call completes."""
    arena = Arena.of_shared()
    buffer = arena.allocate(8)
    reader, writer = os.pipe()
    thread, results = run_blocked(lambda: block_on_read(reader, buffer, 8))
    wait_for(lambda: in_read(thread), "the downcall to block")
    expect(arena.close, ScopeInUseError, "Session is acquired by 1 client")
    assert arena.is_alive()
    buffer.set(JAVA_BYTE, 7, 9)  # this thread still uses the memory the call holds
    second, second_results = run_blocked(lambda: block_on_read(reader, buffer.as_slice(4), 4))
    wait_for(lambda: in_read(second), "a second downcall to block")
    expect(arena.close, ScopeInUseError, "Session is acquired by 2 clients")
    os.write(writer, b"xy")
    wait_for(lambda: not (in_read(thread) and in_read(second)), "one downcall to finish")
    wait_for(lambda: acquisitions(arena) == 1, "one downcall to give the arena back")
    expect(arena.close, ScopeInUseError, "Session is acquired by 1 client")
    os.write(writer, b"z")
    thread.join()
    second.join()
    assert sorted(results + second_results) == [1, 2], (results, second_results)  # type: ignore[type-var]
    assert acquisitions(arena) == 0
    arena.close()
    assert not arena.is_alive()
    expect(lambda: block_on_read(reader, buffer, 8), ScopeClosedError, "Already closed")
    expect(lambda: buffer.get(JAVA_BYTE, 0), ScopeClosedError, "Already closed")
    assert acquisitions(arena) == 0
    os.close(reader)
    os.close(writer)


def library_of_a_shared_arena_stays_loaded() -> None:
    """Handles bound to a symbol of library_lookup(path, shared arena), and unbound handles
    given that symbol: the library is not unloaded while a call into it runs."""
    unbound = link(READ)
    for bound in (True, False):
        arena = Arena.of_shared()
        symbol = SymbolLookup.library_lookup(LIBRARY, arena).find("block_on_read")
        assert symbol is not None and type(symbol).__name__ == "_SharedSegment"
        buffer = GLOBAL.allocate(4)
        reader, writer = os.pipe()
        if bound:
            handle = link(symbol, READ)
            assert type(handle).__name__ == "builtin_function_or_method"  # no Python wrapper
            thread, results = run_blocked(lambda: handle(reader, buffer, 4))  # noqa: B023
        else:
            thread, results = run_blocked(lambda: unbound(symbol, reader, buffer, 4))  # noqa: B023
        wait_for(lambda: in_read(thread), "the call into the library to block")  # noqa: B023
        expect(arena.close, ScopeInUseError, "Session is acquired by 1 client")
        os.write(writer, b"ok")
        thread.join()
        assert results == [2], results
        arena.close()
        if bound:
            expect(lambda: handle(reader, buffer, 4), ScopeClosedError, "Already closed")  # noqa: B023
        else:
            expect(lambda: unbound(symbol, reader, buffer, 4), ScopeClosedError, "Already closed")  # noqa: B023
        os.close(reader)
        os.close(writer)


def python_access_keeps_the_arena() -> None:
    """A Python memory operation on a shared segment holds the arena: close() from another
    thread during it is refused; after it, close() succeeds and the operation's result is
    whole."""
    arena = Arena.of_shared()
    segment = arena.allocate_from("held")
    inside = threading.Event()
    tried = threading.Event()

    def profile(frame: Any, event: str, arg: object) -> None:
        # get_string (a charset other than UTF-8: the Python path) has acquired the arena
        # (before its try) and checked it (_pin returns): the read comes next
        if event == "return" and frame.f_code.co_name == "_pin" and not inside.is_set():
            inside.set()
            tried.wait(60)

    def body() -> str:
        sys.setprofile(profile)
        try:
            return segment.get_string(0, "latin-1")
        finally:
            sys.setprofile(None)

    thread, results = run_blocked(body)
    assert inside.wait(60), "get_string was not reached"
    expect(arena.close, ScopeInUseError, "Session is acquired by 1 client")
    tried.set()
    thread.join()
    assert results == ["held"], results
    arena.close()
    expect(segment.to_bytes, ScopeClosedError, "Already closed")
    assert acquisitions(arena) == 0


def racing_close() -> None:
    """Workers use a shared arena (Python operations, native get/set/allocate, downcalls)
    while another thread keeps trying to close it.  Every operation either completes, whole,
    or raises ScopeClosedError; none that started after the close returned completes; the
    closer sees only ScopeInUseError until it succeeds; no acquisition is left or lost."""
    for round_number in range(ROUNDS):
        race_round(round_number)


def race_round(round_number: int) -> None:
    arena = Arena.of_shared()
    cells = [arena.allocate(64, 8) for _ in range(4)]
    closed = threading.Event()
    errors: list[str] = []
    rng = random.Random(round_number)

    def work(index: int, seed: int) -> None:
        own = random.Random(seed)
        cell = cells[index]
        for step in range(400):
            after_close = closed.is_set()
            try:
                choice = own.randrange(7)
                value = index * 100000 + step
                if choice == 0:
                    cell.set(JAVA_INT, 0, value)  # native
                    got = cell.get(JAVA_INT, 0)
                    assert got == value, (got, value)
                elif choice == 1:
                    write_int(cell.as_slice(8), value)  # a downcall without the GIL
                    assert cell.get(JAVA_INT, 8) == value
                elif choice == 2:
                    cell.set_string(16, f"t{value}")  # Python, acquired
                    assert cell.get_string(16) == f"t{value}"
                elif choice == 3:
                    text = arena.allocate_from(f"{value}")  # Python allocation
                    assert byte_len(text) == len(f"{value}")
                elif choice == 4:
                    fresh = arena.allocate(24, 8)  # native allocation
                    fresh.set(JAVA_LONG, 16, value)
                    assert fresh.to_bytes()[16:20] == value.to_bytes(4, "little")
                elif choice == 5:
                    cell.as_slice(32, 16).fill(index)
                    assert set(cell.as_slice(32, 16).to_bytes()) == {index}
                else:
                    MemorySegment.copy(cell, 0, cell, 48, 8)
            except ScopeClosedError as exc:
                if "Already closed" not in str(exc):
                    errors.append(f"worker {index}: {exc!r}")
                return
            except BaseException as exc:
                errors.append(f"worker {index}: {exc!r}")
                return
            if after_close:
                errors.append(f"worker {index}: an operation started after close() completed")
                return

    def close() -> None:
        while True:
            try:
                arena.close()
            except ScopeInUseError as exc:
                if "Session is acquired by" not in str(exc):
                    errors.append(f"closer: {exc!r}")
                    return
                time.sleep(rng.random() / 1000)
                continue
            except BaseException as exc:
                errors.append(f"closer: {exc!r}")
                return
            closed.set()
            return

    threads = [threading.Thread(target=work, args=(i, rng.random())) for i in range(4)]
    threads.append(threading.Thread(target=close))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert not arena.is_alive()
    assert list(arena._confinement) == [0], arena._confinement  # type: ignore[arg-type]


def allocation_from_two_threads() -> None:
    """Two threads allocate from one shared arena (natively, and in Python): every segment
    is its own memory."""
    with Arena.of_shared() as arena:
        made: list[list[MemorySegment]] = [[], []]

        def allocate(index: int) -> None:
            for step in range(3000):
                segment = arena.allocate(8 if step % 3 else 5000, 8)  # slab pieces and blocks
                segment.set(JAVA_LONG, 0, index * 10**6 + step)
                made[index].append(segment)

        threads = [threading.Thread(target=allocate, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        spans = sorted(
            (segment.address, segment.address + segment.byte_size) for group in made for segment in group
        )
        assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans)), "overlapping segments"
        for index, group in enumerate(made):
            assert [s.get(JAVA_LONG, 0) for s in group] == [index * 10**6 + i for i in range(3000)]


def fork_with_a_shared_arena() -> None:
    """The child of a fork has its own copy of a shared arena: it uses and closes it; the
    parent's is untouched."""
    arena = Arena.of_shared()
    cell = arena.allocate(JAVA_INT)
    cell.set(JAVA_INT, 0, 41)
    child = os.fork()
    if child == 0:  # pragma: no cover  (the child)
        code = 1
        try:
            write_int(cell, cell.get(JAVA_INT, 0) + 1)
            assert cell.get(JAVA_INT, 0) == 42
            arena.close()
            expect(lambda: cell.get(JAVA_INT, 0), ScopeClosedError, "Already closed")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert arena.is_alive() and cell.get(JAVA_INT, 0) == 41
    arena.close()


blocking_downcall_keeps_the_arena()
library_of_a_shared_arena_stays_loaded()
python_access_keeps_the_arena()
racing_close()
allocation_from_two_threads()
fork_with_a_shared_arena()
print("checks passed")
