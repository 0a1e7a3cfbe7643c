/* Weir C guest SDK, internal: the interface between the operator runtime
 * (weir_runtime.c) and a host. The Wasm build implements the `weir__host_*`
 * functions over the generated imports (weir_operator.c); native tests over
 * an in-memory host (weir_testing.c). Not for users. */
#ifndef WEIR_HOST_H
#define WEIR_HOST_H

#include "weir.h"

#include <stdarg.h>

/* ---- shared helpers (implemented in weir_json.c, linked by every build) ---- */

/** malloc/realloc that abort on failure (a trap in Wasm). */
void *weir__xmalloc(size_t n);
void *weir__xrealloc(void *p, size_t n);

/** Appends `s` to `b` with every byte that is not part of valid UTF-8
 * replaced by U+FFFD. */
void weir__buf_utf8(weir_buf *b, weir_bytes s);

/** Appends the printf-formatted `fmt` to `out` as valid UTF-8 (the text of
 * a `weir_log` line). */
void weir__log_text(weir_buf *out, const char *fmt, va_list ap);

/** The message set by `weir_set_error` since the last take (or `fallback`
 * when none was set), as valid UTF-8 in a malloc'ed NUL-terminated string
 * the caller frees; `*len` gets its length. Clears the stored message. */
char *weir__take_error(const char *fallback, size_t *len);

/** Forgets any message set by `weir_set_error`. */
void weir__clear_error(void);

/* ---- implemented by a host ------------------------------------------------
 * Returned bytes and arrays must stay valid until the end of the current
 * runtime call: hosts allocate them with `weir__arena_alloc` or hand
 * malloc'ed blocks to `weir__arena_adopt`. */

void weir__host_set_current_key(weir_bytes key);
bool weir__host_value_get(const char *name, weir_bytes *out);
void weir__host_value_set(const char *name, weir_bytes value);
void weir__host_value_clear(const char *name);
size_t weir__host_list_get(const char *name, const weir_bytes **items);
void weir__host_list_add(const char *name, weir_bytes value);
void weir__host_list_clear(const char *name);
bool weir__host_map_get(const char *name, weir_bytes map_key, weir_bytes *out);
void weir__host_map_put(const char *name, weir_bytes map_key, weir_bytes value);
void weir__host_map_remove(const char *name, weir_bytes map_key);
size_t weir__host_map_entries(const char *name, const weir_entry **entries);
void weir__host_map_clear(const char *name);
int64_t weir__host_current_watermark(void);
int64_t weir__host_current_processing_time(void);
void weir__host_register_timer(weir_time_domain domain, int64_t ts);
void weir__host_delete_timer(weir_time_domain domain, int64_t ts);

/* ---- implemented by the runtime (weir_runtime.c) ------------------------- */

/** Memory freed at the end of the current runtime call. */
void *weir__arena_alloc(size_t n);
/** Frees the malloc'ed block `p` at the end of the current runtime call
 * (NULL is ignored). */
void weir__arena_adopt(void *p);

typedef enum weir__output_kind {
    WEIR__EMIT = 0,
    WEIR__SIDE = 1,
    WEIR__ERROR = 2
} weir__output_kind;

/** One output of a call. Every pointer is malloc'ed (NULL when the length
 * is 0) and owned by whoever holds the output; strings are valid UTF-8,
 * NUL-terminated and their length excludes the NUL. */
typedef struct weir__output {
    weir__output_kind kind;
    bool has_key;
    uint8_t *key;
    size_t key_len;
    uint8_t *value;
    size_t value_len;
    bool has_timestamp;
    int64_t timestamp;
    char *side;       /* WEIR__SIDE: the output's name */
    size_t side_len;
    uint32_t input;   /* WEIR__ERROR: index of the input record */
    char *message;    /* WEIR__ERROR */
    size_t message_len;
} weir__output;

/** An array of outputs: malloc'ed, owned by the caller. */
typedef struct weir__outputs {
    weir__output *ptr;
    size_t len;
} weir__outputs;

/* ---- packed batches (weir_packed.c; wit/README.md, "Packed batches") ---- */

/** Reads a packed batch: `*records` (malloc'ed, the caller frees the array)
 * point into `batch`. False, with nothing allocated, when the bytes do not
 * follow the format. */
bool weir__packed_read(weir_bytes batch, weir_record **records, size_t *n);
/** Appends the packed encoding of `outputs` to `out`. */
void weir__packed_write(const weir__outputs *outputs, weir_buf *out);

/** Frees an output's buffers (not the output itself). */
void weir__output_free(weir__output *o);

/** `open`: calls `weir_open`. On false, `*err` gets a malloc'ed message. */
bool weir__rt_open(const weir_subtask *subtask, weir_bytes config, char **err, size_t *err_len);
/** `process`: runs `weir_process` over the batch. */
weir__outputs weir__rt_process(const weir_record *batch, size_t n);
/** `on-timer`: sets the current key and runs `weir_on_timer`. */
weir__outputs weir__rt_on_timer(weir_bytes key, int64_t ts, weir_time_domain domain);
/** `close`. */
bool weir__rt_close(char **err, size_t *err_len);
/** `snapshot-state`: `*items` gets a malloc'ed array of `*n` items whose
 * buffers are malloc'ed (NULL when empty), all owned by the caller. */
bool weir__rt_snapshot(uint64_t checkpoint_id, weir_bytes **items, size_t *n, char **err,
                       size_t *err_len);
/** `restore-state`. */
bool weir__rt_restore(const weir_bytes *items, size_t n, char **err, size_t *err_len);

#endif
