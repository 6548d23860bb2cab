"""libyaml's event parser through hatch-ffm: :mod:`example_yaml.libyaml` turns a YAML
document into the events PyYAML's C parser produces (types, anchors, tags, values, styles,
marks).

This ``__init__`` stays free of native calls: the build imports
``example_yaml.ffm_features`` (and so this file) before any stub exists.
"""

__version__ = "0.1.0"
