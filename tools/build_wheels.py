"""`make wheel`: an sdist, then from it one repaired manylinux wheel per CPython.

    python tools/build_wheels.py [--dist DIR] PYTHON...

Each PYTHON is a version ("3.12": the first of `python3.12` and
$PYENV_ROOT/versions/3.12.*/bin/python3.12 that runs; "3.13t" a free-threaded
one) or an interpreter (a path
or a command). A version not found here is skipped with a note; an
interpreter that is named but missing, or a build that fails, stops the run.

Steps, each of which must succeed:
  1. `python -m build --sdist` into DIR: so every wheel below proves the
     sdist builds where the -dev packages are installed.
  2. per interpreter, `pip wheel` of that sdist (build isolation: the build
     requirements come from pyproject.toml) into DIR/raw;
  3. `auditwheel repair` into DIR/wheelhouse: libffi, libcrypto and libcjson
     are copied into edgert.libs/ under hashed names and the RPATHs patched,
     giving a manylinux wheel that needs no -dev package and no system copy
     of those libraries (tests/wheel_check.py proves it).
Prints each repaired wheel with its tag and size, and the time taken.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def runs(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd + ["-c", "import sys"], capture_output=True,
                              timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def resolve(spec: str) -> str | None:
    """An interpreter for `spec` (see the module doc), or None for a version
    that is not installed here."""
    if re.fullmatch(r"3\.\d+t?", spec):
        if runs([f"python{spec}"]):
            return shutil.which(f"python{spec}")
        root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
        ver, t = spec.rstrip("t"), "t" if spec.endswith("t") else ""
        # pyenv names a free-threaded build 3.13.0t, its interpreter python3.13t.
        found = [p for p in glob.glob(os.path.join(root, "versions", f"{ver}.*", "bin", f"python{spec}"))
                 if re.search(rf"/{re.escape(ver)}\.\d+{t}/", p)]
        found.sort(key=lambda p: [int(x) for x in p.split("/")[-3].rstrip("t").split(".")])
        for p in reversed(found):
            if runs([p]):
                return p
        return None
    exe = shutil.which(spec)
    if exe is None or not runs([exe]):
        sys.exit(f"wheel: the interpreter {spec!r} (WHEELS_PYTHONS) does not run here")
    return exe


def tag_of(python: str) -> str:
    """cp311 for a CPython 3.11 interpreter (cp313t for a free-threaded one)."""
    code = ("import sys, sysconfig; print(f'cp{sys.version_info[0]}{sys.version_info[1]}'"
            " + ('t' if sysconfig.get_config_var('Py_GIL_DISABLED') else ''))")
    return subprocess.run([python, "-c", code], check=True, capture_output=True,
                          text=True).stdout.strip()


def shown(path: str) -> str:
    """`path` relative to the checkout when inside it."""
    rel = os.path.relpath(path, ROOT)
    return path if rel.startswith("..") else rel


def step(what: str, cmd: list[str]) -> None:
    print(f"wheel: {what}\n  $ {' '.join(cmd)}", flush=True)
    r = subprocess.run(cmd, cwd=ROOT)
    if r.returncode != 0:
        sys.exit(f"wheel: {what} failed (exit {r.returncode})")


def main() -> int:
    ap = argparse.ArgumentParser(description="build repaired wheels (make wheel)")
    ap.add_argument("--dist", default=os.path.join(ROOT, "dist"))
    ap.add_argument("pythons", nargs="+")
    a = ap.parse_args()
    start = time.time()
    dist = os.path.abspath(a.dist)
    raw, house = os.path.join(dist, "raw"), os.path.join(dist, "wheelhouse")

    pythons: list[tuple[str, str]] = []
    for spec in a.pythons:
        exe = resolve(spec)
        if exe is None:
            print(f"wheel: no CPython {spec} here (looked for python{spec} and "
                  f"$PYENV_ROOT/versions/{spec}.*): skipped", flush=True)
            continue
        tag = tag_of(exe)
        if tag not in (t for _, t in pythons):
            pythons.append((exe, tag))
    if not pythons:
        sys.exit(f"wheel: none of the interpreters {a.pythons} is installed here")

    # Stale wheels would be tested as if just built.
    for d in (raw, house):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    for old in glob.glob(os.path.join(dist, "edgert-*.tar.gz")):
        os.remove(old)

    step("sdist", [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", dist, ROOT])
    sdists = glob.glob(os.path.join(dist, "edgert-*.tar.gz"))
    assert len(sdists) == 1, sdists

    for exe, tag in pythons:
        step(f"{tag} wheel from the sdist ({exe})",
             [exe, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", raw, sdists[0]])
        built = glob.glob(os.path.join(raw, f"edgert-*-{tag}-{tag}-*.whl"))
        if len(built) != 1:
            sys.exit(f"wheel: expected one {tag} wheel in {raw}, found {built}")
        step(f"{tag} auditwheel repair", [sys.executable, "-m", "auditwheel", "repair",
                                          "--wheel-dir", house, built[0]])

    print(f"wheel: sdist {shown(sdists[0])} "
          f"({os.path.getsize(sdists[0]) / 1e6:.2f} MB)")
    for w in sorted(glob.glob(os.path.join(house, "*.whl"))):
        with zipfile.ZipFile(w) as z:
            libs = sorted(n for n in z.namelist() if ".so" in os.path.basename(n))
        print(f"wheel: {shown(w)} ({os.path.getsize(w) / 1e6:.2f} MB): "
              + ", ".join(os.path.basename(n) for n in libs))
    print(f"wheel: done in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
