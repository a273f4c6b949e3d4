"""`make bench`: run every bench/bench_*.py and print one table of ratios
against the peers measured in the same run. Each module has a function
`run() -> list[common.Row]`. Arguments: names of modules to run (default all),
--repeat N for the medians, --markdown for a table to paste in RESULTS.md,
--cpu-time to time with the thread's CPU clock (for a machine busy with other
work; the default is the wall clock)."""
from __future__ import annotations

import argparse
import importlib
import os
import pathlib
import platform
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("only", nargs="*", help="bench modules to run, e.g. loader guard")
    ap.add_argument("--repeat", type=int, default=common.REPEAT)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with the thread's CPU clock instead of the wall clock")
    a = ap.parse_args()
    common.REPEAT = a.repeat
    if a.cpu_time:
        common.use_cpu_clock()
    names = sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))
    if a.only:
        names = [n for n in names if n in a.only]
    rows: list[common.Row] = []
    start = time.time()
    for n in names:
        mod = importlib.import_module(f"bench_{n}")
        rows.extend(mod.run())
    print(f"# edgert bench: {platform.python_implementation()} {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} cpus, median of {common.REPEAT}, "
          f"{'thread CPU time, ' if a.cpu_time else ''}"
          f"{time.time() - start:.0f}s")
    sep = "|" if a.markdown else " "
    hdr = ["group", "case", "ours ns", "peer", "peer ns", "ratio", "target", "holds"]
    lines = [hdr]
    misses = 0
    for r in rows:
        h = r.holds()
        misses += h is False
        lines.append([r.group, r.case, f"{r.ours_ns:.1f}", r.peer, f"{r.peer_ns:.1f}",
                      f"{r.ratio:.2f}x", r.target or "", {None: "", True: "yes", False: "NO"}[h]
                      + (f" {r.note}" if r.note else "")])
    widths = [max(len(l[i]) for l in lines) for i in range(len(hdr))]
    for i, l in enumerate(lines):
        if a.markdown:
            print("| " + " | ".join(l) + " |")
            if i == 0:
                print("|" + "|".join("---" for _ in hdr) + "|")
        else:
            print("  ".join(c.ljust(w) for c, w in zip(l, widths)))
    print(f"# {len(rows)} rows, {misses} targets missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
