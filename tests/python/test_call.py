"""Calls: strict, lossless argument conversion and return values, checked
against Python's own numbers and against ctypes where both do the job."""
from __future__ import annotations

import array
import ctypes
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import fixture_path
import edgert
from edgert import ABIContract, ModuleLoader

np = pytest.importorskip("numpy")
C = ctypes


def fx(name: str) -> str:
    try:
        return fixture_path(name)
    except FileNotFoundError:
        return fixture_path("lib" + name)


INTS = [
    ("id_i8", C.c_int8, -2**7, 2**7 - 1),
    ("id_u8", C.c_uint8, 0, 2**8 - 1),
    ("id_i16", C.c_int16, -2**15, 2**15 - 1),
    ("id_u16", C.c_uint16, 0, 2**16 - 1),
    ("id_i32", C.c_int32, -2**31, 2**31 - 1),
    ("id_u32", C.c_uint32, 0, 2**32 - 1),
    ("id_i64", C.c_int64, -2**63, 2**63 - 1),
    ("id_u64", C.c_uint64, 0, 2**64 - 1),
]

P = C.POINTER
CONTRACTS = [ABIContract(n, [t], t) for n, t, _, _ in INTS] + [
    ABIContract("add", [C.c_double, C.c_double], C.c_double),
    ABIContract("addf", [C.c_float, C.c_float], C.c_float),
    ABIContract("not_bool", [C.c_bool], C.c_bool),
    ABIContract("next_char", [C.c_char], C.c_char),
    ABIContract("upper_w", [C.c_wchar], C.c_wchar),
    ABIContract("half_ld", [C.c_longdouble], C.c_longdouble),
    ABIContract("mix5", [C.c_int32, C.c_double, C.c_float, C.c_int64, C.c_uint8], C.c_double),
    ABIContract("narrow", [C.c_int8, C.c_uint8, C.c_int16, C.c_uint16], C.c_int64),
    ABIContract("strlen_c", [C.c_char_p], C.c_size_t),
    ABIContract("wcslen_w", [C.c_wchar_p], C.c_size_t),
    ABIContract("greet", [], C.c_char_p),
    ABIContract("null_str", [], C.c_char_p),
    ABIContract("greet_w", [], C.c_wchar_p),
    ABIContract("echo_ptr", [C.c_void_p], C.c_void_p),
    ABIContract("is_null", [C.c_void_p], C.c_int),
    ABIContract("sum_f32", [P(C.c_float), C.c_size_t], C.c_float),
    ABIContract("sum_f64", [P(C.c_double), C.c_size_t], C.c_double),
    ABIContract("sum_i64", [P(C.c_int64), C.c_size_t], C.c_int64),
    ABIContract("sum_i32", [P(C.c_int32), C.c_size_t], C.c_int32),
    ABIContract("vec_add_f32", [P(C.c_float), C.c_size_t], None),
    ABIContract("count_bytes", [P(C.c_ubyte), C.c_size_t, C.c_ubyte], C.c_size_t),
]


@pytest.fixture(scope="module")
def k() -> ModuleLoader:
    loader = ModuleLoader().load(fx("loader_kernels"), CONTRACTS)
    yield loader
    loader.unload()


@pytest.fixture(scope="module")
def held() -> ModuleLoader:
    """The same contracts keeping the GIL (the fast path)."""
    cs = [ABIContract(c.function_name, c.arg_types, c.return_type, release_gil=False)
          for c in CONTRACTS]
    loader = ModuleLoader().load(fx("loader_kernels"), cs)
    yield loader
    loader.unload()


# ---- integers ----------------------------------------------------------------------------


@pytest.mark.parametrize("name,ctype,lo,hi", INTS)
def test_every_int_width_round_trips_and_refuses_overflow(k, held, name, ctype, lo, hi) -> None:
    for loader in (k, held):
        f = loader.function(name)
        assert f(lo) == lo and f(hi) == hi and f(0) == 0
        with pytest.raises(OverflowError, match=rf"{name}\(\) argument 1: {hi + 1} does not fit"):
            f(hi + 1)
        with pytest.raises(OverflowError, match=rf"argument 1: {lo - 1} does not fit"):
            f(lo - 1)
        with pytest.raises(OverflowError):
            f(2**200)
        with pytest.raises(OverflowError):
            f(-2**200)


@given(st.integers(min_value=-2**63, max_value=2**63 - 1))
@settings(max_examples=200, deadline=None)
def test_int64_matches_python(x: int) -> None:
    f = _module_loader().function("id_i64")
    assert f(x) == x


@given(st.integers(min_value=-2**70, max_value=2**70))
@settings(max_examples=200, deadline=None)
def test_int8_never_truncates(x: int) -> None:
    f = _module_loader().function("id_i8")
    if -128 <= x <= 127:
        assert f(x) == x
    else:
        with pytest.raises(OverflowError):
            f(x)


_LOADER: list = []


def _module_loader() -> ModuleLoader:
    if not _LOADER:
        _LOADER.append(ModuleLoader().load(fx("loader_kernels"), CONTRACTS))
    return _LOADER[0]


def test_ints_accept_index_objects_and_bool_but_not_float_or_str(k) -> None:
    f = k.function("id_i32")
    assert f(np.int64(-5)) == -5 and f(np.uint8(200)) == 200
    assert f(True) == 1  # bool is an int
    with pytest.raises(TypeError, match=r"id_i32\(\) argument 1 must be int \(c_int\), not float"):
        f(1.0)
    with pytest.raises(TypeError, match="not str"):
        f("1")
    with pytest.raises(TypeError, match="not NoneType"):
        f(None)
    with pytest.raises(OverflowError):
        f(np.int64(2**40))


def test_narrow_arguments_arrive_exactly(k, held) -> None:
    want = -1_000_000 + 255 * 10_000 - 30 + 65535
    assert k.call("narrow", -1, 255, -3, 65535) == want
    assert held.call("narrow", -1, 255, -3, 65535) == want


# ---- floats ------------------------------------------------------------------------------


@given(st.floats(allow_nan=False), st.floats(allow_nan=False))
@settings(max_examples=200, deadline=None)
def test_add_matches_ctypes(a: float, b: float) -> None:
    lib = C.CDLL(fx("loader_kernels"))
    lib.add.argtypes, lib.add.restype = [C.c_double, C.c_double], C.c_double
    ours = _module_loader().call("add", a, b)
    theirs = lib.add(a, b)
    assert ours == theirs or (math.isnan(ours) and math.isnan(theirs))


def test_floats_accept_exact_ints_and_numpy_scalars(k, held) -> None:
    for loader in (k, held):
        add = loader.function("add")
        assert add(1, 2) == 3.0
        assert add(2**53, 0.0) == float(2**53)
        with pytest.raises(OverflowError, match="not exactly representable|does not fit"):
            add(2**53 + 1, 0.0)
        with pytest.raises(OverflowError):
            add(10**400, 0.0)
        assert add(np.float32(1.5), np.float64(2.0)) == 3.5
        assert math.isinf(add(math.inf, 1.0))
        assert math.isnan(add(math.nan, 1.0))
        with pytest.raises(TypeError, match=r"add\(\) argument 2 must be float or int \(c_double\), not str"):
            add(1.0, "2")
        with pytest.raises(TypeError, match="not complex"):
            add(1j, 2.0)


def test_c_float_refuses_values_out_of_its_range(k) -> None:
    assert k.call("addf", 1.5, 2.25) == 3.75
    assert k.call("addf", 0.1, 0.0) == float(np.float32(0.1))  # rounding is float's own
    with pytest.raises(OverflowError, match="c_float"):
        k.call("addf", 1e300, 0.0)
    with pytest.raises(OverflowError):
        k.call("addf", 2**24 + 1, 0.0)  # an int float cannot hold exactly
    assert math.isinf(k.call("addf", math.inf, 0.0))


def test_long_double_bool_char_wchar(k) -> None:
    assert k.call("half_ld", 3.0) == 1.5
    assert k.call("not_bool", True) is False
    assert k.call("not_bool", 0) is True
    with pytest.raises(OverflowError):
        k.call("not_bool", 2)
    with pytest.raises(TypeError, match="must be bool"):
        k.call("not_bool", "yes")
    assert k.call("next_char", b"a") == b"b"
    assert k.call("next_char", 65) == b"B"
    with pytest.raises(TypeError, match="bytes of length 1"):
        k.call("next_char", b"ab")
    assert k.call("upper_w", "q") == "Q"
    with pytest.raises(TypeError, match="str of length 1"):
        k.call("upper_w", "qq")


def test_libffi_signature_with_mixed_arguments(k, held) -> None:
    for loader in (k, held):
        assert loader.call("mix5", -1, 2.5, 0.5, 2**40, 200) == -1 + 2.5 + 0.5 + 2**40 + 200
        with pytest.raises(OverflowError, match="argument 5"):
            loader.call("mix5", 0, 0.0, 0.0, 0, 256)


def test_wrong_argument_counts(k, held) -> None:
    for loader in (k, held):
        with pytest.raises(TypeError, match=r"add\(\) takes 2 arguments .*got 3"):
            loader.call("add", 1.0, 2.0, 3.0)
        with pytest.raises(TypeError, match="got 0"):
            loader.function("add")()


# ---- strings and pointers ------------------------------------------------------------------


def test_c_char_p_and_c_wchar_p(k) -> None:
    assert k.call("strlen_c", b"edgert") == 6
    assert k.call("strlen_c", None) == 2**64 - 1  # NULL reached the kernel
    with pytest.raises(TypeError, match="must be bytes or None"):
        k.call("strlen_c", "edgert")
    with pytest.raises(TypeError, match="not bytearray"):
        k.call("strlen_c", bytearray(b"x"))
    assert k.call("wcslen_w", "héllo") == 5
    assert k.call("wcslen_w", None) == 2**64 - 1
    with pytest.raises(TypeError, match="str or None"):
        k.call("wcslen_w", b"x")
    assert k.call("greet") == b"hello"
    assert k.call("null_str") is None
    assert k.call("greet_w") == "héllo"


def test_c_void_p_takes_ints_none_and_buffers(k) -> None:
    assert k.call("echo_ptr", 0x1234) == 0x1234
    assert k.call("echo_ptr", None) == 0
    assert k.call("is_null", None) == 1
    buf = bytearray(16)
    addr = C.addressof((C.c_char * 16).from_buffer(buf))
    assert k.call("echo_ptr", buf) == addr
    arr = np.zeros(4)
    assert k.call("echo_ptr", arr) == arr.ctypes.data
    with pytest.raises(OverflowError):
        k.call("echo_ptr", -1)
    with pytest.raises(OverflowError):
        k.call("echo_ptr", 2**64)
    with pytest.raises(TypeError, match="int, None or a contiguous buffer"):
        k.call("echo_ptr", 1.5)


@pytest.mark.parametrize("make", [
    lambda: array.array("f", [1, 2, 3.5]),
    lambda: np.array([1, 2, 3.5], dtype=np.float32),
    lambda: np.array([1, 2, 3.5], dtype="<f4"),
    lambda: (C.c_float * 3)(1, 2, 3.5),
    lambda: memoryview(array.array("f", [1, 2, 3.5])),
    lambda: memoryview(bytearray(np.array([1, 2, 3.5], dtype=np.float32).tobytes())).cast("f"),
    lambda: np.array([[1, 2], [3.5, 0]], dtype=np.float32),  # 2-D, C-contiguous
])
def test_float_buffers_of_every_kind(k, make) -> None:
    assert k.call("sum_f32", make(), 3) == 6.5


@pytest.mark.parametrize("make", [
    lambda: array.array("q", [1, 2, 3]),
    lambda: array.array("l", [1, 2, 3]),  # 'l' is 8 bytes here, like 'q'
    lambda: np.array([1, 2, 3], dtype=np.int64),
    lambda: (C.c_int64 * 3)(1, 2, 3),
    lambda: (C.c_long * 3)(1, 2, 3),
])
def test_int64_buffers_normalise_formats(k, make) -> None:
    assert k.call("sum_i64", make(), 3) == 6


def test_buffer_formats_that_do_not_match_are_refused_by_name(k) -> None:
    with pytest.raises(TypeError, match=r"sum_f32\(\) argument 1 must be a C-contiguous buffer "
                                        r"of c_float .*not numpy.ndarray with format 'd'"):
        k.call("sum_f32", np.zeros(3), 3)
    with pytest.raises(TypeError, match="format 'B'"):
        k.call("sum_f32", bytearray(12), 3)
    with pytest.raises(TypeError, match="format 'l'"):
        k.call("sum_i32", array.array("l", [1, 2]), 2)
    with pytest.raises(TypeError, match="format 'I'"):
        k.call("sum_i32", np.zeros(2, dtype=np.uint32), 2)  # sign matters
    with pytest.raises(TypeError, match="not contiguous"):
        k.call("sum_f32", np.zeros(6, dtype=np.float32)[::2], 3)
    with pytest.raises(TypeError, match="must be a C-contiguous buffer or None"):
        k.call("sum_f32", [1.0, 2.0], 2)
    with pytest.raises(TypeError):
        k.call("sum_f64", np.zeros(3, dtype=">f8"), 3)  # not native byte order
    assert k.call("sum_i32", np.array([1, 2], dtype=np.int32), 2) == 3
    assert k.call("sum_f64", None, 0) == 0.0


def test_kernels_write_through_pointers_and_read_only_buffers_need_const(k) -> None:
    a = np.array([1, 2, 3], dtype=np.float32)
    k.call("vec_add_f32", a, 3)
    assert a.tolist() == [2, 3, 4]
    b = array.array("f", [0, 0])
    k.call("vec_add_f32", b, 2)
    assert b.tolist() == [1, 1]
    # count_bytes is bound with a plain POINTER(c_ubyte): a kernel may write
    # through it, so read-only bytes are refused (issue 13) ...
    with pytest.raises(TypeError, match=r"read-only bytes.*declare the argument const"):
        k.call("count_bytes", b"abcab", 5, ord("a"))
    assert k.call("count_bytes", bytearray(b"aaa"), 3, ord("a")) == 3
    # ... and taken for the same function declared const
    k.bind(ABIContract("count_bytes", [edgert.const(P(C.c_ubyte)), C.c_size_t, C.c_ubyte],
                       C.c_size_t))
    assert k.call("count_bytes", b"abcab", 5, ord("a")) == 2


def test_buffers_are_released_after_every_call(k) -> None:
    buf = bytearray(b"abc")
    k.call("count_bytes", buf, 3, 97)
    with pytest.raises(TypeError):
        k.call("count_bytes", buf, 3, "a")  # refused after the buffer was taken
    buf.extend(b"more")  # would raise BufferError if an export were left behind
    assert len(buf) == 7


def test_bound_callables_are_builtins(k) -> None:
    add = k.function("add")
    assert type(add).__name__ == "builtin_function_or_method"
    assert add.__name__ == "add"
    assert add.__self__.signature == "c_double add(c_double, c_double)"
    assert k.function("add") is add
    assert "add" in repr(add.__self__)


def test_miss_path_refuses_without_raising(k, held) -> None:
    from edgert import _edgert
    for loader in (k, held):
        add = loader.function("add")
        assert _edgert._bound_try_call(add, 1.0, 2.0) == (False, 3.0)
        assert _edgert._bound_try_call(add, "x", 2.0) == (True, None)  # type
        assert _edgert._bound_try_call(add, 1.0) == (True, None)  # count
        assert _edgert._bound_try_call(loader.function("id_i8"), 300) == (True, None)  # overflow
        assert _edgert._bound_try_call(loader.function("sum_f32"), np.zeros(2), 2) == (True, None)
    with pytest.raises(TypeError):
        _edgert._bound_try_call(len, 1)


def test_miss_path_still_raises_for_unloaded_modules() -> None:
    from edgert import ModuleUnloadedError, _edgert
    loader = ModuleLoader().load(fx("loader_kernels"), CONTRACTS[:1])
    f = loader.function(CONTRACTS[0].function_name)
    loader.unload()
    with pytest.raises(ModuleUnloadedError):
        _edgert._bound_try_call(f, 1)
