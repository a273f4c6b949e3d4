"""Custom inline types: the article's Point, registered through the loader
(its register_custom_type entry point) and through edgert.register_type."""
import ctypes
import itertools
import pickle

import numpy as np
import pytest

import edgert
from conftest import fixture_path
from edgert import ABIContract, ModuleLoader, TypedDict, TypedList

_names = itertools.count()


class PointObj:
    """A Python Point, as the article's PointObj wrapper."""

    def __init__(self, x, y):
        self.x, self.y = x, y


def register_abi():
    return ABIContract(
        function_name="register_custom_type",
        arg_types=[ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p],
        return_type=ctypes.c_int,
    )


@pytest.fixture(scope="module")
def point_lib():
    loader = ModuleLoader()
    loader.load(fixture_path("libcontainers_point"), register_abi())
    return loader


def test_the_article_flow_registers_point(point_lib):
    loader = point_lib
    sizeof_fp, check_fp, copy_fp = (loader.address_of(n)
                                    for n in ("sizeof_point", "check_point", "copy_point"))
    assert loader.call("register_custom_type", b"Point", sizeof_fp, check_fp, copy_fp) == 0
    # Once only: the same name again is refused by the registry.
    assert loader.call("register_custom_type", b"Point", sizeof_fp, check_fp,
                       copy_fp) == edgert_code("EEXIST")

    pts = TypedList("Point", [PointObj(1.0, 2.0), PointObj(3, 4)])
    assert pts.itemsize == 16 and len(pts) == 2
    raw = np.asarray(pts)  # the inline storage: n rows of sizeof(Point) bytes
    assert raw.shape == (2, 16) and raw.dtype == np.uint8
    assert raw.view(np.float64).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    # Without a box callback an element reads back as its raw bytes...
    assert pts[0] == np.array([1.0, 2.0]).tobytes()
    # ...which are accepted back as a Point too.
    del raw
    pts.append(pts[1])
    assert np.asarray(pts).view(np.float64)[2].tolist() == [3.0, 4.0]
    with pytest.raises(TypeError, match="TypedList item must be Point, not int"):
        pts.append(5)
    with pytest.raises(TypeError):
        pts.append(b"short")
    assert len(pts) == 3
    back = pickle.loads(pickle.dumps(pts))
    assert back == pts


def edgert_code(name):
    # the C error codes, as the registry returns them through the loader
    return {"EEXIST": -19, "EINVAL": -1}[name]


def test_a_kernel_reads_custom_elements_in_place(point_lib):
    lib = ModuleLoader()
    lib.load(fixture_path("libcontainers_point"), ABIContract(
        "point_dot_sum", [ctypes.c_void_p, ctypes.c_size_t], ctypes.c_double))
    ensure_boxed_point(point_lib)
    pts = TypedList("BoxedPoint", [PointObj(i, 2) for i in range(10)])
    assert lib.call("point_dot_sum", pts, len(pts)) == 2 * sum(range(10))


def ensure_boxed_point(point_lib):
    try:
        TypedList("BoxedPoint")
    except ValueError:
        addrs = [point_lib.address_of(n) for n in
                 ("sizeof_point", "check_point", "copy_point", "box_point")]
        edgert.register_type("BoxedPoint", *addrs)


def test_register_type_with_a_box_callback(point_lib):
    ensure_boxed_point(point_lib)
    d = TypedDict(str, "BoxedPoint", {"a": PointObj(1, 2)})
    assert d["a"] == (1.0, 2.0)  # box_point gives a tuple
    assert repr(d) == "TypedDict(str, 'BoxedPoint', {'a': (1.0, 2.0)})"
    d["b"] = PointObj(-1.5, 0)
    assert dict(d) == {"a": (1.0, 2.0), "b": (-1.5, 0.0)}
    with pytest.raises(TypeError, match="TypedDict value must be BoxedPoint, not str"):
        d["c"] = "not a point"
    assert len(d) == 2
    v = memoryview(d.values())
    assert v.shape == (2, 16)
    del v
    # A custom type as a key: compared bitwise.
    k = TypedDict("BoxedPoint", int)
    k[PointObj(1, 1)] = 5
    assert k[PointObj(1.0, 1.0)] == 5 and PointObj(1, 2) not in k


def test_check_callback_exceptions_propagate(point_lib):
    ensure_boxed_point(point_lib)

    class Bad:
        @property
        def x(self):
            raise RuntimeError("x exploded")

    tl = TypedList("BoxedPoint")
    with pytest.raises(RuntimeError, match="x exploded"):
        tl.append(Bad())
    assert len(tl) == 0


def test_register_type_refuses_bad_input(point_lib):
    addrs = [point_lib.address_of(n) for n in ("sizeof_point", "check_point", "copy_point")]
    with pytest.raises(ValueError, match="already registered|built-in type name"):
        edgert.register_type("float", *addrs)
    with pytest.raises(ValueError, match="invalid type name '9lives'"):
        edgert.register_type("9lives", *addrs)
    with pytest.raises(TypeError, match="sizeof_fn must be a function address"):
        edgert.register_type("Ok1", "nope", addrs[1], addrs[2])
    with pytest.raises(ValueError, match="check_fn must not be 0"):
        edgert.register_type("Ok2", addrs[0], 0, addrs[2])
    with pytest.raises(TypeError, match="name must be str or bytes"):
        edgert.register_type(5, *addrs)
    name = f"Pt{next(_names)}"
    edgert.register_type(name.encode(), *addrs)
    with pytest.raises(ValueError, match="already registered"):
        edgert.register_type(name, *addrs)


def test_register_type_from_ctypes_addresses():
    # Addresses from ctypes work the same (before a loader is involved).
    lib = ctypes.CDLL(fixture_path("libcontainers_point"))
    addrs = [ctypes.cast(getattr(lib, n), ctypes.c_void_p).value
             for n in ("sizeof_point", "check_point", "copy_point")]
    name = f"CtPoint{next(_names)}"
    edgert.register_type(name, *addrs)
    tl = TypedList(name, [PointObj(5, 6)])
    assert np.asarray(tl).view(np.float64).tolist() == [[5.0, 6.0]]


def test_the_custom_type_example_runs():
    # In its own process: this one has registered "Point" already.
    import os
    import pathlib
    import subprocess
    import sys
    build = os.environ.get("EDGERT_BUILD_DIR")
    lib = pathlib.Path(build or "", "examples", "custom_type", "libcustom_types.so")
    if not build or not lib.exists():
        pytest.skip("examples/custom_type is not built in EDGERT_BUILD_DIR")
    src = pathlib.Path(__file__).resolve().parents[2] / "examples" / "custom_type" / "pipeline.py"
    out = subprocess.run([sys.executable, str(src), str(lib)], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "mean x: 3.0"
