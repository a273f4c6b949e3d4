"""The nexus policy's scenario table (tests/scenarios/nexus_policy.json) run
against edgert.Kernel. The same table runs against the C nexus
(tests/c/test_nexus_scenarios.c), so a change of policy made in one host and
not the other fails a runner.

The compiled side is a Python callable f(x, step) doing what the step says
(the table's "kernel" text), running the step's nested steps first; the
reference computes 2x + 1. A "miss" step is a call with a keyword argument,
which a Kernel's contract refuses (a guard miss) whatever its compiled side.
Every scenario runs twice: calling the handle, and calling its builtin
`k.call` (the way in that the interpreter specialises), which must behave
alike step for step (but for "miss" steps: k.call takes positional arguments
only, so those call the handle). After every step no call is left running
(stats()["running"] is 0): each call that entered has ended exactly once,
which the Kernel relies on to release the versions it drops (docs/nexus.md).
"""
from __future__ import annotations

import json
import math
import pathlib
from typing import Any, Dict, List

import pytest

import edgert

TABLE_PATH = pathlib.Path(__file__).resolve().parents[1] / "scenarios" / "nexus_policy.json"
TABLE = json.loads(TABLE_PATH.read_text())


def _for_python(item: Dict[str, Any]) -> bool:
    return "python" in item.get("hosts", ["python"])


def _number(v: Any) -> float:
    return float(v)  # float("inf"), float("-inf"), float("nan") read the table's strings


def _options(opts: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(opts)
    if "tolerance" in out:
        out["tolerance"] = _number(out["tolerance"])
    return out


class _Runner:
    def __init__(self, name: str, options: Dict[str, Any], entry: str = "handle") -> None:
        self.where = f"scenario {name!r} through {entry}"
        self.kernel = edgert.Kernel("k", self.compiled, self.reference, **_options(options))
        self.entry = self.kernel if entry == "handle" else self.kernel.call
        # a nested step's failed check, kept: raised inside the compiled side,
        # the nexus would take it for the kernel's failure and fall back
        self.nested_failure: AssertionError | None = None
        self.nesting = 0  # calls of the kernel the current step runs inside

    @staticmethod
    def reference(x: float, step: Any = None) -> float:
        return 2.0 * x + 1.0

    def compiled(self, x: float, step: Dict[str, Any]) -> float:
        outer = self.where
        self.nesting += 1
        try:
            self.run(step.get("nested", []))
        except AssertionError as e:
            self.nested_failure = self.nested_failure or e
        finally:
            self.nesting -= 1
        self.where = outer
        action = step["call"]
        if action == "fail":
            raise ValueError("the scripted compiled side fails")
        if action == "abandon":
            raise KeyboardInterrupt
        if action == "inf":
            return math.inf
        if action == "neg_inf":
            return -math.inf
        if action == "differ":
            return 2.0 * x + 1.0 + _number(step["delta"])
        return 2.0 * x + 1.0

    def check_expect(self, step: Dict[str, Any]) -> None:
        stats = self.kernel.stats()
        # the calls running are the ones this step is nested in
        assert stats["running"] == self.nesting, \
            f"{self.where}: {stats['running']} call(s) running, {self.nesting} entered and not ended"
        for key, want in step.get("expect", {}).items():
            assert stats[key] == want, f"{self.where}: {key} is {stats[key]!r}, the table says {want!r}"

    def call(self, step: Dict[str, Any]) -> None:
        x = _number(step["x"])
        error = step.get("error")
        try:
            if step["call"] == "miss":
                # a keyword call: k.call takes none (TypeError), so a miss
                # goes through the handle whatever the entry
                got = self.kernel(x, step=step)
            else:
                got = self.entry(x, step)
        except edgert.CompiledModeFailure as e:
            assert error == "failed", f"{self.where}: raised {e!r}, the table says {error!r}"
            assert (e.kernel, e.version) == ("k", self.kernel.version)
            assert isinstance(e.__cause__, ValueError)
            return
        except edgert.FallbackMismatchError as e:
            assert error == "mismatch", f"{self.where}: raised {e!r}, the table says {error!r}"
            assert (e.kernel, e.version) == ("k", self.kernel.version)
            assert isinstance(e.difference, str) and e.difference
            assert e.reference_result == 2.0 * x + 1.0
            assert e.compiled_result != e.reference_result
            return
        except KeyboardInterrupt:
            assert error == "abandoned", f"{self.where}: abandoned, the table says {error!r}"
            return
        assert error is None, f"{self.where}: returned {got!r}, the table says it fails ({error})"
        if "result" in step:
            want = _number(step["result"])
            assert got == want or (math.isnan(got) and math.isnan(want)), \
                f"{self.where}: returned {got!r}, the table says {want!r}"

    def run(self, steps: List[Dict[str, Any]]) -> None:
        base = self.where
        for i, step in enumerate(steps, 1):
            self.where = f"{base} / step {i}"
            if not _for_python(step):
                continue
            if "call" in step:
                self.call(step)
                if self.nested_failure is not None:
                    raise self.nested_failure
            elif "swap" in step:
                self.kernel.swap(self.compiled)
            elif "reset" in step:
                self.kernel.reset()
            elif "rollback" in step:
                if "error" in step:
                    with pytest.raises(ValueError) as e:
                        self.kernel.rollback(step["rollback"])
                    assert step["error"] in str(e.value), f"{self.where}: {e.value}"
                else:
                    self.kernel.rollback(step["rollback"])
            else:
                raise AssertionError(f"{self.where}: a step with nothing to do")
            self.check_expect(step)
        self.where = base


SCENARIOS = [s for s in TABLE["scenarios"] if _for_python(s)]


def test_the_table_has_every_kind_of_step():
    text = json.dumps(TABLE["scenarios"])
    for kind in ('"ok"', '"differ"', '"fail"', '"miss"', '"nested"', '"inf"', '"swap"',
                 '"reset"', '"rollback"', '"abandon"'):
        assert kind in text, kind


@pytest.mark.parametrize("entry", ["handle", "k.call"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_scenario_holds_for_the_python_kernel(scenario, entry):
    _Runner(scenario["name"], scenario.get("options", {}), entry).run(scenario["steps"])


BAD = [b for b in TABLE["invalid_options"] if _for_python(b)]


@pytest.mark.parametrize("bad", BAD, ids=[b["error"] for b in BAD])
def test_refused_option_is_refused_with_the_table_message(bad):
    with pytest.raises(ValueError) as e:
        edgert.Kernel("k", _Runner.reference, _Runner.reference, **_options(bad["options"]))
    assert bad["error"] in str(e.value)
    nx = edgert.Nexus()
    with pytest.raises(ValueError, match="tolerance|history|max_failures|validate_every"):
        nx.register("k", _Runner.reference, _Runner.reference, **_options(bad["options"]))
    assert "k" not in nx
