/* Weir C guest SDK: the operator runtime. Runs the user's functions for each
 * host call and collects their outputs; talks to the host only through
 * weir_host.h, so the same code runs in Wasm and in native tests. */
#include "weir_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- weak defaults of the optional user functions ----------------------- */

__attribute__((weak)) bool weir_open(const weir_subtask *subtask, weir_bytes config_json) {
    (void)subtask;
    (void)config_json;
    return true;
}

__attribute__((weak)) void weir_on_timer(weir_context *ctx, int64_t timestamp, weir_time_domain domain) {
    (void)ctx;
    (void)timestamp;
    (void)domain;
}

__attribute__((weak)) bool weir_close(void) { return true; }

__attribute__((weak)) bool weir_snapshot(uint64_t checkpoint_id, weir_items *items) {
    (void)checkpoint_id;
    (void)items;
    return true;
}

__attribute__((weak)) bool weir_restore(const weir_bytes *items, size_t n) {
    (void)items;
    (void)n;
    return true;
}

/* ---- arena -------------------------------------------------------------- */

static void **arena;
static size_t arena_len, arena_cap;

void weir__arena_adopt(void *p) {
    if (!p) return;
    if (arena_len == arena_cap) {
        arena_cap = arena_cap ? arena_cap * 2 : 64;
        arena = weir__xrealloc(arena, arena_cap * sizeof *arena);
    }
    arena[arena_len++] = p;
}

void *weir__arena_alloc(size_t n) {
    void *p = weir__xmalloc(n);
    weir__arena_adopt(p);
    return p;
}

static void arena_reset(void) {
    for (size_t i = 0; i < arena_len; i++) free(arena[i]);
    arena_len = 0;
    if (arena_cap > 4096) {
        free(arena);
        arena = NULL;
        arena_cap = 0;
    }
}

/* ---- the call context ----------------------------------------------------- */

struct weir_context {
    bool has_key;
    weir_bytes key;
    bool has_timestamp;
    int64_t timestamp;
    uint32_t input;
    weir__outputs out;
    size_t out_cap;
    /* the key last set through the host during this call */
    bool key_set;
    weir_bytes last_key;
};

static weir_context current;

struct weir_items {
    weir_bytes *ptr;
    size_t len, cap;
};

static void *dup_bytes(const void *p, size_t n) {
    if (n == 0) return NULL;
    void *q = weir__xmalloc(n);
    memcpy(q, p, n);
    return q;
}

/* A malloc'ed UTF-8 copy of a C string (NULL when empty). */
static char *dup_text(const char *s, size_t *len) {
    weir_buf b = {0};
    weir__buf_utf8(&b, weir_str(s));
    *len = b.len;
    if (b.len == 0) {
        weir_buf_free(&b);
        return NULL;
    }
    return (char *)b.ptr;
}

static weir__output *push_output(weir_context *ctx, weir__output_kind kind) {
    if (ctx->out.len == ctx->out_cap) {
        ctx->out_cap = ctx->out_cap ? ctx->out_cap * 2 : 8;
        ctx->out.ptr = weir__xrealloc(ctx->out.ptr, ctx->out_cap * sizeof *ctx->out.ptr);
    }
    weir__output *o = &ctx->out.ptr[ctx->out.len++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    return o;
}

void weir__output_free(weir__output *o) {
    free(o->key);
    free(o->value);
    free(o->side);
    free(o->message);
    memset(o, 0, sizeof *o);
}

/* ---- typed value state, cached for one call ---------------------------------
 *
 * weir_value_state keeps the decoded value of (key, name) for the rest of
 * the call and writes it back, encoded, at its end, when it changed: the
 * host forgets the current key between calls and nothing else touches keyed
 * state during one, so this equals writing through, for one decode, one
 * encode and two host calls per key and call instead of per record. */

typedef struct cached_value {
    weir_bytes key; /* arena copy */
    const char *name; /* arena copy */
    const weir_codec *codec;
    void *value;    /* codec->size bytes, the user's */
    void *original; /* what was loaded (zeros when nothing was) */
    bool found;
    uint32_t input; /* the record that used it last: blamed when encoding fails */
} cached_value;

static cached_value *cache;
static size_t cache_len, cache_cap, cache_last;

static cached_value *cache_find(const weir_context *ctx, const char *name) {
    if (!ctx->has_key) return NULL;
    if (cache_last < cache_len) {
        cached_value *c = &cache[cache_last];
        if (strcmp(c->name, name) == 0 && weir_bytes_eq(c->key, ctx->key)) return c;
    }
    for (size_t i = 0; i < cache_len; i++) {
        cached_value *c = &cache[i];
        if (strcmp(c->name, name) == 0 && weir_bytes_eq(c->key, ctx->key)) {
            cache_last = i;
            return c;
        }
    }
    return NULL;
}

static void use_key(weir_context *ctx);

/* Writes entry `c` back when it changed; a value that cannot be encoded is
 * a per-record error of the record that used it last. */
static void cache_write_back(weir_context *ctx, cached_value *c) {
    if (memcmp(c->value, c->original, c->codec->size) == 0) return;
    weir_buf out = {0};
    bool ok = c->codec->encode(c->value, &out);
    weir_bytes saved_key = ctx->key;
    bool saved_has = ctx->has_key;
    uint32_t saved_input = ctx->input;
    ctx->key = c->key;
    ctx->has_key = true;
    if (ok) {
        use_key(ctx);
        weir__host_value_set(c->name, weir_buf_bytes(&out));
    } else {
        ctx->input = c->input;
        weir_record_error(ctx, "value state `%s` cannot be stored: its codec refused the value", c->name);
    }
    ctx->key = saved_key;
    ctx->has_key = saved_has;
    ctx->input = saved_input;
    weir_buf_free(&out);
}

/* Writes back and forgets the cached entry of (current key, name), if any:
 * before the byte-level functions touch the same state. */
static void cache_evict(weir_context *ctx, const char *name) {
    cached_value *c = cache_find(ctx, name);
    if (!c) return;
    cache_write_back(ctx, c);
    *c = cache[--cache_len];
    cache_last = 0;
}

static void cache_flush(weir_context *ctx) {
    for (size_t i = 0; i < cache_len; i++) cache_write_back(ctx, &cache[i]);
    cache_len = 0;
    cache_last = 0;
}

static void begin_call(void) {
    memset(&current, 0, sizeof current);
    weir__clear_error();
}

static weir__outputs end_call(void) {
    cache_flush(&current);
    weir__outputs out = current.out;
    arena_reset();
    memset(&current, 0, sizeof current);
    return out;
}

/* Makes the record's key the host's current key, unless it already is in
 * this call. Called on the first use of state or timers for a record, not
 * before every record: on a stream that is not keyed (`partition: forward`
 * after a source that sets keys) the host refuses the key, and a function
 * that uses no state must still run there. A record without a key leaves
 * the host's key unset, so state then traps as the host documents (and
 * when an earlier record of the call set one, the SDK traps itself). */
static void use_key(weir_context *ctx) {
    if (!ctx->has_key) {
        /* The host still has the key an earlier record of this call set:
         * state would silently be that key's. Trap, as the host does for
         * state without a key. */
        if (ctx->key_set) __builtin_trap();
        return;
    }
    if (ctx->key_set && weir_bytes_eq(ctx->last_key, ctx->key)) return;
    weir__host_set_current_key(ctx->key);
    ctx->key_set = true;
    ctx->last_key = ctx->key;
}

/* ---- host calls ---------------------------------------------------------- */

bool weir__rt_open(const weir_subtask *subtask, weir_bytes config, char **err, size_t *err_len) {
    weir__clear_error();
    bool ok = weir_open(subtask, config);
    arena_reset();
    if (!ok) *err = weir__take_error("weir_open failed", err_len);
    return ok;
}

weir__outputs weir__rt_process(const weir_record *batch, size_t n) {
    begin_call();
    for (size_t i = 0; i < n; i++) {
        const weir_record *r = &batch[i];
        current.has_key = r->has_key;
        current.key = r->has_key ? r->key : (weir_bytes){NULL, 0};
        current.has_timestamp = r->has_timestamp;
        current.timestamp = r->timestamp;
        current.input = (uint32_t)i;
        weir_process(&current, r);
    }
    return end_call();
}

weir__outputs weir__rt_on_timer(weir_bytes key, int64_t ts, weir_time_domain domain) {
    begin_call();
    current.has_key = true;
    current.key = key;
    current.has_timestamp = true;
    current.timestamp = ts;
    current.input = 0;
    weir_on_timer(&current, ts, domain);
    return end_call();
}

bool weir__rt_close(char **err, size_t *err_len) {
    weir__clear_error();
    bool ok = weir_close();
    arena_reset();
    if (!ok) *err = weir__take_error("weir_close failed", err_len);
    return ok;
}

bool weir__rt_snapshot(uint64_t checkpoint_id, weir_bytes **items, size_t *n, char **err, size_t *err_len) {
    weir__clear_error();
    weir_items it = {0};
    bool ok = weir_snapshot(checkpoint_id, &it);
    arena_reset();
    if (!ok) {
        for (size_t i = 0; i < it.len; i++) free((void *)it.ptr[i].ptr);
        free(it.ptr);
        *err = weir__take_error("weir_snapshot failed", err_len);
        return false;
    }
    *items = it.ptr;
    *n = it.len;
    return true;
}

bool weir__rt_restore(const weir_bytes *items, size_t n, char **err, size_t *err_len) {
    weir__clear_error();
    bool ok = weir_restore(items, n);
    arena_reset();
    if (!ok) *err = weir__take_error("weir_restore failed", err_len);
    return ok;
}

/* ---- the user API ----------------------------------------------------------- */

void weir_items_add(weir_items *items, weir_bytes item) {
    if (items->len == items->cap) {
        items->cap = items->cap ? items->cap * 2 : 4;
        items->ptr = weir__xrealloc(items->ptr, items->cap * sizeof *items->ptr);
    }
    weir_bytes copy = {dup_bytes(item.ptr, item.len), item.len};
    items->ptr[items->len++] = copy;
}

weir_bytes weir_key(const weir_context *ctx) {
    return ctx->has_key ? ctx->key : (weir_bytes){NULL, 0};
}

bool weir_has_key(const weir_context *ctx) { return ctx->has_key; }

bool weir_timestamp(const weir_context *ctx, int64_t *ts) {
    if (!ctx->has_timestamp) return false;
    *ts = ctx->timestamp;
    return true;
}

void weir_emit_record(weir_context *ctx, const weir_record *r) {
    weir__output *o = push_output(ctx, WEIR__EMIT);
    o->has_key = r->has_key;
    if (r->has_key) {
        o->key = dup_bytes(r->key.ptr, r->key.len);
        o->key_len = r->key.len;
    }
    o->value = dup_bytes(r->value.ptr, r->value.len);
    o->value_len = r->value.len;
    o->has_timestamp = r->has_timestamp;
    o->timestamp = r->has_timestamp ? r->timestamp : 0;
}

void weir_emit(weir_context *ctx, weir_bytes value) {
    weir_record r = {ctx->has_key, ctx->key, value, ctx->has_timestamp, ctx->timestamp};
    weir_emit_record(ctx, &r);
}

void weir_emit_side(weir_context *ctx, const char *output, weir_bytes value) {
    weir_record r = {ctx->has_key, ctx->key, value, ctx->has_timestamp, ctx->timestamp};
    weir_emit_record(ctx, &r);
    weir__output *o = &ctx->out.ptr[ctx->out.len - 1];
    o->kind = WEIR__SIDE;
    o->side = dup_text(output ? output : "", &o->side_len);
}

void weir_record_error(weir_context *ctx, const char *fmt, ...) {
    weir_buf msg = {0};
    va_list ap;
    va_start(ap, fmt);
    weir_buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    weir__output *o = push_output(ctx, WEIR__ERROR);
    o->input = ctx->input;
    weir_buf clean = {0};
    weir__buf_utf8(&clean, weir_buf_bytes(&msg));
    weir_buf_free(&msg);
    o->message_len = clean.len;
    if (clean.len) o->message = (char *)clean.ptr;
    else weir_buf_free(&clean);
}

/* State and timers act on the current record's (or timer's) key, made the
 * host's current key on first use. */

bool weir_value_get(weir_context *ctx, const char *name, weir_bytes *out) {
    cache_evict(ctx, name);
    use_key(ctx);
    return weir__host_value_get(name, out);
}

void weir_value_set(weir_context *ctx, const char *name, weir_bytes value) {
    cache_evict(ctx, name);
    use_key(ctx);
    weir__host_value_set(name, value);
}

void weir_value_clear(weir_context *ctx, const char *name) {
    cached_value *c = cache_find(ctx, name);
    if (c) {
        /* cleared: nothing to write back */
        *c = cache[--cache_len];
        cache_last = 0;
    }
    use_key(ctx);
    weir__host_value_clear(name);
}

void *weir_value_state(weir_context *ctx, const char *name, const weir_codec *codec, bool *found) {
    cached_value *c = cache_find(ctx, name);
    if (!c) {
        weir_bytes bytes;
        use_key(ctx);
        bool has = ctx->has_key && weir__host_value_get(name, &bytes);
        void *value = weir__arena_alloc(codec->size ? codec->size : 1);
        memset(value, 0, codec->size);
        if (has && !codec->decode(bytes, value)) return NULL;
        if (!ctx->has_key) {
            /* no key: nothing to cache it under; the host refuses state */
            if (found) *found = false;
            return value;
        }
        if (cache_len == cache_cap) {
            cache_cap = cache_cap ? cache_cap * 2 : 16;
            cache = weir__xrealloc(cache, cache_cap * sizeof *cache);
        }
        c = &cache[cache_len];
        cache_last = cache_len++;
        uint8_t *key = weir__arena_alloc(ctx->key.len ? ctx->key.len : 1);
        if (ctx->key.len) memcpy(key, ctx->key.ptr, ctx->key.len);
        size_t name_len = strlen(name) + 1;
        char *name_copy = weir__arena_alloc(name_len);
        memcpy(name_copy, name, name_len);
        void *original = weir__arena_alloc(codec->size ? codec->size : 1);
        memcpy(original, value, codec->size);
        *c = (cached_value){{key, ctx->key.len}, name_copy, codec, value, original, has, ctx->input};
    }
    c->input = ctx->input;
    /* as writing through would say: a value an earlier record of this call
     * set counts as found */
    if (found) *found = c->found || memcmp(c->value, c->original, c->codec->size) != 0;
    return c->value;
}

size_t weir_list_get(weir_context *ctx, const char *name, const weir_bytes **items) {
    use_key(ctx);
    return weir__host_list_get(name, items);
}

void weir_list_add(weir_context *ctx, const char *name, weir_bytes item) {
    use_key(ctx);
    weir__host_list_add(name, item);
}

void weir_list_clear(weir_context *ctx, const char *name) {
    use_key(ctx);
    weir__host_list_clear(name);
}

bool weir_map_get(weir_context *ctx, const char *name, weir_bytes map_key, weir_bytes *out) {
    use_key(ctx);
    return weir__host_map_get(name, map_key, out);
}

void weir_map_put(weir_context *ctx, const char *name, weir_bytes map_key, weir_bytes value) {
    use_key(ctx);
    weir__host_map_put(name, map_key, value);
}

void weir_map_remove(weir_context *ctx, const char *name, weir_bytes map_key) {
    use_key(ctx);
    weir__host_map_remove(name, map_key);
}

size_t weir_map_entries(weir_context *ctx, const char *name, const weir_entry **entries) {
    use_key(ctx);
    return weir__host_map_entries(name, entries);
}

void weir_map_clear(weir_context *ctx, const char *name) {
    use_key(ctx);
    weir__host_map_clear(name);
}

void weir_register_timer(weir_context *ctx, weir_time_domain domain, int64_t ts) {
    use_key(ctx);
    weir__host_register_timer(domain, ts);
}

void weir_delete_timer(weir_context *ctx, weir_time_domain domain, int64_t ts) {
    use_key(ctx);
    weir__host_delete_timer(domain, ts);
}

int64_t weir_current_watermark(weir_context *ctx) {
    (void)ctx;
    return weir__host_current_watermark();
}

int64_t weir_current_processing_time(weir_context *ctx) {
    (void)ctx;
    return weir__host_current_processing_time();
}
