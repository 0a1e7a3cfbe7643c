/* Weir C guest SDK: the operator API.
 *
 * A Weir operator written in C implements `weir_process` (required) and,
 * when it needs them, `weir_open`, `weir_on_timer`, `weir_close`,
 * `weir_snapshot` and `weir_restore` (the SDK has weak defaults for those).
 * The SDK calls `weir_process` once per record of each batch the host sends,
 * in order; the record's key is the current key of keyed state and timers
 * (the SDK sets it in the host on the first state or timer call of a
 * record, so a function without state also runs on a stream that is not
 * keyed).
 *
 * Memory: everything the SDK hands the user (records, keys, state values,
 * list items, map entries) stays valid until the end of the current host
 * call (the `weir_process` / `weir_on_timer` calls of one batch or timer)
 * and is freed by the SDK afterwards: never free it, copy what must live
 * longer. Everything the user passes to the SDK is copied before the
 * function returns, so it can be freed or reused immediately.
 *
 * A `weir_context` is valid only during the call that received it. State
 * and timer functions act on the current key; using them on a record
 * without a key makes the host trap the instance (the task fails). */
#ifndef WEIR_H
#define WEIR_H

#include "weir_json.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Opaque per-call context; valid during one `weir_process` /
 * `weir_on_timer` call. */
typedef struct weir_context weir_context;

/** The clock of a timer (the order of the WIT enum `time-domain`). */
typedef enum weir_time_domain {
    WEIR_EVENT_TIME = 0,
    WEIR_PROCESSING_TIME = 1
} weir_time_domain;

/** One stream record. `key` is meaningful only when `has_key`, `timestamp`
 * (event time, ms since the Unix epoch) only when `has_timestamp`. */
typedef struct weir_record {
    bool has_key;
    weir_bytes key;
    weir_bytes value;
    bool has_timestamp;
    int64_t timestamp;
} weir_record;

/** Which parallel instance of the operator this is (`weir_open`). */
typedef struct weir_subtask {
    const char *operator_id; /* NUL-terminated; valid during weir_open */
    uint32_t index, parallelism, max_parallelism, attempt;
} weir_subtask;

/** One entry of map state. */
typedef struct weir_entry {
    weir_bytes key, value;
} weir_entry;

/** Collects the items of operator state in `weir_snapshot`. */
typedef struct weir_items weir_items;

/* ---- implemented by the user ------------------------------------------ */

/** Required. Called for each record of a batch, in order. Produce outputs
 * with `weir_emit*`, `weir_emit_side`, `weir_record_error`. `record` and its
 * bytes are valid until the end of the batch. */
void weir_process(weir_context *ctx, const weir_record *record);

/** Optional (default: returns true). Called once before the first batch,
 * and again on a new instance after a restart. Initialise globals here.
 * `config_json` is the operator's `config` from the job file (`{}` when
 * none); it and `subtask` are valid during the call. Return false, after
 * `weir_set_error`, to fail the task. */
bool weir_open(const weir_subtask *subtask, weir_bytes config_json);

/** Optional (default: does nothing). A timer registered with
 * `weir_register_timer` fired; the timer's key is the current key
 * (`weir_key`) and its timestamp the one of `weir_emit`. */
void weir_on_timer(weir_context *ctx, int64_t timestamp, weir_time_domain domain);

/** Optional (default: returns true). Called once at the end of the input.
 * Return false, after `weir_set_error`, to fail the task. */
bool weir_close(void);

/** Optional (default: no operator state). Adds the subtask's operator state
 * (state not scoped to a key) to `items` with `weir_items_add`, at checkpoint
 * `checkpoint_id`. Return false, after `weir_set_error`, to decline the
 * checkpoint. Items may be redistributed over subtasks when the
 * parallelism changes: make each item self-contained. */
bool weir_snapshot(uint64_t checkpoint_id, weir_items *items);

/** Optional (default: ignores the items). Gives back operator state after
 * `weir_open` on a job resuming from a checkpoint, only when there are
 * items. `items` is valid during the call. Return false, after
 * `weir_set_error`, to fail the task. */
bool weir_restore(const weir_bytes *items, size_t n);

/* ---- provided by the SDK ------------------------------------------------ */

/** Adds one item (copied) to the operator state being snapshotted. */
void weir_items_add(weir_items *items, weir_bytes item);

/** The current key: the key of the record being processed or of the timer
 * that fired; the empty span when the record has no key. */
weir_bytes weir_key(const weir_context *ctx);

/** True when the current record has a key. */
bool weir_has_key(const weir_context *ctx);

/** The current timestamp (the record's; on a timer, the timer's) in `*ts`.
 * False, leaving `*ts` alone, when the record has none. */
bool weir_timestamp(const weir_context *ctx, int64_t *ts);

/** Emits `value` (copied) on the main output with the current key and
 * timestamp (the input's, or on a timer the timer's key and timestamp). */
void weir_emit(weir_context *ctx, weir_bytes value);

/** Emits a record (copied) on the main output with its own key and
 * timestamp. */
void weir_emit_record(weir_context *ctx, const weir_record *r);

/** Sends `value` (copied) to the side output `output` (the job file routes
 * it) with the current key and timestamp. */
void weir_emit_side(weir_context *ctx, const char *output, weir_bytes value);

/** Reports a per-record error for the current input record (on a timer:
 * input 0) with a printf-formatted message. The host counts and logs it and
 * goes on. Outputs already emitted for the record are kept. */
void weir_record_error(weir_context *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** Reads value state `name` of the current key into `*out`; false when it
 * has no value. The bytes stay valid until the end of the call. */
bool weir_value_get(weir_context *ctx, const char *name, weir_bytes *out);
/** Writes (copies) value state `name` of the current key. */
void weir_value_set(weir_context *ctx, const char *name, weir_bytes value);
/** Clears value state `name` of the current key. */
void weir_value_clear(weir_context *ctx, const char *name);

/** How a typed value state (`weir_value_state`) is stored: a C value of
 * `size` bytes, decoded from and encoded to the state's bytes (JSON, if it
 * is to be read by functions in other languages). */
typedef struct weir_codec {
    /** Size of the C value in bytes. */
    size_t size;
    /** Decodes `bytes` into `*value` (zeroed first); false when the bytes
     * are not a value of this type. */
    bool (*decode)(weir_bytes bytes, void *value);
    /** Appends the encoding of `*value` to `out`; false when it cannot be
     * stored (for example a number that is not finite). */
    bool (*encode)(const void *value, weir_buf *out);
} weir_codec;

/** Value state `name` of the current key as a decoded C value: a pointer to
 * `codec->size` bytes that the SDK keeps for the rest of the call (the same
 * pointer for the same key and name, for every record of a batch), zeroed
 * when the key has no value (`*found` false; `found` may be NULL). Change
 * the value through the pointer: at the end of the call every value that
 * changed is encoded and written to the host once, so a key that comes many
 * times in a batch costs one decode and one encode, not one per record. A
 * value left all zeros for a key that had none stays absent. A value the
 * codec cannot encode is a per-record error of the record that used it
 * last, and the state keeps its old value. Returns NULL when the stored
 * bytes do not decode. The byte functions below (`weir_value_get`, `_set`,
 * `_clear`) on the same key and name first write the cached value back
 * (or drop it, for `_clear`). */
void *weir_value_state(weir_context *ctx, const char *name, const weir_codec *codec, bool *found);

/** All items of list state `name` of the current key, in insertion order:
 * returns their count and sets `*items` to an array of them (NULL when
 * empty), valid until the end of the call. */
size_t weir_list_get(weir_context *ctx, const char *name, const weir_bytes **items);
/** Appends (copies) one item to list state `name`. */
void weir_list_add(weir_context *ctx, const char *name, weir_bytes item);
/** Clears list state `name`. */
void weir_list_clear(weir_context *ctx, const char *name);

/** Reads entry `map_key` of map state `name` into `*out`; false when there
 * is none. The bytes stay valid until the end of the call. */
bool weir_map_get(weir_context *ctx, const char *name, weir_bytes map_key, weir_bytes *out);
/** Writes (copies) entry `map_key` of map state `name`. */
void weir_map_put(weir_context *ctx, const char *name, weir_bytes map_key, weir_bytes value);
/** Removes entry `map_key` of map state `name`, if present. */
void weir_map_remove(weir_context *ctx, const char *name, weir_bytes map_key);
/** All entries of map state `name`, ordered by map-key bytes: returns their
 * count and sets `*entries` (NULL when empty), valid until the end of the
 * call. */
size_t weir_map_entries(weir_context *ctx, const char *name, const weir_entry **entries);
/** Removes every entry of map state `name`. */
void weir_map_clear(weir_context *ctx, const char *name);

/** Registers a timer of the current key at `ts` (ms). Registering the same
 * key, timestamp and domain twice leaves one timer. Event-time timers fire
 * once the watermark reaches `ts`, processing-time ones when the wall clock
 * does. */
void weir_register_timer(weir_context *ctx, weir_time_domain domain, int64_t ts);
/** Deletes the current key's timer at `ts` in `domain`, if there is one. */
void weir_delete_timer(weir_context *ctx, weir_time_domain domain, int64_t ts);
/** The operator's event-time watermark (ms); INT64_MIN before the first. */
int64_t weir_current_watermark(weir_context *ctx);
/** The wall clock (ms since the epoch). */
int64_t weir_current_processing_time(weir_context *ctx);

#ifdef __cplusplus
}
#endif

#endif
