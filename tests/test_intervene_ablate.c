/* Ablated passes with and without reusing the unablated pass's residual
 * stream (src/intervene/ablate.c, ap_lm_forward's start_layer): the same
 * logits bit for bit, the same as a plain ap_lm_forward with the mask, an
 * empty mask reproduces the baseline, and ablation agrees with the PyTorch
 * reference's (tests/fixtures/lm/f32_ablate). */
#include "testutil.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "apmae/intervene.h"
#include "apmae/io.h"

static const char *const k_models[] = {"fixtures/lm/f32_gqa_untied", "fixtures/lm/bf16_mha_tied",
                                       "fixtures/lm/f16_gqa_window", "fixtures/lm/bf16_gqa_theta"};

static void random_ids(uint64_t seed, int V, int T, int32_t *ids) {
    ap_rng r;
    ap_rng_seed(&r, seed);
    for (int t = 0; t < T; t++) ids[t] = (int32_t)ap_rng_below(&r, (uint64_t)V);
}

/* Masks to try: none, each head alone, then random sets of 2..L*H heads. */
static int next_mask(int k, int L, int H, ap_rng *r, uint8_t *mask) {
    int P = L * H;
    memset(mask, 0, (size_t)P);
    if (k == 0) return 1;
    if (k <= P) {
        mask[k - 1] = 1;
        return 1;
    }
    if (k > P + 12) return 0;
    int n = 2 + (int)ap_rng_below(r, (uint64_t)P - 1);
    for (int i = 0; i < n; i++) mask[ap_rng_below(r, (uint64_t)P)] = 1;
    return 1;
}

static void check_model(const char *dir, int threads) {
    omp_set_num_threads(threads);
    ap_lm *lm;
    TU_OK(ap_lm_load(dir, &lm, tu_err()));
    const ap_lm_config *c = &lm->cfg;
    int L = c->num_layers, H = c->num_heads, V = c->vocab_size;
    int T = c->max_position_embeddings < 24 ? c->max_position_embeddings : 24;
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    random_ids(7, V, T, ids);
    ap_ablator *reuse, *plain;
    TU_OK(ap_ablator_new(lm, T + 5, 1, &reuse, tu_err()));
    TU_OK(ap_ablator_new(lm, T, 0, &plain, tu_err()));
    ap_lm_state *s;
    TU_OK(ap_lm_state_new(lm, T, &s, tu_err()));
    float *base = malloc((size_t)V * sizeof(float)), *direct = malloc((size_t)V * sizeof(float));
    uint8_t *mask = malloc((size_t)L * H);
    int32_t p0, p1, pr, pp;
    TU_OK(ap_ablator_baseline(reuse, ids, T, &p0, tu_err()));
    TU_OK(ap_ablator_baseline(plain, ids, T, &p1, tu_err()));
    assert_int_equal(p0, p1);
    memcpy(base, ap_ablator_logits(reuse), (size_t)V * sizeof(float));
    assert_memory_equal(base, ap_ablator_logits(plain), (size_t)V * sizeof(float));

    ap_rng r;
    ap_rng_seed(&r, 11);
    int changed = 0, masks = 0;
    for (int k = 0; next_mask(k, L, H, &r, mask); k++, masks++) {
        TU_OK(ap_ablator_run(reuse, mask, &pr, tu_err()));
        TU_OK(ap_ablator_run(plain, mask, &pp, tu_err()));
        assert_int_equal(pr, pp);
        assert_memory_equal(ap_ablator_logits(reuse), ap_ablator_logits(plain), (size_t)V * sizeof(float));
        ap_lm_forward_opts fo = {.ablate = mask, .last_only = 1};
        TU_OK(ap_lm_forward(lm, s, ids, T, &fo, direct, NULL, tu_err()));
        assert_memory_equal(ap_ablator_logits(reuse), direct, (size_t)V * sizeof(float));
        if (k == 0) assert_memory_equal(direct, base, (size_t)V * sizeof(float));
        else changed += memcmp(direct, base, (size_t)V * sizeof(float)) != 0;
    }
    /* Not vacuous: ablations do change the logits. */
    assert_int_equal(changed, masks - 1);
    /* Reuse skipped work: single heads past layer 0 started later. */
    const ap_ablator_stats *sr = ap_ablator_get_stats(reuse), *sp = ap_ablator_get_stats(plain);
    assert_int_equal(sr->passes, masks);
    assert_int_equal(sp->layers_run, sp->layers_full);
    assert_true(sr->layers_run < sr->layers_full);
    print_message("%s, %d thread(s): %d masks; reuse ran %lld of %lld layers\n", dir, threads, masks,
                  (long long)sr->layers_run, (long long)sr->layers_full);

    /* A new input replaces the kept stream. */
    random_ids(8, V, T - 3, ids);
    memset(mask, 0, (size_t)L * H);
    mask[(size_t)(L - 1) * H] = 1;
    TU_OK(ap_ablator_baseline(reuse, ids, T - 3, &p0, tu_err()));
    TU_OK(ap_ablator_run(reuse, mask, &pr, tu_err()));
    ap_lm_forward_opts fo = {.ablate = mask, .last_only = 1};
    TU_OK(ap_lm_forward(lm, s, ids, T - 3, &fo, direct, NULL, tu_err()));
    assert_memory_equal(ap_ablator_logits(reuse), direct, (size_t)V * sizeof(float));

    free(mask);
    free(base);
    free(direct);
    ap_lm_state_free(s);
    ap_ablator_free(reuse);
    ap_ablator_free(plain);
    free(ids);
    ap_lm_free(lm);
}

static void test_reuse_is_exact(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof k_models / sizeof *k_models; i++) check_model(k_models[i], 1);
    check_model(k_models[0], 2);
    check_model(k_models[1], 2);
}

/* The fixture of the PyTorch reference with ablated heads: the ablator's
 * last-position logits match its last row, and its prediction its argmax. */
static void test_matches_reference(void **state) {
    (void)state;
    omp_set_num_threads(1);
    const char *dir = "fixtures/lm/f32_ablate";
    ap_safetensors *st;
    TU_OK(ap_st_open("fixtures/lm/f32_ablate/expected.safetensors", &st, tu_err()));
    const ap_tensor *tids = ap_st_find(st, "input_ids"), *tlog = ap_st_find(st, "logits");
    const ap_tensor *tabl = ap_st_find(st, "ablate");
    assert_non_null(tids);
    assert_non_null(tlog);
    assert_non_null(tabl);
    ap_lm *lm;
    TU_OK(ap_lm_load(dir, &lm, tu_err()));
    int L = lm->cfg.num_layers, H = lm->cfg.num_heads, V = lm->cfg.vocab_size, T = (int)tids->shape[0];
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    for (int t = 0; t < T; t++) ids[t] = (int32_t)((const int64_t *)tids->data)[t];
    uint8_t *mask = calloc((size_t)L * H, 1);
    const int64_t *rows = tabl->data;
    assert_true(tabl->shape[0] > 0);
    for (int64_t k = 0; k < tabl->shape[0]; k++) mask[rows[2 * k] * H + rows[2 * k + 1]] = 1;
    ap_ablator *a;
    TU_OK(ap_ablator_new(lm, T, 1, &a, tu_err()));
    int32_t p0, p;
    TU_OK(ap_ablator_baseline(a, ids, T, &p0, tu_err()));
    TU_OK(ap_ablator_run(a, mask, &p, tu_err()));
    const float *want = (const float *)tlog->data + (size_t)(T - 1) * V;
    assert_true(tu_max_rel_err(ap_ablator_logits(a), want, (size_t)V, 1.0) <= 1e-4);
    int best = 0;
    for (int i = 1; i < V; i++)
        if (want[i] > want[best]) best = i;
    assert_int_equal(p, best);
    ap_ablator_free(a);
    free(mask);
    free(ids);
    ap_lm_free(lm);
    ap_st_close(st);
}

static void test_errors(void **state) {
    (void)state;
    ap_lm *lm;
    TU_OK(ap_lm_load(k_models[0], &lm, tu_err()));
    int L = lm->cfg.num_layers, H = lm->cfg.num_heads, D = lm->cfg.hidden_size;
    int32_t ids[4] = {1, 2, 3, 4}, p;
    uint8_t *mask = calloc((size_t)L * H, 1);
    ap_error err = {0};
    ap_ablator *a;
    TU_OK(ap_ablator_new(lm, 4, 1, &a, tu_err()));
    assert_int_equal(ap_ablator_run(a, mask, &p, &err), AP_ERR_INTERNAL);
    ids[1] = lm->cfg.vocab_size;
    assert_int_equal(ap_ablator_baseline(a, ids, 4, &p, &err), AP_ERR_RANGE);
    assert_int_equal(ap_ablator_run(a, mask, &p, &err), AP_ERR_INTERNAL); /* the failed baseline set no input */
    ap_lm_state *s;
    TU_OK(ap_lm_state_new(lm, 4, &s, tu_err()));
    float *logits = malloc((size_t)lm->cfg.vocab_size * sizeof(float)), *res = calloc((size_t)4 * D, sizeof(float));
    ids[1] = 2;
    ap_lm_forward_opts no_residual = {.last_only = 1, .start_layer = 1};
    assert_int_equal(ap_lm_forward(lm, s, ids, 4, &no_residual, logits, NULL, &err), AP_ERR_ARG);
    ap_lm_forward_opts past_end = {.last_only = 1, .start_layer = L, .start_residual = res};
    assert_int_equal(ap_lm_forward(lm, s, ids, 4, &past_end, logits, NULL, &err), AP_ERR_ARG);
    assert_non_null(strstr(err.msg, "start layer"));
    free(logits);
    free(res);
    ap_lm_state_free(s);
    free(mask);
    ap_ablator_free(a);
    ap_lm_free(lm);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse_is_exact),
        cmocka_unit_test(test_matches_reference),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
