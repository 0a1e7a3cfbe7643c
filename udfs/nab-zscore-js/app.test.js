import { test } from "node:test";
import assert from "node:assert/strict";
import { Harness, exported } from "weir/testing";
import "./app.js";

test("flags a reading far from the mean after warmup", () => {
  const h = new Harness(exported(), { config: { warmup: 3, threshold: 2 } });
  const rows = [1, 2, 1, 2, 50].map((v, i) => ({ timestamp: `t${i}`, value: v }));
  const out = h.process(rows, { key: "s" });
  assert.deepEqual(out.map((o) => o.kind), ["emit"]);
  assert.equal(out[0].value.timestamp, "t4");
  assert.equal(out[0].value.z, (50 - 1.5) / Math.sqrt((0.25 * 4) / 3));
  assert.equal(h.valueState("s", "welford").n, 5);
});

test("event time waits for the watermark and sends late readings aside", () => {
  const h = new Harness(exported(), { config: { warmup: 2, threshold: 1, event_time: true } });
  assert.deepEqual(h.process([{ timestamp: "b", value: 1 }], { key: "s", timestamp: 20 }), []);
  h.advanceWatermark(25);
  assert.equal(h.valueState("s", "welford").n, 1);
  const late = h.process([{ timestamp: "c", value: 9 }], { key: "s", timestamp: 12 });
  assert.deepEqual(late.map((o) => [o.kind, o.output]), [["side", "late"]]);
});

test("a bad reading is a per-record error; config is checked", () => {
  const h = new Harness(exported());
  assert.equal(h.process([{ timestamp: "a", value: "x" }], { key: "s" })[0].kind, "error");
  assert.throws(() => new Harness(exported(), { config: { treshold: 3 } }), /unknown field/);
});
