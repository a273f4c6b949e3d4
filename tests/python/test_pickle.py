"""Pickling by content (docs/distributed.md): bound functions, ModuleLoader,
Kernel and Nexus pickle as module SHA-256 + path + contracts; unpickling
binds by hash to a module loaded in the process (no file touched), else
loads the path verified against the hash. TypedList pickles its storage out
of band with protocol 5. One spawn worker serves every cross-process test."""
from __future__ import annotations

import concurrent.futures
import ctypes
import functools
import multiprocessing
import os
import pickle
import shutil
import struct
import subprocess
import sys

import pytest

import edgert
from edgert import ABIContract, IntegrityError, Kernel, ModuleLoader, Nexus, TypedList
from edgert import _edgert
from conftest import fixture_path

D = ctypes.c_double
AFFINE = ABIContract("nexus_affine", [D], D)
ADD = ABIContract("nexus_add_i32", [ctypes.c_int32, ctypes.c_int32], ctypes.c_int32)


def affine_ref(x):
    return 2.0 * x + 1.0


def unique_copy(tmp_path, tag: bytes = b"", name: str = "k.so") -> str:
    """A copy of the nexus kernels with bytes appended past the ELF image:
    it loads as before, with a SHA-256 no other test has loaded."""
    dst = tmp_path / name
    data = open(fixture_path("libnexus_kernels"), "rb").read()
    dst.write_bytes(data + b"\0edgert-test-pickle:" + tag + os.urandom(16))
    return str(dst)


@pytest.fixture(scope="module")
def pool():
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
        yield ex


# ---- work run in the spawn worker (a process that loaded nothing) --------------

def child_call(blob: bytes, *args):
    obj = pickle.loads(blob)
    return obj(*args)


def child_loader(blob: bytes):
    ld = pickle.loads(blob)
    return ld.sha256, ld.functions, ld.call("nexus_add_i32", 2, 3), ld.call("nexus_affine", 1.0)


def child_kernel(blob: bytes):
    k = pickle.loads(blob)
    s = k.stats()
    return (k.name, k.max_failures, k.validate_every, k.strict, k.tolerance, k.history_size,
            s["calls"], k(4.0), k.guarded, k.reference(4.0))


def child_nexus(blob: bytes):
    nx = pickle.loads(blob)
    return sorted(nx), nx.call("aff", 1.5), nx["aff"].stats()["calls"]


def child_by_hash(own_copy: str, blob: bytes):
    """Loads the module from its own copy, removes that file, then
    unpickles a pickle naming another (nonexistent) path."""
    ld = ModuleLoader().load(own_copy, AFFINE)
    os.remove(own_copy)
    f = pickle.loads(blob)
    return f(2.0), ld.sha256


def child_error(blob: bytes):
    try:
        pickle.loads(blob)
    except Exception as exc:  # the type and message travel back
        return type(exc).__name__, str(exc)
    return None, None


# ---- bound functions, loaders, kernels, nexus ---------------------------------

def test_bound_function_pickles_by_content_not_address(tmp_path):
    path = unique_copy(tmp_path)
    ld = ModuleLoader().load(path, AFFINE)
    f = ld.function("nexus_affine")
    blob = pickle.dumps(f)
    assert ld.sha256.encode() in blob and path.encode() in blob
    addr = f.__self__.address
    assert addr.to_bytes(8, "little") not in blob and str(addr).encode() not in blob
    g = pickle.loads(blob)
    assert g(3.0) == 7.0 and g.__self__.signature == f.__self__.signature


def test_bound_function_in_a_spawned_process(pool, tmp_path):
    ld = ModuleLoader().load(unique_copy(tmp_path), AFFINE)
    assert pool.submit(child_call, pickle.dumps(ld.function("nexus_affine")), 5.0).result() == 11.0


def test_loader_in_a_spawned_process(pool, tmp_path):
    ld = ModuleLoader().load(unique_copy(tmp_path), [AFFINE, ADD])
    sha, funcs, add, aff = pool.submit(child_loader, pickle.dumps(ld)).result()
    assert sha == ld.sha256 and set(funcs) == {"nexus_affine", "nexus_add_i32"}
    assert (add, aff) == (5, 3.0)
    empty = pickle.loads(pickle.dumps(ModuleLoader()))
    assert isinstance(empty, ModuleLoader) and not empty.loaded


def test_kernel_options_travel_counters_do_not(pool, tmp_path):
    ld = ModuleLoader().load(unique_copy(tmp_path), AFFINE)
    nx = Nexus()
    k = nx.register("aff", ld.function("nexus_affine"), affine_ref, max_failures=7,
                    validate_every=3, tolerance=1e-6, strict=True, history=4)
    for x in range(5):
        k(float(x))
    assert k.stats()["calls"] == 5
    got = pool.submit(child_kernel, pickle.dumps(k)).result()
    assert got == ("aff", 7, 3, True, 1e-6, 4, 0, 9.0, True, 9.0)


def child_call_kernel(blob: bytes, x: float):
    """A task that keeps nothing: unpickles a kernel, calls it once."""
    return pickle.loads(blob)(x)


def child_process_kernels(name: str):
    from edgert import _pickle
    return [(k.stats()["calls"], k.stats()["compiled"]) for k in _pickle.process_kernels()
            if k.name == name]


def test_every_pickle_of_a_handle_is_one_kernel_per_process(pool, tmp_path):
    # Tasks that unpickle a kernel, call it and drop it: the spawn worker
    # keeps one kernel for the handle, whose counters add up over the tasks.
    ld = ModuleLoader().load(unique_copy(tmp_path), AFFINE)
    k = Kernel("one_per_process", ld.function("nexus_affine"), affine_ref)
    for x in range(4):
        assert pool.submit(child_call_kernel, pickle.dumps(k), float(x)).result() == 2.0 * x + 1.0
    assert pool.submit(child_process_kernels, "one_per_process").result() == [(4, 4)]
    # A swap gives the handle a new identity: another kernel there.
    k.swap(ld.function("nexus_affine"))
    assert pool.submit(child_call_kernel, pickle.dumps(k), 1.0).result() == 3.0
    assert sorted(pool.submit(child_process_kernels, "one_per_process").result()) == \
        [(1, 1), (4, 4)]
    assert k.stats()["calls"] == 0


def test_unpickling_a_handle_again_in_a_process_gives_its_kernel(tmp_path):
    from edgert import _pickle
    ld = ModuleLoader().load(unique_copy(tmp_path), AFFINE)
    k = Kernel("again", ld.function("nexus_affine"), affine_ref, max_failures=6)
    first = pickle.loads(pickle.dumps(k))
    assert first is not k and first(1.0) == 3.0
    second = pickle.loads(pickle.dumps(k, protocol=2))
    assert second is first and second.stats()["calls"] == 1 and second.max_failures == 6
    # Pickled again from here it keeps the identity; a nexus adopts the same kernel.
    assert pickle.loads(pickle.dumps(first)) is first
    nx = Nexus()
    nx._adopt(k)
    assert pickle.loads(pickle.dumps(nx))["again"] is first
    assert any(p is first for p in _pickle.process_kernels())
    # Another handle of the same content is another kernel; so is a swapped one.
    other = pickle.loads(pickle.dumps(Kernel("again", ld.function("nexus_affine"), affine_ref)))
    assert other is not first
    k.swap(ld.function("nexus_affine"))
    assert pickle.loads(pickle.dumps(k)) is not first
    # A state without an identity (an edgert before identities) builds anew each time.
    st = _pickle._kernel_state(k)
    del st["id"]
    a, b = _pickle._rebuild_kernel(dict(st)), _pickle._rebuild_kernel(dict(st))
    assert a is not b and a(0.0) == 1.0
    with pytest.raises(TypeError, match="argument 1 must be str, not int"):
        _pickle._rebuild_kernel(dict(st, id="x" * 32, name=5))


def test_nexus_in_a_spawned_process(pool, tmp_path):
    ld = ModuleLoader().load(unique_copy(tmp_path), AFFINE)
    nx = Nexus()
    nx.register("aff", ld.function("nexus_affine"), affine_ref)
    nx.register("pyonly", abs, abs)
    assert pool.submit(child_nexus, pickle.dumps(nx)).result() == (["aff", "pyonly"], 4.0, 1)


def test_unpickling_binds_by_hash_without_the_file(tmp_path):
    # Loaded in this process by another loader; the file is gone.
    path = unique_copy(tmp_path)
    ld = ModuleLoader().load(path, AFFINE)
    blob = pickle.dumps(ld.function("nexus_affine"))
    os.remove(path)
    f = pickle.loads(blob)
    assert f(1.0) == 3.0
    assert pickle.loads(pickle.dumps(ld)).sha256 == ld.sha256


def test_by_hash_in_another_process_ignores_the_pickled_path(pool, tmp_path):
    path = unique_copy(tmp_path)
    ld = ModuleLoader().load(path, AFFINE)
    blob = pickle.dumps(ld.function("nexus_affine"))
    own = str(tmp_path / "child_copy.so")
    shutil.copy(path, own)
    os.remove(path)  # the pickled path does not exist anywhere
    assert pool.submit(child_by_hash, own, blob).result() == (5.0, ld.sha256)


def test_a_tampered_file_is_refused_naming_both_hashes(tmp_path):
    path = unique_copy(tmp_path)
    ld = ModuleLoader().load(path, AFFINE)
    sha = ld.sha256
    blob = pickle.dumps(ld.function("nexus_affine"))
    ld.unload()
    assert not _edgert.module_loaded(sha)
    unique_copy(tmp_path)  # same path, other bytes
    other = ModuleLoader().load(path).sha256
    with pytest.raises(IntegrityError) as ei:
        pickle.loads(blob)
    assert sha in str(ei.value) and other in str(ei.value)


def test_a_missing_file_not_loaded_is_a_clear_error(tmp_path):
    path = unique_copy(tmp_path)
    ld = ModuleLoader().load(path, AFFINE)
    sha = ld.sha256
    blob = pickle.dumps(ld)
    ld.unload()
    os.remove(path)
    with pytest.raises(FileNotFoundError, match=f"no module with SHA-256 {sha} is loaded in "
                                                "this process, and its path .*k.so cannot"):
        pickle.loads(blob)


def test_other_state_versions_are_refused():
    from edgert import _pickle
    for fn, what in ((_pickle._rebuild_function, "bound function"),
                     (_pickle._rebuild_loader, "ModuleLoader"), (_pickle._rebuild_kernel, "Kernel"),
                     (_pickle._rebuild_nexus, "Nexus")):
        with pytest.raises(ValueError, match=f"cannot unpickle edgert {what}: pickle format "
                                             "version 99, this edgert .* reads version 1"):
            fn({"v": 99})
    with pytest.raises(ValueError, match="not 64 hex digits"):
        _pickle._rebuild_function({"v": 1, "module": {"sha256": "00", "path": "/x"},
                                   "contract": AFFINE.to_dict()})


def child_deps(blob: bytes):
    f = pickle.loads(blob)
    return f(2, 3), f.__self__._dependencies


def test_dependencies_travel_with_the_module(pool, tmp_path, fixtures_dir):
    # A module whose $ORIGIN helper was listed by hash: the pickle carries
    # the helper's name, path and hash, and a process that has loaded
    # neither loads both, verified (unlisted, the helper is refused there:
    # test_loader_deps.py).
    import ctypes
    import hashlib
    from edgert import ABIContract, _pickle
    deps_dir = fixtures_dir / "deps"
    helper = deps_dir / "libdeps_helper.so"
    h = hashlib.sha256(helper.read_bytes()).hexdigest()
    ld = ModuleLoader().load(deps_dir / "libdeps_top.so",
                             [ABIContract("top_add", [ctypes.c_int, ctypes.c_int], ctypes.c_int)],
                             dependencies={"libdeps_helper.so": h})
    assert ld.dependencies == [("libdeps_helper.so", str(helper.resolve()), h)]
    state = _pickle._reduce_loader(ld)[1][0]
    assert state["module"]["dependencies"] == [["libdeps_helper.so", str(helper.resolve()), h]]
    result, deps = pool.submit(child_deps, pickle.dumps(ld.function("top_add"))).result()
    assert result == 6 and deps == [("libdeps_helper.so", str(helper.resolve()), h)]


def test_unloaded_function_refuses_to_pickle(tmp_path):
    ld = ModuleLoader().load(unique_copy(tmp_path), AFFINE)
    f = ld.function("nexus_affine")
    ld.unload()
    with pytest.raises(edgert.ModuleUnloadedError, match="cannot pickle 'nexus_affine'"):
        pickle.dumps(f)


def test_open_loaded_shares_the_quarantine_and_does_not_clear_it(tmp_path):
    path = unique_copy(tmp_path)
    ld = ModuleLoader().load(path, AFFINE)
    with pytest.raises(LookupError, match="no module with SHA-256 0{64} is loaded"):
        ModuleLoader().open_loaded("0" * 64)
    other = ModuleLoader().open_loaded(ld.sha256, AFFINE, name="elsewhere")
    assert other.path == "elsewhere" and other.function("nexus_affine")(0.0) == 1.0
    ld.unload()  # the other handle keeps the mapping
    assert _edgert.module_loaded(other.sha256) and other.call("nexus_affine", 1.0) == 3.0


def test_unpickling_reuses_only_a_function_with_the_whole_same_contract(tmp_path):
    """The reuse cache is keyed on every contract field: a live unpickled
    function is not handed out for a pickle whose contract differs only in
    use_errno (before: the key left use_errno and variadic out)."""
    path = unique_copy(tmp_path, b"reuse-key")
    plain = ModuleLoader().load(path, AFFINE).function("nexus_affine")
    errno_c = ABIContract("nexus_affine", [D], D, use_errno=True)
    with_errno = ModuleLoader().load(path, errno_c).function("nexus_affine")
    a = pickle.loads(pickle.dumps(plain))
    b = pickle.loads(pickle.dumps(with_errno))
    assert a.__self__ is not b.__self__
    assert "use_errno" not in a.__self__._pickle_state[2]
    assert b.__self__._pickle_state[2].get("use_errno") is True
    assert pickle.loads(pickle.dumps(with_errno)).__self__ is b.__self__  # the same one is reused
    assert a(1.0) == b(1.0) == 3.0


# ---- fork and forkserver pools -------------------------------------------------------

CRASH = ABIContract("guard_null_deref", [D], D)
AFFINE_CRASHY = ABIContract("guard_ok", [D], D)
_FORKED: dict = {}  # set before a fork pool starts: its children inherit it


def crashy_copy(tmp_path) -> str:
    """guard_crashy with a SHA-256 of its own (its quarantine is nobody else's)."""
    dst = tmp_path / "crashy.so"
    dst.write_bytes(open(fixture_path("libguard_crashy"), "rb").read() + b"\0pickle-crash" + os.urandom(16))
    return str(dst)


def child_after_fork(new_path: str, crashy: str):
    """In a fork child: the parent's kernel, a module loaded here, a crash
    contained here, and a pickle bound by hash to the inherited module."""
    k, blob = _FORKED["kernel"], _FORKED["blob"]
    inherited = k(4.0), k.stats()["calls"]
    fresh = ModuleLoader().load(new_path, ADD).call("nexus_add_i32", 20, 22)
    try:
        ModuleLoader().load(crashy, CRASH).call("guard_null_deref", 1.0)
        crash = None
    except edgert.KernelCrash as exc:
        crash = (exc.signal_name, exc.function, exc.module)
    # The parent's file is gone: unpickling binds to the inherited mapping.
    by_hash = pickle.loads(blob)(1.0)
    return os.getpid(), inherited, fresh, crash, by_hash, edgert.process_healthy()


def loaded_before_a_fork(tmp_path, tag: bytes):
    """What a fork test's parent has loaded before its pool forks: a module
    whose file is then removed (its kernel and a pickle of its function are
    in _FORKED for the children), another module for the children to load
    (its path), the parent's copy of the crashy module, and the kernel.
    Skips where there is no fork start method."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork start method on this platform")
    path = unique_copy(tmp_path, tag + b"-parent", "parent.so")
    new_path = unique_copy(tmp_path, tag + b"-child", "child.so")
    crashy = crashy_copy(tmp_path)
    ld = ModuleLoader().load(path, AFFINE)
    held = ModuleLoader().load(crashy, [AFFINE_CRASHY])  # the parent's copy of the crashy module
    k = Kernel("aff", ld.function("nexus_affine"), affine_ref)
    assert k(0.0) == 1.0
    _FORKED.update(kernel=k, blob=pickle.dumps(ld.function("nexus_affine")))
    os.remove(path)
    return new_path, crashy, ld, held, k


def test_a_fork_pool_after_loading_calls_loads_and_contains(tmp_path):
    new_path, crashy, ld, held, k = loaded_before_a_fork(tmp_path, b"fork")
    try:
        ctx = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
            pid, inherited, fresh, crash, by_hash, healthy = ex.submit(
                child_after_fork, new_path, crashy).result(timeout=120)
            # The child goes on working after the crash it contained.
            assert ex.submit(child_call, pickle.dumps(ld.function("nexus_affine")), 2.0).result(
                timeout=120) == 5.0
    finally:
        _FORKED.clear()
    assert pid != os.getpid()
    assert inherited == (9.0, 2)  # the parent's call counted, then the child's own
    assert fresh == 42 and by_hash == 3.0 and healthy
    assert crash == ("SIGSEGV", "guard_null_deref", crashy)
    assert k.stats()["calls"] == 1  # counters are per process
    # The crash and its quarantine were the child's: the parent's module still runs.
    assert held.call("guard_ok", 1.0) == 3.0


def child_crash(blob: bytes):
    """A task whose kernel crashes: the KernelCrash travels to the parent."""
    return pickle.loads(blob)(1.0)


def child_unname():
    from edgert import workers
    _edgert._crash_worker = None
    workers._named_pid = None


def test_a_crash_in_a_spawn_pool_worker_arrives_naming_worker_function_module_signal(pool, tmp_path):
    import socket
    crashy = crashy_copy(tmp_path)
    f = ModuleLoader().load(crashy, CRASH).function("guard_null_deref")
    child = pool.submit(os.getpid).result()
    with pytest.raises(edgert.KernelCrash) as ei:
        pool.submit(child_crash, pickle.dumps(f)).result(timeout=120)
    e = ei.value
    # No initializer: the worker is "host:pid", in the message too (a
    # process multiprocessing started is a worker).
    where = f"{socket.gethostname()}:{child}"
    assert e.worker == where and str(e).endswith(f"(on worker {where})")
    assert (e.function, e.module, e.signal_name, e.signal) == ("guard_null_deref", crashy,
                                                               "SIGSEGV", 11)
    assert pool.submit(os.getpid).result() == child  # the worker contained it and runs on
    # A worker named by edgert.worker_initializer (what a pool's
    # initializer=edgert.worker_initializer, initargs=("pool-a",) runs at
    # its start; run as a task here, which spares CI a second spawn).
    pool.submit(edgert.worker_initializer, "pool-a").result()
    try:
        with pytest.raises(edgert.KernelCrash) as ei:
            pool.submit(child_crash, pickle.dumps(f)).result(timeout=120)
    finally:
        pool.submit(child_unname).result()
    e = ei.value
    assert e.worker == "pool-a" and str(e).endswith("(on worker pool-a)")
    assert (e.function, e.module, e.signal_name) == ("guard_null_deref", crashy, "SIGSEGV")


def test_a_forkserver_pool_receives_kernels_by_pickling(tmp_path):
    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no forkserver start method on this platform")
    path = unique_copy(tmp_path, b"forkserver")
    ld = ModuleLoader().load(path, [AFFINE, ADD])
    nx = Nexus()
    nx.register("aff", ld.function("nexus_affine"), affine_ref)
    ctx = multiprocessing.get_context("forkserver")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
        assert ex.submit(child_call, pickle.dumps(ld.function("nexus_add_i32")), 2, 3).result(
            timeout=120) == 5
        assert ex.submit(child_nexus, pickle.dumps(nx)).result(timeout=120) == (["aff"], 4.0, 1)
        assert ex.submit(child_loader, pickle.dumps(ld)).result(timeout=120)[2:] == (5, 3.0)


# ---- multiprocessing.Pool (multiprocessing.Process underneath) ----------------------

def call_in_pool(obj, *args):
    """A Pool task: `obj` (a Kernel, a bound function, a Nexus's kernel
    name pair) arrived pickled as a task argument."""
    if isinstance(obj, tuple):
        nx, name = obj
        return nx.call(name, *args), os.getpid()
    return obj(*args), os.getpid()


def crash_report_name():
    """The worker name a KernelCrash raised in this process would carry."""
    from edgert.workers import _crash_site
    return _crash_site()[0]


def put_call(q, obj, *args):
    """A multiprocessing.Process target: its arguments were pickled by Process.start."""
    q.put(call_in_pool(obj, *args))


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_pool_receives_kernels_and_bound_functions_by_pickling(method, tmp_path):
    """multiprocessing.Pool (not concurrent.futures) of 2 fresh processes:
    its task arguments are pickled by the pool itself, so the kernel, the
    bound function and the Nexus arrive by content and bind in the child."""
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method on this platform")
    ld = ModuleLoader().load(unique_copy(tmp_path, b"pool-" + method.encode()), [AFFINE, ADD])
    k = Kernel("aff", ld.function("nexus_affine"), affine_ref)
    nx = Nexus()
    nx.register("aff", ld.function("nexus_affine"), affine_ref)
    add = ld.function("nexus_add_i32")
    tasks = [(k, 1.0), (add, 2, 3), ((nx, "aff"), 4.0), (k, -0.5), (add, -7, 7), ((nx, "aff"), 0.0)]
    # initializer=edgert.worker_initializer as workers.py documents it
    with multiprocessing.get_context(method).Pool(
            2, initializer=edgert.worker_initializer, initargs=(f"pool-{method}",)) as p:
        got = p.starmap(call_in_pool, tasks)
        again = p.apply_async(call_in_pool, (ld.function("nexus_affine"), 10.0)).get(timeout=120)
        assert p.apply(crash_report_name) == f"pool-{method}"
    # A bare Process: start() pickles its target's arguments the same way.
    ctx = multiprocessing.get_context(method)
    q = ctx.SimpleQueue()
    proc = ctx.Process(target=put_call, args=(q, k, 6.0))
    proc.start()
    proc.join(120)
    if proc.is_alive():
        proc.kill()
    assert proc.exitcode == 0 and q.get()[0] == 13.0
    assert [g[0] for g in got] == [3.0, 5, 9.0, 0.0, 0, 1.0]
    assert os.getpid() not in {g[1] for g in got} | {again[1]} and again[0] == 21.0
    assert k.stats()["calls"] == 0 and nx["aff"].stats()["calls"] == 0  # the children's own


def test_a_fork_pool_after_loading_calls_loads_and_contains_a_crash(tmp_path):
    """multiprocessing.Pool(2) forked after the parent loaded: each task
    calls the inherited kernel, loads a module of its own, contains a
    SIGSEGV and binds a pickle by hash (the parent's file is gone); the
    children keep serving tasks after their crashes."""
    new_path, crashy, ld, held, k = loaded_before_a_fork(tmp_path, b"fork-pool")
    try:
        with multiprocessing.get_context("fork").Pool(2) as p:
            got = p.starmap(child_after_fork, [(new_path, crashy)] * 4)
            after = p.map(functools.partial(child_call, pickle.dumps(ld.function("nexus_affine"))),
                          [2.0, 3.0])
    finally:
        _FORKED.clear()
    assert len(got) == 4 and os.getpid() not in {g[0] for g in got}
    for pid, (res, calls), fresh, crash, by_hash, healthy in got:
        assert res == 9.0 and calls >= 2  # the parent's call, then this child's
        assert fresh == 42 and by_hash == 3.0 and healthy
        assert crash == ("SIGSEGV", "guard_null_deref", crashy)
    assert after == [5.0, 7.0]
    assert k.stats()["calls"] == 1
    assert held.call("guard_ok", 1.0) == 3.0  # the children's quarantines were their own


# ---- containers ------------------------------------------------------------------

def test_typed_list_protocol_5_is_out_of_band_without_a_copy():
    np = pytest.importorskip("numpy")
    tl = TypedList(float, [float(i) for i in range(300)])
    bufs = []
    blob = pickle.dumps(tl, protocol=5, buffer_callback=bufs.append)
    assert len(bufs) == 1 and len(blob) < 200
    raw = bufs[0].raw()
    assert raw.nbytes == 300 * 8
    # The buffer is the list's own storage: same address, no copy.
    assert np.frombuffer(raw, np.uint8).ctypes.data == np.frombuffer(tl, np.uint8).ctypes.data
    back = pickle.loads(blob, buffers=bufs)
    assert back == tl and np.frombuffer(back, np.uint8).ctypes.data != \
        np.frombuffer(tl, np.uint8).ctypes.data
    # In band with protocol 5 too.
    assert pickle.loads(pickle.dumps(tl, protocol=5)) == tl


@pytest.mark.parametrize("proto", [2, 3, 4, 5])
@pytest.mark.parametrize("item_type,values", [(int, [1, -2, 3]), (float, [0.5, 2.0]),
                                              (bool, [True, False]), (str, ["a", "bc"]),
                                              (bytes, [b"x", b""])])
def test_typed_list_every_protocol(proto, item_type, values):
    tl = TypedList(item_type, values)
    assert pickle.loads(pickle.dumps(tl, protocol=proto)) == tl


@pytest.mark.parametrize("proto", [2, 3, 4, 5])
@pytest.mark.parametrize("kt,vt,data", [(int, float, {1: 0.5, 2: 1.5}), (float, bool, {0.5: True, -1.0: False}),
                                        (bool, int, {True: -7, False: 2**62}), (str, float, {"a": 1.0, "": 2.0}),
                                        (int, bytes, {3: b"x", 4: b""}), (bytes, str, {b"k": "v"}),
                                        (int, float, {})])
def test_typed_dict_every_protocol(proto, kt, vt, data):
    td = edgert.TypedDict(kt, vt, data)
    back = pickle.loads(pickle.dumps(td, protocol=proto))
    assert type(back) is type(td) and back == td and dict(back) == data
    if proto == 5:  # out of band too
        bufs = []
        blob = pickle.dumps(td, protocol=5, buffer_callback=bufs.append)
        assert pickle.loads(blob, buffers=bufs) == td
        # ... and through bytes, as a transport hands them over
        assert pickle.loads(blob, buffers=[b.raw().tobytes() for b in bufs]) == td


def test_typed_dict_protocol_5_is_out_of_band_without_a_copy():
    np = pytest.importorskip("numpy")
    td = edgert.TypedDict(int, float, {i * 7: i / 4 for i in range(300)})
    bufs = []
    blob = pickle.dumps(td, protocol=5, buffer_callback=bufs.append)
    assert len(bufs) == 2 and len(blob) < 300
    keys, values = (b.raw() for b in bufs)
    assert keys.nbytes == values.nbytes == 300 * 8 and keys.readonly
    # The value buffer is the dict's own value array (same address as values()
    # exports), the key buffer its dense key array: no element byte copied.
    assert np.frombuffer(values, np.uint8).ctypes.data == \
        np.frombuffer(td.values(), np.uint8).ctypes.data
    assert np.frombuffer(keys, np.int64).tolist() == list(td.keys())
    with pytest.raises(BufferError):  # the buffers pin the dict while held
        td[10**6] = 1.0
    back = pickle.loads(blob, buffers=bufs)
    assert back == td and list(back.keys()) == list(td.keys())
    del keys, values, bufs
    td[10**6] = 1.0
    # Only the fixed-size side is out of band with str keys.
    ts = edgert.TypedDict(str, float, {"a": 1.0, "b": 2.0})
    bufs = []
    blob = pickle.dumps(ts, protocol=5, buffer_callback=bufs.append)
    assert len(bufs) == 1 and pickle.loads(blob, buffers=bufs) == ts


def child_custom_list(blob: bytes):
    try:
        pickle.loads(blob)
    except ValueError as exc:
        return str(exc)
    return None


def test_custom_type_unregistered_in_the_unpickling_process(pool):
    lib = ctypes.CDLL(fixture_path("libcontainers_point"))
    addrs = [ctypes.cast(getattr(lib, n), ctypes.c_void_p).value
             for n in ("sizeof_point", "check_point", "copy_point")]
    edgert.register_type("PicklePoint", *addrs)
    tl = TypedList("PicklePoint", [struct.pack("=2d", 1.0, 2.0)])
    assert pickle.loads(pickle.dumps(tl, protocol=5)) == tl
    msg = pool.submit(child_custom_list, pickle.dumps(tl, protocol=5)).result()
    assert msg is not None and "custom type 'PicklePoint' is not registered in this process" in msg


def test_unpickling_again_reuses_a_live_function(tmp_path):
    ld = ModuleLoader().load(unique_copy(tmp_path), AFFINE)
    blob = pickle.dumps(ld.function("nexus_affine"))
    f1, f2 = pickle.loads(blob), pickle.loads(blob)
    assert f1.__self__ is f2.__self__ and f2(1.0) == 3.0
    ld.unload()  # f1 holds a handle of its own: still loaded, still found by hash
    assert pickle.loads(blob)(2.0) == 5.0


def test_without_numpy_this_file_runs_and_its_numpy_tests_skip():
    """numpy is a test dependency, not edgert's: where it is missing the
    tests that need it skip and the rest of this file runs (before, the
    module imported numpy at its top and the whole file errored)."""
    if os.environ.get("EDGERT_TEST_EMULATOR"):
        pytest.skip("a second pytest under the emulator costs too much (CI budget)")
    code = ("import sys; sys.modules['numpy'] = None; import pytest; "
            "sys.exit(pytest.main(sys.argv[1:]))")
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", code, "-q", "-rs", "-p", "no:cacheprovider",
                          os.path.abspath(__file__), "-k",
                          "out_of_band_without_a_copy or pickles_by_content_not_address"],
                         capture_output=True, text=True, timeout=120, cwd=here)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed, 2 skipped" in out.stdout, out.stdout
    assert out.stdout.count("could not import 'numpy'") == 2, out.stdout
