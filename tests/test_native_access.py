"""The native-access policy, with real distributions built by the hook: one whose wheel
enables its package (the default), one whose wheel does not; scripts and modules run with
`python -m`; calls with no Python caller; the environment variables; the three policy modes;
manifests that try to enable what is not theirs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import build_wheel, unpack_wheel

FEATURE = """
from ffm_runtime import JAVA_INT, FunctionDescriptor
from hatch_ffm import RuntimeForeignAccess

class Feature:
    def during_setup(self, access):
        RuntimeForeignAccess.register_for_downcall(FunctionDescriptor.of(JAVA_INT, JAVA_INT))
"""

USE = """
import ffm_runtime as ffm
from ffm_runtime import ADDRESS, JAVA_INT, FunctionDescriptor, Linker, MemorySegment

def make():
    return Linker.native_linker().downcall_handle(
        ffm.SymbolLookup.loader_lookup().find("abs"), FunctionDescriptor.of(JAVA_INT, JAVA_INT))

RESTRICTED = {
    "downcall_handle(address, ...)": make,
    "downcall_handle(descriptor)": lambda: Linker.native_linker().downcall_handle(
        FunctionDescriptor.of(JAVA_INT, JAVA_INT)),
    "upcall_stub": lambda: Linker.native_linker().upcall_stub(None, None, None),
    "reinterpret": lambda: MemorySegment.NULL.reinterpret(8),
    "reinterpret(arena)": lambda: MemorySegment.NULL.reinterpret(8, ffm.Arena.global_arena()),
    "with_target_layout": lambda: ADDRESS.with_target_layout(JAVA_INT),
    "library_lookup": lambda: ffm.SymbolLookup.library_lookup("libm.so.6", ffm.Arena.global_arena()),
    "load_library": lambda: ffm.load_library("m"),
}

def outcomes():
    result = {}
    for name, operation in RESTRICTED.items():
        try:
            operation()
            result[name] = "ok"
        except ffm.IllegalCallerError:
            result[name] = "denied"
        except Exception as exc:
            result[name] = type(exc).__name__
    return result
"""


TOOL = """
import ffm_runtime as ffm
from ffm_runtime import JAVA_INT, FunctionDescriptor, Linker

try:
    handle = Linker.native_linker().downcall_handle(
        ffm.SymbolLookup.loader_lookup().find("abs"), FunctionDescriptor.of(JAVA_INT, JAVA_INT))
    print("ok", handle(-3))
except ffm.IllegalCallerError as exc:
    print("denied:", exc)
"""


def make_project(root: Path, name: str, extra_config: str) -> Path:
    project = root / name
    package = project / name
    package.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        textwrap.dedent(f"""
        [build-system]
        requires = ["hatchling", "hatch-ffm[build]"]
        build-backend = "hatchling.build"

        [project]
        name = "{name.replace("_", "-")}"
        version = "1.0"
        dependencies = ["hatch-ffm"]

        [tool.hatch.build.targets.wheel.hooks.ffm]
        features = ["{name}.features:Feature"]
        {extra_config}
    """)
    )
    (package / "__init__.py").write_text("")
    (package / "features.py").write_text(FEATURE)
    (package / "use.py").write_text(USE)
    (package / "tool.py").write_text(TOOL)
    return project


# Not stub_site: distributions of their own whose manifests enable (or not) native access.
@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both test distributions, built by the hook and installed into one folder."""
    src = tmp_path_factory.mktemp("nat-src")
    dist = tmp_path_factory.mktemp("nat-dist")
    build_wheel(make_project(src, "nat_enabled", ""), dist)
    build_wheel(make_project(src, "nat_disabled", "enable-native-access = []"), dist)
    site = tmp_path_factory.mktemp("nat-site")
    for wheel in dist.glob("*.whl"):
        unpack_wheel(wheel, site)
    (site / "helper_script.py").write_text(USE)
    return site


SCRIPTS = Path(__file__).parent / "scripts"
NO_CALLER = SCRIPTS / "no_caller.py"
STDLIB_CALLER = SCRIPTS / "stdlib_caller.py"


def run(site: Path, code: str, *options: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -c code``, or with ``options`` (``"-m", "pkg.tool"``) instead."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FFM_")}
    base["PYTHONPATH"] = str(site)
    arguments = list(options) or ["-c", textwrap.dedent(code)]
    return subprocess.run(
        [sys.executable, *arguments],
        capture_output=True,
        text=True,
        env={**base, **env},
        cwd=site,
        check=False,
    )


def outcomes_of(site: Path, package: str, **env: str) -> dict[str, str]:
    result = run(site, f"from {package}.use import outcomes; print(outcomes())", **env)
    assert result.returncode == 0, result.stderr
    return eval(result.stdout)  # type: ignore[no-any-return]


NOT_SUPPORTED = {"upcall_stub": "TypeError"}  # (called with None: after the check)


def test_wheel_records_its_enabled_units(site: Path) -> None:
    enabled = (site / "nat_enabled" / "_ffm" / "manifest.json").read_text()
    disabled = (site / "nat_disabled" / "_ffm" / "manifest.json").read_text()
    assert '"enable_native_access": [\n    "nat_enabled"\n  ]' in enabled
    assert '"enable_native_access": []' in disabled


def test_enabled_package_may_use_every_restricted_operation(site: Path) -> None:
    outcomes = outcomes_of(site, "nat_enabled")
    assert outcomes == {name: NOT_SUPPORTED.get(name, "ok") for name in outcomes}


def test_not_enabled_package_is_denied_every_restricted_operation(site: Path) -> None:
    outcomes = outcomes_of(site, "nat_disabled")
    assert set(outcomes.values()) == {"denied"}, outcomes
    assert len(outcomes) == 8


def test_denial_message(site: Path) -> None:
    result = run(site, "from nat_disabled.use import make; make()")
    assert result.returncode != 0
    assert (
        "IllegalCallerError: Illegal native access from package 'nat_disabled' (module "
        "nat_disabled.use) calling the restricted Linker.downcall_handle" in result.stderr
    )
    assert (
        'add "nat_disabled" to the option enable-native-access of [tool.hatch.build.targets.wheel.hooks.ffm]'
    ) in result.stderr
    assert "or set FFM_ENABLE_NATIVE_ACCESS=nat_disabled" in result.stderr
    assert "PermissionError" not in result.stderr  # the class name shown is our own


def test_environment_variable_enables_a_package(site: Path) -> None:
    outcomes = outcomes_of(site, "nat_disabled", FFM_ENABLE_NATIVE_ACCESS="x, nat_disabled")
    assert outcomes["downcall_handle(address, ...)"] == "ok"


def test_all_unnamed_covers_scripts_but_not_packages_with_manifests(site: Path) -> None:
    script = "from helper_script import outcomes; print(outcomes()['reinterpret'])"
    assert run(site, script).stdout.strip() == "denied"
    assert run(site, script, FFM_ENABLE_NATIVE_ACCESS="ALL-UNNAMED").stdout.strip() == "ok"
    outcomes = outcomes_of(site, "nat_disabled", FFM_ENABLE_NATIVE_ACCESS="ALL-UNNAMED")
    assert outcomes["reinterpret"] == "denied"


def test_main_script_is_its_own_unit(site: Path) -> None:
    code = """
        import ffm_runtime as ffm
        try:
            ffm.MemorySegment.NULL.reinterpret(1)
            print("ok")
        except ffm.IllegalCallerError as exc:
            print(exc)
    """
    assert "Illegal native access from the __main__ script (module __main__)" in run(site, code).stdout
    assert (
        "set FFM_ENABLE_NATIVE_ACCESS=__main__ (or FFM_ENABLE_NATIVE_ACCESS=ALL-UNNAMED)"
        in run(site, code).stdout
    )
    assert run(site, code, FFM_ENABLE_NATIVE_ACCESS="__main__").stdout.strip() == "ok"


def test_warn_policy_warns_once_per_unit_in_the_jdk_form(site: Path) -> None:
    code = """
        import warnings
        warnings.simplefilter("always")
        from nat_disabled.use import make
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            print(make()(-5), make()(-6))
        for warning in caught:
            print(warning.category.__name__, "|", warning.message)
    """
    result = run(site, code, FFM_ILLEGAL_NATIVE_ACCESS="warn")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "5 6"
    assert lines.count("NativeAccessWarning | A restricted method in ffm_runtime has been called") == 1
    assert (
        "Linker.downcall_handle has been called by nat_disabled.use in package "
        "'nat_disabled'" in result.stdout
    )
    assert (
        "Use FFM_ENABLE_NATIVE_ACCESS=nat_disabled to avoid a warning for callers in this "
        "package" in result.stdout
    )


def test_allow_policy_is_silent(site: Path) -> None:
    code = """
        import warnings
        warnings.simplefilter("error")
        from nat_disabled.use import outcomes
        print(outcomes()["reinterpret"])
    """
    result = run(site, code, FFM_ILLEGAL_NATIVE_ACCESS="allow")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_invalid_policy_is_an_error(site: Path) -> None:
    result = run(site, "from nat_disabled.use import make; make()", FFM_ILLEGAL_NATIVE_ACCESS="sometimes")
    assert "FFM_ILLEGAL_NATIVE_ACCESS must be one of deny, warn, allow, not 'sometimes'" in result.stderr


def test_check_is_at_link_time_not_per_call(site: Path) -> None:
    """A handle made by an enabled package keeps working for anyone it is handed to."""
    code = """
        from nat_enabled.use import make
        handle = make()
        print(handle(-9))
    """
    result = run(site, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "9"


class TestModulesRunAsMain:
    """`python -m pkg.tool` and `runpy.run_module`: the unit is pkg, not __main__."""

    def test_enabled_package_runs_its_tools(self, site: Path) -> None:
        result = run(site, "", "-m", "nat_enabled.tool")
        assert result.stdout.strip() == "ok 3", result.stderr

    def test_runpy_run_module(self, site: Path) -> None:
        result = run(site, "import runpy; runpy.run_module('nat_enabled.tool', run_name='__main__')")
        assert result.stdout.strip() == "ok 3", result.stderr

    def test_enabling_main_does_not_enable_a_package_run_with_dash_m(self, site: Path) -> None:
        result = run(site, "", "-m", "nat_disabled.tool", FFM_ENABLE_NATIVE_ACCESS="__main__")
        assert result.stdout.startswith(
            "denied: Illegal native access from package 'nat_disabled' (module "
            "nat_disabled.tool) calling the restricted Linker.downcall_handle"
        ), result.stdout
        enabled = run(site, "", "-m", "nat_disabled.tool", FFM_ENABLE_NATIVE_ACCESS="nat_disabled")
        assert enabled.stdout.strip() == "ok 3"

    def test_a_script_stays_main(self, site: Path) -> None:
        (site / "tool_script.py").write_text(TOOL)
        for arguments in (
            ["tool_script.py"],
            ["-c", "import runpy; runpy.run_path('tool_script.py', run_name='__main__')"],
        ):
            result = run(site, "", *arguments)
            assert "Illegal native access from the __main__ script (module __main__)" in result.stdout
            result = run(site, "", *arguments, FFM_ENABLE_NATIVE_ACCESS="__main__")
            assert result.stdout.strip() == "ok 3", result.stderr


NO_CALLER_DENIED = (
    "IllegalCallerError Illegal native access from code with no Python caller (a thread started "
    "from C, a C callback or an atexit callback) calling the restricted MemorySegment.reinterpret:"
    " such a call belongs to no unit, so no FFM_ENABLE_NATIVE_ACCESS setting enables it; make the "
    "call from Python code of an enabled package (a thread target written in Python, say), or "
    "relax the check with FFM_ILLEGAL_NATIVE_ACCESS=warn or allow."
)


class TestNoPythonCaller:
    """A thread started from C and an atexit callback call a restricted method directly."""

    @pytest.mark.parametrize("enable", ["__main__", "ALL-UNNAMED", "__main__,nat_enabled"])
    def test_no_name_enables_it(self, site: Path, enable: str) -> None:
        result = run(site, "", str(NO_CALLER), FFM_ENABLE_NATIVE_ACCESS=enable)
        assert result.stdout.splitlines() == [f"thread {NO_CALLER_DENIED}", f"atexit {NO_CALLER_DENIED}"], (
            result.stderr
        )

    def test_the_policy_decides(self, site: Path) -> None:
        allowed = run(site, "", str(NO_CALLER), FFM_ILLEGAL_NATIVE_ACCESS="allow")
        assert allowed.stdout.splitlines() == [
            "thread ValueError Invalid size: -1",
            "atexit ValueError Invalid size: -1",
        ]
        warned = run(site, "", str(NO_CALLER), FFM_ILLEGAL_NATIVE_ACCESS="warn")
        assert warned.stdout.splitlines() == allowed.stdout.splitlines()
        assert (
            warned.stderr.count("NativeAccessWarning: A restricted method in ffm_runtime has been called")
            == 1
        ), warned.stderr
        assert "MemorySegment.reinterpret has been called by code with no Python caller" in warned.stderr
        assert (
            "Calls with no Python caller belong to no unit: only FFM_ILLEGAL_NATIVE_ACCESS "
            "decides them" in warned.stderr
        )


@pytest.mark.parametrize("enable", ["ALL-UNNAMED", "__main__", "threading"])
def test_a_restricted_method_handed_to_the_standard_library(site: Path, enable: str) -> None:
    """A thread whose target is a restricted method: its caller is threading's code, which
    is no unit of permission (ALL-UNNAMED, or naming it, must not enable it)."""
    result = run(site, "", str(STDLIB_CALLER), FFM_ENABLE_NATIVE_ACCESS=enable)
    assert result.stdout.startswith(
        "IllegalCallerError Illegal native access from the standard library's threading (a "
        "restricted method handed to it directly: call it from a function of your own package) "
        "calling the restricted MemorySegment.reinterpret: such a call belongs to no unit"
    ), result.stdout + result.stderr


# -- what a wheel's manifest may enable -------------------------------------------------------


def make_multi_project(root: Path, extra_config: str) -> Path:
    """nat_multi: one wheel with two top-level packages, nat_multi and nat_multi_extra."""
    project = make_project(root, "nat_multi", extra_config)
    extra = project / "nat_multi_extra"
    extra.mkdir()
    (extra / "__init__.py").write_text("")
    (extra / "use.py").write_text(USE)
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(
        text.replace(
            "[tool.hatch.build.targets.wheel.hooks.ffm]",
            '[tool.hatch.build.targets.wheel]\npackages = ["nat_multi", "nat_multi_extra"]\n\n'
            "[tool.hatch.build.targets.wheel.hooks.ffm]",
        )
    )
    return project


@pytest.fixture(scope="module")
def wider_site(tmp_path_factory: pytest.TempPathFactory, site: Path) -> Path:
    """The site, plus: nat_greedy, whose manifest was edited to enable other units (as a wheel
    built by another tool or an older hatch-ffm could); nat_multi, a two-package wheel that
    enables only its second package; nat_broken, whose own manifest cannot be read; plain_pkg,
    a package without a manifest."""
    src = tmp_path_factory.mktemp("wider-src")
    dist = tmp_path_factory.mktemp("wider-dist")
    build_wheel(make_project(src, "nat_greedy", ""), dist)
    build_wheel(make_multi_project(src, 'enable-native-access = ["nat_multi_extra"]'), dist)
    wider = tmp_path_factory.mktemp("wider-site")
    shutil.copytree(site, wider, dirs_exist_ok=True)
    for wheel in dist.glob("*.whl"):
        unpack_wheel(wheel, wider)
    greedy = wider / "nat_greedy" / "_ffm" / "manifest.json"
    manifest = json.loads(greedy.read_text())
    assert manifest["packages"] == ["nat_greedy"]
    # claims a package with a manifest of its own, and one without (plain_pkg)
    manifest["packages"] = ["nat_greedy", "nat_disabled", "plain_pkg"]
    manifest["enable_native_access"] = ["nat_greedy", "nat_disabled", "__main__", "plain_pkg", "other_pkg"]
    greedy.write_text(json.dumps(manifest))
    shutil.copytree(wider / "nat_enabled", wider / "nat_broken")
    (wider / "nat_broken" / "_ffm" / "manifest.json").write_text("{truncated")
    (wider / "plain_pkg").mkdir()
    (wider / "plain_pkg" / "__init__.py").write_text("")
    (wider / "plain_pkg" / "use.py").write_text(USE)
    return wider


def test_hook_writes_the_wheels_packages(wider_site: Path) -> None:
    """The stubs' manifest enables its own package only; each other package the wheel enables
    gets a manifest of its own, in its own folder, without stubs."""
    manifest = json.loads((wider_site / "nat_multi" / "_ffm" / "manifest.json").read_text())
    assert manifest["packages"] == ["nat_multi", "nat_multi_extra"]
    assert manifest["enable_native_access"] == []
    extra = json.loads((wider_site / "nat_multi_extra" / "_ffm" / "manifest.json").read_text())
    assert (extra["package"], extra["enable_native_access"], extra["stubs"], extra["objects"]) == (
        "nat_multi_extra",
        ["nat_multi_extra"],
        [],
        [],
    )


def test_a_wheel_enables_its_other_top_level_packages(wider_site: Path) -> None:
    assert outcomes_of(wider_site, "nat_multi_extra")["reinterpret"] == "ok"
    assert outcomes_of(wider_site, "nat_multi")["reinterpret"] == "denied"


def test_a_manifest_cannot_enable_what_is_not_its_own(wider_site: Path) -> None:
    code = """
        import warnings
        warnings.simplefilter("always")
        from nat_greedy.use import outcomes as greedy
        from nat_disabled.use import outcomes as disabled
        from plain_pkg.use import outcomes as plain
        from helper_script import outcomes as script
        for name, outcomes in [("greedy", greedy), ("disabled", disabled), ("plain", plain),
                               ("script", script)]:
            print(name, outcomes()["reinterpret"])
    """
    result = run(wider_site, code, FFM_ENABLE_NATIVE_ACCESS="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["greedy ok", "disabled denied", "plain denied", "script denied"]
    manifest = wider_site / "nat_greedy" / "_ffm" / "manifest.json"
    for unit, why in [
        (
            "nat_disabled",
            f"it has a stub manifest of its own, {wider_site / 'nat_disabled' / '_ffm' / 'manifest.json'}",
        ),
        ("__main__", "a wheel cannot enable scripts"),
        (
            "plain_pkg",
            "a manifest enables only the package it is in (nat_greedy); "
            "plain_pkg needs plain_pkg/_ffm/manifest.json of its own",
        ),
        ("other_pkg", "it is not a top-level package of this wheel (nat_greedy, nat_disabled, plain_pkg)"),
    ]:
        assert (
            f"NativeAccessWarning: the stub manifest {manifest} lists {unit!r} in "
            f"enable_native_access, which it cannot enable: {why}; ignored. A wheel enables "
            f"only its own top-level packages; scripts (__main__) and other packages are "
            f"enabled with FFM_ENABLE_NATIVE_ACCESS"
        ) in result.stderr, result.stderr
    assert result.stderr.count("NativeAccessWarning: the stub manifest") == 4


def test_a_package_whose_own_manifest_cannot_be_read(wider_site: Path) -> None:
    for enable in ("", "ALL-UNNAMED"):
        result = run(
            wider_site,
            "import warnings; warnings.simplefilter('ignore'); from nat_broken.use import make; make()",
            FFM_ENABLE_NATIVE_ACCESS=enable,
        )
        assert (
            "IllegalCallerError: Illegal native access from package 'nat_broken' (module "
            "nat_broken.use) calling the restricted Linker.downcall_handle: package "
            "'nat_broken' is not enabled for native access; to enable it, reinstall it, as "
            f"its stub manifest cannot be read (invalid stub manifest "
            f"{wider_site / 'nat_broken' / '_ffm' / 'manifest.json'}: not JSON"
        ) in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("units", "message"),
    [
        (
            '["nat_refused", "nat_disabled"]',
            "Option `enable-native-access` in `tool.hatch.build.targets.wheel.hooks.ffm` lists "
            "'nat_disabled', which is not a top-level package of this wheel (nat_refused): a wheel "
            "enables only its own packages. Another package is enabled by its own wheel, or where it "
            "runs with the environment variable FFM_ENABLE_NATIVE_ACCESS=nat_disabled (scripts: "
            "FFM_ENABLE_NATIVE_ACCESS=__main__)",
        ),
        (
            '["__main__"]',
            "Option `enable-native-access` in `tool.hatch.build.targets.wheel.hooks.ffm` cannot list "
            '"__main__": a wheel enables only its own top-level packages. Scripts are enabled where '
            "they run, with the environment variable FFM_ENABLE_NATIVE_ACCESS=__main__",
        ),
    ],
    ids=["other-package", "main"],
)
def test_hook_refuses_units_that_are_not_the_wheels_own(tmp_path: Path, units: str, message: str) -> None:
    project = make_project(tmp_path, "nat_refused", f"enable-native-access = {units}")
    result = build_wheel(project, tmp_path / "dist", check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
