"""edgert.get_include() / get_library() / get_library_dir(): C code builds
against the package with nothing but these paths (as with numpy.get_include()).
Here against the build tree (<build>/py/edgert, laid out as the wheel is);
`make test-wheel` runs the same example against each installed wheel."""
import os
import pathlib
import subprocess
import sys

import edgert

from conftest import ROOT


def test_get_include_holds_every_public_header():
    inc = pathlib.Path(edgert.get_include())
    assert inc.parent == pathlib.Path(edgert.__file__).parent
    ours = sorted(p.relative_to(ROOT / "include") for p in (ROOT / "include").rglob("*.h"))
    shipped = sorted(p.relative_to(inc) for p in inc.rglob("*.h"))
    assert ours == shipped and pathlib.Path("edgert.h") in ours


def test_get_library_is_the_library_the_extension_loaded():
    lib = edgert.get_library()
    assert os.path.basename(lib) == "libedgert.so.0"
    assert os.path.dirname(lib) == edgert.get_library_dir() == os.path.dirname(edgert.__file__)
    with open("/proc/self/maps") as f:
        mapped = {line.split()[-1] for line in f if "libedgert" in line}
    assert os.path.realpath(lib) in {os.path.realpath(p) for p in mapped}, mapped
    soname = subprocess.run(["readelf", "-d", lib], capture_output=True, text=True).stdout
    assert "Library soname: [libedgert.so.0]" in soname, soname


def test_the_custom_type_example_builds_against_the_package(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "custom_type_wheel" / "build_and_run.py"),
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"-I {edgert.get_include()} " in r.stdout
    assert "sum |x|^2 = 16.25" in r.stdout
    assert "refused: TypedList item must be complex64, not str" in r.stdout
    needed = subprocess.run(["readelf", "-d", str(tmp_path / "libcomplex64.so")],
                            capture_output=True, text=True).stdout
    assert "Shared library: [libedgert.so.0]" in needed, needed
