/* Gradient checks of AP-MAE (src/mae): the whole model's loss, in double
 * precision (the _d instantiation of net.inc, the same source as the float
 * code the tool runs), against central finite differences (five-point
 * stencil); then the float backward against the double one. The shared
 * kernels' own checks are in test_nn_grad.c.
 *
 * Error measure: |analytic - numeric| / max(|numeric|, 1e-3 · max|numeric|
 * over the tensor), so near-zero entries of a tensor are judged on the scale
 * of that tensor. The worst value of each check is printed. */
#include "testutil.h"

#include "mae/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define H_STEP 1e-4
#define TOL 1e-6

static ap_rng g_rng;

/* ---- The whole model ----------------------------------------------------------
 * N 16, p 4 (g 4, T 10), encoder 12 wide, decoder 8 wide (enc_to_dec), two
 * layers each, qkv bias on (covers the optional tensor), 5 masked patches. */

typedef struct {
    mae_layout L;
    mae_plan pl;
    int compat, B, M;
    double *P, *A, *loss;
    float *scaled;
    int64_t *masked;
    int *vis;
} model_ctx;

static double model_loss(void *p) {
    model_ctx *c = p;
    mae_forward_d(&c->L, &c->pl, c->compat, c->P, c->A, c->scaled, c->masked, c->vis, c->loss);
    double s = 0;
    for (int b = 0; b < c->B; b++) s += c->loss[b];
    return s / c->B;
}

static ap_mae_config grad_config(void) {
    ap_mae_config cfg = {16, 4, 0.5, 12, 2, 2, 4, 16, 8, 2, 2, 3, 12, 1e-12, 1, AP_MAE_SCALER_LOG_NORMALIZE};
    return cfg;
}

/* Random causal attention patterns (softmax rows of random logits). */
static void random_patterns(float *P, int B, int N) {
    for (int b = 0; b < B; b++)
        for (int i = 0; i < N; i++) {
            float *row = P + ((size_t)b * N + i) * N;
            double sum = 0;
            for (int j = 0; j < N; j++) {
                row[j] = j <= i ? (float)exp(3 * ap_rng_uniform(&g_rng)) : 0.0f;
                sum += row[j];
            }
            for (int j = 0; j <= i; j++) row[j] = (float)(row[j] / sum);
        }
}

static void model_setup(model_ctx *c, int compat, ap_mae_model **fm) {
    ap_mae_config cfg = grad_config();
    memset(c, 0, sizeof *c);
    c->compat = compat;
    c->B = 2;
    c->M = 5;
    TU_OK(ap_mae_new(&cfg, 7, fm, tu_err()));
    (*fm)->compat_reference = compat;
    TU_OK(mae_layout_init(&c->L, &cfg, tu_err()));
    const int N = cfg.max_length, V = c->L.T - c->M;
    mae_plan_init(&c->pl, &c->L, c->B, 1 + V, c->M, 1);
    c->P = tu_dalloc(c->L.total);
    /* Perturb the init (LayerNorm 1/0, biases 0.01, cls 0) so no gradient
     * is trivially symmetric. */
    for (size_t i = 0; i < c->L.total; i++) {
        (*fm)->params[i] += (float)(0.1 * (2 * ap_rng_uniform(&g_rng) - 1));
        c->P[i] = (*fm)->params[i];
    }
    c->A = tu_dalloc(c->pl.total);
    c->loss = tu_dalloc(c->B);
    float *raw = malloc((size_t)c->B * N * N * sizeof(float));
    c->scaled = malloc((size_t)c->B * N * N * sizeof(float));
    random_patterns(raw, c->B, N);
    TU_OK(ap_mae_scale(&cfg, raw, c->B, c->scaled, tu_err()));
    free(raw);
    c->masked = malloc((size_t)c->B * c->M * sizeof(int64_t));
    static const int64_t ids[2][5] = {{5, 0, 15, 9, 10}, {12, 4, 8, 14, 0}};
    memcpy(c->masked, ids, sizeof ids);
    TU_OK(ap_mae_check_masks(&cfg, c->masked, c->B, c->M, tu_err()));
    c->vis = malloc((size_t)c->B * V * sizeof(int));
    mae_visible_ids(&c->L, c->masked, c->B, c->M, c->vis);
}

static void model_teardown(model_ctx *c, ap_mae_model *fm) {
    mae_layout_free(&c->L);
    free(c->P), free(c->A), free(c->loss), free(c->scaled), free(c->masked), free(c->vis);
    ap_mae_free(fm);
}

static void check_model(int compat) {
    model_ctx c;
    ap_mae_model *fm;
    model_setup(&c, compat, &fm);
    double *G = tu_dalloc(c.L.total);
    double base = model_loss(&c);
    mae_backward_d(&c.L, &c.pl, c.compat, c.P, c.A, c.masked, c.vis, G);

    /* Finite differences on up to 6 entries of every tensor. */
    double worst = 0;
    const char *worst_name = "";
    for (size_t t = 0; t < c.L.ntensors; t++) {
        const ap_mae_tensor_info *ti = &c.L.tensors[t];
        size_t k = ti->numel < 6 ? ti->numel : 6;
        double an[6], num[6], gmax = 0;
        for (size_t j = 0; j < k; j++) {
            size_t idx = ti->offset + (size_t)(ap_rng_uniform(&g_rng) * ti->numel);
            tu_numeric_grad(model_loss, &c, &c.P[idx], 1, H_STEP, &num[j]);
            an[j] = G[idx];
        }
        for (size_t j = ti->offset; j < ti->offset + ti->numel; j++) gmax = fmax(gmax, fabs(G[j]));
        /* Entries are judged on the scale of the whole tensor's gradient. */
        double e = 0;
        for (size_t j = 0; j < k; j++)
            e = fmax(e, fabs(an[j] - num[j]) / fmax(fmax(fabs(num[j]), 1e-3 * gmax), 1e-300));
        if (e > worst) worst = e, worst_name = ti->name;
        assert_true(gmax > 0); /* every tensor takes part in the loss */
        if (e >= TOL) fail_msg("%s: rel err %.3e (analytic %.9g numeric %.9g)", ti->name, e, an[0], num[0]);
    }
    print_message("  model (%s): loss %.6f, %zu tensors, worst rel err %.2e (%s)\n",
                  compat ? "reference" : "default", base, c.L.ntensors, worst, worst_name);

    /* The float code (the tool's) against the double reference, at the
     * unperturbed parameters. */
    assert_true(model_loss(&c) == base);
    float *loss_f = malloc(c.B * sizeof(float));
    TU_OK(ap_mae_forward(fm, c.scaled, c.B, c.masked, c.M, loss_f, NULL, tu_err()));
    for (int b = 0; b < c.B; b++) {
        print_message("  float loss %.9g, double %.9g\n", loss_f[b], c.loss[b]);
        assert_true(fabs(loss_f[b] - c.loss[b]) <= 1e-5 * fabs(c.loss[b]));
    }
    ap_mae_work *w = fm->work;
    float *Gf = calloc(c.L.total, sizeof(float));
    int *vis = malloc((size_t)c.B * (c.L.T - c.M) * sizeof(int));
    mae_visible_ids(&w->L, c.masked, c.B, c.M, vis);
    mae_backward_f(&w->L, &w->plan, compat, fm->params, w->acts, c.masked, vis, Gf);
    double worst_f = 0;
    for (size_t t = 0; t < c.L.ntensors; t++) {
        const ap_mae_tensor_info *ti = &c.L.tensors[t];
        double gmax = 0, e = 0;
        for (size_t j = ti->offset; j < ti->offset + ti->numel; j++) gmax = fmax(gmax, fabs(G[j]));
        for (size_t j = ti->offset; j < ti->offset + ti->numel; j++)
            e = fmax(e, fabs(Gf[j] - G[j]) / fmax(fabs(G[j]), 1e-3 * gmax));
        worst_f = fmax(worst_f, e);
    }
    print_message("  float backward vs double: worst rel err %.2e\n", worst_f);
    assert_true(worst_f < 1e-3);
    free(Gf), free(vis), free(loss_f), free(G);
    model_teardown(&c, fm);
}

static void test_model_default(void **state) {
    (void)state;
    check_model(0);
}

static void test_model_reference(void **state) {
    (void)state;
    check_model(1);
}

int main(void) {
    ap_rng_seed(&g_rng, 12345);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_default),
        cmocka_unit_test(test_model_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
