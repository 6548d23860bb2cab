"""Stub manifests: every way one can be wrong is a StubLoadError naming it; a bad manifest of
another installed package (or a stray folder on sys.path) costs only the call shapes only it
provides, with one StubLoadWarning, and is named when such a shape is asked for."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from hashlib import sha256
from pathlib import Path
from typing import ClassVar

import pytest
from support import ROOT, unpack_wheel

from ffm_runtime import JAVA_INT, FunctionDescriptor, StubLoadError, registration_key
from ffm_runtime._manifest import (
    GENERATOR,
    MAX_MANIFEST_BYTES,
    Manifest,
    StubObject,
    UpcallPool,
    read_manifest,
    stub_symbol,
)
from ffm_runtime._registry import StubRegistry

VALID = {"format": 2, "generator": "hatch-ffm 0.1.0", "package": "pkg", "objects": [], "stubs": {}}

SCRIPTS = Path(__file__).parent / "scripts"


def variant(**changes: object) -> str:
    return json.dumps({**VALID, **changes})


class TestParsing:
    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("not json", r"invalid stub manifest manifest\.json: not JSON"),
            (variant()[:40], "not JSON"),
            (b"\xff\xfe{}", "not JSON"),
            ("[" * 100_000 + "]" * 100_000, "nested too deeply to be a stub manifest"),
            ('{"a": ' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
            ("[1]", "top level is not an object"),
            (variant(format=True), "'format' must be an integer, not True"),
            (variant(format="1"), "'format' must be an integer, not '1'"),
            (
                variant(format=1),
                r"format 1 is older than this runtime reads \(formats 2 to 3\): its "
                r"stubs expect a contract this runtime no longer offers; rebuild the "
                r"wheel with hatch-ffm>=0\.2\.0",
            ),
            (variant(generator="test"), r"'generator' must be \"hatch-ffm <version>\", not 'test'"),
            (variant(generator=None), r"'generator' must be .*not None"),
            (variant(package="__main__"), "'package' must be a package name"),
            (
                variant(packages=["other"]),
                r"'packages' must list the package the manifest is in "
                r"\('pkg'\)",
            ),
            (variant(packages=["pkg", "__main__"]), "'packages' must be a list of top-level package"),
            (variant(packages="pkg"), "'packages' must be a list"),
            (variant(enable_native_access=["ALL-UNNAMED"]), "'enable_native_access' must be a list"),
            (variant(stubs={"(i4)i4": "evil"}), "malformed stub symbol"),
            (variant(stubs={"(i4)i4": "ffm_0123456789abcdef0123\n"}), "malformed stub symbol"),
            (variant(generator="hatch-ffm 0.1.0\n"), r"'generator' must be .*not 'hatch-ffm 0\.1\.0\\n'"),
            (
                variant(
                    objects=[
                        {"target": "x86_64-linux", "triple": "t", "file": "stubs.o\n", "sha256": "0" * 64}
                    ]
                ),
                "malformed object entry",
            ),
            (variant(upcalls=[]), "'upcalls' must be an object"),
            (
                variant(upcalls={"(a8a8)i4": {"symbol": "ffm_" + "0" * 20, "slots": 8}}),
                r"malformed upcall entry for '\(a8a8\)i4'",
            ),
            (variant(upcalls={"upcall ()v": {"symbol": "evil", "slots": 8}}), "malformed upcall entry"),
            (variant(upcalls={"upcall ()v": {"symbol": "ffm_" + "0" * 20, "slots": 0}}), "malformed upcall"),
            (
                variant(upcalls={"upcall ()v": {"symbol": "ffm_" + "0" * 20, "slots": True}}),
                "malformed upcall",
            ),
            (
                variant(upcalls={"upcall ()v": {"symbol": "ffm_" + "0" * 20, "slots": 8, "more": 1}}),
                "malformed upcall",
            ),
            (variant(upcalls={"upcall ()v": "ffm_" + "0" * 20}), "malformed upcall"),
        ],
        ids=[
            "json",
            "truncated",
            "utf8",
            "deep-list",
            "deep-object",
            "list",
            "format-bool",
            "format-str",
            "format-old",
            "generator",
            "generator-none",
            "package-main",
            "packages-missing-own",
            "packages-main",
            "packages-str",
            "units",
            "symbol",
            "symbol-newline",
            "generator-newline",
            "file-newline",
            "upcalls-list",
            "upcall-key",
            "upcall-symbol",
            "upcall-no-slots",
            "upcall-bool-slots",
            "upcall-more",
            "upcall-str",
        ],
    )
    def test_every_failure_is_a_stub_load_error(self, text: str | bytes, message: str) -> None:
        with pytest.raises(StubLoadError, match=message) as caught:
            Manifest.from_json(text, "manifest.json")
        assert caught.value.path == "manifest.json"

    def test_newer_format_says_which_hatch_ffm_reads_it(self) -> None:
        text = variant(format=4, generator="hatch-ffm 0.4.1", stubs="a new shape of things")
        expected = (
            "stub manifest /s/pkg/_ffm/manifest.json of package 'pkg' has format 4, "
            "written by hatch-ffm 0.4.1; this runtime (hatch-ffm 0.2.0) reads format 3 back to 2: "
            "install hatch-ffm>=0.4.1 (pip install 'hatch-ffm>=0.4.1'), or rebuild the "
            "wheel with hatch-ffm 0.2.0"
        )
        with pytest.raises(StubLoadError) as caught:
            Manifest.from_json(text, "/s/pkg/_ffm/manifest.json")
        assert str(caught.value) == expected

    def test_newer_format_of_an_unknown_writer(self) -> None:
        with pytest.raises(
            StubLoadError,
            match=r"has format 7, written by 'otherbuild 3'; this "
            r"runtime .*: install a newer hatch-ffm",
        ):
            Manifest.from_json('{"format": 7, "generator": "otherbuild 3"}', "m.json")

    def test_generator_versions(self) -> None:
        for generator in (
            "hatch-ffm 0.1.0",
            "hatch-ffm 12.0",
            "hatch-ffm 1.0.0rc1",
            "hatch-ffm 1.0.dev3+g1234",
            "hatch-ffm 2.0.0.post1",
        ):
            Manifest.from_json(variant(generator=generator), "m.json")

    def test_round_trip_and_the_wheels_packages(self) -> None:
        manifest = Manifest(
            "pkg",
            GENERATOR,
            (StubObject("x86_64-linux", "t", "s.img", "0" * 64),),
            {"(i4)i4": "ffm_" + "0" * 20},
            ("pkg", "helper"),
            ("helper", "pkg"),
        )
        assert manifest.packages == ("pkg", "helper")  # its own package first
        assert Manifest.from_json(manifest.to_json(), "m.json") == manifest

    def test_round_trip_with_upcalls(self) -> None:
        manifest = Manifest(
            "pkg",
            GENERATOR,
            (StubObject("x86_64-linux", "t", "s.img", "0" * 64),),
            {"(i4)i4": "ffm_" + "0" * 20},
            upcalls={"upcall (a8a8)i4": UpcallPool("ffm_" + "1" * 20, 256)},
        )
        text = manifest.to_json()
        assert '"upcall (a8a8)i4": {\n      "symbol": "ffm_11111111111111111111",\n      "slots": 256' in text
        assert Manifest.from_json(text, "m.json") == manifest
        assert '"upcalls"' not in Manifest("pkg", GENERATOR, (), {}).to_json()

    def test_format_3_lists_sorted_keys_whose_symbols_follow_from_them(self) -> None:
        keys = ["(a8)v", "(i4)i4", "upcall-free (j8)j8"]
        manifest = Manifest.from_json(variant(format=3, stubs=keys), "m.json")
        assert list(manifest.stubs) == keys and len(manifest.stubs) == 3
        symbol = "ffm_" + sha256(b"(i4)i4").hexdigest()[:20]
        assert manifest.stubs["(i4)i4"] == stub_symbol("(i4)i4") == symbol
        assert "(i4)i8" not in manifest.stubs and 5 not in manifest.stubs
        with pytest.raises(KeyError):
            manifest.stubs["(i4)i8"]
        assert '"stubs": [\n    "(a8)v",' in manifest.to_json()
        assert Manifest.from_json(manifest.to_json(), "m.json") == manifest

    @pytest.mark.parametrize(
        ("stubs", "message"),
        [
            ({"(i4)i4": "ffm_" + "0" * 20}, "'stubs' must be a list of registration keys"),
            (["(i4)i4", 4], r"'stubs' must be a list of registration keys \(strings\)"),
            (["(i4)i4", "(a8)v"], r"'stubs' must list its keys sorted \(by code point\), each once"),
            (["(a8)v", "(a8)v"], "sorted .*, each once"),
        ],
    )
    def test_format_3_stubs_must_be_sorted_unique_keys(self, stubs: object, message: str) -> None:
        with pytest.raises(StubLoadError, match=message):
            Manifest.from_json(variant(format=3, stubs=stubs), "m.json")

    def test_format_2_symbols_are_checked_all_at_once_and_named_when_wrong(self) -> None:
        good = {f"(i{n})v": "ffm_" + f"{n:020x}" for n in range(50)}
        assert Manifest.from_json(variant(stubs=good), "m.json").stubs == good
        zeros = "0" * 18
        for bad in ("ffm_" + zeros + "0", f"ffm_{zeros}0G", f"ffm_{zeros} 0", f"fmm_{zeros}00", 7):
            with pytest.raises(StubLoadError, match=r"malformed stub symbol for '\(i7\)v': "):
                Manifest.from_json(variant(stubs={**good, "(i7)v": bad}), "m.json")
        # two symbols whose lengths make up for each other
        shifted = {**good, "(i1)v": good["(i1)v"] + "ffm_", "(i2)v": good["(i2)v"][4:]}
        with pytest.raises(StubLoadError, match="malformed stub symbol"):
            Manifest.from_json(variant(stubs=shifted), "m.json")

    def test_two_shapes_naming_the_same_code_are_refused(self) -> None:
        """A handle of one shape would call the stub, or fill in the upcall pool, of the other."""
        shared = "ffm_" + "0" * 20
        with pytest.raises(StubLoadError, match=rf"'\(i4\)v' and '\(j8\)v' name the same symbol {shared}"):
            Manifest.from_json(variant(stubs={"(i4)v": shared, "(j8)v": shared}), "m.json")
        pools = {
            "upcall (a8)i4": {"symbol": shared, "slots": 4},
            "upcall (i4)i4": {"symbol": shared, "slots": 4},
        }
        for version in (2, 3):
            with pytest.raises(
                StubLoadError, match=rf"'upcall \(a8\)i4' and 'upcall \(i4\)i4' name the same symbol {shared}"
            ):
                Manifest.from_json(
                    variant(format=version, stubs={} if version == 2 else [], upcalls=pools), "m.json"
                )

    def test_manifests_without_packages_are_their_own_package_only(self) -> None:
        """Written by hatch-ffm 0.1.0: no `packages` field."""
        manifest = Manifest.from_json(variant(enable_native_access=["pkg", "other"]), "m.json")
        assert manifest.packages == ("pkg",)
        assert manifest.enable_native_access == ("pkg", "other")


def part(file: str, first: str | None) -> dict[str, object]:
    entry: dict[str, object] = {"target": "x86_64-linux", "triple": "t", "file": file, "sha256": "0" * 64}
    return entry if first is None else {**entry, "from": first}


class TestParts:
    """A target's stubs in several objects, each giving the first key of its part."""

    STUBS: ClassVar[dict[str, str]] = {
        "(a8)v": "ffm_" + "0" * 20,
        "(i4)i4": "ffm_" + "1" * 20,
        "(j8)j8": "ffm_" + "2" * 20,
    }

    def test_a_key_is_in_the_last_part_starting_at_or_before_it(self) -> None:
        text = variant(
            objects=[
                part("s-0.o", "(a8)v"),
                part("s-1.o", "(i4)i4"),
                part("a.o", None) | {"target": "aarch64-linux"},
            ],
            stubs=self.STUBS,
            upcalls={"upcall (i4)v": {"symbol": "ffm_" + "3" * 20, "slots": 4}},
        )
        manifest = Manifest.from_json(text, "m.json")
        found = {key: manifest.object_for("x86_64-linux", key) for key in [*self.STUBS, "upcall (i4)v"]}
        assert {key: obj.file if obj else None for key, obj in found.items()} == {
            "(a8)v": "s-0.o",
            "(i4)i4": "s-1.o",
            "(j8)j8": "s-1.o",
            "upcall (i4)v": "s-1.o",
        }
        assert manifest.object_for("aarch64-linux", "(i4)i4") == StubObject(
            "aarch64-linux", "t", "a.o", "0" * 64
        )
        assert manifest.object_for("riscv64-linux", "(i4)i4") is None
        assert Manifest.from_json(manifest.to_json(), "m.json") == manifest
        assert '"from": "(i4)i4"' in manifest.to_json()

    @pytest.mark.parametrize(
        "objects",
        [
            [part("s-0.o", None), part("s-1.o", "(i4)i4")],
            [part("s-0.o", "(a8)v"), part("s-1.o", None)],
            [part("s-0.o", "(i4)i4"), part("s-1.o", "(a8)v")],
            [part("s-0.o", "(a8)v"), part("s-1.o", "(a8)v")],
            [part("s-0.o", "(b1)v"), part("s-1.o", "(i4)i4")],
            [part("s-0.o", "(i4)i4")],
        ],
        ids=["first-without", "second-without", "decreasing", "twice", "after-a-key", "alone-after-a-key"],
    )
    def test_parts_must_cover_the_keys_in_order(self, objects: list[object]) -> None:
        with pytest.raises(
            StubLoadError,
            match=r"the objects of target 'x86_64-linux' must each give 'from' \(the first key of its "
            r"part\), in increasing order, the first not after any key",
        ):
            Manifest.from_json(variant(objects=objects, stubs=self.STUBS), "m.json")

    def test_from_must_be_a_key(self) -> None:
        with pytest.raises(StubLoadError, match=r"malformed object entry .*: 'from' must be a key"):
            Manifest.from_json(variant(objects=[part("s.o", None) | {"from": 3}]), "m.json")


def test_the_test_packages_stubs_load_from_several_objects(stub_site: Path, lookup: object) -> None:
    """The test package's stubs are in several parts: every stub is found in the object its
    manifest names, and handles of shapes in different objects call their functions."""
    from ffm_runtime import JAVA_LONG, Linker
    from ffm_runtime._registry import registry
    from ffm_runtime._targets import host_target

    manifest = read_manifest(str(stub_site / "ffm_testpkg" / "_ffm" / "manifest.json"))
    host = host_target()
    parts = {obj.file for obj in manifest.objects if obj.target == host}
    assert len(parts) >= 3
    for key in manifest.stubs:
        for bound in (True, False):
            assert registry.stub_address(key, host, bound) is not None, key
    keys = [*manifest.stubs, *manifest.upcalls]
    loaded = {registry.loaded(registry.find(key)[0], host, key)[1] for key in keys}
    assert {os.path.basename(path) for path in loaded} == parts
    linker = Linker.native_linker()
    find = lookup.find  # type: ignore[attr-defined]
    absolute = linker.downcall_handle(find("abs"), FunctionDescriptor.of(JAVA_INT, JAVA_INT))
    long_absolute = linker.downcall_handle(find("labs"), FunctionDescriptor.of(JAVA_LONG, JAVA_LONG))
    assert (absolute(-4), long_absolute(-(2**40))) == (4, 2**40)


class TestReading:
    def write(self, root: Path, text: str, folder: str = "pkg") -> Path:
        path = root / folder / "_ffm" / "manifest.json"
        path.parent.mkdir(parents=True)
        path.write_text(text)
        return path

    def test_reads_a_manifest(self, tmp_path: Path) -> None:
        assert read_manifest(str(self.write(tmp_path, variant()))).package == "pkg"

    def test_manifest_must_be_in_its_package(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, variant(), folder="elsewhere")
        with pytest.raises(
            StubLoadError,
            match=r"it describes package 'pkg' but is in the "
            r"folder 'elsewhere'.*reinstall the package",
        ):
            read_manifest(str(path))

    @pytest.mark.parametrize("when", ["unknown size", "grows while read"])
    def test_a_manifest_is_read_whole_whatever_its_size_said(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
    ) -> None:
        """A file system that reports no size (as some FUSE ones do), or a manifest written (by
        an installer) after its size was taken: what the file holds when it is read counts."""
        text = variant(enable_native_access=["pkg"])
        path = self.write(tmp_path, text if when == "unknown size" else text[:20])
        real_fstat = os.fstat

        def fstat(fd: int) -> os.stat_result:
            info = real_fstat(fd)
            if when == "unknown size":
                return os.stat_result((*info[:6], 0, *info[7:]))
            path.write_text(text)  # (for the size it has now, from the next call on)
            return info

        monkeypatch.setattr(os, "fstat", fstat)
        assert read_manifest(str(path)).enable_native_access == ("pkg",)

    def test_too_large(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, "")
        with path.open("wb") as handle:
            handle.truncate(MAX_MANIFEST_BYTES + 1)  # sparse: takes no disk space
        with pytest.raises(StubLoadError, match=r"larger than 64 MiB"):
            read_manifest(str(path))

    def test_unreadable_file(self, tmp_path: Path) -> None:
        """A file that exists and cannot be read (reading /proc/self/mem at 0 fails, even as root)."""
        path = tmp_path / "pkg" / "_ffm" / "manifest.json"
        path.parent.mkdir(parents=True)
        path.symlink_to("/proc/self/mem")
        with pytest.raises(StubLoadError, match=r"cannot read stub manifest .*manifest\.json: "):
            read_manifest(str(path))

    @pytest.mark.parametrize("kind", ["fifo", "device"])
    def test_not_a_regular_file(self, tmp_path: Path, kind: str) -> None:
        """A FIFO (opening one waits for a writer) or a device is refused unopened; in a
        subprocess, as the old behaviour was to wait for ever."""
        path = tmp_path / "pkg" / "_ffm" / "manifest.json"
        path.parent.mkdir(parents=True)
        if kind == "fifo":
            os.mkfifo(path)
        else:
            path.symlink_to("/dev/zero")
        code = (
            "import sys; from ffm_runtime._manifest import read_manifest\n"
            "try:\n    read_manifest(sys.argv[1])\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=20, check=False
        )
        assert re.fullmatch(
            r"StubLoadError invalid stub manifest .*manifest\.json: not a "
            r"regular file\n",
            result.stdout,
        ), result.stdout + result.stderr


def test_manifest_replaced_by_a_fifo_during_the_scan(stub_site: Path, tmp_path: Path) -> None:
    path = tmp_path / "other" / "_ffm" / "manifest.json"
    path.parent.mkdir(parents=True)
    path.write_text(variant(package="other"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FFM_")}
    env.update(PYTHONPATH=f"{ROOT}{os.pathsep}{stub_site}", FFM_ENABLE_NATIVE_ACCESS="__main__")
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "manifest_swapped.py"), str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=20,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.fullmatch(
        r"3\nStubLoadWarning skipping a stub manifest that cannot be read: "
        r"invalid stub manifest .*other/_ffm/manifest\.json: not a regular "
        r"file \(.*\)\n",
        result.stdout,
    ), result.stdout + result.stderr


def test_odd_sys_path_entries_are_skipped(
    stub_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries the import system skips (bytes), files, missing folders, a folder whose
    `manifest.json` is itself a folder."""
    (tmp_path / "stray" / "_ffm" / "manifest.json").mkdir(parents=True)
    (tmp_path / "file.txt").write_text("")
    monkeypatch.setattr(
        sys,
        "path",
        [b"/usr", str(tmp_path / "file.txt"), str(tmp_path / "no"), str(tmp_path), str(stub_site)],
    )
    registry = StubRegistry()
    key = registration_key(FunctionDescriptor.of(JAVA_INT, JAVA_INT))
    assert [s.manifest.package for s in registry.find(key)] == ["ffm_testpkg"]
    assert registry.unreadable() == ()


# -- other packages' manifests, with the test package's real wheel -------------------------

SCRIPT = """
import warnings
import ffm_runtime as ffm
from ffm_runtime import JAVA_FLOAT, JAVA_INT, JAVA_LONG, FunctionDescriptor, Linker

linker, find = Linker.native_linker(), ffm.SymbolLookup.loader_lookup().find
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    print("abs", linker.downcall_handle(find("abs"), FunctionDescriptor.of(JAVA_INT, JAVA_INT))(-4))
    print("labs", linker.downcall_handle(find("labs"),
                                         FunctionDescriptor.of(JAVA_LONG, JAVA_LONG))(-5))
    ffm.MemorySegment.NULL.reinterpret(8)
    try:
        linker.downcall_handle(FunctionDescriptor.of(JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT))
    except ffm.MissingForeignRegistrationError as exc:
        print("missing", exc.unreadable)
        print(exc)
for warning in caught:
    print("warning", warning.category.__name__, warning.filename, "|", warning.message)
"""


def run(*path: Path, code: str = SCRIPT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FFM_")}
    env.update(PYTHONPATH=os.pathsep.join(map(str, path)), FFM_ENABLE_NATIVE_ACCESS="__main__")
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def real_manifest(stub_site: Path) -> str:
    return (stub_site / "ffm_testpkg" / "_ffm" / "manifest.json").read_text()


BAD = {
    "malformed": (lambda real: "{'format': 2}", "not JSON"),
    "truncated": (lambda real: real[: len(real) // 2], "not JSON"),
    "newer-format": (
        lambda real: real.replace('"format": 3', '"format": 4').replace(GENERATOR, "hatch-ffm 9.1.0"),
        r"has format 4, written by hatch-ffm 9.1.0; .*install "
        r"hatch-ffm>=9.1.0",
    ),
    "deeply-nested": (lambda real: "[" * 200_000, "nested too deeply"),
    "in-another-folder": (
        lambda real: real,
        "describes package 'ffm_testpkg' but is in the folder 'brokenpkg'",
    ),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_manifest_of_another_package_costs_only_its_own_shapes(
    stub_site: Path, tmp_path: Path, kind: str
) -> None:
    make, why = BAD[kind]
    bad = tmp_path / "brokenpkg" / "_ffm" / "manifest.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(make(real_manifest(stub_site)))
    result = run(tmp_path, stub_site)  # the bad one first on sys.path
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["abs 4", "labs 5", f"missing ({str(bad)!r},)"]
    warnings = [line for line in lines if line.startswith("warning")]
    assert len(warnings) == 1, result.stdout
    assert warnings[0].startswith(
        "warning StubLoadWarning <string> | skipping a stub manifest that cannot be read: "
    )
    assert str(bad) in warnings[0]
    assert re.search(why, warnings[0]), warnings[0]
    message = "\n".join(lines[3:])
    assert "no installed wheel registered this call shape" in message
    assert (
        "These stub manifests cannot be read; if one of them was meant to provide this call "
        "shape, reinstall its package:"
    ) in message
    assert re.search(f"    .*{re.escape(str(bad))}.*{why}", message), message


def test_an_unreadable_manifest_file(stub_site: Path, tmp_path: Path) -> None:
    bad = tmp_path / "brokenpkg" / "_ffm" / "manifest.json"
    bad.parent.mkdir(parents=True)
    bad.symlink_to("/proc/self/mem")
    result = run(tmp_path, stub_site)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"abs 4\nlabs 5\nmissing ({str(bad)!r},)\n")
    assert f"cannot read stub manifest {bad}: " in result.stdout


def object_holding(site: Path, key: str) -> Path:
    """The x86_64 object of the installed test package that holds ``key``'s stub (its
    stubs are in several parts)."""
    manifest = read_manifest(str(site / "ffm_testpkg" / "_ffm" / "manifest.json"))
    found = manifest.object_for("x86_64-linux", key)
    assert found is not None
    return site / "ffm_testpkg" / "_ffm" / found.file


def test_a_shape_comes_from_the_next_package_that_can_load_it(
    testpkg_wheel: tuple[Path, str], tmp_path: Path
) -> None:
    """Two installs of the wheel; the first one's object was modified: the second's is used,
    and the modified one is reported once."""
    first, second = tmp_path / "first", tmp_path / "second"
    for site in (first, second):
        unpack_wheel(testpkg_wheel[0], site)
    modified = object_holding(first, "(i4)i4")
    data = bytearray(modified.read_bytes())
    data[-1] ^= 0xFF
    modified.write_bytes(bytes(data))
    result = run(first, second)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["abs 4", "labs 5"]
    warnings = [line for line in lines if line.startswith("warning")]
    assert len(warnings) == 1, result.stdout
    assert f"stub object {modified} does not match its manifest" in warnings[0]
    assert (
        f"(the call shape (i4)i4 was taken from {second / 'ffm_testpkg' / '_ffm' / 'manifest.json'} instead)"
    ) in warnings[0]


def test_when_no_provider_can_load_a_shape_the_first_error_is_raised(
    testpkg_wheel: tuple[Path, str], tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    unpack_wheel(testpkg_wheel[0], first)
    modified = object_holding(first, "(i4)i4")
    data = bytearray(modified.read_bytes())
    data[-1] ^= 0xFF
    modified.write_bytes(bytes(data))
    shutil.copytree(first, second)
    result = run(
        first,
        second,
        code="""
        import ffm_runtime as ffm
        from ffm_runtime import JAVA_INT, FunctionDescriptor, Linker
        try:
            Linker.native_linker().downcall_handle(FunctionDescriptor.of(JAVA_INT, JAVA_INT))
        except ffm.StubLoadError as exc:
            print(exc.path)
            print(exc)
    """,
    )
    assert result.returncode == 0, result.stderr
    path, message = result.stdout.split("\n", 1)
    assert path == str(modified)
    assert message.startswith(f"stub object {modified} does not match its manifest")
    assert (
        "(no other manifest providing (i4)i4 could be used either: stub object "
        f"{second / modified.relative_to(first)} does not match" in message
    )
