"""Input fuzzing in subprocesses (a crash fails the test instead of killing the run): random
argument tuples against handles of every value layout and segment operations; zero crashes."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = Path(__file__).parent / "fuzz" / "fuzz_inputs.py"
SEED = int(os.environ.get("FFM_FUZZ_SEED", "20261125"))
#: outcomes that are documented: the call returned, or one of these was raised
EXPECTED = {
    "returned",
    "TypeError",
    "OverflowError",
    "ValueError",
    "OutOfBoundsError",
    "MisalignedAccessError",
    "ReadOnlyError",
    "ScopeClosedError",
    "WrongThreadError",
    "ZeroDivisionError",  # raised by the fuzzer's own broken __index__ / __float__
    "MemoryError",
}  # allocations of absurd sizes


def fuzz(site: Path, native_lib: Path, count: int, batches: int, examples: int) -> dict[str, int]:
    seen: dict[str, int] = {}
    for batch in range(batches):
        seed = SEED + batch
        result = subprocess.run(
            [
                sys.executable,
                str(DRIVER),
                str(site),
                str(native_lib),
                str(seed),
                str(count // batches),
                str(examples),
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "FFM_ENABLE_NATIVE_ACCESS": "ALL-UNNAMED"},
        )
        assert result.returncode == 0, (
            f"seed {seed}: exit {result.returncode} (negative: killed by a signal)\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )
        for key, value in ast.literal_eval(result.stdout.strip().splitlines()[-1]).items():
            seen[key] = seen.get(key, 0) + value
    return seen


def test_hundred_thousand_random_argument_tuples(stub_site: Path, native_lib: Path) -> None:
    seen = fuzz(stub_site, native_lib, 100_000, 2, 500)
    print(f"input fuzzing, seed {SEED}: {seen}")
    assert sum(seen.values()) >= 101_000
    assert seen["returned"] > 10_000
    for expected in (
        "TypeError",
        "OverflowError",
        "ScopeClosedError",
        "WrongThreadError",
        "OutOfBoundsError",
        "ZeroDivisionError",
    ):
        assert seen.get(expected, 0) > 0, expected
    unexpected = {name for name in seen if name.split()[-1] not in EXPECTED}
    assert not unexpected, f"exceptions that are not the documented ones: {unexpected}"


@pytest.mark.slow
def test_million_random_argument_tuples(stub_site: Path, native_lib: Path) -> None:
    assert sum(fuzz(stub_site, native_lib, 1_000_000, 10, 5_000).values()) >= 1_000_000
