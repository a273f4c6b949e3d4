"""One buffer-format parser (#11): the loader's POINTER(t) check, the
containers' buffer paths (TypedDict.set_many / get_many(out=), TypedList
from a buffer) and the comparison (results_match) all read a buffer's item
format through the core's edgert_buffer_item_parse, so a buffer one of them
takes is taken by all of them that want that C type, and refused by all
otherwise. `_edgert._buffer_item` shows what the core reads; every entry
point is checked against it, and the parser against the struct module."""
from __future__ import annotations

import array
import ctypes as C
import struct
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import fixture_path
from edgert import ABIContract, ModuleLoader, TypedDict, TypedList, _edgert
from edgert.fallback import results_match

np = pytest.importorskip("numpy")

NATIVE = "<" if sys.byteorder == "little" else ">"
FOREIGN = ">" if NATIVE == "<" else "<"

CTYPES = [C.c_bool, C.c_char, C.c_wchar, C.c_byte, C.c_ubyte, C.c_short, C.c_ushort,
          C.c_int, C.c_uint, C.c_long, C.c_ulong, C.c_longlong, C.c_ulonglong, C.c_int8,
          C.c_uint8, C.c_int16, C.c_uint16, C.c_int32, C.c_uint32, C.c_int64, C.c_uint64,
          C.c_float, C.c_double, C.c_longdouble, C.c_size_t, C.c_ssize_t, C.c_void_p,
          C.POINTER(C.c_float)]
ARRAY_CODES = "bBhHiIlLqQfd"
NUMPY_DTYPES = ["?", "b", "B", "h", "H", "i", "I", "l", "L", "q", "Q", "e", "f", "d", "g",
                "F", "D", "S3", "U2", "V4", "i2,i2"]


def make_buffer(kind: str, which: int, n: int):
    """A real buffer of n items (values 0, 1, 0, 1 ...) from ctypes, array,
    numpy (both byte orders) or a memoryview cast."""
    if kind == "ctypes":
        t = CTYPES[which % len(CTYPES)]
        a = (t * n)()
        if t not in (C.c_char, C.c_wchar, C.c_void_p) and not hasattr(t, "contents"):
            for i in range(n):
                a[i] = i % 2
        return a
    if kind == "array":
        return array.array(ARRAY_CODES[which % len(ARRAY_CODES)], [i % 2 for i in range(n)])
    if kind == "numpy":
        dt = np.dtype(NUMPY_DTYPES[which % len(NUMPY_DTYPES)])
        if which // len(NUMPY_DTYPES) % 2 and dt.byteorder != "|" and dt.names is None \
                and dt.char != "g":
            dt = dt.newbyteorder(FOREIGN)
        a = np.zeros(n, dtype=dt)
        if dt.kind in "biufc":
            a[1::2] = 1
        return a
    codes = "bBhHiIlLqQnNfd?cP"
    return memoryview(bytearray(n * 16)).cast(codes[which % len(codes)])[:n]


buffers = st.builds(make_buffer, st.sampled_from(["ctypes", "array", "numpy", "memoryview"]),
                    st.integers(0, 200), st.integers(1, 6))


@pytest.fixture(scope="module")
def k():
    P = C.POINTER
    cs = [ABIContract("sum_f32", [P(C.c_float), C.c_size_t], C.c_float),
          ABIContract("sum_f64", [P(C.c_double), C.c_size_t], C.c_double),
          ABIContract("sum_i64", [P(C.c_int64), C.c_size_t], C.c_int64),
          ABIContract("sum_i32", [P(C.c_int32), C.c_size_t], C.c_int32),
          ABIContract("count_bytes", [P(C.c_ubyte), C.c_size_t, C.c_ubyte], C.c_size_t)]
    try:
        path = fixture_path("loader_kernels")
    except FileNotFoundError:
        path = fixture_path("libloader_kernels")
    loader = ModuleLoader().load(path, cs)

    class Calls:
        def __getattr__(self, name):
            if name.startswith("_"):
                raise AttributeError(name)
            return lambda *a: loader.call(name, *a)

        def __repr__(self) -> str:
            return "<loader_kernels>"
    yield Calls()
    loader.unload()


def accepted(f, *args) -> bool:
    try:
        f(*args)
    except TypeError:
        return False
    return True


def test_ctypes_int64_array_goes_everywhere_a_pointer_argument_takes_it(k):
    """The issue's example: a ctypes c_int64 array (format '<q') is a
    POINTER(c_int64) argument, and TypedDict.set_many used to refuse it."""
    a = (C.c_int64 * 3)(5, 6, 7)
    assert memoryview(a).format == "<q"
    assert k.sum_i64(a, 3) == 18
    d = TypedDict(int, int)
    d.set_many((C.c_int64 * 3)(1, 2, 3), a)
    assert dict(d) == {1: 5, 2: 6, 3: 7}
    out = (C.c_int64 * 3)()
    d.get_many([1, 2, 3], out=out)
    assert list(out) == [5, 6, 7]
    f = TypedDict(int, float)
    f.set_many([1, 2], (C.c_double * 2)(0.5, 1.5))
    assert f[2] == 1.5
    b = TypedDict(int, bool)
    b.set_many([1, 2], (C.c_bool * 2)(True, False))
    assert dict(b) == {1: True, 2: False}
    assert list(TypedList(int, a)) == [5, 6, 7]


@settings(max_examples=400, deadline=None)
@given(buf=buffers)
def test_every_entry_point_reads_a_buffer_as_the_core_does(k, buf):
    code, reason = _edgert._buffer_item(buf)
    mv = memoryview(buf)
    n = len(mv) if mv.ndim == 1 else 0
    assert (code is None) == (reason is not None)
    # loader: POINTER(t) takes the buffer iff its items are t
    assert accepted(k.sum_i64, buf, n) == (code == "c_ssize_t")
    assert accepted(k.sum_f64, buf, n) == (code == "c_double")
    assert accepted(k.sum_f32, buf, n) == (code == "c_float")
    assert accepted(k.sum_i32, buf, n) == (code == "c_int")
    assert accepted(k.count_bytes, buf, n, 1) == (code == "c_ubyte")
    if mv.ndim != 1:
        return
    ints = code in ("c_byte", "c_ubyte", "c_short", "c_ushort", "c_int", "c_uint",
                    "c_ssize_t", "c_size_t")
    keys = list(range(n))
    # containers: set_many values, int: any integer item; float: double or
    # float; bool: bool. get_many(out=): exactly the value type.
    assert accepted(TypedDict(int, int).set_many, keys, buf) == ints
    assert accepted(TypedDict(int, float).set_many, keys, buf) == (code in ("c_double",
                                                                            "c_float"))
    assert accepted(TypedDict(int, bool).set_many, keys, buf) == (code == "c_bool")
    for vt, want in ((int, "c_ssize_t"), (float, "c_double"), (bool, "c_bool")):
        d = TypedDict(int, vt)
        d.set_many(keys, [vt(0)] * n)
        ok = accepted(lambda: d.get_many(keys, out=buf))
        assert ok == (want == code), (vt, code)
    # TypedList from a buffer of its own item type: the same items
    if code in ("c_ssize_t", "c_double", "c_bool"):
        t = {"c_ssize_t": int, "c_double": float, "c_bool": bool}[code]
        assert list(TypedList(t, buf)) == [t(x) for x in np.asarray(buf).tolist()]
    # comparison: items the parser reads as numbers compare by value with
    # an int64/double copy; the others compare bytewise, so not with a copy
    # in another format
    if code in ("c_ssize_t", "c_size_t", "c_int", "c_uint", "c_short", "c_ushort",
                "c_byte", "c_ubyte", "c_bool", "c_double", "c_float", "half"):
        kind = "d" if code in ("c_double", "c_float", "half") else "q"
        other = array.array(kind, [0] * n)
        for i, x in enumerate(np.asarray(buf).tolist()):
            other[i] = float(x) if kind == "d" else int(x)
        assert results_match(buf, other, tolerance=0) is None
    elif code is None and mv.format != "q":
        assert results_match(buf, array.array("q", [0] * n), tolerance=0) is not None


PREFIXES = ["", "@", "=", "<", ">", "!"]
LETTERS = "bBhHiIlLqQnNefdg?cuwPxsZpO"


@settings(max_examples=600, deadline=None)
@given(prefix=st.sampled_from(PREFIXES), letter=st.sampled_from(LETTERS),
       size=st.integers(0, 17))
def test_parser_agrees_with_the_struct_module(prefix, letter, size):
    """For a format the struct module reads as one item, the core takes it
    with the struct module's size (or, under '=<>!', the native size, as
    ctypes writes '<l' with 8-byte items) iff the byte order is the host's,
    and refuses every other size; it never takes what struct refuses,
    'n', 'N', 'P', 'g', 'u', 'w' (no standard size) take their native size
    under any prefix."""
    fmt = prefix + letter
    code, reason = _edgert._buffer_item(fmt, size)
    order_ok = size == 1 or prefix not in (FOREIGN, "!" if FOREIGN == ">" else "")
    native_only = {"n": C.sizeof(C.c_ssize_t), "N": C.sizeof(C.c_size_t),
                   "P": C.sizeof(C.c_void_p), "g": C.sizeof(C.c_longdouble),
                   "u": C.sizeof(C.c_wchar), "w": C.sizeof(C.c_wchar)}
    if letter in native_only:
        # no standard size (or not in struct): the native size under any
        # prefix, as ctypes writes '<P' and '<g'
        assert (code is not None) == (size == native_only[letter] and order_ok), (fmt, size)
        return
    try:
        std = struct.calcsize(fmt)
    except struct.error:
        std = None
    if std is None or letter in "xsp":
        assert code is None, (fmt, size, code)
        return
    native = struct.calcsize("@" + letter)
    fits = size == std or (prefix not in ("", "@") and size == native)
    assert (code is not None) == (fits and order_ok), (fmt, size, code, reason)
    if code is not None:
        assert reason is None


@pytest.mark.parametrize("fmt,size,why", [
    ("", 1, "empty format"), ("2d", 16, "not one item"), ("T{d:x:}", 8, "not one item"),
    ("dd", 16, "not one item"), ("Z", 8, "unknown item code"), ("b", 8, "does not fit"),
    ("@l", 4, "does not fit"), (FOREIGN + "q", 8, "byte order"), ("&", 8, "names no target"),
    ("&<f", 4, "pointer-sized"),
])
def test_refusals_name_the_problem(fmt, size, why):
    code, reason = _edgert._buffer_item(fmt, size)
    assert code is None and why in reason


def test_bool_rule_is_the_core_s_at_every_python_entry_point():
    """A bool item is 0 or 1: the core refuses any other byte (EDGERT_EINVAL,
    ValueError here) wherever the binding hands it bool items, with a message
    naming the value; nothing is written."""
    bad = np.array([1, 0, 7, 1], dtype=np.uint8).view("?")
    assert memoryview(bad).format == "?"
    lst = TypedList(bool, [True, False, True, False])
    for fn in (lambda: TypedList(bool, bad), lambda: lst.extend(bad),
               lambda: lst.__setitem__(slice(0, 4), bad),
               lambda: lst.__setitem__(slice(0, 4, 2), bad[1:3]),
               lambda: lst.__setitem__(slice(None, None, -1), bad)):
        with pytest.raises(ValueError, match=r"a bool is 0 or 1, not 7"):
            fn()
    assert list(lst) == [True, False, True, False]
    d = TypedDict(int, bool)
    with pytest.raises(ValueError, match=r"dict value: a bool is 0 or 1, not 7 \(item 2\)"):
        d.set_many(np.arange(4), bad)
    assert len(d) == 0
    rebuild, _ = TypedList(bool).__reduce__()
    with pytest.raises(ValueError, match=r"TypedList\(bool\): raw byte is not 0 or 1 \(.*not 2"):
        rebuild(bool, b"\x01\x02")


def test_a_misaligned_buffer_is_refused_not_handed_to_the_kernel():
    # A double * must be aligned for double (C's rule; UBSan reports it, and
    # strict-alignment machines fault). Found when Dask handed a worker a
    # numpy array unpickled at an odd offset of its frame: the kernel read a
    # misaligned pointer. Now the call refuses it (a nexus then serves the
    # call from its reference, as for any refused argument).
    import edgert
    np = pytest.importorskip("numpy")
    D = C.c_double
    ld = ModuleLoader().load(fixture_path("nexus_kernels"),
                             ABIContract("nexus_sum_f64", [C.POINTER(D), C.c_size_t], D))
    raw = bytearray(8 * 4 + 1)
    odd = np.frombuffer(raw, dtype=np.float64, count=4, offset=1)
    odd[:] = [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(TypeError, match="not start at an address aligned for its 8-byte items"):
        ld.call("nexus_sum_f64", odd, 4)
    assert ld.call("nexus_sum_f64", np.require(odd, requirements="A"), 4) == 10.0
    k = edgert.Nexus().register("s", ld.function("nexus_sum_f64"),
                                lambda xs, n: float(sum(xs[:n])))
    assert k(odd, 4) == 10.0
    assert k.stats()["guard_misses"] == 1 and k.stats()["compiled"] == 0
