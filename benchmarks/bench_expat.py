"""libexpat's SAX parser through hatch-ffm upcalls (example_expat) against CPython's
xml.parsers.expat, in one run.

Run in an environment where example_expat is installed (``make demo`` installs it)::

    .demo-venv/bin/python benchmarks/bench_expat.py

Both sides parse the same generated document with the same handlers (start and end tags,
character data, comments, processing instructions, CDATA sections: each counts its call),
expat calling Python for every event; each row is the best of ``--repeat`` runs, the two
sides taking turns, timed in CPU time of this process (``time.process_time``).  The ratio is
hatch-ffm's events per second divided by xml.parsers.expat's (>= 1.0: at least as fast).
"""

from __future__ import annotations

import argparse
import platform
import random
import time
from collections.abc import Callable
from typing import Any

WORDS = ("alpha", "beta", "gamma", "délta", "ε", "日本語", "zeta", "eta")


def document(size: int, seed: int = 11) -> bytes:
    """An XML document of about ``size`` bytes: records with attributes, text, entity and
    character references, comments, processing instructions, CDATA sections, non-ASCII text."""
    rnd = random.Random(seed)
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE catalog [\n'
             '  <!ENTITY company "Example &amp; Sons">\n]>\n<catalog version="1">\n']  # fmt: skip
    total = sum(len(part) for part in parts)
    index = 0
    while total < size:
        word = rnd.choice(WORDS)
        record = (
            f'  <item id="{index}" name="{word} {index}" price="{rnd.random() * 100:.2f}">\n'
            f"    <title>{word} &amp; {rnd.choice(WORDS)} &#x263A;</title>\n"
            f"    <vendor>&company;</vendor>\n"
            f'    <tags><tag k="a"/><tag k="{word}">{rnd.randrange(1000)}</tag></tags>\n'
            + (f"    <!-- note {index} -->\n" if index % 4 == 0 else "")
            + (f"    <?render mode='{index % 3}'?>\n" if index % 8 == 0 else "")
            + (f"    <code><![CDATA[if (a < b && c > {index}) {{ }}]]></code>\n" if index % 5 == 0 else "")
            + "  </item>\n"
        )
        parts.append(record)
        total += len(record.encode())
        index += 1
    parts.append("</catalog>\n")
    return "".join(parts).encode()


def counting_parse(module: Any, data: bytes) -> int:
    """Parse ``data`` with ``module.ParserCreate()``, every handler counting its calls."""
    count = 0

    def start(name: str, attributes: dict[str, str]) -> None:
        nonlocal count
        count += 1

    def one(data: str) -> None:
        nonlocal count
        count += 1

    def two(target: str, data: str) -> None:
        nonlocal count
        count += 1

    def none() -> None:
        nonlocal count
        count += 1

    parser = module.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = one
    parser.CharacterDataHandler = one
    parser.CommentHandler = one
    parser.ProcessingInstructionHandler = two
    parser.StartCdataSectionHandler = none
    parser.EndCdataSectionHandler = none
    parser.Parse(data, True)
    close = getattr(parser, "close", None)
    if close is not None:
        close()
    return count


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

    import xml.parsers.expat as pyexpat

    from example_expat import expat

    print(
        f"# CPython {platform.python_version()} on {platform.machine()}, {expat.EXPAT_VERSION} through "
        f"hatch-ffm, xml.parsers.expat with {pyexpat.EXPAT_VERSION}; best of {args.repeat}"
    )
    print("| workload | events | hatch-ffm, events/s | xml.parsers.expat, events/s | hatch-ffm / pyexpat |")
    print("|---|---:|---:|---:|---:|")
    for size in [size for size in (1 << 14, 1 << 20) if size <= args.max_size]:
        data = document(size)

        def ours(data: bytes = data) -> int:
            return counting_parse(expat, data)

        def theirs(data: bytes = data) -> int:
            return counting_parse(pyexpat, data)

        mine = other = float("inf")
        events = 0
        for _ in range(args.repeat):  # take turns, so that drift affects both sides alike
            seconds, events = best(ours, 1)
            mine = min(mine, seconds)
            seconds, theirs_events = best(theirs, 1)
            other = min(other, seconds)
            assert events == theirs_events, (events, theirs_events)
        label = f"parse {len(data) / 1024:.0f} KiB document, a handler per event"
        print(f"| {label} | {events} | {events / mine:,.0f} | {events / other:,.0f} | {other / mine:.2f}x |")
    if args.profile:
        from _opcount import profile

        data = document(1 << 18)
        profile(lambda: counting_parse(expat, data), "event")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
