"""The nexus's cost over what it dispatches to.

- compiled: a Kernel call that goes compiled, against calling the same bound
  function directly (GIL held: the contract says release_gil=False;
  validate_every=0, logging at its default level). Target <= 1.2x, for the
  way in a hot loop takes: f = k.call, then f(x), a builtin function like the
  bound one, which CPython calls from a specialised instruction. k.call(x)
  (the same plus a method lookup) and k(x) (an object: the interpreter's
  generic call path, about 85 instructions more on 3.11; docs/nexus.md,
  "Cost") are shown beside it with no target, as is k(x) with the contract's
  default release_gil=True (both release and retake the GIL, which dilutes
  the kernel's cost).
- guard miss: a call the contract refuses, against calling the Python
  reference directly. Target <= 1.5x: the miss path must not build an
  exception. Measured with a trivial reference (a + b, 2 bytecodes), where
  the ratio is dominated by the fixed cost of any C caller calling a Python
  function (CPython inlines Python-to-Python calls, which a C dispatcher
  cannot), and with a reference that does a kernel's work (the sum of 16
  floats, refused for its buffer format "f" instead of "d"); each through
  f = k.call (the target) and through the handle (the generic call path on
  top, no target).
- quarantined: a quarantined kernel's call, against the reference directly
  (no target; shows the quarantine costs what a miss costs).
- the floor under the trivial-reference miss, in the same run (no target):
  a quarantined handle forwarding to the same `add` (the nexus's own path
  with no guard at all), and functools.partial(add), the standard library's
  C-level forwarder. Any callable written in C pays this to call a Python
  function, which is what keeps the trivial-reference row above 1.5x.

Run: python3 bench/run.py nexus
"""
from __future__ import annotations

import array
import ctypes
import functools
import os
import pathlib
import statistics
import timeit

import common

import edgert


def _fixture() -> str:
    d = os.environ.get("EDGERT_FIXTURE_DIR") or str(
        pathlib.Path(__file__).resolve().parents[1] / "build" / "fixtures")
    path = os.path.join(d, "nexus_kernels.so")
    return path if os.path.exists(path) else os.path.join(d, "libnexus_kernels.so")


def affine(x):
    return 2.0 * x + 1.0


def add(a, b):
    return a + b


def sum_ref(xs, n):
    return float(sum(xs[:n]))


class _Broken:
    def __call__(self, x):
        raise ValueError("broken")


def _pair(ours: str, peer: str, g: dict) -> tuple[float, float]:
    """Median ns per call of `ours` and `peer`, measured in alternation so
    that a change of load on a shared machine moves both alike."""
    to, tp = timeit.Timer(ours, globals=g), timeit.Timer(peer, globals=g)
    number = max(to.autorange()[0], tp.autorange()[0])
    a, b = [], []
    for _ in range(max(common.REPEAT, 3) * 3):
        a.append(to.timeit(number) / number * 1e9)
        b.append(tp.timeit(number) / number * 1e9)
    return statistics.median(a), statistics.median(b)


def run() -> list[common.Row]:
    loader = edgert.ModuleLoader()
    loader.load(_fixture(), edgert.ABIContract("nexus_affine", [ctypes.c_double], ctypes.c_double,
                                               release_gil=False))
    released = edgert.ModuleLoader()
    released.load(_fixture(), edgert.ABIContract("nexus_affine", [ctypes.c_double],
                                                 ctypes.c_double))
    loader.bind(edgert.ABIContract("nexus_add_i32", [ctypes.c_int32, ctypes.c_int32],
                                   ctypes.c_int32))
    loader.bind(edgert.ABIContract("nexus_sum_f64", [ctypes.POINTER(ctypes.c_double),
                                                     ctypes.c_size_t], ctypes.c_double))
    bound = loader.function("nexus_affine")
    bound_add = loader.function("nexus_add_i32")
    nx = edgert.Nexus()
    k = nx.register("affine", bound, affine)
    bound_rel = released.function("nexus_affine")
    k_rel = nx.register("affine_released", bound_rel, affine)
    k_add = nx.register("add", bound_add, add)
    k_sum = nx.register("sum", loader.function("nexus_sum_f64"), sum_ref)
    k_quarantined = nx.register("broken", _Broken(), affine, max_failures=1)
    k_quarantined(1.0)
    assert k_quarantined.state == "quarantined"
    kq_add = nx.register("broken_add", _Broken(), add, max_failures=1)
    kq_add(1.5, 2)
    assert kq_add.state == "quarantined"
    g = {"k": k, "kc": k.call, "kc_add": k_add.call, "kc_sum": k_sum.call, "bound": bound, "k_rel": k_rel, "bound_rel": bound_rel, "k_add": k_add,
         "add": add, "affine": affine,
         "kq": k_quarantined, "kq_add": kq_add, "partial_add": functools.partial(add),
         "x": 1.5, "n": 2, "k_sum": k_sum, "sum_ref": sum_ref,
         "xs": array.array("f", range(16)), "m": 16}
    assert k(1.5) == k.call(1.5) == bound(1.5) == k_rel(1.5) == bound_rel(1.5) == 4.0
    assert k_add(1.5, 2) == add(1.5, 2)
    assert k_sum(g["xs"], 16) == sum_ref(g["xs"], 16) == 120.0

    rows = []
    for case, ours, peer_name, peer, target, note in [
        ("compiled call f(x), f = k.call, GIL held", "kc(x)", "bound(x)", "bound(x)", "<= 1.2x",
         ""),
        ("compiled call k.call(x), GIL held", "k.call(x)", "bound(x)", "bound(x)", None,
         "info: + a method lookup"),
        ("compiled call k(x), GIL held", "k(x)", "bound(x)", "bound(x)", None,
         "info: generic call of an object"),
        ("compiled call k(x), GIL released", "k_rel(x)", "bound(x), GIL released",
         "bound_rel(x)", None, "info: both release the GIL"),
        ("guard miss f(1.5, 2), f = k_add.call", "kc_add(x, n)", "reference add(1.5, 2)",
         "add(x, n)", "<= 1.5x", "trivial reference"),
        ("guard miss f(f32[16], 16), f = k_sum.call", "kc_sum(xs, m)",
         "reference sum_ref(f32[16], 16)", "sum_ref(xs, m)", "<= 1.5x", ""),
        ("guard miss k_add(1.5, 2)", "k_add(x, n)", "reference add(1.5, 2)", "add(x, n)",
         None, "info: trivial reference, generic call"),
        ("guard miss k_sum(f32[16], 16)", "k_sum(xs, m)", "reference sum_ref(f32[16], 16)",
         "sum_ref(xs, m)", None, "info: generic call"),
        ("quarantined kq(x)", "kq(x)", "reference affine(x)", "affine(x)", None, ""),
        ("floor: quarantined kq_add(1.5, 2)", "kq_add(x, n)", "reference add(1.5, 2)",
         "add(x, n)", None, "info: forwarding, no guard"),
        ("floor: functools.partial(add)(1.5, 2)", "partial_add(x, n)", "reference add(1.5, 2)",
         "add(x, n)", None, "info: any C forwarder"),
    ]:
        o, p = _pair(ours, peer, g)
        rows.append(common.Row("nexus", case, o, peer_name, p, target, note))
    s = k_add.stats()
    assert s["compiled"] == 0 and s["guard_misses"] == s["calls"], s
    assert k_sum.stats()["guard_misses"] == k_sum.stats()["calls"]
    assert k.stats()["compiled"] == k.stats()["calls"]
    assert k_rel.stats()["compiled"] == k_rel.stats()["calls"]
    return rows
