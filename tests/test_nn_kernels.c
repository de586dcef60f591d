/* The shared float kernels (src/nn, apmae/nn.h) against straightforward
 * double-precision formulas; their results do not depend on the thread
 * count; AdamW is PyTorch's. The gradients are checked in test_nn_grad.c. */
#include "testutil.h"

#include "apmae/nn.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static float frand(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (float)((*s >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static void test_fast_expf(void **state) {
    (void)state;
    double worst = 0;
    for (float x = -87.0f; x <= 88.0f; x += 0.001953125f) {
        double want = exp((double)x), got = ap_nn_fast_expf(x);
        double rel = fabs(got - want) / want;
        if (rel > worst) worst = rel;
    }
    /* float32 has 6e-8 relative precision: 2-3 ulp at most */
    assert_true(worst < 2.5e-7);
    assert_true(ap_nn_fast_expf(-100.0f) == 0.0f);
    assert_true(ap_nn_fast_expf(0.0f) == 1.0f);
    assert_true(isfinite(ap_nn_fast_expf(1000.0f)));
}

static void test_gelu_tanh(void **state) {
    (void)state;
    float x[2001];
    for (int i = 0; i < 2001; i++) x[i] = (float)(i - 1000) * 0.012f;
    float y[2001];
    for (int i = 0; i < 2001; i++) y[i] = x[i];
    ap_nn_gelu_tanh_fwd_f(y, y, 2001); /* in place, as inference runs it */
    for (int i = 0; i < 2001; i++) {
        double v = x[i];
        double want = 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
        assert_true(fabs(y[i] - want) <= 1e-6 * (1.0 + fabs(want)));
    }
}

/* The erf form and its derivative, Phi(x) + x phi(x), to float resolution. */
static void test_gelu_erf(void **state) {
    (void)state;
    enum { N = 2001 };
    float x[N], y[N], dy[N], ones[N];
    for (int i = 0; i < N; i++) x[i] = (float)(i - 1000) * 0.015f, ones[i] = 1.0f;
    ap_nn_gelu_erf_fwd_f(y, x, N);
    ap_nn_gelu_erf_bwd_f(dy, x, ones, N);
    for (int i = 0; i < N; i++) {
        double v = x[i], cdf = 0.5 * (1 + erf(v / sqrt(2.0))), pdf = exp(-0.5 * v * v) / sqrt(2 * M_PI);
        assert_true(fabs(y[i] - v * cdf) <= 1e-6 * (1.0 + fabs(v * cdf)));
        assert_true(fabs(dy[i] - (cdf + v * pdf)) <= 1e-6);
    }
}

static void test_layernorm(void **state) {
    (void)state;
    enum { T = 3, D = 37 };
    float x[T * D], y[T * D], w[D], b[D];
    uint64_t s = 7;
    for (int i = 0; i < T * D; i++) x[i] = 5.0f + 3.0f * frand(&s);
    for (int i = 0; i < D; i++) w[i] = 1.0f + frand(&s), b[i] = frand(&s);
    ap_nn_layernorm_fwd_f(y, NULL, NULL, x, w, b, T, D, 1e-5f); /* statistics not kept, as in inference */
    for (int t = 0; t < T; t++) {
        double m = 0, v = 0;
        for (int i = 0; i < D; i++) m += x[t * D + i];
        m /= D;
        for (int i = 0; i < D; i++) v += (x[t * D + i] - m) * (x[t * D + i] - m);
        v /= D;
        for (int i = 0; i < D; i++) {
            double want = (x[t * D + i] - m) / sqrt(v + 1e-5) * w[i] + b[i];
            assert_true(fabs(y[t * D + i] - want) < 1e-5);
        }
    }
}

/* Rows of scores over a wide range: probabilities that sum to 1 and match the
 * double-precision softmax; a row of one entry is 1. */
static void test_softmax_row(void **state) {
    (void)state;
    enum { N = 203 };
    float p[N];
    double ref[N];
    uint64_t s = 5;
    for (int scale = 1; scale <= 100; scale *= 10) {
        double maxv = -INFINITY, sum = 0;
        for (int j = 0; j < N; j++) {
            p[j] = (float)scale * frand(&s);
            maxv = fmax(maxv, p[j]);
        }
        for (int j = 0; j < N; j++) sum += ref[j] = exp(p[j] - maxv);
        ap_nn_softmax_row_f(p, N);
        double total = 0;
        for (int j = 0; j < N; j++) {
            assert_true(fabs(p[j] - ref[j] / sum) <= 1e-6 * ref[j] / sum + 1e-9);
            total += p[j];
        }
        assert_true(fabs(total - 1) < 1e-5);
    }
    float one = 42.0f;
    ap_nn_softmax_row_f(&one, 1);
    assert_true(one == 1.0f);
}

/* Column sums (LayerNorm and linear parameter gradients, embedding rows) run
 * in a fixed order: one and two threads give the same bits. */
static void backward_pass(float *out, const float *x, const float *dy, const float *w, const int32_t *ids, int n,
                          int C) {
    float *mean = malloc(sizeof(float) * n), *rstd = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n * C);
    assert_true(mean && rstd && y);
    memset(out, 0, sizeof(float) * (size_t)(5 * C + n * C));
    ap_nn_layernorm_fwd_f(y, mean, rstd, x, w, w, n, C, 1e-5);
    ap_nn_layernorm_bwd_f(out, out + n * C, out + n * C + C, dy, x, w, mean, rstd, n, C);
    ap_nn_linear_bwd_f(NULL, 0, NULL, out + n * C + 2 * C, dy, x, w, n, C, C);
    ap_nn_embedding_bwd_f(out + n * C + 3 * C, ids, dy, n, C);
    free(mean), free(rstd), free(y);
}

static void test_thread_count_independent(void **state) {
    (void)state;
    enum { n = 600, C = 100 }; /* n*C above the size that goes parallel */
    size_t outn = 5 * C + n * C;
    float *x = malloc(sizeof(float) * n * C), *dy = malloc(sizeof(float) * n * C), *w = malloc(sizeof(float) * C);
    float *one = malloc(sizeof(float) * outn), *two = malloc(sizeof(float) * outn);
    int32_t *ids = malloc(sizeof(int32_t) * n);
    assert_true(x && dy && w && one && two && ids);
    uint64_t s = 9;
    for (int i = 0; i < n * C; i++) x[i] = frand(&s), dy[i] = frand(&s);
    for (int i = 0; i < C; i++) w[i] = 1 + frand(&s);
    for (int i = 0; i < n; i++) ids[i] = i % 2; /* two rows of E, each the sum of 300 rows of dy */
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    backward_pass(one, x, dy, w, ids, n, C);
    omp_set_num_threads(2);
    backward_pass(two, x, dy, w, ids, n, C);
    omp_set_num_threads(threads);
    assert_memory_equal(one, two, sizeof(float) * outn);
    free(x), free(dy), free(w), free(one), free(two), free(ids);
}

/* Two AdamW steps, one with weight decay and one without, against
 * torch.optim.AdamW's update in double. */
static void test_adamw(void **state) {
    (void)state;
    enum { N = 1000 };
    float p[N], g[N], m[N] = {0}, v[N] = {0};
    double rp[N], rm[N] = {0}, rv[N] = {0};
    uint64_t s = 3;
    for (int i = 0; i < N; i++) p[i] = frand(&s), rp[i] = p[i];
    for (int step = 1; step <= 2; step++) {
        ap_nn_adamw opt = {0.9, 0.95, 1e-8, step == 1 ? 0.05 : 0.0};
        double lr = 1e-2 * step;
        for (int i = 0; i < N; i++) g[i] = frand(&s);
        ap_nn_adamw_step(&opt, p, g, m, v, N, step, lr);
        tu_adamw_reference(rp, rm, rv, g, N, step, lr, opt.beta1, opt.beta2, opt.eps, opt.weight_decay);
    }
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(p[i] - rp[i]));
    print_message("  AdamW vs the PyTorch formula: max |diff| %.2e after 2 steps\n", worst);
    assert_true(worst < 1e-6);
    /* the gradient norm over a block, and clipping by scaling */
    for (int i = 0; i < N; i++) g[i] = i % 2 ? 3.0f : -4.0f; /* pairs of norm 5 */
    double norm = ap_nn_grad_norm(g, N);
    assert_true(fabs(norm - 5 * sqrt(N / 2.0)) < 1e-9 * norm);
    ap_nn_scale(g, N, 0.5f);
    assert_true(g[0] == -2.0f && g[1] == 1.5f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_expf),   cmocka_unit_test(test_gelu_tanh),
        cmocka_unit_test(test_gelu_erf),    cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_softmax_row), cmocka_unit_test(test_thread_count_independent),
        cmocka_unit_test(test_adamw),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
