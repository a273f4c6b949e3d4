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
``c_char_p``. ``...`` makes the contract variadic. Refused, naming the
construct and its line: structs, unions and enums (by value or behind a
pointer), function pointers, bit-fields, ``f()`` without ``void``,
preprocessor lines, variables, and anything pycparser cannot parse.
"""
from __future__ import annotations

import ctypes
import re
from typing import Any, List, Optional, Tuple

__all__ = ["contracts_from_c"]

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
                     f"C declarations yet (pass its address as void *)")


def _resolve(node: Any, typedefs: dict, *, is_return: bool, top: bool = True) -> Any:
    """The ctypes type of a type node (TypeDecl, PtrDecl, ArrayDecl, Typename)."""
    from pycparser import c_ast
    from .abi import const
    if isinstance(node, (c_ast.Typename, c_ast.Decl)):
        if isinstance(node, c_ast.Decl) and node.bitsize is not None:
            raise CDeclError(f"{_line(node)}: bit-field '{node.name}' is not supported")
        return _resolve(node.type, typedefs, is_return=is_return, top=top)
    if isinstance(node, c_ast.TypeDecl):
        t = node.type
        if isinstance(t, (c_ast.Struct, c_ast.Union, c_ast.Enum)):
            _refuse_compound(t, "by value")
        return _scalar(t.names, node, typedefs)
    if isinstance(node, (c_ast.PtrDecl, c_ast.ArrayDecl)):
        inner = node.type
        if isinstance(inner, c_ast.FuncDecl):
            raise CDeclError(f"{_line(node)}: a function pointer is not supported in C "
                             f"declarations yet (declare it void *)")
        if isinstance(inner, c_ast.TypeDecl) and isinstance(
                inner.type, (c_ast.Struct, c_ast.Union, c_ast.Enum)):
            _refuse_compound(inner.type, "behind a pointer")
        is_const = "const" in (getattr(inner, "quals", None) or [])
        target = _resolve(inner, typedefs, is_return=False, top=False)
        if isinstance(target, const):
            target = target.type  # const of what the inner pointer points to: not ours
        if target is None:
            ptr: Any = ctypes.c_void_p
        elif target is ctypes.c_char and (is_const or is_return):
            return ctypes.c_char_p
        elif target is ctypes.c_wchar and (is_const or is_return):
            return ctypes.c_wchar_p
        else:
            ptr = ctypes.POINTER(target)
        return const(ptr) if is_const and not is_return else ptr
    raise CDeclError(f"{_line(node)}: {type(node).__name__} is not supported in C declarations")


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
    try:
        ast = c_parser.CParser().parse(_PRELUDE + "\n# 1 \"<decl>\"\n" + body, filename="<decl>")
    except Exception as exc:  # pycparser's ParseError: "<decl>:3:14: before: ..."
        msg = str(exc)
        m = re.match(r"<decl>:(\d+):(\d+): (.*)", msg, flags=re.S)
        hint = ""
        if m and m.group(3).strip() == "before: ...":
            hint = " ('...' needs a named parameter before it)"
        elif m and re.fullmatch(r"before: [A-Za-z_]\w*", m.group(3).strip()):
            hint = " (an unknown type name? declare it with a typedef in the same text)"
        raise CDeclError(f"line {m.group(1)}: cannot parse: {m.group(3)}{hint}" if m
                         else f"cannot parse: {msg}") from None
    typedefs: dict = {}
    items = []
    for ext in ast.ext:
        if isinstance(ext, c_ast.Typedef):  # the prelude's and the text's
            typedefs[ext.name] = ext.type
        elif isinstance(ext, c_ast.FuncDef):
            items.append(ext.decl)
        elif isinstance(ext, c_ast.Decl):
            if ext.name is None:  # "struct P { ... };" and the like
                _refuse_compound(ext.type, "definition")
            items.append(ext)
        else:
            raise CDeclError(f"{_line(ext)}: {type(ext).__name__} is not supported")
    return items, typedefs


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
