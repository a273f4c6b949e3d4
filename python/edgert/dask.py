"""edgert on Dask distributed: modules that travel with the work.

    from edgert.dask import ShipModules
    client.register_plugin(ShipModules(["kernels/libk.so"]))
    client.submit(kernel, 3.0)      # a Kernel or bound function, pickled by content

``ShipModules`` carries each module's bytes to every worker once (read and
hashed once, here), verifies them there and keeps them loaded for the
worker's life, so tasks that unpickle kernels bind to them by SHA-256 on
workers that have no copy of the files. Importing ``edgert`` never imports
this module or Dask. See docs/distributed.md.
"""
from __future__ import annotations

import os
from typing import Any, List

from distributed.diagnostics.plugin import WorkerPlugin

from . import _ship

__all__ = ["ShipModules"]


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
        local = getattr(worker, "local_directory", None)
        _ship.install(self._modules, where, local if local and os.path.isdir(local) else None)

    def teardown(self, worker: Any) -> None:
        # The modules stay loaded until the worker process ends: a task may
        # still run a kernel while the worker closes.
        pass
