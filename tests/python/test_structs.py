"""Structs as contract types: ctypes.Structure by value both ways (small in
registers, large in memory, nested, with arrays inside), POINTER(S) from
each kind of buffer, layouts that do not match refused naming the field,
unions and bit-fields refused, and the manifest form round-tripping.

Struct names are one layout per process (libedgert defines each name once),
so every class here has a name no other test uses."""
import ctypes
import pickle
from ctypes import POINTER, Structure, c_char, c_double, c_float, c_int, c_int64, c_size_t

import numpy as np
import pytest

import edgert
from edgert import ABIContract, ModuleLoader

from conftest import fixture_path


class SVec2(Structure):
    _fields_ = [("x", c_double), ("y", c_double)]


class SBig(Structure):
    _fields_ = [("x", c_double), ("y", c_double), ("z", c_double), ("tag", c_int64)]


class SSeg(Structure):
    _fields_ = [("a", SVec2), ("b", SVec2), ("id", c_int)]


class SArr(Structure):
    _fields_ = [("n", c_int), ("v", c_float * 3), ("name", c_char * 4)]


class SPacked(Structure):
    _pack_ = 1
    _fields_ = [("c", c_char), ("d", c_double)]


C = ABIContract
CONTRACTS = [
    C("vec2_add", [SVec2, SVec2], SVec2),
    C("vec2_dot", [SVec2, SVec2], c_double),
    C("vec2_make", [c_double, c_double], SVec2),
    C("big_scale", [SBig, c_double], SBig),
    C("big_sum", [SBig], c_double),
    C("seg_swap", [SSeg], SSeg),
    C("seg_length2", [SSeg], c_double),
    C("arr_total", [SArr], c_double),
    C("arr_fill", [c_int], SArr),
    C("packed_sum", [POINTER(SPacked), c_size_t], c_double),
    C("vec2_sum_x", [POINTER(SVec2), c_size_t], c_double),
    C("vec2_scale_all", [POINTER(SVec2), c_size_t, c_double]),
    C("big_sum_all", [POINTER(SBig), c_size_t], c_double),
    C("seg_sum_ax", [POINTER(SSeg), c_size_t], c_double),
    C("arr_sum_all", [POINTER(SArr), c_size_t], c_double),
]


@pytest.fixture(scope="module")
def lib():
    loader = ModuleLoader()
    loader.load(fixture_path("struct_kernels"), CONTRACTS)
    yield loader
    loader.unload()


def test_small_structs_travel_in_registers_both_ways(lib):
    r = lib.call("vec2_add", SVec2(1.5, 2), SVec2(10, 20))
    assert type(r) is SVec2 and (r.x, r.y) == (11.5, 22.0)
    assert lib.call("vec2_dot", SVec2(1, 2), SVec2(3, 4)) == 11.0
    r = lib.function("vec2_make")(0.25, -1.0)
    assert (r.x, r.y) == (0.25, -1.0)


def test_large_structs_travel_in_memory_both_ways(lib):
    r = lib.call("big_scale", SBig(1, 2, 3, 41), 2.0)
    assert type(r) is SBig and (r.x, r.y, r.z, r.tag) == (2, 4, 6, 42)
    assert lib.call("big_sum", SBig(1, 2, 3, 4)) == 10.0


def test_nested_structs_and_arrays_inside(lib):
    s = lib.call("seg_swap", SSeg(SVec2(1, 2), SVec2(3, 4), 7))
    assert (s.a.x, s.a.y, s.b.x, s.b.y, s.id) == (3, 4, 1, 2, -7)
    assert lib.call("seg_length2", SSeg(SVec2(0, 0), SVec2(3, 4), 1)) == 25.0
    a = SArr(1, (c_float * 3)(0.5, 0.25, 0.25), b"\x02")
    assert lib.call("arr_total", a) == 4.0
    r = lib.call("arr_fill", 9)
    assert (r.n, list(r.v), r.name) == (9, [1.5, 2.5, 3.5], b"abc")


def test_a_struct_argument_must_be_an_instance_of_its_class(lib):
    with pytest.raises(TypeError, match=r"vec2_add\(\) argument 1 must be an instance of the struct's "
                                        r"ctypes.Structure class \(struct SVec2\), not SBig"):
        lib.call("vec2_add", SBig(), SVec2())
    with pytest.raises(TypeError, match=r"argument 2 must be .*not tuple"):
        lib.call("vec2_add", SVec2(), (1.0, 2.0))

    class SVec2Sub(SVec2):  # the same layout: accepted
        pass

    assert lib.call("vec2_dot", SVec2Sub(1, 1), SVec2(2, 3)) == 5.0

    class SVec2More(SVec2):  # more fields: refused
        _fields_ = [("w", c_double)]

    with pytest.raises(TypeError, match="argument 1 must be"):
        lib.call("vec2_dot", SVec2More(1, 1, 1), SVec2())


def test_pointer_to_struct_from_every_buffer_kind(lib):
    items = (SVec2 * 3)(SVec2(1, 9), SVec2(2, 9), SVec2(4, 9))
    assert lib.call("vec2_sum_x", items, 3) == 7.0                  # ctypes array
    assert lib.call("vec2_sum_x", SVec2(5, 0), 1) == 5.0             # one ctypes instance
    arr = np.zeros(3, dtype=[("x", "<f8"), ("y", "<f8")])
    arr["x"] = [1, 2, 8]
    assert lib.call("vec2_sum_x", arr, 3) == 11.0                   # numpy structured
    assert lib.call("vec2_sum_x", bytearray(bytes(items)), 3) == 7.0  # raw bytes, whole items
    assert lib.call("vec2_sum_x", memoryview(bytes(items)), 3) == 7.0
    assert lib.call("vec2_sum_x", None, 0) == 0.0
    big = (SBig * 2)(SBig(1, 1, 1, 1), SBig(2, 2, 2, 2))
    assert lib.call("big_sum_all", big, 2) == 12.0
    # the kernel writes through the pointer into the caller's storage
    lib.call("vec2_scale_all", items, 3, 2.0)
    assert [v.x for v in items] == [2, 4, 8]
    lib.call("vec2_scale_all", arr, 3, 0.5)
    assert list(arr["x"]) == [0.5, 1, 4]


def test_numpy_aligned_dtype_with_padding_matches_the_struct(lib):
    seg = np.dtype([("a", [("x", "<f8"), ("y", "<f8")]), ("b", [("x", "<f8"), ("y", "<f8")]),
                    ("id", "<i4")], align=True)
    assert seg.itemsize == ctypes.sizeof(SSeg)
    segs = np.zeros(2, dtype=seg)
    segs["a"]["x"] = [1, 2]
    segs["id"] = [10, 20]
    assert lib.call("seg_sum_ax", segs, 2) == 33.0
    arrs = np.zeros(2, dtype=np.dtype([("n", "<i4"), ("v", "<f4", (3,)), ("name", "S4")], align=True))
    arrs["n"] = [1, 2]
    arrs["name"] = [b"\x01", b"\x01"]
    assert lib.call("arr_sum_all", arrs, 2) == 5.0
    packed = np.zeros(2, dtype=np.dtype([("c", "S1"), ("d", "<f8")]))  # unaligned: 9 bytes
    packed["c"] = [b"\x01", b"\x02"]
    packed["d"] = [2.5, 2.5]
    assert lib.call("packed_sum", packed, 2) == 8.0
    pk = (SPacked * 2)(SPacked(b"\x01", 2.5), SPacked(b"\x02", 2.5))
    assert lib.call("packed_sum", pk, 2) == 8.0


@pytest.mark.parametrize("dtype, why", [
    ([("x", "<f8"), ("z", "<f8")], "the buffer's field 'z' is where struct SVec2 has 'y'"),
    ([("x", "<f8"), ("y", "<f4")], "field 'y' has 4-byte items of another kind in the buffer; "
                                   "struct SVec2 has c_double"),
    ([("x", "<f8"), ("y", "<i8")], "field 'y' has 8-byte items of another kind"),
    ([("x", "<f8")], "field 'y' of struct SVec2 is missing from the buffer"),
    ([("x", "<f8"), ("y", "<f8"), ("w", "<f8")], "the buffer has a field 'w' past the last of struct SVec2"),
    ({"names": ["x", "y"], "formats": ["<f8", "<f8"], "offsets": [0, 16], "itemsize": 24},
     "field 'y' is at offset 16 in the buffer, 8 in struct SVec2"),
])
def test_layouts_that_do_not_match_are_refused_naming_the_field(lib, dtype, why):
    with pytest.raises(TypeError, match=r"vec2_sum_x\(\) argument 1 must be a C-contiguous buffer of struct "
                                        r"SVec2 \(LP_struct SVec2, 16-byte items\), not numpy.ndarray .*: "
                                        + __import__("re").escape(why)):
        lib.call("vec2_sum_x", np.zeros(2, dtype=dtype), 2)


def test_other_buffers_are_refused(lib):
    with pytest.raises(TypeError, match="its items are struct SBig, not struct SVec2"):
        lib.call("vec2_sum_x", (SBig * 2)(), 2)
    with pytest.raises(TypeError, match="20 bytes are not a whole number of 16-byte struct SVec2 items"):
        lib.call("vec2_sum_x", bytearray(20), 1)
    with pytest.raises(TypeError, match="must have struct items"):
        lib.call("vec2_sum_x", np.zeros(4), 2)
    with pytest.raises(TypeError, match="argument 1 must be a C-contiguous buffer"):
        lib.call("vec2_sum_x", [SVec2()], 1)


def test_unions_and_bitfields_are_refused_naming_class_and_field():
    class SU(ctypes.Union):
        _fields_ = [("i", c_int), ("f", c_float)]

    class SHasUnion(Structure):
        _fields_ = [("a", c_int), ("u", SU)]

    class SBits(Structure):
        _fields_ = [("a", c_int), ("flags", c_int, 3)]

    with pytest.raises(TypeError, match=r"^arg_types\[0\]: field 'u' of SHasUnion is the union SU; "
                                        r"unions are not supported"):
        C("f", [SHasUnion])
    with pytest.raises(TypeError, match=r"^return_type: field 'flags' of SBits is a bit-field \(3 bits\); "
                                        r"bit-fields are not supported"):
        C("f", [], SBits)
    with pytest.raises(NotImplementedError, match="unions are not supported"):
        C("f", [POINTER(SU)])


def test_packed_structs_by_value_are_refused_naming_the_field():
    with pytest.raises(NotImplementedError,
                       match=r"binding 'packed_sum': argument 1: struct SPacked: field 'd' at offset 1 is packed; "
                             r"libffi would place it at 8"):
        ModuleLoader().load(fixture_path("struct_kernels"), [C("packed_sum", [SPacked], c_double)])


def test_one_name_is_one_layout_per_process():
    class SClash(Structure):
        _fields_ = [("x", c_double)]

    C("f", [SClash])

    class SClash(Structure):  # noqa: F811: another class of that name
        _fields_ = [("x", c_float)]

    with pytest.raises(ValueError, match=r"^arg_types\[0\]: struct SClash is already defined with another "
                                         r"layout: field 0 is 'x' c_double\[0\] at offset 0, not 'x' c_float"):
        C("f", [SClash])


def test_names_round_trip_through_to_dict_from_manifest_and_pickle():
    c = C("seg_swap", [SSeg, POINTER(SVec2), POINTER(POINTER(SBig))], SSeg)
    d = c.to_dict()
    assert d["arg_types"] == ["struct SSeg", "LP_struct SVec2", "LP_LP_struct SBig"]
    back = ABIContract.from_manifest(d)
    assert back == c and back.arg_types[0] is SSeg
    assert pickle.loads(pickle.dumps(c)) == c
    assert c.struct_names() == ["SSeg", "SVec2", "SBig"]


# ---- register_struct: structs as inline container types -------------------------


class RgVec2(Structure):
    _fields_ = [("x", c_double), ("y", c_double)]


class RgPad(Structure):
    _fields_ = [("c", c_char), ("d", c_double)]


def test_register_struct_makes_typed_containers_that_kernels_take(lib):
    assert edgert.register_struct(RgVec2) == "struct.RgVec2"
    assert edgert.register_struct(RgVec2) == "struct.RgVec2"  # again: harmless
    tl = edgert.TypedList(RgVec2)
    tl.append(RgVec2(1, 2))
    tl.extend([RgVec2(3, 4), RgVec2(5, 6)])
    assert type(tl[0]) is RgVec2 and [(v.x, v.y) for v in tl] == [(1, 2), (3, 4), (5, 6)]
    view = memoryview(tl)
    assert (view.format, view.itemsize, view.ndim) == (edgert._edgert.struct_info("RgVec2")[4], 16, 1)
    lib.bind(C("vec2_sum_x", [POINTER(RgVec2), c_size_t], c_double))
    lib.bind(C("vec2_scale_all", [POINTER(RgVec2), c_size_t, c_double]))
    assert lib.call("vec2_sum_x", tl, len(tl)) == 9.0
    lib.call("vec2_scale_all", tl, len(tl), 2.0)  # the kernel writes the list's own storage
    assert [v.x for v in tl] == [2, 6, 10]
    td = edgert.TypedDict(int, RgVec2)
    td[1] = RgVec2(7, 8)
    assert td[1].y == 8.0
    assert pickle.loads(pickle.dumps(tl))[2].y == 12.0
    with pytest.raises(TypeError, match="TypedList item must be struct.RgVec2, not SVec2"):
        tl.append(SVec2())
    assert len(tl) == 3


def test_struct_keys_with_padding_are_equal_when_their_fields_are():
    edgert.register_struct(RgPad)
    a, b = RgPad(b"a", 1.5), RgPad(b"a", 1.5)
    ctypes.memmove(ctypes.addressof(b) + 1, b"\xff" * 7, 7)  # garbage in b's padding
    assert bytes(a) != bytes(b)
    td = edgert.TypedDict(RgPad, int)
    td[a] = 1
    td[b] = 2
    assert len(td) == 1 and td[a] == 2
    tl = edgert.TypedList(RgPad)
    tl.append(b)
    assert bytes(memoryview(tl))[1:8] == b"\0" * 7


def test_unregistered_or_unsupported_structs_are_refused_as_container_types():
    class RgLater(Structure):
        _fields_ = [("q", c_int)]

    with pytest.raises(ValueError, match=r"RgLater is a ctypes struct that is not registered as a container "
                                         r"type: call edgert.register_struct\(RgLater\) first"):
        edgert.TypedList(RgLater)

    class RgBits(Structure):
        _fields_ = [("a", c_int, 2)]

    with pytest.raises(TypeError, match="^register_struct: field 'a' of RgBits is a bit-field"):
        edgert.register_struct(RgBits)
    with pytest.raises(TypeError, match="expected a ctypes.Structure subclass"):
        edgert.register_struct(int)


# ---- manifests: a "structs" section read by the C reader ------------------------


def test_a_manifest_structs_section_binds_struct_contracts(tmp_path):
    import hashlib
    import json
    path = fixture_path("struct_kernels")
    doc = {
        "schema_version": 1,
        "structs": [
            {"name": "MfVec", "size": 16, "alignment": 8,
             "fields": [{"name": "x", "type": "c_double", "offset": 0},
                        {"name": "y", "type": "c_double", "offset": 8}]},
            {"name": "MfSeg", "size": 40, "alignment": 8,
             "fields": [{"name": "a", "type": "struct MfVec", "offset": 0},
                        {"name": "b", "type": "struct MfVec", "offset": 16},
                        {"name": "id", "type": "c_int", "offset": 32}]},
        ],
        "modules": [{"path": path, "sha256": hashlib.sha256(open(path, "rb").read()).hexdigest(),
                     "contracts": [
                         {"function_name": "seg_swap", "arg_types": ["struct MfSeg"], "return_type": "struct MfSeg"},
                         {"function_name": "vec2_sum_x", "arg_types": ["LP_struct MfVec", "c_size_t"],
                          "return_type": "c_double"}]}],
    }
    mf = tmp_path / "m.json"
    mf.write_text(json.dumps(doc))
    loaded = edgert.load_manifest(str(mf))
    loader = loaded[path]
    contract = ABIContract.from_manifest(doc["modules"][0]["contracts"][0])
    seg_cls = contract.arg_types[0]
    assert issubclass(seg_cls, Structure) and [f[0] for f in seg_cls._fields_] == ["a", "b", "id"]
    vec_cls = dict(seg_cls._fields_)["a"]
    r = loader.call("seg_swap", seg_cls(vec_cls(1, 2), vec_cls(3, 4), 5))
    assert type(r) is seg_cls and (r.a.x, r.b.y, r.id) == (3, 2, -5)
    arr = np.zeros(2, dtype=[("x", "<f8"), ("y", "<f8")])
    arr["x"] = [1.5, 2]
    assert loader.call("vec2_sum_x", arr, 2) == 3.5
    assert contract.to_dict() == doc["modules"][0]["contracts"][0] | {"calling_convention": "cdecl"}
    # the same names with another layout: refused by the C reader, naming the field
    doc["structs"][0]["fields"][1]["type"] = "c_float"
    mf.write_text(json.dumps(doc))
    with pytest.raises(edgert.ManifestError, match=r"structs\[0\]: struct MfVec is already defined with another "
                                                   r"layout: field 1 is 'y' c_double"):
        edgert.load_manifest(str(mf))


# ---- hypothesis: random layouts round-trip --------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SCALARS = [ctypes.c_char, ctypes.c_byte, ctypes.c_ubyte, ctypes.c_short, ctypes.c_ushort, c_int, ctypes.c_uint,
            c_int64, ctypes.c_uint64, c_float, c_double, ctypes.c_bool]
_counter = iter(range(10 ** 9))


@st.composite
def structures(draw, depth=0):
    n = draw(st.integers(1, 5))
    fields = []
    for i in range(n):
        if depth < 2 and draw(st.integers(0, 4)) == 0:
            t = draw(structures(depth + 1))
        else:
            t = draw(st.sampled_from(_SCALARS))
        if draw(st.integers(0, 3)) == 0:
            t = t * draw(st.integers(1, 3))
        fields.append((f"f{i}", t))
    ns = {"_fields_": fields}
    if draw(st.booleans()) and depth == 0:
        ns["_pack_"] = draw(st.sampled_from([1, 2, 4]))
    return type(f"Hy{next(_counter)}", (Structure,), ns)


@settings(max_examples=40, deadline=None)
@given(structures())
def test_random_layouts_round_trip_and_match_ctypes(cls):
    c = C("f", [cls, POINTER(cls)], cls) if not getattr(cls, "_pack_", 0) else C("f", [POINTER(cls)])
    d = c.to_dict()
    assert ABIContract.from_manifest(d) == c
    name = cls.__name__
    info = edgert._edgert.struct_info(name)
    assert info[1] == ctypes.sizeof(cls) and info[2] == ctypes.alignment(cls)
    # the layout's own format reads back as the layout, and numpy agrees on
    # the offsets wherever it can hold the type
    assert edgert.structs.definitions([name])[-1]["size"] == ctypes.sizeof(cls)
    assert pickle.loads(pickle.dumps(c)) == c


def test_the_kept_gil_lane_takes_exactly_the_class_and_falls_back_for_the_rest():
    loader = ModuleLoader()
    loader.load(fixture_path("struct_kernels"), [
        C("vec2_dot", [SVec2, SVec2], c_double, release_gil=False),
        C("vec2_norm1", [SVec2], c_double, release_gil=False)])
    dot, norm = loader.function("vec2_dot"), loader.function("vec2_norm1")
    for _ in range(3):
        assert dot(SVec2(1, 2), SVec2(3, 4)) == 11.0
        assert norm(SVec2(-1.5, 2)) == 3.5

    class SVec2Kid(SVec2):
        pass

    assert dot(SVec2Kid(1, 1), SVec2(2, 3)) == 5.0  # the general path
    with pytest.raises(TypeError, match=r"vec2_norm1\(\) argument 1 must be an instance"):
        norm(SBig())
    with pytest.raises(TypeError, match="takes 1 argument"):
        norm()
    loader.unload()
