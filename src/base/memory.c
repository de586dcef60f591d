/* Allocation wrappers that turn failure into an ap_error, and a byte buffer. */
#include "apmae/base.h"

#include <stdlib.h>
#include <string.h>

void *ap_malloc(size_t size, ap_error *err) {
    void *p = malloc(size ? size : 1);
    if (!p) ap_fail(err, AP_ERR_NOMEM, "out of memory allocating %zu bytes", size);
    return p;
}

void *ap_calloc(size_t count, size_t size, ap_error *err) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) ap_fail(err, AP_ERR_NOMEM, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *ap_realloc(void *ptr, size_t size, ap_error *err) {
    void *p = realloc(ptr, size ? size : 1);
    if (!p) ap_fail(err, AP_ERR_NOMEM, "out of memory growing a buffer to %zu bytes", size);
    return p;
}

char *ap_strdup(const char *s, ap_error *err) {
    size_t n = strlen(s) + 1;
    char *p = ap_malloc(n, err);
    if (p) memcpy(p, s, n);
    return p;
}

void *ap_malloc_aligned(size_t size, ap_error *err) {
    void *p = NULL;
    size_t rounded = (size + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) {
        ap_fail(err, AP_ERR_NOMEM, "out of memory allocating %zu aligned bytes", size);
        return NULL;
    }
    return p;
}

void ap_free_aligned(void *ptr) { free(ptr); }

ap_status ap_buf_append(ap_buf *b, const void *data, size_t len, ap_error *err) {
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1) cap *= 2;
        char *p = ap_realloc(b->data, cap, err);
        if (!p) return AP_ERR_NOMEM;
        b->data = p;
        b->cap = cap;
    }
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return AP_OK;
}

ap_status ap_buf_printf(ap_buf *b, ap_error *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return ap_fail(err, AP_ERR_INTERNAL, "bad format string");
    ap_status st = ap_buf_append(b, NULL, 0, err); /* ensure data exists */
    if (st) return st;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *p = ap_realloc(b->data, cap, err);
        if (!p) return AP_ERR_NOMEM;
        b->data = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return AP_OK;
}

void ap_buf_free(ap_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
