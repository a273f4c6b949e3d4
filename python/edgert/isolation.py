"""Process isolation's Python helpers (docs/isolation.md).

``ModuleLoader.load(path, abi, isolation="process", timeout=...,
memory_limit=..., sandbox="none"|"strict", workers=1)`` runs a module's
functions in sandboxed worker processes; this module adds the shared memory
that such calls take by reference, zero copy:

- ``shared_buffer(nbytes)``: a :class:`SharedBuffer`, zeroed page-aligned
  bytes in shared memory with the buffer protocol, so
  ``np.frombuffer(shared_buffer(8 * n), dtype="f8")`` is an array that an
  isolated kernel reads and writes in place;
- ``TypedList(item_type, shared=True)`` (``edgert.TypedList``): a typed list
  whose storage is shared memory.

Any other buffer passed to an isolated function is copied into the worker
and, for a non-const pointer, back after the call.
"""
from ._edgert import SharedBuffer, shared_buffer

__all__ = ["SharedBuffer", "shared_buffer"]
