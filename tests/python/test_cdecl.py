"""Contracts from C declarations (issue 13): ABIContract.from_c and
edgert.contracts_from_c, parsed by pycparser."""
from __future__ import annotations

import ctypes as C
import functools
import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("pycparser")

import edgert  # noqa: E402
from conftest import fixture_path  # noqa: E402
from edgert import ABIContract, CDeclError, ModuleLoader, const, contracts_from_c  # noqa: E402

P = C.POINTER


@pytest.mark.parametrize("decl, args, ret, variadic", [
    ("double mean(const double *xs, size_t n);", [const(P(C.c_double)), C.c_size_t], C.c_double,
     None),
    ("int fmt(char *buf, size_t n, const char *f, ...);", [P(C.c_char), C.c_size_t, C.c_char_p],
     C.c_int, 3),
    ("void f(void);", [], None, None),
    ("char *name(void);", [], C.c_char_p, None),
    ("const wchar_t *w(wchar_t *buf, const wchar_t *s);", [P(C.c_wchar), C.c_wchar_p],
     C.c_wchar_p, None),
    ("unsigned long long g(long double x, unsigned char **pp, const void *v, void *w);",
     [C.c_longdouble, P(P(C.c_ubyte)), const(C.c_void_p), C.c_void_p], C.c_ulonglong, None),
    ("long h(bool b, int8_t a, uint16_t b2, int32_t c, int64_t d, ssize_t e, short s, "
     "unsigned u, signed char sc, long int li, unsigned short int usi, float fl);",
     [C.c_bool, C.c_int8, C.c_uint16, C.c_int32, C.c_int64, C.c_ssize_t, C.c_short, C.c_uint,
      C.c_byte, C.c_long, C.c_ushort, C.c_float], C.c_long, None),
    ("void arr(const double a[], int b[4]);", [const(P(C.c_double)), P(C.c_int)], None, None),
    ("double *const *pp(const double **a, double *const *b);",
     [P(P(C.c_double)), const(P(P(C.c_double)))], P(P(C.c_double)), None),
    ("int body(int x) { return x + 1; }", [C.c_int], C.c_int, None),
])
def test_declarations_map_to_contracts(decl, args, ret, variadic) -> None:
    c = ABIContract.from_c(decl)
    assert c == ABIContract(c.function_name, args, ret, variadic=variadic)


def test_typedefs_comments_and_several_functions() -> None:
    got = contracts_from_c("""
        /* a header, preprocessed */
        typedef double real;      // a scalar typedef
        typedef real *real_p;
        real mean(const real *xs, size_t n);
        void scale(real_p xs, size_t n, real k);
        int sum_ints(int n, ...);
    """, use_errno=True)
    assert [c.to_dict() for c in got] == [
        {"function_name": "mean", "arg_types": ["const LP_c_double", "c_size_t"],
         "return_type": "c_double", "calling_convention": "cdecl", "use_errno": True},
        {"function_name": "scale", "arg_types": ["LP_c_double", "c_size_t", "c_double"],
         "return_type": None, "calling_convention": "cdecl", "use_errno": True},
        {"function_name": "sum_ints", "arg_types": ["c_int"], "return_type": "c_int",
         "calling_convention": "cdecl", "use_errno": True, "variadic": 1},
    ]


@pytest.mark.parametrize("text, msg", [
    ("int ok(void);\n\nvoid f(struct P p);", r"line 3: struct P is declared but not defined"),
    ("struct P;\nvoid f(struct P *p);", r"line 2: struct P is declared but not defined in the "
     r"text \(an incomplete type"),
    ("void f(union U u);", r"line 1: union U by value"),
    ("int ok(void);\nunion U { int a; float b; };", r"line 2: union U definition is not supported"),
    ("typedef union { int a; } u_t;", r"line 1: union \(anonymous\) definition is not supported"),
    ("struct cd_hasu {\n int a;\n union { int i; float f; } u;\n};",
     r"line 3: union \(anonymous\) as field 'u' of struct cd_hasu is not supported"),
    ("struct cd_bits { int a;\n int flags : 3; };",
     r"line 2: bit-field 'flags' of struct cd_bits is not supported"),
    ("struct cd_flex { int n; double v[]; };",
     r"line 1: field 'v' of struct cd_flex: a flexible array member \('v\[\]'\) is not supported"),
    ("struct cd_dim { double v[N]; };", r"field 'v' of struct cd_dim: an array size must be a "
     r"decimal integer literal"),
    ("int ok(void);\nstruct __attribute__((packed)) cd_pk { char c; double d; };",
     r"line 2: '__attribute__\(\(packed\)\)' is not supported .*_pack_ = 1"),
    ("struct cd_twice { int a; };\nstruct cd_twice { int a; };",
     r"line 2: struct cd_twice is defined twice"),
    ("typedef struct { double x; } cd_cbs;\nvoid f(double (*cb)(const cd_cbs *p));",
     r"line 2: function pointer 'cb': argument 1 is a struct \(const cd_cbs \*\); a struct in "
     r"a callback signature is not supported \(pass its address as void \*\)"),
    ("typedef struct { double x; } cd_cbs;\ntypedef cd_cbs (*mk_t)(void);\nvoid f(mk_t mk);",
     r"line 2: function pointer 'mk_t': return type is a struct"),
    ("void f(int (*cb)(int (*inner)(int)));",
     r"line 1: a function pointer among a function pointer's own argument or return types"),
    ("void f(int (*cb)(int, ...));", r"line 1: function pointer 'cb' is variadic"),
    ("void f(int (*cb)());", r"line 1: function pointer 'cb' has unspecified parameters"),
    ("void f(int (**cb)(int));", r"line 1: a pointer to a function pointer is not supported"),
    ("void f(enum E e);", r"line 1: enum E by value"),
    ("struct cd_self { int a;\n struct cd_self s; };",
     r"line 2: struct cd_self contains itself \(only a pointer to it can be a field\)"),
    ("struct cd_kw { int _fields_; };", r"line 1: struct cd_kw: ctypes cannot build it"),
    ("struct cd_toolong_aaaaaaaaaaaaaaaaaaaaaaaaaaaa { int x; };",
     r"line 1: struct name 'cd_toolong_a+' is not a C identifier of 1 to 32 characters"),
    ("struct cd_huge { char b[100000000000000]; };",
     r"line 1: struct cd_huge: size 100000000000000 is not 1 to 65536 bytes"),
    ("struct cd_empty { };", r"line 1: struct cd_empty has no fields"),
    ("int f();", r"line 1: f\(\) has unspecified parameters; write f\(void\)"),
    ("int x;", r"line 1: 'x' is a variable, not a function"),
    ("int ok(void);\n#include <x.h>", r"line 2: preprocessor line '#include <x.h>'"),
    ("int f(int", r"cannot parse"),
    ("int f(...);", r"line 1: cannot parse: '\.\.\.' needs a named parameter before it"),
    ("void f(foo_t x);", r"line 1: cannot parse: before: x \(an unknown type name\?"),
    ("void f(void, int);", r"void is not a parameter type|cannot parse"),
    ("long short f(void);", r"line 1: 'long short' is not a C type"),
])
def test_unsupported_constructs_are_refused_naming_the_line(text, msg) -> None:
    with pytest.raises(CDeclError, match=msg):
        contracts_from_c(text)


def test_from_c_takes_a_declaration_without_its_semicolon() -> None:
    assert ABIContract.from_c("int32_t version(void)") == ABIContract("version", [], C.c_int32)


def test_from_c_wants_exactly_one_function() -> None:
    with pytest.raises(CDeclError, match="expected one function declaration, got 2"):
        ABIContract.from_c("int f(void); int g(void);")
    with pytest.raises(CDeclError, match="got 0"):
        ABIContract.from_c("typedef int t;")
    assert issubclass(CDeclError, ValueError)


def test_a_missing_pycparser_is_a_clear_import_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pycparser", None)
    with pytest.raises(ImportError, match="need pycparser: pip install pycparser"):
        ABIContract.from_c("int f(void);")


def test_contracts_from_c_bind_and_call() -> None:
    cs = contracts_from_c("""
        double sum_const(const double *xs, size_t n);
        int fmt(char *buf, size_t n, const char *f, ...);
        double split_exp(double x, int *exp);
    """)
    k = ModuleLoader().load(fixture_path("ffi_extra_kernels"), cs)
    assert k.call("sum_const", memoryview(bytes(16)).cast("d"), 2) == 0.0  # read-only: const
    buf = bytearray(16)
    assert k.call("fmt", buf, 16, b"%s=%d", b"n", 7) == 3 and bytes(buf[:3]) == b"n=7"
    e = C.c_int()
    assert k.call("split_exp", 8.0, C.byref(e)) == 0.5 and e.value == 4


# ---- structs and function pointers ---------------------------------------------

# tests/fixtures/struct_kernels.c's types, as its C declares them (the names
# are the classes' names: one layout per name in a process, so none is used
# by another test).
STRUCT_DECLS = """
typedef struct { double x, y; } vec2_t;
typedef struct { double x, y, z; int64_t tag; } big_t;
typedef struct seg { vec2_t a, b; int id; } seg_t;   /* nested, tagged */
struct arr { int n; float v[3]; char name[4]; };     /* arrays inside */
typedef struct arr arr_t;
double vec2_dot(vec2_t a, vec2_t b);
vec2_t vec2_add(vec2_t a, vec2_t b);
big_t big_scale(big_t b, double k);
double seg_length2(struct seg s);
seg_t seg_swap(seg_t s);
double arr_total(struct arr a);
arr_t arr_fill(int n);
double vec2_sum_x(const vec2_t *v, size_t n);
void vec2_scale_all(vec2_t *v, size_t n, double k);
double seg_sum_ax(const struct seg *s, size_t n);
"""


@pytest.fixture
def struct_lib():
    loader = ModuleLoader()
    loader.load(fixture_path("struct_kernels"), contracts_from_c(STRUCT_DECLS))
    yield loader, edgert.structs_from_c(STRUCT_DECLS)
    loader.unload()


def test_struct_declarations_become_structure_classes() -> None:
    s = edgert.structs_from_c(STRUCT_DECLS)
    assert list(s) == ["vec2_t", "big_t", "seg", "seg_t", "arr", "arr_t"]
    assert s["seg"] is s["seg_t"] and s["arr"] is s["arr_t"]
    V, Seg, Arr = s["vec2_t"], s["seg"], s["arr"]
    assert all(issubclass(c, C.Structure) for c in s.values())
    assert V._fields_ == [("x", C.c_double), ("y", C.c_double)]
    assert Seg._fields_ == [("a", V), ("b", V), ("id", C.c_int)]
    assert Arr._fields_ == [("n", C.c_int), ("v", C.c_float * 3), ("name", C.c_char * 4)]
    assert (C.sizeof(V), C.sizeof(s["big_t"]), C.sizeof(Seg), C.sizeof(Arr)) == (16, 32, 40, 20)
    # the same text again: the same classes, so the contracts are equal
    assert edgert.structs_from_c(STRUCT_DECLS) == s
    assert contracts_from_c(STRUCT_DECLS) == contracts_from_c(STRUCT_DECLS)
    got = {c.function_name: c for c in contracts_from_c(STRUCT_DECLS)}
    assert got["vec2_add"] == ABIContract("vec2_add", [V, V], V)
    assert got["seg_length2"] == ABIContract("seg_length2", [Seg], C.c_double)
    assert got["vec2_sum_x"] == ABIContract("vec2_sum_x", [const(P(V)), C.c_size_t], C.c_double)
    assert got["vec2_scale_all"].to_dict()["arg_types"] == ["LP_struct vec2_t", "c_size_t",
                                                           "c_double"]


def test_struct_pointer_fields_and_deeper_nesting() -> None:
    s = edgert.structs_from_c("""
        struct cd_node { struct cd_node *next; int (*f)(int); const char *name;
                         double m[2][3]; struct { short a; } inner; _Bool ok; };
    """)
    N = s["cd_node"]
    assert [(n, t) for n, t in N._fields_[:3]] == [("next", C.c_void_p), ("f", C.c_void_p),
                                                   ("name", C.c_void_p)]
    assert N._fields_[3] == ("m", C.c_double * 3 * 2)
    inner = N._fields_[4][1]
    assert inner.__name__ == "cd_node_inner" and inner._fields_ == [("a", C.c_short)]
    assert N._fields_[5] == ("ok", C.c_bool)
    assert C.sizeof(N) == 24 + 48 + 2 + 1 + 5


def test_structs_by_value_and_by_pointer_call_the_fixture(struct_lib) -> None:
    lib, s = struct_lib
    V, Big, Seg, Arr = s["vec2_t"], s["big_t"], s["seg_t"], s["arr_t"]
    assert lib.call("vec2_dot", V(1, 2), V(3, 4)) == 11.0            # in registers
    r = lib.call("vec2_add", V(1, 2), V(3, 4))
    assert type(r) is V and (r.x, r.y) == (4.0, 6.0)
    b = lib.call("big_scale", Big(1, 2, 3, 4), 2.0)                  # in memory
    assert type(b) is Big and (b.x, b.y, b.z, b.tag) == (2, 4, 6, 5)
    sw = lib.call("seg_swap", Seg(V(1, 2), V(3, 4), 7))              # nested
    assert (sw.a.x, sw.b.y, sw.id) == (3.0, 2.0, -7)
    assert lib.call("seg_length2", Seg(V(0, 0), V(3, 4), 1)) == 25.0
    a = lib.call("arr_fill", 9)                                      # arrays inside
    assert (a.n, list(a.v), a.name) == (9, [1.5, 2.5, 3.5], b"abc")
    assert lib.call("arr_total", a) == 9 + 7.5 + ord("a")
    items = (V * 3)(V(1, 9), V(2, 9), V(4, 9))                       # behind pointers
    lib.call("vec2_scale_all", items, 3, 2.0)
    assert [(v.x, v.y) for v in items] == [(2, 18), (4, 18), (8, 18)]
    assert lib.call("vec2_sum_x", items, 3) == 14.0
    assert lib.call("vec2_sum_x", bytes(items), 3) == 14.0           # const: read-only bytes
    segs = (Seg * 2)(Seg(V(1, 0), V(), 10), Seg(V(2, 0), V(), 20))
    assert lib.call("seg_sum_ax", segs, 2) == 33.0
    with pytest.raises(TypeError, match="must be an instance of the struct's"):
        lib.call("vec2_dot", Big(), V())


def test_a_struct_name_is_one_layout_per_process() -> None:
    edgert.structs_from_c("struct cd_clash { int x; };")
    with pytest.raises(CDeclError, match=r"^line 2: struct cd_clash is already "
                                         r"defined with another layout"):
        edgert.structs_from_c("int ok(void);\nstruct cd_clash { double x; };")


CALLBACK_DECLS = """
typedef int (*int_fn)(int);
typedef double dbl_fn_t(double);       /* a function type */
void my_qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));
long call_n(int_fn f, int n);
double apply_d(dbl_fn_t *f, double x);
long call_mixed(long f(signed char, unsigned short, unsigned, long, float, double));
int cmp_int(const void *a, const void *b);
int twice_plus_one(int x);
"""


def test_function_pointers_become_cfunctype_types() -> None:
    got = {c.function_name: c for c in contracts_from_c(CALLBACK_DECLS)}
    CMP = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_void_p)
    assert got["my_qsort"] == ABIContract("my_qsort", [C.c_void_p, C.c_size_t, C.c_size_t, CMP],
                                          None)
    assert got["my_qsort"].to_dict()["arg_types"][3] == "CFUNCTYPE(c_int, c_void_p, c_void_p)"
    assert got["call_n"].arg_types[0] is C.CFUNCTYPE(C.c_int, C.c_int)
    assert got["apply_d"].arg_types[0] is C.CFUNCTYPE(C.c_double, C.c_double)
    assert got["call_mixed"].arg_types[0] is C.CFUNCTYPE(C.c_long, C.c_byte, C.c_ushort,
                                                          C.c_uint, C.c_long, C.c_float,
                                                          C.c_double)
    assert ABIContract.from_c("int (*pick(int which))(const char *s);") == ABIContract(
        "pick", [C.c_int], C.CFUNCTYPE(C.c_int, C.c_char_p))   # returned: an address


def test_declared_callbacks_call_the_fixture() -> None:
    import array
    loader = ModuleLoader()
    loader.load(fixture_path("callback_kernels"), contracts_from_c(CALLBACK_DECLS))
    try:
        a = array.array("i", [5, -3, 9, 1, 0])
        loader.call("my_qsort", a, len(a), a.itemsize,
                    lambda x, y: C.c_int.from_address(x).value - C.c_int.from_address(y).value)
        assert list(a) == [-3, 0, 1, 5, 9]
        b = array.array("i", [4, 2, 8, -1])   # a C comparator, declared with const void *
        loader.call("my_qsort", b, len(b), b.itemsize, loader.function("cmp_int"))
        assert list(b) == [-1, 2, 4, 8]
        assert loader.call("call_n", lambda i: i * i, 4) == 14
        assert loader.call("call_n", loader.function("twice_plus_one"), 3) == 9
        assert loader.call("apply_d", lambda x: x / 2, 5.0) == 2.5
        assert loader.call("call_mixed", lambda *v: int(sum(v))) == int(
            -5 + 65535 + 4000000000 - 9000000000 + 1.5 + 2.25)
    finally:
        loader.unload()


# C spellings of contract types, for the round trip.
_C_NAMES = [(C.c_int, "int"), (C.c_double, "double"), (C.c_float, "float"),
            (C.c_size_t, "size_t"), (C.c_ubyte, "unsigned char"), (C.c_short, "short"),
            (C.c_bool, "bool"), (C.c_long, "long"), (C.c_longdouble, "long double"),
            (C.c_char_p, "const char *"), (C.c_void_p, "void *"),
            (const(C.c_void_p), "const void *"), (C.c_wchar_p, "const wchar_t *")]
_ITEMS = [(C.c_double, "double"), (C.c_int, "int"), (C.c_ubyte, "unsigned char"),
          (C.c_float, "float")]


_RT_STRUCT = "typedef struct { double x; int n; unsigned char tag[3]; } cd_rt_t;\n"


@functools.lru_cache(maxsize=None)
def _rt() -> type:
    return edgert.structs_from_c(_RT_STRUCT)["cd_rt_t"]


@functools.lru_cache(maxsize=None)
def _c_special() -> list:
    """(type, C spelling with "{}" where the parameter's name goes)."""
    rt = _rt()
    return [(rt, "cd_rt_t {}"), (P(rt), "cd_rt_t *{}"), (const(P(rt)), "const cd_rt_t *{}"),
            (C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_void_p), "int (*{})(const void *, const void *)"),
            (C.CFUNCTYPE(None, C.c_double, P(C.c_int)), "void (*{})(double, int *)"),
            (C.CFUNCTYPE(C.c_long), "long {}(void)")]


@st.composite
def _c_type(draw):
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return draw(st.sampled_from(_C_NAMES))
    if kind == 1:
        return draw(st.sampled_from(_c_special()))
    t, name = draw(st.sampled_from(_ITEMS))
    depth = draw(st.integers(1, 3))
    cls = t
    for _ in range(depth):
        cls = P(cls)
    is_const = draw(st.booleans())
    # const applies to the outermost items: "double const *", "double * const *"
    return ((const(cls), name + " *" * (depth - 1) + " const *") if is_const
            else (cls, name + " *" * depth))


@settings(max_examples=60, deadline=None)
@given(args=st.lists(_c_type(), min_size=1, max_size=6), variadic=st.booleans(),
       ret=st.sampled_from([(None, "void"), (C.c_double, "double"), (C.c_int, "int"),
                            (None, "cd_rt_t")]))
def test_round_trip_through_c_declarations(args, variadic, ret) -> None:
    params = ", ".join(name.format(f"a{i}") if "{}" in name else f"{name} a{i}"
                       for i, (_, name) in enumerate(args))
    decl = _RT_STRUCT + f"{ret[1]} f({params}{', ...' if variadic else ''});"
    c = ABIContract.from_c(decl)
    want = ABIContract("f", [t for t, _ in args], _rt() if ret[1] == "cd_rt_t" else ret[0],
                       variadic=len(args) if variadic else None)
    assert c == want, decl
    assert ABIContract.from_manifest(c.to_dict()) == c
    assert edgert._edgert.parse_contract_json(json.dumps(c.to_dict())) == c.to_dict()
