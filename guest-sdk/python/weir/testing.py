"""Run a Weir Python function on the host, without Wasm, for unit tests.

`Harness` drives a function through the same runtime the component uses,
over `MemoryHost`, an in-memory stand-in for the host's keyed state,
timers and log:

```python
from weir.testing import Harness

h = Harness(ZScore, config={"warmup": 2})
out = h.process([{"value": 1.0}], key=b"s1", timestamp=1000)
fired = h.advance_watermark(5000)       # event-time timers up to 5000
h2 = Harness(ZScore, restore=h.snapshot())   # a restart from a checkpoint
```

Outputs come back as `Output` objects with decoded values.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from . import _runtime
from ._runtime import EVENT_TIME, MIN_WATERMARK, PROCESSING_TIME


@dataclasses.dataclass
class StreamRecord:
    """A record as the host sends it (the WIT's `stream-record`)."""

    key: Optional[bytes]
    value: bytes
    timestamp: Optional[int]


class MemoryHost:
    """Keyed state, timers and a log in Python dicts, with the host's rules:
    state needs a current key, map entries are ordered by key bytes, a
    timer (key, domain, timestamp) is kept once."""

    def __init__(self) -> None:
        self.current_key: Optional[bytes] = None
        #: (key, kind, name) -> value (bytes), list of bytes, or dict of bytes -> bytes
        self.state: Dict[Tuple[bytes, str, str], Any] = {}
        #: (domain, timestamp, key), registered timers
        self.timers: set = set()
        self.watermark = MIN_WATERMARK
        self.processing_time = 0
        #: (level, message) of every log line
        self.logs: List[Tuple[str, str]] = []

    def _slot(self, kind: str, name: str) -> Tuple[bytes, str, str]:
        if self.current_key is None:
            raise RuntimeError("keyed state used before a key was set (not a keyed stream?)")
        for other in ("value", "list", "map"):
            if other != kind and (self.current_key, other, name) in self.state:
                raise RuntimeError(f"state `{name}` is {other} state, not {kind} state")
        return (self.current_key, kind, name)

    def set_current_key(self, key: bytes) -> None:
        self.current_key = bytes(key)

    def value_get(self, name: str) -> Optional[bytes]:
        return self.state.get(self._slot("value", name))

    def value_set(self, name: str, value: bytes) -> None:
        self.state[self._slot("value", name)] = bytes(value)

    def value_clear(self, name: str) -> None:
        self.state.pop(self._slot("value", name), None)

    def list_get(self, name: str) -> List[bytes]:
        return list(self.state.get(self._slot("list", name), []))

    def list_add(self, name: str, value: bytes) -> None:
        self.state.setdefault(self._slot("list", name), []).append(bytes(value))

    def list_clear(self, name: str) -> None:
        self.state.pop(self._slot("list", name), None)

    def map_get(self, name: str, map_key: bytes) -> Optional[bytes]:
        return self.state.get(self._slot("map", name), {}).get(bytes(map_key))

    def map_put(self, name: str, map_key: bytes, value: bytes) -> None:
        self.state.setdefault(self._slot("map", name), {})[bytes(map_key)] = bytes(value)

    def map_remove(self, name: str, map_key: bytes) -> None:
        slot = self._slot("map", name)
        entries = self.state.get(slot)
        if entries is not None:
            entries.pop(bytes(map_key), None)
            if not entries:
                del self.state[slot]

    def map_entries(self, name: str) -> List[Tuple[bytes, bytes]]:
        return sorted(self.state.get(self._slot("map", name), {}).items())

    def map_clear(self, name: str) -> None:
        self.state.pop(self._slot("map", name), None)

    def current_watermark(self) -> int:
        return self.watermark

    def current_processing_time(self) -> int:
        return self.processing_time

    def register_timer(self, domain: str, timestamp: int) -> None:
        if self.current_key is None:
            raise RuntimeError("timers need a current key (a keyed stream)")
        self.timers.add((domain, int(timestamp), self.current_key))

    def delete_timer(self, domain: str, timestamp: int) -> None:
        if self.current_key is None:
            raise RuntimeError("timers need a current key (a keyed stream)")
        self.timers.discard((domain, int(timestamp), self.current_key))

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))


@dataclasses.dataclass
class Output:
    """One output of a call, with its value decoded from JSON when it is JSON."""

    kind: str  # "emit", "side" or "error"
    value: Any = None
    key: Optional[bytes] = None
    timestamp: Optional[int] = None
    output: str = ""
    input: int = 0
    message: str = ""


def _decoded(emitted: List[_runtime.Emitted]) -> List[Output]:
    out = []
    for e in emitted:
        value: Any = e.value
        if e.kind != "error":
            try:
                value = json.loads(e.value)
            except ValueError:
                pass
        out.append(Output(e.kind, value if e.kind != "error" else None, e.key, e.timestamp, e.output, e.input, e.message))
    return out


@dataclasses.dataclass
class Snapshot:
    """A checkpoint of a harness: keyed state, timers and operator state."""

    state: Dict[Tuple[bytes, str, str], Any]
    timers: set
    operator_state: List[bytes]
    watermark: int


class Harness:
    """One subtask of a function, driven by hand. The function's class is
    opened on construction (with `config`); an error there raises
    `RuntimeError` with the message the host would get."""

    def __init__(
        self,
        cls: Callable[[], Any],
        config: Optional[dict] = None,
        *,
        kind: Optional[str] = None,
        operator_id: str = "udf",
        subtask_index: int = 0,
        parallelism: int = 1,
        max_parallelism: int = 128,
        attempt: int = 0,
        restore: Optional[Snapshot] = None,
    ) -> None:
        self.host = MemoryHost()
        self.kind = kind or _kind_of(cls)
        self.runtime = _runtime.Runtime(self.kind, cls)
        if restore is not None:
            self.host.state = copy.deepcopy(restore.state)
            self.host.timers = set(restore.timers)
            self.host.watermark = restore.watermark
        with self._installed():
            error = self.runtime.open(json.dumps(config or {}), operator_id, subtask_index, parallelism, max_parallelism, attempt)
            if error is None and restore is not None and restore.operator_state:
                error = self.runtime.restore_state(restore.operator_state)
        if error is not None:
            raise RuntimeError(error)

    def _installed(self) -> "_Installed":
        return _Installed(self.host)

    def process(self, values: Iterable[Any], *, key: Optional[bytes] = None, timestamp: Optional[int] = None) -> List[Output]:
        """Runs one batch. Each item is a value (JSON-encoded for the
        function; `bytes` are sent as they are) or a `(key, value,
        timestamp)` tuple; `key` and `timestamp` apply to plain values."""
        batch = []
        for item in values:
            if isinstance(item, tuple):
                k, v, ts = item
            else:
                k, v, ts = key, item, timestamp
            batch.append(StreamRecord(k, v if isinstance(v, bytes) else _runtime.encode(v), ts))
        with self._installed():
            out = self.runtime.process(batch)
            self.host.current_key = None  # the host forgets the key between calls
        return _decoded(out)

    def advance_watermark(self, watermark: int) -> List[Output]:
        """Sets the watermark and fires the event-time timers it passes, in
        (timestamp, key) order, including ones registered while firing."""
        self.host.watermark = watermark
        return self._fire(EVENT_TIME, watermark)

    def advance_processing_time(self, now: int) -> List[Output]:
        """Sets the processing time and fires the processing-time timers due."""
        self.host.processing_time = now
        return self._fire(PROCESSING_TIME, now)

    def _fire(self, domain: str, until: int) -> List[Output]:
        out: List[Output] = []
        while True:
            due = sorted(t for t in self.host.timers if t[0] == domain and t[1] <= until)
            if not due:
                return out
            timer = due[0]
            self.host.timers.discard(timer)
            with self._installed():
                emitted = self.runtime.on_timer(timer[2], timer[1], domain)
                self.host.current_key = None
            out.extend(_decoded(emitted))

    def close(self) -> None:
        """Calls `close`; raises `RuntimeError` with its error."""
        with self._installed():
            error = self.runtime.close()
        if error is not None:
            raise RuntimeError(error)

    def snapshot(self, checkpoint_id: int = 1) -> Snapshot:
        """Keyed state, timers and operator state as a checkpoint has them."""
        with self._installed():
            items, error = self.runtime.snapshot_state(checkpoint_id)
        if error is not None:
            raise RuntimeError(error)
        return Snapshot(copy.deepcopy(self.host.state), set(self.host.timers), list(items or []), self.host.watermark)

    def value_state(self, key: bytes, name: str) -> Any:
        """Value state `name` of `key`, decoded (None when absent)."""
        data = self.host.state.get((key, "value", name))
        return None if data is None else json.loads(data)

    def map_state(self, key: bytes, name: str) -> Dict[Any, Any]:
        """Map state `name` of `key`, keys and values decoded."""
        return {json.loads(k): json.loads(v) for k, v in sorted(self.host.state.get((key, "map", name), {}).items())}

    def list_state(self, key: bytes, name: str) -> List[Any]:
        """List state `name` of `key`, decoded."""
        return [json.loads(v) for v in self.host.state.get((key, "list", name), [])]

    def timers(self, domain: str = EVENT_TIME) -> List[Tuple[int, bytes]]:
        """Registered timers of `domain` as (timestamp, key), in firing order."""
        return sorted((t[1], t[2]) for t in self.host.timers if t[0] == domain)


class AggregateHarness:
    """An `AggregateFunction` driven by hand; accumulators are decoded JSON."""

    def __init__(self, cls: Callable[[], Any], config: Optional[dict] = None) -> None:
        self.host = MemoryHost()
        self.runtime = _runtime.AggregateRuntime(cls)
        with _Installed(self.host):
            error = self.runtime.open(json.dumps(config or {}), "agg", 0, 1, 128, 0)
        if error is not None:
            raise RuntimeError(error)

    def aggregate(self, *windows: Iterable[Any]) -> dict:
        """The result of the values of each of `windows`, each added in one
        call and then merged in order (a session window's parts)."""
        with _Installed(self.host):
            merged: Optional[bytes] = None
            for values in windows:
                acc, error = self.runtime.add(self.runtime.create_accumulator(), [_runtime.encode(v) for v in values])
                if error is not None:
                    raise ValueError(error)
                if merged is None:
                    merged = acc
                else:
                    merged, error = self.runtime.merge(merged, acc)  # type: ignore[arg-type]
                    if error is not None:
                        raise ValueError(error)
            result, error = self.runtime.get_result(merged if merged is not None else self.runtime.create_accumulator())
        if error is not None:
            raise ValueError(error)
        return json.loads(result)  # type: ignore[arg-type]


class _Installed:
    def __init__(self, host: MemoryHost) -> None:
        self.host = host
        self.previous: Optional[_runtime.Host] = None

    def __enter__(self) -> None:
        self.previous = _runtime._host
        _runtime.set_host(self.host)

    def __exit__(self, *exc: object) -> None:
        _runtime.set_host(self.previous)


def _kind_of(cls: Callable[[], Any]) -> str:
    from . import _KINDS

    for base, kind in _KINDS:
        if isinstance(cls, type) and issubclass(cls, base):
            return kind
    raise TypeError(f"{cls!r} is not a Weir function class")

