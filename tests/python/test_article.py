"""The article's examples (shared/reference/edge-runtime-internals.txt) run as
written: each snippet below is copied from it verbatim and run in a fresh
interpreter, in a directory holding the library it names."""
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("EDGERT_BUILD_DIR", ROOT / "build"))
KERNELS = BUILD / "examples" / "pipeline" / "libpipeline_kernels.so"

GUARD_EXAMPLE = textwrap.dedent('''\
    import logging
    from pyv_edge_agent.module_host.fallback import (
    ExplicitFallback,
    CompiledModeFailure,
    )
    from pyv_edge_agent.module_host.loader import ModuleLoader
    from pyv_edge_agent.module_host.abi import ABIContract
    import ctypes
    logging.basicConfig(level=logging.INFO)
    abi = ABIContract(
    function_name="risky_kernel",
    arg_types=[ctypes.c_double],
    return_type=ctypes.c_double,
    )
    loader = ModuleLoader()
    loader.load("./librisky.so", abi)
    compiled = lambda x: loader.call("risky_kernel", x)
    def reference(x: float) -> float:
    return x * 2.0 + 1.0
    # Production call — compiled path only, no silent fallback
    try:
    out = ExplicitFallback.run_with_guard(
    compiled, reference, 3.14, fallback_enabled=False
    )
    print(f"Result: {out}")
    except CompiledModeFailure as exc:
    print(f"Compiled path failed: {exc}")
    # Development call — validate both paths and compare
    try:
    out = ExplicitFallback.fallback_to_python(compiled, reference, 3.14)
    print(f"Validated result: {out}")
    except Exception as exc:
    print(f"Mismatch or crash: {exc}")
    loader.unload()
    ''')

# The article's text loses indentation; this is the same program indented.
GUARD_EXAMPLE_INDENTED = '''\
import logging
from pyv_edge_agent.module_host.fallback import (
    ExplicitFallback,
    CompiledModeFailure,
)
from pyv_edge_agent.module_host.loader import ModuleLoader
from pyv_edge_agent.module_host.abi import ABIContract
import ctypes

logging.basicConfig(level=logging.INFO)

abi = ABIContract(
    function_name="risky_kernel",
    arg_types=[ctypes.c_double],
    return_type=ctypes.c_double,
)
loader = ModuleLoader()
loader.load("./librisky.so", abi)

compiled = lambda x: loader.call("risky_kernel", x)

def reference(x: float) -> float:
    return x * 2.0 + 1.0

# Production call — compiled path only, no silent fallback
try:
    out = ExplicitFallback.run_with_guard(
        compiled, reference, 3.14, fallback_enabled=False
    )
    print(f"Result: {out}")
except CompiledModeFailure as exc:
    print(f"Compiled path failed: {exc}")

# Development call — validate both paths and compare
try:
    out = ExplicitFallback.fallback_to_python(compiled, reference, 3.14)
    print(f"Validated result: {out}")
except Exception as exc:
    print(f"Mismatch or crash: {exc}")

loader.unload()
'''

MANIFEST_EXAMPLE = '''\
import ctypes
from pyv_edge_agent.module_host.abi import ABIContract

abi = ABIContract(
    function_name="vec_add_f32",
    arg_types=[ctypes.POINTER(ctypes.c_float), ctypes.c_size_t],
    return_type=None,
)
manifest_entry = abi.to_dict()
# {'function_name': 'vec_add_f32',
# 'arg_types': ['LP_c_float', 'c_size_t'],
# 'return_type': None,
# 'calling_convention': 'cdecl'}
restored = ABIContract.from_manifest(manifest_entry)
print(manifest_entry)
print(restored == abi)
'''


def run(code: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env=env)


@pytest.fixture
def risky_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    if not KERNELS.exists():
        pytest.fail(f"{KERNELS} is not built: run `make build`")
    shutil.copy(KERNELS, tmp_path / "librisky.so")
    return tmp_path


def test_guard_example_runs_as_written(risky_dir: pathlib.Path) -> None:
    # The article's flat text is not valid Python by itself (its indentation
    # was lost); check that the indented program is exactly its lines.
    assert [l.strip() for l in GUARD_EXAMPLE_INDENTED.splitlines() if l.strip()] == \
        [l.strip() for l in GUARD_EXAMPLE.splitlines() if l.strip()]
    r = run(GUARD_EXAMPLE_INDENTED, risky_dir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["Result: 7.28", "Validated result: 7.28"]


def test_guard_example_with_a_crashing_input_is_contained(risky_dir: pathlib.Path) -> None:
    # The same program, with the input that takes risky_kernel's NULL path:
    # the segfault becomes CompiledModeFailure, the process lives on.
    code = GUARD_EXAMPLE_INDENTED.replace("3.14", "-1.0")
    r = run(code, risky_dir)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Compiled path failed: ")
    assert lines[1].startswith("Mismatch or crash: ")
    assert "SIGSEGV" in r.stderr or "SIGSEGV" in r.stdout


def test_manifest_round_trip_example_prints_the_articles_dict(tmp_path: pathlib.Path) -> None:
    r = run(MANIFEST_EXAMPLE, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "{'function_name': 'vec_add_f32', 'arg_types': ['LP_c_float', 'c_size_t'], "
        "'return_type': None, 'calling_convention': 'cdecl'}",
        "True",
    ]


def test_verify_signature_flow(risky_dir: pathlib.Path) -> None:
    # The article's order: load, then verify_signature against the manifest.
    import hashlib
    expected = hashlib.sha256((risky_dir / "librisky.so").read_bytes()).hexdigest()
    code = textwrap.dedent(f'''\
        import ctypes
        from pyv_edge_agent.module_host.loader import ModuleLoader
        from pyv_edge_agent.module_host.abi import ABIContract
        abi = ABIContract("risky_kernel", [ctypes.c_double], ctypes.c_double)
        loader = ModuleLoader()
        loader.load("./librisky.so", abi)
        if not loader.verify_signature("{expected}"):
            raise SystemExit("Module hash mismatch")
        print(loader.verify_signature("{'0' * 64}"), loader.call("risky_kernel", 1.0))
        ''')
    r = run(code, risky_dir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False 3.0"
