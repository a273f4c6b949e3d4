"""The call path's fast lanes (func.c: `double f(double, double)` and
`double f(double)` keeping the GIL) give the same result or the same
exception, with the same message, as the general path through the conversion
table (the same contract with release_gil=True, which no fast lane takes),
for every kind of argument a lane does not take itself."""
from __future__ import annotations

import ctypes as C

import pytest

from conftest import fixture_path
from edgert import ABIContract, ModuleLoader, ModuleUnloadedError


class F(float):
    pass


ODD = [1.5, -0.0, float("inf"), float("nan"), 2, True, -(2**53), 2**53 + 1, 10**400, F(2.5),
       "1.0", b"1", None, [1.0], 1j]


def _pair(lib: str, name: str, nargs: int):
    def load(release: bool):
        c = ABIContract(name, [C.c_double] * nargs, C.c_double, release_gil=release)
        return ModuleLoader().load(fixture_path(lib), c)
    fast, slow = load(False), load(True)
    return fast, fast.function(name), slow.function(name)


def _outcome(f, *args):
    try:
        r = f(*args)
    except Exception as e:  # the comparison is the point: type and message
        return type(e), str(e)
    return "ok", repr(r)


@pytest.mark.parametrize("lib,name,nargs", [("loader_kernels", "add", 2),
                                            ("guard_clean", "clean_kernel", 1)])
def test_lane_and_table_agree(lib, name, nargs):
    _, fast, slow = _pair(lib, name, nargs)
    np = pytest.importorskip("numpy")
    odd = ODD + [np.float64(1.25), np.float32(0.5), np.int64(3), np.bool_(True)]
    for a in odd:
        for b in (1.0, a):
            args = (a, b) if nargs == 2 else (a,)
            assert _outcome(fast, *args) == _outcome(slow, *args), args
    for count in (0, nargs - 1, nargs + 1):
        if count != nargs:
            args = (1.0,) * count
            assert _outcome(fast, *args) == _outcome(slow, *args), count


def test_lane_refuses_after_unload():
    loader, fast, _ = _pair("loader_kernels", "add", 2)
    assert fast(1.0, 2.0) == 3.0
    loader.unload()
    with pytest.raises(ModuleUnloadedError, match="cannot call 'add'"):
        fast(1.0, 2.0)
