"""The guarded-call policy's scenario table (tests/scenarios/guard_policy.json)
run against ExplicitFallback: strict 0 is run_with_guard, strict 1 is
fallback_to_python. tests/c/test_guard_scenarios.c runs the same table
against edgert_guard_call, so a change to the policy made in one host and
not the other fails one of the two. Each scenario loads the guard_crashy
fixture afresh and zeroes the counters; each step checks the outcome, the
value returned and every counter of ExplicitFallback.stats() afterwards."""
from __future__ import annotations

import ctypes
import json
import math
import pathlib
from typing import Any, Callable, Dict, List

import pytest

import edgert
from conftest import fixture_path
from edgert import CompiledModeFailure, ExplicitFallback, FallbackMismatchError

# Relative to this file, so that every place the suite runs from a checkout
# (make test, the AArch64 run under qemu, the free-threaded run, the version
# matrix) finds it.
TABLE_PATH = pathlib.Path(__file__).resolve().parents[1] / "scenarios" / "guard_policy.json"
TABLE: Dict[str, Any] = json.loads(TABLE_PATH.read_text())
COUNTERS = ["calls", "compiled", "failures", "crashes", "fallbacks", "reference_failures",
            "validations", "matches", "mismatches"]


class ReferenceFailed(Exception):
    """What the scripted reference raises for "ref": "error"."""


def number(v: Any) -> float:
    return float(v)  # a JSON number, or "nan", "inf", "-inf"


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (
        a == b and math.copysign(1.0, a) == math.copysign(1.0, b))


def field(step: Dict[str, Any], name: str) -> Any:
    return step.get(name, TABLE["defaults"].get(name))


def uses_crash(scenario: Dict[str, Any]) -> bool:
    return any(s.get("compiled") == "crash" for s in scenario["steps"])


@pytest.fixture
def fresh_counters():
    ExplicitFallback.reset_stats()
    yield
    ExplicitFallback.reset_stats()


@pytest.mark.parametrize("scenario", TABLE["scenarios"], ids=lambda s: s["name"])
def test_scenario(scenario: Dict[str, Any], fresh_counters: None) -> None:
    if uses_crash(scenario) and not edgert.crash_guard_enabled():
        pytest.skip("EDGERT_CRASH_GUARD=0: a crash would end the process")
    dbl = ([ctypes.c_double], ctypes.c_double)
    loader = edgert.ModuleLoader()
    loader.load(fixture_path("guard_crashy"), edgert.ABIContract("guard_identity", *dbl))
    loader.bind(edgert.ABIContract("guard_null_deref", *dbl))
    identity = loader.function("guard_identity")
    crash = loader.function("guard_null_deref")
    try:
        for i, step in enumerate(scenario["steps"], 1):
            run_step(f"{scenario['name']}, step {i}", step, loader, identity, crash)
    finally:
        loader.unload()


def run_step(where: str, step: Dict[str, Any], loader: Any, identity: Callable[..., Any],
             crash: Callable[..., Any]) -> None:
    compiled = {"identity": identity, "crash": crash, "unloaded": identity}[field(step, "compiled")]
    if field(step, "compiled") == "unloaded":
        loader.unload()
    ref_value = field(step, "ref")
    ref_runs: List[int] = []

    def reference(x: float) -> float:
        ref_runs.append(1)
        if ref_value == "error":
            raise ReferenceFailed("the scripted reference failed")
        return number(ref_value)

    x = number(field(step, "x"))
    tolerance = number(field(step, "tolerance"))
    strict, fallback = int(field(step, "strict")), int(field(step, "fallback"))
    assert not (strict and fallback), f"{where}: fallback_to_python has no fallback option"

    def call() -> Any:
        if strict:
            return ExplicitFallback.fallback_to_python(compiled, reference, x, tolerance=tolerance)
        return ExplicitFallback.run_with_guard(compiled, reference, x, tolerance=tolerance,
                                               fallback_enabled=bool(fallback))

    expect = field(step, "expect")
    if expect == "compiled":
        out = call()
        assert same(out, x), f"{where}: returned {out!r}, not the compiled result {x!r}"
    elif expect == "reference":
        out = call()
        assert same(out, number(ref_value)), f"{where}: returned {out!r}, not the reference's"
    elif expect == "failure":
        with pytest.raises(CompiledModeFailure):
            call()
    elif expect == "mismatch":
        with pytest.raises(FallbackMismatchError):
            call()
    elif expect == "reference_error":
        with pytest.raises(ReferenceFailed):
            call()
        assert len(ref_runs) == 1
    elif expect == "option":
        with pytest.raises(ValueError, match="tolerance must be"):
            call()
        assert not ref_runs
    else:
        raise AssertionError(f"{where}: unknown expectation {expect!r}")
    want = {name: int(step["counts"].get(name, 0)) for name in COUNTERS}
    got = {name: ExplicitFallback.stats()[name] for name in COUNTERS}
    assert got == want, f"{where}: counters"


def test_the_table_has_every_kind_of_step() -> None:
    steps = [s for sc in TABLE["scenarios"] for s in sc["steps"]]
    assert {field(s, "expect") for s in steps} == {
        "compiled", "reference", "failure", "mismatch", "reference_error", "option"}
    assert {field(s, "compiled") for s in steps} == {"identity", "crash", "unloaded"}


def test_c_calls_show_in_explicit_fallback_stats(fresh_counters: None) -> None:
    """One set of counters: a C host's edgert_guard_call, made through
    ctypes in this process, shows in ExplicitFallback.stats()."""
    lib = ctypes.CDLL(fixture_path("guard_policy_host"))
    lib.guard_policy_host_calls.restype = ctypes.c_int
    lib.guard_policy_host_calls.argtypes = [ctypes.c_char_p, ctypes.c_int]
    ExplicitFallback.run_with_guard(lambda x: x, lambda x: x, 1.0)
    assert lib.guard_policy_host_calls(fixture_path("guard_crashy").encode(), 3) == 0
    stats = ExplicitFallback.stats()
    assert stats["calls"] == 4 and stats["compiled"] == 4
    assert stats["validations"] == 3 and stats["matches"] == 3
    ExplicitFallback.reset_stats()
    assert set(ExplicitFallback.stats().values()) == {0}
