"""Recovery and lifetimes (issue #12): ModuleLoader.reload maps a fresh
verified copy under the same module identity; bound functions follow it,
calls in flight finish on the old copy; quarantine belongs to the crashed
copy, not to a loader; a nexus reset after a crash reloads; a custom type
keeps the module holding its callbacks mapped until unregister_type."""
from __future__ import annotations

import ctypes as C
import itertools
import os
import subprocess
import sys
import textwrap
import threading

import pytest

import edgert
from conftest import fixture_path
from edgert import ABIContract, ModuleLoader, TypedList

RELOAD = fixture_path("loader_reload")
ABI = [
    ABIContract("reload_where", [], C.c_int64),
    ABIContract("reload_count", [], C.c_int64),
    ABIContract("reload_spin", [C.c_int64], C.c_int64),
    ABIContract("reload_wait", [C.c_int64], C.c_int64),
    ABIContract("reload_crash", [C.c_double], C.c_double),
]
# The same kernel keeping the GIL: calls the core does not count (the
# loader holds the GIL across a reload instead).
SPIN_GIL = ABIContract("reload_spin", [C.c_int64], C.c_int64, release_gil=False)

guard_on = pytest.mark.skipif(
    not getattr(edgert._edgert, "_guard_enabled", lambda: True)(),
    reason="EDGERT_CRASH_GUARD=0: a crash would end the process")

_names = itertools.count()


def load() -> ModuleLoader:
    return ModuleLoader().load(RELOAD, ABI)


def test_bound_functions_call_the_fresh_copy() -> None:
    loader = load()
    where, count = loader.function("reload_where"), loader.function("reload_count")
    first = where()
    assert [count(), count()] == [1, 2]
    assert loader.stats()["generation"] == 1
    assert loader.reload() is loader
    # The callables bound before now run in the fresh copy: another static,
    # a call count of its own.
    assert where() != first
    assert where() == loader.call("reload_where")
    assert count() == 1
    st = loader.stats()
    assert st["generation"] == 2 and st["live_mappings"] == 1 and st["calls_in_flight"] == 0
    loader.unload()


def test_reload_checks_the_identity(tmp_path) -> None:
    loader = load()
    other = tmp_path / "other.so"
    other.write_bytes(open(fixture_path("loader_kernels"), "rb").read())
    with pytest.raises(edgert.IntegrityError, match="identity is " + loader.sha256):
        loader.reload(other)
    assert loader.stats()["generation"] == 1  # kept its mapping
    # The same bytes under another path are the same module.
    same = tmp_path / "same.so"
    same.write_bytes(open(RELOAD, "rb").read())
    loader.reload(same)
    assert loader.stats()["generation"] == 2 and loader.call("reload_count") == 1
    loader.unload()
    with pytest.raises(edgert.ModuleUnloadedError):
        loader.reload()


def test_a_call_in_flight_finishes_on_the_old_copy() -> None:
    loader = load()
    wait = loader.function("reload_wait")
    old = loader.call("reload_where")
    r, w = os.pipe()
    got: list = []
    t = threading.Thread(target=lambda: got.append(wait(r)))
    t.start()
    try:
        for _ in range(10_000_000):  # until the call is in the kernel (no sleep)
            if loader.stats()["calls_in_flight"] == 1:
                break
        loader.reload()
        st = loader.stats()
        # The old copy stays mapped for the call still running on it...
        assert st["live_mappings"] == 2 and st["old_calls_in_flight"] == 1
        new = loader.call("reload_where")
        assert new != old
    finally:
        os.write(w, b"x")
        t.join()
        os.close(r)
        os.close(w)
    # ...which returned from the copy it started on; then that copy is gone.
    assert got == [old]
    st = loader.stats()
    assert st["live_mappings"] == 1 and st["calls_in_flight"] == 0
    loader.unload()


def test_reloads_under_calls_from_several_threads() -> None:
    loader = ModuleLoader().load(RELOAD, ABI)
    spin = loader.function("reload_spin")
    loader.bind(SPIN_GIL)
    spin_gil = loader.function("reload_spin")
    seen = {loader.call("reload_where")}
    results: list = [[] for _ in range(4)]
    errors: list = []
    start = threading.Barrier(5)

    def work(i: int) -> None:
        f = spin if i % 2 == 0 else spin_gil
        start.wait()
        try:
            for _ in range(150):
                results[i].append(f(2000))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    start.wait()
    for _ in range(12):
        loader.reload()
        seen.add(loader.call("reload_where"))
    for t in threads:
        t.join()
    assert errors == []
    # None lost, and every answer came from a copy that was mapped.
    assert [len(r) for r in results] == [150] * 4
    assert {x for r in results for x in r} <= seen
    st = loader.stats()
    assert st["generation"] == 13 and st["live_mappings"] == 1 and st["calls_in_flight"] == 0
    loader.unload()


@guard_on
def test_reload_after_a_contained_crash() -> None:
    loader = load()
    f = loader.function("reload_crash")
    with pytest.raises(edgert.KernelCrash):
        f(-1.0)
    assert loader.quarantined
    assert loader.stats()["crashed_generation"] == 1
    with pytest.raises(edgert.QuarantinedError):
        f(1.0)
    loader.reload()
    assert not loader.quarantined
    assert f(2.0) == 5.0  # bound before the crash, calling the fresh copy
    st = loader.stats()
    assert st["generation"] == 2 and st["crashed_generation"] == 1
    loader.unload()


@guard_on
def test_quarantine_belongs_to_the_crashed_copy_not_to_a_loader() -> None:
    a = load()
    with pytest.raises(edgert.KernelCrash):
        a.call("reload_crash", -1.0)
    assert a.quarantined
    # A second loader of the same bytes is not refused (a fresh copy)...
    b = load()
    assert not b.quarantined
    assert b.call("reload_crash", 1.0) == 3.0
    assert b.call("reload_count") == 1
    # ...and does not lift the first one's quarantine.
    assert a.quarantined
    with pytest.raises(edgert.QuarantinedError):
        a.call("reload_crash", 1.0)
    a.reload()
    assert a.call("reload_crash", 1.0) == 3.0
    a.unload()
    b.unload()


@guard_on
def test_nexus_reset_after_a_crash_leaves_the_kernel_serving() -> None:
    loader = load()
    nx = edgert.Nexus()
    k = nx.register("crashy", loader.function("reload_crash"), lambda x: x * 2.0 + 1.0,
                    max_failures=1)
    assert k(-1.0) == -1.0  # crashed, the reference served
    assert k.stats()["state"] == "quarantined" and loader.quarantined
    k.reset()
    assert k(2.0) == 5.0
    st = k.stats()
    # Served by the compiled side (before: quarantined again at this call).
    assert st["state"] == "active" and st["compiled"] == 1 and st["failures"] == 1
    assert st["generation"] == 2 and not loader.quarantined
    loader.unload()


def _register_point(loader: ModuleLoader, name: str) -> None:
    addrs = [loader.address_of(n) for n in ("sizeof_point", "check_point", "copy_point")]
    assert loader.call("register_custom_type", name.encode(), *addrs) == 0


POINT_ABI = ABIContract("register_custom_type",
                        [C.c_char_p, C.c_void_p, C.c_void_p, C.c_void_p], C.c_int)


class PointObj:
    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y


def test_unregister_type_is_refused_while_a_container_exists() -> None:
    name = f"ReloadPoint{next(_names)}"
    m = ModuleLoader().load(fixture_path("libcontainers_point"), POINT_ABI)
    _register_point(m, name)
    tl = TypedList(name, [PointObj(1.0, 2.0)])
    d = edgert.TypedDict("int", name)
    with pytest.raises(BufferError, match=f"'{name}': 2 containers"):
        edgert.unregister_type(name)
    del d
    with pytest.raises(BufferError, match="1 container of it still exists"):
        edgert.unregister_type(name)
    assert len(tl) == 1
    del tl
    edgert.unregister_type(name)
    with pytest.raises(ValueError, match="unknown element type"):
        TypedList(name)
    with pytest.raises(LookupError):
        edgert.unregister_type(name)
    # The name is free again.
    _register_point(m, name)
    assert TypedList(name, [PointObj(3.0, 4.0)]).itemsize == 16
    edgert.unregister_type(name)
    m.unload()
    with pytest.raises(ValueError, match="built-in"):
        edgert.unregister_type("int")


def test_a_custom_type_outlives_the_with_block_of_its_module() -> None:
    # In a child: before, the container's use after the `with` ran the
    # check callback in unmapped code (SIGSEGV).
    code = textwrap.dedent(f'''
        import ctypes as C
        import edgert
        from edgert import ABIContract, ModuleLoader, TypedList
        class PointObj:
            def __init__(self, x, y):
                self.x, self.y = x, y
        abi = ABIContract("register_custom_type",
                          [C.c_char_p, C.c_void_p, C.c_void_p, C.c_void_p], C.c_int)
        with ModuleLoader().load({fixture_path("libcontainers_point")!r}, abi) as m:
            addrs = [m.address_of(n) for n in ("sizeof_point", "check_point", "copy_point")]
            assert m.call("register_custom_type", b"Pt", *addrs) == 0
        tl = TypedList("Pt", [PointObj(1.0, 2.0), PointObj(3.0, 4.0)])
        tl.append(PointObj(5.0, 6.0))
        print(len(tl), tl.itemsize)
        del tl
        edgert.unregister_type("Pt")
        print("unregistered")
    ''')
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=os.environ.copy())
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.split("\n")[:2] == ["3 16", "unregistered"]
