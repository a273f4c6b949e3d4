"""Instructions per call of the loader's bound calls and the floor extension,
counted by valgrind's callgrind (repeatable where wall-clock timings on a
shared machine are not).

    python3 bench/callgrind_calls.py [N] [WORD]   (WORD: only the rows naming it)

Runs each statement N and 3N times (default N = 20000), under `valgrind
--tool=callgrind`, and prints (Ir(3N) - Ir(N)) / 2N: the instructions one call
costs, the timeit loop's own included (the same few for both sides), with
PYTHONHASHSEED=0 so dict lookups repeat. Both runs of a statement have the same
set-up, compiled from the same text, so its cost cancels exactly (subtracting a
separate set-up-only run left 5-10 instructions of noise that moved the ratios). Contracts keep
the GIL, as the bench's "GIL held" rows. Needs a build (PYTHONPATH=<build>/py,
EDGERT_BUILD_DIR=<build>).
"""
from __future__ import annotations

import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402

CHILD = r"""
import ctypes as C, sys, timeit
sys.path.insert(0, {bdir!r})
import floor_ext
from edgert import ABIContract, ModuleLoader
floor_ext.init({kpath!r})
held = ModuleLoader().load({kpath!r}, [
    ABIContract("add", [C.c_double, C.c_double], C.c_double, release_gil=False),
    ABIContract("inc", [C.c_int64], C.c_int64, release_gil=False),
    ABIContract("noop", [], None, release_gil=False),
    ABIContract("mix5", [C.c_int32, C.c_double, C.c_float, C.c_int64, C.c_uint8], C.c_double,
                release_gil=False),
    ABIContract("seven", [C.c_int32] * 7, C.c_int32, release_gil=False)])
g = {{"floor": floor_ext, "held": held}}
for n in ("add", "inc", "noop", "mix5", "seven"):
    g[n] = held.function(n)
import edgert
g["nx"] = edgert.Nexus()
g["kadd"] = g["nx"].register("add", g["add"], lambda a, b: a + b)
g["kmiss"] = g["nx"].register("miss", g["add"], lambda a, b: 0.0)
g["kadd_call"] = g["kadd"].call
g["kmiss_call"] = g["kmiss"].call
timeit.Timer({stmt!r}, globals=g).timeit({n})
"""

CASES = [
    ("bound add(1.0, 2.0)", "add(1.0, 2.0)"),
    ("floor add(1.0, 2.0)", "floor.add(1.0, 2.0)"),
    ("bound inc(41)", "inc(41)"),
    ("floor inc(41)", "floor.inc(41)"),
    ("bound noop()", "noop()"),
    ("floor noop()", "floor.noop()"),
    ('loader.call("add", 1.0, 2.0)', 'held.call("add", 1.0, 2.0)'),
    ("nexus kernel add(1.0, 2.0)", "kadd(1.0, 2.0)"),
    ("nexus kernel add: k.call(1.0, 2.0)", "kadd.call(1.0, 2.0)"),
    ("nexus kernel add: f(1.0, 2.0), f = k.call", "kadd_call(1.0, 2.0)"),
    ('nexus kernel add(1.0, "x"), a guard miss', 'kmiss(1.0, "x")'),
    ('nexus kernel add: f(1.0, "x"), f = k.call, a guard miss', 'kmiss_call(1.0, "x")'),
    ("bound mix5(1, 2.0, 3.0, 4, 5)", "mix5(1, 2.0, 3.0, 4, 5)"),
    ("floor mix5(1, 2.0, 3.0, 4, 5)", "floor.mix5(1, 2.0, 3.0, 4, 5)"),
    ("bound seven(1, 2, 3, 4, 5, 6, 7)", "seven(1, 2, 3, 4, 5, 6, 7)"),
]


def instructions(stmt: str, n: int) -> int:
    bdir = common.build_dir() / "bench"
    code = CHILD.format(bdir=str(bdir), kpath=str(bdir / "libbenchk.so"), stmt=stmt, n=n)
    return common.callgrind_ir([sys.executable, "-c", code], dict(os.environ),
                               f"{stmt} x {n}")


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    word = sys.argv[2] if len(sys.argv) > 2 else ""
    ir = {}
    for name, stmt in CASES:
        if word not in name:
            continue
        ir[name] = (instructions(stmt, 3 * n) - instructions(stmt, n)) / (2 * n)
        print(f"{name:48s} {ir[name]:8.1f} Ir/call", flush=True)
    for a, b in (("bound add(1.0, 2.0)", "floor add(1.0, 2.0)"),
                 ("bound inc(41)", "floor inc(41)"), ("bound noop()", "floor noop()"),
                 ("bound mix5(1, 2.0, 3.0, 4, 5)", "floor mix5(1, 2.0, 3.0, 4, 5)"),
                 ("nexus kernel add(1.0, 2.0)", "bound add(1.0, 2.0)"),
                 ("nexus kernel add: k.call(1.0, 2.0)", "bound add(1.0, 2.0)"),
                 ("nexus kernel add: f(1.0, 2.0), f = k.call", "bound add(1.0, 2.0)")):
        if a in ir and b in ir:
            print(f"{a} / {b}: {ir[a] / ir[b]:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
