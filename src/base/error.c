/* Error values: a status code plus a message naming the file and the problem. */
#include "apmae/base.h"

#include <errno.h>
#include <string.h>

static void vformat_into(ap_error *err, ap_status code, const char *fmt, va_list ap) {
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

ap_status ap_fail(ap_error *err, ap_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vformat_into(err, code, fmt, ap);
        va_end(ap);
    }
    return code;
}

ap_status ap_fail_errno(ap_error *err, ap_status code, const char *fmt, ...) {
    int saved = errno;
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vformat_into(err, code, fmt, ap);
        va_end(ap);
        size_t used = strlen(err->msg);
        snprintf(err->msg + used, sizeof err->msg - used, ": %s", strerror(saved));
    }
    return code;
}

ap_status ap_error_prefix(ap_error *err, const char *fmt, ...) {
    if (!err) return AP_OK;
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* "prefix: old", cut where the buffer ends */
    ap_buf b = {0};
    if (ap_buf_printf(&b, NULL, "%s: %s", prefix, old) == AP_OK) {
        size_t n = b.len < sizeof err->msg - 1 ? b.len : sizeof err->msg - 1;
        memcpy(err->msg, b.data, n);
        err->msg[n] = '\0';
    }
    ap_buf_free(&b);
    return err->code;
}

void ap_error_clear(ap_error *err) {
    if (!err) return;
    err->code = AP_OK;
    err->msg[0] = '\0';
}

const char *ap_status_name(ap_status code) {
    switch (code) {
    case AP_OK: return "ok";
    case AP_ERR_IO: return "I/O error";
    case AP_ERR_FORMAT: return "format error";
    case AP_ERR_ARG: return "invalid argument";
    case AP_ERR_NOMEM: return "out of memory";
    case AP_ERR_RANGE: return "out of range";
    case AP_ERR_INTERNAL: return "internal error";
    }
    return "unknown error";
}
