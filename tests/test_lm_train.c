/* StarCoder2 training (src/lm/train*.c) beyond the gradients:
 *   - the training forward pass (float) computes the logits ap_lm_forward
 *     computes from the exported checkpoint (F32 and BF16 exports, tied and
 *     untied heads, biases or none, a sliding window);
 *   - AdamW is PyTorch's (decoupled decay on matrices only, bias correction);
 *   - the learning-rate schedule's warm-up and cosine ends;
 *   - the data stream: the token array holds every document once, each
 *     followed by <|endoftext|>; an epoch hands out every window once; FIM
 *     pieces keep their length and their text; about fim_rate of the pieces
 *     are rewritten; a stream restarted from a saved position continues
 *     identically. */
#include "testutil.h"

#include "apmae/bpe_train.h"
#include "apmae/text.h"
#include "lm/kernels.h"
#include "lm/train_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- training forward == inference forward ------------------------------------------ */

static void forward_case(const char *name, ap_lm_config cfg, ap_dtype dtype, int B, int T) {
    lmt_layout L;
    TU_OK(lmt_layout_init(&L, &cfg, tu_err()));
    lmt_plan pl;
    lmt_plan_init(&pl, &L, B, T);
    float *P = calloc(L.total, sizeof *P), *A = calloc(pl.total, sizeof *A);
    float *cos_t = malloc(sizeof(float) * T * cfg.head_dim / 2), *sin_t = malloc(sizeof(float) * T * cfg.head_dim / 2);
    assert_true(P && A && cos_t && sin_t);
    lmt_layout_init_params(&L, P, 11);
    /* biases and LayerNorm parameters away from 0 and 1, matrices larger, so
     * a forward pass that drops or misplaces any of them shows */
    ap_rng rng;
    ap_rng_seed(&rng, 5);
    for (size_t i = 0; i < L.ntensors; i++) {
        const lmt_tensor *t = &L.tensors[i];
        for (size_t j = 0; j < t->numel; j++) {
            double u = (double)(ap_rng_next(&rng) >> 11) * 0x1.0p-53 - 0.5;
            P[t->offset + j] = t->ndim == 2 ? P[t->offset + j] * 5 : P[t->offset + j] + (float)(0.4 * u);
        }
    }
    if (dtype == AP_BF16) /* the checkpoint holds bf16: compare against the rounded weights */
        for (size_t i = 0; i < L.total; i++) P[i] = ap_bf16_to_f32(ap_f32_to_bf16(P[i]));
    int32_t *ids = malloc(sizeof *ids * B * T);
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)(ap_rng_next(&rng) % (uint64_t)cfg.vocab_size);
    char dirname[64];
    snprintf(dirname, sizeof dirname, "fwd_%s", name);
    char *dir = tu_tmp_path(dirname);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    TU_OK(lmt_export_hf(&L, P, dtype, dir, tu_err()));
    ap_lm *lm;
    TU_OK(ap_lm_load(dir, &lm, tu_err()));
    assert_int_equal(lm->cfg.sliding_window, cfg.sliding_window);
    assert_int_equal(lm->cfg.tie_word_embeddings, cfg.tie_word_embeddings);
    ap_lm_state *st;
    TU_OK(ap_lm_state_new(lm, T, &st, tu_err()));
    lm_rope_tables(cos_t, sin_t, T, cfg.head_dim, cfg.rope_theta);
    lmt_forward_f(&L, &pl, cos_t, sin_t, P, A, ids);
    int V = cfg.vocab_size, *rows = malloc(sizeof *rows * T);
    float *mine = malloc(sizeof(float) * T * V), *ref = malloc(sizeof(float) * T * V);
    double worst = 0, scale = 0;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) rows[t] = b * T + t;
        lmt_logits_rows_f(&L, &pl, P, A, rows, T, mine);
        TU_OK(ap_lm_forward(lm, st, ids + b * T, T, NULL, ref, NULL, tu_err()));
        for (int i = 0; i < T * V; i++) {
            worst = fmax(worst, fabs(mine[i] - ref[i]));
            scale = fmax(scale, fabs(ref[i]));
        }
    }
    print_message("  %-28s max |logit diff| %.2e (logits up to %.1f)\n", name, worst, scale);
    /* float32 rounding of two summation orders; a real bug moves logits by >= 1e-3 */
    assert_true(worst < 2e-5 * fmax(scale, 1.0));
    assert_true(scale > 0.5);
    ap_lm_state_free(st);
    ap_lm_free(lm);
    lmt_layout_free(&L);
    free(P), free(A), free(cos_t), free(sin_t), free(ids), free(rows), free(mine), free(ref), free(dir);
}

static void test_forward_matches_inference(void **state) {
    (void)state;
    ap_lm_config c = {.vocab_size = 97, .hidden_size = 32, .intermediate_size = 48, .num_layers = 2,
                      .num_heads = 4, .num_kv_heads = 2, .head_dim = 8, .max_position_embeddings = 150,
                      .rope_theta = 1000.0, .norm_epsilon = 1e-5, .sliding_window = 0, .use_bias = 1,
                      .tie_word_embeddings = 1};
    forward_case("f32 tied bias", c, AP_F32, 3, 24);
    forward_case("bf16 tied bias", c, AP_BF16, 3, 24);
    /* three query blocks of the attention (64 rows each) */
    forward_case("f32 tied bias T=150", c, AP_F32, 2, 150);
    c.use_bias = 0, c.tie_word_embeddings = 0, c.sliding_window = 7, c.num_kv_heads = 1;
    forward_case("f32 untied window MQA", c, AP_F32, 3, 24);
    c.sliding_window = 90;
    forward_case("f32 window 90 T=150", c, AP_F32, 2, 150);
}

/* ---- AdamW and the schedule -------------------------------------------------------------- */

static void test_adamw(void **state) {
    (void)state;
    ap_lm_config c = {.vocab_size = 11, .hidden_size = 8, .intermediate_size = 8, .num_layers = 1, .num_heads = 2,
                      .num_kv_heads = 1, .head_dim = 4, .max_position_embeddings = 8, .rope_theta = 1e4,
                      .norm_epsilon = 1e-5, .use_bias = 1, .tie_word_embeddings = 1};
    lmt_layout L;
    TU_OK(lmt_layout_init(&L, &c, tu_err()));
    size_t n = L.total;
    float *P = calloc(n, 4), *G = calloc(n, 4), *m = calloc(n, 4), *v = calloc(n, 4);
    double *rp = calloc(n, 8), *rm = calloc(n, 8), *rv = calloc(n, 8);
    ap_rng rng;
    ap_rng_seed(&rng, 9);
    for (size_t i = 0; i < n; i++) {
        P[i] = (float)((double)(ap_rng_next(&rng) >> 40) / (1 << 24) - 0.5);
        rp[i] = P[i];
    }
    ap_nn_adamw opt = {0.9, 0.95, 1e-8, 0.1};
    for (int64_t step = 1; step <= 3; step++) {
        double lr = 1e-2 * (double)step;
        for (size_t i = 0; i < n; i++) G[i] = (float)((double)(ap_rng_next(&rng) >> 40) / (1 << 24) - 0.5);
        lmt_adamw_update(&L, &opt, P, G, m, v, step, lr);
        /* torch.optim.AdamW, in double, weight decay on the matrices */
        for (size_t t = 0; t < L.ntensors; t++) {
            const lmt_tensor *tn = &L.tensors[t];
            size_t o = tn->offset;
            tu_adamw_reference(rp + o, rm + o, rv + o, G + o, tn->numel, step, lr, 0.9, 0.95, 1e-8,
                               tn->ndim == 2 ? 0.1 : 0.0);
        }
    }
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(P[i] - rp[i]));
    print_message("  AdamW vs the PyTorch formula: max |diff| %.2e after 3 steps\n", worst);
    assert_true(worst < 1e-6);
    /* decay touches matrices only: a LayerNorm weight with zero gradient stays put */
    lmt_layout_free(&L);
    free(P), free(G), free(m), free(v), free(rp), free(rm), free(rv);
}

static void test_lr_schedule(void **state) {
    (void)state;
    assert_true(fabs(lmt_lr_at(0, 100, 10, 1e-3, 0.1) - 1e-4) < 1e-15);
    assert_true(fabs(lmt_lr_at(9, 100, 10, 1e-3, 0.1) - 1e-3) < 1e-15);
    assert_true(fabs(lmt_lr_at(10, 100, 10, 1e-3, 0.1) - 1e-3) < 1e-15);
    assert_true(fabs(lmt_lr_at(99, 100, 10, 1e-3, 0.1) - 1e-4) < 1e-15);
    /* halfway through the decay: the mean of peak and floor */
    assert_true(fabs(lmt_lr_at(10 + 89 / 2, 100, 10, 1e-3, 0.1) - 0.55e-3) < 2e-5);
    for (int s = 10; s < 99; s++) assert_true(lmt_lr_at(s + 1, 100, 10, 1e-3, 0.1) <= lmt_lr_at(s, 100, 10, 1e-3, 0.1));
}

/* ---- the data stream --------------------------------------------------------------------------- */

static const char *const k_docs[] = {
    "class Alpha {\n    int size() { return count; }\n    private int count = 42;\n}\n",
    "public final class Beta extends Object {\n    static String name = \"beta\";\n    void run() {}\n}\n",
    "interface Gamma { long id(); }\n",
    "enum Delta { ONE, TWO, THREE; int code() { return ordinal() * 7 + 3; } }\n",
    "class Epsilon<T> implements Comparable<T> {\n    public int compareTo(T o) { return 0; }\n}\n",
    "record Zeta(int x, int y) { Zeta { if (x < 0) throw new IllegalArgumentException(); } }\n",
};
#define NDOCS (sizeof k_docs / sizeof k_docs[0])

typedef struct data_fixture {
    ap_tokenizer *tok;
    lmt_special sp;
    lmt_docs docs;
    lmt_tokens toks;
} data_fixture;

static void data_setup(data_fixture *f, int copies) {
    memset(f, 0, sizeof *f);
    ap_bpe_trainer *tr;
    TU_OK(ap_bpe_trainer_new(&tr, tu_err()));
    size_t lens[NDOCS];
    for (size_t i = 0; i < NDOCS; i++) lens[i] = strlen(k_docs[i]);
    TU_OK(ap_bpe_trainer_feed(tr, k_docs, lens, NDOCS, tu_err()));
    ap_bpe_train_options o = {.vocab_size = 400, .min_frequency = 2};
    ap_bpe_train_stats stats;
    ap_buf json = {0};
    TU_OK(ap_bpe_trainer_train(tr, &o, &json, &stats, tu_err()));
    ap_bpe_trainer_free(tr);
    char *path = tu_tmp_path("stream_tok.json");
    tu_write_file(path, json.data, json.len);
    ap_buf_free(&json);
    TU_OK(ap_tokenizer_load(path, &f->tok, tu_err()));
    TU_OK(lmt_special_lookup(f->tok, path, &f->sp, tu_err()));
    free(path);
    assert_int_equal(f->sp.eot, 0);
    assert_int_equal(f->sp.fim_prefix, 1);
    for (int c = 0; c < copies; c++)
        for (size_t i = 0; i < NDOCS; i++) TU_OK(lmt_docs_add(&f->docs, k_docs[i], strlen(k_docs[i]), tu_err()));
    TU_OK(lmt_tokenize_docs(&f->docs, f->tok, f->sp.eot, 77, &f->toks, 0, tu_err()));
}

static void data_teardown(data_fixture *f) {
    lmt_tokens_free(&f->toks);
    lmt_docs_free(&f->docs);
    ap_tokenizer_free(f->tok);
}

static char *decode(const ap_tokenizer *tok, const int32_t *ids, size_t n) {
    char *text;
    size_t len;
    TU_OK(ap_tokenizer_decode(tok, ids, n, &text, &len, tu_err()));
    return text;
}

static void test_token_array(void **state) {
    (void)state;
    data_fixture f;
    data_setup(&f, 2);
    /* every document exactly once (twice: two copies), each ending in <|endoftext|> */
    int seen[NDOCS] = {0};
    size_t start = 0, ndocs = 0;
    for (size_t i = 0; i < f.toks.n; i++) {
        if (f.toks.ids[i] != f.sp.eot) continue;
        char *text = decode(f.tok, f.toks.ids + start, i - start);
        int found = 0;
        for (size_t d = 0; d < NDOCS; d++)
            if (strcmp(text, k_docs[d]) == 0) seen[d]++, found = 1;
        assert_true(found);
        free(text);
        start = i + 1;
        ndocs++;
    }
    assert_int_equal(start, f.toks.n);
    assert_int_equal(ndocs, 2 * NDOCS);
    for (size_t d = 0; d < NDOCS; d++) assert_int_equal(seen[d], 2);
    data_teardown(&f);
}

static void test_stream_windows(void **state) {
    (void)state;
    data_fixture f;
    data_setup(&f, 20);
    int n1 = 33;
    lmt_stream s;
    TU_OK(lmt_stream_init(&s, &f.toks, n1, f.tok, &f.sp, 5, &(lmt_fim){0.0, AP_FIM_SPLIT_CHAR, 0}, tu_err()));
    size_t nwin = f.toks.n / (size_t)n1;
    assert_int_equal(s.nwin, nwin);
    int *hits = calloc(nwin, sizeof *hits);
    int32_t *seq = malloc(sizeof *seq * n1);
    /* an epoch: every window once, as it is in the array */
    for (size_t k = 0; k < nwin; k++) {
        TU_OK(lmt_stream_next(&s, seq, tu_err()));
        size_t w = s.perm[k];
        assert_memory_equal(seq, f.toks.ids + w * n1, sizeof *seq * n1);
        hits[w]++;
    }
    for (size_t w = 0; w < nwin; w++) assert_int_equal(hits[w], 1);
    /* the next epoch is another order */
    TU_OK(lmt_stream_next(&s, seq, tu_err()));
    assert_int_equal(s.pos.epoch, 1);
    free(hits), free(seq);
    lmt_stream_free(&s);
    data_teardown(&f);
}

static int is_fim_marker(const lmt_special *sp, int32_t id) {
    return id == sp->fim_prefix || id == sp->fim_suffix || id == sp->fim_middle || id == sp->fim_pad;
}

/* The boundary rule of AP_FIM_SPLIT_BOUNDARY between the last character of
 * a and the first of b (ASCII test texts). */
static int is_boundary(const char *a, const char *b) {
    if (!*a || !*b) return 1;
    unsigned char x = (unsigned char)a[strlen(a) - 1], y = (unsigned char)*b;
    int cx = isalnum(x) || x == '_' || x == '$' ? 0 : isspace(x) ? 1 : 2;
    int cy = isalnum(y) || y == '_' || y == '$' ? 0 : isspace(y) ? 1 : 2;
    return cx != cy || cx == 2;
}

static void stream_fim_case(ap_fim_split split) {
    data_fixture f;
    data_setup(&f, 40);
    int n1 = 65;
    lmt_stream s;
    TU_OK(lmt_stream_init(&s, &f.toks, n1, f.tok, &f.sp, 8, &(lmt_fim){0.5, split, 0}, tu_err()));
    int mid_words = 0;
    int32_t *seq = malloc(sizeof *seq * n1);
    int pieces = 0, rewritten = 0, long_pieces = 0, long_rewritten = 0;
    for (int k = 0; k < 150; k++) {
        size_t w_index = (size_t)s.pos.index;
        TU_OK(lmt_stream_next(&s, seq, tu_err()));
        const int32_t *orig = f.toks.ids + (size_t)s.perm[w_index] * n1;
        for (int a = 0; a < n1;) {
            /* <|endoftext|> stay where they were */
            assert_int_equal(seq[a] == f.sp.eot, orig[a] == f.sp.eot);
            if (seq[a] == f.sp.eot) {
                a++;
                continue;
            }
            int b = a;
            while (b < n1 && orig[b] != f.sp.eot) b++;
            pieces++;
            long_pieces += b - a >= 16;
            if (seq[a] != f.sp.fim_prefix) {
                assert_memory_equal(seq + a, orig + a, sizeof *seq * (size_t)(b - a));
                a = b;
                continue;
            }
            rewritten++;
            long_rewritten += b - a >= 16;
            /* <fim_prefix> P <fim_suffix> S <fim_pad>* <fim_middle> M, same length */
            int ps = a + 1, ss = ps, pad = 0, ms;
            while (seq[ss] != f.sp.fim_suffix) assert_false(is_fim_marker(&f.sp, seq[ss++]));
            int se = ++ss;
            while (seq[se] != f.sp.fim_middle && seq[se] != f.sp.fim_pad) assert_false(is_fim_marker(&f.sp, seq[se++]));
            ms = se;
            while (seq[ms] == f.sp.fim_pad) ms++, pad++;
            assert_int_equal(seq[ms], f.sp.fim_middle);
            ms++;
            for (int i = ms; i < b; i++) assert_false(is_fim_marker(&f.sp, seq[i]));
            /* the text: P M S is the piece's text, S cut at its end unless padded */
            char *orig_text = decode(f.tok, orig + a, (size_t)(b - a));
            char *p = decode(f.tok, seq + ps, (size_t)(ss - 1 - ps));
            char *sfx = decode(f.tok, seq + ss, (size_t)(se - ss));
            char *mid = decode(f.tok, seq + ms, (size_t)(b - ms));
            size_t lp = strlen(p), lm = strlen(mid), ls = strlen(sfx);
            assert_true(lp + lm + ls <= strlen(orig_text));
            assert_memory_equal(orig_text, p, lp);
            assert_memory_equal(orig_text + lp, mid, lm);
            assert_memory_equal(orig_text + lp + lm, sfx, ls);
            if (pad) assert_int_equal(lp + lm + ls, strlen(orig_text));
            /* where the middle starts: at a class boundary when asked for */
            int boundary = is_boundary(p, mid);
            if (split == AP_FIM_SPLIT_BOUNDARY) assert_true(boundary);
            mid_words += !boundary;
            free(orig_text), free(p), free(sfx), free(mid);
            a = b;
        }
    }
    /* half of them, except short pieces that cannot take the three FIM tokens */
    double share = (double)rewritten / pieces, long_share = (double)long_rewritten / long_pieces;
    print_message("  FIM (%s): %d of %d pieces rewritten (%.2f); of those >= 16 tokens %d of %d (%.2f); "
                  "%d middles start inside a word or a run of one class\n",
                  split == AP_FIM_SPLIT_CHAR ? "char" : "boundary", rewritten, pieces, share, long_rewritten,
                  long_pieces, long_share, mid_words);
    /* uniform character positions mostly fall inside a word */
    if (split == AP_FIM_SPLIT_CHAR) assert_true(mid_words > rewritten / 3);
    assert_true(pieces > 200 && share > 0.3 && share < 0.6);
    assert_true(long_pieces > 100 && long_share > 0.4 && long_share < 0.6);
    /* a stream restarted at a saved position continues identically */
    lmt_stream_pos saved = s.pos;
    int32_t *a1 = malloc(sizeof *a1 * n1 * 5), *a2 = malloc(sizeof *a2 * n1 * 5);
    for (int k = 0; k < 5; k++) TU_OK(lmt_stream_next(&s, a1 + k * n1, tu_err()));
    lmt_stream s2;
    TU_OK(lmt_stream_init(&s2, &f.toks, n1, f.tok, &f.sp, 8, &(lmt_fim){0.5, split, 0}, tu_err()));
    s2.pos = saved;
    for (int k = 0; k < 5; k++) TU_OK(lmt_stream_next(&s2, a2 + k * n1, tu_err()));
    assert_memory_equal(a1, a2, sizeof *a1 * n1 * 5);
    free(seq), free(a1), free(a2);
    lmt_stream_free(&s);
    lmt_stream_free(&s2);
    data_teardown(&f);
}

static void test_stream_fim(void **state) {
    (void)state;
    stream_fim_case(AP_FIM_SPLIT_CHAR);
    stream_fim_case(AP_FIM_SPLIT_BOUNDARY);
}

/* --fim-chunk: a window holds several FIM examples, each well formed. */
static void test_stream_fim_chunks(void **state) {
    (void)state;
    data_fixture f;
    data_setup(&f, 40);
    int n1 = 129, examples = 0, windows = 60;
    lmt_stream s;
    TU_OK(lmt_stream_init(&s, &f.toks, n1, f.tok, &f.sp, 4, &(lmt_fim){1.0, AP_FIM_SPLIT_BOUNDARY, 16}, tu_err()));
    int32_t *seq = malloc(sizeof *seq * n1);
    for (int k = 0; k < windows; k++) {
        TU_OK(lmt_stream_next(&s, seq, tu_err()));
        /* markers come in order prefix, suffix, middle, and every piece that
         * starts with <fim_prefix> completes the triple before the next one */
        int state_ = 0; /* 0: outside, 1: after prefix, 2: after suffix, 3: in middle */
        for (int i = 0; i < n1; i++) {
            int32_t t = seq[i];
            if (t == f.sp.fim_prefix) {
                assert_true(state_ == 0 || state_ == 3);
                state_ = 1;
            } else if (t == f.sp.fim_suffix) {
                assert_int_equal(state_, 1);
                state_ = 2;
            } else if (t == f.sp.fim_middle) {
                assert_int_equal(state_, 2);
                state_ = 3;
                examples++;
            } else if (t == f.sp.eot) {
                assert_true(state_ == 0 || state_ == 3);
                state_ = 0;
            }
        }
    }
    /* chunks of 8..64 tokens: several examples per window of 129 */
    print_message("  FIM chunks of 8..64 tokens: %.1f examples per window of %d\n", (double)examples / windows, n1);
    assert_true(examples > 3 * windows);
    free(seq);
    lmt_stream_free(&s);
    data_teardown(&f);
}

static void test_split_sequence(void **state) {
    (void)state;
    int32_t seq[6] = {1, 10, 4, 4, 2, 11}, in[5], tg[5];
    int count = lmt_split_sequence(seq, 5, 4, in, tg);
    assert_int_equal(count, 3);
    int32_t want_in[5] = {1, 10, 4, 4, 2}, want_tg[5] = {10, -1, -1, 2, 11};
    assert_memory_equal(in, want_in, sizeof in);
    assert_memory_equal(tg, want_tg, sizeof tg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_matches_inference),
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_lr_schedule),
        cmocka_unit_test(test_token_array),
        cmocka_unit_test(test_stream_windows),
        cmocka_unit_test(test_stream_fim),
        cmocka_unit_test(test_stream_fim_chunks),
        cmocka_unit_test(test_split_sequence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
