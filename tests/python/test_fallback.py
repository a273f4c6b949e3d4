"""ExplicitFallback: run_with_guard, fallback_to_python, the result
comparison, logging and counters. (Crashing kernels: test_crash.py.)"""
from __future__ import annotations

import array
import logging
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edgert
from edgert import CompiledModeFailure, ExplicitFallback, FallbackMismatchError, results_match


def reference(x: float) -> float:
    return x * 2.0 + 1.0


def good(x: float) -> float:
    return x * 2.0 + 1.0


def takes_three(x: float, data: bytes, items: list) -> float:
    return x


def broken(x: float) -> float:
    raise ValueError(f"kernel refused {x}")


class Recorder:
    """A reference that counts its calls."""

    def __init__(self, fn=reference):
        self.fn = fn
        self.calls = []

    def __call__(self, *args):
        self.calls.append(args)
        return self.fn(*args)


@pytest.fixture(autouse=True)
def fresh_stats():
    ExplicitFallback.reset_stats()
    yield


# ---- import paths ----------------------------------------------------------

def test_article_import_path_gives_the_same_objects():
    from pyv_edge_agent.module_host.fallback import (
        CompiledModeFailure as C2,
        ExplicitFallback as E2,
        FallbackMismatchError as F2,
    )
    assert E2 is ExplicitFallback is edgert.ExplicitFallback
    assert C2 is CompiledModeFailure is edgert.CompiledModeFailure
    assert F2 is FallbackMismatchError is edgert.FallbackMismatchError
    assert issubclass(CompiledModeFailure, RuntimeError)
    assert issubclass(FallbackMismatchError, ValueError)
    assert issubclass(CompiledModeFailure, edgert.EdgertError)


def test_run_with_guard_is_a_direct_builtin_on_class_and_instance():
    assert type(ExplicitFallback.run_with_guard).__name__ == "builtin_function_or_method"
    assert ExplicitFallback().run_with_guard(good, reference, 1.0) == 3.0


# ---- run_with_guard ----------------------------------------------------------

def test_success_returns_the_compiled_result_without_calling_the_reference():
    ref = Recorder()
    assert ExplicitFallback.run_with_guard(lambda x: x * 10, ref, 3.14) == pytest.approx(31.4)
    assert ref.calls == []


def test_failure_without_fallback_raises_compiled_mode_failure_from_the_original():
    ref = Recorder()
    with pytest.raises(CompiledModeFailure) as info:
        ExplicitFallback.run_with_guard(broken, ref, 2.5, fallback_enabled=False)
    err = info.value
    assert isinstance(err.__cause__, ValueError)
    assert str(err.__cause__) == "kernel refused 2.5"
    assert err.__suppress_context__
    assert str(err) == ("compiled path broken(float) failed and fallback is disabled: "
                        "ValueError: kernel refused 2.5")
    assert ref.calls == []


def test_default_is_no_fallback():
    with pytest.raises(CompiledModeFailure):
        ExplicitFallback.run_with_guard(broken, reference, 1.0)


def test_failure_with_fallback_returns_the_reference_result():
    ref = Recorder()
    out = ExplicitFallback.run_with_guard(broken, ref, 3.0, fallback_enabled=True)
    assert out == 7.0
    assert ref.calls == [(3.0,)]


def test_reference_failure_under_fallback_propagates_chained_to_the_compiled_error():
    def bad_ref(x):
        raise KeyError("reference broke")

    with pytest.raises(KeyError) as info:
        ExplicitFallback.run_with_guard(broken, bad_ref, 1.0, fallback_enabled=True)
    assert isinstance(info.value.__context__, ValueError)
    assert ExplicitFallback.stats()["reference_failures"] == 1


def test_base_exceptions_are_neither_wrapped_nor_fallen_back_from():
    def interrupted(x):
        raise KeyboardInterrupt

    ref = Recorder()
    with pytest.raises(KeyboardInterrupt):
        ExplicitFallback.run_with_guard(interrupted, ref, 1.0, fallback_enabled=True)
    assert ref.calls == []


def test_arguments_and_keywords_are_passed_through_positionally():
    assert ExplicitFallback.run_with_guard(lambda *a: a, reference) == ()
    assert ExplicitFallback.run_with_guard(lambda a, b, c: (a, b, c), reference, 1, "x", None) \
        == (1, "x", None)


@pytest.mark.parametrize("call, exc, message", [
    (lambda: ExplicitFallback.run_with_guard(good), TypeError,
     "run_with_guard() needs the compiled and the reference callables, got 1 positional argument"),
    (lambda: ExplicitFallback.run_with_guard(), TypeError,
     "run_with_guard() needs the compiled and the reference callables, got 0 positional arguments"),
    (lambda: ExplicitFallback.run_with_guard(good, reference, 1.0, tolerence=1e-3), TypeError,
     "run_with_guard() got an unexpected keyword argument 'tolerence'"),
    (lambda: ExplicitFallback.run_with_guard(good, reference, 1.0, tolerance=-1.0), ValueError,
     "run_with_guard(): tolerance must be >= 0, got -1.0"),
    (lambda: ExplicitFallback.run_with_guard(good, reference, 1.0, tolerance=float("nan")),
     ValueError, "run_with_guard(): tolerance must be a number >= 0, got nan"),
    (lambda: ExplicitFallback.run_with_guard(good, reference, 1.0, tolerance=float("inf")),
     ValueError, "run_with_guard(): tolerance must be finite (an infinite tolerance would "
     "accept any finite result), got inf"),
    (lambda: ExplicitFallback.run_with_guard(good, reference, 1.0, tolerance="1e-9"), TypeError,
     "run_with_guard(): tolerance must be a float, not str"),
    (lambda: ExplicitFallback.fallback_to_python(good, reference, 1.0, fallback_enabled=True),
     TypeError, "fallback_to_python() got an unexpected keyword argument 'fallback_enabled'"),
    (lambda: ExplicitFallback.fallback_to_python(good), TypeError,
     "fallback_to_python() needs the compiled and the reference callables, got 1 positional "
     "argument"),
])
def test_bad_calls_are_refused_with_a_message_naming_the_problem(call, exc, message):
    with pytest.raises(exc) as info:
        call()
    assert str(info.value) == message


def test_a_non_callable_compiled_side_is_a_compiled_failure():
    with pytest.raises(CompiledModeFailure) as info:
        ExplicitFallback.run_with_guard(42, reference, 1.0)
    assert isinstance(info.value.__cause__, TypeError)
    assert ExplicitFallback.run_with_guard(42, reference, 1.0, fallback_enabled=True) == 3.0


# ---- fallback_to_python --------------------------------------------------------

def test_validation_returns_the_compiled_result_when_both_agree():
    # a call's result does not depend on whether it was checked (as in C and the nexus)
    out = ExplicitFallback.fallback_to_python(lambda x: x * 2.0 + 1.0 + 1e-12, reference, 3.14)
    assert out == 3.14 * 2.0 + 1.0 + 1e-12 and out != reference(3.14)


def test_validation_mismatch_names_both_values():
    with pytest.raises(FallbackMismatchError) as info:
        ExplicitFallback.fallback_to_python(lambda x: x * 2.0 + 1.5, reference, 3.0)
    err = info.value
    assert str(err) == ("compiled <lambda> and reference reference differ on (float) "
                        "(tolerance 1e-09): 7.5 != 7.0")
    assert err.compiled_result == 7.5
    assert err.reference_result == 7.0
    assert err.difference == "7.5 != 7.0"


def test_validation_mismatch_in_a_sequence_names_the_first_index():
    with pytest.raises(FallbackMismatchError) as info:
        ExplicitFallback.fallback_to_python(lambda n: [0.0, 1.0, 2.5, 9.0],
                                            lambda n: [0.0, 1.0, 2.0, 3.0], 4)
    assert str(info.value).endswith("at [2]: 2.5 != 2.0")


def test_validation_tolerance_is_honoured():
    slightly = lambda x: x * 2.0 + 1.001  # noqa: E731
    with pytest.raises(FallbackMismatchError):
        ExplicitFallback.fallback_to_python(slightly, reference, 1.0)
    assert ExplicitFallback.fallback_to_python(slightly, reference, 1.0, tolerance=1e-3) == 3.001


def test_validation_compiled_failure_is_compiled_mode_failure():
    with pytest.raises(CompiledModeFailure) as info:
        ExplicitFallback.fallback_to_python(broken, reference, 1.0)
    assert isinstance(info.value.__cause__, ValueError)
    assert "failed during validation" in str(info.value)


def test_validation_reference_failure_propagates_unchanged():
    def bad_ref(x):
        raise ZeroDivisionError("ref")

    with pytest.raises(ZeroDivisionError):
        ExplicitFallback.fallback_to_python(good, bad_ref, 1.0)


# ---- fallback_to_python with sides that write through their arguments -------

def scale_in_place(x, by):
    for i in range(len(x)):
        x[i] *= by


def scale_wrong_at_3(x, by):
    scale_in_place(x, by)
    x[3] += by


def test_validation_runs_both_sides_from_the_same_inputs_and_compares_their_writes():
    x = array.array("d", [1.0, 2.0, 3.0, 4.0])
    assert ExplicitFallback.fallback_to_python(scale_in_place, scale_in_place, x, 2.0) is None
    assert list(x) == [2.0, 4.0, 6.0, 8.0]  # scaled once: the compiled side's writes stay


def test_validation_mismatch_in_writes_names_the_argument_and_restores_it():
    x = array.array("d", [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(FallbackMismatchError) as info:
        ExplicitFallback.fallback_to_python(scale_wrong_at_3, scale_in_place, x, 2.0)
    assert str(info.value).endswith("(tolerance 1e-09): argument 1 at [3]: 10.0 != 8.0")
    assert info.value.difference == "argument 1 at [3]: 10.0 != 8.0"
    assert list(x) == [1.0, 2.0, 3.0, 4.0]
    # within the tolerance, the writes agree: the compiled side's stay
    y = array.array("d", [1.0, 2.0, 3.0, 4.0])
    ExplicitFallback.fallback_to_python(scale_wrong_at_3, scale_in_place, y, 2.0, tolerance=0.5)
    assert list(y) == [2.0, 4.0, 6.0, 10.0]


@pytest.mark.parametrize("side", ["compiled", "reference"])
def test_a_side_failing_after_a_partial_write_leaves_the_arguments_as_they_were(side):
    x = bytearray(b"\x01\x02\x03")
    def doubles(b, by):
        for i in range(len(b)):
            b[i] *= by
    def half_bytes(b, by):
        b[0] *= by
        raise ValueError("failed halfway")
    compiled, ref = (half_bytes, doubles) if side == "compiled" else (doubles, half_bytes)
    with pytest.raises(CompiledModeFailure if side == "compiled" else ValueError):
        ExplicitFallback.fallback_to_python(compiled, ref, x, 2)
    assert x == bytearray(b"\x01\x02\x03")


def test_read_only_buffers_are_not_copied_and_do_not_get_in_the_way():
    np = pytest.importorskip("numpy")
    a = np.arange(4.0)
    a.flags.writeable = False
    out = ExplicitFallback.fallback_to_python(lambda x: float(x.sum()), lambda x: float(sum(x)), a)
    assert out == 6.0
    assert ExplicitFallback.fallback_to_python(len, len, b"abc") == 3
    assert ExplicitFallback.fallback_to_python(len, len, memoryview(b"abcd")) == 4


def test_a_side_that_resizes_its_argument_differs_from_one_that_does_not():
    b = bytearray(b"abc")
    with pytest.raises(FallbackMismatchError,
                       match=r"argument 1: 3 bytes != 4 bytes"):
        ExplicitFallback.fallback_to_python(lambda v: v.__setitem__(0, 65),
                                            lambda v: v.append(100), b)


# ---- the comparison ----------------------------------------------------------

@pytest.mark.parametrize("a, b", [
    (1.0, 1.0), (1.0, 1.0 + 1e-12), (1e20, 1e20 * (1 + 1e-10)), (0.0, 1e-10), (0.0, -0.0),
    (float("nan"), float("nan")), (math.inf, math.inf), (3, 3), (3, 3.0), (True, 1),
    (True, True), (None, None), ("abc", "abc"), (b"ab", bytearray(b"ab")),
    ([1.0, 2.0], (1.0, 2.0)), ({"a": [1, 2.0]}, {"a": (1, 2.0)}), (1 + 2j, 1 + 2j),
    (2**100, 2**100), ([], ()), ({}, {}),
])
def test_matching_results(a, b):
    assert results_match(a, b) is None
    assert results_match(b, a) is None


@pytest.mark.parametrize("a, b, diff", [
    (1.0, 1.1, "1.0 != 1.1"),
    (3, 4, "3 != 4"),
    (2**100, 2**100 + 1, f"{2**100} != {2**100 + 1}"),
    (float("nan"), 1.0, "nan != 1.0"),
    (math.inf, -math.inf, "inf != -inf"),
    (None, 0, "None != 0"),
    (True, False, "True != False"),
    ("abc", "abd", "'abc' != 'abd'"),
    ("1", 1, "'1' != 1"),
    (b"abc", b"abd", "at [2]: 99 != 100"),
    (b"abc", b"ab", "length 3 != 2"),
    ([1, 2], [1, 2, 3], "length 2 != 3"),
    ([1, [2, 3.0]], [1, [2, 3.5]], "at [1][1]: 3.0 != 3.5"),
    ({"a": 1, "b": {"c": [1.0]}}, {"a": 1, "b": {"c": [2.0]}}, "at ['b']['c'][0]: 1.0 != 2.0"),
    ({"a": 1}, {"b": 1}, "key 'a' is missing from the reference result"),
    ({"a": 1}, {"a": 1, "z": 2}, "key 'z' is missing from the compiled result"),
    ([1.0], {"a": 1}, "[1.0] (list) != {'a': 1} (dict)"),
    (1 + 2j, 1 + 3j, "(1+2j) != (1+3j)"),
])
def test_differing_results_name_the_first_difference(a, b, diff):
    assert results_match(a, b) == diff


def test_array_array_elementwise():
    a = array.array("d", [1.0, 2.0, 3.0])
    assert results_match(a, array.array("d", [1.0, 2.0, 3.0 + 1e-12])) is None
    assert results_match(a, array.array("d", [1.0, 2.5, 3.0])) == "at [1]: 2.0 != 2.5"
    assert results_match(array.array("i", [1, 2]), array.array("q", [1, 2])) is None
    assert results_match(array.array("i", [1, 2]), array.array("d", [1.0, 2.0])) is None
    assert results_match(array.array("i", [1, -2]), array.array("I", [1, 2])) == \
        "at [1]: -2 != 2"
    assert results_match(a, array.array("d", [1.0, 2.0])) == "shape (3,) != (2,)"
    assert results_match(a, [1.0, 2.0, 3.0]) is None
    assert results_match(a, [1.0, 2.0, 4.0]) == "at [2]: 3.0 != 4.0"


def test_numpy_arrays_elementwise_with_nd_index():
    np = pytest.importorskip("numpy")
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    b = a.copy()
    assert results_match(a, b) is None
    b[1, 2] += 0.5
    assert results_match(a, b) == "at [1, 2]: 6.0 != 6.5"
    assert results_match(a, a.astype(np.float32)) is None
    assert results_match(a, a.T.copy()) == "shape (3, 4) != (4, 3)"
    # strided views: b differs at [1, 2], which is [1, 1] of the even columns
    assert results_match(a[:, 1::2], b[:, 1::2]) is None
    assert results_match(a[:, ::2], b[:, ::2]) == "at [1, 1]: 6.0 != 6.5"
    assert results_match(np.float32(1.5), 1.5) is None
    assert results_match(np.int64(3), 3) is None
    assert results_match(np.array([np.nan]), np.array([np.nan])) is None
    assert results_match(np.array([1.0, 2.0]), [1.0, 2.0]) is None


def test_typed_list_compares_through_its_buffer():
    TypedList = getattr(edgert, "TypedList", None)
    if TypedList is None:
        pytest.skip("TypedList is not built yet")
    tl = TypedList(float)
    tl.extend([1.0, 2.0, 3.0])
    assert results_match(tl, array.array("d", [1.0, 2.0, 3.0])) is None
    assert results_match(tl, [1.0, 2.0, 3.5]) == "at [2]: 3.0 != 3.5"


def test_negative_tolerance_is_refused():
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        results_match(1.0, 1.0, tolerance=-1e-9)


def test_deep_nesting_raises_recursion_error_not_a_crash():
    a: list = []
    b: list = []
    for _ in range(100000):
        a = [a]
        b = [b]
    with pytest.raises(RecursionError):
        results_match(a, b)


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text()
    | st.binary(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(json_like)
def test_every_value_matches_itself_and_a_copy(value):
    import copy
    assert results_match(value, value) is None
    assert results_match(value, copy.deepcopy(value)) is None


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False), st.floats(min_value=1e-12, max_value=1e-3))
def test_float_tolerance_is_relative_or_absolute(x, tol):
    assert results_match(x, x + tol / 2, tolerance=tol) is None or abs(x) > 1e300
    bumped = x + max(abs(x), 1.0) * tol * 4
    if bumped != x and math.isfinite(bumped):
        assert results_match(x, bumped, tolerance=tol) is not None


# ---- logging ----------------------------------------------------------------

def test_success_logs_debug_with_names_and_argument_shapes(caplog):
    with caplog.at_level(logging.DEBUG, logger="edgert.fallback"):
        ExplicitFallback.run_with_guard(takes_three, reference, 1.0, b"abcd", [1, 2, 3])
    recs = [r for r in caplog.records if r.name == "edgert.fallback"]
    assert [(r.levelno, r.getMessage()) for r in recs] == [
        (logging.DEBUG,
         "run_with_guard: compiled takes_three(float, bytes[4], list[3]) succeeded")]


def test_fallback_logs_a_warning_with_the_decision(caplog):
    with caplog.at_level(logging.DEBUG, logger="edgert.fallback"):
        ExplicitFallback.run_with_guard(broken, reference, 2.0, fallback_enabled=True)
    recs = [r for r in caplog.records if r.name == "edgert.fallback"]
    assert [(r.levelno, r.getMessage()) for r in recs] == [
        (logging.WARNING, "run_with_guard: compiled broken(float) failed with ValueError: "
                          "kernel refused 2.0; falling back to reference reference")]


def test_failure_logs_an_error(caplog):
    with caplog.at_level(logging.DEBUG, logger="edgert.fallback"):
        with pytest.raises(CompiledModeFailure):
            ExplicitFallback.run_with_guard(broken, reference, 2.0)
    recs = [r for r in caplog.records if r.name == "edgert.fallback"]
    assert [(r.levelno, r.getMessage()) for r in recs] == [
        (logging.ERROR, "run_with_guard: compiled broken(float) failed with ValueError: "
                        "kernel refused 2.0; fallback disabled: raising CompiledModeFailure")]


def test_validation_logs_debug_on_agreement_and_error_on_mismatch(caplog):
    with caplog.at_level(logging.DEBUG, logger="edgert.fallback"):
        ExplicitFallback.fallback_to_python(good, reference, 1.0)
        with pytest.raises(FallbackMismatchError):
            ExplicitFallback.fallback_to_python(lambda x: 0.0, reference, 1.0)
    recs = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "edgert.fallback"]
    assert recs == [
        (logging.DEBUG, "fallback_to_python: compiled good and reference reference agree on (float)"),
        (logging.ERROR, "fallback_to_python: compiled <lambda> and reference reference differ "
                        "on (float) (tolerance 1e-09): 0.0 != 3.0"),
    ]


def test_levels_switched_off_log_nothing_and_follow_changes():
    class ListHandler(logging.Handler):
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.records = []

        def emit(self, record):
            self.records.append(record)

    logger = logging.getLogger("edgert.fallback")
    h = ListHandler()
    old_level = logger.level
    logger.addHandler(h)
    try:
        logger.setLevel(logging.WARNING)
        ExplicitFallback.run_with_guard(good, reference, 1.0)
        assert h.records == []
        logger.setLevel(logging.DEBUG)  # the cached level check sees the change
        ExplicitFallback.run_with_guard(good, reference, 1.0)
        assert [r.levelno for r in h.records] == [logging.DEBUG]
        logging.disable(logging.CRITICAL)
        ExplicitFallback.run_with_guard(good, reference, 1.0)
        assert len(h.records) == 1
    finally:
        logging.disable(logging.NOTSET)
        logger.setLevel(old_level)
        logger.removeHandler(h)


def test_a_broken_log_handler_does_not_break_the_call(caplog):
    class Boom(logging.Handler):
        def emit(self, record):
            raise RuntimeError("handler broke")

        def handleError(self, record):
            raise RuntimeError("handler broke")

    logger = logging.getLogger("edgert.fallback")
    h = Boom()
    logger.addHandler(h)
    try:
        with caplog.at_level(logging.DEBUG, logger="edgert.fallback"):
            assert ExplicitFallback.run_with_guard(good, reference, 1.0) == 3.0
            assert ExplicitFallback.run_with_guard(broken, reference, 1.0,
                                                   fallback_enabled=True) == 3.0
    finally:
        logger.removeHandler(h)


# ---- counters ----------------------------------------------------------------

def test_stats_count_every_route():
    E = ExplicitFallback
    E.run_with_guard(good, reference, 1.0)
    E.run_with_guard(broken, reference, 1.0, fallback_enabled=True)
    with pytest.raises(CompiledModeFailure):
        E.run_with_guard(broken, reference, 1.0)
    E.fallback_to_python(good, reference, 1.0)
    with pytest.raises(FallbackMismatchError):
        E.fallback_to_python(lambda x: 0.0, reference, 1.0)
    assert E.stats() == {
        "calls": 3, "compiled": 1, "failures": 2, "crashes": 0, "fallbacks": 1,
        "reference_failures": 0, "validations": 2, "matches": 1, "mismatches": 1,
    }
    E.reset_stats()
    assert set(E.stats().values()) == {0}


# ---- bound kernels that diverge -----------------------------------------------

@pytest.fixture
def crashy_loader():
    import ctypes
    from conftest import fixture_path

    try:
        path = fixture_path("guard_crashy")
    except FileNotFoundError:
        path = fixture_path("libguard_crashy")
    loader = edgert.ModuleLoader()
    dbl = ([ctypes.c_double], ctypes.c_double)
    loader.load(path, edgert.ABIContract("guard_ok", *dbl))
    for name in ("guard_slightly_off", "guard_badly_off"):
        loader.bind(edgert.ABIContract(name, *dbl))
    vec = [ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double), ctypes.c_size_t,
           ctypes.c_double]
    for name in ("guard_scale", "guard_scale_bad"):
        loader.bind(edgert.ABIContract(name, vec, None))
    yield loader
    loader.unload()


def test_bound_kernel_that_diverges_slightly_passes_validation(crashy_loader):
    f = crashy_loader.function("guard_slightly_off")
    assert f(3.0) != reference(3.0)
    assert ExplicitFallback.fallback_to_python(f, reference, 3.0) == f(3.0)
    assert ExplicitFallback.run_with_guard(f, reference, 3.0) == f(3.0)


def test_bound_kernel_that_diverges_badly_fails_validation(crashy_loader):
    f = crashy_loader.function("guard_badly_off")
    with pytest.raises(FallbackMismatchError) as info:
        ExplicitFallback.fallback_to_python(f, reference, 3.0)
    assert str(info.value) == ("compiled guard_badly_off and reference reference differ on "
                               "(float) (tolerance 1e-09): 7.5 != 7.0")


def test_bound_buffer_kernels_are_compared_elementwise(crashy_loader):
    data = array.array("d", [1.0, 2.0, 3.0, 4.0])

    def compiled_with(name):
        def run(xs, k):
            out = array.array("d", bytes(8 * len(xs)))
            crashy_loader.call(name, out, xs, len(xs), k)
            return out
        run.__name__ = name
        return run

    def ref(xs, k):
        return [x * k for x in xs]

    good_out = ExplicitFallback.fallback_to_python(compiled_with("guard_scale"), ref, data, 2.0)
    assert isinstance(good_out, array.array)  # the compiled side's result
    assert list(good_out) == [2.0, 4.0, 6.0, 8.0]
    with pytest.raises(FallbackMismatchError) as info:
        ExplicitFallback.fallback_to_python(compiled_with("guard_scale_bad"), ref, data, 2.0)
    assert str(info.value).endswith("(tolerance 1e-09): at [2]: 6.001 != 6.0")
    assert str(info.value).startswith("compiled guard_scale_bad and reference ref differ on "
                                      "(array.array[4], float)")


writes = st.lists(st.tuples(st.integers(0, 7), st.floats(-1e6, 1e6)), max_size=6)


@settings(max_examples=200, deadline=None)
@given(start=st.lists(st.floats(-1e6, 1e6), min_size=8, max_size=8), cw=writes, rw=writes)
def test_validating_writes_either_agrees_and_keeps_the_compiled_or_raises_and_restores(
        start, cw, rw):
    def side(ws):
        def f(x):
            for i, v in ws:
                x[i] = v
        return f

    def apply(ws):
        y = list(start)
        for i, v in ws:
            y[i] = v
        return y

    expect_c, expect_r = apply(cw), apply(rw)
    x = array.array("d", start)
    if results_match(expect_c, expect_r) is None:  # None: they match
        assert ExplicitFallback.fallback_to_python(side(cw), side(rw), x) is None
        assert list(x) == expect_c
    else:
        with pytest.raises(FallbackMismatchError, match=r"argument 1 at \[\d\]: "):
            ExplicitFallback.fallback_to_python(side(cw), side(rw), x)
        assert list(x) == start
