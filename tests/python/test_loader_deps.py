"""Verified dependency closure: load(..., dependencies={...}) and a manifest
entry's "dependencies" (docs/loader.md, "Dependencies").

fixtures/deps/libdeps_top.so needs libdeps_helper.so through DT_RUNPATH
$ORIGIN; the helper's constructor writes $EDGERT_DEPS_MARKER, so a test can
tell whether any of its code ran."""
import ctypes
import json
import os
import pathlib
import shutil
import time

import pytest

import edgert
from edgert import IntegrityError, ManifestError, ModuleFormatError
from conftest import sha

ABI = [edgert.ABIContract("top_add", [ctypes.c_int, ctypes.c_int], ctypes.c_int)]


@pytest.fixture
def deps_dir(fixtures_dir) -> pathlib.Path:
    return fixtures_dir / "deps"


@pytest.fixture
def marker(tmp_path, monkeypatch) -> pathlib.Path:
    m = tmp_path / "helper_ran"
    monkeypatch.setenv("EDGERT_DEPS_MARKER", str(m))
    return m


def test_a_listed_dependency_loads_and_its_code_runs(deps_dir, marker):
    h = sha(deps_dir / "libdeps_helper.so")
    with edgert.ModuleLoader().load(deps_dir / "libdeps_top.so", ABI,
                                    dependencies={"libdeps_helper.so": h}) as ld:
        assert ld.call("top_add", 2, 3) == 6
    assert marker.exists()


@pytest.mark.parametrize("key", ["file name", "path", "pathlib"])
def test_a_dependency_may_be_keyed_by_path(deps_dir, key):
    helper = deps_dir / "libdeps_helper.so"
    k = {"file name": "libdeps_helper.so", "path": str(helper), "pathlib": helper}[key]
    with edgert.ModuleLoader().load(deps_dir / "libdeps_top.so", ABI,
                                    dependencies={k: sha(helper)}) as ld:
        assert ld.call("top_add", 1, 1) == 3


def test_an_unlisted_dependency_is_refused_and_no_code_runs(deps_dir, marker):
    h = sha(deps_dir / "libdeps_helper.so")
    with pytest.raises(IntegrityError) as e:
        edgert.ModuleLoader().load(deps_dir / "libdeps_top.so", ABI)
    msg = str(e.value)
    assert "libdeps_helper.so" in msg and "not listed" in msg
    assert f"in folder {os.path.realpath(deps_dir)}," in msg
    assert f'dependencies={{"libdeps_helper.so": "{h}"}}' in msg
    assert '"dependencies"' in msg  # the manifest form too
    assert not marker.exists()


def test_a_world_writable_folder_is_refused_unless_listed(deps_dir, tmp_path, marker):
    d = tmp_path / "open"
    d.mkdir()
    d.chmod(0o777)
    shutil.copy(deps_dir / "libdeps_top.so", d)
    shutil.copy(deps_dir / "libdeps_helper.so", d)
    with pytest.raises(IntegrityError, match="not listed"):
        edgert.ModuleLoader().load(d / "libdeps_top.so", ABI)
    assert not marker.exists()
    with edgert.ModuleLoader().load(d / "libdeps_top.so", ABI,
                                    dependencies={"libdeps_helper.so":
                                                  sha(d / "libdeps_helper.so")}) as ld:
        assert ld.call("top_add", 4, 4) == 9
    assert marker.exists()


def test_a_wrong_hash_names_both(deps_dir, marker):
    h = sha(deps_dir / "libdeps_helper.so")
    wrong = "ab" * 32
    with pytest.raises(IntegrityError) as e:
        edgert.ModuleLoader().load(deps_dir / "libdeps_top.so", ABI,
                                   dependencies={"libdeps_helper.so": wrong})
    assert h in str(e.value) and wrong in str(e.value)
    assert not marker.exists()


def test_a_missing_dependency_is_file_not_found(deps_dir, tmp_path):
    shutil.copy(deps_dir / "libdeps_top.so", tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        edgert.ModuleLoader().load(tmp_path / "libdeps_top.so", ABI)
    assert not isinstance(e.value, ModuleFormatError)
    assert "libdeps_helper.so" in str(e.value) and "not found" in str(e.value)
    assert os.path.realpath(tmp_path) in str(e.value)  # $ORIGIN, the real folder


def test_a_dependency_with_another_soname_is_refused(deps_dir, tmp_path):
    shutil.copy(deps_dir / "libdeps_top.so", tmp_path)
    shutil.copy(deps_dir / "libdeps_badsoname.so", tmp_path / "libdeps_helper.so")
    with pytest.raises(ModuleFormatError, match='DT_SONAME "libdeps_other.so"'):
        edgert.ModuleLoader().load(tmp_path / "libdeps_top.so", ABI,
                                   dependencies={"libdeps_helper.so":
                                                 sha(tmp_path / "libdeps_helper.so")})


@pytest.mark.parametrize("deps, exc, text", [
    (["libdeps_helper.so"], TypeError, "must be a dict"),
    ({"libdeps_helper.so": 5}, TypeError, "must be a str of 64 hex digits"),
    ({"libdeps_helper.so": "abc"}, ValueError, "64 hex digits"),
    ({"": "ab" * 32}, ValueError, "no name"),
])
def test_malformed_dependencies_are_refused(deps_dir, deps, exc, text):
    with pytest.raises(exc, match=text):
        edgert.ModuleLoader().load(deps_dir / "libdeps_top.so", ABI, dependencies=deps)


def _manifest(tmp_path, deps_dir, dependencies):
    shutil.copy(deps_dir / "libdeps_top.so", tmp_path)
    shutil.copy(deps_dir / "libdeps_helper.so", tmp_path)
    entry = {"path": "libdeps_top.so", "sha256": sha(tmp_path / "libdeps_top.so"),
             "contracts": [a.to_dict() for a in ABI]}
    if dependencies is not None:
        entry["dependencies"] = dependencies
    p = tmp_path / "manifest.json"
    p.write_text(json.dumps({"schema_version": 1, "modules": [entry]}))
    return p


def test_a_manifest_lists_dependencies(tmp_path, deps_dir):
    # The helper beside the module ($ORIGIN), listed by its manifest path.
    p = _manifest(tmp_path, deps_dir, None)
    with pytest.raises(IntegrityError, match="not listed"):
        edgert.load_manifest(p)
    p = _manifest(tmp_path, deps_dir, [{"path": "libdeps_helper.so",
                                        "sha256": sha(deps_dir / "libdeps_helper.so")}])
    with edgert.load_manifest(p) as m:
        assert m.call("top_add", 5, 5) == 11


@pytest.mark.parametrize("deps, text", [
    ({"path": "x"}, r"modules\[0\]\.dependencies: expected an array"),
    (["libdeps_helper.so"], r"modules\[0\]\.dependencies\[0\]: expected an object"),
    ([{"path": "libdeps_helper.so"}], r"dependencies\[0\]: missing required key 'sha256'"),
    ([{"path": "libdeps_helper.so", "sha256": "xyz"}],
     r"dependencies\[0\]\.sha256: 'xyz' is not 64 hexadecimal digits"),
    ([{"path": 7, "sha256": "ab" * 32}], r"dependencies\[0\]\.path: expected a string"),
    ([{"path": "libdeps_helper.so", "sha256": "ab" * 32, "hash": 1}],
     r"dependencies\[0\]: unknown key 'hash'"),
    ([{"path": "nowhere.so", "sha256": "ab" * 32}], r"dependencies\[0\]\.path: 'nowhere.so' not found"),
])
def test_malformed_manifest_dependencies_are_refused(tmp_path, deps_dir, deps, text):
    p = _manifest(tmp_path, deps_dir, deps)
    with pytest.raises(ManifestError, match=text):
        edgert.load_manifest(p)


def test_reload_keeps_the_listed_dependencies(deps_dir):
    # A reload maps a fresh copy of the module; its DT_NEEDED helper must
    # still be the verified one, held for the fresh copy after the first
    # copy is freed (the reload retires it at once: no call is in flight).
    h = sha(deps_dir / "libdeps_helper.so")
    ld = edgert.ModuleLoader().load(deps_dir / "libdeps_top.so", ABI,
                                    dependencies={"libdeps_helper.so": h})
    add = ld.function("top_add")
    assert add(2, 3) == 6
    gen = ld.reload()
    assert ld.stats()["generation"] == 2, gen
    assert add(2, 3) == 6
    # Another loader of the same bytes shares the fresh copy and its helper.
    with edgert.ModuleLoader().load(deps_dir / "libdeps_top.so", ABI,
                                    dependencies={"libdeps_helper.so": h}) as other:
        assert other.call("top_add", 1, 1) == 3
    assert add(1, 1) == 3
    ld.unload()


# ---- isolated modules (isolation="process", docs/isolation.md) ------------------

needs_workers = pytest.mark.skipif(
    bool(os.environ.get("EDGERT_TEST_EMULATOR")),
    reason="qemu-user: isolated workers are exec'd programs under seccomp, which the "
    "user-mode emulator does not run as the machine would")


def helper_mapped_here() -> bool:
    with open("/proc/self/maps") as f:
        return any("deps_helper" in line for line in f)


@needs_workers
@pytest.mark.parametrize("sandbox", ["none", "strict"])
def test_an_isolated_module_maps_its_listed_dependencies_in_its_worker(deps_dir, marker,
                                                                       sandbox):
    h = sha(deps_dir / "libdeps_helper.so")
    try:
        ld = edgert.ModuleLoader().load(deps_dir / "libdeps_top.so", ABI,
                                        dependencies={"libdeps_helper.so": h},
                                        isolation="process", sandbox=sandbox, timeout=10.0)
        with ld:
            assert ld.call("top_add", 2, 3) == 6
            # the helper's constructor ran in the worker; nothing of it is mapped here
            assert marker.exists()
            assert not helper_mapped_here()
            assert ld.dependencies == [
                ("libdeps_helper.so", str(deps_dir / "libdeps_helper.so"), h)]
    except OSError as e:  # a build without libseccomp says so when the worker starts
        if sandbox == "strict" and "without libseccomp" in str(e):
            pytest.skip(f"this build has no seccomp sandbox: {e}")
        raise


@needs_workers
def test_an_isolated_closure_of_several_levels_is_mapped_leaves_first(deps_dir):
    """libdeps_chain.so -> libdeps_mid.so -> libdeps_helper.so: the worker maps
    the helper, then mid, then the module."""
    deps = {n: sha(deps_dir / n) for n in ("libdeps_mid.so", "libdeps_helper.so")}
    abi = [edgert.ABIContract("chain_add", [ctypes.c_int, ctypes.c_int], ctypes.c_int)]
    with edgert.ModuleLoader().load(deps_dir / "libdeps_chain.so", abi, dependencies=deps,
                                    isolation="process", timeout=10.0) as ld:
        assert ld.call("chain_add", 2, 3) == 51


@needs_workers
def test_an_isolated_load_after_an_in_process_one_still_gives_the_worker_the_file(deps_dir):
    """The in-process load maps the verified helper here; the worker is a fresh
    process, so the isolated load must still send it the verified copy."""
    h = sha(deps_dir / "libdeps_helper.so")
    with edgert.ModuleLoader().load(deps_dir / "libdeps_top.so", ABI,
                                    dependencies={"libdeps_helper.so": h}) as here:
        assert helper_mapped_here()
        with edgert.ModuleLoader().load(deps_dir / "libdeps_top.so", ABI,
                                        dependencies={"libdeps_helper.so": h},
                                        isolation="process", timeout=10.0) as iso:
            assert iso.call("top_add", 1, 1) == here.call("top_add", 1, 1) == 3


@needs_workers
def test_an_isolated_module_with_an_unverified_dependency_is_refused_before_any_code_runs(
        deps_dir, marker):
    with pytest.raises(IntegrityError, match="not listed"):
        edgert.ModuleLoader().load(deps_dir / "libdeps_top.so", ABI, isolation="process")
    with pytest.raises(IntegrityError, match="failed its integrity check"):
        edgert.ModuleLoader().load(deps_dir / "libdeps_top.so", ABI, isolation="process",
                                   dependencies={"libdeps_helper.so": "0" * 64})
    assert not marker.exists()


def worker_pids() -> list:
    """This process's edgert-worker children (from /proc: every thread's children)."""
    pids = set()
    for t in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{t}/children") as f:
                pids.update(int(p) for p in f.read().split())
        except OSError:
            continue
    out = []
    for p in pids:
        try:
            if os.readlink(f"/proc/{p}/exe").endswith("edgert-worker"):
                out.append(p)
        except OSError:
            continue
    return out


def worker_gone(pid: int) -> bool:
    """Whether the worker `pid` has exited (a zombie until its parent reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


@needs_workers
def test_a_respawned_worker_maps_the_dependencies_again(deps_dir, marker):
    """Every worker an isolated module starts gets the verified copies, not
    only the first: after its worker is killed, the next call starts one that
    maps them again (the helper's constructor runs again, in the new one)."""
    import signal
    h = sha(deps_dir / "libdeps_helper.so")
    others = set(worker_pids())  # earlier tests' modules not collected yet
    with edgert.ModuleLoader().load(deps_dir / "libdeps_top.so", ABI,
                                    dependencies={"libdeps_helper.so": h},
                                    isolation="process", timeout=10.0) as ld:
        assert ld.call("top_add", 2, 3) == 6
        first = sorted(set(worker_pids()) - others)
        assert len(first) == 1
        marker.unlink()
        os.kill(first[0], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not worker_gone(first[0]):  # dead while idle: the next call starts anew
            assert time.monotonic() < deadline, f"worker {first[0]} still alive 10 s after SIGKILL"
            time.sleep(0.001)
        assert ld.call("top_add", 4, 5) == 10
        assert marker.exists()
        assert ld.isolation_stats()["respawns"] >= 1
