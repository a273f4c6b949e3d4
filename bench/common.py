"""Shared timing for the benchmarks: medians of repeated timeit runs, so the
noise of a busy machine moves the figures as little as possible, and every
result is a ratio against a peer measured in the same run."""
from __future__ import annotations

import dataclasses
import os
import statistics
import time
import timeit
from typing import Callable, Optional

#: How many repeats each measurement takes its median over (`make bench REPEAT=N`).
REPEAT = 7


def ns_per_call(stmt: Callable[[], object] | str, *, number: int = 0, repeat: int = 0,
                globals: Optional[dict] = None, per: int = 1) -> float:
    """Median nanoseconds per call of `stmt` (a callable or a timeit string);
    `per` divides further when one statement does `per` operations."""
    t = timeit.Timer(stmt, globals=globals)
    if number <= 0:
        number, _ = t.autorange()
        number = max(number, 1) * 2
    runs = t.repeat(repeat=repeat or REPEAT, number=number)
    return statistics.median(runs) / number / per * 1e9


def paired_ns(ours, peer, globals: Optional[dict] = None) -> tuple:
    """Median ns per call of `ours` and `peer` (callables or timeit strings),
    timed in alternation so that a busy machine slows both alike (the ratio
    is what the rows judge)."""
    t_ours = timeit.Timer(ours, globals=globals)
    t_peer = timeit.Timer(peer, globals=globals)
    n, _ = t_peer.autorange()
    n = max(n // 2, 1)
    a, b = [], []
    for _ in range(max(REPEAT, 5) * 2):
        a.append(t_ours.timeit(n) / n)
        b.append(t_peer.timeit(n) / n)
    return statistics.median(a) * 1e9, statistics.median(b) * 1e9


def use_cpu_clock() -> None:
    """Make every timeit.Timer created from now on time with this thread's
    CPU clock (time.thread_time) instead of the wall clock: on a machine
    shared with other work, the time the process spends preempted is then
    left out of both sides of a ratio. (Cache and TLB refills after a
    preemption still count.)"""

    class CpuTimer(timeit.Timer):
        def __init__(self, stmt="pass", setup="pass", timer=time.thread_time, globals=None):
            super().__init__(stmt, setup, timer, globals)

    timeit.Timer = CpuTimer  # type: ignore[misc]
    # Children that time in C (bench_guard's guard_bench.c) read this.
    os.environ["EDGERT_BENCH_CPU_TIME"] = "1"


@dataclasses.dataclass
class Row:
    """One line of the table: our case against one peer."""
    group: str
    case: str
    ours_ns: float
    peer: str
    peer_ns: float
    target: Optional[str] = None  # e.g. "<= 1.4x", checked against ratio
    note: str = ""

    @property
    def ratio(self) -> float:
        """ours / peer: below 1 is faster than the peer."""
        return self.ours_ns / self.peer_ns if self.peer_ns else float("nan")

    def holds(self) -> Optional[bool]:
        """Whether `target` holds: "<= X" means ratio <= X, ">= Nx faster"
        means peer/ours >= N."""
        if not self.target:
            return None
        t = self.target.replace("x", "").strip()
        if t.startswith("<="):
            return self.ratio <= float(t[2:])
        if t.startswith(">=") and "faster" in t:
            return self.peer_ns / self.ours_ns >= float(t[2:].replace("faster", ""))
        raise ValueError(f"unknown target {self.target!r}")


def build_dir() -> "pathlib.Path":
    """The build tree the benches run against: $EDGERT_BUILD_DIR, else the
    tree the imported edgert package was copied into (<build>/py/edgert)."""
    import os
    import pathlib

    import edgert
    env = os.environ.get("EDGERT_BUILD_DIR")
    if env:
        return pathlib.Path(env)
    return pathlib.Path(edgert.__file__).resolve().parents[2]


def callgrind_ir(argv: list, env: dict, what: str) -> int:
    """Instructions valgrind's callgrind counts for the whole run of `argv`
    (its summary line), with PYTHONHASHSEED=0 so dict lookups repeat; `what`
    names the run in the errors."""
    import re
    import shutil
    import subprocess
    import tempfile
    if shutil.which("valgrind") is None:
        raise SystemExit("callgrind counts need valgrind: apt-get install -y valgrind")
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "cg.out")
        r = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv],
                           capture_output=True, text=True, env=dict(env, PYTHONHASHSEED="0"))
        if r.returncode != 0:
            raise SystemExit(f"valgrind failed for {what}:\n{r.stderr[-2000:]}")
        with open(out) as f:
            m = re.search(r"^summary:\s+(\d+)", f.read(), re.M)
        if m is None:
            raise SystemExit(f"no summary line in the callgrind output of {what}:\n"
                             f"{r.stderr[-2000:]}")
        return int(m.group(1))
