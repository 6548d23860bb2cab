"""Where the first downcall handle of a process spends its time, phase by phase.

    python tests/scripts/first_handle_phases.py SITE [--runs N] [--key KEY]

``SITE``: a folder holding an unpacked wheel with stub images whose manifest lists ``KEY``
(default ``(i4)i4``, ``FunctionDescriptor.of(JAVA_INT, JAVA_INT)``, which
``benchmarks/bench_build.py``'s packages register first).  Each of ``--runs`` fresh processes
(started from an empty folder, so that the current folder adds nothing to the scan of
``sys.path``) takes the steps of ``Linker.downcall_handle`` one at a time: importing the
loading code, reading the manifests, the bootstrap, hashing and placing the part's image,
the rest of the handle.  Prints the median of each.  A measuring aid, not a test: it asserts
nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = """
import os, sys, time
T = time.perf_counter
sys.path.insert(0, {site!r})
from ffm_runtime import JAVA_INT, FunctionDescriptor, Linker
descriptor = FunctionDescriptor.of(JAVA_INT, JAVA_INT)
address = Linker.native_linker().default_lookup().find("abs")
phases = []
t = T()
import _json, _sha256
import ffm_runtime._handles, ffm_runtime._registry, ffm_runtime._upcalls
phases.append(T() - t); t = T()
from ffm_runtime import _bootstrap, _digest
from ffm_runtime._registry import registry
from ffm_runtime._targets import host_target
registry.native_access_units()
phases.append(T() - t); t = T()
_bootstrap.ensure()
phases.append(T() - t); t = T()
(source,) = registry.find({key!r})[:1]
stub = source.manifest.object_for(host_target(), {key!r})
with open(os.path.join(source.folder, stub.file), "rb") as handle:
    data = handle.read()
_digest.sha256_hex(data)
phases.append(T() - t); t = T()
registry.loaded(source, host_target(), {key!r})
phases.append(T() - t); t = T()
Linker.native_linker().downcall_handle(address, descriptor)
phases.append(T() - t)
print(len(data), *phases)
"""

PHASES = (
    "importing the loading code",
    "listing sys.path, reading the manifests",
    "the bootstrap's tables",
    "reading and hashing the part's image",
    "reading, hashing and placing it (the loader)",
    "the rest of downcall_handle",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", help="a folder holding an unpacked wheel with stubs")
    parser.add_argument("--runs", type=int, default=10, help="fresh processes; the median")
    parser.add_argument("--key", default="(i4)i4", help="a registration key the wheel provides")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONDONTWRITEBYTECODE"}}
    env["FFM_ENABLE_NATIVE_ACCESS"] = "ALL-UNNAMED"
    code = CHILD.format(site=os.path.abspath(args.site), key=args.key)
    rows: list[list[float]] = []
    with tempfile.TemporaryDirectory() as empty:
        for run in range(args.runs + 1):  # the first writes the bytecode
            result = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=empty, check=True
            )
            if run:
                rows.append([float(value) for value in result.stdout.split()])
    size = int(rows[0][0])
    print(f"{sys.executable}, median of {args.runs} processes, {args.site}")
    total = 0.0
    for index, name in enumerate(PHASES, start=1):
        median = statistics.median(row[index] for row in rows) * 1e3
        total += median
        suffix = f" ({size // 1024} KiB)" if index == 4 else ""
        print(f"  {name + suffix:<48} {median:7.2f} ms")
    print(f"  {'sum (the hash counted twice)':<48} {total:7.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
