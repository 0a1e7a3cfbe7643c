/* Weir C guest SDK: spans, buffers, the JSON reader and writer, and the
 * small pieces every build shares (error message, UTF-8 helpers). */
#include "weir_host.h"
#include "weir_json.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool fast_number(const uint8_t *s, const uint8_t *e, double *out);

/* ---- memory ------------------------------------------------------------ */

void *weir__xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) abort();
    return p;
}

void *weir__xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) abort();
    return q;
}

/* ---- spans ------------------------------------------------------------- */

weir_bytes weir_str(const char *s) {
    weir_bytes b = {(const uint8_t *)s, s ? strlen(s) : 0};
    return b;
}

bool weir_bytes_eq(weir_bytes a, weir_bytes b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

bool weir_bytes_eq_str(weir_bytes a, const char *s) {
    return weir_bytes_eq(a, weir_str(s));
}

/* Length of the UTF-8 sequence at p (1..4), or 0 when it is not valid. */
static size_t utf8_seq(const uint8_t *p, const uint8_t *end) {
    uint8_t c = p[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
    else return 0;
    if ((size_t)(end - p) < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
    if (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
    return n;
}

bool weir_utf8_valid(weir_bytes s) {
    const uint8_t *p = s.ptr, *end = s.ptr + s.len;
    while (p < end) {
        size_t n = utf8_seq(p, end);
        if (!n) return false;
        p += n;
    }
    return true;
}

/* ---- buffer ------------------------------------------------------------ */

static void buf_reserve(weir_buf *b, size_t extra) {
    size_t need = b->len + extra + 1; /* room for the trailing NUL */
    if (need < extra) abort();        /* overflow */
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 32;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) { cap = need; break; }
        cap *= 2;
    }
    b->ptr = weir__xrealloc(b->ptr, cap);
    b->cap = cap;
}

void weir_buf_append(weir_buf *b, const void *data, size_t len) {
    if (len == 0) {
        if (!b->ptr) buf_reserve(b, 0), b->ptr[0] = 0;
        return;
    }
    /* `data` may point into the buffer: remember its offset across realloc. */
    const uint8_t *d = data;
    bool inside = b->ptr && d >= b->ptr && d < b->ptr + b->cap;
    size_t off = inside ? (size_t)(d - b->ptr) : 0;
    buf_reserve(b, len);
    if (inside) d = b->ptr + off;
    memmove(b->ptr + b->len, d, len);
    b->len += len;
    b->ptr[b->len] = 0;
}

void weir_buf_puts(weir_buf *b, const char *s) {
    weir_buf_append(b, s, strlen(s));
}

void weir_buf_vprintf(weir_buf *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        weir_buf_append(b, small, (size_t)n);
        return;
    }
    buf_reserve(b, (size_t)n);
    vsnprintf((char *)b->ptr + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void weir_buf_printf(weir_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    weir_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void weir_buf_reset(weir_buf *b) {
    b->len = 0;
    if (b->ptr) b->ptr[0] = 0;
}

void weir_buf_free(weir_buf *b) {
    free(b->ptr);
    b->ptr = NULL;
    b->len = b->cap = 0;
}

weir_bytes weir_buf_bytes(const weir_buf *b) {
    weir_bytes s = {b->ptr, b->len};
    return s;
}

static const uint8_t REPLACEMENT[3] = {0xEF, 0xBF, 0xBD};

void weir__buf_utf8(weir_buf *b, weir_bytes s) {
    const uint8_t *p = s.ptr, *end = s.ptr + s.len;
    while (p < end) {
        const uint8_t *run = p;
        size_t n;
        while (p < end && (n = utf8_seq(p, end)) != 0) p += n;
        weir_buf_append(b, run, (size_t)(p - run));
        if (p < end) { /* one invalid byte */
            weir_buf_append(b, REPLACEMENT, 3);
            p++;
        }
    }
}

void weir_buf_json_string(weir_buf *b, weir_bytes s) {
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = s.ptr, *end = s.ptr + s.len;
    weir_buf_append(b, "\"", 1);
    while (p < end) {
        const uint8_t *run = p;
        while (p < end && *p >= 0x20 && *p != '"' && *p != '\\' && *p < 0x80) p++;
        weir_buf_append(b, run, (size_t)(p - run));
        if (p == end) break;
        uint8_t c = *p;
        if (c >= 0x80) {
            size_t n = utf8_seq(p, end);
            if (n) weir_buf_append(b, p, n), p += n;
            else weir_buf_append(b, REPLACEMENT, 3), p++;
            continue;
        }
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t elen = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
            esc[4] = hex[c >> 4]; esc[5] = hex[c & 15];
            elen = 6;
        }
        weir_buf_append(b, esc, elen);
        p++;
    }
    weir_buf_append(b, "\"", 1);
}

bool weir_buf_json_number(weir_buf *b, double v) {
    if (!isfinite(v)) return false;
    /* The shortest digits that read back as `v`. Any decimal of at most 15
     * significant digits survives a trip through a double (DBL_DIG), so when
     * the shortest has d <= 15 digits, the nearest 15-digit decimal is it
     * padded with zeros (trimmed below): trying 15, 16 and 17 digits, the
     * first that reads back is the shortest, and the nearest of its length
     * (as Python's repr picks). At most three formats instead of seventeen.
     * Subnormals carry fewer bits, so for them every length is tried. */
    char tmp[40];
    int first = (v != 0.0 && fabs(v) < DBL_MIN) ? 1 : 15;
    for (int prec = first; prec <= 17; prec++) {
        int n = snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        /* 17 digits always read back (IEEE 754 double: 17 = DBL_DECIMAL_DIG) */
        if (prec == 17) break;
        double back;
        if (!fast_number((const uint8_t *)tmp, (const uint8_t *)tmp + n, &back)) back = strtod(tmp, NULL);
        if (back == v) break;
    }
    /* tmp is "[-]d[.ddd]e[+-]xx": split into sign, digits and exponent. */
    const char *p = tmp;
    bool neg = false;
    if (*p == '-') neg = true, p++;
    char digits[24];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    if (neg) weir_buf_append(b, "-", 1);
    if (exp >= -4 && exp < 16) {
        if (exp >= 0) {
            size_t ip = (size_t)exp + 1; /* integer digits */
            for (size_t i = 0; i < ip; i++) weir_buf_append(b, i < nd ? &digits[i] : "0", 1);
            weir_buf_append(b, ".", 1);
            if (nd > ip) weir_buf_append(b, digits + ip, nd - ip);
            else weir_buf_append(b, "0", 1);
        } else {
            weir_buf_append(b, "0.", 2);
            for (int i = 0; i < -exp - 1; i++) weir_buf_append(b, "0", 1);
            weir_buf_append(b, digits, nd);
        }
    } else {
        weir_buf_append(b, digits, 1);
        if (nd > 1) {
            weir_buf_append(b, ".", 1);
            weir_buf_append(b, digits + 1, nd - 1);
        }
        weir_buf_printf(b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
    return true;
}

void weir_buf_json_int(weir_buf *b, int64_t v) {
    weir_buf_printf(b, "%lld", (long long)v);
}

/* ---- error message ----------------------------------------------------- */

static weir_buf error_message;
static bool error_set;

void weir_set_error(const char *fmt, ...) {
    weir_buf_reset(&error_message);
    va_list ap;
    va_start(ap, fmt);
    weir_buf_vprintf(&error_message, fmt, ap);
    va_end(ap);
    error_set = true;
}

void weir__clear_error(void) {
    weir_buf_free(&error_message);
    error_set = false;
}

char *weir__take_error(const char *fallback, size_t *len) {
    weir_buf out = {0};
    if (error_set) weir__buf_utf8(&out, weir_buf_bytes(&error_message));
    else weir__buf_utf8(&out, weir_str(fallback));
    weir_buf_append(&out, "", 0);
    weir__clear_error();
    if (len) *len = out.len;
    return (char *)out.ptr;
}

/* ---- reader ------------------------------------------------------------ */

static const uint8_t *skip_ws(const uint8_t *p, const uint8_t *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static int hexval(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads 4 hex digits at p. */
static bool hex4(const uint8_t *p, const uint8_t *end, uint32_t *out) {
    if (end - p < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return false;
        v = (v << 4) | (uint32_t)h;
    }
    *out = v;
    return true;
}

static void put_utf8(weir_buf *b, uint32_t cp) {
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (uint8_t)cp; n = 1; }
    else if (cp < 0x800) { u[0] = (uint8_t)(0xC0 | (cp >> 6)); u[1] = (uint8_t)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        u[0] = (uint8_t)(0xE0 | (cp >> 12)); u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (uint8_t)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        u[0] = (uint8_t)(0xF0 | (cp >> 18)); u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (uint8_t)(0x80 | (cp & 0x3F)); n = 4;
    }
    weir_buf_append(b, u, n);
}

/* Scans the string starting at the quote at p; returns the byte after the
 * closing quote, or NULL when it is not a valid JSON string. With `out`, the
 * unescaped contents are appended to it. */
static const uint8_t *scan_string(const uint8_t *p, const uint8_t *end, weir_buf *out) {
    if (p >= end || *p != '"') return NULL;
    p++;
    for (;;) {
        const uint8_t *run = p;
        while (p < end && *p != '"' && *p != '\\' && *p >= 0x20 && *p < 0x80) p++;
        if (out) weir_buf_append(out, run, (size_t)(p - run));
        if (p >= end) return NULL;
        uint8_t c = *p;
        if (c == '"') return p + 1;
        if (c < 0x20) return NULL;
        if (c >= 0x80) {
            size_t n = utf8_seq(p, end);
            if (!n) return NULL;
            if (out) weir_buf_append(out, p, n);
            p += n;
            continue;
        }
        /* backslash */
        if (++p >= end) return NULL;
        char simple = 0;
        switch (*p) {
        case '"': simple = '"'; break;
        case '\\': simple = '\\'; break;
        case '/': simple = '/'; break;
        case 'b': simple = '\b'; break;
        case 'f': simple = '\f'; break;
        case 'n': simple = '\n'; break;
        case 'r': simple = '\r'; break;
        case 't': simple = '\t'; break;
        case 'u': break;
        default: return NULL;
        }
        if (simple) {
            if (out) weir_buf_append(out, &simple, 1);
            p++;
            continue;
        }
        uint32_t cp;
        if (!hex4(p + 1, end, &cp)) return NULL;
        p += 5;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return NULL; /* lone low surrogate */
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;
            if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !hex4(p + 2, end, &lo)) return NULL;
            if (lo < 0xDC00 || lo > 0xDFFF) return NULL;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        }
        if (out) put_utf8(out, cp);
    }
}

/* Scans a number; sets *integral when it has no fraction or exponent. */
static const uint8_t *scan_number(const uint8_t *p, const uint8_t *end, bool *integral) {
    bool in = true;
    if (p < end && *p == '-') p++;
    if (p >= end) return NULL;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') while (p < end && *p >= '0' && *p <= '9') p++;
    else return NULL;
    if (p < end && *p == '.') {
        in = false;
        p++;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        in = false;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (integral) *integral = in;
    return p;
}

static const uint8_t *scan_lit(const uint8_t *p, const uint8_t *end, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(end - p) < n || memcmp(p, lit, n) != 0) return NULL;
    return p + n;
}

/* Scans one value at p (no leading whitespace); NULL when invalid. */
static const uint8_t *scan_value(const uint8_t *p, const uint8_t *end, int depth) {
    if (p >= end) return NULL;
    switch (*p) {
    case '"': return scan_string(p, end, NULL);
    case 't': return scan_lit(p, end, "true");
    case 'f': return scan_lit(p, end, "false");
    case 'n': return scan_lit(p, end, "null");
    case '[':
    case '{': {
        if (depth >= WEIR_JSON_MAX_DEPTH) return NULL;
        bool obj = *p == '{';
        uint8_t close = obj ? '}' : ']';
        p = skip_ws(p + 1, end);
        if (p < end && *p == close) return p + 1;
        for (;;) {
            if (obj) {
                p = scan_string(p, end, NULL);
                if (!p) return NULL;
                p = skip_ws(p, end);
                if (p >= end || *p != ':') return NULL;
                p = skip_ws(p + 1, end);
            }
            p = scan_value(p, end, depth + 1);
            if (!p) return NULL;
            p = skip_ws(p, end);
            if (p >= end) return NULL;
            if (*p == close) return p + 1;
            if (*p != ',') return NULL;
            p = skip_ws(p + 1, end);
        }
    }
    default:
        return scan_number(p, end, NULL);
    }
}

/* Trims whitespace around v; false when nothing is left. */
static bool trim(weir_bytes v, const uint8_t **s, const uint8_t **e) {
    if (!v.ptr) return false;
    const uint8_t *p = skip_ws(v.ptr, v.ptr + v.len), *end = v.ptr + v.len;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r')) end--;
    *s = p;
    *e = end;
    return p < end;
}

bool weir_json_valid(weir_bytes doc) {
    const uint8_t *s, *e;
    if (!trim(doc, &s, &e)) return false;
    return scan_value(s, e, 0) == e;
}

weir_json_kind weir_json_type(weir_bytes v) {
    const uint8_t *s, *e;
    if (!trim(v, &s, &e)) return WEIR_JSON_INVALID;
    switch (*s) {
    case 'n': return WEIR_JSON_NULL;
    case 't': case 'f': return WEIR_JSON_BOOL;
    case '"': return WEIR_JSON_STRING;
    case '[': return WEIR_JSON_ARRAY;
    case '{': return WEIR_JSON_OBJECT;
    default: return (*s == '-' || (*s >= '0' && *s <= '9')) ? WEIR_JSON_NUMBER : WEIR_JSON_INVALID;
    }
}

static bool container_next(weir_bytes c, uint8_t open, size_t *pos, weir_bytes *key, weir_bytes *value) {
    const uint8_t *s, *e;
    if (*pos == SIZE_MAX || !trim(c, &s, &e)) return false;
    const uint8_t *p;
    if (*pos == 0) {
        if (*s != open || scan_value(s, e, 0) != e) { *pos = SIZE_MAX; return false; }
        p = skip_ws(s + 1, e);
    } else {
        if (*pos > c.len) { *pos = SIZE_MAX; return false; }
        p = skip_ws(c.ptr + *pos, e);
        if (p < e && *p == ',') p = skip_ws(p + 1, e);
    }
    if (p >= e || *p == ']' || *p == '}') { *pos = SIZE_MAX; return false; }
    if (open == '{') {
        const uint8_t *k = p;
        p = scan_string(p, e, NULL);
        if (!p) { *pos = SIZE_MAX; return false; }
        key->ptr = k;
        key->len = (size_t)(p - k);
        p = skip_ws(p, e);
        if (p >= e || *p != ':') { *pos = SIZE_MAX; return false; }
        p = skip_ws(p + 1, e);
    }
    const uint8_t *v = p;
    p = scan_value(p, e, 1);
    if (!p) { *pos = SIZE_MAX; return false; }
    value->ptr = v;
    value->len = (size_t)(p - v);
    *pos = (size_t)(p - c.ptr);
    return true;
}

bool weir_json_array_next(weir_bytes arr, size_t *pos, weir_bytes *item) {
    return container_next(arr, '[', pos, NULL, item);
}

bool weir_json_object_next(weir_bytes obj, size_t *pos, weir_bytes *key, weir_bytes *value) {
    weir_bytes k;
    if (!container_next(obj, '{', pos, &k, value)) return false;
    *key = k;
    return true;
}

/* True when the JSON string at `key` (with quotes) decodes to `name`. */
static bool key_equals(weir_bytes key, const char *name, size_t nlen) {
    if (!memchr(key.ptr, '\\', key.len))
        return key.len == nlen + 2 && memcmp(key.ptr + 1, name, nlen) == 0;
    weir_buf tmp = {0};
    bool eq = weir_json_string(key, &tmp) && tmp.len == nlen && memcmp(tmp.ptr, name, nlen) == 0;
    weir_buf_free(&tmp);
    return eq;
}

bool weir_json_field(weir_bytes object, const char *name, weir_bytes *value) {
    size_t pos = 0, nlen = strlen(name);
    weir_bytes k, v;
    while (weir_json_object_next(object, &pos, &k, &v)) {
        if (key_equals(k, name, nlen)) {
            *value = v;
            return true;
        }
    }
    return false;
}

/* Reads the (already scanned, valid) JSON number [s, e) exactly without
 * strtod when it has at most 15 significant digits and a decimal exponent
 * within 22 (W. D. Clinger, "How to read floating point numbers
 * accurately", PLDI 1990, the fast path): the digits and the power of ten
 * are then both exact doubles, and one IEEE multiplication or division
 * rounds their product correctly. False when the number needs strtod.
 * strtod is slow in wasi-libc (its long double is software-emulated). */
static bool fast_number(const uint8_t *s, const uint8_t *e, double *out) {
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    bool neg = false;
    if (s < e && *s == '-') neg = true, s++;
    uint64_t mantissa = 0;
    int digits = 0, exp10 = 0;
    bool leading = true;
    for (; s < e && *s >= '0' && *s <= '9'; s++) {
        if (leading && *s == '0') continue;
        leading = false;
        if (++digits > 15) return false;
        mantissa = mantissa * 10 + (uint64_t)(*s - '0');
    }
    if (s < e && *s == '.') {
        for (s++; s < e && *s >= '0' && *s <= '9'; s++) {
            exp10--;
            if (leading && *s == '0') continue;
            leading = false;
            if (++digits > 15) return false;
            mantissa = mantissa * 10 + (uint64_t)(*s - '0');
        }
    }
    if (s < e && (*s == 'e' || *s == 'E')) {
        s++;
        bool eneg = false;
        if (*s == '+' || *s == '-') eneg = *s == '-', s++;
        int x = 0;
        for (; s < e; s++) {
            if (x > 1000) return false;
            x = x * 10 + (*s - '0');
        }
        exp10 += eneg ? -x : x;
    }
    double d = (double)mantissa; /* exact: below 10^15 < 2^53 */
    if (mantissa == 0) {
        d = 0.0;
    } else if (exp10 >= 0 && exp10 <= 22) {
        d *= pow10[exp10];
    } else if (exp10 < 0 && exp10 >= -22) {
        d /= pow10[-exp10];
    } else {
        return false;
    }
    *out = neg ? -d : d;
    return true;
}

bool weir_json_number(weir_bytes v, double *out) {
    const uint8_t *s, *e;
    if (!trim(v, &s, &e) || scan_number(s, e, NULL) != e) return false;
    if (fast_number(s, e, out)) return true;
    size_t n = (size_t)(e - s);
    char small[64];
    char *tmp = n < sizeof small ? small : weir__xmalloc(n + 1);
    memcpy(tmp, s, n);
    tmp[n] = 0;
    double d = strtod(tmp, NULL);
    if (tmp != small) free(tmp);
    if (isinf(d)) return false;
    *out = d;
    return true;
}

bool weir_json_int(weir_bytes v, int64_t *out) {
    const uint8_t *s, *e;
    bool integral;
    if (!trim(v, &s, &e) || scan_number(s, e, &integral) != e || !integral) return false;
    bool neg = *s == '-';
    if (neg) s++;
    /* accumulate negatively: the range of int64_t is larger below zero */
    int64_t acc = 0;
    for (; s < e; s++) {
        int d = *s - '0';
        if (acc < (INT64_MIN + d) / 10) return false;
        acc = acc * 10 - d;
    }
    if (!neg) {
        if (acc == INT64_MIN) return false;
        acc = -acc;
    }
    *out = acc;
    return true;
}

bool weir_json_bool(weir_bytes v, bool *out) {
    const uint8_t *s, *e;
    if (!trim(v, &s, &e)) return false;
    if (scan_lit(s, e, "true") == e) { *out = true; return true; }
    if (scan_lit(s, e, "false") == e) { *out = false; return true; }
    return false;
}

bool weir_json_is_null(weir_bytes v) {
    const uint8_t *s, *e;
    return trim(v, &s, &e) && scan_lit(s, e, "null") == e;
}

bool weir_json_string(weir_bytes v, weir_buf *out) {
    const uint8_t *s, *e;
    if (!trim(v, &s, &e) || scan_string(s, e, NULL) != e) return false;
    scan_string(s, e, out);
    if (!out->ptr) weir_buf_append(out, "", 0);
    return true;
}

static bool equal_values(weir_bytes a, weir_bytes b) {
    weir_json_kind ka = weir_json_type(a), kb = weir_json_type(b);
    if (ka != kb) return false;
    switch (ka) {
    case WEIR_JSON_NULL: return true;
    case WEIR_JSON_BOOL: {
        bool x, y;
        return weir_json_bool(a, &x) && weir_json_bool(b, &y) && x == y;
    }
    case WEIR_JSON_NUMBER: {
        double x, y;
        if (weir_json_number(a, &x) && weir_json_number(b, &y)) return x == y;
        return weir_bytes_eq(a, b);
    }
    case WEIR_JSON_STRING: {
        weir_buf x = {0}, y = {0};
        bool eq = weir_json_string(a, &x) && weir_json_string(b, &y) &&
                  weir_bytes_eq(weir_buf_bytes(&x), weir_buf_bytes(&y));
        weir_buf_free(&x);
        weir_buf_free(&y);
        return eq;
    }
    case WEIR_JSON_ARRAY: {
        size_t pa = 0, pb = 0;
        weir_bytes x, y;
        for (;;) {
            bool ha = weir_json_array_next(a, &pa, &x), hb = weir_json_array_next(b, &pb, &y);
            if (ha != hb) return false;
            if (!ha) return true;
            if (!equal_values(x, y)) return false;
        }
    }
    case WEIR_JSON_OBJECT: {
        size_t na = 0, nb = 0, pos = 0;
        weir_bytes k, x, y;
        while (weir_json_object_next(b, &pos, &k, &y)) nb++;
        pos = 0;
        while (weir_json_object_next(a, &pos, &k, &x)) {
            na++;
            weir_buf name = {0};
            bool ok = weir_json_string(k, &name) && weir_json_field(b, (const char *)name.ptr, &y) &&
                      equal_values(x, y);
            weir_buf_free(&name);
            if (!ok) return false;
        }
        return na == nb;
    }
    default: return false;
    }
}

bool weir_json_equal(weir_bytes a, weir_bytes b) {
    return weir_json_valid(a) && weir_json_valid(b) && equal_values(a, b);
}

void weir__log_text(weir_buf *out, const char *fmt, va_list ap) {
    weir_buf raw = {0};
    weir_buf_vprintf(&raw, fmt, ap);
    weir__buf_utf8(out, weir_buf_bytes(&raw));
    weir_buf_free(&raw);
}
