"""libexpat's SAX parser through hatch-ffm: :mod:`example_expat.expat` parses XML and calls
Python handlers as :mod:`xml.parsers.expat` does (``ParserCreate()``, handler attributes,
``Parse(data, isfinal)``, ``ExpatError``), C calling Python through upcall stubs.

This ``__init__`` stays free of native calls: the build imports
``example_expat.ffm_features`` (and so this file) before any stub exists.
"""

__version__ = "0.1.0"
