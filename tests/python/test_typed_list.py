"""TypedList: MutableSequence behaviour, typing rules, buffers, kernels."""
import array
import collections.abc
import copy
import ctypes
import gc
import pickle
import sys
import threading

import numpy as np
import pytest

from conftest import fixture_path
from edgert import TypedList


def test_is_a_mutable_sequence_with_list_semantics():
    tl = TypedList(int, [3, 1, 2])
    assert isinstance(tl, collections.abc.MutableSequence)
    assert len(tl) == 3 and tl[0] == 3 and tl[-1] == 2
    with pytest.raises(IndexError, match="out of range"):
        tl[3]
    with pytest.raises(IndexError):
        tl[-4]
    tl.append(5)
    tl.insert(0, 9)
    tl.insert(-1, 8)
    tl.insert(100, 7)
    assert tl == [9, 3, 1, 2, 8, 5, 7]
    assert tl.pop() == 7 and tl.pop(0) == 9 and tl.pop(-2) == 8
    with pytest.raises(IndexError, match="pop index out of range"):
        tl.pop(10)
    tl.extend([1, 1])
    assert tl.count(1) == 3 and tl.index(1) == 1 and tl.index(1, 2) == 4
    with pytest.raises(ValueError, match="42 is not in TypedList"):
        tl.index(42)
    tl.remove(1)
    with pytest.raises(ValueError, match="not in list"):
        tl.remove(42)
    assert tl == [3, 2, 5, 1, 1]
    tl.reverse()
    assert tl == [1, 1, 5, 2, 3]
    tl.sort()
    assert tl == [1, 1, 2, 3, 5]
    tl.sort(reverse=True)
    assert tl == [5, 3, 2, 1, 1]
    tl.sort(key=lambda x: -x)
    assert tl == [5, 3, 2, 1, 1]
    tl.sort(key=abs)
    assert tl == [1, 1, 2, 3, 5]
    assert 5 in tl and 6 not in tl and "x" not in tl
    assert tl + [6] == [1, 1, 2, 3, 5, 6] and tl * 2 == [1, 1, 2, 3, 5] * 2
    tl += [7]
    tl *= 1
    assert tl == [1, 1, 2, 3, 5, 7]
    assert tl < [1, 2] and tl > [1, 1, 2] and not tl == (1, 1, 2, 3, 5, 7)
    tl.clear()
    assert tl == [] and len(tl) == 0
    with pytest.raises(IndexError, match="pop from empty"):
        tl.pop()
    with pytest.raises(TypeError):
        hash(tl)


def test_slicing_matches_list():
    data = list(range(20))
    tl = TypedList(int, data)
    for s in [slice(None), slice(2, 8), slice(-5, None), slice(None, None, 3),
              slice(15, 2, -2), slice(100, 200), slice(None, None, -1)]:
        assert tl[s] == data[s] and isinstance(tl[s], TypedList)
    tl[2:5] = [100, 101]
    data[2:5] = [100, 101]
    tl[::4] = [0] * len(data[::4])
    data[::4] = [0] * len(data[::4])
    del tl[1::3]
    del data[1::3]
    del tl[-3:]
    del data[-3:]
    tl[len(tl):] = (7, 8)
    data[len(data):] = (7, 8)
    del tl[::-2]
    del data[::-2]
    assert tl == data
    with pytest.raises(ValueError, match="sequence of size 1 to extended slice of size"):
        tl[::2] = [1]
    with pytest.raises(TypeError, match="indices must be integers or slices, not str"):
        tl["a"]


def test_wrong_types_raise_type_error_and_change_nothing():
    tl = TypedList(float, [1.0, 2.0])
    with pytest.raises(TypeError, match="TypedList item must be float, not str"):
        tl.append("x")
    with pytest.raises(TypeError):
        tl[0] = None
    with pytest.raises(TypeError):
        tl.extend([3.0, "four"])
    with pytest.raises(TypeError):
        tl[0:1] = [5.0, b"x"]
    with pytest.raises(TypeError):
        tl.insert(0, [1])
    with pytest.raises(TypeError):
        TypedList(float, [1.0, "x"])
    with pytest.raises(TypeError, match="expected an iterable, not int"):
        tl.extend(3)
    assert tl == [1.0, 2.0]
    il = TypedList(int)
    with pytest.raises(TypeError, match="must be int, not float"):
        il.append(1.5)
    with pytest.raises(OverflowError, match="does not fit in int64"):
        il.append(2**63)
    with pytest.raises(OverflowError):
        il.extend([1, 2**64])
    assert il == []
    bl = TypedList(bool)
    with pytest.raises(TypeError, match="must be bool, not int"):
        bl.append(1)


def test_str_and_bytes_lists():
    sl = TypedList(str, ["a", "ß", ""])
    sl[1:2] = ["x", "y"]
    sl[::2] = ["A", "Y"]
    assert sl == ["A", "x", "Y", ""]
    sl.sort()
    assert sl == ["", "A", "Y", "x"]
    with pytest.raises(BufferError, match="not fixed-size"):
        memoryview(sl)
    bl = TypedList(bytes, [b"\x00\x01", b""])
    assert bl[0] == b"\x00\x01"
    with pytest.raises(TypeError, match="must be bytes, not bytearray"):
        bl.append(bytearray(b"x"))


def test_numeric_lists_export_their_buffer():
    tl = TypedList(float, [1.0, 2.0, 3.0])
    m = memoryview(tl)
    assert m.format == "d" and m.itemsize == 8 and m.shape == (3,) and m.c_contiguous
    a = np.asarray(tl)
    assert a.dtype == np.float64 and np.shares_memory(a, np.asarray(tl))
    a *= 2  # zero-copy both ways
    assert tl == [2.0, 4.0, 6.0]
    assert tl.address == a.ctypes.data
    with pytest.raises(BufferError, match="exported"):
        tl.append(1.0)
    with pytest.raises(BufferError):
        tl.pop()
    with pytest.raises(BufferError):
        del tl[0]
    with pytest.raises(BufferError):
        tl.extend([1.0])
    tl[0] = 9.0  # element writes are fine
    tl.sort()
    assert tl == [4.0, 6.0, 9.0]
    del a, m
    gc.collect()
    tl.append(1.0)
    assert memoryview(TypedList(int, [1])).format == "q"
    assert memoryview(TypedList(bool, [True])).format == "?"
    assert np.asarray(TypedList(int, [1, 2])).dtype == np.int64
    assert bytes(TypedList(bool, [True, False])) == b"\x01\x00"
    assert memoryview(TypedList(float)).shape == (0,)


def test_extend_from_buffers_without_boxing():
    tl = TypedList(float)
    tl.extend(np.arange(5, dtype=np.float64))
    tl.extend(array.array("d", [5.0]))
    tl.extend(TypedList(float, [6.0]))
    tl.extend(tl)  # from itself
    assert tl == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0] * 2
    il = TypedList(int, np.arange(3))
    assert il == [0, 1, 2]
    with pytest.raises(TypeError):
        TypedList(bool, np.array([0, 2], dtype=np.int8))


def test_a_kernel_sums_a_typed_list_through_the_loader():
    edgert = pytest.importorskip("edgert")
    from edgert import ABIContract, ModuleLoader
    loader = ModuleLoader()
    loader.load(fixture_path("libcontainers_sum"), [
        ABIContract("sum_f64", [ctypes.POINTER(ctypes.c_double), ctypes.c_size_t],
                    ctypes.c_double),
        ABIContract("sum_i64", [ctypes.POINTER(ctypes.c_int64), ctypes.c_size_t],
                    ctypes.c_int64),
        ABIContract("scale_f64", [ctypes.POINTER(ctypes.c_double), ctypes.c_size_t,
                                  ctypes.c_double], None),
    ])
    xs = TypedList(float, (i * 0.5 for i in range(100_001)))
    assert loader.call("sum_f64", xs, len(xs)) == sum(i * 0.5 for i in range(100_001))
    fn = loader.function("sum_f64")
    assert fn(xs, len(xs)) == np.sum(np.asarray(xs))
    loader.call("scale_f64", xs, len(xs), 2.0)  # writes through the buffer
    assert xs[3] == 3.0
    ints = TypedList(int, range(1000))
    assert loader.call("sum_i64", ints, len(ints)) == 499500
    with pytest.raises(TypeError):
        loader.call("sum_f64", ints, len(ints))  # 'q' is not POINTER(c_double)
    xs.append(1.0)  # the call released its export


@pytest.mark.parametrize("item_type,data", [
    (int, [1, -2**63, 2**63 - 1]), (float, [0.5, -0.0, float("inf")]),
    (bool, [True, False]), (str, ["a", "ü"]), (bytes, [b"", b"\x00"]),
    (object, [1, "two", None]),
])
def test_pickle_and_copy_round_trip(item_type, data):
    tl = TypedList(item_type, data)
    for proto in range(2, pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(tl, proto))
        assert isinstance(back, TypedList) and back == data
    assert copy.copy(tl) == data and copy.deepcopy(tl) == data
    c = tl.copy()
    c.append(data[0])
    assert tl == data


def test_repr():
    assert repr(TypedList(float, [1.5])) == "TypedList(float, [1.5])"
    assert repr(TypedList(object, [None])) == "TypedList(object, [None])"


def test_generic_object_list():
    gl = TypedList(object, [1, "a"])
    assert isinstance(gl, TypedList)
    gl.append([2])
    gl[0:1] = [None, None]
    assert gl == [None, None, "a", [2]]
    assert gl.pop() == [2]


def test_memory_is_compact_and_stable_over_reuse():
    tl = TypedList(float, np.zeros(1_000_000))
    assert sys.getsizeof(tl) / len(tl) <= 8.5
    grown = TypedList(float)
    for _ in range(200_000):
        grown.append(1.0)
    assert sys.getsizeof(grown) / len(grown) <= 8.5 + 0.1
    size = sys.getsizeof(tl)
    for _ in range(10):
        del tl[500_000:]
        tl.extend(np.ones(500_000))
    assert sys.getsizeof(tl) <= size * 1.07


def test_threads_append_under_the_gil():
    tl = TypedList(int)

    def work():
        for i in range(5000):
            tl.append(i)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(tl) == 20000 and sum(tl) == 4 * sum(range(5000))
