"""Modules that travel with the work: the part of edgert.dask.ShipModules
and edgert.ray.setup_hook that does not depend on the engine.

On the client, each module file is read once and hashed once
(``collect``). On a worker, ``install`` checks the bytes it received
against that hash, writes them to a private file (a fresh 0700 directory,
0600 file), loads it with ``expected_sha256`` = that hash (the loader reads
the file once into sealed memory and verifies the sealed bytes before any
code runs), removes the file, and keeps the module loaded for the life of
the process in ``_held``, so the by-hash lookup of unpickling
(edgert._pickle) finds it without any file. See docs/distributed.md.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from typing import Any, Dict, Iterable, List, Tuple, Union

from .errors import IntegrityError
from .loader import ModuleLoader

# name (for messages), SHA-256 (lowercase hex), the file's bytes
Shipped = Tuple[str, str, bytes]

# Modules installed in this process, by SHA-256: loaded until the process
# ends (each loader holds the module's mapping in the core's registry).
_held: Dict[str, ModuleLoader] = {}


def collect(manifest_or_paths: Any) -> List[Shipped]:
    """Reads and hashes each module once. `manifest_or_paths` is a manifest
    file (``*.json``: its modules, each checked against the manifest's
    SHA-256), one module path, or an iterable of module paths."""
    if isinstance(manifest_or_paths, (str, bytes, os.PathLike)):
        p = os.fsdecode(manifest_or_paths)
        if p.endswith(".json"):
            from .manifest import read_manifest
            out = []
            for m in read_manifest(p):
                name, sha, data = _read(m["file"])
                if sha != m["sha256"]:
                    raise IntegrityError(f"{name}: SHA-256 is {sha}, the manifest {p} expects "
                                         f"{m['sha256']}; not shipped")
                out.append((name, sha, data))
            return out
        return [_read(p)]
    try:
        items = list(manifest_or_paths)
    except TypeError:
        raise TypeError("expected a manifest path, a module path or an iterable of module "
                        f"paths, not {type(manifest_or_paths).__name__}") from None
    if not items:
        raise ValueError("no modules to ship")
    return [_read(os.fsdecode(x)) for x in items]


def _read(path: str) -> Shipped:
    with open(path, "rb") as f:
        data = f.read()
    return (os.path.abspath(path), hashlib.sha256(data).hexdigest(), data)


def install(modules: Iterable[Shipped], where: str, directory: Union[str, None] = None) -> List[str]:
    """Verifies and loads `modules` in this process (see the module
    docstring); `where` names this worker in every refusal. Returns their
    hashes. A module already installed here is skipped."""
    done = []
    for name, sha, data in modules:
        done.append(sha)
        if sha in _held and _held[sha].loaded:
            continue
        got = hashlib.sha256(data).hexdigest()
        if got != sha:
            raise IntegrityError(f"{where}: refused module {name}: the bytes received have "
                                 f"SHA-256 {got}, expected {sha}; nothing was loaded")
        d = tempfile.mkdtemp(prefix="edgert-ship-", dir=directory)
        try:
            path = os.path.join(d, sha + ".so")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            try:
                ld = ModuleLoader().load(path, expected_sha256=sha)
            except IntegrityError as exc:
                raise IntegrityError(f"{where}: refused module {name}: {exc}") from None
        finally:
            shutil.rmtree(d, ignore_errors=True)
        _held[sha] = ld
    return done
