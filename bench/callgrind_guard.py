"""Instructions that arming crash containment adds to one guarded call,
counted by valgrind's callgrind (repeatable where wall-clock and even CPU-time
timings on a shared machine are not): the bench_guard rows' C loop
(tests/fixtures/linked/guard_bench.c, edgert_guard_run of a trivial kernel)
in a plain C host and with the Python package imported (its CPython host
probe, the PyGILState path of a C caller, runs at every arming).

    python3 bench/callgrind_guard.py [N]   (default 100000)

For each host and EDGERT_CRASH_GUARD=1/0: (Ir of a run of N calls - Ir of a
run of 0) / N; the armed cost is the difference between the two. Needs a
build (PYTHONPATH=<build>/py, EDGERT_FIXTURE_DIR or EDGERT_BUILD_DIR).
"""
from __future__ import annotations

import os
import sys

import bench_guard
import common

CHILD = r"""
import ctypes, sys
if sys.argv[1] == "probe":
    import edgert  # installs the CPython host probe in the same libedgert
lib = ctypes.CDLL(sys.argv[2])
lib.guard_bench_run_ns.restype = ctypes.c_double
lib.guard_bench_run_ns.argtypes = [ctypes.c_long]
lib.guard_bench_run_ns(int(sys.argv[3]))
"""


def instructions(host: str, guard: str, n: int) -> int:
    return common.callgrind_ir([sys.executable, "-c", CHILD, host,
                                bench_guard._fixture("guard_bench"), str(n)],
                               dict(os.environ, EDGERT_CRASH_GUARD=guard),
                               f"{host}, guard {guard}, {n} calls")


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    for host, what in (("plain", "plain C host"), ("probe", "CPython host probe installed")):
        per = {g: (instructions(host, g, n) - instructions(host, g, 0)) / n for g in ("1", "0")}
        print(f"{what:30s} armed {per['1']:6.1f} Ir/call, off {per['0']:6.1f}, "
              f"added by arming {per['1'] - per['0']:6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
