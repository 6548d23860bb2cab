"""Reference leaks (1,000,000 calls of each kind of handle, including ones that raise, and of
upcalls, keep the process's memory flat) and concurrency (8 threads calling handles in their
own arenas)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import ffm_runtime as ffm
from ffm_runtime import ADDRESS, JAVA_DOUBLE, JAVA_INT, JAVA_LONG, Arena, FunctionDescriptor, Linker

SCRIPTS = Path(__file__).parent / "scripts"

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
    "upcall",
    "upcall raises",
    "pointer upcall",
    "upcall stub per arena",
]


@pytest.mark.parametrize("kind", KINDS)
def test_million_calls_keep_memory_flat(stub_site: Path, native_lib: Path, kind: str) -> None:
    count = 1_000_000
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "leak_calls.py"),
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
