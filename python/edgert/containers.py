"""Typed containers: values of one declared type stored inline in C.

`TypedDict(key_type, value_type)` and `TypedList(item_type)` are C types from
the extension (edgert._edgert); this module adds what is better written in
Python: the keys and items views, the generic `object` fallback, pickling
helpers and the ABC registrations. See docs/containers.md.
"""
from __future__ import annotations

import collections.abc as _abc
import pickle as _pickle
from typing import Any, Iterable, Iterator

from . import _edgert

TypedDict = _edgert.TypedDict
TypedList = _edgert.TypedList
TypedDictValues = _edgert.TypedDictValues
register_type = _edgert.register_type
unregister_type = _edgert.unregister_type

__all__ = ["TypedDict", "TypedList", "register_type", "unregister_type"]


class TypedDictKeys(_abc.KeysView):
    """The keys of a TypedDict: a set-like view."""

    __slots__ = ()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._mapping)

    def __contains__(self, key: object) -> bool:
        # Set-like: a key of another type is simply not there (so set
        # operations with mixed sets work as they do on dict views).
        try:
            return key in self._mapping
        except TypeError:
            return False

    def __repr__(self) -> str:
        return f"TypedDict.keys({list(self)!r})"


class TypedDictItems(_abc.ItemsView):
    """The (key, value) pairs of a TypedDict: a set-like view."""

    __slots__ = ()

    def __iter__(self) -> Iterator[tuple]:
        m = self._mapping
        return m._iter_items() if hasattr(m, "_iter_items") else ((k, m[k]) for k in m)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        key, value = item
        try:
            v = self._mapping[key]
        except (KeyError, TypeError):
            return False
        return v is value or v == value

    def __repr__(self) -> str:
        return f"TypedDict.items({list(self)!r})"


def _name(spec: Any) -> str:
    return _edgert._type_info(spec)["name"]


class _GenericTypedDict(TypedDict):
    """TypedDict with `object` as key or value type: a dict underneath, with
    the typed side still checked (the article's generic fallback)."""

    def __new__(cls, key_type: Any, value_type: Any, data: Any = None, *,
                cache: Any = None) -> "_GenericTypedDict":
        self = super().__new__(cls, key_type, value_type)
        self._d = {}
        self._version = 0
        self._kspec = _edgert._type_info(key_type)["spec"]
        self._vspec = _edgert._type_info(value_type)["spec"]
        if data is not None:
            self.update(data)
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def _k(self, key: Any) -> Any:
        return _edgert._coerce(self._kspec, key, "TypedDict key")

    def _v(self, value: Any) -> Any:
        return _edgert._coerce(self._vspec, value, "TypedDict value")

    @property
    def key_type(self) -> Any:
        return self._kspec

    @property
    def value_type(self) -> Any:
        return self._vspec

    @property
    def version(self) -> int:
        """Bumped on every insert of a new key and every delete."""
        return self._version

    def __len__(self) -> int:
        return len(self._d)

    def __getitem__(self, key: Any) -> Any:
        return self._d[self._k(key)]

    def __setitem__(self, key: Any, value: Any) -> None:
        k, v = self._k(key), self._v(value)
        if k not in self._d:
            self._version += 1
        self._d[k] = v

    def __delitem__(self, key: Any) -> None:
        del self._d[self._k(key)]
        self._version += 1

    def __contains__(self, key: object) -> bool:
        return self._k(key) in self._d

    def __iter__(self) -> Iterator[Any]:
        return iter(self._d)

    def __eq__(self, other: object) -> Any:
        if isinstance(other, (dict, _abc.Mapping)):
            return self._d == dict(other)
        return NotImplemented

    def __ne__(self, other: object) -> Any:
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TypedDict({_name(self._kspec)}, {_name(self._vspec)}, {self._d!r})"

    def get(self, key: Any, default: Any = None) -> Any:
        return self._d.get(self._k(key), default)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        k = self._k(key)
        if k in self._d:
            return self._d[k]
        self._d[k] = self._v(default)
        self._version += 1
        return self._d[k]

    _MISSING = object()

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        k = self._k(key)
        if k in self._d:
            self._version += 1
            return self._d.pop(k)
        if default is self._MISSING:
            raise KeyError(key)
        return default

    def popitem(self) -> tuple:
        item = self._d.popitem()
        self._version += 1
        return item

    def clear(self) -> None:
        if self._d:
            self._version += 1
        self._d.clear()

    def update(self, other: Any = (), **kwargs: Any) -> None:
        if isinstance(other, _abc.Mapping) or hasattr(other, "keys"):
            pairs = [(k, other[k]) for k in other.keys()]
        else:
            pairs = []
            for i, p in enumerate(other):
                p = tuple(p)
                if len(p) != 2:
                    raise ValueError(f"dictionary update sequence element #{i} has length "
                                     f"{len(p)}; 2 is required")
                pairs.append(p)
        pairs.extend(kwargs.items())
        converted = [(self._k(k), self._v(v)) for k, v in pairs]  # all or nothing
        if any(k not in self._d for k, _ in converted):
            self._version += 1
        self._d.update(converted)

    def __or__(self, other: Any) -> Any:
        if not isinstance(other, (dict, TypedDict)):
            return NotImplemented
        c = self.copy()
        c.update(other)
        return c

    def __ior__(self, other: Any) -> "_GenericTypedDict":
        self.update(other)
        return self

    def __reversed__(self) -> Iterator[Any]:
        return reversed(self._d)

    def copy(self) -> "_GenericTypedDict":
        c = _GenericTypedDict(self._kspec, self._vspec)
        c._d = dict(self._d)
        c._version = 0
        return c

    __copy__ = copy

    def __deepcopy__(self, memo: dict) -> "_GenericTypedDict":
        import copy as _copy
        c = _GenericTypedDict(self._kspec, self._vspec)
        c._d = _copy.deepcopy(self._d, memo)
        return c

    def keys(self) -> TypedDictKeys:
        return TypedDictKeys(self)

    def values(self) -> _abc.ValuesView:
        return _abc.ValuesView(self)

    def items(self) -> TypedDictItems:
        return TypedDictItems(self)

    def _iter_items(self) -> Iterator[tuple]:
        return iter(self._d.items())

    def get_many(self, keys: Iterable[Any], out: Any = None, default: Any = _MISSING) -> Any:
        if default is self._MISSING:
            res = [self[k] for k in keys]
        else:
            res = [self.get(k, default) for k in keys]
        if out is None:
            return TypedList(self._vspec, res)
        out[:] = res
        return out

    def set_many(self, keys: Iterable[Any], values: Iterable[Any]) -> None:
        ks, vs = list(keys), list(values)
        if len(ks) != len(vs):
            raise ValueError(f"set_many: {len(ks)} keys but {len(vs)} values")
        self.update(zip(ks, vs))

    def cache_stats(self) -> dict:
        return {"hits": 0, "misses": 0, "bypassed": 0, "mode": "off", "active": False}

    def set_cache(self, mode: str) -> None:
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"cache must be 'auto', 'on' or 'off', not {mode!r}")

    def reserve(self, n: int) -> None:
        pass

    def __reduce__(self) -> Any:
        return (_rebuild_dict, (self._kspec, self._vspec, self._d, "off"))

    def __sizeof__(self) -> int:
        return object.__sizeof__(self) + self._d.__sizeof__()


class _GenericTypedList(TypedList):
    """TypedList(object): a list underneath (the generic fallback)."""

    def __new__(cls, item_type: Any, iterable: Iterable[Any] = (), *,
                capacity: int = 0) -> "_GenericTypedList":
        self = super().__new__(cls, item_type)
        self._l = list(iterable) if iterable is not None else []
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    @property
    def item_type(self) -> Any:
        return object

    @property
    def capacity(self) -> int:
        return len(self._l)

    def __len__(self) -> int:
        return len(self._l)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return _GenericTypedList(object, self._l[i])
        return self._l[i]

    def __setitem__(self, i: Any, v: Any) -> None:
        if isinstance(i, slice):
            v = list(v)
        self._l[i] = v

    def __delitem__(self, i: Any) -> None:
        del self._l[i]

    def __contains__(self, v: object) -> bool:
        return v in self._l

    def __iter__(self) -> Iterator[Any]:
        return iter(self._l)

    def __eq__(self, other: object) -> Any:
        if isinstance(other, (list, TypedList)):
            return self._l == list(other)
        return NotImplemented

    def __ne__(self, other: object) -> Any:
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    def __lt__(self, other: Any) -> Any:
        return self._l < list(other) if isinstance(other, (list, TypedList)) else NotImplemented

    def __le__(self, other: Any) -> Any:
        return self._l <= list(other) if isinstance(other, (list, TypedList)) else NotImplemented

    def __gt__(self, other: Any) -> Any:
        return self._l > list(other) if isinstance(other, (list, TypedList)) else NotImplemented

    def __ge__(self, other: Any) -> Any:
        return self._l >= list(other) if isinstance(other, (list, TypedList)) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TypedList(object, {self._l!r})"

    def __add__(self, other: Any) -> "_GenericTypedList":
        if not isinstance(other, (list, TypedList)):
            raise TypeError(f'can only concatenate a list or TypedList (not "{type(other).__name__}") to TypedList')
        return _GenericTypedList(object, self._l + list(other))

    def __iadd__(self, other: Any) -> "_GenericTypedList":
        self._l.extend(other)
        return self

    def __mul__(self, n: int) -> "_GenericTypedList":
        return _GenericTypedList(object, self._l * n)

    __rmul__ = __mul__

    def __imul__(self, n: int) -> "_GenericTypedList":
        self._l *= n
        return self

    def append(self, v: Any) -> None:
        self._l.append(v)

    def extend(self, it: Iterable[Any]) -> None:
        self._l.extend(it)

    def insert(self, i: int, v: Any) -> None:
        self._l.insert(i, v)

    def pop(self, i: int = -1) -> Any:
        return self._l.pop(i)

    def remove(self, v: Any) -> None:
        self._l.remove(v)

    def index(self, v: Any, *args: Any) -> int:
        return self._l.index(v, *args)

    def count(self, v: Any) -> int:
        return self._l.count(v)

    def reverse(self) -> None:
        self._l.reverse()

    def sort(self, *, key: Any = None, reverse: bool = False) -> None:
        self._l.sort(key=key, reverse=reverse)

    def clear(self) -> None:
        self._l.clear()

    def copy(self) -> "_GenericTypedList":
        return _GenericTypedList(object, self._l)

    __copy__ = copy

    def __deepcopy__(self, memo: dict) -> "_GenericTypedList":
        import copy as _copy
        return _GenericTypedList(object, _copy.deepcopy(self._l, memo))

    def reserve(self, n: int) -> None:
        pass

    def __reduce__(self) -> Any:
        return (_rebuild_list, (object, self._l))

    def __sizeof__(self) -> int:
        return object.__sizeof__(self) + self._l.__sizeof__()


def _rebuild_dict(key_type: Any, value_type: Any, items: dict, cache: str = "auto") -> Any:
    """Unpickle a TypedDict."""
    if _edgert._type_info(key_type)["name"] == "object" or \
            _edgert._type_info(value_type)["name"] == "object":
        return TypedDict(key_type, value_type, items)
    return TypedDict(key_type, value_type, items, cache=cache)


_RAW = (bytes, bytearray, memoryview, _pickle.PickleBuffer)


def _rebuild_dict_sides(key_type: Any, value_type: Any, keys: Any, values: Any,
                        cache: str = "auto") -> Any:
    """Unpickle a TypedDict pickled with protocol >= 5: `keys` and `values`
    are each the raw bytes of the dense arrays (a PickleBuffer out of band,
    bytes or bytearray in band) for fixed-size elements, else a list of the
    elements, in the same entry order."""
    ks = _rebuild_list(key_type, keys) if isinstance(keys, _RAW) else keys
    vs = _rebuild_list(value_type, values) if isinstance(values, _RAW) else values
    if len(ks) != len(vs):
        raise ValueError(f"cannot unpickle TypedDict: {len(ks)} keys but {len(vs)} values")
    td = TypedDict(key_type, value_type, cache=cache)
    td.set_many(ks, vs)
    if len(td) != len(ks):
        raise ValueError(f"cannot unpickle TypedDict: {len(ks)} keys of which "
                         f"{len(ks) - len(td)} repeat")
    return td


def _rebuild_list(item_type: Any, content: Any, shared: bool = False) -> Any:
    """Unpickle a TypedList: `content` is the raw element bytes (bytes, or
    with protocol 5 any buffer: a PickleBuffer given out of band, a
    bytearray in band) for fixed-size types without a box callback, else a
    list of the elements. `shared`: it was TypedList(..., shared=True), and
    is again (new shared memory of this process, holding a copy)."""
    if shared:
        tl = TypedList(item_type, shared=True)
        if isinstance(content, _RAW):
            tl._frombytes(content)
        else:
            tl.extend(content)
        return tl
    if isinstance(item_type, (str, bytes)):
        try:
            tl = TypedList(item_type)
        except ValueError as exc:
            name = item_type.decode("utf-8", "replace") if isinstance(item_type, bytes) else item_type
            raise ValueError(f"cannot unpickle TypedList({name!r}): custom type {name!r} is not "
                             "registered in this process; call edgert.register_type for it "
                             f"before unpickling ({exc})") from None
        if isinstance(content, _RAW):
            tl._frombytes(content)
            return tl
        tl.extend(content)
        return tl
    if isinstance(content, _RAW):
        tl = TypedList(item_type)
        tl._frombytes(content)
        return tl
    return TypedList(item_type, content)


_edgert._containers_setup(_GenericTypedDict, _GenericTypedList, TypedDictKeys,
                          TypedDictItems, _abc.Mapping)
_abc.MutableMapping.register(TypedDict)
_abc.MutableSequence.register(TypedList)
_abc.ValuesView.register(TypedDictValues)
