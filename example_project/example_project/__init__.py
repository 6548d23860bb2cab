"""An example package that calls libc and libm through hatch-ffm downcall stubs.

The handles live in :mod:`example_project.native`; this ``__init__`` stays
free of native calls because the build imports ``example_project.ffm_features``
(and so this file) before any stub exists.
"""

__version__ = "0.1.0"
