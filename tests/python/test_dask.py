"""edgert.dask.ShipModules on a real LocalCluster (2 worker processes, one
cluster for the module) and edgert.ray.setup_hook's logic without a
cluster (docs/distributed.md)."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import sysconfig
import textwrap

import pytest

import edgert
from edgert import ABIContract, IntegrityError, ModuleLoader, Nexus, TypedList
from conftest import fixture_path, sha

D = ctypes.c_double
AFFINE = ABIContract("nexus_affine", [D], D)
SUM = ABIContract("nexus_sum_f64", [ctypes.POINTER(D), ctypes.c_size_t], D)

if os.environ.get("EDGERT_TEST_EMULATOR"):
    pytest.skip("Dask clusters are too slow under the AArch64 emulator (CI budget)",
                allow_module_level=True)
if sysconfig.get_config_var("Py_GIL_DISABLED"):
    pytest.skip("distributed does not support free-threaded CPython builds",
                allow_module_level=True)


def unique_copy(directory, tag: bytes) -> str:
    """The nexus kernels with bytes appended past the ELF image: loads as
    before, with a SHA-256 of its own."""
    dst = os.path.join(str(directory), "kernels.so")
    data = open(fixture_path("libnexus_kernels"), "rb").read()
    with open(dst, "wb") as f:
        f.write(data + b"\0edgert-test-dask:" + tag + os.urandom(16))
    return dst


def affine_ref(x):
    return 2.0 * x + 1.0


def sum_ref(xs, n):
    return float(sum(xs[:n]))


# ---- Dask ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed")
    import cloudpickle
    # The references defined here travel by value (the workers cannot import this file).
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def run_on_worker(kernel, path, values):
    """A task: the file is nowhere; the kernel was unpickled by hash."""
    xs = TypedList(float, values)
    return os.path.exists(path), kernel(xs, len(xs)), os.getpid()


def test_ship_modules_runs_kernels_on_workers_without_the_file(client, tmp_path):
    from edgert.dask import ShipModules
    path = unique_copy(tmp_path, b"ship")
    plugin = ShipModules([path])
    client.register_plugin(plugin)
    ld = ModuleLoader().load(path, [AFFINE, SUM])
    assert plugin.sha256s == [ld.sha256]
    nx = Nexus()
    k = nx.register("vsum", ld.function("nexus_sum_f64"), sum_ref)
    os.remove(path)
    parts = [[float(i + j) for j in range(10)] for i in range(4)]
    futs = [client.submit(run_on_worker, k, path, p, pure=False) for p in parts]
    got = client.gather(futs)
    assert [g[0] for g in got] == [False] * 4
    assert [g[1] for g in got] == [sum(p) for p in parts]
    assert all(g[2] != os.getpid() for g in got)
    # Every worker holds the module, loaded by the plugin.
    held = client.run(lambda sha: edgert._edgert.module_loaded(sha), ld.sha256)
    assert len(held) == 2 and all(held.values())


def test_ship_modules_from_a_manifest(client, tmp_path):
    # A manifest listing two modules with their SHA-256: the client checks
    # each file against it and ships the bytes; the files and the manifest
    # are gone before any task runs, and each worker binds both by hash.
    from edgert.dask import ShipModules
    from edgert.manifest import load_manifest, write_manifest
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        unique_copy(tmp_path / sub, b"manifest-" + sub.encode())
    manifest = str(tmp_path / "ship.json")
    doc = write_manifest(manifest, {"a/kernels.so": [AFFINE], "b/kernels.so": [SUM]})
    listed = [m["sha256"] for m in doc["modules"]]
    assert len(set(listed)) == 2
    plugin = ShipModules(manifest)
    assert plugin.sha256s == listed
    client.register_plugin(plugin)
    lm = load_manifest(manifest)
    aff = Nexus().register("maff", lm["a/kernels.so"].function("nexus_affine"), affine_ref)
    vsum = lm["b/kernels.so"].function("nexus_sum_f64")
    for sub in ("a", "b"):
        os.remove(tmp_path / sub / "kernels.so")
    os.remove(manifest)
    futs = [client.submit(run_on_worker, vsum, str(tmp_path / "b" / "kernels.so"),
                          [float(i), 2.0, 3.0], pure=False) for i in range(4)]
    futs += [client.submit(lambda k, x: (k(x), k.stats()["compiled"]), aff, float(i), pure=False)
             for i in range(4)]
    got = client.gather(futs)
    assert [g[:2] for g in got[:4]] == [(False, i + 5.0) for i in range(4)]
    # the compiled side served each call; a worker keeps one kernel per
    # shipped handle (nexus_report's counts), so its count grows per task
    assert [g[0] for g in got[4:]] == [2.0 * i + 1.0 for i in range(4)]
    assert all(1 <= g[1] <= 4 for g in got[4:])
    held = client.run(lambda shas: [edgert._edgert.module_loaded(s) for s in shas], listed)
    assert len(held) == 2 and all(v == [True, True] for v in held.values())


def test_a_manifest_whose_module_does_not_match_is_refused_on_the_client(tmp_path):
    # The manifest's hash is checked on the client, where the file is read:
    # ShipModules refuses in its constructor, before it can be registered on
    # a client, naming the module, both hashes and the manifest.
    from edgert.dask import ShipModules
    from edgert.manifest import write_manifest
    path = unique_copy(tmp_path, b"manifest-tampered")
    manifest = str(tmp_path / "ship.json")
    listed = write_manifest(manifest, {"kernels.so": [AFFINE]})["modules"][0]["sha256"]
    with open(path, "ab") as f:  # changed after the manifest was written
        f.write(b"\0tampered")
    with pytest.raises(IntegrityError) as ei:
        ShipModules(manifest)
    assert str(ei.value) == (f"{path}: SHA-256 is {sha(path)}, the manifest {manifest} "
                             f"expects {listed}; not shipped")


def reduce_partition(kernel, part):
    """A task of a pipeline: the partition arrived pickled (a TypedList out
    of band, a numpy array); the kernel reduces it in place."""
    st = kernel.stats()
    return kernel(part, len(part)), kernel.stats()["compiled"] - st["compiled"], \
        type(part).__name__, kernel.stats()["guard_misses"] - st["guard_misses"], \
        part.__array_interface__["data"][0] % 8 if hasattr(part, "__array_interface__") else 0


def test_a_pipeline_over_typed_list_and_numpy_partitions(client, tmp_path):
    # Partitions travel as TypedLists and numpy arrays; the nexus kernel's
    # compiled side takes both buffers (no guard miss, no reference call),
    # on workers that have only the shipped copy of the module.
    np = pytest.importorskip("numpy")
    from edgert.dask import ShipModules
    path = unique_copy(tmp_path, b"pipeline")
    client.register_plugin(ShipModules([path]))
    ld = ModuleLoader().load(path, [SUM])
    k = Nexus().register("psum", ld.function("nexus_sum_f64"), sum_ref)
    os.remove(path)
    parts = [TypedList(float, [float(i * 100 + j) for j in range(100)]) for i in range(3)]
    parts += [np.arange(i * 100, i * 100 + 100, dtype=np.float64) for i in range(3, 6)]
    futs = client.map(reduce_partition, [k] * len(parts), parts, pure=False)
    got = client.gather(futs)
    assert [g[0] for g in got] == [float(sum(range(i * 100, i * 100 + 100))) for i in range(6)]
    # Served by the compiled side, except a numpy partition Dask unpickled
    # at an address not aligned for doubles: the call refuses it (a
    # misaligned double * is undefined behaviour) and the reference serves.
    assert all(g[1] == (1 if g[4] == 0 else 0) and g[3] == 1 - g[1] for g in got)
    assert all(g[1] == 1 for g in got[:3])  # TypedLists: their own aligned storage
    assert [g[2] for g in got] == ["TypedList"] * 3 + ["ndarray"] * 3


def test_a_kernel_and_a_nexus_travel_through_dask(client, tmp_path):
    from edgert.dask import ShipModules
    path = unique_copy(tmp_path, b"nexus")
    client.register_plugin(ShipModules(path))
    ld = ModuleLoader().load(path, AFFINE)
    nx = Nexus()
    nx.register("aff", ld.function("nexus_affine"), affine_ref)
    os.remove(path)
    fut = client.submit(lambda n, x: (n.call("aff", x), n["aff"].stats()["compiled"]), nx, 2.0)
    assert fut.result() == (5.0, 1)


def keep_and_call(nx, n):
    """A task: keeps the unpickled Nexus on its worker (as a pipeline's
    worker-side state would) and calls its kernel n times."""
    from distributed import get_worker
    w = get_worker()
    if not hasattr(w, "_edgert_test_nexus"):
        w._edgert_test_nexus = []
    w._edgert_test_nexus.append(nx)
    for i in range(n):
        assert nx.call("rep_aff", float(i)) == 2.0 * i + 1.0
    return w.address


def drop_kept(dask_worker):
    dask_worker.__dict__.pop("_edgert_test_nexus", None)


def test_nexus_report_totals_are_the_sum_of_the_workers(client, tmp_path):
    from edgert.dask import NexusReport, ShipModules, nexus_report
    path = unique_copy(tmp_path, b"report")
    client.register_plugin(ShipModules(path))
    ld = ModuleLoader().load(path, AFFINE)
    nx = Nexus()
    nx.register("rep_aff", ld.function("nexus_affine"), affine_ref)
    workers = sorted(client.scheduler_info()["workers"])
    calls = {workers[0]: 3, workers[1]: 5}
    try:
        got = client.gather([client.submit(keep_and_call, nx, n, workers=[w], pure=False)
                             for w, n in calls.items()])
        assert sorted(got) == workers
        # A second Nexus on the first worker: the same kernel name merges.
        client.submit(keep_and_call, nx, 2, workers=[workers[0]], pure=False).result()
        calls[workers[0]] += 2
        rep = nexus_report(client)
        assert isinstance(rep, NexusReport) and rep.workers == workers
        mine = {r["worker"]: r for r in rep.rows if r["kernel"] == "rep_aff"}
        assert {w: r["calls"] for w, r in mine.items()} == calls
        assert {w: r["compiled"] for w, r in mine.items()} == calls
        assert mine[workers[0]]["nexuses"] == 2 and mine[workers[1]]["nexuses"] == 1
        # Both Nexus objects on the first worker hold its one kernel: counted once.
        assert mine[workers[0]]["kernels"] == mine[workers[1]]["kernels"] == 1
        t = rep.total("rep_aff")
        assert t["calls"] == t["compiled"] == sum(calls.values()) == 10
        assert t["failures"] == 0 and t["nexuses"] == 3 and t["worker"] == "total"
        text = str(rep)
        line = [ln for ln in text.splitlines() if ln.startswith("total") and "rep_aff" in ln]
        assert len(line) == 1 and " 10 " in line[0] and text.splitlines()[0].startswith("worker")
        assert sum(ln.count("rep_aff") for ln in text.splitlines()) == 3
        # Only the workers asked.
        one = nexus_report(client, workers=[workers[1]])
        assert one.workers == [workers[1]] and one.total("rep_aff")["calls"] == 5
        with pytest.raises(KeyError, match="no_such"):
            one.total("no_such")
        # The client's own Nexus is not a worker's.
        assert nx["rep_aff"].stats()["calls"] == 0
    finally:
        client.run(drop_kept)
    import gc
    client.run(gc.collect)
    # The Nexus objects are gone; the kernel unpickled on each worker stays
    # with its counts (every pickle of one handle is one kernel there).
    after = {r["worker"]: r for r in nexus_report(client).rows if r["kernel"] == "rep_aff"}
    assert {w: (r["calls"], r["nexuses"], r["kernels"]) for w, r in after.items()} == \
        {workers[0]: (5, 0, 1), workers[1]: (5, 0, 1)} and calls[workers[1]] == 5


def test_nexus_report_counts_a_plain_map_of_a_kernel_with_nothing_kept(client, tmp_path):
    # The pipeline of the issue: a kernel handle is the task function
    # (client.map / client.submit); nothing on a worker keeps a Nexus or the
    # kernel. Every call is counted, per worker and in total, after the
    # tasks and their temporaries are gone.
    import gc
    from edgert.dask import ShipModules, nexus_report
    path = unique_copy(tmp_path, b"map")
    client.register_plugin(ShipModules(path))
    ld = ModuleLoader().load(path, AFFINE)
    k = edgert.Kernel("map_aff", ld.function("nexus_affine"), affine_ref)
    workers = sorted(client.scheduler_info()["workers"])
    futs = client.map(k, [float(i) for i in range(5)], workers=[workers[0]], pure=False)
    assert client.gather(futs) == [2.0 * i + 1.0 for i in range(5)]
    futs += client.map(k, [float(i) for i in range(3)], workers=[workers[1]], pure=False)
    futs.append(client.submit(k, 10.0, workers=[workers[1]], pure=False))
    assert client.gather(futs)[5:] == [1.0, 3.0, 5.0, 21.0]
    del futs
    client.run(gc.collect)
    rep = nexus_report(client)
    mine = {r["worker"]: r for r in rep.rows if r["kernel"] == "map_aff"}
    assert {w: r["calls"] for w, r in mine.items()} == {workers[0]: 5, workers[1]: 4}
    assert {w: r["compiled"] for w, r in mine.items()} == {workers[0]: 5, workers[1]: 4}
    # One kernel per worker however many tasks unpickled it; no Nexus holds it.
    assert all(r["kernels"] == 1 and r["nexuses"] == 0 for r in mine.values())
    t = rep.total("map_aff")
    assert t["calls"] == t["compiled"] == 9 and t["kernels"] == 2 and t["failures"] == 0
    # After a swap here the handle is another kernel there: its calls count
    # beside the first version's, under the same name.
    k.swap(ld.function("nexus_affine"))
    assert client.submit(k, 1.0, workers=[workers[0]], pure=False).result() == 3.0
    row = [r for r in nexus_report(client).rows
           if r["kernel"] == "map_aff" and r["worker"] == workers[0]][0]
    assert row["calls"] == 6 and row["kernels"] == 2
    assert k.stats()["calls"] == 0  # the client's handle counts only its own calls


def test_the_live_nexus_registry_is_weak():
    import gc
    nx = Nexus()
    assert any(n is nx for n in Nexus.live())
    before = len(Nexus.live())
    del nx
    gc.collect()
    assert len(Nexus.live()) == before - 1


CRASH = ABIContract("guard_null_deref", [D], D)


def crash_on_worker(f, x):
    return f(x)


def test_a_kernel_crash_on_a_worker_arrives_naming_worker_function_module_signal(client):
    import pickle
    from edgert.dask import NameCrashes
    path = fixture_path("libguard_crashy")
    client.register_plugin(NameCrashes())
    f = ModuleLoader().load(path, CRASH).function("guard_null_deref")
    workers = sorted(client.scheduler_info()["workers"])
    fut = client.submit(crash_on_worker, f, 1.0, workers=[workers[1]], pure=False)
    with pytest.raises(edgert.KernelCrash) as ei:
        fut.result()
    e = ei.value
    assert e.worker == workers[1] and f"(on worker {workers[1]})" in str(e)
    assert e.function == "guard_null_deref" and e.module == path
    assert e.signal_name == "SIGSEGV" and e.signal == 11 and not e.sent
    assert "guard_null_deref" in str(e) and "SIGSEGV" in str(e) and path in str(e)
    # It pickles again as it came (a client that passes it on).
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is edgert.KernelCrash and str(back) == str(e)
    assert back.__dict__ == e.__dict__
    # The worker contained it: it still runs kernels.
    assert client.submit(lambda: 1 + 1, workers=[workers[1]], pure=False).result() == 2
    # (the crashed module is quarantined there, as in any process; another runs)
    aff = ModuleLoader().load(fixture_path("libnexus_kernels"), AFFINE).function("nexus_affine")
    assert client.submit(crash_on_worker, aff, 1.0, workers=[workers[1]], pure=False).result() == 3.0


def test_kernel_crash_names_its_process_and_a_named_worker_in_the_message_and_pickles(tmp_path):
    import pickle
    import socket
    from edgert import workers
    dst = os.path.join(str(tmp_path), "crashy.so")
    with open(dst, "wb") as fh:  # a hash of its own: its quarantine is nobody else's
        fh.write(open(fixture_path("libguard_crashy"), "rb").read() + b"\0dask-crash" + os.urandom(16))
    # The main process: named "host:pid", its message as it was.
    with pytest.raises(edgert.KernelCrash) as ei:
        ModuleLoader().load(dst, CRASH).call("guard_null_deref", 1.0)
    assert ei.value.worker == f"{socket.gethostname()}:{os.getpid()}"
    assert "on worker" not in str(ei.value)
    saved = workers._named_pid
    try:
        edgert.worker_initializer("tcp://127.0.0.1:9")
        with pytest.raises(edgert.KernelCrash) as ei:
            ModuleLoader().load(dst, CRASH).call("guard_null_deref", 1.0)  # a load clears the quarantine
        # A name set in another process (a fork parent) is not this one's.
        workers._named_pid = os.getpid() + 1
        assert workers._crash_site() == (f"{socket.gethostname()}:{os.getpid()}", False)
        with pytest.raises(TypeError, match="must be a str or None, not int"):
            edgert.worker_initializer(5)
    finally:
        edgert._edgert._crash_worker = None
        workers._named_pid = saved
    e = ei.value
    assert e.worker == "tcp://127.0.0.1:9" and str(e).endswith("(on worker tcp://127.0.0.1:9)")
    for proto in (2, 5):
        back = pickle.loads(pickle.dumps(e, protocol=proto))
        assert type(back) is edgert.KernelCrash and back.args == e.args and back.__dict__ == e.__dict__
        assert (back.function, back.module, back.signal_name) == ("guard_null_deref", dst, "SIGSEGV")


def test_tampered_bytes_are_refused_naming_the_worker(client, tmp_path):
    from edgert.dask import ShipModules
    plugin = ShipModules(unique_copy(tmp_path, b"tamper"))
    name, sha, data = plugin._modules[0]
    plugin._modules[0] = (name, sha, data[:-1] + bytes([data[-1] ^ 1]))  # damaged in transit
    plugin.name = "edgert-test-tampered"
    workers = list(client.scheduler_info()["workers"])
    with pytest.raises(IntegrityError) as ei:
        client.register_plugin(plugin)
    msg = str(ei.value)
    assert any(f"worker {w}" in msg for w in workers), msg
    assert f"expected {sha}" in msg and "nothing was loaded" in msg
    assert not any(client.run(lambda s: edgert._edgert.module_loaded(s), sha).values())


def test_ship_modules_refuses_bad_input(tmp_path):
    pytest.importorskip("distributed")
    from edgert.dask import ShipModules
    with pytest.raises(ValueError, match="no modules to ship"):
        ShipModules([])
    with pytest.raises(TypeError, match="expected a manifest path"):
        ShipModules(5)
    with pytest.raises(FileNotFoundError):
        ShipModules([str(tmp_path / "absent.so")])


def test_importing_edgert_imports_no_engine():
    code = "import sys, edgert; print(sorted(m for m in ('dask', 'distributed', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- Ray: the setup hook's logic, without a cluster ----------------------------------

def test_ray_setup_hook_installs_by_hash_in_a_fresh_process(tmp_path):
    """Ray (17 s to start here) is not run by the suite: the hook it would
    call at a worker's start runs in a fresh process, which then unpickles
    a kernel by hash with the file gone, and refuses damaged bytes."""
    import pickle
    import edgert.ray
    path = unique_copy(tmp_path, b"ray")
    hook = edgert.ray.setup_hook([path])
    ld = ModuleLoader().load(path, AFFINE)
    kernel = Nexus().register("aff", ld.function("nexus_affine"), abs)
    bad = edgert.ray.setup_hook([path])
    n, s, data = bad._modules[0]
    bad._modules[0] = (n, s, data[:-1] + bytes([data[-1] ^ 1]))
    os.remove(path)
    for name, obj in (("hook", hook), ("kernel", kernel), ("bad", bad)):
        (tmp_path / f"{name}.pkl").write_bytes(pickle.dumps(obj))
    code = textwrap.dedent(f"""
        import pickle, edgert
        d = {str(tmp_path)!r}
        def load(name):
            return pickle.loads(open(d + "/" + name + ".pkl", "rb").read())
        try:
            load("kernel")
            print("unexpected: the kernel unpickled before the hook ran")
        except FileNotFoundError:
            print("no module before the hook")
        try:
            load("bad")()
        except edgert.IntegrityError as exc:
            print("refused:", exc)
        load("hook")()
        k = load("kernel")
        print("kernel", k(3.0), k.stats()["compiled"])
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "no module before the hook", out.stdout
    assert lines[1].startswith("refused: ray worker pid ") and f"expected {s}" in lines[1]
    assert lines[2] == "kernel 7.0 1"
