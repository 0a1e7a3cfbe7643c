"""The part of the SDK that does not depend on the component bindings.

`Runtime` turns the calls of the `weir:operator` world (open, a batch of
records, a timer, snapshot and restore) into calls of the user's function,
over a `Host` that is either the component's imports (`weir._component`) or
an in-memory stand-in (`weir.testing`). Records and state values are JSON
(the job's format); `bytes` pass through unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import traceback
from typing import Any, Callable, Iterable, List, Optional, Protocol, Tuple

from . import _packed

# --- the host ---------------------------------------------------------------

EVENT_TIME = "event-time"
PROCESSING_TIME = "processing-time"

#: The watermark before the first one (the WIT's `-9223372036854775808`).
MIN_WATERMARK = -(2**63)


class Host(Protocol):
    """What the SDK needs from the host (the WIT imports), as plain Python."""

    def set_current_key(self, key: bytes) -> None: ...
    def value_get(self, name: str) -> Optional[bytes]: ...
    def value_set(self, name: str, value: bytes) -> None: ...
    def value_clear(self, name: str) -> None: ...
    def list_get(self, name: str) -> List[bytes]: ...
    def list_add(self, name: str, value: bytes) -> None: ...
    def list_clear(self, name: str) -> None: ...
    def map_get(self, name: str, map_key: bytes) -> Optional[bytes]: ...
    def map_put(self, name: str, map_key: bytes, value: bytes) -> None: ...
    def map_remove(self, name: str, map_key: bytes) -> None: ...
    def map_entries(self, name: str) -> List[Tuple[bytes, bytes]]: ...
    def map_clear(self, name: str) -> None: ...
    def current_watermark(self) -> int: ...
    def current_processing_time(self) -> int: ...
    def register_timer(self, domain: str, timestamp: int) -> None: ...
    def delete_timer(self, domain: str, timestamp: int) -> None: ...
    def log(self, level: str, message: str) -> None: ...


_host: Optional[Host] = None


def set_host(host: Optional[Host]) -> None:
    """Installs the host the state handles, timers and logging talk to."""
    global _host, _cache
    _host = host
    _cache = StateCache(host) if host is not None else None


def host() -> Host:
    if _host is None:
        raise RuntimeError(
            "weir: no host: state, timers and logging work inside a Weir job "
            "(or a weir.testing.Harness), not at import time"
        )
    return _host


# --- keyed state within one call -------------------------------------------

_ABSENT: Any = object()  # "no value" in the state cache (never stored)
_MISSING: Any = object()  # "not in the cache"
VALUE, MAP = 0, 2


class StateCache:
    """Value and map state read or written during one call of the host
    (one batch, one timer), kept decoded in the guest and written back,
    encoded, at the end of the call.

    Each import call crosses the component boundary and, in Python, lowers
    its arguments and lifts its result, and each JSON encoding or decoding
    runs in the interpreter; records of one key often come several to a
    batch, so the state a batch needs is read and decoded once and encoded
    and written once per key, instead of once per record. The host forgets
    the current key between calls, and nothing else changes keyed state
    during one, so writing back at the end of the call is what writing
    through would have left. As with Flink's heap state backend, a value
    read from state is the cached object itself: change it and `update` it
    (a change without `update` is not written). List state and whole-map
    reads go to the host (after the writes buffered so far); timers are
    not state and go straight through."""

    __slots__ = ("host", "key", "host_key", "values", "dirty", "record")

    def __init__(self, host: Host):
        self.host = host
        #: The current key of the function (the record's or the timer's).
        self.key: Optional[bytes] = None
        #: The key the host was last told, in this call.
        self.host_key: Optional[bytes] = None
        #: (key, kind, name, map key bytes) -> decoded value or _ABSENT
        self.values: dict = {}
        #: slots written in this call -> the input index of the record that
        #: last wrote them (0 in a timer call), in order
        self.dirty: dict = {}
        #: the input index of the record being processed
        self.record = 0

    def begin(self) -> None:
        """A new call: the host has no current key, nothing is cached."""
        self.key = None
        self.host_key = None
        self.record = 0
        self.values.clear()
        self.dirty.clear()

    def sync_key(self) -> Host:
        """The host, told the current key if it does not know it yet."""
        if self.host_key != self.key:
            if self.key is None:
                raise RuntimeError("keyed state used outside a keyed record or timer")
            self.host.set_current_key(self.key)
            self.host_key = self.key
        return self.host

    def get(self, kind: int, name: str, map_key: Optional[bytes], raw: bool) -> Any:
        """The decoded value (`bytes` when `raw`), or `_ABSENT`."""
        slot = (self.key, kind, name, map_key)
        found = self.values.get(slot, _MISSING)
        if found is _MISSING:
            h = self.sync_key()
            data = h.value_get(name) if kind == VALUE else h.map_get(name, map_key)  # type: ignore[arg-type]
            if data is None:
                self.values[slot] = _ABSENT
                return _ABSENT
            value = data if raw else decode(data)
            self.values[slot] = value
            return value
        return found

    def put(self, kind: int, name: str, map_key: Optional[bytes], value: Any) -> None:
        """Sets the value (`_ABSENT` removes it); encoded at the flush."""
        if self.key is None:
            self.sync_key()  # raises
        slot = (self.key, kind, name, map_key)
        self.values[slot] = value
        self.dirty[slot] = self.record

    def flush(self) -> List[Tuple[int, str]]:
        """Writes back what this call changed and forgets what it read.
        Returns `(input index, message)` for each value that cannot be
        encoded (a set, NaN, ...): those are per-record errors of the
        record that wrote them, and the host keeps the state's old value."""
        failed: List[Tuple[int, str]] = []
        try:
            h = self.host
            for slot, record in self.dirty.items():
                key, kind, name, map_key = slot
                value = self.values[slot]
                data = None
                if value is not _ABSENT:
                    try:
                        data = encode(value)
                    except (TypeError, ValueError) as e:
                        failed.append((record, f"state `{name}` cannot be stored as JSON: {type(e).__name__}: {e}"))
                        continue
                if self.host_key != key:
                    h.set_current_key(key)
                    self.host_key = key
                if kind == VALUE:
                    if data is None:
                        h.value_clear(name)
                    else:
                        h.value_set(name, data)
                elif data is None:
                    h.map_remove(name, map_key)
                else:
                    h.map_put(name, map_key, data)
        finally:
            self.dirty.clear()
            self.values.clear()
        return failed


_cache: Optional[StateCache] = None


def cache() -> StateCache:
    """The state cache of the installed host."""
    if _cache is None:
        host()  # raises with the explanation
    return _cache  # type: ignore[return-value]


# --- encoding ---------------------------------------------------------------


_json_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_json_decoder = json.JSONDecoder()
_scan_once = _json_decoder.scan_once


def _json_decode(text: str) -> Any:
    """`json.loads` of a str, calling the scanner directly when the text
    starts with the value (as every JSON the host and the SDKs write does):
    the decoder's own wrapper costs two Python calls and two regular
    expression matches per value. Anything else takes the decoder's path,
    with its error messages."""
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        return _json_decoder.decode(text)
    if end != len(text) and text[end:].strip(" \t\n\r"):
        return _json_decoder.decode(text)  # raises "Extra data"
    return value


def encode(value: Any) -> bytes:
    """A value as the bytes Weir keeps: `bytes` as they are, anything else
    as compact JSON (the format of the Rust SDK's serde_json). Raises
    `ValueError` for NaN and infinities, which JSON cannot hold."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return _json_encode(value).encode()


def decode(data: bytes) -> Any:
    """JSON bytes as a Python value; `ValueError` when they are not JSON."""
    return _json_decode(data.decode())


def encode_key(key: Any) -> bytes:
    """A map key's bytes: its JSON, as `encode`, with a fast path for the
    common integer keys (timestamps)."""
    if type(key) is int:
        return str(key).encode()
    return encode(key)


# --- errors and outputs -----------------------------------------------------


class RecordError(Exception):
    """Raise it while handling one record to report that record as a
    per-record error (counted, logged with its origin, dead-lettered when
    the job asks) and go on with the next one. Any other `Exception` raised
    for a record is reported the same way, with its type in the message."""


class Side:
    """An output for the named side output instead of the main one:
    `yield weir.Side("late", value)`."""

    __slots__ = ("output", "value", "key", "timestamp")

    def __init__(self, output: str, value: Any, *, key: Optional[bytes] = None, timestamp: Optional[int] = None):
        self.output = output
        self.value = value
        self.key = key
        self.timestamp = timestamp


class Record:
    """A main output whose key or timestamp differs from the input's:
    `yield weir.Record(value, timestamp=ts)`. Plain values keep the input
    record's key and timestamp."""

    __slots__ = ("value", "key", "timestamp")

    def __init__(self, value: Any, *, key: Optional[bytes] = None, timestamp: Optional[int] = None):
        self.value = value
        self.key = key
        self.timestamp = timestamp


@dataclasses.dataclass
class Emitted:
    """One output of a call, as the host receives it (bytes)."""

    kind: str  # "emit", "side" or "error"
    key: Optional[bytes] = None
    value: bytes = b""
    timestamp: Optional[int] = None
    output: str = ""  # the side output's name
    input: int = 0  # the failed input's index (errors)
    message: str = ""  # the error message


class OutputFactories:
    """How a runtime builds its outputs: the component builds the WIT's
    `output` values directly, the test harness `Emitted` ones."""

    __slots__ = ("emit", "side", "error")

    def __init__(
        self,
        emit: Callable[[Optional[bytes], bytes, Optional[int]], Any],
        side: Callable[[str, Optional[bytes], bytes, Optional[int]], Any],
        error: Callable[[int, str], Any],
    ):
        #: `emit(key, value, timestamp)`
        self.emit = emit
        #: `side(output, key, value, timestamp)`
        self.side = side
        #: `error(input index, message)`
        self.error = error


EMITTED = OutputFactories(
    lambda key, value, timestamp: Emitted("emit", key, value, timestamp),
    lambda output, key, value, timestamp: Emitted("side", key, value, timestamp, output=output),
    lambda index, message: Emitted("error", input=index, message=message),
)


# --- contexts ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OpenContext:
    """What `open` receives: the operator's config and which subtask this is."""

    #: The operator's `config:` from the job file, as a dict (`{}` when none).
    config: Any
    #: The operator's id in the job file.
    operator_id: str
    #: 0-based index of this subtask.
    subtask_index: int
    #: Number of parallel subtasks of the operator.
    parallelism: int
    #: Number of key groups (the job's max parallelism).
    max_parallelism: int
    #: 0 on the first run, one more on every restart.
    attempt: int

    def config_as(self, cls: Callable[..., Any]) -> Any:
        """The config as an instance of dataclass `cls` (its defaults for
        missing fields); an unknown field is an error, as in the Rust SDK.

        Raises `ValueError` naming the unknown fields."""
        config = self.config if isinstance(self.config, dict) else {}
        if dataclasses.is_dataclass(cls):
            known = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(set(config) - known)
            if unknown:
                raise ValueError(f"invalid operator config: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**config)


class TimerService:
    """Event and processing time, and timers of the current key."""

    __slots__ = ()

    def current_watermark(self) -> int:
        """The operator's watermark (ms since the epoch); `MIN_WATERMARK`
        before the first one. A record at or below it is late."""
        return host().current_watermark()

    def current_processing_time(self) -> int:
        """The wall clock (ms since the epoch), as the host grants it."""
        return host().current_processing_time()

    def register_event_time_timer(self, timestamp: int) -> None:
        """Calls `on_timer` once the watermark reaches `timestamp` (ms).
        Registering the same timestamp twice for a key leaves one timer."""
        cache().sync_key().register_timer(EVENT_TIME, int(timestamp))

    def register_processing_time_timer(self, timestamp: int) -> None:
        """Calls `on_timer` once the wall clock reaches `timestamp` (ms)."""
        cache().sync_key().register_timer(PROCESSING_TIME, int(timestamp))

    def delete_event_time_timer(self, timestamp: int) -> None:
        """Deletes the current key's event-time timer at `timestamp`, if any."""
        cache().sync_key().delete_timer(EVENT_TIME, int(timestamp))

    def delete_processing_time_timer(self, timestamp: int) -> None:
        """Deletes the current key's processing-time timer at `timestamp`, if any."""
        cache().sync_key().delete_timer(PROCESSING_TIME, int(timestamp))


class Context(TimerService):
    """What `process_element` receives besides the value: the record's key
    and event time, and the timer service."""

    __slots__ = ("key", "timestamp")

    def __init__(self, key: Optional[bytes], timestamp: Optional[int]):
        #: The record's key (bytes); `None` on a non-keyed stream.
        self.key = key
        #: The record's event time (ms since the epoch), if it has one.
        self.timestamp = timestamp

    @property
    def key_str(self) -> str:
        """The key as UTF-8 text."""
        return (self.key or b"").decode()


class TimerContext(Context):
    """What `on_timer` receives: the timer's key, timestamp and time domain."""

    __slots__ = ("domain",)

    def __init__(self, key: bytes, timestamp: int, domain: str):
        super().__init__(key, timestamp)
        #: `weir.EVENT_TIME` or `weir.PROCESSING_TIME`.
        self.domain = domain


# --- the runtime ------------------------------------------------------------


def _describe(error: BaseException) -> str:
    """`Type: message (file:line)` of an exception, for per-record errors."""
    text = f"{type(error).__name__}: {error}" if not isinstance(error, RecordError) else str(error)
    tb = traceback.extract_tb(error.__traceback__)
    user = [frame for frame in tb if "/weir/" not in frame.filename.replace("\\", "/")]
    if user and not isinstance(error, RecordError):
        frame = user[-1]
        text += f" (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})"
    return text


def _failure(what: str, error: BaseException) -> str:
    return f"{what}: " + "".join(traceback.format_exception_only(type(error), error)).strip() + "\n" + "".join(traceback.format_tb(error.__traceback__)).rstrip()


class Runtime:
    """Drives one user function through the calls of the operator world.

    `kind` is `map`, `filter`, `flat_map` or `keyed_process`; `cls` is the
    user's class (instantiated in `open`); `outputs` builds the outputs
    (`Emitted` ones by default). Every method returns what the WIT call
    returns, in plain Python."""

    def __init__(self, kind: str, cls: Callable[[], Any], outputs: Optional["OutputFactories"] = None):
        self.kind = kind
        self.cls = cls
        self.function: Any = None
        self.raw_input = bool(getattr(cls, "raw_input", False))
        factories = outputs or EMITTED
        self.make_emit = factories.emit
        self.make_side = factories.side
        self.make_error = factories.error

    # lifecycle

    def open(self, config_text: str, operator_id: str, index: int, parallelism: int, max_parallelism: int, attempt: int) -> Optional[str]:
        """Creates and opens the function; the error message, or `None`."""
        try:
            text = (config_text or "").strip() or "{}"
            config = json.loads(text)
        except ValueError as e:
            return f"invalid operator config (not JSON): {e}"
        ctx = OpenContext(config, operator_id, index, parallelism, max_parallelism, attempt)
        try:
            self.function = self.cls()
            opener = getattr(self.function, "open", None)
            if opener is not None:
                opener(ctx)
        except Exception as e:  # noqa: BLE001 - the message goes to the host
            return _failure("open failed", e)
        return None

    def close(self) -> Optional[str]:
        closer = getattr(self.function, "close", None)
        if closer is None:
            return None
        try:
            closer()
        except Exception as e:  # noqa: BLE001
            return _failure("close failed", e)
        return None

    def snapshot_state(self, checkpoint_id: int) -> Tuple[Optional[List[bytes]], Optional[str]]:
        snapshot = getattr(self.function, "snapshot_state", None)
        if snapshot is None:
            return [], None
        try:
            items = snapshot(checkpoint_id)
            return [encode(item) for item in (items or [])], None
        except Exception as e:  # noqa: BLE001
            return None, _failure("snapshot_state failed", e)

    def restore_state(self, items: List[bytes]) -> Optional[str]:
        restore = getattr(self.function, "restore_state", None)
        if restore is None:
            return None
        try:
            restore([decode(item) for item in items])
        except Exception as e:  # noqa: BLE001
            return _failure("restore_state failed", e)
        return None

    # records

    def process_packed(self, data: bytes) -> bytes:
        """`process` over a packed batch (`_packed`): the outputs packed
        into one buffer. Raises `_packed.PackedFormatError` on bytes that
        do not follow the format (the host takes it as a trap)."""
        rows = _packed.decode_rows(data)
        factories = (self.make_emit, self.make_side, self.make_error)
        self.make_emit, self.make_side, self.make_error = _packed.emit, _packed.side, _packed.error
        try:
            return b"".join(self._process_rows(rows))
        finally:
            self.make_emit, self.make_side, self.make_error = factories

    def process(self, batch: Iterable[Any]) -> List[Any]:
        """Runs a batch of records (objects with `key`, `value` and
        `timestamp`) and returns the outputs the factories made."""
        return self._process_rows([(r.key, r.value, r.timestamp) for r in batch])

    def _process_rows(self, rows: List[Tuple[Optional[bytes], bytes, Optional[int]]]) -> List[Any]:
        """`process` of `(key, value, timestamp)` rows."""
        out: List[Any] = []
        state = cache() if self.kind == "keyed_process" else None
        if state is not None:
            state.begin()
        try:
            self._process(rows, out, state)
        finally:
            if state is not None:
                for index, message in state.flush():
                    out.append(self.make_error(index, message))
        return out

    def _process(self, batch: Iterable[Any], out: List[Any], state: Optional[StateCache]) -> None:
        function = self.function
        raw = self.raw_input
        kind = self.kind
        emit, error = self.make_emit, self.make_error
        append = out.append
        # One context for the whole batch: valid during `process_element` only.
        ctx = Context(None, None)
        for index, (key, value, timestamp) in enumerate(batch):
            try:
                if raw:
                    item = value
                else:
                    try:
                        item = _json_decode(value.decode())
                    except ValueError as e:
                        raise RecordError(f"invalid JSON input: {e}") from None
                if kind == "keyed_process":
                    if key is None:
                        raise RecordError("keyed_process needs a keyed stream (key_by) but the record has no key")
                    state.key = key  # type: ignore[union-attr]
                    state.record = index  # type: ignore[union-attr]
                    ctx.key = key
                    ctx.timestamp = timestamp
                    result = function.process_element(item, ctx)
                    if result is not None:
                        self._emit_all(out, result, key, timestamp)
                elif kind == "map":
                    self._emit_one(out, function.map(item), key, timestamp)
                elif kind == "filter":
                    if function.filter(item):
                        append(emit(key, value, timestamp))
                else:
                    result = function.flat_map(item)
                    if result is not None:
                        self._emit_all(out, result, key, timestamp)
            except Exception as e:  # noqa: BLE001 - a per-record error
                append(error(index, _describe(e)))

    def on_timer(self, key: bytes, timestamp: int, domain: str) -> List[Any]:
        out: List[Any] = []
        handler = getattr(self.function, "on_timer", None)
        if handler is None:
            return out
        state = cache()
        state.begin()
        state.key = key
        try:
            result = handler(timestamp, TimerContext(key, timestamp, domain))
            if result is not None:
                self._emit_all(out, result, key, timestamp)
        except Exception as e:  # noqa: BLE001
            out.append(self.make_error(0, f"on_timer at {timestamp}: {_describe(e)}"))
        finally:
            for _, message in state.flush():
                out.append(self.make_error(0, f"on_timer at {timestamp}: {message}"))
        return out

    def _emit_one(self, out: List[Any], item: Any, key: Optional[bytes], timestamp: Optional[int]) -> None:
        if type(item) is dict:  # the common case first
            out.append(self.make_emit(key, _json_encode(item).encode(), timestamp))
        elif isinstance(item, Side):
            out.append(self.make_side(item.output, item.key if item.key is not None else key, encode(item.value), item.timestamp if item.timestamp is not None else timestamp))
        elif isinstance(item, Record):
            out.append(self.make_emit(item.key if item.key is not None else key, encode(item.value), item.timestamp if item.timestamp is not None else timestamp))
        else:
            out.append(self.make_emit(key, encode(item), timestamp))

    def _emit_all(self, out: List[Any], items: Any, key: Optional[bytes], timestamp: Optional[int]) -> None:
        """Appends every output of a flat_map / process_element / on_timer
        result: a `Side`/`Record`, or an iterable (a generator included) of
        outputs. The outputs of a record that raises part-way are dropped
        with it."""
        kind = type(items)
        if (kind is list or kind is tuple) and not items:
            return
        if kind is not list and kind is not tuple and (
            isinstance(items, (Side, Record, str, bytes, bytearray, dict)) or not hasattr(items, "__iter__")
        ):
            # One output, not a collection of them.
            self._emit_one(out, items, key, timestamp)
            return
        start = len(out)
        try:
            for item in items:
                self._emit_one(out, item, key, timestamp)
        except BaseException:
            del out[start:]
            raise


# --- aggregates -------------------------------------------------------------


class AggregateRuntime:
    """Drives an `AggregateFunction` through the aggregate world's calls.
    Accumulators are JSON values, kept by the host as bytes."""

    def __init__(self, cls: Callable[[], Any]):
        self.cls = cls
        self.function: Any = None

    def open(self, config_text: str, operator_id: str, index: int, parallelism: int, max_parallelism: int, attempt: int) -> Optional[str]:
        try:
            config = json.loads((config_text or "").strip() or "{}")
        except ValueError as e:
            return f"invalid operator config (not JSON): {e}"
        try:
            self.function = self.cls()
            opener = getattr(self.function, "open", None)
            if opener is not None:
                opener(OpenContext(config, operator_id, index, parallelism, max_parallelism, attempt))
        except Exception as e:  # noqa: BLE001
            return _failure("open failed", e)
        return None

    def create_accumulator(self) -> bytes:
        return encode(self.function.create_accumulator())

    def add(self, accumulator: bytes, values: List[bytes]) -> Tuple[Optional[bytes], Optional[str]]:
        try:
            acc = decode(accumulator)
            for value in values:
                acc = self.function.add(json.loads(value), acc)
            return encode(acc), None
        except Exception as e:  # noqa: BLE001
            return None, _describe(e)

    def merge(self, accumulator: bytes, other: bytes) -> Tuple[Optional[bytes], Optional[str]]:
        try:
            return encode(self.function.merge(decode(accumulator), decode(other))), None
        except Exception as e:  # noqa: BLE001
            return None, _describe(e)

    def get_result(self, accumulator: bytes) -> Tuple[Optional[str], Optional[str]]:
        try:
            result = self.function.get_result(decode(accumulator))
            if not isinstance(result, dict):
                raise TypeError(f"get_result must return a dict (the result's fields), got {type(result).__name__}")
            return encode(result).decode(), None
        except Exception as e:  # noqa: BLE001
            return None, _describe(e)


# --- registration -----------------------------------------------------------

_registered: Optional[Tuple[str, Callable[[], Any]]] = None


def register(kind: str, cls: Callable[[], Any]) -> None:
    global _registered
    if _registered is not None and _registered[1] is not cls:
        raise RuntimeError(f"weir: one function per component: {_registered[1].__name__} is already exported, cannot export {getattr(cls, '__name__', cls)!r} too")
    _registered = (kind, cls)


def registered() -> Tuple[str, Callable[[], Any]]:
    if _registered is None:
        raise RuntimeError("weir: the module exports no function: decorate a class or function with @weir.export (or @weir.map, @weir.filter, @weir.flat_map)")
    return _registered


def world() -> str:
    """The WIT world the registered function needs: `aggregate`, or
    `packed-operator` (the operator world plus `process-packed`)."""
    return "aggregate" if registered()[0] == "aggregate" else "packed-operator"

