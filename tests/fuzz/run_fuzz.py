#!/usr/bin/env python3
"""Runs every libFuzzer harness built in <build>/fuzz (make fuzz).

Each harness fuzzes for --seconds on a working copy of its committed seed
corpus (tests/fuzz/corpus/<harness>/, left untouched), with the committed
regression inputs (tests/fuzz/regressions/<harness>/) replayed first. Prints
executions, coverage (edges) and features per harness and in total, writes
them to <build>/fuzz-summary.json, and exits 1 if any harness crashed; a
crashing input is left in <build>/crashes/ and its path printed, to be kept
under tests/fuzz/regressions/<harness>/ once fixed.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent

STAT = re.compile(r"^stat::(\w+):\s*(\d+)", re.M)
PROGRESS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)", re.M)


def harnesses(build: pathlib.Path) -> list[pathlib.Path]:
    d = build / "fuzz"
    return sorted(p for p in d.glob("fuzz_*") if p.is_file() and os.access(p, os.X_OK))


def replay(exe: pathlib.Path) -> tuple[bool, str]:
    """Runs the committed regressions (and seeds) once each, no fuzzing."""
    inputs = sorted(
        str(p)
        for d in (HERE / "regressions" / exe.name, HERE / "corpus" / exe.name)
        if d.is_dir()
        for p in d.iterdir()
        if p.is_file()
    )
    if not inputs:
        return True, ""
    r = subprocess.run([str(exe), *inputs], capture_output=True, text=True, errors="replace")
    return r.returncode == 0, r.stderr[-4000:]


def fuzz(exe: pathlib.Path, build: pathlib.Path, seconds: int) -> dict:
    name = exe.name
    seeds = HERE / "corpus" / name
    work = build / "corpus" / name
    crashes = build / "crashes"
    crashes.mkdir(parents=True, exist_ok=True)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    if seeds.is_dir():
        for p in seeds.iterdir():
            if p.is_file():
                shutil.copy(p, work / p.name)
    seed_count = len(list(work.iterdir()))
    dict_file = HERE / f"{name}.dict"
    cmd = [
        str(exe),
        f"-max_total_time={seconds}",
        "-print_final_stats=1",
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-max_len=4096",
        f"-artifact_prefix={crashes}/{name}-",
        str(work),
    ]
    if dict_file.exists():
        cmd.insert(1, f"-dict={dict_file}")
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:allocator_may_return_null=1")
    env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=env)
    elapsed = time.monotonic() - t0
    log = r.stderr
    (build / f"{name}.log").write_text(log)
    stats = {k: int(v) for k, v in STAT.findall(log)}
    progress = PROGRESS.findall(log)
    cov = int(progress[-1][1]) if progress else 0
    ft = int(progress[-1][2]) if progress else 0
    artifacts = sorted(str(p) for p in crashes.glob(f"{name}-*"))
    return {
        "harness": name,
        "seconds": round(elapsed, 1),
        "executions": stats.get("number_of_executed_units", 0),
        "exec_per_s": stats.get("average_exec_per_sec", 0),
        "coverage_edges": cov,
        "features": ft,
        "seeds": seed_count,
        "corpus_after": len(list(work.iterdir())),
        "peak_rss_mb": stats.get("peak_rss_mb", 0),
        "returncode": r.returncode,
        "crashed": r.returncode != 0,
        "artifacts": artifacts,
        "tail": log[-3000:] if r.returncode != 0 else "",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build-fuzz")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--only", nargs="*", help="harness names (fuzz_abi ...)")
    ap.add_argument("--regress-only", action="store_true", help="replay the committed inputs only")
    a = ap.parse_args()
    build = pathlib.Path(a.build).resolve()
    exes = harnesses(build)
    if a.only:
        exes = [e for e in exes if e.name in a.only]
    if not exes:
        print(f"no harnesses built in {build}/fuzz", file=sys.stderr)
        return 2

    failed = []
    for exe in exes:
        ok, err = replay(exe)
        print(f"{exe.name}: committed inputs replayed: {'ok' if ok else 'CRASH'}")
        if not ok:
            print(err)
            failed.append(exe.name)
    if a.regress_only:
        print(f"fuzz-regress: {len(exes) - len(failed)} passed, {len(failed)} failed")
        return 1 if failed else 0

    rows = []
    for exe in exes:
        print(f"{exe.name}: fuzzing {a.seconds} s ...", flush=True)
        row = fuzz(exe, build, a.seconds)
        rows.append(row)
        if row["crashed"]:
            failed.append(exe.name)
            print(row["tail"])
            print(f"{exe.name}: CRASH, input kept in {', '.join(row['artifacts']) or build / 'crashes'}")

    w = max(len(r["harness"]) for r in rows)
    print()
    print(f"{'harness':<{w}}  {'seconds':>7}  {'executions':>11}  {'exec/s':>7}  {'cov':>5}  {'ft':>6}  {'corpus':>11}  result")
    for r in rows:
        print(
            f"{r['harness']:<{w}}  {r['seconds']:>7.1f}  {r['executions']:>11,}  {r['exec_per_s']:>7,}  "
            f"{r['coverage_edges']:>5}  {r['features']:>6}  {r['seeds']:>4} -> {r['corpus_after']:<4}  "
            f"{'CRASH' if r['crashed'] else 'ok'}"
        )
    total = sum(r["executions"] for r in rows)
    print(f"{'total':<{w}}  {sum(r['seconds'] for r in rows):>7.1f}  {total:>11,}")
    summary = {
        "seconds_per_harness": a.seconds,
        "total_executions": total,
        "harnesses": rows,
        "crashed": [r["harness"] for r in rows if r["crashed"]],
    }
    (build / "fuzz-summary.json").write_text(json.dumps(summary, indent=2))
    print(f"fuzz: {len(exes) - len(set(failed))} passed, {len(set(failed))} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
