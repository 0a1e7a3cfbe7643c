"""Streaming z-score anomaly detector for the NAB example, in Python.

The rule of `udfs/nab-zscore` (Rust), exactly: keyed by series, Welford's
running mean and variance (Welford 1962; Knuth, TAOCP vol. 2, 4.2.2) in
value state `welford` (the same JSON as the Rust UDF's), and a reading whose
z-score against the readings *before* it reaches `threshold` is an alert,
once at least `warmup` readings have been seen.

With `event_time: true` the rule is applied in event-time order: each
reading waits in map state `pending` (by timestamp) with an event-time
timer, and when the watermark passes its timestamp the readings of that
timestamp are scored in arrival order. A reading at or below the watermark
when it arrives is late: it goes to the side output `late`, unscored.

Build: `weir udf build udfs/nab-zscore-python`; or name this directory in a
job's `udf:`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import weir


@dataclass
class Config:
    #: Readings to see before flagging anything.
    warmup: int = 30
    #: Absolute z-score at or above which a reading is an anomaly.
    threshold: float = 4.0
    #: Score readings in event-time order (buffered until the watermark).
    event_time: bool = False


def reading_of(value: dict) -> dict:
    """The `timestamp` (text) and `value` (number) of a CSV row."""
    try:
        timestamp, x = value["timestamp"], value["value"]
    except (KeyError, TypeError):
        raise weir.RecordError("a reading needs `timestamp` and `value`") from None
    if not isinstance(timestamp, str):
        raise weir.RecordError("`timestamp` must be text")
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise weir.RecordError(f"`value` must be a number, got {x!r}")
    return {"timestamp": timestamp, "value": float(x)}


@weir.export
class ZScore(weir.KeyedProcessFunction):
    def open(self, ctx: weir.OpenContext) -> None:
        config = ctx.config_as(Config)
        if math.isnan(config.threshold) or config.threshold <= 0:
            raise ValueError(f"threshold must be > 0, got {config.threshold}")
        self.warmup = int(config.warmup)
        self.threshold = float(config.threshold)
        self.event_time = bool(config.event_time)
        self.stats = weir.ValueState("welford")
        self.pending = weir.MapState("pending")

    def process_element(self, value: dict, ctx: weir.Context):
        reading = reading_of(value)
        if not self.event_time:
            return self.score(ctx.key, reading)
        ts = ctx.timestamp
        if ts is None:
            raise weir.RecordError("event_time needs record timestamps (set `timestamp` on the source)")
        if ts <= ctx.current_watermark():
            return [weir.Side("late", reading)]
        waiting = self.pending.get(ts) or []
        waiting.append(reading)
        self.pending.put(ts, waiting)
        ctx.register_event_time_timer(ts)
        return None

    def on_timer(self, timestamp: int, ctx: weir.TimerContext):
        waiting = self.pending.get(timestamp) or []
        self.pending.remove(timestamp)
        alerts = []
        for reading in waiting:
            alerts.extend(self.score(ctx.key, reading))
        return alerts

    def score(self, key: bytes, reading: dict) -> list:
        """The rule for the next reading of the current key's series."""
        s = self.stats.value() or {"n": 0, "mean": 0.0, "m2": 0.0}
        n, mean, m2 = s["n"], s["mean"], s["m2"]
        x = reading["value"]
        alerts = []
        if n >= self.warmup and n >= 2:
            std = math.sqrt(m2 / float(n - 1))
            z = (x - mean) / std if std > 0.0 else 0.0
            if abs(z) >= self.threshold:
                try:
                    series = key.decode()
                except UnicodeDecodeError:
                    raise weir.RecordError("series key is not UTF-8") from None
                alerts.append({"series": series, "timestamp": reading["timestamp"], "value": x, "z": z})
        n += 1
        delta = x - mean
        mean += delta / float(n)
        m2 += delta * (x - mean)
        self.stats.update({"n": n, "mean": mean, "m2": m2})
        return alerts
