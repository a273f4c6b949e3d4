"""Free-threaded CPython (3.13t): importing edgert leaves the GIL off, and
threads sharing TypedDicts, TypedLists, nexus kernels, loaders and the
fallback counters keep every invariant and never crash.

The stress tests run on every build (with a GIL the threads take turns);
`make test-freethreaded` runs them on a free-threaded build with the GIL off,
where EDGERT_EXPECT_FREE_THREADED=1 turns running on a GIL build into a
failure instead of a skip. Each thread runs a bounded loop; a thread's
exception is re-raised in the test. Errors a concurrent change may cause
(IndexError, BufferError, a RuntimeError about a dict that changed during
iteration, ModuleUnloadedError) are the documented outcomes of a race, as
with list and dict (docs/free-threading.md); a wrong value, a lost update
or a crash is a failure, and so is a hang: a watchdog ends the process with
every thread's traceback if one test runs for WATCHDOG_S seconds (each takes
about a second)."""
from __future__ import annotations

import copy
import ctypes
import faulthandler
import os
import pickle
import subprocess
import sys
import sysconfig
import threading

import pytest

import edgert
from edgert import (ABIContract, ExplicitFallback, ModuleLoader, ModuleUnloadedError, Nexus,
                    TypedDict, TypedList)
from conftest import fixture_path

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
EXPECT_FREE_THREADED = os.environ.get("EDGERT_EXPECT_FREE_THREADED") == "1"
needs_free_threading = pytest.mark.skipif(
    not FREE_THREADED and not EXPECT_FREE_THREADED,
    reason="not a free-threaded build (make test-freethreaded runs these)")

THREADS = 4
WATCHDOG_S = 300


@pytest.fixture(autouse=True)
def watchdog():
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def run_threads(*targets, args=None):
    """Starts one thread per target (together, at a barrier), joins them and
    re-raises the first exception any of them raised."""
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException] = []

    def wrap(fn, a):
        def run():
            barrier.wait()
            try:
                fn(*a)
            except BaseException as e:  # noqa: BLE001 - handed to the test
                errors.append(e)
        return run

    ts = [threading.Thread(target=wrap(fn, (args[i],) if args else ()))
          for i, fn in enumerate(targets)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


def fx(name: str) -> str:
    try:
        return fixture_path(name)
    except FileNotFoundError:
        return fixture_path("lib" + name)


# ---- the GIL stays off ------------------------------------------------------

@needs_free_threading
def test_this_is_a_free_threaded_build():
    assert FREE_THREADED, (f"{sys.executable} is not a free-threaded build "
                           "(EDGERT_EXPECT_FREE_THREADED=1 asks for one)")


@needs_free_threading
def test_importing_edgert_leaves_the_gil_off():
    code = ("import sys, edgert, edgert.containers, edgert.nexus, edgert.fallback\n"
            "print(sys._is_gil_enabled())")
    r = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False", r.stdout + r.stderr
    assert "GIL" not in r.stderr, r.stderr


@needs_free_threading
def test_the_gil_is_off_in_this_run():
    # numpy and the test tools are imported by now: nothing turned it back on,
    # so the stress tests below really run in parallel.
    import numpy  # noqa: F401
    assert sys._is_gil_enabled() is False


# ---- TypedDict ---------------------------------------------------------------

def test_typed_dict_writers_on_their_own_keys_lose_nothing():
    td = TypedDict(int, float)
    n = 3000

    def writer(i):
        base = i * n
        for k in range(n):
            td[base + k] = float(k)
        for k in range(0, n, 2):
            del td[base + k]
        for k in range(1, n, 2):
            td[base + k] += 0.5

    run_threads(*[writer] * THREADS, args=list(range(THREADS)))
    assert len(td) == THREADS * n // 2
    for i in range(THREADS):
        for k in range(1, n, 2):
            assert td[i * n + k] == k + 0.5
    assert sorted(td) == sorted(i * n + k for i in range(THREADS) for k in range(1, n, 2))


@pytest.mark.parametrize("cache", ["auto", "on", "off"])
def test_typed_dict_readers_see_whole_entries_while_writers_change_it(cache):
    # cache='on' makes every lookup write the dict's inline cache: readers
    # change state too.
    td = TypedDict(str, int, cache=cache)
    keys = [f"key{k}" for k in range(400)]
    for k in keys[::2]:
        td[k] = int(k[3:])
    rounds = 40

    def writer(i):
        for r in range(rounds):
            for k in keys[i::THREADS]:
                if r % 2:
                    td.pop(k, None)
                else:
                    td.setdefault(k, int(k[3:]))
            td.update({keys[i]: int(keys[i][3:])})

    def reader(_):
        for _ in range(rounds):
            for k in keys:
                v = td.get(k)
                assert v is None or v == int(k[3:]), (k, v)
            try:
                for k, v in td.items():
                    assert v == int(k[3:]), (k, v)
            except RuntimeError as e:
                assert "changed" in str(e)
            snap = td.copy()
            assert all(v == int(k[3:]) for k, v in snap.items())
            assert len(pickle.loads(pickle.dumps(td))) >= 0

    run_threads(writer, writer, reader, reader, args=[0, 1, 2, 3])
    assert all(v == int(k[3:]) for k, v in td.items())
    assert len(td) == len(list(td)) == len(td.values())


def test_typed_dict_batches_and_values_buffer_under_threads():
    td = TypedDict(int, float)
    td.set_many(TypedList(int, range(1000)), TypedList(float, (float(k) for k in range(1000))))
    rounds = 60

    def batch_writer(i):
        keys = TypedList(int, range(i * 1000, (i + 1) * 1000))
        vals = TypedList(float, (float(k) for k in range(i * 1000, (i + 1) * 1000)))
        for _ in range(rounds):
            try:
                td.set_many(keys, vals)
            except BufferError:
                pass  # a reader holds the values buffer: inserts wait for it
            got = td.get_many(keys, default=-1.0)
            assert all(v == -1.0 or v == k for k, v in zip(keys, got))

    def buffer_reader(_):
        for _ in range(rounds):
            with memoryview(td.values()) as mv:
                total = sum(mv)
                assert total >= sum(range(1000))
            td2 = td | {5: 5.0}
            assert td2[5] == 5.0

    run_threads(batch_writer, batch_writer, buffer_reader, buffer_reader, args=[1, 2, 3, 4])
    td[10**9] = 1.0  # no export is left behind
    assert all(v == k or k == 10**9 for k, v in td.items())


def test_typed_dict_iterator_shared_between_threads_yields_each_key_once():
    td = TypedDict(int, int, {k: k for k in range(20000)})
    it = iter(td)
    seen: list[list[int]] = [[] for _ in range(THREADS)]

    def consume(i):
        for k in it:
            seen[i].append(k)

    run_threads(*[consume] * THREADS, args=list(range(THREADS)))
    flat = sorted(k for s in seen for k in s)
    assert flat == list(range(20000))
    assert list(it) == []


# ---- TypedList ---------------------------------------------------------------

def test_typed_list_appends_from_many_threads_all_land():
    tl = TypedList(int)
    n = 10000

    def appender(i):
        for k in range(n):
            tl.append(i * n + k)

    def reader(_):
        for _ in range(200):
            m = len(tl)
            if m:
                assert 0 <= tl[m - 1] < THREADS * n
            assert tl.count(-1) == 0

    run_threads(*[appender] * THREADS, reader, args=list(range(THREADS + 1)))
    assert len(tl) == THREADS * n
    assert sorted(tl) == list(range(THREADS * n))


@pytest.mark.parametrize("kind", [float, str])
def test_typed_list_mixed_operations_keep_it_whole(kind):
    values = [kind(v) for v in (1.5, 2.5, 3.5, 4.5)] if kind is float else \
        ["alpha", "beta" * 10, "gamma" * 100, "δelta"]
    allowed = set(values)
    tl = TypedList(kind, values * 50)
    rounds = 300

    def mutator(i):
        for r in range(rounds):
            op = (r + i) % 9
            try:
                if op == 0:
                    tl.append(values[r % 4])
                elif op == 1:
                    tl.pop()
                elif op == 2:
                    tl.insert(r % 7, values[i])
                elif op == 3:
                    tl.extend(values)
                elif op == 4:
                    tl[1:3] = values[:2]
                elif op == 5:
                    del tl[::5]
                elif op == 6:
                    tl.sort()
                elif op == 7:
                    tl.reverse()
                else:
                    tl.remove(values[i])
            except (IndexError, ValueError):
                pass  # a concurrent change emptied it or took the value first

    def reader(_):
        for _ in range(rounds):
            items = list(tl)
            assert set(items) <= allowed
            assert set(tl.copy()) <= allowed
            assert set(copy.deepcopy(tl)) <= allowed
            assert set(pickle.loads(pickle.dumps(tl))) <= allowed
            values[0] in tl  # noqa: B015 - a scan while others change it
            try:
                assert tl[len(tl) // 2] in allowed
            except IndexError:
                pass
            repr(tl)

    run_threads(mutator, mutator, mutator, reader, args=[0, 1, 2, 3])
    assert len(tl) == len(list(tl))
    assert set(tl) <= allowed


def test_typed_list_extending_itself_from_threads():
    # extend(self), += self and [:] = self lock the list twice in one call.
    tl = TypedList(int, [1, 2, 3])

    def grow(i):
        for r in range(6):
            if (r + i) % 3 == 0:
                tl.extend(tl)
            elif (r + i) % 3 == 1:
                t = tl
                t += t
            else:
                tl[:] = tl
            del tl[30:]

    run_threads(*[grow] * THREADS, args=list(range(THREADS)))
    assert len(tl) <= 30 and set(tl) <= {1, 2, 3}


def test_typed_list_buffer_exports_and_resizes_from_threads():
    tl = TypedList(float, [1.0] * 1000)
    rounds = 300

    def exporter(_):
        for _ in range(rounds):
            with memoryview(tl) as mv:
                assert mv.nbytes == len(mv) * 8
                assert set(mv.tolist()) <= {1.0, 2.0}

    def resizer(_):
        for r in range(rounds):
            try:
                if r % 2:
                    tl.append(2.0)
                else:
                    tl.pop()
            except BufferError:
                pass  # an export is alive: the list keeps its length
            if len(tl):
                tl[0] = 2.0  # writing an element is allowed while exported

    run_threads(exporter, exporter, resizer, resizer, args=[0, 1, 2, 3])
    tl.append(1.0)  # every export was released
    assert set(tl) <= {1.0, 2.0}


def test_typed_list_iterator_shared_between_threads_yields_each_item_once():
    tl = TypedList(int, range(20000))
    it = iter(tl)
    seen: list[list[int]] = [[] for _ in range(THREADS)]

    def consume(i):
        for v in it:
            seen[i].append(v)

    run_threads(*[consume] * THREADS, args=list(range(THREADS)))
    assert sorted(v for s in seen for v in s) == list(range(20000))
    assert list(it) == []


# ---- nexus kernels -----------------------------------------------------------

D = ctypes.c_double
TAGS = [ABIContract(f"nexus_tag_{i}", [ctypes.c_long], ctypes.c_long) for i in (1, 2, 3)]
TAGS_ATTACHED = [ABIContract(f"nexus_tag_{i}", [ctypes.c_long], ctypes.c_long, release_gil=False)
                 for i in (1, 2, 3)]


@pytest.fixture(scope="module")
def tags():
    released, attached = ModuleLoader(), ModuleLoader()
    released.load(fx("nexus_kernels"), TAGS)
    attached.load(fx("nexus_kernels"), TAGS_ATTACHED)
    return ([released.function(f"nexus_tag_{i}") for i in (1, 2, 3)]
            + [attached.function(f"nexus_tag_{i}") for i in (1, 2, 3)])


def test_kernel_calls_swaps_and_rollbacks_from_threads_count_every_call(tags):
    python_side = lambda us: 4  # noqa: E731 - a compiled side without a contract
    sides = tags + [python_side]
    k = Nexus().register("tag", tags[0], lambda us: 0, history=5)
    per_thread = 3000
    callers = THREADS - 1
    stop = threading.Event()

    def caller(_):
        got = set()
        for _ in range(per_thread):
            got.add(k(0))
        assert got <= {1, 2, 3, 4}, got

    def swapper(_):
        n = 0
        while not stop.is_set() or n < 50:
            k.swap(sides[n % len(sides)])
            if n % 5 == 4:
                k.rollback(2)
            if n % 7 == 0:
                k.reset()
            s = k.stats()
            assert s["version"] >= 1 and 1 <= s["versions"] <= 5
            assert len(k.history) >= 1 and repr(k)
            n += 1

    def callers_then_stop(i):
        try:
            caller(i)
        finally:
            if i == callers - 1:
                stop.set()

    run_threads(*[callers_then_stop] * callers, swapper, args=list(range(callers + 1)))
    s = k.stats()
    assert s["calls"] == s["compiled"] == callers * per_thread
    assert s["guard_misses"] == s["fallbacks"] == s["failures"] == 0


def test_kernel_failures_quarantine_and_validation_from_threads():
    ld = ModuleLoader().load(fx("nexus_kernels"), [ABIContract("nexus_affine", [D], D)])
    good = ld.function("nexus_affine")
    lock = threading.Lock()
    seen = {"n": 0}

    def flaky(x):  # fails on every third call of its own
        with lock:
            seen["n"] += 1
            n = seen["n"]
        if n % 3 == 0:
            raise ValueError("flaky")
        return 2.0 * x + 1.0

    def affine(x):
        return 2.0 * x + 1.0

    k = Nexus().register("affine", good, affine, validate_every=3, max_failures=2)
    per_thread = 2000

    def caller(i):
        for r in range(per_thread):
            x = float(r % 50)
            assert k(x) == 2.0 * x + 1.0
            if i == 0 and r % 100 == 0:
                k.swap(flaky if (r // 100) % 2 else good)
            if i == 1 and r % 150 == 0:
                k.reset()
            if i == 2 and r % 70 == 0:
                assert k(x=x) == 2.0 * x + 1.0  # keywords: the reference serves

    run_threads(*[caller] * THREADS, args=list(range(THREADS)))
    s = k.stats()
    # every call was served by exactly one side, none lost
    assert s["calls"] == s["compiled"] + s["fallbacks"] + s["guard_misses"]
    assert s["calls"] >= THREADS * per_thread
    assert s["mismatches"] == 0 and s["validations"] > 0


# ---- loader ------------------------------------------------------------------

ADD_ATTACHED = ABIContract("add", [D, D], D, release_gil=False)
SUM = ABIContract("sum_f64", [ctypes.POINTER(D), ctypes.c_size_t], D)


def test_loader_calls_while_another_thread_reloads_and_unloads():
    path = fx("loader_kernels")
    ld = ModuleLoader().load(path, [ADD_ATTACHED, SUM])
    rounds = 3000
    buf = TypedList(float, [1.0] * 64)
    done = threading.Event()

    def caller(i):
        # With a GIL a caller may run all its rounds in one switch interval
        # while the module is unloaded: no count of successes is asserted.
        for r in range(rounds):
            try:
                if r % 3 == 0:
                    assert ld.call("add", 1.0, float(i)) == 1.0 + i
                elif r % 3 == 1:
                    assert ld.function("add")(2.0, 3.0) == 5.0
                else:
                    assert ld.call("sum_f64", buf, 64) == 64.0
            except ModuleUnloadedError:
                pass  # the other thread unloaded it just now

    def reloader(_):
        n = 0
        while not done.is_set() or n < 20:
            if n % 3 == 2:
                ld.unload()
            else:
                ld.load(path, [ADD_ATTACHED, SUM])
            assert isinstance(ld.loaded, bool) and repr(ld)
            ld.functions
            n += 1
        ld.load(path, [ADD_ATTACHED, SUM])

    def callers_then_done(i):
        try:
            caller(i)
        finally:
            if i == 0:
                done.set()

    run_threads(*[callers_then_done] * (THREADS - 1), reloader, args=list(range(THREADS)))
    assert ld.call("add", 1.0, 2.0) == 3.0


# ---- callbacks (#13): keep handles and CallbackPointer arguments ---------------

INT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)
CMP = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))


def test_keep_handles_released_while_other_threads_read_and_pass_them():
    # Two threads release every handle while two others read them (callable,
    # repr, address) and pass them to C as a function pointer (take_ptr
    # returns it; calling it while another thread releases the handle would
    # be the caller's bug, GIL or not, so nothing here calls it).
    # Free-threaded, the handle's context was checked and then read again
    # without a lock, so a release landing in between had a reader follow a
    # NULL or freed context, and two releases at once could free the closure
    # twice. A released handle is a ValueError or None; a wrong address or a
    # crash fails. (The window is a few instructions: this run did not hit
    # it on the old code; the fix is the critical section, see callback.c.)
    ld = ModuleLoader().load(fx("callback_kernels"), [
        ABIContract("take_ptr", [INT_FN], ctypes.c_void_p)])
    take = ld.function("take_ptr")
    for _ in range(20):
        handles = [edgert.callback(INT_FN, lambda x: x + 1) for _ in range(50)]
        addresses = [h.address for h in handles]

        def reader(_):
            for k, h in enumerate(handles):
                for _ in range(3):
                    c = h.callable
                    r = repr(h)
                    assert c is None or (c(1) == 2 and "edgert.callback" in r)
                    try:
                        assert take(h) == addresses[k]
                        assert h.address == addresses[k]
                    except ValueError as e:
                        assert "released" in str(e), e

        def releaser(_):
            for h in handles:
                h.release()
                assert h.released

        run_threads(reader, releaser, reader, releaser, args=list(range(4)))
        assert all(h.released and h.callable is None for h in handles)


def test_callback_pointers_kept_by_another_thread_are_used_only_while_valid():
    # A comparator hands its CallbackPointer arguments to other threads,
    # which read and write through the newest one while qsort runs.
    # Free-threaded, the address was checked and then read again without a
    # lock, so an invalidation landing in between had a thread read or write
    # through NULL (a crash) or after the callback returned. A pointer that
    # is no longer valid is a ValueError; every value read is one of the
    # ints being sorted; the sort is right (writers write what they read).
    # (As above, this run did not hit the window on the old code.)
    ld = ModuleLoader().load(fx("callback_kernels"), [
        ABIContract("my_qsort", [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, CMP], None)])
    qsort = ld.function("my_qsort")
    import array
    n = 200
    data = array.array("i", [(i * 7919) % 1000 for i in range(n)])
    values = set(data)
    newest: list = [None]
    done = threading.Event()

    def cmp(x, y):
        newest[0] = x
        return x[0] - y[0]

    def sorter(_):
        try:
            for _ in range(3):
                a = array.array("i", data)
                qsort(a, n, 4, cmp)
                assert list(a) == sorted(data)
        finally:
            done.set()

    def through_newest(use):
        """A thread that applies `use` to the newest pointer until the sort ends."""
        def loop(_):
            while not done.is_set():
                p = newest[0]
                if p is None:
                    continue
                try:
                    use(p)
                except ValueError as e:
                    assert "no longer valid" in str(e), e
                assert "CallbackPointer" in repr(p)
        return loop

    def read(p):
        assert p[0] in values

    def write(p):
        p[0] = p[0]
        assert p.address

    run_threads(sorter, through_newest(read), through_newest(write), args=list(range(3)))
    with pytest.raises(ValueError, match="no longer valid"):
        newest[0][0]


# ---- ExplicitFallback's counters -------------------------------------------------

def test_fallback_counters_count_every_call_from_threads():
    before = ExplicitFallback.stats()
    per_thread = 20000

    def compiled(x):
        return x + 1

    def caller(_):
        for r in range(per_thread):
            assert ExplicitFallback.run_with_guard(compiled, compiled, r) == r + 1

    run_threads(*[caller] * THREADS, args=list(range(THREADS)))
    after = ExplicitFallback.stats()
    assert after["calls"] - before["calls"] == THREADS * per_thread
    assert after["compiled"] - before["compiled"] == THREADS * per_thread


def test_edgert_is_importable_from_threads_at_once():
    code = ("import threading\n"
            "def imp():\n"
            "    import edgert, edgert.containers\n"
            "    edgert.TypedDict(int, object)[1] = 'x'\n"
            "ts = [threading.Thread(target=imp) for _ in range(4)]\n"
            "[t.start() for t in ts]; [t.join() for t in ts]\n"
            "print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
    assert edgert.TypedDict is TypedDict
