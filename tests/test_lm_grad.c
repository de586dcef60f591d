/* Gradient checks of StarCoder2 training (src/lm/train_net.inc): every layer
 * kernel and the whole model's loss, in double precision (the _d
 * instantiation, the same source as the float code training runs), against
 * central finite differences (five-point stencil); then the float backward
 * against the double one.
 *
 * Error measure: |analytic - numeric| / max(|numeric|, 1e-3 · max|numeric|
 * over the tensor), so near-zero entries of a tensor are judged on the scale
 * of that tensor. The worst value of each check is printed. */
#include "testutil.h"

#include "lm/kernels.h"
#include "lm/train_internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define H_STEP 1e-4
#define TOL 1e-6

static ap_rng g_rng;


static void check(const char *what, const double *analytic, const double *numeric, size_t n) {
    double e = tu_grad_err(analytic, numeric, n);
    print_message("  %-34s worst rel err %.2e\n", what, e);
    assert_true(e < TOL);
}

/* ---- LayerNorm ------------------------------------------------------------------ */

typedef struct {
    int n, C;
    double *x, *w, *b, *dout, *out, *mean, *rstd;
} ln_ctx;

static double ln_loss(void *p) {
    ln_ctx *c = p;
    lmt_layernorm_fwd_d(c->out, c->mean, c->rstd, c->x, c->w, c->b, c->n, c->C, 1e-5);
    return tu_dot(c->out, c->dout, (size_t)c->n * c->C);
}

static void test_layernorm(void **state) {
    (void)state;
    ln_ctx c = {.n = 3, .C = 37}; /* C over two column blocks */
    size_t nx = (size_t)c.n * c.C;
    c.x = tu_dalloc(nx), c.w = tu_dalloc(c.C), c.b = tu_dalloc(c.C), c.dout = tu_dalloc(nx), c.out = tu_dalloc(nx);
    c.mean = tu_dalloc(c.n), c.rstd = tu_dalloc(c.n);
    tu_fill(&g_rng, c.x, nx, 2), tu_fill(&g_rng, c.w, c.C, 1.5), tu_fill(&g_rng, c.b, c.C, 1), tu_fill(&g_rng, c.dout, nx, 1);
    double *dx = tu_dalloc(nx), *dw = tu_dalloc(c.C), *db = tu_dalloc(c.C), *num = tu_dalloc(nx);
    ln_loss(&c);
    lmt_layernorm_bwd_d(dx, dw, db, c.dout, c.x, c.w, c.mean, c.rstd, c.n, c.C);
    tu_numeric_grad(ln_loss, &c, c.x, nx, H_STEP, num);
    check("layernorm d input", dx, num, nx);
    tu_numeric_grad(ln_loss, &c, c.w, c.C, H_STEP, num);
    check("layernorm d weight", dw, num, c.C);
    tu_numeric_grad(ln_loss, &c, c.b, c.C, H_STEP, num);
    check("layernorm d bias", db, num, c.C);
    free(c.x), free(c.w), free(c.b), free(c.dout), free(c.out), free(c.mean), free(c.rstd);
    free(dx), free(dw), free(db), free(num);
}

/* ---- Linear ------------------------------------------------------------------------ */

typedef struct {
    int n, cin, cout;
    double *x, *w, *b, *dout, *out;
} lin_ctx;

static double lin_loss(void *p) {
    lin_ctx *c = p;
    lmt_linear_fwd_d(c->out, c->x, c->w, c->b, c->n, c->cin, c->cout);
    return tu_dot(c->out, c->dout, (size_t)c->n * c->cout);
}

static void test_linear(void **state) {
    (void)state;
    lin_ctx c = {.n = 4, .cin = 6, .cout = 19};
    size_t nx = (size_t)c.n * c.cin, nw = (size_t)c.cout * c.cin, ny = (size_t)c.n * c.cout;
    c.x = tu_dalloc(nx), c.w = tu_dalloc(nw), c.b = tu_dalloc(c.cout), c.dout = tu_dalloc(ny), c.out = tu_dalloc(ny);
    tu_fill(&g_rng, c.x, nx, 1), tu_fill(&g_rng, c.w, nw, 1), tu_fill(&g_rng, c.b, c.cout, 1), tu_fill(&g_rng, c.dout, ny, 1);
    double *dx = tu_dalloc(nx), *dw = tu_dalloc(nw), *db = tu_dalloc(c.cout), *num = tu_dalloc(nw);
    tu_fill(&g_rng, dx, nx, 1); /* overwritten (accumulate = 0) */
    lmt_linear_bwd_d(dx, 0, dw, db, c.dout, c.x, c.w, c.n, c.cin, c.cout);
    tu_numeric_grad(lin_loss, &c, c.x, nx, H_STEP, num);
    check("linear d input", dx, num, nx);
    tu_numeric_grad(lin_loss, &c, c.w, nw, H_STEP, num);
    check("linear d weight", dw, num, nw);
    tu_numeric_grad(lin_loss, &c, c.b, c.cout, H_STEP, num);
    check("linear d bias", db, num, c.cout);
    /* accumulate = 1 adds to what is there */
    double *acc = tu_dalloc(nx);
    for (size_t i = 0; i < nx; i++) acc[i] = 1.0;
    lmt_linear_bwd_d(acc, 1, NULL, NULL, c.dout, c.x, c.w, c.n, c.cin, c.cout);
    for (size_t i = 0; i < nx; i++) assert_true(fabs(acc[i] - 1.0 - dx[i]) < 1e-12);
    free(c.x), free(c.w), free(c.b), free(c.dout), free(c.out), free(dx), free(dw), free(db), free(num), free(acc);
}

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
    check("rope d input", dx, num, m);
    free(c.x), free(c.y), free(c.dout), free(c.cos_t), free(c.sin_t), free(dx), free(num);
}

/* ---- attention ---------------------------------------------------------------------------- */

typedef struct {
    int B, T, H, KV, hd, window;
    double *q, *k, *v, *dout, *out, *att;
} att_ctx;

static double att_loss(void *p) {
    att_ctx *c = p;
    lmt_attention_fwd_d(c->out, c->att, c->q, c->k, c->v, c->B, c->T, c->H, c->KV, c->hd, c->window);
    return tu_dot(c->out, c->dout, (size_t)c->B * c->T * c->H * c->hd);
}

static void attention_case(int B, int T, int H, int KV, int window) {
    att_ctx c = {.B = B, .T = T, .H = H, .KV = KV, .hd = 4, .window = window};
    size_t nq = (size_t)c.B * c.T * c.H * c.hd, nk = (size_t)c.B * c.T * c.KV * c.hd;
    size_t na = (size_t)c.B * c.H * c.T * c.T;
    c.q = tu_dalloc(nq), c.k = tu_dalloc(nk), c.v = tu_dalloc(nk), c.dout = tu_dalloc(nq), c.out = tu_dalloc(nq);
    c.att = tu_dalloc(na);
    tu_fill(&g_rng, c.q, nq, 1.5), tu_fill(&g_rng, c.k, nk, 1.5), tu_fill(&g_rng, c.v, nk, 1), tu_fill(&g_rng, c.dout, nq, 1);
    double *dq = tu_dalloc(nq), *dk = tu_dalloc(nk), *dv = tu_dalloc(nk), *num = tu_dalloc(nq);
    double *scratch = tu_dalloc((size_t)omp_get_max_threads() * c.T * c.T);
    att_loss(&c);
    /* masked probabilities are exactly 0: the causal mask and the window */
    for (int bh = 0; bh < c.B * c.H; bh++)
        for (int i = 0; i < c.T; i++)
            for (int j = 0; j < c.T; j++) {
                double p = c.att[((size_t)bh * c.T + i) * c.T + j];
                int visible = j <= i && (window <= 0 || i - j < window);
                assert_true(visible ? p > 0 : p == 0);
            }
    tu_fill(&g_rng, dk, nk, 1), tu_fill(&g_rng, dv, nk, 1); /* overwritten */
    lmt_attention_bwd_d(dq, dk, dv, scratch, c.dout, c.q, c.k, c.v, c.att, c.B, c.T, c.H, c.KV, c.hd, window);
    char what[64];
    tu_numeric_grad(att_loss, &c, c.q, nq, H_STEP, num);
    snprintf(what, sizeof what, "attention d q (T %d, window %d)", T, window);
    check(what, dq, num, nq);
    tu_numeric_grad(att_loss, &c, c.k, nk, H_STEP, num);
    snprintf(what, sizeof what, "attention d k (T %d, window %d)", T, window);
    check(what, dk, num, nk);
    tu_numeric_grad(att_loss, &c, c.v, nk, H_STEP, num);
    snprintf(what, sizeof what, "attention d v (T %d, window %d)", T, window);
    check(what, dv, num, nk);
    free(c.q), free(c.k), free(c.v), free(c.dout), free(c.out), free(c.att);
    free(dq), free(dk), free(dv), free(num), free(scratch);
}

static void test_attention(void **state) {
    (void)state;
    attention_case(2, 6, 4, 2, 0);
    attention_case(2, 6, 4, 2, 3);
    /* over two query blocks (ATT_BLOCK 64), with a window reaching across them */
    attention_case(1, 80, 2, 1, 0);
    attention_case(1, 80, 2, 1, 50);
}

/* ---- GELU and embedding ----------------------------------------------------------------------- */

typedef struct {
    size_t n;
    double *x, *y, *dout;
} gelu_ctx;

static double gelu_loss(void *p) {
    gelu_ctx *c = p;
    lmt_gelu_fwd_d(c->y, c->x, c->n);
    return tu_dot(c->y, c->dout, c->n);
}

static void test_gelu(void **state) {
    (void)state;
    gelu_ctx c = {.n = 64};
    c.x = tu_dalloc(c.n), c.y = tu_dalloc(c.n), c.dout = tu_dalloc(c.n);
    tu_fill(&g_rng, c.x, c.n, 5), tu_fill(&g_rng, c.dout, c.n, 1);
    double *dx = tu_dalloc(c.n), *num = tu_dalloc(c.n);
    lmt_gelu_bwd_d(dx, c.x, c.dout, c.n);
    tu_numeric_grad(gelu_loss, &c, c.x, c.n, H_STEP, num);
    check("gelu_tanh d input", dx, num, c.n);
    /* the tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    gelu_loss(&c);
    for (size_t i = 0; i < c.n; i++) {
        double x = c.x[i], ref = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
        assert_true(fabs(c.y[i] - ref) < 1e-12);
    }
    free(c.x), free(c.y), free(c.dout), free(dx), free(num);
}

typedef struct {
    int n, V, D;
    const int32_t *ids;
    double *E, *y, *dout;
} emb_ctx;

static double emb_loss(void *p) {
    emb_ctx *c = p;
    lmt_embed_fwd_d(c->y, c->ids, c->E, c->n, c->D);
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
    lmt_embed_bwd_d(dE, ids, c.dout, c.n, c.D);
    tu_numeric_grad(emb_loss, &c, c.E, ne, H_STEP, num);
    check("embedding d weight", dE, num, ne);
    free(c.E), free(c.y), free(c.dout), free(dE), free(num);
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
    check("head+cross-entropy d final norm", dl, num_l, n * D);
    size_t off = m.L.head, nw = (size_t)cfg.vocab_size * D;
    tu_numeric_grad(head_loss, &m, m.P + off, nw, H_STEP, num);
    check("head+cross-entropy d weight", m.G + off, num, nw);
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
    check("weighted rows d final norm", dl, num, n * D);
    size_t off = m.L.head, nw = (size_t)cfg.vocab_size * D;
    double *numw = tu_dalloc(nw);
    tu_numeric_grad(weighted_head_loss, &m, m.P + off, nw, H_STEP, numw);
    check("weighted rows d weight", m.G + off, numw, nw);
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
        cmocka_unit_test(test_layernorm), cmocka_unit_test(test_linear),    cmocka_unit_test(test_rope),
        cmocka_unit_test(test_attention), cmocka_unit_test(test_gelu),      cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_head), cmocka_unit_test(test_head_row_weights), cmocka_unit_test(test_model),     cmocka_unit_test(test_float_matches_double),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
