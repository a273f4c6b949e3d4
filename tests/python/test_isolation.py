"""Process isolation from Python (docs/isolation.md, issue #17): kernels that
corrupt the heap, spin, exit, abort, fault, allocate without bound or call
what the strict sandbox denies run in a worker process, and this process
carries on; well-behaved kernels give the same results as in-process.

Every kernel here comes from tests/fixtures/isolate_py_kernels.c; the
misbehaving ones are never called in this process.
"""
import array
import ctypes as C
import gc
import os
import pickle
import signal
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings, strategies as st

import edgert
from edgert import (ABIContract, KernelCrash, KernelTimeout, ModuleLoader, Nexus, TypedList,
                    shared_buffer)

from conftest import fixture_path

P = C.POINTER
EMULATED = bool(os.environ.get("EDGERT_TEST_EMULATOR"))
# ASan/UBSan builds (make test-sanitize): the kernels are instrumented, so the
# worker runs them with the sanitizer runtime (LD_PRELOAD is inherited).
SANITIZED = bool(os.environ.get("EDGERT_SANITIZED"))
# Workers are programs this process starts (exec) and confines (seccomp):
# qemu-user runs neither as the machine would.
needs_workers = pytest.mark.skipif(
    EMULATED, reason="qemu-user: isolated workers are exec'd programs under seccomp, which "
    "the user-mode emulator does not run as the machine would")

KERNELS = "isolate_py_kernels"

CONTRACTS = [
    ABIContract("iso_add", [C.c_double, C.c_double], C.c_double),
    ABIContract("iso_mix", [C.c_int32, C.c_double, P(C.c_double), edgert.const(P(C.c_double)),
                            C.c_size_t], C.c_double),
    ABIContract("iso_add_i64", [P(C.c_int64), C.c_size_t, C.c_int64], None),
    ABIContract("iso_sum", [edgert.const(P(C.c_double)), C.c_size_t], C.c_double),
    ABIContract("iso_scribble_const", [edgert.const(P(C.c_double)), C.c_size_t], C.c_double),
    ABIContract("iso_strlen", [C.c_char_p], C.c_int64),
    ABIContract("iso_getpid", [], C.c_int64),
    ABIContract("iso_maybe_crash", [C.c_double, C.c_int], C.c_double),
    ABIContract("iso_overrun_free", [P(C.c_double), C.c_size_t], None),
    ABIContract("iso_spin", [], None),
    ABIContract("iso_exit", [C.c_int], None),
    ABIContract("iso_abort", [], None),
    ABIContract("iso_fault", [C.c_int], C.c_int),
    ABIContract("iso_alloc_forever", [], C.c_int64),
    ABIContract("iso_fork", [], C.c_int),
    ABIContract("iso_exec", [], C.c_int),
    ABIContract("iso_socket", [], C.c_int),
    ABIContract("iso_write_file", [C.c_char_p], C.c_int),
    ABIContract("iso_twice", [C.c_double], C.c_double),
]


def iso_load(**options) -> ModuleLoader:
    options.setdefault("isolation", "process")
    return ModuleLoader().load(fixture_path(KERNELS), CONTRACTS, **options)


@pytest.fixture
def iso():
    ld = iso_load(timeout=10.0)
    yield ld
    ld.unload()


def alive(pid: int) -> bool:
    """Whether process `pid` exists (a zombie counts: it was not reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ---- load(): the options, each bad one named --------------------------------

@pytest.mark.parametrize("kwargs, exc, words", [
    ({"isolation": "thread"}, ValueError, "isolation must be"),
    ({"isolation": 1}, TypeError, "isolation must be"),
    ({"isolation": "process", "timeout": 0}, ValueError, "timeout must be"),
    ({"isolation": "process", "timeout": -1.5}, ValueError, "timeout must be"),
    ({"isolation": "process", "timeout": float("nan")}, ValueError, "timeout must be"),
    ({"isolation": "process", "timeout": "1"}, TypeError, "timeout must be"),
    ({"isolation": "process", "timeout": True}, TypeError, "timeout must be"),
    ({"isolation": "process", "memory_limit": 0}, ValueError, "memory_limit must be"),
    ({"isolation": "process", "memory_limit": -1}, ValueError, "memory_limit must be"),
    ({"isolation": "process", "memory_limit": 1.5}, TypeError, "memory_limit must be"),
    ({"isolation": "process", "memory_limit": 2**80}, OverflowError, "memory_limit .* larger"),
    ({"isolation": "process", "sandbox": "paranoid"}, ValueError, "sandbox must be"),
    ({"isolation": "process", "sandbox": 3}, TypeError, "sandbox must be"),
    ({"isolation": "process", "workers": 0}, ValueError, "workers must be"),
    ({"isolation": "process", "workers": 65}, ValueError, "workers must be"),
    ({"isolation": "process", "workers": True}, TypeError, "workers must be"),
    ({"isolation": "process", "workers": 2.0}, TypeError, "workers must be"),
    ({"timeout": 1.0}, ValueError, "timeout=1.0 applies to isolated modules only"),
    ({"memory_limit": 1 << 30}, ValueError, "memory_limit=.* applies to isolated"),
    ({"sandbox": "strict"}, ValueError, "sandbox=.* applies to isolated"),
    ({"workers": 2}, ValueError, "workers=2 applies to isolated"),
    ({"isolation": "process", "isolate_symbols": True}, ValueError,
     "isolate_symbols=True cannot be combined"),
])
def test_bad_isolation_options_are_refused_naming_the_parameter(kwargs, exc, words):
    ld = ModuleLoader()
    with pytest.raises(exc, match=words):
        ld.load(fixture_path(KERNELS), CONTRACTS, **kwargs)
    assert not ld.loaded


def test_in_process_defaults_are_accepted_and_report_no_isolation():
    ld = ModuleLoader().load(fixture_path(KERNELS), [CONTRACTS[0]], sandbox="none",
                             isolation=None, timeout=None, memory_limit=None, workers=1)
    assert ld.isolation is None
    assert ld.function("iso_add")(1.0, 2.0) == 3.0
    with pytest.raises(ValueError, match="isolation"):
        ld.isolation_stats()


def test_an_isolated_load_reports_its_options():
    ld = iso_load(timeout=2.5, memory_limit=1 << 30, sandbox="none", workers=2)
    assert ld.isolation == {"isolation": "process", "timeout": 2.5, "memory_limit": 1 << 30,
                            "sandbox": "none", "workers": 2, "worker_path": None}
    ld.unload()


def test_a_missing_worker_program_is_reported_by_the_first_call_naming_it(tmp_path):
    missing = tmp_path / "no-such-edgert-worker"
    ld = iso_load(worker_path=str(missing))
    with pytest.raises(OSError, match="no-such-edgert-worker"):
        ld.function("iso_add")(1.0, 2.0)
    ld.unload()


# ---- calls ---------------------------------------------------------------

@needs_workers
def test_an_isolated_call_runs_in_another_process(iso):
    pid = iso.function("iso_getpid")()
    assert pid != os.getpid() and alive(pid)
    assert iso.function("iso_add")(1.5, 2.25) == 3.75
    assert iso.call("iso_add", 1.0, 1.0) == 2.0
    assert iso.function("iso_getpid")() == pid  # the worker is reused


@needs_workers
def test_conversion_is_as_strict_as_in_process(iso):
    add = iso.function("iso_add")
    with pytest.raises(TypeError):
        add(1.0)
    with pytest.raises(TypeError):
        add("1", 2.0)
    with pytest.raises(OverflowError):
        iso.function("iso_fault")(2**40)
    with pytest.raises(TypeError):
        iso.function("iso_sum")(array.array("f", [1.0]), 1)
    assert iso.isolation_stats()["calls"] == 0  # nothing refused reached a worker


@needs_workers
def test_buffers_are_copied_in_and_back_unless_const(iso):
    xs = array.array("q", [1, 2, 3])
    iso.function("iso_add_i64")(xs, 3, 10)
    assert list(xs) == [11, 12, 13]
    iso.call("iso_add_i64", xs, 3, 1)  # loader.call takes the isolated lane too
    assert list(xs) == [12, 13, 14]
    ys = array.array("d", [1.0, 2.0])
    assert iso.function("iso_scribble_const")(ys, 2) == 3.0
    assert list(ys) == [1.0, 2.0]  # const: the worker's writes are not copied back
    ro = memoryview(array.array("d", [4.0, 5.0])).toreadonly()
    assert iso.function("iso_sum")(ro, 2) == 9.0
    assert iso.function("iso_strlen")(b"hello") == 5
    assert iso.function("iso_strlen")(None) == -1


@needs_workers
def test_shared_memory_is_passed_by_reference():
    np = pytest.importorskip("numpy")
    iso = iso_load(timeout=10.0)
    tl = TypedList(int, [1, 2, 3], shared=True)
    assert tl.shared
    iso.function("iso_add_i64")(tl, 3, 5)
    assert list(tl) == [6, 7, 8]
    buf = shared_buffer(8 * 4)
    arr = np.frombuffer(buf, dtype=np.float64)
    arr[:] = [1.0, 2.0, 3.0, 4.0]
    out = np.frombuffer(shared_buffer(8 * 4), dtype=np.float64)
    assert iso.function("iso_mix")(1, 2.0, out, arr, 4) == 24.0
    assert list(out) == [3.0, 5.0, 7.0, 9.0]
    # by reference: a const pointer into shared memory sees the kernel's writes
    iso.function("iso_scribble_const")(arr, 4)
    assert list(arr) == [-1.0] * 4
    iso.unload()


@needs_workers
def test_an_empty_buffer_is_passed_as_in_process(iso):
    # An empty array.array hands out CPython's 1-byte static buffer: no item is
    # read, so neither the alignment rule nor the isolated copy refuses it.
    # (Before: a TypeError in process, a page of shared memory in the binding.)
    inproc = ModuleLoader().load(fixture_path(KERNELS), CONTRACTS)
    empty = array.array("d")
    assert inproc.function("iso_sum")(empty, 0) == iso.function("iso_sum")(empty, 0) == 0.0
    out = array.array("d")
    assert (inproc.function("iso_mix")(1, 2.0, out, empty, 0)
            == iso.function("iso_mix")(1, 2.0, out, empty, 0))
    inproc.unload()


@needs_workers
def test_an_address_is_passed_only_into_shared_memory():
    ld = ModuleLoader().load(fixture_path(KERNELS),
                             [ABIContract("iso_sum", [C.c_void_p, C.c_size_t], C.c_double)],
                             isolation="process")
    f = ld.function("iso_sum")
    xs = array.array("d", [1.0, 2.0])
    with pytest.raises(TypeError, match=r"iso_sum\(\) argument 1: .*pass a buffer .*not an "
                                        r"address"):
        f(xs.buffer_info()[0], 2)
    buf = shared_buffer(16)
    memoryview(buf).cast("d")[:] = array.array("d", [1.5, 2.5])
    assert f(buf.address, 2) == 4.0  # an address into shared memory: by reference
    ld.unload()


def test_shared_containers_validate_and_pickle():
    tl = TypedList(float, [1.0, 2.0], shared=True)
    assert tl.shared and not TypedList(float).shared
    back = pickle.loads(pickle.dumps(tl))
    assert back.shared and list(back) == [1.0, 2.0]
    back5 = pickle.loads(pickle.dumps(tl, protocol=5))
    assert back5.shared and list(back5) == [1.0, 2.0]
    assert not tl.copy().shared  # a copy is private memory
    for spec in (str, bytes, object):
        with pytest.raises(ValueError, match="shared"):
            TypedList(spec, shared=True)
    buf = shared_buffer(16)
    assert buf.nbytes == len(buf) == 16 and buf.address % 4096 == 0
    assert bytes(memoryview(buf)) == bytes(16)
    memoryview(buf)[0] = 7
    assert bytes(pickle.loads(pickle.dumps(buf)))[:1] == b"\x07"
    for bad, exc in ((0, ValueError), (-1, ValueError), (1.0, TypeError), (True, TypeError)):
        with pytest.raises(exc, match="nbytes"):
            shared_buffer(bad)


# ---- the same results as in-process (differential) ------------------------

_floats = st.floats(allow_nan=False, allow_infinity=False, width=64, min_value=-1e6,
                    max_value=1e6)


@needs_workers
@settings(max_examples=40, deadline=None)
@given(a=st.integers(-2**31, 2**31 - 1), k=_floats, xs=st.lists(_floats, max_size=40),
       shared=st.booleans(), use_numpy=st.booleans())
def test_well_behaved_kernels_agree_with_in_process(a, k, xs, shared, use_numpy):
    inproc, iso = _pair()
    n = len(xs)

    def make(values):
        if shared:
            tl = TypedList(float, values, shared=True)
            return tl
        if use_numpy:
            np = pytest.importorskip("numpy")
            return np.array(values, dtype=np.float64)
        return array.array("d", values)

    in1, out1 = make(xs), make([0.0] * n)
    in2, out2 = make(xs), make([0.0] * n)
    r1 = _outcome(inproc.function("iso_mix"), a, k, out1, in1, n)
    r2 = _outcome(iso.function("iso_mix"), a, k, out2, in2, n)
    assert r1 == r2  # the same result, or the same refusal
    assert list(out1) == list(out2)  # copied back (or written in place, shared)
    assert list(in2) == list(xs)
    assert inproc.function("iso_add")(k, float(a)) == iso.function("iso_add")(k, float(a))
    ints1 = array.array("q", range(n))
    ints2 = array.array("q", range(n))
    assert _outcome(inproc.function("iso_add_i64"), ints1, n, a) == \
        _outcome(iso.function("iso_add_i64"), ints2, n, a)
    assert ints1 == ints2


def _outcome(f, *args):
    """f(*args), or the type and message of the exception it raises."""
    try:
        return f(*args)
    except Exception as e:  # noqa: BLE001 - compared, not swallowed
        return (type(e), str(e))


_pair_cache = {}


def _pair():
    """One in-process and one isolated loader for the differential test
    (hypothesis calls it per example; one worker serves them all)."""
    if not _pair_cache:
        _pair_cache["in"] = ModuleLoader().load(fixture_path(KERNELS), CONTRACTS[:4])
        _pair_cache["iso"] = iso_load(timeout=10.0)
    return _pair_cache["in"], _pair_cache["iso"]


# ---- what only a worker can survive --------------------------------------

@needs_workers
def test_heap_corruption_is_a_kernel_crash_and_the_next_call_works(iso):
    pid = iso.function("iso_getpid")()
    with pytest.raises(KernelCrash) as ei:
        iso.function("iso_overrun_free")(array.array("d", [0.0] * 4), 4)
    e = ei.value
    assert e.isolated and e.worker_pid == pid
    if SANITIZED:  # ASan in the worker reports the overflow and exits
        assert e.exit_status is not None or e.signal_name in ("SIGABRT", "SIGSEGV")
    else:
        assert e.signal_name in ("SIGABRT", "SIGSEGV", "SIGBUS")
    assert not alive(pid)
    assert iso.function("iso_add")(2.0, 3.0) == 5.0
    assert iso.function("iso_getpid")() != pid
    s = iso.isolation_stats()
    assert s["crashes"] == 1 and s["respawns"] == 1 and s["workers_running"] == 1


@needs_workers
def test_a_spinning_kernel_times_out_and_the_worker_is_replaced():
    iso = iso_load(timeout=0.2)
    pid = iso.function("iso_getpid")()
    with pytest.raises(KernelTimeout) as ei:
        iso.function("iso_spin")()
    assert isinstance(ei.value, TimeoutError) and isinstance(ei.value, edgert.EdgertError)
    assert not alive(pid)
    assert iso.function("iso_add")(1.0, 1.0) == 2.0
    s = iso.isolation_stats()
    assert s["timeouts"] == 1 and s["respawns"] == 1 and s["crashes"] == 0
    iso.unload()


@needs_workers
@pytest.mark.parametrize("fn, args, status, signame", [
    ("iso_exit", (3,), 3, None),
    ("iso_exit", (0,), 0, None),
    ("iso_abort", (), None, "SIGABRT"),
    ("iso_fault", (signal.SIGSEGV,), None, "SIGSEGV"),
    ("iso_fault", (signal.SIGBUS,), None, "SIGBUS"),
    ("iso_fault", (signal.SIGFPE,), None, "SIGFPE"),
    ("iso_fault", (signal.SIGILL,), None, "SIGILL"),
    ("iso_fault", (signal.SIGKILL,), None, "SIGKILL"),
])
def test_exits_aborts_and_faults_are_kernel_crashes_naming_how(iso, fn, args, status, signame):
    with pytest.raises(KernelCrash) as ei:
        iso.function(fn)(*args)
    e = ei.value
    assert e.isolated is True and e.worker_pid > 0 and not alive(e.worker_pid)
    assert e.exit_status == status
    if signame is not None:
        assert e.signal_name == signame
        assert signame in str(e)
    else:
        assert "exit" in str(e) and str(status) in str(e)
    assert e.syscall is None
    assert iso.function("iso_add")(1.0, 2.0) == 3.0  # respawned


@needs_workers
@pytest.mark.skipif(SANITIZED, reason="ASan's shadow memory needs terabytes of address space: "
                    "an instrumented kernel cannot run under any RLIMIT_AS")
def test_unbounded_allocation_stops_at_the_memory_limit():
    iso = iso_load(memory_limit=256 << 20, timeout=30.0)
    try:
        got = iso.function("iso_alloc_forever")()
    except KernelCrash as e:  # the allocator may also abort on the limit
        assert e.isolated
    else:
        assert 0 < got < 256
    assert iso.function("iso_add")(1.0, 2.0) == 3.0
    iso.unload()


@needs_workers
@pytest.mark.parametrize("fn, names", [
    ("iso_fork", ("fork", "vfork", "clone", "clone3")),
    ("iso_exec", ("execve", "execveat")),
    ("iso_socket", ("socket",)),
    ("iso_write_file", ("open", "openat", "openat2", "creat")),
])
def test_the_strict_sandbox_denies_and_names_the_system_call(tmp_path, fn, names):
    iso = iso_load(sandbox="strict", timeout=10.0)
    try:
        iso.function("iso_add")(1.0, 2.0)
    except OSError as e:  # a build without libseccomp says so when the worker starts
        if "without libseccomp" in str(e):
            pytest.skip(f"this build has no seccomp sandbox: {e}")
        raise
    target = tmp_path / "written"
    args = (str(target).encode(),) if fn == "iso_write_file" else ()
    with pytest.raises(KernelCrash) as ei:
        iso.function(fn)(*args)
    e = ei.value
    assert e.isolated and e.signal_name == "SIGSYS"
    assert e.syscall in names, e.syscall
    assert e.syscall in str(e)
    assert not target.exists()
    assert iso.function("iso_add")(1.0, 2.0) == 3.0  # allowed: computing
    iso.unload()


@needs_workers
def test_without_the_sandbox_the_same_calls_are_allowed(tmp_path):
    iso = iso_load(timeout=10.0)
    target = tmp_path / "written"
    assert iso.function("iso_write_file")(str(target).encode()) == 0
    assert target.read_bytes() == b"x"
    assert iso.function("iso_socket")() == 0
    iso.unload()


# ---- the parent stays clean ---------------------------------------------------

def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _children() -> list:
    """This process's child pids (zombies included)."""
    me = os.getpid()
    kids = []
    for t in os.listdir(f"/proc/{me}/task"):
        try:
            with open(f"/proc/{me}/task/{t}/children") as f:
                kids += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return kids


def _zombies() -> list:
    """This process's children that exited and were not reaped."""
    out = []
    for pid in _children():
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] == "Z":
                    out.append(pid)
        except OSError:
            pass
    return out


@needs_workers
def test_many_calls_with_crashes_leave_the_parent_flat():
    calls = int(os.environ.get("EDGERT_ISOLATION_SOAK", "10000"))  # the count
    from conftest import rss_kib
    iso = iso_load(timeout=10.0)
    f = iso.function("iso_maybe_crash")
    f(0.0, 0)
    with pytest.raises(KernelCrash):  # one crash and respawn first: the steady state
        f(0.0, 1)
    f(0.0, 0)
    gc.collect()
    fds, threads, rss, kids = _fds(), _threads(), rss_kib(), len(_children())
    maps = len(open("/proc/self/maps").readlines())  # no channel or region left mapped
    crashes = 0
    for i in range(1, calls + 1):
        if i % 100 == 0:
            with pytest.raises(KernelCrash):
                f(1.0, 1)
            crashes += 1
        else:
            assert f(float(i), 0) == i + 1.0
    f(0.0, 0)  # the last call crashed: end, as we began, with a live worker
    gc.collect()
    assert _fds() == fds
    assert _threads() == threads
    assert len(open("/proc/self/maps").readlines()) == maps
    assert rss_kib() - rss < 4096  # KiB: no growth with the calls
    s = iso.isolation_stats()
    assert s["crashes"] == crashes + 1 and s["respawns"] == crashes + 1
    assert len(_children()) == kids  # one live worker: every dead one was reaped
    assert _zombies() == []
    iso.unload()
    assert len(_children()) == kids - 1 and _zombies() == []


@needs_workers
def test_unloading_ends_the_workers_without_zombies():
    iso = iso_load(workers=2)
    pid = iso.function("iso_getpid")()
    assert iso.isolation_stats()["workers_running"] >= 1
    iso.unload()
    assert not alive(pid)
    with pytest.raises(edgert.ModuleUnloadedError):
        iso.function("iso_add")(1.0, 2.0)
    with pytest.raises(edgert.ModuleUnloadedError):
        iso.isolation_stats()
    assert pid not in _children()


@needs_workers
def test_threads_call_in_parallel_workers():
    import threading
    iso = iso_load(workers=2, timeout=10.0)
    add, getpid = iso.function("iso_add"), iso.function("iso_getpid")
    pids, errors = set(), []

    def work(base):
        try:
            for i in range(100):
                assert add(float(base), float(i)) == base + i
                pids.add(getpid())
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(b,)) for b in (1000, 2000, 3000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids
    assert iso.isolation_stats()["calls"] == 600
    iso.unload()


@needs_workers
def test_a_forked_child_starts_its_own_worker_and_leaves_the_parents():
    iso = iso_load(timeout=10.0)
    getpid = iso.function("iso_getpid")
    parent_worker = getpid()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own worker, never the parent's
        try:
            child_worker = getpid()
            ok = child_worker not in (parent_worker, os.getpid()) and alive(parent_worker)
            os.write(w, b"ok" if ok else b"no")
        finally:
            os._exit(0)
    os.close(w)
    got = os.read(r, 2)
    os.close(r)
    os.waitpid(pid, 0)
    assert got == b"ok"
    assert getpid() == parent_worker and alive(parent_worker)  # untouched by the child
    iso.unload()


@needs_workers
def test_isolation_stats_count_and_time_calls(iso):
    for _ in range(20):
        iso.function("iso_add")(1.0, 2.0)
    s = iso.isolation_stats()
    assert set(s) == {"calls", "crashes", "timeouts", "respawns", "workers_running",
                      "latency_p50_us", "latency_p90_us", "latency_p99_us", "latency_max_us"}
    assert s["calls"] == 20 and s["crashes"] == s["timeouts"] == s["respawns"] == 0
    assert s["workers_running"] == 1
    assert 0 < s["latency_p50_us"] <= s["latency_p90_us"] <= s["latency_p99_us"] <= \
        s["latency_max_us"]


# ---- Ctrl-C ----------------------------------------------------------------

SPIN_SCRIPT = textwrap.dedent("""
    import ctypes as C, sys, time
    import edgert
    ld = edgert.ModuleLoader().load(sys.argv[1], [
        edgert.ABIContract("iso_spin", [], None),
        edgert.ABIContract("iso_getpid", [], C.c_int64)], isolation="process")
    print(ld.function("iso_getpid")(), flush=True)
    t0 = time.monotonic()
    try:
        ld.function("iso_spin")()
    except KeyboardInterrupt:
        print("KeyboardInterrupt", time.monotonic() - t0, flush=True)
        print(ld.isolation_stats()["workers_running"], flush=True)
""")


@needs_workers
def test_ctrl_c_interrupts_a_spinning_isolated_call_and_kills_its_worker():
    p = subprocess.Popen([sys.executable, "-c", SPIN_SCRIPT, fixture_path(KERNELS)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import threading
    import time
    watchdog = threading.Timer(60, p.kill)  # a hang ends the child: the readlines return
    watchdog.start()
    try:
        worker = int(p.stdout.readline())
        # the spinning call is under way once the worker burns CPU; give it a moment
        time.sleep(0.3)
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        line = p.stdout.readline()  # printed by the handler of the KeyboardInterrupt
        latency = time.monotonic() - sent
        line += p.stdout.readline()  # the workers left (read here: communicate() reads
        #                              the pipe itself, not what readline buffered)
        out, err = p.communicate(timeout=30)  # a hang would fail here
        out = line + out
    finally:
        watchdog.cancel()
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "KeyboardInterrupt" in out, err
    # the bound (measured: 15-30 ms; the wait checks signals at once,
    # not on a poll); includes the child's print and the pipe
    assert latency < 0.5, latency
    assert out.split()[-1] == "0"  # no worker left running
    assert not alive(worker)


# ---- the nexus ---------------------------------------------------------------

@needs_workers
def test_the_nexus_counts_isolated_timeouts_and_crashes_toward_quarantine():
    iso = iso_load(timeout=0.2)
    nx = Nexus()
    spin = nx.register("spin", iso.function("iso_spin"), lambda: "ref", max_failures=3)
    crash = nx.register("crash", iso.function("iso_maybe_crash"), lambda x, c: -1.0,
                        max_failures=2)
    assert spin() == "ref"  # a timeout: a failure, served by the reference
    s = spin.stats()
    assert s["failures"] == 1 and s["timeouts"] == 1 and s["state"] == "active"
    assert s["isolated"]
    assert crash(1.0, 1) == -1.0
    assert crash.stats()["state"] == "active"  # not an immediate quarantine
    assert crash(2.0, 0) == 3.0  # served: consecutive failures forgotten
    assert crash(1.0, 1) == -1.0 and crash(1.0, 1) == -1.0
    c = crash.stats()
    assert c["state"] == "quarantined" and c["worker_deaths"] == 3 and c["failures"] == 3
    assert c["respawns"] >= 3  # the timeout's worker and two crashed ones, replaced
    assert not iso.quarantined  # the module itself is never quarantined
    report = nx.report()
    assert "spin [isolated]" in report and "crash [isolated]" in report
    assert "timeouts" in report.splitlines()[0]
    crash.reset()
    assert crash(2.0, 0) == 3.0
    iso.unload()


@needs_workers
def test_nexus_without_fallback_raises_compiled_mode_failure_from_the_timeout():
    iso = iso_load(timeout=0.2)
    k = Nexus().register("spin", iso.function("iso_spin"), lambda: None,
                         fallback_enabled=False)
    with pytest.raises(edgert.CompiledModeFailure) as ei:
        k()
    assert isinstance(ei.value.__cause__, KernelTimeout)
    iso.unload()


EDGERT_EINTERRUPTED = -28  # include/edgert/common.h


@needs_workers
def test_the_c_nexus_counts_isolated_failures_and_abandons_interrupted_calls():
    """src/nexus.c from a C host (tests/fixtures/linked/isolate_py_nexus.c)."""
    lib = C.CDLL(fixture_path("isolate_py_nexus"))
    run = lib.isolate_py_nexus_run
    run.argtypes = [C.c_char_p, C.c_char_p, C.c_int, C.c_double, C.c_int, C.c_int,
                    P(C.c_longlong)]
    out = (C.c_longlong * 7)()
    path = fixture_path(KERNELS).encode()
    # two timeouts: failures the reference serves; the second quarantines
    assert run(path, b"iso_spin", 0, 0.1, 0, 2, out) == 0
    rc, calls, compiled, fallbacks, failures, state, consecutive = out
    assert (rc, calls, compiled, fallbacks, failures, state) == (0, 2, 0, 2, 2, 1)
    # one worker death: a failure, not a quarantine
    assert run(path, b"iso_maybe_crash", 1, 10.0, 0, 1, out) == 0
    assert (out[0], out[3], out[4], out[5], out[6]) == (0, 1, 1, 0, 1)
    # stopped by the host's interrupt check: abandoned, returned, not counted
    assert run(path, b"iso_spin", 0, 0.0, 1, 1, out) == 0
    rc, calls, compiled, fallbacks, failures, state, consecutive = out
    assert rc == EDGERT_EINTERRUPTED
    assert (calls, compiled, fallbacks, failures, consecutive) == (1, 0, 0, 0, 0)


def test_an_isolated_function_is_not_a_c_callback():
    cb = C.CFUNCTYPE(C.c_double, C.c_double)
    ld = ModuleLoader().load(fixture_path("callback_kernels"),
                             [ABIContract("apply_d", [cb, C.c_double], C.c_double)])
    inproc = ModuleLoader().load(fixture_path(KERNELS), [CONTRACTS[-1]])
    assert ld.function("apply_d")(inproc.function("iso_twice"), 2.0) == 4.0
    iso = iso_load()
    with pytest.raises(TypeError, match="isolated"):
        ld.function("apply_d")(iso.function("iso_twice"), 2.0)
    iso.unload()


# ---- manifests -----------------------------------------------------------------

def _manifest(tmp_path, isolation) -> str:
    import hashlib
    import json
    path = fixture_path(KERNELS)
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    module = {"path": path, "sha256": sha, "contracts": [CONTRACTS[6].to_dict()]}
    if isolation is not None:
        module["isolation"] = isolation
    m = tmp_path / "manifest.json"
    m.write_text(json.dumps({"schema_version": 1, "modules": [module]}))
    return str(m)


@needs_workers
def test_a_manifest_entry_loads_its_module_isolated(tmp_path):
    m = _manifest(tmp_path, {"mode": "process", "timeout": 2.0, "sandbox": "strict",
                             "workers": 2})
    (entry,) = edgert.read_manifest(m)
    assert entry["isolation"] == {"isolation": "process", "timeout": 2.0, "memory_limit": None,
                                  "sandbox": "strict", "workers": 2, "worker_path": None}
    with edgert.load_manifest(m) as loaded:
        ld = loaded.loader_of("iso_getpid")
        assert ld.isolation["sandbox"] == "strict" and ld.isolation["workers"] == 2
        assert loaded.call("iso_getpid") != os.getpid()
    (plain,) = edgert.read_manifest(_manifest(tmp_path, None))
    assert "isolation" not in plain
    with pytest.raises(edgert.ManifestError, match="isolation.workers"):
        edgert.read_manifest(_manifest(tmp_path, {"mode": "process", "workers": 0}))


# ---- pickling ----------------------------------------------------------------

@needs_workers
def test_isolated_functions_and_loaders_pickle_isolated():
    iso = iso_load(timeout=3.0, workers=1)
    f = pickle.loads(pickle.dumps(iso.function("iso_getpid")))
    assert f() != os.getpid()
    ld = pickle.loads(pickle.dumps(iso))
    assert ld.isolation == iso.isolation
    assert ld.function("iso_getpid")() != os.getpid()
    # an in-process loader of the same file does not make the pickle in-process
    inproc = ModuleLoader().load(fixture_path(KERNELS), [CONTRACTS[6]])
    g = pickle.loads(pickle.dumps(iso.function("iso_getpid")))
    assert g() != os.getpid()
    assert inproc.function("iso_getpid")() == os.getpid()
    iso.unload()
