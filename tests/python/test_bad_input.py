"""Every malformed thing a Python user can hand edgert, in one place.

Each case gives the exact exception type the runtime must raise and a
fragment of its message that names the problem: malformed manifests and
contracts, wrong arguments and buffers, unknown type names, files that are
not modules, misuse of containers and of the Nexus. The C twin is
tests/c/test_bad_input.c.
"""
from __future__ import annotations

import array
import ctypes
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
from typing import Any, Callable

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgert
from conftest import fixture_path

H = "a" * 64


def kernels() -> str:
    return fixture_path("libquality_kernels")


def sha_of(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


ADD = edgert.ABIContract("q_add_i32", [ctypes.c_int, ctypes.c_int], ctypes.c_int)
SUM = edgert.ABIContract("q_sum_f64", [ctypes.POINTER(ctypes.c_double), ctypes.c_size_t], ctypes.c_double)
STRLEN = edgert.ABIContract("q_strlen", [ctypes.c_char_p], ctypes.c_size_t)


def expect(exc: type, fragment: str, fn: Callable[[], Any]) -> None:
    with pytest.raises(exc) as info:
        fn()
    assert type(info.value) is exc or isinstance(info.value, exc)
    assert fragment in str(info.value), f"message {str(info.value)!r} lacks {fragment!r}"


# ---- manifests ---------------------------------------------------------------


def mod(**kw: Any) -> dict:
    return {"path": "libquality_kernels.so", "sha256": H, "contracts": [], **kw}


def contract(**kw: Any) -> dict:
    return {"function_name": "f", "arg_types": [], "return_type": None, **kw}


def doc(*modules: dict) -> str:
    return json.dumps({"schema_version": 1, "modules": list(modules)})


BAD_MANIFESTS = [
    ("empty file", b"", "manifest: invalid JSON: unexpected end at line 1, column 1"),
    ("not JSON", b"{schema_version: 1}", "manifest: invalid JSON at line 1, column 3"),
    ("truncated", b'{"schema_version": 1, "modules": [', "manifest: invalid JSON at line 1, column 34"),
    ("trailing data", b'{"schema_version": 1, "modules": []} x',
     "manifest: trailing data after the JSON value at line 1, column 38"),
    ("array at the root", b"[]", "manifest: expected an object, got an array"),
    ("nesting bomb", b"[" * 100000, "manifest: invalid JSON at line 1"),
    ("NUL byte", b'{"schema_version": 1, "modules": []}\x00', "manifest: NUL byte at line 1, column 37"),
    ("no schema_version", json.dumps({"modules": []}), "manifest: missing required key 'schema_version'"),
    ("schema_version 2", json.dumps({"schema_version": 2, "modules": []}),
     "schema_version: 2 is not supported (this edgert reads schema_version 1)"),
    ("schema_version a string", json.dumps({"schema_version": "1", "modules": []}),
     "schema_version: expected the number 1, got a string"),
    ("schema_version 1.5", json.dumps({"schema_version": 1.5, "modules": []}),
     "schema_version: expected the integer 1, got 1.5"),
    ("schema_version 1e300", b'{"schema_version": 1e300, "modules": []}',
     "schema_version: expected the integer 1, got 1e+300"),
    ("modules an object", json.dumps({"schema_version": 1, "modules": {}}), "modules: expected an array, got an object"),
    ("unknown key", json.dumps({"schema_version": 1, "modules": [], "extra": 1}),
     "manifest: unknown key 'extra' (expected: schema_version, modules, version, expires, structs)"),
    ("duplicate key", b'{"schema_version": 1, "schema_version": 1, "modules": []}',
     "manifest: duplicate key 'schema_version'"),
    ("key differing in case", b'{"schema_version": 1, "Modules": [], "modules": []}',
     "unknown key 'Modules' (keys are case-sensitive: did you mean 'modules'?)"),
    ("escaped NUL in a path", doc(mod(path="a\u0000.so")), "modules[0].path: escaped NUL (\\u0000) in a string"),
    ("module without path", json.dumps({"schema_version": 1, "modules": [{"sha256": H, "contracts": []}]}),
     "modules[0]: missing required key 'path'"),
    ("sha256 not hex", doc(mod(sha256="xyz")), "modules[0].sha256: 'xyz' is not 64 hexadecimal digits"),
    ("sha256 too short", doc(mod(sha256="ab" * 31)), "is not 64 hexadecimal digits"),
    ("module file missing", doc(mod(path="nope.so")), "modules[0].path: 'nope.so' not found"),
    ("module path a directory", doc(mod(path=".")), "modules[0].path: '.' is not a regular file"),
    ("module listed twice", doc(mod(), mod()),
     "modules[1].path: 'libquality_kernels.so' is already listed as modules[0]"),
    ("unknown arg type", doc(mod(contracts=[contract(arg_types=["c_int", "c_flaot"])])),
     "modules[0].contracts[0].arg_types[1]: unknown type name 'c_flaot'"),
    ("function name not an identifier", doc(mod(contracts=[contract(function_name="f g")])),
     "modules[0].contracts[0].function_name: 'f g' is not a C identifier"),
    ("33 arguments", doc(mod(contracts=[contract(arg_types=["c_int"] * 33)])),
     "modules[0].contracts[0].arg_types: 33 arguments is more than the limit of 32"),
    ("function bound twice", doc(mod(contracts=[contract(), contract()])),
     "modules[0].contracts[1].function_name: 'f' is already bound by modules[0].contracts[0]"),
    ("stdcall", doc(mod(contracts=[contract(calling_convention="stdcall")])),
     "modules[0].contracts[0].calling_convention: 'stdcall' is not supported"),
    ("arg type a number", doc(mod(contracts=[contract(arg_types=[1])])),
     "modules[0].contracts[0].arg_types[0]: expected a type name (string) or a "
     "{\"callback\": ...} object, got a number"),
    ("None as an argument", doc(mod(contracts=[contract(arg_types=["None"])])),
     "modules[0].contracts[0].arg_types[0]: None (void) is only a return type, not an argument type"),
    ("release_gil a string", doc(mod(contracts=[contract(release_gil="yes")])),
     "modules[0].contracts[0].release_gil: expected true or false, got a string"),
    ("ctypes attribute name as key", doc(mod(contracts=[contract(restype="c_int")])),
     "modules[0].contracts[0]: unknown key 'restype'"),
    ("struct never defined", doc(mod(contracts=[contract(arg_types=["struct point"])])),
     "modules[0].contracts[0].arg_types[0]: type 'struct point': no struct point is defined"),
    ("nine POINTER levels", doc(mod(contracts=[contract(arg_types=["LP_" * 9 + "c_int"])])),
     "has more than 8 POINTER levels"),
]


@pytest.fixture
def manifest_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    shutil.copy(kernels(), tmp_path / "libquality_kernels.so")
    return tmp_path


def write(d: pathlib.Path, text: Any) -> str:
    p = d / "manifest.json"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(p)


@pytest.mark.parametrize("name,text,fragment", BAD_MANIFESTS, ids=[c[0] for c in BAD_MANIFESTS])
def test_malformed_manifest_is_refused_naming_the_field(manifest_dir, name, text, fragment):
    path = write(manifest_dir, text)
    expect(edgert.ManifestError, fragment, lambda: edgert.read_manifest(path))
    expect(edgert.ManifestError, fragment, lambda: edgert.load_manifest(path))
    assert issubclass(edgert.ManifestError, ValueError)


def test_manifest_path_with_invalid_utf8_is_a_manifest_error(manifest_dir):
    path = write(manifest_dir, b'{"schema_version": 1, "modules": [{"path": "\xff\xfe.so", "sha256": "'
                 + H.encode() + b'", "contracts": []}]}')
    expect(edgert.ManifestError, "invalid UTF-8 at line 1, column 45", lambda: edgert.read_manifest(path))


def test_error_messages_quoting_non_utf8_paths_keep_their_error_type(tmp_path):
    # A path that is not UTF-8 (bytes 0xff) appears in the message escaped;
    # the error stays the one the failure calls for, never UnicodeDecodeError.
    p = os.fsdecode(bytes(tmp_path) + b"/no\xffpe.so")
    expect(FileNotFoundError, "no\\xffpe.so", lambda: edgert.ModuleLoader().load(p))
    d = os.fsdecode(bytes(tmp_path) + b"/dir\xff")
    os.mkdir(d)
    expect(OSError, "dir\\xff", lambda: edgert.ModuleLoader().load(d))


def test_manifest_file_that_cannot_be_read(tmp_path):
    expect(OSError, "No such file or directory", lambda: edgert.read_manifest(str(tmp_path / "absent.json")))
    expect(OSError, "not a regular file", lambda: edgert.read_manifest(str(tmp_path)))


def test_manifest_with_a_wrong_hash_loads_nothing(manifest_dir):
    path = write(manifest_dir, doc(mod(contracts=[contract(function_name="q_add_i32", arg_types=["c_int", "c_int"],
                                                            return_type="c_int")])))
    expect(edgert.IntegrityError, "modules[0] ('libquality_kernels.so'): ", lambda: edgert.load_manifest(path))
    expect(edgert.IntegrityError, f"expected {H}", lambda: edgert.load_manifest(path))


def test_manifest_binding_a_missing_symbol_names_it(manifest_dir):
    h = sha_of(str(manifest_dir / "libquality_kernels.so"))
    path = write(manifest_dir, doc(mod(sha256=h, contracts=[contract(function_name="nope")])))
    expect(edgert.SymbolNotFoundError, "symbol 'nope' is not defined in module", lambda: edgert.load_manifest(path))


# ---- contracts -------------------------------------------------------------------

BAD_CONTRACT_DICTS = [
    ({"function_name": "f", "arg_types": ["c_flaot"], "return_type": None}, "arg_types[0]: unknown type name 'c_flaot'"),
    ({"function_name": "f", "arg_types": "c_int", "return_type": None}, "arg_types: expected an array, got str"),
    ({"arg_types": [], "return_type": None}, "function_name: missing"),
    ({"function_name": "f", "arg_types": [], "return_type": "c_dobule"}, "return_type: unknown type name 'c_dobule'"),
    ({"function_name": "", "arg_types": [], "return_type": None}, "function_name: '' is not a C identifier"),
    ({"function_name": "f", "arg_types": ["LP_None"], "return_type": None}, "POINTER(None) is not a type; use c_void_p"),
    ({"function_name": "f", "arg_types": ["py_object"], "return_type": None}, "py_object' is not supported"),
    ({"function_name": "f", "arg_types": [], "return_type": None, "calling_convention": "fastcall"},
     "calling_convention: 'fastcall' is not supported"),
]


@pytest.mark.parametrize("d,fragment", BAD_CONTRACT_DICTS, ids=[c[1][:40] for c in BAD_CONTRACT_DICTS])
def test_malformed_contract_dict_is_refused(d, fragment):
    expect(edgert.ManifestError, fragment, lambda: edgert.ABIContract.from_manifest(d))


def test_contracts_built_in_python_are_checked():
    expect(TypeError, "arg_types[0]: expected a ctypes type such as ctypes.c_double",
           lambda: edgert.ABIContract("f", ["c_int"], None))
    expect(ValueError, "function_name: '9f' is not a C identifier",
           lambda: edgert.ABIContract("9f", [ctypes.c_int], None))
    expect(ValueError, "calling_convention: 'stdcall' is not supported",
           lambda: edgert.ABIContract("f", [ctypes.c_int], None, calling_convention="stdcall"))


# ---- modules -----------------------------------------------------------------------


def test_files_that_are_not_modules(tmp_path):
    text = tmp_path / "text.so"
    text.write_text("not a shared object\n")
    empty = tmp_path / "empty.so"
    empty.write_bytes(b"")
    cases = [
        ("/nonexistent-edgert.so", FileNotFoundError, "cannot open module /nonexistent-edgert.so"),
        (str(tmp_path), IsADirectoryError, "is a directory, not a regular file"),
        (str(text), edgert.ModuleFormatError, "is not an ELF file (no ELF magic)"),
        (str(empty), edgert.ModuleFormatError, "is empty, not a shared object"),
    ]
    for path, exc, fragment in cases:
        expect(exc, fragment, lambda: edgert.ModuleLoader().load(path, ADD))


def test_bad_expected_hashes():
    p = kernels()
    expect(ValueError, "the expected SHA-256 must be 64 hex digits (a SHA-256), got 2 characters",
           lambda: edgert.ModuleLoader().load(p, ADD, expected_sha256="zz"))
    expect(ValueError, "character 1 is not a hex digit",
           lambda: edgert.ModuleLoader().load(p, ADD, expected_sha256="g" * 64))
    expect(edgert.IntegrityError, "failed its integrity check: SHA-256 is " + sha_of(p),
           lambda: edgert.ModuleLoader().load(p, ADD, expected_sha256="0" * 64))


def test_symbols_the_module_does_not_define():
    p = kernels()
    expect(edgert.SymbolNotFoundError, "symbol 'missing_fn' is not defined in module",
           lambda: edgert.ModuleLoader().load(p, edgert.ABIContract("missing_fn", [], None)))
    # libc's system() is reachable through the module's dependencies: refused.
    expect(edgert.SymbolNotFoundError, "symbol 'system' is not defined in module",
           lambda: edgert.ModuleLoader().load(p, edgert.ABIContract("system", [ctypes.c_char_p], ctypes.c_int)))


@pytest.fixture
def loader():
    ld = edgert.ModuleLoader()
    ld.load(kernels(), ADD)
    ld.bind(SUM)
    ld.bind(STRLEN)
    yield ld
    ld.unload()


BAD_CALLS = [
    ("q_add_i32", ("x", 1), TypeError, "q_add_i32() argument 1 must be int (c_int), not str"),
    ("q_add_i32", (1.5, 1), TypeError, "q_add_i32() argument 1 must be int (c_int), not float"),
    ("q_add_i32", (1,), TypeError, "q_add_i32() takes 2 arguments (c_int q_add_i32(c_int, c_int)), got 1"),
    ("q_add_i32", (1, 2, 3), TypeError, "q_add_i32() takes 2 arguments"),
    ("q_add_i32", (2**40, 1), OverflowError, "q_add_i32() argument 1: 1099511627776 does not fit c_int"),
    ("q_add_i32", (1, -2**31 - 1), OverflowError, "argument 2: -2147483649 does not fit c_int"),
    ("q_add_i32", (None, 1), TypeError, "q_add_i32() argument 1 must be int (c_int), not NoneType"),
    ("q_sum_f64", (array.array("f", [1, 2]), 2), TypeError,
     "must be a C-contiguous buffer of c_double (LP_c_double, 8-byte items), not array.array with format 'f'"),
    ("q_sum_f64", (b"abcdefgh", 1), TypeError, "not bytes with format 'B' and 1-byte items"),
    ("q_sum_f64", ([1.0, 2.0], 2), TypeError, "must be a C-contiguous buffer or None (LP_c_double), not list"),
    ("q_sum_f64", (memoryview(array.array("d", [1, 2, 3, 4]))[::2], 2), TypeError,
     "must be a contiguous buffer (LP_c_double), but this memoryview is not contiguous"),
    ("q_sum_f64", (array.array("d", [1, 2]), -1), OverflowError, "argument 2: -1 does not fit c_size_t"),
    ("q_sum_f64", ("12345678", 1), TypeError, "q_sum_f64() argument 1"),
    ("q_strlen", ("text",), TypeError, "q_strlen() argument 1"),
    ("q_strlen", (12,), TypeError, "q_strlen() argument 1"),
]


@pytest.mark.parametrize("name,args,exc,fragment", BAD_CALLS, ids=[c[3][:48] for c in BAD_CALLS])
def test_bad_arguments_are_refused_before_the_kernel_runs(loader, name, args, exc, fragment):
    expect(exc, fragment, lambda: loader.call(name, *args))
    expect(exc, fragment, lambda: loader.function(name)(*args))


def test_calls_to_what_is_not_bound_or_unloaded(loader):
    expect(edgert.SymbolNotFoundError, "no contract is bound for 'nope' in module", lambda: loader.call("nope", 1))
    f = loader.function("q_add_i32")
    loader.unload()
    expect(edgert.ModuleUnloadedError, "cannot call 'q_add_i32': module", lambda: loader.call("q_add_i32", 1, 2))
    expect(edgert.ModuleUnloadedError, "is unloaded", lambda: f(1, 2))


# ---- containers and types -------------------------------------------------------------


def test_container_type_names():
    expect(ValueError, "unknown element type 'flaot': not a built-in type and no custom type of that name",
           lambda: edgert.TypedDict("int", "flaot"))
    expect(ValueError, "unknown element type 'nope'", lambda: edgert.TypedList("nope"))


def test_typed_dict_refuses_wrong_keys_and_values_and_changes_nothing():
    d = edgert.TypedDict("int", "float")
    d[1] = 1.0
    before = (dict(d), d.version)

    def set_(k: Any, v: Any) -> Callable[[], None]:
        def f() -> None:
            d[k] = v
        return f

    expect(TypeError, "TypedDict key must be int, not str", set_("x", 1.0))
    expect(TypeError, "TypedDict value must be float, not str", set_(2, "s"))
    expect(OverflowError, "TypedDict key does not fit in int64: 1180591620717411303424", set_(2**70, 1.0))
    expect(KeyError, "5", lambda: d[5])
    assert (dict(d), d.version) == before


def test_typed_list_refuses_wrong_items_and_indexes():
    lst = edgert.TypedList("float")
    lst.append(1.0)
    expect(TypeError, "TypedList item must be float, not str", lambda: lst.append("x"))
    expect(IndexError, "TypedList index out of range", lambda: lst[3])
    assert list(lst) == [1.0]


def test_register_type_refuses_bad_registrations():
    expect(ValueError, "'int' is a built-in type name", lambda: edgert.register_type("int", 1, 2, 3))
    expect(ValueError, "sizeof_fn must not be 0 (NULL)", lambda: edgert.register_type("QBadType", 0, 0, 0))


def test_pickled_container_state_that_is_malformed():
    # What a crafted pickle hands the rebuild functions __reduce__ names.
    rebuild_list, _ = edgert.TypedList("float").__reduce__()
    rebuild_dict, _ = edgert.TypedDict("int", "float").__reduce__()
    expect(ValueError, "TypedList(float): 7 raw bytes are not whole elements", lambda: rebuild_list(float, b"\0" * 7))
    expect(ValueError, "TypedList(bool): raw byte is not 0 or 1", lambda: rebuild_list(bool, b"\x02"))
    expect(TypeError, "TypedList item must be float, not str", lambda: rebuild_list(float, "abc"))
    expect(ValueError, "unknown element type 'nope'", lambda: rebuild_list("nope", b""))
    expect(TypeError, "TypedDict value must be float, not str", lambda: rebuild_dict(int, float, {1: "x"}, "auto"))
    expect(ValueError, "cache must be 'auto', 'on' or 'off', not 'bogus'", lambda: rebuild_dict(int, float, {}, "bogus"))


def test_register_type_with_addresses_that_are_not_code():
    code = ("import edgert\n"
            "try:\n"
            "    edgert.register_type('QBogusAddresses', 1, 2, 3)\n"
            "except (ValueError, edgert.KernelCrash) as e:\n"
            "    print(type(e).__name__, e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"the process died with {r.returncode}: {r.stderr[-500:]}"
    assert "sizeof" in r.stdout


# ---- nexus and fallback ----------------------------------------------------------------


def test_nexus_misuse():
    nx = edgert.Nexus()
    expect(KeyError, "no kernel named 'nope' is registered", lambda: nx.call("nope", 1))
    expect(ValueError, "a kernel name must not be empty", lambda: nx.register("", lambda: 1, lambda: 1))
    expect(ValueError, "kernel 'k': max_failures must be >= 0 (0 never quarantines), not -1",
           lambda: nx.register("k", lambda: 1, lambda: 1, max_failures=-1))


def test_run_with_guard_with_something_not_callable():
    expect(edgert.CompiledModeFailure, "compiled path int() failed and fallback is disabled: TypeError",
           lambda: edgert.ExplicitFallback.run_with_guard(1, 2))


# ---- anything at all: only the documented exceptions, never a crash ------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
    | st.sampled_from(["c_int", "c_double", "LP_c_float", "None", "cdecl", "q_add_i32"]),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(
        st.sampled_from(["function_name", "arg_types", "return_type", "calling_convention",
                         "release_gil", "path", "sha256", "contracts", "modules", "schema_version", "x"]),
        inner, max_size=6),
    max_leaves=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json)
def test_any_contract_dict_is_accepted_or_refused_as_manifest_error(d):
    try:
        c = edgert.ABIContract.from_manifest(d)
    except edgert.ManifestError as e:
        assert str(e)
    except TypeError as e:  # not a mapping at all
        assert not isinstance(d, dict), e
    else:
        assert edgert.ABIContract.from_manifest(c.to_dict()) == c


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=300), _json.map(lambda v: json.dumps({"schema_version": 1, "modules": v}).encode())))
def test_any_manifest_text_is_read_or_refused_as_manifest_error(tmp_path, text):
    p = tmp_path / "m.json"
    p.write_bytes(text)
    try:
        edgert.read_manifest(str(p))
    except edgert.ManifestError as e:
        assert str(e)
    except UnicodeDecodeError:
        pass  # the open invalid-UTF-8 case above


_arg = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4),
                 st.binary(max_size=16), st.lists(st.floats(), max_size=3),
                 st.builds(lambda n: array.array("d", [0.0] * n), st.integers(0, 4)),
                 st.builds(lambda n: array.array("i", [0] * n), st.integers(0, 4)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["q_add_i32", "q_sum_f64", "q_strlen"]), st.lists(_arg, max_size=3))
def test_any_arguments_are_converted_or_refused(loader, name, args):
    # A q_sum_f64 buffer shorter than the count it is given is the caller's
    # promise to keep (as with ctypes): only pass counts that fit.
    # (bool is an int, and c_size_t accepts it: True is a count of 1.)
    if name == "q_sum_f64" and len(args) == 2 and isinstance(args[1], int):
        first = args[0]
        n = len(first) if isinstance(first, array.array) and first.typecode == "d" else 0
        if args[1] > n:
            args = [first, n]
    if name == "q_strlen" and args and isinstance(args[0], bytes) and b"\0" not in args[0]:
        args = [args[0] + b"\0", *args[1:]]
    try:
        loader.call(name, *args)
    except (TypeError, OverflowError, ValueError) as e:
        assert name in str(e) or str(e)
