"""The build cache: compiled parts of stub objects, kept between builds.

A part (a group of call shapes, see ``hatch_ffm._build``) compiled for one target is stored
under the digest of everything that determines its code (:func:`part_digest`): the shapes'
canonical keys (a key determines its stub: the registry knows stubs by key), the target's
triple, the optimization level and the upcall pool size, hatch-ffm's version and the source
of the code that lowers shapes and generates stubs (:func:`code_fingerprint`), the manifest
format, llvmlite's and LLVM's versions.  A rebuild compiles only the parts whose digest is not in the cache.

Where: ``$FFM_BUILD_CACHE`` (a folder, or ``off``), else the hook option ``build-cache``
(the same), else ``$XDG_CACHE_HOME/hatch-ffm`` (``~/.cache/hatch-ffm``).

Entries are written whole or not at all (a temporary file, then ``os.replace``), so builds
running at once share a cache safely; each starts with the SHA-256 of its object, checked on
every read: a damaged entry is reported and compiled again (and replaced).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "ENV_CACHE",
    "BuildCache",
    "code_fingerprint",
    "default_cache_dir",
    "part_digest",
    "resolve_cache_dir",
]

#: the environment variable that moves the cache (a folder) or turns it off (``off``)
ENV_CACHE = "FFM_BUILD_CACHE"
#: the layout of the cache's entries; part of every digest
_CACHE_FORMAT = 1
_MAGIC = b"hatch-ffm-cache 1 "
_OFF = ("off", "false", "no", "0", "none")

#: the sources whose change changes the code of stubs (relative to the parent of hatch_ffm)
_CODE = (
    "hatch_ffm",
    "ffm_runtime/_contract.py",
    "ffm_runtime/_descriptor.py",
    "ffm_runtime/_layouts.py",
    "ffm_runtime/_targets.py",
    # (the link step, from object to image)
    "ffm_runtime/_elf.py",
    "ffm_runtime/_image.py",
    "ffm_runtime/_link.py",
    "ffm_runtime/_reloc_aarch64.py",
    "ffm_runtime/_reloc_x86_64.py",
)


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/hatch-ffm``, or ``~/.cache/hatch-ffm``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hatch-ffm")


def resolve_cache_dir(option: str | None, root: str) -> str | None:
    """The cache folder (``None``: no cache): ``$FFM_BUILD_CACHE``, else the option
    ``build-cache`` (a relative folder is relative to the project ``root``), else the
    default."""
    value = os.environ.get(ENV_CACHE)
    if not value:
        value = option
    if not value:
        return default_cache_dir()
    if value.strip().lower() in _OFF:
        return None
    return os.path.join(root, os.path.expanduser(value))


@functools.cache
def code_fingerprint() -> str:
    """The SHA-256 of the sources that generate stubs (so that a changed hatch-ffm, even
    of the same version, never takes another's parts)."""
    top = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for name in _CODE:
        path = top / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(str(file.relative_to(top)).encode() + b"\0")
            digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()


def part_digest(context: dict[str, object], items: Iterable[str]) -> str:
    """The digest of a part: ``context`` (versions, target, options) and its keys, in
    order."""
    material = {"cache": _CACHE_FORMAT, **context, "items": list(items)}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _header(data: bytes) -> bytes:
    """An entry's first line (without the newline): the magic, the SHA-256 and the size."""
    return _MAGIC + hashlib.sha256(data).hexdigest().encode() + b" " + str(len(data)).encode()


class BuildCache:
    """The entries of one cache folder."""

    def __init__(self, directory: str, report: Callable[[str], None]) -> None:
        self.directory = directory
        self._report = report
        self._writable = True

    def _path(self, digest: str) -> str:
        return os.path.join(self.directory, digest[:2], digest + ".img")

    def get(self, digest: str) -> bytes | None:
        """The object stored for ``digest``; ``None`` if there is none, or it is damaged
        (reported: it is compiled again and replaced)."""
        path = self._path(digest)
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._report(f"cannot read build cache entry {path} ({exc}); compiling it again")
            return None
        header, newline, data = raw.partition(b"\n")
        if not newline or header != _header(data):
            self._report(
                f"build cache entry {path} is damaged (its SHA-256 or size does not match); "
                f"compiling it again"
            )
            return None
        return data

    def put(self, digest: str, data: bytes) -> None:
        """Store ``data`` for ``digest``, whole or not at all; a cache that cannot be written
        is reported once and otherwise ignored."""
        if not self._writable:
            return
        path = self._path(digest)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
            try:
                with open(descriptor, "wb") as handle:
                    handle.write(_header(data) + b"\n" + data)
                os.replace(temporary, path)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError as exc:
            self._writable = False
            self._report(
                f"cannot write to the build cache {self.directory} ({exc}); building without it "
                f"(set {ENV_CACHE}=off, or to another folder)"
            )
