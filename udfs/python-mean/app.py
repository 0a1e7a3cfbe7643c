"""A minimal Python window aggregate for Weir (the `aggregate` world),
built with componentize-py:

    componentize-py -d ../../wit -w aggregate componentize app -o python-mean.wasm

The accumulator is JSON `{"n": count, "sum": total}` of the `value` field;
the result is `{"py_mean": mean}` (null for an empty window). A value that
is not a number rejects the batch it came in.
"""

import json

import wit_world.exports
from wit_world.imports import types
from componentize_py_types import Err


class Aggregator(wit_world.exports.Aggregator):
    def open(self, ctx: types.Context) -> None:
        pass

    def create_accumulator(self) -> bytes:
        return json.dumps({"n": 0, "sum": 0.0}).encode()

    def add(self, accumulator: bytes, values) -> bytes:
        acc = json.loads(accumulator)
        for value in values:
            try:
                acc["sum"] += float(json.loads(value)["value"])
            except (ValueError, KeyError, TypeError) as e:
                raise Err(f"no numeric value: {e!r}")
            acc["n"] += 1
        return json.dumps(acc).encode()

    def merge(self, accumulator: bytes, other: bytes) -> bytes:
        a, b = json.loads(accumulator), json.loads(other)
        return json.dumps({"n": a["n"] + b["n"], "sum": a["sum"] + b["sum"]}).encode()

    def get_result(self, accumulator: bytes) -> str:
        acc = json.loads(accumulator)
        mean = acc["sum"] / acc["n"] if acc["n"] else None
        return json.dumps({"py_mean": mean})
