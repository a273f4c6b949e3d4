"""Callbacks (#13): a CFUNCTYPE argument against a c_void_p one, and Python
callbacks called from C against ctypes' CFUNCTYPE callbacks, measured in the
same run. Kernels: tests/fixtures/callback_kernels.c (my_qsort calls the
process's qsort: a module's libc is its own copy, so edgert sorts through the
wrapper; the ctypes peer calls libc's qsort directly).

Rows:
- a call whose argument is a C function pointer (a bound edgert function, or
  an address) against the same kernel taking c_void_p with an int address:
  target <= 1.2x;
- qsort of 1,000 ints with a Python comparator, per comparator invocation:
  edgert (the comparator gets edgert.CallbackPointer arguments, x[0] - y[0])
  against ctypes (CFUNCTYPE, LP_c_int arguments, the same lambda), with the
  GIL released around the call (edgert's default, ctypes.CDLL) and kept
  (release_gil=False, ctypes.PyDLL): target <= 0.5x;
- qsort with a C comparator passed as a function pointer, both ways
  (informative).
"""
from __future__ import annotations

import array
import ctypes
import ctypes.util
import os
import pathlib
import random
from ctypes import CFUNCTYPE, POINTER, c_int, c_size_t, c_void_p

from common import Row, paired_ns

import edgert

ROOT = pathlib.Path(__file__).resolve().parents[1]
CMP = CFUNCTYPE(c_int, POINTER(c_int), POINTER(c_int))
INT_FN = CFUNCTYPE(c_int, c_int)
N = 1000


def _fixture(name: str) -> str:
    d = pathlib.Path(os.environ.get("EDGERT_FIXTURE_DIR") or ROOT / "build" / "fixtures")
    return str(d / f"lib{name}.so")


def run() -> list[Row]:
    path = _fixture("callback_kernels")
    lv = edgert.ModuleLoader()
    lv.load(path, [edgert.ABIContract("take_ptr", [c_void_p], c_void_p),
                   edgert.ABIContract("twice_plus_one", [c_int], c_int)])
    lk = edgert.ModuleLoader()
    lk.load(path, [edgert.ABIContract("my_qsort", [c_void_p, c_size_t, c_size_t, CMP], None,
                                      release_gil=False)])
    lf = edgert.ModuleLoader()
    lf.load(path, [edgert.ABIContract("take_ptr", [INT_FN], c_void_p),
                   edgert.ABIContract("my_qsort", [c_void_p, c_size_t, c_size_t, CMP], None),
                   edgert.ABIContract("cmp_int", [POINTER(c_int), POINTER(c_int)], c_int)])
    take_void = lv.function("take_ptr")
    take_fn = lf.function("take_ptr")
    c_fn = lv.function("twice_plus_one")
    addr = lv.address_of("twice_plus_one")
    g = {"take_void": take_void, "take_fn": take_fn, "c_fn": c_fn, "addr": addr}
    fn_ns, void_ns = paired_ns("take_fn(c_fn)", "take_void(addr)", globals=g)
    addr_ns, void2_ns = paired_ns("take_fn(addr)", "take_void(addr)", globals=g)

    rnd = random.Random(1)
    data = array.array("i", [rnd.randint(-10 ** 6, 10 ** 6) for _ in range(N)])
    calls = [0]

    def counting(x, y):
        calls[0] += 1
        return x[0] - y[0]

    qsort_e = lf.function("my_qsort")
    a = array.array("i", data)
    qsort_e(a, N, 4, counting)
    assert list(a) == sorted(data)
    invocations = calls[0]

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    qsort_c = libc.qsort
    qsort_c.argtypes = [c_void_p, c_size_t, c_size_t, CMP]
    qsort_c.restype = None
    py_cmp = lambda x, y: x[0] - y[0]  # noqa: E731 (the same source both ways)
    ct_cmp = CMP(py_cmp)
    sorted_b = (c_int * N)(*data)
    qsort_c(sorted_b, N, 4, ct_cmp)
    assert list(sorted_b) == sorted(data)
    b = (c_int * N)(*data)

    def ours():
        x = array.array("i", data)
        qsort_e(x, N, 4, py_cmp)

    arr_t = c_int * N

    def peer():
        x = arr_t.from_buffer_copy(b)  # a fresh unsorted copy, as array.array(data)
        qsort_c(x, N, 4, ct_cmp)

    q_ours, q_peer = paired_ns(ours, peer)

    # the GIL kept around the call: edgert release_gil=False, ctypes PyDLL
    qsort_k = lk.function("my_qsort")
    pylibc = ctypes.PyDLL(ctypes.util.find_library("c"))
    qsort_p = pylibc.qsort
    qsort_p.argtypes = [c_void_p, c_size_t, c_size_t, CMP]
    qsort_p.restype = None

    def ours_k():
        x = array.array("i", data)
        qsort_k(x, N, 4, py_cmp)

    def peer_k():
        x = arr_t.from_buffer_copy(b)
        qsort_p(x, N, 4, ct_cmp)

    k_ours, k_peer = paired_ns(ours_k, peer_k)

    cmp_bound = lf.function("cmp_int")
    cdll = ctypes.CDLL(path)
    c_cmp_ptr = ctypes.cast(cdll.cmp_int, CMP)

    def ours_c():
        x = array.array("i", data)
        qsort_e(x, N, 4, cmp_bound)

    def peer_c():
        x = arr_t.from_buffer_copy(b)
        qsort_c(x, N, 4, c_cmp_ptr)

    c_ours, c_peer = paired_ns(ours_c, peer_c)
    return [
        Row("callbacks", "f(bound C function) with a CFUNCTYPE argument", fn_ns,
            "f(int) c_void_p, edgert", void_ns, "<= 1.2x"),
        Row("callbacks", "f(address) with a CFUNCTYPE argument", addr_ns,
            "f(int) c_void_p, edgert", void2_ns, "<= 1.2x"),
        Row("callbacks", f"one Python comparator call (qsort {N} ints, "
            f"{invocations} calls)", q_ours / invocations, "ctypes CFUNCTYPE",
            q_peer / invocations, "<= 0.5x"),
        Row("callbacks", "one Python comparator call, GIL kept (release_gil=False)",
            k_ours / invocations, "ctypes PyDLL CFUNCTYPE", k_peer / invocations, "<= 0.5x"),
        Row("callbacks", f"qsort {N} ints, C comparator as function pointer", c_ours,
            "ctypes, libc qsort", c_peer),
    ]
