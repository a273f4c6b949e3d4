"""Stress: Python threads loading, binding, calling, unloading and swapping at
once, and containers shared by threads under the GIL. Each test runs for a
bounded time (about a second; shorter under the sanitizers) and asserts what
must hold whatever the interleaving: every call returns the right answer or,
once its module is unloaded, ModuleUnloadedError; swaps never lose or
misroute a call; containers end up exactly as a model of the same
operations says.
"""
from __future__ import annotations

import array
import ctypes
import hashlib
import os
import random
import threading
import time
from typing import Callable, List

import edgert
from conftest import fixture_path

THREADS = 4
BUDGET = 0.3 if os.environ.get("EDGERT_SANITIZED") else 1.0

ADD = edgert.ABIContract("q_add_i32", [ctypes.c_int, ctypes.c_int], ctypes.c_int)
SCALE = edgert.ABIContract("q_scale", [ctypes.c_double], ctypes.c_double)
SUM = edgert.ABIContract("q_sum_f64", [ctypes.POINTER(ctypes.c_double), ctypes.c_size_t], ctypes.c_double)


def kernels() -> str:
    return fixture_path("libquality_kernels")


def run_threads(target: Callable[[int], None], n: int = THREADS) -> None:
    """Runs target(i) in n threads and re-raises the first failure."""
    errors: List[BaseException] = []

    def wrap(i: int) -> None:
        try:
            target(i)
        except BaseException as e:  # re-raised in the main thread below
            errors.append(e)

    ts = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


def test_threads_load_bind_call_and_unload_at_once():
    path = kernels()
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    rounds = [0] * THREADS
    until = time.monotonic() + BUDGET

    def churn(i: int) -> None:
        xs = array.array("d", [float(i)] * 32)
        while time.monotonic() < until:
            ld = edgert.ModuleLoader()
            ld.load(path, ADD, expected_sha256=sha)
            ld.bind(SUM)
            add = ld.function("q_add_i32")
            for k in range(50):
                assert add(i * 1000, k) == i * 1000 + k
                assert ld.call("q_sum_f64", xs, len(xs)) == 32.0 * i
            ld.unload()
            try:
                add(1, 2)
            except edgert.ModuleUnloadedError:
                pass
            else:
                raise AssertionError("a call after unload returned")
            rounds[i] += 1

    run_threads(churn)
    assert all(r >= 1 for r in rounds), rounds


def test_unload_while_threads_call_one_module():
    until = time.monotonic() + BUDGET
    rounds = 0
    while time.monotonic() < until:
        ld = edgert.ModuleLoader()
        ld.load(kernels(), ADD)
        add = ld.function("q_add_i32")
        started = threading.Barrier(THREADS + 1)
        seen = [0] * THREADS

        def caller(i: int) -> None:
            started.wait()
            k = 0
            while True:
                try:
                    assert add(k, i) == k + i
                except edgert.ModuleUnloadedError:
                    seen[i] += 1
                    return
                k += 1

        ts = [threading.Thread(target=caller, args=(i,)) for i in range(THREADS)]
        for t in ts:
            t.start()
        started.wait()
        time.sleep(0.002)
        ld.unload()
        for t in ts:
            t.join(timeout=10)
            assert not t.is_alive(), "a caller never saw the unload"
        assert seen == [1] * THREADS
        rounds += 1
    assert rounds >= 1


def test_nexus_swaps_and_rollbacks_while_threads_call():
    ld = edgert.ModuleLoader()
    ld.load(kernels(), SCALE)
    compiled = ld.function("q_scale")

    def reference(x: float) -> float:
        return x * 2.0 + 1.0

    def python_version(x: float) -> float:
        return x * 2.0 + 1.0

    nx = edgert.Nexus()
    k = nx.register("scale", compiled, reference, validate_every=3)
    stop = threading.Event()
    calls = [0] * (THREADS - 1)

    def caller(i: int) -> None:
        x = float(i)
        while not stop.is_set():
            assert nx.call("scale", x) == x * 2.0 + 1.0
            calls[i] += 1
            x += 1.0

    ts = [threading.Thread(target=caller, args=(i,)) for i in range(THREADS - 1)]
    for t in ts:
        t.start()
    until = time.monotonic() + BUDGET
    swaps = rollbacks = 0
    try:
        while time.monotonic() < until:
            v = k.swap(python_version if swaps % 2 else compiled)
            swaps += 1
            if swaps % 3 == 0:
                assert k.rollback() < v
                rollbacks += 1
    finally:
        stop.set()
        for t in ts:
            t.join()
    st = k.stats()
    assert st["calls"] == sum(calls)
    assert st["failures"] == 0 and st["mismatches"] == 0 and st["state"] == "active"
    assert st["calls"] == st["compiled"] + st["guard_misses"] + st["fallbacks"]
    assert swaps >= 3 and rollbacks == swaps // 3
    ld.unload()


def test_typed_dict_shared_by_threads_matches_a_model():
    d = edgert.TypedDict("int", "float")
    per_thread = 2000
    models: List[dict] = [{} for _ in range(THREADS)]

    def writer(i: int) -> None:
        # Each thread owns keys [i * per_thread, (i + 1) * per_thread) and
        # keeps its own model of them; the dict is shared by all.
        rnd = random.Random(i)
        model = models[i]
        base = i * per_thread
        for k in range(per_thread):
            d[base + k] = float(k)
            model[base + k] = float(k)
            if rnd.random() < 0.3:
                victim = base + rnd.randrange(k + 1)
                assert d.pop(victim, None) == model.pop(victim, None)

    run_threads(writer)
    expected: dict = {}
    for m in models:
        expected.update(m)
    assert dict(d) == expected
    assert len(d) == len(expected)
    # Readers and one writer at once: readers see either absent or right.
    stop = threading.Event()

    def reader(i: int) -> None:
        while not stop.is_set():
            for key in range(0, THREADS * per_thread, 97):
                v = d.get(key)
                assert v is None or v == float(key % per_thread)

    rs = [threading.Thread(target=reader, args=(i,)) for i in range(THREADS - 1)]
    for t in rs:
        t.start()
    try:
        until = time.monotonic() + BUDGET / 2
        n = 0
        while time.monotonic() < until:
            key = n % (THREADS * per_thread)
            d[key] = float(key % per_thread)
            if n % 3 == 0:
                d.pop(key, None)
            n += 1
    finally:
        stop.set()
        for t in rs:
            t.join()


def test_typed_list_appends_from_threads_are_all_kept():
    lst = edgert.TypedList("int")
    per_thread = 5000

    def appender(i: int) -> None:
        for k in range(per_thread):
            lst.append(i * per_thread + k)

    run_threads(appender)
    assert len(lst) == THREADS * per_thread
    assert sorted(lst) == list(range(THREADS * per_thread))
    # Each thread's own items are in its own order.
    for i in range(THREADS):
        mine = [x for x in lst if x // per_thread == i]
        assert mine == list(range(i * per_thread, (i + 1) * per_thread))


def test_typed_list_buffer_shared_with_kernels_in_threads():
    ld = edgert.ModuleLoader()
    ld.load(kernels(), SUM)
    total = edgert.TypedList("float")
    total.extend([0.5] * 1024)

    def summer(i: int) -> None:
        until = time.monotonic() + BUDGET / 2
        while time.monotonic() < until:
            assert ld.call("q_sum_f64", total, len(total)) == 512.0

    run_threads(summer)
    ld.unload()
