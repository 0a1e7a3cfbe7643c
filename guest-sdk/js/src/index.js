// Weir user functions in JavaScript and TypeScript.
//
//   import { KeyedProcessFunction, ValueState, exportFunction } from "weir";
//   class Count extends KeyedProcessFunction {
//     open(ctx) { this.count = new ValueState("count"); }
//     *processElement(value, ctx) {
//       const n = (this.count.value() ?? 0) + 1;
//       this.count.update(n);
//       yield { key: ctx.keyString, n };
//     }
//   }
//   exportFunction(Count);
//
// `weir udf build DIR` bundles `app.js` (or `app.ts`) with this SDK and
// makes a component with componentize-js. Records arrive as decoded JSON,
// outputs are encoded as JSON (a `Uint8Array` passes unchanged). An error
// thrown for one record makes it a per-record error; one thrown in `open`,
// `close` or `restoreState` fails the task.

import * as rt from "./runtime.js";

export {
  EVENT_TIME,
  PROCESSING_TIME,
  Context,
  TimerContext,
  Record,
  RecordError,
  Side,
} from "./runtime.js";

/** Base of every operator function; all methods are optional. */
export class Function {
  open(_ctx) {}
  close() {}
  snapshotState(_checkpointId) {
    return [];
  }
  restoreState(_items) {}
}

/** Exactly one output per input: `map(value)`. */
export class MapFunction extends Function {}
/** Keeps the records for which `filter(value)` is true, unchanged. */
export class FilterFunction extends Function {}
/** Any number of outputs per input: `flatMap(value)` returns or yields them. */
export class FlatMapFunction extends Function {}
/** Keyed state and timers: `processElement(value, ctx)`, `onTimer(timestamp, ctx)`. */
export class KeyedProcessFunction extends Function {}
/** A window aggregate: `createAccumulator()`, `add(value, acc)`, `merge(a, b)`, `getResult(acc)`. */
export class AggregateFunction {
  open(_ctx) {}
}

const KINDS = [
  [KeyedProcessFunction, "keyedProcess"],
  [MapFunction, "map"],
  [FilterFunction, "filter"],
  [FlatMapFunction, "flatMap"],
  [AggregateFunction, "aggregate"],
];

/** The kind of function class `cls` is. */
export function kindOf(cls) {
  for (const [base, kind] of KINDS) {
    if (cls === base || cls.prototype instanceof base) return kind;
  }
  throw new TypeError(`${cls?.name ?? cls} does not extend MapFunction, FilterFunction, FlatMapFunction, KeyedProcessFunction or AggregateFunction`);
}

/** Makes `cls` the component's function (one per component). */
export function exportFunction(cls) {
  rt.register(kindOf(cls), cls);
  return cls;
}

/** Writes one line into the host's log (level: trace, debug, info, warn, error). */
export function log(level, message) {
  rt.currentHost().log(level, String(message));
}

/** One value per key (JSON, or bytes with `{ raw: true }`). */
export class ValueState {
  constructor(name, { raw = false } = {}) {
    this.name = name;
    this.raw = raw;
  }
  /** The current key's value, or `fallback` (undefined) when none. */
  value(fallback = undefined) {
    const v = rt.stateCache().get(rt.VALUE, this.name, null, this.raw);
    return v === rt.ABSENT ? fallback : v;
  }
  update(value) {
    rt.stateCache().put(rt.VALUE, this.name, null, value);
  }
  clear() {
    rt.stateCache().put(rt.VALUE, this.name, null, rt.ABSENT);
  }
}

function hostNow() {
  const state = rt.stateCache();
  state.flush();
  return state.syncKey();
}

/** A list of values per key, in insertion order. */
export class ListState {
  constructor(name, { raw = false } = {}) {
    this.name = name;
    this.raw = raw;
  }
  get() {
    const items = hostNow().listGet(this.name);
    return this.raw ? items : items.map(rt.decode);
  }
  add(value) {
    hostNow().listAdd(this.name, rt.encode(value));
  }
  addAll(values) {
    const h = hostNow();
    for (const v of values) h.listAdd(this.name, rt.encode(v));
  }
  update(values) {
    this.clear();
    this.addAll(values);
  }
  clear() {
    hostNow().listClear(this.name);
  }
}

/** A map per key, ordered by the JSON bytes of its keys. */
export class MapState {
  constructor(name, { raw = false } = {}) {
    this.name = name;
    this.raw = raw;
  }
  get(key, fallback = undefined) {
    const v = rt.stateCache().get(rt.MAP, this.name, rt.keyJson(key), this.raw);
    return v === rt.ABSENT ? fallback : v;
  }
  put(key, value) {
    rt.stateCache().put(rt.MAP, this.name, rt.keyJson(key), value);
  }
  remove(key) {
    rt.stateCache().put(rt.MAP, this.name, rt.keyJson(key), rt.ABSENT);
  }
  contains(key) {
    return rt.stateCache().get(rt.MAP, this.name, rt.keyJson(key), this.raw) !== rt.ABSENT;
  }
  /** Every `[key, value]` for the current key, in key order. */
  entries() {
    return hostNow()
      .mapEntries(this.name)
      .map(([k, v]) => [rt.decode(k), this.raw ? v : rt.decode(v)]);
  }
  keys() {
    return this.entries().map(([k]) => k);
  }
  values() {
    return this.entries().map(([, v]) => v);
  }
  isEmpty() {
    return hostNow().mapEntries(this.name).length === 0;
  }
  clear() {
    hostNow().mapClear(this.name);
  }
}
