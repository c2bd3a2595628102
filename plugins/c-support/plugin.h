// Small helpers for strata plugins written in C against the bindings in
// ../c-bindings. Header only, libc's string functions and malloc only:
// nothing here makes the component import WASI (printf and friends would,
// through wasi-libc's stdio).
#ifndef STRATA_PLUGIN_SUPPORT_H
#define STRATA_PLUGIN_SUPPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Whether the component-model string (`ptr`, `len`) equals the C string `c`.
static inline bool plugin_str_eq(const uint8_t *ptr, size_t len, const char *c) {
    size_t n = strlen(c);
    return len == n && memcmp(ptr, c, n) == 0;
}

// A copy of `len` bytes as a NUL-terminated C string (NULL when out of
// memory); the caller frees it.
static inline char *plugin_strndup(const uint8_t *ptr, size_t len) {
    char *s = malloc(len + 1);
    if (s != NULL) {
        memcpy(s, ptr, len);
        s[len] = 0;
    }
    return s;
}

// A message under construction, cut at its capacity.
typedef struct {
    char text[512];
    size_t len;
} plugin_line_t;

static inline void plugin_add(plugin_line_t *l, const char *s, size_t n) {
    size_t room = sizeof l->text - 1 - l->len;
    if (n > room) n = room;
    memcpy(l->text + l->len, s, n);
    l->len += n;
    l->text[l->len] = 0;
}

static inline void plugin_add_str(plugin_line_t *l, const char *s) { plugin_add(l, s, strlen(s)); }

static inline void plugin_add_u64(plugin_line_t *l, uint64_t v) {
    char digits[20];
    size_t n = 0;
    do {
        digits[sizeof digits - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    plugin_add(l, digits + sizeof digits - n, n);
}

static inline void plugin_add_i64(plugin_line_t *l, int64_t v) {
    if (v < 0) {
        plugin_add_str(l, "-");
        plugin_add_u64(l, (uint64_t)0 - (uint64_t)v);
    } else {
        plugin_add_u64(l, (uint64_t)v);
    }
}

// Parses a decimal integer, optionally negative, that fits an int64_t.
static inline bool plugin_parse_i64(const uint8_t *ptr, size_t len, int64_t *out) {
    size_t i = 0;
    bool negative = len > 0 && ptr[0] == '-';
    if (negative) i = 1;
    if (i == len || len - i > 18) return false;
    int64_t v = 0;
    for (; i < len; i++) {
        if (ptr[i] < '0' || ptr[i] > '9') return false;
        v = v * 10 + (ptr[i] - '0');
    }
    *out = negative ? -v : v;
    return true;
}

#endif
