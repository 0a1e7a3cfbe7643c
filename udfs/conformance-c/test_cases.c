/* Runs every case of guest-sdk/conformance/cases.json against app.c with
 * the native harness (the real check is tests/tests/conformance.rs, over
 * the component and the real host). Run from this directory. */
#include "weir.h"
#include "weir_testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CASES "../../guest-sdk/conformance/cases.json"

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    weir_buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) weir_buf_append(&b, chunk, n);
    fclose(f);
    *len = b.len;
    return (char *)b.ptr;
}

static const char *case_name;
static int step_no;

#define FAIL(...)                                                                     \
    do {                                                                              \
        char msg_[512];                                                               \
        snprintf(msg_, sizeof msg_, __VA_ARGS__);                                     \
        weir_test__fail(__FILE__, __LINE__, "case \"%s\" step %d: %s", case_name,     \
                        step_no, msg_);                                               \
    } while (0)

/* Text of a JSON string span, in `buf` (reset first). */
static const char *text(weir_bytes s, weir_buf *buf) {
    weir_buf_reset(buf);
    if (!weir_json_string(s, buf)) weir_buf_puts(buf, "<not text>");
    return (const char *)buf->ptr;
}

static void check_outputs(weir_bytes expect) {
    size_t pos = 0, i = 0;
    weir_bytes e, f;
    weir_buf t = {0};
    while (weir_json_array_next(expect, &pos, &e)) {
        const weir_output *o = weir_test_output(i);
        if (weir_json_field(e, "error", &f)) {
            int64_t input;
            weir_json_int(f, &input);
            if (o->kind != WEIR_TEST_ERROR || (int64_t)o->input != input)
                FAIL("output %zu: expected error of input %lld (kind %d)", i, (long long)input, (int)o->kind);
            if (weir_json_field(e, "contains", &f) && !strstr(o->message, text(f, &t)))
                FAIL("output %zu: message \"%s\" lacks \"%s\"", i, o->message, (const char *)t.ptr);
        } else {
            bool side = weir_json_field(e, "side", &f);
            if (side) {
                if (o->kind != WEIR_TEST_SIDE || strcmp(o->side, text(f, &t)) != 0)
                    FAIL("output %zu: expected side output %s", i, (const char *)t.ptr);
                weir_json_field(e, "value", &f);
            } else {
                weir_json_field(e, "emit", &f);
                if (o->kind != WEIR_TEST_EMIT) FAIL("output %zu: expected an emit (kind %d)", i, (int)o->kind);
            }
            if (!weir_json_equal(o->value, f))
                FAIL("output %zu: value %.*s, expected %.*s", i, (int)o->value.len, (const char *)o->value.ptr,
                     (int)f.len, (const char *)f.ptr);
            if (weir_json_field(e, "key", &f)) {
                if (weir_json_is_null(f) ? o->has_key
                                         : (!o->has_key || !weir_bytes_eq_str(o->key, text(f, &t))))
                    FAIL("output %zu: wrong key", i);
            }
            if (weir_json_field(e, "timestamp", &f)) {
                int64_t ts;
                if (weir_json_is_null(f) ? o->has_timestamp
                                         : (!weir_json_int(f, &ts) || !o->has_timestamp || o->timestamp != ts))
                    FAIL("output %zu: wrong timestamp", i);
            }
        }
        i++;
    }
    if (i != weir_test_output_count()) FAIL("%zu outputs, expected %zu", weir_test_output_count(), i);
    weir_buf_free(&t);
}

static void run_process(weir_bytes records) {
    weir_record batch[64];
    size_t n = 0, pos = 0;
    weir_bytes r, f;
    weir_buf keys[64];
    memset(keys, 0, sizeof keys);
    while (weir_json_array_next(records, &pos, &r) && n < 64) {
        weir_record *x = &batch[n];
        memset(x, 0, sizeof *x);
        if (weir_json_field(r, "key", &f) && !weir_json_is_null(f)) {
            weir_json_string(f, &keys[n]);
            x->has_key = true;
            x->key = weir_buf_bytes(&keys[n]);
        }
        weir_json_field(r, "value", &x->value);
        if (weir_json_field(x->value, "raw", &f) && weir_json_type(x->value) == WEIR_JSON_OBJECT) {
            /* {"raw": "text"}: the text's bytes; kept in the same buffer array */
            static weir_buf raw[64];
            weir_buf_reset(&raw[n]);
            weir_json_string(f, &raw[n]);
            x->value = weir_buf_bytes(&raw[n]);
        }
        if (weir_json_field(r, "timestamp", &f) && weir_json_int(f, &x->timestamp)) x->has_timestamp = true;
        n++;
    }
    weir_test_process_batch(batch, n);
    for (size_t i = 0; i < 64; i++) weir_buf_free(&keys[i]);
}

static void check_state(weir_bytes s) {
    weir_bytes f, group, k, v;
    weir_buf key = {0}, name = {0}, mk = {0};
    weir_json_field(s, "key", &f);
    text(f, &key);
    if (weir_json_field(s, "value", &group)) {
        size_t pos = 0;
        while (weir_json_object_next(group, &pos, &k, &v)) {
            weir_bytes got;
            bool has = weir_test_value((const char *)key.ptr, text(k, &name), &got);
            if (weir_json_is_null(v) ? has : (!has || !weir_json_equal(got, v)))
                FAIL("value state %s of %s: %.*s", (const char *)name.ptr, (const char *)key.ptr,
                     has ? (int)got.len : 4, has ? (const char *)got.ptr : "none");
        }
    }
    if (weir_json_field(s, "list", &group)) {
        size_t pos = 0;
        while (weir_json_object_next(group, &pos, &k, &v)) {
            const weir_bytes *items;
            size_t n = weir_test_list((const char *)key.ptr, text(k, &name), &items), i = 0, p2 = 0;
            weir_bytes want;
            while (weir_json_array_next(v, &p2, &want)) {
                if (i >= n || !weir_json_equal(items[i], want)) FAIL("list state %s item %zu", (const char *)name.ptr, i);
                i++;
            }
            if (i != n) FAIL("list state %s has %zu items, expected %zu", (const char *)name.ptr, n, i);
        }
    }
    if (weir_json_field(s, "map", &group)) {
        size_t pos = 0;
        while (weir_json_object_next(group, &pos, &k, &v)) {
            const weir_entry *e;
            size_t n = weir_test_map_entries((const char *)key.ptr, text(k, &name), &e), count = 0, p2 = 0;
            weir_bytes ek, ev;
            while (weir_json_object_next(v, &p2, &ek, &ev)) {
                weir_buf plain = {0};
                weir_json_string(ek, &plain);
                weir_buf_reset(&mk);
                weir_buf_json_string(&mk, weir_buf_bytes(&plain)); /* the stored key: JSON text */
                weir_bytes got;
                if (!weir_test_map_get((const char *)key.ptr, (const char *)name.ptr, weir_buf_bytes(&mk), &got) ||
                    !weir_json_equal(got, ev))
                    FAIL("map state %s entry %s", (const char *)name.ptr, (const char *)plain.ptr);
                weir_buf_free(&plain);
                count++;
            }
            if (count != n) FAIL("map state %s has %zu entries, expected %zu", (const char *)name.ptr, n, count);
        }
    }
    weir_buf_free(&key);
    weir_buf_free(&name);
    weir_buf_free(&mk);
}

WEIR_TEST(conformance_cases) {
    size_t len;
    char *doc = read_file(CASES, &len);
    if (!doc) {
        weir_test__fail(__FILE__, __LINE__, "cannot read %s (run from udfs/conformance-c)", CASES);
        return;
    }
    weir_bytes cases = {(const uint8_t *)doc, len}, c, f, steps, step;
    WEIR_CHECK(weir_json_valid(cases));
    size_t pos = 0, ncases = 0;
    weir_buf name = {0};
    uint64_t checkpoint = 0;
    while (weir_json_array_next(cases, &pos, &c)) {
        weir_test_reset();
        weir_json_field(c, "name", &f);
        case_name = text(f, &name);
        step_no = 0;
        weir_bytes config;
        weir_json_field(c, "config", &config);
        char *cfg = malloc(config.len + 1);
        memcpy(cfg, config.ptr, config.len);
        cfg[config.len] = 0;
        bool opened = weir_test_open(cfg);
        free(cfg);
        weir_json_field(c, "steps", &steps);
        size_t spos = 0;
        while (weir_json_array_next(steps, &spos, &step)) {
            weir_bytes expect = WEIR_STR("[]");
            weir_json_field(step, "expect", &expect);
            if (weir_json_field(step, "open_fails", &f)) {
                weir_buf t = {0};
                if (opened || !strstr(weir_test_error(), text(f, &t)))
                    FAIL("open should fail with \"%s\", got \"%s\"", (const char *)t.ptr, weir_test_error());
                weir_buf_free(&t);
            } else if (!opened) {
                FAIL("open failed: %s", weir_test_error());
            } else if (weir_json_field(step, "process", &f)) {
                run_process(f);
                check_outputs(expect);
            } else if (weir_json_field(step, "watermark", &f)) {
                int64_t wm;
                weir_json_int(f, &wm);
                weir_test_watermark(wm);
                check_outputs(expect);
            } else if (weir_json_field(step, "state", &f)) {
                check_state(f);
            } else if (weir_json_field(step, "checkpoint", &f)) {
                if (!weir_test_checkpoint(++checkpoint)) FAIL("checkpoint failed: %s", weir_test_error());
                weir_bytes want, item;
                const weir_bytes *items;
                size_t n = weir_test_checkpoint_items(&items), i = 0, ipos = 0;
                if (weir_json_field(f, "operator_state", &want)) {
                    while (weir_json_array_next(want, &ipos, &item)) {
                        if (i >= n || !weir_json_equal(items[i], item)) FAIL("operator state item %zu", i);
                        i++;
                    }
                    if (i != n) FAIL("%zu operator state items, expected %zu", n, i);
                }
            } else if (weir_json_field(step, "restore", &f)) {
                if (!weir_test_restore()) FAIL("restore failed: %s", weir_test_error());
            } else {
                FAIL("unknown step");
            }
            step_no++;
        }
        ncases++;
    }
    WEIR_CHECK(ncases >= 10);
    weir_buf_free(&name);
    free(doc);
}
