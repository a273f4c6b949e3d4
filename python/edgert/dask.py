"""edgert on Dask distributed: modules that travel with the work.

    from edgert.dask import ShipModules
    client.register_plugin(ShipModules(["kernels/libk.so"]))
    client.submit(kernel, 3.0)      # a Kernel or bound function, pickled by content
    print(nexus_report(client))     # every worker's kernels: per worker and total

``ShipModules`` carries each module's bytes to every worker once (read and
hashed once, here), verifies them there and keeps them loaded for the
worker's life, so tasks that unpickle kernels bind to them by SHA-256 on
workers that have no copy of the files. Importing ``edgert`` never imports
this module or Dask. See docs/distributed.md.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from distributed.diagnostics.plugin import WorkerPlugin

from . import _ship

__all__ = ["ShipModules", "NameCrashes", "NexusReport", "nexus_report"]


def _name_crashes(worker: Any) -> None:
    """From now on a KernelCrash raised in this process names `worker`
    (its ``worker`` attribute and its message), so the client that
    receives it knows where it happened."""
    from .workers import worker_initializer
    worker_initializer(str(worker.address))


class NameCrashes(WorkerPlugin):
    """A Dask WorkerPlugin that makes every KernelCrash raised on a worker
    name that worker's address (``exc.worker`` and the message), for
    clusters that do not register ShipModules (which does the same).
    Worker processes only: workers sharing one process (``processes=False``)
    share one name, the last one set up."""

    name = "edgert-name-crashes"

    def setup(self, worker: Any) -> None:
        _name_crashes(worker)


class ShipModules(WorkerPlugin):
    """A Dask WorkerPlugin (register it with ``Client.register_plugin``).

    `manifest_or_paths`: a manifest (``*.json``; each module checked against
    the manifest's hash here), one module path or an iterable of them. The
    files are read and hashed once, on the client. On each worker, setup()
    checks the received bytes against that hash and loads them verified
    (the loader hashes its sealed copy again); a mismatch raises
    IntegrityError naming the worker, and ``register_plugin`` fails with it.
    """

    def __init__(self, manifest_or_paths: Any) -> None:
        self._modules: List[_ship.Shipped] = _ship.collect(manifest_or_paths)
        self.name = "edgert-ship-" + "-".join(sorted(sha[:16] for _, sha, _ in self._modules))

    @property
    def sha256s(self) -> List[str]:
        """The SHA-256 of every module shipped, in order."""
        return [sha for _, sha, _ in self._modules]

    def setup(self, worker: Any) -> None:
        where = f"worker {worker.address}"
        if worker.name is not None and str(worker.name) != worker.address:
            where += f" (name {worker.name!r})"
        _name_crashes(worker)
        local = getattr(worker, "local_directory", None)
        _ship.install(self._modules, where, local if local and os.path.isdir(local) else None)

    def teardown(self, worker: Any) -> None:
        # The modules stay loaded until the worker process ends: a task may
        # still run a kernel while the worker closes.
        pass


# ---- nexus_report ------------------------------------------------------------------

_COUNTERS = ("calls", "compiled", "guard_misses", "fallbacks", "failures", "mismatches",
             "validations")


def _worker_nexus_stats() -> List[Dict[str, Any]]:
    """Runs on each worker (client.run): one row per kernel name, merging
    every distinct kernel of that name in this process: those of every live
    Nexus and every kernel unpickled here (kept for the process's life, so
    the calls of tasks that have ended count). A kernel held by a Nexus and
    unpickled here too counts once."""
    from . import _pickle
    from .nexus import Nexus
    kernels: Dict[int, Any] = {}
    nexuses: Dict[str, int] = {}
    for nx in Nexus.live():
        for name, k in list(nx._kernels.items()):
            kernels[id(k)] = k
            nexuses[name] = nexuses.get(name, 0) + 1
    for k in _pickle.process_kernels():
        kernels[id(k)] = k
    rows: Dict[str, Dict[str, Any]] = {}
    for k in kernels.values():
        name, s = k.name, k.stats()
        r = rows.get(name)
        if r is None:
            rows[name] = r = {"kernel": name, "kernels": 0, "nexuses": nexuses.get(name, 0),
                              "versions": set(), "quarantined": 0, "compiled_p50_ns": [],
                              "reference_p50_ns": []}
            for c in _COUNTERS:
                r[c] = 0
        r["kernels"] += 1
        r["versions"].add(s["version"])
        r["quarantined"] += s["state"] != "active"
        for c in _COUNTERS:
            r[c] += s[c]
        for side in ("compiled", "reference"):
            p50 = s[side + "_latency"]["p50_ns"]
            if p50 is not None:
                r[side + "_p50_ns"].append(p50)
    out = []
    for r in rows.values():
        r["versions"] = sorted(r["versions"])
        for side in ("compiled", "reference"):
            v = r[side + "_p50_ns"]
            r[side + "_p50_ns"] = max(v) if v else None  # the slowest kernel's median
        out.append(r)
    return sorted(out, key=lambda r: r["kernel"])


class NexusReport:
    """What nexus_report() gathered: ``rows`` (one dict per worker and
    kernel name: worker, kernel, kernels (distinct kernels of that name
    merged), nexuses (live Nexus objects holding one), versions,
    quarantined, the counters
    calls/compiled/guard_misses/fallbacks/failures/mismatches/validations,
    compiled_p50_ns, reference_p50_ns), ``totals`` (the same summed over the
    workers, one per kernel; worker ``"total"``) and ``workers`` (every
    worker asked, with or without kernels). str() is a table as
    Nexus.report() prints for one process."""

    def __init__(self, per_worker: Dict[str, List[Dict[str, Any]]]) -> None:
        self.workers: List[str] = sorted(per_worker)
        self.rows: List[Dict[str, Any]] = []
        tot: Dict[str, Dict[str, Any]] = {}
        for w in self.workers:
            for r in per_worker[w]:
                row = dict(r, worker=w)
                self.rows.append(row)
                t = tot.get(r["kernel"])
                if t is None:
                    tot[r["kernel"]] = t = {"worker": "total", "kernel": r["kernel"],
                                            "kernels": 0, "nexuses": 0,
                                            "versions": [], "quarantined": 0,
                                            "compiled_p50_ns": None, "reference_p50_ns": None}
                    for c in _COUNTERS:
                        t[c] = 0
                t["kernels"] += r["kernels"]
                t["nexuses"] += r["nexuses"]
                t["versions"] = sorted(set(t["versions"]) | set(r["versions"]))
                t["quarantined"] += r["quarantined"]
                for c in _COUNTERS:
                    t[c] += r[c]
                # Medians do not add: the total shows the slowest worker's.
                for side in ("compiled_p50_ns", "reference_p50_ns"):
                    if r[side] is not None and (t[side] is None or r[side] > t[side]):
                        t[side] = r[side]
        self.totals: List[Dict[str, Any]] = [tot[k] for k in sorted(tot)]

    def total(self, kernel: str) -> Dict[str, Any]:
        """The totals row of `kernel`; KeyError names an unknown kernel."""
        for t in self.totals:
            if t["kernel"] == kernel:
                return t
        raise KeyError(f"no worker has a kernel named {kernel!r}")

    _COLUMNS = ("worker", "kernel", "versions", "state", "calls", "compiled", "guard_misses",
                "fallbacks", "failures", "mismatches", "compiled p50", "reference p50")

    def __str__(self) -> str:
        from .nexus import _fmt_ns
        if not self.rows:
            return f"edgert nexus: no kernels registered on {len(self.workers)} worker(s)"
        table: List[List[str]] = [list(self._COLUMNS)]
        for r in self.rows + self.totals:
            state = "active" if not r["quarantined"] else f"{r['quarantined']} quarantined !"
            table.append([r["worker"], r["kernel"], ",".join(f"v{v}" for v in r["versions"]), state]
                         + [str(r[c]) for c in _COUNTERS[:-1]]
                         + [_fmt_ns(r["compiled_p50_ns"]), _fmt_ns(r["reference_p50_ns"])])
        widths = [max(len(row[i]) for row in table) for i in range(len(self._COLUMNS))]
        lines = []
        for i, row in enumerate(table):
            if i == len(self.rows) + 1:
                lines.append("  ".join("-" * w for w in widths))
            cells = [c.ljust(w) if j < 4 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))]
            lines.append("  ".join(cells).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<edgert.dask.NexusReport: {len(self.totals)} kernel(s) on "
                f"{len(self.workers)} worker(s)>")


def nexus_report(client: Any, workers: Optional[List[str]] = None) -> NexusReport:
    """Gathers stats() of every kernel on each worker (``client.run``;
    `workers` limits it to those addresses): every kernel unpickled there
    (one per kernel shipped, kept for the worker's life, so a plain
    ``client.map(kernel, parts)`` counts every call) and every kernel of a
    Nexus alive there. Merges them into one NexusReport: a row per worker
    and kernel name, and totals per kernel name. Counters add up; a latency
    median cannot, so the totals show the slowest worker's."""
    kwargs: Dict[str, Any] = {}
    if workers is not None:
        kwargs["workers"] = list(workers)
    per_worker = client.run(_worker_nexus_stats, **kwargs)
    return NexusReport(per_worker)
