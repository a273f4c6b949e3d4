"""ABIContract: ctypes types in, canonical names out, and back, as libedgert reads them."""
import ctypes
import json
from ctypes import POINTER

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edgert
from edgert import ABIContract, ManifestError
from edgert import _edgert

SIMPLE = [
    ctypes.c_bool, ctypes.c_char, ctypes.c_wchar, ctypes.c_byte, ctypes.c_ubyte,
    ctypes.c_short, ctypes.c_ushort, ctypes.c_int, ctypes.c_uint, ctypes.c_long,
    ctypes.c_ulong, ctypes.c_longlong, ctypes.c_ulonglong, ctypes.c_size_t,
    ctypes.c_ssize_t, ctypes.c_float, ctypes.c_double, ctypes.c_longdouble,
    ctypes.c_char_p, ctypes.c_wchar_p, ctypes.c_void_p, ctypes.c_int8, ctypes.c_uint8,
    ctypes.c_int16, ctypes.c_uint16, ctypes.c_int32, ctypes.c_uint32, ctypes.c_int64,
    ctypes.c_uint64,
]


def test_article_example_gives_the_article_output():
    abi = ABIContract(
        function_name="vec_add_f32",
        arg_types=[ctypes.POINTER(ctypes.c_float), ctypes.c_size_t],
        return_type=None,
    )
    assert abi.to_dict() == {
        "function_name": "vec_add_f32",
        "arg_types": ["LP_c_float", "c_size_t"],
        "return_type": None,
        "calling_convention": "cdecl",
    }
    assert list(abi.to_dict()) == ["function_name", "arg_types", "return_type", "calling_convention"]
    restored = ABIContract.from_manifest(abi.to_dict())
    assert restored == abi
    assert restored.arg_types[0] is ctypes.POINTER(ctypes.c_float)
    assert restored.arg_types[1] is ctypes.c_size_t


def test_article_import_path_is_the_same_class():
    from pyv_edge_agent.module_host.abi import ABIContract as Article
    assert Article is edgert.ABIContract


def test_release_gil_written_only_when_false():
    fast = ABIContract("add", [ctypes.c_double, ctypes.c_double], ctypes.c_double, release_gil=False)
    assert fast.to_dict()["release_gil"] is False
    assert "release_gil" not in ABIContract("add", [ctypes.c_double]).to_dict()
    assert ABIContract.from_manifest(fast.to_dict()).release_gil is False
    assert ABIContract.from_manifest(fast.to_dict()) == fast


@pytest.mark.parametrize("t, name", [
    (ctypes.c_size_t, "c_size_t"), (ctypes.c_ulong, "c_size_t"), (ctypes.c_uint64, "c_size_t"),
    (ctypes.c_ulonglong, "c_size_t"), (ctypes.c_ssize_t, "c_ssize_t"), (ctypes.c_long, "c_ssize_t"),
    (ctypes.c_int64, "c_ssize_t"), (ctypes.c_longlong, "c_ssize_t"), (ctypes.c_int32, "c_int"),
    (ctypes.c_uint8, "c_ubyte"), (ctypes.c_int8, "c_byte"), (ctypes.c_voidp, "c_void_p"),
    (POINTER(ctypes.c_uint64), "LP_c_size_t"), (POINTER(POINTER(ctypes.c_char)), "LP_LP_c_char"),
    (POINTER(ctypes.c_char_p), "LP_c_char_p"), (ctypes.c_longdouble, "c_longdouble"),
    (ctypes.c_wchar_p, "c_wchar_p"), (ctypes.c_bool, "c_bool"),
])
def test_canonical_names(t, name):
    assert ABIContract("f", [t], t).to_dict()["arg_types"] == [name]
    assert ABIContract("f", [t], t).to_dict()["return_type"] == name
    assert _edgert.canonical_type_name(name) == name


def test_python_and_c_tables_agree_on_every_ctypes_alias():
    # Every name libedgert knows that ctypes also has is, in ctypes, a class
    # whose canonical name is the name's canonical name: C and Python can
    # never write one type two ways.
    table = _edgert.abi_type_names()
    assert set(table.values()) >= {"c_size_t", "c_ssize_t", "c_float", "None"}
    seen = 0
    for alias, canon in table.items():
        cls = getattr(ctypes, alias, None)
        if cls is None:
            continue
        seen += 1
        assert ABIContract("f", [cls]).to_dict()["arg_types"] == [canon], alias
        assert _edgert.canonical_type_name(cls.__name__) == canon, alias
    assert seen >= 30
    # c_time_t is only in ctypes from 3.12, but manifests may name it.
    assert ABIContract.from_manifest({"function_name": "f", "arg_types": ["c_time_t"]}).arg_types == [ctypes.c_int64]


def test_every_simple_type_in_ctypes_is_accepted_or_refused_clearly():
    for name in dir(ctypes):
        cls = getattr(ctypes, name)
        if not (isinstance(cls, type) and issubclass(cls, ctypes._SimpleCData)) or cls is ctypes._SimpleCData:
            continue
        if cls is ctypes.py_object:
            with pytest.raises(NotImplementedError, match="arg_types\\[0\\]: type 'py_object' is not supported"):
                ABIContract("f", [cls])
        else:
            assert ABIContract("f", [cls]).arg_types == [cls]


types_st = st.recursive(st.sampled_from(SIMPLE), lambda inner: inner.map(POINTER), max_leaves=4)


@settings(max_examples=300, deadline=None)
@given(name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,40}", fullmatch=True),
       args=st.lists(types_st, max_size=32),
       ret=st.none() | types_st,
       release=st.booleans())
def test_round_trip_through_dict_and_json(name, args, ret, release):
    depth = 0
    for t in args + [ret]:
        d = 0
        while isinstance(t, type) and issubclass(t, ctypes._Pointer):
            t, d = t._type_, d + 1
        depth = max(depth, d)
    abi = ABIContract(name, args, ret, release_gil=release)
    d = abi.to_dict()
    back = ABIContract.from_manifest(json.loads(json.dumps(d)))
    assert back == abi
    assert back.to_dict() == d
    enc = abi._encode()
    assert enc == (name, tuple(d["arg_types"]), d["return_type"], "cdecl", release, False, None)
    # The names are the C parser's canonical names.
    for n in enc[1]:
        assert _edgert.canonical_type_name(n) == n


def test_encode_feeds_the_c_contract():
    abi = ABIContract("register_custom_type",
                      [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p],
                      return_type=ctypes.c_int)
    assert abi._encode() == ("register_custom_type",
                             ("c_char_p", "c_void_p", "c_void_p", "c_void_p"), "c_int", "cdecl", True,
                             False, None)
    assert ABIContract("noop", [])._encode() == ("noop", (), None, "cdecl", True, False, None)


def test_arg_types_is_stored_as_a_list():
    abi = ABIContract("f", (ctypes.c_int, ctypes.c_double))
    assert abi.arg_types == [ctypes.c_int, ctypes.c_double]
    assert ABIContract.from_manifest(abi.to_dict()) == abi


# ---- refusals -----------------------------------------------------------------

def test_non_ctypes_arguments_are_type_errors_naming_the_index():
    with pytest.raises(TypeError, match=r"^arg_types\[2\]: expected a ctypes type .*got 'c_int' \(str\)"):
        ABIContract("f", [ctypes.c_int, ctypes.c_int, "c_int"])
    with pytest.raises(TypeError, match=r"^arg_types\[1\]: expected a ctypes type .*got 3 \(int\)"):
        ABIContract("f", [ctypes.c_int, 3])
    with pytest.raises(TypeError, match=r"^arg_types\[0\]: int is not a ctypes type edgert supports"):
        ABIContract("f", [int])
    with pytest.raises(TypeError, match=r"^arg_types\[0\]: None \(void\) is only a return type"):
        ABIContract("f", [None])
    with pytest.raises(TypeError, match=r"^arg_types\[0\]: array type c_float_Array_4 is not an argument type; "
                                        r"use ctypes.POINTER\(ctypes.c_float\)"):
        ABIContract("f", [ctypes.c_float * 4])
    with pytest.raises(TypeError, match=r"^return_type: float is not a ctypes type edgert supports"):
        ABIContract("f", [], float)
    with pytest.raises(TypeError, match=r"^arg_types: expected a list of ctypes types, got str"):
        ABIContract("f", "c_int")


def test_wrong_field_types_are_type_errors():
    with pytest.raises(TypeError, match=r"^function_name: expected str, got bytes"):
        ABIContract(b"f", [])
    with pytest.raises(TypeError, match=r"^calling_convention: expected str"):
        ABIContract("f", [], None, None)
    with pytest.raises(TypeError, match=r"^release_gil: expected bool, got int"):
        ABIContract("f", [], release_gil=1)


def test_structs_are_contract_types_and_unions_are_refused():
    class AbiPoint(ctypes.Structure):
        _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]

    class AbiU(ctypes.Union):
        _fields_ = [("i", ctypes.c_int), ("f", ctypes.c_float)]

    c = ABIContract("f", [ctypes.c_int, AbiPoint, POINTER(AbiPoint)], AbiPoint)
    assert c.to_dict()["arg_types"] == ["c_int", "struct AbiPoint", "LP_struct AbiPoint"]
    assert c.to_dict()["return_type"] == "struct AbiPoint"
    with pytest.raises(NotImplementedError, match=r"^arg_types\[0\]: type 'union AbiU': unions are not supported"):
        ABIContract("f", [AbiU])


def test_bad_names_limits_and_conventions_are_value_errors():
    with pytest.raises(ValueError, match=r"^function_name: 'vec-add' is not a C identifier"):
        ABIContract("vec-add", [])
    with pytest.raises(ValueError, match=r"^function_name: '' is not a C identifier"):
        ABIContract("", [])
    with pytest.raises(ValueError, match=r"^function_name: contains a NUL character"):
        ABIContract("f\0g", [])
    with pytest.raises(ValueError, match=r"^function_name: 256 bytes is longer than the limit of 255"):
        ABIContract("f" * 256, [])
    assert ABIContract("f" * 255, []).function_name == "f" * 255
    ABIContract("f", [ctypes.c_int] * 32)
    with pytest.raises(ValueError, match=r"^arg_types: 33 arguments is more than the limit of 32"):
        ABIContract("f", [ctypes.c_int] * 33)
    with pytest.raises(ValueError, match=r"^calling_convention: 'stdcall' is not supported; only 'cdecl'"):
        ABIContract("f", [], calling_convention="stdcall")
    deep = ctypes.c_int
    for _ in range(9):
        deep = POINTER(deep)
    with pytest.raises(ValueError, match=r"^arg_types\[0\]: type name 'LP_LP_.*' has more than 8 POINTER levels"):
        ABIContract("f", [deep])


@pytest.mark.parametrize("d, message", [
    ({"function_name": "f", "arg_types": ["c_int", "c_double", "c_flaot"]},
     r"^arg_types\[2\]: unknown type name 'c_flaot'$"),
    ({"function_name": "f", "arg_types": [], "return_type": "c_dobule"},
     r"^return_type: unknown type name 'c_dobule'$"),
    ({"function_name": "f", "arg_types": ["None"]},
     r"^arg_types\[0\]: None \(void\) is only a return type"),
    ({"function_name": "f", "arg_types": ["struct NoSuchStructP"]},
     r"^arg_types\[0\]: type 'struct NoSuchStructP': no struct NoSuchStructP is defined"),
    ({"function_name": "f", "arg_types": ["Structure"]}, r"^arg_types\[0\]: unknown type name 'Structure'$"),
    ({"function_name": "f", "arg_types": ["_Pointer"]}, r"^arg_types\[0\]: unknown type name '_Pointer'$"),
    ({"function_name": "f", "arg_types": [3]}, r"^arg_types\[0\]: expected a type name \(str\), got int$"),
    ({"function_name": "f"}, r"^arg_types: missing$"),
    ({"arg_types": []}, r"^function_name: missing$"),
    ({"function_name": "f", "arg_types": [], "retrun_type": None},
     r"^contract: unknown key 'retrun_type'"),
    ({"function_name": 1, "arg_types": []}, r"^function_name: expected a string, got int$"),
    ({"function_name": "f", "arg_types": "c_int"}, r"^arg_types: expected an array, got str$"),
    ({"function_name": "f", "arg_types": [], "release_gil": "no"},
     r"^release_gil: expected true or false, got str$"),
    ({"function_name": "f", "arg_types": [], "calling_convention": None},
     r"^calling_convention: expected a string, got NoneType$"),
    ({"function_name": "f", "arg_types": [], "calling_convention": "fastcall"},
     r"^calling_convention: 'fastcall' is not supported"),
    ({"function_name": "9f", "arg_types": []}, r"^function_name: '9f' is not a C identifier$"),
    ({"function_name": "f", "arg_types": ["c_int"] * 33},
     r"^arg_types: 33 arguments is more than the limit of 32$"),
    ([("function_name", "f")], r"^contract: expected an object \(dict\), got list$"),
])
def test_from_manifest_refuses_with_manifest_error_naming_the_field(d, message):
    with pytest.raises(ManifestError, match=message):
        ABIContract.from_manifest(d)
    assert issubclass(ManifestError, ValueError)


def test_from_manifest_accepts_aliases_and_defaults():
    abi = ABIContract.from_manifest({"function_name": "f",
                                     "arg_types": ["c_ulong", "LP_c_uint64", "c_int32", "c_voidp"],
                                     "return_type": "None"})
    assert abi == ABIContract("f", [ctypes.c_size_t, POINTER(ctypes.c_size_t), ctypes.c_int, ctypes.c_void_p])
    assert abi.return_type is None and abi.calling_convention == "cdecl" and abi.release_gil is True
    assert abi.to_dict()["arg_types"] == ["c_size_t", "LP_c_size_t", "c_int", "c_void_p"]


def test_check_contract_is_libedgert_validation():
    _edgert.check_contract("f", ("c_int",), None, "cdecl", True)
    with pytest.raises(ValueError, match=r"^arg_types\[0\]: unknown type name 'int'"):
        _edgert.check_contract("f", ("int",), None, "cdecl", True)
    with pytest.raises(ValueError, match=r"^arg_types\[0\]: contains a NUL character"):
        _edgert.check_contract("f", ("c_int\0x",), None, "cdecl", True)
    with pytest.raises(ValueError, match="unknown type name 'c_int '"):
        _edgert.canonical_type_name("c_int ")
    with pytest.raises(ValueError, match="only a return type"):
        _edgert.canonical_type_name("None")
    assert _edgert.canonical_type_name("None", True) == "None"


def test_contracts_pickle_and_copy():
    import copy
    import pickle
    abi = ABIContract("vec_add_f32", [POINTER(ctypes.c_float), POINTER(POINTER(ctypes.c_uint64)), ctypes.c_size_t],
                      ctypes.c_double, release_gil=False)
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(abi, proto))
        assert back == abi and back.arg_types[0] is POINTER(ctypes.c_float)
    assert copy.deepcopy(abi) == abi and copy.copy(abi) == abi
