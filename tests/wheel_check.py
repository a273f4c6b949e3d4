"""`make test-wheel`: every repaired wheel `make wheel` built is self-contained.

    python tests/wheel_check.py [--dist DIR] PYTHON...

PYTHON as for tools/build_wheels.py (versions or interpreters); each one's
wheel is taken from DIR/wheelhouse. For each:
  1. installed (no index, no dependencies) into a fresh venv, without the
     system's site-packages;
  2. its files: one libedgert (libedgert.so.0), the headers, and
     edgert.get_include() / get_library() pointing into the venv;
  3. `ldd` of every shared object in it: each dependency resolves inside the
     installed wheel or is one of the system libraries the manylinux policies
     allow (glibc's); "not found" fails;
  4. C code built against the installed wheel with nothing but its paths:
     examples/custom_type_wheel (a custom type, used from Python) and
     examples/c_host (a C program: manifest, SHA-256, libffi call);
  5. the smoke test (import, a verified manifest load and a libffi call, the
     custom type) and the C host run with the system's copies of the bundled
     libraries hidden: in a private mount namespace (`unshare -m`) an empty
     file is bind-mounted over each. The Python runs hide libcjson, libcrypto
     and libssl (the interpreter's own ctypes needs the system's libffi); the
     C host hides libffi as well. Where `unshare -m` is not allowed, these
     runs are skipped with the reason, and the smoke test runs unhidden.
Prints one line per check; exits 1 on the first failure.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from build_wheels import resolve, tag_of  # noqa: E402

# What a manylinux wheel may leave to the system (PEP 600: the libraries of
# glibc and the toolchain's runtime that every manylinux policy lists), plus
# the dynamic loader and the vDSO, which ldd also prints.
SYSTEM_LIBS = {
    "libc.so.6", "libm.so.6", "libdl.so.2", "librt.so.1", "libpthread.so.0", "libutil.so.1",
    "libresolv.so.2", "libnsl.so.1", "libgcc_s.so.1", "libstdc++.so.6",
    "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", "linux-vdso.so.1",
}
# The libraries the wheel bundles, whose system copies the smoke runs hide
# (sonames as ldconfig lists them). Python's own ctypes needs libffi.
HIDE_FOR_PYTHON = ("libcjson.so.", "libcrypto.so.", "libssl.so.")
HIDE_FOR_C = HIDE_FOR_PYTHON + ("libffi.so.",)

SMOKE = r"""
import ctypes, os, struct, sys, tempfile, edgert
site = os.environ["SITE"]
pkg = os.path.dirname(edgert.__file__)
assert pkg == os.path.join(site, "edgert"), (pkg, site)
for p in filter(None, os.environ.get("HIDDEN", "").split(os.pathsep)):
    assert os.path.getsize(p) == 0, f"{p} is not hidden"
libs = sorted(f for f in os.listdir(pkg) if f.startswith("libedgert"))
assert libs == ["libedgert.so.0"], libs
assert edgert.get_library() == os.path.join(pkg, "libedgert.so.0")
assert edgert.get_library_dir() == pkg
assert os.path.isfile(os.path.join(edgert.get_include(), "edgert.h"))
assert os.path.isfile(os.path.join(edgert.get_include(), "edgert", "list.h"))
so = os.environ["KERNEL"]
c = edgert.ABIContract("complex64_norm2", [ctypes.c_void_p, ctypes.c_size_t], ctypes.c_double)
with tempfile.TemporaryDirectory() as d:
    m = os.path.join(d, "manifest.json")
    edgert.write_manifest(m, {so: [c]})          # SHA-256 of the module
    with edgert.load_manifest(m) as loaded:      # cJSON, libcrypto, then libffi binds
        got = loaded.call("complex64_norm2", struct.pack("4f", 1, 2, 3, -1.5), 2)
assert got == 1 + 4 + 9 + 2.25, got
# Process isolation: the wheel carries the worker program beside libedgert,
# and an isolated call runs in it (docs/isolation.md).
# (libcomplex64 calls into Python, which a worker does not have: vecadd.)
import array
worker = os.path.join(pkg, "edgert-worker")
assert os.access(worker, os.X_OK), sorted(os.listdir(pkg))
iso = edgert.ModuleLoader().load(os.environ["VECADD"], [edgert.ABIContract(
    "vec_add_f32", [ctypes.POINTER(ctypes.c_float), ctypes.c_size_t], None)], isolation="process")
xs = array.array("f", [1, 2, 3, 4])
iso.call("vec_add_f32", xs, 4)
assert list(xs) == [2, 4, 6, 8], xs
assert iso.isolation_stats()["calls"] == 1
iso.unload()
maps = {l.split()[-1] for l in open("/proc/self/maps") if "/" in l}
for stem in ("libcjson", "libcrypto", "libffi"):
    ours = [p for p in maps if os.path.basename(p).startswith(stem + "-") and p.startswith(site)]
    assert ours, f"the wheel's own {stem} is not mapped: {sorted(maps)}"
    if stem != "libffi":  # the interpreter's _ctypes maps the system's libffi itself
        others = [p for p in maps if os.path.basename(p).startswith(stem) and not p.startswith(site)]
        assert not others, f"a system {stem} is mapped: {others}"
print(f"smoke: edgert {edgert.__version__} {sys.version.split()[0]} from {pkg}: ok")
"""


class Failed(Exception):
    pass


def run(cmd, *, env=None, cwd=None, what: str = "") -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    if r.returncode != 0:
        raise Failed(f"{what or cmd[0]} failed (exit {r.returncode}):\n$ {' '.join(cmd)}\n"
                     f"{r.stdout}{r.stderr}")
    return r


def system_copies(prefixes: tuple[str, ...]) -> list[str]:
    """The files of the system's libraries whose sonames start with one of
    `prefixes` (from the dynamic loader's cache), symlinks resolved."""
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    files = set()
    for line in out.splitlines():
        name, _, path = line.strip().partition(" => ")
        if path and name.split()[0].startswith(prefixes):
            files.add(os.path.realpath(path))
    return sorted(files)


def namespace_problem() -> str | None:
    """None if a private mount namespace with a bind mount works here, else why not."""
    if not shutil.which("unshare"):
        return "no unshare command (util-linux)"
    with tempfile.NamedTemporaryFile() as f:
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            'mount --bind /dev/null "$1" && test ! -s "$1"', "sh", f.name],
                           capture_output=True, text=True)
    if r.returncode != 0:
        return f"`unshare -m` + `mount --bind` failed: {(r.stderr or r.stdout).strip()}"
    return None


def hidden_run(cmd: list[str], hide: list[str], env: dict, empty: str, what: str):
    """cmd in a private mount namespace with `empty` bind-mounted over each
    file of `hide`; the mounts vanish with the namespace."""
    script = 'e=$1; n=$2; shift 2; while [ "$n" -gt 0 ]; do mount --bind "$e" "$1" || exit 97; ' \
             'shift; n=$((n-1)); done; exec "$@"'
    env = dict(env, HIDDEN=os.pathsep.join(hide))
    return run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", empty,
                str(len(hide)), *hide, *cmd], env=env, what=what)


def ldd_check(site: str) -> int:
    """Every dependency of every shared object the wheel installed resolves
    inside `site` or to an allowed system library. Returns how many checked."""
    objs = []
    for sub in ("edgert", "edgert.libs"):
        d = os.path.join(site, sub)
        objs += [os.path.join(d, f) for f in sorted(os.listdir(d))
                 if ".so" in f or f == "edgert-worker"] if os.path.isdir(d) else []
    if not objs:
        raise Failed(f"no shared objects under {site}")
    for o in objs:
        out = run(["ldd", o], what="ldd").stdout
        for line in out.splitlines():
            line = line.strip()
            name, arrow, rest = line.partition(" => ")
            target = rest.split(" (")[0].strip() if arrow else line.split(" (")[0].strip()
            if "not found" in line:
                raise Failed(f"ldd {o}: {name} not found")
            if target.startswith(site) or os.path.basename(target or name) in SYSTEM_LIBS \
                    or os.path.basename(name) in SYSTEM_LIBS:
                continue
            raise Failed(f"ldd {o}: {name} resolves outside the wheel, to {target or name} "
                         f"(not a manylinux system library):\n{out}")
    return len(objs)


def check(exe: str, tag: str, wheel: str, ns_problem: str | None) -> None:
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory(prefix=f"edgert-wheel-{tag}-") as tmp:
        venv = os.path.join(tmp, "venv")
        run([exe, "-m", "venv", venv], what="venv")
        py = os.path.join(venv, "bin", "python")
        run([py, "-m", "pip", "install", "-q", "--no-index", "--no-deps", wheel], what="pip install")
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "EDGERT_BUILD_DIR", "EDGERT_FIXTURE_DIR", "LD_LIBRARY_PATH")}
        site = run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['platlib'])"],
                   cwd=tmp, env=env).stdout.strip()
        env["SITE"] = site
        print(f"  installed {os.path.basename(wheel)} into a fresh venv")

        print(f"  ldd: {ldd_check(site)} shared objects, every dependency inside the wheel "
              "or glibc's")

        # C code against the installed wheel, with its paths only.
        paths = json.loads(run([py, "-c", "import edgert, json; print(json.dumps([edgert.get_include(),"
                                " edgert.get_library(), edgert.get_library_dir()]))"],
                               cwd=tmp, env=env).stdout)
        inc, lib, libdir = paths
        kdir = os.path.join(tmp, "kernels")
        ex = [py, os.path.join(ROOT, "examples", "custom_type_wheel", "build_and_run.py"), "--out", kdir]
        print("  " + run(ex, cwd=tmp, env=env, what="examples/custom_type_wheel").stdout
              .strip().splitlines()[-1])
        env["KERNEL"] = os.path.join(kdir, "libcomplex64.so")
        host = os.path.join(tmp, "c_host")
        src = os.path.join(ROOT, "examples", "c_host")
        run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", inc, os.path.join(src, "main.c"),
             "-o", host, lib, f"-Wl,-rpath,{libdir}"], what="building examples/c_host against the wheel")
        vecadd = os.path.join(tmp, "libvecadd.so")
        run([cc, "-std=c11", "-shared", "-fPIC", os.path.join(src, "vecadd.c"), "-o", vecadd],
            what="building vecadd.c")
        env["VECADD"] = vecadd
        manifest = os.path.join(tmp, "manifest.json")
        with open(vecadd, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        with open(manifest, "w") as f:
            json.dump({"schema_version": 1, "modules": [{
                "path": "libvecadd.so", "sha256": digest,
                "contracts": [{"function_name": "vec_add_f32", "arg_types": ["LP_c_float", "c_size_t"],
                               "return_type": None}]}]}, f)
        want_host = "vec_add_f32([1, 2, 3, 4]) -> [2, 4, 6, 8]"

        if ns_problem:
            print(run([py, "-c", SMOKE], cwd=tmp, env=env, what="smoke").stdout.strip())
            print(f"  SKIPPED the runs with the system's libcjson/libcrypto/libffi hidden: {ns_problem}")
            return
        empty = os.path.join(tmp, "empty")
        open(empty, "w").close()
        hide_py, hide_c = system_copies(HIDE_FOR_PYTHON), system_copies(HIDE_FOR_C)
        r = hidden_run([py, "-c", SMOKE], hide_py, env, empty, "smoke (system libraries hidden)")
        print(f"  hidden {', '.join(os.path.basename(p) for p in hide_py)}: " + r.stdout.strip())
        r = hidden_run(ex, hide_py, env, empty, "examples/custom_type_wheel (system libraries hidden)")
        print("  same, examples/custom_type_wheel: " + r.stdout.strip().splitlines()[-1])
        r = hidden_run([host, manifest], hide_c, env, empty, "examples/c_host (system libraries hidden)")
        if want_host not in r.stdout:
            raise Failed(f"c_host printed:\n{r.stdout}")
        print(f"  hidden {', '.join(os.path.basename(p) for p in hide_c)}: c_host: {want_host}")


def main() -> int:
    ap = argparse.ArgumentParser(description="test the repaired wheels (make test-wheel)")
    ap.add_argument("--dist", default=os.path.join(ROOT, "dist"))
    ap.add_argument("pythons", nargs="+")
    a = ap.parse_args()
    start = time.time()
    house = os.path.join(os.path.abspath(a.dist), "wheelhouse")
    ns_problem = namespace_problem()
    tested = 0
    for spec in a.pythons:
        exe = resolve(spec)
        if exe is None:
            print(f"test-wheel: no CPython {spec} here: skipped")
            continue
        tag = tag_of(exe)
        wheels = sorted(f for f in os.listdir(house) if f"-{tag}-{tag}-manylinux" in f) \
            if os.path.isdir(house) else []
        if len(wheels) != 1:
            print(f"test-wheel: expected one repaired {tag} manylinux wheel in {house}, found "
                  f"{wheels}: run `make wheel` first", file=sys.stderr)
            return 1
        print(f"test-wheel: {wheels[0]} ({exe})")
        try:
            check(exe, tag, os.path.join(house, wheels[0]), ns_problem)
        except Failed as e:
            print(f"test-wheel: {tag}: {e}", file=sys.stderr)
            return 1
        tested += 1
    if not tested:
        print("test-wheel: no interpreter to test", file=sys.stderr)
        return 1
    print(f"test-wheel: {tested} wheel(s) ok in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
