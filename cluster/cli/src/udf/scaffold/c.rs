//! The C templates of `weir udf new`: `app.c` and `test_app.c` per kind.

use super::Kind;

pub(super) fn c_app(kind: Kind) -> &'static str {
    match kind {
        Kind::Map => C_MAP,
        Kind::Filter => C_FILTER,
        Kind::FlatMap => C_FLAT_MAP,
        Kind::KeyedProcess => C_KEYED,
        Kind::Aggregate => C_AGGREGATE,
    }
}

pub(super) fn c_test(kind: Kind) -> &'static str {
    match kind {
        Kind::Map => C_MAP_TEST,
        Kind::Filter => C_FILTER_TEST,
        Kind::FlatMap => C_FLAT_MAP_TEST,
        Kind::KeyedProcess => C_KEYED_TEST,
        Kind::Aggregate => C_AGGREGATE_TEST,
    }
}

const C_MAP: &str = r#"/* Adds `scaled = value * factor` to every reading. */
#include "weir.h"

static double factor = 2.0;

bool weir_open(const weir_subtask *subtask, weir_bytes config) {
    (void)subtask;
    weir_bytes f;
    if (weir_json_field(config, "factor", &f) && !weir_json_number(f, &factor)) {
        weir_set_error("config `factor` must be a number");
        return false;
    }
    return true;
}

void weir_process(weir_context *ctx, const weir_record *record) {
    weir_bytes field;
    double value;
    if (!weir_json_field(record->value, "value", &field) || !weir_json_number(field, &value)) {
        weir_record_error(ctx, "a reading needs a numeric `value`");
        return;
    }
    /* The input object (valid: weir_json_field checked it) with one more
     * field before its closing brace. */
    size_t end = record->value.len;
    while (record->value.ptr[end - 1] != '}') end--;
    weir_buf out = {0};
    weir_buf_append(&out, record->value.ptr, end - 1);
    weir_buf_puts(&out, ",\"scaled\":");
    weir_buf_json_number(&out, value * factor);
    weir_buf_puts(&out, "}");
    weir_emit(ctx, weir_buf_bytes(&out));
    weir_buf_free(&out);
}
"#;

const C_FILTER: &str = r#"/* Keeps the readings whose value is at least `min`. */
#include "weir.h"

static double min = 0.0;

bool weir_open(const weir_subtask *subtask, weir_bytes config) {
    (void)subtask;
    weir_bytes m;
    if (weir_json_field(config, "min", &m) && !weir_json_number(m, &min)) {
        weir_set_error("config `min` must be a number");
        return false;
    }
    return true;
}

void weir_process(weir_context *ctx, const weir_record *record) {
    weir_bytes field;
    double value;
    if (!weir_json_field(record->value, "value", &field) || !weir_json_number(field, &value)) {
        weir_record_error(ctx, "a reading needs a numeric `value`");
        return;
    }
    if (value >= min) weir_emit(ctx, record->value);
}
"#;

const C_FLAT_MAP: &str = r#"/* One output per tag of a reading: `{"sensor", "tag"}`. */
#include "weir.h"

void weir_process(weir_context *ctx, const weir_record *record) {
    weir_bytes sensor, tags, tag;
    if (!weir_json_field(record->value, "sensor", &sensor)) {
        weir_record_error(ctx, "a reading needs a `sensor`");
        return;
    }
    if (!weir_json_field(record->value, "tags", &tags)) return;
    weir_buf out = {0};
    for (size_t pos = 0; weir_json_array_next(tags, &pos, &tag);) {
        weir_buf_reset(&out);
        weir_buf_puts(&out, "{\"sensor\":");
        weir_buf_append(&out, sensor.ptr, sensor.len);
        weir_buf_puts(&out, ",\"tag\":");
        weir_buf_append(&out, tag.ptr, tag.len);
        weir_buf_puts(&out, "}");
        weir_emit(ctx, weir_buf_bytes(&out));
    }
    weir_buf_free(&out);
}
"#;

const C_KEYED: &str = r#"/* Per sensor: the running count and mean of its readings (value state
 * `stats`, the JSON `[count, total]`), and a summary one minute of event
 * time after each reading (a timer, to the side output `summary`). */
#include <string.h>

#include "weir.h"

/* The key's [count, total], or [0, 0.0]. */
static void stats(weir_context *ctx, int64_t *n, double *total) {
    weir_bytes state, item;
    *n = 0;
    *total = 0.0;
    if (weir_value_get(ctx, "stats", &state)) {
        size_t pos = 0;
        if (weir_json_array_next(state, &pos, &item)) weir_json_int(item, n);
        if (weir_json_array_next(state, &pos, &item)) weir_json_number(item, total);
    }
}

/* Appends the current key as a JSON string. */
static void key_json(weir_context *ctx, weir_buf *out) {
    weir_buf_json_string(out, weir_key(ctx));
}

void weir_process(weir_context *ctx, const weir_record *record) {
    weir_bytes field;
    double value;
    if (!weir_json_field(record->value, "value", &field) || !weir_json_number(field, &value)) {
        weir_record_error(ctx, "a reading needs a numeric `value`");
        return;
    }
    int64_t n;
    double total;
    stats(ctx, &n, &total);
    n += 1;
    total += value;
    weir_buf buf = {0};
    weir_buf_printf(&buf, "[%lld,", (long long)n);
    weir_buf_json_number(&buf, total);
    weir_buf_puts(&buf, "]");
    weir_value_set(ctx, "stats", weir_buf_bytes(&buf));

    int64_t ts;
    if (weir_timestamp(ctx, &ts)) weir_register_timer(ctx, WEIR_EVENT_TIME, ts + 60000);

    weir_buf_reset(&buf);
    weir_buf_puts(&buf, "{\"sensor\":");
    key_json(ctx, &buf);
    weir_buf_printf(&buf, ",\"count\":%lld,\"mean\":", (long long)n);
    weir_buf_json_number(&buf, total / (double)n);
    weir_buf_puts(&buf, "}");
    weir_emit(ctx, weir_buf_bytes(&buf));
    weir_buf_free(&buf);
}

void weir_on_timer(weir_context *ctx, int64_t timestamp, weir_time_domain domain) {
    (void)domain;
    int64_t n;
    double total;
    stats(ctx, &n, &total);
    weir_buf buf = {0};
    weir_buf_puts(&buf, "{\"sensor\":");
    key_json(ctx, &buf);
    weir_buf_printf(&buf, ",\"at\":%lld,\"count\":%lld}", (long long)timestamp, (long long)n);
    weir_emit_side(ctx, "summary", weir_buf_bytes(&buf));
    weir_buf_free(&buf);
}
"#;

const C_AGGREGATE: &str = r#"/* The mean of `value` per window, as `mean` (null for an empty window).
 * The accumulator is the JSON `[count, total]`. */
#include "weir_aggregate.h"

static bool read_acc(weir_bytes acc, int64_t *n, double *total) {
    weir_bytes item;
    size_t pos = 0;
    return weir_json_array_next(acc, &pos, &item) && weir_json_int(item, n) &&
           weir_json_array_next(acc, &pos, &item) && weir_json_number(item, total);
}

static void write_acc(weir_buf *out, int64_t n, double total) {
    weir_buf_printf(out, "[%lld,", (long long)n);
    weir_buf_json_number(out, total);
    weir_buf_puts(out, "]");
}

void weir_agg_create(weir_buf *acc) { write_acc(acc, 0, 0.0); }

bool weir_agg_add(weir_bytes acc, const weir_bytes *values, size_t count, weir_buf *out) {
    int64_t n;
    double total;
    if (!read_acc(acc, &n, &total)) {
        weir_set_error("not an accumulator of this function");
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        weir_bytes field;
        double value;
        if (!weir_json_field(values[i], "value", &field) || !weir_json_number(field, &value)) {
            weir_set_error("a reading needs a numeric `value`");
            return false;
        }
        n += 1;
        total += value;
    }
    write_acc(out, n, total);
    return true;
}

bool weir_agg_merge(weir_bytes a, weir_bytes b, weir_buf *out) {
    int64_t na, nb;
    double ta, tb;
    if (!read_acc(a, &na, &ta) || !read_acc(b, &nb, &tb)) {
        weir_set_error("not an accumulator of this function");
        return false;
    }
    write_acc(out, na + nb, ta + tb);
    return true;
}

bool weir_agg_result(weir_bytes acc, weir_buf *out) {
    int64_t n;
    double total;
    if (!read_acc(acc, &n, &total)) {
        weir_set_error("not an accumulator of this function");
        return false;
    }
    weir_buf_puts(out, "{\"mean\":");
    if (n == 0) {
        weir_buf_puts(out, "null");
    } else {
        weir_buf_json_number(out, total / (double)n);
    }
    weir_buf_puts(out, "}");
    return true;
}
"#;

const C_MAP_TEST: &str = r#"/* Unit tests, natively with the SDK's in-memory host: `weir udf test`. */
#include "weir_testing.h"

WEIR_TEST(scales_the_value) {
    WEIR_CHECK(weir_test_open("{\"factor\": 3}"));
    WEIR_CHECK_EQ_INT(weir_test_process(NULL, "{\"value\": 2.0}"), 1);
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "{\"value\": 2.0, \"scaled\": 6.0}");
}

WEIR_TEST(a_reading_without_value_is_a_per_record_error) {
    WEIR_CHECK(weir_test_open(NULL));
    WEIR_CHECK_EQ_INT(weir_test_process(NULL, "{\"other\": 1}"), 1);
    WEIR_CHECK_EQ_INT(weir_test_output(0)->kind, WEIR_TEST_ERROR);
}

WEIR_TEST(a_bad_factor_fails_open) {
    WEIR_CHECK(!weir_test_open("{\"factor\": \"x\"}"));
    WEIR_CHECK_EQ_STR(weir_test_error(), "config `factor` must be a number");
}
"#;

const C_FILTER_TEST: &str = r#"/* Unit tests, natively with the SDK's in-memory host: `weir udf test`. */
#include "weir_testing.h"

WEIR_TEST(keeps_values_at_or_above_min) {
    WEIR_CHECK(weir_test_open("{\"min\": 1.0}"));
    WEIR_CHECK_EQ_INT(weir_test_process(NULL, "{\"value\": 0.5}"), 0);
    WEIR_CHECK_EQ_INT(weir_test_process(NULL, "{\"value\": 1.0}"), 1);
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "{\"value\": 1.0}");
}
"#;

const C_FLAT_MAP_TEST: &str = r#"/* Unit tests, natively with the SDK's in-memory host: `weir udf test`. */
#include "weir_testing.h"

WEIR_TEST(one_output_per_tag) {
    WEIR_CHECK(weir_test_open(NULL));
    WEIR_CHECK_EQ_INT(weir_test_process(NULL, "{\"sensor\": \"a\", \"tags\": [\"x\", \"y\"]}"), 2);
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "{\"sensor\": \"a\", \"tag\": \"x\"}");
    WEIR_CHECK_JSON_EQ(weir_test_output(1)->value, "{\"sensor\": \"a\", \"tag\": \"y\"}");
    WEIR_CHECK_EQ_INT(weir_test_process(NULL, "{\"sensor\": \"b\", \"tags\": []}"), 0);
}
"#;

const C_KEYED_TEST: &str = r#"/* Unit tests, natively with the SDK's in-memory host: `weir udf test`. */
#include "weir_testing.h"

WEIR_TEST(counts_and_averages_per_key) {
    WEIR_CHECK(weir_test_open(NULL));
    weir_test_process_at("a", "{\"value\": 1.0}", 0);
    weir_test_process_at("a", "{\"value\": 3.0}", 0);
    WEIR_CHECK_EQ_INT(weir_test_process_at("b", "{\"value\": 5.0}", 0), 1);
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "{\"sensor\": \"b\", \"count\": 1, \"mean\": 5.0}");
    weir_bytes stats;
    WEIR_CHECK(weir_test_value("a", "stats", &stats));
    WEIR_CHECK_JSON_EQ(stats, "[2, 4.0]");
}

WEIR_TEST(a_summary_fires_a_minute_later) {
    WEIR_CHECK(weir_test_open(NULL));
    weir_test_process_at("a", "{\"value\": 1.0}", 1000);
    WEIR_CHECK_EQ_INT(weir_test_watermark(60999), 0);
    WEIR_CHECK_EQ_INT(weir_test_watermark(61000), 1);
    const weir_output *summary = weir_test_output(0);
    WEIR_CHECK_EQ_STR(summary->side, "summary");
    WEIR_CHECK_JSON_EQ(summary->value, "{\"sensor\": \"a\", \"at\": 61000, \"count\": 1}");
}
"#;

const C_AGGREGATE_TEST: &str = r#"/* Unit tests of the aggregate's functions, natively: `weir udf test`. */
#include "weir_aggregate.h"
#include "weir_testing.h"

WEIR_TEST(mean_of_merged_parts) {
    weir_buf empty = {0}, a = {0}, b = {0}, merged = {0}, result = {0};
    weir_agg_create(&empty);
    weir_bytes one[] = {WEIR_STR("{\"value\": 1.0}")};
    weir_bytes two[] = {WEIR_STR("{\"value\": 2.0}"), WEIR_STR("{\"value\": 6.0}")};
    WEIR_CHECK(weir_agg_add(weir_buf_bytes(&empty), one, 1, &a));
    WEIR_CHECK(weir_agg_add(weir_buf_bytes(&empty), two, 2, &b));
    WEIR_CHECK(weir_agg_merge(weir_buf_bytes(&a), weir_buf_bytes(&b), &merged));
    WEIR_CHECK(weir_agg_result(weir_buf_bytes(&merged), &result));
    WEIR_CHECK_JSON_EQ(weir_buf_bytes(&result), "{\"mean\": 3.0}");
    weir_buf_reset(&result);
    WEIR_CHECK(weir_agg_result(weir_buf_bytes(&empty), &result));
    WEIR_CHECK_JSON_EQ(weir_buf_bytes(&result), "{\"mean\": null}");
    weir_buf_free(&empty);
    weir_buf_free(&a);
    weir_buf_free(&b);
    weir_buf_free(&merged);
    weir_buf_free(&result);
}
"#;
