/* Stratified splits and folds, the Wilson interval, and the LM-confidence
 * baseline's threshold (docs/analysis.md "Classify"). */
#include "apmae/classify.h"

#include <math.h>
#include <stdlib.h>

/* Indices of class c in ascending order, then shuffled with the seed. */
static int64_t class_members(const uint8_t *y, int64_t n, int c, uint64_t seed, int64_t *out) {
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if ((y[i] != 0) == c) out[m++] = i;
    ap_rng r;
    ap_rng_seed(&r, ap_hash_mix(seed, (uint64_t)c));
    for (int64_t i = m - 1; i > 0; i--) {
        int64_t j = (int64_t)ap_rng_below(&r, (uint64_t)i + 1), t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
    return m;
}

ap_status ap_stratified_split(const uint8_t *y, int64_t n, double fraction, uint64_t seed, uint8_t *in_test,
                              ap_error *err) {
    int64_t *members = ap_malloc((size_t)(n > 0 ? n : 1) * sizeof *members, err);
    if (!members) return AP_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) in_test[i] = 0;
    for (int c = 0; c < 2; c++) {
        int64_t m = class_members(y, n, c, seed, members), take = llround(fraction * (double)m);
        for (int64_t k = 0; k < take && k < m; k++) in_test[members[k]] = 1;
    }
    free(members);
    return AP_OK;
}

ap_status ap_stratified_folds(const uint8_t *y, int64_t n, int K, uint64_t seed, int *fold, ap_error *err) {
    int64_t *members = ap_malloc((size_t)(n > 0 ? n : 1) * sizeof *members, err);
    if (!members) return AP_ERR_NOMEM;
    /* Deal each class round robin, the second class continuing where the
     * first stopped, so fold sizes differ by at most one. */
    int64_t dealt = 0;
    for (int c = 0; c < 2; c++) {
        int64_t m = class_members(y, n, c, seed, members);
        for (int64_t k = 0; k < m; k++) fold[members[k]] = (int)((dealt + k) % K);
        dealt += m;
    }
    free(members);
    return AP_OK;
}

void ap_wilson_interval(int64_t k, int64_t n, double *lo, double *hi) {
    if (n <= 0) {
        *lo = 0;
        *hi = 1;
        return;
    }
    const double z = 1.959963984540054, p = (double)k / (double)n, z2n = z * z / (double)n;
    double centre = (p + z2n / 2) / (1 + z2n);
    double half = z / (1 + z2n) * sqrt(p * (1 - p) / (double)n + z2n / (4 * (double)n));
    *lo = fmax(0, centre - half);
    *hi = fmin(1, centre + half);
}

typedef struct scored {
    float p;
    uint8_t y;
} scored;

static int by_prob(const void *a, const void *b) {
    float x = ((const scored *)a)->p, y = ((const scored *)b)->p;
    return (x > y) - (x < y);
}

ap_status ap_confidence_threshold(const float *max_prob, const uint8_t *y, const int64_t *rows, int64_t n,
                                  double *threshold, ap_error *err) {
    scored *s = ap_malloc((size_t)(n > 0 ? n : 1) * sizeof *s, err);
    if (!s) return AP_ERR_NOMEM;
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++) {
        s[i] = (scored){max_prob[rows[i]], y[rows[i]] != 0};
        correct += s[i].y;
    }
    qsort(s, (size_t)n, sizeof *s, by_prob);
    /* Sweep the thresholds from 0 upwards: below = the samples with p <= t
     * (called incorrect). Candidates are 0, the midpoints between distinct
     * neighbouring probabilities, and 1. */
    int64_t below = 0, incorrect_below = 0, correct_above = correct;
    while (below < n && s[below].p <= 0) {
        incorrect_below += !s[below].y;
        correct_above -= s[below].y;
        below++;
    }
    double best_t = 0;
    int64_t best_hits = incorrect_below + correct_above;
    while (below < n) {
        int64_t end = below;
        while (end < n && s[end].p == s[below].p) {
            incorrect_below += !s[end].y;
            correct_above -= s[end].y;
            end++;
        }
        double t = end < n ? 0.5 * ((double)s[below].p + (double)s[end].p) : 1.0;
        if (incorrect_below + correct_above > best_hits) {
            best_hits = incorrect_below + correct_above;
            best_t = t;
        }
        below = end;
    }
    free(s);
    *threshold = best_t;
    return AP_OK;
}
