"""The layouts and call shapes of libyaml's parser (``yaml.h``), and the Feature that
registers them.

The layouts are checked against the C compiler and ``yaml.h`` by the tests
(``tests/test_example_yaml.py``): every named field's offset and every size.
"""

from __future__ import annotations

from ffm_runtime import ADDRESS, JAVA_INT, JAVA_LONG, FunctionDescriptor, Linker, MemoryLayout
from hatch_ffm import DuringSetupAccess, RuntimeForeignAccess

SIZE_T = JAVA_LONG  # LP64
#: enums are ints
ENUM = JAVA_INT


def _pad(size: int) -> MemoryLayout:
    return MemoryLayout.padding_layout(size)


#: ``yaml_mark_t``
MARK = MemoryLayout.struct_layout(
    SIZE_T.with_name("index"), SIZE_T.with_name("line"), SIZE_T.with_name("column")
).with_name("yaml_mark_t")

#: ``yaml_version_directive_t``
VERSION_DIRECTIVE = MemoryLayout.struct_layout(
    JAVA_INT.with_name("major"), JAVA_INT.with_name("minor")
).with_name("yaml_version_directive_t")

#: ``yaml_tag_directive_t``
TAG_DIRECTIVE = MemoryLayout.struct_layout(
    ADDRESS.with_name("handle"), ADDRESS.with_name("prefix")
).with_name("yaml_tag_directive_t")


def _node_start(name: str) -> MemoryLayout:
    """``sequence_start`` / ``mapping_start`` of ``yaml_event_t.data``."""
    return MemoryLayout.struct_layout(
        ADDRESS.with_name("anchor"),
        ADDRESS.with_name("tag"),
        JAVA_INT.with_name("implicit"),
        ENUM.with_name("style"),
    ).with_name(name)


#: ``yaml_event_t``: the type, a union of one struct per event type, two marks
EVENT = MemoryLayout.struct_layout(
    ENUM.with_name("type"),
    _pad(4),
    MemoryLayout.union_layout(
        MemoryLayout.struct_layout(ENUM.with_name("encoding")).with_name("stream_start"),
        MemoryLayout.struct_layout(
            ADDRESS.with_name("version_directive"),
            MemoryLayout.struct_layout(ADDRESS.with_name("start"), ADDRESS.with_name("end")).with_name(
                "tag_directives"
            ),
            JAVA_INT.with_name("implicit"),
            _pad(4),
        ).with_name("document_start"),
        MemoryLayout.struct_layout(JAVA_INT.with_name("implicit")).with_name("document_end"),
        MemoryLayout.struct_layout(ADDRESS.with_name("anchor")).with_name("alias"),
        MemoryLayout.struct_layout(
            ADDRESS.with_name("anchor"),
            ADDRESS.with_name("tag"),
            ADDRESS.with_name("value"),
            SIZE_T.with_name("length"),
            JAVA_INT.with_name("plain_implicit"),
            JAVA_INT.with_name("quoted_implicit"),
            ENUM.with_name("style"),
            _pad(4),
        ).with_name("scalar"),
        _node_start("sequence_start"),
        _node_start("mapping_start"),
    ).with_name("data"),
    MARK.with_name("start_mark"),
    MARK.with_name("end_mark"),
).with_name("yaml_event_t")

#: The size of ``yaml_parser_t`` on LP64 Linux (``sizeof``, checked by the tests).
PARSER_SIZE = 480
_PARSER_HEAD = MemoryLayout.struct_layout(
    ENUM.with_name("error"),
    _pad(4),
    ADDRESS.with_name("problem"),
    SIZE_T.with_name("problem_offset"),
    JAVA_INT.with_name("problem_value"),
    _pad(4),
    MARK.with_name("problem_mark"),
    ADDRESS.with_name("context"),
    MARK.with_name("context_mark"),
)
#: ``yaml_parser_t``: the error fields by name, the parser's private state as padding
PARSER = MemoryLayout.struct_layout(
    *_PARSER_HEAD.member_layouts, _pad(PARSER_SIZE - _PARSER_HEAD.byte_size)
).with_name("yaml_parser_t")

#: int yaml_parser_initialize(yaml_parser_t *)
PARSER_INITIALIZE = FunctionDescriptor.of(JAVA_INT, ADDRESS)
#: void yaml_parser_set_input_string(yaml_parser_t *, const unsigned char *, size_t)
SET_INPUT_STRING = FunctionDescriptor.of_void(ADDRESS, ADDRESS, SIZE_T)
#: int yaml_parser_parse(yaml_parser_t *, yaml_event_t *)
PARSE = FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS)
#: void yaml_event_delete(yaml_event_t *), void yaml_parser_delete(yaml_parser_t *)
DELETE = FunctionDescriptor.of_void(ADDRESS)
#: const char *yaml_get_version_string(void)
VERSION_STRING = FunctionDescriptor.of(ADDRESS)
#: size_t strlen(const char *): the length of the NUL-terminated strings libyaml hands out
STRLEN = FunctionDescriptor.of(SIZE_T, ADDRESS)

#: Every call here is short and never blocks (parsing one event from a string in memory):
#: all are critical (GIL kept, the cheapest call).
CRITICAL = Linker.Option.critical()


class YamlFeature:
    """Registers every call shape :mod:`example_yaml.libyaml` links."""

    def during_setup(self, access: DuringSetupAccess) -> None:
        for descriptor in (PARSER_INITIALIZE, SET_INPUT_STRING, PARSE, DELETE, VERSION_STRING, STRLEN):
            RuntimeForeignAccess.register_for_downcall(descriptor, CRITICAL)
