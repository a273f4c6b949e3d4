"""Build a custom inline type against the INSTALLED edgert, then use it.

    python build_and_run.py [--out DIR]

Needs only a C compiler ($CC, else cc): edgert.get_include() gives the
headers, edgert.get_library() the libedgert to link, as numpy.get_include()
does for NumPy. Compiles complex64.c into DIR/libcomplex64.so (a temporary
directory by default), loads it through a verified ModuleLoader, registers
its type through the library's own entry point, and runs its kernel on a
TypedList("complex64") without copying it.
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import os
import shlex
import subprocess
import sys
import tempfile

import edgert

HERE = os.path.dirname(os.path.abspath(__file__))


def build(out_dir: str) -> str:
    """Compiles complex64.c against the installed edgert; returns the .so path."""
    so = os.path.join(out_dir, "libcomplex64.so")
    cmd = [*shlex.split(os.environ.get("CC", "cc")), "-std=c11", "-O2", "-Wall", "-Wextra",
           "-Werror", "-shared", "-fPIC",
           "-I", edgert.get_include(),
           os.path.join(HERE, "complex64.c"), "-o", so,
           edgert.get_library(),                          # DT_NEEDED libedgert.so.0
           "-Wl,-rpath," + edgert.get_library_dir()]      # found beside the extension
    print("$", " ".join(shlex.quote(c) for c in cmd))
    subprocess.run(cmd, check=True)
    return so


def run(so: str) -> float:
    C = ctypes
    with open(so, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    loader = edgert.ModuleLoader()
    loader.load(so, [
        edgert.ABIContract("register_custom_type_boxed", [C.c_char_p] + [C.c_void_p] * 4, C.c_int),
        edgert.ABIContract("complex64_norm2", [C.c_void_p, C.c_size_t], C.c_double),
    ], expected_sha256=digest)
    callbacks = [loader.address_of(n) for n in
                 ("complex64_size", "complex64_check", "complex64_copy", "complex64_box")]
    rc = loader.call("register_custom_type_boxed", b"complex64", *callbacks)
    if rc != 0:
        raise RuntimeError(f"register_custom_type_boxed returned {rc}")

    xs = edgert.TypedList("complex64", [1 + 2j, 3, -1.5j])
    assert xs.itemsize == 8 and list(xs) == [1 + 2j, 3 + 0j, -1.5j], list(xs)
    try:
        xs.append("1+1j")
    except TypeError as e:
        print("refused:", e)
    else:
        raise AssertionError("a str was accepted as complex64")
    norm2 = loader.function("complex64_norm2")(xs, len(xs))   # the list's storage, no copy
    print(f"edgert {edgert.__version__} from {edgert.get_library_dir()}")
    print(f"complex64 list {list(xs)}: sum |x|^2 = {norm2}")
    return norm2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="where to write libcomplex64.so (default: a temporary dir)")
    a = ap.parse_args()
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        return 0 if run(build(a.out)) == 16.25 else 1
    with tempfile.TemporaryDirectory(prefix="edgert-complex64-") as d:
        return 0 if run(build(d)) == 16.25 else 1


if __name__ == "__main__":
    sys.exit(main())
