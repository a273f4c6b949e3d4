"""The dispatch layer: named kernels that route each call to a compiled
kernel when its ABI contract accepts the arguments, or to a Python
reference, and count, log and report what happened.

    nx = edgert.Nexus()
    scale = nx.register("scale", loader.function("scale"), py_scale)
    scale(3.0)                  # compiled, or the reference on a guard miss
    nx.call("scale", 3.0)       # the same, by name

    @nx.kernel(loader)          # compiled side: loader.function("vec_sum")
    def vec_sum(xs, n):         # the decorated function is the reference
        return sum(xs[:n])

The handles are :class:`Kernel` objects, implemented in C so that a call
that goes compiled costs little more than calling the bound function. See
docs/nexus.md for routing, failure policy, quarantine, hot swap and shadow
validation.
"""
from __future__ import annotations

import logging
import threading
import weakref
from typing import Any, Callable, Dict, Iterator, List, Optional

from ._edgert import Kernel

__all__ = ["Nexus", "Kernel"]

_log = logging.getLogger("edgert.nexus")

def _fmt_ns(ns: Optional[float]) -> str:
    """A latency for people: 85 ns, 1.2 us, 3.4 ms, '-' when not sampled."""
    if ns is None:
        return "-"
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.1f} us"
    if ns < 1e9:
        return f"{ns / 1e6:.1f} ms"
    return f"{ns / 1e9:.2f} s"


# Every Nexus alive in this process, held weakly (a Nexus leaves it when it is
# collected): what edgert.dask.nexus_report gathers on each worker.
_live: "weakref.WeakSet[Nexus]" = weakref.WeakSet()
_live_lock = threading.Lock()


class Nexus:
    """A registry of named kernels (see the module docstring)."""

    def __init__(self) -> None:
        self._kernels: Dict[str, Kernel] = {}
        self._lock = threading.Lock()
        with _live_lock:
            _live.add(self)

    @staticmethod
    def live() -> List["Nexus"]:
        """Every Nexus alive in this process, in no particular order (held
        weakly: a Nexus nobody references leaves when it is collected).
        edgert.dask.nexus_report reads it on each worker."""
        with _live_lock:
            return list(_live)

    def register(self, name: str, compiled: Callable[..., Any], reference: Callable[..., Any], *,
                 fallback_enabled: bool = True, max_failures: int = 3, validate_every: int = 0,
                 tolerance: float = 1e-9, strict: bool = False, history: int = 8) -> Kernel:
        """Register kernel `name` and return its callable handle.

        `compiled` is a bound function from ``ModuleLoader.function`` (its ABI
        contract is the argument guard) or any callable (no guard: its
        exceptions are failures). `reference` is the Python function that
        serves guard misses, fallbacks and quarantine, and that shadow
        validation compares against. A name already registered is a
        ValueError; bad options are ValueError or TypeError naming them.
        """
        if not isinstance(name, str):
            raise TypeError(f"a kernel name must be a str, not {type(name).__name__}")
        handle = Kernel(name, compiled, reference, fallback_enabled=fallback_enabled,
                        max_failures=max_failures, validate_every=validate_every,
                        tolerance=tolerance, strict=strict, history=history)
        with self._lock:
            if name in self._kernels:
                raise ValueError(f"kernel {name!r} is already registered")
            self._kernels[name] = handle
        _log.debug("registered kernel %r: compiled %r, reference %r, guarded=%s",
                   name, compiled, reference, handle.guarded)
        return handle

    def kernel(self, loader: Any, name: Optional[str] = None,
               **options: Any) -> Callable[[Callable[..., Any]], Kernel]:
        """Decorator: the decorated function is the reference, the compiled
        side is ``loader.function(name or f.__name__)``; returns the handle.
        `options` are register()'s keyword options."""
        def decorate(reference: Callable[..., Any]) -> Kernel:
            kname = name if name is not None else getattr(reference, "__name__", None)
            if not kname:
                raise TypeError("kernel(): the reference has no __name__; pass name=")
            return self.register(kname, loader.function(kname), reference, **options)
        return decorate

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call kernel `name` with `args` (keyword arguments go to the
        reference, as a guard miss); KeyError names an unknown kernel."""
        try:
            handle = self._kernels[name]
        except KeyError:
            raise KeyError(f"no kernel named {name!r} is registered") from None
        return handle(*args, **kwargs)

    def __getitem__(self, name: str) -> Kernel:
        try:
            return self._kernels[name]
        except KeyError:
            raise KeyError(f"no kernel named {name!r} is registered") from None

    def __contains__(self, name: object) -> bool:
        return name in self._kernels

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._kernels))

    def __len__(self) -> int:
        return len(self._kernels)

    def unregister(self, name: str) -> Kernel:
        """Remove kernel `name` and return its handle (which keeps working)."""
        with self._lock:
            try:
                return self._kernels.pop(name)
            except KeyError:
                raise KeyError(f"no kernel named {name!r} is registered") from None

    def stats(self) -> Dict[str, Dict[str, Any]]:
        """Every kernel's stats(), by name."""
        return {name: k.stats() for name, k in list(self._kernels.items())}

    _COLUMNS = ("kernel", "version", "state", "calls", "compiled", "guard_misses", "fallbacks",
                "failures", "mismatches", "compiled p50", "reference p50")

    _ISOLATION_COLUMNS = ("timeouts", "respawns")

    def report(self) -> str:
        """All kernels as a table a person reads at a glance: one row per
        kernel with its version, state, counters and the sampled median
        latency of each side. Quarantined kernels are marked with '!';
        kernels whose compiled side runs in an isolated worker process with
        '[isolated]' after the name, and when there is one the table adds
        their timeouts and their module's worker respawns."""
        stats = [(name, k.stats()) for name, k in list(self._kernels.items())]
        if not stats:
            return "edgert nexus: no kernels registered"
        isolated = any(s.get("isolated") for _, s in stats)
        columns = list(self._COLUMNS) + (list(self._ISOLATION_COLUMNS) if isolated else [])
        rows: List[List[str]] = [columns]
        for name, s in stats:
            state = s["state"] if s["state"] == "active" else f"{s['state']} !"
            row = [f"{name} [isolated]" if s.get("isolated") else name, f"v{s['version']}",
                   state, str(s["calls"]), str(s["compiled"]),
                   str(s["guard_misses"]), str(s["fallbacks"]), str(s["failures"]),
                   str(s["mismatches"]), _fmt_ns(s["compiled_latency"]["p50_ns"]),
                   _fmt_ns(s["reference_latency"]["p50_ns"])]
            if isolated:
                row += [str(s["timeouts"]), str(s["respawns"])] if s.get("isolated") else ["-", "-"]
            rows.append(row)
        widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
        lines = []
        for i, r in enumerate(rows):
            cells = [c.ljust(w) if j < 3 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))]
            lines.append("  ".join(cells).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def _adopt(self, handle: Kernel) -> None:
        """Registers an existing handle under its name (unpickling)."""
        with self._lock:
            if handle.name in self._kernels:
                raise ValueError(f"kernel {handle.name!r} is already registered")
            self._kernels[handle.name] = handle

    def __reduce__(self) -> Any:
        """Pickles by content: every kernel as Kernel pickles (name,
        compiled side by module hash, reference, options); counters and
        quarantine stay in this process (docs/distributed.md)."""
        from ._pickle import FORMAT, _rebuild_nexus
        return (_rebuild_nexus, ({"v": FORMAT, "kernels": list(self._kernels.values())},))

    def __repr__(self) -> str:
        return f"<edgert.Nexus with {len(self._kernels)} kernel(s): {', '.join(self._kernels)}>"
