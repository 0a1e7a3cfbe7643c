//! The Python templates of `weir udf new`: `app.py` and `test_app.py` per kind.

use super::Kind;

pub(super) fn python_app(kind: Kind) -> &'static str {
    match kind {
        Kind::Map => PY_MAP,
        Kind::Filter => PY_FILTER,
        Kind::FlatMap => PY_FLAT_MAP,
        Kind::KeyedProcess => PY_KEYED,
        Kind::Aggregate => PY_AGGREGATE,
    }
}

pub(super) fn python_test(kind: Kind) -> &'static str {
    match kind {
        Kind::Map => PY_MAP_TEST,
        Kind::Filter => PY_FILTER_TEST,
        Kind::FlatMap => PY_FLAT_MAP_TEST,
        Kind::KeyedProcess => PY_KEYED_TEST,
        Kind::Aggregate => PY_AGGREGATE_TEST,
    }
}

const PY_MAP: &str = r#""""Adds `scaled = value * factor` to every reading."""

import weir


@weir.export
class Scale(weir.MapFunction):
    def open(self, ctx: weir.OpenContext) -> None:
        self.factor = float(ctx.config.get("factor", 2.0))

    def map(self, value: dict) -> dict:
        value["scaled"] = value["value"] * self.factor
        return value
"#;

const PY_MAP_TEST: &str = r#"from weir.testing import Harness

from app import Scale


def test_scales_the_value():
    out = Harness(Scale, config={"factor": 3}).process([{"value": 2.0}])
    assert [o.value for o in out] == [{"value": 2.0, "scaled": 6.0}]


def test_a_reading_without_value_is_a_per_record_error():
    out = Harness(Scale).process([{"other": 1}])
    assert out[0].kind == "error" and "KeyError" in out[0].message
"#;

const PY_FILTER: &str = r#""""Keeps the readings whose value is at least `min`."""

import weir


@weir.export
class AtLeast(weir.FilterFunction):
    def open(self, ctx: weir.OpenContext) -> None:
        self.min = float(ctx.config.get("min", 0.0))

    def filter(self, value: dict) -> bool:
        return value["value"] >= self.min
"#;

const PY_FILTER_TEST: &str = r#"from weir.testing import Harness

from app import AtLeast


def test_keeps_values_at_or_above_min():
    out = Harness(AtLeast, config={"min": 1.0}).process([{"value": 0.5}, {"value": 1.0}])
    assert [o.value for o in out] == [{"value": 1.0}]
"#;

const PY_FLAT_MAP: &str = r#""""One output per tag of a reading: `{"sensor", "tag"}`."""

import weir


@weir.export
class Tags(weir.FlatMapFunction):
    def flat_map(self, value: dict):
        for tag in value.get("tags", []):
            yield {"sensor": value["sensor"], "tag": tag}
"#;

const PY_FLAT_MAP_TEST: &str = r#"from weir.testing import Harness

from app import Tags


def test_one_output_per_tag():
    out = Harness(Tags).process([{"sensor": "a", "tags": ["x", "y"]}, {"sensor": "b", "tags": []}])
    assert [o.value for o in out] == [{"sensor": "a", "tag": "x"}, {"sensor": "a", "tag": "y"}]
"#;

const PY_KEYED: &str = r#""""Per sensor: the running count and mean of its readings (value state),
and a summary one minute of event time after each reading (a timer)."""

import weir


@weir.export
class RunningMean(weir.KeyedProcessFunction):
    def open(self, ctx: weir.OpenContext) -> None:
        self.stats = weir.ValueState("stats")

    def process_element(self, value: dict, ctx: weir.Context):
        n, total = self.stats.value([0, 0.0])
        n, total = n + 1, total + value["value"]
        self.stats.update([n, total])
        if ctx.timestamp is not None:
            ctx.register_event_time_timer(ctx.timestamp + 60_000)
        yield {"sensor": ctx.key_str, "count": n, "mean": total / n}

    def on_timer(self, timestamp: int, ctx: weir.TimerContext):
        n, total = self.stats.value([0, 0.0])
        yield weir.Side("summary", {"sensor": ctx.key_str, "at": timestamp, "count": n})
"#;

const PY_KEYED_TEST: &str = r#"from weir.testing import Harness

from app import RunningMean


def test_counts_and_averages_per_key():
    h = Harness(RunningMean)
    h.process([{"value": 1.0}, {"value": 3.0}], key=b"a", timestamp=0)
    out = h.process([{"value": 5.0}], key=b"b", timestamp=0)
    assert out[0].value == {"sensor": "b", "count": 1, "mean": 5.0}
    assert h.value_state(b"a", "stats") == [2, 4.0]


def test_a_summary_fires_a_minute_later():
    h = Harness(RunningMean)
    h.process([{"value": 1.0}], key=b"a", timestamp=1_000)
    assert h.advance_watermark(60_999) == []
    out = h.advance_watermark(61_000)
    assert [(o.output, o.value) for o in out] == [("summary", {"sensor": "a", "at": 61_000, "count": 1})]
"#;

const PY_AGGREGATE: &str = r#""""The mean of `value` per window, as `mean` (null for an empty window)."""

import weir


@weir.export
class Mean(weir.AggregateFunction):
    def create_accumulator(self):
        return [0, 0.0]

    def add(self, value: dict, acc):
        return [acc[0] + 1, acc[1] + value["value"]]

    def merge(self, a, b):
        return [a[0] + b[0], a[1] + b[1]]

    def get_result(self, acc) -> dict:
        return {"mean": acc[1] / acc[0] if acc[0] else None}
"#;

const PY_AGGREGATE_TEST: &str = r#"from weir.testing import AggregateHarness

from app import Mean


def test_mean_of_merged_parts():
    assert AggregateHarness(Mean).aggregate([{"value": 1.0}], [{"value": 2.0}, {"value": 6.0}]) == {"mean": 3.0}
"#;
