/* The packed batch format against the golden vectors every SDK that reads
 * it must match (guest-sdk/conformance/packed.json). */
#include "../src/weir_host.h"
#include "weir_testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static weir_buf golden;

static weir_bytes packed_json(void) {
    if (golden.len) return weir_buf_bytes(&golden);
    FILE *f = fopen("../conformance/packed.json", "rb");
    if (!f) return (weir_bytes){NULL, 0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) weir_buf_append(&golden, chunk, n);
    fclose(f);
    return weir_buf_bytes(&golden);
}

/* The bytes of a JSON string of hex digits. */
static void unhex(weir_bytes hex_json, weir_buf *out) {
    weir_buf hex = {0};
    weir_json_string(hex_json, &hex);
    for (size_t i = 0; i + 1 < hex.len; i += 2) {
        unsigned v;
        sscanf((const char *)hex.ptr + i, "%2x", &v);
        uint8_t byte = (uint8_t)v;
        weir_buf_append(out, &byte, 1);
    }
    weir_buf_free(&hex);
}

/* A JSON text-or-null field as (present, bytes): `*text` holds the bytes. */
static bool text_field(weir_bytes obj, const char *name, weir_buf *text) {
    weir_bytes v;
    weir_buf_reset(text);
    if (!weir_json_field(obj, name, &v) || weir_json_is_null(v)) return false;
    weir_json_string(v, text);
    return true;
}

WEIR_TEST(a_packed_batch_reads_as_the_golden_records) {
    weir_bytes doc = packed_json();
    WEIR_CHECK(doc.len > 0);
    weir_bytes batch, records, hex, rec;
    WEIR_CHECK(weir_json_field(doc, "batch", &batch));
    WEIR_CHECK(weir_json_field(batch, "records", &records));
    WEIR_CHECK(weir_json_field(batch, "hex", &hex));
    weir_buf bytes = {0}, text = {0};
    unhex(hex, &bytes);
    weir_record *got;
    size_t n;
    WEIR_CHECK(weir__packed_read(weir_buf_bytes(&bytes), &got, &n));
    size_t i = 0;
    for (size_t pos = 0; weir_json_array_next(records, &pos, &rec); i++) {
        WEIR_CHECK(i < n);
        if (i >= n) break;
        bool has_key = text_field(rec, "key", &text);
        WEIR_CHECK_EQ_INT(got[i].has_key, has_key);
        if (has_key) WEIR_CHECK(weir_bytes_eq(got[i].key, weir_buf_bytes(&text)));
        text_field(rec, "value", &text);
        WEIR_CHECK(weir_bytes_eq(got[i].value, weir_buf_bytes(&text)));
        weir_bytes ts;
        WEIR_CHECK(weir_json_field(rec, "timestamp", &ts));
        int64_t want;
        bool has_ts = weir_json_int(ts, &want);
        WEIR_CHECK_EQ_INT(got[i].has_timestamp, has_ts);
        if (has_ts) WEIR_CHECK_EQ_INT(got[i].timestamp, want);
    }
    WEIR_CHECK_EQ_INT(i, n);
    /* A batch cut anywhere inside is refused. */
    for (size_t cut = 1; cut < bytes.len; cut++) {
        weir_record *r = NULL;
        size_t m;
        bool ok = weir__packed_read((weir_bytes){bytes.ptr, cut}, &r, &m);
        free(r);
        if (ok) WEIR_CHECK(m < n); /* only at a record boundary */
    }
    free(got);
    weir_buf_free(&bytes);
    weir_buf_free(&text);
}

WEIR_TEST(outputs_pack_to_the_golden_bytes) {
    weir_bytes doc = packed_json();
    weir_bytes outputs, items, hex, item, v;
    WEIR_CHECK(weir_json_field(doc, "outputs", &outputs));
    WEIR_CHECK(weir_json_field(outputs, "items", &items));
    WEIR_CHECK(weir_json_field(outputs, "hex", &hex));
    weir__output list[8];
    weir_buf texts[8][3];
    memset(list, 0, sizeof list);
    memset(texts, 0, sizeof texts);
    size_t n = 0;
    for (size_t pos = 0; n < 8 && weir_json_array_next(items, &pos, &item); n++) {
        weir__output *o = &list[n];
        weir_bytes rec = item;
        if (weir_json_field(item, "emit", &rec)) {
            o->kind = WEIR__EMIT;
        } else if (weir_json_field(item, "side", &v)) {
            o->kind = WEIR__SIDE;
            weir_json_string(v, &texts[n][2]);
            o->side = (char *)texts[n][2].ptr;
            o->side_len = texts[n][2].len;
            weir_json_field(item, "record", &rec);
        } else {
            o->kind = WEIR__ERROR;
            int64_t input;
            weir_json_field(item, "error", &v);
            weir_json_int(v, &input);
            o->input = (uint32_t)input;
            text_field(item, "message", &texts[n][2]);
            o->message = (char *)texts[n][2].ptr;
            o->message_len = texts[n][2].len;
            continue;
        }
        o->has_key = text_field(rec, "key", &texts[n][0]);
        o->key = texts[n][0].ptr;
        o->key_len = texts[n][0].len;
        text_field(rec, "value", &texts[n][1]);
        o->value = texts[n][1].ptr;
        o->value_len = texts[n][1].len;
        int64_t ts;
        weir_json_field(rec, "timestamp", &v);
        o->has_timestamp = weir_json_int(v, &ts);
        o->timestamp = ts;
    }
    WEIR_CHECK_EQ_INT(n, 3);
    weir_buf want = {0}, got = {0};
    unhex(hex, &want);
    weir__outputs all = {list, n};
    weir__packed_write(&all, &got);
    WEIR_CHECK(weir_bytes_eq(weir_buf_bytes(&got), weir_buf_bytes(&want)));
    weir_buf_free(&want);
    weir_buf_free(&got);
    for (size_t i = 0; i < 8; i++)
        for (int j = 0; j < 3; j++) weir_buf_free(&texts[i][j]);
}
