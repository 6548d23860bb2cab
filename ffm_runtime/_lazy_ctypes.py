"""``ctypes``, imported when one of its names is first used.

``import ctypes`` costs a fair part of ``import ffm_runtime`` and is needed only once native
memory or native code is used (allocating, loading stubs, setting up the bootstrap): the
runtime's modules use this module under the name ``ctypes`` (type checkers see the real one),
and the first name looked up here imports ``ctypes``; each name is then this module's own
attribute, as fast to reach as ``ctypes``'s.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def __getattr__(name: str) -> Any:
    import ctypes

    value = getattr(ctypes, name)  # (AttributeError for a name ctypes lacks)
    globals()[name] = value
    return value
