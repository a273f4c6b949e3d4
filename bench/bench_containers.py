"""Typed containers against the built-ins (and numba's typed containers
where numba is installed: `make bench` installs it where PyPI has a build for
this Python; CI runs no benchmarks).

Method: every operation is timed as a loop over prepared keys inside one
timeit statement (`for k in keys: d[k]`), ours and the peer's measured in
alternation so a busy machine slows both alike, medians over the repeats.
The loop's own cost (`for k in keys: k`, measured the same way) is
subtracted from both before the ratio is taken: the rows compare what the
containers do, not the interpreter's loop. Keys are random 40-bit ints
(random order: a hash table's real workload) or random 12-character str.
Memory rows report bytes per entry: ours from sys.getsizeof (which counts
everything the core allocated), the built-ins' including their boxed keys
and values.
"""
from __future__ import annotations

import ctypes
import random
import statistics
import sys
import timeit
from typing import List, Optional

import common
from common import Row

import edgert
from edgert import TypedDict, TypedList

GROUP = "containers"


def _alternate(stmts: list, g: dict, number: int) -> list:
    """Median seconds per run of each statement, measured in alternation."""
    timers = [timeit.Timer(s, globals=g) for s in stmts]
    runs: list = [[] for _ in stmts]
    for _ in range(max(common.REPEAT, 5)):
        for t, r in zip(timers, runs):
            r.append(t.timeit(number) / number)
    return [statistics.median(r) for r in runs]


def _loop_pair(ours: str, peer: str, g: dict, n: int, loop: str = "for k in keys") -> tuple:
    """ns per operation of `ours` and `peer` run in `loop` over n items, net
    of the loop itself."""
    number = max(1, 200_000 // n)
    body = [f"{loop}: {ours}", f"{loop}: {peer}", f"{loop}: pass"]
    t_ours, t_peer, t_base = _alternate(body, g, number)
    return (max(t_ours - t_base, 1e-12) / n * 1e9, max(t_peer - t_base, 1e-12) / n * 1e9)


def _int_keys(n: int, seed: int = 7) -> list:
    return random.Random(seed).sample(range(1 << 40), n)


def _str_keys(n: int, seed: int = 9) -> list:
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    seen = set()
    while len(seen) < n:
        seen.add("".join(rng.choice(alphabet) for _ in range(12)))
    return list(seen)


def _dict_rows(n: int) -> List[Row]:
    rows = []
    keys = _int_keys(n)
    vals = [random.Random(n).random() for _ in range(n)]
    pairs = list(zip(keys, vals))
    d = dict(pairs)
    td = TypedDict(int, float, d)
    g = dict(keys=keys, pairs=pairs, d=d, td=td, TypedDict=TypedDict)
    tag = f"{n:.0e}".replace("+0", "")
    ours, peer = _loop_pair("td[k]", "d[k]", g, n)
    rows.append(Row(GROUP, f"get int->float {tag}", ours, "dict", peer, "<= 1.0x"))
    ours, peer = _loop_pair("td[k] = v", "d[k] = v", g, n, loop="for k, v in pairs")
    rows.append(Row(GROUP, f"set int->float {tag}", ours, "dict", peer, "<= 0.8x"))
    ours, peer = _loop_pair("k in td", "k in d", g, n)
    rows.append(Row(GROUP, f"in int {tag}", ours, "dict", peer, "<= 0.75x"))
    # insert: a fresh container filled with n new keys
    number = max(1, 100_000 // n)
    t_ours, t_peer, t_base = _alternate([
        "x = TypedDict(int, float)\nfor k, v in pairs: x[k] = v",
        "x = {}\nfor k, v in pairs: x[k] = v",
        "x = None\nfor k, v in pairs: pass"], g, number)
    rows.append(Row(GROUP, f"insert int->float {tag}", (t_ours - t_base) / n * 1e9, "dict",
                    (t_peer - t_base) / n * 1e9, "<= 0.8x"))

    skeys = _str_keys(n)
    sd = {k: v for k, v in zip(skeys, vals)}
    std = TypedDict(str, float, sd)
    gs = dict(keys=skeys, d=sd, td=std)
    ours, peer = _loop_pair("td[k]", "d[k]", gs, n)
    rows.append(Row(GROUP, f"get str->float {tag}", ours, "dict", peer, "<= 1.1x"))

    # memory, bytes per entry
    ours_b = sys.getsizeof(td) / n
    peer_b = (sys.getsizeof(d) + sum(map(sys.getsizeof, keys)) + sum(map(sys.getsizeof, vals))) / n
    rows.append(Row(GROUP + "-mem", f"bytes/entry int->float {tag}", ours_b, "dict", peer_b,
                    f"<= {32 / peer_b:.3f}x", note="(<= 32 B/entry)"))
    return rows


def _get_many_row() -> Row:
    import numpy as np
    n = 1000
    keys = _int_keys(n)
    td = TypedDict(int, float, {k: float(i) for i, k in enumerate(keys)})
    d = dict(td.items())
    karr = np.array(keys, dtype=np.int64)
    out = np.empty(n)
    g = dict(td=td, d=d, karr=karr, out=out, keys=keys)
    t_ours, t_peer = _alternate(["td.get_many(karr, out=out)", "[d[k] for k in keys]"], g, 200)
    ours = t_ours / n * 1e9
    return Row(GROUP, "get_many 1e3 (ns/key)", ours, "dict loop", t_peer / n * 1e9,
               f"<= {3.0 / (t_peer / n * 1e9):.3f}x", note="(<= 3 ns/key)")


def _cache_rows() -> List[Row]:
    """The inline cache both ways, on str keys: hot keys (where the ring
    hits) and random keys. From Python a lookup uses the inline probe unless
    cache='on' (the probe is never slower than the ring there, so 'auto'
    routes around it); the 'on' rows show what consulting the ring costs."""
    rows = []
    n = 100_000
    skeys = _str_keys(n, seed=3)
    # One dict, its mode switched between timings: two copies would differ
    # in where their tables sit, which moves random-key lookups by a few
    # percent by itself.
    d = TypedDict(str, float, {k: 1.0 for k in skeys}, cache="auto")
    hot = skeys[:4] * 2500
    rnd = random.Random(5).sample(skeys, 10_000)
    for name, keys in (("hot keys", hot), ("random keys", rnd)):
        ours, peer = _mode_pair(d, "auto", "off", keys)
        rows.append(Row(GROUP + "-cache", f"get str, cache auto vs off, {name}", ours,
                        "cache off", peer, "<= 1.05x", note="(never slower; 5% noise)"))
        ours, peer = _mode_pair(d, "on", "off", keys)
        rows.append(Row(GROUP + "-cache", f"get str, cache on vs off, {name}", ours,
                        "cache off", peer, None, note="(info: the ring from Python)"))
    d.set_cache("auto")
    return rows


def _mode_pair(d, mode: str, base: str, keys: list) -> tuple:
    """ns per d[k] over `keys` with the dict's cache in `mode` and in
    `base`, timed alternately, net of the bare loop."""
    g = dict(keys=keys, d=d)
    number = max(1, 200_000 // len(keys))
    timers = [timeit.Timer(f"for k in keys: {s}", globals=g) for s in ("d[k]", "pass")]
    t_mode, t_base, t_loop = [], [], []
    for _ in range(max(common.REPEAT, 5) * 2):
        for m, out in ((mode, t_mode), (base, t_base)):
            d.set_cache(m)
            timers[0].timeit(1)  # settle the mode (the ring refills)
            out.append(timers[0].timeit(number) / number)
        t_loop.append(timers[1].timeit(number) / number)
    loop = statistics.median(t_loop)
    return tuple(max(statistics.median(t) - loop, 1e-12) / len(keys) * 1e9
                 for t in (t_mode, t_base))


def _c_cache_rows() -> List[Row]:
    """The inline cache from a C host (tests/fixtures/linked/
    containers_cachebench.c times edgert_dict_find on str keys in C):
    there a hit skips hashing the key, so it must earn its place on hot keys
    and stand aside (AUTO) on random ones."""
    path = _fixture("libcontainers_cachebench")
    if path is None:
        return []
    lib = ctypes.CDLL(path)
    lib.cache_bench.restype = ctypes.c_double
    lib.cache_bench.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_size_t,
                                ctypes.c_size_t]
    off, on, auto = 0, 1, 2
    rows = []
    for hot, name, target in ((1, "hot keys", "<= 1.0x"), (0, "random keys", "<= 1.05x")):
        runs = {m: [] for m in (off, auto, on)}
        for _ in range(max(common.REPEAT, 5)):
            for m in runs:
                runs[m].append(lib.cache_bench(m, hot, 100_000, 1_000_000, 32))
        med = {m: statistics.median(v) for m, v in runs.items()}
        rows.append(Row(GROUP + "-cache", f"C find str[32], cache auto vs off, {name}", med[auto],
                        "cache off", med[off], target))
        rows.append(Row(GROUP + "-cache", f"C find str[32], cache on vs off, {name}", med[on],
                        "cache off", med[off], None, note="(info)"))
    return rows


def _list_rows() -> List[Row]:
    import numpy as np
    rows = []
    n = 1_000_000
    data = np.random.default_rng(1).random(n)
    tl = TypedList(float, data)
    lst = data.tolist()
    rows.append(Row(GROUP + "-mem", "bytes/element float list 1e6", sys.getsizeof(tl) / n, "list",
                    (sys.getsizeof(lst) + sum(map(sys.getsizeof, lst))) / n,
                    f"<= {8.5 / ((sys.getsizeof(lst) + 24 * n) / n):.3f}x", note="(<= 8.5 B)"))
    grown = TypedList(float)
    for x in lst:
        grown.append(x)
    rows.append(Row(GROUP + "-mem", "bytes/element float list 1e6 by append",
                    sys.getsizeof(grown) / n, "list",
                    (sys.getsizeof(lst) + 24 * n) / n, None, note="(info)"))
    g = dict(tl=tl, lst=lst)
    t_ours, t_peer = _alternate(["sum(tl)", "sum(lst)"], g, 3)
    rows.append(Row(GROUP, "sum() over 1e6 floats", t_ours / n * 1e9, "list", t_peer / n * 1e9,
                    None, note="(info: boxing on iteration)"))

    # A kernel through the loader on the list's buffer, against numpy.sum.
    path = _fixture("libcontainers_sum")
    if path is None:
        return rows
    loader = edgert.ModuleLoader()
    loader.load(path, edgert.ABIContract(
        "sum_f64", [ctypes.POINTER(ctypes.c_double), ctypes.c_size_t], ctypes.c_double))
    f = loader.function("sum_f64")
    arr = np.asarray(tl)
    g = dict(f=f, tl=tl, n=n, np=np, arr=arr)
    t_ours, t_peer = _alternate(["f(tl, n)", "np.sum(arr)"], g, 50)
    rows.append(Row(GROUP, "kernel sum 1e6 via loader", t_ours * 1e9, "numpy.sum",
                    t_peer * 1e9, "<= 0.6x", note=f"({n * 8 / t_ours / 1e9:.0f} GB/s)"))
    # What one core can read: the same 8 MB through the fastest read loop we
    # have (bench/benchk.c, called with ctypes, no edgert). No single-threaded
    # sum is faster than this; the kernel's row is judged against it too.
    ceiling = _benchk("read_ceiling_f64")
    if ceiling is not None:
        ceiling.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        ceiling.restype = ctypes.c_double
        addr = arr.ctypes.data
        g = dict(f=f, tl=tl, n=n, np=np, arr=arr, ceiling=ceiling, addr=addr)
        t_ceil, t_np, t_k = _alternate(["ceiling(addr, n)", "np.sum(arr)", "f(tl, n)"], g, 50)
        rows.append(Row(GROUP, "one core's read ceiling 1e6 (C, ctypes)", t_ceil * 1e9,
                        "numpy.sum", t_np * 1e9, None,
                        note=f"(info: {n * 8 / t_ceil / 1e9:.0f} GB/s; best ratio any "
                             "single-threaded sum can reach)"))
        rows.append(Row(GROUP, "kernel sum 1e6 via loader vs read ceiling", t_k * 1e9,
                        "read ceiling", t_ceil * 1e9, None,
                        note="(info: what edgert's call and zero-copy handoff cost)"))
    small = TypedList(float, data[:100_000])
    sarr = np.asarray(small)
    g = dict(f=f, small=small, np=np, sarr=sarr)
    t_ours, t_peer = _alternate(["f(small, 100000)", "np.sum(sarr)"], g, 500)
    rows.append(Row(GROUP, "kernel sum 1e5 via loader (in cache)", t_ours * 1e9, "numpy.sum",
                    t_peer * 1e9, None, note="(info)"))
    one = TypedList(float, [1.0])
    lib = ctypes.CDLL(path)
    cfn = lib.sum_f64
    cfn.argtypes = [ctypes.POINTER(ctypes.c_double), ctypes.c_size_t]
    cfn.restype = ctypes.c_double
    carr = (ctypes.c_double * 1)(1.0)
    g = dict(f=f, one=one, cfn=cfn, carr=carr)
    t_ours, t_peer = _alternate(["f(one, 1)", "cfn(carr, 1)"], g, 20000)
    rows.append(Row(GROUP, "kernel call overhead (TypedList arg)", t_ours * 1e9,
                    "ctypes (ctypes array)", t_peer * 1e9,
                    f"<= {100 / (t_peer * 1e9):.3f}x", note="(<= 100 ns/call)"))
    return rows


def _fixture(name: str) -> Optional[str]:
    import os
    d = os.environ.get("EDGERT_FIXTURE_DIR")
    if not d:
        import pathlib
        d = str(pathlib.Path(edgert.__file__).resolve().parents[2] / "fixtures")
    p = os.path.join(d, f"{name}.so")
    return p if os.path.exists(p) else None


def _benchk(name: str):
    """A function of bench/benchk.c (libbenchk.so beside the bench build), or
    None when it was not built."""
    path = common.build_dir() / "bench" / "libbenchk.so"
    if not path.exists():
        return None
    return getattr(ctypes.CDLL(str(path)), name)


def _numba_rows() -> List[Row]:
    try:
        from numba import types as nbt
        from numba.typed import Dict as NbDict
        from numba.typed import List as NbList
    except ImportError:
        return []
    n = 1000
    keys = _int_keys(n)
    nd = NbDict.empty(key_type=nbt.int64, value_type=nbt.float64)
    for k in keys:
        nd[k] = 1.0
    td = TypedDict(int, float, {k: 1.0 for k in keys})
    ours, peer = _loop_pair("td[k]", "nd[k]", dict(keys=keys, td=td, nd=nd), n)
    rows = [Row(GROUP, "get int->float 1e3 vs numba", ours, "numba.typed.Dict", peer,
                ">= 20x faster")]
    nl = NbList.empty_list(nbt.float64)
    for i in range(n):
        nl.append(float(i))
    tl = TypedList(float, range(n))
    idx = list(range(n))
    ours, peer = _loop_pair("tl[i]", "nl[i]", dict(keys=idx, tl=tl, nl=nl), n, loop="for i in keys")
    rows.append(Row(GROUP, "list get 1e3 vs numba", ours, "numba.typed.List", peer,
                    ">= 20x faster"))
    return rows


def run() -> List[Row]:
    rows: List[Row] = []
    rows += _dict_rows(1000)
    rows += _dict_rows(1_000_000)
    rows.append(_get_many_row())
    rows += _cache_rows()
    rows += _c_cache_rows()
    rows += _list_rows()
    rows += _numba_rows()
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
