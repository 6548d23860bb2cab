"""The stub manifest: what a wheel's ``<package>/_ffm/manifest.json`` says.

Written by the build hook, read by the runtime; both use this module, so the
format is defined once.  Example::

    {
      "format": 1,
      "generator": "hatch-ffm 0.1.0",
      "package": "example_project",
      "objects": [
        {"target": "x86_64-linux", "triple": "x86_64-unknown-linux-gnu",
         "file": "stubs-x86_64-linux.o", "sha256": "<hex digest>"}
      ],
      "stubs": {"(i4i4)i4": "ffm_0123456789abcdef0123", ...},
      "enable_native_access": ["example_project"]
    }

Every object holds every stub; a stub symbol ``S`` is emitted as ``S_b`` (bound
handle) and ``S_u`` (unbound handle).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ._errors import StubLoadError

__all__ = ["FORMAT_VERSION", "MANIFEST_DIR", "MANIFEST_NAME", "Manifest", "StubObject"]

FORMAT_VERSION: Final = 1
MANIFEST_DIR: Final = "_ffm"
MANIFEST_NAME: Final = "manifest.json"

_SYMBOL = re.compile(r"^ffm_[0-9a-f]{20}$")
_FILE = re.compile(r"^[A-Za-z0-9_.-]+\.o$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_TARGET = re.compile(r"^[a-z0-9_]+-[a-z0-9_]+$")


@dataclass(frozen=True)
class StubObject:
    """One object file: all stubs compiled for one target."""

    target: str
    triple: str
    file: str
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated manifest."""

    package: str
    generator: str
    objects: tuple[StubObject, ...]
    stubs: Mapping[str, str]
    #: units (top-level packages) enabled for native access by this wheel
    enable_native_access: tuple[str, ...] = ()

    def to_json(self) -> str:
        data = {
            "format": FORMAT_VERSION,
            "generator": self.generator,
            "package": self.package,
            "objects": [
                {"target": o.target, "triple": o.triple, "file": o.file, "sha256": o.sha256}
                for o in self.objects
            ],
            "stubs": dict(sorted(self.stubs.items())),
            "enable_native_access": list(self.enable_native_access),
        }
        return json.dumps(data, indent=2) + "\n"

    def object_for(self, target: str) -> StubObject | None:
        for obj in self.objects:
            if obj.target == target:
                return obj
        return None

    @classmethod
    def from_json(cls, text: str | bytes, path: str) -> Manifest:
        """Parse and validate; any deviation is a :class:`StubLoadError` naming ``path``."""
        def fail(why: str) -> StubLoadError:
            return StubLoadError(f"invalid stub manifest {path}: {why}", path)

        try:
            data: Any = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise fail(f"not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise fail("top level is not an object")
        if data.get("format") != FORMAT_VERSION:
            raise fail(f"format {data.get('format')!r} is not {FORMAT_VERSION}; "
                       "rebuild the wheel with a hatch-ffm that matches the installed runtime")
        package, generator = data.get("package"), data.get("generator")
        if not isinstance(package, str) or not package.isidentifier():
            raise fail("'package' must be a package name")
        if not isinstance(generator, str):
            raise fail("'generator' must be a string")
        raw_objects = data.get("objects")
        if not isinstance(raw_objects, list):
            raise fail("'objects' must be a list")
        objects = []
        for entry in raw_objects:
            if not isinstance(entry, dict):
                raise fail("each object entry must be an object")
            raw_fields = {k: entry.get(k) for k in ("target", "triple", "file", "sha256")}
            if not all(isinstance(v, str) for v in raw_fields.values()):
                raise fail("object entries need string 'target', 'triple', 'file', 'sha256'")
            fields: dict[str, str] = {k: str(v) for k, v in raw_fields.items()}
            if not _TARGET.match(fields["target"]) or not _FILE.match(fields["file"]) \
                    or not _DIGEST.match(fields["sha256"]):
                raise fail(f"malformed object entry {entry!r}")
            objects.append(StubObject(**fields))
        stubs = data.get("stubs")
        if not isinstance(stubs, dict):
            raise fail("'stubs' must be an object")
        for key, symbol in stubs.items():
            if not isinstance(symbol, str) or not _SYMBOL.match(symbol):
                raise fail(f"malformed stub symbol for {key!r}: {symbol!r}")
        units = data.get("enable_native_access", [package])
        if not isinstance(units, list) or not all(
                isinstance(u, str) and (u.isidentifier() or u == "__main__") for u in units):
            raise fail("'enable_native_access' must be a list of package names")
        return cls(package, generator, tuple(objects), dict(stubs), tuple(units))
