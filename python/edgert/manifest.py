"""Manifests: JSON lists of verified modules and their ABI contracts.

A manifest (schema in docs/manifest.md)::

    {"schema_version": 1,
     "modules": [{"path": "kernels/libvecadd.so",
                  "sha256": "<64 hex digits>",
                  "contracts": [{"function_name": "vec_add_f32",
                                 "arg_types": ["LP_c_float", "c_size_t"],
                                 "return_type": null,
                                 "calling_convention": "cdecl"}]}]}

is read by libedgert's C reader (the one C hosts use, through
``_edgert.parse_manifest``), so Python and C accept and refuse exactly the
same documents, with the same messages: every refusal is a
:class:`~edgert.ManifestError` (a ``ValueError``) whose message starts with
the field, e.g. ``modules[0].contracts[1].arg_types[2]: unknown type name
'c_flaot'``. ``load_manifest`` then loads each module with
:class:`~edgert.ModuleLoader`, verifying its SHA-256 before any of its code
runs.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Union

from . import _edgert
from .abi import ABIContract
from .errors import SymbolNotFoundError
from .loader import ModuleLoader

__all__ = ["load_manifest", "read_manifest", "write_manifest", "LoadedManifest"]

_Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


def read_manifest(path: _Path) -> List[Dict[str, Any]]:
    """Parses and checks the manifest at `path` without loading anything.

    Returns one dict per module, in order: ``path`` (as written), ``file``
    (the resolved absolute path; it exists and is a regular file),
    ``sha256`` (lowercase) and ``contracts`` (dicts in ``ABIContract.to_dict()``
    form, with canonical type names). Raises ManifestError naming the field,
    or OSError when the manifest itself cannot be read.
    """
    return _edgert.parse_manifest(path)


def write_manifest(path: _Path, modules: "Mapping[str, Iterable[ABIContract]]") -> Dict[str, Any]:
    """Writes a manifest listing `modules`, a mapping from each module's path
    (relative to the manifest's directory, or absolute) to its contracts,
    with each file's SHA-256 computed now. The file is written atomically
    (a temporary file renamed into place) after it has been read back by the
    C reader, so what is written is a manifest ``load_manifest`` accepts.
    Returns the document written. Raises OSError if a module cannot be read,
    ManifestError if the result would not be a valid manifest.
    """
    target = os.fsdecode(path)
    base = os.path.dirname(os.path.abspath(target))
    entries = []
    for rel, contracts in modules.items():
        with open(os.path.join(base, rel), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        entries.append({"path": rel, "sha256": digest, "contracts": [c.to_dict() for c in contracts]})
    doc = {"schema_version": 1, "modules": entries}
    text = json.dumps(doc, indent=2) + "\n"
    _edgert.parse_manifest_text(text, base)
    tmp = f"{target}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return doc


class LoadedManifest(Mapping):
    """The modules of a loaded manifest: a read-only mapping from each
    module's manifest ``path`` (as written) to its :class:`ModuleLoader`.

    ``function(name)`` and ``call(name, *args)`` find a function by name
    across the modules; ``unload()`` (or leaving a ``with`` block) unloads
    them all.
    """

    def __init__(self, path: str, loaders: Dict[str, ModuleLoader],
                 signature: Optional[Dict[str, Any]] = None) -> None:
        self.path: str = path
        self._loaders: Dict[str, ModuleLoader] = loaders
        #: What verification found (``key_id``, ``version``, ``expires``,
        #: ...) when loaded with trusted keys; None for an unsigned load.
        self.signature: Optional[Dict[str, Any]] = signature

    def __getitem__(self, key: str) -> ModuleLoader:
        return self._loaders[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)

    def loader_of(self, name: str) -> ModuleLoader:
        """The loader of the one module that binds function `name`.

        SymbolNotFoundError (a LookupError) if no module binds it, ValueError
        if several do (index the mapping by path then)."""
        found = [(p, ld) for p, ld in self._loaders.items() if name in ld.functions]
        if not found:
            raise SymbolNotFoundError(f"function {name!r}: no module of manifest {self.path!r} binds it")
        if len(found) > 1:
            paths = ", ".join(repr(p) for p, _ in found)
            raise ValueError(f"function {name!r} is bound in several modules ({paths}): "
                             f"use manifest[path].function({name!r})")
        return found[0][1]

    def function(self, name: str) -> Callable[..., Any]:
        """``loader.function(name)`` of the module that binds `name`."""
        return self.loader_of(name).function(name)

    def call(self, name: str, *args: Any) -> Any:
        """``loader.call(name, *args)`` of the module that binds `name`."""
        return self.loader_of(name).call(name, *args)

    def unload(self) -> None:
        """Unloads every module; their calls and bound functions raise afterwards."""
        for loader in self._loaders.values():
            loader.unload()

    def __enter__(self) -> "LoadedManifest":
        return self

    def __exit__(self, *exc: object) -> bool:
        self.unload()
        return False

    def __repr__(self) -> str:
        return f"<LoadedManifest {self.path!r}: {list(self._loaders)!r}>"


def _prefixed(exc: BaseException, prefix: str) -> BaseException:
    """`exc` again, of the same type, with `prefix` before its message (as the
    C reader words it); `exc` itself with a note when its type cannot be
    rebuilt from a message."""
    try:
        new = type(exc)(f"{prefix}{exc}")
    except Exception:
        exc.add_note(prefix.rstrip(": "))
        return exc
    new.__traceback__ = exc.__traceback__
    return new


def load_manifest(path: _Path, trusted_keys: "Optional[Union[Any, Sequence[Any]]]" = None,
                  state_file: Optional[_Path] = None) -> LoadedManifest:
    """Reads the manifest at `path` and loads every module it lists.

    With `trusted_keys` (PEM public key paths, PEM bytes, or an
    :class:`edgert.signing.KeySet`) the manifest must be signed: before any
    module is read, its ``<path>.sig`` must be a valid signature over its
    exact bytes by one of those keys, it must carry ``version`` and an
    ``expires`` still in the future, and, with `state_file`, its version must
    not be lower than the highest this device accepted (a higher one is
    recorded there first). Refusals: SignatureError, UnknownKeyError,
    ManifestExpiredError, RollbackError, StateFileError, ManifestError
    (docs/signing.md). Without trusted_keys the manifest loads unsigned, as
    before (`state_file` then is a ValueError).

    Each module is loaded with ``ModuleLoader().load(file,
    [ABIContract.from_manifest(c) ...], expected_sha256=sha256)`` (plus its
    entry's isolation options, docs/isolation.md): its SHA-256
    is verified before any of its code runs and every contract is bound.
    Returns a :class:`LoadedManifest` mapping each module's manifest path to
    its loader. All or nothing: if one module fails, the ones already loaded
    are unloaded and the error is raised with its module named
    (``modules[1] ('kernels/other.so'): ...``): ManifestError for the
    document, IntegrityError for a hash mismatch, SymbolNotFoundError for a
    missing function, ModuleFormatError, OSError.
    """
    signature: Optional[Dict[str, Any]] = None
    if trusted_keys is not None:
        from .signing import _read_signed
        signature, entries = _read_signed(path, trusted_keys, state_file, None)
    elif state_file is not None:
        raise ValueError("state_file: a version state file needs trusted_keys "
                         "(an unsigned manifest's version proves nothing)")
    else:
        entries = _edgert.parse_manifest(path)
    where = os.path.abspath(os.fsdecode(path))
    loaders: Dict[str, ModuleLoader] = {}
    try:
        for i, entry in enumerate(entries):
            contracts = [ABIContract.from_manifest(c) for c in entry["contracts"]]
            loader = ModuleLoader()
            try:
                deps = {d["file"]: d["sha256"] for d in entry.get("dependencies", [])}
                # an entry's "isolation" (the C reader checked it) as load()'s options
                isolation = entry.get("isolation") or {}
                loader.load(entry["file"], contracts, expected_sha256=entry["sha256"],
                            dependencies=deps or None, **isolation)
            except Exception as exc:
                raise _prefixed(exc, f"modules[{i}] ({entry['path']!r}): ") from None
            loaders[entry["path"]] = loader
    except BaseException:
        for loader in loaders.values():
            loader.unload()
        raise
    return LoadedManifest(where, loaders, signature)
