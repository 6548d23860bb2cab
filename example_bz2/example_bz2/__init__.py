"""libbz2 through hatch-ffm: :mod:`example_bz2.libbz2` has ``compress``/``decompress`` and the
streaming ``BZ2Compressor``/``BZ2Decompressor``, byte for byte what CPython's ``bz2`` makes.

This ``__init__`` stays free of native calls: the build imports
``example_bz2.ffm_features`` (and so this file) before any stub exists.
"""

__version__ = "0.1.0"
