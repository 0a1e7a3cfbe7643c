/* Weir C guest SDK: byte spans, a growable buffer and a strict JSON
 * (RFC 8259) reader and writer.
 *
 * The reader works on spans (`weir_bytes`) of the input and never builds a
 * tree: look a field up with `weir_json_field`, walk arrays and objects with
 * `weir_json_array_next` / `weir_json_object_next`, and convert scalars with
 * `weir_json_number`, `weir_json_int`, `weir_json_bool`, `weir_json_string`.
 * Every span it hands out points into the document passed in, so it lives as
 * long as that document. Nesting deeper than WEIR_JSON_MAX_DEPTH is invalid,
 * so hostile input cannot exhaust the stack; invalid UTF-8 inside strings is
 * invalid JSON.
 *
 * The writer appends to a `weir_buf`. Allocation failure aborts (traps in
 * Wasm): no function here returns an out-of-memory error.
 *
 * This header also holds what the operator API (weir.h) and the aggregate
 * API (weir_aggregate.h) share: `weir_log` and `weir_set_error`. */
#ifndef WEIR_JSON_H
#define WEIR_JSON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A read-only span of bytes. It owns nothing: whoever handed it out says
 * how long `ptr` stays valid. `ptr` may be NULL when `len` is 0. */
typedef struct weir_bytes {
    const uint8_t *ptr;
    size_t len;
} weir_bytes;

/** A growable byte buffer. Zero-initialise it (`weir_buf b = {0};`), append
 * to it, release it with `weir_buf_free` (unless ownership is handed to the
 * SDK, as with `weir_agg_*` outputs). When `ptr` is not NULL, `ptr[len]` is
 * always 0, so the contents can be used as a C string. */
typedef struct weir_buf {
    uint8_t *ptr;
    size_t len, cap;
} weir_buf;

/** Maximum nesting of arrays and objects the reader accepts. */
#define WEIR_JSON_MAX_DEPTH 128

/** A span over a NUL-terminated string (not including the NUL). The string
 * must outlive the span. NULL gives the empty span. */
weir_bytes weir_str(const char *s);

/** A span over a string literal. */
#define WEIR_STR(lit) ((weir_bytes){(const uint8_t *)(lit), sizeof(lit) - 1})

/** True when both spans hold the same bytes. */
bool weir_bytes_eq(weir_bytes a, weir_bytes b);

/** True when the span equals the NUL-terminated string `s`. */
bool weir_bytes_eq_str(weir_bytes a, const char *s);

/** True when `s` is well-formed UTF-8 (no overlongs, surrogates or code
 * points above U+10FFFF). */
bool weir_utf8_valid(weir_bytes s);

/* ---- logging and errors (shared by weir.h and weir_aggregate.h) ---- */
/** Severity of a log line (the order of the WIT enum `logging.level`). */
typedef enum weir_level {
    WEIR_TRACE = 0,
    WEIR_DEBUG = 1,
    WEIR_INFO = 2,
    WEIR_WARN = 3,
    WEIR_ERROR = 4
} weir_level;

/** Writes one printf-formatted line to the host's log, tagged by the host
 * with the operator and subtask (in native tests: to stderr). Bytes that are
 * not UTF-8 are replaced by U+FFFD. */
void weir_log(weir_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** Sets the message reported when the user function that is running returns
 * false (`weir_open`, `weir_close`, `weir_snapshot`, `weir_restore`, the
 * `weir_agg_*` functions). The last call wins; the message is copied. When a
 * function returns false without setting a message a default one is used. */
void weir_set_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* ---- buffer --------------------------------------------------------- */

/** Appends `len` bytes at `data` (which may point into the buffer itself). */
void weir_buf_append(weir_buf *b, const void *data, size_t len);
/** Appends a NUL-terminated string (without its NUL). */
void weir_buf_puts(weir_buf *b, const char *s);
/** Appends printf-formatted text. */
void weir_buf_printf(weir_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** `weir_buf_printf` with a va_list. */
void weir_buf_vprintf(weir_buf *b, const char *fmt, va_list ap);
/** Empties the buffer, keeping its memory. */
void weir_buf_reset(weir_buf *b);
/** Frees the memory and zeroes the buffer (safe on a zeroed buffer). */
void weir_buf_free(weir_buf *b);
/** A span over the current contents; valid until the buffer next changes. */
weir_bytes weir_buf_bytes(const weir_buf *b);

/** Appends `s` as a JSON string, with quotes, escaping `"`, `\` and control
 * characters (`\n`, `\t`, ... and `\u00XX`) as RFC 8259 requires. Other
 * bytes are copied (no `\u` for non-ASCII), except that bytes which are not
 * valid UTF-8 are written as U+FFFD, so the output is always valid JSON. */
void weir_buf_json_string(weir_buf *b, weir_bytes s);

/** Appends `v` as the shortest JSON number that reads back (strtod) as the
 * same double, formatted like Python's `repr`: integral values get `.0`
 * (`3.0`), exponents from 1e16 and below 1e-4 (`1e+16`, `1.5e-05`).
 * NaN and infinities are not JSON: returns false and appends nothing. */
bool weir_buf_json_number(weir_buf *b, double v);

/** Appends a 64-bit integer in decimal (a JSON integer). */
void weir_buf_json_int(weir_buf *b, int64_t v);

/* ---- reader --------------------------------------------------------- */

typedef enum weir_json_kind {
    WEIR_JSON_INVALID = 0,
    WEIR_JSON_NULL,
    WEIR_JSON_BOOL,
    WEIR_JSON_NUMBER,
    WEIR_JSON_STRING,
    WEIR_JSON_ARRAY,
    WEIR_JSON_OBJECT
} weir_json_kind;

/** True when `doc` is exactly one JSON value, with optional surrounding
 * whitespace, and nothing else. Validate untrusted input with this first:
 * the other functions only check the part they read. */
bool weir_json_valid(weir_bytes doc);

/** The kind of the value starting at the first non-whitespace byte of `v`,
 * judged by that byte only (use `weir_json_valid` to check the rest). */
weir_json_kind weir_json_type(weir_bytes v);

/** Finds member `name` of the object `object` (the first one when a name
 * repeats) and sets `*value` to the span of its value, without surrounding
 * whitespace. False when `object` is not a valid JSON object or has no such
 * member. Names are compared after unescaping. */
bool weir_json_field(weir_bytes object, const char *name, weir_bytes *value);

/** Reads a JSON number into a double. False when `v` is not a number or is
 * out of the range of a double (such as 1e400). */
bool weir_json_number(weir_bytes v, double *out);

/** Reads a JSON integer (no fraction, no exponent) that fits int64_t.
 * False otherwise (`1.0`, `1e3` and out-of-range values included). */
bool weir_json_int(weir_bytes v, int64_t *out);

/** Reads `true` or `false`. False when `v` is neither. */
bool weir_json_bool(weir_bytes v, bool *out);

/** True when `v` is `null`. */
bool weir_json_is_null(weir_bytes v);

/** Appends the unescaped contents of the JSON string `v` to `out` (UTF-8;
 * `\uXXXX` escapes, surrogate pairs included, become UTF-8). False when `v`
 * is not a valid JSON string (then `out` is left as it was). Reset `out`
 * first to get the string alone. */
bool weir_json_string(weir_bytes v, weir_buf *out);

/** Iterates over the array `arr`. Start with `*pos = 0`; each call that
 * returns true sets `*item` to the next element's span. Returns false at the
 * end, or when `arr` is not a valid JSON array (checked on the first call). */
bool weir_json_array_next(weir_bytes arr, size_t *pos, weir_bytes *item);

/** Iterates over the object `obj` like `weir_json_array_next`; `*key` is the
 * span of the member name *with its quotes* (a JSON string: decode it with
 * `weir_json_string`), `*value` the span of its value. */
bool weir_json_object_next(weir_bytes obj, size_t *pos, weir_bytes *key,
                           weir_bytes *value);

/** True when `a` and `b` are valid JSON documents with equal values:
 * numbers compare by value (1 == 1.0), strings after unescaping, objects
 * regardless of member order. */
bool weir_json_equal(weir_bytes a, weir_bytes b);

#ifdef __cplusplus
}
#endif

#endif
