"""Where stubs come from: the manifests of installed packages, read on first use.

Every ``<dir>/<package>/_ffm/manifest.json`` below a ``sys.path`` folder is a
stub manifest, read once.  When a registration key is first needed, the object
file that holds its stub is hash-checked against the manifest, loaded and
relocated, exactly once per object file even when many threads link at once.

**Other packages' mistakes stay theirs.**  A manifest that cannot be read
(malformed, truncated, of a newer format, not a file one can read) provides
nothing and stops nothing else: it is reported once, as a
:class:`StubLoadWarning` naming its path, and named again in the
:class:`MissingForeignRegistrationError` for any call shape that no readable
manifest provides.  Reading manifests never raises (a warnings filter that turns
the warning into an error makes the one call that read the manifest raise; the
registry is complete by then).  A call shape several packages provide is taken
from the first of them that can load it.

**Native access.**  A manifest speaks only for the package it is in: it can enable
that package and nothing else (the build hook gives each other package a wheel
enables a manifest of its own).  Other names, ``__main__`` included, are ignored
with a :class:`NativeAccessWarning` naming the manifest: writing into another
package's folder is what it takes to enable it.

**Fork.**  What the registry knows is an immutable :class:`_Index`, replaced
whole under the lock; loaded objects are recorded once loaded.  A child forked
in the middle of a scan or a load sees the state before it and does the work
again itself (see :mod:`._locks`).
"""

from __future__ import annotations

import os
import sys

from . import _bootstrap, _contract
from ._digest import sha256_hex
from ._errors import StubLoadError, StubLoadWarning
from ._loader import LoadedObject, load_image, load_object
from ._locks import ForkSafeLock
from ._manifest import MANIFEST_DIR, MANIFEST_NAME, Manifest, read_manifest
from ._records import Record
from ._targets import TARGETS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Final

__all__ = ["StubRegistry", "Unreadable", "registry"]

#: ELF machine of each target's objects


class _Source(Record):
    __slots__ = ("manifest", "path")

    def __init__(self, path: str, manifest: Manifest) -> None:
        self.path: Final = path
        self.manifest: Final = manifest

    @property
    def folder(self) -> str:
        return os.path.dirname(self.path)


class Unreadable(Record):
    """A manifest that could not be read, and why."""

    __slots__ = ("error", "package", "path")

    def __init__(self, path: str, package: str, error: StubLoadError) -> None:
        self.path: Final = path
        #: the folder it is in: the package it would describe
        self.package: Final = package
        self.error: Final = error


class _Refused(Record):
    """A unit a manifest lists in ``enable_native_access`` but cannot enable."""

    __slots__ = ("path", "unit", "why")

    def __init__(self, path: str, unit: str, why: str) -> None:
        self.path: Final = path
        self.unit: Final = unit
        self.why: Final = why


class _Index(Record):
    """Everything known from the manifests read so far; never changed, only replaced."""

    __slots__ = ("enabled", "mentioned", "refused", "scanned_path", "seen", "sources", "unreadable")

    def __init__(  # noqa: PLR0913, PLR0917  (a record: one argument per field)
        self,
        scanned_path: tuple[object, ...] | None = None,
        seen: frozenset[str] = frozenset(),
        sources: tuple[_Source, ...] = (),
        unreadable: tuple[Unreadable, ...] = (),
        enabled: frozenset[str] = frozenset(),
        mentioned: frozenset[str] = frozenset(),
        refused: tuple[_Refused, ...] = (),
    ) -> None:
        self.scanned_path: Final = scanned_path
        self.seen: Final = seen
        self.sources: Final = sources
        self.unreadable: Final = unreadable
        self.enabled: Final = enabled
        self.mentioned: Final = mentioned
        self.refused: Final = refused

    def scanned(self, path: tuple[object, ...]) -> _Index:
        """This index, as read for the ``sys.path`` entries ``path``."""
        return _Index(
            path,
            self.seen,
            self.sources,
            self.unreadable,
            self.enabled,
            self.mentioned,
            self.refused,
        )


def _build(
    scanned_path: tuple[object, ...] | None,
    seen: frozenset[str],
    sources: tuple[_Source, ...],
    unreadable: tuple[Unreadable, ...],
) -> _Index:
    # a package with a manifest of its own is decided by that manifest alone
    homes = {s.manifest.package: s.path for s in sources}
    homes.update((u.package, u.path) for u in unreadable if u.package not in homes)
    enabled: set[str] = set()
    refused: list[_Refused] = []
    for source in sources:
        manifest = source.manifest
        for unit in manifest.enable_native_access:
            if unit == manifest.package:
                enabled.add(unit)
                continue
            if unit == "__main__":
                why = "a wheel cannot enable scripts"
            elif unit not in manifest.packages:
                why = f"it is not a top-level package of this wheel ({', '.join(manifest.packages)})"
            elif unit in homes:
                why = f"it has a stub manifest of its own, {homes[unit]}"
            else:
                why = (
                    f"a manifest enables only the package it is in ({manifest.package}); "
                    f"{unit} needs {unit}/_ffm/manifest.json of its own"
                )
            refused.append(_Refused(source.path, unit, why))
    mentioned = set(homes)
    for source in sources:
        mentioned.update(source.manifest.packages)
    return _Index(
        scanned_path,
        seen,
        sources,
        unreadable,
        frozenset(enabled),
        frozenset(mentioned),
        tuple(refused),
    )


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _providing(index: _Index, key: str) -> tuple[_Source, ...]:
    """The sources of ``index`` that provide ``key`` (a look-up per manifest: building an
    index of every key would cost more than a first handle may, with 10,000 stubs)."""
    return tuple(s for s in index.sources if key in s.manifest.stubs or key in s.manifest.upcalls)


def _units_changed(old: _Index, new: _Index) -> None:
    """Forget the native-access decisions remembered (``_access``) when the units the
    manifests enable or mention changed."""
    if old.enabled != new.enabled or old.mentioned != new.mentioned:
        from ._access import forget_decisions

        forget_decisions()


class StubRegistry:
    """Index of registration keys to stubs, over every manifest on ``sys.path``."""

    def __init__(self) -> None:
        self._lock = ForkSafeLock()
        self._index = _Index()
        self._objects: dict[str, LoadedObject] = {}
        #: files and refusals already reported (a warning each)
        self._reported: set[tuple[str, ...]] = set()

    # -- reading manifests ------------------------------------------------------------
    def _refresh(self, force: bool = False) -> _Index:
        """The index, once the manifests of ``sys.path`` entries are read (again when
        ``sys.path`` changed, or ``force``); reports what is wrong with new ones."""
        index = self._index
        path = tuple(sys.path)
        if index.scanned_path == path and not force:
            return index
        with self._lock:
            old = self._index
            index = self._scan(old, path)
            self._index = index
            news = self._unreported(index)
        _units_changed(old, index)
        self._report(news)
        return index

    @staticmethod
    def _scan(index: _Index, path: tuple[object, ...]) -> _Index:
        seen = set(index.seen)
        sources: list[_Source] = []
        unreadable: list[Unreadable] = []
        for entry in path:
            if not isinstance(entry, str):  # the import system skips these too
                continue
            folder = os.path.abspath(entry or os.curdir)
            try:
                # only folders that can be packages: no stat of a file, a .dist-info and
                # the like (a sys.path folder holds hundreds)
                with os.scandir(folder) as entries:
                    children = sorted(
                        child.name for child in entries if child.name.isidentifier() and _is_folder(child)
                    )
            except OSError:
                continue
            for name in children:
                manifest_path = os.path.join(folder, name, MANIFEST_DIR, MANIFEST_NAME)
                if manifest_path in seen or not os.path.isfile(manifest_path):
                    continue
                seen.add(manifest_path)
                try:
                    sources.append(_Source(manifest_path, read_manifest(manifest_path)))
                except StubLoadError as exc:
                    unreadable.append(Unreadable(manifest_path, name, exc))
        if not sources and not unreadable:
            return index.scanned(path)
        return _build(
            path, frozenset(seen), index.sources + tuple(sources), index.unreadable + tuple(unreadable)
        )

    def add_manifest(self, manifest_path: str) -> None:
        """Index one manifest file (raises :class:`StubLoadError` if it cannot be read)."""
        source = _Source(os.path.abspath(manifest_path), read_manifest(manifest_path))
        with self._lock:
            index = self._index
            if source.path in index.seen:
                return
            old = index
            index = _build(
                index.scanned_path, index.seen | {source.path}, (*index.sources, source), index.unreadable
            )
            self._index = index
            news = self._unreported(index)
        _units_changed(old, index)
        self._report(news)

    def _unreported(self, index: _Index) -> list[Warning]:
        """Warnings for the problems of ``index`` not reported yet (called with the lock)."""
        from ._access import ENV_ENABLE, NativeAccessWarning

        news: list[Warning] = []
        for bad in index.unreadable:
            if ("unreadable", bad.path) not in self._reported:
                self._reported.add(("unreadable", bad.path))
                news.append(
                    StubLoadWarning(
                        f"skipping a stub manifest that cannot be read: {bad.error} (the call shapes "
                        f"only it provides are unavailable; everything else works)",
                        bad.path,
                    )
                )
        for refused in index.refused:
            if ("refused", refused.path, refused.unit) not in self._reported:
                self._reported.add(("refused", refused.path, refused.unit))
                news.append(
                    NativeAccessWarning(
                        f"the stub manifest {refused.path} lists {refused.unit!r} in "
                        f"enable_native_access, which it cannot enable: {refused.why}; ignored. A "
                        f"wheel enables only its own top-level packages; scripts (__main__) and "
                        f"other packages are enabled with {ENV_ENABLE}"
                    )
                )
        return news

    @staticmethod
    def _report(news: Iterable[Warning]) -> None:
        from ._access import warn_at_caller

        for warning in news:
            warn_at_caller(warning)

    # -- queries ------------------------------------------------------------------------
    def find(self, key: str) -> tuple[_Source, ...]:
        """The manifests providing ``key``, first on ``sys.path`` first; reads the manifests
        not read yet on a miss."""
        found = _providing(self._index, key)
        if not found:
            found = _providing(self._refresh(force=True), key)
        return found

    def native_access_units(self) -> tuple[frozenset[str], frozenset[str]]:
        """(units some manifest enables, units some manifest mentions), over all of sys.path."""
        index = self._refresh()
        return index.enabled, index.mentioned

    def unreadable(self) -> tuple[Unreadable, ...]:
        """The manifests on ``sys.path`` that could not be read."""
        return self._refresh().unreadable

    def stub_address(self, key: str, target: str, bound: bool) -> int | None:
        """Address of the stub for ``key`` (bound or unbound variant), or ``None`` if unknown.

        Tries each manifest providing ``key``; raises the first one's
        :class:`StubLoadError` if none can be loaded."""
        failures: list[StubLoadError] = []
        for source in self.find(key):
            try:
                address = self._stub_in(source, key, target, bound)
            except StubLoadError as exc:
                failures.append(exc)
                continue
            with self._lock:
                news: list[Warning] = []
                for failure in failures:
                    if ("object", failure.path or "") not in self._reported:
                        self._reported.add(("object", failure.path or ""))
                        news.append(
                            StubLoadWarning(
                                f"{failure} (the call shape {key} was taken from {source.path} instead)",
                                failure.path or "",
                            )
                        )
            self._report(news)
            return address
        if not failures:
            return None
        if len(failures) > 1:
            others = "; ".join(str(failure) for failure in failures[1:])
            raise StubLoadError(
                f"{failures[0]} (no other manifest providing {key} could be used either: {others})",
                failures[0].path,
            ) from failures[0]
        raise failures[0]

    def _stub_in(self, source: _Source, key: str, target: str, bound: bool) -> int:
        loaded, path = self.loaded(source, target, key)
        symbol = source.manifest.stubs[key] + (
            _contract.STUB_BOUND_SUFFIX if bound else _contract.STUB_UNBOUND_SUFFIX
        )
        address = loaded.symbols.get(symbol)
        if address is None:
            raise StubLoadError(f"stub object {path} lacks the symbol {symbol} its manifest lists", path)
        if not loaded.in_code(address):
            raise StubLoadError(
                f"stub object {path} is damaged: its symbol {symbol} is not in its code (the part "
                f"sealed read+execute); reinstall the package, or rebuild its wheel",
                path,
            )
        return address

    def loaded(self, source: _Source, target: str, key: str) -> tuple[LoadedObject, str]:
        """The object of ``source`` for ``target`` that holds ``key``, loaded once, and its
        path (raises :class:`StubLoadError`)."""
        stub = source.manifest.object_for(target, key)
        if stub is None:
            raise StubLoadError(
                f"package {source.manifest.package!r} has stubs for "
                f"{', '.join(o.target for o in source.manifest.objects) or 'no target'} "
                f"but not for {target}; rebuild its wheel with targets including {target!r}",
                source.folder,
            )
        path = os.path.join(source.folder, stub.file)
        loaded = self._objects.get(path)
        if loaded is None:
            with self._lock:
                loaded = self._objects.get(path)
                if loaded is None:
                    loaded = self._load(
                        path,
                        stub.sha256,
                        TARGETS[target].elf_machine if target in TARGETS else 0,
                        source.manifest.images,
                    )
                    self._objects[path] = loaded  # only now: a child forked earlier loads again
        return loaded, path

    @staticmethod
    def _load(path: str, digest: str, machine: int, image: bool) -> LoadedObject:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise StubLoadError(f"cannot read stub object {path}: {exc}", path) from exc
        actual = sha256_hex(data)
        if actual != digest:
            raise StubLoadError(
                f"stub object {path} does not match its manifest (sha256 {actual}, expected "
                f"{digest}); the file was modified after the wheel was built: reinstall the package",
                path,
            )
        _bootstrap.ensure()  # the cells and offsets the object's code reads, before it can run
        if image:
            return load_image(data, _bootstrap.resolve_import, path, machine)
        return load_object(data, _bootstrap.resolve_import, path, machine)


registry = StubRegistry()
