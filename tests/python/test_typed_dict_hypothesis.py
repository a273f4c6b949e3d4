"""TypedDict against dict: random operation sequences (hypothesis stateful)."""
import pickle

import hypothesis.strategies as st
import numpy as np
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from edgert import TypedDict

INT_KEYS = st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.integers(-50, 50)
FLOATS = st.floats(allow_nan=False)


class DictMachine(RuleBasedStateMachine):
    """int -> float and str -> bytes dicts driven in lockstep with dicts."""

    def __init__(self):
        super().__init__()
        self.td = TypedDict(int, float)
        self.d = {}
        self.ts = TypedDict(str, bytes)
        self.s = {}

    @rule(k=INT_KEYS, v=FLOATS)
    def set_int(self, k, v):
        self.td[k] = v
        self.d[k] = v

    @rule(k=INT_KEYS)
    def delete_int(self, k):
        if k in self.d:
            del self.td[k]
            del self.d[k]
        else:
            try:
                del self.td[k]
                raise AssertionError("deleted an absent key")
            except KeyError:
                pass

    @rule(k=INT_KEYS, default=FLOATS)
    def pop_int(self, k, default):
        assert self.td.pop(k, default) == self.d.pop(k, default)

    @rule(k=INT_KEYS)
    def get_int(self, k):
        assert self.td.get(k) == self.d.get(k)
        assert (k in self.td) == (k in self.d)

    @rule(items=st.dictionaries(st.integers(-100, 100), FLOATS, max_size=20))
    def update_int(self, items):
        self.td.update(items)
        self.d.update(items)

    @rule(items=st.lists(st.tuples(st.integers(-100, 100), FLOATS | st.text(max_size=1)),
                         max_size=10))
    def update_maybe_wrong(self, items):
        ok = all(isinstance(v, float) for _, v in items)
        try:
            self.td.update(items)
            assert ok
            self.d.update(items)
        except TypeError:
            assert not ok  # and nothing changed: checked by the invariant

    @rule()
    def popitem_int(self):
        if not self.d:
            return
        k, v = self.td.popitem()
        assert self.d.pop(k) == v

    @rule(n=st.integers(0, 300))
    def bulk(self, n):
        # enough inserts to force resizes, then deletes of half of them
        for i in range(n):
            self.td[1000 + i] = float(i)
            self.d[1000 + i] = float(i)
        for i in range(0, n, 2):
            del self.td[1000 + i]
            del self.d[1000 + i]

    @rule()
    def clear_sometimes(self):
        if len(self.d) > 500:
            self.td.clear()
            self.d.clear()

    @rule(k=st.text(max_size=8), v=st.binary(max_size=8))
    def set_str(self, k, v):
        self.ts[k] = v
        self.s[k] = v

    @rule(k=st.text(max_size=8))
    def del_str(self, k):
        assert self.ts.pop(k, None) == self.s.pop(k, None)

    @rule(ks=st.lists(st.integers(-100, 100), max_size=20), default=FLOATS)
    def get_many(self, ks, default):
        got = self.td.get_many(np.array(ks, dtype=np.int64), default=default)
        assert list(got) == [self.d.get(k, default) for k in ks]
        missing = [k for k in ks if k not in self.d]
        if missing:
            try:
                self.td.get_many(ks)
                raise AssertionError("a missing key went unnoticed")
            except KeyError as e:
                assert e.args == (missing[0],)

    @rule(items=st.lists(st.tuples(st.integers(-100, 100), FLOATS), max_size=20))
    def set_many(self, items):
        ks = np.array([k for k, _ in items], dtype=np.int64)
        vs = np.array([v for _, v in items], dtype=np.float64)
        self.td.set_many(ks, vs)
        self.d.update(items)

    @rule()
    def copy_and_pickle(self):
        assert self.td.copy() == self.d
        assert pickle.loads(pickle.dumps(self.ts)) == self.s

    @invariant()
    def same_contents(self):
        assert len(self.td) == len(self.d)
        assert dict(self.td.items()) == self.d
        assert sorted(self.td.keys()) == sorted(self.d.keys())
        assert sorted(self.td.values()) == sorted(self.d.values())
        assert self.td == self.d
        assert self.ts == self.s


TestDictMachine = DictMachine.TestCase
TestDictMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
