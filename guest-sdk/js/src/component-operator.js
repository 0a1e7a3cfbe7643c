// The `operator` world's exports over `Runtime`, for componentize-js. The
// build bundles it after the user's module, which registers its function.
import * as keyedState from "weir:operator/keyed-state@0.4.0";
import * as timers from "weir:operator/timers@0.4.0";
import { log } from "weir:operator/logging@0.4.0";
import * as rt from "./runtime.js";

rt.setHost({
  setCurrentKey: keyedState.setCurrentKey,
  valueGet: keyedState.valueGet,
  valueSet: keyedState.valueSet,
  valueClear: keyedState.valueClear,
  listGet: keyedState.listGet,
  listAdd: keyedState.listAdd,
  listClear: keyedState.listClear,
  mapGet: keyedState.mapGet,
  mapPut: keyedState.mapPut,
  mapRemove: keyedState.mapRemove,
  mapEntries: keyedState.mapEntries,
  mapClear: keyedState.mapClear,
  currentWatermark: timers.currentWatermark,
  currentProcessingTime: timers.currentProcessingTime,
  registerTimer: timers.registerTimer,
  deleteTimer: timers.deleteTimer,
  log: (level, message) => log(level, message),
});

const [kind, cls] = rt.registeredFunction();
const runtime = new rt.Runtime(kind, cls, {
  emit: (key, value, timestamp) => ({ tag: "emit", val: { key, value, timestamp } }),
  side: (output, key, value, timestamp) => ({ tag: "side", val: { output, record: { key, value, timestamp } } }),
  error: (input, message) => ({ tag: "error", val: { input, message } }),
});

const fail = rt.failWith;

export const handler = {
  open(ctx) {
    fail(runtime.open(ctx.config, rt.subtaskOf(ctx)));
  },
  process(batch) {
    return runtime.process(batch);
  },
  onTimer(key, timestamp, domain) {
    return runtime.onTimer(key, timestamp, domain);
  },
  close() {
    fail(runtime.close());
  },
};

export const checkpointed = {
  snapshotState(checkpointId) {
    const [items, error] = runtime.snapshotState(checkpointId);
    fail(error);
    return items;
  },
  restoreState(items) {
    fail(runtime.restoreState(items));
  },
};
