"""ABI contracts: a function's C signature in ctypes' vocabulary.

An :class:`ABIContract` names a function in a compiled module and its C
argument and return types, given as ctypes types: every simple type
(``c_bool`` ... ``c_longdouble``, ``c_size_t``, ``c_char_p``, ``c_void_p``,
...) and ``POINTER(t)``. ``to_dict()`` writes the JSON form a manifest holds
and ``from_manifest()`` reads it back.

The type-name table is libedgert's (``src/abi.c``), not a copy: names are
checked and made canonical by the same C code that reads manifests and binds
functions, so a contract means the same call from Python and from a C host.
On x86-64 Linux several ctypes names are one class (``c_size_t is c_ulong``,
``c_int64 is c_long``): the canonical names of the 64-bit integers are their
size-type names, ``'c_size_t'`` and ``'c_ssize_t'``, so ``POINTER(c_uint64)``
is written ``'LP_c_size_t'``. See docs/abi.md.
"""
from __future__ import annotations

import ctypes
import dataclasses
from collections.abc import Mapping
from typing import Any, List, Optional, Tuple, Type

from . import _edgert
from .cdecl import CDeclError  # no pycparser import: that waits for a call
from .errors import ManifestError

__all__ = ["ABIContract", "Callback", "CallbackPointer", "callback", "const", "get_errno",
           "set_errno", "contracts_from_c", "structs_from_c", "CDeclError"]

Callback = _edgert.Callback
CallbackPointer = _edgert.CallbackPointer

# Every name libedgert accepts (without "LP_") -> its canonical name.
_ALIASES: dict = _edgert.abi_type_names()

# ctypes class -> canonical name, for every class ctypes has under one of the
# accepted names (c_time_t only exists from Python 3.12).
_CLASS_NAMES: dict = {}
for _alias, _canon in _ALIASES.items():
    _cls = getattr(ctypes, _alias, None)
    if isinstance(_cls, type):
        _CLASS_NAMES.setdefault(_cls, _canon)
# canonical name -> ctypes class
_NAME_CLASSES: dict = {canon: cls for cls, canon in _CLASS_NAMES.items()}
del _alias, _canon, _cls

_KEYS = ("function_name", "arg_types", "return_type", "calling_convention", "release_gil",
         "use_errno", "variadic")


def contracts_from_c(text: str, *, release_gil: bool = True, use_errno: bool = False) -> list:
    """One ABIContract per function declared in `text` (C declarations after
    preprocessing; typedefs used), parsed by pycparser, imported only now.
    See :mod:`edgert.cdecl`."""
    from .cdecl import contracts_from_c as parse
    return parse(text, release_gil=release_gil, use_errno=use_errno)


def structs_from_c(text: str) -> dict:
    """The ctypes.Structure classes of the structs `text` defines, by tag and
    typedef name: the classes contracts_from_c(text) uses. See
    :mod:`edgert.cdecl`."""
    from .cdecl import structs_from_c as parse
    return parse(text)


def get_errno() -> int:
    """This thread's errno as saved right after its last call of a
    ``use_errno=True`` contract (``ctypes.get_errno``'s semantics)."""
    return _edgert.get_errno()


def set_errno(value: int) -> int:
    """Sets this thread's saved errno, which is stored into ``errno`` right
    before each ``use_errno=True`` call, and returns the previous value
    (``ctypes.set_errno``'s semantics)."""
    return _edgert.set_errno(value)


class const:
    """``const(POINTER(t))`` (or ``const(c_void_p)``): a pointer argument
    whose items the function only reads, C's ``const t *``. Such an argument
    also takes read-only buffers (``bytes``, a read-only memoryview, a numpy
    array with ``writeable=False``), which a plain ``POINTER(t)`` refuses.
    Written ``'const LP_c_double'`` in manifests and ``to_dict()``."""

    __slots__ = ("type",)

    def __init__(self, t: Any) -> None:
        if not (isinstance(t, type) and (issubclass(t, ctypes._Pointer) or t is ctypes.c_void_p)):
            what = t.__name__ if isinstance(t, type) else repr(t)
            raise TypeError(f"const(): expected POINTER(t) or c_void_p, got {what}; "
                            f"const applies to what a pointer points to")
        self.type = t

    def __eq__(self, other: object) -> bool:
        return isinstance(other, const) and other.type is self.type

    def __hash__(self) -> int:
        return hash(("const", self.type))

    def __repr__(self) -> str:
        return f"edgert.const({self.type.__name__})"


def _type_name(t: Any, field: str, *, is_return: bool) -> str:
    """The name of ctypes type `t` for libedgert ("LP_c_float", "struct P").

    Raises TypeError (naming `field`) for what is not a ctypes type at all;
    names libedgert refuses are refused by it, in check_contract.
    """
    if t is None:
        if is_return:
            return "None"
        raise TypeError(f"{field}: None (void) is only a return type, not an argument type")
    if isinstance(t, const):
        return "const " + _type_name(t.type, field, is_return=is_return)
    if not isinstance(t, type):
        raise TypeError(
            f"{field}: expected a ctypes type such as ctypes.c_double or "
            f"ctypes.POINTER(ctypes.c_float), got {t!r} ({type(t).__name__})")
    if issubclass(t, ctypes._CFuncPtr):
        return _funcptr_name(t, field)
    depth = 0
    base: Any = t
    while isinstance(base, type) and issubclass(base, ctypes._Pointer):
        base = getattr(base, "_type_", None)
        depth += 1
    if not isinstance(base, type):
        raise TypeError(f"{field}: {t.__name__} is an incomplete POINTER type")
    name = _CLASS_NAMES.get(base)
    if name is None:
        if issubclass(base, ctypes._CFuncPtr):
            name = _funcptr_name(base, field)
        elif issubclass(base, ctypes.Structure):
            from .structs import struct_name
            name = struct_name(base, field)
        elif issubclass(base, ctypes.Union):
            name = f"union {base.__name__}"
        elif base is ctypes.py_object:
            name = "py_object"
        elif issubclass(base, ctypes.Array):
            item = getattr(base, "_type_", None)
            hint = f"ctypes.POINTER(ctypes.{item.__name__})" if isinstance(item, type) else "POINTER(item type)"
            raise TypeError(f"{field}: array type {base.__name__} is not an argument type; use {hint}")
        else:
            raise TypeError(
                f"{field}: {base.__name__} is not a ctypes type edgert supports "
                f"(simple types, c_char_p, c_void_p and POINTER(t))")
    return "LP_" * depth + name


def _funcptr_name(t: Any, field: str) -> str:
    """The canonical name of a ctypes.CFUNCTYPE type:
    "CFUNCTYPE(c_int, LP_c_int, LP_c_int)" (the return type first)."""
    if getattr(t, "_flags_", None) != ctypes._FUNCFLAG_CDECL:  # type: ignore[attr-defined]
        raise TypeError(
            f"{field}: {t.__name__} is not a plain ctypes.CFUNCTYPE type: only cdecl "
            f"callbacks without use_errno or use_last_error are supported")
    items = [_type_name(t._restype_, f"{field} (callback return type)", is_return=True)]
    items += [_type_name(a, f"{field} (callback argument {i + 1})", is_return=False)
              for i, a in enumerate(t._argtypes_ or ())]
    return "CFUNCTYPE(" + ", ".join(items) + ")"


def _class_for(canonical: str) -> Optional[Type[Any]]:
    """The ctypes type for a canonical name ("LP_c_float" -> POINTER(c_float),
    "CFUNCTYPE(c_int, c_int)" -> CFUNCTYPE(c_int, c_int))."""
    if canonical == "None":
        return None
    if canonical.startswith("const "):
        return const(_class_for(canonical[6:]))  # type: ignore[return-value]
    if canonical.startswith("CFUNCTYPE("):
        items = [_class_for(x.strip()) for x in canonical[len("CFUNCTYPE("):-1].split(",")]
        return ctypes.CFUNCTYPE(items[0], *items[1:])
    depth = 0
    while canonical.startswith("LP_"):
        canonical = canonical[3:]
        depth += 1
    if canonical.startswith("struct "):
        from .structs import class_for
        cls: Any = class_for(canonical[7:])
    else:
        cls = _NAME_CLASSES[canonical]
    for _ in range(depth):
        cls = ctypes.POINTER(cls)
    return cls


def _read_type(name: Any, field: str, *, is_return: bool) -> Optional[Type[Any]]:
    """A manifest's type name -> ctypes type, or ManifestError naming `field`."""
    if isinstance(name, Mapping) and "callback" in name:
        name = _callback_form(name, field)
    if not isinstance(name, str):
        raise ManifestError(f"{field}: expected a type name (str), got {type(name).__name__}")
    try:
        return _class_for(_edgert.canonical_type_name(name, is_return))
    except (ValueError, NotImplementedError) as exc:
        # The curated table is libedgert's; a ctypes name it does not list
        # still works if ctypes gives it as a class the table knows.
        alt = getattr(ctypes, name, None) if not name.startswith("_") else None
        if isinstance(alt, type) and alt in _CLASS_NAMES:
            return alt
        raise ManifestError(f"{field}: {exc}") from None


def _callback_form(d: Mapping[str, Any], field: str) -> str:
    """The manifest's structured callback form, ``{"callback": {"restype":
    "c_int", "argtypes": ["LP_c_int", "LP_c_int"]}}``, as its type name
    "CFUNCTYPE(c_int, LP_c_int, LP_c_int)" (the C reader, src/manifest.c,
    reads it the same way)."""
    if set(d) != {"callback"}:
        raise ManifestError(f"{field}: a callback type is {{\"callback\": {{...}}}} alone, "
                            f"got keys {sorted(d)}")
    cb = d["callback"]
    if not isinstance(cb, Mapping):
        raise ManifestError(f"{field}.callback: expected an object, got {type(cb).__name__}")
    for key in cb:
        if key not in ("restype", "argtypes"):
            raise ManifestError(f"{field}.callback: unknown key {key!r} (keys: restype, argtypes)")
    ret = cb.get("restype")
    if ret is None:
        ret = "None"
    if not isinstance(ret, str):
        raise ManifestError(f"{field}.callback.restype: expected a type name (str) or null, "
                            f"got {type(ret).__name__}")
    args = cb.get("argtypes", [])
    if not isinstance(args, (list, tuple)):
        raise ManifestError(f"{field}.callback.argtypes: expected an array, got "
                            f"{type(args).__name__}")
    for i, a in enumerate(args):
        if not isinstance(a, str):
            raise ManifestError(f"{field}.callback.argtypes[{i}]: expected a type name (str), "
                                f"got {type(a).__name__} (nested callbacks are not supported)")
    return "CFUNCTYPE(" + ", ".join([ret, *args]) + ")"


def callback(ftype: Any, fn: Any) -> "Callback":
    """A keep handle: `fn` as a C function pointer of CFUNCTYPE type `ftype`
    that outlives the call it is passed to (a C library may store it and call
    it later). The closure lives until ``release()`` (or the end of a
    ``with`` block) or until the handle is garbage collected; C must not call
    it after that. Exceptions its calls raise go to ``sys.unraisablehook``
    and the callback returns 0 to C. Pass the handle itself where the
    contract has that CFUNCTYPE; ``.address`` is its pointer as an int."""
    name = _type_name(ftype, "callback type", is_return=False)
    if not name.startswith("CFUNCTYPE("):
        raise TypeError(f"callback type: expected a ctypes.CFUNCTYPE type, got {name}")
    return _edgert._make_callback(name, fn, ftype)


@dataclasses.dataclass
class ABIContract:
    """A function's name and C signature, with ctypes types.

    ``ABIContract("vec_add_f32", [POINTER(c_float), c_size_t], None)``.
    ``release_gil`` (default True, as ctypes does) lets a caller drop the GIL
    around the call; set it False for very short functions. ``use_errno``
    (default False) swaps ``errno`` with this thread's saved copy around each
    call (:func:`get_errno`, :func:`set_errno`). ``variadic=N`` marks a
    function ending in ``...`` whose N fixed arguments are ``arg_types``;
    each call's extra arguments are typed by their Python type or by a
    ctypes instance (docs/abi.md).
    Raises TypeError (naming the field, e.g. ``arg_types[2]``) for what is
    not a supported ctypes type, ValueError for a bad name, more than 32
    arguments or a calling convention other than "cdecl", and
    NotImplementedError for a union or a packed struct passed by value.
    A ``ctypes.Structure`` subclass is a struct by value, ``POINTER(S)`` a
    buffer of them (docs/abi.md, "Structs").
    """

    function_name: str
    arg_types: List[Type[Any]]
    return_type: Optional[Type[Any]] = None
    calling_convention: str = "cdecl"
    release_gil: bool = True
    use_errno: bool = False
    variadic: Optional[int] = None

    def __post_init__(self) -> None:
        if not isinstance(self.function_name, str):
            raise TypeError(f"function_name: expected str, got {type(self.function_name).__name__}")
        if isinstance(self.arg_types, (str, bytes)) or not hasattr(self.arg_types, "__iter__"):
            raise TypeError(
                f"arg_types: expected a list of ctypes types, got {type(self.arg_types).__name__}")
        self.arg_types = list(self.arg_types)
        if not isinstance(self.calling_convention, str):
            raise TypeError(
                f"calling_convention: expected str, got {type(self.calling_convention).__name__}")
        if not isinstance(self.release_gil, bool):
            raise TypeError(f"release_gil: expected bool, got {type(self.release_gil).__name__}")
        if not isinstance(self.use_errno, bool):
            raise TypeError(f"use_errno: expected bool, got {type(self.use_errno).__name__}")
        if self.variadic is not None and (not isinstance(self.variadic, int)
                                          or isinstance(self.variadic, bool)):
            raise TypeError(f"variadic: expected the fixed argument count (int) or None, "
                            f"got {type(self.variadic).__name__}")
        if self.variadic is not None and not 0 <= self.variadic <= 32:
            raise ValueError(f"variadic: {self.variadic} is not a fixed argument count (0..32)")
        _edgert.check_contract(*self._encode())

    def _encode(self) -> Tuple[str, Tuple[str, ...], Optional[str], str, bool, bool,
                               Optional[int]]:
        """(function_name, canonical arg type names, return type name or None,
        calling_convention, release_gil, use_errno, variadic): what
        edgert_contract_init and edgert_contract_set_variadic take."""
        args = tuple(_type_name(t, f"arg_types[{i}]", is_return=False)
                     for i, t in enumerate(self.arg_types))
        ret = None if self.return_type is None else _type_name(
            self.return_type, "return_type", is_return=True)
        return (self.function_name, args, ret, self.calling_convention, bool(self.release_gil),
                bool(self.use_errno), self.variadic)

    def to_dict(self) -> dict:
        """The manifest form: ``{'function_name': 'vec_add_f32', 'arg_types':
        ['LP_c_float', 'c_size_t'], 'return_type': None, 'calling_convention':
        'cdecl'}``; ``'release_gil': False``, ``'use_errno': True`` and
        ``'variadic': N`` are written only when they differ from the default."""
        name, args, ret, cc, release, use_errno, variadic = self._encode()
        d: dict = {"function_name": name, "arg_types": list(args),
                   "return_type": ret, "calling_convention": cc}
        if not release:
            d["release_gil"] = False
        if use_errno:
            d["use_errno"] = True
        if variadic is not None:
            d["variadic"] = variadic
        return d

    def struct_names(self) -> List[str]:
        """The names of the structs this contract uses ("Point"), by value
        or behind POINTER, in order of first use."""
        _, args, ret = self._encode()[:3]
        out: List[str] = []
        for n in (*args, *([ret] if ret else [])):
            while n.startswith("LP_"):
                n = n[3:]
            if n.startswith("struct ") and n[7:] not in out:
                out.append(n[7:])
        return out

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
        # POINTER types do not pickle (ctypes makes them on the fly); the
        # manifest form does, and reads back to an equal contract. Struct
        # layouts travel along (a manifest's "structs" entries), so another
        # process defines them before it reads the contract.
        names = self.struct_names()
        if names:
            from .structs import definitions
            return (_from_dict, (self.to_dict(), definitions(names)))
        return (_from_dict, (self.to_dict(),))

    @classmethod
    def from_c(cls, decl: str, *, release_gil: bool = True,
               use_errno: bool = False) -> "ABIContract":
        """The contract of one C function declaration, parsed by pycparser:
        ``ABIContract.from_c("double mean(const double *xs, size_t n);")``
        is ``ABIContract("mean", [const(POINTER(c_double)), c_size_t],
        c_double)``. See :mod:`edgert.cdecl` for the mapping and what is
        refused (CDeclError, a ValueError, naming the construct and line)."""
        from .cdecl import contract_from_c
        return contract_from_c(decl, release_gil=release_gil, use_errno=use_errno)

    @classmethod
    def from_manifest(cls, d: Mapping[str, Any]) -> "ABIContract":
        """The contract a ``to_dict()`` mapping describes. Strict, as the C
        manifest reader: unknown keys, missing ``function_name`` or
        ``arg_types``, wrong JSON types and unknown type names each raise
        ManifestError (a ValueError) naming the field."""
        if not isinstance(d, Mapping):
            raise ManifestError(f"contract: expected an object (dict), got {type(d).__name__}")
        for key in d:
            if key not in _KEYS:
                raise ManifestError(f"contract: unknown key {key!r} (keys: {', '.join(_KEYS)})")
        for key in ("function_name", "arg_types"):
            if key not in d:
                raise ManifestError(f"{key}: missing")
        name = d["function_name"]
        if not isinstance(name, str):
            raise ManifestError(f"function_name: expected a string, got {type(name).__name__}")
        names = d["arg_types"]
        if not isinstance(names, (list, tuple)):
            raise ManifestError(f"arg_types: expected an array, got {type(names).__name__}")
        if len(names) > 32:
            raise ManifestError(f"arg_types: {len(names)} arguments is more than the limit of 32")
        args = [_read_type(n, f"arg_types[{i}]", is_return=False) for i, n in enumerate(names)]
        ret_name = d.get("return_type")
        ret = None if ret_name is None else _read_type(ret_name, "return_type", is_return=True)
        cc = d.get("calling_convention", "cdecl")
        if not isinstance(cc, str):
            raise ManifestError(f"calling_convention: expected a string, got {type(cc).__name__}")
        release = d.get("release_gil", True)
        if not isinstance(release, bool):
            raise ManifestError(f"release_gil: expected true or false, got {type(release).__name__}")
        use_errno = d.get("use_errno", False)
        if not isinstance(use_errno, bool):
            raise ManifestError(f"use_errno: expected true or false, got {type(use_errno).__name__}")
        variadic = d.get("variadic")
        if variadic is not None and (not isinstance(variadic, int) or isinstance(variadic, bool)):
            raise ManifestError(f"variadic: expected the fixed argument count (an integer) or "
                                f"null, got {type(variadic).__name__}")
        try:
            return cls(name, args, ret, cc, release, use_errno, variadic)
        except (TypeError, ValueError, NotImplementedError) as exc:
            raise ManifestError(str(exc)) from None


def _from_dict(d: dict, structs: Optional[List[dict]] = None) -> ABIContract:
    """Unpickles an ABIContract (module-level so pickle can find it)."""
    if structs:
        from .structs import define_all
        define_all(structs)
    return ABIContract.from_manifest(d)
