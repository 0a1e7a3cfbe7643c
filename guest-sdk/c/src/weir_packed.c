/* Weir C guest SDK: the packed batch format of `packed-handler.process-packed`
 * (wit/README.md, "Packed batches"; the Rust side is the weir-abi crate):
 * one buffer holds a whole batch of records, another the call's outputs,
 * instead of one canonical-ABI list per key and value. Pure C, no bindings:
 * the native tests hold it to the golden vectors of
 * guest-sdk/conformance/packed.json. */
#include "weir_host.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool take(const uint8_t **p, const uint8_t *end, size_t n) {
    if ((size_t)(end - *p) < n) return false;
    *p += n;
    return true;
}

static bool read_u32(const uint8_t **p, const uint8_t *end, uint32_t *v) {
    const uint8_t *at = *p;
    if (!take(p, end, 4)) return false;
    *v = (uint32_t)at[0] | (uint32_t)at[1] << 8 | (uint32_t)at[2] << 16 | (uint32_t)at[3] << 24;
    return true;
}

static bool read_i64(const uint8_t **p, const uint8_t *end, int64_t *v) {
    const uint8_t *at = *p;
    if (!take(p, end, 8)) return false;
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--) u = u << 8 | at[i];
    memcpy(v, &u, sizeof u);
    return true;
}

static bool read_bytes(const uint8_t **p, const uint8_t *end, weir_bytes *b) {
    uint32_t len;
    if (!read_u32(p, end, &len)) return false;
    const uint8_t *at = *p;
    if (!take(p, end, len)) return false;
    *b = (weir_bytes){len ? at : NULL, len};
    return true;
}

/* One record at *p; false when the bytes end inside it or its flags are
 * not the format's. */
static bool read_record(const uint8_t **p, const uint8_t *end, weir_record *r) {
    if (*p >= end) return false;
    uint8_t flags = *(*p)++;
    if (flags & ~3u) return false;
    memset(r, 0, sizeof *r);
    r->has_timestamp = flags & 2;
    if (r->has_timestamp && !read_i64(p, end, &r->timestamp)) return false;
    r->has_key = flags & 1;
    if (r->has_key && !read_bytes(p, end, &r->key)) return false;
    return read_bytes(p, end, &r->value);
}

bool weir__packed_read(weir_bytes batch, weir_record **records, size_t *n) {
    const uint8_t *end = batch.ptr + batch.len;
    size_t count = 0;
    weir_record scratch;
    for (const uint8_t *p = batch.ptr; p < end; count++)
        if (!read_record(&p, end, &scratch)) return false;
    if (count > SIZE_MAX / sizeof(weir_record)) return false; /* wasm32: a huge batch */
    weir_record *out = count ? weir__xmalloc(count * sizeof *out) : NULL;
    const uint8_t *p = batch.ptr;
    for (size_t i = 0; i < count; i++) read_record(&p, end, &out[i]);
    *records = out;
    *n = count;
    return true;
}

static void put_u32(weir_buf *b, size_t v) {
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    weir_buf_append(b, le, 4);
}

static void put_bytes(weir_buf *b, const void *ptr, size_t len) {
    put_u32(b, len);
    if (len) weir_buf_append(b, ptr, len);
}

static void put_record(weir_buf *b, const weir__output *o) {
    uint8_t flags = (uint8_t)((o->has_key ? 1 : 0) | (o->has_timestamp ? 2 : 0));
    weir_buf_append(b, &flags, 1);
    if (o->has_timestamp) {
        uint64_t u;
        memcpy(&u, &o->timestamp, sizeof u);
        uint8_t le[8];
        for (int i = 0; i < 8; i++) le[i] = (uint8_t)(u >> (8 * i));
        weir_buf_append(b, le, 8);
    }
    if (o->has_key) put_bytes(b, o->key, o->key_len);
    put_bytes(b, o->value, o->value_len);
}

void weir__packed_write(const weir__outputs *outputs, weir_buf *out) {
    for (size_t i = 0; i < outputs->len; i++) {
        const weir__output *o = &outputs->ptr[i];
        uint8_t tag = (uint8_t)o->kind;
        weir_buf_append(out, &tag, 1);
        switch (o->kind) {
        case WEIR__EMIT: put_record(out, o); break;
        case WEIR__SIDE:
            put_bytes(out, o->side, o->side_len);
            put_record(out, o);
            break;
        case WEIR__ERROR:
            put_u32(out, o->input);
            put_bytes(out, o->message, o->message_len);
            break;
        }
    }
}
