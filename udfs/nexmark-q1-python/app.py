"""Nexmark q1's currency conversion in Python: every bid with its price
multiplied by `rate` (default 0.908) as a float, the other fields kept.

The map step of `bench/flink-compare`'s Python UDF pipeline (map → filter
→ keyed count), against the same map as a PyFlink Python UDF. (The Rust
`udfs/nexmark-q1` keeps the price an exact decimal, as Flink SQL's DECIMAL;
this one does what a Python user would write.)

Build: `weir udf build udfs/nexmark-q1-python`; or name this directory in a
job's `udf:`.
"""

import weir


@weir.export
class CurrencyConversion(weir.MapFunction):
    def open(self, ctx: weir.OpenContext) -> None:
        self.rate = float(ctx.config.get("rate", 0.908))

    def map(self, bid: dict) -> dict:
        bid["price"] = bid["price"] * self.rate
        return bid
