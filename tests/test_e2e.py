"""End to end: the real hook builds real wheels; fresh interpreters without llvmlite run them."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support import ROOT, SUPPORTED_PYTHONS, build_wheel, require_python

#: this machine's target and the wheel tag a build for it gets (written out, not computed by
#: the code under test)
HOST = {
    "x86_64": "x86_64-linux",
    "amd64": "x86_64-linux",
    "aarch64": "aarch64-linux",
    "arm64": "aarch64-linux",
}[platform.machine().lower()]
TAG = {
    "x86_64-linux": "cp310-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64",
    "aarch64-linux": "cp310-abi3-manylinux_2_17_aarch64.manylinux2014_aarch64",
}[HOST]


# Not testpkg_wheel: hatch-ffm's own wheel and the example project's, run on fresh interpreters.
@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """hatch-ffm's own wheel and example_project's, built by the hook; plus the build log."""
    out = tmp_path_factory.mktemp("dist")
    build_wheel(ROOT, out)
    project = tmp_path_factory.mktemp("src") / "example_project"
    shutil.copytree(ROOT / "example_project", project)
    result = build_wheel(project, out)
    (runtime,) = out.glob("hatch_ffm-*.whl")
    (example,) = out.glob("example_project-*.whl")
    return {"dir": out, "runtime": runtime, "example": example, "log": result.stdout + result.stderr}


def make_venv(python: str, where: Path) -> Path:
    subprocess.run([python, "-m", "venv", str(where)], check=True)
    return where / "bin" / "python"


def pip_install(venv_python: Path, *args: str) -> None:
    subprocess.run(
        [str(venv_python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
        check=True,
    )


class TestWheel:
    def test_tag_and_contents(self, wheels: dict[str, Path | str]) -> None:
        example = Path(wheels["example"])
        assert example.name == f"example_project-0.1.0-{TAG}.whl"
        with zipfile.ZipFile(example) as archive:
            names = set(archive.namelist())
            assert {"example_project/_ffm/manifest.json", f"example_project/_ffm/stubs-{HOST}.img"} <= names
            wheel_meta = archive.read("example_project-0.1.0.dist-info/WHEEL").decode()
            manifest = json.loads(archive.read("example_project/_ffm/manifest.json"))
            stub = archive.read(f"example_project/_ffm/stubs-{HOST}.img")
        assert "Root-Is-Purelib: false" in wheel_meta
        assert f"Tag: {TAG.split('.')[0]}" in wheel_meta
        assert manifest["format"] == 3 and manifest["package"] == "example_project"
        assert manifest["generator"].startswith("hatch-ffm ")
        (obj,) = manifest["objects"]
        assert obj["sha256"] == hashlib.sha256(stub).hexdigest()
        assert obj["triple"] == f"{HOST.split('-')[0]}-unknown-linux-gnu"
        assert "(a8)j8" in manifest["stubs"] and "(d8)d8 critical" in manifest["stubs"]

    def test_build_reports_what_it_did(self, wheels: dict[str, Path | str]) -> None:
        log = str(wheels["log"])
        assert "hatch-ffm: Features run: example_project.ffm_features:LibcFeature" in log
        # 18 downcall shapes and qsort's 2 comparator shapes (benchmarks/bench_upcalls.py)
        assert re.search(
            r"hatch-ffm: 20 registration\(s\), 18 distinct call shape\(s\), "
            r"2 upcall shape\(s\) of 256 trampolines each",
            log,
        )
        assert re.search(
            rf"hatch-ffm: 18 stub\(s\) for {HOST} into example_project/_ffm/ "
            r"in [0-9.]+s",
            log,
        )

    def test_runtime_wheel_is_typed(self, wheels: dict[str, Path | str]) -> None:
        """Both packages carry py.typed: type checkers read their annotations (PEP 561)."""
        with zipfile.ZipFile(Path(wheels["runtime"])) as archive:
            assert {"ffm_runtime/py.typed", "hatch_ffm/py.typed"} <= set(archive.namelist())

    def test_runtime_wheel_has_no_dependencies(self, wheels: dict[str, Path | str]) -> None:
        with zipfile.ZipFile(Path(wheels["runtime"])) as archive:
            metadata = next(archive.read(n).decode() for n in archive.namelist() if n.endswith("METADATA"))
        required = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
        assert required and all("extra ==" in line for line in required), required


SCRIPTS = Path(__file__).parent / "scripts"


@pytest.mark.parametrize("version", SUPPORTED_PYTHONS)
def test_runs_on_fresh_interpreters_without_llvmlite(
    wheels: dict[str, Path | str], tmp_path: Path, version: str
) -> None:
    """The one abi3 wheel works on every supported CPython, with no build tools installed."""
    python = make_venv(str(require_python(version)), tmp_path / "venv")
    reported = subprocess.run(
        [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert reported.stdout.strip() == version
    pip_install(python, "--no-index", "--find-links", str(wheels["dir"]), "example-project")
    for module in ("llvmlite", "hatchling", "pluggy"):
        probe = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, check=False)
        assert probe.returncode != 0, f"{module} must not be installed at run time"
    result = subprocess.run(
        [str(python), "-m", "example_project"], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines()[1:] if line.strip()]
    assert len(rows) == 9 and all(line.endswith("yes") for line in rows), result.stdout
    checks = subprocess.run(
        [str(python), str(SCRIPTS / "installed_checks.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert checks.returncode == 0 and "checks passed" in checks.stdout, checks.stderr
    pointers = subprocess.run(
        [str(python), str(SCRIPTS / "pointer_checks.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        env={**os.environ, "FFM_ENABLE_NATIVE_ACCESS": "__main__"},
    )
    assert pointers.returncode == 0 and "pointer checks passed" in pointers.stdout, pointers.stderr


def test_supported_pythons_start_at_requires_python_without_gaps() -> None:
    """tests/pythons/versions.txt lists every CPython from the floor of requires-python on."""
    floor = re.search(r'requires-python = ">=3\.(\d+)"', (ROOT / "pyproject.toml").read_text())
    assert floor
    minors = [int(version.split(".")[1]) for version in SUPPORTED_PYTHONS]
    assert minors == list(range(int(floor[1]), int(floor[1]) + len(minors))), SUPPORTED_PYTHONS
    assert {"3.14", "3.15"} <= set(SUPPORTED_PYTHONS)


@pytest.mark.parametrize(("required", "outcome"), [("", pytest.skip.Exception), ("1", pytest.fail.Exception)])
def test_missing_interpreter_skips_unless_required(
    monkeypatch: pytest.MonkeyPatch, required: str, outcome: type[BaseException]
) -> None:
    """A supported CPython that is not there skips its tests; with FFM_REQUIRE_PYTHONS (as CI
    sets it) they fail."""
    monkeypatch.setitem(SUPPORTED_PYTHONS, "3.99", "debian")
    monkeypatch.setitem(SUPPORTED_PYTHONS, "3.98", "pyenv")
    monkeypatch.setenv("FFM_REQUIRE_PYTHONS", required)
    with pytest.raises(
        outcome,
        match=r"CPython 3\.99 is missing: run 'make pythons-env' "
        r"\(tests/pythons/setup\.sh \.pythons\)",
    ):
        require_python("3.99")
    with pytest.raises(outcome, match=r"CPython 3\.98 is missing: install it through pyenv \(under "):
        require_python("3.98")


def test_editable_install(wheels: dict[str, Path | str], tmp_path: Path) -> None:
    project = tmp_path / "example_project"
    shutil.copytree(ROOT / "example_project", project)
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel:editable", "-d", str(out)],
        cwd=project,
        check=True,
        capture_output=True,
    )
    (editable,) = out.glob("*.whl")
    python = make_venv(sys.executable, tmp_path / "venv")
    pip_install(python, "--no-index", "--find-links", str(wheels["dir"]), str(editable))
    result = subprocess.run(
        [
            str(python),
            "-c",
            "import example_project.native as n, example_project as p; print(n.abs_(-5), p.__file__)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    value, location = result.stdout.split()
    assert value == "5" and location == str(project / "example_project" / "__init__.py")


def modified_project(tmp_path: Path, old: str, new: str) -> Path:
    project = tmp_path / "example_project"
    shutil.copytree(ROOT / "example_project", project)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert old in text
    pyproject.write_text(text.replace(old, new))
    return project


def test_refuses_project_without_runtime_dependency(tmp_path: Path) -> None:
    project = modified_project(tmp_path, 'dependencies = ["hatch-ffm"]', "dependencies = []")
    result = build_wheel(project, tmp_path / "out", check=False)
    assert result.returncode != 0
    assert (
        "Project `example-project` must list `hatch-ffm` in `project.dependencies`"
        in result.stdout + result.stderr
    )


def test_config_error_names_the_toml_path(tmp_path: Path) -> None:
    project = modified_project(
        tmp_path,
        'features = ["example_project.ffm_features:LibcFeature"]',
        'features = "example_project.ffm_features:LibcFeature"',
    )
    result = build_wheel(project, tmp_path / "out", check=False)
    assert result.returncode != 0
    assert (
        "Option `features` in `tool.hatch.build.targets.wheel.hooks.ffm` must be an array"
        in result.stdout + result.stderr
    )


def test_invalid_registration_stops_the_build(tmp_path: Path) -> None:
    project = modified_project(
        tmp_path,
        "[tool.hatch.build.targets.wheel.hooks.ffm]",
        '[tool.hatch.build.targets.wheel.hooks.ffm]\ntargets = ["native"]',
    )
    features = project / "example_project" / "ffm_features.py"
    features.write_text(
        features.read_text().replace(
            "        register(FunctionDescriptor.of(JAVA_INT))  ",
            "        register(FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_DOUBLE.with_name('x')),\n"
            "                 Linker.Option.first_variadic_arg(1))\n"
            "        from ffm_runtime import JAVA_FLOAT\n"
            "        register(FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_FLOAT),\n"
            "                 Linker.Option.first_variadic_arg(1))\n"
            "        register(FunctionDescriptor.of(JAVA_INT))  ",
        )
    )
    result = build_wheel(project, tmp_path / "out", check=False)
    assert result.returncode != 0
    assert re.search(
        r"Feature 'example_project\.ffm_features:LibcFeature' failed in during_setup: "
        r"ValueError: Invalid variadic argument layout: f4 in \(a8f4\)i4",
        result.stdout + result.stderr,
    )


def test_packages_import_without_build_tools() -> None:
    script = """
import sys
for name in ("llvmlite", "pluggy"):
    sys.modules[name] = None  # importing them now fails
import ffm_runtime, hatch_ffm, hatch_ffm.plugin
"""
    subprocess.run([sys.executable, "-c", script], check=True)
    runtime_only = """
import sys
before = set(sys.modules)
import ffm_runtime
outside = sorted(name for name in set(sys.modules) - before if name.partition(".")[0] not in
                 sys.stdlib_module_names and not name.startswith("ffm_runtime"))
print(outside)
raise SystemExit(1 if outside else 0)
"""
    result = subprocess.run([sys.executable, "-c", runtime_only], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"ffm_runtime imported non-stdlib modules: {result.stdout}"


def test_benchmark_scripts_run(wheels: dict[str, Path | str], tmp_path: Path) -> None:
    """The benchmark scripts of ``make demo`` run against the installed example (a few
    calls each; cffi absent, so its rows are left out) and print every row; so does the
    build and start-up benchmark (packages of a few shapes), and the instruction-count
    benchmark, where valgrind is installed."""
    python = make_venv(sys.executable, tmp_path / "venv")
    pip_install(python, "--no-index", "--find-links", str(wheels["dir"]), "example-project")
    expected = {
        "bench_calls.py": 8,
        "bench_abi.py": 14,
        "bench_memory.py": 11,
        "bench_bulk.py": 14,
        "bench_pointers.py": 14,
        "bench_upcalls.py": 7,  # 5 rows (--number: ints sorted), 2 goals
    }
    for script, count in expected.items():
        result = subprocess.run(
            [str(python), str(ROOT / "benchmarks" / script), "--number", "50", "--repeat", "1"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
            env={**os.environ, "FFM_ENABLE_NATIVE_ACCESS": "__main__"},
        )
        assert result.returncode == 0, result.stdout + result.stderr
        rows = [
            line
            for line in result.stdout.splitlines()
            if line.startswith("| ") and not line.startswith(("| call", "| operation", "| upcall", "| goal"))
        ]
        assert len(rows) == count, result.stdout
        assert all(float(row.split(" | ")[1]) > 0 for row in rows), result.stdout
    # the build and start-up benchmark: builds in this environment (the hook's dependencies),
    # start-up rows in the installed one
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_build.py"),
            "--sizes",
            "5",
            "--repeat",
            "1",
            "--runs",
            "2",
            "--runtime-python",
            os.path.relpath(python, tmp_path),  # as make demo passes it: relative
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    build_rows = {line.split(" | ")[0].removeprefix("| "): line for line in result.stdout.splitlines()}
    for label in (
        "5 shapes, cold (empty cache)",
        "5 shapes, rebuilt unchanged",
        "5 shapes, rebuilt with one more",
        'python -c "import ffm_runtime"',
        "package of 5 shapes",
    ):
        assert float(build_rows[label].split(" | ")[1]) > 0, result.stdout
    assert "| 5 shapes, bare hatchling (no hooks) | | " in result.stdout, result.stdout
    assert re.search(
        r"\| import ffm_runtime: wall time over python -c pass \| -?[0-9.]+ ms \| <= 5\.0 ms \| (yes|no) \|",
        result.stdout,
    ), result.stdout
    # the report: one run of them all, into the tables document and the README's block
    readme = tmp_path / "README.md"
    readme.write_text(
        "before\n<!-- benchmarks:begin -->\nold\n<!-- benchmarks:end -->\nafter\n"
        "<!-- goals:begin -->\nold goals\n<!-- goals:end -->\nend\n"
    )
    doc = tmp_path / "benchmarks.md"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "report.py"),
            "--python",
            os.path.relpath(python, tmp_path),  # as make bench passes it: relative
            "--number",
            "50",
            "--doc",
            str(doc),
            "--readme",
            str(readme),
            "--build-args",
            "--sizes 2 --repeat 1 --runs 1",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = doc.read_text()
    assert all(f"## `benchmarks/{script}`" in text for script in [*expected, "bench_build.py"]), text
    assert "| 2 shapes, rebuilt with one more |" in text, text
    block = readme.read_text()
    assert block.startswith("before\n<!-- benchmarks:begin -->\nCPython ") and "old" not in block
    assert "| hatch-ffm add, critical (GIL kept) |" in block and block.endswith("end\n")
    # every goal row of the pointer, bulk and upcall benchmarks, with its verdict
    goal_rows = [
        line
        for line in block.splitlines()
        if line.startswith(("| bench_pointers.py", "| bench_bulk.py", "| bench_upcalls.py"))
    ]
    assert len(goal_rows) >= 17 and "old goals" not in block, block
    upcall_goals = [line for line in goal_rows if line.startswith("| bench_upcalls.py")]
    assert len(upcall_goals) == 2 and all("| >= " in line for line in upcall_goals), block
    build_goals = [line for line in block.splitlines() if line.startswith("| bench_build.py")]
    assert [line.split(" | ")[1] for line in build_goals] == [
        "import ffm_runtime: wall time over python -c pass",
        "import ffm_runtime: peak memory over python -c pass",
    ], block
    assert re.search(r" \| -?[0-9.]+ MiB \| <= 2\.0 MiB \| (met|not met) \|$", build_goals[1]), block
    goal_rows += build_goals
    assert all(line.endswith(("| met |", "| not met |")) for line in goal_rows), block

    if shutil.which("valgrind"):  # the instruction counts (two rows, few calls: it is slow)
        result = subprocess.run(
            [
                str(python),
                str(ROOT / "benchmarks" / "bench_instructions.py"),
                "--number",
                "10",
                "--rows",
                "get-confined,div-prefix",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
            env={**os.environ, "FFM_ENABLE_NATIVE_ACCESS": "__main__"},
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "accelerated=True" in result.stdout, result.stdout
        rows = [line for line in result.stdout.splitlines() if line.startswith("| ")][1:]
        assert len(rows) == 2, result.stdout
        assert all(float(row.split(" | ")[1].rstrip(" |")) > 0 for row in rows), result.stdout
