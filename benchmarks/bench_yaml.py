"""libyaml's event parser through hatch-ffm (example_yaml) against PyYAML's C parser, in one run.

Run in an environment where example_yaml and PyYAML are installed (``make demo`` installs
them)::

    .demo-venv/bin/python benchmarks/bench_yaml.py

Both sides parse the same generated document with the same libyaml, making an event object
per event; each row is the best of ``--repeat`` runs, the two sides taking turns, timed in
CPU time of this process (``time.process_time``: other load preempting the run does not
count).  The ratio is hatch-ffm's events per second divided by PyYAML's (>= 1.0: at least as
fast).
"""

from __future__ import annotations

import argparse
import platform
import random
import time
from collections.abc import Callable, Iterable


def document(size: int, seed: int = 7) -> bytes:
    """A YAML document of about ``size`` bytes: a sequence of records with block and flow
    collections, plain/quoted/literal scalars, anchors, aliases and tags."""
    rnd = random.Random(seed)
    parts = []
    total = 0
    index = 0
    while total < size:
        record = (
            f"- id: {index}\n"
            f'  name: &n{index} "user {index}"\n'
            f"  score: !!float {rnd.random():.6f}\n"
            f"  tags: [alpha, 'beta', {rnd.randrange(1000)}]\n"
            f"  note: |\n    line one of {index}\n    line two\n"
            f"  ref: *n{index}\n"
            f"  nested: {{x: {rnd.randrange(100)}, y: two}}\n"
        )
        parts.append(record)
        total += len(record)
        index += 1
    return "".join(parts).encode()


def count(events: Iterable[object]) -> int:
    return sum(1 for _ in events)


def best(function: Callable[[], int], repeat: int) -> tuple[float, int]:
    times = []
    result = 0
    for _ in range(repeat):
        start = time.process_time()
        result = function()
        times.append(time.process_time() - start)
    return min(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per row; the best is kept")
    parser.add_argument(
        "--profile", action="store_true", help="also count the runtime operations per event (cProfile)"
    )
    parser.add_argument("--max-size", type=int, default=1 << 20, help="largest document size, bytes")
    args = parser.parse_args()

    import yaml

    from example_yaml import libyaml

    assert yaml.__with_libyaml__, "PyYAML without its libyaml extension"
    print(
        f"# CPython {platform.python_version()} on {platform.machine()}, libyaml {libyaml.version()}, "
        f"PyYAML {yaml.__version__}; best of {args.repeat}"
    )
    print("| workload | events | hatch-ffm, events/s | PyYAML CParser, events/s | hatch-ffm / PyYAML |")
    print("|---|---:|---:|---:|---:|")
    for size in [size for size in (1 << 14, 1 << 20) if size <= args.max_size]:
        data = document(size)

        def ours(data: bytes = data) -> int:
            return count(libyaml.parse(data))

        def theirs(data: bytes = data) -> int:
            return count(yaml.parse(data, Loader=yaml.CSafeLoader))

        mine = other = float("inf")
        events = 0
        for _ in range(args.repeat):  # take turns, so that drift affects both sides alike
            seconds, events = best(ours, 1)
            mine = min(mine, seconds)
            seconds, theirs_events = best(theirs, 1)
            other = min(other, seconds)
            assert events == theirs_events
        label = f"parse {len(data) / 1024:.0f} KiB document into events"
        print(f"| {label} | {events} | {events / mine:,.0f} | {events / other:,.0f} | {other / mine:.2f}x |")
    if args.profile:
        from _opcount import profile

        data = document(1 << 18)
        profile(lambda: count(libyaml.parse(data)), "event")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
