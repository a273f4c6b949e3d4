"""Paired timing of the operations #11's data rules touch, in two builds
alternately (A B A B ...), so a busy machine slows both alike.

    python3 bench/pair_builds.py OLD_BUILD NEW_BUILD [--rounds 7]

One interpreter per build stays up; each round times every case in the old
build and at once in the new one (thread CPU time, best of 3 timeit
repeats), so each pair sees the same machine. The table gives each build's
median over the rounds and the median of the per-round new/old ratios."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r'''
import ctypes, json, sys, time, timeit, array
import numpy as np
import edgert
from edgert import TypedDict, TypedList, ABIContract, ModuleLoader
from edgert.fallback import results_match
fx = sys.argv[1]
P = ctypes.POINTER
ld = ModuleLoader().load(fx, [ABIContract("sum_i64", [P(ctypes.c_int64), ctypes.c_size_t], ctypes.c_int64),
                              ABIContract("sum_f64", [P(ctypes.c_double), ctypes.c_size_t], ctypes.c_double)])
tl = TypedList(float, [1.0] * 16)
npi = np.arange(16, dtype=np.int64)
keys = np.arange(1000, dtype=np.int64); vals = np.ones(1000)
d = TypedDict(int, float); d.set_many(keys, vals); out = np.empty(1000)
big = TypedList(int, range(1000))
sd = TypedDict(int, int, {i: i for i in range(1000)})
a1, a2 = np.arange(1000, dtype=np.int64), array.array("q", range(1000))
cases = {
  "call sum_f64(TypedList(16))": (lambda: ld.call("sum_f64", tl, 16), 20000),
  "call sum_i64(numpy int64[16])": (lambda: ld.call("sum_i64", npi, 16), 20000),
  "TypedDict.set_many 1e3 (numpy)": (lambda: d.set_many(keys, vals), 2000),
  "TypedDict.get_many 1e3 out=": (lambda: d.get_many(keys, out=out), 2000),
  "TypedList(int, numpy int64[1000])": (lambda: TypedList(int, a1), 2000),
  "del l[::2] on 1e3 ints": (lambda: (lambda l: l.__delitem__(slice(None, None, 2)))(TypedList(int, big)), 2000),
  "l[::2] = 500 ints": (lambda: big.__setitem__(slice(None, None, 2), a1[:500]), 2000),
  "TypedList(1e3 ints) * 4": (lambda: big * 4, 2000),
  "list(reversed(TypedDict 1e3))": (lambda: list(reversed(sd)), 500),
  "results_match(int64[1000], 'q' array)": (lambda: results_match(a1, a2, tolerance=0), 2000),
}
print(json.dumps(list(cases)), flush=True)
for line in sys.stdin:
    fn, n = cases[line.strip()]
    t = timeit.Timer(fn, timer=lambda: time.clock_gettime(time.CLOCK_THREAD_CPUTIME_ID))
    print(min(t.repeat(3, n)) / n * 1e9, flush=True)
'''


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    procs = []
    for b in (a.old, a.new):
        env = dict(os.environ, PYTHONPATH=os.path.join(b, "py"), EDGERT_BUILD_DIR=b)
        procs.append(subprocess.Popen([sys.executable, "-c", CHILD,
                                       os.path.join(b, "fixtures", "libloader_kernels.so")],
                                      env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True))
    names = [json.loads(p.stdout.readline()) for p in procs][0]
    times: dict[str, list[list[float]]] = {k: [[], []] for k in names}
    for _ in range(a.rounds):
        for k in names:
            for i, p in enumerate(procs):
                p.stdin.write(k + "\n")
                p.stdin.flush()
                times[k][i].append(float(p.stdout.readline()))
    for p in procs:
        p.stdin.close()
        p.wait()
    print("| case | old ns | new ns | new/old (median of paired ratios) |\n| --- | --- | --- | --- |")
    for k in names:
        o, n = times[k]
        ratio = statistics.median(y / x for x, y in zip(o, n))
        print(f"| {k} | {statistics.median(o):.1f} | {statistics.median(n):.1f} | {ratio:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
