"""Start-up figures of ffm_runtime: whole-process wall time and peak memory of
``import ffm_runtime`` against a bare interpreter, and the time of a process's first
downcall handle.

    python tests/scripts/startup_figures.py [--runs N] [--site DIR --shape "DESCRIPTOR"]

Each figure is the median of ``--runs`` fresh processes of this interpreter;
peak memory is each child's ``ru_maxrss`` (``os.wait4``).  With ``--site`` (a folder holding an
unpacked wheel with stubs) it also times ``Linker.native_linker().downcall_handle(shape)`` as
the first handle of a fresh process (``shape`` is evaluated with ffm_runtime's names, e.g.
``FunctionDescriptor.of(JAVA_INT, JAVA_INT)``).  A measuring aid, not a test: it asserts
nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

FIRST_HANDLE = """
import sys, time
sys.path.insert(0, {site!r})
start = time.perf_counter()
import ffm_runtime
from ffm_runtime import *
imported = time.perf_counter()
descriptor = {shape}
linked = time.perf_counter()
handle = Linker.native_linker().downcall_handle(descriptor)
done = time.perf_counter()
print((imported - start) * 1e3, (done - linked) * 1e3)
"""


def run(argv: list[str], env: dict[str, str]) -> tuple[float, int, str, float]:
    """Wall time (ms), peak RSS (KiB), output and CPU time (user + system, ms) of one child
    process."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True, cwd=os.sep)
    out = child.stdout.read() if child.stdout else ""
    _pid, status, usage = os.wait4(child.pid, 0)
    elapsed = (time.perf_counter() - start) * 1e3
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{argv} failed with {child.returncode}")
    return elapsed, usage.ru_maxrss, out, (usage.ru_utime + usage.ru_stime) * 1e3


def figures(code: str, runs: int, env: dict[str, str]) -> tuple[float, float, list[str], float]:
    run([sys.executable, "-c", code], env)  # (writes the bytecode, warms the page cache)
    results = [run([sys.executable, "-c", code], env) for _ in range(runs)]
    return (
        statistics.median(r[0] for r in results),
        statistics.median(r[1] for r in results) / 1024,
        [r[2] for r in results],
        statistics.median(r[3] for r in results),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--site")
    parser.add_argument("--runtime", help="a folder holding the ffm_runtime to measure (PYTHONPATH)")
    parser.add_argument("--pycache", default="/tmp/ffm-startup-pycache", help="where the bytecode is cached")
    parser.add_argument(
        "--compile-each-time", action="store_true", help="no bytecode cache (PYTHONDONTWRITEBYTECODE)"
    )
    parser.add_argument("--shape", default="FunctionDescriptor.of(JAVA_INT, JAVA_INT)")
    options = parser.parse_args()
    env = {**os.environ, "FFM_ENABLE_NATIVE_ACCESS": "ALL-UNNAMED"}
    if options.runtime:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [options.runtime, env.get("PYTHONPATH")]))
    if not options.compile_each_time:  # as installed by pip: bytecode compiled once
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = options.pycache
    print(f"{sys.executable} ({sys.version.split()[0]}), median of {options.runs} processes")
    print(
        "  ffm_runtime from",
        run([sys.executable, "-c", "import ffm_runtime; print(ffm_runtime.__file__)"], env)[2].strip(),
    )
    base = None
    for label, code in [
        ("bare interpreter", "pass"),
        ("import ctypes", "import ctypes"),
        ("import ffm_runtime", "import ffm_runtime"),
    ]:
        wall, rss, _, cpu = figures(code, options.runs, env)
        base = base or (wall, rss, cpu)
        print(
            f"  {label:<20} {wall:6.1f} ms wall {cpu:6.1f} ms CPU {rss:5.1f} MiB  "
            f"(+{wall - base[0]:.1f} ms wall, +{cpu - base[2]:.1f} ms CPU, +{rss - base[1]:.1f} MiB)"
        )
    if options.site:
        code = FIRST_HANDLE.format(site=options.site, shape=options.shape)
        wall, rss, outs, _ = figures(code, options.runs, env)
        imports = statistics.median(float(o.split()[0]) for o in outs)
        handles = statistics.median(float(o.split()[1]) for o in outs)
        print(
            f"  first handle of {options.shape} from {options.site}: {handles:.2f} ms "
            f"(import in that process {imports:.1f} ms; whole process {wall:.1f} ms, {rss:.1f} MiB)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
