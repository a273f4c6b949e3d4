"""Loading by name, the process's own libraries, errors as text (#12).

- A load argument without '/' is a library name searched as the dynamic
  linker does ("libm.so.6"), or a short name as ctypes.util.find_library
  takes it ("m"); `.path` is the file chosen. A linker script is named as
  one, with the library to load instead; a name not found is
  FileNotFoundError naming it (as text) and the places searched.
- A library the process already maps (libc, libm, a library ctypes opened,
  numpy's OpenBLAS after `import numpy`) is bound to the process's instance
  (`shared_with_process`), after the on-disk file's hash check; unloading it
  gives back only edgert's own reference.
- Errors quote paths as str, never b'...', and count characters, not bytes.
"""
import ctypes
import ctypes.util
import glob
import hashlib
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import fixture_path
from edgert import ABIContract, IntegrityError, ModuleFormatError, ModuleLoader

MALLOC = ABIContract("malloc", [ctypes.c_size_t], ctypes.c_void_p)
FREE = ABIContract("free", [ctypes.c_void_p])
COS = ABIContract("cos", [ctypes.c_double], ctypes.c_double)


def run_py(code: str, *args: str) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter (a crash must not take pytest down)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=120, env=os.environ.copy())


def libc_path() -> str:
    """The C library this process runs on, as /proc/self/maps shows it."""
    with open("/proc/self/maps") as f:
        for line in f:
            name = os.path.basename(line.split(maxsplit=5)[-1].strip())
            if name.startswith(("libc.so.", "libc-")):
                return line.split(maxsplit=5)[-1].strip()
    pytest.skip("no libc.so mapped (a static Python?)")


# ---- search by name ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["libm.so.6", "m", "libc.so.6", "c"])
def test_a_library_name_is_searched_as_the_dynamic_linker_does(name):
    if ".so" not in name:
        needs_this_machines_linker_cache()
    L = ModuleLoader().load(name)
    assert os.path.isabs(L.path)
    # The same file ctypes' find_library names (short name) or the name itself.
    want = name if ".so" in name else ctypes.util.find_library(name)
    assert os.path.basename(L.path) == want
    assert os.path.samefile(L.path, os.path.realpath(L.path))


def needs_this_machines_linker_cache():
    """A short name ("m") finds libm.so.<N> through the dynamic linker's
    cache. Under qemu-user the cache is the host's (x86-64 entries only, which
    the search rightly ignores), so the premise does not hold there; on an
    AArch64 machine the cache is its own."""
    if os.environ.get("EDGERT_TEST_EMULATOR"):
        pytest.skip("under the emulator /etc/ld.so.cache is the host's, with no AArch64 entries")


def test_a_name_loads_the_library_and_its_functions_run():
    needs_this_machines_linker_cache()
    L = ModuleLoader().load("m", COS)
    assert L.call("cos", 0.0) == 1.0
    assert os.path.basename(L.path) == "libm.so.6"


def test_the_log_names_the_path_a_name_resolved_to(caplog):
    import logging
    with caplog.at_level(logging.DEBUG, logger="edgert"):
        L = ModuleLoader().load("libm.so.6")
    assert any(L.path in r.getMessage() and "for libm.so.6" in r.getMessage()
               for r in caplog.records)


def test_a_short_name_picks_the_highest_version_in_ld_library_path(tmp_path, monkeypatch):
    src = fixture_path("loader_kernels")
    for v in ("1", "9", "10"):
        with open(src, "rb") as f, open(tmp_path / f"libedgertbyname.so.{v}", "wb") as g:
            g.write(f.read())
    monkeypatch.setenv("LD_LIBRARY_PATH", f"{tmp_path}")
    L = ModuleLoader().load("edgertbyname", ABIContract("add", [ctypes.c_double] * 2, ctypes.c_double))
    assert L.path == str(tmp_path / "libedgertbyname.so.10")
    assert L.call("add", 1.0, 2.0) == 3.0
    assert L.shared_with_process is False
    # The exact name is taken as is.
    assert ModuleLoader().load("libedgertbyname.so.9").path == str(tmp_path / "libedgertbyname.so.9")


def test_a_library_for_another_machine_is_skipped_as_ld_so_skips_it(tmp_path, monkeypatch):
    data = bytearray(open(fixture_path("loader_kernels"), "rb").read())
    other = tmp_path / "other"
    good = tmp_path / "good"
    other.mkdir()
    good.mkdir()
    foreign = bytearray(data)
    foreign[18:20] = (183 if data[18:20] != bytes([183, 0]) else 62).to_bytes(2, "little")
    (other / "libedgertarch.so.1").write_bytes(bytes(foreign))
    (good / "libedgertarch.so.1").write_bytes(bytes(data))
    monkeypatch.setenv("LD_LIBRARY_PATH", f"{other}:{good}")
    assert ModuleLoader().load("libedgertarch.so.1").path == str(good / "libedgertarch.so.1")


def script_dir(tmp_path):
    target = os.path.realpath(ModuleLoader().load("libm.so.6").path)
    (tmp_path / "libedgertscript.so").write_text(
        "/* GNU ld script\n*/\nOUTPUT_FORMAT(elf64-x86-64)\n"
        f"GROUP ( {target}  AS_NEEDED ( /lib/libmvec.so.1 ) )\n")
    return tmp_path / "libedgertscript.so"


def test_a_linker_script_found_by_name_names_the_library_to_load(tmp_path, monkeypatch):
    script_dir(tmp_path)
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))
    with pytest.raises(ModuleFormatError) as e:
        ModuleLoader().load("libedgertscript.so")
    assert "libedgertscript.so is a linker script" in str(e.value)
    assert "load libm.so.6" in str(e.value)


def test_a_linker_script_given_by_path_names_the_library_to_load(tmp_path):
    script = script_dir(tmp_path)
    with pytest.raises(ModuleFormatError, match=r"is a linker script.*load libm\.so\.6"):
        ModuleLoader().load(str(script))


def test_the_systems_libm_so_linker_script_if_installed():
    libm_so = [p for p in glob.glob("/usr/lib/*/libm.so") + ["/usr/lib/libm.so", "/usr/lib64/libm.so"]
               if os.path.isfile(p) and open(p, "rb").read(4) != b"\x7fELF"]
    if not libm_so:
        pytest.skip("no libm.so linker script on this machine (libc6-dev not installed)")
    with pytest.raises(ModuleFormatError, match=r"libm\.so is a linker script.*load libm\.so\.6"):
        ModuleLoader().load("libm.so")


def test_a_name_not_found_is_file_not_found_naming_it_and_the_places_searched():
    with pytest.raises(FileNotFoundError) as e:
        ModuleLoader().load("libedgert_no_such_library.so.7")
    msg = str(e.value)
    assert "no library named libedgert_no_such_library.so.7" in msg
    assert "/etc/ld.so.cache" in msg and "LD_LIBRARY_PATH" in msg
    assert e.value.filename == "libedgert_no_such_library.so.7"
    assert "b'" not in msg


def test_a_short_name_not_found_says_which_file_names_it_tried():
    with pytest.raises(FileNotFoundError, match=r"as libedgertnone\.so\.<N> or libedgertnone\.so"):
        ModuleLoader().load("edgertnone")


def test_a_file_in_the_current_folder_is_not_found_by_its_bare_name(tmp_path, monkeypatch):
    with open(fixture_path("loader_kernels"), "rb") as f:
        (tmp_path / "libedgerthere.so").write_bytes(f.read())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"write \./NAME"):
        ModuleLoader().load("libedgerthere.so")
    assert ModuleLoader().load("./libedgerthere.so").path == "./libedgerthere.so"


# ---- the process's own libraries ------------------------------------------------------

def test_malloc_and_free_mix_with_ctypes_libc():
    # On a private copy of libc (the old loader) this aborts or crashes:
    # one heap's pointer freed by the other heap's free.
    r = run_py("""
        import ctypes, sys
        from edgert import ModuleLoader, ABIContract
        L = ModuleLoader().load(sys.argv[1], [ABIContract("malloc", [ctypes.c_size_t], ctypes.c_void_p),
                                             ABIContract("free", [ctypes.c_void_p])])
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc.restype = ctypes.c_void_p
        for i in range(200):
            p = L.call("malloc", 64 + i)
            libc.free(ctypes.c_void_p(p))
            q = libc.malloc(64 + i)
            L.call("free", q)
        print("ok", L.shared_with_process)
        """, libc_path())
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["ok", "True"]


@pytest.mark.parametrize("name", ["libc.so.6", "libm.so.6"])
def test_libc_and_libm_are_shared_with_the_process(name):
    L = ModuleLoader().load(name, MALLOC if name == "libc.so.6" else COS)
    assert L.shared_with_process is True
    fn = "malloc" if name == "libc.so.6" else "cos"
    assert L.address_of(fn) == ctypes.cast(getattr(ctypes.CDLL(name), fn), ctypes.c_void_p).value


def test_a_project_fixture_is_a_private_copy():
    L = ModuleLoader().load(fixture_path("loader_kernels"))
    assert L.shared_with_process is False
    L.unload()
    assert L.shared_with_process is None


def test_the_process_instance_is_bound_after_the_on_disk_hash_check():
    path = libc_path()
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    L = ModuleLoader().load(path, MALLOC, expected_sha256=digest)
    assert L.shared_with_process is True and L.sha256 == digest
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    with pytest.raises(IntegrityError, match="failed its integrity check"):
        ModuleLoader().load(path, expected_sha256=wrong)


def test_a_library_ctypes_opened_is_shared_and_unload_keeps_its_reference(tmp_path):
    # Bytes of their own (a tail after the ELF contents): a private copy of
    # the same bytes loaded earlier by another test would be shared instead.
    path = str(tmp_path / "libedgertctypes.so")
    with open(fixture_path("loader_kernels"), "rb") as f, open(path, "wb") as g:
        g.write(f.read() + b"test_a_library_ctypes_opened_is_shared")
    lib = ctypes.CDLL(path)
    add = ABIContract("add", [ctypes.c_double] * 2, ctypes.c_double)
    for _ in range(50):
        L = ModuleLoader().load(path, add)
        assert L.shared_with_process is True
        assert L.address_of("add") == ctypes.cast(lib.add, ctypes.c_void_p).value
        L.unload()
    # ctypes' reference is intact: the object is still mapped and runs.
    lib.add.restype = ctypes.c_double
    lib.add.argtypes = [ctypes.c_double, ctypes.c_double]
    assert lib.add(2.0, 3.0) == 5.0
    ctypes.CDLL(path, mode=os.RTLD_NOLOAD)  # raises OSError if it was closed


def test_a_second_c_library_is_refused(tmp_path):
    copy = tmp_path / "libc.so.6"
    copy.write_bytes(open(libc_path(), "rb").read())
    with pytest.raises(IntegrityError, match=r"already has libc\.so\.6.*second copy"):
        ModuleLoader().load(str(copy))


# ---- numpy's OpenBLAS -------------------------------------------------------------

def openblas():
    """The path of numpy's bundled OpenBLAS, found without importing numpy
    (nor loading it here), or None."""
    import importlib.util
    spec = importlib.util.find_spec("numpy")
    if spec is None or spec.origin is None:
        return None
    site = os.path.dirname(os.path.dirname(spec.origin))
    for pat in ("numpy.libs/lib*openblas*.so*", "numpy/.libs/lib*openblas*.so*",
                "scipy_openblas*/lib/lib*openblas*.so*"):
        found = sorted(glob.glob(os.path.join(site, pat)))
        if found:
            return found[0]
    return None


# ddot under the names OpenBLAS builds give it: ILP64 (scipy-openblas64,
# numpy >= 2) with 64-bit counts, LP64 with int.
DDOT = """
import ctypes, sys
path = sys.argv[1]
if sys.argv[2] == "numpy-first":
    import numpy
import json
from edgert import ModuleLoader, ABIContract
deps = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
L = ModuleLoader().load(path, dependencies=deps) if deps else ModuleLoader().load(path)
for sym, it in (("scipy_cblas_ddot64_", ctypes.c_int64), ("cblas_ddot64_", ctypes.c_int64),
                ("scipy_cblas_ddot", ctypes.c_int), ("cblas_ddot", ctypes.c_int)):
    try:
        L.address_of(sym)
        break
    except Exception:
        pass
D = ctypes.POINTER(ctypes.c_double)
L.bind(ABIContract(sym, [it, D, it, D, it], ctypes.c_double))
import array
x = array.array("d", [1.0, 2.0, 3.0])
y = array.array("d", [4.0, 5.0, 6.0])
print(L.call(sym, 3, x, 1, y, 1), L.shared_with_process)
"""


def test_numpys_openblas_after_import_numpy_is_the_process_instance():
    ob = openblas()
    if ob is None:
        pytest.skip("numpy has no bundled OpenBLAS here")
    r = run_py(DDOT, ob, "numpy-first")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["32.0", "True"]


def test_numpys_openblas_without_numpy_is_a_private_verified_copy():
    # Not in the process: a private verified copy, which needs the libraries
    # bundled beside it ($ORIGIN: libgfortran, libquadmath) listed by hash.
    ob = openblas()
    if ob is None:
        pytest.skip("numpy has no bundled OpenBLAS here")
    import hashlib
    import json
    folder = os.path.dirname(ob)
    deps = {os.path.basename(f): hashlib.sha256(open(f, "rb").read()).hexdigest()
            for f in glob.glob(os.path.join(folder, "*.so*")) if f != ob}
    unlisted = run_py(DDOT, ob, "alone")
    if deps:
        assert unlisted.returncode != 0
        assert "IntegrityError" in unlisted.stderr and "dependencies=" in unlisted.stderr
    r = run_py(DDOT, ob, "alone", json.dumps(deps))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["32.0", "False"]


# ---- errors as text -----------------------------------------------------------------

def test_a_missing_non_ascii_path_is_quoted_as_text(tmp_path):
    missing = tmp_path / "näme-ü" / "kérnel.so"
    with pytest.raises(FileNotFoundError) as e:
        ModuleLoader().load(str(missing))
    assert e.value.filename == str(missing)
    assert "kérnel.so" in str(e.value) and "b'" not in str(e.value)


def test_a_non_ascii_directory_is_quoted_as_text(tmp_path):
    d = tmp_path / "dossier-é"
    d.mkdir()
    with pytest.raises(IsADirectoryError) as e:
        ModuleLoader().load(str(d))
    assert e.value.filename == str(d) and "b'" not in str(e.value)


def test_64_non_ascii_characters_are_64_characters_not_more():
    with pytest.raises(ValueError) as e:
        ModuleLoader().load(fixture_path("loader_kernels"), expected_sha256="é" * 64)
    assert "got 64 characters (not all ASCII)" in str(e.value)
    assert "more than" not in str(e.value)
    with pytest.raises(ValueError, match="got 3 characters"):
        ModuleLoader().load(fixture_path("loader_kernels"), expected_sha256="ééé")
