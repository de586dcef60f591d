/* Gradient checks of StarCoder2 training (src/lm/train_net.inc): RoPE, the
 * head with its cross-entropy and the whole model's loss, in double precision
 * (the _d instantiation, the same source as the float code training runs),
 * against central finite differences (five-point stencil); then the float
 * backward against the double one. The shared kernels' own checks are in
 * test_nn_grad.c.
 *
 * Error measure: |analytic - numeric| / max(|numeric|, 1e-3 · max|numeric|
 * over the tensor), so near-zero entries of a tensor are judged on the scale
 * of that tensor. The worst value of each check is printed. */
#include "testutil.h"

#include "lm/kernels.h"
#include "lm/train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define H_STEP 1e-4
#define TOL 1e-6

static ap_rng g_rng;



/* ---- RoPE ----------------------------------------------------------------------------- */

typedef struct {
    int n, T, nh, hd;
    double *x, *y, *dout;
    float *cos_t, *sin_t;
} rope_ctx;

static double rope_loss(void *p) {
    rope_ctx *c = p;
    size_t m = (size_t)c->n * c->nh * c->hd;
    memcpy(c->y, c->x, m * sizeof *c->y);
    lmt_rope_fwd_d(c->y, c->n, c->T, c->nh, c->hd, c->cos_t, c->sin_t);
    return tu_dot(c->y, c->dout, m);
}

static void test_rope(void **state) {
    (void)state;
    rope_ctx c = {.n = 10, .T = 5, .nh = 3, .hd = 8}; /* two sequences of 5 positions */
    size_t m = (size_t)c.n * c.nh * c.hd;
    c.x = tu_dalloc(m), c.y = tu_dalloc(m), c.dout = tu_dalloc(m);
    c.cos_t = malloc(sizeof(float) * c.T * c.hd / 2), c.sin_t = malloc(sizeof(float) * c.T * c.hd / 2);
    lm_rope_tables(c.cos_t, c.sin_t, c.T, c.hd, 100.0);
    tu_fill(&g_rng, c.x, m, 1), tu_fill(&g_rng, c.dout, m, 1);
    double *dx = tu_dalloc(m), *num = tu_dalloc(m);
    memcpy(dx, c.dout, m * sizeof *dx);
    lmt_rope_bwd_d(dx, c.n, c.T, c.nh, c.hd, c.cos_t, c.sin_t);
    tu_numeric_grad(rope_loss, &c, c.x, m, H_STEP, num);
    tu_check_grad("rope d input", dx, num, m, TOL);
    free(c.x), free(c.y), free(c.dout), free(c.cos_t), free(c.sin_t), free(dx), free(num);
}

/* ---- a tiny model ---------------------------------------------------------------------------------- */

typedef struct net {
    lmt_layout L;
    lmt_plan pl;
    double *P, *A, *G;
    float *Pf, *Af, *Gf;
    float *cos_t, *sin_t;
    int32_t *ids, *targets;
    double scale; /* 1 / number of targets */
} net;

static ap_lm_config tiny_config(int use_bias, int tied, int window) {
    ap_lm_config c = {.vocab_size = 23, .hidden_size = 8, .intermediate_size = 12, .num_layers = 2, .num_heads = 4,
                      .num_kv_heads = 2, .head_dim = 2, .max_position_embeddings = 64, .rope_theta = 50.0,
                      .norm_epsilon = 1e-5, .sliding_window = window, .use_bias = use_bias,
                      .tie_word_embeddings = tied};
    return c;
}

static void net_init(net *m, const ap_lm_config *cfg, int B, int T) {
    memset(m, 0, sizeof *m);
    TU_OK(lmt_layout_init(&m->L, cfg, tu_err()));
    lmt_plan_init(&m->pl, &m->L, B, T);
    m->pl.chunk = 3; /* the head runs over several chunks of rows */
    size_t np = m->L.total, na = m->pl.total, n = (size_t)B * T;
    m->P = tu_dalloc(np), m->G = tu_dalloc(np), m->A = tu_dalloc(na);
    m->Pf = calloc(np, sizeof(float)), m->Gf = calloc(np, sizeof(float)), m->Af = calloc(na, sizeof(float));
    m->cos_t = malloc(sizeof(float) * T * cfg->head_dim / 2), m->sin_t = malloc(sizeof(float) * T * cfg->head_dim / 2);
    m->ids = malloc(n * sizeof *m->ids), m->targets = malloc(n * sizeof *m->targets);
    assert_true(m->Pf && m->Gf && m->Af && m->cos_t && m->sin_t && m->ids && m->targets);
    lm_rope_tables(m->cos_t, m->sin_t, T, cfg->head_dim, cfg->rope_theta);
    /* parameters well away from the initialisation's small values, so every
     * term of every gradient matters; LayerNorm weights around 1 */
    tu_fill(&g_rng, m->P, np, 0.5);
    for (size_t i = 0; i < m->L.ntensors; i++) {
        const lmt_tensor *t = &m->L.tensors[i];
        if (strstr(t->name, "layernorm.weight") || strstr(t->name, "norm.weight"))
            for (size_t j = 0; j < t->numel; j++) m->P[t->offset + j] += 1.0;
    }
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        m->ids[i] = (int32_t)(ap_rng_next(&g_rng) % (uint64_t)cfg->vocab_size);
        m->targets[i] = i % 4 == 1 ? -1 : (int32_t)(ap_rng_next(&g_rng) % (uint64_t)cfg->vocab_size);
        count += m->targets[i] >= 0;
    }
    m->scale = 1.0 / count;
}

static void net_free(net *m) {
    lmt_layout_free(&m->L);
    free(m->P), free(m->G), free(m->A), free(m->Pf), free(m->Gf), free(m->Af);
    free(m->cos_t), free(m->sin_t), free(m->ids), free(m->targets);
}

static double net_loss(void *p) {
    net *m = p;
    lmt_forward_d(&m->L, &m->pl, m->cos_t, m->sin_t, m->P, m->A, m->ids);
    return m->scale * lmt_head_d(&m->L, &m->pl, m->P, m->A, m->targets, m->scale, NULL, NULL);
}

static void net_grad_d(net *m) {
    memset(m->G, 0, m->L.total * sizeof *m->G);
    lmt_forward_d(&m->L, &m->pl, m->cos_t, m->sin_t, m->P, m->A, m->ids);
    lmt_head_d(&m->L, &m->pl, m->P, m->A, m->targets, m->scale, NULL, m->G);
    lmt_backward_d(&m->L, &m->pl, m->cos_t, m->sin_t, m->P, m->A, m->ids, m->G);
}

/* Every parameter of the model against finite differences of the loss. */
static void model_case(const char *what, const ap_lm_config *cfg) {
    net m;
    net_init(&m, cfg, 2, 7);
    net_grad_d(&m);
    double *num = tu_dalloc(m.L.total);
    tu_numeric_grad(net_loss, &m, m.P, m.L.total, H_STEP, num);
    double worst = 0;
    for (size_t i = 0; i < m.L.ntensors; i++) {
        const lmt_tensor *t = &m.L.tensors[i];
        double e = tu_grad_err(m.G + t->offset, num + t->offset, t->numel);
        if (e > TOL) print_message("    %s: rel err %.2e\n", t->name, e);
        worst = fmax(worst, e);
    }
    print_message("  %-34s worst rel err %.2e over %zu tensors\n", what, worst, m.L.ntensors);
    assert_true(worst < TOL);
    free(num);
    net_free(&m);
}

static void test_model(void **state) {
    (void)state;
    ap_lm_config a = tiny_config(1, 1, 0), b = tiny_config(0, 0, 4);
    model_case("model (bias, tied head)", &a);
    model_case("model (no bias, own head, window 4)", &b);
}

static double head_loss(void *p) {
    net *m = p;
    return m->scale * lmt_head_d(&m->L, &m->pl, m->P, m->A, m->targets, m->scale, NULL, NULL);
}

enum { HEAD_ROWS = 14 }; /* the head tests' batch: 2 sequences of 7 */

/* A tiny model whose final-norm activations are set directly, for the head alone. */
static void head_case_init(net *m, const ap_lm_config *cfg) {
    net_init(m, cfg, 2, 7);
    tu_fill(&g_rng, m->A + m->pl.lnf, (size_t)HEAD_ROWS * cfg->hidden_size, 1.5);
}

/* The head alone, with chunks that split the batch and ignored targets. */
static void test_head(void **state) {
    (void)state;
    ap_lm_config cfg = tiny_config(1, 1, 0);
    net m;
    head_case_init(&m, &cfg);
    size_t n = HEAD_ROWS, D = (size_t)cfg.hidden_size;
    double *lnf = m.A + m.pl.lnf;
    double *dl = tu_dalloc(n * D), *num = tu_dalloc(m.L.total);
    double loss = lmt_head_d(&m.L, &m.pl, m.P, m.A, m.targets, m.scale, NULL, m.G);
    memcpy(dl, m.A + m.pl.d_lnf, n * D * sizeof *dl);
    /* per-row losses: log-sum-exp minus the target logit; 0 where ignored */
    double *logits = tu_dalloc((size_t)cfg.vocab_size);
    for (size_t r = 0; r < n; r++) {
        double ref = 0;
        if (m.targets[r] >= 0) {
            double s = 0;
            for (int j = 0; j < cfg.vocab_size; j++) {
                logits[j] = tu_dot(lnf + r * D, m.P + m.L.head + (size_t)j * D, D);
                s += exp(logits[j]);
            }
            ref = log(s) - logits[m.targets[r]];
        }
        assert_true(fabs(m.A[m.pl.rowloss + r] - ref) < 1e-12);
    }
    double *num_l = tu_dalloc(n * D);
    tu_numeric_grad(head_loss, &m, lnf, n * D, H_STEP, num_l);
    tu_check_grad("head+cross-entropy d final norm", dl, num_l, n * D, TOL);
    size_t off = m.L.head, nw = (size_t)cfg.vocab_size * D;
    tu_numeric_grad(head_loss, &m, m.P + off, nw, H_STEP, num);
    tu_check_grad("head+cross-entropy d weight", m.G + off, num, nw, TOL);
    assert_true(loss > 0);
    free(dl), free(num), free(num_l), free(logits);
    net_free(&m);
}

static float g_row_weight[HEAD_ROWS];

static double weighted_head_loss(void *p) {
    net *m = p;
    lmt_head_d(&m->L, &m->pl, m->P, m->A, m->targets, m->scale, NULL, NULL);
    double sum = 0;
    for (int r = 0; r < HEAD_ROWS; r++) sum += g_row_weight[r] * m->A[m->pl.rowloss + r];
    return m->scale * sum;
}

/* Row weights (the trainer's --fim-middle-weight) scale each row's gradient
 * but not the loss it reports. */
static void test_head_row_weights(void **state) {
    (void)state;
    ap_lm_config cfg = tiny_config(1, 1, 0);
    net m;
    head_case_init(&m, &cfg);
    size_t n = HEAD_ROWS, D = (size_t)cfg.hidden_size;
    for (size_t r = 0; r < n; r++) g_row_weight[r] = r % 3 == 0 ? 5.0f : 1.0f;
    double plain = lmt_head_d(&m.L, &m.pl, m.P, m.A, m.targets, m.scale, NULL, NULL);
    double loss = lmt_head_d(&m.L, &m.pl, m.P, m.A, m.targets, m.scale, g_row_weight, m.G);
    assert_true(fabs(loss - plain) < 1e-12 * plain);
    double *dl = tu_dalloc(n * D), *num = tu_dalloc(n * D);
    memcpy(dl, m.A + m.pl.d_lnf, n * D * sizeof *dl);
    tu_numeric_grad(weighted_head_loss, &m, m.A + m.pl.lnf, n * D, H_STEP, num);
    tu_check_grad("weighted rows d final norm", dl, num, n * D, TOL);
    size_t off = m.L.head, nw = (size_t)cfg.vocab_size * D;
    double *numw = tu_dalloc(nw);
    tu_numeric_grad(weighted_head_loss, &m, m.P + off, nw, H_STEP, numw);
    tu_check_grad("weighted rows d weight", m.G + off, numw, nw, TOL);
    free(dl), free(num), free(numw);
    net_free(&m);
}

/* The float code (fast exp, float accumulation) against the double one on
 * the same model: relative error of each tensor's gradient in the 2-norm. */
static void test_float_matches_double(void **state) {
    (void)state;
    ap_lm_config cfg = tiny_config(1, 1, 0);
    cfg.vocab_size = 300, cfg.hidden_size = 32, cfg.intermediate_size = 64, cfg.head_dim = 8;
    net m;
    net_init(&m, &cfg, 2, 16);
    /* realistic scales: the training initialisation */
    lmt_layout_init_params(&m.L, m.Pf, 7);
    for (size_t i = 0; i < m.L.total; i++) m.P[i] = m.Pf[i];
    net_grad_d(&m);
    lmt_forward_f(&m.L, &m.pl, m.cos_t, m.sin_t, m.Pf, m.Af, m.ids);
    double lf = lmt_head_f(&m.L, &m.pl, m.Pf, m.Af, m.targets, m.scale, NULL, m.Gf);
    lmt_backward_f(&m.L, &m.pl, m.cos_t, m.sin_t, m.Pf, m.Af, m.ids, m.Gf);
    double ld = lmt_head_d(&m.L, &m.pl, m.P, m.A, m.targets, m.scale, NULL, NULL);
    print_message("  loss float %.9f double %.9f\n", lf * m.scale, ld * m.scale);
    assert_true(fabs(lf - ld) / ld < 1e-5);
    double worst = 0;
    for (size_t i = 0; i < m.L.ntensors; i++) {
        const lmt_tensor *t = &m.L.tensors[i];
        double e2 = 0, r2 = 0;
        for (size_t j = 0; j < t->numel; j++) {
            double d = m.Gf[t->offset + j] - m.G[t->offset + j];
            e2 += d * d;
            r2 += m.G[t->offset + j] * m.G[t->offset + j];
        }
        double e = sqrt(e2 / fmax(r2, 1e-300));
        worst = fmax(worst, e);
    }
    print_message("  %-34s worst rel err %.2e\n", "float vs double gradients", worst);
    assert_true(worst < 1e-5);
    net_free(&m);
}

int main(void) {
    ap_rng_seed(&g_rng, 12345);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rope),  cmocka_unit_test(test_head),
        cmocka_unit_test(test_head_row_weights), cmocka_unit_test(test_model),
        cmocka_unit_test(test_float_matches_double),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
