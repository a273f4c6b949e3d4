"""Argument conversion of strings and long double (issue 10, "Strings").

c_char_p: the kernel gets a private NUL-terminated copy, so writing through
its char * never changes a bytes object (b"a" is one object process-wide);
an embedded NUL is refused as for c_wchar_p; the copies are freed on every
path. c_longdouble: every int a long double holds exactly is taken, the
others refused, and a result beyond the largest float is not turned into inf.
"""
from __future__ import annotations

import ctypes
import gc
import json
import os
import re
import subprocess
import sys
import sysconfig
import textwrap
import tracemalloc
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import fixture_path
from edgert import ABIContract, ExplicitFallback, ModuleLoader, Nexus, _edgert

C = ctypes
P = C.POINTER


def _contracts(release_gil: bool) -> list:
    def c(name, args, ret):
        return ABIContract(name, args, ret, release_gil=release_gil)
    return [
        c("scribble", [C.c_char_p], C.c_size_t),
        c("scribble3", [C.c_char_p] * 3, C.c_size_t),
        c("scribble_mix", [C.c_char_p, C.c_wchar_p, C.c_char_p], C.c_int64),
        c("last_seen", [], C.c_char_p),
        c("last_seen_w", [], C.c_wchar_p),
        c("ldbl_mant_dig", [], C.c_int),
        c("ldbl_max_exp", [], C.c_int),
        c("ld_hex", [C.c_longdouble, P(C.c_char), C.c_size_t], C.c_int),
        c("ld_scale", [C.c_longdouble, C.c_int], C.c_longdouble),
    ]


@pytest.fixture(scope="module", params=[True, False], ids=["gil-released", "gil-held"])
def k(request) -> ModuleLoader:
    loader = ModuleLoader().load(fixture_path("conv_kernels"), _contracts(request.param))
    yield loader
    loader.unload()


@pytest.fixture(scope="module")
def kk() -> ModuleLoader:
    loader = ModuleLoader().load(fixture_path("conv_kernels"), _contracts(True))
    yield loader
    loader.unload()


def run_child(code: str, timeout: float = 120) -> dict:
    """Runs `code` in a child interpreter (CONV = the fixture's path) and
    returns the JSON object it prints last."""
    env = dict(os.environ, CONV=fixture_path("conv_kernels"))
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"child failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---- c_char_p: a private copy -----------------------------------------------------------------

def test_kernel_writes_do_not_change_interned_bytes() -> None:
    """The issue's case, in a child (a failure here would damage b"a" for every
    later test): a kernel that writes into its char * changed b"a" for the
    whole process."""
    got = run_child("""
        import ctypes as C, json, os
        from edgert import ABIContract, ModuleLoader
        out = {}
        for rg in (True, False):
            k = ModuleLoader().load(os.environ["CONV"], [
                ABIContract("scribble", [C.c_char_p], C.c_size_t, release_gil=rg),
                ABIContract("last_seen", [], C.c_char_p, release_gil=rg)])
            a = b"a"
            n = k.call("scribble", a)
            out[str(rg)] = {
                "returned": n, "seen": k.call("last_seen").decode(),
                "a": list(a), "literal": list(b"a"), "cached": bytes([97])[0],
                "decoded": b"a".decode(), "same": a is bytes([97]),
                "empty": k.call("scribble", b""), "seen_empty": k.call("last_seen").decode(),
            }
        print(json.dumps(out))
    """)
    for rg in ("True", "False"):
        r = got[rg]
        assert r["same"], "b'a' should be CPython's one cached object (the point of the test)"
        assert r["returned"] == 1 and r["seen"] == "a"   # the kernel saw the right contents
        assert r["a"] == [97] and r["literal"] == [97] and r["cached"] == 97
        assert r["decoded"] == "a"
        assert r["empty"] == 0 and r["seen_empty"] == ""


@pytest.mark.parametrize("size", [2, 7, 255, 256, 300, 100_000])
def test_kernel_writes_do_not_reach_any_bytes_object(k, size) -> None:
    """Sizes on both sides of the call frame's small area (256 bytes)."""
    data = bytes((97 + i % 26) for i in range(size))  # a fresh object
    want = list(data)
    assert k.call("scribble", data) == size
    assert list(data) == want
    assert k.call("last_seen") == bytes(want)

    class Sub(bytes):
        pass
    sub = Sub(bytes(want))
    assert k.call("scribble", sub) == size
    assert list(sub) == want


def test_several_strings_in_one_call(k) -> None:
    """Copies packed in the frame's small area, and spilling to the heap,
    in one call: each keeps its own contents."""
    for sizes in [(1, 2, 3), (100, 100, 100), (250, 1, 300), (0, 256, 0), (5000, 4, 5000)]:
        objs = [bytes([98 + j]) * n for j, n in enumerate(sizes)]
        wants = [list(o) for o in objs]
        assert k.call("scribble3", *objs) == sum(sizes)
        assert k.call("last_seen") == b"|".join(bytes(w) for w in wants)
        assert [list(o) for o in objs] == wants


def test_narrow_and_wide_copies_share_the_frame(k) -> None:
    """c_char_p and c_wchar_p copies in one call: a wide copy after an odd
    number of narrow bytes is aligned for wchar_t; the str is unchanged."""
    for a, w, c in [(b"x", "h\u00e9llo", b"yz"), (b"abc", "w" * 70, b"q" * 3),
                    (b"", "", b""), (b"o" * 255, "\U0001f600" * 2, b"p")]:
        a, c = bytes(bytearray(a)), bytes(bytearray(c))  # fresh objects
        want_a, want_c, want_w = list(a), list(c), "".join(list(w))
        assert k.call("scribble_mix", a, w, c) == len(a) + len(w) + len(c)
        assert k.call("last_seen") == bytes(want_a) + b"|" + bytes(want_c)
        assert k.call("last_seen_w") == want_w
        assert (list(a), w, list(c)) == (want_a, want_w, want_c)


def test_c_char_p_accepts_bytes_and_none_only(k) -> None:
    assert k.call("scribble", None) == 2**64 - 1  # NULL reached the kernel
    for bad in ["str", bytearray(b"x"), memoryview(b"x"), 1, (C.c_char * 2)()]:
        with pytest.raises(TypeError, match=r"scribble\(\) argument 1 must be bytes or None"):
            k.call("scribble", bad)


def test_copies_are_freed_on_every_path(k) -> None:
    """tracemalloc sees every PyMem allocation: 25,000 calls with heap-sized
    narrow and wide copies, taken and then refused (a NUL in a later
    argument, after earlier ones were copied), keep nothing."""
    big, wide = b"x" * 1000, "w" * 1000
    refused_mix = (big, wide, b"bad\0")
    refused3 = (big, big, b"\0")

    def burst(n: int) -> None:
        for _ in range(n):
            k.call("scribble3", big, big, big)
            k.call("scribble_mix", big, wide, big)
            for args, f in ((refused_mix, "scribble_mix"), (refused3, "scribble3")):
                try:
                    k.call(f, *args)
                except ValueError:
                    pass
                else:
                    raise AssertionError("a NUL was not refused")
            assert _edgert._bound_try_call(k.function("scribble3"), *refused3) == (True, None)

    burst(200)  # warm-up: caches, free lists
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        burst(5000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes kept after 25,000 calls"


def test_copies_freed_after_fallback_and_nexus(kk) -> None:
    """A compiled side that writes into its string: the reference (and the
    caller) still see the original bytes, under run_with_guard and a Nexus."""
    scribble = kk.function("scribble")
    data = bytes(range(97, 97 + 20)) * 20  # 400 bytes: a heap copy
    want = list(data)
    got = []

    def reference(s: bytes) -> int:
        got.append(list(s))
        return len(s)

    assert ExplicitFallback.fallback_to_python(scribble, reference, data) == len(data)
    assert ExplicitFallback.run_with_guard(scribble, reference, data) == len(data)
    nx = Nexus()
    h = nx.register("scribble", scribble, reference, validate_every=1)
    assert h(data) == len(data)
    assert h(b"no\0pe") == 5  # refused by the compiled side's contract: a guard miss
    assert h.stats()["guard_misses"] == 1 and h.stats()["mismatches"] == 0
    assert list(data) == want
    assert all(g == want for g in got[:-1]) and got[-1] == list(b"no\0pe")


def test_copies_survive_a_contained_crash() -> None:
    """A kernel that writes into its string and then faults: contained, the
    bytes unchanged, the copies freed (tracemalloc, 200 crashes)."""
    got = run_child("""
        import ctypes as C, gc, json, os, tracemalloc
        from edgert import ABIContract, KernelCrash, ModuleLoader
        def once(data):
            k = ModuleLoader().load(os.environ["CONV"],
                                    ABIContract("scribble_crash", [C.c_char_p], C.c_int))
            try:
                k.call("scribble_crash", data)
            except KernelCrash:
                return True
            finally:
                k.unload()
            return False
        big = bytes(range(97, 123)) * 40
        crashed = [once(b"a"), once(big)]
        for _ in range(20):
            once(big)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            crashed.append(once(big))
        gc.collect()  # cycles a load leaves (contracts, loader) are not leaks
        grown = tracemalloc.get_traced_memory()[0] - before
        print(json.dumps({"crashed": all(crashed), "a": bytes([97])[0], "big": big[0],
                          "big_ok": big == bytes(range(97, 123)) * 40, "grown": grown}))
    """)
    assert got["crashed"]
    assert got["a"] == 97 and got["big"] == 97 and got["big_ok"]
    assert got["grown"] < 64 * 1024, got


@pytest.mark.skipif(bool(os.environ.get("EDGERT_SANITIZED")),
                    reason="ASan reserves terabytes of address space: RLIMIT_AS cannot be set")
@pytest.mark.skipif(bool(os.environ.get("EDGERT_TEST_EMULATOR")),
                    reason="qemu-user does not hold the emulated process to RLIMIT_AS")
@pytest.mark.skipif(bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
                    reason="free-threaded CPython allocates through mimalloc, whose arenas are "
                           "reserved before the limit is set: RLIMIT_AS does not fail the copy")
def test_copy_that_cannot_be_allocated_is_memory_error() -> None:
    """A bytes object too big to copy under an address-space limit: MemoryError,
    the kernel not called; a small one still goes through afterwards."""
    got = run_child("""
        import ctypes as C, json, os, resource
        from edgert import ABIContract, ModuleLoader
        k = ModuleLoader().load(os.environ["CONV"], [
            ABIContract("scribble", [C.c_char_p], C.c_size_t),
            ABIContract("last_seen", [], C.c_char_p)])
        k.call("scribble", b"before")
        big = b"m" * (256 << 20)
        with open("/proc/self/statm") as f:
            vm = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (vm + (64 << 20), resource.RLIM_INFINITY))
        try:
            k.call("scribble", big)
            err = None
        except MemoryError as e:
            err = type(e).__name__
        print(json.dumps({"err": err, "seen": k.call("last_seen").decode(),
                          "small": k.call("scribble", b"after")}))
    """)
    assert got == {"err": "MemoryError", "seen": "before", "small": 5}


# ---- embedded NUL -----------------------------------------------------------------------------

@pytest.mark.parametrize("data,at", [(b"\0", 0), (b"ab\0c", 2), (b"abc\0", 3),
                                     (b"x" * 300 + b"\0", 300)])
def test_embedded_nul_is_refused_naming_argument_and_offset(k, data, at) -> None:
    k.call("scribble", b"untouched")
    with pytest.raises(ValueError, match=rf"^scribble\(\) argument 1 \(c_char_p\) has an embedded "
                                         rf"NUL at offset {at}; a C string would end there$"):
        k.call("scribble", data)
    with pytest.raises(ValueError, match=rf"scribble3\(\) argument 3 \(c_char_p\) .* offset {at};"):
        k.call("scribble3", b"a", b"b", data)
    assert k.call("last_seen") == b"untouched"  # the kernel never ran
    assert _edgert._bound_try_call(k.function("scribble"), data) == (True, None)


def test_embedded_nul_message_is_the_same_for_c_wchar_p(k) -> None:
    with pytest.raises(ValueError, match=r"^scribble_mix\(\) argument 2 \(c_wchar_p\) has an "
                                         r"embedded NUL at offset 3; a C string would end there$"):
        k.call("scribble_mix", b"a", "h\u00e9l\0lo", b"c")


# ---- c_longdouble -----------------------------------------------------------------------------

HEX = re.compile(r"^(-?)0x([0-9a-f]+)(?:\.([0-9a-f]*))?p([+-]\d+)$")


def ld_value(k, x) -> Fraction:
    """The exact value the kernel received for x, read back through "%La"."""
    buf = bytearray(64)
    n = k.call("ld_hex", x, buf, len(buf))
    m = HEX.match(buf[:n].decode())
    assert m, buf[:n]
    sign, ip, fp, e = m.group(1), m.group(2), m.group(3) or "", int(m.group(4))
    v = Fraction(int(ip + fp, 16)) * Fraction(2) ** (e - 4 * len(fp))
    return -v if sign else v


def holds_exactly(n: int, mant: int, max_exp: int) -> bool:
    a = abs(n)
    if a == 0:
        return True
    significant = a.bit_length() - ((a & -a).bit_length() - 1)
    return significant <= mant and a.bit_length() <= max_exp


@pytest.fixture(scope="module")
def ldbl(kk) -> tuple:
    return kk.call("ldbl_mant_dig"), kk.call("ldbl_max_exp")


def test_long_double_takes_every_int_it_holds_exactly(k, ldbl) -> None:
    mant, max_exp = ldbl
    top = (2**mant - 1) << (max_exp - mant)  # the largest finite long double
    exact = [0, 1, -1, 2**53 + 1, -(2**53 + 1), 2**63, -2**63, 2**63 + 1, 2**64 - 1,
             -(2**64 - 1), 2**mant - 1, 2**mant, -(2**mant), (2**mant - 1) << 100,
             2**(max_exp - 1), top, -top]
    for n in exact:
        if holds_exactly(n, mant, max_exp):
            assert ld_value(k, n) == n, n
    assert ld_value(k, 2**64 - 1) == 2**64 - 1 or mant < 64
    assert ld_value(k, 2**53 + 1) == 2**53 + 1 or mant < 54


def test_long_double_refuses_ints_it_cannot_hold(k, ldbl) -> None:
    mant, max_exp = ldbl
    for n in [2**mant + 1, -(2**mant + 1), (2**mant + 1) << 7, 2**max_exp, -(2**max_exp),
              2**(mant + 1) - 1]:
        assert not holds_exactly(n, mant, max_exp)
        with pytest.raises(OverflowError, match=rf"ld_hex\(\) argument 1: .* does not fit "
                                                rf"c_longdouble \(ints exactly representable: at "
                                                rf"most {mant} significant bits, below "
                                                rf"2\*\*{max_exp}\)"):
            ld_value(k, n)
        assert _edgert._bound_try_call(k.function("ld_scale"), n, 0) == (True, None)


def test_huge_ints_are_refused_by_size_not_by_str_limit(k) -> None:
    """The message of a refused 20,000-bit int names its size: it does not
    ask for the int's digits, which str() refuses past 4300."""
    with pytest.raises(OverflowError, match=r"ld_scale\(\) argument 1: an int of 20001 bits "
                                            r"does not fit c_longdouble"):
        k.call("ld_scale", 2**20000, 0)
    with pytest.raises(OverflowError, match=r"ld_scale\(\) argument 2: an int of 16610 bits "
                                            r"does not fit c_int"):
        k.call("ld_scale", 1.0, 10**5000)


@settings(max_examples=300, deadline=None)
@given(m=st.integers(min_value=0, max_value=2**130), shift=st.integers(0, 16500),
       neg=st.booleans())
@example(m=2**64 - 1, shift=0, neg=False)
@example(m=2**64 + 1, shift=0, neg=False)
@example(m=2**53 + 1, shift=3, neg=True)
@example(m=2**113 - 1, shift=1, neg=False)
@example(m=2**113 + 1, shift=0, neg=False)
def test_long_double_ints_match_the_exactness_rule(kk, ldbl, m, shift, neg) -> None:
    mant, max_exp = ldbl
    n = (-m if neg else m) << shift
    if holds_exactly(n, mant, max_exp):
        assert ld_value(kk, n) == n
    else:
        with pytest.raises(OverflowError, match="does not fit c_longdouble"):
            ld_value(kk, n)


def test_long_double_floats_and_numpy_scalars(k, ldbl) -> None:
    np = pytest.importorskip("numpy")
    mant, _ = ldbl
    for x in [0.1, -2.5, 1e308, 5e-324]:
        assert ld_value(k, x) == Fraction(x)
    assert ld_value(k, np.float32(0.1)) == Fraction(float(np.float32(0.1)))
    assert ld_value(k, np.float64(0.1)) == Fraction(0.1)
    if np.finfo(np.longdouble).nmant + 1 == mant and mant > 53:
        # numpy's longdouble passes its full value (it was rounded to a double)
        x = np.longdouble(2) ** (mant - 1) + 1
        assert ld_value(k, x) == 2**(mant - 1) + 1
        third = np.longdouble(1) / np.longdouble(3)
        assert ld_value(k, third) != Fraction(float(third))


def test_long_double_result_beyond_float_is_overflow_error(k) -> None:
    assert k.call("ld_scale", 1.0, 1000) == 2.0**1000
    assert k.call("ld_scale", 1.0, -20000) == 0.0  # underflow rounds, as floats do
    assert k.call("ld_scale", float("inf"), 0) == float("inf")  # an inf stays inf
    with pytest.raises(OverflowError, match=r"^ld_scale\(\) returned 1\.14813e\+602 "
                                            r"\(c_longdouble\), beyond the largest float "
                                            r"\(1\.79769e\+308\)$"):
        k.call("ld_scale", 1.0, 2000)
