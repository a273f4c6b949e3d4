"""Pickling by content: bound functions, ModuleLoader, Kernel and Nexus.

A pickle of any of them names each module by its SHA-256, the path it was
loaded from and the contracts bound in it (``ABIContract.to_dict()`` form),
never by a pointer or an address. Unpickling (``_resolve_module``):

1. a module with that SHA-256 already loaded in this process, by any loader
   (the core's registry, ``ModuleLoader.open_loaded``): bound to it without
   opening, reading or hashing any file;
2. otherwise the pickled path is loaded with ``expected_sha256`` = the
   pickled hash: a file with other bytes is refused with ``IntegrityError``
   naming both hashes, and a missing file is an ``OSError`` saying that no
   module with that hash is loaded here either.

Every state is a dict with ``"v": FORMAT``; another version is refused with
a ValueError naming both. What travels: modules (hash, path, contracts,
``isolate_symbols``, ``dependencies``), a kernel's name, compiled side,
reference (pickled as pickle or cloudpickle pickles it) and options; an
isolated module's isolation options (``isolation="process"``, timeout,
memory_limit, sandbox, workers, worker_path), so that it unpickles isolated
(never by hash from an in-process mapping: ``open_loaded`` is skipped). What
does not: counters, latencies, version history and quarantine (per
process).

A kernel also carries its identity: a random token its handle gets the first
time it is pickled (and a new one after each swap or rollback, so a token
always means one compiled version). Every pickle of that handle unpickles,
in a given process, to one Kernel: the first unpickle builds it and the
process keeps it for its life (``process_kernels``), so its counters add up
over every task that used it, after the tasks are gone, and
edgert.dask.nexus_report reads them. See docs/distributed.md.
"""
from __future__ import annotations

import copyreg
import os
import re
import threading
import uuid
import weakref
from typing import Any, Dict, List, Optional, Tuple

from . import _edgert
from .abi import ABIContract
from ._edgert import Kernel, ModuleLoader

FORMAT = 1

_HEX = re.compile(r"[0-9a-fA-F]{64}\Z")
_Bound = type(None)  # replaced by the _Bound type at import (see _setup)


def _check_version(state: Any, what: str) -> Dict[str, Any]:
    if not isinstance(state, dict) or "v" not in state:
        raise ValueError(f"cannot unpickle edgert {what}: the state is not an edgert pickle "
                         f"state (a dict with a format version), got {type(state).__name__}")
    if state["v"] != FORMAT:
        raise ValueError(f"cannot unpickle edgert {what}: pickle format version {state['v']!r}, "
                         f"this edgert ({_edgert.__version__}) reads version {FORMAT}")
    return state


# ---- modules ---------------------------------------------------------------

def _module_dependencies(owner: Any) -> List[Tuple[str, str, str]]:
    """The dependencies edgert verified for the module `owner` (a
    ModuleLoader or a bound function's _Bound) was loaded with, as (name,
    path, sha256) triples; _resolve_module passes them back to
    ``load(..., dependencies={name: sha256})``."""
    deps = getattr(owner, "dependencies", None)
    if deps is None:
        deps = getattr(owner, "_dependencies", [])
    return [tuple(d) for d in deps]


def _module_ref(sha256: str, path: str, isolated: bool, deps: List[Tuple[str, str, str]],
                isolation: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    ref = {"sha256": sha256, "path": os.path.abspath(path), "isolate_symbols": bool(isolated),
           "dependencies": [list(d) for d in deps]}
    if isolation is not None:
        ref["isolation"] = dict(isolation)
    return ref


_ISOLATION_KEYS = ("isolation", "timeout", "memory_limit", "sandbox", "workers", "worker_path")


def _isolation_kwargs(ref: Dict[str, Any], what: str) -> Optional[Dict[str, Any]]:
    """load()'s isolation keywords from a module reference, or None for an
    in-process module (load() checks their values and names a bad one)."""
    iso = ref.get("isolation")
    if iso is None:
        return None
    if not isinstance(iso, dict) or iso.get("isolation") != "process":
        raise ValueError(f"cannot unpickle {what}: its isolation options {iso!r} are not "
                         "a dict with isolation='process'")
    return {k: iso[k] for k in _ISOLATION_KEYS if k in iso}


def _isolation_key(ref: Any) -> Any:
    iso = ref.get("isolation")
    return None if iso is None else tuple(sorted(iso.items()))


class _Encoded:
    """A contract already encoded: what the loader reads from an ABIContract
    (its _encode() tuple), computed once. ABIContract is mutable, so its
    encoding cannot be memoized on it; this private, immutable stand-in is
    what unpickling binds with, which saves encoding the contract again (in
    Python, a third of the bind) on every unpickle."""

    __slots__ = ("_enc",)

    def __init__(self, contract: ABIContract) -> None:
        self._enc = contract._encode()

    def _encode(self) -> Any:
        return self._enc


_contract_cache: Dict[Tuple[Any, ...], _Encoded] = {}


def _contract_key(d: Any) -> Tuple[Any, ...]:
    return (d["function_name"], tuple(d["arg_types"]), d.get("return_type"),
            d.get("calling_convention", "cdecl"), d.get("release_gil", True),
            d.get("use_errno", False), d.get("variadic"))


def _contract(d: Any) -> Any:
    """ABIContract.from_manifest(d) (which checks it), encoded, memoized on
    the dict's content (a pickle of a kernel whose module is loaded should
    cost microseconds)."""
    try:
        key = _contract_key(d)
        c = _contract_cache.get(key)
    except (TypeError, KeyError):
        return ABIContract.from_manifest(d)
    if c is None:
        c = _Encoded(ABIContract.from_manifest(d))
        if len(_contract_cache) < 4096:
            _contract_cache[key] = c
    return c


def _resolve_module(ref: Any, contracts: List[Any], what: str) -> ModuleLoader:
    """A new ModuleLoader bound to the module `ref` names with `contracts`
    (to_dict() form): by hash if loaded in this process, else from its path,
    verified against the hash."""
    if not isinstance(ref, dict):
        raise ValueError(f"cannot unpickle {what}: the module reference is not a dict")
    sha, path = ref.get("sha256"), ref.get("path")
    if not isinstance(sha, str) or not _HEX.match(sha):
        raise ValueError(f"cannot unpickle {what}: the module's SHA-256 {sha!r} is not 64 hex digits")
    if not isinstance(path, str):
        raise ValueError(f"cannot unpickle {what}: the module's path {path!r} is not a str")
    iso = bool(ref.get("isolate_symbols", False))
    isolation = _isolation_kwargs(ref, what)
    abi = [_contract(c) for c in contracts]
    if isolation is None:
        try:
            return ModuleLoader().open_loaded(sha, abi, name=path, isolate_symbols=iso)
        except LookupError:
            pass  # not loaded in this process: load the path, verified
    kwargs: Dict[str, Any] = {"expected_sha256": sha, "isolate_symbols": iso}
    if isolation is not None:
        kwargs.update(isolation)
    deps = ref.get("dependencies") or []
    if deps:
        kwargs["dependencies"] = {d[0]: d[2] for d in deps}
    try:
        return ModuleLoader().load(path, abi, **kwargs)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot unpickle {what}: no module with SHA-256 {sha} is "
                      f"loaded in this process, and its path {path} cannot be loaded: "
                      f"{exc.strerror or exc}", path) from None


# ---- bound functions ---------------------------------------------------------

def _reduce_bound(b: Any) -> Tuple[Any, Tuple[Dict[str, Any]]]:
    sha, path, contract, iso = b._pickle_state
    state = {"v": FORMAT, "module": _module_ref(sha, path, iso, _module_dependencies(b),
                                                b._isolation),
             "contract": contract}
    return (_rebuild_function, (state,))


# Functions this process unpickled, by (sha256, isolate_symbols, contract),
# held weakly: while one is alive its module is loaded (it holds a handle),
# so unpickling the same function again reuses it (no bind).
_unpickled: Dict[Tuple[Any, ...], "weakref.ref[Any]"] = {}


def _rebuild_function(state: Any) -> Any:
    """The _Bound of a pickled bound function (pickle then takes the
    attribute named after the function: the callable)."""
    st = _check_version(state, "bound function")
    c: Any = st.get("contract")
    name = c.get("function_name") if isinstance(c, dict) else None
    ref: Any = st.get("module")
    key = None
    try:
        key = (ref["sha256"], bool(ref.get("isolate_symbols", False)), _contract_key(c),
               _isolation_key(ref))
        hit = _unpickled.get(key)
        b = hit() if hit is not None else None
        if b is not None and b._live:
            return b
    except (TypeError, KeyError, AttributeError):
        key = None  # malformed: _resolve_module says what is wrong
    loader = _resolve_module(ref, [c], f"bound function {name!r}")
    b = loader.function(name).__self__
    if key is not None:
        if len(_unpickled) >= 1024:
            for k in [k for k, r in _unpickled.items() if r() is None]:
                del _unpickled[k]
        if len(_unpickled) < 1024:
            _unpickled[key] = weakref.ref(b)
    return b


# ---- ModuleLoader --------------------------------------------------------------

def _reduce_loader(ld: ModuleLoader) -> Tuple[Any, Tuple[Dict[str, Any]]]:
    state: Dict[str, Any] = {"v": FORMAT, "module": None, "contracts": []}
    if ld.loaded:
        contracts = []
        for name in ld.functions:
            contracts.append(ld.function(name).__self__._pickle_state[2])
        state["module"] = _module_ref(ld.sha256, ld.path, ld.isolate_symbols,
                                      _module_dependencies(ld), ld.isolation)
        state["contracts"] = contracts
    return (_rebuild_loader, (state,))


def _rebuild_loader(state: Any) -> ModuleLoader:
    st = _check_version(state, "ModuleLoader")
    if st.get("module") is None:
        return ModuleLoader()
    return _resolve_module(st["module"], list(st.get("contracts") or []), "ModuleLoader")


# ---- Kernel and Nexus ------------------------------------------------------------

_KERNEL_OPTIONS = ("fallback_enabled", "max_failures", "validate_every", "tolerance", "strict")


# A kernel's identity across processes. Name, reference and options of a
# handle never change, its compiled side changes only with a swap or a
# rollback, which give a new version number (numbers are never reused): so
# (handle, version) names exactly one kernel. _ids gives each handle pickled
# (or built by unpickling) a random token for its current version, held
# weakly (a handle that is collected leaves); _process_kernels holds the
# Kernel this process built for each (token, name), strongly, for the life
# of the process: a pipeline ships a few kernels many times, and each
# process keeps one copy of each, whose counters are the process's counts
# of that kernel. Both under _kernels_lock (Dask runs tasks in threads).
_ids: "weakref.WeakKeyDictionary[Kernel, Tuple[int, str]]" = weakref.WeakKeyDictionary()
_process_kernels: Dict[Tuple[str, str], Kernel] = {}
_kernels_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # A thread of the parent may have held the lock at the fork.
    global _kernels_lock
    _kernels_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _kernel_id(k: Kernel) -> str:
    """The token of `k`'s current version (a new one after a swap or rollback)."""
    version = k.version
    with _kernels_lock:
        got = _ids.get(k)
        if got is None or got[0] != version:
            got = _ids[k] = (version, uuid.uuid4().hex)
        return got[1]


def process_kernels() -> List[Kernel]:
    """Every kernel unpickled in this process, one per identity (the
    handle pickled and its version), kept for the process's life: what
    edgert.dask.nexus_report reads besides the live Nexus objects."""
    with _kernels_lock:
        return list(_process_kernels.values())


def _kernel_state(k: Kernel) -> Dict[str, Any]:
    opts = {o: getattr(k, o) for o in _KERNEL_OPTIONS}
    opts["history"] = k.history_size
    return {"v": FORMAT, "name": k.name, "compiled": k.compiled, "reference": k.reference,
            "options": opts, "id": _kernel_id(k)}


def _reduce_kernel(k: Kernel) -> Tuple[Any, Tuple[Dict[str, Any]]]:
    return (_rebuild_kernel, (_kernel_state(k),))


def _rebuild_kernel(state: Any) -> Kernel:
    """This process's kernel for the pickled identity: the one built by an
    earlier unpickle of it, else a new one, kept. A state without an
    identity (an edgert before identities) builds a new kernel each time."""
    st = _check_version(state, "Kernel")
    token = st.get("id")
    if not isinstance(token, str) or not isinstance(st.get("name"), str):
        return Kernel(st["name"], st["compiled"], st["reference"], **st["options"])
    key = (token, st["name"])
    with _kernels_lock:
        k = _process_kernels.get(key)
    if k is not None:
        return k
    fresh = Kernel(st["name"], st["compiled"], st["reference"], **st["options"])
    with _kernels_lock:
        k = _process_kernels.setdefault(key, fresh)
        if k is fresh:
            _ids[k] = (k.version, token)  # pickled again from here: the same identity
    return k


def _rebuild_nexus(state: Any) -> Any:
    from .nexus import Nexus
    st = _check_version(state, "Nexus")
    nx = Nexus()
    for k in st["kernels"]:
        nx._adopt(k)
    return nx


def _setup() -> None:
    global _Bound
    _Bound = _edgert._Bound
    copyreg.pickle(_Bound, _reduce_bound)
    copyreg.pickle(ModuleLoader, _reduce_loader)
    copyreg.pickle(Kernel, _reduce_kernel)


_setup()
