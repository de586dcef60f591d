/* Agreement between the ranks of a data-parallel job over its one
 * collective, the element-wise sum (ap_parallel in base.h). A value each
 * rank contributes on its own goes in that rank's slots, zeros elsewhere, so
 * the sum hands every rank every rank's value exactly (small integers in
 * float are exact whatever the order of the additions). */
#include "apmae/base.h"

#include <stdlib.h>

static int alone(const ap_parallel *p) { return !p || p->size <= 1; }

ap_status ap_parallel_agree(const ap_parallel *p, ap_status st, ap_error *err) {
    if (alone(p)) return st;
    ap_error scratch; /* a failed rank keeps its own message */
    ap_error *sum_err = st != AP_OK ? &scratch : err;
    float *failed = ap_calloc((size_t)p->size, sizeof *failed, sum_err);
    if (!failed) return st != AP_OK ? st : AP_ERR_NOMEM;
    failed[p->rank] = st != AP_OK;
    ap_status sst = p->sum(p->ctx, failed, (size_t)p->size, sum_err);
    int first = -1;
    for (int r = 0; sst == AP_OK && r < p->size && first < 0; r++)
        if (failed[r] != 0) first = r;
    free(failed);
    if (st != AP_OK || sst != AP_OK) return st != AP_OK ? st : sst;
    if (first < 0) return AP_OK;
    return ap_fail(err, AP_ERR_IO, "rank %d of %d failed (its error is above); every rank stopped with it", first,
                   p->size);
}

ap_status ap_parallel_check_same(const ap_parallel *p, uint64_t value, const char *what, ap_error *err) {
    if (alone(p)) return AP_OK;
    const size_t n = (size_t)p->size * 8;
    float *bytes = ap_calloc(n, sizeof *bytes, err);
    if (!bytes) return AP_ERR_NOMEM;
    for (int i = 0; i < 8; i++) bytes[(size_t)p->rank * 8 + i] = (float)((value >> (8 * i)) & 0xff);
    ap_status st = p->sum(p->ctx, bytes, n, err);
    for (int r = 1; st == AP_OK && r < p->size; r++)
        for (int i = 0; i < 8; i++)
            if (bytes[(size_t)r * 8 + i] != bytes[i]) {
                st = ap_fail(err, AP_ERR_INTERNAL, "rank %d of %d holds another %s than rank 0", r, p->size, what);
                break;
            }
    free(bytes);
    return st;
}

void ap_parallel_share(int B, int rank, int size, int *lo, int *n) {
    int64_t a = (int64_t)B * rank / size, b = (int64_t)B * (rank + 1) / size;
    *lo = (int)a;
    *n = (int)(b - a);
}
