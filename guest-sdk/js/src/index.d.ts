// TypeScript definitions of the Weir JavaScript SDK (`weir`).

/** JSON values a record or state holds. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export const EVENT_TIME: "event-time";
export const PROCESSING_TIME: "processing-time";
export type TimeDomain = "event-time" | "processing-time";

/** What `open` receives. */
export interface OpenContext<C = Record<string, Json>> {
  /** The operator's `config:` from the job file (`{}` when none). */
  config: C;
  operatorId: string;
  subtaskIndex: number;
  parallelism: number;
  maxParallelism: number;
  /** 0 on the first run, one more on every restart. */
  attempt: number;
}

/** The record's key and event time, and the timer service. */
export class Context {
  /** The record's key; undefined on a non-keyed stream. */
  readonly key: Uint8Array | undefined;
  /** The record's event time in ms since the epoch, if it has one. */
  readonly timestamp: number | undefined;
  /** The key as UTF-8 text. */
  readonly keyString: string;
  /** The operator's watermark in ms (-Infinity before the first). */
  currentWatermark(): number;
  /** The wall clock in ms, as the host grants it. */
  currentProcessingTime(): number;
  registerEventTimeTimer(timestamp: number): void;
  registerProcessingTimeTimer(timestamp: number): void;
  deleteEventTimeTimer(timestamp: number): void;
  deleteProcessingTimeTimer(timestamp: number): void;
}

/** What `onTimer` receives. */
export class TimerContext extends Context {
  readonly domain: TimeDomain;
}

/** Thrown for one record: a per-record error; the batch goes on. */
export class RecordError extends Error {}

/** An output for a named side output. */
export class Side {
  constructor(output: string, value: unknown, options?: { key?: Uint8Array; timestamp?: number });
}

/** A main output with another key or timestamp than the input's. */
export class Record {
  constructor(value: unknown, options?: { key?: Uint8Array; timestamp?: number });
}

/** What a function may return for one input: nothing, one output, or an
 * iterable (a generator included) of outputs. */
export type Outputs = void | null | undefined | Side | Record | Iterable<unknown>;

export class Function {
  static rawInput?: boolean;
  open(ctx: OpenContext<any>): void;
  close(): void;
  /** Operator state: JSON items, split evenly over subtasks on rescaling. */
  snapshotState(checkpointId: number): Json[];
  restoreState(items: Json[]): void;
}

export abstract class MapFunction<I = any, O = unknown> extends Function {
  abstract map(value: I): O;
}
export abstract class FilterFunction<I = any> extends Function {
  abstract filter(value: I): boolean;
}
export abstract class FlatMapFunction<I = any> extends Function {
  abstract flatMap(value: I): Outputs;
}
export abstract class KeyedProcessFunction<I = any> extends Function {
  abstract processElement(value: I, ctx: Context): Outputs;
  onTimer?(timestamp: number, ctx: TimerContext): Outputs;
}
export abstract class AggregateFunction<I = any, A = Json, R extends { [key: string]: Json } = { [key: string]: Json }> {
  open(ctx: OpenContext<any>): void;
  abstract createAccumulator(): A;
  abstract add(value: I, accumulator: A): A;
  abstract merge(a: A, b: A): A;
  abstract getResult(accumulator: A): R;
}

/** Makes `cls` the component's function (one per component). */
export function exportFunction<T>(cls: T): T;

/** Writes one line into the host's log. */
export function log(level: "trace" | "debug" | "info" | "warn" | "error", message: string): void;

export class ValueState<T = Json> {
  constructor(name: string, options?: { raw?: boolean });
  value(): T | undefined;
  value(fallback: T): T;
  update(value: T): void;
  clear(): void;
}

export class ListState<T = Json> {
  constructor(name: string, options?: { raw?: boolean });
  get(): T[];
  add(value: T): void;
  addAll(values: T[]): void;
  update(values: T[]): void;
  clear(): void;
}

export class MapState<K = Json, V = Json> {
  constructor(name: string, options?: { raw?: boolean });
  get(key: K): V | undefined;
  get(key: K, fallback: V): V;
  put(key: K, value: V): void;
  remove(key: K): void;
  contains(key: K): boolean;
  entries(): [K, V][];
  keys(): K[];
  values(): V[];
  isEmpty(): boolean;
  clear(): void;
}
