/* The HTML writer: a buffer with a sticky error, escaping, base64 images. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void rp_printf(rp_out *o, const char *fmt, ...) {
    if (o->st) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        o->st = ap_fail(o->err, AP_ERR_INTERNAL, "report: bad format string");
        return;
    }
    char small[512], *text = (size_t)n < sizeof small ? small : ap_malloc((size_t)n + 1, o->err);
    if (!text) {
        o->st = AP_ERR_NOMEM;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(text, (size_t)n + 1, fmt, ap);
    va_end(ap);
    o->st = ap_buf_append(&o->b, text, (size_t)n, o->err);
    if (text != small) free(text);
}

void rp_raw(rp_out *o, const char *s) {
    if (!o->st) o->st = ap_buf_append(&o->b, s, strlen(s), o->err);
}

void rp_text(rp_out *o, const char *s) {
    for (const char *p = s ? s : ""; *p && !o->st; p++) {
        size_t run = strcspn(p, "&<>\"'");
        if (run) o->st = ap_buf_append(&o->b, p, run, o->err);
        p += run;
        if (!*p) break;
        switch (*p) {
        case '&': rp_raw(o, "&amp;"); break;
        case '<': rp_raw(o, "&lt;"); break;
        case '>': rp_raw(o, "&gt;"); break;
        case '"': rp_raw(o, "&quot;"); break;
        default: rp_raw(o, "&#39;"); break;
        }
    }
}

void rp_base64(rp_out *o, const void *data, size_t n) {
    static const char k[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    char quad[4];
    for (size_t i = 0; i < n && !o->st; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        quad[0] = k[v >> 18 & 63];
        quad[1] = k[v >> 12 & 63];
        quad[2] = i + 1 < n ? k[v >> 6 & 63] : '=';
        quad[3] = i + 2 < n ? k[v & 63] : '=';
        o->st = ap_buf_append(&o->b, quad, 4, o->err);
    }
}

void rp_img_png(rp_out *o, const void *png, size_t n, const char *alt) {
    rp_raw(o, "<img src=\"data:image/png;base64,");
    rp_base64(o, png, n);
    rp_raw(o, "\" alt=\"");
    rp_text(o, alt);
    rp_raw(o, "\">");
}

void rp_img_file(rp_out *o, const char *path, const char *alt) {
    if (o->st) return;
    char *data;
    size_t n;
    if ((o->st = ap_read_file(path, &data, &n, o->err))) return;
    rp_img_png(o, data, n, alt);
    free(data);
}

void rp_num(rp_out *o, double v) {
    if (isnan(v)) rp_raw(o, "–");
    else if (v != 0 && (fabs(v) >= 1e5 || fabs(v) < 1e-3)) rp_printf(o, "%.3g", v);
    else if (fabs(v) >= 100 || v == (double)(long long)v) rp_printf(o, "%.0f", v);
    else rp_printf(o, "%.3g", v);
}
