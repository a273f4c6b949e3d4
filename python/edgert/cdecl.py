"""Contracts from C declarations, parsed by pycparser (as cffi does).

``ABIContract.from_c("double mean(const double *xs, size_t n);")`` and
:func:`contracts_from_c` (a header's worth of declarations) build the
contracts a C programmer already wrote down. pycparser is imported only when
one of them is called (``pip install pycparser``, or ``edgert[cdecl]``).

Mapping (LP64): the C scalar types to their ctypes classes (``long`` and
``long long`` are both ``c_long``, as ctypes has them); ``size_t``,
``ssize_t``, ``ptrdiff_t``, ``intptr_t``, ``uintptr_t``, ``intN_t``,
``uintN_t``, ``wchar_t``, ``bool``, ``time_t`` and ``off_t`` are known
without an ``#include``; typedefs in the text resolve to what they name.
``const char *`` is ``c_char_p`` (a NUL-terminated string, copied for the
call) and ``char *`` is ``POINTER(c_char)`` (a writable buffer); likewise
``const wchar_t *`` / ``wchar_t *``; ``void *`` is ``c_void_p``; any other
``T *`` (and an array parameter ``T a[]``) is ``POINTER(T)``, and
``const(POINTER(T))`` when ``T`` is const. A return type ``char *`` is
``c_char_p``. ``...`` makes the contract variadic.

Structs: ``struct point { double x, y; };`` and ``typedef struct {...}
point_t;`` (nested structs, fixed arrays ``double v[3]``, pointer fields as
``c_void_p``, as :mod:`edgert.structs` has them) become ``ctypes.Structure``
subclasses named after the tag (else the typedef), used by value and behind
pointers by the functions of the same text; :func:`structs_from_c` returns
them. The same layout under the same name is the same class on every parse.
Function pointers (``int (*cmp)(const void *, const void *)``, a typedef of
one, a parameter of function type) become ``ctypes.CFUNCTYPE`` types with
the callback rules (const dropped: ``const void *`` is ``c_void_p``).

Refused, naming the construct and its line: unions and enums, bit-fields,
flexible array members, ``__attribute__``, incomplete structs, a struct or
a function pointer inside a function pointer's signature, variadic function
pointers, ``f()`` without ``void``, preprocessor lines, variables, and
anything pycparser cannot parse.
"""
from __future__ import annotations

import ctypes
import re
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["contracts_from_c", "structs_from_c"]

# Known without an #include: name -> the C type it stands for (parsed as a
# typedef) and, where the name itself decides the mapping, its ctypes class.
_PRELUDE_TYPES = {
    "size_t": "unsigned long", "ssize_t": "long", "ptrdiff_t": "long",
    "intptr_t": "long", "uintptr_t": "unsigned long",
    "int8_t": "signed char", "uint8_t": "unsigned char",
    "int16_t": "short", "uint16_t": "unsigned short",
    "int32_t": "int", "uint32_t": "unsigned int",
    "int64_t": "long", "uint64_t": "unsigned long",
    "wchar_t": "int", "bool": "_Bool", "time_t": "long", "off_t": "long",
}
_NAMED = {"wchar_t": ctypes.c_wchar, "size_t": ctypes.c_size_t, "ssize_t": ctypes.c_ssize_t}
_PRELUDE = "".join(f"typedef {c} {n};" for n, c in _PRELUDE_TYPES.items())


class CDeclError(ValueError):
    """A C declaration edgert cannot make a contract of (the message names
    the construct and its line)."""


def _pycparser() -> Any:
    try:
        import pycparser  # noqa: F401
        from pycparser import c_parser
    except ImportError:
        raise ImportError(
            "ABIContract.from_c and edgert.contracts_from_c need pycparser: "
            "pip install pycparser (or edgert[cdecl])") from None
    return c_parser


def _strip_comments(text: str) -> str:
    """Comments out, newlines kept (so lines keep their numbers)."""
    def blank(m: "re.Match[str]") -> str:
        return "".join(ch if ch == "\n" else " " for ch in m.group(0))
    return re.sub(r"/\*.*?\*/|//[^\n]*", blank, text, flags=re.S)


def _line(node: Any) -> str:
    c = getattr(node, "coord", None)
    return f"line {c.line}" if c is not None and c.line else "line ?"


def _scalar(names: List[str], node: Any, typedefs: dict) -> Any:
    """The ctypes class (or None for void) of an IdentifierType's names."""
    if len(names) == 1 and names[0] in typedefs:
        if names[0] in _NAMED:
            return _NAMED[names[0]]
        return _resolve(typedefs[names[0]], typedefs, is_return=False, top=False)
    words = list(names)
    unsigned = "unsigned" in words
    signed = "signed" in words
    longs = words.count("long")
    base = [w for w in words if w not in ("unsigned", "signed", "long", "short")]
    short = "short" in words
    if (short and longs) or (unsigned and signed) or longs > 2 or words.count("short") > 1:
        raise CDeclError(f"{_line(node)}: '{' '.join(names)}' is not a C type")
    if base in ([], ["int"]):
        if short:
            return ctypes.c_ushort if unsigned else ctypes.c_short
        if longs:
            return ctypes.c_ulong if unsigned else ctypes.c_long
        return ctypes.c_uint if unsigned else ctypes.c_int
    if base == ["char"] and not longs and not short:
        return ctypes.c_ubyte if unsigned else ctypes.c_byte if signed else ctypes.c_char
    if unsigned or signed or short:
        raise CDeclError(f"{_line(node)}: '{' '.join(names)}' is not a C type")
    if base == ["double"] and longs <= 1:
        return ctypes.c_longdouble if longs else ctypes.c_double
    if longs:
        raise CDeclError(f"{_line(node)}: '{' '.join(names)}' is not a C type")
    if base == ["float"]:
        return ctypes.c_float
    if base == ["_Bool"]:
        return ctypes.c_bool
    if base == ["void"]:
        return None
    raise CDeclError(f"{_line(node)}: unknown type name '{' '.join(names)}' (declare it "
                     f"with a typedef in the same text)")


def _refuse_compound(t: Any, what: str) -> None:
    from pycparser import c_ast
    kind = ("struct" if isinstance(t, c_ast.Struct) else "union" if isinstance(t, c_ast.Union)
            else "enum")
    raise CDeclError(f"{_line(t)}: {kind} {t.name or '(anonymous)'} {what} is not supported in "
                     f"C declarations (pass its address as void *)")


class _Env(dict):
    """The typedefs of a text (name -> type node), plus its structs: `tags`
    (struct tag -> class), `anon` (id of a defining Struct node -> class)
    and `structs` (every name a struct has in the text -> class, in order)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: Dict[str, type] = {}
        self.anon: Dict[int, type] = {}
        self.structs: Dict[str, type] = {}
        self.open: set = set()  # tags whose fields are being read


# (name, fields) -> the class built for it: the same declaration gives the
# same class on every parse (a struct name is one layout per process).
_CLASSES: Dict[Tuple[str, Tuple[Tuple[str, Any], ...]], type] = {}


def _field_ctype(decl: Any, node: Any, env: _Env, owner: str) -> Any:
    """The ctypes type of one struct field's type node."""
    from pycparser import c_ast
    where = f"{_line(decl)}: field '{decl.name}' of struct {owner}"
    if isinstance(node, c_ast.PtrDecl):
        return ctypes.c_void_p  # an address, as edgert.structs has pointer fields
    if isinstance(node, c_ast.ArrayDecl):
        dim = node.dim
        if dim is None:
            raise CDeclError(f"{where}: a flexible array member ('{decl.name}[]') is not "
                             f"supported (its size is not part of the struct)")
        if not (isinstance(dim, c_ast.Constant) and dim.type == "int"
                and re.fullmatch(r"[0-9]+[uUlL]*", dim.value)):
            raise CDeclError(f"{where}: an array size must be a decimal integer literal")
        n = int(re.sub(r"[uUlL]+$", "", dim.value))
        if n == 0:
            raise CDeclError(f"{where}: a zero-length array is not supported")
        return _field_ctype(decl, node.type, env, owner) * n
    if isinstance(node, c_ast.TypeDecl):
        t = node.type
        if isinstance(t, c_ast.Struct):
            return _struct_class(t, env, name=f"{owner}_{decl.name}")
        if isinstance(t, (c_ast.Union, c_ast.Enum)):
            _refuse_compound(t, f"as field '{decl.name}' of struct {owner}")
        if len(t.names) == 1 and t.names[0] in env and t.names[0] not in _NAMED:
            return _field_ctype(decl, env[t.names[0]], env, owner)
        v = _scalar(t.names, node, env)
        if v is None:
            raise CDeclError(f"{where}: void is not a field type")
        return v
    raise CDeclError(f"{where}: {type(node).__name__} is not supported in a struct")


def _struct_class(t: Any, env: _Env, name: Optional[str] = None) -> type:
    """The ctypes.Structure class of a Struct node: defined here (fields
    given) or earlier in the text (by its tag)."""
    from pycparser import c_ast
    if t.decls is None:
        if t.name is not None and t.name in env.tags:
            return env.tags[t.name]
        if t.name is not None and t.name in env.open:
            raise CDeclError(f"{_line(t)}: struct {t.name} contains itself (only a pointer to "
                             f"it can be a field)")
        raise CDeclError(f"{_line(t)}: struct {t.name or '(anonymous)'} is declared but not "
                         f"defined in the text (an incomplete type; give its fields, or pass "
                         f"its address as void *)")
    if id(t) in env.anon:
        return env.anon[id(t)]
    if t.name is not None and t.name in env.tags:
        raise CDeclError(f"{_line(t)}: struct {t.name} is defined twice")
    cname = t.name or name
    if cname is None:
        raise CDeclError(f"{_line(t)}: an anonymous struct needs a typedef name")
    if not t.decls:
        raise CDeclError(f"{_line(t)}: struct {cname} has no fields")
    fields: List[Tuple[str, Any]] = []
    if t.name is not None:
        env.open.add(t.name)  # being defined: a field of its own type is an error
    for d in t.decls:
        if not isinstance(d, c_ast.Decl) or d.name is None:
            raise CDeclError(f"{_line(d)}: an unnamed member of struct {cname} is not supported")
        if d.bitsize is not None:
            raise CDeclError(f"{_line(d)}: bit-field '{d.name}' of struct {cname} is not "
                             f"supported")
        fields.append((d.name, _field_ctype(d, d.type, env, cname)))
    env.open.discard(t.name or "")
    key = (cname, tuple(fields))
    cls = _CLASSES.get(key)
    if cls is None:
        try:
            cls = type(cname, (ctypes.Structure,),
                       {"_fields_": fields, "__module__": "edgert.cdecl"})
        except (TypeError, ValueError, AttributeError) as exc:  # ctypes: a field "_fields_"
            raise CDeclError(f"{_line(t)}: struct {cname}: ctypes cannot build it: {exc}") from None
        from .structs import struct_name
        try:
            struct_name(cls, _line(t))
        except (TypeError, ValueError) as exc:
            raise CDeclError(str(exc)) from None
        _CLASSES[key] = cls
    env.anon[id(t)] = cls
    if t.name is not None:
        env.tags[t.name] = cls
    env.structs.setdefault(cname, cls)
    return cls


def _is_struct(t: Any) -> bool:
    from .abi import const
    while isinstance(t, const):
        t = t.type
    while isinstance(t, type) and issubclass(t, ctypes._Pointer):
        t = t._type_
    return isinstance(t, type) and issubclass(t, ctypes.Structure)


def _callback(func: Any, env: _Env, where: Any, name: Optional[str]) -> Any:
    """The ctypes.CFUNCTYPE type of a FuncDecl reached as a function pointer."""
    from pycparser import c_ast
    from .abi import const
    what = f"function pointer '{name}'" if name else "a function pointer"
    params = func.args.params if func.args is not None else None
    if params is None:
        raise CDeclError(f"{_line(where)}: {what} has unspecified parameters; write (void) "
                         f"for none")
    types: List[Any] = []
    for k, p in enumerate([func.type] + list(params)):
        if isinstance(p, c_ast.EllipsisParam):
            raise CDeclError(f"{_line(where)}: {what} is variadic; a callback cannot be")
        role = "return type" if k == 0 else f"argument {k}"
        inner = p.type if isinstance(p, (c_ast.Typename, c_ast.Decl)) else p
        t = _resolve(p, env, is_return=k == 0, nested=True)
        if isinstance(t, const):
            t = t.type  # a callback's types carry no const
        if t is None and k > 0:
            if len(params) == 1:
                continue  # (void)
            raise CDeclError(f"{_line(p)}: void is not a parameter type")
        if _is_struct(t):
            raise CDeclError(f"{_line(where)}: {what}: {role} is a struct "
                             f"({_c_spelling(inner)}); a struct in a callback signature is not "
                             f"supported (pass its address as void *)")
        types.append(t)
    if len(types) - 1 > 16:
        raise CDeclError(f"{_line(where)}: {what} has {len(types) - 1} arguments; a callback has "
                         f"at most 16")
    return ctypes.CFUNCTYPE(*types)


def _c_spelling(node: Any) -> str:
    from pycparser import c_generator
    try:
        return str(c_generator.CGenerator().visit(node)).strip()
    except Exception:  # pragma: no cover - only for the message
        return type(node).__name__


def _resolve(node: Any, typedefs: dict, *, is_return: bool, top: bool = True,
             nested: bool = False) -> Any:
    """The ctypes type of a type node (TypeDecl, PtrDecl, ArrayDecl,
    Typename, Decl); `nested`: inside a function pointer's signature."""
    from pycparser import c_ast
    from .abi import const
    env: _Env = typedefs  # type: ignore[assignment]
    if isinstance(node, (c_ast.Typename, c_ast.Decl)):
        if isinstance(node, c_ast.Decl) and node.bitsize is not None:
            raise CDeclError(f"{_line(node)}: bit-field '{node.name}' is not supported")
        if isinstance(node.type, c_ast.FuncDecl) and not is_return:
            # a parameter of function type is a function pointer (C adjusts it)
            if nested:
                _refuse_nested_callback(node)
            return _callback(node.type, env, node, node.name)
        return _resolve(node.type, env, is_return=is_return, top=top, nested=nested)
    if isinstance(node, c_ast.TypeDecl):
        t = node.type
        if isinstance(t, c_ast.Struct):
            return _struct_class(t, env)
        if isinstance(t, (c_ast.Union, c_ast.Enum)):
            _refuse_compound(t, "by value")
        if len(t.names) == 1 and t.names[0] in env and t.names[0] not in _NAMED:
            target = env[t.names[0]]
            if isinstance(target, c_ast.FuncDecl):
                raise CDeclError(f"{_line(node)}: '{t.names[0]}' is a function type; a "
                                 f"parameter of it is written '{t.names[0]} *'")
            if nested and isinstance(target, c_ast.PtrDecl) and isinstance(target.type,
                                                                          c_ast.FuncDecl):
                _refuse_nested_callback(node)
            return _resolve(target, env, is_return=is_return, top=False, nested=nested)
        return _scalar(t.names, node, env)
    if isinstance(node, (c_ast.PtrDecl, c_ast.ArrayDecl)):
        inner = node.type
        if (isinstance(inner, c_ast.TypeDecl) and isinstance(inner.type, c_ast.IdentifierType)
                and len(inner.type.names) == 1
                and isinstance(env.get(inner.type.names[0]), c_ast.FuncDecl)):
            inner = env[inner.type.names[0]]  # "fn_t *f" with typedef int fn_t(int)
        if isinstance(inner, c_ast.FuncDecl):
            if nested:
                _refuse_nested_callback(node)
            return _callback(inner, env, node, _decl_name(inner))
        if isinstance(inner, c_ast.PtrDecl) and isinstance(inner.type, c_ast.FuncDecl):
            raise CDeclError(f"{_line(node)}: a pointer to a function pointer is not supported "
                             f"(declare it void **)")
        if isinstance(inner, c_ast.TypeDecl) and isinstance(inner.type, (c_ast.Union,
                                                                         c_ast.Enum)):
            _refuse_compound(inner.type, "behind a pointer")
        is_const = "const" in (getattr(inner, "quals", None) or [])
        target = _resolve(inner, env, is_return=False, top=False, nested=nested)
        if isinstance(target, const):
            target = target.type  # const of what the inner pointer points to: not ours
        if target is None:
            ptr: Any = ctypes.c_void_p
        elif target is ctypes.c_char and (is_const or is_return):
            return ctypes.c_char_p
        elif target is ctypes.c_wchar and (is_const or is_return):
            return ctypes.c_wchar_p
        elif isinstance(target, type) and issubclass(target, ctypes._CFuncPtr):
            raise CDeclError(f"{_line(node)}: a pointer to a function pointer is not supported "
                             f"(declare it void **)")
        else:
            ptr = ctypes.POINTER(target)
        return const(ptr) if is_const and not is_return else ptr
    raise CDeclError(f"{_line(node)}: {type(node).__name__} is not supported in C declarations")


def _decl_name(func: Any) -> Optional[str]:
    t = func.type
    while t is not None and not hasattr(t, "declname"):
        t = getattr(t, "type", None)
    return getattr(t, "declname", None)


def _refuse_nested_callback(node: Any) -> None:
    raise CDeclError(f"{_line(node)}: a function pointer among a function pointer's own "
                     f"argument or return types is not supported (declare it void *)")


def _contract(decl: Any, typedefs: dict, options: dict) -> Any:
    from pycparser import c_ast
    from .abi import ABIContract
    func = decl.type
    if not isinstance(func, c_ast.FuncDecl):
        raise CDeclError(f"{_line(decl)}: '{decl.name}' is a variable, not a function")
    ret = _resolve(func.type, typedefs, is_return=True)
    params = func.args.params if func.args is not None else None
    if params is None:
        raise CDeclError(f"{_line(decl)}: {decl.name}() has unspecified parameters; write "
                         f"{decl.name}(void) for none")
    args: List[Any] = []
    variadic: Optional[int] = None
    for p in params:
        if isinstance(p, c_ast.EllipsisParam):
            variadic = len(args)
            continue
        t = _resolve(p, typedefs, is_return=False)
        if t is None:
            if len(params) == 1:
                continue  # f(void)
            raise CDeclError(f"{_line(p)}: void is not a parameter type")
        args.append(t)
    if variadic == 0:
        raise CDeclError(f"{_line(decl)}: {decl.name}(...) has no fixed parameter; C needs one "
                         f"before '...'")
    return ABIContract(decl.name, args, ret, variadic=variadic, **options)


def _parse(text: str) -> Tuple[Any, dict]:
    c_parser = _pycparser()
    from pycparser import c_ast
    if not isinstance(text, str):
        raise TypeError(f"C declarations: expected str, got {type(text).__name__}")
    body = _strip_comments(text)
    for n, line in enumerate(body.split("\n"), 1):
        if line.lstrip().startswith("#"):
            raise CDeclError(f"line {n}: preprocessor line {line.strip()[:40]!r} is not "
                             f"supported (give declarations after preprocessing)")
        m = re.search(r"__attribute__\s*\(\((.*?)\)\)|__declspec\s*\((.*?)\)", line)
        if m:
            raise CDeclError(f"line {n}: {m.group(0)!r} is not supported (edgert does not read "
                             f"attributes: a packed struct is a ctypes.Structure with _pack_ = 1, "
                             f"declared in Python)")
    try:
        ast = c_parser.CParser().parse(_PRELUDE + "\n# 1 \"<decl>\"\n" + body, filename="<decl>")
    except Exception as exc:  # pycparser's ParseError: "<decl>:3:14: before: ..."
        msg = str(exc)
        m = re.match(r"<decl>:(\d+):(\d+): (.*)", msg, flags=re.S)
        hint = ""
        if m and (m.group(3).strip() == "before: ..." or "Ellipsis-only" in m.group(3)):
            # pycparser < 3.1 stops at the '...'; newer ones name C23's rule
            return_hint = "'...' needs a named parameter before it"
            raise CDeclError(f"line {m.group(1)}: cannot parse: {return_hint} (a variadic "
                             f"function has at least one fixed parameter)") from None
        elif m and re.fullmatch(r"before: [A-Za-z_]\w*", m.group(3).strip()):
            hint = " (an unknown type name? declare it with a typedef in the same text)"
        raise CDeclError(f"line {m.group(1)}: cannot parse: {m.group(3)}{hint}" if m
                         else f"cannot parse: {msg}") from None
    env = _Env()
    items = []
    for ext in ast.ext:
        if isinstance(ext, c_ast.Typedef):  # the prelude's and the text's
            env[ext.name] = ext.type
            t = ext.type
            if isinstance(t, c_ast.TypeDecl) and isinstance(t.type, c_ast.Struct):
                if t.type.decls is not None or t.type.name in env.tags:
                    env.structs.setdefault(ext.name, _struct_class(t.type, env, name=ext.name))
            elif isinstance(t, c_ast.TypeDecl) and isinstance(t.type, c_ast.Union):
                _refuse_compound(t.type, "definition")
        elif isinstance(ext, c_ast.FuncDef):
            items.append(ext.decl)
        elif isinstance(ext, c_ast.Decl):
            if ext.name is None:  # "struct P { ... };", "struct P;" and the like
                if isinstance(ext.type, c_ast.Struct):
                    if ext.type.decls is not None:
                        _struct_class(ext.type, env)
                    continue
                _refuse_compound(ext.type, "definition")
            items.append(ext)
        else:
            raise CDeclError(f"{_line(ext)}: {type(ext).__name__} is not supported")
    return items, env


def contracts_from_c(text: str, *, release_gil: bool = True,
                     use_errno: bool = False) -> list:
    """One :class:`ABIContract` per function declared in `text` (a header's
    declarations, after preprocessing), in order. Typedefs in the text are
    used, not returned. Raises ImportError without pycparser, and CDeclError
    (a ValueError) naming the construct and the line for what edgert does
    not support (module docstring)."""
    items, typedefs = _parse(text)
    options = {"release_gil": release_gil, "use_errno": use_errno}
    return [_contract(d, typedefs, options) for d in items]


def structs_from_c(text: str) -> Dict[str, type]:
    """The ``ctypes.Structure`` classes of the structs defined in `text`, by
    every name the text gives them (the tag of ``struct point {...}``, the
    typedef name of ``typedef struct {...} point_t``; both for ``typedef
    struct point {...} point_t``), in order. They are the classes the
    contracts of :func:`contracts_from_c` on the same text use: a struct of
    the same name and layout is the same class on every parse. Raises as
    :func:`contracts_from_c` does (a struct whose name is already another
    layout in this process is a CDeclError)."""
    _items, env = _parse(text)
    return dict(env.structs)


def contract_from_c(decl: str, *, release_gil: bool = True, use_errno: bool = False) -> Any:
    """The contract of exactly one function declaration (ABIContract.from_c);
    its final ';' may be left out ("double mean(const double *xs, size_t n)",
    as a command line gives it)."""
    if isinstance(decl, str) and decl.rstrip() and decl.rstrip()[-1] not in ";}":
        decl = decl.rstrip() + ";"
    contracts = contracts_from_c(decl, release_gil=release_gil, use_errno=use_errno)
    if len(contracts) != 1:
        raise CDeclError(f"ABIContract.from_c: expected one function declaration, got "
                         f"{len(contracts)} (use edgert.contracts_from_c for several)")
    return contracts[0]
