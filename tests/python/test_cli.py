"""The `edgert` command line (docs/cli.md), run as users run it: through
`python -m edgert` in a subprocess. Every command, each exit status (0 all
holds, 1 a check failed, 2 usage or I/O), the --json schemas, --quiet, and
each failure: a missing file, a tampered module, a missing symbol, a
manifest that is not JSON, an unknown type name, a kernel that segfaults."""
import hashlib
import importlib.util
import json
import os
import pathlib
import pty
import random
import shutil
import struct
import subprocess
import sys

import pytest

from conftest import FOREIGN_MACHINE, fixture_path, sha

KERNELS = "manifest_kernels"   # add, scale, vec_add_f32, version
RISKY = "loader_risky"         # risky_kernel(x): x*2+1, a NULL read for x < 0
HAS_SIGNING = importlib.util.find_spec("edgert.signing") is not None


def edgert(*argv, cwd=None, input=None, stderr=subprocess.PIPE):
    return subprocess.run([sys.executable, "-m", "edgert", *map(str, argv)], cwd=cwd,
                          input=input, stdout=subprocess.PIPE, stderr=stderr, timeout=120)


def ok(r, code=0):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    return r


def as_json(r):
    return json.loads(r.stdout)


@pytest.fixture
def work(tmp_path):
    """A folder with copies of the fixture kernels and a manifest of both."""
    for name in (KERNELS, RISKY):
        shutil.copy(fixture_path(name), tmp_path / f"lib{name}.so")
    m = tmp_path / "m.json"
    ok(edgert("manifest", "new", m))
    ok(edgert("manifest", "add", m, tmp_path / f"lib{KERNELS}.so", "--func", "add",
              "--args", "c_double,c_double", "--ret", "c_double"))
    ok(edgert("manifest", "add", m, tmp_path / f"lib{KERNELS}.so", "--func", "vec_add_f32",
              "--args", "LP_c_float,c_size_t"))
    ok(edgert("manifest", "add", m, tmp_path / f"lib{RISKY}.so", "--func", "risky_kernel",
              "--args", "c_double", "--ret", "c_double"))
    return tmp_path


# ---- the program itself ----

def test_help_lists_every_command():
    r = ok(edgert("--help"))
    for cmd in ("hash", "inspect", "manifest", "keygen", "sign", "verify", "call", "report"):
        assert cmd in r.stdout.decode()
    ok(edgert("manifest", "--help"))


def test_version():
    import edgert as e
    assert ok(edgert("--version")).stdout.decode() == f"edgert {e.__version__}\n"


def test_usage_errors_exit_2():
    r = ok(edgert(), 2)
    assert b"COMMAND" in r.stderr or b"required" in r.stderr
    ok(edgert("frobnicate"), 2)
    ok(edgert("manifest"), 2)
    r = ok(edgert("--json", "hash"), 2)
    assert as_json(r)["ok"] is False and as_json(r)["error"]["exit"] == 2


def test_options_go_before_or_after_the_command(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    assert as_json(ok(edgert("--json", "hash", f))) == as_json(ok(edgert("hash", "--json", f)))


# ---- hash ----

def test_hash_prints_sha256sum_lines(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b b"
    a.write_bytes(b"hello")
    b.write_bytes(b"")
    r = ok(edgert("hash", a, b))
    assert r.stdout.decode() == f"{sha(a)}  {a}\n{sha(b)}  {b}\n"
    if shutil.which("sha256sum"):
        ref = subprocess.run(["sha256sum", str(a), str(b)], stdout=subprocess.PIPE, check=True)
        assert r.stdout == ref.stdout


def test_hash_matches_what_load_takes(tmp_path):
    import edgert as e
    lib = fixture_path(KERNELS)
    digest = ok(edgert("hash", lib)).stdout.split()[0].decode()
    with e.ModuleLoader().load(lib, expected_sha256=digest) as ld:
        assert ld.sha256 == digest


def test_hash_stdin():
    r = ok(edgert("hash", "-", input=b"abc"))
    assert r.stdout.decode() == hashlib.sha256(b"abc").hexdigest() + "  -\n"


def test_hash_missing_file_exits_2_and_hashes_the_rest(tmp_path):
    a = tmp_path / "a"
    a.write_bytes(b"x")
    r = ok(edgert("hash", tmp_path / "nope", a), 2)
    assert b"nope: No such file or directory" in r.stderr
    assert r.stdout.decode() == f"{sha(a)}  {a}\n"
    d = as_json(ok(edgert("hash", "--json", tmp_path / "nope", a), 2))
    assert d["ok"] is False
    assert d["files"][0] == {"path": str(tmp_path / "nope"), "sha256": None,
                             "error": "No such file or directory"}
    assert d["files"][1] == {"path": str(a), "sha256": sha(a), "error": None}
    ok(edgert("hash", tmp_path), 2)  # a folder


def test_hash_quiet_prints_nothing(tmp_path):
    a = tmp_path / "a"
    a.write_bytes(b"x")
    r = ok(edgert("hash", "-q", a))
    assert r.stdout == b"" and r.stderr == b""


def _big_file(tmp_path):
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(48 << 20)  # sparse: reads fast, hashes as 48 MiB of zeros
    return big


def test_hash_shows_no_progress_when_piped(tmp_path):
    big = _big_file(tmp_path)
    r = ok(edgert("hash", big))
    assert r.stderr == b""
    assert r.stdout.split()[0].decode() == hashlib.sha256(bytes(48 << 20)).hexdigest()


def test_hash_shows_progress_on_a_terminal(tmp_path):
    big = _big_file(tmp_path)
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([sys.executable, "-m", "edgert", "hash", str(big)],
                             stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        slave = -1
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            seen += chunk
        out, _ = p.communicate(timeout=120)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert p.returncode == 0
    assert b"%" in seen and b"48 MiB" in seen, seen
    assert out.split()[0].decode() == hashlib.sha256(bytes(48 << 20)).hexdigest()


# ---- inspect ----

def test_inspect_lists_machine_soname_and_functions():
    lib = fixture_path(KERNELS)
    r = ok(edgert("inspect", lib)).stdout.decode()
    assert "x86-64" in r or "AArch64" in r
    assert "soname: libmanifest_kernels.so" in r
    for f in ("add", "scale", "vec_add_f32", "version"):
        assert f"\n  {f}\n" in r
    functions = r.split("functions (")[1].split("interposable internal calls")[0]
    assert "manifest_counter" not in functions  # a data symbol, not a function


def test_inspect_json_schema():
    lib = fixture_path(KERNELS)
    d = as_json(ok(edgert("inspect", "--json", lib)))
    assert set(d) == {"ok", "path", "class", "byte_order", "machine", "e_machine", "type",
                      "soname", "runpath", "rpath", "needed", "functions", "interposable",
                      "contracts"}
    assert d["ok"] is True and d["class"] == 64 and d["type"] == "shared object"
    assert d["functions"] == ["add", "scale", "vec_add_f32", "version"]
    assert d["contracts"] is None


def test_inspect_reports_interposable_internal_calls():
    """loader_interpose calls its own exported helper() through the PLT: an
    LD_PRELOAD or RTLD_GLOBAL definition of helper takes that call over, and
    inspect says so (the core's edgert_interposable_calls)."""
    lib = fixture_path("loader_interpose")
    d = as_json(ok(edgert("inspect", "--json", lib)))
    assert d["interposable"] == ["helper"] and d["ok"] is True
    text = ok(edgert("inspect", lib)).stdout.decode()
    assert "interposable internal calls (1):" in text and "isolate_symbols=True" in text
    assert text.endswith("\n  helper\n")
    # Informational: --quiet prints nothing, the exit status stays 0.
    assert ok(edgert("inspect", "--quiet", lib)).stdout == b""


def test_inspect_reports_no_interposable_call_for_a_hidden_visibility_build():
    """The same module built with -fvisibility=hidden (entry point exported
    alone): nothing can be taken over."""
    lib = fixture_path("loader_interpose_hidden")
    assert as_json(ok(edgert("inspect", "--json", lib)))["interposable"] == []
    assert "interposable internal calls: none\n" in ok(edgert("inspect", lib)).stdout.decode()


def test_inspect_interposable_of_another_machine_s_file_is_not_analysed(tmp_path):
    """The core reads this machine's ELF64 only: another machine's file is
    inspected (by _elf) with "interposable": null, not refused, not guessed."""
    data = bytearray(pathlib.Path(fixture_path("loader_interpose")).read_bytes())
    data[18:20] = FOREIGN_MACHINE[0].to_bytes(2, "little")
    lib = tmp_path / "libforeign.so"
    lib.write_bytes(bytes(data))
    d = as_json(ok(edgert("inspect", "--json", lib)))
    assert d["machine"] == FOREIGN_MACHINE[1] and d["interposable"] is None
    text = ok(edgert("inspect", lib)).stdout.decode()
    assert "interposable internal calls: not analysed (another machine's file)" in text


def test_inspect_refuses_a_malformed_relocation_table(tmp_path):
    """A native module whose DT_JMPREL points outside its segments: the
    dependency plan reads it, the interposable-call reader refuses it, and
    inspect exits 2 with the core's message naming the table (no traceback)."""
    from edgert import _elf
    raw = bytearray(pathlib.Path(fixture_path("loader_interpose")).read_bytes())
    info = _elf.parse_elf(bytes(raw), "x")
    ph = [p for p in _phdrs(raw) if p[0] == 2][0]  # PT_DYNAMIC
    off, size = ph[1], ph[2]
    patched = False
    for i in range(off, off + size, 16):
        tag, _ = struct.unpack_from("<qQ", raw, i)
        if tag == 23:  # DT_JMPREL
            struct.pack_into("<qQ", raw, i, 23, 0x7FFF0000)
            patched = True
    assert patched and info.elf_class == 64
    lib = tmp_path / "libbadrel.so"
    lib.write_bytes(bytes(raw))
    r = ok(edgert("inspect", lib), 2)
    assert b"DT_JMPREL" in r.stderr and b"Traceback" not in r.stderr
    assert r.stderr.count(str(lib).encode()) == 1, r.stderr  # named once
    d = as_json(ok(edgert("inspect", "--json", lib), 2))
    assert d["ok"] is False and d["error"]["kind"] == "format"


def _phdrs(raw):
    """(p_type, p_offset, p_filesz) of each program header of a little-endian ELF64."""
    phoff, = struct.unpack_from("<Q", raw, 32)
    phentsize, phnum = struct.unpack_from("<HH", raw, 54)
    return [struct.unpack_from("<I4xQ16xQ", raw, phoff + k * phentsize)[:3] for k in range(phnum)]


def test_inspect_dependencies_resolve_and_need_listing(tmp_path):
    """A module with a helper beside it found through RUNPATH $ORIGIN, in a
    folder anyone may write to (below /tmp): it needs listing; libc does not."""
    if not shutil.which("cc"):
        pytest.skip("no C compiler")
    d = tmp_path / "kern"
    d.mkdir()
    (d / "helper.c").write_text("int helper(int x) { return x + 1; }\n")
    (d / "main.c").write_text("#include <stdio.h>\nint helper(int);\n"
                              "int k(const char *s) { puts(s); return helper(1); }\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", d / "libhelper.so", d / "helper.c"], check=True)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", d / "libk.so", d / "main.c", "-L", d,
                    "-lhelper", "-Wl,--enable-new-dtags,-rpath,$ORIGIN"], check=True)
    os.chmod(d, 0o777)  # writable by anyone: never a trusted folder
    data = as_json(ok(edgert("inspect", "--json", d / "libk.so")))
    assert data["runpath"] == ["$ORIGIN"]
    needed = {n["name"]: n for n in data["needed"]}
    h = needed["libhelper.so"]
    assert h["path"] == str(d / "libhelper.so") and h["via"] == "DT_RUNPATH"
    assert h["needs_listing"] is True and h["trusted"] is False
    c = needed["libc.so.6"]
    assert c["path"] and c["needs_listing"] is False
    text = ok(edgert("inspect", d / "libk.so")).stdout.decode()
    assert "libhelper.so => " in text and "NEEDS LISTING" in text
    os.remove(d / "libhelper.so")
    data = as_json(ok(edgert("inspect", "--json", d / "libk.so")))
    assert {n["name"]: n for n in data["needed"]}["libhelper.so"]["path"] is None
    assert "libhelper.so: NOT FOUND" in ok(edgert("inspect", d / "libk.so")).stdout.decode()


def test_inspect_and_the_loader_agree_on_dependencies():
    """For a native file, inspect reports what the loader itself resolved
    (edgert_module_plan_dependencies): the $ORIGIN helper of the fixture
    is shown as needing listing, with its SHA-256, exactly when a load
    refuses it (a folder that is root's but not a system folder of the
    dynamic linker is not trusted by the loader, whatever its owner), and
    the hash shown is the one that makes the load succeed."""
    import ctypes
    import edgert as pkg
    top = pathlib.Path(fixture_path(KERNELS)).parent / "deps" / "libdeps_top.so"
    data = as_json(ok(edgert("inspect", "--json", top)))
    rows = {n["name"]: n for n in data["needed"]}
    h = rows["libdeps_helper.so"]
    helper = top.parent / "libdeps_helper.so"
    assert h["path"] == os.path.realpath(helper) and h["via"] == "DT_RUNPATH"
    assert h["trusted"] is False and h["needs_listing"] is True and h["kind"] == "unlisted"
    assert h["sha256"] == sha(helper) and h["depth"] == 0
    assert "not a system folder" in h["reason"]
    assert any(n["name"] == "libc.so.6" and n["needed_by"] == os.path.realpath(helper)
               and n["depth"] == 1 for n in data["needed"])  # the helper's own
    abi = [pkg.ABIContract("top_add", [ctypes.c_int, ctypes.c_int], ctypes.c_int)]
    with pytest.raises(pkg.IntegrityError):
        pkg.ModuleLoader().load(top, abi)
    with pkg.ModuleLoader().load(top, abi, dependencies={"libdeps_helper.so": h["sha256"]}) as ld:
        assert ld.call("top_add", 1, 1) == 3
    text = ok(edgert("inspect", top)).stdout.decode()
    assert f"NEEDS LISTING (not verified otherwise); sha256 {h['sha256']}" in text
    assert "\n    libc.so.6 => " in text  # the helper's own dependency, one level deeper


def test_inspect_with_a_manifest_takes_its_listed_dependencies(tmp_path):
    """inspect --manifest M plans with M's entry's "dependencies" as a load
    of M would: the helper listed with its hash is "listed", with another
    hash "mismatch" (and still needs a correct listing)."""
    import shutil
    src = pathlib.Path(fixture_path(KERNELS)).parent / "deps"
    for f in ("libdeps_top.so", "libdeps_helper.so"):
        shutil.copy(src / f, tmp_path / f)
    top = tmp_path / "libdeps_top.so"
    good = sha(tmp_path / "libdeps_helper.so")

    def manifest(h):
        m = tmp_path / "m.json"
        m.write_text(json.dumps({"schema_version": 1, "modules": [{
            "path": "libdeps_top.so", "sha256": sha(top),
            "dependencies": [{"path": "libdeps_helper.so", "sha256": h}],
            "contracts": [{"function_name": "top_add", "arg_types": ["c_int", "c_int"],
                           "return_type": "c_int", "calling_convention": "cdecl",
                           "release_gil": True}]}]}))
        return m

    data = as_json(ok(edgert("inspect", "--json", top, "--manifest", manifest(good))))
    row = {n["name"]: n for n in data["needed"]}["libdeps_helper.so"]
    assert row["kind"] == "listed" and row["needs_listing"] is False
    text = ok(edgert("inspect", top, "--manifest", manifest(good))).stdout.decode()
    assert "listed: its hash matches" in text
    data = as_json(ok(edgert("inspect", "--json", top, "--manifest", manifest("0" * 64))))
    row = {n["name"]: n for n in data["needed"]}["libdeps_helper.so"]
    assert row["kind"] == "mismatch" and row["needs_listing"] is True


def test_inspect_refuses_what_is_not_elf(tmp_path):
    txt = tmp_path / "notes.txt"
    txt.write_text("hello\n")
    r = ok(edgert("inspect", txt), 2)
    assert b"not an ELF file" in r.stderr
    r = ok(edgert("inspect", tmp_path / "nope.so"), 2)
    assert b"No such file or directory" in r.stderr
    trunc = tmp_path / "trunc.so"
    trunc.write_bytes(pathlib.Path(fixture_path(KERNELS)).read_bytes()[:80])
    r = ok(edgert("inspect", trunc), 2)
    assert b"outside the file" in r.stderr and b"Traceback" not in r.stderr
    d = as_json(ok(edgert("inspect", "--json", txt), 2))
    assert d["ok"] is False and d["error"]["kind"] == "format"


def test_elf_reader_never_fails_other_than_by_elferror():
    """Mutated copies of a real module: the reader either reads them or
    raises ElfError; never IndexError, struct.error or a hang."""
    from edgert import _elf
    good = pathlib.Path(fixture_path(KERNELS)).read_bytes()
    rng = random.Random(1606)
    outcomes = {"read": 0, "refused": 0}
    for i in range(600):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            # Most mutations in the headers and dynamic data, where they matter.
            pos = rng.randrange(min(len(data), 0x4000) if i % 3 else len(data))
            data[pos] = rng.randrange(256)
        if i % 7 == 0:
            del data[rng.randrange(len(data)):]
        try:
            _elf.parse_elf(bytes(data), "mutant")
            outcomes["read"] += 1
        except _elf.ElfError:
            outcomes["refused"] += 1
    assert outcomes["read"] and outcomes["refused"], outcomes


def test_elf_reader_reads_32_bit_and_big_endian_headers():
    from edgert import _elf
    # A minimal ELF32 big-endian executable header with no program headers.
    hdr = b"\x7fELF" + bytes([1, 2, 1]) + bytes(9)
    hdr += struct.pack(">HHIIIIIHHHHHH", 2, 20, 1, 0, 0, 0, 0, 52, 32, 0, 40, 0, 0)
    info = _elf.parse_elf(hdr, "ppc")
    assert (info.elf_class, info.byte_order, info.machine_name, info.type) == \
        (32, "big", "PowerPC", "executable")


def test_inspect_with_manifest_checks_each_contract(work):
    lib = work / f"lib{KERNELS}.so"
    r = ok(edgert("inspect", lib, "--manifest", work / "m.json")).stdout.decode()
    assert "  add: OK" in r and "  vec_add_f32: OK" in r
    # A manifest whose contract names a function the library does not export.
    doc = json.loads((work / "m.json").read_text())
    doc["modules"][0]["contracts"].append({"function_name": "no_such_fn", "arg_types": []})
    (work / "bad.json").write_text(json.dumps(doc))
    r = ok(edgert("inspect", lib, "--manifest", work / "bad.json"), 1)
    assert b"  no_such_fn: FAILED (not exported)" in r.stdout
    d = as_json(ok(edgert("inspect", "--json", lib, "--manifest", work / "bad.json"), 1))
    assert d["ok"] is False
    assert d["contracts"]["module"] == f"lib{KERNELS}.so"
    assert {"function_name": "no_such_fn", "signature": "void no_such_fn()",
            "exported": False} in d["contracts"]["results"]
    r = ok(edgert("inspect", fixture_path("guard_crashy"), "--manifest", work / "m.json"), 2)
    assert b"is not listed in" in r.stderr


# ---- manifest new / add / check ----

def test_manifest_new_refuses_to_overwrite(tmp_path):
    m = tmp_path / "m.json"
    d = as_json(ok(edgert("manifest", "new", "--json", m)))
    assert d == {"ok": True, "manifest": str(m)}
    assert json.loads(m.read_text()) == {"schema_version": 1, "modules": []}
    r = ok(edgert("manifest", "new", m), 2)
    assert b"already exists" in r.stderr
    ok(edgert("manifest", "new", "--force", m))
    ok(edgert("manifest", "new", tmp_path / "no" / "dir" / "m.json"), 2)


def test_manifest_add_writes_what_load_manifest_loads(work):
    import edgert as e
    doc = json.loads((work / "m.json").read_text())
    assert [m["path"] for m in doc["modules"]] == [f"lib{KERNELS}.so", f"lib{RISKY}.so"]
    assert doc["modules"][0]["sha256"] == sha(work / f"lib{KERNELS}.so")
    with e.load_manifest(work / "m.json") as m:
        assert m.call("add", 1.5, 2.0) == 3.5


def test_manifest_add_json_schema(tmp_path):
    m = tmp_path / "m.json"
    ok(edgert("manifest", "new", m))
    lib = fixture_path(KERNELS)
    d = as_json(ok(edgert("manifest", "add", "--json", m, lib, "--func", "scale",
                          "--args", "c_int64,c_int32", "--ret", "c_int64")))
    assert d == {"ok": True, "manifest": str(m), "module": os.path.relpath(lib, tmp_path),
                 "sha256": sha(lib),
                 "contract": {"function_name": "scale", "arg_types": ["c_ssize_t", "c_int"],
                              "return_type": "c_ssize_t", "calling_convention": "cdecl"}}


def test_manifest_add_refusals(work):
    m = work / "m.json"
    lib = work / f"lib{KERNELS}.so"
    before = m.read_bytes()
    r = ok(edgert("manifest", "add", m, lib, "--func", "add", "--args", "c_flaot"), 2)
    assert b"unknown type name 'c_flaot'" in r.stderr
    r = ok(edgert("manifest", "add", m, lib, "--func", "nope", "--args", "c_int"), 2)
    assert b"does not export a function 'nope'" in r.stderr
    r = ok(edgert("manifest", "add", m, lib, "--func", "add", "--args", "c_double,c_double"), 2)
    assert b"already has a contract for 'add'" in r.stderr
    r = ok(edgert("manifest", "add", m, work / "nope.so", "--func", "add"), 2)
    assert b"No such file or directory" in r.stderr
    r = ok(edgert("manifest", "add", m, m, "--func", "add"), 2)
    assert b"not an ELF file" in r.stderr
    r = ok(edgert("manifest", "add", m, lib), 2)
    assert b"--func" in r.stderr
    assert m.read_bytes() == before  # nothing written by a refusal


def test_manifest_add_decl_needs_from_c(work):
    import edgert as e
    pytest.importorskip("pycparser", reason="--decl needs pycparser (edgert[cdecl]), not "
                                            "installed for this interpreter")
    r = edgert("manifest", "add", work / "m.json", work / f"lib{KERNELS}.so",
               "--decl", "int32_t version(void)")
    if hasattr(e.ABIContract, "from_c"):
        ok(r)
    else:
        ok(r, 2)
        assert b"C declarations need edgert.ABIContract.from_c" in r.stderr


def test_manifest_check_ok(work):
    r = ok(edgert("manifest", "check", work / "m.json"))
    assert r.stdout.decode() == f"lib{KERNELS}.so: OK\nlib{RISKY}.so: OK\n"
    assert ok(edgert("manifest", "check", "-q", work / "m.json")).stdout == b""


def test_manifest_check_failures_one_line_each(work):
    m = work / "m.json"
    doc = json.loads(m.read_text())
    doc["modules"][0]["contracts"].append({"function_name": "gone", "arg_types": []})
    m.write_text(json.dumps(doc))
    with open(work / f"lib{RISKY}.so", "ab") as f:
        f.write(b"\0")  # tampered
    r = ok(edgert("manifest", "check", m), 1)
    assert r.stdout.decode() == (f"lib{KERNELS}.so: FAILED (missing symbols: gone)\n"
                                 f"lib{RISKY}.so: FAILED (sha256 mismatch)\n")
    assert b"2 of 2 modules did NOT check out" in r.stderr
    os.remove(work / f"lib{KERNELS}.so")
    r = ok(edgert("manifest", "check", m), 1)
    lines = r.stdout.decode().splitlines()
    assert lines[0].startswith(f"lib{KERNELS}.so: FAILED (missing (") and "not found" in lines[0]
    assert lines[1] == f"lib{RISKY}.so: FAILED (sha256 mismatch)"
    d = as_json(ok(edgert("manifest", "check", "--json", m), 1))
    assert d["ok"] is False and d["manifest"] == str(m)
    assert [set(x) for x in d["modules"]] == [{"path", "ok", "reason", "sha256", "missing_symbols"}] * 2
    assert d["modules"][1]["sha256"] == sha(work / f"lib{RISKY}.so")
    assert d["modules"][1]["reason"] == "sha256 mismatch"
    q = ok(edgert("manifest", "check", "-q", m), 1)
    assert q.stdout.count(b"FAILED") == 2


def test_manifest_check_bad_documents_exit_2(tmp_path):
    m = tmp_path / "m.json"
    m.write_text('{"schema_version": 1, "modules": [}')
    r = ok(edgert("manifest", "check", m), 2)
    assert b"not a valid manifest" in r.stderr and b"invalid JSON" in r.stderr
    m.write_text('{"schema_version": 1, "modules": [{"path": "a.so", "sha256": "xyz", '
                 '"contracts": []}]}')
    (tmp_path / "a.so").write_bytes(b"x")
    r = ok(edgert("manifest", "check", m), 2)
    assert b"modules[0].sha256: 'xyz' is not 64 hexadecimal digits" in r.stderr
    m.write_text('[1, 2]')
    ok(edgert("manifest", "check", m), 2)
    m.write_bytes(b'{"schema_version": 1, "modules": [], "x": "\xff"}')
    r = ok(edgert("manifest", "check", m), 2)
    assert b"invalid UTF-8 at line 1, column 44" in r.stderr
    ok(edgert("manifest", "check", tmp_path / "nope.json"), 2)
    d = as_json(ok(edgert("manifest", "check", "--json", tmp_path / "nope.json"), 2))
    assert d["error"]["kind"] == "io"


# ---- call ----

def test_call_prints_the_result(work):
    r = ok(edgert("call", work / f"lib{KERNELS}.so", "add", "1", "2.5", "--args",
                  "c_double,c_double", "--ret", "c_double"))
    assert r.stdout.decode() == "add = 3.5\n"
    r = ok(edgert("call", work / f"lib{RISKY}.so", "risky_kernel", "2", "--manifest", work / "m.json"))
    assert r.stdout.decode() == "risky_kernel = 5.0\n"


def test_call_buffers_and_json(work):
    d = as_json(ok(edgert("call", "--json", work / f"lib{KERNELS}.so", "vec_add_f32", "1,2,3", "3",
                          "--manifest", work / "m.json")))
    assert d == {"ok": True, "function": "vec_add_f32",
                 "signature": "void vec_add_f32(LP_c_float, c_size_t)",
                 "sha256": sha(work / f"lib{KERNELS}.so"), "result": None,
                 "buffers": {"1": [2.0, 4.0, 6.0]}, "crash": None, "error": None}


def test_call_contains_a_segfaulting_kernel(work):
    r = ok(edgert("call", work / f"lib{RISKY}.so", "risky_kernel", "-1", "--args", "c_double",
                  "--ret", "c_double"), 1)
    assert b"risky_kernel: CRASHED (contained: kernel crashed: SIGSEGV" in r.stdout
    d = as_json(ok(edgert("call", "--json", work / f"lib{RISKY}.so", "risky_kernel", "-1",
                          "--manifest", work / "m.json"), 1))
    assert d["ok"] is False and d["result"] is None
    assert d["crash"]["signal"] == "SIGSEGV" and d["crash"]["address"] == 0


def test_call_refuses_a_tampered_module(work):
    lib = work / f"lib{RISKY}.so"
    with open(lib, "ab") as f:
        f.write(b"\0")
    r = ok(edgert("call", lib, "risky_kernel", "2", "--manifest", work / "m.json"), 1)
    assert b"IntegrityError" in r.stderr and b"none of its code ran" in r.stderr
    r = ok(edgert("call", lib, "risky_kernel", "2", "--args", "c_double", "--ret", "c_double",
                  "--sha256", "0" * 64), 1)
    assert b"IntegrityError" in r.stderr


def test_call_usage_errors(work):
    lib = work / f"lib{KERNELS}.so"
    cases = [
        (["add", "1", "--args", "c_flaot", "--ret", "c_double"], b"unknown type name 'c_flaot'"),
        (["add", "1", "--args", "c_double,c_double", "--ret", "c_double"], b"takes 2 argument(s)"),
        (["add", "x", "y", "--args", "c_double,c_double", "--ret", "c_double"], b"not a c_double"),
        (["scale", "99999999999", "1", "--args", "c_int64,c_int32", "--ret", "c_int64"], b""),
        (["nope", "--manifest", work / "m.json"], b"has no contract for 'nope'"),
        (["add", "1", "2", "--manifest", work / "m.json", "--args", "c_double"], b"not both"),
    ]
    for argv, msg in cases:
        r = edgert("call", lib, *argv)
        if argv[0] == "scale":
            ok(r)  # in range: fine
            continue
        ok(r, 2)
        assert msg in r.stderr, (argv, r.stderr)
    r = ok(edgert("call", lib, "scale", "1", str(1 << 40), "--args", "c_int64,c_int32",
                  "--ret", "c_int64"), 2)
    assert b"Traceback" not in r.stderr
    r = ok(edgert("call", work / "nope.so", "add", "--args", ""), 2)
    assert b"No such file or directory" in r.stderr
    r = ok(edgert("call", lib, "missing_fn", "--args", ""), 1)
    assert b"SymbolNotFoundError" in r.stderr


# ---- report ----

def test_report_lists_what_would_be_bound(work):
    r = ok(edgert("report", work / "m.json")).stdout.decode()
    assert "2 module(s) verified and loaded, nothing called" in r
    assert "c_double add(c_double, c_double) at 0x" in r
    assert "c_double risky_kernel(c_double) at 0x" in r
    d = as_json(ok(edgert("report", "--json", work / "m.json")))
    assert d["ok"] is True and [m["path"] for m in d["modules"]] == [f"lib{KERNELS}.so", f"lib{RISKY}.so"]
    assert set(d["modules"][0]) == {"path", "file", "sha256", "functions"}
    assert set(d["modules"][0]["functions"][0]) == {"function_name", "signature", "address"}


def test_report_failures(work):
    m = work / "m.json"
    doc = json.loads(m.read_text())
    doc["modules"][0]["contracts"].append({"function_name": "gone", "arg_types": []})
    (work / "sym.json").write_text(json.dumps(doc))
    r = ok(edgert("report", work / "sym.json"), 1)
    assert b"gone" in r.stderr and b"SymbolNotFoundError" in r.stderr
    with open(work / f"lib{RISKY}.so", "ab") as f:
        f.write(b"\0")
    r = ok(edgert("report", m), 1)
    assert b"IntegrityError" in r.stderr
    (work / "bad.json").write_text("{")
    ok(edgert("report", work / "bad.json"), 2)
    os.remove(work / f"lib{RISKY}.so")
    r = ok(edgert("report", m), 2)
    assert b"not found" in r.stderr


# ---- keygen, sign, verify (edgert.signing, from the signing work) ----

@pytest.mark.skipif(HAS_SIGNING, reason="edgert.signing is present")
def test_signing_commands_say_what_they_need(tmp_path):
    for argv in (["keygen", "--key", tmp_path / "k", "--pubkey", tmp_path / "p"],
                 ["sign", tmp_path / "m.json", "--key", tmp_path / "k"],
                 ["verify", tmp_path / "m.json", "--pubkey", tmp_path / "p"]):
        r = ok(edgert(*argv), 2)
        assert b"needs edgert.signing" in r.stderr


def _signed_manifest(work, version, expires="2099-01-01T00:00:00Z"):
    doc = json.loads((work / "m.json").read_text())
    doc["version"] = version
    doc["expires"] = expires
    path = work / f"signed-v{version}.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def test_keygen_sign_verify(work):
    pytest.importorskip("edgert.signing")
    key, pub = work / "k.pem", work / "k.pub"
    d = as_json(ok(edgert("keygen", "--json", "--key", key, "--pubkey", pub)))
    assert set(d) == {"ok", "key_id", "private_key", "public_key"} and d["key_id"]
    kid = d["key_id"]
    ok(edgert("keygen", "--key", key, "--pubkey", pub), 2)  # will not overwrite
    m = _signed_manifest(work, 3)
    d = as_json(ok(edgert("sign", "--json", m, "--key", key)))
    assert d["signature"] == str(m) + ".sig" and os.path.exists(d["signature"])
    d = as_json(ok(edgert("verify", "--json", m, "--pubkey", pub)))
    assert d["ok"] is True and d["key_id"] == kid and d["version"] == 3
    assert set(d) == {"ok", "manifest", "key_id", "version", "expires"}
    assert ok(edgert("verify", m, "--pubkey", pub)).stdout.startswith(f"{m}: OK".encode())
    ok(edgert("report", m, "--pubkey", pub))
    ok(edgert("call", work / f"lib{KERNELS}.so", "add", "1", "2", "--manifest", m, "--pubkey", pub))


def test_verify_failures(work):
    pytest.importorskip("edgert.signing")
    key, pub = work / "k.pem", work / "k.pub"
    other_key, other_pub = work / "o.pem", work / "o.pub"
    ok(edgert("keygen", "--key", key, "--pubkey", pub))
    ok(edgert("keygen", "--key", other_key, "--pubkey", other_pub))
    m = _signed_manifest(work, 5)
    ok(edgert("sign", m, "--key", key))
    r = ok(edgert("verify", m, "--pubkey", other_pub), 1)  # unknown key
    assert b"UnknownKeyError" in r.stderr
    d = as_json(ok(edgert("verify", "--json", m, "--pubkey", other_pub), 1))
    assert d["error"]["kind"] == "signature"
    text = m.read_bytes()
    m.write_bytes(text.replace(b'"version": 5', b'"version": 6'))  # one changed byte
    ok(edgert("verify", m, "--pubkey", pub), 1)
    m.write_bytes(text)
    state = work / "state"
    ok(edgert("verify", m, "--pubkey", pub, "--state-file", state))
    old = _signed_manifest(work, 4)
    ok(edgert("sign", old, "--key", key))
    r = ok(edgert("verify", old, "--pubkey", pub, "--state-file", state), 1)  # rollback
    assert b"RollbackError" in r.stderr
    r = ok(edgert("call", work / f"lib{KERNELS}.so", "add", "1", "2", "--manifest", old,
                  "--pubkey", pub, "--state-file", state), 1)
    exp = _signed_manifest(work, 9, "2001-01-01T00:00:00Z")
    ok(edgert("sign", exp, "--key", key))
    r = ok(edgert("verify", exp, "--pubkey", pub), 1)
    assert b"ManifestExpiredError" in r.stderr
    ok(edgert("verify", m, "--pubkey", pub, "--state-file", work / "no" / "dir" / "state"), 2)
    ok(edgert("sign", m, "--key", work / "nokey.pem"), 2)
    ok(edgert("verify", m, "--pubkey", work / "nokey.pub"), 2)
