"""The conformance function of the Python SDK: the rules of
`guest-sdk/conformance/README.md`, which every SDK's conformance function
implements and `tests/tests/conformance.rs` checks against `cases.json`."""

from __future__ import annotations

from dataclasses import dataclass

import weir


@dataclass
class Config:
    prefix: str = "p"


@weir.export
class Conformance(weir.KeyedProcessFunction):
    def open(self, ctx: weir.OpenContext) -> None:
        self.prefix = ctx.config_as(Config).prefix
        self.seen = 0
        self.count = weir.ValueState("count")
        self.items = weir.ListState("items")
        self.m = weir.MapState("m")

    def process_element(self, value, ctx: weir.Context):
        op = value.get("op") if isinstance(value, dict) else None
        handler = getattr(self, "op_" + str(op).replace("-", "_"), None)
        if handler is None:
            raise weir.RecordError(f"unknown op {op!r}")
        self.seen += 1
        return handler(value, ctx)

    def op_echo(self, value, ctx):
        yield {"x": value["x"], "prefix": self.prefix}

    def op_side(self, value, ctx):
        yield weir.Side(value["output"], {"x": value["x"]})

    def op_fail(self, value, ctx):
        raise weir.RecordError(value["message"])

    def op_count(self, value, ctx):
        n = self.count.value(0) + 1
        self.count.update(n)
        yield {"count": n}

    def op_append(self, value, ctx):
        self.items.add(value["x"])
        yield {"items": self.items.get()}

    def op_put(self, value, ctx):
        self.m.put(value["k"], value["v"])

    def op_get(self, value, ctx):
        yield {"k": value["k"], "v": self.m.get(value["k"])}

    def op_remove(self, value, ctx):
        self.m.remove(value["k"])

    def op_entries(self, value, ctx):
        yield {"entries": [[k, v] for k, v in self.m.items()]}

    def op_clear(self, value, ctx):
        self.count.clear()
        self.items.clear()
        self.m.clear()

    def op_timer(self, value, ctx):
        ctx.register_event_time_timer(value["at"])

    def op_cancel(self, value, ctx):
        ctx.delete_event_time_timer(value["at"])

    def op_seen(self, value, ctx):
        yield {"seen": self.seen}

    def on_timer(self, timestamp, ctx):
        yield {"timer": timestamp, "count": self.count.value(0)}

    def snapshot_state(self, checkpoint_id):
        return [{"seen": self.seen}]

    def restore_state(self, items):
        self.seen = sum(item["seen"] for item in items)
