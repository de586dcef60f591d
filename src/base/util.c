/* Threads and the parsing of CLI values. */
#include "apmae/base.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

int ap_num_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads(); /* honours OMP_NUM_THREADS */
#else
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
#endif
}

ap_status ap_parse_i64(const char *s, const char *what, int64_t *out, ap_error *err) {
    if (!s || !*s) return ap_fail(err, AP_ERR_ARG, "%s: expected an integer, got an empty value", what);
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE) return ap_fail(err, AP_ERR_ARG, "%s: integer '%s' is out of range", what, s);
    if (end == s || *end != '\0')
        return ap_fail(err, AP_ERR_ARG, "%s: expected an integer, got '%s'", what, s);
    *out = (int64_t)v;
    return AP_OK;
}

ap_status ap_parse_f64(const char *s, const char *what, double *out, ap_error *err) {
    if (!s || !*s) return ap_fail(err, AP_ERR_ARG, "%s: expected a number, got an empty value", what);
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE)
        return ap_fail(err, AP_ERR_ARG, "%s: expected a number, got '%s'", what, s);
    *out = v;
    return AP_OK;
}

ap_status ap_parse_i64_list(const char *s, const char *what, int64_t **out, size_t *n, ap_error *err) {
    *out = NULL;
    *n = 0;
    if (!s || !*s) return ap_fail(err, AP_ERR_ARG, "%s: empty list", what);
    size_t cap = 1;
    for (const char *c = s; *c; c++) cap += *c == ',';
    int64_t *v = ap_malloc(cap * sizeof *v, err);
    if (!v) return AP_ERR_NOMEM;
    size_t count = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[64];
        if (len == 0 || len >= sizeof item) {
            free(v);
            return ap_fail(err, AP_ERR_ARG, "%s: item %zu of '%s' is empty or too long", what, count + 1, s);
        }
        memcpy(item, p, len);
        item[len] = '\0';
        ap_status st = ap_parse_i64(item, what, &v[count], err);
        if (st) {
            free(v);
            return st;
        }
        count++;
        if (!comma) break;
        p = comma + 1;
    }
    *out = v;
    *n = count;
    return AP_OK;
}
