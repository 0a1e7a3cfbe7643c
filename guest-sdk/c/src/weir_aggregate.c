/* Weir C guest SDK: the exports of world `aggregate` over the bindings that
 * `wit-bindgen c` generates (aggregate.h). Exports own their arguments (freed
 * here) and hand over their results (freed by the generated post-return). */
#include "aggregate.h"
#include "weir_aggregate.h"
#include "weir_host.h"

#include <stdlib.h>
#include <string.h>

__attribute__((weak)) bool weir_agg_open(weir_bytes config_json) {
    (void)config_json;
    return true;
}

void weir_log(weir_level level, const char *fmt, ...) {
    weir_buf text = {0};
    va_list ap;
    va_start(ap, fmt);
    weir__log_text(&text, fmt, ap);
    va_end(ap);
    aggregate_string_t msg = {text.ptr, text.len};
    weir_operator_logging_log((weir_operator_logging_level_t)level, &msg);
    weir_buf_free(&text);
}

static weir_bytes view(const aggregate_list_u8_t *l) {
    weir_bytes b = {l->len ? l->ptr : NULL, l->len};
    return b;
}

static bool fail(const char *fallback, aggregate_string_t *err) {
    size_t len;
    char *msg = weir__take_error(fallback, &len);
    err->ptr = (uint8_t *)msg;
    err->len = len;
    if (len == 0) free(msg), err->ptr = NULL;
    return false;
}

/* Hands a buffer over as a result list (NULL when empty). */
static aggregate_list_u8_t hand_over(weir_buf *b) {
    aggregate_list_u8_t l = {b->ptr, b->len};
    if (b->len == 0) weir_buf_free(b), l.ptr = NULL;
    return l;
}

bool exports_weir_operator_aggregator_open(exports_weir_operator_aggregator_context_t *ctx, aggregate_string_t *err) {
    weir__clear_error();
    weir_bytes config = {ctx->config.ptr, ctx->config.len};
    bool ok = weir_agg_open(config);
    exports_weir_operator_aggregator_context_free(ctx);
    return ok ? true : fail("weir_agg_open failed", err);
}

void exports_weir_operator_aggregator_create_accumulator(aggregate_list_u8_t *ret) {
    weir_buf acc = {0};
    weir_agg_create(&acc);
    *ret = hand_over(&acc);
}

bool exports_weir_operator_aggregator_add(aggregate_list_u8_t *accumulator, aggregate_list_list_u8_t *values,
                                          aggregate_list_u8_t *ret, aggregate_string_t *err) {
    weir__clear_error();
    weir_bytes *xs = values->len ? weir__xmalloc(values->len * sizeof *xs) : NULL;
    for (size_t i = 0; i < values->len; i++) xs[i] = view(&values->ptr[i]);
    weir_buf out = {0};
    bool ok = weir_agg_add(view(accumulator), xs, values->len, &out);
    free(xs);
    aggregate_list_u8_free(accumulator);
    aggregate_list_list_u8_free(values);
    if (!ok) {
        weir_buf_free(&out);
        return fail("weir_agg_add failed", err);
    }
    *ret = hand_over(&out);
    return true;
}

bool exports_weir_operator_aggregator_merge(aggregate_list_u8_t *accumulator, aggregate_list_u8_t *other,
                                            aggregate_list_u8_t *ret, aggregate_string_t *err) {
    weir__clear_error();
    weir_buf out = {0};
    bool ok = weir_agg_merge(view(accumulator), view(other), &out);
    aggregate_list_u8_free(accumulator);
    aggregate_list_u8_free(other);
    if (!ok) {
        weir_buf_free(&out);
        return fail("weir_agg_merge failed", err);
    }
    *ret = hand_over(&out);
    return true;
}

bool exports_weir_operator_aggregator_get_result(aggregate_list_u8_t *accumulator, aggregate_string_t *ret,
                                                 aggregate_string_t *err) {
    weir__clear_error();
    weir_buf out = {0};
    bool ok = weir_agg_result(view(accumulator), &out);
    aggregate_list_u8_free(accumulator);
    if (!ok) {
        weir_buf_free(&out);
        return fail("weir_agg_result failed", err);
    }
    /* A string result must be UTF-8 (or the host traps): check it is a JSON
     * document, which implies UTF-8, and say so otherwise. */
    if (weir_json_type(weir_buf_bytes(&out)) != WEIR_JSON_OBJECT || !weir_json_valid(weir_buf_bytes(&out))) {
        weir_buf_free(&out);
        weir_set_error("weir_agg_result did not write a JSON object");
        return fail("", err);
    }
    aggregate_list_u8_t l = hand_over(&out);
    ret->ptr = l.ptr;
    ret->len = l.len;
    return true;
}
