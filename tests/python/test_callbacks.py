"""Callbacks: ctypes.CFUNCTYPE types in contracts (docs/abi.md, "Callbacks").

A CFUNCTYPE argument takes a Python callable (called from C through a libffi
closure that lives as long as the call), a bound edgert function or an
address (passed as a plain C function pointer), an edgert.callback keep
handle, or None. Kernels: tests/fixtures/callback_kernels.c.
"""
import array
import ctypes
import gc
import random
import sys
import threading
import tracemalloc
import weakref
from ctypes import (CFUNCTYPE, POINTER, c_byte, c_char_p, c_double, c_float, c_int, c_long,
                    c_size_t, c_uint, c_ushort, c_void_p)

import pytest

import edgert
from edgert import ABIContract, CallbackError, ManifestError, ModuleLoader

from conftest import fixture_path

CMP = CFUNCTYPE(c_int, POINTER(c_int), POINTER(c_int))
INT_FN = CFUNCTYPE(c_int, c_int)


def contracts(release_gil=True):
    return [
        ABIContract("my_qsort", [c_void_p, c_size_t, c_size_t, CMP], None,
                    release_gil=release_gil),
        ABIContract("call_n", [INT_FN, c_int], c_long, release_gil=release_gil),
        ABIContract("call_in_thread", [INT_FN, c_int], c_long),
        ABIContract("apply_d", [CFUNCTYPE(c_double, c_double), c_double], c_double),
        ABIContract("call_mixed", [CFUNCTYPE(c_long, c_byte, c_ushort, c_uint, c_long, c_float,
                                             c_double)], c_long),
        ABIContract("call_sc", [CFUNCTYPE(c_byte)], c_long),
        ABIContract("store_callback", [INT_FN], None),
        ABIContract("call_stored", [c_int], c_long),
        ABIContract("cmp_int", [POINTER(c_int), POINTER(c_int)], c_int),
        ABIContract("cmp_double", [POINTER(c_double), POINTER(c_double)], c_int),
        ABIContract("twice_plus_one", [c_int], c_int),
    ]


@pytest.fixture
def lib():
    loader = ModuleLoader()
    loader.load(fixture_path("callback_kernels"), contracts())
    yield loader
    loader.function("store_callback")(None)
    loader.unload()


def ints(n=200, seed=7):
    rnd = random.Random(seed)
    return array.array("i", [rnd.randint(-1000, 1000) for _ in range(n)])


# ---- the three kinds of argument ----------------------------------------------

def test_qsort_with_a_python_comparator(lib):
    a = ints()
    calls = []

    def cmp(x, y):
        calls.append(1)
        return x[0] - y[0]

    lib.function("my_qsort")(a, len(a), a.itemsize, cmp)
    assert list(a) == sorted(ints())
    assert len(calls) > len(a)


def test_qsort_with_a_python_comparator_keeping_the_gil():
    loader = ModuleLoader()
    loader.load(fixture_path("callback_kernels"), contracts(release_gil=False)[:2])
    a = ints()
    loader.function("my_qsort")(a, len(a), 4, lambda x, y: x[0] - y[0])
    assert list(a) == sorted(ints())


def test_qsort_with_a_bound_c_comparator(lib):
    a = ints()
    lib.function("my_qsort")(a, len(a), 4, lib.function("cmp_int"))
    assert list(a) == sorted(ints())


def test_qsort_with_an_address(lib):
    a = ints()
    lib.function("my_qsort")(a, len(a), 4, lib.address_of("cmp_int"))
    assert list(a) == sorted(ints())


def test_none_is_null(lib):
    lib.function("store_callback")(None)
    assert lib.function("call_stored")(3) == -1


def test_a_bound_function_of_another_signature_is_refused(lib):
    a = ints(10)
    with pytest.raises(TypeError, match=r"cmp_double does not match the callback type "
                       r"CFUNCTYPE\(c_int, LP_c_int, LP_c_int\): cmp_double: argument 1 is "
                       r"LP_c_double, the callback type has LP_c_int"):
        lib.function("my_qsort")(a, len(a), 4, lib.function("cmp_double"))
    with pytest.raises(TypeError, match=r"twice_plus_one takes 1 argument, the callback type 2"):
        lib.function("my_qsort")(a, len(a), 4, lib.function("twice_plus_one"))
    assert list(a) == list(ints(10))


def test_what_is_not_a_function_is_refused(lib):
    f = lib.function("call_n")
    with pytest.raises(TypeError, match=r"call_n\(\) argument 1 must be a callable, a bound "
                       r"edgert function, an edgert.callback, an address \(int\) or None "
                       r"\(CFUNCTYPE\(c_int, c_int\)\), not float"):
        f(1.5, 1)
    # a name longer than 64 bytes is still named (it was '?')
    with pytest.raises(TypeError, match=r"\(CFUNCTYPE\(c_ssize_t, c_byte, c_ushort, c_uint, "
                       r"c_ssize_t, c_float, c_double\)\), not float"):
        lib.function("call_mixed")(1.5)
    for bad in (1.5, "f", b"x", True, -1, 2 ** 64):
        with pytest.raises((TypeError, OverflowError), match=r"call_n\(\) argument 1"):
            f(bad, 1)


def test_scalars_arrive_and_return_exactly(lib):
    seen = []

    def mixed(b, us, u, ln, f, d):
        seen.append((b, us, u, ln, f, d))
        return 7

    assert lib.function("call_mixed")(mixed) == 7
    assert seen == [(-5, 65535, 4000000000, -9000000000, 1.5, 2.25)]
    assert lib.function("call_sc")(lambda: -3) == -3
    assert lib.function("apply_d")(lambda x: x * 2.5, 2.0) == 5.0
    assert lib.function("call_n")(lambda i: i * i, 10) == 285


def test_a_python_callback_for_a_pointer_result_is_refused(lib):
    loader = ModuleLoader()
    loader.load(fixture_path("callback_kernels"),
                [ABIContract("call_sc", [CFUNCTYPE(c_char_p)], c_long)])
    with pytest.raises(TypeError, match="cannot implement CFUNCTYPE\\(c_char_p\\)"):
        loader.function("call_sc")(lambda: b"x")


# ---- exceptions -----------------------------------------------------------------

def test_an_exception_in_the_callback_surfaces_chained(lib):
    calls = []

    def cb(i):
        calls.append(i)
        if i == 2:
            raise ValueError("boom at 2")
        return 1

    with pytest.raises(CallbackError, match=r"call_n\(\) argument 1: the Python callback raised "
                       r"ValueError: boom at 2; it returned 0 to C, and 7 later invocations") as ei:
        lib.function("call_n")(cb, 10)
    assert isinstance(ei.value.__cause__, ValueError)
    assert str(ei.value.__cause__) == "boom at 2"
    assert ei.value.__cause__.__traceback__ is not None
    assert calls == [0, 1, 2]  # later invocations do not run Python
    # the next call is clean
    assert lib.function("call_n")(lambda i: 1, 4) == 4


def test_an_exception_in_a_comparator_leaves_the_array_a_permutation(lib):
    a = ints(50)

    def cmp(x, y):
        raise KeyError("nope")

    with pytest.raises(CallbackError) as ei:
        lib.function("my_qsort")(a, len(a), 4, cmp)
    assert isinstance(ei.value.__cause__, KeyError)
    assert sorted(a) == sorted(ints(50))


@pytest.mark.parametrize("result, cause, text", [
    ("1", TypeError, "returned str, expected int \\(c_int\\)"),
    (1.0, TypeError, "returned float, expected int \\(c_int\\)"),
    (None, TypeError, "returned NoneType"),
    (2 ** 40, OverflowError, "does not fit c_int"),
])
def test_a_wrong_return_type_is_an_error(lib, result, cause, text):
    with pytest.raises(CallbackError) as ei:
        lib.function("call_n")(lambda i: result, 3)
    assert isinstance(ei.value.__cause__, cause)
    assert ei.value.__cause__.args and __import__("re").search(text, str(ei.value.__cause__))


def test_a_void_callback_must_return_none():
    loader = ModuleLoader()
    loader.load(fixture_path("callback_kernels"),
                [ABIContract("call_n", [CFUNCTYPE(None, c_int), c_int], c_long)])
    assert loader.function("call_n")(lambda i: None, 3) == 0
    with pytest.raises(CallbackError) as ei:
        loader.function("call_n")(lambda i: 5, 3)
    assert "expected None" in str(ei.value.__cause__)


# ---- threads ----------------------------------------------------------------------

def test_a_callback_from_another_c_thread(lib):
    main = threading.get_ident()
    idents = set()

    def cb(i):
        idents.add(threading.get_ident())
        return i

    assert lib.function("call_in_thread")(cb, 50) == sum(range(50))
    assert idents and main not in idents


def test_an_exception_from_another_c_thread(lib):
    def cb(i):
        raise RuntimeError("from the C thread")

    with pytest.raises(CallbackError) as ei:
        lib.function("call_in_thread")(cb, 5)
    assert str(ei.value.__cause__) == "from the C thread"


def test_python_threads_calling_with_callbacks(lib):
    f = lib.function("call_n")
    errors = []

    def worker(k):
        try:
            for _ in range(30):
                assert f(lambda i: i + k, 20) == sum(range(20)) + 20 * k
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []


# ---- lifetimes ----------------------------------------------------------------------

def test_per_call_closures_leak_nothing(lib):
    f = lib.function("call_n")

    def cb(i):
        return i

    before = sys.getrefcount(cb)
    for _ in range(300):
        f(cb, 3)
    assert sys.getrefcount(cb) == before
    tracemalloc.start()
    try:
        for _ in range(50):
            f(cb, 3)
        # Garbage earlier tests left (free-threaded CPython collects it later
        # than the GIL build) is collected before the window, not inside it.
        gc.collect()
        snap1 = tracemalloc.take_snapshot()
        for _ in range(300):
            f(cb, 3)
            with pytest.raises(CallbackError):
                f(lambda i: 1 / 0, 2)
        gc.collect()
        snap2 = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in snap2.compare_to(snap1, "filename"))
    assert grown < 16 * 1024


def test_a_kept_pointer_argument_is_invalid_after_the_callback(lib):
    kept = []
    a = ints(8)
    lib.function("my_qsort")(a, len(a), 4, lambda x, y: kept.append(x) or x[0] - y[0])
    assert kept and isinstance(kept[0], edgert.CallbackPointer)
    with pytest.raises(ValueError, match="no longer valid: the callback returned"):
        kept[0][0]
    assert "no longer valid" in repr(kept[0])


def test_pointer_arguments_read_and_write_one_item(lib):
    seen = []

    def cmp(x, y):
        seen.append((len(x), x.address, repr(x)))
        with pytest.raises(IndexError, match="one item, p\\[0\\]; got index 1"):
            x[1]
        with pytest.raises(TypeError, match="expected int \\(c_int\\)"):
            x[0] = 1.5
        with pytest.raises(OverflowError):
            x[0] = 2 ** 40
        return x[0] - y[0]

    a = ints(4)
    lib.function("my_qsort")(a, len(a), 4, cmp)
    assert list(a) == sorted(ints(4))
    assert seen[0][0] == 1 and isinstance(seen[0][1], int)
    assert "CallbackPointer LP_c_int at" in seen[0][2]

    def zero_all(x, y):  # writes through the pointers: every item becomes 0
        x[0] = 0
        y[0] = 0
        return 0

    b = ints(6)
    lib.function("my_qsort")(b, len(b), 4, zero_all)
    assert list(b) == [0] * 6


def test_keep_handle_outlives_the_call(lib):
    got = []

    def cb(x):
        got.append(x)
        return x + 100

    h = edgert.callback(INT_FN, cb)
    assert isinstance(h, edgert.Callback)
    assert h.type is INT_FN and h.callable is cb and not h.released
    assert isinstance(h.address, int) and h.address != 0
    lib.function("store_callback")(h)
    assert lib.function("call_stored")(5) == 105
    assert lib.function("call_stored")(6) == 106
    assert got == [5, 6]
    assert lib.function("call_n")(h, 3) == 303
    h.release()
    lib.function("store_callback")(None)
    assert h.released and h.callable is None
    with pytest.raises(ValueError, match="released"):
        lib.function("call_n")(h, 3)
    with pytest.raises(ValueError, match="released"):
        h.address


def test_keep_handle_as_context_manager_and_gc(lib):
    def cb(x):
        return x

    ref = weakref.ref(cb)
    with edgert.callback(INT_FN, cb) as h:
        assert lib.function("call_n")(h, 4) == 6
    assert h.released
    h2 = edgert.callback(INT_FN, cb)
    del cb
    assert ref() is not None  # the handle owns it
    del h, h2
    gc.collect()
    assert ref() is None


def test_keep_handle_of_another_signature_is_refused(lib):
    h = edgert.callback(CFUNCTYPE(c_int, c_double), lambda x: 1)
    with pytest.raises(TypeError, match=r"this edgert.callback is CFUNCTYPE\(c_int, c_double\), "
                       r"the contract wants CFUNCTYPE\(c_int, c_int\)"):
        lib.function("call_n")(h, 3)
    h.release()


def test_keep_handle_exceptions_go_to_unraisablehook(lib, monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_value))
    h = edgert.callback(INT_FN, lambda x: 1 // 0)
    lib.function("store_callback")(h)
    assert lib.function("call_stored")(1) == 0
    assert lib.function("call_stored")(2) == 0
    assert len(seen) == 2 and all(isinstance(e, ZeroDivisionError) for e in seen)
    lib.function("store_callback")(None)
    h.release()


def test_callback_needs_a_cfunctype_and_a_callable():
    with pytest.raises(TypeError, match="expected a ctypes.CFUNCTYPE type"):
        edgert.callback(c_int, lambda: 1)
    with pytest.raises(TypeError, match="fn must be callable"):
        edgert.callback(INT_FN, 3)


# ---- contracts and manifests ------------------------------------------------------------

def test_round_trip_through_to_dict_and_from_manifest():
    c = ABIContract("my_qsort", [c_void_p, c_size_t, c_size_t, CMP], None)
    d = c.to_dict()
    assert d["arg_types"][3] == "CFUNCTYPE(c_int, LP_c_int, LP_c_int)"
    back = ABIContract.from_manifest(d)
    assert back == c and back.arg_types[3] is CMP
    v = ABIContract("f", [CFUNCTYPE(None), CFUNCTYPE(c_double, c_double, POINTER(c_float))])
    assert ABIContract.from_manifest(v.to_dict()) == v
    assert v.to_dict()["arg_types"] == ["CFUNCTYPE(None)",
                                        "CFUNCTYPE(c_double, c_double, LP_c_float)"]


def test_manifest_callback_form():
    d = {"function_name": "my_qsort",
         "arg_types": ["c_void_p", "c_size_t", "c_size_t",
                       {"callback": {"restype": "c_int", "argtypes": ["LP_c_int", "LP_c_int"]}}]}
    assert ABIContract.from_manifest(d).arg_types[3] is CMP
    # aliases come back canonical
    d2 = {"function_name": "f", "arg_types": ["CFUNCTYPE(c_int32,LP_c_int32)"]}
    assert ABIContract.from_manifest(d2).to_dict()["arg_types"] == ["CFUNCTYPE(c_int, LP_c_int)"]


@pytest.mark.parametrize("bad, text", [
    ({"callback": {"restype": "c_int", "argtypes": [{"callback": {}}]}}, "nested callbacks"),
    ({"callback": {"restype": 3}}, "restype: expected a type name"),
    ({"callback": {"argtypes": "c_int"}}, "argtypes: expected an array"),
    ({"callback": {"ret": "c_int"}}, "unknown key 'ret'"),
    ({"callback": {}, "x": 1}, "alone"),
    ("CFUNCTYPE(c_int, CFUNCTYPE(c_int))", "itself a callback"),
    ("CFUNCTYPE(c_int, c_flaot)", "callback argument 1: unknown type name 'c_flaot'"),
    ("CFUNCTYPE(c_int, None)", "callback argument 1: None"),
    ("CFUNCTYPE(c_int,)", "callback argument 1 is empty"),
    ("CFUNCTYPE()", "the callback return type is empty"),
    ("CFUNCTYPE(c_int", "must end with"),
    ("LP_CFUNCTYPE(c_int)", "POINTER to a function pointer"),
    ("CFUNCTYPE(" + ", ".join(["c_int"] * 18) + ")", "at most 16 arguments"),
])
def test_bad_callback_types_are_refused(bad, text):
    with pytest.raises(ManifestError, match=__import__("re").escape(text)):
        ABIContract.from_manifest({"function_name": "f", "arg_types": [bad]})


def test_unsupported_cfunctype_flavours_are_refused():
    with pytest.raises(TypeError, match="not a plain ctypes.CFUNCTYPE"):
        ABIContract("f", [CFUNCTYPE(c_int, use_errno=True)])
    with pytest.raises((TypeError, NotImplementedError, ValueError), match="itself a callback"):
        ABIContract("f", [CFUNCTYPE(c_int, CFUNCTYPE(c_int))])
    with pytest.raises((TypeError, NotImplementedError), match="POINTER to a function pointer"):
        ABIContract("f", [POINTER(CFUNCTYPE(c_int))])


def test_a_function_pointer_result_is_an_address(lib):
    loader = ModuleLoader()
    loader.load(fixture_path("callback_kernels"),
                [ABIContract("take_ptr", [INT_FN], INT_FN)])
    addr = lib.address_of("twice_plus_one")
    assert loader.function("take_ptr")(addr) == addr
    assert lib.function("call_n")(loader.function("take_ptr")(addr), 3) == 1 + 3 + 5


def test_ctypes_sees_the_same_signature():
    # the ctypes peer calls the same kernel: the canonical name is ctypes' own type
    d = ABIContract("f", [CMP]).to_dict()
    assert ABIContract.from_manifest(d).arg_types[0] is CFUNCTYPE(c_int, POINTER(c_int),
                                                                   POINTER(c_int))
    assert ctypes.sizeof(CMP) == ctypes.sizeof(c_void_p)


def test_cli_call_takes_a_callback_type_and_an_address(lib, capsys):
    # `edgert call LIB call_n --args "CFUNCTYPE(c_int, c_int),c_int" ADDRESS 3`:
    # the comma inside the callback type does not split --args
    from edgert import cli
    addr = lib.address_of("twice_plus_one")
    rc = cli.main(["call", fixture_path("callback_kernels"), "call_n", str(addr), "3",
                   "--args", "CFUNCTYPE(c_int, c_int),c_int", "--ret", "c_long", "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert __import__("json").loads(out)["result"] == 1 + 3 + 5
