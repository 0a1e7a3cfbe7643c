"""The component's exports: the WIT world's interfaces over `Runtime`.

Imported only inside a component (the `wit_world` bindings exist only when
componentize-py builds one). componentize-py creates a new instance of an
export class for every call, so the function and its runtime live here, at
module level, for the life of the component instance (one subtask).
"""

from __future__ import annotations

from typing import List, Optional

from componentize_py_types import Err

from . import _runtime

_kind, _cls = _runtime.registered()


def _fail(message: Optional[str]) -> None:
    if message is not None:
        raise Err(message)


if _kind == "aggregate":
    import wit_world.exports
    from wit_world.imports import logging as _wit_logging
    from wit_world.imports import types as _types

    class _AggregateHost:
        """The aggregate world imports only logging."""

        _LEVELS = {level.name.lower(): level for level in _wit_logging.Level}

        def log(self, level: str, message: str) -> None:
            _wit_logging.log(self._LEVELS.get(level, _wit_logging.Level.INFO), message)

        def __getattr__(self, name: str):
            raise RuntimeError("weir: an aggregate function has no keyed state or timers")

    _runtime.set_host(_AggregateHost())  # type: ignore[arg-type]
    _aggregate = _runtime.AggregateRuntime(_cls)

    class Aggregator(wit_world.exports.Aggregator):
        def open(self, ctx: _types.Context) -> None:
            s = ctx.subtask
            _fail(_aggregate.open(ctx.config, s.operator_id, s.index, s.parallelism, s.max_parallelism, s.attempt))

        def create_accumulator(self) -> bytes:
            return _aggregate.create_accumulator()

        def add(self, accumulator: bytes, values: List[bytes]) -> bytes:
            result, error = _aggregate.add(accumulator, values)
            _fail(error)
            return result  # type: ignore[return-value]

        def merge(self, accumulator: bytes, other: bytes) -> bytes:
            result, error = _aggregate.merge(accumulator, other)
            _fail(error)
            return result  # type: ignore[return-value]

        def get_result(self, accumulator: bytes) -> str:
            result, error = _aggregate.get_result(accumulator)
            _fail(error)
            return result  # type: ignore[return-value]

    __all__ = ["Aggregator"]

else:
    import wit_world.exports
    from wit_world.imports import keyed_state as _state
    from wit_world.imports import logging as _wit_logging
    from wit_world.imports import timers as _timers
    from wit_world.imports import types as _types

    _DOMAINS = {
        _runtime.EVENT_TIME: _types.TimeDomain.EVENT_TIME,
        _runtime.PROCESSING_TIME: _types.TimeDomain.PROCESSING_TIME,
    }
    _DOMAIN_NAMES = {v: k for k, v in _DOMAINS.items()}
    _LEVELS = {level.name.lower(): level for level in _wit_logging.Level}

    class _WitHost:
        """`Host` over the component's imports."""

        set_current_key = staticmethod(_state.set_current_key)
        value_get = staticmethod(_state.value_get)
        value_set = staticmethod(_state.value_set)
        value_clear = staticmethod(_state.value_clear)
        list_get = staticmethod(_state.list_get)
        list_add = staticmethod(_state.list_add)
        list_clear = staticmethod(_state.list_clear)
        map_get = staticmethod(_state.map_get)
        map_put = staticmethod(_state.map_put)
        map_remove = staticmethod(_state.map_remove)
        map_entries = staticmethod(_state.map_entries)
        map_clear = staticmethod(_state.map_clear)
        current_watermark = staticmethod(_timers.current_watermark)
        current_processing_time = staticmethod(_timers.current_processing_time)

        @staticmethod
        def register_timer(domain: str, timestamp: int) -> None:
            _timers.register_timer(_DOMAINS[domain], timestamp)

        @staticmethod
        def delete_timer(domain: str, timestamp: int) -> None:
            _timers.delete_timer(_DOMAINS[domain], timestamp)

        @staticmethod
        def log(level: str, message: str) -> None:
            _wit_logging.log(_LEVELS.get(level, _wit_logging.Level.INFO), message)

    _runtime.set_host(_WitHost())  # type: ignore[arg-type]
    _Emit, _Side, _Error = _types.Output_Emit, _types.Output_Side, _types.Output_Error
    _Record, _SideRecord, _RecordError = _types.StreamRecord, _types.SideRecord, _types.RecordError
    # The WIT's output values, built once per output.
    _operator = _runtime.Runtime(
        _kind,
        _cls,
        _runtime.OutputFactories(
            lambda key, value, timestamp: _Emit(_Record(key, value, timestamp)),
            lambda output, key, value, timestamp: _Side(_SideRecord(output, _Record(key, value, timestamp))),
            lambda index, message: _Error(_RecordError(index, message)),
        ),
    )

    class Handler(wit_world.exports.Handler):
        def open(self, ctx: _types.Context) -> None:
            s = ctx.subtask
            _fail(_operator.open(ctx.config, s.operator_id, s.index, s.parallelism, s.max_parallelism, s.attempt))

        def process(self, batch: List[_types.StreamRecord]) -> List[_types.Output]:
            return _operator.process(batch)

        def on_timer(self, key: bytes, timestamp: int, domain: _types.TimeDomain) -> List[_types.Output]:
            return _operator.on_timer(key, timestamp, _DOMAIN_NAMES[domain])

        def close(self) -> None:
            _fail(_operator.close())

    class PackedHandler(wit_world.exports.PackedHandler):
        # The host calls this instead of `Handler.process` (world
        # `packed-operator`); see `weir._packed` for why.
        def process_packed(self, batch: bytes) -> bytes:
            return _operator.process_packed(batch)

    class Checkpointed(wit_world.exports.Checkpointed):
        def snapshot_state(self, checkpoint_id: int) -> List[bytes]:
            items, error = _operator.snapshot_state(checkpoint_id)
            _fail(error)
            return items  # type: ignore[return-value]

        def restore_state(self, items: List[bytes]) -> None:
            _fail(_operator.restore_state(items))

    __all__ = ["Handler", "PackedHandler", "Checkpointed"]
