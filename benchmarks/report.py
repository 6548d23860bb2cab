"""Run every benchmark once and write the tables where they are read.

    python benchmarks/report.py --python .demo-venv/bin/python [--other-pythons] [--check]

Runs ``bench_calls.py``, ``bench_abi.py``, ``bench_memory.py``, ``bench_bulk.py``,
``bench_pointers.py``, ``bench_upcalls.py``, ``bench_bz2.py``, ``bench_yaml.py`` and
``bench_expat.py`` with ``--python`` (an
environment with hatch-ffm, example_project, the example bindings, cffi and PyYAML
installed, as ``make demo`` makes), and ``bench_build.py`` with this interpreter (its builds
need hatchling, pluggy and llvmlite: the development environment; its start-up rows run
``--python``; ``--build-args`` adds its options, ``--sizes 100,1000,10000`` say), writes
all their tables, with the machine and the command, to ``docs/benchmarks.md``, and
regenerates the README's headline block (between ``<!-- benchmarks:begin -->`` and
``<!-- benchmarks:end -->``) from the same run.  ``--other-pythons`` also runs
``bench_calls.py`` and ``bench_abi.py`` on every other supported CPython found
(tests/pythons/versions.txt), in a venv per version under ``benchmarks/_build`` with the
wheels of ``dist/``.  No table is pasted by hand: ``make bench`` runs this.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "benchmarks.md"
README = ROOT / "README.md"
BEGIN, END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"
SCRIPTS = (
    "bench_calls.py",
    "bench_memory.py",
    "bench_abi.py",
    "bench_bulk.py",
    "bench_pointers.py",
    "bench_upcalls.py",
)
#: the example bindings against the C extensions they replace (example_bz2, example_yaml,
#: example_expat and PyYAML installed, as make demo does); their own repeats, no --number
EXAMPLE_SCRIPTS = ("bench_bz2.py", "bench_yaml.py", "bench_expat.py")
#: what each example benchmark imports (it is run only where all are installed; the binding
#: modules themselves, not their packages: the checkout's project folders, example_bz2/ and
#: so on, would import as namespace packages)
EXAMPLE_IMPORTS = {
    "bench_bz2.py": "example_bz2.libbz2",
    "bench_yaml.py": "example_yaml.libyaml, yaml",
    "bench_expat.py": "example_expat.expat",
}
#: the build and start-up benchmark: run by this interpreter (the build hook's dependencies),
#: its start-up rows by ``--python``
BUILD_SCRIPT = "bench_build.py"
#: those also run on every other supported CPython (``--other-pythons``)
CALL_SCRIPTS = ("bench_calls.py", "bench_abi.py")
#: rows of the README's headline table: (script, row label, peer row label)
HEADLINE = (
    ("bench_calls.py", "hatch-ffm add, critical (GIL kept)", "ctypes add"),
    ("bench_calls.py", "hatch-ffm add, default (GIL released)", "ctypes add"),
    (
        "bench_calls.py",
        "hatch-ffm strlen, critical, confined-arena segment",
        "ctypes strlen (bytes as c_char_p)",
    ),
    (
        "bench_memory.py",
        "read an int: hatch-ffm segment.get(JAVA_INT, 8), confined arena",
        "read an int: ctypes c_int.from_address(a).value",
    ),
    (
        "bench_memory.py",
        "allocate 64 bytes: hatch-ffm arena.allocate(64), open confined arena",
        "allocate 64 bytes: ctypes.create_string_buffer(64)",
    ),
    ("bench_abi.py", "div: hatch-ffm critical, result in the arena", "div: ctypes (Structure restype)"),
    (
        "bench_abi.py",
        "strtol + errno: hatch-ffm critical capture_call_state",
        "strtol + errno: ctypes use_errno + get_errno",
    ),
    (
        "bench_upcalls.py",
        "qsort, compare ints: hatch-ffm, ADDRESS.with_target_layout(JAVA_INT), a.get(JAVA_INT, 0)",
        "qsort, compare ints: ctypes, CFUNCTYPE(c_int, POINTER(c_int), POINTER(c_int)), a[0]",
    ),
)


def run(python: str, script: str, *extra: str) -> str:
    """``script``'s output, run by ``python`` with ``extra`` arguments."""
    result = subprocess.run(
        [python, str(HERE / script), *extra],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "FFM_ENABLE_NATIVE_ACCESS": "__main__"},
    )
    return result.stdout


def rows(table: str) -> dict[str, float]:
    """Row label -> ns, from a script's markdown table."""
    found = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"[0-9.]+", cells[1]):
            found[cells[0]] = float(cells[1])
    return found


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores{', ' + model if model else ''}"


def other_pythons(number: str) -> list[tuple[str, dict[str, str]]]:
    """(version, script -> output) on every other supported CPython found."""
    sys.path.insert(0, str(ROOT / "tests"))
    from support import SUPPORTED_PYTHONS, python_path

    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    wheels = sorted((ROOT / "dist").glob("*.whl"))
    results = []
    for version in SUPPORTED_PYTHONS:
        interpreter = python_path(version)
        if interpreter is None or version == running or not wheels:
            continue
        venv = HERE / "_build" / f"venv-{version}"
        subprocess.run([str(interpreter), "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run(
            [*pip, "--no-index", "--find-links", str(ROOT / "dist"), "example-project"], check=True
        )
        subprocess.run([*pip, "cffi"], check=True)
        python = str(venv / "bin" / "python")
        results.append(
            (
                version,
                {script: run(python, script, "--number", number, "--repeat", "5") for script in CALL_SCRIPTS},
            )
        )
    return results


def headline(outputs: dict[str, str]) -> str:
    lines = ["| call | hatch-ffm, ns | peer, ns | peer / hatch-ffm |", "|---|---:|---:|---:|"]
    for script, label, peer in HEADLINE:
        table = rows(outputs[script])
        if label in table and peer in table:
            lines.append(
                f"| {label} | {table[label]:.1f} | {table[peer]:.1f} ({peer}) | "
                f"{table[peer] / table[label]:.1f}x |"
            )
    return "\n".join(lines)


#: the README's block of goals (issue 12's ratios, issue 13's for upcalls, issue 14's build and
#: start-up times), also written from the same run
GOALS_BEGIN, GOALS_END = "<!-- goals:begin -->", "<!-- goals:end -->"
#: scripts whose rows carry a goal column (a ratio at most, ``<= 1.3x``, or at least, ``>= 2.0x``,
#: or a time or size at most, ``<= 2.0 s``, ``<= 5.0 ms``, ``<= 2.0 MiB``, after the measured
#: column), and the example benchmarks (goal: >= 1.0x the reference, their last column being
#: reference time / hatch-ffm time)
GOAL_SCRIPTS = ("bench_pointers.py", "bench_bulk.py", "bench_upcalls.py", BUILD_SCRIPT)
_GOAL = re.compile(r"((?:<=|>=) [0-9.]+(?:x| s| ms| MiB))(?:: (met|not met))?")


def goals(outputs: dict[str, str]) -> str:
    """One table of every row with a goal: its ratio, the goal and whether it is met."""
    lines = ["| benchmark | row | measured | goal | met |", "|---|---|---:|---:|---|"]
    for script in GOAL_SCRIPTS:
        for line in outputs.get(script, "").splitlines():
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if len(cells) < 4 or not line.startswith("|"):
                continue
            for index, cell in enumerate(cells):
                found = _GOAL.fullmatch(cell)
                if found is None:
                    continue
                measured = cells[index - 1]
                verdict = found.group(2) or ("met" if cells[index + 1] == "yes" else "not met")
                lines.append(f"| {script} | {cells[0]} | {measured} | {found.group(1)} | {verdict} |")
    for script in EXAMPLE_SCRIPTS:
        for line in outputs.get(script, "").splitlines():
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not line.startswith("|") or not cells[-1].endswith("x") or cells[0] in {"workload", "---"}:
                continue
            try:
                speed = float(cells[-1][:-1])  # the reference's time / hatch-ffm's: throughput
            except ValueError:
                continue
            met = "met" if speed >= 1.0 else "not met"
            lines.append(f"| {script} | {cells[0]} | {speed:.2f}x the reference's speed | >= 1.0x | {met} |")
    return "\n".join(lines)


def _replace_block(text: str, begin: str, end: str, body: str) -> str:
    if begin not in text or end not in text:
        return text
    return text[: text.index(begin)] + f"{begin}\n{body}\n{end}" + text[text.index(end) + len(end) :]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter of an environment with example_project and cffi",
    )
    parser.add_argument(
        "--other-pythons", action="store_true", help="also run on every other supported CPython found"
    )
    parser.add_argument("--number", default=None, help="passed to every script but bench_build.py")
    parser.add_argument(
        "--build-args",
        default="",
        help='options of bench_build.py, e.g. "--sizes 100,1000,10000" (default: its defaults)',
    )
    parser.add_argument("--doc", type=Path, default=DOC, help="where the tables go")
    parser.add_argument(
        "--readme", type=Path, default=README, help="the README whose headline block is regenerated"
    )
    args = parser.parse_args()
    # (absolute, not resolved: a venv's python is a link that must stay the venv's; the
    # scripts run from other folders)
    args.python = os.path.abspath(args.python)
    extra = ("--number", args.number) if args.number else ()
    outputs = {script: run(args.python, script, *extra) for script in SCRIPTS}
    outputs[BUILD_SCRIPT] = run(
        sys.executable, BUILD_SCRIPT, "--runtime-python", args.python, *shlex.split(args.build_args)
    )
    for script in EXAMPLE_SCRIPTS:
        probe = [args.python, "-c", f"import {EXAMPLE_IMPORTS[script]}"]
        if subprocess.run(probe, capture_output=True, check=False, cwd=HERE).returncode == 0:
            outputs[script] = run(args.python, script)
        else:
            outputs[script] = f"(not run: {EXAMPLE_IMPORTS[script]} missing; `make demo` installs them)\n"
    version = subprocess.run(
        [args.python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    stamp = datetime.date.today().isoformat()
    where = f"CPython {version}, {machine()}, {stamp}"
    command = "make bench" if args.other_pythons else "benchmarks/report.py"
    parts = [
        "# Benchmarks\n",
        f"Generated by `benchmarks/report.py` ({command}): {where}. Every number is the minimum "
        "over repeats of many calls, in ns per call (`bench_build.py`'s: medians of whole processes, "
        "in s, ms and MiB); ratios compare rows of the same run only.\n",
    ]
    for script in (*SCRIPTS, BUILD_SCRIPT, *EXAMPLE_SCRIPTS):
        summary = (ast.get_docstring(ast.parse((HERE / script).read_text())) or "").split("\n\n")
        parts.append(f"## `benchmarks/{script}`\n\n{summary[0]}\n")
        parts.append(outputs[script].strip() + "\n")
    if args.other_pythons:
        parts.append("## Other interpreters (the same wheels; `--number 100000 --repeat 5`)\n")
        for other, tables in other_pythons(args.number or "100000"):
            for script, table in tables.items():
                parts.append(f"### CPython {other}: `{script}`\n")
                parts.append(table.strip() + "\n")
    args.doc.parent.mkdir(exist_ok=True)
    args.doc.write_text("\n".join(parts))
    text = args.readme.read_text()
    text = _replace_block(
        text,
        BEGIN,
        END,
        f"{where}; all rows from one run of `{command}` (full tables: "
        f"[docs/benchmarks.md](docs/benchmarks.md)):\n\n{headline(outputs)}",
    )
    text = _replace_block(
        text, GOALS_BEGIN, GOALS_END, f"{where}; the same run of `{command}`:\n\n{goals(outputs)}"
    )
    args.readme.write_text(text)
    print(f"wrote {args.doc} and the headline table of {args.readme} ({where})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
