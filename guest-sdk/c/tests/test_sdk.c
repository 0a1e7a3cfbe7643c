/* Tests of the operator runtime and the native harness, over a small test
 * operator whose records say what to do: {"do": "...", ...}. */
#include "weir.h"
#include "weir_testing.h"

#include <string.h>

static int64_t factor;
static int64_t total; /* operator state: records processed */
static bool refuse_snapshot;

bool weir_open(const weir_subtask *subtask, weir_bytes config) {
    factor = 1;
    total = 0;
    refuse_snapshot = false;
    if (strcmp(subtask->operator_id, "test") != 0 || subtask->parallelism != 1) {
        weir_set_error("unexpected subtask");
        return false;
    }
    size_t pos = 0;
    weir_bytes k, v;
    if (!weir_json_valid(config) || weir_json_type(config) != WEIR_JSON_OBJECT) {
        weir_set_error("config must be an object");
        return false;
    }
    while (weir_json_object_next(config, &pos, &k, &v)) {
        if (weir_bytes_eq_str(k, "\"factor\"")) {
            if (!weir_json_int(v, &factor)) {
                weir_set_error("factor must be an integer");
                return false;
            }
        } else if (weir_bytes_eq_str(k, "\"refuse_snapshot\"")) {
            weir_json_bool(v, &refuse_snapshot);
        } else {
            weir_set_error("unknown config field %.*s", (int)k.len, (const char *)k.ptr);
            return false;
        }
    }
    return true;
}

static void emit_printf(weir_context *ctx, const char *fmt, long long a) {
    weir_buf b = {0};
    weir_buf_printf(&b, fmt, a);
    weir_emit(ctx, weir_buf_bytes(&b));
    weir_buf_free(&b);
}

/* A typed value state: a count and a sum, stored as {"count":..,"sum":..}. */
typedef struct tally {
    int64_t count;
    double sum;
} tally;

static bool tally_decode(weir_bytes b, void *v) {
    tally *t = v;
    weir_bytes f;
    return weir_json_field(b, "count", &f) && weir_json_int(f, &t->count) && weir_json_field(b, "sum", &f) &&
           weir_json_number(f, &t->sum);
}

static bool tally_encode(const void *v, weir_buf *out) {
    const tally *t = v;
    weir_buf_printf(out, "{\"count\":%lld,\"sum\":", (long long)t->count);
    bool ok = weir_buf_json_number(out, t->sum);
    weir_buf_puts(out, "}");
    return ok;
}

static const weir_codec TALLY = {sizeof(tally), tally_decode, tally_encode};
static const tally *last_tally;

void weir_process(weir_context *ctx, const weir_record *r) {
    weir_bytes d, xs;
    int64_t x = 0;
    weir_buf what = {0}, out = {0};
    total++;
    if (!weir_json_field(r->value, "do", &d) || !weir_json_string(d, &what)) {
        weir_record_error(ctx, "no do in %.*s", (int)r->value.len, (const char *)r->value.ptr);
        return;
    }
    if (weir_json_field(r->value, "x", &xs)) weir_json_int(xs, &x);
    const char *w = (const char *)what.ptr;
    if (!strcmp(w, "map")) {
        emit_printf(ctx, "{\"y\":%lld}", (long long)(x * factor));
    } else if (!strcmp(w, "filter")) {
        if (x > 0) weir_emit(ctx, r->value);
    } else if (!strcmp(w, "flat")) {
        for (int64_t i = 0; i < x; i++) emit_printf(ctx, "{\"i\":%lld}", (long long)i);
    } else if (!strcmp(w, "value")) {
        weir_bytes prev;
        weir_buf_puts(&out, "{\"prev\":");
        if (weir_value_get(ctx, "v", &prev)) weir_buf_append(&out, prev.ptr, prev.len);
        else weir_buf_puts(&out, "null");
        weir_buf_puts(&out, "}");
        if (x < 0) weir_value_clear(ctx, "v");
        else weir_value_set(ctx, "v", xs);
        weir_emit(ctx, weir_buf_bytes(&out));
    } else if (!strcmp(w, "tally")) {
        bool found;
        tally *t = weir_value_state(ctx, "t", &TALLY, &found);
        double dx = 0;
        weir_json_number(xs, &dx);
        t->count += 1;
        t->sum += dx;
        weir_buf_printf(&out, "{\"count\":%lld,\"found\":%s,\"same\":%s}", (long long)t->count,
                        found ? "true" : "false", t == last_tally ? "true" : "false");
        weir_emit(ctx, weir_buf_bytes(&out));
        last_tally = t;
    } else if (!strcmp(w, "tbytes")) {
        weir_bytes now;
        if (weir_value_get(ctx, "t", &now)) weir_emit(ctx, now);
    } else if (!strcmp(w, "list")) {
        if (x < 0) weir_list_clear(ctx, "l");
        else weir_list_add(ctx, "l", xs);
        const weir_bytes *items;
        size_t n = weir_list_get(ctx, "l", &items);
        weir_buf_puts(&out, "[");
        for (size_t i = 0; i < n; i++) {
            if (i) weir_buf_puts(&out, ",");
            weir_buf_append(&out, items[i].ptr, items[i].len);
        }
        weir_buf_puts(&out, "]");
        weir_emit(ctx, weir_buf_bytes(&out));
    } else if (!strcmp(w, "mput") || !strcmp(w, "mdel") || !strcmp(w, "mclear")) {
        weir_bytes k = {0};
        weir_json_field(r->value, "k", &k);
        if (w[1] == 'p') weir_map_put(ctx, "m", k, xs);
        else if (w[1] == 'd') weir_map_remove(ctx, "m", k);
        else weir_map_clear(ctx, "m");
        weir_bytes got;
        weir_buf_puts(&out, "{\"got\":");
        if (weir_map_get(ctx, "m", k, &got)) weir_buf_append(&out, got.ptr, got.len);
        else weir_buf_puts(&out, "null");
        weir_buf_puts(&out, ",\"entries\":[");
        const weir_entry *e;
        size_t n = weir_map_entries(ctx, "m", &e);
        for (size_t i = 0; i < n; i++) {
            weir_buf_printf(&out, "%s[%.*s,%.*s]", i ? "," : "", (int)e[i].key.len, (const char *)e[i].key.ptr,
                            (int)e[i].value.len, (const char *)e[i].value.ptr);
        }
        weir_buf_puts(&out, "]}");
        weir_emit(ctx, weir_buf_bytes(&out));
    } else if (!strcmp(w, "timer")) {
        weir_register_timer(ctx, WEIR_EVENT_TIME, x);
    } else if (!strcmp(w, "ptimer")) {
        weir_register_timer(ctx, WEIR_PROCESSING_TIME, x);
    } else if (!strcmp(w, "untimer")) {
        weir_delete_timer(ctx, WEIR_EVENT_TIME, x);
    } else if (!strcmp(w, "err")) {
        weir_emit(ctx, WEIR_STR("{\"before\":true}"));
        weir_record_error(ctx, "bad x %lld", (long long)x);
    } else if (!strcmp(w, "side")) {
        weir_emit_side(ctx, "late", r->value);
    } else if (!strcmp(w, "record")) {
        weir_record out_rec = {true, WEIR_STR("other"), WEIR_STR("{}"), true, 42};
        weir_emit_record(ctx, &out_rec);
        weir_record no_key = {false, {0}, WEIR_STR("1"), false, 0};
        weir_emit_record(ctx, &no_key);
    } else if (!strcmp(w, "clock")) {
        int64_t ts = -1;
        bool has = weir_timestamp(ctx, &ts);
        weir_buf_printf(&out, "{\"wm\":%lld,\"pt\":%lld,\"has_ts\":%s,\"ts\":%lld}",
                        (long long)weir_current_watermark(ctx), (long long)weir_current_processing_time(ctx),
                        has ? "true" : "false", (long long)ts);
        weir_emit(ctx, weir_buf_bytes(&out));
    } else if (!strcmp(w, "total")) {
        emit_printf(ctx, "{\"total\":%lld}", (long long)total);
    } else if (!strcmp(w, "log")) {
        weir_log(WEIR_INFO, "log line from test %lld", (long long)x);
    } else {
        weir_record_error(ctx, "unknown do");
    }
    weir_buf_free(&what);
    weir_buf_free(&out);
}

void weir_on_timer(weir_context *ctx, int64_t ts, weir_time_domain domain) {
    weir_buf out = {0};
    weir_bytes key = weir_key(ctx);
    weir_bytes v;
    weir_buf_printf(&out, "{\"fired\":%lld,\"domain\":%d,\"key\":", (long long)ts, (int)domain);
    weir_buf_json_string(&out, key);
    weir_buf_puts(&out, ",\"v\":");
    if (weir_value_get(ctx, "v", &v)) weir_buf_append(&out, v.ptr, v.len);
    else weir_buf_puts(&out, "null");
    weir_buf_puts(&out, "}");
    weir_emit(ctx, weir_buf_bytes(&out));
    if (ts == 7) weir_register_timer(ctx, WEIR_EVENT_TIME, 8); /* a timer from a timer */
    if (ts == 99) weir_record_error(ctx, "timer 99 fails");
    weir_buf_free(&out);
}

bool weir_snapshot(uint64_t checkpoint_id, weir_items *items) {
    if (refuse_snapshot) {
        weir_set_error("declined checkpoint %llu", (unsigned long long)checkpoint_id);
        return false;
    }
    weir_buf b = {0};
    weir_buf_printf(&b, "{\"total\":%lld}", (long long)(total / 2));
    weir_items_add(items, weir_buf_bytes(&b));
    weir_buf_reset(&b);
    weir_buf_printf(&b, "{\"total\":%lld}", (long long)(total - total / 2));
    weir_items_add(items, weir_buf_bytes(&b));
    weir_buf_free(&b);
    return true;
}

bool weir_restore(const weir_bytes *items, size_t n) {
    for (size_t i = 0; i < n; i++) {
        weir_bytes t;
        int64_t v;
        if (!weir_json_field(items[i], "total", &t) || !weir_json_int(t, &v)) return false; /* default message */
        total += v;
    }
    return true;
}

/* ---- tests ---------------------------------------------------------------- */

WEIR_TEST(open_reads_config_and_rejects_unknown_fields) {
    WEIR_CHECK(weir_test_open("{\"factor\": 3}"));
    WEIR_CHECK_EQ_INT(factor, 3);
    WEIR_CHECK(!weir_test_open("{\"factor\": 3, \"nope\": 1}"));
    WEIR_CHECK(strstr(weir_test_error(), "nope") != NULL);
    WEIR_CHECK(!weir_test_open("{\"factor\": 1.5}"));
    WEIR_CHECK_EQ_STR(weir_test_error(), "factor must be an integer");
    WEIR_CHECK(weir_test_open(NULL));
    WEIR_CHECK_EQ_INT(factor, 1);
    WEIR_CHECK(weir_test_close());
}

WEIR_TEST(map_keeps_key_and_timestamp) {
    WEIR_CHECK(weir_test_open("{\"factor\": 10}"));
    WEIR_CHECK_EQ_INT(weir_test_process_at("a", "{\"do\":\"map\",\"x\":4}", 1234), 1);
    const weir_output *o = weir_test_output(0);
    WEIR_CHECK_EQ_INT(o->kind, WEIR_TEST_EMIT);
    WEIR_CHECK(o->has_key);
    WEIR_CHECK_EQ_BYTES(o->key, "a");
    WEIR_CHECK(o->has_timestamp);
    WEIR_CHECK_EQ_INT(o->timestamp, 1234);
    WEIR_CHECK_JSON_EQ(o->value, "{\"y\": 40}");
    WEIR_CHECK_EQ_INT(weir_test_process(NULL, "{\"do\":\"map\",\"x\":1}"), 1);
    WEIR_CHECK(!weir_test_output(0)->has_key);
    WEIR_CHECK(!weir_test_output(0)->has_timestamp);
    WEIR_CHECK_EQ_INT(weir_test_output(5)->kind, WEIR_TEST_NONE);
}

WEIR_TEST(filter_and_flat_map) {
    WEIR_CHECK(weir_test_open("{}"));
    WEIR_CHECK_EQ_INT(weir_test_process("a", "{\"do\":\"filter\",\"x\":-1}"), 0);
    WEIR_CHECK_EQ_INT(weir_test_process("a", "{\"do\":\"filter\",\"x\":2}"), 1);
    WEIR_CHECK_EQ_BYTES(weir_test_output(0)->value, "{\"do\":\"filter\",\"x\":2}");
    WEIR_CHECK_EQ_INT(weir_test_process("a", "{\"do\":\"flat\",\"x\":3}"), 3);
    for (int i = 0; i < 3; i++) {
        char want[32];
        snprintf(want, sizeof want, "{\"i\":%d}", i);
        WEIR_CHECK_JSON_EQ(weir_test_output((size_t)i)->value, want);
    }
}

WEIR_TEST(batch_outputs_in_order_and_errors_per_record) {
    WEIR_CHECK(weir_test_open("{}"));
    weir_record batch[] = {
        {true, WEIR_STR("a"), WEIR_STR("{\"do\":\"flat\",\"x\":2}"), false, 0},
        {true, WEIR_STR("a"), WEIR_STR("not json"), false, 0},
        {true, WEIR_STR("b"), WEIR_STR("{\"do\":\"err\",\"x\":5}"), true, 9},
        {true, WEIR_STR("b"), WEIR_STR("{\"do\":\"side\"}"), true, 10},
        {true, WEIR_STR("a"), WEIR_STR("{\"do\":\"record\"}"), false, 0},
    };
    WEIR_CHECK_EQ_INT(weir_test_process_batch(batch, 5), 8);
    WEIR_CHECK_JSON_EQ(weir_test_output(1)->value, "{\"i\":1}");
    WEIR_CHECK_EQ_INT(weir_test_output(2)->kind, WEIR_TEST_ERROR);
    WEIR_CHECK_EQ_INT(weir_test_output(2)->input, 1);
    WEIR_CHECK_EQ_INT(weir_test_output(3)->kind, WEIR_TEST_EMIT);
    WEIR_CHECK_EQ_INT(weir_test_output(4)->kind, WEIR_TEST_ERROR);
    WEIR_CHECK_EQ_INT(weir_test_output(4)->input, 2);
    WEIR_CHECK_EQ_STR(weir_test_output(4)->message, "bad x 5");
    WEIR_CHECK_EQ_INT(weir_test_output(5)->kind, WEIR_TEST_SIDE);
    WEIR_CHECK_EQ_STR(weir_test_output(5)->side, "late");
    WEIR_CHECK_EQ_BYTES(weir_test_output(5)->key, "b");
    WEIR_CHECK_EQ_INT(weir_test_output(5)->timestamp, 10);
    WEIR_CHECK_EQ_BYTES(weir_test_output(6)->key, "other");
    WEIR_CHECK_EQ_INT(weir_test_output(6)->timestamp, 42);
    WEIR_CHECK(!weir_test_output(7)->has_key);
    WEIR_CHECK(!weir_test_output(7)->has_timestamp);
}

WEIR_TEST(value_state_per_key) {
    WEIR_CHECK(weir_test_open("{}"));
    weir_test_process("a", "{\"do\":\"value\",\"x\":1}");
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "{\"prev\":null}");
    weir_test_process("a", "{\"do\":\"value\",\"x\":2}");
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "{\"prev\":1}");
    weir_test_process("b", "{\"do\":\"value\",\"x\":7}");
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "{\"prev\":null}");
    weir_bytes v;
    WEIR_CHECK(weir_test_value("a", "v", &v));
    WEIR_CHECK_EQ_BYTES(v, "2");
    weir_test_process("a", "{\"do\":\"value\",\"x\":-1}");
    WEIR_CHECK(!weir_test_value("a", "v", &v));
    WEIR_CHECK(weir_test_value("b", "v", &v));
    WEIR_CHECK(!weir_test_value("zz", "v", &v));
}

WEIR_TEST(typed_value_state_is_decoded_once_per_call_and_written_at_its_end) {
    WEIR_CHECK(weir_test_open("{}"));
    last_tally = NULL;
    weir_record batch[] = {
        {true, WEIR_STR("a"), WEIR_STR("{\"do\":\"tally\",\"x\":1.5}"), false, 0},
        {true, WEIR_STR("a"), WEIR_STR("{\"do\":\"tally\",\"x\":2}"), false, 0},
        {true, WEIR_STR("b"), WEIR_STR("{\"do\":\"tally\",\"x\":10}"), false, 0},
    };
    WEIR_CHECK_EQ_INT(weir_test_process_batch(batch, 3), 3);
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "{\"count\":1,\"found\":false,\"same\":false}");
    /* the same decoded value for key a again within the call; found, as
     * writing through would say (found in review: it said not found) */
    WEIR_CHECK_JSON_EQ(weir_test_output(1)->value, "{\"count\":2,\"found\":true,\"same\":true}");
    WEIR_CHECK_JSON_EQ(weir_test_output(2)->value, "{\"count\":1,\"found\":false,\"same\":false}");
    weir_bytes v;
    WEIR_CHECK(weir_test_value("a", "t", &v));
    WEIR_CHECK_JSON_EQ(v, "{\"count\":2,\"sum\":3.5}");
    WEIR_CHECK(weir_test_value("b", "t", &v));
    WEIR_CHECK_JSON_EQ(v, "{\"count\":1,\"sum\":10.0}");
    /* the next call decodes what was written */
    WEIR_CHECK_EQ_INT(weir_test_process("a", "{\"do\":\"tally\",\"x\":0.5}"), 1);
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "{\"count\":3,\"found\":true,\"same\":false}");
    /* the byte functions see the cached value written back first */
    weir_record mixed[] = {
        {true, WEIR_STR("a"), WEIR_STR("{\"do\":\"tally\",\"x\":1}"), false, 0},
        {true, WEIR_STR("a"), WEIR_STR("{\"do\":\"tbytes\"}"), false, 0},
    };
    WEIR_CHECK_EQ_INT(weir_test_process_batch(mixed, 2), 2);
    WEIR_CHECK_JSON_EQ(weir_test_output(1)->value, "{\"count\":4,\"sum\":5.0}");
}

WEIR_TEST(a_typed_value_that_cannot_be_stored_is_an_error_of_its_last_record) {
    WEIR_CHECK(weir_test_open("{}"));
    weir_test_process("a", "{\"do\":\"tally\",\"x\":1}");
    weir_record batch[] = {
        {true, WEIR_STR("a"), WEIR_STR("{\"do\":\"tally\",\"x\":1e308}"), false, 0},
        {true, WEIR_STR("a"), WEIR_STR("{\"do\":\"tally\",\"x\":1e308}"), false, 0},
    };
    WEIR_CHECK_EQ_INT(weir_test_process_batch(batch, 2), 3);
    const weir_output *e = weir_test_output(2);
    WEIR_CHECK_EQ_INT(e->kind, WEIR_TEST_ERROR);
    WEIR_CHECK_EQ_INT(e->input, 1);
    WEIR_CHECK(strstr(e->message, "value state `t` cannot be stored") != NULL);
    weir_bytes v;
    WEIR_CHECK(weir_test_value("a", "t", &v));
    WEIR_CHECK_JSON_EQ(v, "{\"count\":1,\"sum\":1.0}");
}

WEIR_TEST(list_state_keeps_order) {
    WEIR_CHECK(weir_test_open("{}"));
    weir_record batch[] = {
        {true, WEIR_STR("a"), WEIR_STR("{\"do\":\"list\",\"x\":1}"), false, 0},
        {true, WEIR_STR("b"), WEIR_STR("{\"do\":\"list\",\"x\":9}"), false, 0},
        {true, WEIR_STR("a"), WEIR_STR("{\"do\":\"list\",\"x\":2}"), false, 0},
    };
    WEIR_CHECK_EQ_INT(weir_test_process_batch(batch, 3), 3);
    WEIR_CHECK_JSON_EQ(weir_test_output(2)->value, "[1,2]");
    WEIR_CHECK_JSON_EQ(weir_test_output(1)->value, "[9]");
    const weir_bytes *items;
    WEIR_CHECK_EQ_INT(weir_test_list("a", "l", &items), 2);
    WEIR_CHECK_EQ_BYTES(items[1], "2");
    weir_test_process("a", "{\"do\":\"list\",\"x\":-1}");
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "[]");
    WEIR_CHECK_EQ_INT(weir_test_list("a", "l", &items), 0);
}

WEIR_TEST(map_state_sorted_by_key_bytes) {
    WEIR_CHECK(weir_test_open("{}"));
    weir_test_process("a", "{\"do\":\"mput\",\"k\":\"b\",\"x\":2}");
    weir_test_process("a", "{\"do\":\"mput\",\"k\":\"a\",\"x\":1}");
    weir_test_process("a", "{\"do\":\"mput\",\"k\":\"ab\",\"x\":3}");
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value,
                       "{\"got\":3,\"entries\":[[\"a\",1],[\"ab\",3],[\"b\",2]]}");
    weir_test_process("a", "{\"do\":\"mput\",\"k\":\"a\",\"x\":10}");
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value,
                       "{\"got\":10,\"entries\":[[\"a\",10],[\"ab\",3],[\"b\",2]]}");
    weir_test_process("a", "{\"do\":\"mdel\",\"k\":\"ab\"}");
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "{\"got\":null,\"entries\":[[\"a\",10],[\"b\",2]]}");
    weir_bytes v;
    WEIR_CHECK(weir_test_map_get("a", "m", WEIR_STR("\"b\""), &v));
    WEIR_CHECK_EQ_BYTES(v, "2");
    const weir_entry *e;
    WEIR_CHECK_EQ_INT(weir_test_map_entries("a", "m", &e), 2);
    WEIR_CHECK_EQ_BYTES(e[0].key, "\"a\"");
    weir_test_process("a", "{\"do\":\"mclear\",\"k\":\"a\"}");
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "{\"got\":null,\"entries\":[]}");
    WEIR_CHECK_EQ_INT(weir_test_map_entries("a", "m", &e), 0);
}

WEIR_TEST(event_time_timers_fire_in_order_and_dedup) {
    WEIR_CHECK(weir_test_open("{}"));
    weir_test_process("b", "{\"do\":\"value\",\"x\":5}");
    weir_record batch[] = {
        {true, WEIR_STR("b"), WEIR_STR("{\"do\":\"timer\",\"x\":20}"), false, 0},
        {true, WEIR_STR("a"), WEIR_STR("{\"do\":\"timer\",\"x\":20}"), false, 0},
        {true, WEIR_STR("a"), WEIR_STR("{\"do\":\"timer\",\"x\":10}"), false, 0},
        {true, WEIR_STR("a"), WEIR_STR("{\"do\":\"timer\",\"x\":10}"), false, 0},
        {true, WEIR_STR("a"), WEIR_STR("{\"do\":\"timer\",\"x\":30}"), false, 0},
        {true, WEIR_STR("a"), WEIR_STR("{\"do\":\"untimer\",\"x\":30}"), false, 0},
        {true, WEIR_STR("c"), WEIR_STR("{\"do\":\"timer\",\"x\":7}"), false, 0},
    };
    weir_test_process_batch(batch, 7);
    WEIR_CHECK_EQ_INT(weir_test_timer_count(), 4);
    WEIR_CHECK(weir_test_has_timer("a", WEIR_EVENT_TIME, 10));
    WEIR_CHECK(!weir_test_has_timer("a", WEIR_EVENT_TIME, 30));
    WEIR_CHECK(!weir_test_has_timer("a", WEIR_PROCESSING_TIME, 10));
    WEIR_CHECK_EQ_INT(weir_test_watermark(5), 0);
    /* 7 (c) registers 8 (c), which fires in the same advance */
    WEIR_CHECK_EQ_INT(weir_test_watermark(20), 5);
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "{\"fired\":7,\"domain\":0,\"key\":\"c\",\"v\":null}");
    WEIR_CHECK_JSON_EQ(weir_test_output(1)->value, "{\"fired\":8,\"domain\":0,\"key\":\"c\",\"v\":null}");
    WEIR_CHECK_JSON_EQ(weir_test_output(2)->value, "{\"fired\":10,\"domain\":0,\"key\":\"a\",\"v\":null}");
    WEIR_CHECK_JSON_EQ(weir_test_output(3)->value, "{\"fired\":20,\"domain\":0,\"key\":\"a\",\"v\":null}");
    WEIR_CHECK_JSON_EQ(weir_test_output(4)->value, "{\"fired\":20,\"domain\":0,\"key\":\"b\",\"v\":5}");
    WEIR_CHECK_EQ_BYTES(weir_test_output(4)->key, "b");
    WEIR_CHECK_EQ_INT(weir_test_output(4)->timestamp, 20);
    WEIR_CHECK_EQ_INT(weir_test_timer_count(), 0);
    WEIR_CHECK_EQ_INT(weir_test_watermark(10), 0); /* never backwards */
    weir_test_process("a", "{\"do\":\"clock\"}");
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "{\"wm\":20,\"pt\":0,\"has_ts\":false,\"ts\":-1}");
}

WEIR_TEST(processing_time_timers_and_timer_errors) {
    WEIR_CHECK(weir_test_open("{}"));
    weir_test_process("a", "{\"do\":\"ptimer\",\"x\":100}");
    weir_test_process("a", "{\"do\":\"timer\",\"x\":99}");
    WEIR_CHECK_EQ_INT(weir_test_watermark(50), 0);
    WEIR_CHECK_EQ_INT(weir_test_processing_time(100), 1);
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "{\"fired\":100,\"domain\":1,\"key\":\"a\",\"v\":null}");
    WEIR_CHECK_EQ_INT(weir_test_watermark(100), 2);
    WEIR_CHECK_EQ_INT(weir_test_output(1)->kind, WEIR_TEST_ERROR);
    WEIR_CHECK_EQ_INT(weir_test_output(1)->input, 0);
    WEIR_CHECK_EQ_STR(weir_test_output(1)->message, "timer 99 fails");
    weir_test_process_at("a", "{\"do\":\"clock\"}", 77);
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "{\"wm\":100,\"pt\":100,\"has_ts\":true,\"ts\":77}");
}

WEIR_TEST(snapshot_and_restore_keep_operator_and_keyed_state) {
    WEIR_CHECK(weir_test_open("{}"));
    weir_test_process("a", "{\"do\":\"value\",\"x\":1}");
    weir_test_process("a", "{\"do\":\"timer\",\"x\":50}");
    weir_test_process("b", "{\"do\":\"total\"}");
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "{\"total\":3}");
    WEIR_CHECK(weir_test_checkpoint(1));
    const weir_bytes *items;
    WEIR_CHECK_EQ_INT(weir_test_checkpoint_items(&items), 2);
    WEIR_CHECK_JSON_EQ(items[0], "{\"total\":1}");
    WEIR_CHECK_JSON_EQ(items[1], "{\"total\":2}");
    /* after the checkpoint: lost on restore */
    weir_test_process("a", "{\"do\":\"value\",\"x\":2}");
    weir_test_process("a", "{\"do\":\"timer\",\"x\":60}");
    WEIR_CHECK(weir_test_restore());
    weir_test_process("b", "{\"do\":\"total\"}");
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "{\"total\":4}");
    weir_bytes v;
    WEIR_CHECK(weir_test_value("a", "v", &v));
    WEIR_CHECK_EQ_BYTES(v, "1");
    WEIR_CHECK(!weir_test_has_timer("a", WEIR_EVENT_TIME, 60));
    WEIR_CHECK_EQ_INT(weir_test_watermark(100), 1);
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value, "{\"fired\":50,\"domain\":0,\"key\":\"a\",\"v\":1}");
}

WEIR_TEST(snapshot_and_restore_errors) {
    WEIR_CHECK(!weir_test_restore());
    WEIR_CHECK_EQ_STR(weir_test_error(), "no checkpoint to restore");
    WEIR_CHECK(weir_test_open("{\"refuse_snapshot\": true}"));
    WEIR_CHECK(!weir_test_checkpoint(7));
    WEIR_CHECK_EQ_STR(weir_test_error(), "declined checkpoint 7");
}

WEIR_TEST(restore_failure_has_a_default_message) {
    WEIR_CHECK(weir_test_open("{}"));
    WEIR_CHECK(weir_test_checkpoint(1));
    total = -1000; /* any value: open resets it */
    WEIR_CHECK(weir_test_restore());
}

WEIR_TEST(logging_goes_to_stderr) {
    WEIR_CHECK(weir_test_open("{}"));
    WEIR_CHECK_EQ_INT(weir_test_process("a", "{\"do\":\"log\",\"x\":1}"), 0);
    weir_log(WEIR_DEBUG, "bad utf-8 is fine natively: %s", "\xff");
}
