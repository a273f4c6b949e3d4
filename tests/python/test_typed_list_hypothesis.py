"""TypedList against list: random operation sequences (hypothesis stateful)."""
import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from edgert import TypedList

FLOATS = st.floats(allow_nan=False)
INDEX = st.integers(-30, 30)
SLICES = st.builds(slice, st.none() | INDEX, st.none() | INDEX,
                   st.none() | st.integers(-4, 4).filter(lambda s: s != 0))


class ListMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.tl = TypedList(float)
        self.l = []
        self.ts = TypedList(str)
        self.s = []

    @rule(v=FLOATS)
    def append(self, v):
        self.tl.append(v)
        self.l.append(v)

    @rule(vs=st.lists(FLOATS, max_size=40))
    def extend(self, vs):
        self.tl.extend(vs)
        self.l.extend(vs)

    @rule(i=INDEX, v=FLOATS)
    def insert(self, i, v):
        self.tl.insert(i, v)
        self.l.insert(i, v)

    @rule(i=INDEX)
    def pop(self, i):
        if -len(self.l) <= i < len(self.l):
            assert self.tl.pop(i) == self.l.pop(i)

    @rule(i=INDEX, v=FLOATS)
    def setitem(self, i, v):
        if -len(self.l) <= i < len(self.l):
            self.tl[i] = v
            self.l[i] = v

    @rule(s=SLICES)
    def getslice(self, s):
        assert self.tl[s] == self.l[s]

    @rule(s=SLICES, vs=st.lists(FLOATS, max_size=10))
    def setslice(self, s, vs):
        try:
            self.l[s] = vs
        except ValueError:
            try:
                self.tl[s] = vs
                raise AssertionError("extended slice size mismatch accepted")
            except ValueError:
                return
        self.tl[s] = vs

    @rule(s=SLICES, bad=st.lists(FLOATS, max_size=3))
    def setslice_wrong_type(self, s, bad):
        try:
            self.tl[s] = bad + ["x"]
            raise AssertionError("a str went into a float list")
        except (TypeError, ValueError):
            pass

    @rule(s=SLICES)
    def delslice(self, s):
        del self.tl[s]
        del self.l[s]

    @rule(reverse=st.booleans())
    def sort(self, reverse):
        self.tl.sort(reverse=reverse)
        self.l.sort(reverse=reverse)

    @rule()
    def reverse(self):
        self.tl.reverse()
        self.l.reverse()

    @rule(v=FLOATS)
    def count_index(self, v):
        assert self.tl.count(v) == self.l.count(v)
        assert (v in self.tl) == (v in self.l)
        if v in self.l:
            assert self.tl.index(v) == self.l.index(v)

    @rule(vs=st.lists(st.text(max_size=4), max_size=5), s=SLICES)
    def strs(self, vs, s):
        self.ts.extend(vs)
        self.s.extend(vs)
        del self.ts[s]
        del self.s[s]

    @invariant()
    def same(self):
        assert len(self.tl) == len(self.l)
        assert list(self.tl) == self.l
        assert self.tl == self.l
        assert self.ts == self.s


TestListMachine = ListMachine.TestCase
TestListMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
