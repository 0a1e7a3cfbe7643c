/* The conformance function of the C SDK: the rules of
 * `guest-sdk/conformance/README.md`, checked against `cases.json` by
 * `tests/tests/conformance.rs`. State is stored as the other SDKs store it:
 * value `count` a JSON integer, list `items` the JSON of each `x`, map `m`
 * keyed by the JSON string of `k` (with quotes) with the JSON of `v`. */
#include "weir.h"

#include <stdlib.h>
#include <string.h>

static weir_buf prefix; /* the config's prefix, as a JSON string */
static int64_t seen;    /* records with a known op since the start */

bool weir_open(const weir_subtask *subtask, weir_bytes config) {
    (void)subtask;
    weir_buf_free(&prefix);
    weir_buf_json_string(&prefix, WEIR_STR("p"));
    seen = 0;
    if (weir_json_type(config) != WEIR_JSON_OBJECT || !weir_json_valid(config)) {
        weir_set_error("config is not a JSON object");
        return false;
    }
    size_t pos = 0;
    weir_bytes k, v;
    while (weir_json_object_next(config, &pos, &k, &v)) {
        if (weir_bytes_eq_str(k, "\"prefix\"")) {
            weir_buf text = {0};
            if (!weir_json_string(v, &text)) {
                weir_set_error("config field prefix must be text");
                return false;
            }
            weir_buf_reset(&prefix);
            weir_buf_json_string(&prefix, weir_buf_bytes(&text));
            weir_buf_free(&text);
        } else {
            weir_set_error("unknown config field(s) %.*s", (int)k.len, (const char *)k.ptr);
            return false;
        }
    }
    return true;
}

/* The value state `count` of the current key, 0 when none. */
static int64_t count_of(weir_context *ctx) {
    weir_bytes b;
    int64_t n = 0;
    if (weir_value_get(ctx, "count", &b) && !weir_json_int(b, &n)) n = 0;
    return n;
}

/* Field `name` of the record value, or a per-record error. */
static bool need(weir_context *ctx, weir_bytes value, const char *op, const char *name, weir_bytes *out) {
    if (weir_json_field(value, name, out)) return true;
    weir_record_error(ctx, "op %s needs field %s", op, name);
    return false;
}

/* The map key of `k`: its JSON string (re-encoded, so equal texts give
 * equal bytes whatever escapes the input used). */
static bool map_key(weir_context *ctx, weir_bytes value, const char *op, weir_buf *key) {
    weir_bytes k;
    weir_buf text = {0};
    if (!need(ctx, value, op, "k", &k)) return false;
    if (!weir_json_string(k, &text)) {
        weir_record_error(ctx, "op %s: k must be text", op);
        return false;
    }
    weir_buf_json_string(key, weir_buf_bytes(&text));
    weir_buf_free(&text);
    return true;
}

static const char *const OPS[] = {"echo", "side", "fail", "count", "append", "put", "get",
                                  "remove", "entries", "clear", "timer", "cancel", "seen"};

void weir_process(weir_context *ctx, const weir_record *record) {
    weir_bytes value = record->value, op_span, x;
    if (!weir_json_valid(value)) {
        weir_record_error(ctx, "the value is not JSON");
        return;
    }
    if (!record->has_key) {
        weir_record_error(ctx, "a record without a key (the function needs a keyed stream)");
        return;
    }
    weir_buf op = {0};
    if (weir_json_type(value) != WEIR_JSON_OBJECT || !weir_json_field(value, "op", &op_span) ||
        !weir_json_string(op_span, &op)) {
        weir_record_error(ctx, "unknown op (the value has no text op)");
        weir_buf_free(&op);
        return;
    }
    const char *name = (const char *)op.ptr;
    bool known = false;
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++) known |= strcmp(name, OPS[i]) == 0;
    if (!known || strlen(name) != op.len) {
        weir_record_error(ctx, "unknown op %s", name);
        weir_buf_free(&op);
        return;
    }
    seen++;

    weir_buf out = {0}, key = {0};
    if (!strcmp(name, "echo")) {
        if (need(ctx, value, name, "x", &x)) {
            weir_buf_puts(&out, "{\"x\":");
            weir_buf_append(&out, x.ptr, x.len);
            weir_buf_puts(&out, ",\"prefix\":");
            weir_buf_append(&out, prefix.ptr, prefix.len);
            weir_buf_puts(&out, "}");
            weir_emit(ctx, weir_buf_bytes(&out));
        }
    } else if (!strcmp(name, "side")) {
        weir_bytes o;
        weir_buf output = {0};
        if (need(ctx, value, name, "output", &o) && need(ctx, value, name, "x", &x)) {
            if (!weir_json_string(o, &output)) {
                weir_record_error(ctx, "op side: output must be text");
            } else {
                weir_buf_puts(&out, "{\"x\":");
                weir_buf_append(&out, x.ptr, x.len);
                weir_buf_puts(&out, "}");
                weir_emit_side(ctx, (const char *)output.ptr, weir_buf_bytes(&out));
            }
        }
        weir_buf_free(&output);
    } else if (!strcmp(name, "fail")) {
        weir_bytes m;
        weir_buf text = {0};
        if (weir_json_field(value, "message", &m) && weir_json_string(m, &text))
            weir_record_error(ctx, "%s", (const char *)text.ptr);
        else
            weir_record_error(ctx, "fail");
        weir_buf_free(&text);
    } else if (!strcmp(name, "count")) {
        int64_t n = count_of(ctx) + 1;
        weir_buf_json_int(&out, n);
        weir_value_set(ctx, "count", weir_buf_bytes(&out));
        weir_buf_reset(&out);
        weir_buf_printf(&out, "{\"count\":%lld}", (long long)n);
        weir_emit(ctx, weir_buf_bytes(&out));
    } else if (!strcmp(name, "append")) {
        if (need(ctx, value, name, "x", &x)) {
            weir_list_add(ctx, "items", x);
            const weir_bytes *items;
            size_t n = weir_list_get(ctx, "items", &items);
            weir_buf_puts(&out, "{\"items\":[");
            for (size_t i = 0; i < n; i++) {
                if (i) weir_buf_puts(&out, ",");
                weir_buf_append(&out, items[i].ptr, items[i].len);
            }
            weir_buf_puts(&out, "]}");
            weir_emit(ctx, weir_buf_bytes(&out));
        }
    } else if (!strcmp(name, "put")) {
        weir_bytes v;
        if (map_key(ctx, value, name, &key) && need(ctx, value, name, "v", &v))
            weir_map_put(ctx, "m", weir_buf_bytes(&key), v);
    } else if (!strcmp(name, "get")) {
        weir_bytes v;
        if (map_key(ctx, value, name, &key)) {
            weir_buf_puts(&out, "{\"k\":");
            weir_buf_append(&out, key.ptr, key.len);
            weir_buf_puts(&out, ",\"v\":");
            if (weir_map_get(ctx, "m", weir_buf_bytes(&key), &v)) weir_buf_append(&out, v.ptr, v.len);
            else weir_buf_puts(&out, "null");
            weir_buf_puts(&out, "}");
            weir_emit(ctx, weir_buf_bytes(&out));
        }
    } else if (!strcmp(name, "remove")) {
        if (map_key(ctx, value, name, &key)) weir_map_remove(ctx, "m", weir_buf_bytes(&key));
    } else if (!strcmp(name, "entries")) {
        const weir_entry *e;
        size_t n = weir_map_entries(ctx, "m", &e);
        weir_buf_puts(&out, "{\"entries\":[");
        for (size_t i = 0; i < n; i++) {
            weir_buf_puts(&out, i ? ",[" : "[");
            weir_buf_append(&out, e[i].key.ptr, e[i].key.len);
            weir_buf_puts(&out, ",");
            weir_buf_append(&out, e[i].value.ptr, e[i].value.len);
            weir_buf_puts(&out, "]");
        }
        weir_buf_puts(&out, "]}");
        weir_emit(ctx, weir_buf_bytes(&out));
    } else if (!strcmp(name, "clear")) {
        weir_value_clear(ctx, "count");
        weir_list_clear(ctx, "items");
        weir_map_clear(ctx, "m");
    } else if (!strcmp(name, "timer") || !strcmp(name, "cancel")) {
        weir_bytes at;
        int64_t ts;
        if (need(ctx, value, name, "at", &at)) {
            if (!weir_json_int(at, &ts)) weir_record_error(ctx, "op %s: at must be an integer", name);
            else if (name[0] == 't') weir_register_timer(ctx, WEIR_EVENT_TIME, ts);
            else weir_delete_timer(ctx, WEIR_EVENT_TIME, ts);
        }
    } else { /* seen */
        weir_buf_printf(&out, "{\"seen\":%lld}", (long long)seen);
        weir_emit(ctx, weir_buf_bytes(&out));
    }
    weir_buf_free(&out);
    weir_buf_free(&key);
    weir_buf_free(&op);
}

void weir_on_timer(weir_context *ctx, int64_t timestamp, weir_time_domain domain) {
    (void)domain;
    weir_buf out = {0};
    weir_buf_printf(&out, "{\"timer\":%lld,\"count\":%lld}", (long long)timestamp, (long long)count_of(ctx));
    weir_emit(ctx, weir_buf_bytes(&out));
    weir_buf_free(&out);
}

bool weir_snapshot(uint64_t checkpoint_id, weir_items *items) {
    (void)checkpoint_id;
    weir_buf item = {0};
    weir_buf_printf(&item, "{\"seen\":%lld}", (long long)seen);
    weir_items_add(items, weir_buf_bytes(&item));
    weir_buf_free(&item);
    return true;
}

bool weir_restore(const weir_bytes *items, size_t n) {
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        weir_bytes s;
        int64_t v;
        if (!weir_json_field(items[i], "seen", &s) || !weir_json_int(s, &v)) {
            weir_set_error("operator state item %zu is not {\"seen\": n}", i);
            return false;
        }
        total += v;
    }
    seen = total;
    return true;
}
