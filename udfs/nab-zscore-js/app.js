// Streaming z-score anomaly detector for the NAB example, in JavaScript.
//
// The rule of `udfs/nab-zscore` (Rust), exactly: keyed by series, Welford's
// running mean and variance (Welford 1962; Knuth, TAOCP vol. 2, 4.2.2) in
// value state `welford` (the same JSON as the Rust and Python UDFs'), and a
// reading whose z-score against the readings before it reaches `threshold`
// is an alert, once at least `warmup` readings have been seen. With
// `event_time: true` readings wait in map state `pending` (by timestamp)
// with an event-time timer and are scored when the watermark passes them;
// a reading at or below the watermark goes to the side output `late`.
import { KeyedProcessFunction, MapState, RecordError, Side, ValueState, exportFunction } from "weir";

const DEFAULTS = { warmup: 30, threshold: 4.0, event_time: false };

function readingOf(value) {
  const timestamp = value?.timestamp;
  const x = value?.value;
  if (typeof timestamp !== "string") throw new RecordError("a reading needs a text `timestamp`");
  if (typeof x !== "number") throw new RecordError(`\`value\` must be a number, got ${JSON.stringify(x)}`);
  return { timestamp, value: x };
}

class ZScore extends KeyedProcessFunction {
  open(ctx) {
    const unknown = Object.keys(ctx.config).filter((k) => !(k in DEFAULTS));
    if (unknown.length) throw new Error(`invalid operator config: unknown field(s) ${unknown.join(", ")}`);
    const config = { ...DEFAULTS, ...ctx.config };
    if (!(config.threshold > 0)) throw new Error(`threshold must be > 0, got ${config.threshold}`);
    this.warmup = config.warmup;
    this.threshold = config.threshold;
    this.eventTime = Boolean(config.event_time);
    this.stats = new ValueState("welford");
    this.pending = new MapState("pending");
  }

  processElement(value, ctx) {
    const reading = readingOf(value);
    if (!this.eventTime) return this.score(ctx.keyString, reading);
    const ts = ctx.timestamp;
    if (ts === undefined) throw new RecordError("event_time needs record timestamps (set `timestamp` on the source)");
    if (ts <= ctx.currentWatermark()) return [new Side("late", reading)];
    const waiting = this.pending.get(ts, []);
    waiting.push(reading);
    this.pending.put(ts, waiting);
    ctx.registerEventTimeTimer(ts);
    return null;
  }

  onTimer(timestamp, ctx) {
    const waiting = this.pending.get(timestamp, []);
    this.pending.remove(timestamp);
    const series = ctx.keyString;
    return waiting.flatMap((reading) => this.score(series, reading));
  }

  /** The rule for the next reading of the current key's series. */
  score(series, reading) {
    const s = this.stats.value() ?? { n: 0, mean: 0, m2: 0 };
    let { n, mean, m2 } = s;
    const x = reading.value;
    const alerts = [];
    if (n >= this.warmup && n >= 2) {
      const std = Math.sqrt(m2 / (n - 1));
      const z = std > 0 ? (x - mean) / std : 0;
      if (Math.abs(z) >= this.threshold) alerts.push({ series, timestamp: reading.timestamp, value: x, z });
    }
    n += 1;
    const delta = x - mean;
    mean += delta / n;
    m2 += delta * (x - mean);
    this.stats.update({ n, mean, m2 });
    return alerts;
  }
}

exportFunction(ZScore);
