"""libyaml's event parser through hatch-ffm, with the events of PyYAML's C parser.

``parse(data)`` yields the events of a YAML stream (``bytes`` or ``str``), as
``yaml.parse(data, Loader=yaml.CSafeLoader)`` does: the same event types, anchors, tags,
values, implicit flags, styles and marks (``index``, ``line``, ``column``).  A
:class:`Parser` is a context manager: ``yaml_parser_delete`` and ``yaml_event_delete`` are
always called, and its memory (a confined arena: the thread that made it uses it) is freed by
``close()``, by the end of its ``with`` block, or once the stream has ended.  Bad YAML raises
:class:`YAMLError` (a ``ValueError``) with libyaml's problem, context and marks.
"""

from __future__ import annotations

import contextlib
import struct
import sys
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Final, NamedTuple

from ffm_runtime import (
    ADDRESS,
    JAVA_BYTE,
    JAVA_INT,
    JAVA_LONG,
    Arena,
    FunctionDescriptor,
    LibraryLoadError,
    Linker,
    MemoryLayout,
    MemorySegment,
    PathElement,
    SymbolLookup,
)

from .ffm_features import (
    CRITICAL,
    DELETE,
    EVENT,
    PARSE,
    PARSER,
    PARSER_INITIALIZE,
    SET_INPUT_STRING,
    STRLEN,
    TAG_DIRECTIVE,
    VERSION_DIRECTIVE,
    VERSION_STRING,
)

__all__ = [
    "AliasEvent",
    "DocumentEndEvent",
    "DocumentStartEvent",
    "Event",
    "MappingEndEvent",
    "MappingStartEvent",
    "Mark",
    "Parser",
    "ScalarEvent",
    "SequenceEndEvent",
    "SequenceStartEvent",
    "StreamEndEvent",
    "StreamStartEvent",
    "YAMLError",
    "parse",
    "version",
]

LIBRARY: Final = "libyaml-0.so.2"  # Debian's libyaml-0-2

try:
    _lib = SymbolLookup.library_lookup(LIBRARY, Arena.global_arena())
except LibraryLoadError as exc:
    raise LibraryLoadError(
        f"{LIBRARY} could not be loaded ({exc}): install libyaml (Debian: apt-get install libyaml-0-2)"
    ) from exc
_linker = Linker.native_linker()


def _handle(name: str, descriptor: FunctionDescriptor) -> Callable[..., Any]:
    symbol = _lib.find(name)
    if symbol is None:
        raise LookupError(f"{name} not found in {LIBRARY}")
    handle: Callable[..., Any] = _linker.downcall_handle(symbol, descriptor, CRITICAL)
    return handle


_parser_initialize = _handle("yaml_parser_initialize", PARSER_INITIALIZE)
_set_input_string = _handle("yaml_parser_set_input_string", SET_INPUT_STRING)
_parse = _handle("yaml_parser_parse", PARSE)
_event_delete = _handle("yaml_event_delete", DELETE)
_parser_delete = _handle("yaml_parser_delete", DELETE)
_version_string = _handle("yaml_get_version_string", VERSION_STRING)
_strlen = _linker.downcall_handle(_linker.default_lookup().find("strlen"), STRLEN, CRITICAL)

#: A ``yaml_char_t *``: the bytes are libyaml's, valid until ``yaml_event_delete``; each is
#: read for its known length (``get_string(0, "utf-8", length)`` of a scalar's value) or up
#: to its NUL (``get_string``, which reads no further than the NUL's page), never beyond.
TEXT: Final = ADDRESS.with_target_layout(MemoryLayout.sequence_layout((1 << 63) - 1, JAVA_BYTE))
#: A ``yaml_version_directive_t *``
VERSION_POINTER: Final = ADDRESS.with_target_layout(VERSION_DIRECTIVE)


def _at(layout: MemoryLayout, *names: str) -> int:
    return layout.byte_offset(*(PathElement.group_element(name) for name in names))


TYPE: Final = _at(EVENT, "type")
START_MARK: Final = _at(EVENT, "start_mark")
END_MARK: Final = _at(EVENT, "end_mark")
ENCODING: Final = _at(EVENT, "data", "stream_start", "encoding")
DOC_VERSION: Final = _at(EVENT, "data", "document_start", "version_directive")
DOC_TAGS_START: Final = _at(EVENT, "data", "document_start", "tag_directives", "start")
DOC_TAGS_END: Final = _at(EVENT, "data", "document_start", "tag_directives", "end")
DOC_IMPLICIT: Final = _at(EVENT, "data", "document_start", "implicit")
DOC_END_IMPLICIT: Final = _at(EVENT, "data", "document_end", "implicit")
ALIAS_ANCHOR: Final = _at(EVENT, "data", "alias", "anchor")
SCALAR_ANCHOR: Final = _at(EVENT, "data", "scalar", "anchor")
SCALAR_TAG: Final = _at(EVENT, "data", "scalar", "tag")
SCALAR_VALUE: Final = _at(EVENT, "data", "scalar", "value")
SCALAR_LENGTH: Final = _at(EVENT, "data", "scalar", "length")
SCALAR_PLAIN_IMPLICIT: Final = _at(EVENT, "data", "scalar", "plain_implicit")
SCALAR_QUOTED_IMPLICIT: Final = _at(EVENT, "data", "scalar", "quoted_implicit")
SCALAR_STYLE: Final = _at(EVENT, "data", "scalar", "style")
# sequence_start and mapping_start have the same layout
NODE_ANCHOR: Final = _at(EVENT, "data", "sequence_start", "anchor")
NODE_TAG: Final = _at(EVENT, "data", "sequence_start", "tag")
NODE_IMPLICIT: Final = _at(EVENT, "data", "sequence_start", "implicit")
NODE_STYLE: Final = _at(EVENT, "data", "sequence_start", "style")
_MAPPING_START: Final = tuple(
    _at(EVENT, "data", "mapping_start", name) for name in ("anchor", "tag", "implicit", "style")
)
assert _MAPPING_START == (NODE_ANCHOR, NODE_TAG, NODE_IMPLICIT, NODE_STYLE)
ERROR: Final = _at(PARSER, "error")
PROBLEM: Final = _at(PARSER, "problem")
PROBLEM_OFFSET: Final = _at(PARSER, "problem_offset")
PROBLEM_VALUE: Final = _at(PARSER, "problem_value")
PROBLEM_MARK: Final = _at(PARSER, "problem_mark")
CONTEXT: Final = _at(PARSER, "context")
CONTEXT_MARK: Final = _at(PARSER, "context_mark")

# yaml.h enums
(
    NO_EVENT,
    STREAM_START,
    STREAM_END,
    DOCUMENT_START,
    DOCUMENT_END,
    ALIAS,
    SCALAR,
    SEQUENCE_START,
    SEQUENCE_END,
    MAPPING_START,
    MAPPING_END,
) = range(11)
_ENCODINGS: Final = {1: "utf-8", 2: "utf-16-le", 3: "utf-16-be"}  # YAML_UTF8_ENCODING, ...
_SCALAR_STYLES: Final = {1: "", 2: "'", 3: '"', 4: "|", 5: ">"}  # as PyYAML spells them
_FLOW_STYLES: Final = {1: False, 2: True}  # YAML_BLOCK_*_STYLE, YAML_FLOW_*_STYLE
_ERROR_KINDS: Final = {1: "memory", 2: "reader", 3: "scanner", 4: "parser"}

# The fields of an event, decoded from its bytes (native byte order, C sizes; the offsets
# are EVENT's, the field order is each struct's in yaml.h).  A pointer read here is only
# compared with NULL: the strings are read through the event segment (``get(TEXT, ...)``).
_INT: Final = struct.Struct("=i")
_MARK: Final = struct.Struct("=3Q")  # index, line, column
# anchor, tag, (value: never NULL), length, plain_implicit, quoted_implicit, style
_SCALAR: Final = struct.Struct("=QQ8xQiii")
#: The byte of ``type`` that holds its value (a yaml_event_type_t, 0 to 10): its lowest
_TYPE_BYTE: Final = 0 if sys.byteorder == "little" else _INT.size - 1
_NODE: Final = struct.Struct("=QQii")  # anchor, tag, implicit, style
assert SCALAR_TAG == SCALAR_ANCHOR + 8 and SCALAR_VALUE == SCALAR_ANCHOR + 16
assert SCALAR_LENGTH == SCALAR_ANCHOR + 24 and SCALAR_STYLE == SCALAR_LENGTH + 16
assert TYPE == 0 and START_MARK + _MARK.size == END_MARK
assert NODE_TAG == NODE_ANCHOR + 8 and NODE_IMPLICIT == NODE_ANCHOR + 16 and NODE_STYLE == NODE_IMPLICIT + 4


def _text(pointer: MemorySegment) -> str | None:
    """A NUL-terminated UTF-8 string libyaml owns (read through :data:`TEXT`), or ``None``
    for ``NULL``."""
    if pointer.address == 0:
        return None
    return pointer.get_string(0, "utf-8")


def version() -> str:
    """libyaml's version string (``yaml_get_version_string``)."""
    text = _version_string()
    return text.reinterpret(_strlen(text)).to_bytes().decode("ascii")  # type: ignore[no-any-return]


class Mark(NamedTuple):
    """A position in the input as libyaml counts it: ``index``, ``line`` and ``column``,
    all from 0 (PyYAML's ``Mark`` without ``name``, ``buffer`` and ``pointer``)."""

    index: int  # type: ignore[assignment]  # PyYAML's name (hides tuple.index)
    line: int
    column: int


class Event:
    """An event; ``start_mark`` and ``end_mark`` are decoded from the event's bytes (a copy
    of its ``yaml_event_t``) when first read."""

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    @property
    def start_mark(self) -> Mark:
        return Mark(*_MARK.unpack_from(self._raw, START_MARK))

    @property
    def end_mark(self) -> Mark:
        return Mark(*_MARK.unpack_from(self._raw, END_MARK))

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for cls in type(self).__mro__
            for name in getattr(cls, "__slots__", ())
            if not name.startswith("_")
        )
        return f"{type(self).__name__}({fields})"


class StreamStartEvent(Event):
    __slots__ = ("encoding",)

    def __init__(self, raw: bytes, encoding: str | None) -> None:
        self._raw = raw
        self.encoding = encoding


class StreamEndEvent(Event):
    __slots__ = ()


class DocumentStartEvent(Event):
    __slots__ = ("explicit", "tags", "version")

    def __init__(
        self,
        raw: bytes,
        explicit: bool,
        version: tuple[int, int] | None,
        tags: dict[str, str] | None,
    ) -> None:
        self._raw = raw
        self.explicit = explicit
        self.version = version
        self.tags = tags


class DocumentEndEvent(Event):
    __slots__ = ("explicit",)

    def __init__(self, raw: bytes, explicit: bool) -> None:
        self._raw = raw
        self.explicit = explicit


class AliasEvent(Event):
    __slots__ = ("anchor",)

    def __init__(self, raw: bytes, anchor: str | None) -> None:
        self._raw = raw
        self.anchor = anchor


class ScalarEvent(Event):
    __slots__ = ("anchor", "implicit", "style", "tag", "value")

    def __init__(
        self,
        raw: bytes,
        anchor: str | None,
        tag: str | None,
        implicit: tuple[bool, bool],
        value: str,
        style: str | None,
    ) -> None:
        self._raw = raw
        self.anchor = anchor
        self.tag = tag
        self.implicit = implicit
        self.value = value
        self.style = style


class CollectionStartEvent(Event):
    __slots__ = ("anchor", "flow_style", "implicit", "tag")

    def __init__(
        self,
        raw: bytes,
        anchor: str | None,
        tag: str | None,
        implicit: bool,
        flow_style: bool | None,
    ) -> None:
        self._raw = raw
        self.anchor = anchor
        self.tag = tag
        self.implicit = implicit
        self.flow_style = flow_style


class SequenceStartEvent(CollectionStartEvent):
    __slots__ = ()


class MappingStartEvent(CollectionStartEvent):
    __slots__ = ()


class SequenceEndEvent(Event):
    __slots__ = ()


class MappingEndEvent(Event):
    __slots__ = ()


class YAMLError(ValueError):
    """libyaml could not read, scan or parse the input: ``kind`` (``"reader"``, ``"scanner"``,
    ``"parser"``), ``problem``, ``problem_mark``, ``context``, ``context_mark`` (marks may be
    ``None``); for a reader error ``problem_offset`` and ``problem_value`` (the bad byte or
    character, -1 for none)."""

    def __init__(
        self,
        kind: str,
        problem: str,
        problem_mark: Mark | None,
        context: str | None = None,
        context_mark: Mark | None = None,
        problem_offset: int | None = None,
        problem_value: int | None = None,
    ) -> None:
        where = ""
        if problem_mark is not None:
            where = f" at line {problem_mark.line + 1}, column {problem_mark.column + 1}"
        elif problem_offset is not None:
            where = f" at byte {problem_offset}"
        text = f"{kind} error: {problem}{where}"
        if context is not None:
            text += f" ({context}"
            if context_mark is not None:
                text += f", line {context_mark.line + 1}, column {context_mark.column + 1}"
            text += ")"
        super().__init__(text)
        self.kind = kind
        self.problem = problem
        self.problem_mark = problem_mark
        self.context = context
        self.context_mark = context_mark
        self.problem_offset = problem_offset
        self.problem_value = problem_value


class Parser:
    """A libyaml parser over one YAML stream: iterate it for its events."""

    def __init__(self, data: bytes | bytearray | memoryview | str) -> None:
        if isinstance(data, str):
            data, self._unicode = data.encode("utf-8"), True
        elif isinstance(data, (bytes, bytearray, memoryview)):
            self._unicode = False
        else:
            raise TypeError(f"parse() needs bytes or str, not {type(data).__name__}")
        arena = Arena.of_confined()
        try:
            self._parser = arena.allocate(PARSER)
            self._event = arena.allocate(EVENT)
            # libyaml reads the input until the parser is deleted: a copy in the same arena
            self._input = arena.allocate_from(JAVA_BYTE, data)
            if not _parser_initialize(self._parser):
                raise MemoryError("yaml_parser_initialize: out of memory")
        except BaseException:
            arena.close()
            raise
        self._arena: Arena | None = arena
        _set_input_string(self._parser, self._input, self._input.byte_size)
        self._events = self._generate()

    def close(self) -> None:
        """``yaml_parser_delete`` and free the memory (idempotent)."""
        arena, self._arena = self._arena, None
        if arena is not None:
            try:
                _parser_delete(self._parser)
            finally:
                arena.close()

    def __enter__(self) -> Parser:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        arena = getattr(self, "_arena", None)
        if arena is not None and arena.scope.is_alive():
            with contextlib.suppress(RuntimeError):  # another thread's arena: left alone
                self.close()

    def __iter__(self) -> Iterator[Event]:
        return self._events

    def next_event(self) -> Event | None:
        """The next event, or ``None`` after ``StreamEndEvent`` (the parser is then closed)."""
        return next(self._events, None)

    def _generate(self) -> Iterator[Event]:
        """The events, one ``yaml_parser_parse`` each (one generator: the per-event work stays
        in one frame, its names local)."""
        parser, event = self._parser, self._event
        get, to_bytes = event.get, event.to_bytes
        parse, delete = _parse, _event_delete
        unpack_scalar, unpack_node = _SCALAR.unpack_from, _NODE.unpack_from
        scalar_styles, flow_styles, type_byte = _SCALAR_STYLES, _FLOW_STYLES, _TYPE_BYTE
        while self._arena is not None:
            if not parse(parser, event):
                error = self._error()
                self.close()
                raise error
            try:
                # the event's numbers in one checked copy, decoded by struct (offsets from
                # EVENT; the marks when asked for); its strings read through TEXT pointers,
                # those that are not NULL
                raw = to_bytes()
                kind = raw[type_byte]
                result: Event
                if kind == SCALAR:
                    anchor, tag, length, plain_implicit, quoted_implicit, style = unpack_scalar(
                        raw, SCALAR_ANCHOR
                    )
                    result = ScalarEvent(
                        raw,
                        get(TEXT, SCALAR_ANCHOR).get_string(0, "utf-8") if anchor else None,
                        get(TEXT, SCALAR_TAG).get_string(0, "utf-8") if tag else None,
                        (plain_implicit == 1, quoted_implicit == 1),
                        get(TEXT, SCALAR_VALUE).get_string(0, "utf-8", length),
                        scalar_styles.get(style),
                    )
                elif kind in (SEQUENCE_START, MAPPING_START):
                    anchor, tag, implicit, style = unpack_node(raw, NODE_ANCHOR)
                    result = (SequenceStartEvent if kind == SEQUENCE_START else MappingStartEvent)(
                        raw,
                        get(TEXT, NODE_ANCHOR).get_string(0, "utf-8") if anchor else None,
                        get(TEXT, NODE_TAG).get_string(0, "utf-8") if tag else None,
                        implicit == 1,
                        flow_styles.get(style),
                    )
                elif kind == SEQUENCE_END:
                    result = SequenceEndEvent(raw)
                elif kind == MAPPING_END:
                    result = MappingEndEvent(raw)
                else:
                    result = self._rare(kind, raw)
            finally:
                delete(event)
            if kind == STREAM_END:
                self.close()
            yield result

    def _rare(self, kind: int, raw: bytes) -> Event:
        """The events that come once per document or stream, and aliases."""
        if kind == ALIAS:
            return AliasEvent(raw, _text(self._event.get(TEXT, ALIAS_ANCHOR)))
        if kind == DOCUMENT_START:
            return self._document_start(raw, _INT.unpack_from(raw, DOC_IMPLICIT)[0] == 0)
        if kind == DOCUMENT_END:
            return DocumentEndEvent(raw, _INT.unpack_from(raw, DOC_END_IMPLICIT)[0] == 0)
        if kind == STREAM_START:
            encoding = _ENCODINGS.get(_INT.unpack_from(raw, ENCODING)[0])
            return StreamStartEvent(raw, None if self._unicode and encoding == "utf-8" else encoding)
        if kind == STREAM_END:
            return StreamEndEvent(raw)
        raise ValueError(f"yaml_parser_parse: unknown event type {kind}")

    def _document_start(self, raw: bytes, explicit: bool) -> DocumentStartEvent:
        event = self._event
        version = None
        directive = event.get(VERSION_POINTER, DOC_VERSION)
        if directive.address:
            version = (directive.get(JAVA_INT, 0), directive.get(JAVA_INT, 4))
        tags = None
        start = event.get(ADDRESS, DOC_TAGS_START)
        if start.address:
            count = (event.get(ADDRESS, DOC_TAGS_END).address - start.address) // TAG_DIRECTIVE.byte_size
            directives = start.reinterpret(count * TAG_DIRECTIVE.byte_size)
            tags = {}
            for index in range(count):
                base = index * TAG_DIRECTIVE.byte_size
                handle = _text(directives.get(TEXT, base))
                prefix = _text(directives.get(TEXT, base + 8))
                assert handle is not None and prefix is not None
                tags[handle] = prefix
        return DocumentStartEvent(raw, explicit, version, tags)

    def _error(self) -> Exception:
        parser = self._parser
        get = parser.get
        kind = _ERROR_KINDS.get(get(JAVA_INT, ERROR), "unknown")
        if kind == "memory":
            return MemoryError("yaml_parser_parse: out of memory")
        problem = _text(get(TEXT, PROBLEM)) or "unknown problem"
        if kind == "reader":
            return YAMLError(
                kind,
                problem,
                None,
                problem_offset=get(JAVA_LONG, PROBLEM_OFFSET),
                problem_value=get(JAVA_INT, PROBLEM_VALUE),
            )
        context = _text(get(TEXT, CONTEXT))
        problem_mark = Mark(*(get(JAVA_LONG, PROBLEM_MARK + 8 * i) for i in range(3)))
        context_mark = (
            Mark(*(get(JAVA_LONG, CONTEXT_MARK + 8 * i) for i in range(3))) if context is not None else None
        )
        return YAMLError(kind, problem, problem_mark, context, context_mark)


def parse(data: bytes | bytearray | memoryview | str) -> Iterator[Event]:
    """The events of the YAML stream ``data``, as ``yaml.parse(data, Loader=yaml.CSafeLoader)``."""
    with Parser(data) as parser:
        yield from parser._events
