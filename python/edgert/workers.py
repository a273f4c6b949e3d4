"""Which process a KernelCrash happened in: the worker name it carries.

A contained kernel crash raises KernelCrash in the process that ran the
kernel; an engine (Dask, Ray, a process pool) pickles it back to the caller,
whose traceback would otherwise not say where it happened. So every
KernelCrash names its process in ``exc.worker`` (never None):

- the name this process was given by :func:`worker_initializer` (edgert.dask
  gives each worker its address, edgert.ray's setup hook ``ray worker pid N
  on host``); a name given before a ``fork`` is the parent's, so a forked
  child uses the default below;
- else ``"host:pid"``.

The message ends ``(on worker NAME)`` in a worker: a process that was given
a name, or one that multiprocessing started (``multiprocessing`` and
``concurrent.futures`` pools, whatever their start method). A crash in the
main process of a program keeps its message as it was.

    from concurrent.futures import ProcessPoolExecutor
    ProcessPoolExecutor(initializer=edgert.worker_initializer, initargs=("pool-a",))

See docs/distributed.md.
"""
from __future__ import annotations

import os
import socket
import sys
from typing import Optional, Tuple

from . import _edgert

__all__ = ["worker_initializer"]

# The pid worker_initializer ran in: a name set in another process (a fork
# parent) is not this process's. None while no name was set through it
# (then _edgert._crash_worker, if a str, is taken as set in this process).
_named_pid: Optional[int] = None


def _default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_initializer(name: Optional[str] = None) -> None:
    """Names this process in the KernelCrash reports it raises
    (``exc.worker`` and a message ending ``(on worker NAME)``). Pass it as a
    pool's ``initializer`` (``initargs=(name,)`` optional); `name` None
    means ``"host:pid"``. A name that is not a str is a TypeError."""
    global _named_pid
    if name is None:
        name = _default_name()
    elif not isinstance(name, str):
        raise TypeError(f"worker_initializer(): the worker name must be a str or None, "
                        f"not {type(name).__name__}")
    _edgert._crash_worker = name
    _named_pid = os.getpid()


def _crash_site() -> Tuple[str, bool]:
    """(the worker name for a KernelCrash raised now, whether its message
    names it): called by the extension when it raises KernelCrash."""
    name = getattr(_edgert, "_crash_worker", None)
    if isinstance(name, str) and _named_pid in (None, os.getpid()):
        return name, True
    mp = sys.modules.get("multiprocessing")
    started_by_multiprocessing = mp is not None and mp.parent_process() is not None
    return _default_name(), started_by_multiprocessing
