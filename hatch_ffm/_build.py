"""From IR to files: compile one object per target and write its manifest, for a wheel's
stubs (:func:`build_stubs`) and for ``ffm_runtime``'s accelerators
(:func:`write_accelerators`; ``python -m hatch_ffm._build DIRECTORY`` writes them)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ffm_runtime._manifest import GENERATOR, Manifest, StubObject, UpcallPool
from ffm_runtime._targets import TARGETS

from ._config import DEFAULT_UPCALL_POOL_SIZE
from ._ir import build_accelerator_module, build_stub_module, stub_symbol
from ._registration import Registration, UpcallRegistration

__all__ = ["BuiltStubs", "build_stubs", "resolve_targets", "write_accelerators"]


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


@dataclass(frozen=True)
class BuiltStubs:
    manifest: Manifest
    #: file name -> absolute path, everything under ``<package>/_ffm/``
    files: dict[str, str]
    #: other top-level package -> path of its manifest (for ``<that package>/_ffm/``): a
    #: manifest speaks only for the package it is in, so each other package this wheel
    #: enables for native access gets one of its own, without stubs
    other_manifests: dict[str, str]


def build_stubs(
    registrations: Iterable[Registration],
    targets: tuple[str, ...],
    package: str,
    out_dir: str,
    enable_native_access: tuple[str, ...] = (),
    packages: tuple[str, ...] = (),
    upcalls: Iterable[UpcallRegistration] = (),
    upcall_pool_size: int = DEFAULT_UPCALL_POOL_SIZE,
) -> BuiltStubs:
    """Compile all registrations for each target into ``out_dir``; write the manifest.

    ``packages`` are the wheel's top-level packages (``package`` is always one of them);
    ``enable_native_access`` may name only those.  Each upcall shape gets
    ``upcall_pool_size`` trampolines."""
    from ._compile import compile_object

    regs = sorted(registrations, key=lambda r: r.key)
    ups = sorted(upcalls, key=lambda r: r.key)
    objects = []
    files: dict[str, str] = {}
    for target in targets:
        triple = TARGETS[target].triple
        ir_text = str(
            build_stub_module(
                (r.signatures[target] for r in regs),
                triple,
                (u.signatures[target] for u in ups),
                upcall_pool_size,
            )
        )
        data = compile_object(ir_text, triple)
        file_name = f"stubs-{target}.o"
        path = os.path.join(out_dir, file_name)
        with open(path, "wb") as handle:
            handle.write(data)
        files[file_name] = path
        objects.append(StubObject(target, triple, file_name, hashlib.sha256(data).hexdigest()))
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
    return BuiltStubs(manifest, files, others)


def _write(manifest: Manifest, path: str) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(manifest.to_json())
    return path


def write_accelerators(directory: Path) -> dict[str, object]:
    """Compile ``ffm_runtime``'s accelerators for every target into ``directory``, with their
    manifest (``ffm_runtime._accel`` reads it); returns the manifest."""
    from ._compile import compile_object

    directory.mkdir(parents=True, exist_ok=True)
    objects = {}
    for target, triple in sorted((t.name, t.triple) for t in TARGETS.values()):
        data = compile_object(str(build_accelerator_module(triple)), triple)
        name = f"accel-{target}.o"
        (directory / name).write_bytes(data)
        objects[target] = {"file": name, "sha256": hashlib.sha256(data).hexdigest()}
    manifest: dict[str, object] = {"format": 1, "objects": objects}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


if __name__ == "__main__":
    import sys

    write_accelerators(Path(sys.argv[1]))
