"""Feature discovery (option and entry points), declining, and registration rules."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest

from ffm_runtime import (
    ADDRESS,
    JAVA_DOUBLE,
    JAVA_FLOAT,
    JAVA_INT,
    JAVA_LONG,
    FunctionDescriptor,
    Linker,
    MemoryLayout,
)
from ffm_runtime._descriptor import MAX_BY_VALUE_BYTE_SIZE
from hatch_ffm import DuringSetupAccess, NotSupportedYetError, RuntimeForeignAccess
from hatch_ffm._features import FeatureError, run_features
from hatch_ffm._lowering import lower

ACCESS = DuringSetupAccess("/project", "demo", "demo", ("x86_64-linux",))
PATH = "tool.hatch.build.targets.wheel.hooks.ffm"


def write_module(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(body))


PREAMBLE = """
from ffm_runtime import *
from hatch_ffm import RuntimeForeignAccess
"""


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_feature_from_option(plugins: Path) -> None:
    write_module(
        plugins,
        "feat_option",
        PREAMBLE
        + """
class Libc:
    def during_setup(self, access):
        RuntimeForeignAccess.register_for_downcall(FunctionDescriptor.of(JAVA_LONG, ADDRESS))
        RuntimeForeignAccess.register_for_downcall(FunctionDescriptor.of(JAVA_LONG, ADDRESS))
        RuntimeForeignAccess.register_for_downcall(
            FunctionDescriptor.of(JAVA_LONG.with_name("n"), ADDRESS.with_name("s")))
""",
    )
    session, ran, declined = run_features(["feat_option:Libc"], False, ACCESS, PATH)
    assert ran == ["feat_option:Libc"] and declined == []
    assert list(session.registrations) == ["(a8)j8"]
    assert session.requests == 3
    assert session.registrations["(a8)j8"].feature == "feat_option:Libc"


def test_feature_from_entry_point_of_installed_distribution(plugins: Path) -> None:
    write_module(
        plugins,
        "thirdparty_feature",
        PREAMBLE
        + """
class ThirdParty:
    def during_setup(self, access):
        RuntimeForeignAccess.register_for_downcall(FunctionDescriptor.of(JAVA_INT, JAVA_INT))
""",
    )
    dist_info = plugins / "thirdparty_feature-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-feature\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[hatch_ffm.features]\nthirdparty = thirdparty_feature:ThirdParty\n"
    )
    session, ran, _ = run_features([], True, ACCESS, PATH)
    assert "thirdparty" in ran
    assert "(i4)i4" in session.registrations
    # entry points can be switched off
    session, ran, _ = run_features([], False, ACCESS, PATH)
    assert "thirdparty" not in ran and "(i4)i4" not in session.registrations


def test_declining_feature_is_not_run(plugins: Path) -> None:
    write_module(
        plugins,
        "feat_decline",
        PREAMBLE
        + """
from hatch_ffm import hookimpl

class No:
    @hookimpl
    def is_in_configuration(self, access):
        return access.package != "demo"
    def during_setup(self, access):
        raise AssertionError("must not run")

class Yes:
    def is_in_configuration(self, access):
        return True
    def during_setup(self, access):
        RuntimeForeignAccess.register_for_downcall(FunctionDescriptor.of_void())
""",
    )
    session, ran, declined = run_features(["feat_decline:No", "feat_decline:Yes"], False, ACCESS, PATH)
    assert ran == ["feat_decline:Yes"] and declined == ["feat_decline:No"]
    assert list(session.registrations) == ["()v"]


def test_seed_example_registrations(plugins: Path) -> None:
    """GraalVM's example Feature, in Python: every registration is accepted."""
    write_module(
        plugins,
        "feat_seed",
        PREAMBLE
        + """
class Seed:
    def during_setup(self, access):
        RuntimeForeignAccess.register_for_downcall(FunctionDescriptor.of_void())
        RuntimeForeignAccess.register_for_downcall(FunctionDescriptor.of_void(),
                                                   Linker.Option.is_trivial())
        RuntimeForeignAccess.register_for_downcall(FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT))
        RuntimeForeignAccess.register_for_downcall(FunctionDescriptor.of(ADDRESS, JAVA_INT, JAVA_INT),
                                                   Linker.Option.first_variadic_arg(1))
        RuntimeForeignAccess.register_for_downcall(FunctionDescriptor.of_void(JAVA_INT),
                                                   Linker.Option.capture_call_state("errno"))
""",
    )
    session, _, _ = run_features(["feat_seed:Seed"], False, ACCESS, PATH)
    assert sorted(session.registrations) == [
        "()v",
        "()v critical",
        "(i4)v capture(errno)",
        "(i4i4)a8 variadic(1)",
        "(i4i4)i4",
    ]


def test_targets_without_lowering_are_not_supported_yet() -> None:
    descriptor = FunctionDescriptor.of(JAVA_INT, JAVA_INT)
    with pytest.raises(NotSupportedYetError, match="lowering for riscv64-linux is not supported yet"):
        lower("(i4)i4", descriptor, (), "riscv64-linux")


def test_upcall_registrations_have_keys_of_their_own() -> None:
    from hatch_ffm._registration import RegistrationSession, open_session

    session = RegistrationSession(("x86_64-linux", "aarch64-linux"))
    shape = FunctionDescriptor.of(JAVA_INT, ADDRESS.with_name("a"), ADDRESS)
    with open_session(session):
        RuntimeForeignAccess.register_for_upcall(shape)
        RuntimeForeignAccess.register_for_upcall(FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS))
        RuntimeForeignAccess.register_for_downcall(shape)
    assert list(session.upcalls) == ["upcall (a8a8)i4"]
    assert list(session.registrations) == ["(a8a8)i4"]
    assert session.requests == 3
    assert set(session.upcalls["upcall (a8a8)i4"].signatures) == {"x86_64-linux", "aarch64-linux"}


def test_the_jdks_rules_for_upcall_registrations() -> None:
    from hatch_ffm._registration import RegistrationSession, open_session

    with open_session(RegistrationSession()):
        for option in (
            Linker.Option.critical(),
            Linker.Option.first_variadic_arg(0),
            Linker.Option.capture_call_state("errno"),
        ):
            with pytest.raises(ValueError, match=r"Not supported for upcall: Linker\.Option\."):
                RuntimeForeignAccess.register_for_upcall(FunctionDescriptor.of_void(JAVA_INT), option)
        with pytest.raises(ValueError, match="does not have the native byte order"):
            RuntimeForeignAccess.register_for_upcall(FunctionDescriptor.of(JAVA_INT.with_order("big")))
        with pytest.raises(TypeError, match="register_for_upcall\\(\\) expects a FunctionDescriptor"):
            RuntimeForeignAccess.register_for_upcall("(i4)v")  # type: ignore[arg-type]


def test_struct_upcalls_travel_as_downcalls_of_the_shape_pass_them() -> None:
    """A struct or union argument of an upcall reaches the entry as C passes it (registers,
    x86_64's memory, AArch64's reference), the target as a pointer to its bytes; a struct
    result goes back as C expects it (registers or a hidden pointer)."""
    from hatch_ffm._lowering import Passing, Returning, lower_upcall
    from hatch_ffm._registration import RegistrationSession, open_session

    s2 = MemoryLayout.struct_layout(JAVA_DOUBLE, ADDRESS)
    hfa = MemoryLayout.struct_layout(JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT)
    big = MemoryLayout.struct_layout(JAVA_LONG, JAVA_DOUBLE, ADDRESS)
    shape = FunctionDescriptor.of(big, *[JAVA_LONG] * 6, s2, hfa, JAVA_INT)
    session = RegistrationSession(("x86_64-linux", "aarch64-linux"))
    with open_session(session):
        RuntimeForeignAccess.register_for_upcall(shape)
    (registration,) = session.upcalls.values()
    x86, arm = registration.signatures["x86_64-linux"], registration.signatures["aarch64-linux"]
    assert x86 == lower_upcall("upcall (j8j8j8j8j8j8[d8a8][f4f4f4]i4)[j8d8a8]", shape, "x86_64-linux")
    for lowered in (x86, arm):
        assert lowered.result is None
        assert lowered.struct_result is not None and lowered.struct_result.passing is Returning.SRET
        assert [a.scalar.form.value for a in lowered.arguments] == ["integer"] * 6 + ["address"] * 2 + [
            "integer"
        ]
        assert [a.target_size for a in lowered.arguments][6:8] == [16, 12]
    # x86_64: the hidden result pointer and six longs take every integer register
    assert [a.struct.passing for a in x86.arguments if a.struct] == [Passing.BYVAL, Passing.PIECES]
    assert [str(p.type) for p in x86.arguments[7].struct.pieces] == ["<2 x float>", "float"]  # type: ignore[union-attr]
    assert [a.struct.passing for a in arm.arguments if a.struct] == [Passing.PIECES, Passing.PIECES]
    assert [str(p.type) for a in arm.arguments if a.struct for p in a.struct.pieces] == [
        "[2 x i64]",
        "[3 x float]",
    ]


def test_invalid_layouts_are_refused() -> None:
    from hatch_ffm._registration import RegistrationSession, open_session

    with open_session(RegistrationSession()):
        with pytest.raises(ValueError, match="does not have the native byte order"):
            RuntimeForeignAccess.register_for_downcall(FunctionDescriptor.of(JAVA_INT.with_order("big")))
        with pytest.raises(ValueError, match="Layout alignment must be natural alignment"):
            RuntimeForeignAccess.register_for_downcall(
                FunctionDescriptor.of_void(ADDRESS.with_byte_alignment(4))
            )
        with pytest.raises(TypeError, match="expects a FunctionDescriptor"):
            RuntimeForeignAccess.register_for_downcall("(i4)v")  # type: ignore[arg-type]


def test_registration_outside_a_build() -> None:
    with pytest.raises(RuntimeError, match="only possible while hatch-ffm builds a wheel"):
        RuntimeForeignAccess.register_for_downcall(FunctionDescriptor.of_void())
    with pytest.raises(RuntimeError, match="only possible while hatch-ffm builds a wheel"):
        RuntimeForeignAccess.register_for_upcall(FunctionDescriptor.of_void())
    with pytest.raises(TypeError, match="only static methods"):
        RuntimeForeignAccess()


class TestFeatureErrors:
    def test_module_not_found(self, plugins: Path) -> None:
        with pytest.raises(
            FeatureError,
            match=rf"{PATH}\.features\[0\]: cannot import module "
            r"'no_such_module'",
        ):
            run_features(["no_such_module:F"], False, ACCESS, PATH)

    def test_attribute_not_found(self, plugins: Path) -> None:
        write_module(plugins, "feat_attr", "X = 1\n")
        with pytest.raises(
            FeatureError,
            match=r"features\[1\]: module 'feat_attr' has no "
            r"attribute 'Missing'",
        ):
            run_features(["feat_attr:X", "feat_attr:Missing"], False, ACCESS, PATH)

    def test_wrong_hook_signature(self, plugins: Path) -> None:
        write_module(
            plugins,
            "feat_sig",
            """
class Bad:
    def during_setup(self, acc):
        pass
""",
        )
        with pytest.raises(FeatureError, match=r"Feature 'feat_sig:Bad' is not valid"):
            run_features(["feat_sig:Bad"], False, ACCESS, PATH)

    def test_handle_created_at_import(self, plugins: Path) -> None:
        write_module(
            plugins,
            "feat_eager",
            PREAMBLE
            + """
HANDLE = Linker.native_linker().downcall_handle(
    FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT))
""",
        )
        with pytest.raises(FeatureError, match="move handle creation out of the modules"):
            run_features(["feat_eager:F"], False, ACCESS, PATH)

    def test_failure_inside_during_setup(self, plugins: Path) -> None:
        write_module(
            plugins,
            "feat_fail",
            """
class Boom:
    def during_setup(self, access):
        raise KeyError("nope")
""",
        )
        with pytest.raises(FeatureError, match=r"Feature 'feat_fail:Boom' failed in during_setup"):
            run_features(["feat_fail:Boom"], False, ACCESS, PATH)

    def test_failure_names_the_type_and_the_traceback(self, plugins: Path) -> None:
        write_module(
            plugins,
            "feat_trace",
            """
def lookup(table):
    return table["missing"]

class Boom:
    def during_setup(self, access):
        lookup({})
""",
        )
        with pytest.raises(FeatureError) as info:
            run_features(["feat_trace:Boom"], False, ACCESS, PATH)
        message = str(info.value)
        assert message.startswith("Feature 'feat_trace:Boom' failed in during_setup: KeyError: 'missing'\n")
        assert re.search(
            r'File ".*feat_trace\.py", line 7, in during_setup\n\s+lookup\(\{\}\)\n'
            r'.*File ".*feat_trace\.py", line 3, in lookup\n',
            message,
            re.S,
        )
        assert "_features.py" not in message  # the Feature's frames, not hatch-ffm's
        assert isinstance(info.value.error, KeyError)
        assert (info.value.feature, info.value.hook) == ("feat_trace:Boom", "during_setup")

    def test_failure_in_is_in_configuration_names_the_feature(self, plugins: Path) -> None:
        write_module(
            plugins,
            "feat_config",
            """
class Picky:
    def is_in_configuration(self, access):
        return access.config["missing"]
""",
        )
        with pytest.raises(
            FeatureError,
            match=r"^Feature 'feat_config:Picky' failed in "
            r"is_in_configuration: KeyError: 'missing'\n"
            r"(.|\n)*feat_config\.py\", line 4, in "
            r"is_in_configuration",
        ):
            run_features(["feat_config:Picky"], False, ACCESS, PATH)

    def test_failure_when_instantiated(self, plugins: Path) -> None:
        write_module(
            plugins,
            "feat_init",
            """
class Fragile:
    def __init__(self):
        raise RuntimeError("no configuration file")
    def during_setup(self, access):
        pass
""",
        )
        with pytest.raises(
            FeatureError,
            match=r"^Feature 'feat_init:Fragile' failed in __init__: "
            r"RuntimeError: no configuration file\n",
        ):
            run_features(["feat_init:Fragile"], False, ACCESS, PATH)

    def test_failure_of_an_entry_point_feature_when_instantiated(self, plugins: Path) -> None:
        write_module(
            plugins,
            "feat_ep_init",
            """
class Fragile:
    def __init__(self):
        raise OSError("no device")
""",
        )
        dist_info = plugins / "feat_ep_init-1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: feat-ep-init\nVersion: 1.0\n")
        (dist_info / "entry_points.txt").write_text("[hatch_ffm.features]\nfragile = feat_ep_init:Fragile\n")
        with pytest.raises(
            FeatureError,
            match=r"^Feature 'fragile' failed in __init__: "
            r"OSError: no device\n",
        ):
            run_features([], True, ACCESS, PATH)

    @pytest.mark.parametrize(
        ("module", "raised", "summary"),
        [
            (
                "feat_exit0",
                "SystemExit(0)",
                r"SystemExit: 0 \(sys\.exit\(\) in a Feature would end "
                r"the build without a wheel; raise an exception to stop "
                r"the build",
            ),
            ("feat_exit", "SystemExit()", r"SystemExit \(sys\.exit\(\)"),
            ("feat_genexit", "GeneratorExit()", "GeneratorExit\n"),
            ("feat_custom", "Custom('stop')", "feat_custom.Custom: stop\n"),
        ],
        ids=["SystemExit(0)", "SystemExit()", "GeneratorExit", "BaseException-subclass"],
    )
    def test_base_exceptions_fail_the_build(
        self, plugins: Path, module: str, raised: str, summary: str
    ) -> None:
        write_module(
            plugins,
            module,
            f"""
class Custom(BaseException):
    pass

class Quits:
    def during_setup(self, access):
        raise {raised}
""",
        )
        with pytest.raises(
            FeatureError,
            match=rf"^Feature '{module}:Quits' failed in "
            rf"during_setup: {summary}",
        ):
            run_features([f"{module}:Quits"], False, ACCESS, PATH)

    def test_module_that_exits_when_imported(self, plugins: Path) -> None:
        write_module(plugins, "feat_exit_import", "import sys\nsys.exit(3)\n")
        with pytest.raises(
            FeatureError,
            match=r"cannot import module 'feat_exit_import' of "
            r"Feature 'feat_exit_import:F': SystemExit: 3 "
            r"\(the module called sys\.exit\(\)",
        ):
            run_features(["feat_exit_import:F"], False, ACCESS, PATH)

    @pytest.mark.parametrize("hook", ["__init__", "is_in_configuration", "during_setup"])
    def test_keyboard_interrupt_still_interrupts(self, plugins: Path, hook: str) -> None:
        write_module(
            plugins,
            f"feat_interrupt_{hook}",
            f"""
class Interrupted:
    def {hook}(self, *args, **kwargs):
        raise KeyboardInterrupt
    if "{hook}" != "during_setup":
        def during_setup(self, access):
            pass
""",
        )
        with pytest.raises(KeyboardInterrupt):
            run_features([f"feat_interrupt_{hook}:Interrupted"], False, ACCESS, PATH)

    @pytest.mark.skipif(sys.version_info < (3, 11), reason="exception groups are Python 3.11+")
    def test_keyboard_interrupt_in_a_group_still_interrupts(self, plugins: Path) -> None:
        write_module(
            plugins,
            "feat_group",
            """
class Interrupted:
    def during_setup(self, access):
        raise BaseExceptionGroup("tasks", [ValueError("x"), KeyboardInterrupt()])
""",
        )
        with pytest.raises(BaseExceptionGroup) as info:  # noqa: F821  # Python 3.11+ builtin
            run_features(["feat_group:Interrupted"], False, ACCESS, PATH)
        assert info.value.subgroup(KeyboardInterrupt) is not None


#: by-value aggregates around MAX_BY_VALUE_BYTE_SIZE (4096): the Feature's expression, the
#: aggregate's size and where it is in the descriptor
BY_VALUE = """
from ffm_runtime import *
from hatch_ffm import RuntimeForeignAccess

S, U, seq = MemoryLayout.struct_layout, MemoryLayout.union_layout, MemoryLayout.sequence_layout

class Big:
    def during_setup(self, access):
        RuntimeForeignAccess.register_for_downcall(DESCRIPTOR)

DESCRIPTOR = {descriptor}
"""
LIMIT_CASES = {
    "argument": ("FunctionDescriptor.of(JAVA_INT, JAVA_INT, S(seq({size}, JAVA_BYTE)))", 1),
    "result": ("FunctionDescriptor.of(S(seq({size} // 8, JAVA_LONG)), JAVA_INT)", None),
    "union": ("FunctionDescriptor.of_void(U(seq({size}, JAVA_BYTE), JAVA_INT.with_name('n')))", 0),
    # the bulk nested inside sequences of structs
    "nested": (
        "FunctionDescriptor.of_void(S(seq({size} // 64, S(seq(2, S(seq(4, JAVA_LONG))))), "
        "seq({size} % 64 // 8, JAVA_LONG)))",
        0,
    ),
}


class TestByValueLimit:
    """MAX_BY_VALUE_BYTE_SIZE at registration: the Feature, the descriptor and the limit."""

    @pytest.mark.parametrize("case", sorted(LIMIT_CASES))
    def test_at_the_limit_is_registered(self, plugins: Path, case: str) -> None:
        template, _ = LIMIT_CASES[case]
        module = f"feat_at_limit_{case}"
        write_module(
            plugins, module, BY_VALUE.format(descriptor=template.format(size=MAX_BY_VALUE_BYTE_SIZE))
        )
        access = DuringSetupAccess("/project", "demo", "demo", ("x86_64-linux", "aarch64-linux"))
        session, _, _ = run_features([f"{module}:Big"], False, access, PATH)
        (registration,) = session.registrations.values()
        layouts = [*registration.descriptor.argument_layouts, registration.descriptor.return_layout]
        assert max(layout.byte_size for layout in layouts if layout is not None) == 4096
        assert set(registration.signatures) == {"x86_64-linux", "aarch64-linux"}

    @pytest.mark.parametrize(
        "size", [MAX_BY_VALUE_BYTE_SIZE + 8, 64 << 20, 1 << 40], ids=["limit+8", "64MiB", "1TiB"]
    )
    @pytest.mark.parametrize("case", sorted(LIMIT_CASES))
    def test_beyond_the_limit_is_refused(self, plugins: Path, case: str, size: int) -> None:
        template, position = LIMIT_CASES[case]
        module = f"feat_beyond_{case}_{size}"
        write_module(plugins, module, BY_VALUE.format(descriptor=template.format(size=size)))
        descriptor = __import__(module).DESCRIPTOR
        layout = descriptor.return_layout if position is None else descriptor.argument_layouts[position]
        where = "result" if position is None else f"argument {position}"
        with pytest.raises(
            FeatureError,
            match=(
                rf"^Feature '{module}:Big' failed in during_setup: ValueError: Layout "
                rf"{re.escape(str(layout))} \({where} of {re.escape(str(descriptor))}\) is "
                rf"{size} bytes: a struct or union passed or returned by value may have at most "
                rf"4096 bytes \(MAX_BY_VALUE_BYTE_SIZE; a stub copies such an argument onto the "
                rf"thread's stack\); pass it by reference instead, as an ADDRESS and a "
                rf"MemorySegment\n[\s\S]*line 9, in during_setup\n"
            ),
        ):
            run_features([f"{module}:Big"], False, ACCESS, PATH)

    def test_one_byte_beyond_the_limit(self) -> None:
        from ffm_runtime import JAVA_BYTE, MemoryLayout
        from hatch_ffm._registration import RegistrationSession, open_session

        at, beyond = (
            MemoryLayout.struct_layout(MemoryLayout.sequence_layout(n, JAVA_BYTE))
            for n in (MAX_BY_VALUE_BYTE_SIZE, MAX_BY_VALUE_BYTE_SIZE + 1)
        )
        session = RegistrationSession(("x86_64-linux", "aarch64-linux"))
        with open_session(session):
            RuntimeForeignAccess.register_for_downcall(FunctionDescriptor.of(at, at))
            with pytest.raises(ValueError, match=r"is 4097 bytes: .* at most 4096 bytes"):
                RuntimeForeignAccess.register_for_downcall(FunctionDescriptor.of_void(beyond))
            with pytest.raises(ValueError, match=r"\(result of \(\)\[\[4097:b1\]\]\) is 4097"):
                RuntimeForeignAccess.register_for_downcall(FunctionDescriptor.of(beyond))
        assert list(session.registrations) == ["([[4096:b1]])[[4096:b1]]"]
