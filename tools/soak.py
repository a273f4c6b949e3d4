#!/usr/bin/env python3
"""Soak run (make soak): a mixed edgert workload for a set time, RSS checked.

Every round loads the quality_kernels fixture with its SHA-256, binds and
calls its functions (the bound fast path included), unloads it and checks
that calls then fail; fills, reads, pickles and empties a TypedDict and a
TypedList; drives a Nexus kernel through calls, swaps, rollbacks and a
quarantine; runs guarded calls with fallback; and makes the error paths run
(bad type names, wrong arguments, a tampered hash). The resident set size
is sampled after a warm-up and at the end; the run fails if it grew by more
than --max-growth-mib (default 4 MiB), if the process holds more file
descriptors at the end than after the warm-up (every load opens a sealed
memfd), or if any round gave a wrong result.

  PYTHONPATH=build/py EDGERT_FIXTURE_DIR=build/fixtures python3 tools/soak.py --seconds 120
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import hashlib
import os
import pickle
import sys
import threading
import time

import edgert

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def fixture(name: str) -> str:
    d = os.environ.get("EDGERT_FIXTURE_DIR") or os.path.join(HERE, "..", "build", "fixtures")
    path = os.path.join(d, f"{name}.so")
    if not os.path.exists(path):
        raise SystemExit(f"{path} is not built: run `make build` first")
    return path


class Workload:
    def __init__(self) -> None:
        self.path = fixture("libquality_kernels")
        with open(self.path, "rb") as f:
            self.sha = hashlib.sha256(f.read()).hexdigest()
        self.add = edgert.ABIContract("q_add_i32", [ctypes.c_int, ctypes.c_int], ctypes.c_int)
        self.scale = edgert.ABIContract("q_scale", [ctypes.c_double], ctypes.c_double)
        self.sum = edgert.ABIContract(
            "q_sum_f64", [ctypes.POINTER(ctypes.c_double), ctypes.c_size_t], ctypes.c_double
        )
        self.counts: dict[str, int] = {}

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def loader_round(self) -> None:
        loader = edgert.ModuleLoader()
        loader.load(self.path, self.add, expected_sha256=self.sha)
        loader.bind(self.scale)
        loader.bind(self.sum)
        assert loader.call("q_add_i32", 40, 2) == 42
        fast = loader.function("q_scale")
        for i in range(200):
            assert fast(float(i)) == i * 2.0 + 1.0
        data = edgert.TypedList("float")
        data.extend([0.5] * 64)
        assert loader.call("q_sum_f64", data, len(data)) == 32.0
        assert loader.verify_signature(self.sha)
        loader.unload()
        try:
            fast(1.0)
        except edgert.ModuleUnloadedError:
            pass
        else:
            raise AssertionError("a call after unload did not raise")
        self.count("loader")

    def error_round(self) -> None:
        loader = edgert.ModuleLoader()
        try:
            loader.load(self.path, self.add, expected_sha256="0" * 64)
        except edgert.IntegrityError:
            pass
        else:
            raise AssertionError("a wrong hash loaded")
        try:
            edgert.ABIContract.from_manifest(
                {"function_name": "f", "arg_types": ["c_flaot"], "return_type": None}
            )
        except ValueError:
            pass
        else:
            raise AssertionError("an unknown type name was accepted")
        loader.load(self.path, self.add)
        for bad in [("x", 1), (1,), (1, 2, 3), (2**40, 1)]:
            try:
                loader.call("q_add_i32", *bad)
            except (TypeError, OverflowError):
                pass
            else:
                raise AssertionError(f"bad arguments {bad!r} were accepted")
        loader.unload()
        self.count("errors")

    def container_round(self) -> None:
        d = edgert.TypedDict("int", "float")
        for i in range(500):
            d[i] = i * 0.5
        for i in range(0, 500, 2):
            del d[i]
        assert len(d) == 250 and d[1] == 0.5
        try:
            d["nope"] = 1.0
        except TypeError:
            pass
        else:
            raise AssertionError("a str key went into an int dict")
        d2 = pickle.loads(pickle.dumps(d))
        assert dict(d2) == dict(d)
        s = edgert.TypedDict("str", "bytes")
        for i in range(200):
            s[f"k{i}"] = bytes([i % 256]) * (i % 17)
        s.clear()
        lst = edgert.TypedList("int")
        lst.extend(range(1000))
        while len(lst) > 10:
            lst.pop()
        assert list(lst) == list(range(10))
        fl = edgert.TypedList("float")
        fl.extend([1.5] * 100)
        with memoryview(fl) as mv:
            assert mv.format == "d" and mv[99] == 1.5
        self.count("containers")

    def nexus_round(self) -> None:
        loader = edgert.ModuleLoader()
        loader.load(self.path, self.scale)
        nx = edgert.Nexus()

        def reference(x: float) -> float:
            return x * 2.0 + 1.0

        k = nx.register("scale", loader.function("q_scale"), reference, validate_every=7)
        for i in range(100):
            assert nx.call("scale", float(i)) == reference(float(i))
        v = k.swap(lambda x: x * 2.0 + 1.0)
        assert nx.call("scale", 3.0) == 7.0
        k.rollback()
        assert k.stats()["version"] < v

        def broken(x: float) -> float:
            raise RuntimeError("broken kernel")

        k.swap(broken)
        for _ in range(5):
            assert nx.call("scale", 1.0) == 3.0
        assert k.stats()["state"] == "quarantined"
        k.reset()
        loader.unload()
        self.count("nexus")

    def guard_round(self) -> None:
        def compiled(x: float) -> float:
            raise ValueError("compiled path failed")

        def reference(x: float) -> float:
            return x + 1.0

        assert edgert.ExplicitFallback.run_with_guard(compiled, reference, 1.0, fallback_enabled=True) == 2.0
        try:
            edgert.ExplicitFallback.run_with_guard(compiled, reference, 1.0)
        except edgert.CompiledModeFailure:
            pass
        else:
            raise AssertionError("no CompiledModeFailure")
        self.count("guard")

    def threads_round(self) -> None:
        loader = edgert.ModuleLoader()
        loader.load(self.path, self.add)
        f = loader.function("q_add_i32")
        errors: list[BaseException] = []

        def worker(base: int) -> None:
            try:
                for i in range(200):
                    assert f(base, i) == base + i
            except BaseException as e:  # reported below
                errors.append(e)

        ts = [threading.Thread(target=worker, args=(k * 1000,)) for k in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        loader.unload()
        if errors:
            raise errors[0]
        self.count("threads")

    def round(self) -> None:
        self.loader_round()
        self.error_round()
        self.container_round()
        self.nexus_round()
        self.guard_round()
        self.threads_round()


def main() -> int:
    ap = argparse.ArgumentParser(description="edgert soak run")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--warmup", type=float, default=None, help="seconds before the first RSS sample (default: 10%% of the run, at most 10 s)")
    ap.add_argument("--max-growth-mib", type=float, default=4.0)
    a = ap.parse_args()
    warmup = a.warmup if a.warmup is not None else min(10.0, a.seconds * 0.1)

    w = Workload()
    t0 = time.monotonic()
    rounds = 0
    while time.monotonic() - t0 < warmup:
        w.round()
        rounds += 1
    gc.collect()
    rss_start = rss_kib()
    fds_start = open_fds()
    t_start = time.monotonic()
    samples = [(0.0, rss_start)]
    next_sample = t_start + max(1.0, a.seconds / 10)
    while time.monotonic() - t0 < a.seconds:
        w.round()
        rounds += 1
        now = time.monotonic()
        if now >= next_sample:
            samples.append((now - t_start, rss_kib()))
            next_sample = now + max(1.0, a.seconds / 10)
    gc.collect()
    rss_end = rss_kib()
    fds_end = open_fds()
    samples.append((time.monotonic() - t_start, rss_end))
    elapsed = time.monotonic() - t0
    growth = (rss_end - rss_start) / 1024.0
    print(f"soak: {elapsed:.0f} s, {rounds} rounds ({', '.join(f'{k} {v}' for k, v in sorted(w.counts.items()))})")
    print("soak: RSS samples (s after warm-up: MiB): " + ", ".join(f"{t:.0f}: {r / 1024:.1f}" for t, r in samples))
    print(f"soak: RSS after {warmup:.0f} s warm-up {rss_start / 1024:.1f} MiB, at end {rss_end / 1024:.1f} MiB, growth {growth:+.2f} MiB (limit {a.max_growth_mib} MiB)")
    print(f"soak: open file descriptors after warm-up {fds_start}, at end {fds_end}")
    ok = growth <= a.max_growth_mib and fds_end <= fds_start
    print(f"soak: {1 if ok else 0} passed, {0 if ok else 1} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
