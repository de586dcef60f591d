/* Gradient checks of the shared kernels (src/nn, apmae/nn.h): every kernel's
 * backward, in double precision (the _d kernels, the same source as the
 * float ones the tool runs), against central finite differences (five-point
 * stencil) of the sum of its output times a random dout. Each kernel is
 * checked in the shapes the LM and AP-MAE use it in.
 *
 * Error measure: |analytic - numeric| / max(|numeric|, 1e-3 · max|numeric|
 * over the tensor), so near-zero entries of a tensor are judged on the scale
 * of that tensor. The worst value of each check is printed. */
#include "testutil.h"

#include "apmae/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define H_STEP 1e-4
#define TOL 1e-6

static ap_rng g_rng;


/* ---- LayerNorm ------------------------------------------------------------------ */

typedef struct {
    int n, C;
    double eps;
    double *x, *w, *b, *dout, *out, *mean, *rstd;
} ln_ctx;

static double ln_loss(void *p) {
    ln_ctx *c = p;
    ap_nn_layernorm_fwd_d(c->out, c->mean, c->rstd, c->x, c->w, c->b, c->n, c->C, c->eps);
    return tu_dot(c->out, c->dout, (size_t)c->n * c->C);
}

static void layernorm_case(const char *name, int n, int C, double eps) {
    ln_ctx c = {.n = n, .C = C, .eps = eps};
    size_t nx = (size_t)c.n * c.C;
    c.x = tu_dalloc(nx), c.w = tu_dalloc(c.C), c.b = tu_dalloc(c.C), c.dout = tu_dalloc(nx), c.out = tu_dalloc(nx);
    c.mean = tu_dalloc(c.n), c.rstd = tu_dalloc(c.n);
    tu_fill(&g_rng, c.x, nx, 2), tu_fill(&g_rng, c.w, c.C, 1.5), tu_fill(&g_rng, c.b, c.C, 1), tu_fill(&g_rng, c.dout, nx, 1);
    double *dx = tu_dalloc(nx), *dw = tu_dalloc(c.C), *db = tu_dalloc(c.C), *num = tu_dalloc(nx);
    ln_loss(&c);
    ap_nn_layernorm_bwd_d(dx, dw, db, c.dout, c.x, c.w, c.mean, c.rstd, c.n, c.C);
    char what[64];
    tu_numeric_grad(ln_loss, &c, c.x, nx, H_STEP, num);
    snprintf(what, sizeof what, "layernorm d input (%s)", name);
    tu_check_grad(what, dx, num, nx, TOL);
    tu_numeric_grad(ln_loss, &c, c.w, c.C, H_STEP, num);
    snprintf(what, sizeof what, "layernorm d weight (%s)", name);
    tu_check_grad(what, dw, num, c.C, TOL);
    tu_numeric_grad(ln_loss, &c, c.b, c.C, H_STEP, num);
    snprintf(what, sizeof what, "layernorm d bias (%s)", name);
    tu_check_grad(what, db, num, c.C, TOL);
    free(c.x), free(c.w), free(c.b), free(c.dout), free(c.out), free(c.mean), free(c.rstd);
    free(dx), free(dw), free(db), free(num);
}

static void test_layernorm(void **state) {
    (void)state;
    layernorm_case("C 37, LM eps", 3, 37, 1e-5); /* C over two column blocks */
    layernorm_case("C 7, AP-MAE eps", 3, 7, 1e-12);
}

/* ---- Linear ------------------------------------------------------------------------ */

typedef struct {
    int n, cin, cout;
    double *x, *w, *b, *dout, *out;
} lin_ctx;

static double lin_loss(void *p) {
    lin_ctx *c = p;
    ap_nn_linear_fwd_d(c->out, c->x, c->w, c->b, c->n, c->cin, c->cout);
    return tu_dot(c->out, c->dout, (size_t)c->n * c->cout);
}

static void linear_case(int n, int cin, int cout) {
    lin_ctx c = {.n = n, .cin = cin, .cout = cout};
    size_t nx = (size_t)c.n * c.cin, nw = (size_t)c.cout * c.cin, ny = (size_t)c.n * c.cout;
    c.x = tu_dalloc(nx), c.w = tu_dalloc(nw), c.b = tu_dalloc(c.cout), c.dout = tu_dalloc(ny), c.out = tu_dalloc(ny);
    tu_fill(&g_rng, c.x, nx, 1), tu_fill(&g_rng, c.w, nw, 1), tu_fill(&g_rng, c.b, c.cout, 1), tu_fill(&g_rng, c.dout, ny, 1);
    double *dx = tu_dalloc(nx), *dw = tu_dalloc(nw), *db = tu_dalloc(c.cout), *num = tu_dalloc(nx + nw);
    tu_fill(&g_rng, dx, nx, 1); /* overwritten (accumulate = 0) */
    ap_nn_linear_bwd_d(dx, 0, dw, db, c.dout, c.x, c.w, c.n, c.cin, c.cout);
    char what[64];
    tu_numeric_grad(lin_loss, &c, c.x, nx, H_STEP, num);
    snprintf(what, sizeof what, "linear d input (%d -> %d)", cin, cout);
    tu_check_grad(what, dx, num, nx, TOL);
    tu_numeric_grad(lin_loss, &c, c.w, nw, H_STEP, num);
    snprintf(what, sizeof what, "linear d weight (%d -> %d)", cin, cout);
    tu_check_grad(what, dw, num, nw, TOL);
    tu_numeric_grad(lin_loss, &c, c.b, c.cout, H_STEP, num);
    snprintf(what, sizeof what, "linear d bias (%d -> %d)", cin, cout);
    tu_check_grad(what, db, num, c.cout, TOL);
    /* accumulate = 1 adds to what is there */
    double *acc = tu_dalloc(nx);
    for (size_t i = 0; i < nx; i++) acc[i] = 1.0;
    ap_nn_linear_bwd_d(acc, 1, NULL, NULL, c.dout, c.x, c.w, c.n, c.cin, c.cout);
    for (size_t i = 0; i < nx; i++) assert_true(fabs(acc[i] - 1.0 - dx[i]) < 1e-12);
    free(c.x), free(c.w), free(c.b), free(c.dout), free(c.out), free(dx), free(dw), free(db), free(num), free(acc);
}

static void test_linear(void **state) {
    (void)state;
    linear_case(4, 6, 19); /* bias columns over two column blocks */
    linear_case(4, 5, 3);
}

/* ---- attention -------------------------------------------------------------------- */

/* q, k, v with row strides ldq, ldkv: one buffer each (the LM's separate
 * projections) or all three in one packed buffer (AP-MAE's qkv). */
typedef struct {
    int B, T, H, KV, hd, window, ldq, ldkv;
    double *q, *k, *v, *dout, *out, *att;
} att_ctx;

static double att_loss(void *p) {
    att_ctx *c = p;
    ap_nn_attention_fwd_d(c->out, c->att, c->q, c->k, c->v, c->ldq, c->ldkv, c->B, c->T, c->H, c->KV, c->hd,
                          c->window);
    return tu_dot(c->out, c->dout, (size_t)c->B * c->T * c->H * c->hd);
}

/* Masked probabilities are exactly 0 (the causal mask and the window); every
 * row sums to 1. */
static void check_probabilities(const att_ctx *c) {
    for (int bh = 0; bh < c->B * c->H; bh++)
        for (int i = 0; i < c->T; i++) {
            double sum = 0;
            for (int j = 0; j < c->T; j++) {
                double p = c->att[((size_t)bh * c->T + i) * c->T + j];
                int visible = c->window == AP_NN_UNMASKED || (j <= i && (c->window <= 0 || i - j < c->window));
                assert_true(visible ? p > 0 : p == 0);
                sum += p;
            }
            assert_true(fabs(sum - 1) < 1e-12);
        }
}

static void grad_of(att_ctx *c, const char *what, double *x, const double *analytic, size_t n) {
    double *num = tu_dalloc(n);
    tu_numeric_grad(att_loss, c, x, n, H_STEP, num);
    tu_check_grad(what, analytic, num, n, TOL);
    free(num);
}

/* The LM's layout: q [B*T, H*hd], k and v [B*T, KV*hd]. */
static void causal_case(int B, int T, int H, int KV, int window) {
    att_ctx c = {.B = B, .T = T, .H = H, .KV = KV, .hd = 4, .window = window};
    c.ldq = H * c.hd, c.ldkv = KV * c.hd;
    size_t nq = (size_t)c.B * c.T * c.ldq, nk = (size_t)c.B * c.T * c.ldkv, na = (size_t)c.B * c.H * c.T * c.T;
    c.q = tu_dalloc(nq), c.k = tu_dalloc(nk), c.v = tu_dalloc(nk), c.dout = tu_dalloc(nq), c.out = tu_dalloc(nq);
    c.att = tu_dalloc(na);
    tu_fill(&g_rng, c.q, nq, 1.5), tu_fill(&g_rng, c.k, nk, 1.5), tu_fill(&g_rng, c.v, nk, 1), tu_fill(&g_rng, c.dout, nq, 1);
    double *dq = tu_dalloc(nq), *dk = tu_dalloc(nk), *dv = tu_dalloc(nk);
    double *scratch = tu_dalloc(ap_nn_attention_scratch(c.T));
    att_loss(&c);
    check_probabilities(&c);
    tu_fill(&g_rng, dk, nk, 1), tu_fill(&g_rng, dv, nk, 1); /* overwritten */
    ap_nn_attention_bwd_d(dq, dk, dv, scratch, c.dout, c.q, c.k, c.v, c.att, c.ldq, c.ldkv, c.B, c.T, c.H, c.KV,
                          c.hd, window);
    char what[64];
    snprintf(what, sizeof what, "causal attention d q (T %d, window %d)", T, window);
    grad_of(&c, what, c.q, dq, nq);
    snprintf(what, sizeof what, "causal attention d k (T %d, window %d)", T, window);
    grad_of(&c, what, c.k, dk, nk);
    snprintf(what, sizeof what, "causal attention d v (T %d, window %d)", T, window);
    grad_of(&c, what, c.v, dv, nk);
    free(c.q), free(c.k), free(c.v), free(c.dout), free(c.out), free(c.att);
    free(dq), free(dk), free(dv), free(scratch);
}

static void test_attention_causal(void **state) {
    (void)state;
    causal_case(2, 6, 4, 2, 0);
    causal_case(2, 6, 4, 2, 3);
    /* over two query blocks (64 rows), with a window reaching across them */
    causal_case(1, 80, 2, 1, 0);
    causal_case(1, 80, 2, 1, 50);
}

/* AP-MAE's layout: rows [q (H·dh) | k (H·dh) | v (H·dh)] in one buffer. */
static void test_attention_unmasked(void **state) {
    (void)state;
    const int B = 2, S = 5, H = 2, dh = 3, Ch = H * dh, C3 = 3 * Ch;
    att_ctx c = {.B = B, .T = S, .H = H, .KV = H, .hd = dh, .window = AP_NN_UNMASKED, .ldq = C3, .ldkv = C3};
    size_t nqkv = (size_t)B * S * C3, ny = (size_t)B * S * Ch;
    double *qkv = tu_dalloc(nqkv);
    c.q = qkv, c.k = qkv + Ch, c.v = qkv + 2 * Ch;
    c.dout = tu_dalloc(ny), c.out = tu_dalloc(ny), c.att = tu_dalloc((size_t)B * H * S * S);
    tu_fill(&g_rng, qkv, nqkv, 1.5), tu_fill(&g_rng, c.dout, ny, 1);
    double *dqkv = tu_dalloc(nqkv), *scratch = tu_dalloc(ap_nn_attention_scratch(S));
    att_loss(&c);
    check_probabilities(&c);
    tu_fill(&g_rng, dqkv, nqkv, 1); /* overwritten */
    ap_nn_attention_bwd_d(dqkv, dqkv + Ch, dqkv + 2 * Ch, scratch, c.dout, c.q, c.k, c.v, c.att, C3, C3, B, S, H, H,
                          dh, AP_NN_UNMASKED);
    grad_of(&c, "unmasked attention d qkv", qkv, dqkv, nqkv);
    free(qkv), free(c.dout), free(c.out), free(c.att), free(dqkv), free(scratch);
}

/* ---- GELUs ------------------------------------------------------------------------------ */

typedef struct {
    size_t n;
    int erf_form;
    double *x, *y, *dout;
} gelu_ctx;

static double gelu_loss(void *p) {
    gelu_ctx *c = p;
    if (c->erf_form) ap_nn_gelu_erf_fwd_d(c->y, c->x, c->n);
    else ap_nn_gelu_tanh_fwd_d(c->y, c->x, c->n);
    return tu_dot(c->y, c->dout, c->n);
}

static void test_gelu_tanh(void **state) {
    (void)state;
    gelu_ctx c = {.n = 64};
    c.x = tu_dalloc(c.n), c.y = tu_dalloc(c.n), c.dout = tu_dalloc(c.n);
    tu_fill(&g_rng, c.x, c.n, 5), tu_fill(&g_rng, c.dout, c.n, 1);
    double *dx = tu_dalloc(c.n), *num = tu_dalloc(c.n);
    ap_nn_gelu_tanh_bwd_d(dx, c.x, c.dout, c.n);
    tu_numeric_grad(gelu_loss, &c, c.x, c.n, H_STEP, num);
    tu_check_grad("gelu_tanh d input", dx, num, c.n, TOL);
    /* the tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    gelu_loss(&c);
    for (size_t i = 0; i < c.n; i++) {
        double x = c.x[i], ref = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
        assert_true(fabs(c.y[i] - ref) < 1e-12);
    }
    free(c.x), free(c.y), free(c.dout), free(dx), free(num);
}

static void test_gelu_erf(void **state) {
    (void)state;
    gelu_ctx c = {.n = 41, .erf_form = 1};
    c.x = tu_dalloc(c.n), c.y = tu_dalloc(c.n), c.dout = tu_dalloc(c.n);
    for (size_t i = 0; i < c.n; i++) c.x[i] = -5 + 0.25 * (double)i + 0.01; /* -5 .. 5 */
    tu_fill(&g_rng, c.dout, c.n, 1);
    double *dx = tu_dalloc(c.n), *num = tu_dalloc(c.n);
    ap_nn_gelu_erf_bwd_d(dx, c.x, c.dout, c.n);
    tu_numeric_grad(gelu_loss, &c, c.x, c.n, H_STEP, num);
    tu_check_grad("gelu (erf) d input", dx, num, c.n, TOL);
    /* The exact form, not the tanh approximation: GELU(1) = Φ(1) = 0.841344746. */
    double one = 1, y;
    ap_nn_gelu_erf_fwd_d(&y, &one, 1);
    assert_true(fabs(y - 0.8413447460685429) < 1e-12);
    free(c.x), free(c.y), free(c.dout), free(dx), free(num);
}

/* ---- embedding ------------------------------------------------------------------------------ */

typedef struct {
    int n, V, D;
    const int32_t *ids;
    double *E, *y, *dout;
} emb_ctx;

static double emb_loss(void *p) {
    emb_ctx *c = p;
    ap_nn_embedding_fwd_d(c->y, c->ids, c->E, c->n, c->D);
    return tu_dot(c->y, c->dout, (size_t)c->n * c->D);
}

static void test_embedding(void **state) {
    (void)state;
    static const int32_t ids[] = {3, 0, 3, 5, 1, 3};
    emb_ctx c = {.n = 6, .V = 7, .D = 20, .ids = ids};
    size_t ne = (size_t)c.V * c.D, ny = (size_t)c.n * c.D;
    c.E = tu_dalloc(ne), c.y = tu_dalloc(ny), c.dout = tu_dalloc(ny);
    tu_fill(&g_rng, c.E, ne, 1), tu_fill(&g_rng, c.dout, ny, 1);
    double *dE = tu_dalloc(ne), *num = tu_dalloc(ne);
    ap_nn_embedding_bwd_d(dE, ids, c.dout, c.n, c.D);
    tu_numeric_grad(emb_loss, &c, c.E, ne, H_STEP, num);
    tu_check_grad("embedding d weight", dE, num, ne, TOL);
    free(c.E), free(c.y), free(c.dout), free(dE), free(num);
}

int main(void) {
    ap_rng_seed(&g_rng, 12345);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm),        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_attention_causal), cmocka_unit_test(test_attention_unmasked),
        cmocka_unit_test(test_gelu_tanh),        cmocka_unit_test(test_gelu_erf),
        cmocka_unit_test(test_embedding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
