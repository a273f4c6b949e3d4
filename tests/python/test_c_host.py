"""examples/c_host against the INSTALLED package: `cmake --install` the build
into a temporary prefix, build the example standalone with find_package(edgert)
and with pkg-config, and run both on a manifest that lists a test kernel."""
import glob
import hashlib
import json
import os
import pathlib
import shutil
import subprocess

import pytest

from conftest import ROOT, fixture_path, target_cmd

EXAMPLE = ROOT / "examples" / "c_host"
BUILD = pathlib.Path(os.environ.get("EDGERT_BUILD_DIR") or ROOT / "build")


def built(name: str) -> str:
    try:
        return fixture_path(name)
    except FileNotFoundError:
        return fixture_path("lib" + name)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert r.returncode == 0, f"{cmd}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    if not (BUILD / "CMakeCache.txt").exists():
        pytest.fail(f"{BUILD} is not a configured build: run `make build` first")
    p = tmp_path_factory.mktemp("prefix")
    run(["cmake", "--install", str(BUILD), "--prefix", str(p)])
    return p


def libdir(prefix) -> pathlib.Path:
    pcs = glob.glob(str(prefix / "**" / "pkgconfig" / "edgert.pc"), recursive=True)
    assert pcs, f"no edgert.pc installed under {prefix}"
    return pathlib.Path(pcs[0]).parent.parent


@pytest.fixture
def manifest(tmp_path):
    """tmp/kernels/libmanifest_kernels.so and tmp/manifest.json listing it."""
    (tmp_path / "kernels").mkdir()
    so = tmp_path / "kernels" / "libmanifest_kernels.so"
    shutil.copyfile(built("manifest_kernels"), so)
    doc = {"schema_version": 1, "modules": [{
        "path": "kernels/libmanifest_kernels.so",
        "sha256": hashlib.sha256(so.read_bytes()).hexdigest(),
        "contracts": [{"function_name": "vec_add_f32", "arg_types": ["LP_c_float", "c_size_t"],
                       "return_type": None, "calling_convention": "cdecl"},
                      {"function_name": "add", "arg_types": ["c_double", "c_double"],
                       "return_type": "c_double", "calling_convention": "cdecl"}]}]}
    m = tmp_path / "manifest.json"
    m.write_text(json.dumps(doc))
    return m


def env_for(prefix):
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = str(libdir(prefix)) + os.pathsep + env.get("LD_LIBRARY_PATH", "")
    env["PKG_CONFIG_PATH"] = str(libdir(prefix) / "pkgconfig")
    return env


def check_runs(exe, manifest, env):
    r = run(target_cmd(exe, manifest), env=env)
    assert r.stdout.splitlines() == [
        f"module kernels/libmanifest_kernels.so sha256 {json.loads(manifest.read_text())['modules'][0]['sha256']}",
        "  None vec_add_f32(LP_c_float, c_size_t)",
        "  c_double add(c_double, c_double)",
        "vec_add_f32([1, 2, 3, 4]) -> [2, 4, 6, 8]",
    ]
    # A wrong signature is refused before any call.
    r = subprocess.run(target_cmd(exe, manifest, "add"), capture_output=True, text=True, env=env)
    assert r.returncode == 1
    assert "add has the contract c_double add(c_double, c_double)" in r.stderr
    # A tampered module: nothing of it runs, the error names the module.
    so = manifest.parent / "kernels" / "libmanifest_kernels.so"
    good = so.read_bytes()
    so.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    try:
        r = subprocess.run(target_cmd(exe, manifest), capture_output=True, text=True, env=env)
    finally:
        so.write_bytes(good)
    assert r.returncode == 1
    assert r.stderr.startswith("c_host: loading the manifest: EINTEGRITY: "
                               "modules[0] ('kernels/libmanifest_kernels.so'): "), r.stderr
    assert "vec_add_f32(" not in r.stdout


def test_installed_package_has_headers_pc_and_cmake_files(prefix):
    assert (prefix / "include" / "edgert.h").exists()
    assert (prefix / "include" / "edgert" / "manifest.h").exists()
    lib = libdir(prefix)
    assert (lib / "libedgert.so.0").exists() and (lib / "libedgert.a").exists()
    assert (lib / "cmake" / "edgert" / "edgertConfig.cmake").exists()


def test_c_host_builds_with_find_package_and_runs(prefix, manifest, tmp_path):
    b = tmp_path / "build-find-package"
    env = env_for(prefix)
    run(["cmake", "-S", str(EXAMPLE), "-B", str(b), f"-DCMAKE_PREFIX_PATH={prefix}"], env=env)
    run(["cmake", "--build", str(b), "-j", "2"], env=env)
    check_runs(b / "c_host", manifest, env)
    # Its own kernel and the manifest its build wrote beside it work too.
    r = run(target_cmd(b / "c_host", b / "manifest.json"), env=env)
    assert r.stdout.splitlines()[-1] == "vec_add_f32([1, 2, 3, 4]) -> [2, 4, 6, 8]"


def test_c_host_builds_with_pkg_config_and_runs(prefix, manifest, tmp_path):
    env = env_for(prefix)
    flags = run(["pkg-config", "--cflags", "--libs", "edgert"], env=env).stdout.split()
    exe = tmp_path / "c_host_pc"
    cc = os.environ.get("CC", "cc")
    run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", str(EXAMPLE / "main.c"), *flags, "-o", str(exe)], env=env)
    check_runs(exe, manifest, env)


def test_c_host_built_in_tree_runs_its_own_manifest():
    exe = BUILD / "examples" / "c_host" / "c_host"
    if not exe.exists():
        pytest.fail(f"{exe} is not built: run `make build` first")
    r = run(target_cmd(exe, BUILD / "examples" / "c_host" / "manifest.json"))
    lines = r.stdout.splitlines()
    assert lines[0].startswith("module libvecadd.so sha256 ") and len(lines[0].split()[-1]) == 64
    assert lines[1:] == ["  None vec_add_f32(LP_c_float, c_size_t)", "vec_add_f32([1, 2, 3, 4]) -> [2, 4, 6, 8]"]
