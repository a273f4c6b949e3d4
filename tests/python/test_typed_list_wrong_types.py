"""Every way a wrong-typed element can reach a TypedList or TypedDict is
refused with TypeError (or OverflowError) and leaves it exactly as it was."""
import array

import numpy as np
import pytest

from edgert import TypedDict, TypedList

BAD = {
    int: ["1", 1.5, None, b"1", [1]],
    float: ["1.0", None, b"x", 1j],
    bool: [1, 0, None, "True"],
    str: [b"x", 1, None],
    bytes: ["x", bytearray(b"x"), 1, memoryview(b"x")],
}
GOOD = {int: [1, 2, 3], float: [1.0, 2.5, -3.0], bool: [True, False, True],
        str: ["a", "b", "c"], bytes: [b"a", b"b", b"c"]}


def list_ops(bad):
    return [
        ("append", lambda t: t.append(bad)),
        ("insert", lambda t: t.insert(1, bad)),
        ("setitem", lambda t: t.__setitem__(0, bad)),
        ("setitem negative", lambda t: t.__setitem__(-1, bad)),
        ("extend", lambda t: t.extend([t[0], bad])),
        ("iadd", lambda t: t.__iadd__([t[0], bad])),
        ("slice", lambda t: t.__setitem__(slice(0, 1), [t[0], bad])),
        ("extended slice", lambda t: t.__setitem__(slice(None, None, 2), [t[0], bad])),
    ]


@pytest.mark.parametrize("item_type", list(BAD))
def test_typed_list_refuses_and_keeps_its_contents(item_type):
    for bad in BAD[item_type]:
        for name, op in list_ops(bad):
            tl = TypedList(item_type, GOOD[item_type])
            with pytest.raises(TypeError):
                op(tl)
            assert tl == GOOD[item_type], (name, bad)
            assert len(tl) == 3


@pytest.mark.parametrize("kt,vt", [(int, float), (str, int), (bytes, bool), (float, str)])
def test_typed_dict_refuses_and_keeps_its_contents(kt, vt):
    data = dict(zip(GOOD[kt], GOOD[vt]))
    good_k, good_v = GOOD[kt][0], GOOD[vt][0]
    for bad_k in BAD[kt]:
        for op in (lambda d: d.__setitem__(bad_k, good_v),
                   lambda d: d.update({good_k: good_v, bad_k: good_v}) if _hashable(bad_k)
                   else d.update([(good_k, good_v), (bad_k, good_v)]),
                   lambda d: d.set_many([good_k, bad_k], [good_v, good_v]),
                   lambda d: d.setdefault(bad_k, good_v)):
            td = TypedDict(kt, vt, data)
            version = td.version
            with pytest.raises(TypeError):
                op(td)
            assert td == data and td.version == version
    for bad_v in BAD[vt]:
        for op in (lambda d: d.__setitem__(good_k, bad_v),
                   lambda d: d.__setitem__(GOOD[kt][1], bad_v),
                   lambda d: d.update([(good_k, good_v), (GOOD[kt][2], bad_v)]),
                   lambda d: d.set_many([good_k, GOOD[kt][1]], [good_v, bad_v])):
            td = TypedDict(kt, vt, data)
            version = td.version
            with pytest.raises(TypeError):
                op(td)
            assert td == data and td.version == version


def _hashable(x):
    try:
        hash(x)
        return True
    except TypeError:
        return False


def test_buffers_of_the_wrong_format_are_refused():
    tl = TypedList(float, [1.0])
    with pytest.raises(TypeError):
        tl.extend(np.array(["a"]))
    with pytest.raises(TypeError):
        TypedList(int).extend(array.array("d", [1.5]))
    td = TypedDict(int, float, {1: 1.0})
    with pytest.raises(TypeError, match="format"):
        td.set_many(np.array([1.5]), np.array([1.0]))
    with pytest.raises(TypeError, match="format"):
        td.set_many(np.array([2]), np.array(["x"]))
    with pytest.raises(OverflowError):
        td.set_many(np.array([2**64 - 1], dtype=np.uint64), np.array([1.0]))
    with pytest.raises(ValueError, match="one-dimensional"):
        td.get_many(np.zeros((2, 2), dtype=np.int64))
    assert tl == [1.0] and td == {1: 1.0}
