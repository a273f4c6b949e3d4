"""Guarded calls of compiled code with a Python reference (the article's
``module_host/fallback.py``).

Two modes, as the article describes them:

- **Production guard**: :meth:`ExplicitFallback.run_with_guard` runs only the
  compiled path. If it fails (raises, or crashes: a SIGSEGV, SIGBUS, SIGFPE or
  SIGILL inside a kernel called through edgert is contained and raised as
  :class:`~edgert.KernelCrash`), it raises :class:`CompiledModeFailure` with the
  original error as ``__cause__`` -- or, with ``fallback_enabled=True``,
  returns ``reference(*args)`` instead.
- **Strict validation**: :meth:`ExplicitFallback.fallback_to_python` runs both
  paths, compares the results elementwise within ``tolerance`` and returns the
  compiled result when they agree (as ``edgert_guard_call`` and the nexus do),
  or raises :class:`FallbackMismatchError` naming the first difference.

The policy is the core's (``include/edgert/guard_policy.h``), shared with C
hosts' ``edgert_guard_call``; so are the counters of :meth:`ExplicitFallback.stats`.

Both are implemented in C (``_edgert``) and stored on the class as plain
builtins, so ``ExplicitFallback.run_with_guard(f, ref, x)`` costs one builtin
call on top of ``f(x)``. Every call logs through the ``edgert.fallback``
logger: the function names, argument shapes, success or failure and the
fallback decision -- debug for a success, warning for a fallback, error for a
failure; with those levels off the cost is one cached level check.

The comparison (also :func:`results_match`): numbers within ``tolerance``
(absolute or relative, like ``math.isclose(a, b, rel_tol=tol,
abs_tol=tol)``; two ints exactly; NaN matches NaN), ``None``, bools (as
numbers), ``str``, ``bytes``, sequences (a list may match a tuple), mappings
(same keys), buffers (numpy arrays, ``array.array``, ``TypedList``)
elementwise by item format, and nested mixes of these.
"""
from __future__ import annotations

import faulthandler as _faulthandler
import functools as _functools
import signal as _signal
from typing import Any, Callable, Dict, Optional

from . import _edgert
from .errors import CompiledModeFailure, FallbackMismatchError

__all__ = [
    "ExplicitFallback",
    "CompiledModeFailure",
    "FallbackMismatchError",
    "results_match",
    "crash_guard_enabled",
    "process_healthy",
    "process_unhealthy_reason",
]


class ExplicitFallback:
    """Runs compiled code against a Python reference. All methods are static;
    the class is never instantiated (instances work the same way)."""

    # Plain builtins: no descriptor, no binding, one call.
    run_with_guard = _edgert.run_with_guard
    fallback_to_python = _edgert.fallback_to_python

    @staticmethod
    def stats() -> Dict[str, int]:
        """The process's guarded-call counters since it started (or the last
        :meth:`reset_stats`), C hosts' ``edgert_guard_call`` calls included:

        ``calls`` (run_with_guard calls; non-strict edgert_guard_call),
        ``compiled`` (of those, compiled calls that returned), ``failures``
        (compiled calls that raised, in either mode),
        ``crashes`` (of those, contained crashes), ``fallbacks`` (reference
        calls after a failure), ``reference_failures``, ``validations``
        (fallback_to_python calls; strict edgert_guard_call), ``matches`` and
        ``mismatches``.
        """
        return _edgert._fallback_stats()

    @staticmethod
    def reset_stats() -> None:
        """Sets every counter of :meth:`stats` to 0."""
        _edgert._fallback_reset_stats()


def results_match(compiled_result: Any, reference_result: Any, *,
                  tolerance: float = 1e-9) -> Optional[str]:
    """``None`` if the two results match under :class:`ExplicitFallback`'s
    rules, else a description of the first difference (``"at [2]: 3.0 !=
    3.5"``). ``ValueError`` for a negative tolerance."""
    return _edgert._results_match(compiled_result, reference_result, tolerance=tolerance)


def crash_guard_enabled() -> bool:
    """False when ``EDGERT_CRASH_GUARD=0`` switched crash containment off."""
    return _edgert._guard_enabled()


def process_healthy() -> bool:
    """False once a contained crash happened inside the C library or the
    dynamic linker (a kernel's callback from ``qsort`` or ``dl_iterate_phdr``
    faulted, or the kernel faulted inside ``memcpy`` or ``malloc``): one of
    their locks may be held for ever, so a later ``import`` of an extension,
    a ``dlopen``, a ``malloc`` may hang. It never turns True again; the Nexus
    sends every call to the reference from then on. Restart the process."""
    return bool(_edgert._process_health()[0])


def process_unhealthy_reason() -> Optional[str]:
    """Why :func:`process_healthy` is False (the first such crash), or None."""
    reason: Optional[str] = _edgert._process_health()[1]
    return reason


# faulthandler.enable() installs its handlers in front of the crash guard's:
# a contained crash would then print "Fatal Python error" first, and
# signal.signal(SIGSEGV, f) installs CPython's handler there, which returns
# from a fault, so that a kernel's fault would repeat for ever. Put the
# guard back in front whenever faulthandler (re)installs or removes its
# handlers or signal.signal sets one; the displaced handler still gets every
# fault the guard does not contain, exactly once (the guard chains to it),
# and every signal sent to the process (kill -SEGV reaches a Python handler).
def _reassert_after(fn: Callable[..., Any]) -> Callable[..., Any]:
    if getattr(fn, "__edgert_guard__", False):
        return fn

    @_functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            _edgert._guard_install()

    wrapper.__edgert_guard__ = True  # type: ignore[attr-defined]
    return wrapper


if _edgert._guard_enabled():
    _faulthandler.enable = _reassert_after(_faulthandler.enable)
    _faulthandler.disable = _reassert_after(_faulthandler.disable)
    # register(SIGTRAP) is allowed (the fatal signals are refused there).
    _faulthandler.register = _reassert_after(_faulthandler.register)
    _faulthandler.unregister = _reassert_after(_faulthandler.unregister)
    _signal.signal = _reassert_after(_signal.signal)
