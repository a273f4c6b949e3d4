"""Kernels that crash, called through ModuleLoader: contained as KernelCrash
(bare) or CompiledModeFailure (under run_with_guard), the module
quarantined until reloaded; what is not contained kills the process
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

from conftest import INTDIV_TRAPS, TRAP_SIGNAL, fixture_path

# A fault of another kind than SIGSEGV where integer division traps (x86-64);
# elsewhere (AArch64 divides by zero to 0) a read of an unmapped address.
DIV_CALL = ("guard_div", 1, 0) if INTDIV_TRAPS else ("guard_read_at", 16)
DIV_SIGNAL = "SIGFPE" if INTDIV_TRAPS else "SIGSEGV"


def _fixture(name: str) -> str:
    try:
        return fixture_path(name)
    except FileNotFoundError:
        return fixture_path("lib" + name)


PRELUDE = r'''
import ctypes, json, os, sys, threading
from ctypes import CFUNCTYPE, POINTER, c_char_p, c_double, c_int, c_long, c_size_t, c_void_p
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
    "guard_breakpoint": ([c_int], c_int),
    "guard_in_dl_iterate_phdr": ([c_int], c_int),
    "guard_in_qsort": ([c_int], c_int),
    "guard_libc_fault": ([c_size_t], c_int),
    "guard_fault_over_stale_frames": ([c_int], c_int),
    "guard_spin": ([c_long], c_long),
    "guard_spinning": ([c_int], c_int),
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
    ('loader.call("guard_trap", 1)', TRAP_SIGNAL,
     "illegal" if TRAP_SIGNAL == "SIGILL" else "breakpoint instruction"),
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


def test_crashed_module_is_quarantined_until_reloaded():
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
        out([again.call("guard_crash_if_negative", 3.0), loader.quarantined])
        loader.reload()
        out([loader.quarantined, loader.call("guard_ok", 1.0)])
    ''')
    got = ok(proc)
    assert got[0] == "crash"
    assert got[1] is True
    assert got[2][0] == got[3][0] == "quarantined"
    assert "quarantined" in got[2][1] and "guard_crash_if_negative" in got[2][1]
    # Another loader of the same bytes gets a fresh copy and leaves the
    # crashed one quarantined; reload() gives this loader a fresh copy too.
    assert got[4] == [7.0, True]
    assert got[5] == [False, 3.0]


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


def test_a_signal_the_kernel_raises_is_not_blamed_on_it():
    proc = run_child('''
        loader = load()
        try:
            loader.call("guard_raise_segv", 1)
        except KernelCrash as e:
            out([e.sent, e.sender_pid == os.getpid(), e.unhealthy, str(e).startswith("kernel interrupted")])
        out(loader.quarantined)
        out(loader.call("guard_ok", 1.0))
    ''')
    assert ok(proc) == [[True, True, False, True], False, 3.0]


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


# ---- faults inside a Python callback (issue 10, finding 3) ---------------------

CALLBACK = """
        import faulthandler
        faulthandler.enable()
        loader = ModuleLoader()
        loader.load(CRASHY, ABIContract("guard_callback", [c_size_t, c_int], c_int,
                                        release_gil={release}))
        loader.bind(ABIContract("guard_null_deref", [c_double], c_double))
        CB = CFUNCTYPE(c_int, c_int)
        def address(cb):
            return ctypes.cast(cb, c_void_p).value
"""


@pytest.mark.parametrize("release", [True, False], ids=["gil_released", "gil_held"])
def test_a_fault_in_a_python_callback_is_not_contained(release):
    # Jumping out of the callback would skip live interpreter frames: with
    # the GIL released around the kernel the process used to hang for ever
    # (the GIL stayed with the thread that then waited for it), with it held
    # the interpreter ran on in a broken state ("SystemError: unknown
    # opcode"). Now the fault is handled as outside any guarded call:
    # faulthandler's traceback, death by SIGSEGV. A hang fails by timeout.
    proc = run_child(CALLBACK.format(release=release) + """
        def faulting_callback(x):
            ctypes.string_at(1)  # a C-level fault inside Python code
            return x
        cb = CB(faulting_callback)
        out("calling")
        out(loader.call("guard_callback", address(cb), 1))
    """, timeout=60)
    assert lines(proc) == ["calling"]
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert _fatal_reports(proc.stderr) == 1
    assert "in faulting_callback" in proc.stderr
    assert "SystemError" not in proc.stderr


@pytest.mark.parametrize("release", [True, False], ids=["gil_released", "gil_held"])
def test_a_callback_that_returns_leaves_the_kernel_guarded(release):
    proc = run_child(CALLBACK.format(release=release) + """
        cb = CB(lambda x: x * 10)
        out(loader.call("guard_callback", address(cb), 4))
        loader2 = load()
        try:
            loader2.call("guard_null_deref", 1.0)  # the kernel's own fault, after a callback
        except KernelCrash as e:
            out(e.signal_name)
    """, timeout=60)
    assert ok(proc) == [41, "SIGSEGV"]


@pytest.mark.parametrize("release", [True, False], ids=["gil_released", "gil_held"])
def test_a_guarded_kernel_called_from_a_callback_keeps_its_containment(release):
    proc = run_child(CALLBACK.format(release=release) + """
        inner = load(CLEAN, "clean_kernel")
        crashy = load(None, "guard_null_deref")
        seen = []
        def nested(x):
            try:
                crashy.call("guard_null_deref", 1.0)
            except KernelCrash as e:
                seen.append(e.signal_name)
            return int(inner.call("clean_kernel", float(x)))
        cb = CB(nested)
        out(loader.call("guard_callback", address(cb), 3))
        out(seen)
    """, timeout=60)
    assert ok(proc) == [8, ["SIGSEGV"]]
    assert "Fatal Python error" not in proc.stderr


# ---- signal.signal displacing the guard (finding 5) ----------------------------

def test_signal_signal_after_the_first_guarded_call_keeps_faults_contained():
    # signal.signal(SIGSEGV, f) installs CPython's handler in front of the
    # guard; that handler returns from a fault, which then repeated for ever
    # at 100% CPU. The guard is put back in front; the Python handler still
    # gets SIGSEGV sent to the process, and an unguarded fault still kills it.
    proc = run_child("""
        import signal
        loader = load()
        out(loader.call("guard_ok", 1.0))
        got = []
        previous = signal.signal(signal.SIGSEGV, lambda signo, frame: got.append(signo))
        out(previous == signal.SIG_DFL)
        try:
            ExplicitFallback.run_with_guard(loader.function("guard_null_deref"), reference, 1.0)
        except edgert.CompiledModeFailure as e:
            out(["CompiledModeFailure", type(e.__cause__).__name__])
        os.kill(os.getpid(), signal.SIGSEGV)  # sent to the process: the Python handler
        out(got)
        again = load()
        try:
            again.call(*{DIV_CALL!r})
        except KernelCrash as e:
            out(e.signal_name)
    """.replace("{DIV_CALL!r}", repr(DIV_CALL)) + UNGUARDED, timeout=60)
    assert lines(proc) == [3.0, True, ["CompiledModeFailure", "KernelCrash"],
                           [signal.SIGSEGV], DIV_SIGNAL]
    assert proc.returncode == -signal.SIGSEGV


# ---- SIGTRAP (breakpoint instructions) -------------------------------------------

@pytest.mark.skipif(os.uname().machine not in ("x86_64", "aarch64", "arm64", "i686"),
                    reason="the fixture's breakpoint instruction is int3 or brk")
def test_a_breakpoint_instruction_is_contained_as_sigtrap():
    proc = run_child("""
        loader = load()
        try:
            loader.call("guard_breakpoint", 1)
        except KernelCrash as e:
            out([e.signal_name, e.signal, "breakpoint instruction" in str(e)])
        out(load(CLEAN, "clean_kernel").call("clean_kernel", 1.0))
    """)
    assert ok(proc) == [["SIGTRAP", signal.SIGTRAP, True], 3.0]


# ---- signals sent by another thread (not the kernel's fault) ---------------------

SPIN = """
        import signal, time
        loader = load()
        got = []
        def spin():
            try:
                got.append(loader.call("guard_spin", 1 << 50))
            except KernelCrash as e:
                got.append(e)
        def interrupt(target):
            loader.call("guard_spinning", 1)  # clears the flag
            t = threading.Thread(target=target)
            t.start()
            while loader.call("guard_spinning", 0) == 0:
                time.sleep(0.001)
            signal.pthread_kill(t.ident, signal.SIGSEGV)
            t.join()
"""


def test_a_signal_sent_by_another_thread_is_not_blamed_on_the_kernel():
    proc = run_child(SPIN + """
        interrupt(spin)
        e = got[0]
        out([type(e).__name__, e.signal_name, e.sent, e.sender_pid == os.getpid(), e.address,
             e.unhealthy])
        out(str(e))
        out(loader.quarantined)
        out(loader.call("guard_ok", 1.0))
    """, timeout=60)
    (info, message, quarantined, after) = ok(proc)
    assert info == ["KernelCrash", "SIGSEGV", True, True, 0, False]
    assert message.startswith("kernel interrupted: SIGSEGV (sent to this thread by this "
                              f"process, pid ")
    assert "raised by the thread itself" not in message
    assert "not blamed" in message
    assert quarantined is False
    assert after == 3.0


def test_the_nexus_does_not_quarantine_a_kernel_for_a_sent_signal():
    proc = run_child(SPIN + """
        nx = edgert.Nexus()
        k = nx.register("spin", loader.function("guard_spin"), lambda n: -1, max_failures=1)
        def spin_nexus():
            got.append(k(1 << 50))
        interrupt(spin_nexus)
        st = k.stats()
        out([got[0], st["failures"], st["fallbacks"], st["state"], st["consecutive_failures"]])
        out([k(7), k.stats()["compiled"]])
    """, timeout=60)
    assert ok(proc) == [[-1, 1, 1, "active", 0], [7, 1]]


# ---- crashes inside the C library make the process unhealthy ---------------------

def test_a_crash_in_a_dl_iterate_phdr_callback_makes_the_process_unhealthy():
    # dl_iterate_phdr holds the dynamic linker's lock around its callbacks; a
    # contained fault in one leaves it held by a thread that never releases
    # it, and the next import of an extension from another thread (or exit())
    # waits for ever. The process says so; a program that checks
    # process_healthy() before importing does not hang (on the old code it
    # imports and hangs: the timeout fails the test).
    proc = run_child("""
        import logging
        logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s %(message)s")
        clean = load(CLEAN, "clean_kernel")
        nx = edgert.Nexus()
        k = nx.register("k", clean.function("clean_kernel"), lambda x: -1.0)
        out(k(1.0))
        def worker():
            try:
                load(None, "guard_in_dl_iterate_phdr").call("guard_in_dl_iterate_phdr", 1)
            except KernelCrash as e:
                out([e.unhealthy, "inside libc.so" in str(e), "process is now unhealthy" in str(e)])
        t = threading.Thread(target=worker); t.start(); t.join()
        healthy = getattr(edgert, "process_healthy", lambda: True)()
        out([healthy, "libc.so" in (edgert.process_unhealthy_reason() or "")])
        out([k(1.0), k(2.0), k.stats()["compiled"], k.stats()["fallbacks"],
             k.stats()["process_healthy"]])
        if healthy:
            import _sqlite3  # an extension not loaded yet: dlopen takes the held lock
        out("done")
        sys.stdout.flush()
        os._exit(0)  # exit() itself would wait for that lock
    """, timeout=60)
    assert ok(proc) == [3.0, [True, True, True], [False, True], [-1.0, -1.0, 1, 2, False],
                        "done"]
    assert proc.stderr.count("the process is unhealthy") == 1  # logged once, with the reason
    assert "guard_in_dl_iterate_phdr" in proc.stderr


@pytest.mark.parametrize("kernel, arg, how", [
    ("guard_in_qsort", 1, "it had called the kernel back"),
    ("guard_libc_fault", 0, "the faulting instruction is at"),
])
def test_other_crashes_inside_the_c_library_make_the_process_unhealthy(kernel, arg, how):
    proc = run_child(f"""
        try:
            load(None, "{kernel}").call("{kernel}", {arg})
        except KernelCrash as e:
            out([e.unhealthy, "{how}" in str(e)])
        out(edgert.process_healthy())
        sys.stdout.flush()
        os._exit(0)
    """)
    assert ok(proc) == [[True, True], False]


def test_ordinary_crashes_leave_the_process_healthy():
    # Return addresses into libc left over in slots the faulting kernel
    # never wrote (qsort ran there just before) are not live frames.
    proc = run_child("""
        verdicts = []
        for i in range(40):
            name = ("guard_fault_over_stale_frames", "guard_null_deref", "guard_div",
                    "guard_stack_overflow")[i % 4]
            args = {"guard_fault_over_stale_frames": (i * 131,), "guard_null_deref": (1.0,),
                    "guard_div": (1, 0), "guard_stack_overflow": (0,)}[name]
            if name == "guard_div" and not INTDIV_TRAPS:
                name, args = "guard_read_at", (16,)  # a division by zero does not trap here
            try:
                load(None, name).call(name, *args)
            except KernelCrash as e:
                verdicts.append(e.unhealthy)
        out([len(verdicts), any(verdicts), edgert.process_healthy()])
    """)
    assert ok(proc) == [[40, False, True]]
