// Run a Weir JavaScript function on the host (node), without Wasm, for
// unit tests: `Harness` drives it through the same runtime the component
// uses, over `MemoryHost`, an in-memory stand-in for keyed state, timers
// and the log.
//
//   const h = new Harness(Count, { config: { limit: 3 } });
//   const out = h.process([{ n: 1 }], { key: "a", timestamp: 1000 });
//   h.advanceWatermark(5000);                 // fires event-time timers
//   const h2 = new Harness(Count, { restore: h.snapshot() });

import * as rt from "./runtime.js";
import { kindOf } from "./index.js";

const utf8 = new TextEncoder();
const toBytes = (k) => (k === undefined || k === null ? undefined : typeof k === "string" ? utf8.encode(k) : k);
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const fromHex = (h) => new Uint8Array(h.match(/../g)?.map((b) => parseInt(b, 16)) ?? []);
const compareBytes = (a, b) => {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
};

/** Keyed state, timers and a log in memory, with the host's rules. */
export class MemoryHost {
  constructor() {
    this.currentKey = null;
    this.state = new Map(); // "keyhex|kind|name" -> bytes | bytes[] | Map(hex -> bytes)
    this.timers = new Map(); // "domain|ts|keyhex" -> [domain, ts (bigint), key]
    this.watermark = rt.MIN_WATERMARK;
    this.processingTime = 0n;
    this.logs = [];
  }
  slot(kind, name) {
    if (this.currentKey === null) throw new Error("keyed state used before a key was set");
    return `${hex(this.currentKey)}|${kind}|${name}`;
  }
  setCurrentKey(key) {
    this.currentKey = Uint8Array.from(key);
  }
  valueGet(name) {
    return this.state.get(this.slot("value", name));
  }
  valueSet(name, value) {
    this.state.set(this.slot("value", name), Uint8Array.from(value));
  }
  valueClear(name) {
    this.state.delete(this.slot("value", name));
  }
  listGet(name) {
    return [...(this.state.get(this.slot("list", name)) ?? [])];
  }
  listAdd(name, value) {
    const slot = this.slot("list", name);
    if (!this.state.has(slot)) this.state.set(slot, []);
    this.state.get(slot).push(Uint8Array.from(value));
  }
  listClear(name) {
    this.state.delete(this.slot("list", name));
  }
  mapGet(name, mapKey) {
    return this.state.get(this.slot("map", name))?.get(hex(mapKey));
  }
  mapPut(name, mapKey, value) {
    const slot = this.slot("map", name);
    if (!this.state.has(slot)) this.state.set(slot, new Map());
    this.state.get(slot).set(hex(mapKey), Uint8Array.from(value));
  }
  mapRemove(name, mapKey) {
    const slot = this.slot("map", name);
    const m = this.state.get(slot);
    if (m) {
      m.delete(hex(mapKey));
      if (m.size === 0) this.state.delete(slot);
    }
  }
  mapEntries(name) {
    const m = this.state.get(this.slot("map", name)) ?? new Map();
    return [...m.entries()].map(([k, v]) => [fromHex(k), v]).sort((a, b) => compareBytes(a[0], b[0]));
  }
  mapClear(name) {
    this.state.delete(this.slot("map", name));
  }
  currentWatermark() {
    return this.watermark;
  }
  currentProcessingTime() {
    return this.processingTime;
  }
  registerTimer(domain, timestamp) {
    if (this.currentKey === null) throw new Error("timers need a current key");
    this.timers.set(`${domain}|${timestamp}|${hex(this.currentKey)}`, [domain, BigInt(timestamp), this.currentKey]);
  }
  deleteTimer(domain, timestamp) {
    if (this.currentKey === null) throw new Error("timers need a current key");
    this.timers.delete(`${domain}|${timestamp}|${hex(this.currentKey)}`);
  }
  log(level, message) {
    this.logs.push([level, message]);
  }
}

const text = new TextDecoder();

function decoded(outputs) {
  return outputs.map((o) => {
    if (o.kind === "error") return o;
    let value = o.value;
    try {
      value = JSON.parse(text.decode(o.value));
    } catch {
      /* bytes */
    }
    return { ...o, value, key: o.key === undefined ? undefined : text.decode(o.key), timestamp: o.timestamp === undefined ? undefined : Number(o.timestamp) };
  });
}

function installed(host, f) {
  rt.setHost(host);
  try {
    return f();
  } finally {
    rt.setHost(null);
  }
}

/** One subtask of a function, driven by hand. */
export class Harness {
  constructor(cls, { config = {}, restore = null, subtaskIndex = 0, parallelism = 1, attempt = 0 } = {}) {
    this.host = new MemoryHost();
    this.runtime = new rt.Runtime(kindOf(cls), cls);
    if (restore) {
      this.host.state = structuredClone(restore.state);
      this.host.timers = new Map(restore.timers);
      this.host.watermark = restore.watermark;
    }
    const error = installed(this.host, () => {
      const e = this.runtime.open(JSON.stringify(config), { operatorId: "udf", subtaskIndex, parallelism, maxParallelism: 128, attempt });
      if (e === null && restore && restore.operatorState.length) return this.runtime.restoreState(restore.operatorState);
      return e;
    });
    if (error !== null) throw new Error(error);
  }

  /** Runs one batch; each item is a value, or `{ key, value, timestamp, raw }`
   * when `records` is true. Keys are strings or bytes; outputs come back
   * with decoded values and string keys. */
  process(values, { key, timestamp } = {}) {
    const batch = values.map((v) => ({
      key: toBytes(key),
      value: v instanceof Uint8Array ? v : rt.encode(v),
      timestamp: timestamp === undefined ? undefined : BigInt(timestamp),
    }));
    return this.processRecords(batch);
  }

  /** Runs one batch of `{ key, value, timestamp }` (values as for `process`). */
  records(records) {
    return this.processRecords(
      records.map((r) => ({
        key: toBytes(r.key),
        value: r.value instanceof Uint8Array ? r.value : rt.encode(r.value),
        timestamp: r.timestamp === undefined ? undefined : BigInt(r.timestamp),
      })),
    );
  }

  processRecords(batch) {
    return installed(this.host, () => {
      const out = this.runtime.process(batch);
      this.host.currentKey = null;
      return decoded(out);
    });
  }

  /** Sets the watermark and fires the event-time timers it passes, in
   * (timestamp, key) order, including ones registered while firing. */
  advanceWatermark(watermark) {
    this.host.watermark = BigInt(watermark);
    return this.fire(rt.EVENT_TIME, BigInt(watermark));
  }

  advanceProcessingTime(now) {
    this.host.processingTime = BigInt(now);
    return this.fire(rt.PROCESSING_TIME, BigInt(now));
  }

  fire(domain, until) {
    const out = [];
    for (;;) {
      const due = [...this.host.timers.entries()]
        .filter(([, [d, ts]]) => d === domain && ts <= until)
        .sort(([, a], [, b]) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : compareBytes(a[2], b[2])));
      if (due.length === 0) return out;
      const [id, [, ts, key]] = due[0];
      this.host.timers.delete(id);
      out.push(...installed(this.host, () => {
        const emitted = this.runtime.onTimer(key, ts, domain);
        this.host.currentKey = null;
        return decoded(emitted);
      }));
    }
  }

  snapshot(checkpointId = 1) {
    const [items, error] = installed(this.host, () => this.runtime.snapshotState(checkpointId));
    if (error !== null) throw new Error(error);
    return { state: structuredClone(this.host.state), timers: new Map(this.host.timers), operatorState: items, watermark: this.host.watermark };
  }

  close() {
    const error = installed(this.host, () => this.runtime.close());
    if (error !== null) throw new Error(error);
  }

  valueState(key, name) {
    const v = this.host.state.get(`${hex(toBytes(key))}|value|${name}`);
    return v === undefined ? undefined : JSON.parse(text.decode(v));
  }

  listState(key, name) {
    return (this.host.state.get(`${hex(toBytes(key))}|list|${name}`) ?? []).map((v) => JSON.parse(text.decode(v)));
  }

  mapState(key, name) {
    const m = this.host.state.get(`${hex(toBytes(key))}|map|${name}`) ?? new Map();
    return Object.fromEntries([...m.entries()].sort().map(([k, v]) => [JSON.parse(text.decode(fromHex(k))), JSON.parse(text.decode(v))]));
  }

  /** Registered timers of `domain` as [timestamp (number), key (string)]. */
  timers(domain = rt.EVENT_TIME) {
    return [...this.host.timers.values()]
      .filter(([d]) => d === domain)
      .map(([, ts, key]) => [Number(ts), text.decode(key)])
      .sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : 1));
  }
}

/** An `AggregateFunction` driven by hand. */
export class AggregateHarness {
  constructor(cls, { config = {} } = {}) {
    this.host = new MemoryHost();
    this.runtime = new rt.AggregateRuntime(cls);
    const error = installed(this.host, () => this.runtime.open(JSON.stringify(config), { operatorId: "agg", subtaskIndex: 0, parallelism: 1, maxParallelism: 128, attempt: 0 }));
    if (error !== null) throw new Error(error);
  }

  /** The result of each list of values added in one call, merged in order. */
  aggregate(...windows) {
    return installed(this.host, () => {
      let merged = null;
      for (const values of windows) {
        const [acc, error] = this.runtime.add(this.runtime.createAccumulator(), values.map(rt.encode));
        if (error !== null) throw new Error(error);
        if (merged === null) merged = acc;
        else {
          const [m, e] = this.runtime.merge(merged, acc);
          if (e !== null) throw new Error(e);
          merged = m;
        }
      }
      const [result, error] = this.runtime.getResult(merged ?? this.runtime.createAccumulator());
      if (error !== null) throw new Error(error);
      return JSON.parse(result);
    });
  }
}

/** The function class the module under test exported with `exportFunction`. */
export function exported() {
  return rt.registeredFunction()[1];
}
