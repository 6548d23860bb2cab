"""SHA-256 of the native objects the runtime loads (their manifests list it).

``hashlib`` loads OpenSSL when imported, which costs more than hashing a small object; the
interpreter's own SHA-256 (``_sha2`` from CPython 3.12, ``_sha256`` before) is used for
objects up to :data:`SMALL`, and ``hashlib`` (OpenSSL, faster per byte) for larger ones or
where the interpreter was built without its own.  Both give the same digest.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Final

__all__ = ["sha256_hex"]

#: objects up to this size are hashed without loading OpenSSL
SMALL: Final = 4 << 20


#: the interpreter's own SHA-256, once found (an import that fails is not remembered by the
#: import system: trying ``_sha2`` on every call searched all of ``sys.path`` each time)
_own: list[Callable[[bytes], Any]] = []


def _own_sha256() -> Callable[[bytes], Any]:
    if not _own:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            try:
                from _sha256 import sha256  # type: ignore[import-not-found, no-redef, unused-ignore]
            except ImportError:
                from hashlib import sha256
        _own.append(sha256)
    return _own[0]


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data``, as 64 lower-case hex digits."""
    if len(data) <= SMALL:
        return str(_own_sha256()(data).hexdigest())
    from hashlib import sha256

    return str(sha256(data).hexdigest())
