"""Manifests from Python: the same strict C reader, then verified loading."""
import ctypes
import hashlib
import json
import os
import shutil

import pytest

import edgert
from edgert import (ABIContract, IntegrityError, ManifestError, SymbolNotFoundError, _edgert,
                    load_manifest, read_manifest)
from conftest import fixture_path

H64 = "0123456789abcdef" * 4


def built(name: str) -> str:
    try:
        return fixture_path(name)
    except FileNotFoundError:
        return fixture_path("lib" + name)


def sha256_of(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def doc(*modules, **top):
    d = {"schema_version": 1, "modules": list(modules)}
    d.update(top)
    return d


def module(path="k.so", sha=H64, contracts=()):
    return {"path": path, "sha256": sha, "contracts": list(contracts)}


def refused(text, message):
    """parse_manifest_text refuses `text` (str, or a dict to dump) with exactly `message`."""
    if not isinstance(text, (str, bytes)):
        text = json.dumps(text)
    with pytest.raises(ManifestError) as info:
        _edgert.parse_manifest_text(text)
    assert str(info.value) == message
    return info.value


@pytest.fixture
def tree(tmp_path):
    """tmp/kernels/{libmanifest_kernels.so, other.so} and their hashes."""
    (tmp_path / "kernels").mkdir()
    k = tmp_path / "kernels" / "libmanifest_kernels.so"
    o = tmp_path / "kernels" / "other.so"
    shutil.copyfile(built("manifest_kernels"), k)
    shutil.copyfile(built("manifest_other"), o)
    return tmp_path, sha256_of(k), sha256_of(o)


def two_modules(ksha, osha):
    vec = ABIContract("vec_add_f32", [ctypes.POINTER(ctypes.c_float), ctypes.c_size_t])
    add = ABIContract("add", [ctypes.c_double, ctypes.c_double], ctypes.c_double, release_gil=False)
    scale = ABIContract("scale", [ctypes.c_int64, ctypes.c_int32], ctypes.c_int64)
    ver = ABIContract("version", [], ctypes.c_int)
    answer = ABIContract("answer", [], ctypes.c_int32)
    return doc(module("kernels/libmanifest_kernels.so", ksha,
                      [c.to_dict() for c in (vec, add, scale, ver)]),
               module("kernels/other.so", osha, [answer.to_dict(), ver.to_dict()]))


def write(path, d):
    path.write_text(d if isinstance(d, str) else json.dumps(d, indent=1))
    return path


# ---- reading ----------------------------------------------------------------

def test_to_dict_output_is_what_manifests_hold(tree):
    tmp, ksha, osha = tree
    m = write(tmp / "m.json", two_modules(ksha, osha))
    entries = read_manifest(m)
    assert [e["path"] for e in entries] == ["kernels/libmanifest_kernels.so", "kernels/other.so"]
    assert entries[0]["file"] == str((tmp / "kernels" / "libmanifest_kernels.so").resolve())
    assert entries[0]["sha256"] == ksha
    vec = entries[0]["contracts"][0]
    assert vec == {"function_name": "vec_add_f32", "arg_types": ["LP_c_float", "c_size_t"],
                   "return_type": None, "calling_convention": "cdecl"}
    assert entries[0]["contracts"][1]["release_gil"] is False
    assert entries[0]["contracts"][2]["arg_types"] == ["c_ssize_t", "c_int"]
    # What C read is what Python wrote, for every contract.
    for e, src in zip(entries, json.loads(m.read_text())["modules"]):
        assert e["contracts"] == src["contracts"]
        assert [ABIContract.from_manifest(c).to_dict() for c in e["contracts"]] == src["contracts"]
    # str, bytes and PathLike all work
    assert read_manifest(str(m)) == read_manifest(os.fsencode(str(m))) == entries


def test_hashes_are_lowercased_and_aliases_made_canonical():
    entries = _edgert.parse_manifest_text(json.dumps(doc(module(
        "a.so", H64.upper(), [{"function_name": "f", "arg_types": ["c_ulong", "LP_c_uint64", "c_int32"]}]))))
    assert entries[0]["sha256"] == H64
    assert entries[0]["file"] == "a.so"  # no base directory: not resolved
    assert entries[0]["contracts"][0]["arg_types"] == ["c_size_t", "LP_c_size_t", "c_int"]


@pytest.mark.parametrize("text, message", [
    ('{"schema_version": 1, "modules": [], "extra": 1}',
     "manifest: unknown key 'extra' (expected: schema_version, modules, version, expires, structs)"),
    ('{"schema_version": 1, "schema_version": 1, "modules": []}',
     "manifest: duplicate key 'schema_version'"),
    ('{"Schema_Version": 1, "modules": []}',
     "manifest: unknown key 'Schema_Version' (keys are case-sensitive: did you mean 'schema_version'?)"),
    ('{"schema_version": 1, "modules": [{"path": "a.so", "Path": "b.so", "sha256": "%s", "contracts": []}]}' % H64,
     "modules[0]: unknown key 'Path' (keys are case-sensitive: did you mean 'path'?)"),
    ('{"schema_version": 1, "modules": [{"path": "a.so", "path": "b.so", "sha256": "%s", "contracts": []}]}' % H64,
     "modules[0]: duplicate key 'path'"),
    ('{"schema_version": 1, "modules": []}\n{}',
     "manifest: trailing data after the JSON value at line 2, column 1"),
    ('{"schema_version": 1, "modules": []} 0', "manifest: trailing data after the JSON value at line 1, column 38"),
    ('', "manifest: invalid JSON: unexpected end at line 1, column 1"),
    ('[1]', "manifest: expected an object, got an array"),
    ('{"schema_version": 1, "modules": [{"path": "a\\u0000.so", "sha256": "%s", "contracts": []}]}' % H64,
     "modules[0].path: escaped NUL (\\u0000) in a string"),
    ('{"schema_version": 1, "modules": [{"pa\\u0000th": "a.so", "sha256": "%s", "contracts": []}]}' % H64,
     "modules[0]: escaped NUL (\\u0000) in a key"),
    ('{"schema_version": 1}', "manifest: missing required key 'modules'"),
    ('{"schema_version": "1", "modules": []}', "schema_version: expected the number 1, got a string"),
    ('{"schema_version": 2, "modules": []}',
     "schema_version: 2 is not supported (this edgert reads schema_version 1)"),
])
def test_document_level_refusals(text, message):
    refused(text, message)


def test_raw_nul_bytes_are_refused():
    refused(b'{"schema_version": 1, "modules": []}\x00', "manifest: NUL byte at line 1, column 37")


@pytest.mark.parametrize("mod, message", [
    ({"path": "a.so", "contracts": []}, "modules[0]: missing required key 'sha256'"),
    ({"sha256": H64, "contracts": []}, "modules[0]: missing required key 'path'"),
    ({"path": "a.so", "sha256": H64}, "modules[0]: missing required key 'contracts'"),
    (module(sha=H64[:-1]), f"modules[0].sha256: '{H64[:-1]}' is not 64 hexadecimal digits"),
    (module(sha="z" * 64), f"modules[0].sha256: '{'z' * 64}' is not 64 hexadecimal digits"),
    (module(sha=1), "modules[0].sha256: expected a string, got a number"),
    (module(path=["a.so"]), "modules[0].path: expected a string, got an array"),
    (module(path=""), "modules[0].path: empty"),
    ({"path": "a.so", "sha256": H64, "contracts": {}}, "modules[0].contracts: expected an array, got an object"),
    (module(contracts=[{"function_name": "f", "arg_types": []},
                       {"function_name": "g", "arg_types": ["c_int", "c_double", "c_flaot"]}]),
     "modules[0].contracts[1].arg_types[2]: unknown type name 'c_flaot'"),
    (module(contracts=[{"function_name": "vec add", "arg_types": []}]),
     "modules[0].contracts[0].function_name: 'vec add' is not a C identifier"),
    (module(contracts=[{"function_name": "f\u0000g", "arg_types": []}]),
     "modules[0].contracts[0].function_name: escaped NUL (\\u0000) in a string"),
    (module(contracts=[{"function_name": "f", "arg_types": ["c_int"] * 33}]),
     "modules[0].contracts[0].arg_types: 33 arguments is more than the limit of 32"),
    (module(contracts=[{"function_name": "f", "arg_types": [], "retrun_type": None}]),
     "modules[0].contracts[0]: unknown key 'retrun_type' (expected: function_name, arg_types, "
     "return_type, calling_convention, release_gil, use_errno, variadic)"),
    (module(contracts=[{"function_name": "f", "arg_types": [], "release_gil": 0}]),
     "modules[0].contracts[0].release_gil: expected true or false, got a number"),
    (module(contracts=[{"function_name": "f", "arg_types": ["struct NoSuchPoint"]}]),
     "modules[0].contracts[0].arg_types[0]: type 'struct NoSuchPoint': no struct NoSuchPoint is defined "
     "(a manifest's \"structs\" section, a ctypes.Structure, or edgert_struct_define defines it)"),
    (module(contracts=[{"function_name": "f", "arg_types": []}, {"function_name": "f", "arg_types": []}]),
     "modules[0].contracts[1].function_name: 'f' is already bound by modules[0].contracts[0]"),
])
def test_module_and_contract_refusals_name_the_field(mod, message):
    refused(doc(mod), message)


def test_a_path_listed_twice_is_refused():
    refused(doc(module("a.so"), module("a.so")), "modules[1].path: 'a.so' is already listed as modules[0]")


def test_missing_and_non_regular_files_are_refused(tree):
    tmp, ksha, _ = tree
    m = write(tmp / "m.json", doc(module("kernels/nope.so", ksha)))
    with pytest.raises(ManifestError, match=r"^modules\[0\]\.path: 'kernels/nope.so' not found \(.*/kernels/nope.so: "
                                            r"No such file or directory\)$"):
        read_manifest(m)
    write(m, doc(module("kernels", ksha)))
    with pytest.raises(ManifestError, match=r"^modules\[0\]\.path: 'kernels' is not a regular file"):
        load_manifest(m)
    with pytest.raises(OSError, match="No such file or directory"):
        read_manifest(tmp / "absent.json")


def test_c_and_python_read_contracts_the_same_way():
    # from_manifest (Python) and the C reader agree on what they accept.
    good = {"function_name": "f", "arg_types": ["c_ulong", "LP_LP_c_char"], "return_type": "c_int64",
            "release_gil": False}
    assert _edgert.parse_contract_json(json.dumps(good)) == ABIContract.from_manifest(good).to_dict()
    for bad in ({"function_name": "f", "arg_types": ["c_flaot"]},
                {"function_name": "f", "arg_types": [], "extra": 1},
                {"function_name": "9", "arg_types": []},
                {"function_name": "f"}):
        with pytest.raises(ManifestError):
            _edgert.parse_contract_json(json.dumps(bad))
        with pytest.raises(ManifestError):
            ABIContract.from_manifest(bad)
    with pytest.raises(ManifestError, match=r"^arg_types\[0\]: unknown type name 'c_flaot'$"):
        _edgert.parse_contract_json('{"function_name": "f", "arg_types": ["c_flaot"]}')


# ---- loading ----------------------------------------------------------------

def test_load_manifest_verifies_loads_and_calls(tree):
    tmp, ksha, osha = tree
    m = write(tmp / "m.json", two_modules(ksha, osha))
    loaded = load_manifest(m)
    assert isinstance(loaded, edgert.LoadedManifest)
    assert list(loaded) == ["kernels/libmanifest_kernels.so", "kernels/other.so"]
    assert loaded.path == str(m)
    k = loaded["kernels/libmanifest_kernels.so"]
    assert isinstance(k, edgert.ModuleLoader)
    assert k.sha256 == ksha
    assert set(k.functions) == {"vec_add_f32", "add", "scale", "version"}
    xs = (ctypes.c_float * 3)(1.0, 2.5, -4.0)
    assert loaded.call("vec_add_f32", xs, 3) is None
    assert list(xs) == [2.0, 5.0, -8.0]
    assert loaded.function("add")(1.25, 2.5) == 3.75
    assert loaded.call("scale", -7, 6) == -42
    assert loaded.call("answer") == 42
    assert loaded["kernels/other.so"].call("version") == 2
    with pytest.raises(ValueError, match=r"function 'version' is bound in several modules"):
        loaded.function("version")
    with pytest.raises(SymbolNotFoundError, match=r"function 'nope': no module of manifest"):
        loaded.call("nope")
    with loaded:
        pass
    with pytest.raises(edgert.ModuleUnloadedError):
        k.call("add", 1.0, 2.0)


def test_a_wrong_hash_raises_integrity_error_and_loads_nothing(tree):
    tmp, ksha, _ = tree
    m = write(tmp / "m.json", doc(module("kernels/libmanifest_kernels.so", ksha),
                                  module("kernels/other.so", ksha)))
    with pytest.raises(IntegrityError, match=r"^modules\[1\] \('kernels/other.so'\): "):
        load_manifest(m)


def test_modules_loaded_before_a_failure_are_unloaded(tree, monkeypatch):
    import edgert.manifest as em
    made = []

    class Recording(edgert.ModuleLoader):
        def __init__(self):
            super().__init__()
            made.append(self)

    monkeypatch.setattr(em, "ModuleLoader", Recording)
    tmp, ksha, osha = tree
    m = write(tmp / "m.json", doc(module("kernels/libmanifest_kernels.so", ksha,
                                         [{"function_name": "add", "arg_types": ["c_double", "c_double"],
                                           "return_type": "c_double"}]),
                                  module("kernels/other.so", ksha)))
    with pytest.raises(IntegrityError):
        load_manifest(m)
    assert len(made) == 2
    assert not made[0].loaded  # loaded, then unloaded again
    with pytest.raises(edgert.ModuleUnloadedError):
        made[0].call("add", 1.0, 2.0)


def test_a_missing_symbol_names_it(tree):
    tmp, _, osha = tree
    m = write(tmp / "m.json", doc(module("kernels/other.so", osha,
                                         [{"function_name": "no_such_kernel", "arg_types": []}])))
    with pytest.raises(SymbolNotFoundError, match=r"^modules\[0\] \('kernels/other.so'\): .*no_such_kernel"):
        load_manifest(m)


def test_a_tampered_file_is_refused(tree):
    tmp, ksha, osha = tree
    m = write(tmp / "m.json", two_modules(ksha, osha))
    with open(tmp / "kernels" / "other.so", "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    with pytest.raises(IntegrityError, match=r"^modules\[1\] \('kernels/other.so'\): "):
        load_manifest(m)


# ---- differential: Python's from_manifest and the C reader agree ---------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_NAMES = sorted(_edgert.abi_type_names()) + ["c_flaot", "LP_c_float", "LP_LP_c_size_t", "LP_None", "struct NoSuchP",
                                            "py_object", "Structure", "c_buffer", "", "c_int ", "LP_" * 9 + "c_int"]
_JSON = st.none() | st.booleans() | st.integers(-2, 2) | st.text(max_size=4)
_TYPE = st.sampled_from(_NAMES) | _JSON


_GOOD_TYPES = sorted(set(_edgert.abi_type_names()) - {"None"}) + ["LP_c_float", "LP_LP_c_size_t", "LP_c_ulong"]


@st.composite
def contract_dicts(draw):
    """Mostly valid contracts, each field spoiled now and then."""
    def spoil():
        return draw(st.integers(0, 7)) == 0

    d = {}
    if not spoil():
        d["function_name"] = draw(st.sampled_from(["9x", "a-b", "", "f\x00g"]) | _JSON) if spoil() \
            else draw(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True))
    if not spoil():
        if spoil():
            d["arg_types"] = draw(st.lists(_TYPE, max_size=34) | _JSON)
        else:
            d["arg_types"] = draw(st.lists(st.sampled_from(_GOOD_TYPES), max_size=33))
    if draw(st.booleans()):
        d["return_type"] = draw(_TYPE) if spoil() else draw(st.sampled_from(_GOOD_TYPES + ["None"]) | st.none())
    if draw(st.booleans()):
        d["calling_convention"] = draw(st.sampled_from(["stdcall"]) | _JSON) if spoil() else "cdecl"
    if draw(st.booleans()):
        d["release_gil"] = draw(_JSON) if spoil() else draw(st.booleans())
    if spoil():
        d[draw(st.sampled_from(["extra", "Function_name", "ARG_TYPES"]))] = 1
    return d


@settings(max_examples=400, deadline=None)
@given(contract_dicts())
def test_from_manifest_and_the_c_reader_accept_the_same_contracts(d):
    try:
        c_result = _edgert.parse_contract_json(json.dumps(d))
    except ManifestError:
        c_result = None
    try:
        py_result = ABIContract.from_manifest(d).to_dict()
    except ManifestError:
        py_result = None
    assert c_result == py_result, (d, c_result, py_result)


def test_write_manifest_hashes_writes_and_round_trips(tree):
    tmp, ksha, osha = tree
    vec = ABIContract("vec_add_f32", [ctypes.POINTER(ctypes.c_float), ctypes.c_size_t])
    answer = ABIContract("answer", [], ctypes.c_int32, release_gil=False)
    m = tmp / "written.json"
    doc = edgert.write_manifest(m, {"kernels/libmanifest_kernels.so": [vec], "kernels/other.so": [answer]})
    assert json.loads(m.read_text()) == doc
    assert doc["modules"][0] == {"path": "kernels/libmanifest_kernels.so", "sha256": ksha,
                                 "contracts": [vec.to_dict()]}
    assert doc["modules"][1]["sha256"] == osha
    with load_manifest(m) as loaded:
        assert loaded.call("answer") == 42
    # Nothing is written when the result would not load.
    with pytest.raises(ManifestError, match=r"^modules\[1\]\.contracts\[1\]\.function_name: 'answer' is already bound"):
        edgert.write_manifest(m, {"kernels/libmanifest_kernels.so": [vec], "kernels/other.so": [answer, answer]})
    assert json.loads(m.read_text()) == doc
    assert not [p for p in os.listdir(tmp) if ".tmp" in p]
    with pytest.raises(FileNotFoundError):
        edgert.write_manifest(m, {"kernels/nope.so": []})


@pytest.mark.parametrize("text, message", [
    (b'{"schema_version": 01, "modules": []}', "schema_version: '01' is not a JSON number, at line 1, column 20"),
    (b'{"schema_version": 1., "modules": []}', "schema_version: '1.' is not a JSON number, at line 1, column 20"),
    (b'{"schema_version": 1, "modules": [], "k\ney": 1}',
     "manifest: unescaped control character 0x0a in a key at line 1, column 40"),
    (b'\x0b{"schema_version": 1, "modules": []}', "manifest: control character 0x0b outside a string at line 1, column 1"),
    (b'{"schema_version": 1, "modules": [{"path": "a\xff.so", "sha256": "' + H64.encode() + b'", "contracts": []}]}',
     "manifest: invalid UTF-8 at line 1, column 46"),
    (b'{"schema_version": 1, "modules": [{"path": "a\xed\xa0\x80.so", "sha256": "' + H64.encode()
     + b'", "contracts": []}]}', "manifest: invalid UTF-8 at line 1, column 46"),
])
def test_only_strict_json_is_accepted(text, message):
    refused(text, message)


_VALID = json.dumps(doc(module("kernels/k.so", H64, [
    {"function_name": "vec_add_f32", "arg_types": ["LP_c_float", "c_size_t"], "return_type": None,
     "calling_convention": "cdecl"},
    {"function_name": "add", "arg_types": ["c_double", "c_double"], "return_type": "c_double",
     "release_gil": False}]), module("ü/other.so", H64.upper(), [])), indent=1)


@st.composite
def mutated_manifests(draw):
    text = _VALID.encode()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.integers(0, 2))
        junk = draw(st.sampled_from([b"0", b"1", b".", b"e", b"-", b'"', b"\\", b"\\u0000", b"{", b"}", b"[",
                                     b"]", b",", b":", b" ", b"\t", b"\x0b", b"\x01", b"\xff", b"\xc3\xa9",
                                     b'"x": 1', b'"path": "a.so"', b"null", b"true", b"A", b"c_", b"LP_"]))
        if op == 0:
            text = text[:i] + junk + text[i:]
        elif op == 1:
            text = text[:i] + text[i + len(junk):]
        else:
            text = text[:i] + junk + text[i + len(junk):]
    return text


def _schema_view(d):
    return [(m["path"], m["sha256"].lower(), [ABIContract.from_manifest(c).to_dict() for c in m["contracts"]])
            for m in d["modules"]]


@settings(max_examples=600, deadline=None)
@given(mutated_manifests())
def test_what_the_c_reader_accepts_is_strict_json_with_the_same_meaning(text):
    try:
        entries = _edgert.parse_manifest_text(text)
    except ManifestError:
        return
    d = json.loads(text.decode("utf-8"))  # strict JSON: must not raise
    assert isinstance(d, dict) and set(d) == {"schema_version", "modules"} and d["schema_version"] == 1
    assert [(e["path"], e["sha256"], e["contracts"]) for e in entries] == _schema_view(d)
