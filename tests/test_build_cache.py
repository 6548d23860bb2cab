"""The build at scale: stubs compiled in parts (an object each), in parallel, and kept in the
build cache between builds; wheels built by the real hook, with a cache folder of their own."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import llvmlite
import llvmlite.binding
import pytest
from support import build_wheel

from ffm_runtime import (
    ADDRESS,
    JAVA_BOOLEAN,
    JAVA_BYTE,
    JAVA_CHAR,
    JAVA_DOUBLE,
    JAVA_FLOAT,
    JAVA_INT,
    JAVA_LONG,
    JAVA_SHORT,
    FunctionDescriptor,
)
from ffm_runtime._manifest import Manifest
from hatch_ffm import _build, _cache
from hatch_ffm._build import PART_MAX, PART_MIN, build_stubs, split_parts
from hatch_ffm._config import ConfigError, parse_config
from hatch_ffm._registration import RegistrationSession

CODES = "IJDFASBCZ"

FEATURE = """
from pathlib import Path

from ffm_runtime import (
    ADDRESS, JAVA_BOOLEAN, JAVA_BYTE, JAVA_CHAR, JAVA_DOUBLE, JAVA_FLOAT, JAVA_INT, JAVA_LONG,
    JAVA_SHORT, FunctionDescriptor,
)
from hatch_ffm import RuntimeForeignAccess

LAYOUTS = dict(I=JAVA_INT, J=JAVA_LONG, D=JAVA_DOUBLE, F=JAVA_FLOAT, A=ADDRESS, S=JAVA_SHORT,
               B=JAVA_BYTE, C=JAVA_CHAR, Z=JAVA_BOOLEAN)


class Shapes:
    def during_setup(self, access):
        for line in Path(__file__).with_name("shapes.txt").read_text().split():
            result, _, params = line.partition(":")
            args = [LAYOUTS[c] for c in params]
            RuntimeForeignAccess.register_for_downcall(
                FunctionDescriptor.of_void(*args) if result == "V"
                else FunctionDescriptor.of(LAYOUTS[result], *args)
            )
"""

#: the hook's last line: "... in 1.23s: 7 objects per target, 0 of 200 call shape(s) from
#: the build cache (...), 200 compiled"
SUMMARY = re.compile(r"(\d+) of (\d+) call shape\(s\) from the build cache \((.*?)\), (\d+) compiled")


def shapes(count: int, start: int = 0) -> list[str]:
    """``count`` distinct call shapes ("I:JD": int(long, double)), the same ones for the same
    arguments, spread over results and 0-6 parameters of every value layout."""
    found: dict[str, None] = {}
    index = start
    while len(found) < count:
        x = index * 7919
        code = ("V" + CODES)[x % 10] + ":"
        x //= 10
        params = x % 7
        x //= 7
        for _ in range(params):
            code += CODES[x % 9]
            x //= 9
        found[code] = None
        index += 1
    return list(found)


def make_project(where: Path, codes: list[str], extra: str = "") -> Path:
    project = where / "ffm_shapes"
    package = project / "ffm_shapes"
    package.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        textwrap.dedent("""
        [build-system]
        requires = ["hatchling", "hatch-ffm[build]"]
        build-backend = "hatchling.build"
        [project]
        name = "ffm-shapes"
        version = "1.0"
        dependencies = ["hatch-ffm"]
        [tool.hatch.build.targets.wheel.hooks.ffm]
        features = ["ffm_shapes.features:Shapes"]
        """)
        + extra
    )
    (package / "__init__.py").write_text("")
    (package / "features.py").write_text(FEATURE)
    write_shapes(project, codes)
    return project


def write_shapes(project: Path, codes: list[str]) -> None:
    (project / "ffm_shapes" / "shapes.txt").write_text("\n".join(codes) + "\n")


class Built:
    """A wheel built by the hook: its stub files and what the hook said."""

    def __init__(self, project: Path, out: Path, cache: str) -> None:
        result = build_wheel(project, out, env={"FFM_BUILD_CACHE": cache})
        self.log = result.stdout + result.stderr
        match = SUMMARY.search(self.log)
        assert match is not None, self.log
        self.cached, self.shapes, self.cache, self.compiled = (
            int(match[1]),
            int(match[2]),
            match[3],
            int(match[4]),
        )
        (wheel,) = out.glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            self.files = {
                name.rpartition("/")[2]: archive.read(name)
                for name in archive.namelist()
                if name.startswith("ffm_shapes/_ffm/")
            }
        self.manifest = Manifest.from_json(self.files["manifest.json"], "manifest.json")

    @property
    def objects(self) -> dict[str, bytes]:
        return {name: data for name, data in self.files.items() if name.endswith(".img")}


def test_a_rebuild_compiles_nothing_and_a_new_shape_only_its_part(tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    project = make_project(tmp_path, shapes(200))
    first = Built(project, tmp_path / "dist1", cache)
    assert (first.cached, first.shapes, first.compiled, first.cache) == (0, 200, 200, cache)
    assert len(first.manifest.objects) >= 3, "200 shapes make several parts"
    assert len(first.manifest.stubs) == 200

    again = Built(project, tmp_path / "dist2", cache)
    assert (again.cached, again.compiled) == (200, 0)
    assert again.files == first.files

    write_shapes(project, [*shapes(200), *shapes(1, start=5000)])
    grown = Built(project, tmp_path / "dist3", cache)
    (new,) = set(grown.manifest.stubs) - set(first.manifest.stubs)
    holder = grown.manifest.object_for("x86_64-linux", new)
    assert holder is not None
    part = [key for key in grown.manifest.stubs if grown.manifest.object_for("x86_64-linux", key) == holder]
    assert new in part
    assert (grown.cached, grown.compiled) == (201 - len(part), len(part))
    changed = {name for name, data in grown.objects.items() if first.objects.get(name) != data}
    assert changed == {holder.file} or len(changed) <= 2, changed  # (or the part it split)


def test_a_damaged_entry_is_reported_and_compiled_again(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    project = make_project(tmp_path, shapes(100))
    first = Built(project, tmp_path / "dist1", str(cache))
    entries = sorted(cache.glob("*/*.img"))
    assert len(entries) == len(first.manifest.objects) >= 2
    truncated, flipped = entries[0], entries[1]
    truncated.write_bytes(truncated.read_bytes()[:-100])
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    (cache / "ff").mkdir(exist_ok=True)

    second = Built(project, tmp_path / "dist2", str(cache))
    for damaged in (truncated, flipped):
        assert f"build cache entry {damaged} is damaged" in second.log
    assert second.compiled > 0 and second.cached + second.compiled == 100
    assert second.files == first.files
    third = Built(project, tmp_path / "dist3", str(cache))  # (the entries were replaced)
    assert (third.cached, third.compiled) == (100, 0)
    assert " is damaged " not in third.log


def test_two_builds_at_once_share_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    codes = shapes(150)
    projects = [make_project(tmp_path / name, codes) for name in ("a", "b")]
    command = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-v", "-w"]
    env = {**os.environ, "FFM_BUILD_CACHE": str(cache)}
    running = [
        subprocess.Popen(
            [*command, str(tmp_path / f"dist-{n}"), str(project)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for n, project in enumerate(projects)
    ]
    outputs = [process.communicate()[0] for process in running]
    assert [process.returncode for process in running] == [0, 0], outputs
    wheels = []
    for n in range(2):
        (wheel,) = (tmp_path / f"dist-{n}").glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            wheels.append({n: archive.read(n) for n in archive.namelist() if "/_ffm/" in n})
    assert wheels[0] == wheels[1]
    assert not list(cache.glob("*/.tmp-*")), "no temporary file is left behind"
    after = Built(projects[0], tmp_path / "dist-after", str(cache))
    assert (after.cached, after.compiled) == (150, 0)


def test_the_cache_can_be_turned_off_or_moved_by_the_option(tmp_path: Path) -> None:
    project = make_project(tmp_path, shapes(5), 'build-cache = "build/ffm-cache"\n')
    off = Built(project, tmp_path / "dist1", "off")
    assert (off.cache, off.cached, off.compiled) == ("off", 0, 5)
    assert not (project / "build" / "ffm-cache").exists()
    moved = Built(project, tmp_path / "dist2", "")  # (no FFM_BUILD_CACHE: the option)
    assert moved.cache == str(project / "build" / "ffm-cache")
    assert list((project / "build" / "ffm-cache").glob("*/*.img"))


def test_the_build_cache_option_is_checked() -> None:
    with pytest.raises(
        ConfigError, match=r"Option `build-cache` in `t` must be a folder .* or \"off\", not 3"
    ):
        parse_config({"build-cache": 3}, "t")
    assert parse_config({"build-cache": "off"}, "t").build_cache == "off"


def test_where_the_cache_is(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FFM_BUILD_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.resolve_cache_dir(None, "/project") == str(tmp_path / "xdg" / "hatch-ffm")
    assert _cache.resolve_cache_dir("c", "/project") == "/project/c"
    assert _cache.resolve_cache_dir("off", "/project") is None
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _cache.resolve_cache_dir(None, "/p") == str(tmp_path / "home" / ".cache" / "hatch-ffm")
    monkeypatch.setenv("FFM_BUILD_CACHE", "OFF")
    assert _cache.resolve_cache_dir("c", "/project") is None
    monkeypatch.setenv("FFM_BUILD_CACHE", "/elsewhere")
    assert _cache.resolve_cache_dir("c", "/project") == "/elsewhere"


def session(count: int) -> RegistrationSession:
    """The first ``count`` of :func:`shapes`, registered."""
    layouts = dict(
        zip(
            CODES,
            [
                JAVA_INT,
                JAVA_LONG,
                JAVA_DOUBLE,
                JAVA_FLOAT,
                ADDRESS,
                JAVA_SHORT,
                JAVA_BYTE,
                JAVA_CHAR,
                JAVA_BOOLEAN,
            ],
            strict=True,
        )
    )
    registrations = RegistrationSession(("x86_64-linux",))
    for code in shapes(count):
        result, _, params = code.partition(":")
        args = [layouts[c] for c in params]
        registrations.add(
            FunctionDescriptor.of_void(*args)
            if result == "V"
            else FunctionDescriptor.of(layouts[result], *args),
            (),
        )
    return registrations


def build_here(tmp_path: Path, cache: Path, name: str, count: int = 3, pool: int = 256) -> _build.BuiltStubs:
    out = tmp_path / name
    out.mkdir()
    return build_stubs(
        session(count).registrations.values(),
        ("x86_64-linux",),
        "pkg",
        str(out),
        upcall_pool_size=pool,
        cache_dir=str(cache),
    )


@pytest.mark.parametrize(
    ("module", "name", "value"),
    [
        (_build, "GENERATOR", "hatch-ffm 99.0"),
        (_build, "FORMAT_VERSION", 99),
        (_build, "STUB_OPT_LEVEL", 2),
        (_cache, "code_fingerprint", lambda: "changed"),
        (llvmlite, "__version__", "0.0.1"),
        (llvmlite.binding, "llvm_version_info", (1, 0, 0)),
    ],
)
def test_what_changes_the_code_changes_the_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: object, name: str, value: object
) -> None:
    """hatch-ffm's version, the manifest format (the contract), the optimization level and
    the code that generates stubs are in the digest: a change compiles everything again."""
    cache = tmp_path / "cache"
    first = build_here(tmp_path, cache, "first")
    assert (first.cached, first.compiled) == (0, 3)
    assert build_here(tmp_path, cache, "again").cached == 3
    monkeypatch.setattr(module, name, value)
    changed = build_here(tmp_path, cache, "changed")
    assert (changed.cached, changed.compiled) == (0, 3)
    assert len(list(cache.glob("*/*.img"))) == 2


def test_several_processes_compile_the_same_objects_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FFM_BUILD_JOBS", "1")
    alone = build_here(tmp_path, tmp_path / "cache1", "alone", 200)
    monkeypatch.setenv("FFM_BUILD_JOBS", "3")
    together = build_here(tmp_path, tmp_path / "cache2", "together", 200)
    assert alone.parts >= 3 and alone.jobs == 1 and together.jobs > 1
    digests = [
        {name: hashlib.sha256(Path(path).read_bytes()).hexdigest() for name, path in b.files.items()}
        for b in (alone, together)
    ]
    assert digests[0] == digests[1]


def test_a_bad_number_of_jobs_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FFM_BUILD_JOBS", "two")
    with pytest.raises(ValueError, match=r"FFM_BUILD_JOBS must be a positive number of processes, not 'two'"):
        build_here(tmp_path, tmp_path / "cache", "out")


def test_parts_change_only_where_a_key_is_added() -> None:
    keys = sorted(hashlib.sha256(str(n).encode()).hexdigest() for n in range(3000))
    parts = split_parts(keys)
    assert [key for part in parts for key in part] == keys
    assert all(PART_MIN <= len(part) <= PART_MAX for part in parts[:-1])
    for added in ("0", "7" + keys[1500], "z"):
        grown = split_parts(sorted([*keys, added]))
        changed = [part for part in grown if part not in parts]
        assert 1 <= len(changed) <= 2 and any(added in part for part in changed), added
    assert split_parts(keys[:PART_MIN]) == [keys[:PART_MIN]]


def test_a_thousand_shapes(tmp_path: Path) -> None:
    project = make_project(tmp_path, shapes(1000))
    built = Built(project, tmp_path / "dist", str(tmp_path / "cache"))
    assert (built.cached, built.compiled) == (0, 1000)
    assert len(built.manifest.stubs) == 1000
    assert len(built.manifest.objects) >= 1000 // PART_MAX


@pytest.mark.slow
def test_ten_thousand_shapes(tmp_path: Path) -> None:
    project = make_project(tmp_path, shapes(10_000))
    built = Built(project, tmp_path / "dist", str(tmp_path / "cache"))
    assert (built.cached, built.compiled) == (0, 10_000)
    assert len(built.manifest.stubs) == 10_000


def _refused(*args: object) -> _build._Worker:
    raise AssertionError("this way to start a worker is not the one to take")


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "new interpreter"])
def test_workers_forked_or_started_compile_the_same_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fork: bool
) -> None:
    """Workers are forked from the build's process where that is safe (they need not import
    hatch_ffm and llvmlite again), else started with ``python -c``: the same objects."""
    monkeypatch.setenv("FFM_BUILD_JOBS", "1")
    alone = build_here(tmp_path, tmp_path / "cache1", "alone", 200)
    monkeypatch.setenv("FFM_BUILD_JOBS", "3")
    monkeypatch.setattr(_build, "_forkable", lambda: fork)
    monkeypatch.setattr(_build, "_spawn_worker" if fork else "_fork_worker", _refused)
    together = build_here(tmp_path, tmp_path / "cache2", "together", 200)
    assert together.jobs == 3
    assert all(
        Path(alone.files[name]).read_bytes() == Path(path).read_bytes()
        for name, path in together.files.items()
    )


@pytest.mark.parametrize(("fork", "jobs"), [(True, 2), (False, 1)], ids=["forked", "new interpreter"])
def test_a_forked_worker_helps_with_fewer_shapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fork: bool, jobs: int
) -> None:
    """A forked worker starts in milliseconds: it helps from ``PARALLEL_FROM_FORKED`` call
    shapes on, a new interpreter from ``PARALLEL_FROM``."""
    monkeypatch.setenv("FFM_BUILD_JOBS", "2")
    monkeypatch.setattr(_build, "_forkable", lambda: fork)
    built = build_here(tmp_path, tmp_path / "cache", "out", 100)
    assert built.parts >= 2 and _build.PARALLEL_FROM_FORKED <= 100 < _build.PARALLEL_FROM
    assert built.jobs == jobs


def test_no_worker_is_forked_while_another_thread_runs() -> None:
    """A forked child has only the thread that forked: with another thread (which may hold
    a lock), workers are started as new interpreters."""
    import threading

    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not _build._forkable()
    finally:
        release.set()
        other.join()


def _dies(*args: object) -> None:
    raise SystemExit(3)


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "new interpreter"])
def test_a_worker_that_fails_leaves_its_parts_to_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fork: bool
) -> None:
    monkeypatch.setenv("FFM_BUILD_JOBS", "2")
    monkeypatch.setattr(_build, "_forkable", lambda: fork)
    monkeypatch.setattr(_build, "_serve", _dies)  # (in a forked worker)
    monkeypatch.setattr(_build, "_WORKER", "import sys; sys.exit(3)")
    said: list[str] = []
    out = tmp_path / "out"
    out.mkdir()
    built = build_stubs(
        session(200).registrations.values(), ("x86_64-linux",), "pkg", str(out), report=said.append
    )
    assert (built.compiled, built.jobs) == (200, 1)
    assert len(said) == 1
    assert re.fullmatch(r"a process compiling stubs failed \(.*\); compiling its part in this one", said[0])


def forge(cache: Path) -> Path:
    """What another user who can write to ``cache`` can do: replace a part's entry by another
    part's object, with a header that matches it (the header proves integrity, not origin)."""
    entries = sorted(cache.glob("*/*.img"))
    assert len(entries) >= 2
    entries[0].write_bytes(entries[1].read_bytes())
    return entries[0]


def test_a_cache_other_users_can_write_to_is_not_used(tmp_path: Path) -> None:
    """A folder anyone can write to (as /tmp) could hold another user's objects: the build
    does not read it, says so, and compiles everything (the wheel is right)."""
    cache = tmp_path / "shared"
    project = make_project(tmp_path, shapes(100))
    first = Built(project, tmp_path / "dist1", str(cache))
    forge(cache)
    cache.chmod(0o777)
    second = Built(project, tmp_path / "dist2", str(cache))
    assert f"not using the build cache {cache}: other users can write to it (mode 0o777)" in second.log
    assert "chmod go-w" in second.log
    assert (second.cached, second.compiled) == (0, 100)
    assert second.files == first.files


def test_a_subfolder_other_users_can_write_to_is_not_read(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    project = make_project(tmp_path, shapes(100))
    first = Built(project, tmp_path / "dist1", str(cache))
    forged = forge(cache)
    forged.parent.chmod(0o777)
    second = Built(project, tmp_path / "dist2", str(cache))
    assert f"cannot read build cache entry {forged}" in second.log
    assert "other users can write to it (mode 0o777)" in second.log
    assert second.files == first.files


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a folder to another user")
def test_a_cache_of_another_user_is_not_used(tmp_path: Path) -> None:
    cache = tmp_path / "theirs"
    project = make_project(tmp_path, shapes(100))
    first = Built(project, tmp_path / "dist1", str(cache))
    forge(cache)
    os.chown(cache, 65534, 65534)
    second = Built(project, tmp_path / "dist2", str(cache))
    assert f"not using the build cache {cache}: it belongs to another user (uid 65534)" in second.log
    assert second.files == first.files


def test_a_symlink_to_a_folder_others_can_write_to_is_not_used(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    project = make_project(tmp_path, shapes(100))
    first = Built(project, tmp_path / "dist1", str(shared))
    forge(shared)
    shared.chmod(0o1777)  # (sticky, as /tmp: others still add entries)
    link = tmp_path / "mine"
    link.symlink_to(shared)
    second = Built(project, tmp_path / "dist2", str(link))
    assert f"not using the build cache {link}: other users can write to it (mode 0o1777)" in second.log
    assert second.files == first.files


def test_a_cache_that_is_a_file_is_reported_once(tmp_path: Path) -> None:
    said: list[str] = []
    cache = tmp_path / "file"
    cache.write_text("not a folder")
    out = tmp_path / "out"
    out.mkdir()
    built = build_stubs(
        session(200).registrations.values(),
        ("x86_64-linux",),
        "pkg",
        str(out),
        cache_dir=str(cache),
        report=said.append,
    )
    assert built.parts > 2 and built.compiled == 200
    assert len(said) == 1, said
    assert re.fullmatch(
        rf"cannot use the build cache {re.escape(str(cache))} \(.*Not a directory.*\); building "
        r"without it \(set FFM_BUILD_CACHE=off, or to another folder\)",
        said[0],
    )


def test_a_read_only_cache_is_read_and_not_written(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    build_here(tmp_path, cache, "first", 200)
    entries = sorted(cache.glob("*/*.img"))
    (entries[0]).unlink()
    for folder in (cache, *{entry.parent for entry in entries}):
        folder.chmod(0o555)
    said: list[str] = []
    out = tmp_path / "out"
    out.mkdir()
    try:
        built = build_stubs(
            session(200).registrations.values(),
            ("x86_64-linux",),
            "pkg",
            str(out),
            cache_dir=str(cache),
            report=said.append,
        )
    finally:
        for folder in (cache, *{entry.parent for entry in entries}):
            folder.chmod(0o755)
    if os.geteuid() != 0:  # (root writes anyway)
        assert len(said) == 1 and said[0].startswith(f"cannot write to the build cache {cache} ")
    assert 0 < built.compiled < 200 and built.cached + built.compiled == 200


@pytest.mark.parametrize("value", ["²", "0", "-1", "abc", "1.5", ""])
def test_every_bad_number_of_jobs_gets_the_same_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("FFM_BUILD_JOBS", value)
    if not value:
        assert build_here(tmp_path, tmp_path / "cache", "out").jobs == 1  # (unset: the default)
        return
    with pytest.raises(
        ValueError, match=rf"FFM_BUILD_JOBS must be a positive number of processes, not '{re.escape(value)}'"
    ):
        build_here(tmp_path, tmp_path / "cache", "out")


def test_helpers_do_not_import_the_projects_modules(tmp_path: Path) -> None:
    """A helper process is ``python -c`` started in the build's folder, the project: a module
    of the project named like one of the standard library's (``struct.py``) is not what it
    imports."""
    project = make_project(tmp_path, shapes(200))
    (project / "struct.py").write_text("raise SystemExit('the project struct.py was imported')\n")
    (project / "re.py").write_text("raise SystemExit('the project re.py was imported')\n")
    result = build_wheel(project, tmp_path / "dist", env={"FFM_BUILD_CACHE": "off", "FFM_BUILD_JOBS": "2"})
    log = result.stdout + result.stderr
    assert "a process compiling stubs failed" not in log
    assert "the project" not in log
    assert "200 compiled in 2 processes" in log


@pytest.mark.parametrize("failure", ["exits", "cannot start"])
def test_helpers_that_fail_are_reported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    monkeypatch.setenv("FFM_BUILD_JOBS", "4")
    monkeypatch.setattr(_build, "_forkable", lambda: False)  # (new interpreters: what can fail here)
    if failure == "exits":
        monkeypatch.setattr(_build, "_WORKER", "import sys; sys.exit(3)")
    else:
        monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    said: list[str] = []
    out = tmp_path / "out"
    out.mkdir()
    built = build_stubs(
        session(400).registrations.values(), ("x86_64-linux",), "pkg", str(out), report=said.append
    )
    assert (built.compiled, built.jobs) == (400, 1)
    assert len(said) == 1, said
    if failure == "exits":
        assert re.fullmatch(
            r"a process compiling stubs failed \(.*\); compiling its part in this one", said[0]
        )
    else:
        assert said[0] == (
            f"cannot start a process to compile stubs in ([Errno 2] No such file or directory: "
            f"'{tmp_path / 'no-such-python'}'); compiling them in this one"
        )


def test_another_upcall_pool_size_compiles_again(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert build_here(tmp_path, cache, "first", pool=256).compiled == 3
    assert build_here(tmp_path, cache, "again", pool=256).cached == 3
    assert build_here(tmp_path, cache, "other", pool=16).compiled == 3
