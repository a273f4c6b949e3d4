"""Contracts from C declarations (issue 13): ABIContract.from_c and
edgert.contracts_from_c, parsed by pycparser."""
from __future__ import annotations

import ctypes as C
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
    ("int ok(void);\nstruct P { int x; };", r"line 2: struct P definition is not supported"),
    ("int ok(void);\n\nvoid f(struct P p);", r"line 3: struct P by value is not supported"),
    ("void f(struct P *p);", r"line 1: struct P behind a pointer is not supported"),
    ("void f(union U u);", r"line 1: union U by value"),
    ("void f(enum E e);", r"line 1: enum E by value"),
    ("int ok(void);\nvoid f(int (*cb)(int));", r"line 2: a function pointer is not supported"),
    ("int f();", r"line 1: f\(\) has unspecified parameters; write f\(void\)"),
    ("int x;", r"line 1: 'x' is a variable, not a function"),
    ("int ok(void);\n#include <x.h>", r"line 2: preprocessor line '#include <x.h>'"),
    ("int f(int", r"cannot parse"),
    ("int f(...);", r"line 1: cannot parse: before: \.\.\. \('\.\.\.' needs a named parameter"),
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


# C spellings of contract types, for the round trip.
_C_NAMES = [(C.c_int, "int"), (C.c_double, "double"), (C.c_float, "float"),
            (C.c_size_t, "size_t"), (C.c_ubyte, "unsigned char"), (C.c_short, "short"),
            (C.c_bool, "bool"), (C.c_long, "long"), (C.c_longdouble, "long double"),
            (C.c_char_p, "const char *"), (C.c_void_p, "void *"),
            (const(C.c_void_p), "const void *"), (C.c_wchar_p, "const wchar_t *")]
_ITEMS = [(C.c_double, "double"), (C.c_int, "int"), (C.c_ubyte, "unsigned char"),
          (C.c_float, "float")]


@st.composite
def _c_type(draw):
    if draw(st.booleans()):
        return draw(st.sampled_from(_C_NAMES))
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
       ret=st.sampled_from([(None, "void"), (C.c_double, "double"), (C.c_int, "int")]))
def test_round_trip_through_c_declarations(args, variadic, ret) -> None:
    params = ", ".join(f"{name} a{i}" for i, (_, name) in enumerate(args))
    decl = f"{ret[1]} f({params}{', ...' if variadic else ''});"
    c = ABIContract.from_c(decl)
    want = ABIContract("f", [t for t, _ in args], ret[0],
                       variadic=len(args) if variadic else None)
    assert c == want, decl
    assert ABIContract.from_manifest(c.to_dict()) == c
    assert edgert._edgert.parse_contract_json(json.dumps(c.to_dict())) == c.to_dict()
