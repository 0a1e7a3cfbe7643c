/* Tests of the JSON reader and writer (weir_json.h). */
#include "weir_json.h"
#include "weir_testing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool valid(const char *s) { return weir_json_valid(weir_str(s)); }

WEIR_TEST(json_valid_documents) {
    const char *ok[] = {"0", "-0", "1.5e+3", "-12.25E-2", "\"\"", "true", "false", "null", " [ ] ", "{}",
                        "[1,[2,{\"a\":[null]}]]", "{\"a\":1,\"a\":2}", "\"\\u00e9\\/\\b\\f\\n\\r\\t\\\\\\\"\"",
                        "\"\\ud83d\\ude00\"", "\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", "\t\r\n 1 \n"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!valid(ok[i])) weir_test__fail(__FILE__, __LINE__, "should be valid: %s", ok[i]);
}

WEIR_TEST(json_invalid_documents) {
    const char *bad[] = {"", " ", "01", "1.", ".5", "+1", "1e", "--1", "0x10", "NaN", "Infinity", "tru",
                         "nul", "[1,]", "[1 2]", "{\"a\"}", "{\"a\":}", "{a:1}", "{\"a\":1,}", "[", "]", "1 2",
                         "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud83d\"", "\"\\ude00\"", "\"\\ud83d\\u0041\"",
                         "\"tab\there\"", "\"\xff\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"",
                         "\"\xe2\x82\"", "'a'", "{\"a\":1}}", "[]x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (valid(bad[i])) weir_test__fail(__FILE__, __LINE__, "should be invalid: %s", bad[i]);
    weir_bytes nul = {(const uint8_t *)"[1]\0", 4};
    WEIR_CHECK(!weir_json_valid(nul));
}

WEIR_TEST(json_depth_limit) {
    size_t n = 100000;
    char *deep = malloc(2 * n + 1);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = 0;
    WEIR_CHECK(!valid(deep)); /* no stack overflow */
    size_t pos = 0;
    weir_bytes item;
    WEIR_CHECK(!weir_json_array_next(weir_str(deep), &pos, &item));
    WEIR_CHECK(!weir_json_equal(weir_str(deep), weir_str(deep)));
    /* exactly the limit is fine, one more is not */
    char ok[2 * WEIR_JSON_MAX_DEPTH + 1];
    memset(ok, '[', WEIR_JSON_MAX_DEPTH);
    memset(ok + WEIR_JSON_MAX_DEPTH, ']', WEIR_JSON_MAX_DEPTH);
    ok[2 * WEIR_JSON_MAX_DEPTH] = 0;
    WEIR_CHECK(valid(ok));
    char over[2 * WEIR_JSON_MAX_DEPTH + 3];
    memset(over, '[', WEIR_JSON_MAX_DEPTH + 1);
    memset(over + WEIR_JSON_MAX_DEPTH + 1, ']', WEIR_JSON_MAX_DEPTH + 1);
    over[2 * WEIR_JSON_MAX_DEPTH + 2] = 0;
    WEIR_CHECK(!valid(over));
    free(deep);
}

WEIR_TEST(json_fields_and_scalars) {
    weir_bytes doc = WEIR_STR(" {\"a\": 1, \"b\" : [true, false, null], \"c\\u0064\": \"x\", \"e\": -9223372036854775808,"
                              " \"f\": 9223372036854775808, \"g\": 2.5e-3, \"h\": 1e400, \"i\": 10.0} ");
    weir_bytes v;
    int64_t i;
    double d;
    bool b;
    WEIR_CHECK(weir_json_valid(doc));
    WEIR_CHECK_EQ_INT(weir_json_type(doc), WEIR_JSON_OBJECT);
    WEIR_CHECK(weir_json_field(doc, "a", &v) && weir_json_int(v, &i) && i == 1);
    WEIR_CHECK_EQ_BYTES(v, "1");
    WEIR_CHECK(weir_json_field(doc, "cd", &v)); /* escaped name */
    WEIR_CHECK_EQ_BYTES(v, "\"x\"");
    WEIR_CHECK(!weir_json_field(doc, "zz", &v));
    WEIR_CHECK(weir_json_field(doc, "e", &v) && weir_json_int(v, &i) && i == INT64_MIN);
    WEIR_CHECK(weir_json_field(doc, "f", &v) && !weir_json_int(v, &i));
    WEIR_CHECK(weir_json_number(v, &d) && d == 9223372036854775808.0);
    WEIR_CHECK(weir_json_field(doc, "g", &v) && weir_json_number(v, &d) && d == 2.5e-3);
    WEIR_CHECK(!weir_json_int(v, &i));
    WEIR_CHECK(weir_json_field(doc, "h", &v) && !weir_json_number(v, &d));
    WEIR_CHECK(weir_json_field(doc, "i", &v) && !weir_json_int(v, &i));
    WEIR_CHECK(weir_json_field(doc, "b", &v));
    WEIR_CHECK_EQ_INT(weir_json_type(v), WEIR_JSON_ARRAY);
    size_t pos = 0, n = 0;
    weir_bytes item;
    while (weir_json_array_next(v, &pos, &item)) {
        if (n == 0) WEIR_CHECK(weir_json_bool(item, &b) && b);
        if (n == 1) WEIR_CHECK(weir_json_bool(item, &b) && !b);
        if (n == 2) WEIR_CHECK(weir_json_is_null(item) && !weir_json_bool(item, &b));
        n++;
    }
    WEIR_CHECK_EQ_INT(n, 3);
    WEIR_CHECK(!weir_json_array_next(v, &pos, &item)); /* stays at the end */
    WEIR_CHECK(!weir_json_field(WEIR_STR("{\"a\":1"), "a", &v)); /* invalid object */
    WEIR_CHECK(!weir_json_field(WEIR_STR("[1]"), "a", &v));
    WEIR_CHECK(!weir_json_number(WEIR_STR("\"1\""), &d));
    WEIR_CHECK(!weir_json_int(WEIR_STR("-"), &i));
    WEIR_CHECK(weir_json_int(WEIR_STR("-0"), &i) && i == 0);
    WEIR_CHECK(weir_json_int(WEIR_STR("9223372036854775807"), &i) && i == INT64_MAX);
    WEIR_CHECK_EQ_INT(weir_json_type(WEIR_STR("-1")), WEIR_JSON_NUMBER);
    WEIR_CHECK_EQ_INT(weir_json_type(WEIR_STR("\"s\"")), WEIR_JSON_STRING);
    WEIR_CHECK_EQ_INT(weir_json_type(WEIR_STR("  ")), WEIR_JSON_INVALID);
    WEIR_CHECK_EQ_INT(weir_json_type(WEIR_STR("x")), WEIR_JSON_INVALID);
}

WEIR_TEST(json_object_iteration) {
    weir_bytes doc = WEIR_STR("{ \"k1\" : {\"n\": [1, 2]} , \"k2\":\"v\" }");
    size_t pos = 0, n = 0;
    weir_bytes k, v;
    while (weir_json_object_next(doc, &pos, &k, &v)) {
        if (n == 0) {
            WEIR_CHECK_EQ_BYTES(k, "\"k1\"");
            WEIR_CHECK_EQ_BYTES(v, "{\"n\": [1, 2]}");
        } else {
            WEIR_CHECK_EQ_BYTES(k, "\"k2\"");
            WEIR_CHECK_EQ_BYTES(v, "\"v\"");
        }
        n++;
    }
    WEIR_CHECK_EQ_INT(n, 2);
    pos = 0;
    WEIR_CHECK(!weir_json_object_next(WEIR_STR("{}"), &pos, &k, &v));
    pos = 0;
    WEIR_CHECK(!weir_json_object_next(WEIR_STR("{\"a\":1,}"), &pos, &k, &v));
}

WEIR_TEST(json_string_unescapes) {
    weir_buf b = {0};
    WEIR_CHECK(weir_json_string(WEIR_STR("\"a\\\"b\\\\c\\/d\\n\\t\\u0041\\u00e9\\u20ac\\ud83d\\ude00\""), &b));
    WEIR_CHECK_EQ_STR((const char *)b.ptr, "a\"b\\c/d\n\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    weir_buf_reset(&b);
    WEIR_CHECK(weir_json_string(WEIR_STR("\"\""), &b));
    WEIR_CHECK(b.ptr != NULL && b.len == 0);
    WEIR_CHECK(weir_json_string(WEIR_STR("\"x\\u0000y\""), &b));
    WEIR_CHECK_EQ_INT(b.len, 3);
    size_t before = b.len;
    WEIR_CHECK(!weir_json_string(WEIR_STR("\"\\ud800\""), &b));
    WEIR_CHECK(!weir_json_string(WEIR_STR("1"), &b));
    WEIR_CHECK_EQ_INT(b.len, before);
    weir_buf_free(&b);
}

static void check_string_out(const char *file, int line, weir_bytes in, const char *want) {
    weir_buf b = {0};
    weir_buf_json_string(&b, in);
    if (!weir_bytes_eq_str(weir_buf_bytes(&b), want))
        weir_test__fail(file, line, "json string %s, expected %s", (const char *)b.ptr, want);
    if (!weir_json_valid(weir_buf_bytes(&b))) weir_test__fail(file, line, "not valid JSON: %s", (const char *)b.ptr);
    weir_buf_free(&b);
}

WEIR_TEST(json_string_writer_escapes) {
    check_string_out(__FILE__, __LINE__, WEIR_STR("plain"), "\"plain\"");
    check_string_out(__FILE__, __LINE__, WEIR_STR("q\"b\\s/"), "\"q\\\"b\\\\s/\"");
    check_string_out(__FILE__, __LINE__, WEIR_STR("\b\f\n\r\t\x01\x1f\x7f"), "\"\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\"");
    check_string_out(__FILE__, __LINE__, WEIR_STR("\xc3\xa9\xf0\x9f\x98\x80"), "\"\xc3\xa9\xf0\x9f\x98\x80\"");
    check_string_out(__FILE__, __LINE__, WEIR_STR("a\xff" "b\xc3"), "\"a\xef\xbf\xbd" "b\xef\xbf\xbd\"");
    weir_bytes z = {(const uint8_t *)"a\0b", 3};
    check_string_out(__FILE__, __LINE__, z, "\"a\\u0000b\"");
    /* round trip */
    weir_buf b = {0}, back = {0};
    weir_bytes text = WEIR_STR("x\"\\\n\x01\xe2\x82\xac");
    weir_buf_json_string(&b, text);
    WEIR_CHECK(weir_json_string(weir_buf_bytes(&b), &back));
    WEIR_CHECK(weir_bytes_eq(weir_buf_bytes(&back), text));
    weir_buf_free(&b);
    weir_buf_free(&back);
}

static void check_number(const char *file, int line, double v, const char *want) {
    weir_buf b = {0};
    if (!weir_buf_json_number(&b, v)) {
        weir_test__fail(file, line, "no number for %.17g", v);
        return;
    }
    if (!weir_bytes_eq_str(weir_buf_bytes(&b), want))
        weir_test__fail(file, line, "number %.17g written %s, expected %s", v, (const char *)b.ptr, want);
    double back;
    if (!weir_json_number(weir_buf_bytes(&b), &back) || back != v || signbit(back) != signbit(v))
        weir_test__fail(file, line, "%s does not read back", (const char *)b.ptr);
    weir_buf_free(&b);
}

WEIR_TEST(json_number_formatting) {
    /* the texts of Python's repr */
    check_number(__FILE__, __LINE__, 0.0, "0.0");
    check_number(__FILE__, __LINE__, -0.0, "-0.0");
    check_number(__FILE__, __LINE__, 1.0, "1.0");
    check_number(__FILE__, __LINE__, -3.0, "-3.0");
    check_number(__FILE__, __LINE__, 100.0, "100.0");
    check_number(__FILE__, __LINE__, 0.1, "0.1");
    check_number(__FILE__, __LINE__, 0.1 + 0.2, "0.30000000000000004");
    check_number(__FILE__, __LINE__, 1.5, "1.5");
    check_number(__FILE__, __LINE__, 123456.789, "123456.789");
    check_number(__FILE__, __LINE__, 1e15, "1000000000000000.0");
    check_number(__FILE__, __LINE__, 1e16, "1e+16");
    check_number(__FILE__, __LINE__, 1.5e300, "1.5e+300");
    check_number(__FILE__, __LINE__, 0.0001, "0.0001");
    check_number(__FILE__, __LINE__, 0.00001, "1e-05");
    check_number(__FILE__, __LINE__, 1.25e-7, "1.25e-07");
    check_number(__FILE__, __LINE__, 5e-324, "5e-324");
    check_number(__FILE__, __LINE__, 1.7976931348623157e308, "1.7976931348623157e+308");
    check_number(__FILE__, __LINE__, 9007199254740993.0, "9007199254740992.0");
    check_number(__FILE__, __LINE__, 2.0 / 3.0, "0.6666666666666666");
    weir_buf b = {0};
    WEIR_CHECK(!weir_buf_json_number(&b, NAN));
    WEIR_CHECK(!weir_buf_json_number(&b, INFINITY));
    WEIR_CHECK(!weir_buf_json_number(&b, -INFINITY));
    WEIR_CHECK_EQ_INT(b.len, 0);
    weir_buf_json_int(&b, INT64_MIN);
    WEIR_CHECK_EQ_STR((const char *)b.ptr, "-9223372036854775808");
    weir_buf_free(&b);
}

WEIR_TEST(json_number_round_trips) {
    /* pseudo-random doubles over the whole range read back exactly */
    uint64_t s = 0x9E3779B97F4A7C15ull;
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        double v;
        memcpy(&v, &s, sizeof v);
        if (!isfinite(v)) continue;
        weir_buf b = {0};
        double back;
        if (!weir_buf_json_number(&b, v) || !weir_json_valid(weir_buf_bytes(&b)) ||
            !weir_json_number(weir_buf_bytes(&b), &back) || back != v)
            bad++;
        weir_buf_free(&b);
    }
    WEIR_CHECK_EQ_INT(bad, 0);
}

WEIR_TEST(json_equal_and_buffers) {
    WEIR_CHECK(weir_json_equal(WEIR_STR("{\"a\":1,\"b\":[1.0,\"\\u0041\"]}"), WEIR_STR("{\"b\":[1,\"A\"],\"a\":1e0}")));
    WEIR_CHECK(!weir_json_equal(WEIR_STR("{\"a\":1}"), WEIR_STR("{\"a\":1,\"b\":2}")));
    WEIR_CHECK(!weir_json_equal(WEIR_STR("[1,2]"), WEIR_STR("[2,1]")));
    WEIR_CHECK(!weir_json_equal(WEIR_STR("1"), WEIR_STR("\"1\"")));
    WEIR_CHECK(!weir_json_equal(WEIR_STR("{"), WEIR_STR("{")));
    WEIR_CHECK(weir_json_equal(WEIR_STR("null"), WEIR_STR(" null ")));
    weir_buf b = {0};
    for (int i = 0; i < 1000; i++) weir_buf_printf(&b, "%d,", i);
    WEIR_CHECK(b.ptr[b.len] == 0);
    WEIR_CHECK(b.len > 3000);
    weir_buf_append(&b, b.ptr, 4); /* from itself */
    WEIR_CHECK(memcmp(b.ptr + b.len - 4, "0,1,", 4) == 0);
    weir_buf_reset(&b);
    weir_buf_puts(&b, "x");
    WEIR_CHECK_EQ_STR((const char *)b.ptr, "x");
    char big[600];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = 0;
    weir_buf_printf(&b, "%s!", big);
    WEIR_CHECK_EQ_INT(b.len, 601);
    WEIR_CHECK(b.ptr[600] == '!' && b.ptr[601] == 0);
    weir_buf_free(&b);
    WEIR_CHECK(b.ptr == NULL && b.len == 0 && b.cap == 0);
    WEIR_CHECK(weir_utf8_valid(WEIR_STR("\xe2\x82\xac")));
    WEIR_CHECK(!weir_utf8_valid(WEIR_STR("\xe2\x82")));
}

WEIR_TEST(short_decimals_read_as_strtod_reads_them) {
    /* numbers of at most 15 digits take the exact fast path: it must agree
     * with strtod bit for bit */
    uint64_t s = 0x2545F4914F6CDD1Dull;
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        char text[64];
        int digits = 1 + (int)(s % 15);
        uint64_t m = (s >> 8) % 1000000000000000ull;
        char mant[24];
        snprintf(mant, sizeof mant, "%0*llu", digits, (unsigned long long)(m % (uint64_t)pow(10, digits)));
        int point = (int)((s >> 40) % (uint64_t)(digits + 1));
        int exp = (int)((s >> 48) % 61) - 30;
        snprintf(text, sizeof text, "%s%.*s%s%se%d", (s >> 60) & 1 ? "-" : "", point, mant,
                 point < digits ? "." : "", point < digits ? mant + point : "", exp);
        if (point == 0 || (point < digits && mant[point] == 0)) continue;
        double got, want = strtod(text, NULL);
        if (!weir_json_valid(weir_str(text))) continue;
        if (!weir_json_number(weir_str(text), &got) || memcmp(&got, &want, sizeof got) != 0) {
            if (bad++ < 5) fprintf(stderr, "%s: got %.17g, strtod %.17g\n", text, got, want);
        }
    }
    WEIR_CHECK_EQ_INT(bad, 0);
}
