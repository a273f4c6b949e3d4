"""Issue 13, what a ctypes user reaches for beyond scalars and flat buffers:
out-parameters (byref, pointer, data_as), const pointers and read-only
buffers, errno, variadic functions. Fixture: tests/fixtures/ffi_extra_kernels.c."""
from __future__ import annotations

import array
import ctypes as C
import errno
import json
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edgert
from conftest import fixture_path
from edgert import ABIContract, ManifestError, ModuleLoader, const

P = C.POINTER


@pytest.fixture(scope="module")
def k() -> ModuleLoader:
    return ModuleLoader().load(fixture_path("ffi_extra_kernels"), [
        ABIContract("split_exp", [C.c_double, P(C.c_int)], C.c_double),
        ABIContract("div_mod", [C.c_long, C.c_long, P(C.c_long), P(C.c_double)]),
        ABIContract("sum_const", [const(P(C.c_double)), C.c_size_t], C.c_double),
        ABIContract("fill_bytes", [P(C.c_ubyte), C.c_size_t, C.c_ubyte]),
        ABIContract("try_open", [C.c_char_p], C.c_int, use_errno=True),
        ABIContract("set_errno_to", [C.c_int, P(C.c_int)], C.c_int, use_errno=True,
                    release_gil=False),
        ABIContract("sum_ints", [C.c_int], C.c_long, variadic=1),
        ABIContract("sum_doubles", [C.c_int], C.c_double, variadic=1),
        ABIContract("sum_longs", [C.c_int], C.c_long, variadic=1, release_gil=False),
        ABIContract("fmt", [P(C.c_char), C.c_size_t, C.c_char_p], C.c_int, variadic=3),
    ])


# ---- out-parameters ----------------------------------------------------------------

def test_byref_and_pointer_out_parameters(k) -> None:
    e = C.c_int()
    assert k.call("split_exp", 8.0, C.byref(e)) == 0.5 and e.value == 4
    e2 = C.c_int()
    assert k.call("split_exp", 3.0, C.pointer(e2)) == 0.75 and e2.value == 2
    q, r = C.c_long(), C.c_double()
    k.call("div_mod", 17, 5, C.byref(q), C.pointer(r))
    assert (q.value, r.value) == (3, 2.0)


def test_byref_with_an_offset_into_an_array(k) -> None:
    ints = (C.c_int * 3)()
    k.call("split_exp", 8.0, C.byref(ints, C.sizeof(C.c_int) * 2))
    assert list(ints) == [0, 0, 4]


def test_ctypes_arrays_and_data_as(k) -> None:
    np = pytest.importorskip("numpy")
    arr = (C.c_double * 3)(1.0, 2.0, 3.5)
    assert k.call("sum_const", arr, 3) == 6.5
    x = np.arange(4.0)
    assert k.call("sum_const", x.ctypes.data_as(P(C.c_double)), 4) == 6.0
    out = np.zeros(1, dtype=np.intc)
    assert k.call("split_exp", 8.0, out.ctypes.data_as(P(C.c_int))) == 0.5
    assert out[0] == 4


def test_a_pointer_keeps_its_target_alive_for_the_call(k) -> None:
    # data_as' result holds the array (_arr): nothing else refers to it here
    np = pytest.importorskip("numpy")
    p = np.full(1000, 0.5).ctypes.data_as(P(C.c_double))
    assert k.call("sum_const", p, 1000) == 500.0


@pytest.mark.parametrize("arg, got", [
    (lambda: C.byref(C.c_double()), "CArgObject with format '<d'"),
    (lambda: C.pointer(C.c_long()), "LP_c_long with format '&<q'"),
    (lambda: (C.c_double * 1)(), "with format '<d'"),
])
def test_a_mismatched_pointee_is_refused_naming_both(k, arg, got) -> None:
    with pytest.raises(TypeError, match=r"argument 2 must be a C-contiguous buffer of c_int "
                                        r"\(LP_c_int, 4-byte items\), not .*" + got):
        k.call("split_exp", 1.0, arg())


def test_a_raw_integer_address_is_refused_saying_what_to_pass(k) -> None:
    e = C.c_int()
    with pytest.raises(TypeError, match=r"not int: edgert does not take a raw address.*"
                                        r"ctypes\.byref\(obj\).*declare the argument c_void_p"):
        k.call("split_exp", 1.0, C.addressof(e))


# ---- const ---------------------------------------------------------------------------

def _read_only_buffers():
    np = pytest.importorskip("numpy")
    frozen = np.array([1.0, 2.0, 3.0])
    frozen.flags.writeable = False
    return [array.array("d", [1.0, 2.0, 3.0]).tobytes(),
            memoryview(array.array("d", [1.0, 2.0, 3.0])).toreadonly(),
            frozen]


def test_read_only_buffers_are_taken_by_a_const_pointer(k) -> None:
    for buf in _read_only_buffers():
        if isinstance(buf, bytes):
            buf = memoryview(buf).cast("d")  # bytes are 'B' items; as doubles, still read-only
        assert k.call("sum_const", buf, 3) == 6.0


def test_read_only_buffers_are_refused_by_a_non_const_pointer(k) -> None:
    np = pytest.importorskip("numpy")
    frozen = np.zeros(3, dtype=np.uint8)
    frozen.flags.writeable = False
    for buf in (b"abc", memoryview(bytearray(3)).toreadonly(), frozen):
        with pytest.raises(TypeError, match=r"fill_bytes\(\) argument 1 \(LP_c_ubyte\) is a "
                                            r"read-only .*'const LP_c_ubyte'"):
            k.call("fill_bytes", buf, 3, 7)
    assert b"abc" == bytes([97, 98, 99])  # the interned object is untouched
    w = bytearray(3)
    k.call("fill_bytes", w, 3, 7)
    assert w == bytearray([7, 7, 7])


def test_const_names_round_trip() -> None:
    abi = ABIContract("sum_const", [const(P(C.c_double)), const(C.c_void_p)], C.c_double)
    d = abi.to_dict()
    assert d["arg_types"] == ["const LP_c_double", "const c_void_p"]
    assert ABIContract.from_manifest(d) == abi
    assert edgert._edgert.canonical_type_name("const LP_c_uint64") == "const LP_c_size_t"


@pytest.mark.parametrize("bad", [C.c_double, C.c_char_p, 3])
def test_const_of_a_value_type_is_refused(bad) -> None:
    with pytest.raises(TypeError, match="const applies to what a pointer points to"):
        const(bad)


def test_const_of_a_value_type_is_refused_in_manifests() -> None:
    with pytest.raises(ManifestError, match=r"arg_types\[0\]: type name 'const c_int': const "
                                            r"applies to a pointer"):
        ABIContract.from_manifest({"function_name": "f", "arg_types": ["const c_int"]})


# ---- errno ---------------------------------------------------------------------------

def test_errno_of_a_failing_call(k) -> None:
    edgert.set_errno(0)
    assert k.call("try_open", b"/nonexistent/edgert/x") == -1
    assert edgert.get_errno() == errno.ENOENT


def test_set_errno_is_swapped_in_before_the_call(k) -> None:
    before = C.c_int(-1)
    assert edgert.set_errno(123) in range(0, 1 << 16)
    assert edgert.set_errno(42) == 123
    k.call("set_errno_to", 7, C.byref(before))
    assert before.value == 42 and edgert.get_errno() == 7


def test_errno_is_per_thread(k) -> None:
    got = {}

    def worker(v: int) -> None:
        for _ in range(50):
            k.call("set_errno_to", v, None)
            got.setdefault(v, set()).add(edgert.get_errno())

    edgert.set_errno(0)
    ts = [threading.Thread(target=worker, args=(v,)) for v in (11, 22, 33)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert got == {11: {11}, 22: {22}, 33: {33}}
    assert edgert.get_errno() == 0  # this thread's copy was never touched


def test_use_errno_is_off_by_default(k) -> None:
    m = ModuleLoader().load(fixture_path("ffi_extra_kernels"),
                            [ABIContract("try_open", [C.c_char_p], C.c_int)])
    edgert.set_errno(5)
    assert m.call("try_open", b"/nonexistent/edgert/x") == -1
    assert edgert.get_errno() == 5
    assert "use_errno" not in ABIContract("f", []).to_dict()


def test_set_errno_refuses_what_is_not_a_c_int() -> None:
    with pytest.raises(OverflowError, match="errno is a C int"):
        edgert.set_errno(1 << 40)
    with pytest.raises(TypeError):
        edgert.set_errno("2")  # type: ignore[arg-type]


# ---- variadic ------------------------------------------------------------------------

def test_variadic_default_promotions(k) -> None:
    assert k.call("sum_ints", 3, 1, 2, -3) == 0
    assert k.call("sum_ints", 0) == 0
    assert k.call("sum_ints", 2, True, 4) == 5
    assert k.call("sum_doubles", 2, 1.5, 2.25) == 3.75
    # an int extra is a C int: read as a double it would be garbage, so the
    # caller says c_double (or passes a float), as in C
    assert k.call("sum_doubles", 2, 1.5, C.c_double(4)) == 5.5


def test_variadic_explicit_types_through_ctypes_instances(k) -> None:
    assert k.call("sum_longs", 2, C.c_long(1 << 40), C.c_long(-1)) == (1 << 40) - 1
    # c_float is promoted to double, c_short and c_ubyte to int, as C does
    assert k.call("sum_doubles", 2, C.c_float(2.5), C.c_double(0.25)) == 2.75
    assert k.call("sum_ints", 3, C.c_short(-2), C.c_ubyte(200), C.c_int(2)) == 200


def test_snprintf_into_a_bytearray(k) -> None:
    buf = bytearray(64)
    n = k.call("fmt", buf, len(buf), b"%d %s %.2f %ld|%s", 42, b"x", 1.5, C.c_long(1 << 40),
               C.c_char_p(b"cp"))
    assert bytes(buf[:n]) == b"42 x 1.50 1099511627776|cp"
    small = bytearray(4)
    assert k.call("fmt", small, 4, b"%d", 123456) == 6 and bytes(small) == b"123\0"


def test_variadic_pointer_extras(k) -> None:
    buf = bytearray(32)
    e = C.c_int(5)
    n = k.call("fmt", buf, 32, b"%p %p", C.byref(e), None)
    assert bytes(buf[:n]).split()[0] == hex(C.addressof(e)).encode()


def test_more_distinct_extra_lists_than_the_cache_keeps(k) -> None:
    # 31 lengths: past the 16 cached cifs, each later list is prepared per call
    for _ in range(2):
        for n in range(1, 32):
            assert k.call("sum_doubles", n, *[float(i) for i in range(n)]) == sum(range(n))
            assert k.call("sum_ints", n, *range(n)) == sum(range(n))


@pytest.mark.parametrize("args, exc, msg", [
    ((), TypeError, r"sum_ints\(\) takes at least 1 argument \(c_ssize_t sum_ints\(c_int, \.\.\.\)\), got 0"),
    ((1, "s"), TypeError, r"extra argument 1 \(argument 2\) is a str.*bytes for char \*"),
    ((1, 1 << 40), OverflowError, r"extra argument 1 \(argument 2\): an int passes as c_int.*c_long"),
    ((1, object()), TypeError, r"cannot pass object through '\.\.\.'"),
    ((1, b"a\0b"), ValueError, r"extra argument 1 \(argument 2, char \*\) has an embedded NUL"),
    ((1,) * 33, TypeError, r"at most 32 arguments"),
])
def test_bad_variadic_input(k, args, exc, msg) -> None:
    with pytest.raises(exc, match=msg):
        k.call("sum_ints", *args)


def test_variadic_contracts_are_checked() -> None:
    with pytest.raises(ValueError, match=r"variadic: 2 fixed arguments, but arg_types lists 1"):
        ABIContract("f", [C.c_int], C.c_int, variadic=2)
    with pytest.raises(ValueError, match=r"variadic: 0 fixed arguments; C needs"):
        ABIContract("f", [], C.c_int, variadic=0)
    with pytest.raises(TypeError, match="variadic: expected the fixed argument count"):
        ABIContract("f", [C.c_int], C.c_int, variadic=True)  # type: ignore[arg-type]
    with pytest.raises(ManifestError, match="variadic: expected the fixed argument count"):
        ABIContract.from_manifest({"function_name": "f", "arg_types": ["c_int"], "variadic": "1"})


def test_bound_signature_shows_the_ellipsis(k) -> None:
    assert k.function("fmt").__self__.signature == (
        "c_int fmt(LP_c_char, c_size_t, c_char_p, ...)")


# ---- manifests -------------------------------------------------------------------------

def test_manifest_fields_round_trip_through_the_c_reader(tmp_path) -> None:
    import hashlib
    path = fixture_path("ffi_extra_kernels")
    contracts = [ABIContract("fmt", [P(C.c_char), C.c_size_t, C.c_char_p], C.c_int, variadic=3),
                 ABIContract("try_open", [C.c_char_p], C.c_int, use_errno=True),
                 ABIContract("sum_const", [const(P(C.c_double)), C.c_size_t], C.c_double)]
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    doc = {"schema_version": 1, "modules": [
        {"path": path, "sha256": sha, "contracts": [c.to_dict() for c in contracts]}]}
    mf = tmp_path / "m.json"
    mf.write_text(json.dumps(doc))
    loaders = edgert.load_manifest(str(mf))
    m = loaders[path]
    buf = bytearray(16)
    assert m.call("fmt", buf, 16, b"%d-%d", 1, 2) == 3 and bytes(buf[:3]) == b"1-2"
    edgert.set_errno(0)
    assert m.call("try_open", b"/nonexistent/edgert/y") == -1
    assert edgert.get_errno() == errno.ENOENT
    assert m.call("sum_const", memoryview(bytes(8)).cast("d"), 1) == 0.0
    assert [ABIContract.from_manifest(c.to_dict()) for c in contracts] == contracts


_SCALARS = [C.c_int, C.c_double, C.c_char_p, C.c_size_t, C.c_float, C.c_ubyte]
_POINTERS = [P(C.c_double), P(C.c_int), P(P(C.c_float)), C.c_void_p]
_TYPES = st.one_of(st.sampled_from(_SCALARS), st.sampled_from(_POINTERS),
                   st.sampled_from(_POINTERS).map(const))


@settings(max_examples=60, deadline=None)
@given(args=st.lists(_TYPES, min_size=1, max_size=6), ret=st.sampled_from([None, *_SCALARS]),
       use_errno=st.booleans(), variadic=st.booleans())
def test_contracts_round_trip_with_const_errno_and_variadic(args, ret, use_errno,
                                                           variadic) -> None:
    abi = ABIContract("f", args, ret, use_errno=use_errno,
                      variadic=len(args) if variadic else None)
    d = abi.to_dict()
    assert ABIContract.from_manifest(d) == abi
    assert ABIContract.from_manifest(d).to_dict() == d
    assert edgert._edgert.parse_contract_json(json.dumps(d)) == d  # the C reader
