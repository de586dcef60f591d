/* AdamW and gradient clipping over a float parameter block (apmae/nn.h). */
#include "apmae/nn.h"

#include <math.h>

void ap_nn_adamw_step(const ap_nn_adamw *opt, float *p, const float *g, float *m, float *v, size_t n, int64_t step,
                      double lr) {
    double bc1 = 1.0 - pow(opt->beta1, (double)step), bc2 = 1.0 - pow(opt->beta2, (double)step);
    float b1 = (float)opt->beta1, b2 = (float)opt->beta2, step_size = (float)(lr / bc1);
    float rbc2 = (float)(1.0 / sqrt(bc2)), eps = (float)opt->eps;
    float keep = (float)(1.0 - lr * opt->weight_decay);
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t j = 0; j < n; j++) {
        p[j] *= keep;
        m[j] = b1 * m[j] + (1.0f - b1) * g[j];
        v[j] = b2 * v[j] + (1.0f - b2) * g[j] * g[j];
        p[j] -= step_size * m[j] / (sqrtf(v[j]) * rbc2 + eps);
    }
}

double ap_nn_grad_norm(const float *g, size_t n) {
    /* fixed chunks summed in order: the same value whatever the thread count */
    enum { CHUNKS = 64 };
    double part[CHUNKS];
    size_t per = (n + CHUNKS - 1) / CHUNKS;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < CHUNKS; c++) {
        size_t a = (size_t)c * per, b = a + per < n ? a + per : n;
        double s = 0;
        for (size_t i = a; i < b; i++) s += (double)g[i] * g[i];
        part[c] = s;
    }
    double s = 0;
    for (int c = 0; c < CHUNKS; c++) s += part[c];
    return sqrt(s);
}

void ap_nn_scale(float *g, size_t n, float s) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) g[i] *= s;
}
