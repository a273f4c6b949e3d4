"""Setting up a build: a missing dependency stops CMake's configure step with a
message naming the Debian/Ubuntu and Fedora packages and `make deps` (also
through `pip`), and a C-only build needs neither Python's headers nor CMocka.

Each case configures the source tree into a fresh directory with one
dependency hidden: CMake's CMAKE_DISABLE_FIND_PACKAGE_<name> for the ones
found by find_package, an empty pkg-config search path for libffi, and, for
the `pip` case, a private mount namespace with cJSON's CMake package hidden.
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

BUILD = pathlib.Path(os.environ.get("EDGERT_BUILD_DIR") or ROOT / "build")

# These test the build configuration on the build machine, not the runtime:
# the sanitizer run of the Python suite (EDGERT_SANITIZED) and the emulated
# AArch64 run (EDGERT_TEST_EMULATOR, where CMake would cross-configure with
# the arm64 toolchain) leave them to the plain native run.
pytestmark = pytest.mark.skipif(
    bool(os.environ.get("EDGERT_SANITIZED") or os.environ.get("EDGERT_TEST_EMULATOR")),
    reason="configures and builds with the plain native toolchain")


def configure(build_dir, *defs, env=None):
    return subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build_dir), *defs],
                          capture_output=True, text=True, env=env, timeout=300)


def one_line(text: str) -> str:
    """CMake wraps and indents messages: compare with whitespace collapsed."""
    return re.sub(r"\s+", " ", text)


def assert_names_packages(r, what, deb, rpm):
    out = one_line(r.stdout + r.stderr)
    assert r.returncode != 0, out
    assert f"edgert needs {what}" in out, out
    assert f"Debian/Ubuntu: sudo apt-get install {deb} " in out, out
    assert f"Fedora: sudo dnf install {rpm} " in out, out
    assert "run `make deps`" in out, out


@pytest.mark.parametrize("what, deb, rpm, defs, hide_pc", [
    ("cJSON", "libcjson-dev", "cjson-devel", ["-DCMAKE_DISABLE_FIND_PACKAGE_cJSON=ON"], False),
    ("OpenSSL's libcrypto", "libssl-dev", "openssl-devel",
     ["-DCMAKE_DISABLE_FIND_PACKAGE_OpenSSL=ON"], False),
    ("libffi", "libffi-dev", "libffi-devel", [], True),
    ("pkg-config", "pkg-config", "pkgconf-pkg-config",
     ["-DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON"], False),
    ("CMocka", "libcmocka-dev", "libcmocka-devel", ["-DCMAKE_DISABLE_FIND_PACKAGE_cmocka=ON"], False),
    ("Python's headers", "python3-dev", "python3-devel",
     ["-DCMAKE_DISABLE_FIND_PACKAGE_Python=ON"], False),
])
def test_a_missing_dependency_names_its_packages(tmp_path, what, deb, rpm, defs, hide_pc):
    env = None
    if hide_pc:  # pkg-config then finds no .pc file at all
        (tmp_path / "no-pc").mkdir()
        env = {k: v for k, v in os.environ.items() if k != "PKG_CONFIG_PATH"}
        env["PKG_CONFIG_LIBDIR"] = str(tmp_path / "no-pc")
    assert_names_packages(configure(tmp_path / "b", *defs, env=env), what, deb, rpm)


def test_cmocka_and_python_are_needed_only_for_their_parts(tmp_path):
    r = configure(tmp_path / "b", "-DEDGERT_BUILD_TESTS=OFF", "-DEDGERT_BUILD_PYTHON=OFF",
                  "-DEDGERT_BUILD_BENCH=OFF",
                  "-DCMAKE_DISABLE_FIND_PACKAGE_cmocka=ON", "-DCMAKE_DISABLE_FIND_PACKAGE_Python=ON")
    assert r.returncode == 0, r.stdout + r.stderr


def namespace_problem():
    if not shutil.which("unshare"):
        return "no unshare command"
    r = subprocess.run(["unshare", "-m", "true"], capture_output=True, text=True)
    return None if r.returncode == 0 else f"`unshare -m` is not allowed here: {r.stderr.strip()}"


def test_pip_without_libcjson_dev_names_the_package(tmp_path):
    """The issue's case: `pip` building edgert where cJSON's development files
    are missing (hidden here by mounting an empty directory over its CMake
    package in a private mount namespace)."""
    why = namespace_problem()
    if why:
        pytest.skip(why)
    cache = (BUILD / "CMakeCache.txt").read_text()
    m = re.search(r"^cJSON_DIR:PATH=(.+)$", cache, re.M)
    assert m and os.path.isdir(m.group(1)), "the build found no cJSON package directory"
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh", str(empty), m.group(1),
         sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "out"), str(ROOT)],
        capture_output=True, text=True, env=env, timeout=600)
    assert_names_packages(r, "cJSON", "libcjson-dev", "cjson-devel")
    assert "pip is building edgert from source" in one_line(r.stdout + r.stderr)


def test_c_only_build_needs_no_python_headers_and_links_statically(tmp_path):
    """Everything but the library OFF, with Python and CMocka made unfindable:
    configures, builds libedgert.so and libedgert.a, and a C host
    (examples/custom_type/point_host.c: the type registry, a list and a dict)
    links the static library and runs."""
    b = tmp_path / "b"
    r = configure(b, "-DEDGERT_BUILD_PYTHON=OFF", "-DEDGERT_BUILD_TESTS=OFF",
                  "-DEDGERT_BUILD_BENCH=OFF", "-DEDGERT_BUILD_EXAMPLES=OFF", "-DEDGERT_WERROR=ON",
                  "-DCMAKE_DISABLE_FIND_PACKAGE_Python=ON", "-DCMAKE_DISABLE_FIND_PACKAGE_cmocka=ON")
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["cmake", "--build", str(b), "-j", "2"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    built = {p.name for p in b.rglob("libedgert*")} | {p.name for p in b.rglob("_edgert*")}
    assert {"libedgert.a", "libedgert.so.0"} <= built and not any(n.startswith("_edgert") for n in built), built

    host = tmp_path / "point_host"
    r = subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", str(ROOT / "include"),
                        str(ROOT / "examples" / "custom_type" / "point_host.c"), "-o", str(host),
                        str(b / "libedgert.a"), "-lffi", "-lcrypto", "-lcjson", "-lpthread", "-ldl"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    needed = subprocess.run(["readelf", "-d", str(host)], capture_output=True, text=True).stdout
    assert "libedgert" not in needed, needed
    r = subprocess.run([str(host)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "sum of y = 30" in r.stdout, r.stdout + r.stderr
