// The `aggregate` world's exports over `AggregateRuntime`, for componentize-js.
import { log } from "weir:operator/logging@0.4.0";
import * as rt from "./runtime.js";

rt.setHost({ log: (level, message) => log(level, message) });

const [, cls] = rt.registeredFunction();
const runtime = new rt.AggregateRuntime(cls);

const fail = rt.failWith;

function value([result, error]) {
  fail(error);
  return result;
}

export const aggregator = {
  open(ctx) {
    fail(runtime.open(ctx.config, rt.subtaskOf(ctx)));
  },
  createAccumulator() {
    return runtime.createAccumulator();
  },
  add(accumulator, values) {
    return value(runtime.add(accumulator, values));
  },
  merge(accumulator, other) {
    return value(runtime.merge(accumulator, other));
  },
  getResult(accumulator) {
    return value(runtime.getResult(accumulator));
  },
};
