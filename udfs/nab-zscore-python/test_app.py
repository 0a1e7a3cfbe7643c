"""Unit tests of the Python NAB detector, on the host (pytest, no Wasm)."""

import math

import pytest
from weir.testing import Harness

from app import ZScore


def test_flags_a_reading_far_from_the_mean_after_warmup():
    h = Harness(ZScore, config={"warmup": 3, "threshold": 2.0})
    rows = [{"timestamp": f"t{i}", "value": v} for i, v in enumerate([1.0, 2.0, 1.0, 2.0, 50.0])]
    out = h.process(rows, key=b"s")
    assert [o.kind for o in out] == ["emit"]
    alert = out[0].value
    assert alert["series"] == "s" and alert["timestamp"] == "t4" and alert["value"] == 50.0
    mean, std = 1.5, math.sqrt(((0.5**2) * 4) / 3)
    assert alert["z"] == pytest.approx((50.0 - mean) / std)
    assert h.value_state(b"s", "welford")["n"] == 5


def test_a_bad_reading_is_a_per_record_error_and_the_rest_go_on():
    h = Harness(ZScore)
    out = h.process([{"timestamp": "a", "value": "x"}, {"timestamp": "b", "value": 1}], key=b"s")
    assert [o.kind for o in out] == ["error"]
    assert out[0].input == 0 and "must be a number" in out[0].message
    assert h.value_state(b"s", "welford")["n"] == 1


def test_event_time_waits_for_the_watermark_and_sends_late_readings_aside():
    h = Harness(ZScore, config={"warmup": 2, "threshold": 1.0, "event_time": True})
    assert h.process([{"timestamp": "b", "value": 1.0}], key=b"s", timestamp=20) == []
    assert h.process([{"timestamp": "a", "value": 3.0}], key=b"s", timestamp=10) == []
    assert h.timers() == [(10, b"s"), (20, b"s")]
    assert h.advance_watermark(15) == []
    assert h.value_state(b"s", "welford")["n"] == 1 and h.map_state(b"s", "pending") == {20: [{"timestamp": "b", "value": 1.0}]}
    late = h.process([{"timestamp": "c", "value": 9.0}], key=b"s", timestamp=12)
    assert [(o.kind, o.output, o.value) for o in late] == [("side", "late", {"timestamp": "c", "value": 9.0})]
    h.advance_watermark(30)
    assert h.map_state(b"s", "pending") == {} and h.value_state(b"s", "welford")["n"] == 2


def test_config_is_checked():
    with pytest.raises(RuntimeError, match="threshold must be > 0"):
        Harness(ZScore, config={"threshold": 0})
    with pytest.raises(RuntimeError, match="unknown field"):
        Harness(ZScore, config={"treshold": 3})
