"""Structs (#13): a 2-double struct by value against the same call with
the two doubles, with the GIL kept (release_gil=False) and released (the
default), and a POINTER(S) argument from a TypedList(S) against a float
buffer (a TypedList(float)) of the same bytes. Both sides call the same
fixture library (tests/fixtures/struct_kernels.c) through edgert, timed in
alternation (common.paired_ns), so the ratio is the cost of the struct path
itself.

    PYTHONPATH=build/py EDGERT_BUILD_DIR=build python3 bench/run.py structs
"""
from __future__ import annotations

from ctypes import POINTER, Structure, c_double, c_size_t
from typing import List

import common
from common import Row

import edgert
from edgert import ABIContract, ModuleLoader


class BenchVec2(Structure):
    _fields_ = [("x", c_double), ("y", c_double)]


def run() -> List[Row]:
    lib = common.build_dir() / "fixtures" / "libstruct_kernels.so"
    loader = ModuleLoader()
    loader.load(str(lib), [
        ABIContract("vec2_norm1", [BenchVec2], c_double, release_gil=False),
        ABIContract("two_doubles_norm1", [c_double, c_double], c_double, release_gil=False),
        ABIContract("vec2_sum_x", [POINTER(BenchVec2), c_size_t], c_double, release_gil=False),
        ABIContract("f64_sum_even", [POINTER(c_double), c_size_t], c_double, release_gil=False),
    ])
    # the same two kernels with edgert's default, the GIL released
    released = ModuleLoader()
    released.load(str(lib), [
        ABIContract("vec2_norm1", [BenchVec2], c_double),
        ABIContract("two_doubles_norm1", [c_double, c_double], c_double),
    ])
    edgert.register_struct(BenchVec2)
    n = 64
    tl = edgert.TypedList(BenchVec2)
    tl.extend(BenchVec2(float(i), 1.0) for i in range(n))
    fl = edgert.TypedList(float)
    fl.extend(float(v) for i in range(n) for v in (i, 1.0))
    g = {"s_norm": loader.function("vec2_norm1"), "d_norm": loader.function("two_doubles_norm1"),
         "s_sum": loader.function("vec2_sum_x"), "f_sum": loader.function("f64_sum_even"),
         "s_norm_r": released.function("vec2_norm1"),
         "d_norm_r": released.function("two_doubles_norm1"),
         "v": BenchVec2(3.0, -4.0), "tl": tl, "fl": fl, "n": n, "n2": 2 * n}
    assert g["s_sum"](tl, n) == g["f_sum"](fl, 2 * n)
    rows = []
    ours, peer = common.paired_ns("s_norm(v)", "d_norm(3.0, -4.0)", g)
    rows.append(Row("structs", "2-double struct by value, GIL kept", ours,
                    "the two doubles, GIL kept", peer, "<= 1.5x"))
    ours, peer = common.paired_ns("s_norm_r(v)", "d_norm_r(3.0, -4.0)", g)
    rows.append(Row("structs", "2-double struct by value, GIL released", ours,
                    "the two doubles, GIL released", peer, "<= 1.5x"))
    ours, peer = common.paired_ns("s_sum(tl, n)", "f_sum(fl, n2)", g)
    rows.append(Row("structs", "POINTER(S) from TypedList(S), 64 items", ours,
                    "float buffer (TypedList(float))", peer, "<= 1.1x"))
    loader.unload()
    released.unload()
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
