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

That header proves an entry whole, not who wrote it: the cache is only used if no other user
can have put entries there.  The folder (a symbolic link to one is followed), its subfolders
and its entries must belong to this user (or root) and be writable by no one else; they are
opened once, checked on the open descriptor (``fstat``) and then used relative to it, never
following a symbolic link below the folder.  A folder that fails this is reported and the
build goes on without a cache; a new one is made readable by its owner only.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import stat
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


#: ``os.open`` flags: a folder, and no symbolic link as the last part of a name
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def _unsafe(info: os.stat_result) -> str | None:
    """Why a folder or entry could hold another user's objects (``None``: it cannot)."""
    if info.st_uid not in (os.geteuid(), 0):
        return f"it belongs to another user (uid {info.st_uid})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"other users can write to it (mode {stat.S_IMODE(info.st_mode):#o})"
    return None


def _checked(descriptor: int, path: str) -> int:
    """``descriptor``, if what it is open on is safe to read entries from; else it is closed
    and ``PermissionError`` says why."""
    problem = _unsafe(os.fstat(descriptor))
    if problem is not None:
        os.close(descriptor)
        raise PermissionError(f"{path}: {problem}")
    return descriptor


class BuildCache:
    """The entries of one cache folder (:meth:`close` it after use)."""

    def __init__(self, directory: str, report: Callable[[str], None]) -> None:
        self.directory = directory
        self._report = report
        self._writable = True
        #: the folder, open and checked (``None``: not yet, or unusable: see ``_opened``)
        self._folder: int | None = None
        self._opened = False
        #: its subfolders (the first two digits of a digest), open and checked
        self._subfolders: dict[str, int] = {}

    def close(self) -> None:
        """Close the folders this cache holds open."""
        for descriptor in self._subfolders.values():
            os.close(descriptor)
        self._subfolders.clear()
        if self._folder is not None:
            os.close(self._folder)
            self._folder = None

    def _path(self, digest: str) -> str:
        return os.path.join(self.directory, digest[:2], digest + ".img")

    def _open(self) -> int | None:
        """The folder, opened (and made, if missing) and checked once; ``None`` (reported)
        if it cannot be used."""
        if not self._opened:
            self._opened = True
            try:
                try:
                    descriptor = os.open(self.directory, _FOLDER)
                except FileNotFoundError:
                    os.makedirs(self.directory, mode=0o700, exist_ok=True)
                    descriptor = os.open(self.directory, _FOLDER)
            except OSError as exc:
                self._report(
                    f"cannot use the build cache {self.directory} ({exc}); building without it "
                    f"(set {ENV_CACHE}=off, or to another folder)"
                )
                return None
            problem = _unsafe(os.fstat(descriptor))
            if problem is not None:
                os.close(descriptor)
                self._report(
                    f"not using the build cache {self.directory}: {problem}, so it could hold "
                    f"another user's objects; building without it (make it yours alone: chown "
                    f"it to yourself and chmod go-w it; or set {ENV_CACHE}=off, or to another folder)"
                )
                return None
            self._folder = descriptor
        return self._folder

    def _subfolder(self, folder: int, digest: str, create: bool) -> int:
        """The checked subfolder of ``digest`` (``FileNotFoundError`` if there is none and
        ``create`` is false)."""
        name = digest[:2]
        descriptor = self._subfolders.get(name)
        if descriptor is None:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o700, dir_fd=folder)
            path = os.path.join(self.directory, name)
            descriptor = _checked(os.open(name, _FOLDER | os.O_NOFOLLOW, dir_fd=folder), path)
            self._subfolders[name] = descriptor
        return descriptor

    def get(self, digest: str) -> bytes | None:
        """The object stored for ``digest``; ``None`` if there is none, or it is damaged
        or unsafe (reported: it is compiled again and replaced)."""
        folder = self._open()
        if folder is None:
            return None
        path = self._path(digest)
        try:
            subfolder = self._subfolder(folder, digest, create=False)
            descriptor = os.open(digest + ".img", os.O_RDONLY | _NOFOLLOW, dir_fd=subfolder)
            with open(descriptor, "rb") as handle:
                info = os.fstat(descriptor)
                problem = _unsafe(info) or (None if stat.S_ISREG(info.st_mode) else "not a file")
                if problem is not None:
                    raise PermissionError(f"{path}: {problem}")
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
        folder = self._open()
        if folder is None:
            return
        try:
            subfolder = self._subfolder(folder, digest, create=True)
            temporary = f".tmp-{os.getpid()}-{os.urandom(8).hex()}"
            descriptor = os.open(
                temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600, dir_fd=subfolder
            )
            try:
                with open(descriptor, "wb") as handle:
                    handle.write(_header(data) + b"\n" + data)
                os.replace(temporary, digest + ".img", src_dir_fd=subfolder, dst_dir_fd=subfolder)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary, dir_fd=subfolder)
                raise
        except OSError as exc:
            self._writable = False
            self._report(
                f"cannot write to the build cache {self.directory} ({exc}); building without it "
                f"(set {ENV_CACHE}=off, or to another folder)"
            )
