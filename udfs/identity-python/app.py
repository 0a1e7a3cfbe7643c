"""Passes every record through unchanged, undecoded (`raw_input`): the
baseline for the cost of a Python UDF at the Wasm boundary
(`bench/python.sh`), as `udfs/identity` is for Rust."""

import weir


@weir.export
class Identity(weir.FilterFunction):
    raw_input = True

    def filter(self, value: bytes) -> bool:
        return True
