/* Weir C guest SDK: native unit tests of operators and aggregates.
 *
 * Link weir_testing.c (with weir_json.c, and weir_runtime.c for operators)
 * instead of the Wasm bindings: it provides an in-memory host (keyed value,
 * list and map state per key and name, timers, watermark), a harness that
 * drives the operator like the host does, a tiny test runner and `main`.
 *
 *     WEIR_TEST(counts_per_key) {
 *         WEIR_CHECK(weir_test_open("{}"));
 *         weir_test_process("a", "{\"op\":\"count\"}");
 *         WEIR_CHECK_EQ_INT(weir_test_output_count(), 1);
 *         WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "{\"count\":1}");
 *     }
 *
 * Each test starts with an empty host (no state, timers, outputs; watermark
 * INT64_MIN, processing time 0); the user's globals are not reset: set them
 * in `weir_open`. Using keyed state or timers without a current key aborts
 * the test program, as the host traps the instance. */
#ifndef WEIR_TESTING_H
#define WEIR_TESTING_H

#include "weir.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- harness --------------------------------------------------------------- */

typedef enum weir_test_output_kind {
    WEIR_TEST_NONE = 0, /* what weir_test_output returns out of range */
    WEIR_TEST_EMIT,
    WEIR_TEST_SIDE,
    WEIR_TEST_ERROR
} weir_test_output_kind;

/** One output of the last call. Valid until the next harness call. */
typedef struct weir_output {
    weir_test_output_kind kind;
    bool has_key;
    weir_bytes key;
    weir_bytes value;
    bool has_timestamp;
    int64_t timestamp;
    const char *side;    /* WEIR_TEST_SIDE: output name, else "" */
    const char *message; /* WEIR_TEST_ERROR: the message, else "" */
    uint32_t input;      /* WEIR_TEST_ERROR: index of the input record */
} weir_output;

/** Opens the operator (`weir_open`) with `config_json` (NULL for `{}`) as
 * subtask 0 of 1 (operator id "test", max parallelism 128, attempt 0).
 * False when it fails; `weir_test_error()` has the message. */
bool weir_test_open(const char *config_json);

/** Empties the host as at the start of a test: no state, timers,
 * outputs or checkpoint; watermark INT64_MIN, processing time 0. For
 * table-driven tests that run several scenarios in one test. */
void weir_test_reset(void);

/** Closes the operator (`weir_close`); false when it fails. */
bool weir_test_close(void);

/** The message of the last failed open, close, checkpoint or restore. */
const char *weir_test_error(void);

/** Processes one record with key `key` (NULL: no key) and value `value`
 * (NUL-terminated), without a timestamp. Returns the number of outputs. */
size_t weir_test_process(const char *key, const char *value);
/** The same with event timestamp `ts`. */
size_t weir_test_process_at(const char *key, const char *value, int64_t ts);
/** Processes a batch of records in one call (the key is set through the
 * host only when it changes, as in Wasm). Returns the number of outputs. */
size_t weir_test_process_batch(const weir_record *records, size_t n);

/** Advances the event-time watermark to `wm` (never backwards) and fires
 * the due event-time timers in timestamp order, then key order, through
 * `weir_on_timer`. Outputs of all timers fired are the last call's outputs.
 * Returns their number. */
size_t weir_test_watermark(int64_t wm);
/** Sets the wall clock to `now` and fires due processing-time timers. */
size_t weir_test_processing_time(int64_t now);

/** Number of outputs of the last call. */
size_t weir_test_output_count(void);
/** Output `i` of the last call; a WEIR_TEST_NONE output (never NULL) when
 * `i` is out of range. */
const weir_output *weir_test_output(size_t i);

/** Value state `name` of `key`; false when none. Valid until the next
 * harness call. */
bool weir_test_value(const char *key, const char *name, weir_bytes *out);
/** List state `name` of `key`: count, and `*items` (valid as above). */
size_t weir_test_list(const char *key, const char *name, const weir_bytes **items);
/** Entry `map_key` of map state `name` of `key`. */
bool weir_test_map_get(const char *key, const char *name, weir_bytes map_key, weir_bytes *out);
/** Entries of map state `name` of `key`, ordered by map-key bytes. */
size_t weir_test_map_entries(const char *key, const char *name, const weir_entry **entries);
/** True when `key` has a timer at `ts` in `domain`. */
bool weir_test_has_timer(const char *key, weir_time_domain domain, int64_t ts);
/** Number of timers registered (all keys and domains). */
size_t weir_test_timer_count(void);

/** Takes a checkpoint: `weir_snapshot` for the operator state, and a copy
 * of keyed state and timers, as the host does. False when the snapshot is
 * declined. */
bool weir_test_checkpoint(uint64_t checkpoint_id);
/** The operator-state items of the last checkpoint (valid until the next
 * checkpoint). */
size_t weir_test_checkpoint_items(const weir_bytes **items);
/** Restarts from the last checkpoint as the host does: keyed state and
 * timers go back to the checkpoint's, the watermark to INT64_MIN, then
 * `weir_open` runs again (with the config of the last `weir_test_open`) and
 * `weir_restore` gets the items (only when there are any). False when
 * there is no checkpoint or a call fails. */
bool weir_test_restore(void);

/* ---- test runner ------------------------------------------------------------ */

void weir_test__register(const char *name, void (*fn)(void));
void weir_test__fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool weir_test__json_eq(weir_bytes actual, const char *expected);
bool weir_test__str_eq(const char *a, const char *b);

/** Defines and registers a test. */
#define WEIR_TEST(name)                                                              \
    static void weir_test_fn_##name(void);                                           \
    __attribute__((constructor)) static void weir_test_reg_##name(void) {            \
        weir_test__register(#name, weir_test_fn_##name);                             \
    }                                                                                \
    static void weir_test_fn_##name(void)

/** Fails the test (and goes on) when `cond` is false. */
#define WEIR_CHECK(cond)                                                             \
    do {                                                                             \
        if (!(cond)) weir_test__fail(__FILE__, __LINE__, "check failed: %s", #cond); \
    } while (0)

/** Compares two integers. */
#define WEIR_CHECK_EQ_INT(actual, expected)                                          \
    do {                                                                             \
        long long weir_a_ = (long long)(actual), weir_e_ = (long long)(expected);    \
        if (weir_a_ != weir_e_)                                                      \
            weir_test__fail(__FILE__, __LINE__, "%s == %lld, expected %lld", #actual, \
                            weir_a_, weir_e_);                                       \
    } while (0)

/** Compares two C strings (NULL equals only NULL). */
#define WEIR_CHECK_EQ_STR(actual, expected)                                          \
    do {                                                                             \
        const char *weir_a_ = (actual), *weir_e_ = (expected);                       \
        if (!weir_test__str_eq(weir_a_, weir_e_))                                    \
            weir_test__fail(__FILE__, __LINE__, "%s == \"%s\", expected \"%s\"",     \
                            #actual, weir_a_ ? weir_a_ : "(null)",                   \
                            weir_e_ ? weir_e_ : "(null)");                           \
    } while (0)

/** Compares a span with a C string, byte for byte. */
#define WEIR_CHECK_EQ_BYTES(actual, expected)                                        \
    do {                                                                             \
        weir_bytes weir_a_ = (actual);                                               \
        if (!weir_bytes_eq_str(weir_a_, (expected)))                                 \
            weir_test__fail(__FILE__, __LINE__, "%s == \"%.*s\", expected \"%s\"",   \
                            #actual, (int)weir_a_.len,                   \
                            weir_a_.ptr ? (const char *)weir_a_.ptr : "",    \
                            (expected));                                             \
    } while (0)

/** Compares the JSON in span `actual` with the JSON text `expected` as
 * decoded values (numbers by value, objects regardless of member order). */
#define WEIR_CHECK_JSON_EQ(actual, expected)                                         \
    do {                                                                             \
        weir_bytes weir_a_ = (actual);                                               \
        if (!weir_test__json_eq(weir_a_, (expected)))                                \
            weir_test__fail(__FILE__, __LINE__, "%s == %.*s, expected %s", #actual,  \
                            (int)weir_a_.len,                   \
                            weir_a_.ptr ? (const char *)weir_a_.ptr : "", (expected)); \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif
