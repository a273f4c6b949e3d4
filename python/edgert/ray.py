"""edgert on Ray: modules that travel with the work.

    import ray, edgert.ray
    ray.init(runtime_env={"worker_process_setup_hook":
                          edgert.ray.setup_hook(["kernels/libk.so"])})

``setup_hook`` reads and hashes the modules once, here, and returns a
callable that Ray runs in every worker process at its start: it checks the
bytes against those hashes and loads them verified, kept loaded for the
worker's life, so kernels pickled by content bind to them by SHA-256 on
workers without the files (as edgert.dask.ShipModules). A mismatch raises
IntegrityError naming the worker process. Importing this module does not
import Ray. See docs/distributed.md.
"""
from __future__ import annotations

import os
import socket
from typing import Any, List

from . import _ship

__all__ = ["setup_hook"]


class _SetupHook:
    """The callable setup_hook returns (pickled by Ray with its bytes)."""

    # Ray names the hook by its __name__ when it exports it (a function's
    # attribute; without it ray.init fails with RuntimeEnvSetupError).
    __name__ = "edgert_ray_setup_hook"
    __qualname__ = "edgert_ray_setup_hook"

    def __init__(self, modules: List[_ship.Shipped]) -> None:
        self._modules = modules

    @property
    def sha256s(self) -> List[str]:
        return [sha for _, sha, _ in self._modules]

    def __call__(self) -> None:
        where = f"ray worker pid {os.getpid()} on {socket.gethostname()}"
        _ship.install(self._modules, where)


def setup_hook(manifest_or_paths: Any) -> _SetupHook:
    """The ``worker_process_setup_hook`` for `manifest_or_paths` (a manifest
    ``*.json``, one module path or an iterable of them)."""
    return _SetupHook(_ship.collect(manifest_or_paths))
