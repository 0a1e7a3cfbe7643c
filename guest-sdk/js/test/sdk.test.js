// Unit tests of the JavaScript SDK on node: every kind of function through
// the runtime the component uses, over the testing host.
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";

import {
  AggregateFunction,
  EVENT_TIME,
  FilterFunction,
  FlatMapFunction,
  KeyedProcessFunction,
  ListState,
  MapFunction,
  MapState,
  Record,
  RecordError,
  Side,
  ValueState,
  exportFunction,
  log,
} from "../src/index.js";
import { resetRegistration } from "../src/runtime.js";
import { AggregateHarness, Harness } from "../src/testing.js";

beforeEach(() => resetRegistration());

class Double extends MapFunction {
  open(ctx) {
    this.factor = ctx.config.factor ?? 2;
  }
  map(value) {
    return { x: value.x * this.factor };
  }
}

test("map keeps key and timestamp and applies config", () => {
  const out = new Harness(Double, { config: { factor: 3 } }).process([{ x: 2 }], { key: "k", timestamp: 7 });
  assert.deepEqual(out.map((o) => [o.kind, o.value, o.key, o.timestamp]), [["emit", { x: 6 }, "k", 7]]);
});

test("a malformed record is a per-record error and the batch goes on", () => {
  const out = new Harness(Double).process([new TextEncoder().encode("{nope"), { x: 1 }]);
  assert.deepEqual(out.map((o) => [o.kind, o.input]), [["error", 0], ["emit", undefined]]);
  assert.match(out[0].message, /^invalid JSON input/);
});

test("filter passes kept records byte for byte; flatMap yields and sides", () => {
  class Even extends FilterFunction {
    filter(v) {
      return v % 2 === 0;
    }
  }
  assert.deepEqual(new Harness(Even).process([1, 2, 4]).map((o) => o.value), [2, 4]);
  class Explode extends FlatMapFunction {
    *flatMap(v) {
      for (let i = 0; i < v.n; i++) yield i;
      if (v.n === 2) yield new Side("pairs", v);
    }
  }
  const out = new Harness(Explode).process([{ n: 0 }, { n: 2 }, { n: 1 }]);
  assert.deepEqual(out.map((o) => [o.kind, o.output, o.value]), [
    ["emit", undefined, 0],
    ["emit", undefined, 1],
    ["side", "pairs", { n: 2 }],
    ["emit", undefined, 0],
  ]);
});

test("outputs of a record that fails half way are dropped", () => {
  class Half extends FlatMapFunction {
    *flatMap() {
      yield "first";
      throw new RecordError("bad second half");
    }
  }
  assert.deepEqual(new Harness(Half).process([1]).map((o) => [o.kind, o.message]), [["error", "bad second half"]]);
});

class Counter extends KeyedProcessFunction {
  open() {
    this.count = new ValueState("count");
    this.seen = new ListState("seen");
    this.byTag = new MapState("by-tag");
  }
  *processElement(value, ctx) {
    const n = (this.count.value() ?? 0) + 1;
    this.count.update(n);
    this.seen.add(value.v);
    this.byTag.put(value.tag, this.byTag.get(value.tag, 0) + 1);
    yield { key: ctx.keyString, n, seen: this.seen.get(), tags: this.byTag.entries() };
  }
}

test("keyed value, list and map state are per key", () => {
  const h = new Harness(Counter);
  const out = h.records([
    { key: "k1", value: { v: 1, tag: "b" } },
    { key: "k2", value: { v: 2, tag: "a" } },
    { key: "k1", value: { v: 3, tag: "a" } },
  ]);
  assert.deepEqual(out.map((o) => o.value), [
    { key: "k1", n: 1, seen: [1], tags: [["b", 1]] },
    { key: "k2", n: 1, seen: [2], tags: [["a", 1]] },
    { key: "k1", n: 2, seen: [1, 3], tags: [["a", 1], ["b", 1]] },
  ]);
  assert.equal(h.valueState("k1", "count"), 2);
  assert.deepEqual(h.listState("k2", "seen"), [2]);
  assert.deepEqual(h.mapState("k1", "by-tag"), { a: 1, b: 1 });
});

test("a batch reads and writes each key's value once", () => {
  class Count extends KeyedProcessFunction {
    open() {
      this.n = new ValueState("n");
    }
    processElement() {
      this.n.update((this.n.value() ?? 0) + 1);
    }
  }
  const h = new Harness(Count);
  const calls = {};
  for (const name of ["valueGet", "valueSet", "setCurrentKey"]) {
    const original = h.host[name].bind(h.host);
    h.host[name] = (...args) => {
      calls[name] = (calls[name] ?? 0) + 1;
      return original(...args);
    };
  }
  h.records([{ key: "a", value: 1 }, { key: "b", value: 1 }, { key: "a", value: 1 }, { key: "a", value: 1 }]);
  assert.deepEqual(calls, { valueGet: 2, valueSet: 2, setCurrentKey: 4 });
  assert.equal(h.valueState("a", "n"), 3);
});

class Timeout extends KeyedProcessFunction {
  open() {
    this.last = new ValueState("last");
  }
  *processElement(value, ctx) {
    const previous = this.last.value();
    if (previous !== undefined) ctx.deleteEventTimeTimer(previous.at + 10);
    this.last.update({ v: value, at: ctx.timestamp });
    ctx.registerEventTimeTimer(ctx.timestamp + 10);
    if (ctx.timestamp <= ctx.currentWatermark()) yield new Side("late", value);
  }
  *onTimer(timestamp, ctx) {
    assert.equal(ctx.domain, EVENT_TIME);
    const last = this.last.value();
    this.last.clear();
    yield new Record({ key: ctx.keyString, last: last.v }, { timestamp: timestamp + 1 });
  }
}

test("event-time timers fire in order and can be deleted; state and timers survive a restore", () => {
  const h = new Harness(Timeout);
  h.records([{ key: "a", value: 1, timestamp: 0 }, { key: "b", value: 2, timestamp: 5 }, { key: "a", value: 3, timestamp: 8 }]);
  assert.deepEqual(h.timers(), [[15, "b"], [18, "a"]]);
  const restored = new Harness(Timeout, { restore: h.snapshot() });
  assert.deepEqual(h.advanceWatermark(14), []);
  const out = h.advanceWatermark(100);
  assert.deepEqual(out.map((o) => [o.value, o.key, o.timestamp]), [
    [{ key: "b", last: 2 }, "b", 16],
    [{ key: "a", last: 3 }, "a", 19],
  ]);
  assert.equal(h.valueState("a", "last"), undefined);
  assert.deepEqual(h.records([{ key: "a", value: 9, timestamp: 50 }]).map((o) => o.output), ["late"]);
  assert.equal(restored.advanceWatermark(100).length, 2);
});

test("operator state survives a checkpoint and restore", () => {
  class Seen extends MapFunction {
    open() {
      this.seen = 0;
    }
    map() {
      return ++this.seen;
    }
    snapshotState(id) {
      return [{ seen: this.seen, checkpoint: id }];
    }
    restoreState(items) {
      this.seen = items.reduce((n, i) => n + i.seen, 0);
    }
  }
  const h = new Harness(Seen);
  h.process([1, 2, 3]);
  const snap = h.snapshot(7);
  assert.equal(new TextDecoder().decode(snap.operatorState[0]), '{"seen":3,"checkpoint":7}');
  assert.deepEqual(new Harness(Seen, { restore: snap }).process([4]).map((o) => o.value), [4]);
});

test("errors in open fail the task; logging goes to the host", () => {
  class Broken extends MapFunction {
    open() {
      throw new Error("no database");
    }
  }
  assert.throws(() => new Harness(Broken), /open failed: Error: no database/);
  class Chatty extends MapFunction {
    map(v) {
      log("info", `saw ${v}`);
      return v;
    }
  }
  const h = new Harness(Chatty);
  h.process([1]);
  assert.deepEqual(h.host.logs, [["info", "saw 1"]]);
});

test("an aggregate adds, merges and gets its result", () => {
  class Mean extends AggregateFunction {
    createAccumulator() {
      return [0, 0];
    }
    add(v, acc) {
      if (typeof v.v !== "number") throw new RecordError("no number");
      return [acc[0] + 1, acc[1] + v.v];
    }
    merge(a, b) {
      return [a[0] + b[0], a[1] + b[1]];
    }
    getResult(acc) {
      return { mean: acc[0] ? acc[1] / acc[0] : null };
    }
  }
  const h = new AggregateHarness(Mean);
  assert.deepEqual(h.aggregate([{ v: 1 }, { v: 2 }], [{ v: 6 }]), { mean: 3 });
  assert.deepEqual(h.aggregate(), { mean: null });
  assert.throws(() => h.aggregate([{ v: "x" }]), /no number/);
});

test("exportFunction checks the class and allows one function", () => {
  assert.throws(() => exportFunction(class Nope {}), TypeError);
  exportFunction(Double);
  assert.throws(() => exportFunction(Counter), /one function per component/);
});

test("a value that cannot be stored is an error of the record that wrote it", () => {
  class Bad extends KeyedProcessFunction {
    open() {
      this.v = new ValueState("v");
    }
    *processElement(value) {
      this.v.update(value === "bad" ? undefined : value);
      yield value;
    }
  }
  const h = new Harness(Bad);
  h.records([{ key: "a", value: "old" }]);
  const out = h.records([{ key: "b", value: "ok" }, { key: "a", value: "bad" }, { key: "c", value: "fine" }]);
  assert.deepEqual(out.map((o) => [o.kind, o.input]), [["emit", undefined], ["emit", undefined], ["emit", undefined], ["error", 1]]);
  assert.match(out[3].message, /state `v` cannot be stored as JSON/);
  assert.deepEqual(["a", "b", "c"].map((k) => h.valueState(k, "v")), ["old", "ok", "fine"]);
});

test("contains then get returns the decoded value; names with NUL do not collide", () => {
  class Probe extends KeyedProcessFunction {
    open() {
      this.m = new MapState("m");
      this.x = new ValueState("a");
      this.y = new ValueState("a\u0000b");
    }
    *processElement(value, ctx) {
      if (value === "put") {
        this.m.put("a", 5);
        this.x.update("x");
      } else {
        yield [this.m.contains("a"), this.m.get("a"), this.x.value(null), this.y.value(null)];
      }
    }
  }
  const h = new Harness(Probe);
  h.records([{ key: new Uint8Array([0x62, 0, 0x63]), value: "put" }]);
  assert.deepEqual(h.records([{ key: new Uint8Array([0x62, 0, 0x63]), value: "probe" }])[0].value, [true, 5, "x", null]);
  assert.deepEqual(h.records([{ key: "c", value: "probe" }])[0].value, [false, null, null, null]);
});

test("a flatMap returning one text emits it once", () => {
  class One extends FlatMapFunction {
    flatMap(v) {
      return v;
    }
  }
  assert.deepEqual(new Harness(One).process(["ab", 7]).map((o) => o.value), ["ab", 7]);
});
