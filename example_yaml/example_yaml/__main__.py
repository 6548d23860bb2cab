"""``python -m example_yaml``: libyaml's events through hatch-ffm (beside PyYAML's C parser,
when PyYAML is installed)."""

from __future__ import annotations

from example_yaml import libyaml

DOCUMENT = """\
%YAML 1.1
---
server: &main {host: "example.org", port: 8080}
backup: *main
motd: |
  hello
tags: !!set {a, b}
"""


def main() -> int:
    events = list(libyaml.parse(DOCUMENT))
    try:
        import yaml  # type: ignore[import-untyped]  # noqa: PLC0415  # optional, not a dependency
    except ImportError:
        theirs = None
    else:
        theirs = list(yaml.parse(DOCUMENT, Loader=yaml.CSafeLoader))
    print(f"libyaml {libyaml.version()} through hatch-ffm" + (", beside PyYAML's CParser" if theirs else ""))
    failures = 0
    for index, event in enumerate(events):
        mark = event.start_mark
        fields = {
            name: getattr(event, name)
            for name in ("anchor", "tag", "value", "style", "implicit", "flow_style")
            if hasattr(event, name)
        }
        same = ""
        if theirs is not None:
            other = theirs[index]
            ok = type(other).__name__ == type(event).__name__ and all(
                getattr(other, name) == value for name, value in fields.items()
            )
            ok = ok and (other.start_mark.line, other.start_mark.column) == (mark.line, mark.column)
            failures += not ok
            same = "  same" if ok else "  DIFFERENT"
        shown = ", ".join(f"{name}={value!r}" for name, value in fields.items() if value not in (None, ""))
        print(f"{mark.line + 1:>3}:{mark.column + 1:<3} {type(event).__name__:<20} {shown}{same}")
    if theirs is not None and len(theirs) != len(events):
        failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
