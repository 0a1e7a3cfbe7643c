/* Unit tests of the C NAB detector, on the host (no Wasm):
 * `weir udf test udfs/nab-zscore-c`. */
#include "weir.h"
#include "weir_testing.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void reading(char *buf, size_t size, const char *ts, const char *value) {
    snprintf(buf, size, "{\"timestamp\":\"%s\",\"value\":%s}", ts, value);
}

WEIR_TEST(flags_a_reading_far_from_the_mean_after_warmup) {
    WEIR_CHECK(weir_test_open("{\"warmup\": 3, \"threshold\": 2.0}"));
    const char *values[] = {"1.0", "2.0", "1.0", "2", "50"};
    weir_record batch[5];
    char text[5][64];
    for (int i = 0; i < 5; i++) {
        char ts[16];
        snprintf(ts, sizeof ts, "t%d", i);
        reading(text[i], sizeof text[i], ts, values[i]);
        batch[i] = (weir_record){true, WEIR_STR("s"), weir_str(text[i]), true, 100 + i};
    }
    WEIR_CHECK_EQ_INT(weir_test_process_batch(batch, 5), 1);
    const weir_output *o = weir_test_output(0);
    WEIR_CHECK_EQ_INT(o->kind, WEIR_TEST_EMIT);
    WEIR_CHECK_EQ_BYTES(o->key, "s");
    WEIR_CHECK_EQ_INT(o->timestamp, 104);
    double mean = 1.5, std = sqrt((0.25 * 4) / 3);
    char want[160];
    snprintf(want, sizeof want, "{\"series\":\"s\",\"timestamp\":\"t4\",\"value\":50,\"z\":%.17g}", (50.0 - mean) / std);
    WEIR_CHECK_JSON_EQ(o->value, want);
    /* the Rust UDF's field order */
    WEIR_CHECK(o->value.len > 30 && memcmp(o->value.ptr, "{\"series\":\"s\",\"timestamp\":\"t4\",\"value\":50.0,\"z\":", 46) == 0);
    weir_bytes state;
    WEIR_CHECK(weir_test_value("s", "welford", &state));
    WEIR_CHECK_JSON_EQ(state, "{\"n\":5,\"mean\":11.2,\"m2\":1882.8}");
}

WEIR_TEST(z_scores_are_those_of_the_rust_and_python_udfs) {
    /* expected texts: Python's repr of the Python UDF's arithmetic, which is
     * the Rust UDF's (same operations, same order) */
    WEIR_CHECK(weir_test_open("{\"warmup\": 3, \"threshold\": 2}"));
    const char *values[] = {"10.0", "12.5", "11.0", "9.75", "10.25", "11.5", "10.0", "30.0", "10.5", "-5.0", "10.1", "10.2"};
    const char *alerts[12] = {0};
    alerts[7] = "{\"series\":\"cpu\",\"timestamp\":\"r7\",\"value\":30.0,\"z\":19.200189632439002}";
    alerts[9] = "{\"series\":\"cpu\",\"timestamp\":\"r9\",\"value\":-5.0,\"z\":-2.745112972953094}";
    for (int i = 0; i < 12; i++) {
        char text[64], ts[16];
        snprintf(ts, sizeof ts, "r%d", i);
        reading(text, sizeof text, ts, values[i]);
        size_t n = weir_test_process("cpu", text);
        WEIR_CHECK_EQ_INT(n, alerts[i] ? 1 : 0);
        if (alerts[i]) WEIR_CHECK_EQ_BYTES(weir_test_output(0)->value, alerts[i]);
    }
    weir_bytes state;
    WEIR_CHECK(weir_test_value("cpu", "welford", &state));
    WEIR_CHECK_EQ_BYTES(state, "{\"n\":12,\"mean\":10.9,\"m2\":625.205}");
}

WEIR_TEST(a_bad_reading_is_a_per_record_error_and_the_rest_go_on) {
    WEIR_CHECK(weir_test_open(NULL));
    weir_record batch[] = {
        {true, WEIR_STR("s"), WEIR_STR("{\"timestamp\":\"a\",\"value\":\"x\"}"), false, 0},
        {true, WEIR_STR("s"), WEIR_STR("{\"timestamp\":\"b\",\"value\":1}"), false, 0},
        {true, WEIR_STR("s"), WEIR_STR("{\"timestamp\":5,\"value\":1}"), false, 0},
        {true, WEIR_STR("s"), WEIR_STR("{\"value\":1}"), false, 0},
        {true, WEIR_STR("s"), WEIR_STR("not json"), false, 0},
        {true, WEIR_STR("s"), WEIR_STR("{\"timestamp\":\"c\",\"value\":true}"), false, 0},
        {false, {0}, WEIR_STR("{\"timestamp\":\"d\",\"value\":1}"), false, 0},
    };
    WEIR_CHECK_EQ_INT(weir_test_process_batch(batch, 7), 6);
    WEIR_CHECK_EQ_INT(weir_test_output(0)->kind, WEIR_TEST_ERROR);
    WEIR_CHECK_EQ_INT(weir_test_output(0)->input, 0);
    WEIR_CHECK(strstr(weir_test_output(0)->message, "must be a number") != NULL);
    WEIR_CHECK(strstr(weir_test_output(1)->message, "must be text") != NULL);
    WEIR_CHECK_EQ_INT(weir_test_output(1)->input, 2);
    WEIR_CHECK_EQ_INT(weir_test_output(2)->input, 3);
    WEIR_CHECK_EQ_INT(weir_test_output(3)->input, 4);
    WEIR_CHECK_EQ_INT(weir_test_output(4)->input, 5);
    WEIR_CHECK_EQ_INT(weir_test_output(5)->input, 6);
    weir_bytes state;
    WEIR_CHECK(weir_test_value("s", "welford", &state));
    WEIR_CHECK_JSON_EQ(state, "{\"n\":1,\"mean\":1.0,\"m2\":0.0}");
}

WEIR_TEST(event_time_waits_for_the_watermark_and_sends_late_readings_aside) {
    WEIR_CHECK(weir_test_open("{\"warmup\": 2, \"threshold\": 1.0, \"event_time\": true}"));
    WEIR_CHECK_EQ_INT(weir_test_process_at("s", "{\"timestamp\":\"b\",\"value\":1.0}", 20), 0);
    WEIR_CHECK_EQ_INT(weir_test_process_at("s", "{\"timestamp\":\"a\",\"value\":3.0}", 10), 0);
    WEIR_CHECK_EQ_INT(weir_test_process_at("s", "{\"timestamp\":\"a2\",\"value\":4}", 10), 0);
    WEIR_CHECK_EQ_INT(weir_test_timer_count(), 2);
    WEIR_CHECK(weir_test_has_timer("s", WEIR_EVENT_TIME, 10));
    WEIR_CHECK(weir_test_has_timer("s", WEIR_EVENT_TIME, 20));
    weir_bytes v;
    WEIR_CHECK(weir_test_map_get("s", "pending", WEIR_STR("10"), &v));
    WEIR_CHECK_JSON_EQ(v, "[{\"timestamp\":\"a\",\"value\":3.0},{\"timestamp\":\"a2\",\"value\":4.0}]");
    WEIR_CHECK_EQ_INT(weir_test_process("s", "{\"timestamp\":\"x\",\"value\":1}"), 1);
    WEIR_CHECK(strstr(weir_test_output(0)->message, "event_time needs record timestamps") != NULL);
    WEIR_CHECK_EQ_INT(weir_test_watermark(15), 0);
    WEIR_CHECK(weir_test_value("s", "welford", &v));
    WEIR_CHECK_JSON_EQ(v, "{\"n\":2,\"mean\":3.5,\"m2\":0.5}");
    const weir_entry *e;
    WEIR_CHECK_EQ_INT(weir_test_map_entries("s", "pending", &e), 1);
    WEIR_CHECK_EQ_BYTES(e[0].key, "20");
    WEIR_CHECK_JSON_EQ(e[0].value, "[{\"timestamp\":\"b\",\"value\":1.0}]");
    WEIR_CHECK_EQ_INT(weir_test_process_at("s", "{\"timestamp\":\"c\",\"value\":9.0}", 12), 1);
    const weir_output *late = weir_test_output(0);
    WEIR_CHECK_EQ_INT(late->kind, WEIR_TEST_SIDE);
    WEIR_CHECK_EQ_STR(late->side, "late");
    WEIR_CHECK_EQ_INT(late->timestamp, 12);
    WEIR_CHECK_JSON_EQ(late->value, "{\"timestamp\":\"c\",\"value\":9.0}");
    /* 1.0 against mean 3.5, std 0.7071...: z = -3.53..., an alert stamped 20 */
    WEIR_CHECK_EQ_INT(weir_test_watermark(30), 1);
    WEIR_CHECK_EQ_INT(weir_test_output(0)->timestamp, 20);
    WEIR_CHECK_JSON_EQ(weir_test_output(0)->value,
                       "{\"series\":\"s\",\"timestamp\":\"b\",\"value\":1.0,\"z\":-3.5355339059327373}");
    WEIR_CHECK_EQ_INT(weir_test_map_entries("s", "pending", &e), 0);
    WEIR_CHECK(weir_test_value("s", "welford", &v));
    WEIR_CHECK(memcmp(v.ptr, "{\"n\":3,", 7) == 0);
}

WEIR_TEST(a_series_key_that_is_not_utf8_is_an_error) {
    WEIR_CHECK(weir_test_open("{\"warmup\": 2, \"threshold\": 1}"));
    weir_record r[] = {
        {true, WEIR_STR("\xff"), WEIR_STR("{\"timestamp\":\"a\",\"value\":1}"), false, 0},
        {true, WEIR_STR("\xff"), WEIR_STR("{\"timestamp\":\"b\",\"value\":2}"), false, 0},
        {true, WEIR_STR("\xff"), WEIR_STR("{\"timestamp\":\"c\",\"value\":100}"), false, 0},
    };
    WEIR_CHECK_EQ_INT(weir_test_process_batch(r, 3), 1);
    WEIR_CHECK_EQ_STR(weir_test_output(0)->message, "series key is not UTF-8");
    weir_bytes v;
    WEIR_CHECK(weir_test_value("\xff", "welford", &v));
    WEIR_CHECK(memcmp(v.ptr, "{\"n\":2,", 7) == 0); /* not updated, as in Rust */
}

WEIR_TEST(config_is_checked) {
    WEIR_CHECK(!weir_test_open("{\"threshold\": 0}"));
    WEIR_CHECK(strstr(weir_test_error(), "threshold must be > 0") != NULL);
    WEIR_CHECK(!weir_test_open("{\"threshold\": -1.5}"));
    WEIR_CHECK(!weir_test_open("{\"treshold\": 3}"));
    WEIR_CHECK(strstr(weir_test_error(), "unknown field") != NULL);
    WEIR_CHECK(!weir_test_open("{\"warmup\": -1}"));
    WEIR_CHECK(!weir_test_open("{\"warmup\": 1.5}"));
    WEIR_CHECK(!weir_test_open("{\"event_time\": 1}"));
    WEIR_CHECK(!weir_test_open("[]"));
    WEIR_CHECK(weir_test_open("{\"warmup\": 0, \"threshold\": 3, \"event_time\": false}"));
    WEIR_CHECK(weir_test_open("{}"));
}
