"""edgert on Ray: modules that travel with the work.

    import ray, edgert.ray
    ray.init(runtime_env={"worker_process_setup_hook":
                          edgert.ray.setup_hook(["kernels/libk.so"])})

``setup_hook`` reads and hashes the modules once, here, and returns a
callable that Ray runs in every worker process at its start: it checks the
bytes against those hashes and loads them verified, kept loaded for the
worker's life, so kernels pickled by content bind to them by SHA-256 on
workers without the files (as edgert.dask.ShipModules). A mismatch raises
IntegrityError naming the worker process; a KernelCrash raised in the worker
names it too (``exc.worker``, ``ray worker pid N on host``, and the message),
also on the driver. Importing this module does not
import Ray. See docs/distributed.md.
"""
from __future__ import annotations

import os
import socket
from typing import Any, List

import sys

from . import _edgert, _ship
from .fallback import _reassert_after
from .workers import worker_initializer

__all__ = ["setup_hook"]


def _keep_the_guard_in_front() -> None:
    """ray.init installs Ray's own handlers for SIGSEGV and the other fatal
    signals (its C++ core's failure handler) in front of edgert's crash
    guard, and ray.shutdown resets them to the default action: either way
    the next kernel fault in this process would end it instead of raising
    KernelCrash. Put the guard back in front after both (as importing
    edgert does for faulthandler and signal.signal). Only if Ray is already
    imported: this module never imports it."""
    ray = sys.modules.get("ray")
    if ray is None or not _edgert._guard_enabled():
        return
    for name in ("init", "shutdown"):
        fn = getattr(ray, name, None)
        if fn is not None:
            setattr(ray, name, _reassert_after(fn))


class _SetupHook:
    """The callable setup_hook returns (pickled by Ray with its bytes)."""

    def __init__(self, modules: List[_ship.Shipped]) -> None:
        self._modules = modules
        # Ray names the hook by its __name__ when it exports it (a
        # function's attribute; without it ray.init fails with
        # RuntimeEnvSetupError). An instance attribute: the class keeps
        # its own name, which pickling looks it up by.
        self.__name__ = "edgert_ray_setup_hook"

    @property
    def sha256s(self) -> List[str]:
        return [sha for _, sha, _ in self._modules]

    def __call__(self) -> None:
        where = f"ray worker pid {os.getpid()} on {socket.gethostname()}"
        # A KernelCrash raised in this worker names it (exc.worker and the
        # message), also after Ray carries it to the driver.
        worker_initializer(where)
        _ship.install(self._modules, where)
        # The worker's core installed Ray's fault handlers before this hook
        # runs: the guard goes back in front, so a kernel fault in a task
        # is a KernelCrash there, not the end of the worker.
        if _edgert._guard_enabled():
            _edgert._guard_install()
        _keep_the_guard_in_front()


def setup_hook(manifest_or_paths: Any) -> _SetupHook:
    """The ``worker_process_setup_hook`` for `manifest_or_paths` (a manifest
    ``*.json``, one module path or an iterable of them). Also keeps edgert's
    crash guard in front of the handlers ray.init and ray.shutdown install
    in this process (see _keep_the_guard_in_front)."""
    _keep_the_guard_in_front()
    return _SetupHook(_ship.collect(manifest_or_paths))
