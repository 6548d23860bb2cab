"""The call shapes of libexpat (``expat.h``) this binding links, downcalls and upcalls, and the
Feature that registers them.

``XML_Char`` is ``char`` (UTF-8): Debian's ``libexpat.so.1`` is built without ``XML_UNICODE``.
The sizes and constants below are checked against the C compiler and ``expat.h`` by the tests
(``tests/test_example_expat.py``).
"""

from __future__ import annotations

from ffm_runtime import ADDRESS, JAVA_BYTE, JAVA_INT, JAVA_LONG, FunctionDescriptor, Linker, MemoryLayout
from hatch_ffm import DuringSetupAccess, RuntimeForeignAccess

#: enums are ints
ENUM = JAVA_INT
#: ``XML_Bool`` (``unsigned char``)
BOOL = JAVA_BYTE
#: ``XML_Size`` (``unsigned long``, as expat is built without ``XML_LARGE_SIZE``), LP64
SIZE = JAVA_LONG
#: ``XML_Index`` (``long``)
INDEX = JAVA_LONG
#: The ``void *userData`` of every handler and of ``XML_SetUserData``: this binding stores an
#: integer token there (never a pointer, never dereferenced), so it travels as an integer (the
#: same register as a pointer on LP64) and the upcall gets an ``int``, not a segment.
USER_DATA = JAVA_LONG

#: A ``const XML_Char *`` result (``XML_ErrorString``, ``XML_ExpatVersion``): read up to its
#: NUL by ``get_string``, which reads no further than the NUL's page.
TEXT = ADDRESS.with_target_layout(MemoryLayout.sequence_layout((1 << 63) - 1, JAVA_BYTE))
#: The pointers expat hands to a handler (``const XML_Char *name``, ``const XML_Char **atts``,
#: ...) arrive as integers, the same register as a pointer on LP64: the handlers read them at
#: once, through one segment spanning the address space (``MEMORY`` of
#: :mod:`example_expat.expat`), so no segment object is made per pointer per event.
POINTER = JAVA_LONG

#: ``XML_Expat_Version``, returned by value by ``XML_ExpatVersionInfo``
VERSION_INFO = MemoryLayout.struct_layout(
    JAVA_INT.with_name("major"), JAVA_INT.with_name("minor"), JAVA_INT.with_name("micro")
).with_name("XML_Expat_Version")

# downcalls
#: XML_Parser XML_ParserCreate(const XML_Char *encoding)
PARSER_CREATE = FunctionDescriptor.of(ADDRESS, ADDRESS)
#: void XML_ParserFree(XML_Parser)
PARSER_FREE = FunctionDescriptor.of_void(ADDRESS)
#: void XML_SetUserData(XML_Parser, void *userData): the token (see USER_DATA)
SET_USER_DATA = FunctionDescriptor.of_void(ADDRESS, USER_DATA)
#: void XML_Set*Handler(XML_Parser, XML_*Handler): a function pointer or NULL
SET_HANDLER = FunctionDescriptor.of_void(ADDRESS, ADDRESS)
#: enum XML_Status XML_SetEncoding(XML_Parser, const XML_Char *encoding)
SET_ENCODING = FunctionDescriptor.of(ENUM, ADDRESS, ADDRESS)
#: enum XML_Status XML_Parse(XML_Parser, const char *s, int len, int isFinal)
PARSE = FunctionDescriptor.of(ENUM, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT)
#: enum XML_Status XML_StopParser(XML_Parser, XML_Bool resumable)
STOP_PARSER = FunctionDescriptor.of(ENUM, ADDRESS, BOOL)
#: enum XML_Error XML_GetErrorCode(XML_Parser)
GET_ERROR_CODE = FunctionDescriptor.of(ENUM, ADDRESS)
#: const XML_LChar *XML_ErrorString(enum XML_Error)
ERROR_STRING = FunctionDescriptor.of(TEXT, ENUM)
#: XML_Size XML_GetCurrentLineNumber(XML_Parser), XML_GetCurrentColumnNumber(XML_Parser), and
#: XML_Index XML_GetCurrentByteIndex(XML_Parser): one shape (both are 8-byte integers on LP64)
GET_SIZE = FunctionDescriptor.of(SIZE, ADDRESS)
assert INDEX.byte_size == SIZE.byte_size
#: const XML_LChar *XML_ExpatVersion(void)
VERSION_STRING = FunctionDescriptor.of(TEXT)
#: XML_Expat_Version XML_ExpatVersionInfo(void): a struct by value
VERSION_INFO_STRUCT = FunctionDescriptor.of(VERSION_INFO)

#: Every call but XML_Parse is short and calls nothing back: critical (the GIL kept).
#: XML_Parse calls the handlers back, which a critical function must not do: a default handle
#: (the GIL is given up for the call and each handler's upcall takes it back).
CRITICAL = (Linker.Option.critical(),)
DEFAULT = ()
DOWNCALLS = (
    (PARSER_CREATE, CRITICAL),
    (PARSER_FREE, CRITICAL),
    (SET_USER_DATA, CRITICAL),
    (SET_HANDLER, CRITICAL),
    (SET_ENCODING, CRITICAL),
    (PARSE, DEFAULT),
    (STOP_PARSER, CRITICAL),
    (GET_ERROR_CODE, CRITICAL),
    (ERROR_STRING, CRITICAL),
    (GET_SIZE, CRITICAL),
    (VERSION_STRING, CRITICAL),
    (VERSION_INFO_STRUCT, CRITICAL),
)

# upcalls: the handlers' shapes (the userData first)
#: XML_StartElementHandler(void *userData, const XML_Char *name, const XML_Char **atts)
START_ELEMENT = FunctionDescriptor.of_void(USER_DATA, POINTER, POINTER)
#: XML_EndElementHandler(void *userData, const XML_Char *name), and
#: XML_CommentHandler(void *userData, const XML_Char *data)
END_ELEMENT = FunctionDescriptor.of_void(USER_DATA, POINTER)
COMMENT = END_ELEMENT
#: XML_CharacterDataHandler(void *userData, const XML_Char *s, int len): not NUL-terminated
CHARACTER_DATA = FunctionDescriptor.of_void(USER_DATA, POINTER, JAVA_INT)
#: XML_ProcessingInstructionHandler(void *userData, const XML_Char *target, const XML_Char *data)
PROCESSING_INSTRUCTION = START_ELEMENT
#: XML_StartCdataSectionHandler(void *userData), XML_EndCdataSectionHandler(void *userData)
CDATA_SECTION = FunctionDescriptor.of_void(USER_DATA)
UPCALLS = (START_ELEMENT, END_ELEMENT, CHARACTER_DATA, CDATA_SECTION)


class ExpatFeature:
    """Registers every call shape :mod:`example_expat.expat` links and every handler shape it
    makes upcall stubs of."""

    def during_setup(self, access: DuringSetupAccess) -> None:
        for descriptor, options in DOWNCALLS:
            RuntimeForeignAccess.register_for_downcall(descriptor, *options)
        for descriptor in UPCALLS:
            RuntimeForeignAccess.register_for_upcall(descriptor)
