"""Loader fuzzing: thousands of mutated stub objects, loaded in subprocesses; none may crash,
each either loads or raises StubLoadError (and through the registry, the hash refuses all)."""

from __future__ import annotations

import ast
import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from ffm_runtime import (
    ADDRESS,
    JAVA_DOUBLE,
    JAVA_INT,
    FunctionDescriptor,
    Linker,
    StubLoadError,
    _elf,
    registration_key,
)
from ffm_runtime._registry import StubRegistry
from hatch_ffm._compile import compile_object
from hatch_ffm._ir import build_stub_module, stub_symbol
from hatch_ffm._lowering import lower

DRIVER = Path(__file__).parent / "fuzz" / "mutate_objects.py"
TRIPLE = "x86_64-unknown-linux-gnu"
SEED = int(os.environ.get("FFM_FUZZ_SEED", "20261125"))


# Not shared: the shapes the mutation driver expects, as a file; test_loader's object has one shape.
@pytest.fixture(scope="module")
def stub_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shapes = [
        (FunctionDescriptor.of(JAVA_INT, JAVA_INT), ()),
        (FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_DOUBLE), (Linker.Option.critical(),)),
    ]
    sigs = [lower(registration_key(d, o), d, o) for d, o in shapes]
    path = tmp_path_factory.mktemp("fuzz") / "stubs.o"
    path.write_bytes(compile_object(str(build_stub_module(sigs, TRIPLE)), TRIPLE))
    return path


def run_batches(stub_file: Path, total: int, batches: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for batch in range(batches):
        seed = SEED + batch
        result = subprocess.run(
            [sys.executable, str(DRIVER), str(stub_file), str(seed), str(total // batches)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, (
            f"seed {seed}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
        for key, value in ast.literal_eval(result.stdout.strip().splitlines()[-1]).items():
            counts[key] = counts.get(key, 0) + value
    return counts


def test_mutated_objects_never_crash_the_loader(stub_file: Path) -> None:
    counts = run_batches(stub_file, 2000, 2)
    print(f"loader fuzzing, seed {SEED}: {counts}")
    assert sum(counts.values()) == 2000
    assert sum(v for k, v in counts.items() if k.endswith("refused")) > 1000


@pytest.mark.slow
def test_mutated_objects_never_crash_the_loader_long(stub_file: Path) -> None:
    assert sum(run_batches(stub_file, 100_000, 20).values()) == 100_000


def test_registry_refuses_every_mutant_by_hash(stub_file: Path, tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent / "fuzz"))
    try:
        from mutate_objects import mutate  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    original = stub_file.read_bytes()
    digest = hashlib.sha256(original).hexdigest()
    rng = random.Random(SEED)
    target = tmp_path / "mutant.o"
    refused = 0
    for _ in range(500):
        _, mutated = mutate(rng, original)
        if mutated == original:
            continue
        target.write_bytes(mutated)
        with pytest.raises(StubLoadError, match="does not match its manifest"):
            StubRegistry._load(str(target), digest, _elf.EM_X86_64, image=False)
        refused += 1
    assert refused > 450
    assert stub_symbol("(i4)i4")
