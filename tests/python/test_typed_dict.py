"""TypedDict: MutableMapping behaviour, typing rules, views, buffers, batches."""
import collections.abc
import copy
import gc
import pickle
import sys
import threading

import numpy as np
import pytest

import edgert
from edgert import TypedDict, TypedList
from conftest import rss_kib


def test_is_a_mutable_mapping_with_dict_semantics():
    td = TypedDict(int, float)
    assert isinstance(td, collections.abc.MutableMapping)
    td[1] = 1.5
    td[2] = 2
    assert td[2] == 2.0 and type(td[2]) is float
    assert len(td) == 2 and 1 in td and 3 not in td
    assert td.get(3) is None and td.get(3, -1.0) == -1.0
    assert td.setdefault(1, 9.0) == 1.5
    assert td.setdefault(5, 9.0) == 9.0
    assert td.pop(5) == 9.0 and td.pop(5, "gone") == "gone"
    with pytest.raises(KeyError) as ei:
        td.pop(5)
    assert ei.value.args == (5,)
    with pytest.raises(KeyError):
        td[77]
    del td[2]
    with pytest.raises(KeyError):
        del td[2]
    assert td == {1: 1.5}
    assert td != {1: 1.0}
    assert {1: 1.5} == td
    assert td.popitem() == (1, 1.5)
    with pytest.raises(KeyError, match="empty"):
        td.popitem()
    td.update({1: 1.0}, **{})
    td.update([(2, 2.0)])
    td.clear()
    assert len(td) == 0 and td == {}
    with pytest.raises(TypeError):
        hash(td)


def test_union_operators_and_reversed_follow_dict():
    td = TypedDict(int, float, {1: 1.0, 2: 2.0, 3: 3.0})
    merged = td | {3: 30.0, 4: 4.0}
    assert isinstance(merged, TypedDict) and merged == {1: 1.0, 2: 2.0, 3: 30.0, 4: 4.0}
    assert td == {1: 1.0, 2: 2.0, 3: 3.0}
    assert td | TypedDict(int, float, {5: 5.0}) == {1: 1.0, 2: 2.0, 3: 3.0, 5: 5.0}
    with pytest.raises(TypeError):
        td | [(9, 9.0)]  # as dict: | takes mappings only
    with pytest.raises(TypeError, match="TypedDict value must be float, not str"):
        td | {9: "x"}
    td |= [(9, 9.0)]
    assert td[9] == 9.0
    with pytest.raises(TypeError):
        td |= {10: 1.0, 11: "x"}
    assert 10 not in td
    assert list(reversed(td)) == list(td)[::-1]
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        for k in reversed(td):
            del td[k]


def test_every_builtin_type_round_trips():
    td = TypedDict(str, bytes, {"a": b"\x00x", "": b""})
    assert td["a"] == b"\x00x" and td[""] == b""
    assert TypedDict(bool, bool, {True: False})[True] is False
    fd = TypedDict(float, int, {0.0: 1, 1.5: -(2**63)})
    assert fd[-0.0] == 1 and fd[1.5] == -(2**63)
    nan = float("nan")
    fd[nan] = 3
    assert nan not in fd  # a NaN matches nothing, as C doubles compare
    assert TypedDict("int64", "float64", {1: 2.0})[1] == 2.0
    ud = TypedDict(str, str, {"ключ": "значение", "emoji": "\U0001f600"})
    assert ud["ключ"] == "значение" and ud["emoji"] == "\U0001f600"
    assert TypedDict(int, float).key_type is int
    assert TypedDict(int, float).value_type is float


def test_str_and_bytes_keys_agree_across_every_path():
    # Keys inserted one way must be found every other way: single sets use
    # the str's own hash, update/set_many hash the stored UTF-8 in C.
    keys = ["plain", "", "ключ", "日本語", "\U0001f600x", "a" * 100, "caf\u00e9"]
    one = TypedDict(str, int)
    for i, k in enumerate(keys):
        one[k] = i
    batch = TypedDict(str, int)
    batch.update({k: i for i, k in enumerate(keys)})
    many = TypedDict(str, int)
    many.set_many(keys, list(range(len(keys))))
    for td in (one, batch, many):
        assert [td[k] for k in keys] == list(range(len(keys)))
        assert all(k in td for k in keys) and "nope" not in td
        assert td == dict(zip(keys, range(len(keys))))

    class S(str):
        def __hash__(self):
            return 1

    assert one[S("ключ")] == 2  # a str subclass is looked up by its text
    bk = [b"", b"\x00\xff", b"bytes" * 20]
    b1 = TypedDict(bytes, int, {k: i for i, k in enumerate(bk)})
    b2 = TypedDict(bytes, int)
    for i, k in enumerate(bk):
        b2[k] = i
    assert b1 == b2 and [b1[k] for k in bk] == [0, 1, 2]
    del b1[b"\x00\xff"]
    assert b"\x00\xff" not in b1 and len(b1) == 2


def test_wrong_types_raise_type_error_and_change_nothing():
    td = TypedDict(int, float, {1: 1.0})
    before, version = dict(td), td.version
    with pytest.raises(TypeError, match="TypedDict key must be int, not str"):
        td["x"] = 1.0
    with pytest.raises(TypeError, match="TypedDict value must be float, not str"):
        td[2] = "x"
    with pytest.raises(TypeError, match="TypedDict key must be int, not float"):
        td[1.0] = 1.0
    with pytest.raises(TypeError):
        td["x"]
    with pytest.raises(TypeError):
        "x" in td
    with pytest.raises(TypeError):
        td.get("x")
    with pytest.raises(TypeError, match="value must be float, not NoneType"):
        td.setdefault(9)
    with pytest.raises(TypeError):
        td.update({2: 2.0, 3: "three"})  # all or nothing
    with pytest.raises(TypeError):
        td.update([(4, 4.0), ("five", 5.0)])
    with pytest.raises(ValueError, match="element #1 has length 3"):
        td.update([(4, 4.0), (5, 5.0, 5)])
    with pytest.raises(TypeError, match="element #0 to a sequence"):
        td.update([7])
    with pytest.raises(TypeError):
        TypedDict(str, bool)["k"] = 1
    assert td == before and td.version == version


def test_int_out_of_int64_range():
    td = TypedDict(int, int)
    with pytest.raises(OverflowError, match="does not fit in int64"):
        td[2**63] = 1
    with pytest.raises(OverflowError, match="does not fit in int64"):
        td[1] = -(2**63) - 1
    td[2**63 - 1] = -(2**63)
    assert td[2**63 - 1] == -(2**63)
    assert 2**64 not in td  # absent, not an error: it cannot be a key
    assert td.get(2**70, "no") == "no"
    with pytest.raises(KeyError):
        td[2**64]
    with pytest.raises(KeyError):
        del td[2**64]
    assert len(td) == 1


def test_unknown_types_are_refused_by_name():
    with pytest.raises(ValueError, match="unknown element type 'NoSuchType'"):
        TypedDict(int, "NoSuchType")
    with pytest.raises(TypeError, match="unsupported element type list"):
        TypedDict(list, int)
    with pytest.raises(TypeError, match="must be a type or a type name, not int"):
        TypedDict(3, int)


def test_version_tag_moves_on_insert_delete_and_resize_only():
    td = TypedDict(int, float)
    v0 = td.version
    td[1] = 1.0
    v1 = td.version
    assert v1 != v0
    td[1] = 2.0
    assert td.version == v1
    del td[1]
    assert td.version != v1
    v2 = td.version
    td.reserve(1000)
    assert td.version != v2


def test_mutation_during_iteration_raises_runtime_error():
    td = TypedDict(int, int, {i: i for i in range(10)})
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        for k in td:
            td[k + 100] = 0
    td = TypedDict(int, int, {i: i for i in range(10)})
    with pytest.raises(RuntimeError):
        for k, v in td.items():
            del td[k]
    td = TypedDict(int, int, {i: i for i in range(10)})
    for k in td:  # replacing values is allowed, as for dict
        td[k] = -k
    assert sorted(td.values()) == [-i for i in range(9, -1, -1)]


def test_views_are_set_like_and_live():
    td = TypedDict(str, int, {"a": 1, "b": 2})
    keys, items, values = td.keys(), td.items(), td.values()
    assert isinstance(keys, collections.abc.KeysView)
    assert isinstance(values, collections.abc.ValuesView)
    assert keys & {"a", "z"} == {"a"}
    assert keys & {1, "a"} == {"a"} and 1 not in keys  # as dict views: no TypeError
    assert keys | {1} == {"a", "b", 1}
    assert ("a", 1) in items and ("a", 2) not in items and "a" not in items
    td["c"] = 3
    assert len(keys) == 3 and set(keys) == {"a", "b", "c"}
    assert sorted(values) == [1, 2, 3] and 3 in values
    assert dict(items) == {"a": 1, "b": 2, "c": 3}
    assert values.mapping is td
    assert "TypedDict.values" in repr(values)


def test_repr_names_the_types():
    assert repr(TypedDict(int, float, {1: 2.0})) == "TypedDict(int, float, {1: 2.0})"
    assert repr(TypedDict(str, bytes)) == "TypedDict(str, bytes, {})"


@pytest.mark.parametrize("kt,vt,data", [
    (int, float, {i: i / 3 for i in range(100)}),
    (str, bytes, {"a": b"1", "": b"\x00"}),
    (float, bool, {0.5: True, -1.0: False}),
    (bytes, str, {b"k": "v"}),
    (str, object, {"a": [1, 2], "b": None}),
])
def test_pickle_and_copy_round_trip(kt, vt, data):
    td = TypedDict(kt, vt, data)
    for proto in range(2, pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(td, proto))
        assert isinstance(back, TypedDict) and back == data
        assert back.key_type == td.key_type and back.value_type == td.value_type
    c = copy.copy(td)
    assert c == td and c is not td
    d = copy.deepcopy(td)
    assert d == td
    if vt is not object:
        c[next(iter(data))] = next(iter(data.values()))
    assert td == data


def test_copy_is_independent():
    td = TypedDict(int, float, {1: 1.0})
    c = td.copy()
    c[2] = 2.0
    del c[1]
    assert td == {1: 1.0} and c == {2: 2.0}


def test_values_view_exports_the_values_array():
    td = TypedDict(int, float, {i: float(i) for i in range(5)})
    m = memoryview(td.values())
    assert m.format == "d" and m.shape == (5,) and not m.readonly
    a = np.asarray(td.values())
    assert a.dtype == np.float64 and a.tolist() == list(td.values())
    a[0] = 42.0  # zero-copy: writes show through
    assert td[0] == 42.0
    with pytest.raises(BufferError, match="exported"):
        td[99] = 1.0
    with pytest.raises(BufferError):
        del td[1]
    td[1] = -1.0  # replacing a value does not move the array
    assert len(td) == 5
    del a, m
    gc.collect()
    td[99] = 1.0
    del td[99]
    assert memoryview(TypedDict(int, int, {1: 2}).values()).format == "q"
    assert memoryview(TypedDict(int, bool, {1: True}).values()).format == "?"
    assert memoryview(TypedDict(int, float).values()).shape == (0,)
    with pytest.raises(BufferError, match="not fixed-size"):
        memoryview(TypedDict(int, str).values())


def test_get_many_over_buffers():
    td = TypedDict(int, float, {i: i * 0.5 for i in range(100)})
    keys = np.arange(0, 100, 7, dtype=np.int64)
    out = td.get_many(keys)
    assert isinstance(out, TypedList) and list(out) == [k * 0.5 for k in keys.tolist()]
    buf = np.empty(len(keys))
    assert td.get_many(keys, out=buf) is buf
    assert buf.tolist() == list(out)
    assert list(td.get_many(np.array([1, 2], dtype=np.int32))) == [0.5, 1.0]
    assert list(td.get_many(np.array([1, 2], dtype=np.uint8))) == [0.5, 1.0]
    assert list(td.get_many([3, 4])) == [1.5, 2.0]
    assert list(td.get_many(TypedList(int, [5]))) == [2.5]
    with pytest.raises(KeyError) as ei:
        td.get_many(np.array([1, 500, 600]))
    assert ei.value.args == (500,)
    assert list(td.get_many(np.array([1, 500]), default=-1.0)) == [0.5, -1.0]
    with pytest.raises(TypeError, match="format 'd', expected 'q'"):
        td.get_many(np.array([1.0]))
    with pytest.raises(ValueError, match="out holds 8 bytes, 2 keys need 16"):
        td.get_many(np.array([1, 2]), out=np.empty(1))
    with pytest.raises(TypeError, match="out has format 'f'"):
        td.get_many(np.array([1, 2]), out=np.empty(2, dtype=np.float32))
    with pytest.raises(OverflowError):
        td.get_many(np.array([2**63], dtype=np.uint64))
    with pytest.raises(TypeError, match="default must be float"):
        td.get_many(np.array([1]), default="x")


def test_set_many_is_all_or_nothing():
    td = TypedDict(int, float)
    td.set_many(np.arange(10), np.linspace(0, 1, 10))
    assert len(td) == 10 and td[9] == 1.0
    td.set_many([1, 2], [10.0, 20.0])
    assert td[2] == 20.0
    before = dict(td)
    with pytest.raises(ValueError, match="3 keys but 2 values"):
        td.set_many([100, 101, 102], [1.0, 2.0])
    with pytest.raises(TypeError):
        td.set_many([100, 101], [1.0, "x"])
    assert td == before
    sd = TypedDict(str, int)
    sd.set_many(["a", "b"], np.array([1, 2]))
    assert sd == {"a": 1, "b": 2}


def test_cache_stats_and_modes():
    td = TypedDict(str, int, {f"k{i}": i for i in range(1000)}, cache="on")
    for _ in range(100):
        assert td["k1"] == 1 and td["k2"] == 2
    st = td.cache_stats()
    assert st["mode"] == "on" and st["active"] is True
    assert st["hits"] >= 196 and st["misses"] <= 4
    td.set_cache("off")
    td["k1"]
    assert td.cache_stats() == {"hits": 0, "misses": 0, "bypassed": 0, "mode": "off",
                                "active": False}
    with pytest.raises(ValueError, match="cache must be 'auto', 'on' or 'off'"):
        td.set_cache("sometimes")
    with pytest.raises(ValueError):
        TypedDict(int, int, cache="maybe")
    assert TypedDict(int, int).cache_stats()["mode"] == "auto"


def test_generic_object_side_still_checks_the_typed_side():
    td = TypedDict(str, object)
    assert isinstance(td, TypedDict)
    td["a"] = [1]
    td["b"] = None
    with pytest.raises(TypeError, match="TypedDict key must be str, not int"):
        td[1] = "x"
    assert td == {"a": [1], "b": None}
    assert repr(td) == "TypedDict(str, object, {'a': [1], 'b': None})"
    v = td.version
    td["a"] = [2]
    assert td.version == v
    td["c"] = 1
    del td["c"]
    assert td.version == v + 2
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        for k in td:
            td[k + "!"] = 0
    assert td | {"z": 1} == {**dict(td.items()), "z": 1}
    assert list(reversed(td)) == list(td)[::-1]
    od = TypedDict(object, int, {(1, 2): 3})
    assert od[(1, 2)] == 3
    with pytest.raises(TypeError):
        od["x"] = "y"
    with pytest.raises(TypeError):
        od.update({"ok": 1, "bad": "no"})
    assert od == {(1, 2): 3}


def test_memory_is_compact_and_does_not_grow_with_reuse():
    td = TypedDict(int, float)
    for i in range(100_000):
        td[i * 7919] = float(i)
    per_entry = sys.getsizeof(td) / len(td)
    assert per_entry <= 32
    size = sys.getsizeof(td)
    for _ in range(20):  # delete and refill: the same storage is reused
        for i in range(0, 100_000, 2):
            del td[i * 7919]
        for i in range(0, 100_000, 2):
            td[i * 7919] = 1.0
    assert sys.getsizeof(td) <= size * 1.5


def test_repeated_use_does_not_leak():
    def cycle():
        td = TypedDict(str, bytes, {f"key{i}": b"v" * (i % 50) for i in range(2000)})
        c = td.copy()
        c.update({"extra": b"x"})
        back = pickle.loads(pickle.dumps(c))
        for k in list(back)[:500]:
            del back[k]
        back.popitem()
        assert len(back) == 1500
        td.clear()
        lst = TypedList(str, (f"s{i}" for i in range(2000)))
        lst[::2] = ["x"] * 1000
        del lst[::3]

    for _ in range(20):  # warm up allocator pools
        cycle()
    gc.collect()
    before = rss_kib()
    for _ in range(300):
        cycle()
    gc.collect()
    assert rss_kib() - before < 4096  # KiB: 300 cycles of ~200 KiB each leaked nothing


def test_threads_share_a_dict_under_the_gil():
    td = TypedDict(int, int)

    def work(base):
        for i in range(2000):
            td[base + i] = i
            assert td[base + i] == i
        for i in range(0, 2000, 2):
            del td[base + i]

    threads = [threading.Thread(target=work, args=(t * 10_000,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(td) == 4 * 1000
    assert all(td[t * 10_000 + 1] == 1 for t in range(4))
