"""ModuleLoader: verified loading, refusals, symbols, unload, threads, the
article's flows."""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import shutil
import struct
import threading

import pytest

import edgert
from conftest import FOREIGN_MACHINE, fixture_path
from edgert import (
    ABIContract,
    IntegrityError,
    ModuleFormatError,
    ModuleLoader,
    ModuleUnloadedError,
    SymbolNotFoundError,
)

C = ctypes


def fx(name: str) -> str:
    """The built fixture tests/fixtures/NAME.c (as libNAME.so or NAME.so)."""
    try:
        return fixture_path(name)
    except FileNotFoundError:
        return fixture_path("lib" + name)


def sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


ADD = ABIContract("add", [C.c_double, C.c_double], C.c_double)
INC = ABIContract("inc", [C.c_int64], C.c_int64)
VERSION = ABIContract("version", [], C.c_int)


@pytest.fixture
def kernels() -> ModuleLoader:
    loader = ModuleLoader().load(fx("loader_kernels"), [ADD, INC])
    yield loader
    loader.unload()


# ---- verification ---------------------------------------------------------------


def test_load_returns_the_loader_and_hashes_exactly_the_file(kernels: ModuleLoader) -> None:
    path = fx("loader_kernels")
    assert kernels.sha256 == sha(path)
    assert kernels.path == path
    assert kernels.loaded
    assert set(kernels.functions) == {"add", "inc"}
    assert kernels.call("add", 1.5, 2.25) == 3.75


def test_article_flow_load_then_verify_signature() -> None:
    path = fx("loader_kernels")
    loader = ModuleLoader()
    loader.load(path, ADD)
    assert loader.verify_signature(sha(path)) is True
    assert loader.verify_signature(sha(path).upper()) is True
    assert loader.verify_signature("0" * 64) is False
    loader.unload()


@pytest.mark.parametrize("bad", ["", "abc", "0" * 63, "0" * 65, "g" + "0" * 63, "é" * 64])
def test_malformed_hashes_are_value_errors(kernels: ModuleLoader, bad: str) -> None:
    with pytest.raises(ValueError, match="64 hex digits"):
        kernels.verify_signature(bad)
    with pytest.raises(ValueError, match="64 hex digits"):
        ModuleLoader().load(fx("loader_kernels"), expected_sha256=bad)


def test_hash_arguments_must_be_str(kernels: ModuleLoader) -> None:
    with pytest.raises(TypeError, match="str"):
        kernels.verify_signature(b"0" * 64)
    with pytest.raises(TypeError, match="expected_sha256"):
        ModuleLoader().load(fx("loader_kernels"), expected_sha256=b"0" * 64)


def test_expected_hash_matches_or_integrity_error() -> None:
    path = fx("loader_kernels")
    loader = ModuleLoader().load(path, ADD, expected_sha256=sha(path))
    assert loader.call("add", 1.0, 1.0) == 2.0
    wrong = "f" * 64
    with pytest.raises(IntegrityError, match=wrong):
        ModuleLoader().load(path, ADD, expected_sha256=wrong)
    loader.unload()


def test_tampered_module_runs_none_of_its_code(tmp_path, monkeypatch) -> None:
    original = fx("loader_marker")
    good = sha(original)
    marker = tmp_path / "marker"
    monkeypatch.setenv("EDGERT_LOADER_MARKER", str(marker))
    tampered = tmp_path / "libmarker.so"
    data = bytearray(open(original, "rb").read())
    data[-1] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="none of its code ran"):
        ModuleLoader().load(str(tampered), expected_sha256=good)
    assert not marker.exists()
    # Control: the genuine bytes run their constructor when loaded.
    shutil.copy(original, tampered)
    loader = ModuleLoader().load(str(tampered), expected_sha256=good)
    assert marker.exists()
    loader.unload()


def test_rewriting_or_swapping_the_file_after_load_changes_nothing(tmp_path) -> None:
    path = tmp_path / "libversion.so"
    shutil.copy(fx("loader_v1"), path)
    first = ModuleLoader().load(str(path), VERSION)
    assert first.call("version") == 42
    with open(path, "r+b") as f:  # same inode, other bytes
        f.truncate(0)
        f.write(open(fx("loader_v2"), "rb").read())
    assert first.call("version") == 42
    other = tmp_path / "other.so"
    shutil.copy(fx("loader_v2"), other)
    os.replace(other, path)  # swap
    assert first.call("version") == 42
    # A new load of that path gets the new bytes, never the old module.
    second = ModuleLoader().load(str(path), VERSION)
    assert second.call("version") == 1337
    assert second.sha256 != first.sha256
    assert first.call("version") == 42
    first.unload()
    second.unload()


def test_same_bytes_load_once(tmp_path) -> None:
    copy = tmp_path / "copy.so"
    shutil.copy(fx("loader_kernels"), copy)
    a = ModuleLoader().load(fx("loader_kernels"))
    b = ModuleLoader().load(str(copy))
    assert a.address_of("loader_counter") == b.address_of("loader_counter")
    a.unload()
    assert b.address_of("loader_counter") != 0  # still mapped for b
    b.unload()


# ---- refusals ----------------------------------------------------------------------


def test_paths_that_are_not_regular_files(tmp_path) -> None:
    with pytest.raises(IsADirectoryError, match="a directory"):
        ModuleLoader().load(str(tmp_path))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="a FIFO"):
        ModuleLoader().load(str(fifo))
    with pytest.raises(OSError, match="a character device"):
        ModuleLoader().load("/dev/null")
    with pytest.raises(FileNotFoundError, match="cannot open"):
        ModuleLoader().load(str(tmp_path / "missing.so"))


def test_empty_oversized_and_non_elf(tmp_path) -> None:
    empty = tmp_path / "empty.so"
    empty.write_bytes(b"")
    with pytest.raises(ModuleFormatError, match="empty"):
        ModuleLoader().load(str(empty))
    text = tmp_path / "text.so"
    text.write_bytes(b"#!/bin/sh\necho hi\n")
    with pytest.raises(ModuleFormatError, match="not an ELF file"):
        ModuleLoader().load(str(text))
    with pytest.raises(ValueError, match="size limit of 1024 bytes"):
        ModuleLoader().load(fx("loader_kernels"), max_size=1024)
    with pytest.raises(ValueError, match="max_size"):
        ModuleLoader().load(fx("loader_kernels"), max_size=0)


def _crafted(tmp_path, name: str, offset: int, fmt: str, value: int) -> str:
    data = bytearray(open(fx("loader_kernels"), "rb").read())
    struct.pack_into(fmt, data, offset, value)
    p = tmp_path / name
    p.write_bytes(bytes(data))
    return str(p)


@pytest.mark.parametrize("name,offset,fmt,value,words", [
    ("elf32.so", 4, "B", 1, "32-bit"),
    ("elfbe.so", 5, "B", 2, "byte order"),
    ("elfforeign.so", 18, "<H", FOREIGN_MACHINE[0], f"built for {FOREIGN_MACHINE[1]}"),
    ("elf386.so", 18, "<H", 3, r"x86 \(32-bit\)"),
    ("elfexec.so", 16, "<H", 2, "ET_EXEC"),
])
def test_wrong_elf_headers(tmp_path, name, offset, fmt, value, words) -> None:
    with pytest.raises(ModuleFormatError, match=words):
        ModuleLoader().load(_crafted(tmp_path, name, offset, fmt, value))


# ---- symbols ------------------------------------------------------------------------


def test_missing_symbol_fails_the_load_naming_it() -> None:
    loader = ModuleLoader()
    with pytest.raises(SymbolNotFoundError, match="'no_such_kernel'"):
        loader.load(fx("loader_kernels"), [ADD, ABIContract("no_such_kernel", [], None)])
    assert not loader.loaded
    with pytest.raises(ModuleUnloadedError, match="no module is loaded"):
        loader.call("add", 1.0, 2.0)


def test_functions_of_dependencies_are_refused(kernels: ModuleLoader) -> None:
    with pytest.raises(SymbolNotFoundError, match="'system'.*libc"):
        kernels.bind(ABIContract("system", [C.c_char_p], C.c_int))
    with pytest.raises(SymbolNotFoundError, match="'system'"):
        kernels.address_of("system")
    with pytest.raises(SymbolNotFoundError, match="'system'"):
        ModuleLoader().load(fx("loader_kernels"), ABIContract("system", [C.c_char_p], C.c_int))


def test_address_of_data_symbols(kernels: ModuleLoader) -> None:
    assert C.c_int.from_address(kernels.address_of("loader_counter")).value == 7
    table = (C.c_double * 4).from_address(kernels.address_of("loader_table"))
    assert list(table) == [1.5, 2.5, 3.5, 4.5]
    assert kernels.address_of("add") == kernels.function("add").__self__.address
    with pytest.raises(SymbolNotFoundError, match="data object"):
        kernels.bind(ABIContract("loader_counter", [], C.c_int))
    with pytest.raises(TypeError):
        kernels.address_of(b"add")


def _mapped_path(suffix: str) -> str:
    """The real path of a library this process has mapped from disk."""
    for token in open("/proc/self/maps").read().split():
        if token.startswith("/") and not token.startswith("/memfd:") and \
                os.path.basename(token).startswith(suffix) and os.path.exists(token):
            return os.path.realpath(token)
    raise LookupError(suffix)


def test_a_library_the_process_already_has_loads() -> None:
    libm = ctypes.CDLL(ctypes.util.find_library("m"))  # the process has it
    real = _mapped_path("libm.so")
    loader = ModuleLoader().load(real, ABIContract("cos", [C.c_double], C.c_double))
    assert loader.call("cos", 0.0) == 1.0
    libm.cos.restype, libm.cos.argtypes = C.c_double, [C.c_double]
    assert loader.call("cos", 2.0) == libm.cos(2.0)
    loader.unload()


def test_libz_the_process_already_has_loads_too() -> None:
    import zlib  # maps the system libz into this process
    real = _mapped_path("libz.so")
    loader = ModuleLoader().load(real, ABIContract("zlibVersion", [], C.c_char_p))
    assert loader.call("zlibVersion").decode() == zlib.ZLIB_RUNTIME_VERSION
    loader.unload()


def test_call_without_a_contract_is_a_lookup_error(kernels: ModuleLoader) -> None:
    with pytest.raises(SymbolNotFoundError, match="no contract is bound for 'noop'"):
        kernels.call("noop")
    with pytest.raises(LookupError):
        kernels.function("noop")
    kernels.bind(ABIContract("noop", [], None))
    assert kernels.call("noop") is None
    with pytest.raises(TypeError, match="abi must be an ABIContract"):
        kernels.bind(42)
    with pytest.raises(TypeError, match="abi item 0"):
        kernels.bind([42])


# ---- unload ---------------------------------------------------------------------------


def test_after_unload_everything_raises(kernels: ModuleLoader) -> None:
    add = kernels.function("add")
    assert add(1.0, 2.0) == 3.0
    kernels.unload()
    kernels.unload()  # idempotent
    assert not kernels.loaded and kernels.sha256 is None
    with pytest.raises(ModuleUnloadedError, match="'add'.*unloaded"):
        kernels.call("add", 1.0, 2.0)
    with pytest.raises(ModuleUnloadedError, match="'add'.*unloaded"):
        add(1.0, 2.0)
    with pytest.raises(ModuleUnloadedError):
        add("wrong", "types")  # unloaded wins over conversion
    with pytest.raises(ModuleUnloadedError):
        kernels.address_of("add")
    with pytest.raises(ModuleUnloadedError):
        kernels.bind(INC)
    assert kernels.verify_signature(sha(fx("loader_kernels"))) is True


def test_bound_callables_outlive_their_loader() -> None:
    add = ModuleLoader().load(fx("loader_kernels"), ADD).function("add")
    assert add(2.0, 3.0) == 5.0  # the loader is gone; the module is not


def test_loading_again_replaces_the_module(tmp_path) -> None:
    loader = ModuleLoader().load(fx("loader_v1"), VERSION)
    old = loader.function("version")
    loader.load(fx("loader_v2"), VERSION)
    assert loader.call("version") == 1337
    with pytest.raises(ModuleUnloadedError):
        old()
    loader.unload()


def test_context_manager_unloads() -> None:
    with ModuleLoader().load(fx("loader_kernels"), ADD) as loader:
        add = loader.function("add")
        assert add(1.0, 1.0) == 2.0
    with pytest.raises(ModuleUnloadedError):
        add(1.0, 1.0)


# ---- threads --------------------------------------------------------------------------


def test_concurrent_calls_from_threads() -> None:
    loader = ModuleLoader().load(fx("loader_kernels"), [
        ABIContract("slow_add", [C.c_double, C.c_double], C.c_double),
        ABIContract("inc", [C.c_int64], C.c_int64, release_gil=False)])
    slow, inc = loader.function("slow_add"), loader.function("inc")
    errors: list = []

    def work(k: int) -> None:
        for i in range(300):
            if slow(float(i), float(k)) != i + k or inc(i * k) != i * k + 1:
                errors.append((k, i))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    loader.unload()


def test_unload_racing_calls_in_other_threads_never_crashes() -> None:
    for _ in range(5):
        loader = ModuleLoader().load(fx("loader_kernels"), [
            ABIContract("slow_add", [C.c_double, C.c_double], C.c_double),
            ABIContract("add", [C.c_double, C.c_double], C.c_double, release_gil=False)])
        slow, add = loader.function("slow_add"), loader.function("add")
        outcome: list = []
        started = threading.Barrier(5)

        def work() -> None:
            started.wait()
            n = 0
            try:
                while True:
                    assert slow(1.0, 2.0) == 3.0
                    assert add(1.0, 2.0) == 3.0
                    n += 1
            except ModuleUnloadedError:
                outcome.append(n)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        started.wait()
        loader.unload()
        for t in threads:
            t.join(timeout=30)
        assert len(outcome) == 4


# ---- the article's examples -------------------------------------------------------------


def test_article_register_custom_type_flow() -> None:
    abi = ABIContract(
        function_name="register_custom_type",
        arg_types=[C.c_char_p, C.c_void_p, C.c_void_p, C.c_void_p],
        return_type=C.c_int,
    )
    loader = ModuleLoader()
    loader.load(fx("loader_kernels"), abi)
    sizeof_fp = loader.address_of("sizeof_point")
    check_fp = loader.address_of("check_point")
    copy_fp = loader.address_of("copy_point")
    assert loader.call("register_custom_type", b"Point", sizeof_fp, check_fp, copy_fp) == 16
    loader.bind(ABIContract("registered_name", [], C.c_char_p))
    assert loader.call("registered_name") == b"Point"
    loader.unload()


def test_article_paths_give_the_same_objects() -> None:
    from pyv_edge_agent.module_host.abi import ABIContract as A2
    from pyv_edge_agent.module_host.loader import ModuleLoader as L2
    assert L2 is ModuleLoader and A2 is ABIContract
    assert edgert.ModuleLoader is ModuleLoader


def test_article_guard_example_runs_and_crashes_are_contained(capsys) -> None:
    fallback = pytest.importorskip("edgert.fallback")
    if not hasattr(fallback, "ExplicitFallback"):
        pytest.skip("ExplicitFallback is not built yet")
    from pyv_edge_agent.module_host.fallback import CompiledModeFailure, ExplicitFallback

    abi = ABIContract(function_name="risky_kernel", arg_types=[C.c_double],
                      return_type=C.c_double)
    loader = ModuleLoader()
    loader.load(fx("loader_risky"), abi)
    compiled = lambda x: loader.call("risky_kernel", x)  # noqa: E731

    def reference(x: float) -> float:
        return x * 2.0 + 1.0

    out = ExplicitFallback.run_with_guard(compiled, reference, 3.14, fallback_enabled=False)
    assert out == reference(3.14)
    assert ExplicitFallback.fallback_to_python(compiled, reference, 3.14) == reference(3.14)
    # A crashing call is contained, then the module is quarantined until
    # reloaded (a new load of the bytes gets a fresh copy).
    if not getattr(edgert._edgert, "_guard_enabled", lambda: True)():
        return  # EDGERT_CRASH_GUARD=0: a crash would end the process
    with pytest.raises(CompiledModeFailure) as info:
        ExplicitFallback.run_with_guard(compiled, reference, -1.0, fallback_enabled=False)
    assert isinstance(info.value.__cause__, edgert.KernelCrash)
    assert loader.quarantined
    with pytest.raises(edgert.QuarantinedError, match="'risky_kernel'.*loader_risky"):
        loader.call("risky_kernel", 1.0)
    loader.load(fx("loader_risky"), abi)
    assert not loader.quarantined
    assert loader.call("risky_kernel", 1.0) == 3.0
    loader.unload()


@pytest.mark.parametrize("release_gil", [False, True])
def test_unload_from_a_callback_inside_a_call_waits_for_it(release_gil: bool) -> None:
    loader = ModuleLoader().load(fx("loader_kernels"), [
        ABIContract("call_back", [C.c_void_p], C.c_int, release_gil=release_gil),
        ABIContract("inc", [C.c_int64], C.c_int64)])
    seen: list = []

    @C.CFUNCTYPE(None)
    def unload_now() -> None:
        loader.unload()
        try:
            loader.call("inc", 1)
        except ModuleUnloadedError:
            seen.append("refused")

    address = C.cast(unload_now, C.c_void_p).value
    # The module's code after the callback still runs: it was not unmapped.
    assert loader.call("call_back", address) == 7
    assert seen == ["refused"]
    with pytest.raises(ModuleUnloadedError):
        loader.call("call_back", address)


def test_a_crash_raises_kernel_crash_then_quarantines() -> None:
    if not getattr(edgert._edgert, "_guard_enabled", lambda: True)():
        pytest.skip("the crash guard is off")
    loader = ModuleLoader().load(fx("loader_risky"), [
        ABIContract("risky_kernel", [C.c_double], C.c_double, release_gil=False)])
    released = ModuleLoader().load(fx("loader_risky"), [
        ABIContract("risky_kernel", [C.c_double], C.c_double)])
    f, g = loader.function("risky_kernel"), released.function("risky_kernel")
    assert f(1.0) == 3.0 and g(1.0) == 3.0
    with pytest.raises(edgert.KernelCrash) as info:
        f(-1.0)
    assert info.value.signal_name == "SIGSEGV"
    assert info.value.function == "risky_kernel"
    assert "loader_risky" in info.value.module
    # Same bytes, one mapping: both handles are quarantined.
    assert loader.quarantined and released.quarantined
    for h in (f, g):
        with pytest.raises(edgert.QuarantinedError, match="'risky_kernel'"):
            h(1.0)
    # A new load of the bytes gets a fresh copy and leaves the crashed one
    # quarantined; a reload moves a handle (and its bound callables) off it.
    released.load(fx("loader_risky"), ABIContract("risky_kernel", [C.c_double], C.c_double))
    assert loader.quarantined and not released.quarantined
    loader.reload()
    assert not loader.quarantined
    assert f(2.0) == 5.0
    loader.unload()
    released.unload()
