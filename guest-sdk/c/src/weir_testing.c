/* Weir C guest SDK: the native in-memory host, the test harness, the test
 * runner and `main` of native test programs. */
#include "weir_testing.h"
#include "weir_host.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Aggregate test programs link no operator runtime: reference it weakly. */
#pragma weak weir__arena_alloc
#pragma weak weir__rt_open
#pragma weak weir__rt_process
#pragma weak weir__rt_on_timer
#pragma weak weir__rt_close
#pragma weak weir__rt_snapshot
#pragma weak weir__rt_restore
#pragma weak weir__output_free

/* ---- the in-memory store ---------------------------------------------------- */

typedef struct blob {
    uint8_t *p;
    size_t n;
} blob;

typedef struct kv {
    blob k, v;
} kv;

enum { KIND_VALUE = 1, KIND_LIST, KIND_MAP };

typedef struct cell {
    blob key;
    char *name;
    int kind;
    bool has_value;
    blob value;
    blob *items;
    size_t nitems, capitems;
    kv *entries;
    size_t nentries, capentries;
} cell;

typedef struct timer {
    blob key;
    int64_t ts;
    weir_time_domain domain;
} timer;

typedef struct store {
    cell *cells;
    size_t ncells, capcells;
    timer *timers;
    size_t ntimers, captimers;
} store;

static blob blob_of(const void *p, size_t n) {
    blob b = {NULL, n};
    if (n) {
        b.p = weir__xmalloc(n);
        memcpy(b.p, p, n);
    }
    return b;
}

static weir_bytes bytes_of(blob b) {
    weir_bytes s = {b.p, b.n};
    return s;
}

static int blob_cmp(weir_bytes a, weir_bytes b) {
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c) return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

static void cell_free(cell *c) {
    free(c->key.p);
    free(c->name);
    free(c->value.p);
    for (size_t i = 0; i < c->nitems; i++) free(c->items[i].p);
    free(c->items);
    for (size_t i = 0; i < c->nentries; i++) free(c->entries[i].k.p), free(c->entries[i].v.p);
    free(c->entries);
}

static void store_free(store *s) {
    for (size_t i = 0; i < s->ncells; i++) cell_free(&s->cells[i]);
    free(s->cells);
    for (size_t i = 0; i < s->ntimers; i++) free(s->timers[i].key.p);
    free(s->timers);
    memset(s, 0, sizeof *s);
}

static store store_clone(const store *s) {
    store c = {0};
    c.ncells = c.capcells = s->ncells;
    c.cells = weir__xmalloc((s->ncells ? s->ncells : 1) * sizeof *c.cells);
    for (size_t i = 0; i < s->ncells; i++) {
        const cell *a = &s->cells[i];
        cell *b = &c.cells[i];
        memset(b, 0, sizeof *b);
        b->key = blob_of(a->key.p, a->key.n);
        b->name = weir__xmalloc(strlen(a->name) + 1);
        strcpy(b->name, a->name);
        b->kind = a->kind;
        b->has_value = a->has_value;
        b->value = blob_of(a->value.p, a->value.n);
        b->nitems = b->capitems = a->nitems;
        b->items = weir__xmalloc((a->nitems ? a->nitems : 1) * sizeof *b->items);
        for (size_t j = 0; j < a->nitems; j++) b->items[j] = blob_of(a->items[j].p, a->items[j].n);
        b->nentries = b->capentries = a->nentries;
        b->entries = weir__xmalloc((a->nentries ? a->nentries : 1) * sizeof *b->entries);
        for (size_t j = 0; j < a->nentries; j++) {
            b->entries[j].k = blob_of(a->entries[j].k.p, a->entries[j].k.n);
            b->entries[j].v = blob_of(a->entries[j].v.p, a->entries[j].v.n);
        }
    }
    c.ntimers = c.captimers = s->ntimers;
    c.timers = weir__xmalloc((s->ntimers ? s->ntimers : 1) * sizeof *c.timers);
    for (size_t i = 0; i < s->ntimers; i++) {
        c.timers[i] = s->timers[i];
        c.timers[i].key = blob_of(s->timers[i].key.p, s->timers[i].key.n);
    }
    return c;
}

/* ---- host state ---------------------------------------------------------------- */

static store st;
static bool has_current_key;
static blob current_key;
static int64_t watermark = INT64_MIN;
static int64_t processing_time;

static void host_trap(const char *what) {
    fprintf(stderr, "weir testing host: %s (the host would trap the instance)\n", what);
    fflush(stderr);
    abort();
}

static cell *find_cell(weir_bytes key, const char *name, int kind, bool create) {
    for (size_t i = 0; i < st.ncells; i++) {
        cell *c = &st.cells[i];
        if (strcmp(c->name, name) != 0) continue;
        if (c->kind != kind) host_trap("one state name used as two kinds of state");
        if (blob_cmp(bytes_of(c->key), key) == 0) return c;
    }
    if (!create) return NULL;
    if (st.ncells == st.capcells) {
        st.capcells = st.capcells ? st.capcells * 2 : 16;
        st.cells = weir__xrealloc(st.cells, st.capcells * sizeof *st.cells);
    }
    cell *c = &st.cells[st.ncells++];
    memset(c, 0, sizeof *c);
    c->key = blob_of(key.ptr, key.len);
    c->name = weir__xmalloc(strlen(name) + 1);
    strcpy(c->name, name);
    c->kind = kind;
    return c;
}

static cell *cur_cell(const char *name, int kind, bool create) {
    if (!has_current_key) host_trap("keyed state used without a current key (a record without a key?)");
    return find_cell(bytes_of(current_key), name, kind, create);
}

/* A copy in the runtime's arena. */
static weir_bytes arena_copy(blob b) {
    weir_bytes out = {NULL, b.n};
    if (b.n) {
        uint8_t *p = weir__arena_alloc(b.n);
        memcpy(p, b.p, b.n);
        out.ptr = p;
    }
    return out;
}

void weir__host_set_current_key(weir_bytes key) {
    blob next = blob_of(key.ptr, key.len); /* key may point at current_key */
    free(current_key.p);
    current_key = next;
    has_current_key = true;
}

bool weir__host_value_get(const char *name, weir_bytes *out) {
    cell *c = cur_cell(name, KIND_VALUE, false);
    if (!c || !c->has_value) return false;
    *out = arena_copy(c->value);
    return true;
}

void weir__host_value_set(const char *name, weir_bytes value) {
    cell *c = cur_cell(name, KIND_VALUE, true);
    free(c->value.p);
    c->value = blob_of(value.ptr, value.len);
    c->has_value = true;
}

void weir__host_value_clear(const char *name) {
    cell *c = cur_cell(name, KIND_VALUE, false);
    if (!c) return;
    free(c->value.p);
    c->value.p = NULL;
    c->value.n = 0;
    c->has_value = false;
}

static size_t list_copy(const cell *c, const weir_bytes **items) {
    *items = NULL;
    if (!c || !c->nitems) return 0;
    weir_bytes *out = weir__arena_alloc(c->nitems * sizeof *out);
    for (size_t i = 0; i < c->nitems; i++) out[i] = arena_copy(c->items[i]);
    *items = out;
    return c->nitems;
}

size_t weir__host_list_get(const char *name, const weir_bytes **items) {
    return list_copy(cur_cell(name, KIND_LIST, false), items);
}

void weir__host_list_add(const char *name, weir_bytes value) {
    cell *c = cur_cell(name, KIND_LIST, true);
    if (c->nitems == c->capitems) {
        c->capitems = c->capitems ? c->capitems * 2 : 4;
        c->items = weir__xrealloc(c->items, c->capitems * sizeof *c->items);
    }
    c->items[c->nitems++] = blob_of(value.ptr, value.len);
}

void weir__host_list_clear(const char *name) {
    cell *c = cur_cell(name, KIND_LIST, false);
    if (!c) return;
    for (size_t i = 0; i < c->nitems; i++) free(c->items[i].p);
    c->nitems = 0;
}

/* Index of the first entry whose key is >= k; *found when equal. */
static size_t map_find(const cell *c, weir_bytes k, bool *found) {
    size_t lo = 0, hi = c->nentries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (blob_cmp(bytes_of(c->entries[mid].k), k) < 0) lo = mid + 1;
        else hi = mid;
    }
    *found = lo < c->nentries && blob_cmp(bytes_of(c->entries[lo].k), k) == 0;
    return lo;
}

bool weir__host_map_get(const char *name, weir_bytes map_key, weir_bytes *out) {
    cell *c = cur_cell(name, KIND_MAP, false);
    bool found;
    if (!c) return false;
    size_t i = map_find(c, map_key, &found);
    if (!found) return false;
    *out = arena_copy(c->entries[i].v);
    return true;
}

void weir__host_map_put(const char *name, weir_bytes map_key, weir_bytes value) {
    cell *c = cur_cell(name, KIND_MAP, true);
    bool found;
    size_t i = map_find(c, map_key, &found);
    if (found) {
        free(c->entries[i].v.p);
        c->entries[i].v = blob_of(value.ptr, value.len);
        return;
    }
    if (c->nentries == c->capentries) {
        c->capentries = c->capentries ? c->capentries * 2 : 4;
        c->entries = weir__xrealloc(c->entries, c->capentries * sizeof *c->entries);
    }
    memmove(&c->entries[i + 1], &c->entries[i], (c->nentries - i) * sizeof *c->entries);
    c->entries[i].k = blob_of(map_key.ptr, map_key.len);
    c->entries[i].v = blob_of(value.ptr, value.len);
    c->nentries++;
}

void weir__host_map_remove(const char *name, weir_bytes map_key) {
    cell *c = cur_cell(name, KIND_MAP, false);
    bool found;
    if (!c) return;
    size_t i = map_find(c, map_key, &found);
    if (!found) return;
    free(c->entries[i].k.p);
    free(c->entries[i].v.p);
    memmove(&c->entries[i], &c->entries[i + 1], (c->nentries - i - 1) * sizeof *c->entries);
    c->nentries--;
}

static size_t entries_copy(const cell *c, const weir_entry **entries) {
    *entries = NULL;
    if (!c || !c->nentries) return 0;
    weir_entry *out = weir__arena_alloc(c->nentries * sizeof *out);
    for (size_t i = 0; i < c->nentries; i++) {
        out[i].key = arena_copy(c->entries[i].k);
        out[i].value = arena_copy(c->entries[i].v);
    }
    *entries = out;
    return c->nentries;
}

size_t weir__host_map_entries(const char *name, const weir_entry **entries) {
    return entries_copy(cur_cell(name, KIND_MAP, false), entries);
}

void weir__host_map_clear(const char *name) {
    cell *c = cur_cell(name, KIND_MAP, false);
    if (!c) return;
    for (size_t i = 0; i < c->nentries; i++) free(c->entries[i].k.p), free(c->entries[i].v.p);
    c->nentries = 0;
}

int64_t weir__host_current_watermark(void) { return watermark; }

int64_t weir__host_current_processing_time(void) { return processing_time; }

static size_t timer_find(weir_bytes key, weir_time_domain domain, int64_t ts) {
    for (size_t i = 0; i < st.ntimers; i++) {
        timer *t = &st.timers[i];
        if (t->ts == ts && t->domain == domain && blob_cmp(bytes_of(t->key), key) == 0) return i;
    }
    return SIZE_MAX;
}

void weir__host_register_timer(weir_time_domain domain, int64_t ts) {
    if (!has_current_key) host_trap("timer registered without a current key");
    if (timer_find(bytes_of(current_key), domain, ts) != SIZE_MAX) return;
    if (st.ntimers == st.captimers) {
        st.captimers = st.captimers ? st.captimers * 2 : 8;
        st.timers = weir__xrealloc(st.timers, st.captimers * sizeof *st.timers);
    }
    timer *t = &st.timers[st.ntimers++];
    t->key = blob_of(current_key.p, current_key.n);
    t->ts = ts;
    t->domain = domain;
}

void weir__host_delete_timer(weir_time_domain domain, int64_t ts) {
    if (!has_current_key) host_trap("timer deleted without a current key");
    size_t i = timer_find(bytes_of(current_key), domain, ts);
    if (i == SIZE_MAX) return;
    free(st.timers[i].key.p);
    st.timers[i] = st.timers[--st.ntimers];
}

void weir_log(weir_level level, const char *fmt, ...) {
    static const char *names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR"};
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%s] ", (unsigned)level < 5 ? names[level] : "?");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- harness ------------------------------------------------------------------- */

static weir__outputs last;      /* outputs of the last call, as the runtime made them */
static weir_output *views; /* their views */
static size_t nviews;
static char *error_text;
static char *open_config;
static bool has_checkpoint;
static store checkpoint_store;
static weir_bytes *checkpoint_items;
static size_t checkpoint_nitems;
static const weir_output none_output = {WEIR_TEST_NONE, false, {NULL, 0}, {NULL, 0}, false, 0, "", "", 0};
/* what the state getters hand out: freed at the next harness call */
static void **handed;
static size_t nhanded, caphanded;

static void hand(void *p) {
    if (nhanded == caphanded) {
        caphanded = caphanded ? caphanded * 2 : 16;
        handed = weir__xrealloc(handed, caphanded * sizeof *handed);
    }
    handed[nhanded++] = p;
}

static void clear_outputs(void) {
    for (size_t i = 0; i < last.len; i++) weir__output_free(&last.ptr[i]);
    free(last.ptr);
    last.ptr = NULL;
    last.len = 0;
    free(views);
    views = NULL;
    nviews = 0;
    for (size_t i = 0; i < nhanded; i++) free(handed[i]);
    nhanded = 0;
}

static void append_outputs(weir__outputs more) {
    if (!more.len) {
        free(more.ptr);
        return;
    }
    last.ptr = weir__xrealloc(last.ptr, (last.len + more.len) * sizeof *last.ptr);
    memcpy(last.ptr + last.len, more.ptr, more.len * sizeof *more.ptr);
    last.len += more.len;
    free(more.ptr);
}

static size_t finish_outputs(void) {
    views = weir__xrealloc(views, (last.len ? last.len : 1) * sizeof *views);
    nviews = last.len;
    for (size_t i = 0; i < last.len; i++) {
        const weir__output *o = &last.ptr[i];
        weir_output *v = &views[i];
        v->kind = o->kind == WEIR__EMIT ? WEIR_TEST_EMIT : o->kind == WEIR__SIDE ? WEIR_TEST_SIDE : WEIR_TEST_ERROR;
        v->has_key = o->has_key;
        v->key.ptr = o->key;
        v->key.len = o->key_len;
        v->value.ptr = o->value;
        v->value.len = o->value_len;
        v->has_timestamp = o->has_timestamp;
        v->timestamp = o->timestamp;
        v->side = o->side ? o->side : "";
        v->message = o->message ? o->message : "";
        v->input = o->input;
    }
    return last.len;
}

static void need_runtime(void) {
    if (!weir__rt_process) host_trap("the operator runtime (weir_runtime.c) is not linked");
}

static void set_error(char *msg) {
    free(error_text);
    error_text = msg;
}

const char *weir_test_error(void) { return error_text ? error_text : ""; }

static bool run_open(void) {
    weir_subtask sub = {"test", 0, 1, 128, 0};
    char *msg = NULL;
    size_t len = 0;
    bool ok = weir__rt_open(&sub, weir_str(open_config ? open_config : "{}"), &msg, &len);
    if (!ok) set_error(msg);
    return ok;
}

bool weir_test_open(const char *config_json) {
    need_runtime();
    clear_outputs();
    free(open_config);
    const char *c = config_json ? config_json : "{}";
    open_config = weir__xmalloc(strlen(c) + 1);
    strcpy(open_config, c);
    return run_open();
}

bool weir_test_close(void) {
    need_runtime();
    clear_outputs();
    char *msg = NULL;
    size_t len = 0;
    bool ok = weir__rt_close(&msg, &len);
    if (!ok) set_error(msg);
    return ok;
}

size_t weir_test_process_batch(const weir_record *records, size_t n) {
    need_runtime();
    clear_outputs();
    has_current_key = false; /* the host forgets the key between calls */
    append_outputs(weir__rt_process(records, n));
    return finish_outputs();
}

size_t weir_test_process_at(const char *key, const char *value, int64_t ts) {
    weir_record r = {key != NULL, weir_str(key), weir_str(value), true, ts};
    return weir_test_process_batch(&r, 1);
}

size_t weir_test_process(const char *key, const char *value) {
    weir_record r = {key != NULL, weir_str(key), weir_str(value), false, 0};
    return weir_test_process_batch(&r, 1);
}

/* Fires due timers of `domain` (ts <= now), earliest first, then by key. */
static void fire_timers(weir_time_domain domain, int64_t now) {
    for (;;) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < st.ntimers; i++) {
            timer *t = &st.timers[i];
            if (t->domain != domain || t->ts > now) continue;
            if (best == SIZE_MAX || t->ts < st.timers[best].ts ||
                (t->ts == st.timers[best].ts && blob_cmp(bytes_of(t->key), bytes_of(st.timers[best].key)) < 0))
                best = i;
        }
        if (best == SIZE_MAX) return;
        timer t = st.timers[best];
        st.timers[best] = st.timers[--st.ntimers];
        weir__host_set_current_key(bytes_of(t.key)); /* as the host does */
        append_outputs(weir__rt_on_timer(bytes_of(t.key), t.ts, domain));
        free(t.key.p);
    }
}

size_t weir_test_watermark(int64_t wm) {
    need_runtime();
    clear_outputs();
    if (wm > watermark) watermark = wm;
    fire_timers(WEIR_EVENT_TIME, watermark);
    return finish_outputs();
}

size_t weir_test_processing_time(int64_t now) {
    need_runtime();
    clear_outputs();
    if (now > processing_time) processing_time = now;
    fire_timers(WEIR_PROCESSING_TIME, processing_time);
    return finish_outputs();
}

size_t weir_test_output_count(void) { return nviews; }

const weir_output *weir_test_output(size_t i) { return i < nviews ? &views[i] : &none_output; }

/* A copy freed at the next harness call. */
static weir_bytes handed_copy(blob b) {
    weir_bytes out = {NULL, b.n};
    if (b.n) {
        uint8_t *p = weir__xmalloc(b.n);
        memcpy(p, b.p, b.n);
        hand(p);
        out.ptr = p;
    }
    return out;
}

bool weir_test_value(const char *key, const char *name, weir_bytes *out) {
    cell *c = find_cell(weir_str(key), name, KIND_VALUE, false);
    if (!c || !c->has_value) return false;
    *out = handed_copy(c->value);
    return true;
}

size_t weir_test_list(const char *key, const char *name, const weir_bytes **items) {
    cell *c = find_cell(weir_str(key), name, KIND_LIST, false);
    *items = NULL;
    if (!c || !c->nitems) return 0;
    weir_bytes *out = weir__xmalloc(c->nitems * sizeof *out);
    hand(out);
    for (size_t i = 0; i < c->nitems; i++) out[i] = handed_copy(c->items[i]);
    *items = out;
    return c->nitems;
}

bool weir_test_map_get(const char *key, const char *name, weir_bytes map_key, weir_bytes *out) {
    cell *c = find_cell(weir_str(key), name, KIND_MAP, false);
    bool found;
    if (!c) return false;
    size_t i = map_find(c, map_key, &found);
    if (!found) return false;
    *out = handed_copy(c->entries[i].v);
    return true;
}

size_t weir_test_map_entries(const char *key, const char *name, const weir_entry **entries) {
    cell *c = find_cell(weir_str(key), name, KIND_MAP, false);
    *entries = NULL;
    if (!c || !c->nentries) return 0;
    weir_entry *out = weir__xmalloc(c->nentries * sizeof *out);
    hand(out);
    for (size_t i = 0; i < c->nentries; i++) {
        out[i].key = handed_copy(c->entries[i].k);
        out[i].value = handed_copy(c->entries[i].v);
    }
    *entries = out;
    return c->nentries;
}

bool weir_test_has_timer(const char *key, weir_time_domain domain, int64_t ts) {
    return timer_find(weir_str(key), domain, ts) != SIZE_MAX;
}

size_t weir_test_timer_count(void) { return st.ntimers; }

static void free_checkpoint_items(void) {
    for (size_t i = 0; i < checkpoint_nitems; i++) free((void *)checkpoint_items[i].ptr);
    free(checkpoint_items);
    checkpoint_items = NULL;
    checkpoint_nitems = 0;
}

bool weir_test_checkpoint(uint64_t checkpoint_id) {
    need_runtime();
    clear_outputs();
    weir_bytes *items = NULL;
    size_t n = 0;
    char *msg = NULL;
    size_t len = 0;
    if (!weir__rt_snapshot(checkpoint_id, &items, &n, &msg, &len)) {
        set_error(msg);
        return false;
    }
    free_checkpoint_items();
    checkpoint_items = items;
    checkpoint_nitems = n;
    store_free(&checkpoint_store);
    checkpoint_store = store_clone(&st);
    has_checkpoint = true;
    return true;
}

size_t weir_test_checkpoint_items(const weir_bytes **items) {
    *items = checkpoint_items;
    return checkpoint_nitems;
}

bool weir_test_restore(void) {
    need_runtime();
    clear_outputs();
    if (!has_checkpoint) {
        char *msg = weir__xmalloc(32);
        strcpy(msg, "no checkpoint to restore");
        set_error(msg);
        return false;
    }
    store_free(&st);
    st = store_clone(&checkpoint_store);
    watermark = INT64_MIN;
    has_current_key = false;
    if (!run_open()) return false;
    if (checkpoint_nitems == 0) return true;
    char *msg = NULL;
    size_t len = 0;
    bool ok = weir__rt_restore(checkpoint_items, checkpoint_nitems, &msg, &len);
    if (!ok) set_error(msg);
    return ok;
}

void weir_test_reset(void) {
    clear_outputs();
    store_free(&st);
    store_free(&checkpoint_store);
    free_checkpoint_items();
    has_checkpoint = false;
    free(current_key.p);
    current_key.p = NULL;
    current_key.n = 0;
    has_current_key = false;
    watermark = INT64_MIN;
    processing_time = 0;
    set_error(NULL);
    free(open_config);
    open_config = NULL;
}

/* ---- test runner ------------------------------------------------------------------ */

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case;

static test_case *tests;
static size_t ntests, captests;
static int current_failures;

void weir_test__register(const char *name, void (*fn)(void)) {
    if (ntests == captests) {
        captests = captests ? captests * 2 : 32;
        tests = weir__xrealloc(tests, captests * sizeof *tests);
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    ntests++;
}

void weir_test__fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "    %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    current_failures++;
}

bool weir_test__json_eq(weir_bytes actual, const char *expected) {
    return weir_json_equal(actual, weir_str(expected));
}

bool weir_test__str_eq(const char *a, const char *b) {
    if (!a || !b) return a == b;
    return strcmp(a, b) == 0;
}

int main(void) {
    int passed = 0, failed = 0;
    for (size_t i = 0; i < ntests; i++) {
        weir_test_reset();
        current_failures = 0;
        tests[i].fn();
        if (current_failures) {
            failed++;
            printf("FAIL %s\n", tests[i].name);
        } else {
            passed++;
            printf("ok   %s\n", tests[i].name);
        }
        fflush(stdout);
    }
    weir_test_reset();
    printf("C tests: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
