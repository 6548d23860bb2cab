"""The stub manifest: what a wheel's ``<package>/_ffm/manifest.json`` says.

Written by the build hook, read by the runtime; both use this module, so the
format is defined once.  Example::

    {
      "format": 3,
      "generator": "hatch-ffm 0.2.0",
      "package": "example_project",
      "packages": ["example_project"],
      "objects": [
        {"target": "x86_64-linux", "triple": "x86_64-unknown-linux-gnu",
         "file": "stubs-x86_64-linux.img", "sha256": "<hex digest>"}
      ],
      "stubs": ["(a8)j8", "(i4i4)i4", ...],
      "enable_native_access": ["example_project"],
      "upcalls": {"upcall (AA)i4": {"symbol": "ffm_89abcdef0123456789ab", "slots": 256}}
    }

``stubs`` lists the registration keys, sorted (by code point); the stub of key ``K`` is
named :func:`stub_symbol` ``(K)``, ``ffm_`` and the first 20 hex digits of its SHA-256.
(Format 2 gave ``stubs`` as ``{key: symbol}`` and its objects were ELF relocatable
objects, ``.o``; from format 3 they are stub images, ``.img``, :mod:`._image`.)  Reading
the manifest is on the way of a process's first downcall handle, so it is kept cheap: a
sorted list parses in a fraction of the time of a mapping, and is searched by bisection.

An object holds every stub of its target, or, when a target's stubs are compiled in parts
(large packages: the build compiles and caches them part by part), a part: then every object
of that target has ``"from"``, the first key of its part, and a key's stub or upcall pool
is in the object with the greatest ``"from"`` not after the key (keys compared as strings,
by code point); the objects of a target are listed in that order.  A stub symbol ``S``
is emitted as ``S_b`` (bound handle) and ``S_u`` (unbound handle).  An upcall shape ``S`` (its key starts with
``upcall ``) is emitted as its slots ``S_slots`` and ``slots`` trampolines ``S_t0`` ...
(``hatch_ffm/_ir/_upcalls.py``); ``upcalls`` is absent from manifests without any.
``package`` is the package the manifest is in (``<package>/_ffm/``), the only unit its
``enable_native_access`` can enable (a wheel that enables several of its top-level
packages has a manifest in each, the others without objects or stubs); ``packages``
lists the wheel's top-level packages (``[package]`` when absent).

**Versions.**  ``format`` is the whole contract between a wheel and the runtime:
the manifest's fields and meaning, and what the stubs import from the runtime
(``_contract``).  A change that a runtime of the same format could not read, or stubs
that need something it lacks, makes a new format; fields an older runtime can
ignore (``packages`` was one) do not.  A runtime reads the formats from
:data:`MIN_FORMAT_VERSION` to :data:`FORMAT_VERSION`.  ``generator`` must be
``"hatch-ffm <version>"``; the runtime does not compare it to its own version for
a format it reads (same format, same contract), but it is how a manifest of a
newer format says what to install: the hatch-ffm that wrote it reads it, so the
error asks for ``hatch-ffm>=<that version>``.

Every way a manifest can be wrong (unreadable file, not a regular file, too large, not UTF-8, not
JSON, nested too deeply for the parser, wrong types, unknown format) is a
:class:`StubLoadError` naming the file.
"""

from __future__ import annotations

import os
import stat
from _collections_abc import Mapping  # (collections.abc, without importing collections)
from _operator import lt as _less

from ._descriptor import UPCALL_KEY_PREFIX
from ._errors import StubLoadError
from ._records import Record
from ._version import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, Final, TypeGuard

__all__ = [
    "FORMAT_VERSION",
    "GENERATOR",
    "MANIFEST_DIR",
    "MANIFEST_NAME",
    "MAX_MANIFEST_BYTES",
    "MAX_UPCALL_SLOTS",
    "MIN_FORMAT_VERSION",
    "Manifest",
    "StubKeys",
    "StubObject",
    "UpcallPool",
    "read_manifest",
    "stub_symbol",
]

FORMAT_VERSION: Final = 3
#: the oldest format this runtime reads
MIN_FORMAT_VERSION: Final = 2
#: the format from which objects are stub images (``.img``, :mod:`._image`), not ELF
#: relocatable objects (``.o``)
IMAGE_FORMAT: Final = 3
MANIFEST_DIR: Final = "_ffm"
MANIFEST_NAME: Final = "manifest.json"
#: what this hatch-ffm writes as ``generator``
GENERATOR: Final = f"hatch-ffm {__version__}"
#: larger files are refused unread (the conformance suite's 12,097 shapes take 1 MiB)
MAX_MANIFEST_BYTES: Final = 64 << 20

#: the most trampolines one upcall shape may have (``upcall-pool-size``)
MAX_UPCALL_SLOTS: Final = 65536

_HEX: Final = "0123456789abcdef"
_FILE_CHARACTERS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
_TARGET_CHARACTERS: Final = "abcdefghijklmnopqrstuvwxyz0123456789_"


def _only(value: str, characters: str) -> bool:
    """Whether ``value`` has only ``characters`` (at the speed of ``str.strip``, which takes
    them off both ends: nothing is left exactly when there is nothing else)."""
    return not value.strip(characters)


#: the length of a stub symbol, ``ffm_`` and 20 hex digits
_SYMBOL_LENGTH: Final = 24


def _is_symbol(value: object) -> bool:
    """``ffm_`` and 20 lower-case hex digits."""
    return (
        isinstance(value, str)
        and len(value) == _SYMBOL_LENGTH
        and value.startswith("ffm_")
        and _only(value[4:], _HEX)
    )


def _are_symbols(values: list[object]) -> bool:
    """Whether every value is a stub symbol: :func:`_is_symbol` for all at once, at the
    speed of the string methods (a manifest of 10,000 stubs is read at a first handle)."""
    if set(map(type, values)) - {str} or set(map(len, values)) - {_SYMBOL_LENGTH}:  # type: ignore[arg-type]
        return False
    joined = "".join(values)  # type: ignore[arg-type]
    count = len(values)
    if not all(joined[i::_SYMBOL_LENGTH] == "ffm_"[i] * count for i in range(4)):
        return False
    digits = "".join(joined[i::_SYMBOL_LENGTH] for i in range(4, _SYMBOL_LENGTH))
    try:  # (hex digits, two per byte: fromhex would skip whitespace)
        return len(bytes.fromhex(digits)) * 2 == len(digits) and digits == digits.lower()
    except ValueError:
        return False


def stub_symbol(key: str) -> str:
    """The base symbol of the stub for a registration key: ``ffm_`` and the first 20 hex
    digits of the SHA-256 of the key (stable across builds)."""
    from ._digest import sha256_hex

    return "ffm_" + sha256_hex(key.encode())[:20]


class StubKeys(Mapping[str, str]):
    """Registration key -> stub symbol, over a sorted list of keys (the symbols are
    :func:`stub_symbol` of the keys): what a format-3 manifest's ``stubs`` lists."""

    __slots__ = ("_keys",)

    def __init__(self, keys: list[str]) -> None:
        #: sorted, no duplicates (checked by the caller)
        self._keys: Final = keys

    def _has(self, key: object) -> bool:
        keys = self._keys
        low, high = 0, len(keys)
        while low < high:
            middle = (low + high) // 2
            if keys[middle] < key:  # type: ignore[operator]
                low = middle + 1
            else:
                high = middle
        return low < len(keys) and keys[low] == key

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._has(key)

    def __getitem__(self, key: str) -> str:
        if not (isinstance(key, str) and self._has(key)):
            raise KeyError(key)
        return stub_symbol(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StubKeys):
            return self._keys == other._keys
        return super().__eq__(other)

    def __hash__(self) -> int:
        return hash(tuple(self._keys))

    def __repr__(self) -> str:
        return f"StubKeys({self._keys!r})"


def _is_file(value: str, extension: str) -> bool:
    return value.endswith(extension) and len(value) > len(extension) and _only(value, _FILE_CHARACTERS)


def _is_digest(value: str) -> bool:
    return len(value) == 64 and _only(value, _HEX)  # noqa: PLR2004  (SHA-256, in hex)


def _is_target(value: str) -> bool:
    arch, dash, system = value.partition("-")
    return bool(dash and arch and system and _only(arch + system, _TARGET_CHARACTERS))


def _is_generator(value: object) -> TypeGuard[str]:
    """``"hatch-ffm 1.2.3"``, with an optional PEP 440 pre/post/dev/local suffix."""
    if not isinstance(value, str) or not value.startswith("hatch-ffm "):
        return False
    version = value[len("hatch-ffm ") :]
    head = version.split(".")
    i = 0
    while i < len(head) and head[i].isdigit() and head[i].isascii():
        i += 1
    if i == 0:
        return False
    rest = ".".join(head[i:])
    return _only(rest, _FILE_CHARACTERS + "+!") and (not rest or rest[0] not in ".")


class _Settings:
    """The settings ``json.loads`` gives its scanner."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # ("NaN", "Infinity", "-Infinity")


_WHITESPACE: Final = " \t\n\r"
#: the C scanner, or None where there is none (looked for once: a failed import is not
#: remembered by the import system)
_scanner: list[Any] = []


def loads(text: str) -> Any:
    """JSON ``text`` as Python values: with the interpreter's C scanner when there is one,
    which spares importing ``json`` and ``re`` (most of what reading a manifest at the
    first downcall handle would cost); raises ``ValueError`` like ``json.loads``."""
    if not _scanner:
        try:
            from _json import make_scanner  # type: ignore[import-not-found, unused-ignore]

            _scanner.append(make_scanner(_Settings))  # type: ignore[arg-type]
        except (ImportError, AttributeError, TypeError):  # (an interpreter without it)
            _scanner.append(None)
    scan = _scanner[0]
    if scan is None:
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = scan(text, start)
        if text[end:].strip(_WHITESPACE):
            raise ValueError(end)
    except Exception:
        import json

        return json.loads(text)  # (raises what json.loads raises for this text)
    return value


def _is_package_name(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value.isidentifier() and value != "__main__"


class StubObject(Record):
    """One object file: the stubs compiled for one target (all of them, or a part)."""

    __slots__ = ("file", "first", "sha256", "target", "triple")

    def __init__(self, target: str, triple: str, file: str, sha256: str, first: str | None = None) -> None:
        self.target: Final = target
        self.triple: Final = triple
        self.file: Final = file
        self.sha256: Final = sha256
        #: the first key of the part it holds, when the target's stubs are in several parts
        self.first: Final = first


class UpcallPool(Record):
    """The trampoline pool of one upcall shape in every object of a manifest."""

    __slots__ = ("slots", "symbol")

    def __init__(self, symbol: str, slots: int) -> None:
        self.symbol: Final = symbol
        #: how many trampolines (and slots) it has
        self.slots: Final = slots


class Manifest(Record):
    """A parsed, validated manifest."""

    __slots__ = (
        "enable_native_access",
        "format",
        "generator",
        "objects",
        "package",
        "packages",
        "stubs",
        "upcalls",
    )

    def __init__(  # noqa: PLR0913, PLR0917  (a record: one argument per field)
        self,
        package: str,
        generator: str,
        objects: tuple[StubObject, ...],
        stubs: Mapping[str, str],
        enable_native_access: tuple[str, ...] = (),
        packages: tuple[str, ...] = (),
        upcalls: Mapping[str, UpcallPool] | None = None,
        format: int = FORMAT_VERSION,
    ) -> None:
        self.package: Final = package
        self.generator: Final = generator
        self.objects: Final = objects
        #: key -> stub symbol (from format 3, the symbols are :func:`stub_symbol` of the keys,
        #: whatever ``stubs`` maps them to)
        self.stubs: Final[Mapping[str, str]] = (
            StubKeys(sorted(stubs)) if format >= IMAGE_FORMAT and not isinstance(stubs, StubKeys) else stubs
        )
        #: units (top-level packages) this wheel asks to enable for native access
        self.enable_native_access: Final = enable_native_access
        #: the wheel's top-level packages, ``package`` first (given empty: just ``package``)
        self.packages: Final = tuple(dict.fromkeys((package, *packages)))
        #: upcall shapes (keys ``upcall ...``) and their pools
        self.upcalls: Final[Mapping[str, UpcallPool]] = {} if upcalls is None else upcalls
        #: the format it was written in: from :data:`IMAGE_FORMAT`, its objects are images
        self.format: Final = format

    @property
    def images(self) -> bool:
        """Whether its objects are stub images (else ELF relocatable objects)."""
        return self.format >= IMAGE_FORMAT

    def to_json(self) -> str:
        data = {
            "format": self.format,
            "generator": self.generator,
            "package": self.package,
            "packages": list(self.packages),
            "objects": [
                {"target": o.target, "triple": o.triple, "file": o.file, "sha256": o.sha256}
                | ({} if o.first is None else {"from": o.first})
                for o in self.objects
            ],
            "stubs": sorted(self.stubs) if self.format >= IMAGE_FORMAT else dict(sorted(self.stubs.items())),
            "enable_native_access": list(self.enable_native_access),
        }
        if self.upcalls:
            data["upcalls"] = {
                key: {"symbol": pool.symbol, "slots": pool.slots}
                for key, pool in sorted(self.upcalls.items())
            }
        import json

        return json.dumps(data, indent=2) + "\n"

    def object_for(self, target: str, key: str = "") -> StubObject | None:
        """The object of ``target`` that holds ``key``'s stub or upcall pool: the one with the
        greatest ``from`` not after ``key`` (the only one, when there are no parts)."""
        found = None
        for obj in self.objects:
            if obj.target == target and (found is None or (obj.first or "") <= key):
                found = obj
        return found

    @classmethod
    def from_json(cls, text: str | bytes, path: str) -> Manifest:
        """Parse and validate; any deviation is a :class:`StubLoadError` naming ``path``."""

        def fail(why: str) -> StubLoadError:
            return StubLoadError(f"invalid stub manifest {path}: {why}", path)

        try:
            data: Any = loads(text.decode("utf-8") if isinstance(text, bytes) else text)
        except RecursionError as exc:
            raise fail("nested too deeply to be a stub manifest") from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise fail(f"not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise fail("top level is not an object")
        version, generator = data.get("format"), data.get("generator")
        if type(version) is not int:
            raise fail(f"'format' must be an integer, not {version!r}")
        if version > FORMAT_VERSION:
            raise StubLoadError(_too_new(path, version, generator, data.get("package")), path)
        if version < MIN_FORMAT_VERSION:
            reads = f"formats {MIN_FORMAT_VERSION} to {FORMAT_VERSION}"
            raise fail(
                f"format {version} is older than this runtime reads ({reads}): its "
                f"stubs expect a contract this runtime no longer offers; rebuild the "
                f"wheel with hatch-ffm>={__version__}"
            )
        if not _is_generator(generator):
            raise fail(f"'generator' must be \"hatch-ffm <version>\", not {generator!r}")
        package = data.get("package")
        if not _is_package_name(package):
            raise fail("'package' must be a package name")
        packages = data.get("packages", [package])
        if not isinstance(packages, list) or not all(_is_package_name(p) for p in packages):
            raise fail("'packages' must be a list of top-level package names")
        if package not in packages:
            raise fail(f"'packages' must list the package the manifest is in ({package!r})")
        objects = _stub_objects(data.get("objects"), ".img" if version >= IMAGE_FORMAT else ".o", fail)
        stubs = _stubs(data.get("stubs"), version, fail)
        pools = _upcall_pools(data.get("upcalls", {}), fail)
        # (the smallest key: a format-3 list is sorted, its first is the smallest)
        smallest = [next(iter(stubs))] if isinstance(stubs, StubKeys) and stubs else list(stubs)
        _check_parts(objects, [*smallest, *pools], fail)
        units = data.get("enable_native_access", [package])
        if not isinstance(units, list) or not all(isinstance(u, str) and u.isidentifier() for u in units):
            raise fail("'enable_native_access' must be a list of package names")
        return cls(
            package,
            generator,
            tuple(objects),
            stubs,
            tuple(units),
            tuple(packages),
            pools,
            version,
        )


def _stubs(raw: object, version: int, fail: Callable[[str], StubLoadError]) -> Mapping[str, str]:
    """The ``stubs`` field: a sorted list of keys (format 3), or ``{key: symbol}``."""
    if version >= IMAGE_FORMAT:
        if not isinstance(raw, list):
            raise fail("'stubs' must be a list of registration keys")
        # (checked at C speed: 10,000 keys are read at a first handle)
        try:
            "".join(raw)
        except TypeError:
            raise fail("'stubs' must be a list of registration keys (strings)") from None
        if not all(map(_less, raw, raw[1:])):
            raise fail("'stubs' must list its keys sorted (by code point), each once")
        return StubKeys(raw)
    if not isinstance(raw, dict):
        raise fail("'stubs' must be an object")
    symbols = list(raw.values())
    if not _are_symbols(symbols):
        for key, symbol in raw.items():
            if not _is_symbol(symbol):
                raise fail(f"malformed stub symbol for {key!r}: {symbol!r}")
    if len(set(symbols)) != len(symbols):
        _shared_symbol(raw, fail)
    return dict(raw)


def _shared_symbol(symbols: dict[str, str], fail: Callable[[str], StubLoadError]) -> None:
    """Raise for two keys of ``symbols`` (key -> symbol) that name the same symbol."""
    owners: dict[str, str] = {}
    for key, symbol in symbols.items():
        other = owners.setdefault(symbol, key)
        if other != key:
            raise fail(
                f"{other!r} and {key!r} name the same symbol {symbol}: each call shape has code "
                f"of its own (calling one with the other's would be calling the wrong code)"
            )


def _stub_objects(
    raw_objects: object, extension: str, fail: Callable[[str], StubLoadError]
) -> list[StubObject]:
    """The ``objects`` field (files named ``*<extension>``)."""
    if not isinstance(raw_objects, list):
        raise fail("'objects' must be a list")
    objects = []
    for entry in raw_objects:  # (a package of 10,000 shapes has hundreds: kept lean)
        if type(entry) is not dict:
            raise fail("each object entry must be an object")
        get = entry.get
        target, triple, file, digest, first = (
            get("target"),
            get("triple"),
            get("file"),
            get("sha256"),
            get("from"),
        )
        if (
            type(target) is not str
            or type(triple) is not str
            or type(file) is not str
            or type(digest) is not str
        ):
            raise fail("object entries need string 'target', 'triple', 'file', 'sha256'")
        if not (_is_target(target) and _is_file(file, extension) and _is_digest(digest)):
            raise fail(f"malformed object entry {entry!r}")
        if first is not None and type(first) is not str:
            raise fail(f"malformed object entry {entry!r}: 'from' must be a key")
        objects.append(StubObject(target, triple, file, digest, first))
    return objects


def _check_parts(objects: list[StubObject], keys: list[str], fail: Callable[[str], StubLoadError]) -> None:
    """A target's objects are its parts: one without ``from``, or several, each with its own
    ``from``, in increasing order, the first not after any key (of ``keys``: the keys, or
    the smallest stub key and the upcall keys)."""
    by_target: dict[str, list[StubObject]] = {}
    for obj in objects:
        by_target.setdefault(obj.target, []).append(obj)
    smallest = min(keys, default="")
    for target, parts in by_target.items():
        if len(parts) == 1 and parts[0].first is None:
            continue
        firsts = [part.first for part in parts]
        if (
            any(first is None for first in firsts)
            or firsts != sorted(set(firsts))  # type: ignore[type-var]
            or (keys and smallest < (firsts[0] or ""))
        ):
            raise fail(
                f"the objects of target {target!r} must each give 'from' (the first key of "
                f"its part), in increasing order, the first not after any key: {firsts!r}"
            )


def _upcall_pools(raw: object, fail: Callable[[str], StubLoadError]) -> dict[str, UpcallPool]:
    """The ``upcalls`` field: ``{key: {"symbol": ..., "slots": N}}``."""
    if not isinstance(raw, dict):
        raise fail("'upcalls' must be an object")
    pools = {}
    for key, entry in raw.items():
        symbol = entry.get("symbol") if isinstance(entry, dict) else None
        slots = entry.get("slots") if isinstance(entry, dict) else None
        if (
            not key.startswith(UPCALL_KEY_PREFIX)
            or not isinstance(symbol, str)
            or not _is_symbol(symbol)
            or type(slots) is not int
            or not 1 <= slots <= MAX_UPCALL_SLOTS
            or set(entry) != {"symbol", "slots"}
        ):
            raise fail(f"malformed upcall entry for {key!r}: {entry!r}")
        pools[key] = UpcallPool(symbol, slots)
    if len({pool.symbol for pool in pools.values()}) != len(pools):
        _shared_symbol({key: pool.symbol for key, pool in pools.items()}, fail)
    return pools


def _too_new(path: str, version: int, generator: object, package: object) -> str:
    """What to say about a manifest of a format newer than this runtime reads."""
    whose = f" of package {package!r}" if _is_package_name(package) else ""
    if isinstance(generator, str) and _is_generator(generator):
        needed = generator.partition(" ")[2]
        writer = f"hatch-ffm {needed}"
        fix = f"install hatch-ffm>={needed} (pip install 'hatch-ffm>={needed}')"
    else:
        writer, fix = f"{generator!r}", "install a newer hatch-ffm"
    return (
        f"stub manifest {path}{whose} has format {version}, written by {writer}; this "
        f"runtime (hatch-ffm {__version__}) reads format {FORMAT_VERSION} back to "
        f"{MIN_FORMAT_VERSION}: {fix}, or rebuild the wheel with hatch-ffm {__version__}"
    )


def read_manifest(path: str) -> Manifest:
    """Read and validate the manifest at ``path``, which must be ``<package>/_ffm/manifest.json``
    of the package it describes; every failure is a :class:`StubLoadError` naming ``path``."""
    try:
        # never open a FIFO or a device (opening one may block, or do something), and check
        # again what was opened: the file may have been replaced in between
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise StubLoadError(f"invalid stub manifest {path}: not a regular file", path)
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(descriptor, "rb") as handle:
            info = os.fstat(descriptor)
            if not stat.S_ISREG(info.st_mode):
                raise StubLoadError(f"invalid stub manifest {path}: not a regular file", path)
            # (the size it has, and one byte more to see that it is not larger: not a
            # buffer of MAX_MANIFEST_BYTES for every manifest)
            size = min(info.st_size, MAX_MANIFEST_BYTES)
            data = handle.read(size + 1)
            if len(data) > size:  # it grew since (being written), or its size was not known
                data += handle.read(MAX_MANIFEST_BYTES + 1 - len(data))
    except OSError as exc:
        raise StubLoadError(f"cannot read stub manifest {path}: {exc}", path) from exc
    if len(data) > MAX_MANIFEST_BYTES:
        raise StubLoadError(f"invalid stub manifest {path}: larger than {MAX_MANIFEST_BYTES >> 20} MiB", path)
    manifest = Manifest.from_json(data, path)
    folder = os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(path))))
    if folder != manifest.package:
        raise StubLoadError(
            f"invalid stub manifest {path}: it describes package {manifest.package!r} but is in "
            f"the folder {folder!r}; a wheel puts the manifest in its package as "
            f"{manifest.package}/{MANIFEST_DIR}/{MANIFEST_NAME}: reinstall the package",
            path,
        )
    return manifest
