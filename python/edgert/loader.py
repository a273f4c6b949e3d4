"""The verified module loader: ``ModuleLoader``.

``ModuleLoader`` is implemented in C (``edgert._edgert``): it reads a shared
object once into sealed memory, checks it is a 64-bit ELF shared object for
this machine, verifies its SHA-256 before any of its code runs, maps it, and
binds functions the module defines itself through ABI contracts. Calls
convert arguments strictly (``TypeError`` for a wrong type or count,
``OverflowError`` instead of truncation) and release the GIL unless the
contract says ``release_gil=False``. See docs/loader.md.
"""
from ._edgert import ModuleLoader

__all__ = ["ModuleLoader"]
