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
    got = _packed.decode_rows(bytes.fromhex(GOLDEN["batch"]["hex"]))
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
        _packed.decode_rows(data[: len(data) - cut])


def test_unknown_flags_are_refused():
    with pytest.raises(_packed.PackedFormatError, match="flags"):
        _packed.decode_rows(b"\x04\x00\x00\x00\x00")


def test_every_flag_combination_round_trips():
    for key in (None, b"", b"k\xff"):
        for timestamp in (None, 0, -5, 2**62):
            packed = _packed.emit(key, b"v", timestamp)
            assert packed[0] == 0
            assert _packed.decode_rows(packed[1:]) == [(key, b"v", timestamp)]


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


def test_a_batch_cut_anywhere_but_between_records_is_refused():
    rows = [(None, b"{}", None), (b"k", b'{"x":1}', 7), (b"", b"", -1), (b"\xff", b"v", None)]
    data, ends = b"", [0]
    for key, value, timestamp in rows:
        data += _packed.emit(key, value, timestamp)[1:]
        ends.append(len(data))
    assert _packed.decode_rows(data) == rows
    for cut in range(len(data)):
        if cut in ends:
            assert _packed.decode_rows(data[:cut]) == rows[: ends.index(cut)]
        else:
            with pytest.raises(_packed.PackedFormatError):
                _packed.decode_rows(data[:cut])
