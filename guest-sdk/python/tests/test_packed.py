"""The packed batch codec against the golden vectors every SDK shares
(`guest-sdk/conformance/packed.json`), and `Runtime.process_packed`."""

import json
import pathlib

import pytest

import weir
from weir import _packed, _runtime

GOLDEN = json.loads((pathlib.Path(__file__).parents[2] / "conformance" / "packed.json").read_text())


def _b(text):
    return None if text is None else text.encode()


def test_decoding_the_golden_batch_gives_its_records():
    records = _packed.decode_batch(bytes.fromhex(GOLDEN["batch"]["hex"]))
    got = [(r.key, r.value, r.timestamp) for r in records]
    want = [(_b(r["key"]), _b(r["value"]), r["timestamp"]) for r in GOLDEN["batch"]["records"]]
    assert got == want


def test_encoding_the_golden_outputs_gives_their_bytes():
    parts = []
    for item in GOLDEN["outputs"]["items"]:
        if "emit" in item:
            r = item["emit"]
            parts.append(_packed.emit(_b(r["key"]), _b(r["value"]), r["timestamp"]))
        elif "side" in item:
            r = item["record"]
            parts.append(_packed.side(item["side"], _b(r["key"]), _b(r["value"]), r["timestamp"]))
        else:
            parts.append(_packed.error(item["error"], item["message"]))
    assert b"".join(parts).hex() == GOLDEN["outputs"]["hex"]


@pytest.mark.parametrize("cut", [1, 5, 9, 12, 20])
def test_a_truncated_batch_is_refused(cut):
    data = bytes.fromhex(GOLDEN["batch"]["hex"])
    with pytest.raises(_packed.PackedFormatError):
        _packed.decode_batch(data[: len(data) - cut])


def test_unknown_flags_are_refused():
    with pytest.raises(_packed.PackedFormatError, match="flags"):
        _packed.decode_batch(b"\x04\x00\x00\x00\x00")


def test_every_flag_combination_round_trips():
    for key in (None, b"", b"k\xff"):
        for timestamp in (None, 0, -5, 2**62):
            packed = _packed.emit(key, b"v", timestamp)
            assert packed[0] == 0
            (record,) = _packed.decode_batch(packed[1:])
            assert (record.key, record.value, record.timestamp) == (key, b"v", timestamp)


class _Upper(weir.MapFunction):
    def map(self, value):
        if value == "bad":
            raise weir.RecordError("no")
        return value.upper()


def test_process_packed_packs_outputs_and_errors_and_leaves_typed_outputs_alone():
    runtime = _runtime.Runtime("map", _Upper)
    assert runtime.open("{}", "op", 0, 1, 128, 0) is None
    batch = _packed.emit(b"k", b'"a"', 7)[1:] + _packed.emit(None, b'"bad"', None)[1:]
    out = runtime.process_packed(batch)
    assert out == _packed.emit(b"k", b'"A"', 7) + _packed.error(1, "no")
    # The typed path still makes the test harness's outputs.
    (emitted,) = runtime.process([_runtime.Emitted("emit", b"k", b'"b"', 1)])
    assert (emitted.kind, emitted.value) == ("emit", b'"B"')


def test_rows_are_the_records_of_the_batch():
    # The golden batch and every flag combination: rows equal records.
    batches = [bytes.fromhex(GOLDEN["batch"]["hex"])]
    for key in (None, b"", b"k\xff"):
        for timestamp in (None, 0, -5):
            batches.append(_packed.emit(key, b"v", timestamp)[1:] + _packed.emit(None, b"", 1)[1:])
    for data in batches:
        assert _packed.decode_rows(data) == [(r.key, r.value, r.timestamp) for r in _packed.decode_batch(data)]
        for cut in range(1, len(data)):
            short = data[:cut]
            try:
                want = [(r.key, r.value, r.timestamp) for r in _packed.decode_batch(short)]
            except _packed.PackedFormatError:
                with pytest.raises(_packed.PackedFormatError):
                    _packed.decode_rows(short)
            else:
                assert _packed.decode_rows(short) == want
    with pytest.raises(_packed.PackedFormatError, match="flags"):
        _packed.decode_rows(b"\x04\x00\x00\x00\x00")
