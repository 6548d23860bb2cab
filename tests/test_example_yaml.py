"""example_yaml (libyaml's event parser through stubs built by the real hook) against PyYAML's
libyaml-based parser (``yaml.parse(..., Loader=yaml.CSafeLoader)``): the same events on real
documents and on a generated 1 MB one; its yaml_event_t and yaml_parser_t layouts against
yaml.h as the C compiler lays them out; every parser deleted."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from support import TESTS, c_layout, malloc_in_use

yaml = pytest.importorskip("yaml")  # PyYAML, in the test extra

DOCUMENTS = sorted((TESTS / "fixtures" / "yaml").glob("*.y*ml"))
FIELDS = (
    "anchor",
    "tag",
    "implicit",
    "value",
    "style",
    "flow_style",
    "explicit",
    "version",
    "tags",
    "encoding",
)


@pytest.fixture(scope="module")
def libyaml(yaml_site: Path) -> ModuleType:
    if not yaml.__with_libyaml__:
        pytest.fail("PyYAML was installed without its libyaml extension (yaml.CSafeLoader)")
    from example_yaml import libyaml

    return libyaml


def as_tuple(event: Any) -> tuple[Any, ...]:
    """An event of either parser as (type, fields, start mark, end mark)."""
    start, end = event.start_mark, event.end_mark
    return (
        type(event).__name__,
        {name: getattr(event, name) for name in FIELDS if hasattr(event, name)},
        (start.index, start.line, start.column),
        (end.index, end.line, end.column),
    )


def theirs(data: bytes | str) -> list[tuple[Any, ...]]:
    return [as_tuple(event) for event in yaml.parse(data, Loader=yaml.CSafeLoader)]


def ours(libyaml: ModuleType, data: bytes | str) -> list[tuple[Any, ...]]:
    return [as_tuple(event) for event in libyaml.parse(data)]


def generated(size: int) -> bytes:
    sys.path.insert(0, str(TESTS.parent / "benchmarks"))
    try:
        from bench_yaml import document
    finally:
        sys.path.remove(str(TESTS.parent / "benchmarks"))
    return document(size)


def test_layouts_match_yaml_h(libyaml: ModuleType, tmp_path: Path) -> None:
    from example_yaml import ffm_features as f
    from ffm_runtime import MemoryLayout, PathElement

    def offsets(layout: MemoryLayout, prefix: tuple[str, ...] = ()) -> dict[str, int]:
        """Every named field, nested ones as C member designators (``data.scalar.length``)."""
        found = {}
        for member in layout.member_layouts:  # type: ignore[attr-defined]
            if member.name is None:
                continue
            path = (*prefix, member.name)
            found[".".join(path)] = layout.byte_offset(
                *(PathElement.group_element(n) for n in path[len(prefix) :])
            )
            if hasattr(member, "member_layouts"):
                found.update({k: v + found[".".join(path)] for k, v in offsets(member, path).items()})
        return found

    for c_type, layout in [
        ("yaml_event_t", f.EVENT),
        ("yaml_parser_t", f.PARSER),
        ("yaml_mark_t", f.MARK),
        ("yaml_version_directive_t", f.VERSION_DIRECTIVE),
        ("yaml_tag_directive_t", f.TAG_DIRECTIVE),
    ]:
        expected = offsets(layout)
        size, measured = c_layout("yaml.h", c_type, list(expected), tmp_path)
        assert (layout.byte_size, expected) == (size, measured), c_type
    assert "data.scalar.style" in offsets(f.EVENT) and "context_mark.column" in offsets(f.PARSER)
    assert f.PARSER.byte_size == f.PARSER_SIZE == 480  # the parser is allocated at its real size


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_same_events_as_pyyaml(libyaml: ModuleType, path: Path) -> None:
    data = path.read_bytes()
    expected = theirs(data)
    assert ours(libyaml, data) == expected
    assert ours(libyaml, data.decode()) == theirs(data.decode())  # str input: encoding None
    assert len(expected) > 40


def test_every_kind_of_event(libyaml: ModuleType) -> None:
    """The fixtures cover every event type, scalar style, directives, tags and anchors."""
    seen: dict[str, set[Any]] = {}
    for path in DOCUMENTS:
        for event in libyaml.parse(path.read_bytes()):
            seen.setdefault(type(event).__name__, set())
            if isinstance(event, libyaml.ScalarEvent):
                seen["styles"] = seen.get("styles", set()) | {event.style}
            if getattr(event, "anchor", None):
                seen["anchors"] = {True}
            if getattr(event, "tag", None):
                seen["tags"] = {True}
            if getattr(event, "version", None):
                seen["version"] = {event.version}
            if getattr(event, "tags", None):
                seen["directives"] = {tuple(event.tags.items())}
    assert set(seen) >= {
        "StreamStartEvent", "StreamEndEvent", "DocumentStartEvent", "DocumentEndEvent", "AliasEvent",
        "ScalarEvent", "SequenceStartEvent", "SequenceEndEvent", "MappingStartEvent", "MappingEndEvent",
        "anchors", "tags",
    }  # fmt: skip
    assert seen["styles"] == {"", "'", '"', "|", ">"}
    assert seen["version"] == {(1, 1)}
    assert seen["directives"] == {(("!e!", "tag:example.com,2024:"),)}


def test_generated_1mb_document(libyaml: ModuleType) -> None:
    data = generated(1 << 20)
    assert len(data) >= 1 << 20
    expected = theirs(data)
    assert len(expected) > 100_000
    assert ours(libyaml, data) == expected


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (b"a: [1, 2\nb: 3\n", r"parser error: did not find expected ',' or ']' at line 2, column 2 "
                              r"\(while parsing a flow sequence, line 1, column 4\)"),
        (b"a: b: c\n", r"scanner error: mapping values are not allowed in this context at line 1, column 5"),
        (b"key: *undefined_is_fine\n- item\n", r"parser error: did not find expected key at line 2, column 1 "
                                              r"\(while parsing a block mapping, line 1, column 1\)"),
        (b"a: '\xff'\n", r"reader error: invalid leading UTF-8 octet at byte 4"),
        (b"%YAML 2.0\n--- x\n", r"parser error: found incompatible YAML document at line 1, column 1"),
    ],
)  # fmt: skip
def test_errors_as_pyyaml(libyaml: ModuleType, data: bytes, pattern: str) -> None:
    with pytest.raises(yaml.YAMLError) as reference:
        list(yaml.parse(data, Loader=yaml.CSafeLoader))
    with pytest.raises(libyaml.YAMLError, match=pattern) as caught:
        list(libyaml.parse(data))
    error, other = caught.value, reference.value
    assert isinstance(error, ValueError)
    assert error.kind == type(other).__name__.removesuffix("Error").lower()
    if error.kind == "reader":
        assert (error.problem, error.problem_offset) == (other.reason, other.position)
    else:
        assert error.problem == other.problem and error.context == other.context
        assert (error.problem_mark.line, error.problem_mark.column) == (
            other.problem_mark.line,
            other.problem_mark.column,
        )
    # the events before the error came out first, as PyYAML's
    assert len(list(_until_error(libyaml.parse(data)))) == len(
        list(_until_error(yaml.parse(data, Loader=yaml.CSafeLoader)))
    )


def _until_error(events: Any) -> Any:
    try:
        yield from events
    except Exception:
        return


def test_bad_input_type(libyaml: ModuleType) -> None:
    with pytest.raises(TypeError, match="parse\\(\\) needs bytes or str, not int"):
        libyaml.Parser(42)


def test_every_parser_is_deleted(libyaml: ModuleType) -> None:
    """yaml_parser_delete runs at the end of the stream, on close(), at the end of a with block,
    when iteration stops early, after an error and when an unclosed parser is collected (a
    parser's buffers, ~50 KB, would otherwise stay)."""
    data = generated(20_000)

    def cycle() -> None:
        assert sum(1 for _ in libyaml.parse(data)) > 100
        with libyaml.Parser(data) as parser:
            parser.next_event()
        events = libyaml.parse(data)
        next(events)
        events.close()
        libyaml.Parser(data).next_event()  # dropped unclosed
        with pytest.raises(libyaml.YAMLError):
            list(libyaml.parse(data + b"\n: : ["))
        gc.collect()

    cycle()
    before = malloc_in_use()
    for _ in range(20):
        cycle()
    assert malloc_in_use() - before < 1_000_000  # a leaked parser per cycle is more than that


def test_closed_parser(libyaml: ModuleType) -> None:
    parser = libyaml.Parser("a: 1")
    assert isinstance(parser.next_event(), libyaml.StreamStartEvent)
    parser.close()
    parser.close()
    assert parser.next_event() is None
    assert list(parser) == []
