"""A local attacker against verified loading (issue 10): another process of
the same user patching the loader's memfd before its seal, a library whose
DT_SONAME is the memfd's /proc/self/fd/N name, and symbol interposition on a
verified module's internal calls (``isolate_symbols``, ``interposable_calls``).
"""
import ctypes
import os
import struct
import subprocess
import sys
import textwrap

import pytest

import edgert
from edgert import ABIContract, IntegrityError, ModuleFormatError, ModuleLoader

from conftest import fixture_path

GENUINE = 0x600DC0DE
PATCHED = 0x0BADC0DE

PROBE = ABIContract("tamper_probe", [], ctypes.c_uint32)


def sha_of(path: str) -> str:
    return ModuleLoader().load(path).sha256


# ---- the unsealed window ----------------------------------------------------

# The attacker: a second process of the same user. It finds the loader's
# memfd in /proc/<pid>/fd, opens it read-write, waits until the copy has
# passed the code and writes PATCHED over tamper_probe's immediate. Exit 0:
# its write went in; 1: refused (sealed); 2: never found the memfd.
ATTACKER = textwrap.dedent(
    """
    import os, struct, sys, time
    pid, off = int(sys.argv[1]), int(sys.argv[2])
    d = f"/proc/{pid}/fd"
    print("ready", flush=True)
    deadline = time.monotonic() + 20
    fd = -1
    while fd < 0 and time.monotonic() < deadline:
        for e in os.listdir(d):
            try:
                if "memfd:edgert:libloader_tamper.so" not in os.readlink(f"{d}/{e}"):
                    continue
                fd = os.open(f"{d}/{e}", os.O_RDWR)
                break
            except OSError:
                continue
    if fd < 0:
        sys.exit(2)
    while os.fstat(fd).st_size < off + 4 and time.monotonic() < deadline:
        pass
    try:
        os.pwrite(fd, struct.pack("<I", 0x0BADC0DE), off)
    except OSError:
        sys.exit(1)
    sys.exit(0)
    """
)


def test_a_patch_before_the_seal_never_runs_under_the_genuine_hash():
    path = fixture_path("loader_tamper")
    with open(path, "rb") as f:
        data = f.read()
    marker = struct.pack("<I", GENUINE)
    assert data.count(marker) == 1
    off = data.index(marker)
    genuine = sha_of(path)
    outcomes = {"attacker wrote": 0, "refused": 0, "genuine": 0, "patched, own hash": 0}
    for attempt in range(6):
        atk = subprocess.Popen([sys.executable, "-c", ATTACKER, str(os.getpid()), str(off)],
                               stdout=subprocess.PIPE, text=True)
        assert atk.stdout.readline().strip() == "ready"
        expect = genuine if attempt % 2 == 0 else None
        try:
            loader = ModuleLoader().load(path, [PROBE], expected_sha256=expect)
        except IntegrityError:
            loader = None
        outcomes["attacker wrote"] += atk.wait(timeout=60) == 0
        if loader is None:
            outcomes["refused"] += 1
            continue
        got = loader.call("tamper_probe")
        if got == GENUINE:
            assert loader.sha256 == genuine
            outcomes["genuine"] += 1
        else:
            # Patched bytes may run only when no hash was expected, and then
            # only under the digest of the patched bytes.
            assert got == PATCHED and expect is None
            assert loader.sha256 != genuine and not loader.verify_signature(genuine)
            outcomes["patched, own hash"] += 1
        loader.unload()
    # Whatever happened above, the genuine file still loads as itself (no
    # tampered image was filed under its hash).
    clean = ModuleLoader().load(path, [PROBE], expected_sha256=genuine)
    assert clean.call("tamper_probe") == GENUINE
    print("unsealed window:", outcomes)


# ---- a crafted DT_SONAME ----------------------------------------------------

SONAME_FD = 200
VERSION = ABIContract("version", [], ctypes.c_int)


def _lowest_free_fd() -> int:
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)
    return fd


def test_a_library_whose_soname_is_the_memfd_name_is_refused():
    """libloader_soname_evil.so has DT_SONAME "/proc/self/fd/200": loaded
    first (as ctypes does), glibc answers dlopen("/proc/self/fd/200") with it.
    The verified load that gets fd 200 must be refused, naming it, and no
    load may run its version() (666) instead of loader_v1's (42)."""
    if _lowest_free_fd() >= SONAME_FD - 3:
        pytest.skip("this process already uses file descriptors near 200")
    try:
        os.fstat(SONAME_FD)
        pytest.skip("fd 200 is in use")
    except OSError:
        pass
    evil = ctypes.CDLL(fixture_path("loader_soname_evil"))
    assert evil.version() == 666
    path = fixture_path("loader_v1")
    genuine = sha_of(path)
    refusals = []
    for k in range(4):  # the loader's memfd lands on 200 in one of these
        held = []
        while _lowest_free_fd() < SONAME_FD - k:
            held.append(os.open(os.devnull, os.O_RDONLY))
        try:
            loader = ModuleLoader().load(path, [VERSION], expected_sha256=genuine)
        except IntegrityError as e:
            refusals.append(str(e))
            continue
        finally:
            for fd in held:
                os.close(fd)
        assert loader.call("version") == 42
        loader.unload()
    assert len(refusals) == 1
    assert "libloader_soname_evil.so" in refusals[0] and "/proc/self/fd/200" in refusals[0]


# ---- interposition ----------------------------------------------------------

INTERPOSE = textwrap.dedent(
    """
    import ctypes, sys
    from edgert import ABIContract, ModuleLoader
    if sys.argv[1] == "global":
        ctypes.CDLL(sys.argv[3], mode=ctypes.RTLD_GLOBAL)
    run = [ABIContract("run", [], ctypes.c_int)]
    plain = ModuleLoader().load(sys.argv[2], run)
    try:
        isolated = ModuleLoader().load(sys.argv[2], run, isolate_symbols=True)
        iso = str(isolated.call("run"))
    except NotImplementedError as e:
        iso = "refused: " + str(e)
    print(plain.call("run"), iso)
    """
)


def _run_interposed(how: str) -> tuple:
    env = dict(os.environ)
    evil = fixture_path("loader_interpose_evil")
    if how == "preload":
        env["LD_PRELOAD"] = (env.get("LD_PRELOAD", "") + " " + evil).strip()
    out = subprocess.run([sys.executable, "-c", INTERPOSE, how, fixture_path("loader_interpose"),
                          evil], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    plain, iso = out.stdout.strip().split(" ", 1)
    return int(plain), iso


@pytest.mark.parametrize("how", ["global", "preload"])
def test_isolate_symbols_keeps_internal_calls_inside_the_module(how):
    """run() calls the module's own exported helper(): 101. An RTLD_GLOBAL
    library or LD_PRELOAD defining helper() takes that call over (the ELF
    rule: 766) unless the module is loaded with isolate_symbols=True."""
    plain, iso = _run_interposed(how)
    assert plain == 766
    if iso.startswith("refused: "):
        # ASan's and TSan's dlopen end the process on RTLD_DEEPBIND; the
        # loader refuses before, saying so (make test-sanitize runs this).
        assert "RTLD_DEEPBIND" in iso and "Sanitizer" in iso
        assert os.environ.get("EDGERT_SANITIZED")
    else:
        assert int(iso) == 101


def test_isolate_symbols_without_an_interposer_changes_nothing():
    run = [ABIContract("run", [], ctypes.c_int)]
    try:
        loader = ModuleLoader().load(fixture_path("loader_interpose"), run, isolate_symbols=True)
    except NotImplementedError as e:
        assert os.environ.get("EDGERT_SANITIZED") and "RTLD_DEEPBIND" in str(e)
        return
    assert loader.call("run") == 101


def test_interposable_calls_name_the_module_s_own_exported_callees():
    assert edgert.interposable_calls(fixture_path("loader_interpose")) == ["helper"]
    # -fvisibility=hidden: nothing to take over.
    assert edgert.interposable_calls(fixture_path("loader_interpose_hidden")) == []
    # (An ASan build exports ODR indicators of the module's globals, which it
    # reaches through its GOT: reported, rightly.)
    kernels = edgert.interposable_calls(fixture_path("loader_kernels"))
    assert [n for n in kernels if not n.startswith("__odr_asan")] == []


def test_interposable_calls_refuses_what_is_not_a_module(tmp_path):
    text = tmp_path / "x.so"
    text.write_bytes(b"not an ELF file")
    with pytest.raises(ModuleFormatError, match="not an ELF file"):
        edgert.interposable_calls(text)
    with pytest.raises(OSError):
        edgert.interposable_calls(tmp_path / "missing.so")
    with pytest.raises(OSError, match="not a regular file"):
        edgert.interposable_calls(tmp_path)
    with pytest.raises(TypeError):
        edgert.interposable_calls(42)
