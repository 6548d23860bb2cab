"""Where stubs come from: the manifests of installed packages, loaded on first use.

Every ``<dir>/<package>/_ffm/manifest.json`` below a ``sys.path`` folder is a
stub manifest.  When a registration key is first needed, the object file that
holds its stub is hash-checked against the manifest, loaded and relocated,
exactly once per object file even when many threads link at once.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass

from . import _abi, _elf, _native
from ._errors import StubLoadError
from ._loader import LoadedObject, load_object
from ._locks import ForkSafeLock
from ._manifest import MANIFEST_DIR, MANIFEST_NAME, Manifest

__all__ = ["StubRegistry", "registry"]

#: ELF machine of each target's objects
_MACHINES = {"x86_64-linux": _elf.EM_X86_64, "aarch64-linux": _elf.EM_AARCH64}


@dataclass(frozen=True)
class _Source:
    folder: str
    manifest: Manifest


class StubRegistry:
    """Index of registration keys to stubs, over every manifest on ``sys.path``."""

    def __init__(self) -> None:
        self._lock = ForkSafeLock(reentrant=True)
        self._scanned_path: tuple[str, ...] | None = None
        self._seen: set[str] = set()
        self._keys: dict[str, _Source] = {}
        self._objects: dict[str, LoadedObject] = {}
        self._enabled: set[str] = set()
        self._mentioned: set[str] = set()

    def _scan(self) -> None:
        for entry in list(sys.path):
            folder = os.path.abspath(entry or os.curdir)
            try:
                children = list(os.scandir(folder))
            except OSError:
                continue
            for child in children:
                manifest_path = os.path.join(child.path, MANIFEST_DIR, MANIFEST_NAME)
                if manifest_path in self._seen or not os.path.isfile(manifest_path):
                    continue
                try:
                    self.add_manifest(manifest_path)
                finally:  # after its keys: a child forked before this reads it again
                    self._seen.add(manifest_path)
        self._scanned_path = tuple(sys.path)

    def add_manifest(self, manifest_path: str) -> None:
        """Index one manifest file (raises :class:`StubLoadError` if it is malformed)."""
        with open(manifest_path, "rb") as handle:
            manifest = Manifest.from_json(handle.read(), manifest_path)
        source = _Source(os.path.dirname(manifest_path), manifest)
        with self._lock:
            for key in manifest.stubs:
                self._keys.setdefault(key, source)
            self._enabled.update(manifest.enable_native_access)
            self._mentioned.update(manifest.enable_native_access)
            self._mentioned.add(manifest.package)

    def find(self, key: str) -> _Source | None:
        """The manifest providing ``key``; rescans ``sys.path`` once on a miss."""
        with self._lock:
            source = self._keys.get(key)
            if source is None:
                self._scan()
                source = self._keys.get(key)
            return source

    def native_access_units(self) -> tuple[frozenset[str], frozenset[str]]:
        """(units some manifest enables, units some manifest mentions), over all of sys.path."""
        with self._lock:
            if self._scanned_path != tuple(sys.path):
                self._scan()
            return frozenset(self._enabled), frozenset(self._mentioned)

    def known_keys(self) -> list[str]:
        with self._lock:
            if self._scanned_path is None:
                self._scan()
            return sorted(self._keys)

    def stub_address(self, key: str, target: str, bound: bool) -> int | None:
        """Address of the stub for ``key`` (bound or unbound variant), or ``None`` if unknown."""
        source = self.find(key)
        if source is None:
            return None
        stub = source.manifest.object_for(target)
        if stub is None:
            raise StubLoadError(
                f"package {source.manifest.package!r} has stubs for "
                f"{', '.join(o.target for o in source.manifest.objects) or 'no target'} "
                f"but not for {target}; rebuild its wheel with targets including {target!r}",
                source.folder)
        path = os.path.join(source.folder, stub.file)
        with self._lock:
            loaded = self._objects.get(path)
            if loaded is None:
                loaded = self._load(path, stub.sha256, _MACHINES.get(target, 0))
                self._objects[path] = loaded
        symbol = source.manifest.stubs[key] + (
            _abi.STUB_BOUND_SUFFIX if bound else _abi.STUB_UNBOUND_SUFFIX)
        address = loaded.symbols.get(symbol)
        if address is None:
            raise StubLoadError(f"stub object {path} lacks the symbol {symbol} its manifest lists",
                                path)
        return address

    @staticmethod
    def _load(path: str, digest: str, machine: int = _elf.EM_X86_64) -> LoadedObject:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise StubLoadError(f"cannot read stub object {path}: {exc}", path) from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise StubLoadError(
                f"stub object {path} does not match its manifest (sha256 {actual}, expected "
                f"{digest}); the file was modified after the wheel was built: reinstall the package",
                path)
        return load_object(data, _native.resolve_import, path, machine)


registry = StubRegistry()
