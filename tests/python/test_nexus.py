"""edgert.Nexus: routing on every guard-miss kind, failure policy and
quarantine, hot swap and rollback (also under threads), shadow validation,
the decorator form, logging and the report."""
from __future__ import annotations

import array
import ctypes
import json
import logging
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from hypothesis import given, settings, strategies as st

import edgert
from edgert import (ABIContract, CompiledModeFailure, FallbackMismatchError, Kernel, ModuleLoader,
                    Nexus)
from conftest import fixture_path, rss_kib

D = ctypes.c_double
CONTRACTS = [
    ABIContract("nexus_affine", [D], D),
    ABIContract("nexus_affine_divergent", [D], D),
    ABIContract("nexus_add_i32", [ctypes.c_int32, ctypes.c_int32], ctypes.c_int32),
    ABIContract("nexus_sum_f64", [edgert.const(ctypes.POINTER(D)), ctypes.c_size_t], D),
    ABIContract("nexus_fill_f64", [ctypes.POINTER(D), ctypes.c_size_t, D], None),
    ABIContract("nexus_tag_1", [ctypes.c_long], ctypes.c_long),
    ABIContract("nexus_tag_2", [ctypes.c_long], ctypes.c_long),
    ABIContract("nexus_tag_3", [ctypes.c_long], ctypes.c_long),
    ABIContract("nexus_scale_f64", [ctypes.POINTER(D), ctypes.c_size_t, D], None),
    ABIContract("nexus_scale_f64_divergent", [ctypes.POINTER(D), ctypes.c_size_t, D], None),
    ABIContract("nexus_scale_then_crash", [ctypes.POINTER(D), ctypes.c_size_t, D,
                                           ctypes.c_size_t], None),
]


def kernels_path() -> str:
    """tests/fixtures/nexus_kernels.c as built: nexus_kernels.so, or with the
    lib prefix some build trees give it."""
    try:
        return fixture_path("nexus_kernels")
    except FileNotFoundError:
        return fixture_path("libnexus_kernels")


@pytest.fixture(scope="module")
def loader():
    ld = ModuleLoader()
    ld.load(kernels_path(), CONTRACTS[0])
    for abi in CONTRACTS[1:]:
        ld.bind(abi)
    return ld


def affine(x):
    return 2.0 * x + 1.0


class Recorder:
    """A reference that counts its calls."""

    def __init__(self, fn):
        self.fn = fn
        self.calls = []

    def __call__(self, *args, **kwargs):
        self.calls.append(args + ((kwargs,) if kwargs else ()))
        return self.fn(*args, **kwargs)


def counters(k):
    s = k.stats()
    return {key: s[key] for key in ("calls", "compiled", "guard_misses", "fallbacks", "failures",
                                    "mismatches")}


# ---- routing -------------------------------------------------------------

def test_compiled_side_serves_calls_its_contract_accepts(loader):
    nx = Nexus()
    ref = Recorder(affine)
    k = nx.register("affine", loader.function("nexus_affine"), ref)
    assert isinstance(k, Kernel) and k.guarded
    assert k(3.0) == 7.0
    assert nx.call("affine", 4.0) == 9.0
    assert ref.calls == []
    assert counters(k) == dict(calls=2, compiled=2, guard_misses=0, fallbacks=0, failures=0,
                               mismatches=0)
    s = k.stats()
    assert s["version"] == 1 and s["state"] == "active"


@pytest.mark.parametrize("args, why", [
    ((1,), "count: too few"),
    ((1, 2, 3), "count: too many"),
    ((1.5, 2), "type: float for c_int32"),
    (("1", 2), "type: str for c_int32"),
    ((2**31, 1), "overflow: above c_int32"),
    ((-2**31 - 1, 0), "overflow: below c_int32"),
])
def test_every_guard_miss_goes_to_the_reference_without_an_exception(loader, args, why):
    nx = Nexus()
    ref = Recorder(lambda *a: ("reference", a))
    k = nx.register("add", loader.function("nexus_add_i32"), ref)
    assert k(*args) == ("reference", args), why
    assert ref.calls == [args]
    assert counters(k) == dict(calls=1, compiled=0, guard_misses=1, fallbacks=0, failures=0,
                               mismatches=0)
    assert k(2, 3) == 5  # and the compiled side still serves what fits
    assert k.stats()["compiled"] == 1


def test_a_buffer_of_the_wrong_format_is_a_guard_miss(loader):
    nx = Nexus()
    ref = Recorder(lambda xs, n: float(sum(xs[:n])))
    k = nx.register("sum", loader.function("nexus_sum_f64"), ref)
    assert k(array.array("d", [1.0, 2.0, 3.5]), 3) == 6.5
    assert ref.calls == []
    floats = array.array("f", [1.0, 2.0, 3.5])
    assert k(floats, 3) == 6.5  # "f" is not "d": the reference serves it
    assert len(ref.calls) == 1
    assert k([1.0, 2.0], 2) == 3.0  # a list is no buffer at all
    assert k.stats()["guard_misses"] == 2


def test_numpy_arrays_route_by_dtype_and_contiguity(loader):
    np = pytest.importorskip("numpy")
    ref = Recorder(lambda xs, n: float(np.sum(np.asarray(xs)[:n])))
    k = Nexus().register("sum", loader.function("nexus_sum_f64"), ref)
    assert k(np.arange(4, dtype=np.float64), 4) == 6.0
    assert ref.calls == []
    assert k(np.arange(4, dtype=np.float32), 4) == 6.0  # "f", not "d"
    assert k(np.arange(8, dtype=np.float64)[::2], 4) == 12.0  # not C-contiguous
    assert k(np.arange(4, dtype=np.int64), 4) == 6.0  # "q"/"l", not "d"
    assert len(ref.calls) == 3
    assert counters(k) == dict(calls=4, compiled=1, guard_misses=3, fallbacks=0, failures=0,
                               mismatches=0)


def test_a_guard_miss_has_no_partial_effect(loader):
    nx = Nexus()
    ref = Recorder(lambda out, n, v: None)  # a reference that writes nothing
    k = nx.register("fill", loader.function("nexus_fill_f64"), ref)
    wrong = array.array("f", [0.0, 0.0, 0.0])
    assert k(wrong, 3, 5.0) is None
    assert list(wrong) == [0.0, 0.0, 0.0] and len(ref.calls) == 1
    right = array.array("d", [0.0, 0.0, 0.0])
    assert k(right, 3, 5.0) is None
    assert list(right) == [5.0, 5.0, 5.0] and len(ref.calls) == 1


@settings(max_examples=200, deadline=None)
@given(st.integers(-2**40, 2**40), st.integers(-2**40, 2**40))
def test_add_routes_by_range_and_counts_every_call(loader, a, b):
    nx = Nexus()
    k = nx.register("add", loader.function("nexus_add_i32"), lambda x, y: x + y)
    fits = all(-2**31 <= v < 2**31 for v in (a, b))
    wrapped = (a + b + 2**31) % 2**32 - 2**31
    assert k(a, b) == (wrapped if fits else a + b)
    s = k.stats()
    assert s["calls"] == s["compiled"] + s["guard_misses"] == 1
    assert s["guard_misses"] == (0 if fits else 1)


def test_keyword_arguments_go_to_the_reference_as_a_guard_miss(loader, caplog):
    # A contract has no argument names: a keyword call is one it refuses.
    ref = Recorder(lambda xs, n=None, scale=1.0: scale * float(sum(xs[:n])))
    nx = Nexus()
    k = nx.register("sum", loader.function("nexus_sum_f64"), ref)
    xs = array.array("d", [1.0, 2.0, 4.0])
    assert k(xs, 3) == 7.0 and ref.calls == []
    with caplog.at_level(logging.DEBUG, logger="edgert.nexus"):
        assert k(xs, n=2) == 3.0
    assert ref.calls == [(xs, {"n": 2})]
    assert nx.call("sum", xs, 3, scale=2.0) == 14.0
    assert counters(k) == dict(calls=3, compiled=1, guard_misses=2, fallbacks=0, failures=0,
                               mismatches=0)
    assert any("guard miss: keyword arguments ('n',)" in r.getMessage() for r in caplog.records)
    # the same for a compiled side without a contract, and when quarantined
    plain = Kernel("f", lambda x: "compiled", lambda x: "reference")
    assert plain(1.0) == "compiled" and plain(x=1.0) == "reference"
    assert plain.stats()["guard_misses"] == 1
    q = Kernel("q", Flaky(), lambda x: ("reference", x), max_failures=1)
    q(1.0)
    assert q.state == "quarantined"
    assert q(x=2.0) == ("reference", 2.0)
    assert q.stats()["fallbacks"] == 2 and q.stats()["guard_misses"] == 0
    # a keyword the reference does not take is the reference's own error
    with pytest.raises(TypeError, match="unexpected keyword argument 'y'"):
        plain(y=1.0)


# ---- failure policy and quarantine --------------------------------------

class Flaky:
    """A compiled side (plain callable) that fails while `broken`."""

    def __init__(self):
        self.broken = True
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        if self.broken:
            raise ValueError(f"flaky kernel refused {x!r}")
        return 2.0 * x + 1.0


def test_a_failing_compiled_call_falls_back_by_default():
    flaky, ref = Flaky(), Recorder(affine)
    k = Nexus().register("flaky", flaky, ref)
    assert not k.guarded
    assert k(1.0) == 3.0
    assert len(ref.calls) == 1
    assert counters(k) == dict(calls=1, compiled=0, guard_misses=0, fallbacks=1, failures=1,
                               mismatches=0)
    assert k.state == "active" and k.stats()["consecutive_failures"] == 1


def test_without_fallback_a_failure_raises_compiled_mode_failure_from_the_cause():
    flaky, ref = Flaky(), Recorder(affine)
    k = Nexus().register("flaky", flaky, ref, fallback_enabled=False)
    with pytest.raises(CompiledModeFailure) as ei:
        k(1.0)
    e = ei.value
    assert str(e) == "kernel 'flaky' version 1 failed: ValueError: flaky kernel refused 1.0"
    assert isinstance(e.__cause__, ValueError)
    assert e.kernel == "flaky" and e.version == 1
    assert isinstance(e, RuntimeError)  # CompiledModeFailure is also a RuntimeError
    assert ref.calls == []
    assert counters(k) == dict(calls=1, compiled=0, guard_misses=0, fallbacks=0, failures=1,
                               mismatches=0)


def test_keyboard_interrupt_is_not_a_kernel_failure():
    def interrupted(x):
        raise KeyboardInterrupt
    k = Nexus().register("k", interrupted, affine)
    with pytest.raises(KeyboardInterrupt):
        k(1.0)
    assert k.stats()["failures"] == 0


def test_consecutive_failures_quarantine_until_reset():
    flaky, ref = Flaky(), Recorder(affine)
    k = Nexus().register("flaky", flaky, ref, max_failures=2)
    k(1.0)
    k(1.0)
    assert k.state == "quarantined" and flaky.calls == 2
    for x in range(5):
        assert k(float(x)) == affine(x)
    assert flaky.calls == 2  # the compiled side is not even tried
    assert counters(k) == dict(calls=7, compiled=0, guard_misses=0, fallbacks=7, failures=2,
                               mismatches=0)
    flaky.broken = False
    k.reset()
    assert k.state == "active" and k.stats()["consecutive_failures"] == 0
    assert k(2.0) == 5.0 and flaky.calls == 3
    assert k.stats()["compiled"] == 1


def test_a_success_breaks_a_run_of_failures():
    flaky = Flaky()
    k = Nexus().register("flaky", flaky, affine, max_failures=2)
    for _ in range(4):
        flaky.broken = True
        k(1.0)
        flaky.broken = False
        k(1.0)
    assert k.state == "active"
    assert k.stats()["failures"] == 4 and k.stats()["compiled"] == 4


def test_max_failures_zero_never_quarantines():
    k = Nexus().register("flaky", Flaky(), affine, max_failures=0)
    for _ in range(20):
        k(1.0)
    assert k.state == "active" and k.stats()["failures"] == 20


CRASH_SCRIPT = textwrap.dedent("""
    import ctypes, json, sys
    import edgert
    ld = edgert.ModuleLoader()
    ld.load(sys.argv[1], edgert.ABIContract("nexus_crash_if_negative", [ctypes.c_int], ctypes.c_int))
    nx = edgert.Nexus()
    k = nx.register("crashy", ld.function("nexus_crash_if_negative"), lambda x: 2 * x + 1,
                    max_failures=2)
    out = [k(3), k(-1), k(-2), k(-3), k(4)]
    strict = nx.register("strict", ld.function("nexus_crash_if_negative"), lambda x: 0,
                         fallback_enabled=False)
    try:
        strict(-1)
        cause = None
    except edgert.CompiledModeFailure as e:
        cause = type(e.__cause__).__name__
    print(json.dumps({"out": out, "stats": {key: v for key, v in k.stats().items()
                                             if not key.endswith("latency")},
                      "cause": cause}))
""")


def test_a_crashing_kernel_under_the_nexus_falls_back_then_quarantines(tmp_path):
    # In a subprocess: if containment failed, the crash would take the runner down.
    r = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, kernels_path()],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    # 3 compiled; -1 crashes (fallback); -2 fails again (the module is now
    # quarantined by the guard), which quarantines the kernel; -3 and 4 go
    # straight to the reference.
    assert got["out"] == [7, -1, -3, -5, 9]
    s = got["stats"]
    assert s["compiled"] == 1 and s["failures"] == 2 and s["fallbacks"] == 4
    assert s["state"] == "quarantined"
    assert got["cause"] in ("KernelCrash", "QuarantinedError")


# ---- hot swap and rollback -----------------------------------------------

def test_swap_and_rollback_move_between_versions(loader):
    nx = Nexus()
    k = nx.register("tag", loader.function("nexus_tag_1"), lambda us: 0, history=3)
    assert k(0) == 1 and k.version == 1
    assert k.swap(loader.function("nexus_tag_2")) == 2
    assert k(0) == 2
    assert k.swap(loader.function("nexus_tag_3")) == 3
    assert k(0) == 3
    assert k.rollback() == 2 and k(0) == 2
    assert k.swap(loader.function("nexus_tag_3")) == 4  # numbers are never reused
    assert k.swap(lambda us: 42) == 5
    assert k(0) == 42 and not k.guarded
    # history=3: versions 2, 4, 5 are kept
    assert [h["version"] for h in k.history] == [2, 4, 5]
    assert [h["current"] for h in k.history] == [False, False, True]
    assert all(isinstance(h["installed"], float) for h in k.history)
    with pytest.raises(ValueError, match=r"kernel 'tag': cannot roll back 3 step\(s\): the "
                                         r"history holds 3 version\(s\) \(history=3\)"):
        k.rollback(3)
    with pytest.raises(ValueError, match=r"cannot roll back 0 step\(s\)"):
        k.rollback(0)
    with pytest.raises(TypeError, match="steps must be an int, not float"):
        k.rollback(1.0)
    assert k.rollback(steps=2) == 2 and k(0) == 2
    assert k.stats()["versions"] == 1
    with pytest.raises(TypeError, match="the compiled side of kernel 'tag' must be callable, not int"):
        k.swap(3)
    assert k.version == 2


def test_swap_and_rollback_lift_a_quarantine():
    flaky = Flaky()
    k = Nexus().register("flaky", flaky, affine, max_failures=1)
    k(1.0)
    assert k.state == "quarantined"
    k.swap(affine)
    assert k.state == "active" and k(1.0) == 3.0 and k.stats()["compiled"] == 1
    k.swap(flaky)
    k(1.0)
    assert k.state == "quarantined"
    assert k.rollback() == 2 and k.state == "active"


def test_a_call_in_flight_finishes_on_the_version_it_started_with(loader):
    k = Nexus().register("tag", loader.function("nexus_tag_1"), lambda us: 0, history=1)
    out = []
    t = threading.Thread(target=lambda: out.append(k(300_000)))  # 0.3 s in C, GIL released
    t.start()
    time.sleep(0.1)
    assert k.swap(loader.function("nexus_tag_2")) == 2  # version 1 leaves the history
    assert k(0) == 2
    t.join()
    assert out == [1]
    assert k.stats()["compiled"] == 2 and k.stats()["calls"] == 2


def test_threads_calling_while_another_swaps_lose_no_call(loader):
    fns = [loader.function(f"nexus_tag_{i}") for i in (1, 2, 3)]
    k = Nexus().register("tag", fns[0], lambda us: 0, history=4)
    per_thread, threads = 300, 4
    results: list[list[int]] = [[] for _ in range(threads)]
    stop = threading.Event()

    def caller(i):
        for _ in range(per_thread):
            results[i].append(k(50))  # 50 us inside the kernel, GIL released

    def swapper():
        n = 0
        while not stop.is_set():
            k.swap(fns[n % 3])
            if n % 4 == 3:
                k.rollback()
            n += 1
            time.sleep(0.0005)

    sw = threading.Thread(target=swapper)
    ts = [threading.Thread(target=caller, args=(i,)) for i in range(threads)]
    sw.start()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    stop.set()
    sw.join()
    flat = [r for rs in results for r in rs]
    assert len(flat) == per_thread * threads
    assert set(flat) <= {1, 2, 3}
    s = k.stats()
    assert s["calls"] == s["compiled"] == per_thread * threads
    assert s["failures"] == s["guard_misses"] == s["fallbacks"] == 0
    assert s["version"] > 10  # the swapper really ran meanwhile


# ---- shadow validation ---------------------------------------------------

def test_shadow_validation_finds_a_divergent_kernel(loader, caplog):
    ref = Recorder(affine)
    k = Nexus().register("affine", loader.function("nexus_affine_divergent"), ref,
                         validate_every=1)
    with caplog.at_level(logging.WARNING, logger="edgert.nexus"):
        assert k(1.0) == 3.0  # agrees here
        assert k(20.0) == 41.5  # the compiled result is returned
    assert len(ref.calls) == 2
    s = k.stats()
    assert s["mismatches"] == 1 and s["validations"] == 2 and s["compiled"] == 2
    (rec,) = [r for r in caplog.records if "mismatch" in r.getMessage()]
    assert rec.levelno == logging.WARNING and rec.name == "edgert.nexus"
    msg = rec.getMessage()
    assert "kernel 'affine' version 1" in msg and "(float)" in msg
    assert "returning the compiled result" in msg


def test_the_good_kernel_passes_shadow_validation(loader):
    k = Nexus().register("affine", loader.function("nexus_affine"), affine, validate_every=1)
    for x in (-50.0, 0.0, 3.25, 1e6):
        k(x)
    assert k.stats()["mismatches"] == 0 and k.stats()["validations"] == 4


def test_validate_every_n_runs_the_reference_on_every_nth_compiled_call(loader):
    ref = Recorder(affine)
    k = Nexus().register("affine", loader.function("nexus_affine_divergent"), ref,
                         validate_every=3)
    for _ in range(7):
        k(20.0)
    assert len(ref.calls) == 2  # calls 3 and 6
    assert k.stats()["mismatches"] == 2


def test_tolerance_decides_what_differs(loader):
    k = Nexus().register("affine", loader.function("nexus_affine_divergent"), affine,
                         validate_every=1, tolerance=1.0)
    k(20.0)  # 41.5 vs 41.0: within 1.0
    assert k.stats()["mismatches"] == 0


def test_strict_validation_raises_fallback_mismatch_error(loader):
    k = Nexus().register("affine", loader.function("nexus_affine_divergent"), affine,
                         validate_every=1, strict=True)
    assert k(2.0) == 5.0
    with pytest.raises(FallbackMismatchError,
                       match=r"kernel 'affine' version 1: compiled and reference results "
                             r"differ on \(float\): "):
        k(20.0)
    assert k.stats()["mismatches"] == 1


def test_a_reference_that_raises_during_validation_is_a_mismatch():
    def bad_ref(x):
        raise ZeroDivisionError("reference broke")
    k = Nexus().register("k", affine, bad_ref, validate_every=1)
    assert k(1.0) == 3.0
    assert k.stats()["mismatches"] == 1
    ks = Nexus().register("k", affine, bad_ref, validate_every=1, strict=True)
    with pytest.raises(FallbackMismatchError, match="the reference raised ZeroDivisionError") as ei:
        ks(1.0)
    assert isinstance(ei.value.__cause__, ZeroDivisionError)


# ---- shadow validation of kernels that write through their arguments ----

def scale_ref(seen):
    """The reference of nexus_scale_f64 (x[i] *= by, in place); records the
    contents it was handed in `seen`."""
    def ref(x, n, by, *rest):
        flat = memoryview(x).cast("B").cast("d")  # any C-contiguous float64 buffer
        seen.append(flat[:n].tolist())
        for i in range(n):
            flat[i] *= by
    return ref


def test_validation_hands_the_reference_the_inputs_the_kernel_saw(loader):
    seen = []
    k = Nexus().register("scale", loader.function("nexus_scale_f64"), scale_ref(seen),
                         validate_every=1)
    x = array.array("d", [1.0, 2.0, 3.0, 4.0, 5.0])
    assert k(x, 5, 2.0) is None
    # scaled once, not twice: the reference ran on the original contents
    assert seen == [[1.0, 2.0, 3.0, 4.0, 5.0]]
    assert list(x) == [2.0, 4.0, 6.0, 8.0, 10.0]
    s = k.stats()
    assert s["validations"] == 1 and s["mismatches"] == 0 and s["compiled"] == 1


def test_validation_compares_what_the_sides_write_not_only_what_they_return(loader, caplog):
    seen = []
    k = Nexus().register("scale", loader.function("nexus_scale_f64_divergent"),
                         scale_ref(seen), validate_every=1)
    x = array.array("d", [1.0, 2.0, 3.0, 4.0, 5.0])
    with caplog.at_level(logging.WARNING, logger="edgert.nexus"):
        assert k(x, 5, 2.0) is None  # both return None: only the writes differ
    assert k.stats()["mismatches"] == 1
    assert seen == [[1.0, 2.0, 3.0, 4.0, 5.0]]
    # not strict: the compiled side's writes are what the caller gets
    assert list(x) == [2.0, 4.0, 6.0, 12.0, 10.0]
    (rec,) = [r for r in caplog.records if "mismatch" in r.getMessage()]
    assert "argument 1 at [3]: 12.0 != 8.0" in rec.getMessage()


def test_strict_validation_of_writes_raises_and_leaves_the_arguments_as_they_were(loader):
    k = Nexus().register("scale", loader.function("nexus_scale_f64_divergent"),
                         scale_ref([]), validate_every=1, strict=True)
    x = array.array("d", [1.0, 2.0, 3.0, 4.0, 5.0])
    with pytest.raises(FallbackMismatchError, match=r"argument 1 at \[3\]: 12\.0 != 8\.0"):
        k(x, 5, 2.0)
    assert list(x) == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_validated_writes_through_typedlists_and_numpy_arrays(loader):
    np = pytest.importorskip("numpy")
    good = Nexus().register("scale", loader.function("nexus_scale_f64"), scale_ref([]),
                            validate_every=1)
    bad = Nexus().register("scale", loader.function("nexus_scale_f64_divergent"),
                           scale_ref([]), validate_every=1, strict=True)
    tl = edgert.TypedList(float, [1.0, 2.0, 3.0, 4.0])
    good(tl, 4, 3.0)
    assert list(tl) == [3.0, 6.0, 9.0, 12.0] and good.stats()["mismatches"] == 0
    with pytest.raises(FallbackMismatchError, match=r"argument 1 at \[3\]: 48\.0 != 36\.0"):
        bad(tl, 4, 3.0)
    assert list(tl) == [3.0, 6.0, 9.0, 12.0]
    tl.append(13.0)  # no buffer was left exported: the list can still grow
    arr = np.arange(8.0).reshape(2, 4)
    with pytest.raises(FallbackMismatchError, match=r"argument 1 at \[0, 3\]: 12\.0 != 9\.0"):
        bad(arr, 8, 3.0)
    assert arr.tolist() == [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]
    good(arr, 8, 0.5)
    assert arr.tolist() == [[0.0, 0.5, 1.0, 1.5], [2.0, 2.5, 3.0, 3.5]]


PARTIAL_CRASH_SCRIPT = textwrap.dedent("""
    import array, ctypes, json, sys
    import edgert
    D = ctypes.c_double
    ld = edgert.ModuleLoader()
    ld.load(sys.argv[1], edgert.ABIContract("nexus_scale_then_crash",
                                            [ctypes.POINTER(D), ctypes.c_size_t, D,
                                             ctypes.c_size_t], None))
    seen = []
    def ref(x, n, by, at):
        seen.append(list(x[:n]))
        for i in range(n):
            x[i] *= by
    k = edgert.Nexus().register("scale", ld.function("nexus_scale_then_crash"), ref,
                                validate_every=1)
    x = array.array("d", [1.0, 2.0, 3.0, 4.0])
    k(x, 4, 2.0, 2)  # scales x[0:2], then crashes
    print(json.dumps({"seen": seen, "x": list(x), "stats": {
        key: v for key, v in k.stats().items() if not key.endswith("latency")}}))
""")


def test_a_validated_call_that_crashes_midway_falls_back_from_the_original_inputs():
    # In a subprocess: the crash quarantines the module for the rest of the run.
    r = subprocess.run([sys.executable, "-c", PARTIAL_CRASH_SCRIPT, kernels_path()],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["seen"] == [[1.0, 2.0, 3.0, 4.0]]
    assert got["x"] == [2.0, 4.0, 6.0, 8.0]  # not [4.0, 8.0, 6.0, 8.0]
    s = got["stats"]
    assert s["failures"] == 1 and s["fallbacks"] == 1 and s["validations"] == 0


def test_validation_with_read_only_and_non_buffer_arguments_copies_nothing(loader):
    k = Nexus().register("sum", loader.function("nexus_sum_f64"),
                         lambda xs, n: float(sum(xs[:n])), validate_every=1)
    ro = memoryview(array.array("d", [1.0, 2.5])).toreadonly()
    assert k(ro, 2) == 3.5
    np = pytest.importorskip("numpy")
    frozen = np.array([1.0, 2.5, 4.0])
    frozen.flags.writeable = False  # numpy refuses a writable view with ValueError
    assert k(frozen, 3) == 7.5
    assert k.stats()["mismatches"] == 0 and k.stats()["validations"] == 2


def test_validating_writes_does_not_leak(loader, caplog):
    # Each validated call copies its buffer arguments twice: 512 bytes of
    # floats here, so a leaked copy would show as tens of MiB. (The strict
    # mismatches are not logged: pytest keeps every record it captures.)
    caplog.set_level(logging.CRITICAL, logger="edgert.nexus")

    def ref(x, n, by):  # scale_ref without the record
        for i in range(n):
            x[i] *= by
    good = Nexus().register("g", loader.function("nexus_scale_f64"), ref, validate_every=1)
    bad = Nexus().register("b", loader.function("nexus_scale_f64_divergent"), ref,
                           validate_every=1, strict=True)
    x = array.array("d", [1.0] * 64)

    def cycle(n):
        for _ in range(n):
            good(x, 64, 1.0)
            try:
                bad(x, 64, 1.0)
            except FallbackMismatchError:
                pass
            edgert.ExplicitFallback.fallback_to_python(ref, ref, x, 64, 1.0)

    cycle(2000)  # warm up allocator pools
    before = rss_kib()
    cycle(20000)
    assert rss_kib() - before < 4096  # KiB
    assert list(x) == [1.0] * 64
    assert bad.stats()["mismatches"] == 22000


# ---- the decorator form --------------------------------------------------

def test_the_decorator_registers_the_loader_function_beside_the_reference(loader):
    nx = Nexus()

    @nx.kernel(loader)
    def nexus_affine(x):
        """2x + 1"""
        return 2.0 * x + 1.0

    assert isinstance(nexus_affine, Kernel)
    assert nx["nexus_affine"] is nexus_affine
    assert nexus_affine.__name__ == "nexus_affine"
    assert nexus_affine.__wrapped__.__doc__ == "2x + 1"
    assert nexus_affine(2.0) == 5.0 and nexus_affine.stats()["compiled"] == 1

    @nx.kernel(loader, name="nexus_add_i32", max_failures=5, validate_every=2)
    def add(a, b):
        return a + b

    assert nx["nexus_add_i32"] is add
    assert add.max_failures == 5 and add.validate_every == 2
    assert add(2**40, 1) == 2**40 + 1  # the reference, no data lost
    assert "nexus_add_i32" in nx and len(nx) == 2 and list(nx) == ["nexus_affine", "nexus_add_i32"]


# ---- registry and bad input ----------------------------------------------

def test_registry_errors_name_the_problem():
    nx = Nexus()
    nx.register("k", affine, affine)
    with pytest.raises(ValueError, match="kernel 'k' is already registered"):
        nx.register("k", affine, affine)
    with pytest.raises(KeyError, match="no kernel named 'nope' is registered"):
        nx.call("nope", 1.0)
    with pytest.raises(KeyError, match="no kernel named 'nope'"):
        nx["nope"]
    with pytest.raises(TypeError, match="the compiled side of kernel 'x' must be callable, not int"):
        nx.register("x", 1, affine)
    with pytest.raises(TypeError, match="the reference of kernel 'x' must be callable, not str"):
        nx.register("x", affine, "ref")
    with pytest.raises(ValueError, match="kernel 'x': max_failures must be >= 0"):
        nx.register("x", affine, affine, max_failures=-1)
    with pytest.raises(ValueError, match="kernel 'x': validate_every must be >= 0"):
        nx.register("x", affine, affine, validate_every=-2)
    with pytest.raises(ValueError, match="kernel 'x': tolerance must be a number >= 0, got nan"):
        nx.register("x", affine, affine, tolerance=float("nan"))
    with pytest.raises(ValueError, match="kernel 'x': history must be between 1 and 1024, not 0"):
        nx.register("x", affine, affine, history=0)
    with pytest.raises(ValueError, match="a kernel name must not be empty"):
        nx.register("", affine, affine)
    with pytest.raises(TypeError, match="a kernel name must be a str, not int"):
        nx.register(3, affine, affine)
    assert list(nx) == ["k"]  # nothing half-registered
    assert nx.unregister("k")(1.0) == 3.0
    assert "k" not in nx


def test_stats_have_the_documented_keys_and_latency_samples(loader):
    k = Nexus().register("affine", loader.function("nexus_affine"), affine)
    s = k.stats()
    assert s["compiled_latency"]["samples"] == 0 and s["compiled_latency"]["p50_ns"] is None
    k(1.0)
    k.swap(Flaky())
    k(1.0)
    s = k.stats()
    assert {"calls", "compiled", "guard_misses", "fallbacks", "failures", "mismatches", "version",
            "state", "compiled_latency", "reference_latency"} <= set(s)
    for side in ("compiled_latency", "reference_latency"):
        lat = s[side]
        assert lat["samples"] == 1
        assert 0 < lat["min_ns"] <= lat["p50_ns"] <= lat["p99_ns"] <= lat["max_ns"]
    assert repr(k) == "<edgert.Kernel 'affine' version 2 active>"


# ---- logging ---------------------------------------------------------------

def test_every_transition_is_logged(loader, caplog):
    flaky = Flaky()
    k = Nexus().register("flaky", flaky, affine, max_failures=2)
    add = Nexus().register("add", loader.function("nexus_add_i32"), lambda a, b: a + b)
    with caplog.at_level(logging.DEBUG, logger="edgert.nexus"):
        assert add("x", "y") == "xy"
        k(1.0)
        k(2.0)
        k.reset()
        k.swap(affine)
        k.rollback()
    got = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "edgert.nexus"]
    msgs = [m for _, m in got]
    levels = dict((m, lvl) for lvl, m in got)
    miss = next(m for m in msgs if "guard miss" in m)
    assert "kernel 'add' version 1" in miss and "(str[1], str[1])" in miss and levels[miss] == "DEBUG"
    fails = [m for m in msgs if "failed (ValueError: flaky kernel refused" in m]
    assert len(fails) == 2 and all("falling back to the reference" in m for m in fails)
    assert "on (float)" in fails[0] and levels[fails[0]] == "WARNING"
    quar = next(m for m in msgs if "quarantined" in m)
    assert quar == ("kernel 'flaky' version 1 quarantined after 2 consecutive failures; calls go "
                    "to the reference until reset()") and levels[quar] == "ERROR"
    assert "kernel 'flaky' reset: active again after 2 consecutive failures" in msgs
    assert "kernel 'flaky': swapped in version 2 (function)" in msgs
    assert "kernel 'flaky': rolled back 1 step(s) to version 1" in msgs


def test_nothing_is_logged_for_successful_calls_at_default_level(loader, caplog):
    k = Nexus().register("affine", loader.function("nexus_affine"), affine)
    with caplog.at_level(logging.DEBUG, logger="edgert.nexus"):
        k(1.0)
    assert [r for r in caplog.records if r.name == "edgert.nexus"] == []


# ---- the report ------------------------------------------------------------

def test_report_shows_every_kernel_at_a_glance(loader):
    nx = Nexus()
    assert nx.report() == "edgert nexus: no kernels registered"
    good = nx.register("affine", loader.function("nexus_affine"), affine)
    bad = nx.register("flaky", Flaky(), affine, max_failures=1)
    add = nx.register("add", loader.function("nexus_add_i32"), lambda a, b: a + b)
    for x in range(3):
        good(float(x))
    bad(1.0)
    bad(1.0)
    add(2**40, 0)
    lines = nx.report().splitlines()
    assert lines[0].split() == ["kernel", "version", "state", "calls", "compiled", "guard_misses",
                                "fallbacks", "failures", "mismatches", "compiled", "p50",
                                "reference", "p50"]
    assert set(lines[1]) == {"-", " "}
    rows = {line.split()[0]: line for line in lines[2:]}
    assert list(rows) == ["affine", "flaky", "add"]
    assert rows["affine"].split()[:9] == ["affine", "v1", "active", "3", "3", "0", "0", "0", "0"]
    assert rows["flaky"].split()[:10] == ["flaky", "v1", "quarantined", "!", "2", "0", "0", "2",
                                          "1", "0"]
    assert rows["add"].split()[:9] == ["add", "v1", "active", "1", "0", "1", "0", "0", "0"]
    assert " ns" in rows["affine"] or " us" in rows["affine"]
    # every column lines up under its header
    assert len({len(line.rstrip()) for line in lines[:2]}) == 1


def test_turning_debug_on_later_logs_the_next_guard_miss(loader, caplog):
    add = Nexus().register("add", loader.function("nexus_add_i32"), lambda a, b: a + b)
    with caplog.at_level(logging.WARNING, logger="edgert.nexus"):
        add(1.5, 2)  # debug is off: the answer is cached
    assert [r for r in caplog.records if r.name == "edgert.nexus"] == []
    with caplog.at_level(logging.DEBUG, logger="edgert.nexus"):
        add(2.5, 2)  # setLevel cleared the logger's cache: noticed at once
    (rec,) = [r for r in caplog.records if r.name == "edgert.nexus"]
    assert "guard miss" in rec.getMessage() and "(float, int)" in rec.getMessage()


def test_nexus_level_views():
    nx = Nexus()
    nx.register("flaky", Flaky(), affine, max_failures=1)
    assert nx.call("flaky", 1.0) == 3.0
    assert set(nx.stats()) == {"flaky"} and nx.stats()["flaky"]["fallbacks"] == 1
    assert repr(nx) == "<edgert.Nexus with 1 kernel(s): flaky>"


def test_a_handle_in_a_reference_cycle_is_collected():
    import gc
    import weakref

    def make():
        holder = {}

        def ref(x):  # the reference reaches its own handle: a cycle
            return holder["k"].name

        holder["k"] = Kernel("cyclic", Flaky(), ref, max_failures=1)
        assert holder["k"](1.0) == "cyclic"
        return weakref.ref(holder["k"])

    w = make()
    gc.collect()
    assert w() is None


# ---- the policy against a model --------------------------------------------

from hypothesis.stateful import RuleBasedStateMachine, invariant, rule  # noqa: E402


class Version:
    """A compiled side that returns its tag, or fails while `broken`."""

    def __init__(self, tag, broken):
        self.tag, self.broken = tag, broken

    def __call__(self, x):
        if self.broken:
            raise RuntimeError(f"version {self.tag} is broken")
        return ("compiled", self.tag, x)


class NexusPolicy(RuleBasedStateMachine):
    """Random calls, swaps, rollbacks and resets of one kernel, checked
    against a few lines of Python that state the policy."""

    HISTORY, MAX_FAILURES = 3, 2

    def __init__(self):
        super().__init__()
        self.k = Kernel("model", Version(1, False), lambda x: ("reference", x),
                        max_failures=self.MAX_FAILURES, history=self.HISTORY)
        self.versions = [(1, False)]
        self.last = 1
        self.state = "active"
        self.consecutive = 0
        self.n = dict(calls=0, compiled=0, fallbacks=0, failures=0)

    @rule(x=st.integers())
    def call(self, x):
        got = self.k(x)
        self.n["calls"] += 1
        number, broken = self.versions[-1]
        if self.state == "quarantined":
            self.n["fallbacks"] += 1
            assert got == ("reference", x)
        elif broken:
            self.n["failures"] += 1
            self.n["fallbacks"] += 1
            self.consecutive += 1
            if self.consecutive >= self.MAX_FAILURES:
                self.state = "quarantined"
            assert got == ("reference", x)
        else:
            self.n["compiled"] += 1
            self.consecutive = 0
            assert got == ("compiled", number, x)

    @rule(broken=st.booleans())
    def swap(self, broken):
        self.last += 1
        assert self.k.swap(Version(self.last, broken)) == self.last
        self.versions = (self.versions + [(self.last, broken)])[-self.HISTORY:]
        self.state, self.consecutive = "active", 0

    @rule(steps=st.integers(0, 4))
    def rollback(self, steps):
        if 1 <= steps < len(self.versions):
            self.versions = self.versions[:-steps]
            assert self.k.rollback(steps) == self.versions[-1][0]
            self.state, self.consecutive = "active", 0
        else:
            with pytest.raises(ValueError, match="cannot roll back"):
                self.k.rollback(steps)

    @rule()
    def reset(self):
        self.k.reset()
        self.state, self.consecutive = "active", 0

    @invariant()
    def stats_match_the_model(self):
        s = self.k.stats()
        assert {key: s[key] for key in self.n} == self.n
        assert s["state"] == self.state and s["consecutive_failures"] == self.consecutive
        assert s["version"] == self.versions[-1][0] == self.k.version
        assert [h["version"] for h in self.k.history] == [v for v, _ in self.versions]


NexusPolicy.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_the_policy_matches_its_model = NexusPolicy.TestCase


def test_latency_is_sampled_every_64th_call_with_nearest_rank_percentiles():
    slow = {"first": True}

    def compiled(x):
        if slow.pop("first", False):
            time.sleep(0.002)
        return x

    k = Kernel("lat", compiled, affine)
    for i in range(64):
        k(i)
    lat = k.stats()["compiled_latency"]
    assert lat["samples"] == 1 and lat["min_ns"] >= 2e6  # the first call
    k(64)  # the 65th call: the second sample, a fast one
    lat = k.stats()["compiled_latency"]
    assert lat["samples"] == 2
    assert lat["min_ns"] < 2e6 <= lat["max_ns"]
    assert lat["p50_ns"] == lat["min_ns"] and lat["p99_ns"] == lat["max_ns"]
    assert lat["mean_ns"] == pytest.approx((lat["min_ns"] + lat["max_ns"]) / 2)
    assert k.stats()["reference_latency"]["samples"] == 0


def test_latency_sampling_thins_to_every_1024th_call_once_the_ring_is_full():
    k = Kernel("lat", lambda x: x, affine)
    for i in range(1 + 127 * 64):  # the first call, then every 64th: 128 samples
        k(i)
    assert k.stats()["compiled_latency"]["samples"] == 128
    for i in range(1023):
        k(i)
    assert k.stats()["compiled_latency"]["samples"] == 128
    k(0)  # the 1024th call after the 128th sample
    assert k.stats()["compiled_latency"]["samples"] == 129
    for i in range(1024):
        k.call(i)  # the same countdown through k.call
    assert k.stats()["compiled_latency"]["samples"] == 130


def test_a_kernel_of_an_unloaded_module_falls_back():
    ld = ModuleLoader()
    ld.load(kernels_path(), CONTRACTS[0])
    k = Nexus().register("affine", ld.function("nexus_affine"), affine, max_failures=2)
    assert k(1.0) == 3.0 and k.stats()["compiled"] == 1
    ld.unload()
    assert k(2.0) == 5.0 and k(3.0) == 7.0  # the reference, after two failures
    assert k.state == "quarantined" and k.stats()["failures"] == 2
    k2 = Nexus().register("affine", k.compiled, affine, fallback_enabled=False)
    with pytest.raises(CompiledModeFailure) as ei:
        k2(1.0)
    assert isinstance(ei.value.__cause__, edgert.ModuleUnloadedError)


def test_a_single_failure_quarantine_reads_naturally(caplog):
    k = Nexus().register("once", Flaky(), affine, max_failures=1)
    with caplog.at_level(logging.INFO, logger="edgert.nexus"):
        k(1.0)
        k.reset()
    msgs = [r.getMessage() for r in caplog.records if r.name == "edgert.nexus"]
    assert ("kernel 'once' version 1 quarantined after 1 consecutive failure; calls go to the "
            "reference until reset()") in msgs
    assert "kernel 'once' reset: active again after 1 consecutive failure" in msgs


# ---- Kernel.call: the same call, as a builtin the interpreter specialises --


ENTRIES = {
    "k(...)": lambda k: k,
    "k.call(...)": lambda k: (lambda *a, **kw: k.call(*a, **kw)),
    "f = k.call": lambda k: k.call,  # what a hot loop takes once
}


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_call_routes_and_counts_as_calling_the_kernel(loader, entry):
    k = Nexus().register("add", loader.function("nexus_add_i32"), Recorder(lambda a, b: a + b))
    call = ENTRIES[entry](k)
    assert call(2, 3) == 5                  # compiled
    assert call(1.5, 2) == 3.5              # a float the contract refuses: a guard miss
    assert call(2 ** 40, 1) == 2 ** 40 + 1  # int32 overflow: a guard miss
    assert counters(k) == {"calls": 3, "compiled": 1, "guard_misses": 2, "fallbacks": 0,
                           "failures": 0, "mismatches": 0}
    assert k.reference.calls == [(1.5, 2), (2 ** 40, 1)]
    assert k.stats()["running"] == 0


def test_call_takes_positional_arguments_only_and_the_handle_takes_keywords(loader):
    """k.call is positional only, as the bound function it stands for (a
    compiled kernel has no parameter names): the interpreter then calls it as
    it calls the bound function. A keyword call is refused before the kernel
    sees it (nothing counted); k(...) sends it to the reference."""
    k = Nexus().register("add", loader.function("nexus_add_i32"), Recorder(lambda a, b: a + b))
    for call in (k.call, lambda *a, **kw: k.call(*a, **kw)):
        with pytest.raises(TypeError, match=r"call\(\) takes no keyword arguments"):
            call(1, b=2)
    assert counters(k)["calls"] == 0 and k.reference.calls == []
    assert k(1, b=2) == 3  # keyword arguments: a guard miss
    assert counters(k) == {"calls": 1, "compiled": 0, "guard_misses": 1, "fallbacks": 0,
                           "failures": 0, "mismatches": 0}
    assert k.reference.calls == [(1, {"b": 2})]
    with pytest.raises(TypeError, match="unexpected keyword argument 'c'"):
        k(1, c=2)  # the reference's own error


def test_call_fails_falls_back_and_quarantines_as_calling_the_kernel():
    def broken(x):
        raise ValueError("the compiled side fails")

    for fallback in (True, False):
        k = Kernel("k", broken, affine, max_failures=2, fallback_enabled=fallback)
        f = k.call
        for _ in range(2):
            if fallback:
                assert f(1.0) == 3.0
            else:
                with pytest.raises(CompiledModeFailure) as e:
                    k.call(1.0)
                assert (e.value.kernel, e.value.version) == ("k", 1)
                assert isinstance(e.value.__cause__, ValueError)
        assert k.state == "quarantined"
        assert f(2.0) == 5.0  # quarantined: the reference
        s = k.stats()
        assert (s["calls"], s["failures"], s["compiled"]) == (3, 2, 0)
        assert s["fallbacks"] == (3 if fallback else 1)


def test_call_taken_before_a_swap_runs_the_new_version(loader):
    k = Nexus().register("tag", loader.function("nexus_tag_1"), lambda x: -1)
    f = k.call
    assert f(10) == k(10)
    before = f(10)
    k.swap(loader.function("nexus_tag_2"))
    assert f(10) == k(10) != before  # f calls the kernel, not the version it was taken on
    k.rollback()
    assert f(10) == before
    assert k.stats()["compiled"] == 6


def test_call_is_a_builtin_function_bound_to_its_kernel():
    import types
    k = Kernel("k", affine, affine)
    f = k.call
    assert isinstance(f, types.BuiltinFunctionType)
    assert f.__self__ is k
    assert f.__name__ == "call"
    assert "same call as kernel(*args)" in Kernel.call.__doc__
    # the builtin keeps its kernel alive, and nothing keeps the builtin
    import gc
    import weakref
    w = weakref.ref(k)
    del k
    gc.collect()
    assert w() is not None and f(1.0) == 3.0
    del f
    assert w() is None  # freed by reference counting alone: no cycle


def test_call_pickles_as_its_kernels_call(loader):
    import pickle
    k = Nexus().register("affine", loader.function("nexus_affine"), affine)
    f = pickle.loads(pickle.dumps(k.call))
    assert f(2.0) == 5.0
    assert isinstance(f.__self__, Kernel) and f.__self__.name == "affine"
    assert f.__self__.stats()["compiled"] >= 1


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 does not specialise calls")
@pytest.mark.skipif(bool(__import__("sysconfig").get_config_var("Py_GIL_DISABLED")),
                    reason="a free-threaded build does not specialise calls")
def test_the_interpreter_specialises_call_and_not_the_handle():
    """What Kernel.call is for: CPython runs the C function of an exact builtin
    function (and of a C method) from a specialised instruction, and calls any
    other object through its generic path. A Kernel stays an object with
    methods (it is not made a class), so k.call is the specialised way in."""
    import dis
    k = Kernel("k", affine, affine)
    f = k.call

    def hot_builtin(n):
        for _ in range(n):
            f(1.0)

    def hot_method(n):
        for _ in range(n):
            k.call(1.0)

    def hot_handle(n):
        for _ in range(n):
            k(1.0)

    def opnames(fn):
        fn(2000)
        return {i.opname for i in dis.get_instructions(fn, adaptive=True)}

    # positional only (METH_FASTCALL): the no-keywords variants, the ones the
    # bare bound function gets (3.11 PRECALL_NO_KW_BUILTIN_FAST, 3.12
    # CALL_NO_KW_BUILTIN_FAST, 3.13 CALL_BUILTIN_FAST)
    assert any(op.endswith("BUILTIN_FAST") for op in opnames(hot_builtin))
    assert any(op.endswith("METHOD_DESCRIPTOR_FAST") for op in opnames(hot_method))
    handle_ops = opnames(hot_handle)
    assert not any("BUILTIN" in op or "METHOD_DESCRIPTOR" in op for op in handle_ops), handle_ops
    assert k.stats()["compiled"] == 6000


# ---- a version dropped while a call runs on it ------------------------------


@pytest.mark.parametrize("drop", ["swap", "rollback"])
def test_a_version_dropped_while_its_call_runs_lives_until_the_call_ends(drop):
    """A call holds no reference of its own to the version it runs on: a
    version the history drops while calls run waits in the kernel until none
    does. Here the running version is a bound double(double) function (the
    call path's inline float lane) whose C code calls back into Python, and
    the callback drops it: by a swap with a one-version history, or by a
    rollback. Nothing else holds it, yet it lives until its call returns,
    and no longer."""
    import gc
    import weakref
    from ctypes import CFUNCTYPE, c_double
    from conftest import fixture_path
    d_fn = CFUNCTYPE(c_double, c_double)
    loader = edgert.ModuleLoader()
    loader.load(fixture_path("callback_kernels"), [
        edgert.ABIContract("store_double_callback", [d_fn], None),
        edgert.ABIContract("call_stored_double", [c_double], c_double, release_gil=False)])
    store = loader.function("store_double_callback")
    f = loader.function("call_stored_double")
    if drop == "swap":
        k = Kernel("k", f, lambda x: -x, history=1)
    else:
        k = Kernel("k", lambda x: 100.0, lambda x: -x)
        k.swap(f)
    w = weakref.ref(f.__self__)
    del f, loader
    gc.collect()
    seen = []

    def inside(x):
        k.swap(lambda x: 100.0) if drop == "swap" else k.rollback()
        gc.collect()
        seen.append((w() is not None, k.stats()["running"]))
        return x + 1.0

    h = edgert.callback(d_fn, inside)
    store(h)
    try:
        assert w() is not None
        assert k(2.0) == 3.0  # the dropped version served its call
        assert seen == [(True, 1)]
        gc.collect()
        assert w() is None  # released as the call ended
        s = k.stats()
        assert (s["running"], s["calls"], s["compiled"], s["versions"]) == (0, 1, 1, 1)
        assert k(2.0) == 100.0
    finally:
        store(None)
        h.release()
