// The conformance function of the JavaScript SDK: the rules of
// `guest-sdk/conformance/README.md`, checked against `cases.json` by
// `tests/tests/conformance.rs`.
import { KeyedProcessFunction, ListState, MapState, RecordError, Side, ValueState, exportFunction } from "weir";

class Conformance extends KeyedProcessFunction {
  open(ctx) {
    const unknown = Object.keys(ctx.config).filter((k) => k !== "prefix");
    if (unknown.length) throw new Error(`unknown config field(s) ${unknown.join(", ")}`);
    this.prefix = ctx.config.prefix ?? "p";
    this.seen = 0;
    this.count = new ValueState("count");
    this.items = new ListState("items");
    this.m = new MapState("m");
  }

  processElement(value, ctx) {
    const op = value && typeof value === "object" ? value.op : undefined;
    const handler = OPS[op];
    if (!handler) throw new RecordError(`unknown op ${JSON.stringify(op)}`);
    this.seen += 1;
    return handler.call(this, value, ctx);
  }

  onTimer(timestamp) {
    return [{ timer: timestamp, count: this.count.value(0) }];
  }

  snapshotState() {
    return [{ seen: this.seen }];
  }

  restoreState(items) {
    this.seen = items.reduce((n, item) => n + item.seen, 0);
  }
}

const OPS = {
  echo(v) {
    return [{ x: v.x, prefix: this.prefix }];
  },
  side(v) {
    return [new Side(v.output, { x: v.x })];
  },
  fail(v) {
    throw new RecordError(v.message);
  },
  count() {
    const n = this.count.value(0) + 1;
    this.count.update(n);
    return [{ count: n }];
  },
  append(v) {
    this.items.add(v.x);
    return [{ items: this.items.get() }];
  },
  put(v) {
    this.m.put(v.k, v.v);
  },
  get(v) {
    return [{ k: v.k, v: this.m.get(v.k, null) }];
  },
  remove(v) {
    this.m.remove(v.k);
  },
  entries() {
    return [{ entries: this.m.entries() }];
  },
  clear() {
    this.count.clear();
    this.items.clear();
    this.m.clear();
  },
  timer(v, ctx) {
    ctx.registerEventTimeTimer(v.at);
  },
  cancel(v, ctx) {
    ctx.deleteEventTimeTimer(v.at);
  },
  seen() {
    return [{ seen: this.seen }];
  },
};

exportFunction(Conformance);
