/* Weir C guest SDK: window aggregate functions (world `aggregate`, Flink's
 * AggregateFunction).
 *
 * The host keeps one accumulator per key and window as opaque bytes that
 * the function defines (JSON is a good choice: readable in checkpoints).
 * Implement the five functions below (`weir_agg_open` is optional). A
 * project that includes this header is built as an aggregate.
 *
 * Every `weir_bytes` argument is valid during the call only. Each `weir_buf
 * *out` starts empty; fill it and return true, and the SDK takes the buffer
 * (never free it). Return false, after `weir_set_error` (weir_json.h), to
 * report an error; the SDK then discards `out`. */
#ifndef WEIR_AGGREGATE_H
#define WEIR_AGGREGATE_H

#include "weir_json.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Optional (default: true). Called once per subtask before anything else
 * with the operator's `config` (`{}` when none). False fails the task. */
bool weir_agg_open(weir_bytes config_json);

/** A new, empty accumulator, written into `acc`. */
void weir_agg_create(weir_buf *acc);

/** Adds `values` (`n` record values in arrival order, JSON) to `acc` and
 * writes the updated accumulator to `out`. False rejects the values: the
 * host keeps `acc` and reports the records. */
bool weir_agg_add(weir_bytes acc, const weir_bytes *values, size_t n, weir_buf *out);

/** Combines two accumulators into `out` (session windows merge); `b` holds
 * later records than `a` when order matters. */
bool weir_agg_merge(weir_bytes a, weir_bytes b, weir_buf *out);

/** The window's result: a JSON object written to `json_out`, whose fields
 * are appended to the result record. */
bool weir_agg_result(weir_bytes acc, weir_buf *json_out);

#ifdef __cplusplus
}
#endif

#endif
