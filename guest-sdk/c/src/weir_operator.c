/* Weir C guest SDK: the exports of world `packed-operator` (world
 * `operator` plus `packed-handler.process-packed`, which the Weir host calls
 * for every batch: one buffer each way, wit/README.md "Packed batches") over
 * the bindings that `wit-bindgen c` generates (packed_operator.h), and the
 * host interface of the runtime over the generated imports.
 *
 * Ownership, as the canonical ABI has it: an export owns its arguments (we
 * free them before returning) and hands over its results (malloc'ed here,
 * freed by the generated post-return functions). Lists an import returns
 * are ours: they are given to the runtime's arena, freed at the end of the
 * call. Empty lists are never freed: their pointer is not from malloc. */
#include "packed_operator.h"
#include "weir_host.h"

#include <stdlib.h>
#include <string.h>

/* ---- conversions ----------------------------------------------------------- */

static packed_operator_string_t name_of(const char *name) {
    packed_operator_string_t s = {(uint8_t *)name, strlen(name)};
    return s;
}

static packed_operator_list_u8_t list_of(weir_bytes b) {
    packed_operator_list_u8_t l = {(uint8_t *)b.ptr, b.len};
    return l;
}

/* Takes a list the host returned: adopted by the arena. */
static weir_bytes take_list(packed_operator_list_u8_t l) {
    weir_bytes b = {l.len ? l.ptr : NULL, l.len};
    if (l.len) weir__arena_adopt(l.ptr);
    return b;
}

static bool error_result(char *msg, size_t len, packed_operator_string_t *err) {
    err->ptr = (uint8_t *)msg;
    err->len = len;
    if (len == 0) free(msg), err->ptr = NULL;
    return false;
}

/* ---- host interface over the imports ------------------------------------- */

void weir__host_set_current_key(weir_bytes key) {
    packed_operator_list_u8_t k = list_of(key);
    weir_operator_keyed_state_set_current_key(&k);
}

bool weir__host_value_get(const char *name, weir_bytes *out) {
    packed_operator_string_t n = name_of(name);
    packed_operator_list_u8_t ret;
    if (!weir_operator_keyed_state_value_get(&n, &ret)) return false;
    *out = take_list(ret);
    return true;
}

void weir__host_value_set(const char *name, weir_bytes value) {
    packed_operator_string_t n = name_of(name);
    packed_operator_list_u8_t v = list_of(value);
    weir_operator_keyed_state_value_set(&n, &v);
}

void weir__host_value_clear(const char *name) {
    packed_operator_string_t n = name_of(name);
    weir_operator_keyed_state_value_clear(&n);
}

size_t weir__host_list_get(const char *name, const weir_bytes **items) {
    packed_operator_string_t n = name_of(name);
    packed_operator_list_list_u8_t ret;
    weir_operator_keyed_state_list_get(&n, &ret);
    *items = NULL;
    if (ret.len == 0) return 0;
    weir_bytes *out = weir__arena_alloc(ret.len * sizeof *out);
    for (size_t i = 0; i < ret.len; i++) out[i] = take_list(ret.ptr[i]);
    free(ret.ptr);
    *items = out;
    return ret.len;
}

void weir__host_list_add(const char *name, weir_bytes value) {
    packed_operator_string_t n = name_of(name);
    packed_operator_list_u8_t v = list_of(value);
    weir_operator_keyed_state_list_add(&n, &v);
}

void weir__host_list_clear(const char *name) {
    packed_operator_string_t n = name_of(name);
    weir_operator_keyed_state_list_clear(&n);
}

bool weir__host_map_get(const char *name, weir_bytes map_key, weir_bytes *out) {
    packed_operator_string_t n = name_of(name);
    packed_operator_list_u8_t k = list_of(map_key), ret;
    if (!weir_operator_keyed_state_map_get(&n, &k, &ret)) return false;
    *out = take_list(ret);
    return true;
}

void weir__host_map_put(const char *name, weir_bytes map_key, weir_bytes value) {
    packed_operator_string_t n = name_of(name);
    packed_operator_list_u8_t k = list_of(map_key), v = list_of(value);
    weir_operator_keyed_state_map_put(&n, &k, &v);
}

void weir__host_map_remove(const char *name, weir_bytes map_key) {
    packed_operator_string_t n = name_of(name);
    packed_operator_list_u8_t k = list_of(map_key);
    weir_operator_keyed_state_map_remove(&n, &k);
}

size_t weir__host_map_entries(const char *name, const weir_entry **entries) {
    packed_operator_string_t n = name_of(name);
    packed_operator_list_tuple2_list_u8_list_u8_t ret;
    weir_operator_keyed_state_map_entries(&n, &ret);
    *entries = NULL;
    if (ret.len == 0) return 0;
    weir_entry *out = weir__arena_alloc(ret.len * sizeof *out);
    for (size_t i = 0; i < ret.len; i++) {
        out[i].key = take_list(ret.ptr[i].f0);
        out[i].value = take_list(ret.ptr[i].f1);
    }
    free(ret.ptr);
    *entries = out;
    return ret.len;
}

void weir__host_map_clear(const char *name) {
    packed_operator_string_t n = name_of(name);
    weir_operator_keyed_state_map_clear(&n);
}

int64_t weir__host_current_watermark(void) { return weir_operator_timers_current_watermark(); }

int64_t weir__host_current_processing_time(void) { return weir_operator_timers_current_processing_time(); }

void weir__host_register_timer(weir_time_domain domain, int64_t ts) {
    weir_operator_timers_register_timer((weir_operator_timers_time_domain_t)domain, ts);
}

void weir__host_delete_timer(weir_time_domain domain, int64_t ts) {
    weir_operator_timers_delete_timer((weir_operator_timers_time_domain_t)domain, ts);
}

void weir_log(weir_level level, const char *fmt, ...) {
    weir_buf text = {0};
    va_list ap;
    va_start(ap, fmt);
    weir__log_text(&text, fmt, ap);
    va_end(ap);
    packed_operator_string_t msg = {text.ptr, text.len};
    weir_operator_logging_log((weir_operator_logging_level_t)level, &msg);
    weir_buf_free(&text);
}

/* ---- exports ------------------------------------------------------------------ */

static weir_operator_types_stream_record_t record_out(const weir__output *o) {
    weir_operator_types_stream_record_t r;
    r.key.is_some = o->has_key;
    r.key.val.ptr = o->key;
    r.key.val.len = o->key_len;
    r.value.ptr = o->value;
    r.value.len = o->value_len;
    r.timestamp.is_some = o->has_timestamp;
    r.timestamp.val = o->timestamp;
    return r;
}

/* Moves the runtime's outputs into the generated list (the buffers change
 * owner: the post-return function frees them). */
static void outputs_out(weir__outputs outs, exports_weir_operator_handler_list_output_t *ret) {
    ret->len = outs.len;
    ret->ptr = NULL;
    if (outs.len) ret->ptr = weir__xmalloc(outs.len * sizeof *ret->ptr);
    for (size_t i = 0; i < outs.len; i++) {
        const weir__output *o = &outs.ptr[i];
        exports_weir_operator_handler_output_t *x = &ret->ptr[i];
        memset(x, 0, sizeof *x);
        switch (o->kind) {
        case WEIR__EMIT:
            x->tag = WEIR_OPERATOR_TYPES_OUTPUT_EMIT;
            x->val.emit = record_out(o);
            break;
        case WEIR__SIDE:
            x->tag = WEIR_OPERATOR_TYPES_OUTPUT_SIDE;
            x->val.side.output.ptr = (uint8_t *)o->side;
            x->val.side.output.len = o->side_len;
            x->val.side.record = record_out(o);
            break;
        case WEIR__ERROR:
            x->tag = WEIR_OPERATOR_TYPES_OUTPUT_ERROR;
            x->val.error.input = o->input;
            x->val.error.message.ptr = (uint8_t *)o->message;
            x->val.error.message.len = o->message_len;
            break;
        }
    }
    free(outs.ptr);
}

bool exports_weir_operator_handler_open(exports_weir_operator_handler_context_t *ctx, packed_operator_string_t *err) {
    char *id = weir__xmalloc(ctx->subtask.operator_id.len + 1);
    memcpy(id, ctx->subtask.operator_id.ptr, ctx->subtask.operator_id.len);
    id[ctx->subtask.operator_id.len] = 0;
    weir_subtask st = {id, ctx->subtask.index, ctx->subtask.parallelism, ctx->subtask.max_parallelism,
                       ctx->subtask.attempt};
    weir_bytes config = {ctx->config.ptr, ctx->config.len};
    char *msg = NULL;
    size_t len = 0;
    bool ok = weir__rt_open(&st, config, &msg, &len);
    free(id);
    exports_weir_operator_handler_context_free(ctx);
    return ok ? true : error_result(msg, len, err);
}

void exports_weir_operator_handler_process(exports_weir_operator_handler_list_stream_record_t *batch,
                                           exports_weir_operator_handler_list_output_t *ret) {
    weir_record *records = batch->len ? weir__xmalloc(batch->len * sizeof *records) : NULL;
    for (size_t i = 0; i < batch->len; i++) {
        const exports_weir_operator_handler_stream_record_t *r = &batch->ptr[i];
        records[i].has_key = r->key.is_some;
        records[i].key.ptr = r->key.is_some ? r->key.val.ptr : NULL;
        records[i].key.len = r->key.is_some ? r->key.val.len : 0;
        records[i].value.ptr = r->value.ptr;
        records[i].value.len = r->value.len;
        records[i].has_timestamp = r->timestamp.is_some;
        records[i].timestamp = r->timestamp.is_some ? r->timestamp.val : 0;
    }
    weir__outputs outs = weir__rt_process(records, batch->len);
    free(records);
    exports_weir_operator_handler_list_stream_record_free(batch);
    outputs_out(outs, ret);
}

void exports_weir_operator_packed_handler_process_packed(packed_operator_list_u8_t *batch,
                                                         packed_operator_list_u8_t *ret) {
    weir_record *records;
    size_t n;
    if (!weir__packed_read((weir_bytes){batch->ptr, batch->len}, &records, &n)) {
        /* the format says: bytes that do not follow it fail the call as a
         * trap does */
        __builtin_trap();
    }
    weir__outputs outs = weir__rt_process(records, n);
    free(records);
    weir_buf packed = {0};
    weir__packed_write(&outs, &packed);
    for (size_t i = 0; i < outs.len; i++) weir__output_free(&outs.ptr[i]);
    free(outs.ptr);
    packed_operator_list_u8_free(batch);
    /* the generated post-return frees the result with free() */
    ret->ptr = packed.len ? packed.ptr : NULL;
    ret->len = packed.len;
    if (!packed.len) weir_buf_free(&packed);
}

void exports_weir_operator_handler_on_timer(packed_operator_list_u8_t *key, int64_t timestamp,
                                            exports_weir_operator_handler_time_domain_t domain,
                                            exports_weir_operator_handler_list_output_t *ret) {
    weir_bytes k = {key->ptr, key->len};
    weir__outputs outs = weir__rt_on_timer(k, timestamp, (weir_time_domain)domain);
    packed_operator_list_u8_free(key);
    outputs_out(outs, ret);
}

bool exports_weir_operator_handler_close(packed_operator_string_t *err) {
    char *msg = NULL;
    size_t len = 0;
    return weir__rt_close(&msg, &len) ? true : error_result(msg, len, err);
}

bool exports_weir_operator_checkpointed_snapshot_state(uint64_t checkpoint_id, packed_operator_list_list_u8_t *ret,
                                                       packed_operator_string_t *err) {
    weir_bytes *items = NULL;
    size_t n = 0;
    char *msg = NULL;
    size_t len = 0;
    if (!weir__rt_snapshot(checkpoint_id, &items, &n, &msg, &len)) return error_result(msg, len, err);
    ret->len = n;
    ret->ptr = NULL;
    if (n) ret->ptr = weir__xmalloc(n * sizeof *ret->ptr);
    for (size_t i = 0; i < n; i++) {
        ret->ptr[i].ptr = (uint8_t *)items[i].ptr;
        ret->ptr[i].len = items[i].len;
    }
    free(items);
    return true;
}

bool exports_weir_operator_checkpointed_restore_state(packed_operator_list_list_u8_t *items, packed_operator_string_t *err) {
    weir_bytes *xs = items->len ? weir__xmalloc(items->len * sizeof *xs) : NULL;
    for (size_t i = 0; i < items->len; i++) {
        xs[i].ptr = items->ptr[i].len ? items->ptr[i].ptr : NULL;
        xs[i].len = items->ptr[i].len;
    }
    char *msg = NULL;
    size_t len = 0;
    bool ok = weir__rt_restore(xs, items->len, &msg, &len);
    free(xs);
    packed_operator_list_list_u8_free(items);
    return ok ? true : error_result(msg, len, err);
}
