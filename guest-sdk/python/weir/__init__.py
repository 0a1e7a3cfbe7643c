"""Weir user functions in Python.

Write a class (or a plain function for map, filter and flat_map), export it
with a decorator, and build the module `app.py` into a WebAssembly
component with `weir udf build DIR` (componentize-py underneath):

```python
import weir

@weir.export
class ZScore(weir.KeyedProcessFunction):
    def open(self, ctx: weir.OpenContext) -> None:
        self.threshold = float(ctx.config.get("threshold", 4.0))
        self.stats = weir.ValueState("welford")

    def process_element(self, value: dict, ctx: weir.Context):
        n, mean = self.stats.value([0, 0.0])
        ...
        yield {"series": ctx.key_str, "z": z}
```

Records arrive as decoded JSON (dicts) and outputs are encoded as JSON,
unless a class sets `raw_input = True` (values as `bytes`) or yields
`bytes`. A function is an ordinary object with fields: componentize-py
creates a new export handler per call, and the SDK hides that by keeping
one instance of the user's class for the life of the subtask.

An exception raised while handling one record makes that record a
per-record error (the host counts it, logs it with the record's origin and
goes on); `weir.RecordError("why")` says so explicitly. An exception in
`open`, `close` or `restore_state` fails the task.
"""

from __future__ import annotations

import logging as _logging
from typing import Any, Callable, Iterable, List, Optional, TypeVar

from . import _runtime
from ._runtime import (
    EVENT_TIME,
    MIN_WATERMARK,
    PROCESSING_TIME,
    Context,
    OpenContext,
    Record,
    RecordError,
    Side,
    TimerContext,
    TimerService,
    world,
)
from .state import ListState, MapState, ValueState

__all__ = [
    "EVENT_TIME",
    "MIN_WATERMARK",
    "PROCESSING_TIME",
    "AggregateFunction",
    "Context",
    "FilterFunction",
    "FlatMapFunction",
    "KeyedProcessFunction",
    "ListState",
    "MapFunction",
    "MapState",
    "OpenContext",
    "Record",
    "RecordError",
    "Side",
    "TimerContext",
    "TimerService",
    "ValueState",
    "export",
    "filter",
    "flat_map",
    "log",
    "logger",
    "map",
    "world",
]

__version__ = "0.1.0"


class Function:
    """What every operator function may implement besides its per-record
    method. All are optional."""

    #: `True`: records arrive as `bytes`, undecoded (no JSON parsing).
    raw_input: bool = False

    def open(self, ctx: OpenContext) -> None:
        """Called once per subtask before anything else; raise to fail the task."""

    def close(self) -> None:
        """Called once at end of input; raise to fail the task."""

    def snapshot_state(self, checkpoint_id: int) -> List[Any]:
        """This subtask's operator state (not scoped to a key) at a
        checkpoint, as a list of JSON-encodable items (or `bytes`). When the
        job resumes at another parallelism the items of all subtasks are
        split evenly over the new ones: make each item movable on its own.
        Raising declines the checkpoint; the job goes on."""
        return []

    def restore_state(self, items: List[Any]) -> None:
        """The items of a restored checkpoint assigned to this subtask,
        decoded from JSON, after `open` and before the first record."""


class MapFunction(Function):
    """Exactly one output per input."""

    def map(self, value: Any) -> Any:
        """The output for `value` (any JSON value, `bytes`, or a `weir.Record`)."""
        raise NotImplementedError


class FilterFunction(Function):
    """Keeps the records for which `filter` is true, unchanged."""

    def filter(self, value: Any) -> bool:
        """Whether to keep the record."""
        raise NotImplementedError


class FlatMapFunction(Function):
    """Any number of outputs per input."""

    def flat_map(self, value: Any) -> Optional[Iterable[Any]]:
        """The outputs for `value`: `yield` them (values, `weir.Side`,
        `weir.Record`), or return a list or `None`."""
        raise NotImplementedError


class KeyedProcessFunction(Function):
    """A function over a keyed stream (after `key_by`) with keyed state
    (`ValueState`, `ListState`, `MapState`) and timers."""

    def process_element(self, value: Any, ctx: Context) -> Optional[Iterable[Any]]:
        """Handles one record of key `ctx.key`; `yield` the outputs."""
        raise NotImplementedError

    def on_timer(self, timestamp: int, ctx: TimerContext) -> Optional[Iterable[Any]]:
        """A timer of key `ctx.key` fired at `timestamp` (ms); the key's
        state is current. Outputs carry the timer's key and timestamp."""
        return None


class AggregateFunction:
    """A window aggregate (Flink's `AggregateFunction`): the host keeps one
    accumulator (any JSON value) per key and window."""

    def open(self, ctx: OpenContext) -> None:
        """Called once per subtask; raise to fail the task."""

    def create_accumulator(self) -> Any:
        """A new, empty accumulator."""
        raise NotImplementedError

    def add(self, value: Any, accumulator: Any) -> Any:
        """`accumulator` with `value` (a decoded record) added. Raising
        rejects the values of this call; the host keeps the old accumulator."""
        raise NotImplementedError

    def merge(self, a: Any, b: Any) -> Any:
        """Two accumulators as one (session windows merge); `b` holds the later records."""
        raise NotImplementedError

    def get_result(self, accumulator: Any) -> dict:
        """The window's result: a dict whose fields are appended to the result record."""
        raise NotImplementedError


_KINDS = (
    (KeyedProcessFunction, "keyed_process"),
    (MapFunction, "map"),
    (FilterFunction, "filter"),
    (FlatMapFunction, "flat_map"),
    (AggregateFunction, "aggregate"),
)

T = TypeVar("T")


def export(cls: T) -> T:
    """Makes class `cls` the component's function (one per component). It
    must subclass one of `MapFunction`, `FilterFunction`, `FlatMapFunction`,
    `KeyedProcessFunction` or `AggregateFunction`."""
    for base, kind in _KINDS:
        if isinstance(cls, type) and issubclass(cls, base):
            _runtime.register(kind, cls)
            return cls
    raise TypeError(f"weir.export: {cls!r} is not a subclass of MapFunction, FilterFunction, FlatMapFunction, KeyedProcessFunction or AggregateFunction")


def _from_function(kind: str, method: str, base: type, fn: Callable[..., Any]) -> Callable[..., Any]:
    cls = type(getattr(fn, "__name__", "Function"), (base,), {method: staticmethod(fn), "__doc__": fn.__doc__})
    _runtime.register(kind, cls)
    return fn


def map(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:  # noqa: A001 - the operator's name
    """Exports a plain function as a `MapFunction` (`@weir.map`)."""
    return _from_function("map", "map", MapFunction, fn)


def filter(fn: Callable[[Any], bool]) -> Callable[[Any], bool]:  # noqa: A001
    """Exports a plain predicate as a `FilterFunction` (`@weir.filter`)."""
    return _from_function("filter", "filter", FilterFunction, fn)


def flat_map(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Exports a plain generator or function as a `FlatMapFunction` (`@weir.flat_map`)."""
    return _from_function("flat_map", "flat_map", FlatMapFunction, fn)


def log(level: str, message: str) -> None:
    """Writes one line into the host's log, tagged with the operator and
    subtask. `level` is trace, debug, info, warn or error."""
    _runtime.host().log(level, str(message))


class _HostHandler(_logging.Handler):
    """Sends `logging` records to the host's log."""

    LEVELS = {
        _logging.DEBUG: "debug",
        _logging.INFO: "info",
        _logging.WARNING: "warn",
        _logging.ERROR: "error",
        _logging.CRITICAL: "error",
    }

    def emit(self, record: _logging.LogRecord) -> None:
        level = self.LEVELS.get(record.levelno, "trace" if record.levelno < _logging.DEBUG else "error")
        try:
            _runtime.host().log(level, self.format(record))
        except Exception:  # noqa: BLE001 - logging never fails a record
            self.handleError(record)


#: A standard `logging.Logger` whose records go to the host's log.
logger = _logging.getLogger("weir.udf")
logger.addHandler(_HostHandler())
logger.setLevel(_logging.DEBUG)
logger.propagate = False
