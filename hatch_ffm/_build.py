"""From IR to files: compile one object per target and write its manifest, for a wheel's
stubs (:func:`build_stubs`) and for ``ffm_runtime``'s accelerators
(:func:`write_accelerators`; ``python -m hatch_ffm._build DIRECTORY`` writes them)."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ffm_runtime._locks import ForkSafeLock
from ffm_runtime._manifest import FORMAT_VERSION, GENERATOR, Manifest, StubObject, UpcallPool
from ffm_runtime._targets import TARGETS

from ._cache import BuildCache
from ._config import DEFAULT_UPCALL_POOL_SIZE
from ._ir import build_accelerator_module, build_stub_module, stub_symbol
from ._lowering import LoweredSignature, LoweredUpcall
from ._registration import Registration, UpcallRegistration

__all__ = [
    "BuiltStubs",
    "build_stubs",
    "compile_part",
    "resolve_targets",
    "split_parts",
    "write_accelerators",
]


class TargetError(ValueError):
    """A requested target is unknown or not supported yet."""


def resolve_targets(requested: Iterable[str], host: str, option_path: str) -> tuple[str, ...]:
    """Turn the ``targets`` option into target names (``native`` is the build machine)."""
    targets: list[str] = []
    for name in requested:
        target = host if name == "native" else name
        if target not in TARGETS:
            raise TargetError(
                f"Option `targets` in `{option_path}`: target {name!r}"
                + (f" (the build machine, {host})" if name == "native" else "")
                + " is not supported yet; supported: "
                + ", ".join(sorted(TARGETS))
            )
        if target not in targets:
            targets.append(target)
    return tuple(targets)


#: LLVM's code generation level for stubs: 0, measured against 2 (which is what 1 and 3
#: make of code without IR passes): 7 times faster to compile, and 2-4% more instructions
#: per call (callgrind, a call of abs, cos, strlen from Python: 25-65 instructions of about
#: 1,500)
STUB_OPT_LEVEL = 0
#: where parts end (see :func:`split_parts`): at a key whose hash is a multiple of
#: ``PART_SIZE`` once a part has ``PART_MIN`` keys, or of ``PART_LONG_EVERY`` once it has
#: ``PART_LONG``, and anyway at ``PART_MAX``: parts of 16 to 96 call shapes, about 35
PART_SIZE = 32
PART_MIN = 16
PART_LONG, PART_LONG_EVERY = 48, 8
PART_MAX = 96
#: below this many call shapes to compile, no other process is started (starting one
#: takes longer than compiling them); a forked one (see :func:`_forkable`) starts in
#: milliseconds: from ``PARALLEL_FROM_FORKED``
PARALLEL_FROM = 128
PARALLEL_FROM_FORKED = 32
#: the environment variable that sets how many processes compile at once (default: the
#: CPUs this process may use)
ENV_JOBS = "FFM_BUILD_JOBS"


@dataclass(frozen=True)
class BuiltStubs:
    manifest: Manifest
    #: file name -> absolute path, everything under ``<package>/_ffm/``
    files: dict[str, str]
    #: other top-level package -> path of its manifest (for ``<that package>/_ffm/``): a
    #: manifest speaks only for the package it is in, so each other package this wheel
    #: enables for native access gets one of its own, without stubs
    other_manifests: dict[str, str]
    #: how many parts (objects) each target's stubs are in
    parts: int = 1
    #: call shapes (stubs and upcall pools) times targets taken from the build cache, and
    #: compiled
    cached: int = 0
    compiled: int = 0
    #: processes that compiled (this one included)
    jobs: int = 1


def split_parts(keys: list[str]) -> list[list[str]]:
    """Sorted ``keys`` in consecutive parts, each compiled into an object of its own.  Where
    a part ends depends on the hashes of the keys there (see :data:`PART_SIZE`), not on
    positions, so adding a shape changes the part it falls in (rarely the next as well):
    the other parts, and their compiled objects in the cache, stay the same."""
    parts: list[list[str]] = [[]]
    for key in keys:
        current = parts[-1]
        if len(current) >= PART_MIN:
            mark = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")
            if (
                mark % PART_SIZE == 0
                or (len(current) >= PART_LONG and mark % PART_LONG_EVERY == 0)
                or len(current) >= PART_MAX
            ):
                parts.append(current := [])
        current.append(key)
    return [part for part in parts if part]


def compile_part(
    signatures: list[LoweredSignature],
    upcalls: list[LoweredUpcall],
    triple: str,
    pool_size: int,
    opt: int,
) -> bytes:
    """One part's image for ``triple`` (run in this process or another)."""
    from ._compile import compile_image
    from ._ir._text import module_text

    # The IR is hundreds of thousands of objects, linked both ways: the cyclic garbage
    # collector would go through them again and again while they are made (a fifth of the
    # time), and finds them garbage only once the text is made.  It waits meanwhile.
    collecting = gc.isenabled()
    gc.disable()
    try:
        ir_text = module_text(build_stub_module(signatures, triple, upcalls, pool_size))
    finally:
        if collecting:
            gc.enable()
    return compile_image(ir_text, triple, opt)


def _jobs() -> int:
    value = os.environ.get(ENV_JOBS, "").strip()
    if value:
        jobs = int(value) if value.isdecimal() else 0  # ("²" is a digit, and no number)
        if jobs < 1:
            raise ValueError(
                f"the environment variable {ENV_JOBS} must be a positive number of processes, not {value!r}"
            )
        return jobs
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


_Task = tuple[list[LoweredSignature], list[LoweredUpcall], str, int, int]


class _Plan:
    """Each part's object for each target: found in the cache, or a task to compile."""

    def __init__(self, cache: BuildCache | None) -> None:
        import llvmlite
        import llvmlite.binding as llvm

        from ._cache import code_fingerprint

        self.cache = cache
        #: what every digest covers besides the part's shapes
        self.context: dict[str, object] = {
            "generator": GENERATOR,
            "format": FORMAT_VERSION,
            "code": code_fingerprint(),
            "llvmlite": llvmlite.__version__,
            "llvm": ".".join(map(str, llvm.llvm_version_info)),
            "opt": STUB_OPT_LEVEL,
        }
        #: (target, file name, digest, first key or None), in the manifest's order
        self.objects: list[tuple[str, str, str, str | None]] = []
        self.found: dict[str, bytes] = {}
        self.tasks: dict[str, _Task] = {}
        self.weights: dict[str, int] = {}
        #: call shapes times targets found in the cache, and to compile
        self.cached = self.compiled = 0

    def add(
        self,
        target: str,
        file_name: str,
        part: list[Registration | UpcallRegistration],
        first: str | None,
        pool_size: int,
    ) -> None:
        from ._cache import part_digest

        triple = TARGETS[target].triple
        context = {**self.context, "triple": triple, "pool": pool_size}
        digest = part_digest(context, (r.key for r in part))
        self.objects.append((target, file_name, digest, first))
        data = None if self.cache is None else self.cache.get(digest)
        if data is not None:
            self.found[digest] = data
            self.cached += len(part)
            return
        self.compiled += len(part)
        self.tasks[digest] = (
            [r.signatures[target] for r in part if isinstance(r, Registration)],
            [r.signatures[target] for r in part if isinstance(r, UpcallRegistration)],
            triple,
            pool_size,
            STUB_OPT_LEVEL,
        )
        # (an upcall's pool of trampolines takes longer than a stub)
        self.weights[digest] = sum(1 if isinstance(r, Registration) else 1 + pool_size // 32 for r in part)


class _Compiler:
    """Compiles tasks in this process and in ``workers`` others (``python -c``, see
    :func:`_serve`), each fed by a thread of this one: each process takes the largest task
    left (so that the last ones, which one process may compile while the others have
    finished, are the smallest).  (Not ``multiprocessing``: its "spawn" runs the main
    module again in every child, which a build frontend's script may not allow.)"""

    def __init__(
        self, tasks: dict[str, _Task], weights: dict[str, int], report: Callable[[str], None]
    ) -> None:
        from collections import deque

        self.tasks = tasks
        self.queue = deque(sorted(tasks, key=lambda name: (-weights[name], name)))
        self.results: dict[str, bytes] = {}
        self.lock = ForkSafeLock()
        self.report = report
        #: workers that compiled something
        self.helped = 0
        #: whether a worker's failure was reported (once: the others fail the same way)
        self.failed = False

    def take(self) -> str | None:
        with self.lock:
            return self.queue.popleft() if self.queue else None

    def tell(self, message: str) -> None:
        """Report the first failure of a worker."""
        with self.lock:
            first, self.failed = not self.failed, True
        if first:
            self.report(message)

    def run(self, workers: int) -> tuple[dict[str, bytes], int]:
        """The objects, and how many processes compiled them."""
        threads = [
            threading.Thread(target=self.feed, args=(worker,), name=f"hatch-ffm compiler {n}")
            for n, worker in enumerate(self.start(workers))
        ]
        for thread in threads:
            thread.start()
        try:
            while (name := self.take()) is not None:
                data = compile_part(*self.tasks[name])
                with self.lock:
                    self.results[name] = data
        finally:
            for thread in threads:
                thread.join()
        for name, task in self.tasks.items():  # (the part a failed worker was compiling)
            if name not in self.results:
                self.results[name] = compile_part(*task)
        return self.results, 1 + self.helped

    def start(self, workers: int) -> list[_Worker]:
        """Start ``workers`` processes (forked from this one where that is safe, see
        :func:`_forkable`; else new interpreters), before the threads that feed them."""
        fork = _forkable()
        started: list[_Worker] = []
        for _ in range(workers):
            try:
                started.append(_fork_worker(started) if fork else _spawn_worker())
            except OSError as exc:
                self.report(f"cannot start a process to compile stubs in ({exc}); compiling them in this one")
                break
        return started

    def feed(self, child: _Worker) -> None:
        """A thread's loop: send tasks to a worker, one at a time, and keep its objects."""
        compiled = 0
        try:
            while (name := self.take()) is not None:
                pickle.dump((name, self.tasks[name]), child.stdin)
                child.stdin.flush()
                done, data = pickle.load(child.stdout)
                if done != name or not isinstance(data, bytes):
                    raise RuntimeError(data)
                with self.lock:
                    self.results[name] = data
                compiled += 1
            pickle.dump(None, child.stdin)
        except (OSError, EOFError, pickle.PickleError, RuntimeError) as exc:
            self.tell(
                f"a process compiling stubs failed ({exc or type(exc).__name__}); compiling its "
                f"part in this one"
            )
            child.kill()
        finally:
            for stream in (child.stdin, child.stdout):
                with contextlib.suppress(OSError):  # (a pipe to a process that died)
                    stream.close()
            child.wait()
        if compiled:
            with self.lock:
                self.helped += 1


@dataclass
class _Worker:
    """A process compiling parts: its pipes, and how to end it."""

    stdin: IO[bytes]
    stdout: IO[bytes]
    wait: Callable[[], object]
    kill: Callable[[], object]


#: what a started worker runs: its arguments are this process's sys.path, its own before
#: anything is imported (``-c`` puts the current folder, the project, first: its ``struct.py``
#: is not the standard library's); then it reads (name, task) pairs until None, each answered
#: with (name, image) or (None, the error's text)
_WORKER = "import sys; sys.path[:] = sys.argv[1:]; import hatch_ffm._build as b; b._serve()"


def _spawn_worker() -> _Worker:
    """A worker in a new interpreter (it imports hatch_ffm and llvmlite first)."""
    child = subprocess.Popen(
        [sys.executable, "-c", _WORKER, *map(str, sys.path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert child.stdin is not None and child.stdout is not None
    return _Worker(child.stdin, child.stdout, child.wait, child.kill)


def _forkable() -> bool:
    """Whether workers may be forked from this process, which has imported what they need
    (a new interpreter takes a tenth of a second to): on Linux, with no other thread (a
    forked child has only the thread that forked: a lock another thread held would stay
    held)."""
    return sys.platform.startswith("linux") and threading.active_count() == 1


def _fork_worker(others: list[_Worker]) -> _Worker:
    """A worker forked from this process; ``others``: the workers forked before (the child
    closes its copies of their pipes, so that they see the end of theirs)."""
    import signal

    from ._compile import compile_object  # noqa: F401  # (imported once, for every child)
    from ._ir._text import module_text  # noqa: F401

    tasks, to_child = os.pipe()
    from_child, results = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        for descriptor in (tasks, to_child, from_child, results):
            os.close(descriptor)
        raise
    if pid == 0:  # the child: it never returns (os._exit, neither cleanup nor atexit)
        code = 1
        try:
            os.close(to_child)
            os.close(from_child)
            for other in others:
                other.stdin.close()
                other.stdout.close()
            gc.freeze()  # (what the parent made stays: the collector need not look at it)
            with open(tasks, "rb") as stdin, open(results, "wb") as stdout:
                _serve(stdin, stdout)
            code = 0
        finally:
            os._exit(code)
    os.close(tasks)
    os.close(results)
    return _Worker(
        open(to_child, "wb"),
        open(from_child, "rb"),
        lambda: os.waitpid(pid, 0),
        lambda: os.kill(pid, signal.SIGKILL),
    )


def _serve(stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> None:
    """A worker's loop (see :class:`_Compiler`), on its standard input and output."""
    stdin = sys.stdin.buffer if stdin is None else stdin
    stdout = sys.stdout.buffer if stdout is None else stdout
    while (message := pickle.load(stdin)) is not None:
        name, task = message
        try:
            answer: tuple[str | None, object] = (name, compile_part(*task))
        except Exception as exc:  # (reported by the parent, which compiles the part itself)
            answer = (None, f"{type(exc).__name__}: {exc}")
        pickle.dump(answer, stdout)
        stdout.flush()


def build_stubs(
    registrations: Iterable[Registration],
    targets: tuple[str, ...],
    package: str,
    out_dir: str,
    enable_native_access: tuple[str, ...] = (),
    packages: tuple[str, ...] = (),
    upcalls: Iterable[UpcallRegistration] = (),
    upcall_pool_size: int = DEFAULT_UPCALL_POOL_SIZE,
    cache_dir: str | None = None,
    report: Callable[[str], None] = lambda message: None,
) -> BuiltStubs:
    """Compile all registrations for each target into ``out_dir``; write the manifest.

    ``packages`` are the wheel's top-level packages (``package`` is always one of them);
    ``enable_native_access`` may name only those.  Each upcall shape gets
    ``upcall_pool_size`` trampolines.  The shapes are compiled in parts (:func:`split_parts`),
    an object each, taken from the build cache in ``cache_dir`` when there (``None``: no
    cache); ``report`` receives what the build should tell (a damaged cache entry, say)."""
    items: dict[str, Registration | UpcallRegistration] = {r.key: r for r in registrations}
    items.update((u.key, u) for u in upcalls)
    cache = None if cache_dir is None else BuildCache(cache_dir, report)
    try:
        return _build_stubs(
            items, targets, package, out_dir, enable_native_access, packages, upcall_pool_size, cache, report
        )
    finally:
        if cache is not None:
            cache.close()


def _build_stubs(
    items: dict[str, Registration | UpcallRegistration],
    targets: tuple[str, ...],
    package: str,
    out_dir: str,
    enable_native_access: tuple[str, ...],
    packages: tuple[str, ...],
    upcall_pool_size: int,
    cache: BuildCache | None,
    report: Callable[[str], None],
) -> BuiltStubs:
    parts = split_parts(sorted(items))
    plan = _Plan(cache)
    for target in targets:
        for index, part in enumerate(parts):
            plan.add(
                target,
                f"stubs-{target}.img" if len(parts) == 1 else f"stubs-{target}-{index}.img",
                [items[key] for key in part],
                None if len(parts) == 1 else part[0],
                upcall_pool_size,
            )
    workers = min(_jobs(), len(plan.tasks)) - 1 if sys.executable else 0
    if sum(plan.weights.values()) < (PARALLEL_FROM_FORKED if _forkable() else PARALLEL_FROM):
        workers = 0
    made, jobs = _Compiler(plan.tasks, plan.weights, report).run(workers) if plan.tasks else ({}, 1)
    if cache is not None:
        for digest, data in made.items():
            cache.put(digest, data)
    objects: list[StubObject] = []
    files: dict[str, str] = {}
    for target, file_name, digest, first in plan.objects:
        data = plan.found[digest] if digest in plan.found else made[digest]
        path = os.path.join(out_dir, file_name)
        with open(path, "wb") as handle:
            handle.write(data)
        files[file_name] = path
        objects.append(
            StubObject(target, TARGETS[target].triple, file_name, hashlib.sha256(data).hexdigest(), first)
        )
    regs = [r for r in items.values() if isinstance(r, Registration)]
    ups = [r for r in items.values() if isinstance(r, UpcallRegistration)]
    own = tuple(u for u in enable_native_access if u == package)
    manifest = Manifest(
        package,
        GENERATOR,
        tuple(objects),
        {r.key: stub_symbol(r.key) for r in regs},
        own,
        packages,
        {u.key: UpcallPool(stub_symbol(u.key), upcall_pool_size) for u in ups},
    )
    files["manifest.json"] = _write(manifest, os.path.join(out_dir, "manifest.json"))
    others = {}
    for unit in enable_native_access:
        if unit != package:
            other = Manifest(unit, GENERATOR, (), {}, (unit,), packages)
            others[unit] = _write(other, os.path.join(out_dir, f"manifest-{unit}.json"))
    return BuiltStubs(manifest, files, others, len(parts), plan.cached, plan.compiled, jobs)


def _write(manifest: Manifest, path: str) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(manifest.to_json())
    return path


def write_accelerators(directory: Path) -> dict[str, object]:
    """Compile ``ffm_runtime``'s accelerators for every target into ``directory``, with their
    manifest (``ffm_runtime._accel`` reads it); returns the manifest."""
    from ._compile import compile_image

    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("accel-*.o"):  # (objects, before images)
        stale.unlink()
    objects = {}
    for target, triple in sorted((t.name, t.triple) for t in TARGETS.values()):
        data = compile_image(str(build_accelerator_module(triple)), triple)
        name = f"accel-{target}.img"
        (directory / name).write_bytes(data)
        objects[target] = {"file": name, "sha256": hashlib.sha256(data).hexdigest()}
    manifest: dict[str, object] = {"format": 2, "objects": objects}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


if __name__ == "__main__":
    import sys

    write_accelerators(Path(sys.argv[1]))
