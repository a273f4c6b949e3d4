"""ctypes.Structure classes as contract and container types.

A ``ctypes.Structure`` subclass in ``ABIContract`` arg_types / return_type is
a struct by value (``"struct Point"``), ``POINTER(S)`` a buffer of them
(``"LP_struct Point"``). The layout (each field's name, type, offset, count;
size; alignment) is read from ``_fields_`` and ctypes' own field descriptors
and defined once per name in libedgert (``edgert_struct_define``), which
validates it and prepares the libffi type; the same definition serves
manifests' ``"structs"`` sections, so a name means one layout in a process.
Unions and bit-fields are refused naming the class and field. See
docs/abi.md.
"""
from __future__ import annotations

import ctypes
from typing import Any, Dict, List, Optional, Tuple, Type

from . import _edgert

__all__ = ["register_struct"]

# classes already defined (their canonical name)
_DEFINED: Dict[type, str] = {}


def _scalar_names() -> Dict[type, str]:
    from .abi import _CLASS_NAMES
    return _CLASS_NAMES


def _field_type(cls: type, fname: str, ftype: Any, where: str) -> Tuple[str, int]:
    """(type name, count) of one field of `cls`."""
    count = 0
    base = ftype
    while isinstance(base, type) and issubclass(base, ctypes.Array):
        count = (count or 1) * base._length_
        base = base._type_
    name = _scalar_names().get(base)
    if name is not None:
        return name, count
    if isinstance(base, type) and issubclass(base, ctypes.Union):
        raise TypeError(f"{where}: field {fname!r} of {cls.__name__} is the union "
                        f"{base.__name__}; unions are not supported")
    if isinstance(base, type) and issubclass(base, ctypes.Structure):
        return struct_name(base, f"{where}: field {fname!r} of {cls.__name__}"), count
    if isinstance(base, type) and issubclass(base, ctypes._Pointer):
        return "c_void_p", count  # a pointer inside a struct is an address
    raise TypeError(f"{where}: field {fname!r} of {cls.__name__} has type "
                    f"{getattr(base, '__name__', base)!r}, which edgert does not support in a struct")


def _fields(cls: type, where: str) -> List[Tuple[str, str, int, int]]:
    out: List[Tuple[str, str, int, int]] = []
    for klass in reversed(cls.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, ctypes.Structure)):
            continue
        for entry in klass.__dict__.get("_fields_", ()):
            if len(entry) != 2:
                raise TypeError(f"{where}: field {entry[0]!r} of {cls.__name__} is a bit-field "
                                f"({entry[2]} bits); bit-fields are not supported")
            fname, ftype = entry
            desc = getattr(cls, fname)
            tname, count = _field_type(cls, fname, ftype, where)
            out.append((fname, tname, desc.offset, count))
    return out


def struct_name(cls: type, where: str) -> str:
    """Defines `cls`'s layout in libedgert (once) and returns "struct NAME"."""
    name = _DEFINED.get(cls)
    if name is not None:
        return name
    if issubclass(cls, ctypes.Union):
        raise TypeError(f"{where}: {cls.__name__} is a ctypes.Union; unions are not supported "
                        f"(pass a pointer to it as c_void_p)")
    if not hasattr(cls, "_fields_"):
        raise TypeError(f"{where}: {cls.__name__} has no _fields_ (an incomplete struct)")
    fields = _fields(cls, where)
    try:
        _edgert.define_struct(cls, cls.__name__, fields, ctypes.sizeof(cls), ctypes.alignment(cls))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    name = f"struct {cls.__name__}"
    _DEFINED[cls] = name
    return name


_CTYPES: Dict[str, Any] = {}


def class_for(name: str) -> type:
    """The ctypes.Structure class of defined struct `name` ("Point"): the
    first class defined with that layout, or a new one built from it."""
    info = _edgert.struct_info(name)
    if info is None:
        raise ValueError(f"no struct {name} is defined")
    sname, size, align, fields, _fmt, _problem, cls = info
    if cls is not None:
        return cls
    from .abi import _class_for
    fs: List[Tuple[str, Any]] = []
    for fname, tname, _off, count in fields:
        t = _class_for(tname)
        if count:
            t = t * count
        fs.append((fname, t))
    packed = any(off % ctypes.alignment(t) for (fname, t), (_, _, off, _) in zip(fs, fields))
    ns: Dict[str, Any] = {"_fields_": fs, "__module__": "edgert.structs"}
    if packed:
        ns["_pack_"] = align
    cls = type(sname, (ctypes.Structure,), ns)
    if ctypes.sizeof(cls) != size or any(getattr(cls, f).offset != off for f, _, off, _ in fields):
        raise ValueError(f"struct {sname}: ctypes cannot reproduce its layout (size {size}, "
                         f"alignment {align})")
    _edgert.bind_struct_class(cls, sname)
    _DEFINED[cls] = f"struct {sname}"
    return cls


def definitions(names: List[str]) -> List[dict]:
    """The manifest "structs" entries of the structs `names` use, nested
    ones first (each once)."""
    out: List[dict] = []
    seen: set = set()

    def visit(n: str) -> None:
        if n in seen:
            return
        info = _edgert.struct_info(n)
        if info is None:
            raise ValueError(f"no struct {n} is defined")
        sname, size, align, fields, *_ = info
        for _f, tname, _o, _c in fields:
            base = tname
            while base.startswith("LP_"):
                base = base[3:]
            if base.startswith("struct "):
                visit(base[7:])
        seen.add(n)
        out.append({"name": sname, "size": size, "alignment": align,
                    "fields": [dict({"name": f, "type": t, "offset": o}, **({"count": c} if c else {}))
                               for f, t, o, c in fields]})

    for n in names:
        visit(n)
    return out


def define_all(structs: List[dict]) -> None:
    """Defines the structs of a manifest-form list (definitions())."""
    for s in structs:
        fields = [(f["name"], f["type"], f["offset"], f.get("count", 0)) for f in s["fields"]]
        _edgert.define_struct(None, s["name"], fields, s["size"], s["alignment"])


def register_struct(cls: Type[ctypes.Structure]) -> str:
    """Registers the ``ctypes.Structure`` subclass `cls` as an inline
    container type, with no C to write: ``TypedList(cls)``,
    ``TypedDict(int, cls)`` (and ``TypedDict(cls, ...)``) then store its
    values inline, check that each is an instance of `cls` (or bytes of its
    size), copy them field by field with every padding byte zero (so equal
    values are equal keys), hand them back as new `cls` instances, and give
    kernels ``cls *`` storage (a ``POINTER(cls)`` argument takes the
    TypedList as it is). Returns the type name, ``"struct.NAME"``; calling
    it again is harmless. Unions, bit-fields and a name already used by
    another layout are refused as for contracts.
    """
    if not (isinstance(cls, type) and issubclass(cls, (ctypes.Structure, ctypes.Union))):
        raise TypeError(f"register_struct: expected a ctypes.Structure subclass, got {cls!r}")
    name = struct_name(cls, "register_struct")
    return str(_edgert.register_struct_type(name[len("struct "):]))
