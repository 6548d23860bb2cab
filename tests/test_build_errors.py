"""Build failures as a user sees them: a real ``pip wheel`` (or ``hatchling build``) of a
temporary project whose Feature misbehaves or registers a shape the hook refuses."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import build_wheel

PYPROJECT = """
[build-system]
requires = ["hatchling", "hatch-ffm[build]"]
build-backend = "hatchling.build"

[project]
name = "ffm-broken"
version = "1.0"
dependencies = ["hatch-ffm"]

[tool.hatch.build.targets.wheel.hooks.ffm]
features = ["ffm_broken.features:Broken"]
"""


def broken_project(tmp_path: Path, features: str) -> Path:
    """A project ``ffm-broken`` whose Feature ``ffm_broken.features:Broken`` is ``features``."""
    project = tmp_path / "ffm_broken"
    package = project / "ffm_broken"
    package.mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT)
    (package / "__init__.py").write_text("")
    (package / "features.py").write_text(textwrap.dedent(features))
    return project


def failed_build(project: Path, out: Path) -> str:
    """``pip wheel`` the project: it must fail and leave no wheel; returns its output."""
    result = build_wheel(project, out, check=False)
    assert result.returncode != 0, result.stdout + result.stderr
    assert not list(out.glob("*.whl"))
    return result.stdout + result.stderr


def test_error_in_is_in_configuration(tmp_path: Path) -> None:
    project = broken_project(
        tmp_path,
        """
        def option(config):
            return config["missing"]

        class Broken:
            def is_in_configuration(self, access):
                return option(access.config)
    """,
    )
    output = failed_build(project, tmp_path / "out")
    assert (
        "FeatureError: Feature 'ffm_broken.features:Broken' failed in is_in_configuration: "
        "KeyError: 'missing'"
    ) in output
    assert re.search(
        r'File ".*ffm_broken/features\.py", line 7, in is_in_configuration\n'
        r"\s+return option\(access\.config\)\n(.|\n)*"
        r'File ".*ffm_broken/features\.py", line 3, in option\n'
        r'\s+return config\["missing"\]',
        output,
    )


def test_error_in_during_setup(tmp_path: Path) -> None:
    project = broken_project(
        tmp_path,
        """
        class Broken:
            def during_setup(self, access):
                raise LookupError("no libfoo on this system")
    """,
    )
    output = failed_build(project, tmp_path / "out")
    assert (
        "FeatureError: Feature 'ffm_broken.features:Broken' failed in during_setup: "
        "LookupError: no libfoo on this system"
    ) in output
    assert re.search(
        r'File ".*ffm_broken/features\.py", line 4, in during_setup\n'
        r'\s+raise LookupError\("no libfoo on this system"\)',
        output,
    )


SYS_EXIT = """
    import sys

    class Broken:
        def during_setup(self, access):
            sys.exit(0)
"""


def test_sys_exit_in_during_setup_fails_the_pip_build(tmp_path: Path) -> None:
    output = failed_build(broken_project(tmp_path, SYS_EXIT), tmp_path / "out")
    assert (
        "FeatureError: Feature 'ffm_broken.features:Broken' failed in during_setup: "
        "SystemExit: 0 (sys.exit() in a Feature would end the build without a wheel"
    ) in output
    assert re.search(
        r'File ".*ffm_broken/features\.py", line 6, in during_setup\n'
        r"\s+sys\.exit\(0\)",
        output,
    )


def test_sys_exit_in_during_setup_fails_hatchling_build(tmp_path: Path) -> None:
    """``hatchling build`` (what ``hatch build`` runs) used to exit 0 without a wheel."""
    project = broken_project(tmp_path, SYS_EXIT)
    result = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert not list(project.glob("dist/*.whl"))
    assert "Feature 'ffm_broken.features:Broken' failed in during_setup: SystemExit: 0" in result.stderr


@pytest.mark.parametrize("size", [64 << 20, 1 << 40], ids=["64MiB", "1TiB"])
def test_struct_beyond_the_by_value_limit(tmp_path: Path, size: int) -> None:
    """64 MiB used to build (and every call crashed); 1 TiB failed inside LLVM ("huge 'byval'
    arguments are unsupported") naming neither the descriptor nor the Feature."""
    project = broken_project(
        tmp_path,
        f"""
        from ffm_runtime import JAVA_BYTE, JAVA_INT, FunctionDescriptor, MemoryLayout
        from hatch_ffm import RuntimeForeignAccess

        BIG = MemoryLayout.struct_layout(MemoryLayout.sequence_layout({size}, JAVA_BYTE))

        class Broken:
            def during_setup(self, access):
                RuntimeForeignAccess.register_for_downcall(FunctionDescriptor.of(JAVA_INT, BIG))
    """,
    )
    output = failed_build(project, tmp_path / "out")
    assert (
        f"FeatureError: Feature 'ffm_broken.features:Broken' failed in during_setup: "
        f"ValueError: Layout [[{size}:b1]] (argument 0 of ([[{size}:b1]])i4) is {size} bytes: "
        f"a struct or union passed or returned by value may have at most 4096 bytes "
        f"(MAX_BY_VALUE_BYTE_SIZE;"
    ) in output
    assert re.search(
        r'File ".*ffm_broken/features\.py", line 9, in during_setup\n'
        r"\s+RuntimeForeignAccess\.register_for_downcall\(",
        output,
    )
