"""Typed handles on keyed state held by the host.

A handle names one state of the function (`ValueState("stats")`); every
call reads or writes that state *for the current key*: the key of the
record being processed, or of the timer that fired. Values are JSON (any
`json`-encodable Python value) or `bytes`, which are stored unchanged; the
Rust SDK stores the same JSON, so state is readable across languages.
Map keys are encoded the same way, and `items()` is ordered by the
encoded key bytes.

Value and map entries read or written during one call of the host (a
batch, a timer) are kept in the guest and written back at the end of the
call (`weir._runtime.StateCache`), so a key's state is read and written
once per batch, not once per record.
"""

from __future__ import annotations

from typing import Generic, Iterator, List, Optional, Tuple, TypeVar

from ._runtime import _ABSENT, MAP, VALUE, cache, decode, encode, encode_key

V = TypeVar("V")
K = TypeVar("K")


def _host_now():
    """The host, with the writes buffered in this call applied and the
    current key set: for list state and whole-map calls, which the cache
    does not hold."""
    state = cache()
    state.flush()
    return state.sync_key()


class ValueState(Generic[V]):
    """One value per key."""

    __slots__ = ("name", "raw")

    def __init__(self, name: str, *, raw: bool = False):
        """`raw=True` keeps `bytes` values undecoded (no JSON)."""
        self.name = name
        self.raw = raw

    def value(self, default: Optional[V] = None) -> Optional[V]:
        """The current key's value, or `default` when it has none."""
        value = cache().get(VALUE, self.name, None, self.raw)
        return default if value is _ABSENT else value

    def update(self, value: V) -> None:
        """Stores `value` for the current key (encoded at the end of the
        call: later changes to the same object before then are stored too)."""
        cache().put(VALUE, self.name, None, value)

    def clear(self) -> None:
        """Removes the current key's value."""
        cache().put(VALUE, self.name, None, _ABSENT)


class ListState(Generic[V]):
    """A list of values per key, in insertion order."""

    __slots__ = ("name", "raw")

    def __init__(self, name: str, *, raw: bool = False):
        self.name = name
        self.raw = raw

    def get(self) -> List[V]:
        """Every element for the current key (empty when none)."""
        items = _host_now().list_get(self.name)
        return items if self.raw else [decode(item) for item in items]  # type: ignore[return-value]

    def add(self, value: V) -> None:
        """Appends `value` for the current key."""
        _host_now().list_add(self.name, encode(value))

    def add_all(self, values: List[V]) -> None:
        """Appends each of `values`, in order."""
        h = _host_now()
        for value in values:
            h.list_add(self.name, encode(value))

    def update(self, values: List[V]) -> None:
        """Replaces the current key's list with `values`."""
        self.clear()
        self.add_all(values)

    def clear(self) -> None:
        """Removes every element for the current key."""
        _host_now().list_clear(self.name)

    def __iter__(self) -> Iterator[V]:
        return iter(self.get())


class MapState(Generic[K, V]):
    """A map per key, ordered by the encoded bytes of its keys."""

    __slots__ = ("name", "raw")

    def __init__(self, name: str, *, raw: bool = False):
        self.name = name
        self.raw = raw

    def get(self, key: K, default: Optional[V] = None) -> Optional[V]:
        """The value under `key` for the current key, or `default`."""
        value = cache().get(MAP, self.name, encode_key(key), self.raw)
        return default if value is _ABSENT else value

    def put(self, key: K, value: V) -> None:
        """Stores `value` under `key`."""
        cache().put(MAP, self.name, encode_key(key), value)

    def remove(self, key: K) -> None:
        """Removes `key` (nothing when absent)."""
        cache().put(MAP, self.name, encode_key(key), _ABSENT)

    def contains(self, key: K) -> bool:
        """Whether `key` has a value."""
        return cache().get(MAP, self.name, encode_key(key), self.raw) is not _ABSENT

    def items(self) -> List[Tuple[K, V]]:
        """Every entry for the current key, ordered by encoded key."""
        entries = _host_now().map_entries(self.name)
        if self.raw:
            return [(decode(k), v) for k, v in entries]  # type: ignore[misc]
        return [(decode(k), decode(v)) for k, v in entries]

    def keys(self) -> List[K]:
        """Every key, ordered by encoded key."""
        return [k for k, _ in self.items()]

    def values(self) -> List[V]:
        """Every value, ordered by encoded key."""
        return [v for _, v in self.items()]

    def is_empty(self) -> bool:
        """Whether the current key's map has no entry."""
        return not _host_now().map_entries(self.name)

    def clear(self) -> None:
        """Removes every entry for the current key."""
        _host_now().map_clear(self.name)

