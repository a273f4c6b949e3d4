"""Kernels that crash, called through ModuleLoader: contained as KernelCrash
(bare) or CompiledModeFailure (under run_with_guard), the module
quarantined until loaded again; what is not contained kills the process
with the original signal, faulthandler's report included.

Every scenario runs in a child interpreter: if containment were broken, the
child dies, not the test runner, and the test reports how it died.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import INTDIV_TRAPS, MACHINE, TRAP_SIGNAL, fixture_path


def _fixture(name: str) -> str:
    try:
        return fixture_path(name)
    except FileNotFoundError:
        return fixture_path("lib" + name)


PRELUDE = r'''
import ctypes, json, os, sys, threading
from ctypes import POINTER, c_char_p, c_double, c_int, c_size_t
import edgert
from edgert import ABIContract, ExplicitFallback, KernelCrash, ModuleLoader, QuarantinedError

CRASHY = os.environ["GUARD_CRASHY"]
CLEAN = os.environ["GUARD_CLEAN"]
SIGS = {
    "guard_ok": ([c_double], c_double),
    "guard_null_deref": ([c_double], c_double),
    "guard_crash_if_negative": ([c_double], c_double),
    "guard_div": ([c_int, c_int], c_int),
    "guard_trap": ([c_int], c_int),
    "guard_bus": ([c_char_p], c_int),
    "guard_stack_overflow": ([c_int], c_int),
    "guard_abort": ([c_int], c_int),
    "guard_raise_segv": ([c_int], c_int),
    "guard_read_at": ([c_size_t], c_int),
    "clean_kernel": ([c_double], c_double),
}

def load(path=None, *names):
    names = names or tuple(n for n in SIGS if n.startswith("guard_"))
    loader = ModuleLoader()
    first, *rest = names
    loader.load(path or CRASHY, ABIContract(first, *SIGS[first]))
    for n in rest:
        loader.bind(ABIContract(n, *SIGS[n]))
    return loader

def crash_info(e):
    return {"type": type(e).__name__, "signal": e.signal, "signal_name": e.signal_name,
            "address": e.address, "function": e.function, "module": e.module,
            "message": str(e)}

def reference(x):
    return x * 2.0 + 1.0

def out(obj):
    print(json.dumps(obj), flush=True)
'''


def run_child(code: str, *, guard: str | None = None, faulthandler_env: bool = False,
              timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["GUARD_CRASHY"] = _fixture("guard_crashy")
    env["GUARD_CLEAN"] = _fixture("guard_clean")
    env.pop("PYTHONFAULTHANDLER", None)
    env.pop("EDGERT_CRASH_GUARD", None)
    if faulthandler_env:
        env["PYTHONFAULTHANDLER"] = "1"
    if guard is not None:
        env["EDGERT_CRASH_GUARD"] = guard
    code = PRELUDE + f"INTDIV_TRAPS = {INTDIV_TRAPS!r}\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", code],
                          capture_output=True, text=True, env=env, timeout=timeout)


def lines(proc: subprocess.CompletedProcess) -> list:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def ok(proc: subprocess.CompletedProcess) -> list:
    assert proc.returncode == 0, f"child died ({proc.returncode}):\n{proc.stderr}"
    return lines(proc)


# ---- each fault is contained --------------------------------------------------

@pytest.mark.parametrize("call, signame, fault", [
    ('loader.call("guard_null_deref", 1.0)', "SIGSEGV", "address not mapped"),
    ('loader.function("guard_null_deref")(1.0)', "SIGSEGV", "address not mapped"),
    ('loader.call("guard_div", 1, 0)', "SIGFPE", "integer division by zero"),
    pytest.param('loader.call("guard_trap", 1)', TRAP_SIGNAL,
                 "illegal" if TRAP_SIGNAL == "SIGILL" else "",
                 marks=pytest.mark.xfail(MACHINE == "aarch64", strict=True,
                                         reason="SIGTRAP containment lands with the guard branch")),
    ('loader.call("guard_bus", os.path.join(os.environ["TMPDIR_"], "bus").encode())', "SIGBUS",
     "no memory behind the address"),
    ('loader.call("guard_stack_overflow", 0)', "SIGSEGV", ""),
])
def test_fault_in_a_bound_kernel_raises_kernel_crash(call, signame, fault, tmp_path):
    os.environ["TMPDIR_"] = str(tmp_path)
    if signame == "SIGFPE" and not INTDIV_TRAPS:
        # No fault to contain: the CPU returns 0 for a division by zero.
        assert ok(run_child(f"loader = load()\nout({call})")) == [0]
        return
    proc = run_child(f'''
        loader = load()
        try:
            {call}
            out("returned")
        except KernelCrash as e:
            out(crash_info(e))
        out(load(CLEAN, "clean_kernel").call("clean_kernel", 2.0))
    ''')
    info, after = ok(proc)
    assert info["type"] == "KernelCrash"
    assert info["signal_name"] == signame
    assert info["signal"] == getattr(signal, signame)
    assert info["module"] == _fixture("guard_crashy")
    assert info["function"].startswith("guard_")
    assert info["message"].startswith(f"kernel crashed: {signame} (")
    assert fault in info["message"]
    assert f"in function '{info['function']}' of module {info['module']}" in info["message"]
    assert after == 5.0  # the process goes on working
    assert "Fatal Python error" not in proc.stderr


def test_crash_record_has_the_fault_address():
    proc = run_child('''
        loader = load()
        for addr in (0, 0x10, 0xdead0000):
            try:
                loader.call("guard_read_at", addr)
            except KernelCrash as e:
                out([e.address, e.message if hasattr(e, "message") else str(e)])
            loader = load()  # a crash quarantines: load again
    ''')
    got = ok(proc)
    assert [a for a, _ in got] == [0, 0x10, 0xdead0000]
    assert "at address 0xdead0000 in function 'guard_read_at'" in got[2][1]


def test_crashed_module_is_quarantined_until_loaded_again():
    proc = run_child('''
        loader = load()
        try:
            loader.call("guard_crash_if_negative", -1.0)
        except KernelCrash:
            out("crash")
        out(loader.quarantined)
        for attempt in (lambda: loader.call("guard_crash_if_negative", 3.0),
                        lambda: loader.function("guard_ok")(3.0)):
            try:
                attempt()
            except QuarantinedError as e:
                out(["quarantined", str(e)])
        again = load()
        out([again.call("guard_crash_if_negative", 3.0), loader.quarantined,
             loader.call("guard_ok", 1.0)])
    ''')
    got = ok(proc)
    assert got[0] == "crash"
    assert got[1] is True
    assert got[2][0] == got[3][0] == "quarantined"
    assert "quarantined" in got[2][1] and "guard_crash_if_negative" in got[2][1]
    assert got[4] == [7.0, False, 3.0]


def test_many_crashes_in_a_row_leave_the_process_healthy():
    proc = run_child('''
        n = 0
        for i in range(300):
            loader = load(None, "guard_null_deref", "guard_div", "guard_read_at")
            try:
                if i % 2:
                    loader.call("guard_null_deref", 1.0)
                elif INTDIV_TRAPS:
                    loader.call("guard_div", 1, 0)
                else:  # no SIGFPE here: another fault, at another address
                    loader.call("guard_read_at", 16)
            except KernelCrash:
                n += 1
        out([n, load(CLEAN, "clean_kernel").call("clean_kernel", 1.0)])
    ''')
    assert ok(proc) == [[300, 3.0]]


def test_stack_overflow_in_a_python_thread_is_contained():
    proc = run_child('''
        res = []
        def work():
            try:
                load().call("guard_stack_overflow", 0)
            except KernelCrash as e:
                res.append(e.signal_name)
        t = threading.Thread(target=work); t.start(); t.join()
        out(res)
    ''')
    assert ok(proc) == [["SIGSEGV"]]


def test_stack_overflow_with_faulthandler_on_every_thread():
    # faulthandler brings its own (smaller) alternate stack for the main
    # thread; the guard's handler and faulthandler's both still fit.
    proc = run_child('''
        res = []
        def work():
            try:
                load().call("guard_stack_overflow", 0)
            except KernelCrash as e:
                res.append(e.signal_name)
        work()
        t = threading.Thread(target=work); t.start(); t.join()
        out(res)
    ''' + UNGUARDED, faulthandler_env=True)
    assert lines(proc) == [["SIGSEGV", "SIGSEGV"]]
    assert proc.returncode == -signal.SIGSEGV
    assert _fatal_reports(proc.stderr) == 1


# ---- under ExplicitFallback ---------------------------------------------------

def test_run_with_guard_turns_a_crash_into_compiled_mode_failure():
    proc = run_child('''
        import logging
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
        loader = load()
        compiled = lambda x: loader.call("guard_crash_if_negative", x)
        try:
            ExplicitFallback.run_with_guard(compiled, reference, -3.14, fallback_enabled=False)
        except edgert.CompiledModeFailure as e:
            out([type(e.__cause__).__name__, e.__cause__.signal_name, str(e)])
        out(ExplicitFallback.run_with_guard(compiled, reference, 2.0, fallback_enabled=True))
        f = loader.function("guard_crash_if_negative")
        try:
            ExplicitFallback.run_with_guard(f, reference, 2.0)
        except edgert.CompiledModeFailure as e:
            out(type(e.__cause__).__name__)
        out(ExplicitFallback.stats())
    ''')
    got = ok(proc)
    assert got[0][0] == "KernelCrash" and got[0][1] == "SIGSEGV"
    assert got[0][2].startswith("compiled path <lambda>(float) failed and fallback is disabled: "
                                "KernelCrash: kernel crashed: SIGSEGV")
    assert got[1] == 5.0  # quarantined now: the reference answered
    assert got[2] == "QuarantinedError"
    stats = got[3]
    assert (stats["calls"], stats["failures"], stats["crashes"], stats["fallbacks"]) == (3, 3, 1, 1)
    assert "ERROR edgert.fallback run_with_guard: compiled <lambda>(float) failed with " \
           "KernelCrash: kernel crashed: SIGSEGV" in proc.stderr
    assert "WARNING edgert.fallback run_with_guard: compiled <lambda>(float) failed with " \
           "QuarantinedError" in proc.stderr


def test_fallback_to_python_reports_a_crash_as_compiled_mode_failure():
    proc = run_child('''
        loader = load()
        try:
            ExplicitFallback.fallback_to_python(loader.function("guard_null_deref"), reference, 1.0)
        except edgert.CompiledModeFailure as e:
            out([type(e.__cause__).__name__, e.__cause__.function])
    ''')
    assert ok(proc) == [["KernelCrash", "guard_null_deref"]]


def test_threads_keep_working_while_one_crashes():
    proc = run_child('''
        clean = load(CLEAN, "clean_kernel").function("clean_kernel")
        errors, crashes, guarded = [], [], []
        stop = threading.Event()
        def steady(k):
            n = 0
            while not stop.is_set() or n < 2000:
                v = clean(float(n + k))
                if v != (n + k) * 2.0 + 1.0:
                    errors.append((k, n, v))
                n += 1
        def crasher():
            # The fallback user shares this module's mapping, so its crashes
            # can quarantine our fresh load before we call: then load again.
            tries = 0
            while len(crashes) < 200 and tries < 20000:
                tries += 1
                try:
                    load(None, "guard_null_deref").call("guard_null_deref", 1.0)
                except KernelCrash as e:
                    crashes.append(e.signal_name)
                except QuarantinedError:
                    pass
        def fallback_user():
            loader = load(None, "guard_crash_if_negative")
            f = loader.function("guard_crash_if_negative")
            for i in range(300):
                x = float(i % 7) - 3.0
                v = ExplicitFallback.run_with_guard(f, reference, x, fallback_enabled=True)
                if v != reference(x):
                    guarded.append((x, v))
        ts = [threading.Thread(target=steady, args=(k,)) for k in range(3)]
        ts += [threading.Thread(target=crasher), threading.Thread(target=fallback_user)]
        for t in ts: t.start()
        ts[3].join(); ts[4].join(); stop.set()
        for t in ts: t.join()
        out([errors, len(crashes), set(crashes) == {"SIGSEGV"}, guarded])
    ''', timeout=300)
    assert ok(proc) == [[[], 200, True, []]]


# ---- what is not contained, and faulthandler -----------------------------------

UNGUARDED = '''
        ctypes.string_at(0)  # a fault outside any guarded call
        out("survived")
'''


def _fatal_reports(stderr: str) -> int:
    return stderr.count("Fatal Python error: Segmentation fault")


def test_faulthandler_enabled_before_the_guard():
    proc = run_child('''
        import faulthandler
        faulthandler.enable()
        try:
            load().call("guard_null_deref", 1.0)
        except KernelCrash:
            out("contained")
    ''' + UNGUARDED)
    assert lines(proc) == ["contained"]
    assert proc.returncode == -signal.SIGSEGV
    assert _fatal_reports(proc.stderr) == 1


def test_faulthandler_enabled_after_the_guard():
    proc = run_child('''
        import faulthandler
        try:
            load().call("guard_null_deref", 1.0)
        except KernelCrash:
            out("contained")
        faulthandler.enable()  # now in front of the guard's handlers
        try:
            load().call("guard_null_deref", 1.0)
        except KernelCrash:
            out(["contained", faulthandler.is_enabled()])
    ''' + UNGUARDED)
    assert lines(proc) == ["contained", ["contained", True]]
    assert proc.returncode == -signal.SIGSEGV
    assert _fatal_reports(proc.stderr) == 1  # only the unguarded fault


def test_faulthandler_from_the_environment():
    proc = run_child('''
        import faulthandler
        out(faulthandler.is_enabled())
        try:
            load().call(*(("guard_div", 1, 0) if INTDIV_TRAPS else ("guard_read_at", 16)))
        except KernelCrash:
            out("contained")
    ''' + UNGUARDED, faulthandler_env=True)
    assert lines(proc) == [True, "contained"]
    assert proc.returncode == -signal.SIGSEGV
    assert _fatal_reports(proc.stderr) == 1


def test_faulthandler_disabled_again():
    proc = run_child('''
        import faulthandler
        faulthandler.enable()
        load().call("guard_ok", 1.0)
        faulthandler.disable()  # would put SIG_DFL back in front of the guard
        try:
            load().call("guard_null_deref", 1.0)
        except KernelCrash:
            out("contained")
    ''' + UNGUARDED)
    assert lines(proc) == ["contained"]
    assert proc.returncode == -signal.SIGSEGV
    assert _fatal_reports(proc.stderr) == 0


def test_without_faulthandler_an_unguarded_fault_dies_quietly():
    proc = run_child('''
        try:
            load().call("guard_null_deref", 1.0)
        except KernelCrash:
            out("contained")
    ''' + UNGUARDED)
    assert lines(proc) == ["contained"]
    assert proc.returncode == -signal.SIGSEGV
    assert "Fatal Python error" not in proc.stderr


def test_abort_is_not_contained_and_faulthandler_reports_it():
    proc = run_child('''
        import faulthandler
        faulthandler.enable()
        out("before")
        load().call("guard_abort", 1)
        out("survived")
    ''')
    assert lines(proc) == ["before"]
    assert proc.returncode == -signal.SIGABRT
    assert "Fatal Python error: Aborted" in proc.stderr


def test_a_signal_the_kernel_raises_on_its_own_thread_is_contained():
    proc = run_child('''
        try:
            load().call("guard_raise_segv", 1)
        except KernelCrash as e:
            out([e.signal_name, e.address, "raised by the thread itself" in str(e)])
    ''' + UNGUARDED)
    assert lines(proc) == [["SIGSEGV", 0, True]]
    assert proc.returncode == -signal.SIGSEGV


def test_faulthandler_put_in_front_behind_edgerts_back():
    # faulthandler.enable fetched before edgert wrapped it: nothing puts the
    # guard back in front, faulthandler sees the fault first, reports it and
    # re-raises on the faulting thread, and the guard still contains it.
    proc = run_child('''
        import faulthandler
        enable = faulthandler.enable.__wrapped__
        load().call("guard_ok", 1.0)
        enable()
        try:
            load().call("guard_null_deref", 1.0)
        except KernelCrash as e:
            out(["contained", e.signal_name])
        try:
            load().call("guard_null_deref", 1.0)
        except KernelCrash as e:
            out(["contained", e.address])
    ''' + UNGUARDED)
    assert lines(proc) == [["contained", "SIGSEGV"], ["contained", 0]]
    assert proc.returncode == -signal.SIGSEGV
    assert _fatal_reports(proc.stderr) == 1  # the first contained fault, reported on its way


def test_environment_switch_turns_containment_off():
    proc = run_child('''
        out(edgert.crash_guard_enabled())
        out(load().call("guard_ok", 1.0))
        load().call("guard_null_deref", 1.0)
        out("survived")
    ''', guard="0")
    assert lines(proc) == [False, 3.0]
    assert proc.returncode == -signal.SIGSEGV
