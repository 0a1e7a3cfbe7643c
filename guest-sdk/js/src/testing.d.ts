// TypeScript definitions of `weir/testing`.
export interface Output {
  kind: "emit" | "side" | "error";
  value?: any;
  key?: string;
  timestamp?: number;
  output?: string;
  input?: number;
  message?: string;
}
export interface Snapshot {}
export class Harness {
  constructor(cls: unknown, options?: { config?: object; restore?: Snapshot; subtaskIndex?: number; parallelism?: number; attempt?: number });
  process(values: unknown[], options?: { key?: string | Uint8Array; timestamp?: number }): Output[];
  records(records: { key?: string | Uint8Array; value: unknown; timestamp?: number }[]): Output[];
  advanceWatermark(watermark: number): Output[];
  advanceProcessingTime(now: number): Output[];
  snapshot(checkpointId?: number): Snapshot;
  close(): void;
  valueState(key: string | Uint8Array, name: string): any;
  listState(key: string | Uint8Array, name: string): any[];
  mapState(key: string | Uint8Array, name: string): Record<string, any>;
  timers(domain?: "event-time" | "processing-time"): [number, string][];
}
export class AggregateHarness {
  constructor(cls: unknown, options?: { config?: object });
  aggregate(...windows: unknown[][]): any;
}
/** The function class the module under test exported with `exportFunction`. */
export function exported(): any;
