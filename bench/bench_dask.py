"""Dask bench (issue #14): a map of a compiled kernel over 64 partitions of
1e6 floats on a 2-worker local cluster (processes), against the same map of
the equivalent numpy function and of the same C function bound through
ctypes (a ctypes function does not pickle: the peer is the wrapper a user
writes, a module-level function that loads the library in the worker).

Each task makes its partition in the worker (numpy.arange, so no data
travels) and reduces it: sum_f64 from bench/benchk.c, numpy.sum, or ctypes.
The edgert task receives the bound function pickled by content (its
module's SHA-256, path and contract); the workers bind it to the module by
path once and by hash after. Medians of REPEAT runs of the whole map, the
three maps in alternation; the cluster is started once.

Run: python3 bench/run.py dask   (skipped, with a row saying so, without
dask[distributed])."""
from __future__ import annotations

import ctypes
import statistics
import sys
import time
from typing import List

import common
from common import Row

from edgert import ABIContract, ModuleLoader

PARTS = 64
N = 1_000_000


def part(i: int):
    import numpy
    return numpy.arange(i, i + N, dtype=numpy.float64)


def task_edgert(i: int, f) -> float:
    x = part(i)
    return f(x, len(x))


def task_numpy(i: int) -> float:
    import numpy
    return float(numpy.sum(part(i)))


_cdll = {}


def task_ctypes(i: int, path: str) -> float:
    fn = _cdll.get(path)
    if fn is None:  # the wrapper: load the library in the worker, once
        lib = ctypes.CDLL(path)
        fn = lib.sum_f64
        fn.argtypes = [ctypes.POINTER(ctypes.c_double), ctypes.c_size_t]
        fn.restype = ctypes.c_double
        _cdll[path] = fn
    x = part(i)
    return fn(x.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), len(x))


def run() -> List[Row]:
    try:
        import cloudpickle
        import distributed
        import numpy  # noqa: F401
    except ImportError as exc:
        return [Row("dask", f"skipped: {exc.name} is not installed", 0.0, "-", 1.0)]
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    kpath = str(common.build_dir() / "bench" / "libbenchk.so")
    ld = ModuleLoader().load(kpath, ABIContract("sum_f64", [ctypes.POINTER(ctypes.c_double),
                                                            ctypes.c_size_t], ctypes.c_double))
    f = ld.function("sum_f64")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    client = distributed.Client(cluster)
    try:
        maps = {
            "edgert": lambda: client.gather(client.map(task_edgert, range(PARTS), f=f, pure=False)),
            "numpy": lambda: client.gather(client.map(task_numpy, range(PARTS), pure=False)),
            "ctypes": lambda: client.gather(client.map(task_ctypes, range(PARTS), path=kpath,
                                                       pure=False)),
        }
        want = maps["numpy"]()
        for name, m in maps.items():  # warm: workers import, bind, load
            got = m()  # the same sums (numpy adds pairwise: equal to rounding)
            assert all(abs(a - b) <= 1e-9 * abs(b) for a, b in zip(got, want)), name
        times = {k: [] for k in maps}
        for _ in range(max(common.REPEAT, 5)):
            for name, m in maps.items():
                t0 = time.perf_counter()
                m()
                times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) * 1e9 for k, v in times.items()}
    finally:
        client.close()
        cluster.close()
    return [
        Row("dask", f"map sum_f64 over {PARTS} x 1e6 floats, 2 workers", med["edgert"],
            "the same map of numpy.sum", med["numpy"], "<= 1.1x",
            note=f"({med['edgert'] / 1e6:.0f} ms)"),
        Row("dask", f"map sum_f64 over {PARTS} x 1e6 floats, 2 workers", med["edgert"],
            "the same C function through a ctypes wrapper", med["ctypes"], "<= 1.0x"),
    ]


if __name__ == "__main__":
    for r in run():
        print(r)
