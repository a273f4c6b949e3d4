"""edgert.ray.setup_hook on a real local Ray cluster (ray.init(num_cpus=2)):
modules travel with the work and kernels pickled by content bind to them by
SHA-256 on workers that have no copy of the file (docs/distributed.md).

Ray is installed for the interpreter `make test` uses (the Makefile's
PY_MAIN_PACKAGES); elsewhere (the version matrix, free-threaded and
emulated builds, ASan) the module is skipped with the reason."""
from __future__ import annotations

import os
import pickle
import sysconfig

import pytest

import edgert
import edgert.ray
from test_dask import AFFINE, affine_ref, unique_copy

if os.environ.get("EDGERT_TEST_EMULATOR"):
    pytest.skip("a Ray cluster is too slow under the AArch64 emulator (CI budget)",
                allow_module_level=True)
if sysconfig.get_config_var("Py_GIL_DISABLED"):
    pytest.skip("Ray has no free-threaded CPython build", allow_module_level=True)
if os.environ.get("EDGERT_SANITIZED"):
    pytest.skip("Ray's own binaries do not start under the preloaded ASan runtime",
                allow_module_level=True)
ray = pytest.importorskip("ray", reason="Ray is not installed for this interpreter "
                                        "(PyPI has no build, or it is not `make test`'s)")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """One local cluster for the module, whose workers get a copy of the
    nexus kernels through the setup hook; the file is gone before any task
    runs, so a worker can only bind by hash."""
    d = tmp_path_factory.mktemp("ray")
    path = unique_copy(d, b"ray-cluster")
    hook = edgert.ray.setup_hook([path])
    # Workers import the references pickled by name (test_dask.affine_ref)
    # from this folder.
    here = os.path.dirname(os.path.abspath(__file__))
    pypath = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": hook,
                          "env_vars": {"PYTHONPATH": pypath}})
    try:
        local = edgert.ModuleLoader().load(path, AFFINE)
        os.unlink(path)
        yield local, hook.sha256s[0]
    finally:
        ray.shutdown()


def test_kernels_unpickle_by_hash_on_ray_workers(shipped):
    local, sha = shipped
    f = local.function("nexus_affine")

    @ray.remote
    def call(blob, x):
        g = pickle.loads(blob)
        return g(x), os.getpid()

    blob = pickle.dumps(f)
    out = ray.get([call.remote(blob, float(i)) for i in range(8)])
    assert [r for r, _ in out] == [2.0 * i + 1.0 for i in range(8)]
    assert all(pid != os.getpid() for _, pid in out)


def test_a_nexus_kernel_travels_with_its_reference(shipped):
    local, _ = shipped
    nx = edgert.Nexus()
    k = nx.register("affine", local.function("nexus_affine"), affine_ref, max_failures=5)

    @ray.remote
    def run(blob, xs):
        kern = pickle.loads(blob)
        return [kern(x) for x in xs], kern.stats()["compiled"]

    results, compiled = ray.get(run.remote(pickle.dumps(k), [0.5, 1.5, 2.5]))
    assert results == [2.0, 4.0, 6.0]
    assert compiled == 3  # counters are per process: the worker's own
    assert k.stats()["compiled"] == 0


def _crashy():
    import ctypes
    from conftest import fixture_path
    ld = edgert.ModuleLoader().load(fixture_path("guard_crashy"),
                                    edgert.ABIContract("guard_null_deref", [ctypes.c_double],
                                                       ctypes.c_double))
    return ld


def test_the_guard_stays_in_front_of_rays_handlers(shipped):
    # ray.init installed Ray's own SIGSEGV handler in this process; without
    # the guard put back in front, this fault would end pytest.
    ld = _crashy()
    with pytest.raises(edgert.KernelCrash):
        ld.call("guard_null_deref", 1.0)

    @ray.remote
    def crash_on_worker(blob):
        g = pickle.loads(blob)
        try:
            g(1.0)
        except edgert.KernelCrash as exc:
            return exc.signal_name, os.getpid()
        return None, os.getpid()

    assert ray.get(crash_on_worker.remote(pickle.dumps(ld.function("guard_null_deref"))))[0] == \
        "SIGSEGV"


def test_a_crash_on_a_ray_worker_reaches_the_driver_naming_the_worker(shipped):
    # Not caught in the task: what reaches the driver is Ray's task error,
    # an instance of KernelCrash too, carrying the worker's KernelCrash with
    # the name setup_hook gave that worker.
    import re
    import socket
    ld = _crashy()

    @ray.remote(max_retries=0)
    def crash(blob):
        return pickle.loads(blob)(1.0)

    with pytest.raises(edgert.KernelCrash) as ei:
        ray.get(crash.remote(pickle.dumps(ld.function("guard_null_deref"))))
    e = ei.value
    cause = getattr(e, "cause", e)  # ray.exceptions.RayTaskError keeps the original
    assert isinstance(cause, edgert.KernelCrash)
    m = re.fullmatch(r"ray worker pid (\d+) on (.+)", cause.worker)
    assert m and int(m.group(1)) != os.getpid() and m.group(2) == socket.gethostname(), \
        cause.worker
    assert f"(on worker {cause.worker})" in str(cause) and f"(on worker {cause.worker})" in str(e)
    assert (cause.function, cause.signal_name, cause.signal) == ("guard_null_deref", "SIGSEGV", 11)
    assert cause.module == ld.path
    assert e.worker == cause.worker  # Ray's error passes attribute reads to the cause


def test_zz_a_fault_after_ray_shutdown_is_still_contained(shipped):
    # ray.shutdown resets SIGSEGV to the default action (the process would
    # die at the next kernel fault): the guard goes back in front. Named to
    # run last in this module; the fixture's own shutdown is then a no-op.
    ray.shutdown()
    ld = _crashy()
    with pytest.raises(edgert.KernelCrash):
        ld.call("guard_null_deref", 1.0)
