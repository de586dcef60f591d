/* AP-MAE inputs: the scalers of docs/mae.md and the patch masks. */
#include "apmae/mae.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* log_normalize: x = log P, m = min x with -inf counted as 0, pixel =
 * (x - m) / -m, zeros of P stay 0. When m = 0 (every non-zero entry is 1)
 * the scale is degenerate; those entries map to 1, the value P = 1 takes
 * for every m < 0, where the published code would divide 0 by 0. */
static void log_normalize(const float *P, size_t n, float *out) {
    float m = INFINITY;
    for (size_t i = 0; i < n; i++) { /* one logf per entry: out holds x meanwhile */
        out[i] = P[i] > 0 ? logf(P[i]) : 0.0f;
        m = out[i] < m ? out[i] : m;
    }
    if (!(m < 0)) {
        for (size_t i = 0; i < n; i++) out[i] = P[i] > 0 ? 1.0f : 0.0f;
        return;
    }
    const float inv = -1.0f / m;
    for (size_t i = 0; i < n; i++) out[i] = P[i] > 0 ? (out[i] - m) * inv : 0.0f;
}

/* log: x = log P with -inf (and nan, +inf) replaced by 1 / ln N. */
static void log_scale(const float *P, size_t n, int N, float *out) {
    const float fill = (float)(1.0 / log((double)N));
    for (size_t i = 0; i < n; i++) {
        float x = P[i] > 0 ? logf(P[i]) : -INFINITY;
        out[i] = isfinite(x) ? x : fill;
    }
}

ap_status ap_mae_scale(const ap_mae_config *cfg, const float *patterns, int B, float *scaled, ap_error *err) {
    const int N = cfg->max_length;
    const size_t n = (size_t)N * N;
    int64_t bad = -1; /* the first offending entry, if any */
    for (size_t i = 0; i < (size_t)B * n && bad < 0; i++)
        if (!(patterns[i] >= 0) || isinf(patterns[i])) bad = (int64_t)i;
    if (bad >= 0) {
        size_t img = (size_t)bad / n, r = ((size_t)bad % n) / N, c = (size_t)bad % N;
        return ap_fail(err, AP_ERR_RANGE, "pattern %zu: entry (%zu, %zu) = %g is not a probability (>= 0, finite)",
                       img, r, c, (double)patterns[bad]);
    }
#pragma omp parallel for schedule(static) if (B > 1 && (size_t)B * n > 65536)
    for (int b = 0; b < B; b++) {
        const float *P = patterns + (size_t)b * n;
        float *out = scaled + (size_t)b * n;
        switch (cfg->scaler) {
        case AP_MAE_SCALER_LOG_NORMALIZE: log_normalize(P, n, out); break;
        case AP_MAE_SCALER_LOG: log_scale(P, n, N, out); break;
        case AP_MAE_SCALER_NONE: memcpy(out, P, n * sizeof *out); break;
        }
    }
    return AP_OK;
}

/* Patch id of the t-th lower-triangle patch in row-major order. */
static int64_t tril_patch(int g, int t) {
    int r = 0;
    while ((r + 1) * (r + 2) / 2 <= t) r++;
    return (int64_t)r * g + (t - r * (r + 1) / 2);
}

void ap_mae_random_masks(const ap_mae_config *cfg, ap_rng *rng, int B, int64_t *masked) {
    const int g = ap_mae_grid(cfg), T = ap_mae_num_tril(cfg), M = ap_mae_num_masked(cfg);
    for (int b = 0; b < B; b++) {
        int64_t *ids = masked + (size_t)b * M;
        /* Floyd's sampling gives a uniform M-subset of 0..T-1 ... */
        for (int j = T - M, i = 0; j < T; j++, i++) {
            int64_t t = (int64_t)(ap_rng_uniform(rng) * (j + 1));
            for (int q = 0; q < i; q++)
                if (ids[q] == t) {
                    t = j;
                    break;
                }
            ids[i] = t;
        }
        /* ... and a shuffle a uniform order (the order of the predictions). */
        for (int i = M - 1; i > 0; i--) {
            int j = (int)(ap_rng_uniform(rng) * (i + 1));
            int64_t tmp = ids[i];
            ids[i] = ids[j];
            ids[j] = tmp;
        }
        for (int i = 0; i < M; i++) ids[i] = tril_patch(g, (int)ids[i]);
    }
}

ap_status ap_mae_check_masks(const ap_mae_config *cfg, const int64_t *masked, int B, int M, ap_error *err) {
    const int g = ap_mae_grid(cfg), T = ap_mae_num_tril(cfg);
    if (M < 1 || M > T)
        return ap_fail(err, AP_ERR_RANGE, "masked_indices: %d masked patches per image, expected 1..%d", M, T);
    unsigned char *seen = ap_calloc((size_t)g * g, 1, err);
    if (!seen) return AP_ERR_NOMEM;
    ap_status st = AP_OK;
    for (int b = 0; b < B && st == AP_OK; b++) {
        memset(seen, 0, (size_t)g * g);
        for (int i = 0; i < M && st == AP_OK; i++) {
            int64_t k = masked[(size_t)b * M + i];
            if (k < 0 || k >= (int64_t)g * g || k / g < k % g)
                st = ap_fail(err, AP_ERR_RANGE,
                             "masked_indices[%d][%d] = %lld is not a patch on or below the diagonal of the %dx%d grid",
                             b, i, (long long)k, g, g);
            else if (seen[k]++)
                st = ap_fail(err, AP_ERR_RANGE, "masked_indices[%d]: patch %lld is masked twice", b, (long long)k);
        }
    }
    free(seen);
    return st;
}
