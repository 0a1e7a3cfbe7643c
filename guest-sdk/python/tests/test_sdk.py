"""Unit tests of the Python SDK on the host: every kind of function through
the same runtime the component uses, over `weir.testing`'s host."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import weir
from weir import _runtime
from weir.testing import AggregateHarness, Harness


@pytest.fixture(autouse=True)
def fresh_registration():
    """Each test may export its own function."""
    _runtime._registered = None
    yield
    _runtime._registered = None


class Double(weir.MapFunction):
    def open(self, ctx):
        self.factor = ctx.config.get("factor", 2)

    def map(self, value):
        return {"x": value["x"] * self.factor}


def test_map_keeps_key_and_timestamp_and_applies_config():
    out = Harness(Double, config={"factor": 3}).process([{"x": 2}], key=b"k", timestamp=7)
    assert [(o.kind, o.value, o.key, o.timestamp) for o in out] == [("emit", {"x": 6}, b"k", 7)]


def test_a_malformed_record_is_a_per_record_error_and_the_batch_goes_on():
    h = Harness(Double)
    out = h.process([b"{not json", {"y": 1}, {"x": 1}])
    assert [(o.kind, o.input) for o in out] == [("error", 0), ("error", 1), ("emit", 0)]
    assert out[0].message.startswith("invalid JSON input")
    assert out[1].message.startswith("KeyError: 'x'") and "test_sdk.py" in out[1].message
    assert out[2].value == {"x": 2}


def test_decorated_functions_map_filter_and_flat_map():
    @weir.map
    def inc(value):
        return value + 1

    assert [o.value for o in Harness(_runtime.registered()[1]).process([1, 2])] == [2, 3]
    _runtime._registered = None

    @weir.filter
    def even(value):
        return value % 2 == 0

    h = Harness(_runtime.registered()[1])
    out = h.process([b"1", b"2 ", b"4"])
    # A kept record passes through byte for byte.
    assert [(o.value, o.input) for o in out] == [(2, 0), (4, 0)]
    _runtime._registered = None

    @weir.flat_map
    def explode(value):
        for i in range(value["n"]):
            yield i
        if value["n"] == 2:
            yield weir.Side("pairs", value)

    out = Harness(_runtime.registered()[1]).process([{"n": 0}, {"n": 2}, {"n": 1}])
    assert [(o.kind, o.output, o.value) for o in out] == [
        ("emit", "", 0),
        ("emit", "", 1),
        ("side", "pairs", {"n": 2}),
        ("emit", "", 0),
    ]


def test_outputs_of_a_record_that_fails_half_way_are_dropped():
    class Half(weir.FlatMapFunction):
        def flat_map(self, value):
            yield "first"
            raise weir.RecordError("bad second half")

    out = Harness(Half).process([1])
    assert [(o.kind, o.message) for o in out] == [("error", "bad second half")]


def test_raw_input_and_bytes_output_skip_json():
    class Upper(weir.MapFunction):
        raw_input = True

        def map(self, value):
            assert isinstance(value, bytes)
            return value.upper()

    h = Harness(Upper)
    assert h.process([b"abc"])[0].value == b"ABC"


class Counter(weir.KeyedProcessFunction):
    def open(self, ctx):
        self.count = weir.ValueState("count")
        self.seen = weir.ListState("seen")
        self.by_tag = weir.MapState("by-tag")

    def process_element(self, value, ctx):
        n = self.count.value(0) + 1
        self.count.update(n)
        self.seen.add(value["v"])
        self.by_tag.put(value["tag"], self.by_tag.get(value["tag"], 0) + 1)
        if value.get("clear"):
            self.seen.clear()
            self.by_tag.remove("a")
        yield {"key": ctx.key_str, "n": n, "seen": self.seen.get(), "tags": self.by_tag.items()}


def test_keyed_value_list_and_map_state_are_per_key():
    h = Harness(Counter)
    out = h.process([
        (b"k1", {"v": 1, "tag": "b"}, None),
        (b"k2", {"v": 2, "tag": "a"}, None),
        (b"k1", {"v": 3, "tag": "a"}, None),
    ])
    assert [o.value for o in out] == [
        {"key": "k1", "n": 1, "seen": [1], "tags": [["b", 1]]},
        {"key": "k2", "n": 1, "seen": [2], "tags": [["a", 1]]},
        {"key": "k1", "n": 2, "seen": [1, 3], "tags": [["a", 1], ["b", 1]]},
    ]
    out = h.process([(b"k1", {"v": 4, "tag": "a", "clear": True}, None)])
    assert out[0].value == {"key": "k1", "n": 3, "seen": [], "tags": [["b", 1]]}
    assert h.value_state(b"k2", "count") == 1 and h.list_state(b"k2", "seen") == [2]


def test_keyed_process_on_an_unkeyed_record_is_a_per_record_error():
    out = Harness(Counter).process([{"v": 1, "tag": "a"}])
    assert out[0].kind == "error" and "keyed stream" in out[0].message


class Timeout(weir.KeyedProcessFunction):
    """Emits a key's last value once no record came for 10 ms of event time."""

    def open(self, ctx):
        self.last = weir.ValueState("last")

    def process_element(self, value, ctx):
        previous = self.last.value()
        if previous is not None:
            ctx.delete_event_time_timer(previous["at"] + 10)
        self.last.update({"v": value, "at": ctx.timestamp})
        ctx.register_event_time_timer(ctx.timestamp + 10)
        if ctx.timestamp <= ctx.current_watermark():
            yield weir.Side("late", value)

    def on_timer(self, timestamp, ctx):
        assert ctx.domain == weir.EVENT_TIME
        last = self.last.value()
        self.last.clear()
        yield weir.Record({"key": ctx.key_str, "last": last["v"]}, timestamp=timestamp + 1)


def test_event_time_timers_fire_in_order_and_can_be_deleted():
    h = Harness(Timeout)
    h.process([(b"a", 1, 0), (b"b", 2, 5), (b"a", 3, 8)])
    assert h.timers() == [(15, b"b"), (18, b"a")]
    assert h.advance_watermark(14) == []
    out = h.advance_watermark(100)
    assert [(o.value, o.key, o.timestamp) for o in out] == [
        ({"key": "b", "last": 2}, b"b", 16),
        ({"key": "a", "last": 3}, b"a", 19),
    ]
    assert h.value_state(b"a", "last") is None
    late = h.process([(b"a", 9, 50)])
    assert [(o.kind, o.output) for o in late] == [("side", "late")]


def test_processing_time_timers():
    class Ping(weir.KeyedProcessFunction):
        def process_element(self, value, ctx):
            ctx.register_processing_time_timer(ctx.current_processing_time() + 100)

        def on_timer(self, timestamp, ctx):
            yield {"domain": ctx.domain, "at": timestamp}

    h = Harness(Ping)
    h.host.processing_time = 1000
    h.process([(b"a", 1, None)])
    assert h.timers(weir.PROCESSING_TIME) == [(1100, b"a")]
    assert h.advance_processing_time(1099) == []
    assert [o.value for o in h.advance_processing_time(1100)] == [{"domain": "processing-time", "at": 1100}]


class Buffer(weir.MapFunction):
    """Operator state: the count of records this subtask has seen."""

    def open(self, ctx):
        self.seen = 0

    def map(self, value):
        self.seen += 1
        return self.seen

    def snapshot_state(self, checkpoint_id):
        return [{"seen": self.seen, "checkpoint": checkpoint_id}]

    def restore_state(self, items):
        self.seen = sum(item["seen"] for item in items)


def test_operator_state_survives_a_checkpoint_and_restore():
    h = Harness(Buffer)
    h.process([1, 2, 3])
    snapshot = h.snapshot(checkpoint_id=7)
    assert [_runtime.decode(i) for i in snapshot.operator_state] == [{"seen": 3, "checkpoint": 7}]
    restored = Harness(Buffer, restore=snapshot, attempt=1)
    assert [o.value for o in restored.process([4])] == [4]


def test_keyed_state_and_timers_survive_a_restore():
    h = Harness(Timeout)
    h.process([(b"a", 1, 0)])
    restored = Harness(Timeout, restore=h.snapshot())
    assert [o.value for o in restored.advance_watermark(100)] == [{"key": "a", "last": 1}]


@dataclass
class Settings:
    limit: int = 5
    name: str = "x"


def test_config_as_a_dataclass_rejects_unknown_fields():
    class Configured(weir.MapFunction):
        def open(self, ctx):
            self.settings = ctx.config_as(Settings)

        def map(self, value):
            return [self.settings.limit, self.settings.name]

    assert Harness(Configured, config={"limit": 9}).process([0])[0].value == [9, "x"]
    with pytest.raises(RuntimeError, match=r"unknown field\(s\) limt"):
        Harness(Configured, config={"limt": 9})


def test_an_error_in_open_fails_the_task_with_the_traceback():
    class Broken(weir.MapFunction):
        def open(self, ctx):
            raise ValueError("no database")

    with pytest.raises(RuntimeError, match="open failed: ValueError: no database"):
        Harness(Broken)


def test_invalid_config_json_fails_open():
    runtime = _runtime.Runtime("map", Double)
    assert "not JSON" in runtime.open("{oops", "op", 0, 1, 128, 0)


class Mean(weir.AggregateFunction):
    def create_accumulator(self):
        return {"n": 0, "sum": 0.0}

    def add(self, value, acc):
        acc["n"] += 1
        acc["sum"] += float(value["v"])
        return acc

    def merge(self, a, b):
        return {"n": a["n"] + b["n"], "sum": a["sum"] + b["sum"]}

    def get_result(self, acc):
        return {"mean": acc["sum"] / acc["n"] if acc["n"] else None}


def test_an_aggregate_adds_merges_and_gets_its_result():
    h = AggregateHarness(Mean)
    assert h.aggregate([{"v": 1}, {"v": 2}], [{"v": 6}]) == {"mean": 3.0}
    assert h.aggregate() == {"mean": None}
    with pytest.raises(ValueError, match="could not convert"):
        h.aggregate([{"v": "abc"}])


def test_logging_goes_to_the_host():
    class Chatty(weir.MapFunction):
        def map(self, value):
            weir.log("info", f"saw {value}")
            weir.logger.warning("careful")
            return value

    h = Harness(Chatty)
    h.process([1])
    assert h.host.logs == [("info", "saw 1"), ("warn", "careful")]


def test_export_checks_the_class_and_allows_one_function():
    with pytest.raises(TypeError):
        weir.export(object)
    weir.export(Double)
    assert weir.world() == "packed-operator"
    with pytest.raises(RuntimeError, match="one function per component"):
        weir.export(Buffer)
    _runtime._registered = None
    weir.export(Mean)
    assert weir.world() == "aggregate"


def test_state_outside_a_job_says_why():
    with pytest.raises(RuntimeError, match="no host"):
        weir.ValueState("x").value()




class CountPerKey(weir.KeyedProcessFunction):
    def open(self, ctx):
        self.n = weir.ValueState("n")
        self.m = weir.MapState("m")

    def process_element(self, value, ctx):
        n = self.n.value(0) + 1
        self.n.update(n)
        if value == "map":
            self.m.put("k", n)
            assert self.m.get("k") == n
            assert self.m.items() == [("k", n)]  # sees the buffered put
            self.m.remove("k")
            assert self.m.get("k") is None and self.m.is_empty()
        if value == "clear":
            self.n.clear()
            assert self.n.value() is None
        if value == "fail":
            raise weir.RecordError("after the update")


def counting(h: Harness, names):
    calls = {}
    for name in names:
        original = getattr(h.host, name)

        def wrapped(*args, _original=original, _name=name):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args)

        setattr(h.host, name, wrapped)
    return calls


def test_a_batch_reads_and_writes_each_keys_value_once():
    h = Harness(CountPerKey)
    calls = counting(h, ["value_get", "value_set", "set_current_key"])
    h.process([(b"a", 1, None), (b"b", 1, None), (b"a", 1, None), (b"a", 1, None)])
    assert calls == {"value_get": 2, "value_set": 2, "set_current_key": 4}
    assert (h.value_state(b"a", "n"), h.value_state(b"b", "n")) == (3, 1)


def test_buffered_state_is_what_writing_through_would_leave():
    h = Harness(CountPerKey)
    out = h.process([(b"a", "x", None), (b"a", "map", None), (b"a", "fail", None), (b"b", "x", None)])
    assert [o.kind for o in out] == ["error"]
    # The failed record's update stays, as it would without the buffer.
    assert h.value_state(b"a", "n") == 3 and h.map_state(b"a", "m") == {}
    h.process([(b"b", "clear", None)])
    assert h.value_state(b"b", "n") is None
    assert (b"b", "value", "n") not in h.host.state


def test_a_value_that_cannot_be_stored_is_an_error_of_the_record_that_wrote_it():
    class Sets(weir.KeyedProcessFunction):
        def open(self, ctx):
            self.v = weir.ValueState("v")

        def process_element(self, value, ctx):
            self.v.update({1, 2} if value == "bad" else value)
            yield value

    h = Harness(Sets)
    h.process([(b"a", "old", None)])
    out = h.process([(b"b", "ok", None), (b"a", "bad", None), (b"c", "fine", None)])
    assert [(o.kind, o.input) for o in out] == [("emit", 0), ("emit", 0), ("emit", 0), ("error", 1)]
    assert "state `v` cannot be stored as JSON" in out[3].message
    # The host keeps the old value; the other records' writes land.
    assert [h.value_state(k, "v") for k in (b"a", b"b", b"c")] == ["old", "ok", "fine"]
    # And the next call starts clean.
    assert [o.value for o in h.process([(b"a", "again", None)])] == ["again"]
    assert h.value_state(b"a", "v") == "again"


def test_contains_then_get_returns_the_decoded_value():
    class Probe(weir.KeyedProcessFunction):
        def open(self, ctx):
            self.m = weir.MapState("m")

        def process_element(self, value, ctx):
            if value == "put":
                self.m.put("a", 5)
            else:
                yield [self.m.contains("a"), self.m.get("a")]

    h = Harness(Probe)
    h.process([(b"k", "put", None)])
    assert h.process([(b"k", "probe", None)])[0].value == [True, 5]


def test_a_flat_map_returning_one_text_or_dict_emits_it_once():
    class One(weir.FlatMapFunction):
        def flat_map(self, value):
            return value

    assert [o.value for o in Harness(One).process(["ab", {"x": 1}, 7])] == ["ab", {"x": 1}, 7]


def test_trailing_unicode_space_is_not_json():
    from weir._runtime import _json_decode

    with pytest.raises(ValueError):
        _json_decode("1\u00a0")
    assert _json_decode("1 \n") == 1


def test_a_returned_list_that_cannot_be_encoded_part_way_emits_nothing_of_its_record():
    class Pairs(weir.FlatMapFunction):
        def flat_map(self, value):
            # The second output is a set: not JSON.
            return [{"v": value}, {value}] if value == 2 else [{"v": value}]

    out = Harness(Pairs).process([1, 2, 3])
    assert [(o.kind, o.value if o.kind == "emit" else None) for o in out] == [
        ("emit", {"v": 1}),
        ("error", None),
        ("emit", {"v": 3}),
    ]
    assert out[1].input == 1 and "TypeError" in out[1].message
