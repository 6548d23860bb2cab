"""Conformance, after the JDK's TestDowncall/TestDowncallStack: generated C functions for
thousands of signatures (0-3 parameters of int, float, double, pointer and structs of 1-3
such fields), compiled by cc, registered through a Feature, built into a wheel by the hook,
and called through their handles with random arguments; each echoes parameter 0."""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import build_wheel, compile_c, unpack_wheel

sys.path.insert(0, str(Path(__file__).parent / "conformance"))
from calls import Caller, descriptor_of
from generator import Signature, c_file, sample, signatures

SEED = int(os.environ.get("FFM_FUZZ_SEED", "20261125"))

FEATURE = """
import json
from pathlib import Path

from ffm_runtime import *
from hatch_ffm import RuntimeForeignAccess


class Conformance:
    def during_setup(self, access):
        names = {name: value for name, value in globals().items() if name.isupper()
                 or name in ("FunctionDescriptor", "MemoryLayout")}
        for text in json.loads(Path(__file__).with_name("signatures.json").read_text()):
            RuntimeForeignAccess.register_for_downcall(eval(text, names))
"""


def build(
    tmp: Path, sigs: list[Signature], targets: tuple[str, ...] = ("native",), cc: str | None = None
) -> Path:
    """Compile the C side (with ``cc``, default the system compiler), build the wheel for
    ``targets`` with the hook, unpack it into ``tmp/site``; return the library."""
    library = compile_c(_write(tmp / "conformance.c", c_file(sigs)), tmp / "libconformance.so", cc=cc)
    project = tmp / "ffm_conformance"
    package = project / "ffm_conformance"
    package.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        textwrap.dedent("""
        [build-system]
        requires = ["hatchling", "hatch-ffm[build]"]
        build-backend = "hatchling.build"
        [project]
        name = "ffm-conformance"
        version = "1.0"
        dependencies = ["hatch-ffm"]
        [tool.hatch.build.targets.wheel.hooks.ffm]
        features = ["ffm_conformance.features:Conformance"]
    """)
        + f"targets = {json.dumps(list(targets))}\n"
    )
    (package / "__init__.py").write_text("")
    (package / "features.py").write_text(FEATURE)
    (package / "signatures.json").write_text(json.dumps(sorted({repr(descriptor_of(s)) for s in sigs})))
    build_wheel(project, tmp / "dist")
    site = tmp / "site"
    (wheel,) = (tmp / "dist").glob("*.whl")
    unpack_wheel(wheel, site)
    return library


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def conformance_sigs(normal: int, stack: int) -> list[Signature]:
    return sample(signatures(), normal) + sample(signatures(stack=True), stack)


# Not native_lib/stub_site: a generated C library and its own wheel, on sys.path for this module only.
@pytest.fixture(scope="module")
def default_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Signature]]]:
    tmp = tmp_path_factory.mktemp("conformance")
    sigs = conformance_sigs(2000, 300)
    library = build(tmp, sigs)
    sys.path.insert(0, str(tmp / "site"))
    try:
        yield library, sigs
    finally:
        sys.path.remove(str(tmp / "site"))
        shutil.rmtree(tmp, ignore_errors=True)


def test_generated_signatures(default_suite: tuple[Path, list[Signature]]) -> None:
    library, sigs = default_suite
    print(f"conformance: {len(sigs)} signatures, seed {SEED}")
    assert len([s for s in sigs if not s.stack]) >= 2000
    caller = Caller(library, SEED)
    for sig in sigs:
        caller.check(sig)


def test_signature_counts_match_the_jdk_generator() -> None:
    everything = signatures()
    assert len(everything) == 12_097  # CallGeneratorHelper's count for 3 params, 3 fields
    # 85 parameter lists of int/float/double/pointer, void or echoing: 169 without structs
    assert sum(1 for s in everything if "S" not in s.params) == 169


@pytest.mark.slow
def test_all_generated_signatures(tmp_path: Path) -> None:
    sigs = signatures() + signatures(stack=True)
    library = build(tmp_path, sigs)
    sys.path.insert(0, str(tmp_path / "site"))
    try:
        caller = Caller(library, SEED)
        for sig in sigs:
            caller.check(sig)
    finally:
        sys.path.remove(str(tmp_path / "site"))
