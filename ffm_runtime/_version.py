"""The version of hatch-ffm (build hook and runtime are one distribution)."""

__version__ = "0.2.0"
