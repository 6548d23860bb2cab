"""Build and start-up at scale: the build hook's time for packages of 100 to 10,000 call
shapes (cold, rebuilt unchanged, rebuilt with one shape more), ``import ffm_runtime``'s time
and peak memory, and the first downcall handle's latency in a fresh process.

Run with the development environment (the builds need hatchling, pluggy and llvmlite)::

    .venv/bin/python benchmarks/bench_build.py [--sizes 100,1000,10000] [--quick]

Every number is the median of whole-process runs.  The packages are generated in a
temporary folder: a Feature registering N distinct downcall shapes, drawn at random (seeded)
from results and up to eight arguments of ``JAVA_INT``, ``JAVA_LONG``, ``JAVA_SHORT``,
``JAVA_FLOAT``, ``JAVA_DOUBLE``, ``ADDRESS`` and three struct layouts (two ints, two
doubles, three longs), a quarter of them critical; the package of N + 1 shapes has the same
N and one more.  Each package is built in a child process by hatchling's PEP 517 backend
(``build_wheel``, what ``pip wheel`` calls), with the hook's ``initialize`` and ``finalize``
timed inside that process ("hook"); the same build without hooks (``HATCH_BUILD_NO_HOOKS``)
is the bare hatchling baseline, and "build - bare" the difference of the two processes' wall
times.  A cold build starts from an empty build cache (``FFM_BUILD_CACHE`` set to a fresh
folder); the rebuilds reuse the cold build's cache: unchanged, then after adding one shape
to the Feature (a hook without a persistent cache rebuilds everything each time).  "CPU" is
the user and system time of the build process and of the processes it started (its helpers
that compile parts): what the build costs whatever else the machine runs, where the times
depend on the CPUs left to it (the header gives the load average).

The start-up rows run ``--runtime-python`` (default: this interpreter) from an empty
folder: ``python -c pass``, ``python -c "import ctypes"`` and ``python -c "import
ffm_runtime"``, wall time and the child's peak resident memory (``VmHWM``), taking turns
run after run; "over bare" is the median of each run's difference.  The first-handle rows
import the built package (unpacked on ``PYTHONPATH``) and time
``Linker.native_linker().downcall_handle(abs, FunctionDescriptor.of(JAVA_INT, JAVA_INT))``, a
shape every generated package registers first, inside the process: finding the package's
manifest and placing its stub image included.  Goals (issue 14): 1,000
shapes built cold in at most 2 s and rebuilt with one more shape in at most 0.5 s; ``import
ffm_runtime`` at most 5 ms slower and 2 MiB larger than a bare interpreter; the first handle
in at most 1 ms (100 and 1,000 shapes) and 5 ms (10,000 shapes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

#: the build cache's variable: a folder, or ``off``
CACHE_ENV = "FFM_BUILD_CACHE"
PACKAGE = "ffm_scale"
SEED = 14
#: layout codes of the generated shapes (``v``: a void result)
SCALARS = "ilsfdp"
STRUCTS = "PDT"
#: the shape every package registers first (the first-handle rows link it to libc's abs)
FIRST = "i:i"

#: the generated package's Feature and layouts (the Feature's module holds the shapes)
SHAPES_MODULE = '''\
"""Decodes the benchmark's shape codes: result code, ":", argument codes, "!" if critical."""

from ffm_runtime import (
    ADDRESS,
    JAVA_DOUBLE,
    JAVA_FLOAT,
    JAVA_INT,
    JAVA_LONG,
    JAVA_SHORT,
    FunctionDescriptor,
    Linker,
    MemoryLayout,
)

LAYOUTS = {
    "i": JAVA_INT,
    "l": JAVA_LONG,
    "s": JAVA_SHORT,
    "f": JAVA_FLOAT,
    "d": JAVA_DOUBLE,
    "p": ADDRESS,
    "P": MemoryLayout.struct_layout(JAVA_INT.with_name("a"), JAVA_INT.with_name("b")),
    "D": MemoryLayout.struct_layout(JAVA_DOUBLE.with_name("x"), JAVA_DOUBLE.with_name("y")),
    "T": MemoryLayout.struct_layout(*(JAVA_LONG.with_name(n) for n in "abc")),
}


def decode(code):
    critical = code.endswith("!")
    result, arguments = code.rstrip("!").split(":")
    layouts = [LAYOUTS[c] for c in arguments]
    if result == "v":
        descriptor = FunctionDescriptor.of_void(*layouts)
    else:
        descriptor = FunctionDescriptor.of(LAYOUTS[result], *layouts)
    return descriptor, ((Linker.Option.critical(),) if critical else ())
'''

FEATURE_MODULE = '''\
"""Registers SHAPES (written by benchmarks/bench_build.py)."""

from hatch_ffm import RuntimeForeignAccess

from .shapes import decode

SHAPES = {shapes}


class ScaleFeature:
    def during_setup(self, access):
        for code in SHAPES:
            descriptor, options = decode(code)
            RuntimeForeignAccess.register_for_downcall(descriptor, *options)
'''

FIRST_MODULE = '''\
"""Prints the first downcall handle's latency in ns (and checks the handle)."""

import time

from ffm_runtime import JAVA_INT, FunctionDescriptor, Linker


def main():
    descriptor = FunctionDescriptor.of(JAVA_INT, JAVA_INT)
    address = Linker.native_linker().default_lookup().find("abs")
    start = time.perf_counter_ns()
    handle = Linker.native_linker().downcall_handle(address, descriptor)
    elapsed = time.perf_counter_ns() - start
    if handle(-7) != 7:
        raise AssertionError("abs(-7) != 7")
    print(elapsed)
    with open("/proc/self/status") as status:
        print(status.read())
'''

PYPROJECT = """\
[build-system]
requires = ["hatchling", "hatch-ffm[build]"]
build-backend = "hatchling.build"

[project]
name = "ffm-scale"
version = "0.1.0"
dependencies = ["hatch-ffm"]

[tool.hatch.build.targets.wheel]
packages = ["{package}"]

[tool.hatch.build.targets.wheel.hooks.ffm]
features = ["{package}.ffm_features:ScaleFeature"]
"""

#: the build, in a child process: hatchling's backend, the hook's methods timed
BUILD_CHILD = """\
import json, sys, time
from hatch_ffm.plugin import FfmBuildHook

spent = [0.0]

def timed(method):
    def wrapper(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start
    return wrapper

FfmBuildHook.initialize = timed(FfmBuildHook.initialize)
FfmBuildHook.finalize = timed(FfmBuildHook.finalize)
from hatchling.build import build_wheel
name = build_wheel(sys.argv[1])
print("bench-build:" + json.dumps({"hook": spent[0], "wheel": name}))
"""


def shapes(count: int) -> list[str]:
    """``count`` distinct shape codes, FIRST first; those of ``count + 1`` extend them."""
    rng = random.Random(SEED)
    found = [FIRST]
    seen = set(found)
    codes = SCALARS * 3 + STRUCTS  # scalars three times as likely as structs
    while len(found) < count:
        result = rng.choice("v" + codes)
        arguments = "".join(rng.choice(codes) for _ in range(rng.randrange(9)))
        code = f"{result}:{arguments}" + ("!" if rng.random() < 0.25 else "")
        if code not in seen:
            seen.add(code)
            found.append(code)
    return found


def write_package(root: Path, count: int) -> None:
    package = root / PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(PYPROJECT.format(package=PACKAGE))
    (package / "__init__.py").write_text("")
    (package / "shapes.py").write_text(SHAPES_MODULE)
    (package / "first.py").write_text(FIRST_MODULE)
    lines = "".join(f"    {code!r},\n" for code in shapes(count))
    (package / "ffm_features.py").write_text(FEATURE_MODULE.format(shapes=f"(\n{lines})"))


#: what a child prints of its peak resident memory (``VmHWM`` of ``/proc/self/status``)
PEAK = "; print(open('/proc/self/status').read())"


def child_env(**extra: str) -> dict[str, str]:
    """This environment for a child, with ``PYTHONPATH`` and ``FFM_BUILD_CACHE`` replaced by
    ``extra`` and bytecode written and read as in an installed package (no
    ``PYTHONDONTWRITEBYTECODE``)."""
    drop = {"PYTHONPATH", "PYTHONDONTWRITEBYTECODE", CACHE_ENV}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    """Run a child to its end: (wall time in s, its stdout)."""
    elapsed, _, out = run_timed(argv, env, cwd)
    return elapsed, out


def children_cpu() -> float:
    """User and system time of this process's waited-for children (and theirs), in s."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Run a child to its end: (wall time in s, CPU time in s of it and the processes it
    waited for, its stdout)."""
    cpu = children_cpu()
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    cpu = children_cpu() - cpu
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return elapsed, cpu, result.stdout


def peak_mib(output: str) -> float:
    """The child's peak resident memory, from the ``VmHWM`` line it printed.  (Not the
    ``ru_maxrss`` of ``wait4``: Linux carries the parent's peak over ``fork`` and ``exec``
    into it, this process's tens of MiB.)"""
    found = re.search(r"VmHWM:\s+(\d+) kB", output)
    if found is None:
        raise RuntimeError(f"no VmHWM line in the child's output (Linux only):\n{output}")
    return int(found[1]) / 1024


class Builder:
    """Builds the generated package of N shapes in child processes."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.project = work / "project"
        self.dist = work / "dist"
        self.dist.mkdir(parents=True, exist_ok=True)
        self.caches = 0

    def fresh_cache(self) -> Path:
        self.caches += 1
        cache = self.work / f"cache-{self.caches}"
        cache.mkdir()
        return cache

    def build(self, count: int, cache: Path | None, hooks: bool = True) -> tuple[float, float, Path, float]:
        """(hook time, whole build process time, wheel, CPU time of the build process and the
        processes it started) of the package of ``count`` shapes."""
        write_package(self.project, count)
        shutil.rmtree(self.dist)
        self.dist.mkdir()
        env = child_env(**{CACHE_ENV: str(cache) if cache is not None else "off"})
        if not hooks:
            env["HATCH_BUILD_NO_HOOKS"] = "true"
        wall, cpu, out = run_timed([sys.executable, "-c", BUILD_CHILD, str(self.dist)], env, self.project)
        (line,) = [text for text in out.splitlines() if text.startswith("bench-build:")]
        found = json.loads(line.removeprefix("bench-build:"))
        return found["hook"], wall, self.dist / found["wheel"], cpu


def median(values: list[float]) -> float:
    return statistics.median(values)


#: one goal row: (row, measured, goal, unit), met when measured <= goal
Goal = tuple[str, float, float, str]


def measure_builds(work: Path, sizes: list[int], repeat: int, goals: list[Goal]) -> dict[int, Path]:
    """Print the build table; return the cold builds' wheels."""
    builder = Builder(work)
    builder.build(1, None)  # untimed: bytecode written, files in the page cache
    wheels: dict[int, Path] = {}
    print("| build | hook, s | build process, s | build - bare, s | CPU, s |")
    print("|---|---:|---:|---:|---:|")
    for size in sizes:
        bare = median([builder.build(size, None, hooks=False)[1] for _ in range(repeat)])
        kinds: dict[str, list[tuple[float, float, float]]] = {"cold": [], "unchanged": [], "one more": []}
        for _ in range(repeat):
            cache = builder.fresh_cache()
            hook, wall, wheel, cpu = builder.build(size, cache)
            kinds["cold"].append((hook, wall, cpu))
            wheels[size] = work / f"{PACKAGE}-{size}.whl"
            shutil.copy(wheel, wheels[size])
            built = builder.build(size, cache)
            kinds["unchanged"].append((built[0], built[1], built[3]))
            built = builder.build(size + 1, cache)
            kinds["one more"].append((built[0], built[1], built[3]))
        labels = {
            "cold": f"{size:,} shapes, cold (empty cache)",
            "unchanged": f"{size:,} shapes, rebuilt unchanged",
            "one more": f"{size:,} shapes, rebuilt with one more",
        }
        for kind, timings in kinds.items():
            hook = median([t[0] for t in timings])
            wall = median([t[1] for t in timings])
            cpu = median([t[2] for t in timings])
            print(f"| {labels[kind]} | {hook:.3f} | {wall:.3f} | {wall - bare:.3f} | {cpu:.3f} |", flush=True)
            if size == 1000 and kind == "cold":
                goals.append((f"{labels[kind]}: hook", hook, 2.0, "s"))
            if size == 1000 and kind == "one more":  # (that goal is for 1,000 shapes)
                goals.append((f"{labels[kind]}: hook", hook, 0.5, "s"))
        print(f"| {size:,} shapes, bare hatchling (no hooks) | | {bare:.3f} | | |", flush=True)
    return wheels


def measure_startup(python: str, empty: Path, runs: int, goals: list[Goal]) -> None:
    """Print the start-up table: bare interpreter, ctypes, ffm_runtime."""
    env = child_env()
    print("| start-up | wall, ms | over bare, ms | peak memory, MiB | over bare, MiB |")
    print("|---|---:|---:|---:|---:|")
    rows = {
        "python -c pass": "pass",
        'python -c "import ctypes"': "import ctypes",
        'python -c "import ffm_runtime"': "import ffm_runtime",
    }
    for code in rows.values():
        run([python, "-c", code], env, empty)  # untimed: bytecode written
    # the rows take turns, run after run, so that a slower spell of the machine falls on all
    # of them alike; "over bare" is the median of each run's difference
    walls: dict[str, list[float]] = {label: [] for label in rows}
    peaks: dict[str, list[float]] = {label: [] for label in rows}
    for _ in range(runs):
        for label, code in rows.items():
            walls[label].append(run([python, "-c", code], env, empty)[0] * 1e3)
            peaks[label].append(peak_mib(run([python, "-c", code + PEAK], env, empty)[1]))
    bare = "python -c pass"
    over: dict[str, tuple[float, float]] = {}
    for label in rows:
        over[label] = (
            median([a - b for a, b in zip(walls[label], walls[bare], strict=True)]),
            median([a - b for a, b in zip(peaks[label], peaks[bare], strict=True)]),
        )
        ms, mib = median(walls[label]), median(peaks[label])
        print(f"| {label} | {ms:.2f} | {over[label][0]:.2f} | {mib:.2f} | {over[label][1]:.2f} |")
    ms, mib = over['python -c "import ffm_runtime"']
    goals.append(("import ffm_runtime: wall time over python -c pass", ms, 5.0, "ms"))
    goals.append(("import ffm_runtime: peak memory over python -c pass", mib, 2.0, "MiB"))


def measure_first_handles(
    python: str, work: Path, wheels: dict[int, Path], runs: int, goals: list[Goal]
) -> None:
    """Print the first-handle table: one fresh process per run, each built package installed
    (unpacked under ``work``), run from ``work/empty``."""
    empty = work / "empty"
    print("| first downcall handle, fresh process | first handle, ms | process wall, ms | peak memory, MiB |")
    print("|---|---:|---:|---:|")
    for size, wheel in wheels.items():
        site = work / f"site-{size}"
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
        argv = [python, "-c", f"import {PACKAGE}.first as f; f.main()"]
        env = child_env(PYTHONPATH=str(site))
        run(argv, env, empty)  # untimed: bytecode written
        outputs = [run(argv, env, empty)[::-1] for _ in range(runs)]
        first = median([int(out.split()[0]) / 1e6 for out, _ in outputs])
        wall = median([wall * 1e3 for _, wall in outputs])
        mib = median([peak_mib(out) for out, _ in outputs])
        label = f"package of {size:,} shapes"
        print(f"| {label} | {first:.3f} | {wall:.2f} | {mib:.2f} |", flush=True)
        if size in (100, 10000):
            goals.append((f"first handle, {label}", first, 5.0 if size >= 10_000 else 1.0, "ms"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="100,1000",
        help="numbers of call shapes, comma-separated (10000 takes minutes per build)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="builds of each kind per size; the median")
    parser.add_argument(
        "--runs", type=int, default=20, help="processes per start-up row (import, first handle); the median"
    )
    parser.add_argument("--quick", action="store_true", help="--sizes 100 --repeat 1 --runs 5")
    parser.add_argument(
        "--runtime-python",
        default=sys.executable,
        help="the interpreter of the start-up rows (an environment with hatch-ffm installed)",
    )
    args = parser.parse_args()
    # absolute, not resolved (a venv's python is a link that must stay the venv's): the
    # children run from other folders
    args.runtime_python = os.path.abspath(args.runtime_python)
    if args.quick:
        args.sizes, args.repeat, args.runs = "100", 1, 5
    try:
        sizes = sorted({int(size) for size in args.sizes.split(",")})
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}: expected whole numbers separated by commas, e.g. 100,1000")
    if not sizes or min(sizes) < 1 or args.repeat < 1 or args.runs < 1:
        parser.error("--sizes, --repeat and --runs must be at least 1")

    import ffm_runtime as ffm

    print(
        f"# {platform.python_implementation()} {platform.python_version()} on "
        f"{platform.machine()}, hatch-ffm {ffm.__version__}, sizes={','.join(map(str, sizes))}, "
        f"repeat={args.repeat}, runs={args.runs}, {CACHE_ENV} per cold build: a fresh folder, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start"
    )
    work = Path(tempfile.mkdtemp(prefix="bench-build-"))
    goals: list[Goal] = []
    try:
        wheels = measure_builds(work, sizes, args.repeat, goals)
        empty = work / "empty"  # the start-up children's folder: nothing to import there
        empty.mkdir()
        print()
        measure_startup(args.runtime_python, empty, args.runs, goals)
        print()
        measure_first_handles(args.runtime_python, work, wheels, args.runs, goals)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print("| goal | measured | goal | met |")
    print("|---|---:|---:|---|")
    met_all = True
    for row, measured, goal, unit in goals:
        met = measured <= goal
        met_all = met_all and met
        print(f"| {row} | {measured:.3f} {unit} | <= {goal} {unit} | {'yes' if met else 'no'} |")
    print(f"# every goal met: {'yes' if met_all else 'no'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
