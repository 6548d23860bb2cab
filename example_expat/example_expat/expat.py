"""libexpat's SAX parser through hatch-ffm, with :mod:`xml.parsers.expat`'s API.

``ParserCreate()`` makes a parser; set its handler attributes (``StartElementHandler(name,
attributes)`` with the attributes as a ``dict``, ``EndElementHandler(name)``,
``CharacterDataHandler(data)``, ``CommentHandler(data)``, ``ProcessingInstructionHandler(target,
data)``, ``StartCdataSectionHandler()``, ``EndCdataSectionHandler()``), then feed it with
``Parse(data, isfinal=False)`` (``bytes`` or ``str``) or ``ParseFile(file)``.  The handlers
are called with the arguments :mod:`xml.parsers.expat` passes (``ordered_attributes`` and
``buffer_text`` False, no namespace processing): expat calls C function pointers, upcall
stubs shared by every parser, which find their parser by the integer token expat hands back
as ``userData``.  Setting a handler to ``None`` removes expat's C handler; handlers may be
set, replaced or removed from inside a handler, taking effect at the next event.

Malformed XML raises :class:`ExpatError` with expat's message, line and column
(``"mismatched tag: line 1, column 8"``; ``code``, ``lineno`` and ``offset`` as
:class:`xml.parsers.expat.ExpatError`'s).  An exception raised by a handler stops the parser
(``XML_StopParser``; no handler is called after it) and ``Parse`` raises that exception
itself, as :mod:`xml.parsers.expat` does; the parser is then finished: another ``Parse``
raises ``ExpatError`` ("parsing finished").

A parser is a context manager: ``XML_ParserFree`` runs on ``close()``, at the end of its
``with`` block, or when the parser is collected.  ``Parse`` copies its input into native
memory of a confined arena for the call (``XML_Parse`` calls the handlers back, so it cannot
be a critical function, the only kind that may read a ``bytes`` object's own memory).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any, Final

from ffm_runtime import (
    JAVA_BYTE,
    JAVA_INT,
    JAVA_LONG,
    Arena,
    FunctionDescriptor,
    LibraryLoadError,
    Linker,
    MemorySegment,
    PathElement,
    SymbolLookup,
)

from .ffm_features import (
    CDATA_SECTION,
    CHARACTER_DATA,
    COMMENT,
    CRITICAL,
    END_ELEMENT,
    ERROR_STRING,
    GET_ERROR_CODE,
    GET_SIZE,
    PARSE,
    PARSER_CREATE,
    PARSER_FREE,
    PROCESSING_INSTRUCTION,
    SET_ENCODING,
    SET_HANDLER,
    SET_USER_DATA,
    START_ELEMENT,
    STOP_PARSER,
    VERSION_INFO,
    VERSION_INFO_STRUCT,
    VERSION_STRING,
)

group_element = PathElement.group_element

__all__ = [
    "EXPAT_VERSION",
    "ErrorString",
    "ExpatError",
    "ParserCreate",
    "XMLParserType",
    "error",
    "version_info",
]

LIBRARY: Final = "libexpat.so.1"  # Debian's libexpat1

try:
    _lib = SymbolLookup.library_lookup(LIBRARY, Arena.global_arena())
except LibraryLoadError as exc:
    raise LibraryLoadError(
        f"{LIBRARY} could not be loaded ({exc}): install libexpat (Debian: apt-get install libexpat1)"
    ) from exc
_linker = Linker.native_linker()


def _handle(
    name: str, descriptor: FunctionDescriptor, options: tuple[object, ...] = CRITICAL
) -> Callable[..., Any]:
    symbol = _lib.find(name)
    if symbol is None:
        raise LookupError(f"{name} not found in {LIBRARY}")
    handle: Callable[..., Any] = _linker.downcall_handle(symbol, descriptor, *options)
    return handle


_parser_create = _handle("XML_ParserCreate", PARSER_CREATE)
_parser_free = _handle("XML_ParserFree", PARSER_FREE)
_set_user_data = _handle("XML_SetUserData", SET_USER_DATA)
_set_encoding = _handle("XML_SetEncoding", SET_ENCODING)
_parse = _handle("XML_Parse", PARSE, ())  # it calls the handlers back: not critical
_stop_parser = _handle("XML_StopParser", STOP_PARSER)
_get_error_code = _handle("XML_GetErrorCode", GET_ERROR_CODE)
_error_string = _handle("XML_ErrorString", ERROR_STRING)
_line_number = _handle("XML_GetCurrentLineNumber", GET_SIZE)
_column_number = _handle("XML_GetCurrentColumnNumber", GET_SIZE)
_byte_index = _handle("XML_GetCurrentByteIndex", GET_SIZE)
_expat_version = _handle("XML_ExpatVersion", VERSION_STRING)
_expat_version_info = _handle("XML_ExpatVersionInfo", VERSION_INFO_STRUCT)

# expat.h constants (checked against the header by the tests)
XML_STATUS_ERROR: Final = 0
XML_STATUS_OK: Final = 1
XML_FALSE: Final = 0
XML_ERROR_ABORTED: Final = 35
XML_ERROR_FINISHED: Final = 36
#: the largest ``len`` of one ``XML_Parse`` call (an ``int``); longer input goes in pieces
INT_MAX: Final = (1 << 31) - 1

#: ``"expat_2.5.0"``, as :data:`xml.parsers.expat.EXPAT_VERSION`
EXPAT_VERSION: Final[str] = _expat_version().get_string(0, "ascii")


def ErrorString(code: int) -> str | None:  # xml.parsers.expat's name
    """expat's message for an error code (``XML_ErrorString``), ``None`` for an unknown one."""
    text = _error_string(code)
    return None if text.address == 0 else str(text.get_string(0, "ascii"))


class ExpatError(Exception):
    """Malformed XML, as :class:`xml.parsers.expat.ExpatError`: the message is expat's,
    followed by ``: line L, column C``; ``code`` is expat's error code, ``lineno`` the line
    (from 1) and ``offset`` the column (from 0) where expat stopped."""

    code: int
    lineno: int
    offset: int


error = ExpatError

#: parser token -> the parser, while its ``Parse`` runs (the only time expat calls handlers):
#: each upcall finds its parser here by the ``userData`` token.  Only running parsers are
#: held, so a parser with handlers that refer back to it is still collected.
_active: dict[int, XMLParserType] = {}
_tokens = itertools.count(1)


#: The whole address space as one segment: the handlers read the strings and the attribute
#: array expat hands them (as integers, ``POINTER``) through it, with absolute addresses as
#: offsets; every pointer read is one expat passed to the running handler, valid for the call.
MEMORY: Final = MemorySegment.NULL.reinterpret((1 << 63) - 1)
_get_string = MEMORY.get_string
_get = MEMORY.get


# The upcall targets, one per handler kind, shared by every parser.  Each finds its parser by
# token, converts the C arguments and calls the parser's handler; whatever that raises stops
# the parser and is raised again by Parse (_abort).  expat only calls a C handler while its
# Python handler is set: the setter installs the stub, or NULL for None.  (Kept short: each
# is a Python frame per event on top of the handler's own.)
def _on_start_element(token: int, name: int, atts: int) -> None:
    try:
        attributes = {}
        key = _get(JAVA_LONG, atts)
        while key:  # name, value, ..., NULL
            attributes[_get_string(key)] = _get_string(_get(JAVA_LONG, atts + 8))
            atts += 16
            key = _get(JAVA_LONG, atts)
        handler = _active[token]._start  # LOAD_ATTR of a slot: specialized, unlike a method call's
        handler(_get_string(name), attributes)
    except BaseException as exc:  # raised again by Parse
        _active[token]._abort(exc)


def _on_end_element(token: int, name: int) -> None:
    try:
        handler = _active[token]._end
        handler(_get_string(name))
    except BaseException as exc:
        _active[token]._abort(exc)


def _on_character_data(token: int, data: int, length: int) -> None:
    try:
        handler = _active[token]._chars
        handler(_get_string(data, "utf-8", length))
    except BaseException as exc:
        _active[token]._abort(exc)


def _on_comment(token: int, data: int) -> None:
    try:
        handler = _active[token]._comment
        handler(_get_string(data))
    except BaseException as exc:
        _active[token]._abort(exc)


def _on_processing_instruction(token: int, target: int, data: int) -> None:
    try:
        handler = _active[token]._pi
        handler(_get_string(target), _get_string(data))
    except BaseException as exc:
        _active[token]._abort(exc)


def _on_start_cdata(token: int) -> None:
    try:
        handler = _active[token]._cdata_start
        handler()
    except BaseException as exc:
        _active[token]._abort(exc)


def _on_end_cdata(token: int) -> None:
    try:
        handler = _active[token]._cdata_end
        handler()
    except BaseException as exc:
        _active[token]._abort(exc)


class _Handler:
    """A handler attribute of :class:`XMLParserType`: the Python callable (kept in ``slot``)
    and expat's C handler, set to the shared upcall stub, or to NULL for ``None``."""

    def __init__(
        self, setter: str, slot: str, target: Callable[..., None], shape: FunctionDescriptor
    ) -> None:
        self.setter = _handle(setter, SET_HANDLER)
        self.slot = slot
        #: the C function pointer: lives as long as the process (the global arena)
        self.stub = _linker.upcall_stub(target, shape, Arena.global_arena())

    def __get__(self, parser: XMLParserType | None, owner: type | None = None) -> Any:
        if parser is None:
            return self
        return getattr(parser, self.slot)

    def __set__(self, parser: XMLParserType, handler: Callable[..., object] | None) -> None:
        if handler is not None and not callable(handler):
            raise TypeError(f"a handler must be callable or None, not {type(handler).__name__}")
        pointer = parser._check_open()
        self.setter(pointer, MemorySegment.NULL if handler is None else self.stub)
        setattr(parser, self.slot, handler)

    def clear(self, parser: MemorySegment) -> None:
        self.setter(parser, MemorySegment.NULL)


class XMLParserType:
    """An expat parser (``XML_Parser``) and its handlers; make one with :func:`ParserCreate`."""

    __slots__ = (
        "__weakref__",
        "_cdata_end",
        "_cdata_start",
        "_chars",
        "_comment",
        "_end",
        "_exception",
        "_parser",
        "_pi",
        "_start",
        "_token",
    )

    # The handlers (None, or what the _Handler attribute was set to).  Typed as set: the
    # upcall targets call them only while they are, expat's C handler being NULL otherwise.
    _start: Callable[[str, dict[str, str]], object]
    _end: Callable[[str], object]
    _chars: Callable[[str], object]
    _comment: Callable[[str], object]
    _pi: Callable[[str, str], object]
    _cdata_start: Callable[[], object]
    _cdata_end: Callable[[], object]

    StartElementHandler = _Handler("XML_SetStartElementHandler", "_start", _on_start_element, START_ELEMENT)
    EndElementHandler = _Handler("XML_SetEndElementHandler", "_end", _on_end_element, END_ELEMENT)
    CharacterDataHandler = _Handler(
        "XML_SetCharacterDataHandler", "_chars", _on_character_data, CHARACTER_DATA
    )
    CommentHandler = _Handler("XML_SetCommentHandler", "_comment", _on_comment, COMMENT)
    ProcessingInstructionHandler = _Handler(
        "XML_SetProcessingInstructionHandler", "_pi", _on_processing_instruction, PROCESSING_INSTRUCTION
    )
    StartCdataSectionHandler = _Handler(
        "XML_SetStartCdataSectionHandler", "_cdata_start", _on_start_cdata, CDATA_SECTION
    )
    EndCdataSectionHandler = _Handler(
        "XML_SetEndCdataSectionHandler", "_cdata_end", _on_end_cdata, CDATA_SECTION
    )

    def __init__(self, encoding: str | None = None) -> None:
        self._parser: MemorySegment | None = None
        for handler in _HANDLERS:
            setattr(self, handler.slot, None)
        self._exception: BaseException | None = None
        self._token = next(_tokens)
        if encoding is None:
            parser = _parser_create(MemorySegment.NULL)
        else:
            with Arena.of_confined() as arena:  # expat copies the name
                parser = _parser_create(arena.allocate_from(encoding))
        if parser.address == 0:
            raise MemoryError("XML_ParserCreate: out of memory")
        _set_user_data(parser, self._token)
        self._parser = parser

    # -- parsing

    def Parse(self, data: str | bytes | bytearray | memoryview, isfinal: bool = False) -> int:
        """Parse ``data`` (the next part of the document; ``isfinal`` for the last part), calling
        the handlers; 1 on success.  ``str`` data is parsed as UTF-8 (``XML_SetEncoding``),
        as :mod:`xml.parsers.expat` does.  Raises :class:`ExpatError` for malformed XML and
        whatever a handler raised."""
        parser = self._check_open()
        if isinstance(data, str):
            data = data.encode("utf-8")  # lone surrogates: UnicodeEncodeError, as there
            _set_encoding(parser, _UTF8)
        elif isinstance(data, memoryview):
            data = data.tobytes()
        elif not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"Parse() needs bytes or str, not {type(data).__name__}")
        token = self._token
        if token in _active:
            raise RuntimeError("Parse() called from a handler of the same parser, while it parses")
        final = 1 if isfinal else 0
        size = len(data)
        _active[token] = self
        arena = Arena.of_confined()
        try:
            segment = arena.allocate_from(JAVA_BYTE, data) if size else MemorySegment.NULL
            if size <= INT_MAX:
                status = _parse(parser, segment, size, final)
            else:  # XML_Parse takes an int length
                status = XML_STATUS_OK
                for start in range(0, size, INT_MAX):
                    piece = min(INT_MAX, size - start)
                    last = final if start + piece == size else 0
                    status = _parse(parser, segment.as_slice(start, piece), piece, last)
                    if status == XML_STATUS_ERROR:
                        break
        finally:
            del _active[token]
            arena.close()
        exception = self._exception
        if exception is not None:
            self._exception = None
            raise exception
        if status == XML_STATUS_ERROR:
            raise self._error()
        return 1

    def ParseFile(self, file: IO[bytes]) -> int:
        """Parse the whole of a binary file object (``read(n)`` until ``b""``)."""
        while True:
            chunk = file.read(1 << 16)
            if not chunk:
                return self.Parse(b"", True)
            self.Parse(chunk)

    def _abort(self, exception: BaseException) -> None:
        """A handler raised: keep the exception for Parse, call no more handlers, stop expat."""
        if self._exception is None:
            self._exception = exception
        parser = self._parser
        assert parser is not None  # Parse runs, so close() was refused
        for handler in _HANDLERS:
            handler.clear(parser)
        _stop_parser(parser, XML_FALSE)

    def _error(self) -> ExpatError:
        parser = self._check_open()
        code = _get_error_code(parser)
        line, column = _line_number(parser), _column_number(parser)
        error = ExpatError(f"{ErrorString(code)}: line {line}, column {column}")
        error.code, error.lineno, error.offset = code, line, column
        return error

    # -- where expat is (XML_GetCurrent*, XML_GetErrorCode): as xml.parsers.expat's attributes

    @property
    def ErrorCode(self) -> int:
        return int(_get_error_code(self._check_open()))

    @property
    def CurrentLineNumber(self) -> int:
        return int(_line_number(self._check_open()))

    @property
    def CurrentColumnNumber(self) -> int:
        return int(_column_number(self._check_open()))

    @property
    def CurrentByteIndex(self) -> int:
        return int(_byte_index(self._check_open()))

    ErrorLineNumber = CurrentLineNumber
    ErrorColumnNumber = CurrentColumnNumber
    ErrorByteIndex = CurrentByteIndex

    # -- lifetime

    def _check_open(self) -> MemorySegment:
        parser = self._parser
        if parser is None:
            raise ValueError("the parser is closed")
        return parser

    def close(self) -> None:
        """``XML_ParserFree`` (idempotent); refused from a handler while this parser parses."""
        if self._token in _active:
            raise RuntimeError("close() called from a handler of the parser, while it parses")
        parser, self._parser = self._parser, None
        if parser is not None:
            _parser_free(parser)

    def __enter__(self) -> XMLParserType:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_parser", None) is not None:
            with contextlib.suppress(RuntimeError):
                self.close()


_HANDLERS: Final = tuple(value for value in vars(XMLParserType).values() if isinstance(value, _Handler))
#: the encoding name XML_SetEncoding gets for str input (expat copies it)
_UTF8: Final = Arena.global_arena().allocate_from("utf-8")


def ParserCreate(  # xml.parsers.expat's name
    encoding: str | None = None, namespace_separator: str | None = None
) -> XMLParserType:
    """A new parser, as :func:`xml.parsers.expat.ParserCreate` (``encoding`` overrides the
    document's); namespace processing is not supported."""
    if namespace_separator is not None:
        raise NotImplementedError("namespace processing (namespace_separator) is not supported")
    if encoding is not None and not isinstance(encoding, str):
        raise TypeError(f"ParserCreate() encoding must be str or None, not {type(encoding).__name__}")
    return XMLParserType(encoding)


def version_info() -> tuple[int, int, int]:
    """``(major, minor, micro)`` (``XML_ExpatVersionInfo``, a struct returned by value), as
    :data:`xml.parsers.expat.version_info`."""
    with Arena.of_confined() as arena:
        info = _expat_version_info(arena)
        major, minor, micro = (
            int(info.get(JAVA_INT, VERSION_INFO.byte_offset(group_element(name))))
            for name in ("major", "minor", "micro")
        )
        return major, minor, micro
