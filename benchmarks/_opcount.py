"""Per-operation counts of a workload for the example benchmarks' ``--profile``: how many times
each ffm_runtime operation and each downcall ran per unit of work, and cProfile's share of
the time spent inside each (cProfile slows Python code more than native code, so the shares
are a ranking, not a measurement; the benchmark rows are the measurement)."""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable


def profile(workload: Callable[[], int], unit: str, top: int = 14) -> None:
    """Run ``workload`` (which returns how many ``unit``s it did) under cProfile and print the
    calls per unit of the ffm_runtime operations and downcalls, by inclusive time."""
    profiler = cProfile.Profile()
    profiler.enable()
    units = workload()
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (path, line, name), (_, calls, own, inclusive, _) in stats.stats.items():  # type: ignore[attr-defined]
        if "ffm_runtime" in path:
            label = f"ffm_runtime {path.rsplit('/', 1)[-1]}:{line} {name}"
        elif path == "~" and ("MemorySegment" in name or "Arena" in name or "builtin" not in name):
            label = name  # an accelerated method or a downcall handle (a builtin function)
        else:
            continue
        rows.append((inclusive, own, calls, label))
    print(f"profile: {units} {unit}s, {total:.2f} s under cProfile; ffm_runtime operations and native calls:")
    print(f"  {'calls/' + unit:>12} {'incl. %':>8} {'own %':>6}  operation")
    for inclusive, own, calls, label in sorted(rows, reverse=True)[:top]:
        share, own_share = 100 * inclusive / total, 100 * own / total
        print(f"  {calls / units:>12.2f} {share:>7.1f}% {own_share:>5.1f}%  {label}")
