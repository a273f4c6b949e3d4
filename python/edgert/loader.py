"""The verified module loader: ``ModuleLoader``.

``ModuleLoader`` is implemented in C (``edgert._edgert``): it reads a shared
object once into sealed memory, checks it is a 64-bit ELF shared object for
this machine, verifies the SHA-256 of the sealed bytes before any of its code
runs, maps it (checking that the object the dynamic linker returns is that
sealed copy), and binds functions the module defines itself through ABI
contracts. ``load(..., isolate_symbols=True)`` maps it with RTLD_DEEPBIND, so
its calls to its own functions cannot be taken over by other libraries;
``interposable_calls(path)`` lists the calls that could be. Its
dependencies (DT_NEEDED) are resolved as the dynamic linker would before
anything is mapped: those the process has or that live in trusted system
folders are left to it, every other one must be listed with
``dependencies={name_or_path: sha256}`` and is verified and mapped first
(an unlisted one is ``IntegrityError``, a missing one ``FileNotFoundError``). Calls
convert arguments strictly (``TypeError`` for a wrong type or count,
``OverflowError`` instead of truncation) and release the GIL unless the
contract says ``release_gil=False``. See docs/loader.md.
"""
import os
from typing import List, Union

from . import _edgert
from ._edgert import ModuleLoader

__all__ = ["ModuleLoader", "interposable_calls"]


def interposable_calls(path: Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]) -> List[str]:
    """The symbols the shared object at `path` defines (exported, default
    visibility) and also calls or references through its PLT or GOT, sorted.

    ELF binds those references through the process's global scope first:
    an ``LD_PRELOAD`` library, the main program or an ``RTLD_GLOBAL`` library
    that defines one of these names takes over the module's own internal
    calls to it, and a verified module then runs unverified code. An empty
    list means no such call exists (a ``-fvisibility=hidden`` or
    ``-Wl,-Bsymbolic`` build). ``ModuleLoader.load(..., isolate_symbols=True)``
    binds them inside the module at load time instead.

    Reads the file's dynamic section; loads and runs nothing. Raises OSError
    (cannot read), ModuleFormatError (not a 64-bit ELF shared object for this
    machine, or a malformed dynamic section), ValueError (over 1 GiB).
    """
    return _edgert.interposable_calls(path)
