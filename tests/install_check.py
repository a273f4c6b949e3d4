"""`pip install .` from this checkout into a fresh venv, then use the package
from another directory: the extension must find the libedgert.so.0 shipped
beside it (one copy), the headers must be where edgert.get_include() says,
and the article's import paths must work."""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SMOKE = r"""
import ctypes, os, edgert
from pyv_edge_agent.module_host.abi import ABIContract
from pyv_edge_agent.module_host.loader import ModuleLoader
from pyv_edge_agent.module_host.fallback import ExplicitFallback, CompiledModeFailure
assert ModuleLoader is edgert.ModuleLoader and ABIContract is edgert.ABIContract
pkg = os.path.dirname(edgert.__file__)
assert pkg.startswith(os.environ["VENV"]), pkg
libs = [f for f in os.listdir(pkg) if f.startswith("libedgert")]
assert libs == ["libedgert.so.0"], os.listdir(pkg)  # one copy, named by its SONAME
assert edgert.get_library() == os.path.join(pkg, libs[0])
assert os.path.isfile(os.path.join(edgert.get_include(), "edgert", "types.h"))
abi = ABIContract("vec_add_f32", [ctypes.POINTER(ctypes.c_float), ctypes.c_size_t], None)
assert abi.to_dict() == {"function_name": "vec_add_f32", "arg_types": ["LP_c_float", "c_size_t"],
                         "return_type": None, "calling_convention": "cdecl"}
# Process isolation: the worker program is installed beside libedgert and
# found there by default (docs/isolation.md).
assert os.access(os.path.join(pkg, "edgert-worker"), os.X_OK), sorted(os.listdir(pkg))
kernels = os.path.join(os.environ.get("EDGERT_FIXTURE_DIR", ""), "libisolate_py_kernels.so")
if os.path.isfile(kernels):
    iso = edgert.ModuleLoader().load(
        kernels, [ABIContract("iso_getpid", [], ctypes.c_int64)], isolation="process")
    assert iso.call("iso_getpid") != os.getpid()
    iso.unload()
print("install check: edgert", edgert.__version__, "from", pkg, "with", libs[0])
"""


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="edgert-install-") as tmp:
        venv = os.path.join(tmp, "venv")
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True)
        py = os.path.join(venv, "bin", "python")
        subprocess.run([py, "-m", "pip", "install", "-q", "--no-build-isolation", ROOT], check=True)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["VENV"] = venv
        subprocess.run([py, "-c", SMOKE], check=True, cwd=tmp, env=env)
        # The console script is installed and runs from the venv (docs/cli.md).
        edgert_cli = os.path.join(venv, "bin", "edgert")
        r = subprocess.run([edgert_cli, "--help"], check=True, cwd=tmp, env=env,
                           stdout=subprocess.PIPE, text=True)
        assert "manifest" in r.stdout and "inspect" in r.stdout, r.stdout
        print("install check: console script", edgert_cli, "runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
