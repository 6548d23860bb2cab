"""libbz2 through hatch-ffm (example_bz2) against CPython's bz2 module, in one run.

Run in an environment where example_bz2 is installed (``make demo`` installs it)::

    .demo-venv/bin/python benchmarks/bench_bz2.py

Both sides call the same libbz2 with the same data; each row is the best of ``--repeat``
runs, the two sides taking turns, timed in CPU time of this process (``time.process_time``:
the machine's other load preempting the run does not count, as the benchmarks run on a busy
machine too).  "ratio" is the hatch-ffm throughput divided by bz2's
(>= 1.0: at least as fast).
"""

from __future__ import annotations

import argparse
import bz2
import platform
import random
import time
from collections.abc import Callable


def sample(size: int, seed: int = 12) -> bytes:
    """``size`` bytes of text-like data (words from a small vocabulary, with numbers)."""
    rnd = random.Random(seed)
    words = [bytes(rnd.choices(b"abcdefghijklmnopqrstuvwxyz", k=rnd.randint(2, 9))) for _ in range(500)]
    parts = []
    total = 0
    while total < size:
        word = rnd.choice(words) + (b" %d\n" % rnd.randrange(10**6) if rnd.random() < 0.1 else b" ")
        parts.append(word)
        total += len(word)
    return b"".join(parts)[:size]


def best(function: Callable[[], object], repeat: int, budget: float) -> float:
    """Seconds per call: the best of ``repeat`` batches, each as many calls as fit in ``budget``."""
    start = time.process_time()
    function()
    once = max(time.process_time() - start, 1e-7)
    number = max(1, int(budget / once))
    times = []
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(number):
            function()
        times.append((time.process_time() - start) / number)
    return min(times)


def streaming(compressor_type: Callable[[int], object], data: bytes, chunk: int) -> Callable[[], bytes]:
    def run() -> bytes:
        compressor = compressor_type(9)
        parts = [compressor.compress(data[i : i + chunk]) for i in range(0, len(data), chunk)]  # type: ignore[attr-defined]
        parts.append(compressor.flush())  # type: ignore[attr-defined]
        return b"".join(parts)

    return run


def streaming_decompress(
    decompressor_type: Callable[[], object], data: bytes, chunk: int
) -> Callable[[], bytes]:
    def run() -> bytes:
        decompressor = decompressor_type()
        return b"".join(decompressor.decompress(data[i : i + chunk]) for i in range(0, len(data), chunk))  # type: ignore[attr-defined]

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="batches per row; the best is kept")
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per batch")
    parser.add_argument(
        "--profile", action="store_true", help="also count the runtime operations per call (cProfile)"
    )
    parser.add_argument("--max-size", type=int, default=1 << 20, help="largest data size, bytes")
    args = parser.parse_args()

    from example_bz2 import libbz2

    print(
        f"# CPython {platform.python_version()} on {platform.machine()}, libbz2 {libbz2.version()}; "
        f"best of {args.repeat}, throughput of the uncompressed size"
    )
    rows: list[tuple[str, Callable[[], bytes], Callable[[], bytes], int]] = []
    for size in [size for size in (1 << 10, 1 << 16, 1 << 20) if size <= args.max_size]:
        data = sample(size)
        packed = bz2.compress(data, 9)
        assert libbz2.compress(data, 9) == packed and libbz2.decompress(packed) == data
        label = f"{size // 1024} KiB"
        rows.append(
            (
                f"compress {label}",
                lambda d=data: libbz2.compress(d, 9),
                lambda d=data: bz2.compress(d, 9),
                size,
            )
        )
        rows.append(
            (
                f"decompress {label}",
                lambda p=packed: libbz2.decompress(p),
                lambda p=packed: bz2.decompress(p),
                size,
            )
        )
        rows.append(
            (
                f"decompress_bounded {label} (one call)",
                lambda p=packed, n=size: libbz2.decompress_bounded(p, n),
                lambda p=packed: bz2.decompress(p),
                size,
            )
        )
    data = sample(args.max_size)
    packed = bz2.compress(data, 9)
    for chunk in (1 << 12, 1 << 16):
        label = f"{args.max_size // 1024} KiB in {chunk // 1024} KiB chunks"
        ours, theirs = streaming(libbz2.BZ2Compressor, data, chunk), streaming(bz2.BZ2Compressor, data, chunk)
        assert ours() == theirs()
        rows.append((f"BZ2Compressor {label}", ours, theirs, len(data)))
        ours = streaming_decompress(libbz2.BZ2Decompressor, packed, chunk)
        theirs = streaming_decompress(bz2.BZ2Decompressor, packed, chunk)
        assert ours() == theirs() == data
        rows.append((f"BZ2Decompressor {label} of compressed data", ours, theirs, len(data)))

    print("| workload | hatch-ffm, MB/s | bz2, MB/s | hatch-ffm / bz2 |")
    print("|---|---:|---:|---:|")
    for name, ours, theirs, size in rows:
        mine = other = float("inf")
        for _ in range(args.repeat):  # take turns, so that drift affects both sides alike
            mine = min(mine, best(ours, 1, args.budget))
            other = min(other, best(theirs, 1, args.budget))
        print(f"| {name} | {size / mine / 1e6:.1f} | {size / other / 1e6:.1f} | {other / mine:.2f}x |")
    if args.profile:
        from _opcount import profile

        small = bz2.compress(sample(1 << 10), 9)

        def calls() -> int:
            for _ in range(2000):
                libbz2.decompress(small)
            return 2000

        profile(calls, "decompress(1 KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
