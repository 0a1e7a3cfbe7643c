/* Streaming z-score anomaly detector for the NAB example, in C.
 *
 * The rule of `udfs/nab-zscore` (Rust), exactly: keyed by series, Welford's
 * running mean and variance (Welford 1962; Knuth, TAOCP vol. 2, 4.2.2) in
 * value state `welford` (the same JSON as the Rust UDF's: {"n","mean","m2"}),
 * and a reading whose z-score against the readings *before* it reaches
 * `threshold` is an alert, once at least `warmup` readings have been seen.
 * The arithmetic is the Rust UDF's, in the same order, so z-scores are
 * bit-identical.
 *
 * With `event_time: true` the rule is applied in event-time order: each
 * reading waits in map state `pending` (keyed by the JSON of its timestamp,
 * as the Rust and Python versions key it) with an event-time timer, and
 * when the watermark passes its timestamp the readings of that timestamp
 * are scored in arrival order. A reading at or below the watermark when it
 * arrives is late: it goes to the side output `late`, unscored.
 *
 * Build: `weir udf build udfs/nab-zscore-c`; or name this directory in a
 * job's `udf:`. */
#include "weir.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF /* no fused multiply-add: the Rust UDF has none */
#endif

/* Configuration (`config:` in the job file). */
static uint64_t warmup;  /* readings to see before flagging anything */
static double threshold; /* |z| at or above which a reading is an anomaly */
static bool event_time;  /* score readings in event-time order */

bool weir_open(const weir_subtask *subtask, weir_bytes config) {
    (void)subtask;
    warmup = 30;
    threshold = 4.0;
    event_time = false;
    if (weir_json_type(config) != WEIR_JSON_OBJECT || !weir_json_valid(config)) {
        weir_set_error("config must be a JSON object");
        return false;
    }
    size_t pos = 0;
    weir_bytes k, v;
    while (weir_json_object_next(config, &pos, &k, &v)) {
        if (weir_bytes_eq_str(k, "\"warmup\"")) {
            int64_t w;
            if (!weir_json_int(v, &w) || w < 0) {
                weir_set_error("warmup must be a non-negative integer, got %.*s", (int)v.len, (const char *)v.ptr);
                return false;
            }
            warmup = (uint64_t)w;
        } else if (weir_bytes_eq_str(k, "\"threshold\"")) {
            if (!weir_json_number(v, &threshold)) {
                weir_set_error("threshold must be a number, got %.*s", (int)v.len, (const char *)v.ptr);
                return false;
            }
        } else if (weir_bytes_eq_str(k, "\"event_time\"")) {
            if (!weir_json_bool(v, &event_time)) {
                weir_set_error("event_time must be true or false, got %.*s", (int)v.len, (const char *)v.ptr);
                return false;
            }
        } else {
            weir_set_error("unknown field %.*s, expected one of `warmup`, `threshold`, `event_time`", (int)k.len,
                           (const char *)k.ptr);
            return false;
        }
    }
    if (isnan(threshold) || threshold <= 0.0) {
        weir_buf t = {0};
        weir_buf_json_number(&t, threshold);
        weir_set_error("threshold must be > 0, got %s", t.ptr ? (const char *)t.ptr : "NaN");
        weir_buf_free(&t);
        return false;
    }
    return true;
}

/* One CSV row of a NAB series: `timestamp` is the span of its JSON string
 * (re-emitted as it is), `value` the number. */
typedef struct reading {
    weir_bytes timestamp;
    double value;
} reading;

/* Reads a reading; on failure returns the reason. */
static const char *reading_of(weir_bytes json, reading *r) {
    weir_bytes ts, v;
    if (weir_json_type(json) != WEIR_JSON_OBJECT || !weir_json_field(json, "timestamp", &ts) ||
        !weir_json_field(json, "value", &v))
        return "a reading needs `timestamp` and `value`";
    if (weir_json_type(ts) != WEIR_JSON_STRING) return "`timestamp` must be text";
    if (!weir_json_number(v, &r->value)) return "`value` must be a number";
    r->timestamp = ts;
    return NULL;
}

/* Appends {"timestamp":..,"value":..} (the Rust UDF's `Reading`). */
static void reading_json(weir_buf *b, const reading *r) {
    weir_buf_puts(b, "{\"timestamp\":");
    weir_buf_append(b, r->timestamp.ptr, r->timestamp.len);
    weir_buf_puts(b, ",\"value\":");
    weir_buf_json_number(b, r->value);
    weir_buf_puts(b, "}");
}

/* Welford's running statistics of one series. */
typedef struct stats {
    uint64_t n;
    double mean, m2;
} stats;

static bool stats_decode(weir_bytes bytes, void *value) {
    stats *s = value;
    weir_bytes f;
    int64_t n;
    if (!weir_json_field(bytes, "n", &f) || !weir_json_int(f, &n) || n < 0 || !weir_json_field(bytes, "mean", &f) ||
        !weir_json_number(f, &s->mean) || !weir_json_field(bytes, "m2", &f) || !weir_json_number(f, &s->m2))
        return false;
    s->n = (uint64_t)n;
    return true;
}

/* {"n","mean","m2"}, the Rust UDF's JSON; false once not finite (a reading
 * too large), which JSON cannot hold. */
static bool stats_encode(const void *value, weir_buf *out) {
    const stats *s = value;
    weir_buf_printf(out, "{\"n\":%llu,\"mean\":", (unsigned long long)s->n);
    bool finite = weir_buf_json_number(out, s->mean);
    weir_buf_puts(out, ",\"m2\":");
    finite = weir_buf_json_number(out, s->m2) && finite;
    weir_buf_puts(out, "}");
    return finite;
}

/* Value state `welford`, kept decoded for the rest of a call and written
 * back once at its end (weir_value_state). */
static const weir_codec STATS = {sizeof(stats), stats_decode, stats_encode};

/* The rule for the next reading of the current key's series. False (after
 * a per-record error) when the series key is not UTF-8. */
static bool score(weir_context *ctx, const reading *r) {
    stats *s = weir_value_state(ctx, "welford", &STATS, NULL);
    if (!s) {
        weir_record_error(ctx, "value state `welford` is not {\"n\",\"mean\",\"m2\"}");
        return false;
    }
    double x = r->value;
    if (s->n >= warmup && s->n >= 2) {
        double std = sqrt(s->m2 / (double)(s->n - 1));
        double z = std > 0.0 ? (x - s->mean) / std : 0.0;
        if (fabs(z) >= threshold) {
            weir_bytes key = weir_key(ctx);
            if (!weir_utf8_valid(key)) {
                weir_record_error(ctx, "series key is not UTF-8");
                return false;
            }
            weir_buf alert = {0};
            weir_buf_puts(&alert, "{\"series\":");
            weir_buf_json_string(&alert, key);
            weir_buf_puts(&alert, ",\"timestamp\":");
            weir_buf_append(&alert, r->timestamp.ptr, r->timestamp.len);
            weir_buf_puts(&alert, ",\"value\":");
            weir_buf_json_number(&alert, x);
            weir_buf_puts(&alert, ",\"z\":");
            weir_buf_json_number(&alert, z);
            weir_buf_puts(&alert, "}");
            weir_emit(ctx, weir_buf_bytes(&alert));
            weir_buf_free(&alert);
        }
    }
    s->n += 1;
    double delta = x - s->mean;
    s->mean += delta / (double)s->n;
    s->m2 += delta * (x - s->mean);
    return true;
}

/* The map key of timestamp `ts` in `pending`: its JSON. */
static weir_bytes pending_key(weir_buf *b, int64_t ts) {
    weir_buf_reset(b);
    weir_buf_json_int(b, ts);
    return weir_buf_bytes(b);
}

void weir_process(weir_context *ctx, const weir_record *record) {
    reading r;
    if (!weir_json_valid(record->value)) {
        weir_record_error(ctx, "the reading is not JSON");
        return;
    }
    const char *why = reading_of(record->value, &r);
    if (why) {
        weir_record_error(ctx, "%s", why);
        return;
    }
    if (!record->has_key) {
        weir_record_error(ctx, "a reading without a key: the detector needs a stream keyed by series");
        return;
    }
    if (!event_time) {
        score(ctx, &r);
        return;
    }
    int64_t ts;
    if (!weir_timestamp(ctx, &ts)) {
        weir_record_error(ctx, "event_time needs record timestamps (set `timestamp` on the source)");
        return;
    }
    weir_buf b = {0}, key = {0};
    if (ts <= weir_current_watermark(ctx)) {
        reading_json(&b, &r);
        weir_emit_side(ctx, "late", weir_buf_bytes(&b));
        weir_buf_free(&b);
        return;
    }
    weir_bytes mk = pending_key(&key, ts), waiting;
    size_t pos = 0;
    weir_bytes item;
    weir_buf_puts(&b, "[");
    if (weir_map_get(ctx, "pending", mk, &waiting)) {
        if (weir_json_type(waiting) != WEIR_JSON_ARRAY || !weir_json_valid(waiting)) {
            weir_record_error(ctx, "map state `pending` does not hold a list of readings");
            weir_buf_free(&b);
            weir_buf_free(&key);
            return;
        }
        while (weir_json_array_next(waiting, &pos, &item)) {
            weir_buf_append(&b, item.ptr, item.len);
            weir_buf_puts(&b, ",");
        }
    }
    reading_json(&b, &r);
    weir_buf_puts(&b, "]");
    weir_map_put(ctx, "pending", mk, weir_buf_bytes(&b));
    weir_register_timer(ctx, WEIR_EVENT_TIME, ts);
    weir_buf_free(&b);
    weir_buf_free(&key);
}

void weir_on_timer(weir_context *ctx, int64_t timestamp, weir_time_domain domain) {
    (void)domain;
    weir_buf key = {0};
    weir_bytes mk = pending_key(&key, timestamp), waiting, item;
    if (weir_map_get(ctx, "pending", mk, &waiting)) {
        weir_map_remove(ctx, "pending", mk);
        size_t pos = 0;
        if (weir_json_type(waiting) != WEIR_JSON_ARRAY || !weir_json_valid(waiting))
            weir_record_error(ctx, "map state `pending` does not hold a list of readings");
        while (weir_json_array_next(waiting, &pos, &item)) {
            reading r;
            const char *why = reading_of(item, &r);
            if (why) {
                weir_record_error(ctx, "a pending reading: %s", why);
                break;
            }
            if (!score(ctx, &r)) break;
        }
    }
    weir_buf_free(&key);
}
