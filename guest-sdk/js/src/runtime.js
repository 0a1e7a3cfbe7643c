// The part of the SDK that does not depend on the component bindings:
// `Runtime` turns the calls of the `weir:operator` world (open, a batch, a
// timer, snapshot and restore) into calls of the user's function, over a
// host that is either the component's imports (`component.js`) or an
// in-memory stand-in (`testing.js`). Records and state values are JSON;
// `Uint8Array`s pass through unchanged.

export const EVENT_TIME = "event-time";
export const PROCESSING_TIME = "processing-time";
/** The watermark before the first one (i64::MIN), as a BigInt. */
export const MIN_WATERMARK = -(2n ** 63n);

const utf8 = new TextEncoder();
const text = new TextDecoder("utf-8", { fatal: true });
const keyText = new TextDecoder();

/** A map key's JSON text (its identity in the state cache). */
export function keyJson(key) {
  if (typeof key === "number" && Number.isInteger(key)) return String(key);
  const json = JSON.stringify(key);
  if (json === undefined) throw new TypeError(`cannot use ${typeof key} as a map key`);
  return json;
}

/** A value as the bytes Weir keeps: `Uint8Array` as is, anything else as JSON. */
export function encode(value) {
  if (value instanceof Uint8Array) return value;
  const json = JSON.stringify(value, (_, v) => (typeof v === "bigint" ? Number(v) : v));
  if (json === undefined) throw new TypeError(`cannot encode ${typeof value} as JSON`);
  return utf8.encode(json);
}

/** JSON bytes as a value; throws `SyntaxError` or `TypeError` when they are not. */
export function decode(bytes) {
  return JSON.parse(text.decode(bytes));
}

/** Throw it while handling one record to report that record as a
 * per-record error and go on; any other error thrown for a record is
 * reported the same way, with its name in the message. */
export class RecordError extends Error {
  constructor(message) {
    super(message);
    this.name = "RecordError";
  }
}

/** An output for a named side output: `yield new Side("late", value)`. */
export class Side {
  constructor(output, value, { key, timestamp } = {}) {
    this.output = output;
    this.value = value;
    this.key = key;
    this.timestamp = timestamp;
  }
}

/** A main output whose key or timestamp differs from the input's. */
export class Record {
  constructor(value, { key, timestamp } = {}) {
    this.value = value;
    this.key = key;
    this.timestamp = timestamp;
  }
}

let host = null;
let cache = null;

/** Installs the host the state handles, timers and logging talk to. */
export function setHost(h) {
  host = h;
  cache = h ? new StateCache(h) : null;
}

export function currentHost() {
  if (host === null) {
    throw new Error("weir: no host: state, timers and logging work inside a Weir job (or a testing Harness), not at import time");
  }
  return host;
}

export function stateCache() {
  currentHost();
  return cache;
}

export const ABSENT = Symbol("absent");
const MISSING = Symbol("missing");
export const VALUE = 0;
export const MAP = 2;

/** A key's bytes as a string usable as a Map key (one char per byte). */
function bytesId(bytes) {
  let id = "";
  for (let i = 0; i < bytes.length; i += 4096) id += String.fromCharCode.apply(null, bytes.subarray(i, i + 4096));
  return id;
}

/** Value and map state read or written during one call of the host, kept
 * decoded in the guest and written back, encoded, at the end of the call
 * (see the Python SDK's `StateCache`: one read and one write per key and
 * batch instead of per record). */
export class StateCache {
  constructor(h) {
    this.host = h;
    this.key = null;
    this.keyId = "";
    this.hostKey = null;
    this.values = new Map(); // slot id -> value | ABSENT
    this.slots = new Map(); // slot id -> [key, kind, name, mapKey]
    this.dirty = new Map(); // slot id -> input index of the record that wrote it
    this.record = 0;
  }

  /** A new call: the host has no current key, nothing is cached. */
  begin() {
    this.key = null;
    this.hostKey = null;
    this.record = 0;
    this.values.clear();
    this.slots.clear();
    this.dirty.clear();
  }

  /** Makes `key` (bytes) the current key. */
  setKey(key) {
    if (this.key !== key) {
      this.key = key;
      this.keyId = bytesId(key);
    }
  }

  syncKey() {
    if (this.key === null) throw new Error("keyed state used outside a keyed record or timer");
    if (this.hostKey !== this.key) {
      this.host.setCurrentKey(this.key);
      this.hostKey = this.key;
    }
    return this.host;
  }

  /** The slot id of state `name` (and map key `mapKey`, JSON text) of the
   * current key. */
  slot(kind, name, mapKey) {
    // The name is length-prefixed and a map key's JSON holds no raw NUL,
    // so different slots never share an id.
    const id = mapKey === null ? `${kind}${name.length}:${name}\u0000${this.keyId}` : `${kind}${name.length}:${name}${mapKey}\u0000${this.keyId}`;
    if (!this.slots.has(id)) this.slots.set(id, [this.key, kind, name, mapKey === null ? null : utf8.encode(mapKey)]);
    return id;
  }

  /** The decoded value of a slot, or ABSENT; `mapKey` is the map key's
   * JSON text (null for value state). */
  get(kind, name, mapKey, raw) {
    if (this.key === null) this.syncKey();
    const id = this.slot(kind, name, mapKey);
    const found = this.values.has(id) ? this.values.get(id) : MISSING;
    if (found !== MISSING) return found;
    const h = this.syncKey();
    const data = kind === VALUE ? h.valueGet(name) : h.mapGet(name, this.slots.get(id)[3]);
    const value = data === undefined || data === null ? ABSENT : raw ? data : decode(data);
    this.values.set(id, value);
    return value;
  }

  put(kind, name, mapKey, value) {
    if (this.key === null) this.syncKey();
    const id = this.slot(kind, name, mapKey);
    this.values.set(id, value);
    this.dirty.set(id, this.record);
  }

  /** Writes back what this call changed and forgets what it read; returns
   * `[input index, message]` for each value that cannot be encoded (the
   * host keeps the old value; a per-record error of the record that wrote
   * it). */
  flush() {
    const failed = [];
    try {
      const h = this.host;
      for (const [id, record] of this.dirty) {
        const [key, kind, name, mapKey] = this.slots.get(id);
        const value = this.values.get(id);
        let data = null;
        if (value !== ABSENT) {
          try {
            data = encode(value);
          } catch (e) {
            failed.push([record, `state \`${name}\` cannot be stored as JSON: ${describe(e)}`]);
            continue;
          }
        }
        if (this.hostKey !== key) {
          h.setCurrentKey(key);
          this.hostKey = key;
        }
        if (kind === VALUE) {
          if (data === null) h.valueClear(name);
          else h.valueSet(name, data);
        } else if (data === null) h.mapRemove(name, mapKey);
        else h.mapPut(name, mapKey, data);
      }
    } finally {
      this.dirty.clear();
      this.values.clear();
      this.slots.clear();
    }
    return failed;
  }
}

/** The timer service and the record's key and event time. */
export class Context {
  constructor(key, timestamp) {
    /** The record's key (Uint8Array), or undefined on a non-keyed stream. */
    this.key = key;
    /** The record's event time in ms (a number), or undefined. */
    this.timestamp = timestamp;
  }
  /** The key as UTF-8 text. */
  get keyString() {
    return this.key ? keyText.decode(this.key) : "";
  }
  /** The operator's watermark in ms (a number; -Infinity before the first). */
  currentWatermark() {
    const w = currentHost().currentWatermark();
    return w === MIN_WATERMARK ? -Infinity : Number(w);
  }
  /** The wall clock in ms, as the host grants it. */
  currentProcessingTime() {
    return Number(currentHost().currentProcessingTime());
  }
  registerEventTimeTimer(timestamp) {
    stateCache().syncKey().registerTimer(EVENT_TIME, BigInt(timestamp));
  }
  registerProcessingTimeTimer(timestamp) {
    stateCache().syncKey().registerTimer(PROCESSING_TIME, BigInt(timestamp));
  }
  deleteEventTimeTimer(timestamp) {
    stateCache().syncKey().deleteTimer(EVENT_TIME, BigInt(timestamp));
  }
  deleteProcessingTimeTimer(timestamp) {
    stateCache().syncKey().deleteTimer(PROCESSING_TIME, BigInt(timestamp));
  }
}

/** What `onTimer` receives: the timer's key, timestamp and domain. */
export class TimerContext extends Context {
  constructor(key, timestamp, domain) {
    super(key, timestamp);
    this.domain = domain;
  }
}

function describe(error) {
  if (error instanceof RecordError) return error.message;
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

function failure(what, error) {
  const stack = error instanceof Error && error.stack ? `\n${error.stack}` : "";
  return `${what}: ${describe(error)}${stack}`;
}

/** Creates an instance of `cls` and calls its `open` with the config
 * (`configText`, JSON) and `subtask`; `[instance, null]` or `[null, error]`. */
function openFunction(cls, configText, subtask) {
  let config;
  try {
    config = JSON.parse((configText || "").trim() || "{}");
  } catch (e) {
    return [null, `invalid operator config (not JSON): ${e.message}`];
  }
  try {
    const fn = new cls();
    fn.open?.({ config, ...subtask });
    return [fn, null];
  } catch (e) {
    return [null, failure("open failed", e)];
  }
}

/** Throws `message` (unless null) as the `err` of a `result` export:
 * componentize-js hands the thrown value's `payload` to the host. */
export function failWith(message) {
  if (message !== null) {
    const error = new Error(message);
    error.payload = message;
    throw error;
  }
}

/** The subtask fields of a WIT `context`, as `open` gets them. */
export function subtaskOf(ctx) {
  const s = ctx.subtask;
  return {
    operatorId: s.operatorId,
    subtaskIndex: s.index,
    parallelism: s.parallelism,
    maxParallelism: s.maxParallelism,
    attempt: s.attempt,
  };
}

/** Builds the outputs a runtime returns. */
export const EMITTED = {
  emit: (key, value, timestamp) => ({ kind: "emit", key, value, timestamp }),
  side: (output, key, value, timestamp) => ({ kind: "side", output, key, value, timestamp }),
  error: (input, message) => ({ kind: "error", input, message }),
};

function toMs(ts) {
  return ts === undefined || ts === null ? undefined : Number(ts);
}

function toHostTs(ts) {
  return ts === undefined || ts === null ? undefined : BigInt(ts);
}

/** Drives one user function (`kind`: map, filter, flatMap, keyedProcess)
 * through the operator world's calls. */
export class Runtime {
  constructor(kind, cls, outputs = EMITTED) {
    this.kind = kind;
    this.cls = cls;
    this.outputs = outputs;
    this.fn = null;
    this.rawInput = Boolean(cls.rawInput);
  }

  /** Creates and opens the function; the error message, or null. */
  open(configText, subtask) {
    const [fn, error] = openFunction(this.cls, configText, subtask);
    this.fn = fn;
    return error;
  }

  close() {
    try {
      this.fn.close?.();
    } catch (e) {
      return failure("close failed", e);
    }
    return null;
  }

  snapshotState(checkpointId) {
    try {
      const items = this.fn.snapshotState ? this.fn.snapshotState(Number(checkpointId)) : [];
      return [Array.from(items || [], encode), null];
    } catch (e) {
      return [null, failure("snapshotState failed", e)];
    }
  }

  restoreState(items) {
    try {
      this.fn.restoreState?.(items.map(decode));
    } catch (e) {
      return failure("restoreState failed", e);
    }
    return null;
  }

  /** Runs a batch of `{key, value, timestamp}` records. */
  process(batch) {
    const out = [];
    const keyed = this.kind === "keyedProcess";
    const state = keyed ? stateCache() : null;
    if (state) state.begin();
    try {
      const { fn, rawInput, kind } = this;
      const { emit, error } = this.outputs;
      const ctx = new Context(undefined, undefined);
      for (let index = 0; index < batch.length; index++) {
        const record = batch[index];
        const key = record.key;
        const timestamp = record.timestamp;
        try {
          let item;
          if (rawInput) item = record.value;
          else {
            try {
              item = JSON.parse(text.decode(record.value));
            } catch (e) {
              throw new RecordError(`invalid JSON input: ${e.message}`);
            }
          }
          if (kind === "keyedProcess") {
            if (key === undefined || key === null) {
              throw new RecordError("keyedProcess needs a keyed stream (key_by) but the record has no key");
            }
            state.setKey(key);
            state.record = index;
            ctx.key = key;
            ctx.timestamp = toMs(timestamp);
            const result = fn.processElement(item, ctx);
            if (result !== undefined && result !== null) this.emitAll(out, result, key, timestamp);
          } else if (kind === "map") {
            this.emitOne(out, fn.map(item), key, timestamp);
          } else if (kind === "filter") {
            if (fn.filter(item)) out.push(emit(key, record.value, timestamp));
          } else {
            const result = fn.flatMap(item);
            if (result !== undefined && result !== null) this.emitAll(out, result, key, timestamp);
          }
        } catch (e) {
          out.push(error(index, describe(e)));
        }
      }
    } finally {
      if (state) for (const [index, message] of state.flush()) out.push(this.outputs.error(index, message));
    }
    return out;
  }

  onTimer(key, timestamp, domain) {
    const out = [];
    if (!this.fn.onTimer) return out;
    const state = stateCache();
    state.begin();
    state.setKey(key);
    try {
      const result = this.fn.onTimer(Number(timestamp), new TimerContext(key, Number(timestamp), domain));
      if (result !== undefined && result !== null) this.emitAll(out, result, key, timestamp);
    } catch (e) {
      out.push(this.outputs.error(0, `onTimer at ${timestamp}: ${describe(e)}`));
    } finally {
      for (const [, message] of state.flush()) out.push(this.outputs.error(0, `onTimer at ${timestamp}: ${message}`));
    }
    return out;
  }

  emitOne(out, item, key, timestamp) {
    const { emit, side } = this.outputs;
    if (item instanceof Side) {
      out.push(side(item.output, item.key ?? key, encode(item.value), item.timestamp != null ? toHostTs(item.timestamp) : timestamp));
    } else if (item instanceof Record) {
      out.push(emit(item.key ?? key, encode(item.value), item.timestamp != null ? toHostTs(item.timestamp) : timestamp));
    } else {
      out.push(emit(key, encode(item), timestamp));
    }
  }

  emitAll(out, items, key, timestamp) {
    // One output, not a collection of them: text, bytes, anything not iterable.
    if (items instanceof Side || items instanceof Record || typeof items === "string" || items instanceof Uint8Array || typeof items[Symbol.iterator] !== "function") {
      this.emitOne(out, items, key, timestamp);
      return;
    }
    const start = out.length;
    try {
      for (const item of items) this.emitOne(out, item, key, timestamp);
    } catch (e) {
      out.length = start;
      throw e;
    }
  }
}

/** Drives an `AggregateFunction`; accumulators are JSON values. */
export class AggregateRuntime {
  constructor(cls) {
    this.cls = cls;
    this.fn = null;
  }
  open(configText, subtask) {
    const [fn, error] = openFunction(this.cls, configText, subtask);
    this.fn = fn;
    return error;
  }
  createAccumulator() {
    return encode(this.fn.createAccumulator());
  }
  add(accumulator, values) {
    try {
      let acc = decode(accumulator);
      for (const v of values) acc = this.fn.add(decode(v), acc);
      return [encode(acc), null];
    } catch (e) {
      return [null, describe(e)];
    }
  }
  merge(a, b) {
    try {
      return [encode(this.fn.merge(decode(a), decode(b))), null];
    } catch (e) {
      return [null, describe(e)];
    }
  }
  getResult(accumulator) {
    try {
      const result = this.fn.getResult(decode(accumulator));
      if (result === null || typeof result !== "object" || Array.isArray(result)) {
        throw new TypeError("getResult must return an object (the result's fields)");
      }
      return [JSON.stringify(result), null];
    } catch (e) {
      return [null, describe(e)];
    }
  }
}

let registered = null;

export function register(kind, cls) {
  if (registered && registered[1] !== cls) {
    throw new Error(`weir: one function per component: ${registered[1].name} is already exported`);
  }
  registered = [kind, cls];
}

export function registeredFunction() {
  if (!registered) throw new Error("weir: the module exports no function: call exportFunction(YourClass)");
  return registered;
}

export function resetRegistration() {
  registered = null;
}
