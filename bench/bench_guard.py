"""Guard benchmarks: what ExplicitFallback.run_with_guard adds to a bound
kernel call (target <= 2.0x the bare call; each pair timed alternately, the
minimum of each counts), and what arming crash
containment costs per call (target <= 10 ns), measured in C
(tests/fixtures/linked/guard_bench.c) in child processes with
EDGERT_CRASH_GUARD=1 and =0: in a plain C host, and with the Python package
imported, whose host probe (the thread's interpreter frame, read at every
arming so that a fault inside a Python callback is never "contained") is
part of what every guarded call costs in a Python process. With --cpu-time
the children time with the thread's CPU clock too (EDGERT_BENCH_CPU_TIME);
bench/callgrind_guard.py counts the same loop's instructions."""
from __future__ import annotations

import ctypes
import json
import os
import pathlib
import statistics
import subprocess
import sys
import timeit

import common
from common import Row

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _fixture(name: str) -> str:
    d = pathlib.Path(os.environ.get("EDGERT_FIXTURE_DIR") or ROOT / "build" / "fixtures")
    for candidate in (d / f"{name}.so", d / f"lib{name}.so"):
        if candidate.exists():
            return str(candidate)
    raise FileNotFoundError(f"{d}/{name}.so is not built: run `make build` first")


_CHILD = r'''
import ctypes, json, statistics, sys
if sys.argv[3] == "probe":
    import edgert  # installs the CPython host probe in the same libedgert
lib = ctypes.CDLL(sys.argv[1])
for name in ("guard_bench_run_ns", "guard_bench_direct_ns"):
    getattr(lib, name).restype = ctypes.c_double
    getattr(lib, name).argtypes = [ctypes.c_long]
n, repeat = 2_000_000, int(sys.argv[2])
lib.guard_bench_run_ns(n)  # warm up
print(json.dumps({
    "run": statistics.median(lib.guard_bench_run_ns(n) for _ in range(repeat)),
    "direct": statistics.median(lib.guard_bench_direct_ns(n) for _ in range(repeat)),
}))
'''


def _c_timing(guard: str, probe: bool = False) -> dict:
    env = dict(os.environ, EDGERT_CRASH_GUARD=guard)
    out = subprocess.run([sys.executable, "-c", _CHILD, _fixture("guard_bench"),
                          str(common.REPEAT), "probe" if probe else "plain"], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


class _ArticleFallback:
    """The article's run_with_guard, in Python, for comparison."""

    @classmethod
    def run_with_guard(cls, compiled_func, reference_func, *args, tolerance=1e-9,
                       fallback_enabled=False):
        try:
            result = compiled_func(*args)
            return result
        except Exception as comp_exc:
            if not fallback_enabled:
                from edgert import CompiledModeFailure
                raise CompiledModeFailure("compiled path failed") from comp_exc
            return reference_func(*args)


def _paired(ours: str, peer: str, g: dict) -> tuple[float, float]:
    """ns per call of `ours` and `peer`, timed alternately so that a busy
    machine slows both alike; the minimum of each is the figure (the run
    least disturbed by other processes)."""
    t_ours, t_peer = timeit.Timer(ours, globals=g), timeit.Timer(peer, globals=g)
    number, _ = t_peer.autorange()
    a, b = [], []
    for _ in range(2 * common.REPEAT):
        a.append(t_ours.timeit(number))
        b.append(t_peer.timeit(number))
    return min(a) / number * 1e9, min(b) / number * 1e9


def run() -> list[Row]:
    from edgert import ABIContract, ExplicitFallback, ModuleLoader

    loader = ModuleLoader()
    loader.load(_fixture("guard_crashy"),
                ABIContract("guard_ok", [ctypes.c_double], ctypes.c_double))
    f = loader.function("guard_ok")
    loader.bind(ABIContract("guard_add", [ctypes.c_int, ctypes.c_int], ctypes.c_int,
                            release_gil=False))
    h = loader.function("guard_add")  # the GIL held through the call

    def ref(x: float) -> float:
        return x * 2.0 + 1.0

    def ref_add(a: int, b: int) -> int:
        return a + b

    g = {"f": f, "h": h, "ref_add": ref_add, "ref": ref, "E": ExplicitFallback, "A": _ArticleFallback,
         "rwg": ExplicitFallback.run_with_guard}
    guarded, bare = _paired("E.run_with_guard(f, ref, 1.5)", "f(1.5)", g)
    guarded2, article = _paired("E.run_with_guard(f, ref, 1.5)",
                                "A.run_with_guard(f, ref, 1.5)", g)
    guarded_gil, bare_gil = _paired("E.run_with_guard(h, ref_add, 2, 3)", "h(2, 3)", g)
    rows = [
        Row("guard", "E.run_with_guard(f, ref, x), compiled succeeds", guarded,
            "bare bound call f(x)", bare, "<= 2.0x"),
        Row("guard", "E.run_with_guard(f, ref, x), compiled succeeds", guarded2,
            "article's Python run_with_guard", article),
        Row("guard", "E.run_with_guard(h, ref, a, b), GIL held (release_gil=False)",
            guarded_gil, "bare bound call h(a, b)", bare_gil, "<= 2.0x"),
    ]
    on, off = _c_timing("1"), _c_timing("0")
    armed = max(on["run"] - off["run"], 0.01)
    rows += [
        Row("guard", "edgert_guard_run(noop), containment armed", on["run"],
            "same, EDGERT_CRASH_GUARD=0", off["run"],
            note=f"direct call {statistics.mean([on['direct'], off['direct']]):.1f} ns"),
        Row("guard", "containment armed: ns added per call", armed, "budget 10 ns", 10.0,
            "<= 1.0x"),
    ]
    p_on, p_off = _c_timing("1", probe=True), _c_timing("0", probe=True)
    armed_py = max(p_on["run"] - p_off["run"], 0.01)
    rows += [
        Row("guard", "containment armed, CPython host probe installed: ns added per call",
            armed_py, "budget 10 ns", 10.0, "<= 1.0x",
            note=f"armed {p_on['run']:.1f} ns, off {p_off['run']:.1f} ns"),
    ]
    return rows
