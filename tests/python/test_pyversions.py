"""What differs between the CPython versions edgert supports (3.10 to 3.13).

python/src/pycompat.h gives each C-API difference the newest public name;
these tests drive each shim at the edges of its contract, on whichever
version runs them (`make test-matrix` runs them, with the whole suite, on
each), and check that the supported range is stated alike everywhere."""
from __future__ import annotations

import ctypes
import math
import pathlib
import re

import pytest

from conftest import fixture_path
from edgert import ABIContract, ModuleLoader, TypedDict, TypedList, results_match

ROOT = pathlib.Path(__file__).resolve().parents[2]
SUPPORTED = [(3, 10), (3, 11), (3, 12), (3, 13)]

# Around the sizes CPython stores an int in: one 30-bit digit is "compact"
# (read without a call on every version: PyUnstable_Long_CompactValue, a
# shim before 3.12), two digits are read without a call before 3.12, and
# int64's own ends.
MAGNITUDES = [0, 1, 2, 2**15, 2**30 - 1, 2**30, 2**30 + 1, 2**31, 2**32 - 1,
              2**60 - 1, 2**60, 2**60 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64]
EDGE_INTS = sorted({s * m for m in MAGNITUDES for s in (1, -1)})

INT_TYPES = [
    ("id_i8", ctypes.c_int8, -2**7, 2**7 - 1),
    ("id_u8", ctypes.c_uint8, 0, 2**8 - 1),
    ("id_i32", ctypes.c_int32, -2**31, 2**31 - 1),
    ("id_u32", ctypes.c_uint32, 0, 2**32 - 1),
    ("id_i64", ctypes.c_int64, -2**63, 2**63 - 1),
    ("id_u64", ctypes.c_uint64, 0, 2**64 - 1),
]


@pytest.fixture(scope="module", params=[True, False], ids=["gil-released", "gil-held"])
def ints_loader(request):
    # Keeping the GIL with int64 arguments takes the call's fast path; the
    # other contracts convert argument by argument.
    contracts = [ABIContract(n, [t], t, release_gil=request.param) for n, t, _, _ in INT_TYPES]
    loader = ModuleLoader().load(fixture_path("loader_kernels"), contracts)
    yield loader
    loader.unload()


@pytest.mark.parametrize("name,ctype,lo,hi", INT_TYPES, ids=[t[0] for t in INT_TYPES])
def test_call_arguments_at_the_int_digit_boundaries(ints_loader, name, ctype, lo, hi):
    f = ints_loader.function(name)
    for x in EDGE_INTS:
        if lo <= x <= hi:
            assert f(x) == x, x
        else:
            with pytest.raises(OverflowError, match=rf"argument 1: {x} does not fit"):
                f(x)


def test_container_ints_at_the_digit_boundaries():
    in_range = [x for x in EDGE_INTS if -2**63 <= x < 2**63]
    td = TypedDict(int, int)
    for x in in_range:
        td[x] = x
    assert dict(td.items()) == {x: x for x in in_range}
    assert all(td[x] == x and x in td for x in in_range)
    assert -2**63 - 1 not in td and 2**63 not in td
    tl = TypedList(int)
    tl.extend(in_range)
    for x in in_range:
        tl.append(x)
    assert list(tl) == in_range * 2
    for x in (2**63, -2**63 - 1, 2**64):
        with pytest.raises(OverflowError):
            td[x] = 0
        with pytest.raises(OverflowError):
            tl.append(x)


def test_half_floats_compare_by_value():
    # PyFloat_Unpack2 (a shim on 3.10) reads the items of a buffer of format
    # "e" when it is compared with another buffer.
    np = pytest.importorskip("numpy")

    def half(*xs: float):
        return np.array(xs, dtype=np.float16)

    def double(*xs: float):
        return np.array(xs, dtype=np.float64)

    values = [1.5, -2.0, 65504.0, 2.0**-24, -0.0]
    assert results_match(half(*values), double(*values), tolerance=0.0) is None
    assert results_match(double(*values), half(*values), tolerance=0.0) is None
    assert results_match(half(*values), half(*values)) is None
    assert results_match(half(1.5, -2.0), double(1.5, -2.5)) == "at [1]: -2.0 != -2.5"
    assert results_match(half(2.0**-24), double(2.0**-23), tolerance=0.0) == \
        "at [0]: 5.960464477539063e-08 != 1.1920928955078125e-07"
    assert results_match(half(math.nan), double(math.nan)) is None
    assert results_match(half(math.inf), double(-math.inf)) == "at [0]: inf != -inf"


class _Keys:
    """A mapping-like object for TypedDict.update: `keys` is looked up as an
    optional attribute (PyObject_GetOptionalAttr, a shim before 3.13)."""

    def __init__(self, items, keys_error=None):
        self._items = dict(items)
        self._keys_error = keys_error

    def __getattr__(self, name):
        if name != "keys":
            raise AttributeError(name)
        if self._keys_error is not None:
            raise self._keys_error
        return self._items.keys

    def __getitem__(self, k):
        return self._items[k]

    def __iter__(self):  # used only when there is no keys()
        return iter(self._items.items())


def test_update_looks_keys_up_as_an_optional_attribute():
    td = TypedDict(int, float)
    td.update(_Keys({1: 1.0, 2: 2.0}))
    assert dict(td.items()) == {1: 1.0, 2: 2.0}
    # AttributeError from the lookup: no keys(), so an iterable of pairs
    td.update(_Keys({3: 3.0}, keys_error=AttributeError("keys")))
    assert dict(td.items()) == {1: 1.0, 2: 2.0, 3: 3.0}
    # any other error from the lookup is the caller's to see
    with pytest.raises(RuntimeError, match="keys exploded"):
        td.update(_Keys({4: 4.0}, keys_error=RuntimeError("keys exploded")))
    assert 4 not in td


@pytest.mark.parametrize("ktype,keys", [
    (str, ["", "a", "key", "x" * 100, "naïve", "键", "\U0001f600"]),
    (bytes, [b"", b"a", b"key", b"x" * 100, b"\x00\xff\x80"]),
], ids=["str", "bytes"])
def test_keys_set_in_bulk_are_found_by_pythons_hash(ktype, keys):
    # update() hashes the keys in the core (Py_HashBuffer, _Py_HashBytes
    # before 3.14); lookups from Python use the key object's own hash.
    td = TypedDict(ktype, int)
    td.update({k: i for i, k in enumerate(keys)})
    for i, k in enumerate(keys):
        assert k in td and td[k] == i, k
    assert sorted(td.keys()) == sorted(keys)


def _pyproject() -> str:
    return (ROOT / "pyproject.toml").read_text()


def test_supported_versions_are_stated_alike_everywhere():
    floor = "%d.%d" % SUPPORTED[0]
    names = ["%d.%d" % v for v in SUPPORTED]
    assert re.search(r'^requires-python = ">=%s"$' % re.escape(floor), _pyproject(), re.M)
    assert re.findall(r'"Programming Language :: Python :: (3\.\d+)"', _pyproject()) == names
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert re.search(r"find_package\(Python %s COMPONENTS" % re.escape(floor), cmake)
    compat = (ROOT / "python" / "src" / "pycompat.h").read_text()
    assert "#if PY_VERSION_HEX < 0x%02X%02X0000\n#error" % SUPPORTED[0] in compat
    matrix = (ROOT / "mk" / "matrix.mk").read_text()
    assert re.search(r"^MATRIX_VERSIONS := (.*)$", matrix, re.M).group(1).split() == names
    readme = (ROOT / "README.md").read_text()
    assert "CPython %s or %s" % (", ".join(names[:-1]), names[-1]) in " ".join(readme.split())
